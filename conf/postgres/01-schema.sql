-- eltd sample OLTP schema: the seed's e-commerce tables (postgres/init/01-init-schema.sql).
-- Loaded by test/servers.sh into ecommerce_db as user ecommerce.
-- updated_at on customers and orders is the cursor for incremental loads.
-- The foreign keys are named: conf/postgres/generate.sql drops and re-adds them around its
-- bulk inserts (one validating join instead of a trigger call per row).

CREATE TABLE customers (
    customer_id  serial       PRIMARY KEY,
    first_name   varchar(50)  NOT NULL,
    last_name    varchar(50)  NOT NULL,
    email        varchar(100) NOT NULL UNIQUE,
    phone        varchar(20),
    state        char(2)      NOT NULL,
    city         varchar(100) NOT NULL,
    created_at   timestamp    NOT NULL DEFAULT now(),
    updated_at   timestamp    NOT NULL DEFAULT now()
);

CREATE TABLE products (
    product_id    serial        PRIMARY KEY,
    product_name  varchar(200)  NOT NULL,
    category      varchar(50)   NOT NULL,
    price         numeric(10,2) NOT NULL CHECK (price >= 0),
    cost          numeric(10,2) NOT NULL CHECK (cost >= 0),
    created_at    timestamp     NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    order_id      serial        PRIMARY KEY,
    customer_id   integer       NOT NULL
                  CONSTRAINT orders_customer_id_fkey REFERENCES customers (customer_id),
    order_date    timestamp     NOT NULL,
    status        varchar(20)   NOT NULL
                  CHECK (status IN ('pending', 'processing', 'shipped', 'delivered', 'cancelled')),
    total_amount  numeric(12,2) NOT NULL DEFAULT 0,
    updated_at    timestamp     NOT NULL DEFAULT now()
);

CREATE TABLE order_items (
    order_item_id  serial        PRIMARY KEY,
    order_id       integer       NOT NULL
                   CONSTRAINT order_items_order_id_fkey REFERENCES orders (order_id),
    product_id     integer       NOT NULL
                   CONSTRAINT order_items_product_id_fkey REFERENCES products (product_id),
    quantity       integer       NOT NULL CHECK (quantity > 0),
    unit_price     numeric(10,2) NOT NULL,
    subtotal       numeric(12,2) NOT NULL
);

CREATE INDEX orders_customer_id_idx     ON orders (customer_id);
CREATE INDEX orders_updated_at_idx      ON orders (updated_at);
CREATE INDEX customers_updated_at_idx   ON customers (updated_at);
CREATE INDEX order_items_order_id_idx   ON order_items (order_id);
CREATE INDEX order_items_product_id_idx ON order_items (product_id);
