# bench/publish.sh: publishes per second from SQL against raw
# redis-benchmark publishing, in the same run.  Sourced by bench/run.

# ms for N publishes in one statement; $2: 'true' (each now) or 'false'
# (queued, pipelined at COMMIT)
publish_once() {
	psql -X -q -d bench -At <<SQL | tail -1
SET bmfredis.max_pending_messages = 1000000;
SELECT clock_timestamp() AS t0 \gset
SELECT count(*) FROM (SELECT redis_publish('bench:publish', 'x', $2) FROM generate_series(1, $1)) s \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000, 3);
SQL
}

# ops/s of redis-benchmark publishing with pipeline depth $2
publish_raw() {
	redis-benchmark -p "$BMF_REDIS_PORT" -c 1 -n "$1" -P "$2" -q PUBLISH bench:publish x 2>/dev/null |
		tr '\r' '\n' | grep -o '[0-9.]* requests per second' | tail -1 | awk '{ print $1 }'
}

bench_publish() {
	local n=$1 i ms raw rawp ours oursq
	local -a r_imm r_q v_imm v_q v_raw v_rawp
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		raw=$(publish_raw "$n" 1)
		ms=$(publish_once "$n" true)
		ours=$(awk -v n="$n" -v ms="$ms" 'BEGIN { printf "%.0f", n / ms * 1000 }')
		rawp=$(publish_raw "$n" 1000)
		ms=$(publish_once "$n" false)
		oursq=$(awk -v n="$n" -v ms="$ms" 'BEGIN { printf "%.0f", n / ms * 1000 }')
		v_raw+=("$raw"); v_imm+=("$ours"); v_rawp+=("$rawp"); v_q+=("$oursq")
		r_imm+=("$(ratio "$ours" "$raw")"); r_q+=("$(ratio "$oursq" "$rawp")")
	done
	record "redis-benchmark PUBLISH, 1 client, no pipelining" "$(printf '%s\n' "${v_raw[@]}" | median)" ops/s
	record "redis_publish(..., immediate => true) in a loop" "$(printf '%s\n' "${v_imm[@]}" | median)" ops/s \
		"redis-benchmark PUBLISH -P 1" "$(printf '%s\n' "${r_imm[@]}" | median)"
	record "redis-benchmark PUBLISH, 1 client, pipeline 1000" "$(printf '%s\n' "${v_rawp[@]}" | median)" ops/s
	record "redis_publish queued, sent at COMMIT" "$(printf '%s\n' "${v_q[@]}" | median)" ops/s \
		"redis-benchmark PUBLISH -P 1000" "$(printf '%s\n' "${r_q[@]}" | median)"
}
