# Sentinel: a master, a replica and three sentinels on loopback; the whole
# server is pointed at the sentinels.  The master is killed while a watched
# table is updated; after the failover nothing committed is lost (the retry
# queue reaches the promoted node), and the cache, invalidation and lock
# suites pass against the promoted node.
. "$(dirname "$0")/../tap.sh"
tap_need "$(bmf_sentinel_bin)=$(bmf_sentinel_bin)"
tap_db bmf_sentinel

bmf_start_redis sm
mport=$BMF_REDIS_PORT
bmf_start_redis sr --replicaof 127.0.0.1 "$mport"
rport=$BMF_REDIS_PORT
disown -a	# they are stopped by PID; no job-control noise when one is killed
sports=()
for i in 1 2 3; do
	sp=$(bmf_free_port)
	sports+=("$sp")
	d=$BMF_WORK/sentinel$i
	mkdir -p "$d"
	cat >"$d/sentinel.conf" <<EOF
port $sp
bind 127.0.0.1
daemonize no
dir $d
logfile $d/sentinel.log
sentinel monitor mymaster 127.0.0.1 $mport 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 4000
sentinel parallel-syncs mymaster 1
EOF
	chown -R "$BMF_USER" "$d"
	bmf_spawn_as_user "$(bmf_sentinel_bin)" "$d/sentinel.conf" </dev/null >/dev/null 2>&1 &
	echo $! >"$BMF_WORK/sentinel$i.pid"
	disown -a
done
master_port() { redis-cli -p "${sports[0]}" SENTINEL get-master-addr-by-name mymaster 2>/dev/null | tail -1; }
for _ in $(seq 1 100); do
	[ "$(redis-cli -p "${sports[0]}" SENTINEL ckquorum mymaster 2>/dev/null | cut -c1-2)" = OK ] &&
		[ "$(redis-cli -p "${sports[0]}" SENTINEL replicas mymaster 2>/dev/null | grep -c "$rport")" -ge 1 ] && break
	sleep 0.1
done
is "three sentinels watch the master and know its replica" "$(master_port)" "$mport"

list="127.0.0.1:${sports[0]}, 127.0.0.1:${sports[1]},127.0.0.1:${sports[2]}"
trap 'server_reset bmfredis.sentinels bmfredis.sentinel_master; psql -X -q -d postgres -c "ALTER DATABASE postgres RESET bmfredis.subscribe" >/dev/null' EXIT
server_set "bmfredis.sentinels=$list" bmfredis.sentinel_master=mymaster

out=$(qv <<<"SET bmfredis.sentinels = 'nohost'")
like "a malformed sentinel list is refused" "$out" "invalid value for parameter \"bmfredis.sentinels\""
out=$(q "SELECT redis_cache_set('s:k', 'through sentinel'); SELECT node FROM redis_connections();")
is "the master is found through the sentinels" "$out" "t
sentinel:mymaster (127.0.0.1:$mport)"
is "  and the value is on the master" "$(redis-cli -p "$mport" GET bmfredis:s:k)" "through sentinel"
is "redis_health names the node and the master it reached" \
	"$(q "SELECT healthy, role, node FROM redis_health()")" "t|master|sentinel:mymaster (127.0.0.1:$mport)"
out=$(q "SET bmfredis.sentinel_master = 'nosuch'; SET bmfredis.on_error = 'error'; SELECT redis_cache_get('s:k')")
like "an unknown master name: a clear error" "$out" "could not connect to Redis"
like "  naming the master" "$out" "named master \"nosuch\""

# a sentinel that hangs (SIGSTOP: the kernel accepts, nobody answers)
# costs its share of connect_timeout once; the one that answered is asked
# first from then on
kill -STOP "$(cat "$BMF_WORK/sentinel1.pid")"
out=$(qs <<'EOF'
SET bmfredis.connect_timeout = '1500ms';
SELECT redis_disconnect() \gset
SELECT clock_timestamp() AS t0 \gset
SELECT redis_cache_get('s:k');
SELECT (extract(epoch FROM clock_timestamp() - :'t0') * 1000)::int;
SELECT redis_disconnect() \gset
SELECT clock_timestamp() AS t0 \gset
SELECT redis_cache_get('s:k');
SELECT (extract(epoch FROM clock_timestamp() - :'t0') * 1000)::int;
EOF
)
kill -CONT "$(cat "$BMF_WORK/sentinel1.pid")"
first=$(sed -n 2p <<<"$out"); second=$(sed -n 4p <<<"$out")
bmf_log "with the first sentinel hanging: ${first} ms, then ${second} ms"
is "a hanging first sentinel: the next one answers" "$(sed -n 1p <<<"$out")" "through sentinel"
check "  after the hanging one's share of connect_timeout (${first} ms)" [ "${first:-0}" -ge 400 ]
check "  and the next connect asks the one that answered first (${second} ms)" [ "${second:-9999}" -lt 400 ]
out=$(qv <<<"SET bmfredis.sentinels = '$(for i in $(seq 1 65); do printf '127.0.0.1:%d,' "$i"; done)'")
like "more than 64 sentinels are refused" "$out" "At most 64 addresses"

# the subscriber worker finds the master through the sentinels too
psql -X -q -d postgres -c "CREATE EXTENSION IF NOT EXISTS bmfredis" \
	-c "ALTER DATABASE postgres SET bmfredis.subscribe = 'sent:*'" >/dev/null
spid=$(subscriber_pid postgres)
subscribed() {  # subscribed PORT: the worker's connection is there
	local i
	for i in $(seq 1 150); do
		redis-cli -p "$1" CLIENT LIST 2>/dev/null | grep -q "name=bmfredis:[^ ]*:$spid .*psub=1 " && return 0
		sleep 0.1
	done
	return 1
}
check "the subscriber worker subscribes on the master" subscribed "$mport"

# a watched table, a cached row, replicated to the replica
q "CREATE TABLE products (id int PRIMARY KEY, title text);
INSERT INTO products SELECT i, 'title ' || i FROM generate_series(1, 20) i;
SELECT redis_watch('products', 'product', ARRAY['product:{id}']);" >/dev/null
q "SELECT redis_cache_set('product:' || i, 'title ' || i) FROM generate_series(1, 20) i" >/dev/null
redis-cli -p "$mport" WAIT 1 2000 >/dev/null
is "the replica has the cached rows" "$(redis-cli -p "$rport" GET bmfredis:product:7)" "title 7"

# a session with the near-cache holds product:15 across the failover
psql -X -q -A -t -d "$BMF_DB" >"$BMF_WORK/near-failover.out" 2>&1 <<SQL &
SET bmfredis.near_cache = on;
SELECT redis_cache_get('product:15');
\\! while [ ! -e "$BMF_WORK/near-go" ]; do sleep 0.1; done
SELECT redis_cache_get('product:15');
SQL
nearpid=$!
sleep 0.5

# the master dies; changes keep committing
"$BMF_REDISCTL" -n sm kill
start=$(ms_now)
out=$(q "SET bmfredis.connect_timeout = '300ms'; UPDATE products SET title = title || ' (new)' WHERE id <= 10; SELECT 'committed';" 2>&1)
like "with the master dead, an UPDATE of a watched table commits" "$out" "committed$"
for _ in $(seq 1 300); do [ "$(master_port)" = "$rport" ] && break; sleep 0.1; done
is "Sentinel promoted the replica" "$(master_port)" "$rport"
bmf_log "failover took $(( $(ms_now) - start )) ms"

# the invalidations committed during the failover reach the promoted node
for _ in $(seq 1 100); do
	[ "$(redis-cli -p "$rport" EXISTS bmfredis:product:3)" = 0 ] && break
	sleep 0.1
done
is "invalidations committed while the master was dead reach the promoted node" \
	"$(redis-cli -p "$rport" EXISTS bmfredis:product:1 bmfredis:product:5 bmfredis:product:10)" "0"
is "  and untouched rows stay cached" "$(redis-cli -p "$rport" GET bmfredis:product:15)" "title 15"
redis-cli -p "$rport" SET bmfredis:product:15 "changed on the new master" >/dev/null
touch "$BMF_WORK/near-go"
wait $nearpid
is "a near-cache copy made on the old master is not served after the failover" \
	"$(cat "$BMF_WORK/near-failover.out")" "title 15
changed on the new master"
out=$(q "SELECT redis_cache_get('product:3') IS NULL; SELECT redis_cache_set('after', 'on the new master');
SELECT node FROM redis_connections();")
is "a backend reconnects to the promoted node" "$out" "t
t
sentinel:mymaster (127.0.0.1:$rport)"
is "  where the writes go" "$(redis-cli -p "$rport" GET bmfredis:after)" "on the new master"
out=$(q "SELECT redis_unlock('s-lock', redis_lock('s-lock', '10 s', '1 s'))")
is "locks work on the promoted node" "$out" "t"
check "the subscriber worker follows the failover" subscribed "$rport"
psql -X -d postgres -c "LISTEN \"sent:x\"" -c "SELECT pg_sleep(2)" >"$BMF_WORK/sent-listen.out" 2>&1 &
lpid=$!
sleep 0.5
redis-cli -p "$rport" PUBLISH sent:x after-failover >/dev/null
wait "$lpid"
like "  and a message published on the promoted node arrives as NOTIFY" "$(cat "$BMF_WORK/sent-listen.out")" 'payload "after-failover"'

# every connect asks a sentinel on a connection of its own: 2,000
# reconnects in one backend must not grow it
out=$(qs <<'EOF'
CREATE FUNCTION pg_temp.reconnect(n int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..n LOOP
    PERFORM redis_disconnect();
    PERFORM redis_cache_get('s:k');
  END LOOP;
END $$;
SELECT pg_temp.reconnect(500);
SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmRSS:\s+(\d+)'))[1];
SELECT pg_temp.reconnect(2000);
SELECT (regexp_match(pg_read_file('/proc/self/status'), 'VmRSS:\s+(\d+)'))[1];
EOF
)
rss0=$(sed -n 2p <<<"$out"); rss1=$(sed -n 4p <<<"$out")
bmf_log "RSS $rss0 kB after 500 reconnects through Sentinel, $rss1 kB after 2,000 more"
check "2,000 reconnects through Sentinel do not grow the backend (< 256 kB)" [ $(( ${rss1:-999999} - ${rss0:-0} )) -lt 256 ]

# the old master comes back: Sentinel makes it a replica of the new one
"$BMF_REDISCTL" -n sm start
for _ in $(seq 1 150); do
	[ "$(redis-cli -p "$mport" INFO replication 2>/dev/null | tr -d '\r' | grep -c '^master_link_status:up')" = 1 ] && break
	sleep 0.1
done
is "the old master rejoins as a replica" "$(redis-cli -p "$mport" ROLE | head -1)" "slave"

# a sentinel that names a replica as master (stale, or lying): ROLE says
# "slave", so nothing is written there
gcc -O1 -Wall -Werror -o "$BMF_WORK/fake-sentinel" "$BMF_ROOT/test/fakeredis.c" || not_ok "fakeredis builds"
fport=$(bmf_free_port)
printf 'keep\n*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%s\r\n' "${#mport}" "$mport" >"$BMF_WORK/fake-sentinel.payload"
"$BMF_WORK/fake-sentinel" "$fport" "$BMF_WORK/fake-sentinel.payload" </dev/null >"$BMF_WORK/fake-sentinel.log" 2>&1 &
echo $! >"$BMF_WORK/fake-sentinel.pid"
for _ in $(seq 1 50); do redis-cli -p "$fport" PING >/dev/null 2>&1 && break; sleep 0.1; done
out=$(q "SET bmfredis.sentinels = '127.0.0.1:$fport'; SET bmfredis.on_error = 'error';
SELECT redis_cache_set('lie', 'x')" 2>&1)
like "a node a sentinel names master but whose ROLE is not master is refused" "$out" "says its role is slave"
is "  and nothing was written through it" "$(redis-cli -p "$rport" EXISTS bmfredis:lie)" "0"
bmf_stop_pid "$(cat "$BMF_WORK/fake-sentinel.pid")"

# the suites, against the promoted node (their redis-cli checks too)
pgxs=$(dirname "$(dirname "$(pg_config --pgxs)")")
mkdir -p "$BMF_WORK/sentinel-regress"
(cd "$BMF_ROOT" && BMF_REDISCTL="$BMF_ROOT/test/redisctl -n sr" "$pgxs/test/regress/pg_regress" \
	--host=127.0.0.1 --port="$PGPORT" --user=postgres --bindir="$(pg_config --bindir)" \
	--inputdir="$BMF_ROOT" --outputdir="$BMF_WORK/sentinel-regress" \
	--load-extension=bmfredis --dbname=bmf_sentinel_regress cache invalidate tags locks) \
	>"$BMF_WORK/sentinel-regress/out.txt" 2>&1
for s in cache invalidate tags locks; do
	if regress_passed "$BMF_WORK/sentinel-regress/out.txt" "$s"; then
		ok "the $s suite passes against the promoted node"
	else
		not_ok "the $s suite passes against the promoted node" "$(head -60 "$BMF_WORK/sentinel-regress/regression.diffs" 2>/dev/null)"
	fi
done
refute "no backend crashed" grep -Eq "terminated by signal (4|6|7|8|11)[^0-9]" "$BMF_WORK/pgdata.log"

# (any sentinel may start it; one whose view of the replica is stale says
# NOGOODSLAVE for a while on a busy machine: ask each in turn, for 60 s)
cat >"$BMF_WORK/failover-back" <<SH
#!/bin/sh
for i in \$(seq 1 200); do
	for p in ${sports[*]}; do
		r=\$(redis-cli -p \$p SENTINEL FAILOVER mymaster)
		[ "\$r" = OK ] && { echo "\$r (sentinel \$p, try \$i)" >$BMF_WORK/sentinel-failover.reply; exit 0; }
	done
	sleep 0.1
done
{ echo "\$r"; redis-cli -p ${sports[0]} SENTINEL replicas mymaster | tr '\\n' ' '; } >$BMF_WORK/sentinel-failover.reply
SH
chmod 755 "$BMF_WORK/failover-back"

# a master demoted while a backend holds a connection to it: its READONLY
# (or the dropped connection) is not trusted; the sentinels are asked again
out=$(qs 2>&1 <<EOF
SET bmfredis.on_error = 'warning';
SELECT redis_cache_set('before', 'on sr');
\\! for a in 1 2 3; do $BMF_WORK/failover-back; for i in \$(seq 1 300); do [ "\$(redis-cli -p $rport ROLE | head -1)" = slave ] && break 2; sleep 0.1; done; echo "attempt \$a did not demote it" >>$BMF_WORK/sentinel-failover.reply; done
SELECT redis_cache_set('during', 'x');
SELECT pg_sleep(1);
SELECT redis_cache_set('after2', 'on sm');
SELECT node FROM redis_connections();
EOF
)
bmf_log "$out"
for _ in $(seq 1 100); do [ "$(master_port)" = "$mport" ] && break; sleep 0.1; done
is "a Sentinel-driven failover back to the old master" "$(master_port)" "$mport"
echo "# SENTINEL FAILOVER answered: $(cat "$BMF_WORK/sentinel-failover.reply" 2>/dev/null)"
is "  a write during it (Sentinel kills the demoted node's clients; SET is retried) reached the new master" \
	"$(redis-cli -p "$mport" GET bmfredis:during)" "x"
like "  the backend reconnects to the new master" "$out" "sentinel:mymaster \\(127.0.0.1:$mport\\)"
is "  where the write went" "$(redis-cli -p "$mport" GET bmfredis:after2)" "on sm"
# a master made a replica behind Sentinel's back keeps its clients: the
# READONLY it answers drops the connection, and the next connect's ROLE
# check refuses it until Sentinel names a master again
out=$(qv <<EOF
SET bmfredis.on_error = 'warning';
SELECT redis_cache_set('ro', 'before');
\\! redis-cli -p $mport REPLICAOF 127.0.0.1 $rport >/dev/null
SELECT redis_cache_set('ro', 'after');
SELECT pg_sleep(0.3);
SELECT redis_cache_set('ro', 'again');
EOF
)
like "a READONLY answer is a failure, never a success" "$out" "Redis is unavailable
DETAIL:  sentinel:mymaster \\(127.0.0.1:$mport\\) answered: READONLY"
like "  and the next connect refuses the replica by its ROLE" "$out" "says its role is slave"
redis-cli -p "$mport" REPLICAOF NO ONE >/dev/null
refute "no backend crashed (end)" grep -Eq "terminated by signal (4|6|7|8|11)[^0-9]" "$BMF_WORK/pgdata.log"
