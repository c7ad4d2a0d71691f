-- eltd sample data: the seed's 10 customers, 15 products (5 categories), 100 orders and
-- 294 order items. Fully deterministic (no random(), no now()): every run loads the same
-- rows, so tests can assert exact counts and sums.
--   items per order  n(o) = 1 + ((o*o + 4*o) % 17) % 5        (1..5, 294 in total)
--   item k of order o: product 1 + (3*o + 7*k) % 15           (distinct within an order)
--                      quantity 1 + (o + 2*k) % 4, unit_price = product price,
--                      subtotal = quantity * unit_price
--   orders.total_amount = sum of its items' subtotal

INSERT INTO customers (customer_id, first_name, last_name, email, phone, state, city, created_at, updated_at) VALUES
 (1,  'Ana',      'Silva',     'ana.silva@email.com',        '(11) 98765-4321', 'SP', 'São Paulo',      '2023-01-15 10:30:00', '2023-01-15 10:30:00'),
 (2,  'Bruno',    'Santos',    'bruno.santos@email.com',     '(21) 97654-3210', 'RJ', 'Rio de Janeiro', '2023-02-20 14:45:00', '2023-06-02 09:12:00'),
 (3,  'Carla',    'Oliveira',  'carla.oliveira@email.com',   '(31) 96543-2109', 'MG', 'Belo Horizonte', '2023-03-10 09:15:00', '2023-03-10 09:15:00'),
 (4,  'Daniel',   'Souza',     'daniel.souza@email.com',     NULL,              'RS', 'Porto Alegre',   '2023-04-05 16:20:00', '2023-04-05 16:20:00'),
 (5,  'Eduarda',  'Lima',      'eduarda.lima@email.com',     '(41) 94321-0987', 'PR', 'Curitiba',       '2023-05-12 11:00:00', '2023-09-18 17:40:00'),
 (6,  'Felipe',   'Costa',     'felipe.costa@email.com',     '(71) 93210-9876', 'BA', 'Salvador',       '2023-06-18 13:30:00', '2023-06-18 13:30:00'),
 (7,  'Gabriela', 'Pereira',   'gabriela.pereira@email.com', '(48) 92109-8765', 'SC', 'Florianópolis',  '2023-07-22 08:45:00', '2023-07-22 08:45:00'),
 (8,  'Henrique', 'Almeida',   'henrique.almeida@email.com', NULL,              'PE', 'Recife',         '2023-08-30 15:10:00', '2023-11-03 08:05:00'),
 (9,  'Isabela',  'Ferreira',  'isabela.ferreira@email.com', '(85) 90987-6543', 'CE', 'Fortaleza',      '2023-09-14 12:25:00', '2023-09-14 12:25:00'),
 (10, 'João',     'Rodrigues', 'joao.rodrigues@email.com',   '(61) 99876-5432', 'DF', 'Brasília',       '2023-10-08 17:50:00', '2023-10-08 17:50:00');

INSERT INTO products (product_id, product_name, category, price, cost, created_at) VALUES
 (1,  'Smartphone Galaxy S23',       'Electronics',    3999.99, 2800.00, '2023-01-01 00:00:00'),
 (2,  'Notebook Dell Inspiron 15',   'Electronics',    4599.90, 3450.00, '2023-01-01 00:00:00'),
 (3,  'Fone de Ouvido Bluetooth',    'Electronics',     299.90,  150.00, '2023-01-01 00:00:00'),
 (4,  'Camiseta Básica Algodão',     'Clothing',         49.90,   18.00, '2023-01-05 00:00:00'),
 (5,  'Calça Jeans Slim',            'Clothing',        159.90,   70.00, '2023-01-05 00:00:00'),
 (6,  'Tênis de Corrida',            'Clothing',        399.90,  210.00, '2023-01-05 00:00:00'),
 (7,  'Cafeteira Elétrica',          'Home & Kitchen',  249.90,  130.00, '2023-01-10 00:00:00'),
 (8,  'Jogo de Panelas Antiaderente','Home & Kitchen',  459.90,  240.00, '2023-01-10 00:00:00'),
 (9,  'Liquidificador 1200W',        'Home & Kitchen',  189.90,   95.00, '2023-01-10 00:00:00'),
 (10, 'Dom Casmurro',                'Books',            34.90,   12.00, '2023-01-15 00:00:00'),
 (11, 'O Alquimista',                'Books',            39.90,   15.00, '2023-01-15 00:00:00'),
 (12, 'Sapiens',                     'Books',            69.90,   30.00, '2023-01-15 00:00:00'),
 (13, 'Bola de Futebol Oficial',     'Sports',          129.90,   55.00, '2023-01-20 00:00:00'),
 (14, 'Kit Halteres 10kg',           'Sports',          219.90,  110.00, '2023-01-20 00:00:00'),
 (15, 'Bicicleta Aro 29',            'Sports',         1899.00, 1200.00, '2023-01-20 00:00:00');

-- Orders 1..100 over 2024: customer 1 + (7*o) % 10, a status cycle weighted to delivered,
-- updated_at = order_date plus a status-dependent delay. total_amount is filled below.
INSERT INTO orders (order_id, customer_id, order_date, status, total_amount, updated_at)
SELECT o,
       1 + (7 * o) % 10,
       d,
       s,
       0,
       d + CASE s WHEN 'delivered'  THEN interval '5 days'
                  WHEN 'shipped'    THEN interval '2 days'
                  WHEN 'processing' THEN interval '6 hours'
                  WHEN 'cancelled'  THEN interval '1 day'
                  ELSE interval '0' END
FROM generate_series(1, 100) AS o,
     LATERAL (SELECT timestamp '2024-01-01 08:00:00'
                     + (o * 3) * interval '1 day'
                     + ((o * 37) % 14) * interval '1 hour'
                     + ((o * 17) % 60) * interval '1 minute' AS d,
                     (ARRAY['delivered','delivered','shipped','delivered','processing',
                            'delivered','cancelled','delivered','shipped','pending'])[1 + o % 10] AS s) AS x;

INSERT INTO order_items (order_item_id, order_id, product_id, quantity, unit_price, subtotal)
SELECT row_number() OVER (ORDER BY i.o, i.k),
       i.o, p.product_id, i.q, p.price, i.q * p.price
FROM (SELECT o, k, 1 + (3 * o + 7 * k) % 15 AS pid, 1 + (o + 2 * k) % 4 AS q
      FROM generate_series(1, 100) AS o,
           generate_series(1, 1 + ((o * o + 4 * o) % 17) % 5) AS k) AS i
JOIN products p ON p.product_id = i.pid
ORDER BY i.o, i.k;

UPDATE orders o SET total_amount = t.total
FROM (SELECT order_id, sum(subtotal) AS total FROM order_items GROUP BY order_id) AS t
WHERE t.order_id = o.order_id;

SELECT setval('customers_customer_id_seq',     (SELECT max(customer_id)   FROM customers));
SELECT setval('products_product_id_seq',       (SELECT max(product_id)    FROM products));
SELECT setval('orders_order_id_seq',           (SELECT max(order_id)      FROM orders));
SELECT setval('order_items_order_item_id_seq', (SELECT max(order_item_id) FROM order_items));

ANALYZE customers, products, orders, order_items;
