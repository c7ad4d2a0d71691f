{{ 'Hello World' | upper | replace('O', '0') | trim | length }} {{ [3,1,2] | sort | first }} {{ 'x' ~ 1 ~ none }} {{ 7 // 2 }} {{ 2 ** 10 }} {{ 7 % 3 }} {{ -3 | abs }}
