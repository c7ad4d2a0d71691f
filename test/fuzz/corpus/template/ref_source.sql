select * from {{ ref('stg_orders') }} o join {{ source('raw', 'orders') }} r using (id)
