SELECT order_id, customer_id, state, status
FROM {{ ref('stg_orders') }}
ANY LEFT JOIN (SELECT customer_id, state FROM {{ ref('stg_customers') }}) USING customer_id
