-- Bulk changes: one round trip per few hundred keys at COMMIT, and a
-- queue that stays bounded, collapsing to key patterns past
-- bmfredis.max_pending_keys.
SET bmfredis.key_prefix = 'bulk:';
CREATE TABLE bulk_products (id int PRIMARY KEY, shop_id int, price numeric);
INSERT INTO bulk_products SELECT i, i % 10, i FROM generate_series(1, 20000) i;
SELECT redis_watch('bulk_products', 'bulk_product', ARRAY['product:{id}', 'shop:{shop_id}:products'], ARRAY['products']);
SELECT redis_cache_mset(ARRAY['product:1', 'product:20000', 'shop:3:products'], ARRAY['a', 'b', 'c']);

BEGIN;
UPDATE bulk_products SET price = price + 1;
SELECT kind, count(*) FROM redis_pending_invalidations() GROUP BY kind ORDER BY kind;
SELECT redis_command(true, 'CONFIG', 'RESETSTAT');
COMMIT;
SELECT redis_cache_mget(ARRAY['product:1', 'product:20000', 'shop:3:products']);
-- 20,010 keys went in UNLINKs of bmfredis.unlink_batch (500) keys each
SELECT split_part(value, ',', 1) AS unlinks FROM redis_info('commandstats') WHERE key = 'cmdstat_unlink';

-- A transaction of many keys streams them: UNLINKs inside MULTI on a
-- second connection while it runs; nothing runs before COMMIT sends EXEC.
SELECT value AS streams_before FROM redis_stats_values() WHERE name = 'streams' \gset
SELECT redis_cache_mset(ARRAY['product:1', 'product:20000'], ARRAY['a', 'b']);
BEGIN;
UPDATE bulk_products SET price = price + 1;
SELECT state FROM redis_connections() WHERE node LIKE '% (stream)';
SELECT redis_cache_mget(ARRAY['product:1', 'product:20000']) AS before_commit;
COMMIT;
SELECT redis_cache_mget(ARRAY['product:1', 'product:20000']) AS after_commit;
SELECT state FROM redis_connections() WHERE node LIKE '% (stream)';
SELECT value - :streams_before AS streams FROM redis_stats_values() WHERE name = 'streams';
-- aborted: the connection is closed and Redis drops the MULTI
SELECT redis_cache_mset(ARRAY['product:1', 'product:20000'], ARRAY['a', 'b']);
BEGIN;
UPDATE bulk_products SET price = price + 1;
ROLLBACK;
SELECT redis_cache_mget(ARRAY['product:1', 'product:20000']) AS after_rollback;
SELECT state FROM redis_connections() WHERE node LIKE '% (stream)';
-- a subtransaction's keys do not stream: they may still be rolled back
BEGIN;
SAVEPOINT a;
UPDATE bulk_products SET price = price + 1;
SELECT count(*) AS streaming FROM redis_connections() WHERE state = 'streaming';
ROLLBACK TO a;
UPDATE bulk_products SET price = price + 1 WHERE id = 20000;
COMMIT;
SELECT redis_cache_mget(ARRAY['product:1', 'product:20000']) AS after_savepoint;
-- ... until they are the top level's: released, the next key streams them
SELECT redis_cache_mset(ARRAY['product:1', 'product:20000'], ARRAY['a', 'b']);
BEGIN;
SAVEPOINT a;
UPDATE bulk_products SET price = price + 1 WHERE id < 20000;
RELEASE a;
UPDATE bulk_products SET price = price + 1 WHERE id = 20000;
SELECT state FROM redis_connections() WHERE node LIKE '% (stream)';
COMMIT;
SELECT redis_cache_mget(ARRAY['product:1', 'product:20000']) AS after_release;
-- redis_disconnect() in the middle closes the stream too: the next write
-- finds it gone, and COMMIT sends every key the ordinary way
SELECT redis_cache_mset(ARRAY['product:1', 'product:20000'], ARRAY['a', 'b']);
BEGIN;
UPDATE bulk_products SET price = price + 1 WHERE id <= 10000;
SELECT redis_disconnect() >= 2 AS disconnected;
UPDATE bulk_products SET price = price + 1 WHERE id > 10000;
SELECT count(*) AS streaming FROM redis_connections() WHERE state = 'streaming';
COMMIT;
SELECT redis_cache_mget(ARRAY['product:1', 'product:20000']) AS after_disconnect;
-- bmfredis.db changed before COMMIT: COMMIT sends where the settings say
-- then, as without a stream; the stream's MULTI, for database 0, is dropped
SELECT redis_cache_mset(ARRAY['product:1', 'product:20000'], ARRAY['a', 'b']);
BEGIN;
UPDATE bulk_products SET price = price + 1;
SET LOCAL bmfredis.db = 1;
COMMIT;
SELECT redis_cache_mget(ARRAY['product:1', 'product:20000']) AS db0_untouched;
-- the stream's connection killed mid-transaction: COMMIT sends the keys
-- as it would have without a stream
SELECT value AS failures_before FROM redis_stats_values() WHERE name = 'stream_failures' \gset
SELECT redis_cache_mset(ARRAY['product:1', 'product:20000'], ARRAY['a', 'b']);
BEGIN;
UPDATE bulk_products SET price = price + 1;
SELECT redis_command(true, 'CLIENT', 'KILL', 'ID', (regexp_match(l, '^id=(\d+)'))[1]) AS killed
  FROM regexp_split_to_table(redis_command('CLIENT', 'LIST'), E'\n') l WHERE l ~ ' multi=[0-9]';
COMMIT;
SELECT redis_cache_mget(ARRAY['product:1', 'product:20000']) AS after_kill;
SELECT value - :failures_before AS stream_failures FROM redis_stats_values() WHERE name = 'stream_failures';
-- and bmfredis.stream_invalidations = off sends everything at COMMIT
SET bmfredis.stream_invalidations = off;
SELECT redis_cache_mset(ARRAY['product:1', 'product:20000'], ARRAY['a', 'b']);
BEGIN;
UPDATE bulk_products SET price = price + 1;
SELECT count(*) AS streaming FROM redis_connections() WHERE state = 'streaming';
COMMIT;
SELECT redis_cache_mget(ARRAY['product:1', 'product:20000']) AS without_stream;
RESET bmfredis.stream_invalidations;

-- past the limit the queue collapses to the templates' patterns
SET bmfredis.max_pending_keys = 1000;
SELECT redis_cache_mset(ARRAY['product:1', 'shop:3:products', 'unrelated'], ARRAY['a', 'c', 'd']);
BEGIN;
UPDATE bulk_products SET price = price + 1 WHERE id <= 5000;
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
COMMIT;
SELECT redis_cache_mget(ARRAY['product:1', 'shop:3:products', 'unrelated']);
-- keys queued by hand have no pattern: past the limit, the namespace goes
BEGIN;
SELECT redis_invalidate(array_agg('k' || i)) FROM generate_series(1, 1500) i;
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
ROLLBACK;
-- a collapse is sticky: rolling back a savepoint keeps the patterns
BEGIN;
SAVEPOINT a;
UPDATE bulk_products SET price = price + 1 WHERE id <= 2000;
ROLLBACK TO a;
SELECT kind, target FROM redis_pending_invalidations() ORDER BY kind, target;
ROLLBACK;
RESET bmfredis.max_pending_keys;

-- a loop that queues and rolls back does not grow the queue
BEGIN;
DO $$
BEGIN
    FOR i IN 1 .. 2000 LOOP
        BEGIN
            PERFORM redis_invalidate('loop:' || i);
            RAISE EXCEPTION 'undo';
        EXCEPTION WHEN OTHERS THEN NULL;
        END;
    END LOOP;
END
$$;
SELECT count(*) FROM redis_pending_invalidations();
ROLLBACK;
SELECT redis_unwatch('bulk_products');
DROP TABLE bulk_products;
