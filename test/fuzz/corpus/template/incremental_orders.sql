{{
    config(
        materialized='incremental',
        unique_key='order_id',
        engine='ReplacingMergeTree(updated_at)',
        order_by='order_id'
    )
}}

SELECT
    order_id,
    customer_id,
    status,
    total_amount,
    updated_at
FROM {{ source('raw', 'orders') }}
{% if is_incremental() %}
WHERE updated_at > (SELECT max(updated_at) FROM {{ this }})
{% else %}
WHERE updated_at >= '{{ var('start_date') }}'
{% endif %}
