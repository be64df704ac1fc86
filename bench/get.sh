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
SELECT redis_cache_mset(array_agg('bench:m' || i), array_agg('$value'::text)) FROM generate_series(1, 1000) i;
SELECT count(*) = 1000 AS all_there FROM unnest(redis_cache_mget(ARRAY(SELECT 'bench:m' || i FROM generate_series(1, 1000) i))) v WHERE v IS NOT NULL \gset
\if :all_there
\else
\warn 'mget setup failed: not all 1,000 keys are in Redis'
\quit
\endif
SQL
}

bench_get() {
	local n=$1 i cpu g m gb gs mb ms
	local -a v_plain v_get v_mc v_rb v_set v_mcs v_rbs r_rb r_mc r_rbs r_mcs
	local -a v_gb v_gs v_mb v_ms
	local rpid mpid
	rpid=$(cat "$BMF_WORK/redis.pid"); mpid=$(cat "$BMF_WORK/memcached.pid")
	get_setup
	pin "$BENCH_CPU"
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		v_plain+=("$(loop_us "$n" "length('bench:k')")")
		read -r g gb gs <<<"$(loop_cpu "$n" "redis_cache_get('bench:k')" "$rpid")"
		read -r m mb ms <<<"$(loop_cpu "$n" "memcache_get('bench:k')" "$mpid")"
		v_get+=("$g"); v_gb+=("$gb"); v_gs+=("$gs")
		v_mc+=("$m"); v_mb+=("$mb"); v_ms+=("$ms")
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
	# where a call's time goes (one vCPU: the backend, the server, the kernel)
	record "  memcache_get: backend CPU per call" "$(printf '%s\n' "${v_mb[@]}" | median)" "µs"
	record "  redis_cache_get: backend CPU per call" "$(printf '%s\n' "${v_gb[@]}" | median)" "µs" \
		"memcache_get backend" "$(ratio "$(printf '%s\n' "${v_gb[@]}" | median)" "$(printf '%s\n' "${v_mb[@]}" | median)")"
	record "  memcached CPU per memcache_get" "$(printf '%s\n' "${v_ms[@]}" | median)" "µs"
	record "  redis-server CPU per redis_cache_get" "$(printf '%s\n' "${v_gs[@]}" | median)" "µs" \
		"memcached" "$(ratio "$(printf '%s\n' "${v_gs[@]}" | median)" "$(printf '%s\n' "${v_ms[@]}" | median)")"
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

# CPU time (µs) a process used (utime + stime), or with -c the time of its
# reaped children (the postmaster's: every backend that has exited)
proc_cpu_us() {
	local f='$14 + $15'
	[ "$1" = -c ] && { f='$16 + $17'; shift; }
	awk -v hz="$(getconf CLK_TCK)" "{ printf \"%d\\n\", ($f) * 1000000 / hz }" "/proc/$1/stat"
}

# "tps backend_us server_us": one SELECT per transaction with $2 clients
# for $3 seconds, unpinned, and the CPU per transaction of the backends
# and of the cache server $4 (a PID) over the run
pgbench_tps() {
	local out b0 s0 b1 s1
	echo "SELECT $1;" >"$BMF_WORK/pgbench-get.sql"
	b0=$(proc_cpu_us -c "$BMF_PG_PID"); s0=$(proc_cpu_us "$4")
	out=$("$(pg_config --bindir)/pgbench" -n -f "$BMF_WORK/pgbench-get.sql" -c "$2" -j "$(( $2 < 2 ? 1 : 2 ))" \
		-T "$3" bench 2>/dev/null)
	sleep 0.2	# the backends exit and are reaped
	b1=$(proc_cpu_us -c "$BMF_PG_PID"); s1=$(proc_cpu_us "$4")
	awk -v b="$((b1 - b0))" -v s="$((s1 - s0))" '
		/^number of transactions actually processed/ { n = $NF }
		/^tps/ { tps = $3 }
		END { printf "%.0f %.2f %.2f\n", tps, b / n, s / n }' <<<"$out"
}

bench_pgbench() {
	local secs=$1 c i r m rb rs mb ms
	local -A v_r v_m v_ratio v_rb v_rs v_mb v_ms
	local rpid mpid
	rpid=$(cat "$BMF_WORK/redis.pid"); mpid=$(cat "$BMF_WORK/memcached.pid")
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		for c in 1 2 4 8; do
			read -r r rb rs <<<"$(pgbench_tps "redis_cache_get('bench:k')" "$c" "$secs" "$rpid")"
			read -r m mb ms <<<"$(pgbench_tps "memcache_get('bench:k')" "$c" "$secs" "$mpid")"
			v_r[$c]+="$r "; v_m[$c]+="$m "; v_ratio[$c]+="$(ratio "$r" "$m") "
			v_rb[$c]+="$rb "; v_rs[$c]+="$rs "; v_mb[$c]+="$mb "; v_ms[$c]+="$ms "
		done
	done
	med() { tr ' ' '\n' <<<"$1" | grep . | median; }
	for c in 1 2 4 8; do
		record "pgbench $c client(s), memcache_get" "$(med "${v_m[$c]}")" tps
		record "pgbench $c client(s), redis_cache_get" "$(med "${v_r[$c]}")" tps \
			"memcache_get, $c client(s)" "$(med "${v_ratio[$c]}")" ">= 1.0"
	done
	# where the CPU goes (2 vCPUs shared by pgbench, backends and server):
	# per transaction, in the backends and in the cache server
	for c in 1 2 4 8; do
		record "  $c client(s): backend CPU/txn, memcache_get" "$(med "${v_mb[$c]}")" "µs"
		record "  $c client(s): backend CPU/txn, redis_cache_get" "$(med "${v_rb[$c]}")" "µs" \
			"backend, memcache_get" "$(ratio "$(med "${v_rb[$c]}")" "$(med "${v_mb[$c]}")")"
		record "  $c client(s): memcached CPU/txn" "$(med "${v_ms[$c]}")" "µs"
		record "  $c client(s): redis-server CPU/txn" "$(med "${v_rs[$c]}")" "µs" \
			"memcached" "$(ratio "$(med "${v_rs[$c]}")" "$(med "${v_ms[$c]}")")"
	done
}
