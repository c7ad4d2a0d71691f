-- agg_sales_by_state computed in PostgreSQL from the OLTP tables, by the business rules of
-- models/schema.yml: every measure excludes cancelled orders; one row per state having at
-- least one order item; avg_order_value = revenue / orders rounded half away from zero to
-- 2 places (0 without orders); profit = subtotal - quantity * cost.
-- Output (psql -A -t -F TAB) matches ClickHouse's TabSeparated for the same columns.
SELECT c.state,
       count(DISTINCT o.order_id)    FILTER (WHERE o.status <> 'cancelled') AS total_orders,
       count(DISTINCT o.customer_id) FILTER (WHERE o.status <> 'cancelled') AS total_customers,
       coalesce(sum(oi.quantity)     FILTER (WHERE o.status <> 'cancelled'), 0) AS total_items,
       coalesce(sum(oi.subtotal)     FILTER (WHERE o.status <> 'cancelled'), 0)::numeric(18, 2)
         AS total_revenue,
       coalesce(round(sum(oi.subtotal) FILTER (WHERE o.status <> 'cancelled')
                      / nullif(count(DISTINCT o.order_id) FILTER (WHERE o.status <> 'cancelled'), 0),
                      2), 0)::numeric(18, 2) AS avg_order_value,
       coalesce(sum(oi.subtotal - oi.quantity * p.cost) FILTER (WHERE o.status <> 'cancelled'), 0)
         ::numeric(18, 2) AS total_profit
FROM order_items oi
JOIN orders o    ON o.order_id = oi.order_id
JOIN customers c ON c.customer_id = o.customer_id
JOIN products p  ON p.product_id = oi.product_id
GROUP BY c.state
ORDER BY c.state;
