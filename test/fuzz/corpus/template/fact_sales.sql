{{ config(
    materialized='table',
    engine='MergeTree()',
    order_by='(order_date, order_item_id)'
) }}
-- Denormalized sales fact: one row per order item, with its order, customer and product.
-- profit = subtotal - quantity * cost, Decimal(18, 2).
-- ClickHouse 18.16 takes one JOIN per SELECT, so each join wraps the previous one:
-- items ⋈ orders, then ⋈ customers, then ⋈ products (ANY LEFT JOIN ... USING: every item
-- is kept; a missing parent shows as default values and fails the relationships tests).
-- Every joined subquery has an alias: current ClickHouse requires one
-- (joined_subquery_requires_alias), 18.16 accepts it.
SELECT
    order_item_id,
    order_id,
    order_date,
    status,
    customer_id,
    state,
    city,
    product_id,
    product_name,
    category,
    quantity,
    unit_price,
    subtotal,
    cost,
    toDecimal64(subtotal - toDecimal64(cost, 2) * quantity, 2) AS profit
FROM
(
    SELECT
        order_item_id, order_id, order_date, status, customer_id, state, city,
        product_id, quantity, unit_price, subtotal
    FROM
    (
        SELECT
            order_item_id, order_id, order_date, status, customer_id,
            product_id, quantity, unit_price, subtotal
        FROM
        (
            SELECT order_item_id, order_id, product_id, quantity, unit_price, subtotal
            FROM {{ ref('stg_order_items') }}
        ) AS i
        ANY LEFT JOIN
        (
            SELECT order_id, order_date, status, customer_id
            FROM {{ ref('stg_orders') }}
        ) AS o USING (order_id)
    ) AS io
    ANY LEFT JOIN
    (
        SELECT customer_id, state, city
        FROM {{ ref('stg_customers') }}
    ) AS c USING (customer_id)
) AS ioc
ANY LEFT JOIN
(
    SELECT product_id, product_name, category, cost
    FROM {{ ref('stg_products') }}
) AS p USING (product_id)
