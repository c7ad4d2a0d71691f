{{ unknown_fn() }}
{% macro m() %}{% endmacro %}
