-- Tags: a key set with tags is recorded in each tag's index, a sorted set
-- at <prefix>tag:<tag> scored by the key's expiry; invalidating a tag
-- removes its keys in bounded batches.  An index never outlives its keys.
SET bmfredis.key_prefix = 'tg:';

SELECT redis_cache_set('product:1', 'p1', '1 hour', ARRAY['products', 'shop:7']);
SELECT redis_cache_set('product:2', 'p2', '2 hours', ARRAY['products', 'shop:8']);
SELECT redis_cache_set('shop:7', 's7', NULL, ARRAY['shop:7']);
SELECT redis_cache_set('lonely', 'no tags');

-- the layout other clients see
SELECT redis_command('ZRANGE', 'tg:tag:products', '0', '-1');
SELECT redis_command('ZSCORE', 'tg:tag:shop:7', 'tg:shop:7') AS persistent_member;
SELECT redis_command('PTTL', 'tg:tag:shop:7') AS index_ttl_with_persistent_member;
SELECT redis_command('PTTL', 'tg:tag:products')::bigint BETWEEN 7100000 AND 7200000 AS index_expires_with_last_member;

-- invalidation after commit, not before, not on rollback
BEGIN;
SELECT redis_invalidate_tag('shop:7');
SELECT redis_cache_get('product:1') AS before_commit;
ROLLBACK;
SELECT redis_cache_get('product:1') AS after_rollback;
BEGIN;
SELECT redis_invalidate_tag('shop:7');
COMMIT;
SELECT redis_cache_mget(ARRAY['product:1', 'product:2', 'shop:7', 'lonely']);
SELECT redis_command('EXISTS', 'tg:tag:shop:7') AS index_gone;
SELECT redis_command('ZRANGE', 'tg:tag:products', '0', '-1') AS products_index_unchanged;

-- several tags at once, immediately
SELECT redis_cache_set('product:3', 'p3', '1 hour', ARRAY['shop:9']);
SELECT redis_invalidate_tag(ARRAY['products', 'shop:9'], immediate => true);
SELECT redis_cache_mget(ARRAY['product:2', 'product:3']);

-- no leak: members whose keys expired are pruned by the next write, and
-- the index expires with its last member
SELECT redis_cache_set('short:1', 'x', '100 ms', ARRAY['short']);
SELECT redis_cache_set('short:2', 'x', '100 ms', ARRAY['short']);
SELECT pg_sleep(0.25);
SELECT redis_cache_set('short:3', 'x', '1 hour', ARRAY['short']);
SELECT redis_command('ZRANGE', 'tg:tag:short', '0', '-1') AS only_live_members;
SELECT redis_cache_set('brief', 'x', '100 ms', ARRAY['brief']);
SELECT pg_sleep(0.25);
SELECT redis_command('EXISTS', 'tg:tag:brief') AS index_expired;

-- a tag with 100,000 keys is emptied without blocking Redis: no single
-- command takes 50 ms (SLOWLOG), and every key goes
SELECT redis_command(true, 'EVAL', 'for i = 1, 100000 do redis.call(''SET'', KEYS[1] .. i, ''v''); redis.call(''ZADD'', KEYS[2], ''+inf'', KEYS[1] .. i) end return 1',
                     '2', 'tg:big:', 'tg:tag:big');
SELECT redis_command(true, 'CONFIG', 'SET', 'slowlog-log-slower-than', '50000');
SELECT redis_command('SLOWLOG', 'RESET');
SELECT redis_invalidate_tag('big');
SELECT redis_command('SLOWLOG', 'LEN') AS slow_commands;
SELECT redis_command(true, 'EVAL', 'return #redis.call(''KEYS'', ARGV[1])', '0', 'tg:big:*') AS keys_left;
SELECT redis_command('EXISTS', 'tg:tag:big') AS index_left;
SELECT redis_command(true, 'CONFIG', 'SET', 'slowlog-log-slower-than', '10000');

-- bad input
SELECT redis_cache_set('k', 'v', NULL, ARRAY['ok', NULL]);
SELECT redis_cache_set('k', 'v', NULL, ARRAY['']);
SELECT redis_invalidate_tag(NULL::text);
SELECT redis_invalidate_tag('');
-- a tagged set is a write like any other: a missing tag list is no tags
SELECT redis_cache_set('k', 'v', NULL, NULL), redis_cache_set('k2', 'v', NULL, '{}');
SELECT redis_command('EXISTS', 'tg:tag:');
