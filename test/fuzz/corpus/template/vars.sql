select '{{ var("start_date") }}', {{ var('limit') * 2 }}, {{ var('missing', default=none) is none }}, {{ var('countries') | join(',') }}
