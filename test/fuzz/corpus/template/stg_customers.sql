-- Customer dimension: one row per customer.
SELECT
    customer_id,
    first_name,
    last_name,
    email,
    phone,
    state,
    city,
    created_at,
    updated_at
FROM {{ source('raw', 'customers') }}
