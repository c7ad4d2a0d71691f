{{ config(materialized='view') }}

SELECT
    customer_id,
    lower(trim(email)) AS email,
    first_name,
    last_name,
    state,
    created_at
FROM {{ source('raw', 'customers') }}
