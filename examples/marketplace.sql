-- The reference marketplace: shops sell products in categories to users,
-- who make purchases paid by payments.  After CREATE EXTENSION bmfredis,
-- this script creates the tables and watches them, so that every change
-- invalidates the matching Redis keys when the transaction commits.
--
--   psql -f examples/marketplace.sql
--
-- Key layout (under bmfredis.key_prefix), as the application's services
-- use it:
--   product:{id}                 one product
--   shop:{id}, user:{id}, category:{id}, purchase:{id}, payment:{id}
--   shop:{shop_id}:products      a shop's product list
--   category:{category_id}:products
--   user:{user_id}:purchases     a user's purchase history
-- Tags: products (every product list), shop:{shop_id} (everything about a
-- shop), user:{user_id}.

CREATE TABLE categories (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    parent_id   integer REFERENCES categories
);

CREATE TABLE users (
    id              integer PRIMARY KEY,
    email           text NOT NULL UNIQUE,
    display_name    text NOT NULL,
    password_hash   text NOT NULL,      -- never cached, never broadcast
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shops (
    id          integer PRIMARY KEY,
    owner_id    integer NOT NULL REFERENCES users,
    name        text NOT NULL,
    active      boolean NOT NULL DEFAULT true
);

CREATE TABLE products (
    id          integer PRIMARY KEY,
    shop_id     integer NOT NULL REFERENCES shops,
    category_id integer REFERENCES categories,
    title       text NOT NULL,
    price       numeric(10, 2) NOT NULL,
    downloads   integer NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON products (shop_id);
CREATE INDEX ON products (category_id);

CREATE TABLE purchases (
    id          integer PRIMARY KEY,
    user_id     integer NOT NULL REFERENCES users,
    product_id  integer NOT NULL REFERENCES products,
    amount      numeric(10, 2) NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payments (
    id          integer PRIMARY KEY,
    purchase_id integer NOT NULL REFERENCES purchases,
    status      text NOT NULL CHECK (status IN ('pending', 'paid', 'failed', 'refunded')),
    provider_ref text
);

-- What a change invalidates.
SELECT redis_watch('categories', 'category',
                   keys => ARRAY['category:{id}', 'categories'],
                   tags => ARRAY['categories']);
SELECT redis_watch('users', 'user',
                   keys => ARRAY['user:{id}'],
                   tags => ARRAY['user:{id}'],
                   columns => ARRAY['email', 'display_name']);   -- a new password_hash invalidates nothing
SELECT redis_watch('shops', 'shop',
                   keys => ARRAY['shop:{id}', 'shops'],
                   tags => ARRAY['shop:{id}']);
SELECT redis_watch('products', 'product',
                   keys => ARRAY['product:{id}', 'shop:{shop_id}:products', 'category:{category_id}:products'],
                   tags => ARRAY['products', 'shop:{shop_id}'],
                   columns => ARRAY['title', 'price', 'shop_id', 'category_id']);   -- downloads counters do not matter
SELECT redis_watch('purchases', 'purchase',
                   keys => ARRAY['purchase:{id}', 'user:{user_id}:purchases'],
                   tags => ARRAY['user:{user_id}']);
SELECT redis_watch('payments', 'payment',
                   keys => ARRAY['payment:{id}', 'purchase:{purchase_id}']);

-- Cascades: a shop or category change also invalidates its products, and
-- a product change its purchases.
INSERT INTO bmfredis.cache_cascades (entity, target, via_column) VALUES
    ('shop', 'product', 'shop_id'),
    ('category', 'product', 'category_id');
