# bench/get.sh: single calls against their floors, in one placement
# (everything on one vCPU): redis_cache_get/set in a single-statement loop
# against redis-benchmark's one-client GET/SET round trip and pgmemcache's
# memcache_get/set, with a plain function call as the loop's own cost;
# redis_cache_mget of 1,000 keys against pipelined redis-benchmark GET;
# pgbench with 1, 2, 4 and 8 clients against pgmemcache (unpinned).
# Sourced by bench/run.

get_setup() {
	local value; value=$(head -c 100 /dev/zero | tr '\0' v)
	redis-cli -p "$BMF_REDIS_PORT" SET bmfredis:bench:k "$value" >/dev/null
	psql -X -q -d bench >/dev/null <<SQL
CREATE EXTENSION IF NOT EXISTS pgmemcache;
SELECT memcache_set('bench:k', '$value');
SELECT redis_cache_mset(array_agg('bench:m' || i), array_agg('$value')) FROM generate_series(1, 1000) i;
SQL
}

bench_get() {
	local n=$1 i cpu
	local -a v_plain v_get v_mc v_rb v_set v_mcs v_rbs r_rb r_mc r_rbs r_mcs
	get_setup
	pin "$BENCH_CPU"
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		v_plain+=("$(loop_us "$n" "length('bench:k')")")
		v_get+=("$(loop_us "$n" "redis_cache_get('bench:k')")")
		v_mc+=("$(loop_us "$n" "memcache_get('bench:k')")")
		v_rb+=("$(awk -v r="$(redis_bench -n "$n" GET bmfredis:bench:k)" 'BEGIN { printf "%.2f", 1000000 / r }')")
		v_set+=("$(loop_us "$n" "redis_cache_set('bench:s', 'v')")")
		v_mcs+=("$(loop_us "$n" "memcache_set('bench:s', 'v')")")
		v_rbs+=("$(awk -v r="$(redis_bench -n "$n" SET bmfredis:bench:s v)" 'BEGIN { printf "%.2f", 1000000 / r }')")
		r_rb+=("$(ratio "${v_get[-1]}" "${v_rb[-1]}")"); r_mc+=("$(ratio "${v_get[-1]}" "${v_mc[-1]}")")
		r_rbs+=("$(ratio "${v_set[-1]}" "${v_rbs[-1]}")"); r_mcs+=("$(ratio "${v_set[-1]}" "${v_mcs[-1]}")")
	done
	cpu=$(cpu_of "$(cat "$BMF_WORK/redis.pid")")
	[ "$cpu" = "$BENCH_CPU" ] || bmf_log "warning: redis-server ran on CPU $cpu, not $BENCH_CPU"
	pin 0,1
	record "SQL loop calling length() (the loop itself)" "$(printf '%s\n' "${v_plain[@]}" | median)" "µs/call"
	record "redis-benchmark -c 1 GET (round-trip floor)" "$(printf '%s\n' "${v_rb[@]}" | median)" "µs/call"
	record "pgmemcache memcache_get in a loop" "$(printf '%s\n' "${v_mc[@]}" | median)" "µs/call"
	record "redis_cache_get in a loop" "$(printf '%s\n' "${v_get[@]}" | median)" "µs/call" \
		"redis-benchmark -c 1 GET" "$(printf '%s\n' "${r_rb[@]}" | median)" "<= 1.15"
	record "redis_cache_get in a loop, against memcache_get" "$(printf '%s\n' "${v_get[@]}" | median)" "µs/call" \
		"pgmemcache memcache_get" "$(printf '%s\n' "${r_mc[@]}" | median)" "<= 1.0"
	record "redis-benchmark -c 1 SET" "$(printf '%s\n' "${v_rbs[@]}" | median)" "µs/call"
	record "pgmemcache memcache_set in a loop" "$(printf '%s\n' "${v_mcs[@]}" | median)" "µs/call"
	record "redis_cache_set in a loop" "$(printf '%s\n' "${v_set[@]}" | median)" "µs/call" \
		"redis-benchmark -c 1 SET" "$(printf '%s\n' "${r_rbs[@]}" | median)"
	record "redis_cache_set in a loop, against memcache_set" "$(printf '%s\n' "${v_set[@]}" | median)" "µs/call" \
		"pgmemcache memcache_set" "$(printf '%s\n' "${r_mcs[@]}" | median)"
}

# keys/s of redis_cache_mget over 1,000 keys, $1 times in one statement
mget_once() {
	psql -X -q -d bench -At <<SQL | tail -1
SELECT array_agg('bench:m' || i) AS keys FROM generate_series(1, 1000) i \gset
SELECT clock_timestamp() AS t0 \gset
SELECT sum(cardinality(redis_cache_mget(:'keys'::text[]))) FROM generate_series(1, $1) \gset
SELECT round($1 * 1000 / extract(epoch FROM clock_timestamp() - :'t0'));
SQL
}

bench_mget() {
	local reps=$1 i m raw
	local -a v_m v_raw r
	pin "$BENCH_CPU"
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		m=$(mget_once "$reps")
		raw=$(redis_bench -n 200000 -P 1000 GET bmfredis:bench:m1)
		v_m+=("$m"); v_raw+=("$raw"); r+=("$(ratio "$m" "$raw")")
	done
	pin 0,1
	record "redis-benchmark -c 1 -P 1000 GET (throughput floor)" "$(printf '%s\n' "${v_raw[@]}" | median)" keys/s
	record "redis_cache_mget of 1,000 keys" "$(printf '%s\n' "${v_m[@]}" | median)" keys/s \
		"redis-benchmark -P 1000 GET" "$(printf '%s\n' "${r[@]}" | median)" ">= 0.5"
}

# tps of one SELECT per transaction with $2 clients for $3 seconds, unpinned
pgbench_tps() {
	echo "SELECT $1;" >"$BMF_WORK/pgbench-get.sql"
	"$(pg_config --bindir)/pgbench" -n -f "$BMF_WORK/pgbench-get.sql" -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" \
		-T "$3" bench 2>/dev/null | awk '/^tps/ { printf "%.0f\n", $3 }'
}

bench_pgbench() {
	local secs=$1 c i r m
	local -A v_r v_m v_ratio
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		for c in 1 2 4 8; do
			r=$(pgbench_tps "redis_cache_get('bench:k')" "$c" "$secs")
			m=$(pgbench_tps "memcache_get('bench:k')" "$c" "$secs")
			v_r[$c]+="$r "; v_m[$c]+="$m "; v_ratio[$c]+="$(ratio "$r" "$m") "
		done
	done
	for c in 1 2 4 8; do
		record "pgbench $c client(s), memcache_get" "$(tr ' ' '\n' <<<"${v_m[$c]}" | grep . | median)" tps
		record "pgbench $c client(s), redis_cache_get" "$(tr ' ' '\n' <<<"${v_r[$c]}" | grep . | median)" tps \
			"memcache_get, $c client(s)" "$(tr ' ' '\n' <<<"${v_ratio[$c]}" | grep . | median)" ">= 1.0"
	done
}
