-- Faults: Redis killed, frozen, slow, or dropping our connection.  Reads
-- degrade to a miss, writes report false, COMMIT is never affected, and
-- the next call after the backoff reconnects.
SET bmfredis.key_prefix = 'fault:';
-- round trips under faults (the near-cache's own are test/t/near.sh's)
SET bmfredis.near_cache = off;
SET bmfredis.retry_backoff_base = '200ms';
SET bmfredis.retry_backoff_max = '400ms';
SET bmfredis.connect_timeout = '500ms';
SELECT redis_cache_set('k', 'before');
\set VERBOSITY terse

-- Redis killed
\! $BMF_REDISCTL kill
SELECT redis_cache_get('k');
SELECT redis_cache_set('k', 'during');
SELECT redis_cache_get('k');
SELECT state, failures > 0 AS failing FROM redis_connections();
BEGIN;
CREATE TEMP TABLE t (x int);
INSERT INTO t VALUES (1);
SELECT redis_cache_get('k');
COMMIT;
SELECT count(*) FROM t;
SET bmfredis.on_error = 'ignore';
SELECT redis_cache_get('k') IS NULL AS miss, redis_cache_set('k', 'x') AS stored;
SET bmfredis.on_error = 'error';
SELECT redis_cache_get('k');
RESET bmfredis.on_error;
SELECT healthy, status LIKE 'could not connect to Redis%' AS says_why FROM redis_health();
\! $BMF_REDISCTL start
SELECT pg_sleep(0.5);
SELECT redis_cache_set('k', 'after'), redis_cache_get('k');
SELECT state, failures FROM redis_connections();

-- Redis frozen (SIGSTOP): a call returns within the command timeout
SET bmfredis.command_timeout = '300ms';
\! $BMF_REDISCTL pause
SELECT clock_timestamp() AS t0 \gset
SELECT redis_cache_get('k');
SELECT clock_timestamp() - :'t0' < interval '1.5 s' AS returned_in_time;
SELECT clock_timestamp() AS t0 \gset
SELECT redis_cache_get('k');
SELECT clock_timestamp() - :'t0' < interval '50 ms' AS failed_fast;
\! $BMF_REDISCTL resume
SELECT pg_sleep(0.5);
SELECT redis_cache_get('k');

-- a command slower than the timeout: its late reply is never read as the
-- answer to the next command, which gets its own value
SELECT redis_cache_set('other', 'own value');
SELECT redis_command(true, 'DEBUG', 'SLEEP', '0.6');
SELECT pg_sleep(0.8);
SELECT redis_cache_get('other');
SELECT redis_cache_get('k');

-- CLIENT KILL of our connection: idempotent commands reconnect
-- transparently; INCR notices the dead connection before sending
SELECT reconnects AS before FROM redis_connections() \gset
\! $BMF_REDISCTL cli CLIENT KILL TYPE normal SKIPME yes >/dev/null
SELECT redis_cache_get('other');
\! $BMF_REDISCTL cli CLIENT KILL TYPE normal SKIPME yes >/dev/null
SELECT redis_cache_incr('n');
SELECT reconnects - :before AS reconnected FROM redis_connections();

-- READONLY (a node demoted to replica) counts as the node being unavailable
\! $BMF_REDISCTL cli REPLICAOF 127.0.0.1 1 >/dev/null
SELECT redis_cache_set('k', 'written to a replica?');
SELECT state, failures FROM redis_connections();
\! $BMF_REDISCTL cli REPLICAOF NO ONE >/dev/null
SELECT pg_sleep(0.5);
SELECT redis_cache_set('k', 'back on a master'), redis_cache_get('k');

-- so does NOREPLICAS (min-replicas-to-write unmet): a committed
-- invalidation goes to the retry queue instead of counting as done
\! $BMF_REDISCTL cli CONFIG SET min-replicas-to-write 1 >/dev/null
SELECT redis_cache_set('k', 'needs a replica');
SELECT pg_sleep(0.5);
BEGIN;
SELECT redis_invalidate('k');
COMMIT;
\! $BMF_REDISCTL cli CONFIG SET min-replicas-to-write 0 >/dev/null
SELECT pg_sleep(0.5);
SELECT redis_cache_get('k') IS NULL AS gone;
RESET bmfredis.command_timeout;
