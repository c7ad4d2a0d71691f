{# a comment with {{ braces }} and {% tags %} inside #}
SELECT '{' AS lone_brace, '}' AS close, '%' AS pct, '#' AS hash
{#- stripped before -#}
   , 'json {"a": 1}' AS j
{# multi
   line
   comment -#}

   , 1 AS after
-- a SQL comment with a { brace and a } brace
{{ '{{ not a tag }}' }} {{ "{% neither %}" }}
