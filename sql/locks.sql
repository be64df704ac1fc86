-- Distributed locks: PostgreSQL's lock vocabulary over Redis.  Contention
-- between sessions is in the isolation specs and the locks shell test.
SET bmfredis.key_prefix = 'lk:';
\set VERBOSITY terse

-- session locks: acquire, see, extend, release
SELECT length(redis_lock('inventory:update', '30 s', '1 s')) AS token_length;
SELECT name, kind, scope, fence > 0 AS fenced, expires_in BETWEEN '29 s' AND '30 s' AS ttl_ok FROM redis_locks();
SELECT redis_command('GET', 'lk:lock:{inventory:update}') = (SELECT token FROM redis_locks()) AS stored_as_token;
SELECT redis_lock_extend('inventory:update', NULL, '1 minute');
SELECT expires_in > '59 s' AS extended FROM redis_locks();
SELECT redis_lock('inventory:update') = (SELECT token FROM redis_locks()) AS reentrant;
SELECT redis_unlock('inventory:update');
SELECT count(*) FROM redis_locks();
SELECT redis_command('EXISTS', 'lk:lock:{inventory:update}') AS released;

-- held elsewhere: try gives NULL, wait gives 55P03; a wrong token releases nothing
SELECT redis_command('SET', 'lk:lock:{busy}', 'someone-else', 'PX', '60000');
SELECT redis_try_lock('busy') IS NULL AS not_acquired;
SELECT redis_lock('busy', '30 s', '200 ms');
SELECT redis_unlock('busy', 'not-the-token');
SELECT redis_lock_extend('busy', 'not-the-token', '1 s');
SELECT redis_command('GET', 'lk:lock:{busy}') AS untouched;
SELECT redis_unlock('busy');

-- fencing numbers only ever increase for a name
SELECT fence AS f1 FROM redis_lock_fenced('stock:42') \gset
SELECT redis_unlock('stock:42');
SELECT fence AS f2 FROM redis_lock_fenced('stock:42') \gset
SELECT redis_unlock('stock:42');
SELECT :f2 > :f1 AS increases;
-- even when Redis loses the counter (a restart without persistence)
SELECT redis_command('DEL', 'lk:lock:{stock:42}:fence');
SELECT fence > :f2 AS still_increases FROM redis_lock_fenced('stock:42');
SELECT redis_unlock('stock:42');

-- a lock held past its TTL is lost: unlock and extend say so, and never
-- touch the new owner's key
SELECT redis_lock('short', '100 ms') IS NOT NULL AS locked;
SELECT pg_sleep(0.2);
SELECT redis_command('SET', 'lk:lock:{short}', 'new-owner', 'PX', '60000');
SELECT redis_unlock('short');
SELECT redis_command('GET', 'lk:lock:{short}') AS new_owner_keeps_it;
SELECT count(*) FROM redis_locks();

-- transaction locks: released at COMMIT and at ROLLBACK
BEGIN;
SELECT redis_xact_lock('tx') IS NOT NULL AS locked;
SELECT scope FROM redis_locks();
COMMIT;
SELECT redis_command('EXISTS', 'lk:lock:{tx}') AS after_commit, count(*) AS held FROM redis_locks();
BEGIN;
SELECT redis_try_xact_lock('tx') IS NOT NULL AS locked;
ROLLBACK;
SELECT redis_command('EXISTS', 'lk:lock:{tx}') AS after_rollback;
-- ... and at the abort of the subtransaction that took them
BEGIN;
SAVEPOINT s;
SELECT redis_xact_lock('sub') IS NOT NULL AS locked;
ROLLBACK TO s;
SELECT redis_command('EXISTS', 'lk:lock:{sub}') AS after_rollback_to;
SAVEPOINT t;
SELECT redis_xact_lock('sub2') IS NOT NULL AS locked;
RELEASE t;
SELECT redis_command('EXISTS', 'lk:lock:{sub2}') AS kept_after_release;
COMMIT;
SELECT redis_command('EXISTS', 'lk:lock:{sub2}') AS released_at_commit;
-- PREPARE TRANSACTION with a transaction lock is refused
BEGIN;
SELECT redis_xact_lock('prep') IS NOT NULL AS locked;
PREPARE TRANSACTION 'bmf_lock';
SELECT redis_command('EXISTS', 'lk:lock:{prep}') AS released_by_the_abort;

-- redis_with_lock: the statement runs under the lock, which goes however it ends
CREATE TABLE stock (id int PRIMARY KEY, qty int);
INSERT INTO stock VALUES (42, 10);
SELECT redis_with_lock('stock:42', '30 s', '1 s', 'UPDATE stock SET qty = qty - 1 WHERE id = 42');
SELECT qty FROM stock;
SELECT redis_command('EXISTS', 'lk:lock:{stock:42}') AS released;
SELECT redis_with_lock('stock:42', '30 s', '1 s', 'UPDATE stock SET qty = qty / 0');
SELECT redis_command('EXISTS', 'lk:lock:{stock:42}') AS released_after_error;
DO $$
BEGIN
    PERFORM redis_with_lock('stock:42', '30 s', '1 s', 'SELECT 1 / 0');
EXCEPTION WHEN division_by_zero THEN
    RAISE NOTICE 'caught; lock held: %', redis_command('EXISTS', 'lk:lock:{stock:42}');
END $$;

-- semaphores: max holders, first come first served, expiry
SELECT redis_semaphore_acquire('downloads', 2) AS p1 \gset
SELECT redis_semaphore_acquire('downloads', 2) AS p2 \gset
SELECT redis_semaphore_try_acquire('downloads', 2) IS NULL AS third_refused;
SELECT redis_semaphore_acquire('downloads', 2, '30 s', '200 ms');
SELECT redis_command('ZCARD', 'lk:sem:{downloads}') AS holders,
       redis_command('ZCARD', 'lk:sem:{downloads}:queue') AS waiters_left;
SELECT kind, expires_in BETWEEN '29 s' AND '30 s' AS ttl_ok FROM redis_locks() WHERE kind = 'semaphore';
SELECT redis_semaphore_refresh('downloads', :'p1', '1 minute');
SELECT redis_semaphore_release('downloads', :'p1');
SELECT redis_semaphore_try_acquire('downloads', 2) IS NOT NULL AS now_free;
SELECT redis_semaphore_release('downloads', 'not-a-permit');
SELECT redis_semaphore_try_acquire('expiring', 1, '100 ms') AS e \gset
SELECT pg_sleep(0.2);
SELECT redis_semaphore_try_acquire('expiring', 1) IS NOT NULL AS reclaimed_after_ttl;
SELECT redis_semaphore_refresh('expiring', :'e');
BEGIN;
SELECT redis_semaphore_xact_acquire('txsem', 1) IS NOT NULL AS permit;
SELECT redis_semaphore_try_xact_acquire('txsem', 1) IS NOT NULL AS second_in_same_session;
COMMIT;
SELECT redis_command('ZCARD', 'lk:sem:{txsem}') AS after_commit;

-- locks never degrade: Redis unreachable is an ERROR, whatever on_error says
SET bmfredis.on_error = 'ignore';
SET bmfredis.port = 1;
SET bmfredis.sentinels = '127.0.0.1:1';
SET bmfredis.cluster_nodes = '127.0.0.1:1';
SELECT redis_lock('x');
SELECT redis_try_lock('x');
RESET bmfredis.port;
RESET bmfredis.sentinels;
RESET bmfredis.cluster_nodes;
RESET bmfredis.on_error;
SELECT pg_sleep(0.3);

-- bad input (with the hints that say what to do)
SELECT redis_lock(NULL);
SELECT redis_lock('');
\set VERBOSITY default
SELECT redis_lock('x', '0 s');
SELECT redis_lock('x', '1 s', '-1 s');
SELECT redis_semaphore_acquire('s', 0);
SELECT redis_semaphore_acquire('s', NULL);
\set VERBOSITY terse
SELECT redis_semaphore_release('s', NULL);
SELECT redis_with_lock('x', '1 s', '1 s', NULL);
SELECT redis_unlock('never-held');
SELECT count(*) AS left_held FROM redis_locks();
