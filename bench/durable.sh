# bench/durable.sh: what the durable paths cost.  Messages at COMMIT
# appended to a Redis Stream (XADD) against published on pub/sub, one
# commit each; and a fast restart of PostgreSQL with a full retry queue
# (saved at shutdown, loaded at start) against one with an empty queue.
# Sourced by bench/run.

# µs per commit of a transaction publishing one 200-byte message, with
# the given stream settings
durable_commit_us() {
	psql -X -q -d bench -At <<SQL | tail -1
SET bmfredis.stream_channels = '$2';
SET bmfredis.stream_also_publish = $3;
SELECT clock_timestamp() AS t0 \gset
DO \$\$ BEGIN FOR i IN 1..$1 LOOP PERFORM redis_publish('bench:durable', repeat('m', 200)); COMMIT; END LOOP; END \$\$;
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000000 / $1, 2);
SQL
}

bench_durable_publish() {
	local n=$1 i ps xa both
	local -a v_ps v_xa v_both r_xa r_both
	pin "$BENCH_CPU"
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		redis-cli -p "$BMF_REDIS_PORT" DEL stream:bench:durable >/dev/null
		ps=$(durable_commit_us "$n" '' on)
		xa=$(durable_commit_us "$n" 'bench:*' off)
		both=$(durable_commit_us "$n" 'bench:*' on)
		v_ps+=("$ps"); v_xa+=("$xa"); v_both+=("$both")
		r_xa+=("$(ratio "$xa" "$ps")"); r_both+=("$(ratio "$both" "$ps")")
	done
	pin 0,1
	redis-cli -p "$BMF_REDIS_PORT" DEL stream:bench:durable >/dev/null
	record "commit publishing one message, pub/sub" "$(printf '%s\n' "${v_ps[@]}" | median)" µs/commit
	record "commit appending it to a stream instead (XADD)" "$(printf '%s\n' "${v_xa[@]}" | median)" µs/commit \
		"pub/sub" "$(printf '%s\n' "${r_xa[@]}" | median)"
	record "commit publishing it and appending it" "$(printf '%s\n' "${v_both[@]}" | median)" µs/commit \
		"pub/sub" "$(printf '%s\n' "${r_both[@]}" | median)"
}

# ms for pg_ctl restart -m fast (the postmaster's PID is updated)
durable_restart_ms() {
	local t0 t1
	t0=$(date +%s%3N)
	bmf_as_user "$(pg_config --bindir)/pg_ctl" -D "$BMF_PGDATA" -l "$BMF_WORK/pgdata.log" -w -t 120 \
		restart -m fast >/dev/null 2>&1
	t1=$(date +%s%3N)
	BMF_PG_PID=$(head -1 "$BMF_PGDATA/postmaster.pid")
	echo $((t1 - t0))
}

durable_pending() { psql -X -q -At -d bench -c "SELECT retry_pending FROM redis_health()" 2>/dev/null | tail -1; }

bench_durable_restart() {
	local i empty full entries redis_pid
	local -a v_empty v_full r
	redis_pid=$(cat "$BMF_WORK/redis.pid")
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		empty=$(durable_restart_ms)
		# a full queue: Redis frozen under one COMMIT of 150,000 invalidations
		kill -STOP "$redis_pid"
		psql -X -q -d bench -c "SET bmfredis.on_error = 'ignore'; SET bmfredis.flush_timeout = 200" \
			-c "SELECT redis_invalidate(array_agg('bench:q:' || g)) FROM generate_series(1, 150000) g" >/dev/null 2>&1
		entries=$(durable_pending)
		full=$(durable_restart_ms)
		[ "$(durable_pending)" = "$entries" ] || echo "the queue came back with $(durable_pending) of $entries" >>"$BMF_WORK/bench-errors.log"
		kill -CONT "$redis_pid"
		for _ in $(seq 1 300); do [ "$(durable_pending)" = 0 ] && break; sleep 0.1; done
		v_empty+=("$empty"); v_full+=("$full"); r+=("$(ratio "$full" "$empty")")
	done
	record "pg_ctl restart -m fast, empty retry queue" "$(printf '%s\n' "${v_empty[@]}" | median)" ms
	record "the same with $entries entries saved and loaded" "$(printf '%s\n' "${v_full[@]}" | median)" ms \
		"empty retry queue" "$(printf '%s\n' "${r[@]}" | median)"
	grep -h "bmfredis: saved\|saved at the last shutdown are queued again" "$BMF_WORK/pgdata.log" | tail -2 >&2
}
