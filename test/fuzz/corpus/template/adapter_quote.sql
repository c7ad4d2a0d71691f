select {{ adapter.quote('col') }} from {{ this }} where {{ target.schema }} = '{{ target.name }}'
