-- Read-through caching: redis_cached() and redis_cache_key().  cq_tick()
-- counts how often a query really ran.
SET bmfredis.key_prefix = 'cq:';
CREATE SCHEMA cached_test;
SET search_path = cached_test, public;
CREATE SEQUENCE cq_calls;
CREATE FUNCTION cq_tick() RETURNS bigint LANGUAGE sql AS $$SELECT nextval('cached_test.cq_calls')$$;
CREATE FUNCTION cq_runs() RETURNS bigint LANGUAGE sql AS $$SELECT last_value - 1 + (CASE WHEN is_called THEN 1 ELSE 0 END) FROM cached_test.cq_calls$$;
CREATE TABLE shops (id int PRIMARY KEY, name text);
CREATE TABLE products (id int PRIMARY KEY, shop_id int REFERENCES shops, title text, price numeric, meta jsonb);
INSERT INTO shops VALUES (1, 'Ana''s presets'), (2, 'Bo''s beats');
INSERT INTO products VALUES (1, 1, 'Film presets', 19.99, '{"tags": ["film"]}'),
                            (2, 1, 'Portrait presets', 9.99, NULL),
                            (3, 2, 'Drum kit', 29.00, '{}');
SELECT redis_watch('products', 'cq_product', ARRAY['product:{id}'], ARRAY['shop:{shop_id}']);

-- redis_cache_key: parts joined with ':', each part's separators and glob
-- characters percent-encoded; plain ids come out as templates render them
SELECT redis_cache_key('product', '42');
SELECT redis_cache_key('product', 42::text) = 'product:42' AS matches_template;
SELECT redis_cache_key('search', 'red shoes', 'page:2', '50%', 'a*b?[c]\d');
SELECT redis_cache_key('one');
SELECT redis_cache_key('user', '');
SELECT redis_cache_key(VARIADIC ARRAY['a', 'b']);
SELECT redis_cache_key('a', NULL);
SELECT redis_cache_key(VARIADIC ARRAY[]::text[]);
SELECT redis_cache_key(NULL);

-- a miss runs the query and stores the result; a hit does not run it
SELECT redis_cached('product:1:title', '10 minutes',
       'SELECT title FROM cached_test.products WHERE id = 1 AND cached_test.cq_tick() > 0');
SELECT cq_runs() AS runs;
SELECT redis_cached('product:1:title', '10 minutes',
       'SELECT title FROM cached_test.products WHERE id = 1 AND cached_test.cq_tick() > 0');
SELECT cq_runs() AS runs_after_hit;
-- what other clients see: plain JSON under the key, with the TTL
SELECT redis_command('GET', 'cq:product:1:title');
SELECT redis_command('PTTL', 'cq:product:1:title')::bigint BETWEEN 590000 AND 600000 AS ttl_set;

-- shapes: one column and at most one row is that value; anything else
-- is an array of row objects
SELECT redis_cached('s:number', '1 minute', 'SELECT count(*) FROM cached_test.products');
SELECT redis_cached('s:number', '1 minute', 'SELECT count(*) FROM cached_test.products')::bigint + 1 AS cast_to_bigint;
SELECT redis_cached('s:text', '1 minute', 'SELECT name FROM cached_test.shops WHERE id = 2') #>> '{}' AS as_text;
SELECT redis_cached('s:none', '1 minute', 'SELECT name FROM cached_test.shops WHERE id = 99');
SELECT redis_cached('s:null', '1 minute', 'SELECT NULL::text');
SELECT redis_cached('s:json', '1 minute', 'SELECT meta FROM cached_test.products WHERE id = 1');
SELECT redis_cached('s:rows', '1 minute', 'SELECT id, title, price FROM cached_test.products ORDER BY id');
SELECT redis_cached('s:one_row', '1 minute', 'SELECT id, title FROM cached_test.products WHERE id = 3');
SELECT redis_cached('s:col_rows', '1 minute', 'SELECT id FROM cached_test.products ORDER BY id');
SELECT redis_cached('s:empty', '1 minute', 'SELECT id, title FROM cached_test.products WHERE false');
SELECT redis_cached('s:join', '1 minute',
       'SELECT s.name AS shop, count(*) AS products, sum(p.price) AS total
          FROM cached_test.products p JOIN cached_test.shops s ON s.id = p.shop_id
         GROUP BY s.name ORDER BY s.name');
SELECT jsonb_array_length(redis_cached('s:join', '1 minute', 'SELECT 1')) AS cached_join_rows;
SELECT redis_cached('s:trailing', '1 minute', 'SELECT 1 AS one;  ');
SELECT redis_cached('s:values', '1 minute', 'VALUES (1, ''a''), (2, ''b'')');

-- tags: the key is entered in each tag's index; invalidating a tag clears it
SELECT redis_cached('shop:1:products', '1 hour',
       'SELECT id, title FROM cached_test.products WHERE shop_id = 1 AND cached_test.cq_tick() > 0 ORDER BY id',
       ARRAY['shop:1']);
SELECT redis_command('ZRANGE', 'cq:tag:shop:1', '0', '-1') AS tag_index;
SELECT redis_invalidate_tag('shop:1');
SELECT redis_command('EXISTS', 'cq:shop:1:products') AS after_tag_invalidation;

-- a watched table's change clears the cached query at COMMIT
SELECT cq_runs() AS runs_before;
SELECT redis_cached('product:2', '1 hour', 'SELECT title FROM cached_test.products WHERE id = 2 AND cached_test.cq_tick() > 0');
UPDATE products SET title = 'Portrait presets II' WHERE id = 2;
SELECT redis_cached('product:2', '1 hour', 'SELECT title FROM cached_test.products WHERE id = 2 AND cached_test.cq_tick() > 0');
SELECT cq_runs() AS runs_after;

-- a transaction that wrote to a watched table neither reads nor writes the
-- cache: it sees its own change, and nobody else ever does through Redis
BEGIN;
UPDATE products SET title = 'Uncommitted title' WHERE id = 2;
SELECT redis_cached('product:2', '1 hour', 'SELECT title FROM cached_test.products WHERE id = 2') AS inside;
SELECT redis_command('GET', 'cq:product:2') AS redis_still_has;
ROLLBACK;
SELECT redis_cached('product:2', '1 hour', 'SELECT title FROM cached_test.products WHERE id = 2') AS after_rollback;
SELECT value FROM redis_stats WHERE name = 'cached_bypassed';

-- REPEATABLE READ: the snapshot predates any lease, so nothing is stored
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT redis_cached('rr:new', '1 hour', 'SELECT 7');
SELECT redis_command('EXISTS', 'cq:rr:new') AS stored_under_rr;
SELECT redis_cached('product:2', '1 hour', 'SELECT ''not run''') AS hits_still_served;
COMMIT;

-- the guard: an invalidation that lands while the query runs (here, the
-- query itself invalidates the key) makes the store refused
SELECT redis_cached('guarded', '1 hour',
       'SELECT x FROM (SELECT 42 AS x, redis_invalidate(''guarded'', true)) s');
SELECT redis_command('EXISTS', 'cq:guarded') AS stale_value_stored;

-- a failing query gives its lease back at once: the next call computes
-- without waiting, and nothing is left under the key
SELECT redis_cached('bad', '1 hour', 'SELECT 1 / 0');
SELECT redis_command('EXISTS', 'cq:bad') AS placeholder_left;
SET bmfredis.cached_wait = '30s';
SELECT redis_cached('bad', '1 hour', 'SELECT 2') AS next_call_computes;
RESET bmfredis.cached_wait;

-- another session's placeholder: wait for its value, then compute alone
SELECT redis_command('SET', 'cq:busy', '', 'PX', '60000');
SET bmfredis.cached_wait = '50ms';
SELECT redis_cached('busy', '1 hour', 'SELECT ''computed here''');
SELECT redis_command('GET', 'cq:busy') AS placeholder_untouched;
RESET bmfredis.cached_wait;

-- a value that is not JSON (another writer): a WARNING, the query's answer
SELECT redis_cache_set('notjson', 'plain text');
SELECT redis_cached('notjson', '1 hour', 'SELECT 1');

-- bad input
SELECT redis_cached(NULL, '1 hour', 'SELECT 1');
SELECT redis_cached('', '1 hour', 'SELECT 1');
SELECT redis_cached('k', NULL, 'SELECT 1');
SELECT redis_cached('k', '-1 hour', 'SELECT 1');
SELECT redis_cached('k', '1 hour', NULL);
SELECT redis_cached('k', '1 hour', 'SELECT 1', ARRAY[NULL]);
SELECT redis_cached('k', '1 hour', 'UPDATE cached_test.products SET price = 0');
SELECT redis_cached('k', '1 hour', 'WITH d AS (DELETE FROM cached_test.products RETURNING 1) SELECT * FROM d');
SELECT redis_cached('k', '1 hour', 'SELECT 1; SELECT 2');
SELECT redis_cached('k', '1 hour', 'SELEC 1');
SELECT redis_cached('k', '1 hour', 'SELECT 1 INTO cached_test.t_into');
SELECT redis_cached('k', '1 hour', 'CREATE TABLE cached_test.t2 (a int)');
SELECT count(*) AS products_untouched FROM products WHERE price > 0;

-- the caller's privileges: a role that may not read the table gets the
-- usual error, and nothing is cached
CREATE ROLE bmf_cached_user;
SELECT redis_grant('bmf_cached_user', 'read', 'write');
GRANT USAGE ON SCHEMA cached_test TO bmf_cached_user;
SET ROLE bmf_cached_user;
SELECT redis_cached('secret', '1 hour', 'SELECT title FROM cached_test.products WHERE id = 1');
RESET ROLE;
SELECT redis_command('EXISTS', 'cq:secret') AS cached_for_unprivileged;
REVOKE USAGE ON SCHEMA cached_test FROM bmf_cached_user;
SELECT redis_revoke('bmf_cached_user', 'read', 'write');
DROP ROLE bmf_cached_user;

-- Redis away: the query's answer, a WARNING, never an ERROR
\! $BMF_REDISCTL stop
\set VERBOSITY terse
SET bmfredis.near_cache = off;	-- the ordinary read's own message
SET bmfredis.on_error = 'error';
SELECT redis_cached('product:1:title', '1 hour', 'SELECT ''from the database''');
SET bmfredis.on_error = 'ignore';
SELECT redis_cached('product:1:title', '1 hour', 'SELECT ''silently''');
RESET bmfredis.on_error;
RESET bmfredis.near_cache;
\set VERBOSITY default
\! $BMF_REDISCTL start
SET bmfredis.retry_backoff_base = 1;
SET bmfredis.retry_backoff_max = 1;
-- the window opened by the failure above (at most retry_backoff_base, 100 ms) must be over
SELECT pg_sleep(0.2);
SELECT redis_cached('back', '1 hour', 'SELECT ''stored again''');
SELECT redis_command('GET', 'cq:back');

-- early recomputation (XFetch): with a large beta and a slow query, a hit
-- close to expiry recomputes; the value is never missing meanwhile
SET bmfredis.cached_early_beta = 100;
SELECT redis_cached('early', '2 seconds', 'SELECT cached_test.cq_tick() FROM pg_sleep(0.2)') IS NOT NULL AS first;
SELECT redis_stats_reset();
SELECT bool_and(redis_cached('early', '2 seconds', 'SELECT cached_test.cq_tick() FROM pg_sleep(0.2)') IS NOT NULL) AS always_a_value
  FROM generate_series(1, 10);
SELECT value > 0 AS recomputed_early FROM redis_stats WHERE name = 'cached_early_recomputes';
SELECT value AS misses FROM redis_stats WHERE name = 'cache_misses';
RESET bmfredis.cached_early_beta;

SELECT redis_unwatch('products');
DROP SCHEMA cached_test CASCADE;
