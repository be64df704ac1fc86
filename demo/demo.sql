-- bmfredis in a minute: run by demo/run, which started a throwaway
-- PostgreSQL and Redis, created the database "marketplace" with
--   ALTER DATABASE marketplace SET bmfredis.key_prefix = 'bmf001:demo:'
-- (so every session of it starts with that prefix) and a redis-cli
-- SUBSCRIBE to product:* in the background.  $REDIS is redis-cli for the
-- demo's Redis, $SUB the file that subscriber writes.
\pset footer off
\set VERBOSITY terse
\echo '=== 1. Install the extension; Redis answers'
CREATE EXTENSION bmfredis;
SELECT healthy, status, server, version, role FROM redis_health();

\echo
\echo '=== 2. Cache from SQL, under the database''s key prefix, with TTL classes'
SHOW bmfredis.key_prefix;
SELECT redis_ttl('short') AS short, redis_ttl('medium') AS medium, redis_ttl('long') AS long, redis_ttl('very_long') AS very_long;
SELECT redis_cache_set('product:42', '{"id": 42, "title": "Lightroom presets", "price": 19.99}'::jsonb,
                       redis_ttl('medium'));
SELECT redis_cache_get_json('product:42') AS product, redis_cache_ttl('product:42') AS expires_in;
\echo '-- the application''s Node services read the very same key with any Redis client:'
\echo '$ redis-cli GET bmf001:demo:product:42'
\! $REDIS GET bmf001:demo:product:42
\echo '-- and SQL reads what they write:'
\! $REDIS SET bmf001:demo:session:7 user-31 >/dev/null
SELECT redis_cache_get('session:7') AS session;
SELECT redis_cache_mget(ARRAY['product:42', 'session:7', 'nothing:here']) AS three_keys_one_round_trip;

\echo
\echo '=== 3. The marketplace: tables, each watched (its keys and tags are invalidated at COMMIT)'
\o /dev/null
\set ECHO none
\i ../examples/marketplace.sql
INSERT INTO users SELECT i, 'user' || i || '@example.com', 'User ' || i, 'x' FROM generate_series(1, 2000) i;
INSERT INTO shops SELECT i, i, 'Shop ' || i FROM generate_series(1, 200) i;
INSERT INTO categories VALUES (1, 'Photography', NULL), (2, 'Music', NULL);
INSERT INTO products SELECT i, 1 + i % 200, 1 + i % 2, 'Product ' || i, 5 + i % 50 FROM generate_series(1, 20000) i;
INSERT INTO purchases SELECT i, 1 + i % 2000, 1 + (i * 7919) % 20000, 10 FROM generate_series(1, 50000) i;
ANALYZE;
\set ECHO queries
\o
SELECT e.entity, e.relation, r.keys, r.tags FROM bmfredis.entities e JOIN bmfredis.cache_rules r USING (entity)
 WHERE e.entity IN ('product', 'shop');

\echo
\echo '=== 4. Read-through caching: the first call runs the query, the next is one GET'
\timing on
SELECT redis_cached('shop:7:best-sellers', redis_ttl('medium'),
       $$SELECT p.id, p.title, count(*) AS sales FROM products p JOIN purchases pu ON pu.product_id = p.id
          WHERE p.shop_id = 7 GROUP BY p.id ORDER BY sales DESC, p.id LIMIT 3$$,
       tags => ARRAY['shop:7']) AS best_sellers_miss;
SELECT redis_cached('shop:7:best-sellers', redis_ttl('medium'),
       $$SELECT p.id, p.title, count(*) AS sales FROM products p JOIN purchases pu ON pu.product_id = p.id
          WHERE p.shop_id = 7 GROUP BY p.id ORDER BY sales DESC, p.id LIMIT 3$$,
       tags => ARRAY['shop:7']) AS best_sellers_hit;
\timing off

\echo
\echo '=== 5. A watched UPDATE: nothing on ROLLBACK, invalidated at COMMIT'
\echo '-- product 6 is in shop 7; cache it (the columns its rule watches) and the shop''s list'
SELECT redis_cache_set('product:6', to_jsonb(p), redis_ttl('medium')) AS cached,
       redis_cache_set('shop:7:products', '[6, 206, 406]', redis_ttl('medium')) AS list_cached
  FROM (SELECT id, title, price, shop_id, category_id FROM products WHERE id = 6) p;
BEGIN;
UPDATE products SET price = 9.99 WHERE id = 6;
SELECT kind, target FROM redis_pending_invalidations();
ROLLBACK;
SELECT redis_cache_get_json('product:6') ->> 'price' AS still_cached_after_rollback;
BEGIN;
UPDATE products SET price = 9.99 WHERE id = 6;
SELECT redis_cache_get('product:6') IS NOT NULL AS still_cached_before_commit;
COMMIT;
\echo '-- gone: the product, the shop''s list, and the best sellers cached with tag shop:7'
SELECT redis_cache_get('product:6') AS product_6, redis_cache_get('shop:7:products') AS shop_7_list,
       redis_cache_get('shop:7:best-sellers') AS tagged_shop_7;

\echo
\echo '=== 6. Change events, published at COMMIT (a rule of its own: the keys above stay)'
SELECT redis_watch('products', 'product', rule => 'events', columns => ARRAY['title', 'price'], channel => 'product');
BEGIN;
UPDATE products SET price = 12.50 WHERE id = 42;
SELECT pg_sleep(0.3);
\echo '-- before COMMIT the subscriber has nothing:'
\! awk '$0 == "pmessage" { n = 3; next } n > 0 && --n == 0 { print }' $SUB | grep . || echo '(nothing)'
COMMIT;
SELECT pg_sleep(0.3);
\echo '-- after COMMIT, what redis-cli SUBSCRIBE product:* received:'
\! awk '$0 == "pmessage" { n = 3; next } n > 0 && --n == 0 { print }' $SUB

\echo
\echo '=== 7. A lock held by another session is refused to this one'
\! psql -X -q -o /dev/null -c "SELECT redis_lock('inventory:42', '30 s')" -c "SELECT pg_sleep(2)" &
SELECT pg_sleep(0.5);
SELECT redis_try_lock('inventory:42') IS NULL AS refused_at_once;
\set ON_ERROR_STOP 0
\set VERBOSITY default
SELECT redis_lock('inventory:42', wait => '300 ms');
\set VERBOSITY terse
\set ON_ERROR_STOP 1
\echo '-- the other session ends; its lock goes with it, and this one gets it:'
SELECT pg_sleep(2);
SELECT redis_lock('inventory:42', wait => '5 s') IS NOT NULL AS acquired;
SELECT name, scope, fence, expires_in FROM redis_locks();

\echo
\echo '=== 8. Redis goes away: COMMIT still commits, and nothing it had to invalidate is lost'
SELECT redis_cache_set('product:8', '{"id": 8}'::jsonb) AS cached;
SET bmfredis.flush_timeout = '300ms';
SET bmfredis.command_timeout = '300ms';
\echo '$ (freezing Redis: SIGSTOP)'
\! $BMF_REDISCTL pause
BEGIN;
UPDATE products SET price = 8.88 WHERE id = 8;
COMMIT;
SELECT price FROM products WHERE id = 8;
SELECT database, state, retry_pending FROM redis_workers() WHERE database = current_database();
\echo '$ (Redis back: SIGCONT); the database''s bmfredis worker sends what waited'
\! $BMF_REDISCTL resume
SELECT pg_sleep(1.5);
\echo '$ redis-cli EXISTS bmf001:demo:product:8'
\! $REDIS EXISTS bmf001:demo:product:8
RESET bmfredis.flush_timeout;
RESET bmfredis.command_timeout;

\echo
\echo '=== 9. What it took: this session''s connection (the frozen Redis broke it; the next call opens'
\echo '    a new one) and a stream connection for large transactions, and the counters'
SELECT node, state, commands, reconnects FROM redis_connections();
SELECT name, value FROM redis_stats
 WHERE name IN ('cache_hits', 'cache_misses', 'invalidations_sent', 'invalidations_retried', 'locks_acquired');
