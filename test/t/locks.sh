# Locks under real contention: a pgbench stress with no protection but
# the Redis lock, a semaphore sampled from outside, Redis restarted under
# a lock, backends terminated and killed while holding one, cancel.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_locks
R=$BMF_REDISCTL
PGBENCH="$(pg_config --bindir)/pgbench"

qs >/dev/null <<'SQL'
CREATE TABLE counter (n int);
INSERT INTO counter VALUES (0);
CREATE TABLE overlap_log (at timestamptz);
-- a read-modify-write that loses updates unless the lock serializes it;
-- a session advisory lock detects two holders inside at once
CREATE FUNCTION critical() RETURNS void LANGUAGE plpgsql AS $$
DECLARE v int;
BEGIN
    PERFORM redis_xact_lock('counter', '10 s', '120 s');
    IF NOT pg_try_advisory_lock(4242) THEN
        INSERT INTO overlap_log VALUES (clock_timestamp());
    END IF;
    SELECT n INTO v FROM counter;
    PERFORM pg_sleep(0.0002);
    UPDATE counter SET n = v + 1;
    PERFORM pg_advisory_unlock(4242);
END $$;
CREATE FUNCTION sem_critical() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM redis_semaphore_xact_acquire('three', 3, '10 s', '120 s');
    PERFORM set_config('application_name', 'in-section', false);
    PERFORM pg_sleep(0.003);
    PERFORM set_config('application_name', 'out', false);
END $$;
SQL

# --- 8 clients x 500 increments under redis_xact_lock
echo "SELECT critical();" >"$BMF_WORK/critical.pgbench"
start=$(ms_now)
out=$(PGOPTIONS='-c client_min_messages=warning' $PGBENCH -n -f "$BMF_WORK/critical.pgbench" -c 8 -j 2 -t 500 bmf_locks 2>&1)
elapsed=$(( $(ms_now) - start ))
like "8 clients x 500 transactions ran (${elapsed} ms)" "$out" "number of transactions actually processed: 4000/4000"
is "the counter is exact" "$(q "SELECT n FROM counter")" "4000"
is "no two holders were ever inside at once" "$(q "SELECT count(*) FROM overlap_log")" "0"

# --- fencing numbers: a waiter does not burn one per poll, and the fence
# key expires (a day after the lock would) instead of staying for ever
seq0=$(q "SELECT last_value FROM bmfredis.lock_fence")
psql -X -A -t -d bmf_locks -c "SELECT fence FROM redis_lock_fenced('fenced', '5 s')" -c "SELECT pg_sleep(0.6)" \
	>"$BMF_WORK/fence1.out" 2>&1 &
holder=$!
sleep 0.1
t0=$(ms_now)
f2=$(q "SELECT fence FROM redis_lock_fenced('fenced', '1 s', '5 s')")
waited=$(( $(ms_now) - t0 ))
wait $holder
f1=$(head -1 "$BMF_WORK/fence1.out")
seq1=$(q "SELECT last_value FROM bmfredis.lock_fence")
check "a second session waited while the first held the lock (${waited} ms)" [ "$waited" -ge 300 ]
check "  and got a larger fencing number ($f1, then $f2)" [ "${f2:-0}" -gt "${f1:-0}" ]
check "  having taken at most 3 numbers from the sequence for about 100 polls ($((seq1 - seq0)))" \
	[ $((seq1 - seq0)) -le 3 ]
pttl=$($R cli PTTL 'bmfredis:lock:{fenced}:fence')
check "the fence key expires, a day after the lock ($pttl ms)" \
	[ "${pttl:-0}" -gt 86000000 ] && [ "${pttl:-0}" -le 86401000 ]
qs >/dev/null <<SQL
SELECT redis_lock('fenced', '1 s') AS token \gset
\! $R cli PERSIST 'bmfredis:lock:{fenced}:fence' >/dev/null
SELECT redis_lock_extend('fenced', :'token', '2 s');
SQL
pttl=$($R cli PTTL 'bmfredis:lock:{fenced}:fence')
check "  and extending the lock keeps it (a key from before gets its TTL too: $pttl ms)" \
	[ "${pttl:-0}" -gt 86000000 ]
$R cli DEL 'bmfredis:lock:{fenced}:fence' >/dev/null
f3=$(q "SELECT fence FROM redis_lock_fenced('fenced', '1 s')")
check "once the fence key is gone, the sequence still gives a larger number ($f3 > $f2)" \
	[ "${f3:-0}" -gt "${f2:-0}" ]
q "SELECT redis_unlock('fenced', token) FROM redis_locks() WHERE name = 'fenced'" >/dev/null

# --- a semaphore of 3 with 8 contenders, sampled from outside
echo "SELECT sem_critical();" >"$BMF_WORK/sem.pgbench"
$PGBENCH -n -f "$BMF_WORK/sem.pgbench" -c 8 -j 2 -t 100 bmf_locks >"$BMF_WORK/sem.out" 2>&1 &
bench=$!
max=$(qs <<'SQL'
DO $$
DECLARE m int := 0; c int;
BEGIN
    FOR i IN 1 .. 4000 LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT count(*) INTO c FROM pg_stat_activity WHERE application_name = 'in-section';
        m := greatest(m, c);
        PERFORM pg_sleep(0.0005);
    END LOOP;
    RAISE NOTICE 'max %', m;
END $$;
SQL
)
wait $bench
max=$(grep -o 'max [0-9]*' <<<"$max" | grep -o '[0-9]*')
like "800 semaphore sections ran" "$(cat "$BMF_WORK/sem.out")" "processed: 800/800"
check "never more than 3 holders inside (sampled maximum: $max)" [ "${max:-9}" -le 3 ]
check "and the limit was reached, so the sampling could see a fourth" [ "${max:-0}" -eq 3 ]

# --- Redis restarted without persistence while a lock is held
out=$(qs <<SQL
SET client_min_messages = warning;
SELECT fence AS f1 FROM redis_lock_fenced('restart') \gset
\! $R restart
SELECT pg_sleep(0.3);
SELECT redis_unlock('restart') AS unlocked;
SELECT fence > :f1 AS fence_increases FROM redis_lock_fenced('restart');
SELECT redis_unlock('restart');
SQL
)
like "after a Redis restart, unlock says the lock was lost" "$out" "WARNING:  Redis lock \"restart\" was lost"
like "and the fencing number still increases" "$out" "fence_increases.*
t|t
t"

# --- lock expiry during the critical section
out=$(qs <<'SQL'
SELECT fence AS f1 FROM redis_lock_fenced('expiring', '200 ms') \gset
SELECT pg_sleep(0.3);
SELECT redis_command('SET', 'bmfredis:lock:{expiring}', 'other', 'PX', '10000') IS NOT NULL AS taken_over;
SELECT redis_lock_extend('expiring', NULL::text, '10 s');
SQL
)
like "extending a lock that expired during the work warns it was lost" "$out" "WARNING:  Redis lock \"expiring\" was lost"
is "and leaves the new owner alone" "$($R cli GET 'bmfredis:lock:{expiring}')" "other"

# --- a terminated backend releases its session lock at exit
psql -X -q -d bmf_locks -c "SELECT redis_lock('held', '60 s')" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
sleep 0.5
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null
wait
is "pg_terminate_backend: the lock is released at once" "$(q "SELECT redis_try_lock('held') IS NOT NULL")" "t"
q "SELECT redis_unlock('held')" >/dev/null 2>&1

# --- cancel during a blocked wait
$R cli SET 'bmfredis:lock:{blocked}' someone PX 60000 >/dev/null
start=$(ms_now)
psql -X -q -d bmf_locks -c "SELECT redis_lock('blocked', '30 s', '60 s')" >"$BMF_WORK/cancel.out" 2>&1 &
sleep 0.5
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%redis_lock(''blocked''%' AND pid <> pg_backend_pid()" >/dev/null
wait
elapsed=$(( $(ms_now) - start ))
like "pg_cancel_backend stops a lock wait" "$(cat "$BMF_WORK/cancel.out")" "canceling statement due to user request"
check "within a second of the cancel (${elapsed} ms in all)" [ "$elapsed" -lt 1600 ]

# --- a backend killed hard (SIGKILL) while holding a session lock: the
# server restarts, and the lock is free once its TTL runs out
psql -X -q -d bmf_locks -c "SELECT redis_lock('crash', '6 s')" -c "SELECT pg_sleep(30)" >/dev/null 2>&1 &
sleep 0.5
victim=$(q "SELECT pid FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()")
cold=$(tap_cold_mark)
killed_at=$(ms_now)
kill -KILL "$victim"
wait
for i in $(seq 1 100); do q "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
is "right after the crash the lock is still held" "$(q "SELECT redis_try_lock('crash') IS NULL")" "t"
left=$(( 6500 - ($(ms_now) - killed_at) ))
[ "$left" -gt 0 ] && sleep "$(awk -v ms="$left" 'BEGIN { print ms / 1000 }')"
is "after its TTL it is free" "$(q "SELECT redis_try_lock('crash') IS NOT NULL")" "t"
check "the cold start the crash began is over (every database invalidated its namespace)" tap_cold_over "$cold"

# --- namespace-wide invalidations keep locks and semaphores
q "SELECT redis_cache_set('plain', 'v', '1 hour')" >/dev/null
$R cli SET 'bmfredis:lock:{orders}' holder-l PX 300000 >/dev/null
$R cli ZADD 'bmfredis:sem:{pool}' 1 holder-s >/dev/null
$R cli PEXPIRE 'bmfredis:sem:{pool}' 300000 >/dev/null
held() { echo "$($R cli GET 'bmfredis:lock:{orders}') $($R cli ZCARD 'bmfredis:sem:{pool}') $(q "SELECT redis_try_lock('orders') IS NULL")"; }
out=$(qs <<'SQL' 2>&1
SET bmfredis.max_pending_keys = 100;
BEGIN;
SELECT redis_invalidate(array_agg('k' || i), false) FROM generate_series(1, 300) i;
COMMIT;
SQL
)
is "300 keys at COMMIT past max_pending_keys = 100: the namespace is flushed" "$($R cli EXISTS bmfredis:plain)" "0"
is "  but a held lock and a semaphore stay, and redis_try_lock still fails" "$(held)" "holder-l 1 t"
q "SELECT redis_cache_set('plain', 'v', '1 hour')" >/dev/null
q "SELECT redis_invalidate_pattern('*')" >/dev/null
is "redis_invalidate_pattern('*'): the cache goes" "$($R cli EXISTS bmfredis:plain)" "0"
is "  the lock and the semaphore stay" "$(held)" "holder-l 1 t"
q "SELECT redis_cache_set('plain', 'v', '1 hour')" >/dev/null
q "SELECT redis_flush_namespace()" >/dev/null
is "redis_flush_namespace(): the cache goes" "$($R cli EXISTS bmfredis:plain)" "0"
is "  the lock and the semaphore stay" "$(held)" "holder-l 1 t"
$R cli DEL 'bmfredis:lock:{orders}' 'bmfredis:sem:{pool}' >/dev/null

# --- a lock lost before COMMIT fails the transaction
q "CREATE TABLE guarded (n int)" >/dev/null
out=$(qv <<'SQL'
SELECT redis_with_lock('short', '1 s', '1 s', 'INSERT INTO guarded SELECT 1 FROM pg_sleep(2)');
SQL
)
like "redis_with_lock: a 1 s lock around a 2 s statement fails with 40001" "$out" "ERROR:  40001: Redis lock \"short\" was lost"
is "  and its work is not committed" "$(q "SELECT count(*) FROM guarded")" "0"
is "  counted as a lost lock" "$(q "SELECT value > 0 FROM redis_stats WHERE name = 'locks_lost'")" "t"
out=$(qv <<'SQL'
SELECT redis_with_lock('long', '5 s', '1 s', 'INSERT INTO guarded VALUES (2)');
SQL
)
is "  one that keeps its lock commits (1 row)" "$out $(q "SELECT count(*) FROM guarded")" "1 1"
is "  and gives the lock back at COMMIT" "$($R cli EXISTS 'bmfredis:lock:{long}')" "0"
out=$(qv <<'SQL'
BEGIN;
SELECT redis_xact_lock('xl', '1 s', '1 s') IS NOT NULL;
INSERT INTO guarded VALUES (3);
SELECT pg_sleep(1.5);
COMMIT;
SQL
)
like "redis_xact_lock that expired before COMMIT: the COMMIT fails with 40001" "$out" "ERROR:  40001: Redis lock \"xl\" was lost before COMMIT"
is "  and the row is not there" "$(q "SELECT count(*) FROM guarded WHERE n = 3")" "0"
out=$(qv <<'SQL'
BEGIN;
SELECT redis_xact_lock('xl2', '1 s', '1 s') IS NOT NULL;
INSERT INTO guarded VALUES (4);
COMMIT;
SQL
)
is "  one still held commits" "$(q "SELECT count(*) FROM guarded WHERE n = 4")" "1"
