-- Invalidation follows the transaction: sent after COMMIT, never for an
-- aborted transaction, and ROLLBACK TO SAVEPOINT or a caught exception
-- drops exactly what was queued inside the subtransaction.
SET bmfredis.key_prefix = 'inv:';
CREATE FUNCTION pg_temp.fill(VARIADIC keys text[]) RETURNS boolean LANGUAGE sql
AS $$ SELECT redis_cache_mset(keys, array_fill('cached'::text, ARRAY[cardinality(keys)])) $$;
CREATE FUNCTION pg_temp.cached(VARIADIC keys text[]) RETURNS text LANGUAGE sql
AS $$ SELECT string_agg(k || '=' || coalesce(v, 'gone'), ' ' ORDER BY k)
      FROM unnest(keys, redis_cache_mget(keys)) AS t(k, v) $$;

-- outside a transaction block a statement is its own transaction
SELECT pg_temp.fill('a');
SELECT redis_invalidate('a');
SELECT pg_temp.cached('a');

-- COMMIT sends; nothing is sent before
SELECT pg_temp.fill('a', 'b');
BEGIN;
SELECT redis_invalidate('a');
SELECT redis_invalidate(ARRAY['b', 'b', 'a']);
SELECT * FROM redis_pending_invalidations();
SELECT pg_temp.cached('a', 'b') AS before_commit;
COMMIT;
SELECT pg_temp.cached('a', 'b') AS after_commit;

-- ROLLBACK sends nothing
SELECT pg_temp.fill('c');
BEGIN;
SELECT redis_invalidate('c');
ROLLBACK;
SELECT pg_temp.cached('c');

-- savepoints: a rolled-back subtransaction's invalidations are dropped,
-- a released one's are kept; a key queued before the savepoint survives
-- its rollback even if queued again inside it
SELECT pg_temp.fill('d', 'e', 'f', 'g');
BEGIN;
SELECT redis_invalidate('d');
SAVEPOINT s1;
SELECT redis_invalidate('e');
SELECT redis_invalidate('d');
SAVEPOINT s2;
SELECT redis_invalidate('g');
ROLLBACK TO s1;
SAVEPOINT s3;
SELECT redis_invalidate('f');
RELEASE s3;
SELECT kind, target FROM redis_pending_invalidations();
COMMIT;
SELECT pg_temp.cached('d', 'e', 'f', 'g');

-- a PL/pgSQL EXCEPTION block that catches an error drops what it queued
SELECT pg_temp.fill('h1', 'h2', 'h3');
DO $$
BEGIN
    PERFORM redis_invalidate('h1');
    BEGIN
        PERFORM redis_invalidate('h2');
        RAISE EXCEPTION 'caught';
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    PERFORM redis_invalidate('h3');
END
$$;
SELECT pg_temp.cached('h1', 'h2', 'h3');

-- an error that aborts the transaction drops everything
SELECT pg_temp.fill('i');
BEGIN;
SELECT redis_invalidate('i');
SELECT 1 / 0;
COMMIT;
SELECT pg_temp.cached('i');

-- immediate => true sends at once, whatever happens to the transaction
SELECT pg_temp.fill('j', 'k');
BEGIN;
SELECT redis_invalidate('j', immediate => true);
SELECT pg_temp.cached('j') AS inside;
SELECT count(*) AS queued FROM redis_pending_invalidations();
ROLLBACK;
SELECT pg_temp.cached('j');

-- bmfredis.invalidate_at sets the default: immediate, or both (at once
-- and again after commit, for readers that race the writer)
SET bmfredis.invalidate_at = 'immediate';
BEGIN;
SELECT redis_invalidate('k');
SELECT pg_temp.cached('k') AS inside, (SELECT count(*) FROM redis_pending_invalidations()) AS queued;
COMMIT;
SELECT pg_temp.fill('k');
SET bmfredis.invalidate_at = 'both';
BEGIN;
SELECT redis_invalidate('k');
SELECT pg_temp.cached('k') AS inside, (SELECT count(*) FROM redis_pending_invalidations()) AS queued;
SELECT pg_temp.fill('k');
COMMIT;
SELECT pg_temp.cached('k') AS after_commit;
SELECT redis_invalidate('k', immediate => false);
RESET bmfredis.invalidate_at;

-- PREPARE TRANSACTION with queued invalidations is refused
BEGIN;
SELECT redis_invalidate('l');
PREPARE TRANSACTION 'bmf_p1';
SELECT count(*) FROM pg_prepared_xacts;
-- with immediate invalidation it works
SELECT pg_temp.fill('l');
BEGIN;
SELECT redis_invalidate('l', immediate => true);
PREPARE TRANSACTION 'bmf_p2';
COMMIT PREPARED 'bmf_p2';
SELECT pg_temp.cached('l');

-- the key prefix is the one in effect when the invalidation was queued
SELECT pg_temp.fill('m');
BEGIN;
SELECT redis_invalidate('m');
SET LOCAL bmfredis.key_prefix = 'other:';
SELECT target FROM redis_pending_invalidations();
COMMIT;
SELECT pg_temp.cached('m');

-- bad input
SELECT redis_invalidate(NULL::text);
SELECT redis_invalidate('');
SELECT redis_invalidate(ARRAY['x', NULL]);
SELECT redis_invalidate(NULL::text[]);
SELECT redis_invalidate('{}'::text[]);
