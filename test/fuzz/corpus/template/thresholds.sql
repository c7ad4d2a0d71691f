{{ var('thresholds').low }} {{ var('thresholds')['high'] | round }} {{ var('thresholds') | length }}
