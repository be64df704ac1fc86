\pset footer off
\set VERBOSITY terse
\echo '=== 1. Install the extension'
CREATE EXTENSION bmfredis;
SELECT healthy, status, version, role FROM redis_health();

\echo
\echo '=== 2. Cache from SQL: every key lives under bmfredis.key_prefix'
ALTER DATABASE marketplace SET bmfredis.key_prefix = 'bmf001:demo:';
\c
SHOW bmfredis.key_prefix;
SELECT redis_cache_set('product:42',
                       '{"id": 42, "title": "Lightroom presets", "price": 19.99}'::jsonb,
                       redis_ttl('medium'));
SELECT redis_cache_get_json('product:42') AS product;
SELECT redis_cache_ttl('product:42') AS expires_in;
\echo '-- the application''s Node services read the very same key with any Redis client:'
\echo '$ redis-cli GET bmf001:demo:product:42'
\! $REDIS GET bmf001:demo:product:42
\echo '-- and what they write, SQL reads:'
\echo '$ redis-cli SET bmf001:demo:session:7 user-31'
\! $REDIS SET bmf001:demo:session:7 user-31
SELECT redis_cache_get('session:7') AS session;

\echo
\echo '=== 3. Many keys in one round trip, counters, TTL classes'
SELECT redis_cache_mset(ARRAY['category:1', 'category:2'], ARRAY['Photography', 'Music'], redis_ttl('long'));
SELECT redis_cache_mget(ARRAY['category:1', 'category:2', 'category:3']) AS categories;
SELECT redis_cache_incr('views:product:42') AS views, redis_cache_incr('views:product:42', 10) AS views_after;
SELECT redis_ttl('short') AS short, redis_ttl('medium') AS medium, redis_ttl('long') AS long, redis_ttl('very_long') AS very_long;

\echo
\echo '=== 4. Redis goes away: reads degrade to a miss, the transaction commits'
\echo '$ (stopping Redis)'
\! $BMF_REDISCTL stop
BEGIN;
CREATE TABLE orders (id int PRIMARY KEY, product int);
INSERT INTO orders VALUES (1, 42);
SELECT redis_cache_get('product:42') AS cached_product;
COMMIT;
SELECT count(*) AS orders_committed FROM orders;
SELECT state, failures, last_error IS NOT NULL AS has_last_error FROM redis_connections();
\echo '$ (starting Redis again, empty: it keeps nothing on disk)'
\! $BMF_REDISCTL start
SELECT pg_sleep(0.5);
SELECT redis_cache_set('product:42', '{"id": 42}'::jsonb) AS stored_again, redis_cache_get('product:42') AS value;

\echo
\echo '=== 5. The marketplace tables, watched: changes invalidate at COMMIT'
\o /dev/null
\set ECHO none
\i ../examples/marketplace.sql
\set ECHO queries
\o
SELECT entity, keys, tags FROM bmfredis.cache_rules ORDER BY entity;
INSERT INTO users VALUES (7, 'ana@example.com', 'Ana', 'x');
INSERT INTO shops VALUES (7, 7, 'Ana''s presets');
INSERT INTO categories VALUES (1, 'Photography', NULL);
INSERT INTO products VALUES (42, 7, 1, 'Lightroom presets', 19.99);
SELECT redis_cache_set('product:42', to_jsonb(p), redis_ttl('medium'), ARRAY['shop:7']) FROM products p WHERE id = 42;
SELECT redis_cache_set('shop:7:products', '[42]', redis_ttl('medium'));
\echo '-- an UPDATE that is rolled back leaves the cache alone:'
BEGIN;
UPDATE products SET price = 9.99 WHERE id = 42;
SELECT kind, target FROM redis_pending_invalidations();
ROLLBACK;
SELECT redis_cache_get_json('product:42') ->> 'price' AS cached_price;
\echo '-- the same UPDATE committed: the keys are gone the moment COMMIT returns'
BEGIN;
UPDATE products SET price = 9.99 WHERE id = 42;
SELECT redis_cache_get('product:42') IS NOT NULL AS still_cached_before_commit;
COMMIT;
SELECT redis_cache_get('product:42') AS product, redis_cache_get('shop:7:products') AS shop_list;
\echo '$ redis-cli EXISTS bmf001:demo:product:42'
\! $REDIS EXISTS bmf001:demo:product:42

\echo
\echo '=== 6. This backend''s pool: one connection, reused'
SELECT state, db, commands, reconnects FROM redis_connections();
