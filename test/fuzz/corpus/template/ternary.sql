{{ 'yes' if var('enabled') else 'no' }} {{ (1, 2) }} {{ not none and 1 or 0 }}
