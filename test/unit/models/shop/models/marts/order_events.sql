{{ config(materialized='incremental', incremental_strategy='append') }}
SELECT order_id, status, updated_at
FROM {{ source('raw', 'orders') }}
{% if is_incremental() %}
WHERE updated_at > (SELECT max(updated_at) FROM {{ this }})
{% endif %}
