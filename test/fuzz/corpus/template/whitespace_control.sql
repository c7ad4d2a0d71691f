{{- config(materialized='table', order_by='state') -}}

{%- set metrics = ['revenue', 'orders', 'customers'] -%}

SELECT
    state,
    {%- for m in metrics %}
    sum({{ m }}) AS total_{{ m }}
    {%- if not loop.last %},{% endif %}
    {%- endfor %}
FROM {{ ref('fact_sales') }}
{#- the state filter only applies outside dev -#}
{% if target.name != 'dev' -%}
WHERE state != ''
{%- endif %}
GROUP BY state
ORDER BY total_revenue DESC   {# trailing comment #}
LIMIT {{ var('limit', 10) }}

