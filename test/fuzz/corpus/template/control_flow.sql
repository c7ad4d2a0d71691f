{% set tier = var('limit') %}
{% if tier > 1000 %}big{% elif tier > 50 %}medium{% elif tier > 10 %}small{% else %}tiny{% endif %}
{% if false %}never{% endif %}{% if none %}never{% else %}else-branch{% endif %}
{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}x after if={{ x }}
{% set y = 0 %}{% for i in [1, 2] %}[{{ y }}{% set y = i %}{{ y }}]{% endfor %}y after for={{ y }}
{% for k in {'b': 1, 'a': 2} %}{{ k }}={{ loop.index }}/{{ loop.length }}{{ ' first' if loop.first }}{{ ' last' if loop.last }};{% endfor %}
{% for i in range(3) %}{{ loop.index0 }}:{{ loop.revindex }}:{{ loop.revindex0 }} {% endfor %}
{% for i in range(2, 8, 3) %}{{ i }} {% endfor %}{% for i in range(3, 0, -1) %}{{ i }}{% endfor %}
{% for row in [[1, 2], [3, 4]] %}{% for v in row %}{{ loop.index }}.{{ v }}{% if not loop.last %},{% endif %}{% endfor %}{% if not loop.last %} | {% endif %}{% endfor %}
{% for x in [] %}not shown{% else %}empty loop{% endfor %}
{% for ch in 'héy' %}<{{ ch }}>{% endfor %}
{% set block_value %}
  captured {{ ref('orders') }}
{% endset %}[{{ block_value }}]
{% set d = dict(a=1, b='two') %}{{ d }} {{ d.b }}
{%- for i in range(2) -%}
    {{ i }}
{%- endfor %}
