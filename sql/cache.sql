-- Cache round trips: text, jsonb, bytea, binary-unsafe bytes, big values.
-- Values are stored as plain bytes at <prefix><key>, so redis-cli (another
-- client of the same Redis) reads what SQL wrote and the other way round.
SELECT redis_command(true, 'FLUSHDB');
SET bmfredis.key_prefix = 'rt:';

SELECT redis_cache_set('greeting', 'hello world');
SELECT redis_cache_get('greeting');
SELECT redis_cache_get('missing') IS NULL AS miss;
\! $BMF_REDISCTL cli GET rt:greeting
\! $BMF_REDISCTL cli SET rt:from_node 'set by another client' >/dev/null
SELECT redis_cache_get('from_node');

-- jsonb is stored as its JSON text
SELECT redis_cache_set('product:1', '{"id": 1, "name": "Course", "price": 19.99}'::jsonb);
SELECT redis_cache_get_json('product:1');
SELECT redis_cache_get_json('product:1') ->> 'name' AS name;
\! $BMF_REDISCTL cli GET rt:product:1
\! $BMF_REDISCTL cli SET rt:from_node_json '{"shop":"s-9","tags":["a","b"]}' >/dev/null
SELECT redis_cache_get_json('from_node_json') -> 'tags' AS tags;

-- bytea is stored raw, NUL bytes included
SELECT redis_cache_set('bin', '\x00010203ff00'::bytea);
SELECT redis_cache_get_bytea('bin');
\! $BMF_REDISCTL cli STRLEN rt:bin

-- CR, LF and text that looks like RESP are only data
SELECT redis_cache_set('crlf', E'line1\r\nline2\r\n*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\ny\r\n');
SELECT redis_cache_get('crlf') = E'line1\r\nline2\r\n*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\ny\r\n' AS same;
SELECT redis_cache_exists('x') AS injected;
SELECT redis_cache_set(E'key with spaces\r\nand CRLF', 'v');
SELECT redis_cache_get(E'key with spaces\r\nand CRLF');
SELECT redis_cache_set('uni', 'ünïcødé ✓ 日本');
SELECT redis_cache_get('uni');

-- 10 MB values, text and binary
SELECT redis_cache_set('big', repeat('x', 10 * 1024 * 1024));
SELECT length(redis_cache_get('big')) AS len, md5(redis_cache_get('big')) = md5(repeat('x', 10 * 1024 * 1024)) AS same;
SELECT redis_cache_set('bigbin', decode(repeat('00ff', 5 * 1024 * 1024), 'hex'));
SELECT length(redis_cache_get_bytea('bigbin')) AS len;
\! $BMF_REDISCTL cli STRLEN rt:bigbin

-- many keys in one round trip
SELECT redis_cache_mset(ARRAY['a', 'b', 'c'], ARRAY['1', '2', '3']);
SELECT redis_cache_mget(ARRAY['a', 'b', 'missing', 'c']);
SELECT redis_cache_mget('{}'::text[]);
SELECT redis_cache_mset(ARRAY['t1', 't2'], ARRAY['x', 'y'], '1 hour');
SELECT redis_cache_ttl('t1') > '59 min' AND redis_cache_ttl('t2') > '59 min' AS both_expire;
SELECT redis_cache_mset('{}'::text[], '{}'::text[]);

-- delete (UNLINK) returns how many keys existed
SELECT redis_cache_del('a');
SELECT redis_cache_del('a');
SELECT redis_cache_del(ARRAY['b', 'c', 'zzz']);
SELECT redis_cache_exists('b') AS b_exists, redis_cache_exists('greeting') AS greeting_exists;

-- counters
SELECT redis_cache_incr('counter');
SELECT redis_cache_incr('counter', 41);
SELECT redis_cache_incr('counter', -2);
SELECT redis_cache_get('counter');

-- all of it went over one pooled connection (one per master in a cluster)
SELECT count(*) = CASE WHEN current_setting('bmfredis.cluster')::bool THEN 3 ELSE 1 END
       AS one_connection_per_node, sum(reconnects) AS reconnects
FROM redis_connections() WHERE node NOT LIKE '% (tracking)';
