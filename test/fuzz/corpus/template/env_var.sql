{{ env_var('ELTD_SCHEMA') }}.{{ env_var('NOPE', 'dflt') }}{{ env_var('NOPE2') }}
