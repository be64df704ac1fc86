# bench/lib.sh: measuring helpers for bench/run (sourced).
#
# Every figure is the median of BMF_BENCH_RUNS runs; every ratio is the
# median of per-round ratios against a baseline measured in the same
# round, variants alternating, because these 2-vCPU machines are noisy.

BMF_BENCH_RUNS=${BMF_BENCH_RUNS:-5}
BMF_BENCH_OUT=${BMF_BENCH_OUT:-$BMF_ROOT/bench/out}

# median of the numbers on stdin
median() {
	sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# ratio A B, three decimals
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "nan"; else printf "%.3f\n", a / b }'; }

# record NAME VALUE UNIT BASELINE_NAME RATIO TARGET: one result row
BMF_RESULTS=()
record() {
	BMF_RESULTS+=("$1|$2|$3|${4:-}|${5:-}|${6:-}")
	printf "  %-52s %12s %-8s %s\n" "$1" "$2" "$3" "${5:+ratio ${5:-} vs ${4:-}${6:+ (target ${6:-})}}" >&2
}

print_table() {
	local row
	printf '\n%-52s | %12s | %-8s | %-34s | %-8s | %s\n' "measure" "median" "unit" "baseline" "ratio" "target"
	printf '%s\n' "-----------------------------------------------------+--------------+----------+------------------------------------+----------+--------"
	for row in "${BMF_RESULTS[@]}"; do
		IFS='|' read -r n v u b r t <<<"$row"
		printf '%-52s | %12s | %-8s | %-34s | %-8s | %s\n' "$n" "$v" "$u" "$b" "$r" "$t"
	done
}

write_csv() {
	local row
	mkdir -p "$BMF_BENCH_OUT"
	{
		echo "measure,median,unit,baseline,ratio,target"
		for row in "${BMF_RESULTS[@]}"; do
			IFS='|' read -r n v u b r t <<<"$row"
			printf '"%s",%s,%s,"%s",%s,"%s"\n' "$n" "$v" "$u" "$b" "$r" "$t"
		done
	} >"$BMF_BENCH_OUT/results.csv"
}

# memcached on a loopback port as the test user (pgmemcache's server)
bench_start_memcached() {
	local i
	BMF_MEMCACHED_PORT=$(bmf_free_port)
	bmf_spawn_as_user memcached -l 127.0.0.1 -p "$BMF_MEMCACHED_PORT" -U 0 -m 256 -t 1 \
		</dev/null >"$BMF_WORK/memcached.log" 2>&1 &
	echo $! >"$BMF_WORK/memcached.pid"
	for i in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$BMF_MEMCACHED_PORT") 2>/dev/null && return 0
		sleep 0.05
	done
	bmf_die "memcached did not start"
}

# pin CPUS: the postmaster (so every backend started from now on), Redis
# and memcached on these CPUs; "0,1" undoes it.  Single-client figures
# are only comparable in one placement (BENCHMARKING.md): bmfredis and its
# baselines are all measured with everything on one vCPU.
BENCH_CPU=${BENCH_CPU:-1}
pin() {
	local cpus=$1 pid
	for pid in "$BMF_PG_PID" "$(cat "$BMF_WORK/redis.pid")" "$(cat "$BMF_WORK/memcached.pid")"; do
		taskset -a -p -c "$cpus" "$pid" >/dev/null || bmf_die "could not pin $pid"
	done
}

# pin_apart PG_CPU CACHE_CPU: PostgreSQL (the postmaster, the processes it
# runs now and the backends it starts from now on) on one CPU, Redis and
# memcached on another, as if the cache server were another host: the
# trigger benchmark's placement, where a cache server's work and the
# backend's are not scheduled against each other.  pin_apart 0,1 0,1
# undoes it.
pin_apart() {
	local pid
	for pid in "$BMF_PG_PID" $(pgrep -P "$BMF_PG_PID"); do
		taskset -a -p -c "$1" "$pid" >/dev/null || bmf_die "could not pin $pid"
	done
	for pid in "$(cat "$BMF_WORK/redis.pid")" "$(cat "$BMF_WORK/memcached.pid")"; do
		taskset -a -p -c "$2" "$pid" >/dev/null || bmf_die "could not pin $pid"
	done
	BENCH_CACHE_CPUS=$2		# for a Redis restarted meanwhile (repin_redis)
}
BENCH_CACHE_CPUS=
repin_redis() {
	[ -n "$BENCH_CACHE_CPUS" ] || return 0
	taskset -a -p -c "$BENCH_CACHE_CPUS" "$(cat "$BMF_WORK/redis.pid")" >/dev/null
}

# the CPU a process last ran on, to check that pinning took
cpu_of() { ps -o psr= -p "$1" | tr -d ' '; }

# µs per call of the SQL expression $2 over $1 calls in one statement, in a
# fresh session (so the backend inherits the current placement); the
# session's first call (connecting) is not timed
loop_us() {
	psql -X -q -d bench -At <<SQL | tail -1
SELECT $2 \gset
SELECT clock_timestamp() AS t0 \gset
SELECT count($2) FROM generate_series(1, $1) \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000000 / $1, 2);
SQL
}

# "µs_per_call backend_cpu_µs_per_call server_cpu_µs_per_call": loop_us,
# plus the CPU time the session's backend and the cache server $3 (a PID,
# all its threads) used per call over the loop, from schedstat (ns)
sched_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d\n", s }'; }
loop_cpu() {
	local s0 s1 out
	s0=$(sched_ns "$3")
	out=$(psql -X -q -d bench -At <<SQL | tail -1
SELECT $2 \gset
SELECT clock_timestamp() AS t0, split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint AS c0 \gset
SELECT count($2) FROM generate_series(1, $1) \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000000 / $1, 2) || ' ' ||
       round((split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint - :c0) / 1000.0 / $1, 2);
SQL
)
	s1=$(sched_ns "$3")
	echo "$out $(awk -v d="$((s1 - s0))" -v n="$1" 'BEGIN { printf "%.2f", d / 1000 / n }')"
}

# redis-benchmark with one client on $BENCH_CPU: prints requests/s
redis_bench() {
	taskset -c "$BENCH_CPU" redis-benchmark -p "$BMF_REDIS_PORT" -c 1 -q "$@" 2>/dev/null |
		tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{ print $1 }'
}
