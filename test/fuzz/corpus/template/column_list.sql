{% set columns = ['order_id', 'customer_id', 'status', 'total_amount'] %}
{% set renames = {'total_amount': 'amount', 'status': 'order_status'} %}
{{ config(materialized='view') }}

SELECT
{% for col in columns %}
    {{ col }}{% if col in renames %} AS {{ renames[col] }}{% endif %}{% if not loop.last %},{% endif %}
{% endfor %}
FROM {{ ref('stg_orders') }}
WHERE status IN ({% for s in ['paid', "shipped", 'delivered'] %}'{{ s }}'{% if not loop.last %}, {% endif %}{% endfor %})
