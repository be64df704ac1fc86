# bench/cluster.sh: redis_cache_mget of 1,000 keys spread over the three
# masters of a Redis Cluster (made here, on loopback) against the same call
# on one Redis node, in one run; and single redis_cache_get calls, to show
# what routing by slot costs a call.  Unpinned: four redis-servers and a
# backend share the two vCPUs.  Sourced by bench/run.

# keys/s of redis_cache_mget over 1,000 keys, $1 times in one statement,
# after the settings $2 (empty: the one node)
cluster_mget_once() {
	psql -X -q -d bench -At <<SQL | tail -1
$2
SELECT array_agg('bench:cm' || i) AS keys FROM generate_series(1, 1000) i \gset
SELECT cardinality(array_remove(redis_cache_mget(:'keys'::text[]), NULL)) = 1000 AS all_there \gset
\if :all_there
\else
\warn 'cluster bench: not all 1,000 keys are there'
\quit
\endif
SELECT clock_timestamp() AS t0 \gset
SELECT sum(cardinality(redis_cache_mget(:'keys'::text[]))) FROM generate_series(1, $1) \gset
SELECT round($1 * 1000 / extract(epoch FROM clock_timestamp() - :'t0'));
SQL
}

# µs per redis_cache_get of one key, $1 calls in one statement, after $2
cluster_get_once() {
	psql -X -q -d bench -At <<SQL | tail -1
$2
SELECT redis_cache_get('bench:cm1') \gset
SELECT clock_timestamp() AS t0 \gset
SELECT count(redis_cache_get('bench:cm1')) FROM generate_series(1, $1) \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000000 / $1, 2);
SQL
}

bench_cluster() {
	local reps=$1 i one three cset p
	local -a v_one v_three r g_one g_three gr
	bmf_start_cluster 3 0
	cset="SET bmfredis.cluster = on; SET bmfredis.port = ${BMF_CLUSTER_PORTS[0]};"
	psql -X -q -d bench >/dev/null <<SQL
SELECT redis_cache_mset(array_agg('bench:cm' || i), array_agg(repeat('v', 100))) FROM generate_series(1, 1000) i;
$cset
SELECT redis_cache_mset(array_agg('bench:cm' || i), array_agg(repeat('v', 100))) FROM generate_series(1, 1000) i;
SQL
	for p in "${BMF_CLUSTER_PORTS[@]}"; do
		bmf_log "  cluster master :$p holds $(redis-cli -p "$p" DBSIZE) of the 1,000 keys"
	done
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		one=$(cluster_mget_once "$reps" "")
		three=$(cluster_mget_once "$reps" "$cset")
		v_one+=("$one"); v_three+=("$three"); r+=("$(ratio "$three" "$one")")
		one=$(cluster_get_once 20000 "")
		three=$(cluster_get_once 20000 "$cset")
		g_one+=("$one"); g_three+=("$three"); gr+=("$(ratio "$three" "$one")")
	done
	record "redis_cache_mget of 1,000 keys, one node" "$(printf '%s\n' "${v_one[@]}" | median)" keys/s
	record "redis_cache_mget of 1,000 keys over 3 cluster masters" "$(printf '%s\n' "${v_three[@]}" | median)" keys/s \
		"one node" "$(printf '%s\n' "${r[@]}" | median)"
	record "redis_cache_get in a loop, one node" "$(printf '%s\n' "${g_one[@]}" | median)" "µs/call"
	record "redis_cache_get in a loop, cluster" "$(printf '%s\n' "${g_three[@]}" | median)" "µs/call" \
		"one node" "$(printf '%s\n' "${gr[@]}" | median)"
	bmf_stop_cluster c
}
