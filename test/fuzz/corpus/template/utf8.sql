select 'ü€😀' as x -- {{ 'ä' | length }}
{{ 'ß' | upper }}
