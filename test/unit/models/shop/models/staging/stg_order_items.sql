{# Items with at least var('min_quantity') units. #}
SELECT order_item_id, order_id, product_id, quantity, unit_price, subtotal
FROM {{ source('raw', 'order_items') }}
WHERE quantity >= {{ var('min_quantity') }}
