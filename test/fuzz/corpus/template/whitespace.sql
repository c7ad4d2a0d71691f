{%- if true -%}
  a  
{%- endif -%}
{# comment #}
{{- ' b ' -}}
