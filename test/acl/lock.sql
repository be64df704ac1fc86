SELECT redis_lock('l1', '10 s', '1 s') AS t \gset
SELECT redis_lock_extend('l1', :'t', '20 s');
SELECT redis_unlock('l1', :'t');
SELECT redis_try_lock('l2', '10 s') AS t2 \gset
SELECT redis_unlock('l2', :'t2');
SELECT count(*) FROM redis_locks();
SELECT fence > 0 FROM redis_lock_fenced('l3', '10 s', '1 s');
SELECT redis_with_lock('l4', '10 s', '1 s', 'SELECT 1');
BEGIN;
SELECT redis_xact_lock('l5', '10 s', '1 s') IS NOT NULL;
SELECT redis_try_xact_lock('l6', '10 s') IS NOT NULL;
SELECT redis_semaphore_xact_acquire('s2', 2, '10 s', '1 s') IS NOT NULL;
SELECT redis_semaphore_try_xact_acquire('s3', 2, '10 s') IS NOT NULL;
COMMIT;
SELECT redis_semaphore_acquire('s1', 2, '10 s', '1 s') AS s \gset
SELECT redis_semaphore_refresh('s1', :'s', '20 s');
SELECT redis_semaphore_release('s1', :'s');
SELECT redis_semaphore_try_acquire('s4', 2, '10 s') AS s4 \gset
SELECT redis_semaphore_release('s4', :'s4');
