# bench/locks.sh: uncontended lock + unlock pairs per second, against raw
# SET NX PX plus the Lua compare-and-delete through redis-benchmark, in the
# same run.  Sourced by bench/run.

locks_once() {
	psql -X -q -d bench -At <<SQL | tail -1
SELECT clock_timestamp() AS t0 \gset
SELECT count(redis_unlock('bench', redis_lock('bench', '30 s', '1 s'))) FROM generate_series(1, $1) \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000, 3);
SQL
}

raw_rps() {
	redis-benchmark -p "$BMF_REDIS_PORT" -c 1 -n "$1" -q "${@:2}" 2>/dev/null |
		tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{ print $1 }'
}

bench_locks() {
	local n=$1 i ms set rel raw ours
	local -a v_raw v_ours r
	local release="if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		set=$(raw_rps "$n" SET bench:rawlock tok NX PX 30000)
		rel=$(raw_rps "$n" EVAL "$release" 1 bench:rawlock tok)
		raw=$(awk -v a="$set" -v b="$rel" 'BEGIN { printf "%.0f", 1 / (1 / a + 1 / b) }')
		ms=$(locks_once "$n")
		ours=$(awk -v n="$n" -v ms="$ms" 'BEGIN { printf "%.0f", n / ms * 1000 }')
		v_raw+=("$raw"); v_ours+=("$ours"); r+=("$(ratio "$ours" "$raw")")
	done
	record "raw SET NX PX + Lua release pairs (redis-benchmark)" "$(printf '%s\n' "${v_raw[@]}" | median)" pairs/s
	record "redis_lock + redis_unlock, uncontended" "$(printf '%s\n' "${v_ours[@]}" | median)" pairs/s \
		"raw SET NX PX + Lua release" "$(printf '%s\n' "${r[@]}" | median)"
}
