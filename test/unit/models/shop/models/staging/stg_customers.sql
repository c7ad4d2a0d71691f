{{ config(tags=['pii']) }}
SELECT customer_id, first_name, last_name, state, city
FROM {{ source('raw', 'customers') }}
