-- {{ this }} in {{ var('currency') }}
SELECT count() AS orders, sum(total) AS revenue
FROM {{ ref('order_totals') }}
