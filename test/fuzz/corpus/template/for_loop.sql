{% for c in var('countries') %}{{ loop.index }}:{{ c | lower }}{% if not loop.last %},{% endif %}{% else %}none{% endfor %}
