# redis_cached under a stampede: 8 pgbench clients hit one key that has
# expired (or was never cached); the underlying query runs once, not 8
# times.  Without the wait (cached_wait = 0) it runs for nearly everyone.
# A computing session that dies leaves its lease, and the others still
# get an answer after cached_wait.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_cached
PGBENCH="$(pg_config --bindir)/pgbench"

qs <<'SQL' >/dev/null
CREATE SEQUENCE source_calls;
CREATE FUNCTION expensive() RETURNS int LANGUAGE sql AS
$$ SELECT 0 * nextval('source_calls')::int + 42 FROM pg_sleep(0.5) $$;
CREATE FUNCTION calls() RETURNS bigint LANGUAGE sql AS
$$ SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM source_calls $$;
SQL
echo "SELECT redis_cached('hot', '1 second', 'SELECT expensive()');" >"$BMF_WORK/hot.pgbench"
stampede() {
	PGOPTIONS="-c client_min_messages=warning ${1:-}" $PGBENCH -n -f "$BMF_WORK/hot.pgbench" \
		-c 8 -j 8 -t 1 bmf_cached >"$BMF_WORK/stampede.out" 2>&1
}

stampede
is "8 clients miss a key at once: the query runs once" "$(q 'SELECT calls()')" "1"
grep -q "number of failed transactions: 0" "$BMF_WORK/stampede.out" &&
	ok "  and every client got its answer" || not_ok "  and every client got its answer" "$(cat "$BMF_WORK/stampede.out")"
sleep 1.2
is "the key has expired" "$($BMF_REDISCTL cli EXISTS bmfredis:hot)" "0"
stampede
is "8 clients hit the expired key: the query runs once more" "$(q 'SELECT calls()')" "2"
is "the waiters counted" "$(q "SELECT value >= 7 FROM redis_stats WHERE name = 'cached_waits'")" "t"

sleep 1.2
stampede "-c bmfredis.cached_wait=0"
n=$(q 'SELECT calls()')
check "without waiting (cached_wait = 0) the query runs for nearly everyone ($((n - 2)) of 8)" [ $((n - 2)) -ge 4 ]

# a computing session that is terminated mid-query keeps its lease;
# others wait cached_wait, then compute for themselves
q "SELECT redis_cache_del('slowkey')" >/dev/null
q "SELECT redis_cached('slowkey', '1 minute', 'SELECT 1 FROM pg_sleep(30)')" >/dev/null 2>&1 &
sleep 0.5
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()" >/dev/null
start=$(ms_now)
out=$(q "SET bmfredis.cached_wait = '300ms'; SELECT redis_cached('slowkey', '1 minute', 'SELECT 2')")
elapsed=$(( $(ms_now) - start ))
is "after the computing session died, a caller still gets an answer" "$out" "2"
check "  after waiting about cached_wait (${elapsed} ms)" test "$elapsed" -ge 250 -a "$elapsed" -lt 2000
is "  and the dead session's lease still blocks storing until it expires" "$($BMF_REDISCTL cli GET bmfredis:slowkey)" ""
