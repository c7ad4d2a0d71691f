-- Product dimension: one row per product, with profit_margin = (price - cost) / price as
-- Decimal(18, 4) rounded half away from zero (0 for a product priced 0; the divisor is
-- guarded too, since ClickHouse evaluates both branches of if() and a Decimal division by
-- zero throws).
SELECT
    product_id,
    product_name,
    category,
    price,
    cost,
    if(price = 0,
       toDecimal64(0, 4),
       toDecimal64(round(toDecimal64(price - cost, 6) / if(price = 0, toDecimal64(1, 2), price), 4), 4)
    ) AS profit_margin,
    created_at
FROM {{ source('raw', 'products') }}
