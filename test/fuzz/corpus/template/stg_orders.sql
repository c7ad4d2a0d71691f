-- Order header: one row per order, with its calendar fields (order_date is UTC).
SELECT
    order_id,
    customer_id,
    order_date,
    toYear(order_date) AS order_year,
    toMonth(order_date) AS order_month,
    toQuarter(order_date) AS order_quarter,
    status,
    total_amount,
    updated_at
FROM {{ source('raw', 'orders') }}
