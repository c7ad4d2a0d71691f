{#
    agg_sales_by_state: metrics by state.
    Reads {{ ref('fact_sales') }} only.
#}
{{ config(materialized='table', engine='MergeTree()', order_by='customer_state') }}

{% set countries = var('countries') %}
SELECT
    customer_state,
    count() AS orders,
    round(sum(line_total), 2) AS revenue,
    uniqExact(customer_id) AS customers
FROM {{ ref('fact_sales') }}
WHERE 1 = 1
{%- if countries | length > 0 %}
  AND country IN ({{ "'" ~ countries | join("', '") ~ "'" }})
{%- endif %}
{%- if var('min_quantity', 0) > 0 %}
  AND quantity >= {{ var('min_quantity', 0) }}
{%- endif %}
GROUP BY customer_state
