{% if true %}
select 1
