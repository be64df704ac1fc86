# bench/tls.sh: redis_cache_get per call over TLS against plain TCP, in the
# same run and the same backend kind, with redis-benchmark GET over both
# as the reference for what TLS itself costs.  Sourced by bench/run.

# µs per redis_cache_get over N calls in one statement; $2: plain | tls
get_once() {
	local n=$1 mode=$2 set=""
	[ "$mode" = tls ] && set="SET bmfredis.port = $BMF_REDIS_TLS_PORT; SET bmfredis.tls = on;
SET bmfredis.tls_ca_file = '$BMF_CERTS/ca.crt';"
	psql -X -q -d bench -At <<SQL | tail -1
$set
SELECT redis_cache_get('bench:tls') \gset
SELECT clock_timestamp() AS t0 \gset
SELECT count(redis_cache_get('bench:tls')) FROM generate_series(1, $n) \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000000 / $n, 2);
SQL
}

# µs per GET of redis-benchmark, 1 client, no pipelining; $2: plain | tls
get_raw() {
	local n=$1 mode=$2 args=(-p "$BMF_REDIS_PORT")
	[ "$mode" = tls ] && args=(-p "$BMF_REDIS_TLS_PORT" --tls --cacert "$BMF_CERTS/ca.crt")
	redis-benchmark "${args[@]}" -c 1 -n "$n" -q GET bench:tls 2>/dev/null |
		tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 |
		awk '{ printf "%.2f\n", 1000000 / $1 }'
}

bench_tls() {
	local n=$1 i p t rp rt
	local -a v_p v_t v_rp v_rt r_ours r_raw
	redis-cli -p "$BMF_REDIS_PORT" SET bmfredis:bench:tls "$(head -c 100 /dev/zero | tr '\0' v)" >/dev/null
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		p=$(get_once "$n" plain)
		t=$(get_once "$n" tls)
		rp=$(get_raw "$n" plain)
		rt=$(get_raw "$n" tls)
		v_p+=("$p"); v_t+=("$t"); v_rp+=("$rp"); v_rt+=("$rt")
		r_ours+=("$(ratio "$t" "$p")"); r_raw+=("$(ratio "$rt" "$rp")")
	done
	record "redis_cache_get, plain TCP" "$(printf '%s\n' "${v_p[@]}" | median)" "µs/call"
	record "redis_cache_get over TLS (verify full)" "$(printf '%s\n' "${v_t[@]}" | median)" "µs/call" \
		"redis_cache_get, plain TCP" "$(printf '%s\n' "${r_ours[@]}" | median)"
	record "redis-benchmark GET, plain TCP" "$(printf '%s\n' "${v_rp[@]}" | median)" "µs/call"
	record "redis-benchmark GET over TLS" "$(printf '%s\n' "${v_rt[@]}" | median)" "µs/call" \
		"redis-benchmark GET, plain TCP" "$(printf '%s\n' "${r_raw[@]}" | median)"
}
