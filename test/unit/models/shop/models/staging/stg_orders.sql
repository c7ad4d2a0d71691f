SELECT
    order_id,
    customer_id,
    order_date,
    status,
    total_amount,
    updated_at,
    toYear(order_date) AS order_year
FROM {{ source('raw', 'orders') }}
