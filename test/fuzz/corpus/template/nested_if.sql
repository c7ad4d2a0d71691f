{% if var('enabled') %}{% if var('ratio') > 0.1 %}hi{% elif false %}no{% else %}lo{% endif %}{% endif %}
