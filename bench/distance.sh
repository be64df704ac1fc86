# bench/distance.sh: bmfredis with Redis a network away.  test/netproxy
# (built here) sits between PostgreSQL and Redis, one in front of the
# plain port and one in front of the TLS port, and delays each direction
# by half the round trip; every call is measured at loopback (no proxy),
# 0.2 ms, 1 ms and 5 ms round trips, with its ratio against the same call
# at loopback, and the near-cache's pgbench against the near-cache off at
# the same distance.  The proxies count round trips: each call's are
# counted at 1 ms.  Sourced by bench/run.
#
# BENCH_DISTANCES (default "0 0.2 1 5") picks the round trips, in ms;
# BENCH_DISTANCE_SECS (default 10) the length of each pgbench run.

BENCH_DISTANCES=${BENCH_DISTANCES:-0 0.2 1 5}

distance_start() {
	local i
	gcc -O2 -Wall -Wextra -Werror -o "$BMF_WORK/netproxy" "$BMF_ROOT/test/netproxy.c" ||
		bmf_die "netproxy does not build"
	DIST_PORT=$(bmf_free_port); DIST_CTL=$(bmf_free_port)
	DIST_TLS_PORT=$(bmf_free_port); DIST_TLS_CTL=$(bmf_free_port)
	"$BMF_WORK/netproxy" "$DIST_PORT" "$BMF_REDIS_PORT" "$DIST_CTL" </dev/null >"$BMF_WORK/netproxy.log" 2>&1 &
	echo $! >"$BMF_WORK/netproxy.pid"
	"$BMF_WORK/netproxy" "$DIST_TLS_PORT" "$BMF_REDIS_TLS_PORT" "$DIST_TLS_CTL" </dev/null >"$BMF_WORK/netproxy-tls.log" 2>&1 &
	echo $! >"$BMF_WORK/netproxy-tls.pid"
	for i in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$DIST_TLS_CTL") 2>/dev/null && return 0
		sleep 0.05
	done
	bmf_die "netproxy did not start"
}

distance_stop() {
	bmf_stop_pid "$(cat "$BMF_WORK/netproxy.pid")"
	bmf_stop_pid "$(cat "$BMF_WORK/netproxy-tls.pid")"
	rm -f "$BMF_WORK/netproxy.pid" "$BMF_WORK/netproxy-tls.pid"
}

# dctl PORT COMMAND: a control command, its one-line answer
dctl() { local l; exec 3<>"/dev/tcp/127.0.0.1/$1"; echo "$2" >&3; read -r l <&3; exec 3<&-; echo "$l"; }

# distance_set RTT_MS: both proxies delay each way by half of it
distance_set() {
	local us; us=$(awk -v r="$1" 'BEGIN { printf "%d", r * 500 }')
	dctl "$DIST_CTL" "delay $us" >/dev/null
	dctl "$DIST_TLS_CTL" "delay $us" >/dev/null
}

# the session settings that reach Redis at RTT_MS (0: directly), plain or tls
distance_gucs() {
	local port
	if [ "$2" = tls ]; then
		[ "$1" = 0 ] && port=$BMF_REDIS_TLS_PORT || port=$DIST_TLS_PORT
		echo "-c bmfredis.port=$port -c bmfredis.tls=on -c bmfredis.tls_ca_file=$BMF_CERTS/ca.crt"
	else
		[ "$1" = 0 ] && port=$BMF_REDIS_PORT || port=$DIST_PORT
		echo "-c bmfredis.port=$port"
	fi
}

# calls per measurement: about half a second of round trips, at least 20
distance_n() { awk -v r="$1" -v n="$2" 'BEGIN { m = (r > 0) ? int(500 / r) : n; if (m > n) m = n; if (m < 20) m = 20; print m }'; }

# µs per call of EXPR, N calls in one statement, after two untimed calls
distance_loop() {
	PGOPTIONS="$(distance_gucs "$1" plain) -c bmfredis.near_cache=${4:-off}" psql -X -q -d bench -At <<SQL | tail -1
SELECT array_agg('bench:dm' || i) AS keys FROM generate_series(1, 100) i \gset
SELECT count($3) FROM generate_series(1, 2) \gset
SELECT clock_timestamp() AS t0 \gset
SELECT count($3) FROM generate_series(1, $2) \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000000 / $2, 1);
SQL
}

# round trips per call of EXPR at the proxy (over 20 calls, one at a time)
distance_trips() {
	local r
	dctl "$DIST_CTL" zero >/dev/null
	PGOPTIONS="$(distance_gucs 1 plain)" psql -X -q -d bench -At >/dev/null <<SQL
SELECT array_agg('bench:dm' || i) AS keys FROM generate_series(1, 100) i \gset
SELECT count($1) FROM generate_series(1, 2) \gset
\! bash -c 'exec 3<>/dev/tcp/127.0.0.1/$DIST_CTL; echo zero >&3; read -r l <&3'
SELECT count($1) FROM generate_series(1, 20) \gset
SQL
	r=$(dctl "$DIST_CTL" stats | sed -n 's/.* round_trips \([0-9]*\) .*/\1/p')
	awk -v r="$r" 'BEGIN { printf "%.1f\n", r / 20 }'
}

distance_setup() {
	local value; value=$(head -c 100 /dev/zero | tr '\0' v)
	psql -X -q -d bench >/dev/null <<SQL
SELECT redis_cache_set('bench:dk', '$value');
SELECT redis_cache_mset(array_agg('bench:dm' || i), array_agg('$value'::text)) FROM generate_series(1, 100) i;
DROP TABLE IF EXISTS dist_products;
CREATE TABLE dist_products (id int PRIMARY KEY, title text, price numeric, version int NOT NULL DEFAULT 1);
INSERT INTO dist_products SELECT i, 'product ' || i, i % 100 + 0.99 FROM generate_series(1, 10000) i;
SELECT redis_watch('dist_products', 'dist_product', ARRAY['dpage:{id}']);
SELECT count(redis_cached('npage:' || id, '1 hour', 'SELECT title, price, version FROM near_products WHERE id = ' || id)) FROM near_products;
DROP TABLE IF EXISTS dist_plain;
CREATE TABLE dist_plain (LIKE dist_products INCLUDING ALL);
INSERT INTO dist_plain SELECT * FROM dist_products;
SQL
	# a pgbench client's first transaction reads every page twice, in two
	# MGETs, as a long-lived (pooled) backend would have: the near-cache
	# keeps a key from its second read, and without this each new client
	# would spend 20,000 round trips warming up
	cat >"$BMF_WORK/dist_cached.sql" <<'SQL'
\if :warmed = 0
SELECT count(*) FROM unnest(redis_cache_mget(ARRAY(SELECT 'npage:' || i FROM generate_series(1, 10000) i)));
SELECT count(*) FROM unnest(redis_cache_mget(ARRAY(SELECT 'npage:' || i FROM generate_series(1, 10000) i)));
\set warmed 1
\endif
\set id random(1, 10000)
SELECT redis_cached('npage:' || :id, '1 hour', 'SELECT title, price, version FROM near_products WHERE id = ' || :id);
SQL
	cat >"$BMF_WORK/dist_update.sql" <<'SQL'
\set id random(1, 10000)
UPDATE dist_products SET version = version + 1 WHERE id = :id;
SQL
	cat >"$BMF_WORK/dist_plain_update.sql" <<'SQL'
\set id random(1, 10000)
UPDATE dist_plain SET version = version + 1 WHERE id = :id;
SQL
}

# distance_worker_port PORT: the bench database's worker reaches Redis on
# PORT ("": the server's setting), started anew to read it
distance_worker_port() {
	local old w
	if [ -n "$1" ]; then
		psql -X -q -d bench -c "ALTER DATABASE bench SET bmfredis.port = $1" >/dev/null
	else
		psql -X -q -d bench -c "ALTER DATABASE bench RESET bmfredis.port" >/dev/null
	fi
	old=$(psql -X -A -t -d bench -c "SELECT worker_pid FROM redis_health()")
	[ -n "$old" ] && psql -X -q -d bench -c "SELECT pg_terminate_backend($old)" >/dev/null
	for _ in $(seq 1 200); do
		w=$(psql -X -A -t -d bench -c "SELECT worker_pid FROM redis_health()")
		[ -n "$w" ] && [ "$w" != "$old" ] && return 0
		sleep 0.05
	done
	bmf_die "the bench database's worker did not start again"
}

# ms per transaction of pgbench script $2 at RTT $1, one client, $3 seconds
distance_latency() {
	PGOPTIONS="$(distance_gucs "$1" plain)" pgbench -n -c 1 -T "$3" -f "$2" bench 2>&1 |
		sed -n 's/^latency average = \([0-9.]*\) ms/\1/p'
}

# the first call of a new session: "ms round_trips", plain or tls (the
# round trips counted before the session ends: a TLS close_notify is a
# flight of bytes, not a round trip)
distance_first() {
	local ctl=$DIST_CTL
	[ "$2" = tls ] && ctl=$DIST_TLS_CTL
	dctl "$ctl" zero >/dev/null
	PGOPTIONS="$(distance_gucs "$1" "$2")" psql -X -q -d bench -At <<SQL | tail -1
SELECT clock_timestamp() AS t0 \gset
SELECT redis_cache_get('bench:dk') \gset
SELECT round(extract(epoch FROM clock_timestamp() - :'t0') * 1000, 2) AS ms \gset
\! bash -c 'exec 3<>/dev/tcp/127.0.0.1/$ctl; echo stats >&3; read -r l <&3; echo "\$l"' >$BMF_WORK/first.stats
SELECT :'ms';
SQL
	sed -n 's/.* round_trips \([0-9]*\) .*/\1/p' "$BMF_WORK/first.stats"
}

# steady-state tps of near_tps, at RTT $1
distance_tps() {
	PGOPTIONS="$(distance_gucs "$1" plain) -c bmfredis.near_cache=$4" pgbench -n -M prepared -c "$3" -j "$3" -T "$5" -P 1 -D warmed=0 -f "$2" bench 2>&1 |
		awk -v half="$(($5 / 2))" '$1 == "progress:" && $2 + 0 > half { sum += $4; n++ }
			END { if (n) printf "%.1f\n", sum / n }'
}

# Redis connections: what one backend holds after every kind of use, and
# what N busy backends hold (the proxy's open links)
distance_connections() {
	local links
	dctl "$DIST_CTL" reset >/dev/null
	links=$(PGOPTIONS="$(distance_gucs 1 plain) -c bmfredis.near_cache=on" psql -X -q -d bench -At <<SQL | tail -1
SELECT count(redis_cache_get('bench:dk')) FROM generate_series(1, 3) \gset
BEGIN;
UPDATE dist_products SET version = version + 1 WHERE id <= 2000;
COMMIT;
SELECT count(*) FROM redis_connections() WHERE state <> 'closed' \gset
SELECT :count || ' ' || (SELECT string_agg(node, ', ' ORDER BY node) FROM redis_connections() WHERE state <> 'closed');
SQL
)
	echo "$links"
}

bench_distance() {
	local secs=${BENCH_DISTANCE_SECS:-10} rtt i what expr n v
	local -A base
	distance_start
	near_pgbench_setup
	distance_setup
	# --- single calls, one session each, against the same call at loopback
	for what in get mget cached lock; do
		case $what in
		get) expr="redis_cache_get('bench:dk')" ;;
		mget) expr="redis_cache_mget(:'keys'::text[])" ;;
		cached) expr="redis_cached('bench:dc', '1 hour', 'SELECT 1')" ;;
		lock) expr="redis_unlock('bench:d', redis_lock('bench:d', '30 s', '1 s'))" ;;
		esac
		for rtt in $BENCH_DISTANCES; do
			distance_set "$rtt"
			n=$(distance_n "$rtt" 2000)
			local -a vs=()
			for i in $(seq 1 "$BMF_BENCH_RUNS"); do vs+=("$(distance_loop "$rtt" "$n" "$expr")"); done
			v=$(printf '%s\n' "${vs[@]}" | median)
			[ "$rtt" = 0 ] && base[$what]=$v
			record "$what at ${rtt} ms round trip" "$v" µs/call "$what at loopback" "$(ratio "$v" "${base[$what]}")"
		done
		distance_set 1
		record "  $what: round trips a call" "$(distance_trips "$expr")" trips "" "" \
			"$([ "$what" = lock ] && echo 2 || echo 1)"
	done
	# --- a watched one-row UPDATE: its transaction's latency (COMMIT waits
	# for Redis' acknowledgement)
	for rtt in $BENCH_DISTANCES; do
		distance_set "$rtt"
		local -a vu=() vp=()
		for i in $(seq 1 "$BMF_BENCH_RUNS"); do
			vu+=("$(distance_latency "$rtt" "$BMF_WORK/dist_update.sql" 3)")
			vp+=("$(distance_latency "$rtt" "$BMF_WORK/dist_plain_update.sql" 3)")
		done
		v=$(printf '%s\n' "${vp[@]}" | median)
		record "unwatched one-row UPDATE at ${rtt} ms" "$v" ms/xact
		record "watched one-row UPDATE at ${rtt} ms" "$(printf '%s\n' "${vu[@]}" | median)" ms/xact \
			"unwatched, ${rtt} ms" "$(ratio "$(printf '%s\n' "${vu[@]}" | median)" "$v")"
	done
	# --- the two COMMIT modes: the watched UPDATE's COMMIT, and when
	# another client of Redis sees its invalidation (bench/seen, libpq)
	gcc -O2 -Wall -Werror -I"$(pg_config --includedir)" -o "$BMF_WORK/seen" "$BMF_ROOT/bench/seen.c" \
		-L"$(pg_config --libdir)" -lpq || bmf_die "bench/seen.c does not build"
	local mode cm sm
	for rtt in $BENCH_DISTANCES; do
		distance_set "$rtt"
		# the worker, which sends what COMMITs do not wait for, at the same distance
		distance_worker_port "$([ "$rtt" = 0 ] && echo "$BMF_REDIS_PORT" || echo "$DIST_PORT")"
		for mode in on off; do
			local -a vc=() vs=()
			for i in $(seq 1 "$BMF_BENCH_RUNS"); do
				read -r cm sm <<<"$(PGDATABASE=bench PGOPTIONS="$(distance_gucs "$rtt" plain) -c bmfredis.commit_wait=$mode" \
					"$BMF_WORK/seen" "$BMF_REDIS_PORT" bmfredis:dpage:1 "$(distance_n "$rtt" 200 | awk '{ print ($1 > 200) ? 200 : $1 }')" \
					"UPDATE dist_products SET version = version + 1 WHERE id = 1")"
				vc+=("$cm"); vs+=("$sm")
			done
			record "watched UPDATE, commit_wait = $mode, ${rtt} ms: COMMIT" "$(printf '%s\n' "${vc[@]}" | median)" ms
			record "  another client sees the invalidation after" "$(printf '%s\n' "${vs[@]}" | median)" ms
		done
	done
	distance_worker_port ""
	distance_set 1
	local t r
	dctl "$DIST_CTL" zero >/dev/null
	PGOPTIONS="$(distance_gucs 1 plain)" pgbench -n -c 1 -t 20 -f "$BMF_WORK/dist_update.sql" bench >/dev/null 2>&1
	r=$(dctl "$DIST_CTL" stats | sed -n 's/.* round_trips \([0-9]*\) .*/\1/p')
	record "  watched UPDATE: round trips a transaction (20 in a session, after its connect)" \
		"$(awk -v r="$r" 'BEGIN { printf "%.2f\n", (r - 1) / 20 }')" trips "" "" "1"
	# --- a new session's first call, plain and TLS
	for rtt in $BENCH_DISTANCES; do
		distance_set "$rtt"
		for what in plain tls; do
			local -a vf=() vt=()
			for i in $(seq 1 "$BMF_BENCH_RUNS"); do
				{ read -r t; read -r r; } <<<"$(distance_first "$rtt" "$what")"
				vf+=("$t"); vt+=("$r")
			done
			record "first call of a session, $what, at ${rtt} ms" "$(printf '%s\n' "${vf[@]}" | median)" ms
			[ "$rtt" = 1 ] && record "  its round trips, $what (the connect's included)" \
				"$(printf '%s\n' "${vt[@]}" | median)" trips "" "" "$([ "$what" = tls ] && echo "<= 3" || echo "<= 2")"
		done
	done
	# --- pgbench: a redis_cached product page a transaction
	local flag=$BMF_WORK/near_updating c on off
	touch "$flag"
	near_updater "$flag" &
	local upd=$!
	for rtt in $BENCH_DISTANCES; do
		distance_set "$rtt"
		for c in 4 8; do
			local -a von=() voff=() rr=()
			for i in $(seq 1 "$BMF_BENCH_RUNS"); do
				off=$(distance_tps "$rtt" "$BMF_WORK/dist_cached.sql" "$c" off "$secs")
				on=$(distance_tps "$rtt" "$BMF_WORK/dist_cached.sql" "$c" on "$secs")
				voff+=("$off"); von+=("$on"); rr+=("$(ratio "$on" "$off")")
			done
			record "pgbench $c clients, cached page, near off, ${rtt} ms" "$(printf '%s\n' "${voff[@]}" | median)" tps
			record "pgbench $c clients, cached page, near on, ${rtt} ms" "$(printf '%s\n' "${von[@]}" | median)" tps \
				"near off, $c clients, ${rtt} ms" "$(printf '%s\n' "${rr[@]}" | median)" \
				"$([ "$rtt" = 1 ] && echo ">= 10")"
		done
	done
	rm -f "$flag"
	wait "$upd"
	# the stale count at 1 ms, after the updates
	distance_set 1
	local stale
	stale=$(PGOPTIONS="$(distance_gucs 1 plain)" psql -X -q -At -d bench <<'SQL' | tail -1
SET bmfredis.near_cache = on;
SELECT count(redis_cached('npage:' || id, '1 hour', 'SELECT title, price, version FROM near_products WHERE id = ' || id)) FROM near_products, generate_series(1, 2) \gset
\! psql -X -q -d bench -c "UPDATE near_products SET version = version + 1 WHERE id % 100 = 7"
SELECT count(*) FROM near_products p
 WHERE (redis_cached('npage:' || id, '1 hour', 'SELECT title, price, version FROM near_products WHERE id = ' || id)->0->>'version')::int
       IS DISTINCT FROM p.version;
SQL
)
	record "stale pages after 100 updates, near-cache on, 1 ms" "$stale" pages "" "" "0"
	# --- connections
	read -r n what <<<"$(distance_connections)"
	record "Redis connections one backend holds (near-cache read, large transaction)" "$n" conns "" "" "" 
	bmf_log "  they are: $what"
	local during
	PGOPTIONS="$(distance_gucs 1 plain) -c bmfredis.near_cache=on" pgbench -n -c 100 -j 4 -T 6 \
		-f "$BMF_WORK/near_cached.sql" bench >"$BMF_WORK/dist_100.log" 2>&1 &
	local pg100=$!
	sleep 4
	during=$(dctl "$DIST_CTL" stats | sed -n 's/^links \([0-9]*\) .*/\1/p')
	wait "$pg100"
	record "Redis connections of 100 busy backends (near-cache on)" "$during" conns
	distance_stop
}
