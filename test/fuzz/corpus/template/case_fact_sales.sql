{{ config(
    materialized='table',
    engine='MergeTree()',
    order_by=['order_date', 'order_id'],
    partition_by='toYYYYMM(order_date)',
    settings={'index_granularity': 8192, 'allow_nullable_key': false},
    tags=["daily", 'marts']
) }}

-- fact_sales: denormalized sales, one row per order item
SELECT
    oi.order_item_id,
    o.order_id,
    o.order_date,
    c.customer_id,
    c.state AS customer_state,
    p.product_id,
    p.category,
    oi.quantity,
    oi.unit_price,
    oi.quantity * oi.unit_price AS line_total
FROM {{ ref('stg_order_items') }} AS oi
ANY LEFT JOIN (
    SELECT o.order_id, o.order_date, o.customer_id
    FROM {{ ref('stg_orders') }} AS o
) AS o USING order_id
WHERE o.order_date >= '{{ var("start_date") }}'
