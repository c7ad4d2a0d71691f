{{ 'Hello World' | upper }} {{ 'Hello World' | lower }} {{ '  padded \n' | trim }}|
{{ 'hello' | length }} {{ 'héllo' | length }} {{ [1, 2, 3] | length }} {{ {'a': 1} | length }}
{{ ['a', 'b', 'c'] | join(', ') }} {{ [1, 2, 3] | join }} {{ 'abc' | join('-') }} {{ {'x': 1, 'y': 2} | join(d='+') }}
{{ 'a-b-c' | replace('-', '_') }} {{ 'aaa' | replace('a', 'b', 2) }} {{ 'ab' | replace('', '.') }} {{ 123 | replace(2, 'two') }}
{{ undefined_thing | default('fallback') }} {{ none | default('not used') }} {{ '' | default('empty', true) }} {{ target.nope | default(42) }}
{{ 42 | upper }} {{ ['x'] | upper }} {{ 'mIxEd' | lower | upper }} {{ ' a ' | trim | length }}
{{ var('countries') | join(',') | lower }} {{ (var('countries') | length) * 2 }}
