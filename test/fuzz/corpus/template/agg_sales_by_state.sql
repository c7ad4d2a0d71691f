{{ config(
    materialized='table',
    engine='MergeTree()',
    order_by='state'
) }}
-- Sales by customer state: one row per state that has at least one order item.
-- Business rule: revenue excludes cancelled orders, and so does every measure here
-- (orders, customers, items, revenue, profit); a state whose orders are all cancelled keeps
-- its row with zeros. avg_order_value = total_revenue / total_orders, rounded half away
-- from zero to 2 places (0 when there is no order).
SELECT
    state,
    total_orders,
    total_customers,
    total_items,
    total_revenue,
    toDecimal64(round(toDecimal64(total_revenue, 6) / greatest(total_orders, 1), 2), 2) AS avg_order_value,
    total_profit
FROM
(
    SELECT
        state,
        uniqExactIf(order_id, status != 'cancelled') AS total_orders,
        uniqExactIf(customer_id, status != 'cancelled') AS total_customers,
        sumIf(toInt64(quantity), status != 'cancelled') AS total_items,
        toDecimal64(sumIf(subtotal, status != 'cancelled'), 2) AS total_revenue,
        toDecimal64(sumIf(profit, status != 'cancelled'), 2) AS total_profit
    FROM {{ ref('fact_sales') }}
    GROUP BY state
)
