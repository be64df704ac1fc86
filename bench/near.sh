# bench/near.sh: the near-cache.  A hot redis_cache_get in an SQL loop with
# the near-cache on against the same loop with it off, in the same
# placement (everything on one vCPU, then unpinned), with a plain function
# call as the loop's own cost; and a stream of distinct keys, where every
# read misses, on against off: what tracking costs a read it cannot save.
# Sourced by bench/run.

# µs per call, like loop_us, in a session with the near-cache on or off
near_loop_us() {
	psql -X -q -d bench -At <<SQL | tail -1
SET bmfredis.near_cache = $3;
SELECT $2 \gset
SELECT clock_timestamp() AS t0 \gset
SELECT count($2) FROM generate_series(1, $1) g \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000000 / $1, 3);
SQL
}

near_setup() {
	local value; value=$(head -c 100 /dev/zero | tr '\0' v)
	redis-cli -p "$BMF_REDIS_PORT" SET bmfredis:bench:k "$value" >/dev/null
	psql -X -q -d bench -c "SELECT redis_cache_mset(array_agg('bench:d' || i), array_agg('$value'::text)) FROM generate_series(1, 200000) i" >/dev/null
}

bench_near() {
	local n=$1 i where on off plain
	local -a v_on v_off v_plain r
	near_setup
	for where in pinned unpinned; do
		[ "$where" = pinned ] && pin "$BENCH_CPU" || pin 0,1
		v_on=(); v_off=(); v_plain=(); r=()
		for i in $(seq 1 "$BMF_BENCH_RUNS"); do
			plain=$(near_loop_us "$n" "length('bench:k')" off)
			off=$(near_loop_us "$n" "redis_cache_get('bench:k')" off)
			on=$(near_loop_us "$n" "redis_cache_get('bench:k')" on)
			v_plain+=("$plain"); v_off+=("$off"); v_on+=("$on"); r+=("$(ratio "$on" "$off")")
		done
		record "SQL loop calling length(), $where (the loop's cost)" "$(printf '%s\n' "${v_plain[@]}" | median)" µs/call
		record "redis_cache_get, near-cache off, $where" "$(printf '%s\n' "${v_off[@]}" | median)" µs/call
		record "redis_cache_get hit, near-cache on, $where" "$(printf '%s\n' "${v_on[@]}" | median)" µs/call \
			"near-cache off, $where" "$(printf '%s\n' "${r[@]}" | median)" "<= 0.05"
	done
	# every read a miss: distinct keys
	pin "$BENCH_CPU"
	v_on=(); v_off=(); r=()
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		off=$(near_loop_us 20000 "redis_cache_get('bench:d' || (g + $i * 20000) % 200000 + 1)" off)
		on=$(near_loop_us 20000 "redis_cache_get('bench:d' || (g + $i * 20000) % 200000 + 1)" on)
		v_off+=("$off"); v_on+=("$on"); r+=("$(ratio "$on" "$off")")
	done
	record "redis_cache_get of distinct keys, near-cache off" "$(printf '%s\n' "${v_off[@]}" | median)" µs/call
	record "redis_cache_get of distinct keys (all misses), on" "$(printf '%s\n' "${v_on[@]}" | median)" µs/call \
		"near-cache off" "$(printf '%s\n' "${r[@]}" | median)" "<= 1.1"
	pin 0,1
}
