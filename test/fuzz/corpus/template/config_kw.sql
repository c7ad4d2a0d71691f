{{ config(materialized='incremental', unique_key='id', order_by='(id, ts)', engine='ReplacingMergeTree(v)') }}
select 1
