{{ config(engine='MergeTree()', order_by=['order_id'], settings={'index_granularity': 8192}) }}
SELECT order_id, count() AS items, sum(subtotal) AS total
FROM {{ ref('stg_order_items') }}
GROUP BY order_id
