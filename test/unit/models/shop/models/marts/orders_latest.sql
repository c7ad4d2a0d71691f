{{ config(materialized='incremental', unique_key='order_id', order_by='order_id') }}
SELECT order_id, status, total_amount, updated_at
FROM {{ source('raw', 'orders') }}
{% if is_incremental() %}
WHERE order_id IN (
    SELECT order_id FROM {{ ref('stg_orders') }}
    WHERE updated_at > (SELECT max(updated_at) FROM {{ this }})
)
{% endif %}
