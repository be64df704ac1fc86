-- the near-cache in one session: kept values, own writes, MGET, eviction
-- by size and lifetime (test/t/near.sh drives other clients and faults)
SET bmfredis.key_prefix = 'nreg:';
SELECT redis_command(true, 'FLUSHDB');
SET bmfredis.near_cache = on;
SELECT redis_cache_set('a', 'one'), redis_cache_set('b', 'two');
SELECT redis_cache_get('a'), redis_cache_get('a'), redis_cache_get('missing') IS NULL AS missing;
SELECT redis_cache_set('j', '{"x": 1}'::jsonb);
SELECT redis_cache_get_json('j'), redis_cache_get_json('j') ->> 'x' AS x;
SELECT redis_cache_get_bytea('b');
SELECT redis_cache_mget(ARRAY['a', 'b', 'missing', 'a']);
SELECT redis_cache_mget(ARRAY['a', 'b', 'missing', 'a']);
-- own writes are seen at once
SELECT redis_cache_set('a', 'uno');
SELECT redis_cache_get('a');
SELECT redis_cache_del('a');
SELECT redis_cache_get('a') IS NULL AS deleted;
SELECT redis_cache_incr('n'), redis_cache_get('n'), redis_cache_incr('n'), redis_cache_get('n');
-- a large value, and many values past the near-cache's size
SET bmfredis.near_cache_size = '64kB';
SELECT length(redis_cache_get('big')) FROM (SELECT redis_cache_set('big', repeat('x', 100000))) s;
SELECT count(redis_cache_set('k' || g, repeat('v', 1000))) FROM generate_series(1, 300) g;
SELECT count(redis_cache_get('k' || g)) FROM generate_series(1, 300) g;
SELECT count(redis_cache_get('k' || g)) FROM generate_series(1, 300) g;
SELECT value > 0 AS hits FROM redis_stats WHERE name = 'near_cache_hits';
SELECT value > 0 AS evicted FROM redis_stats WHERE name = 'near_cache_evictions_memory';
SELECT value <= 65536 AS within_budget FROM redis_stats WHERE name = 'near_cache_bytes';
-- a short lifetime
SET bmfredis.near_cache_max_age = '50ms';
SELECT redis_cache_get('b');
SELECT pg_sleep(0.1);
SELECT redis_cache_get('b');
SELECT value > 0 AS lifetime_evictions FROM redis_stats WHERE name = 'near_cache_evictions_lifetime';
-- keys outside the prefixes go the ordinary way
SET bmfredis.near_cache_prefixes = 'k1, k2';
SELECT redis_cache_get('b'), length(redis_cache_get('k1')) AS k1;
SELECT count(*) AS tracking FROM redis_connections() WHERE node LIKE '% (tracking)';
SELECT redis_disconnect() >= 2 AS closed;
RESET bmfredis.near_cache_prefixes;
RESET bmfredis.near_cache_max_age;
RESET bmfredis.near_cache_size;
SELECT redis_cache_get('b');
SELECT redis_command(true, 'FLUSHDB');
