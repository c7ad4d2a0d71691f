{% set d = {'a': 1, 'b': [1, 2.5, 'x']} %}{{ d.a }}{{ d['b'][1] }}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}
