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
SELECT count($2) FROM generate_series(1, 2) g \gset
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
	# the floor of a hit's look for invalidations: one system call
	gcc -O2 -o "$BMF_WORK/syscall" "$BMF_ROOT/bench/syscall.c"
	record "one epoll_wait that does not wait (a hit's look for invalidations)" \
		"$(taskset -c "$BENCH_CPU" "$BMF_WORK/syscall")" µs/call
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

# pgbench: one redis_cached product page per transaction over 10,000
# watched products, 1% of them (100 rows) updated each second meanwhile,
# near-cache on against off, and against memcache_get of the same pages;
# then the stale count: a session with the near-cache on reads every page
# twice (so that it keeps them all), 100 products change, and it reads every page again: each must match the
# table.
near_pgbench_setup() {
	psql -X -q -d bench >/dev/null <<'SQL'
CREATE EXTENSION IF NOT EXISTS pgmemcache;
DROP TABLE IF EXISTS near_products;
CREATE TABLE near_products (id int PRIMARY KEY, title text, price numeric, version int NOT NULL DEFAULT 1);
INSERT INTO near_products SELECT i, 'product ' || i, i % 100 + 0.99 FROM generate_series(1, 10000) i;
SELECT redis_watch('near_products', 'near_product', ARRAY['npage:{id}']);
SELECT count(memcache_set('npage:' || id, row_to_json(p)::text)) FROM near_products p;
SQL
	cat >"$BMF_WORK/near_cached.sql" <<'SQL'
\set id random(1, 10000)
SELECT redis_cached('npage:' || :id, '1 hour', 'SELECT title, price, version FROM near_products WHERE id = ' || :id);
SQL
	cat >"$BMF_WORK/near_memcache.sql" <<'SQL'
\set id random(1, 10000)
SELECT memcache_get('npage:' || :id);
SQL
}

# 100 rows a second, until the file $1 goes away
near_updater() {
	while [ -e "$1" ]; do
		psql -X -q -d bench -c "UPDATE near_products SET version = version + 1
			WHERE id IN (SELECT 1 + (random() * 9999)::int FROM generate_series(1, 10))" >/dev/null 2>&1
		sleep 0.1
	done
}

# the steady state: tps over the second half of the run (each pgbench
# connection is a new backend whose near-cache starts empty, and a key is
# kept from its second read; the first half warms every variant alike)
near_tps() {
	PGOPTIONS="-c bmfredis.near_cache=$3" pgbench -n -c "$2" -j "$2" -T "$4" -P 1 -f "$1" bench 2>&1 |
		awk -v half="$(($4 / 2))" '$1 == "progress:" && $2 + 0 > half { sum += $4; n++ }
			END { if (n) printf "%.1f\n", sum / n }'
}

bench_near_pgbench() {
	local secs=$1 c i on off mc flag
	local -A v_on v_off v_mc r_on r_mc
	near_pgbench_setup
	flag=$BMF_WORK/near_updating
	touch "$flag"
	near_updater "$flag" &
	local upd=$!
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		for c in 4 8; do
			off=$(near_tps "$BMF_WORK/near_cached.sql" "$c" off "$secs")
			on=$(near_tps "$BMF_WORK/near_cached.sql" "$c" on "$secs")
			mc=$(near_tps "$BMF_WORK/near_memcache.sql" "$c" off "$secs")
			v_on[$c]+="$on "; v_off[$c]+="$off "; v_mc[$c]+="$mc "
			r_on[$c]+="$(ratio "$on" "$off") "; r_mc[$c]+="$(ratio "$on" "$mc") "
		done
	done
	rm -f "$flag"
	wait "$upd"
	med() { tr ' ' '\n' <<<"$1" | grep . | median; }
	for c in 4 8; do
		record "pgbench $c clients, redis_cached page, near off" "$(med "${v_off[$c]}")" tps
		record "pgbench $c clients, memcache_get of the page" "$(med "${v_mc[$c]}")" tps
		record "pgbench $c clients, redis_cached page, near on" "$(med "${v_on[$c]}")" tps \
			"near off, $c clients" "$(med "${r_on[$c]}")" ">= 3"
		record "  the same, against memcache_get" "" "" "memcache_get, $c clients" "$(med "${r_mc[$c]}")"
	done
	# the stale count, after the updates
	local stale
	stale=$(psql -X -q -At -d bench <<'SQL' | tail -1
SET bmfredis.near_cache = on;
SELECT count(redis_cached('npage:' || id, '1 hour', 'SELECT title, price, version FROM near_products WHERE id = ' || id)) FROM near_products, generate_series(1, 2) \gset
\! psql -X -q -d bench -c "UPDATE near_products SET version = version + 1 WHERE id % 100 = 7"
SELECT count(*) FROM near_products p
 WHERE (redis_cached('npage:' || id, '1 hour', 'SELECT title, price, version FROM near_products WHERE id = ' || id)->0->>'version')::int
       IS DISTINCT FROM p.version;
SQL
)
	record "stale pages after 100 updates, near-cache on" "$stale" pages "" "" "0"
}

# Staleness under CPU starvation (a busy loop on every core): 1,000 rounds of
# an outside SET (redis-cli through COPY FROM PROGRAM, so acknowledged
# before the next statement) followed at once by a near-cache read of the
# key, for near_cache_max_lag 0, 10 ms (the default) and 1 h (which only
# ever looks for what has arrived, as a hit did before the bound existed).
# A stale read is read again until fresh: how long after the write's
# acknowledgement that came is the staleness, reported as the count and
# its median and maximum.  Then what the bound costs a hot hit: the loop
# of bench_near with max_lag 10 ms and 0 against 1 h.
near_lag_rounds() {
	psql -X -q -At -d bench <<SQL 2>&1 | sed -n 's/.*lagres //p'
SET bmfredis.near_cache = on;
SET bmfredis.near_cache_max_lag = '$1';
SET client_min_messages = warning;
CREATE TEMP TABLE sink (x text);
DO \$\$
DECLARE stale int := 0; v text; t0 timestamptz; ms float8[] := '{}';
BEGIN
    FOR i IN 1..1000 LOOP
        PERFORM redis_cache_get('lag:' || (i % 10));
        PERFORM redis_cache_get('lag:' || (i % 10));
        EXECUTE format('COPY sink FROM PROGRAM %L',
            'redis-cli -p $BMF_REDIS_PORT SET bmfredis:lag:' || (i % 10) || ' w' || i || ' >/dev/null');
        t0 := clock_timestamp();
        v := redis_cache_get('lag:' || (i % 10));
        IF v IS DISTINCT FROM 'w' || i THEN
            stale := stale + 1;
            WHILE redis_cache_get('lag:' || (i % 10)) IS DISTINCT FROM 'w' || i LOOP END LOOP;
            ms := ms || extract(epoch FROM clock_timestamp() - t0) * 1000;
        END IF;
    END LOOP;
    RAISE WARNING 'lagres % % %', stale,
        coalesce((SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 2) FROM unnest(ms) x), 0),
        coalesce((SELECT round(max(x)::numeric, 2) FROM unnest(ms) x), 0);
END
\$\$;
SQL
}

bench_near_lag() {
	local lag out i v_lag v_strict v_look r10 r0 stale p50 max look strict lagv
	redis-cli -p "$BMF_REDIS_PORT" EXISTS bmfredis:bench:k | grep -q 1 || near_setup
	bmf_busy_start
	for lag in 1h 10 0; do
		out=$(near_lag_rounds "$lag")
		read -r stale p50 max <<<"$out"
		record "near-cache read right after an outside SET, CPU starved, max_lag $lag: stale reads of 1,000" "${stale:-?}" reads
		record "  their staleness after the acknowledgement, median / max" "${p50:-?} / ${max:-?}" ms
	done
	bmf_busy_stop
	pin "$BENCH_CPU"
	v_look=(); v_lag=(); v_strict=(); r10=(); r0=()
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		look=$(PGOPTIONS="-c bmfredis.near_cache_max_lag=1h" near_loop_us 20000 "redis_cache_get('bench:k')" on)
		lagv=$(near_loop_us 20000 "redis_cache_get('bench:k')" on)
		strict=$(PGOPTIONS="-c bmfredis.near_cache_max_lag=0" near_loop_us 20000 "redis_cache_get('bench:k')" on)
		v_look+=("$look"); v_lag+=("$lagv"); v_strict+=("$strict")
		r10+=("$(ratio "$lagv" "$look")"); r0+=("$(ratio "$strict" "$look")")
	done
	record "redis_cache_get hit, max_lag 1 h (a look only)" "$(printf '%s\n' "${v_look[@]}" | median)" µs/call
	record "redis_cache_get hit, max_lag 10 ms (default)" "$(printf '%s\n' "${v_lag[@]}" | median)" µs/call \
		"max_lag 1 h" "$(printf '%s\n' "${r10[@]}" | median)" "<= 1.2"
	record "redis_cache_get hit, max_lag 0 (a PING each)" "$(printf '%s\n' "${v_strict[@]}" | median)" µs/call \
		"max_lag 1 h" "$(printf '%s\n' "${r0[@]}" | median)"
	pin 0,1
}
