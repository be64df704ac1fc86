# far_failover: a Sentinel failover with Redis 5 ms (round trip) away,
# with up to 1 ms of jitter each way.  A master and a replica, each behind
# its own test/netproxy; the replica announces its proxy's port, so the
# sentinels (which watch through the proxies too) name proxy addresses and
# every byte between bmfredis and Redis crosses the distance.  The master
# is killed while a watched table is updated.  Expected, as at loopback:
# the UPDATE commits, its invalidations reach the promoted node, a
# near-cache copy made on the old master is not served, and backends
# reconnect to the promoted node.
. "$(dirname "$0")/../tap.sh"
tap_need "$(bmf_sentinel_bin)=$(bmf_sentinel_bin)"
tap_db bmf_far_failover

bmf_start_redis fm
mport=$BMF_REDIS_PORT
mproxy=$(tap_netproxy fm_proxy "$mport" 2500 1000)
rproxy_port=$(bmf_free_port)
bmf_start_redis fr --replicaof 127.0.0.1 "$mport" --replica-announce-ip 127.0.0.1 \
	--replica-announce-port "$rproxy_port"
rport=$BMF_REDIS_PORT
disown -a
# the replica's proxy on the port it announces
ctl=$(bmf_free_port)
"$BMF_WORK/netproxy" "$rproxy_port" "$rport" "$ctl" 2500 1000 </dev/null >"$BMF_WORK/fr_proxy.log" 2>&1 &
echo $! >"$BMF_WORK/fr_proxy.pid"
echo "$ctl" >"$BMF_WORK/fr_proxy.ctl"
disown -a
sports=()
for i in 1 2 3; do
	sp=$(bmf_free_port)
	sports+=("$sp")
	d=$BMF_WORK/far_sentinel$i
	mkdir -p "$d"
	cat >"$d/sentinel.conf" <<EOF
port $sp
bind 127.0.0.1
daemonize no
dir $d
logfile $d/sentinel.log
sentinel monitor mymaster 127.0.0.1 $mproxy 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 4000
sentinel parallel-syncs mymaster 1
EOF
	chown -R "$BMF_USER" "$d"
	bmf_spawn_as_user "$(bmf_sentinel_bin)" "$d/sentinel.conf" </dev/null >/dev/null 2>&1 &
	echo $! >"$BMF_WORK/far_sentinel$i.pid"
	disown -a
done
master_port() { redis-cli -p "${sports[0]}" SENTINEL get-master-addr-by-name mymaster 2>/dev/null | tail -1; }
for _ in $(seq 1 150); do
	[ "$(redis-cli -p "${sports[0]}" SENTINEL ckquorum mymaster 2>/dev/null | cut -c1-2)" = OK ] &&
		[ "$(redis-cli -p "${sports[0]}" SENTINEL replicas mymaster 2>/dev/null | grep -c "^$rproxy_port$")" -ge 1 ] && break
	sleep 0.1
done
is "the sentinels watch the master and its replica through their proxies" \
	"$(master_port) $(redis-cli -p "${sports[0]}" SENTINEL replicas mymaster 2>/dev/null | grep -c "^$rproxy_port$")" "$mproxy 1"

list="127.0.0.1:${sports[0]},127.0.0.1:${sports[1]},127.0.0.1:${sports[2]}"
trap 'server_reset bmfredis.sentinels bmfredis.sentinel_master' EXIT
server_set "bmfredis.sentinels=$list" bmfredis.sentinel_master=mymaster

q "CREATE TABLE products (id int PRIMARY KEY, title text);
INSERT INTO products SELECT i, 'title ' || i FROM generate_series(1, 20) i;
SELECT redis_watch('products', 'product', ARRAY['product:{id}']);" >/dev/null
out=$(q "SELECT count(redis_cache_set('product:' || i, 'title ' || i)) FROM generate_series(1, 20) i;
SELECT node FROM redis_connections();")
is "the master is reached through its proxy" "$out" "20
sentinel:mymaster (127.0.0.1:$mproxy)"
for _ in $(seq 1 100); do
	[ "$(redis-cli -p "$rport" GET bmfredis:product:20)" = "title 20" ] && break
	sleep 0.1
done
is "the replica has the cached rows" "$(redis-cli -p "$rport" GET bmfredis:product:7)" "title 7"

# a session with the near-cache holds product:15 across the failover
psql -X -q -A -t -d "$BMF_DB" >"$BMF_WORK/far-near.out" 2>&1 <<SQL &
SET bmfredis.near_cache = on;
SELECT redis_cache_get('product:15');
SELECT redis_cache_get('product:15');
\\! while [ ! -e "$BMF_WORK/far-near-go" ]; do sleep 0.1; done
SELECT redis_cache_get('product:15');
SQL
nearpid=$!
sleep 1

"$BMF_REDISCTL" -n fm kill
start=$(ms_now)
out=$(q "SET bmfredis.connect_timeout = '300ms'; UPDATE products SET title = title || ' (new)' WHERE id <= 10; SELECT 'committed';" 2>&1)
like "with the master dead, an UPDATE of a watched table commits" "$out" "committed$"
for _ in $(seq 1 300); do [ "$(master_port)" = "$rproxy_port" ] && break; sleep 0.1; done
is "Sentinel promoted the replica (named by its proxy)" "$(master_port)" "$rproxy_port"
bmf_log "failover took $(( $(ms_now) - start )) ms"
for _ in $(seq 1 150); do
	[ "$(redis-cli -p "$rport" EXISTS bmfredis:product:1 bmfredis:product:5 bmfredis:product:10)" = 0 ] && break
	sleep 0.1
done
is "invalidations committed while the master was dead reach the promoted node" \
	"$(redis-cli -p "$rport" EXISTS bmfredis:product:1 bmfredis:product:5 bmfredis:product:10)" "0"
is "  and untouched rows stay cached" "$(redis-cli -p "$rport" GET bmfredis:product:15)" "title 15"
redis-cli -p "$rport" SET bmfredis:product:15 "changed on the new master" >/dev/null
touch "$BMF_WORK/far-near-go"
wait $nearpid
is "a near-cache copy made on the old master is not served after the failover" \
	"$(cat "$BMF_WORK/far-near.out")" "title 15
title 15
changed on the new master"
out=$(q "SELECT redis_cache_get('product:3') IS NULL; SELECT redis_cache_set('after', 'on the new master');
SELECT node FROM redis_connections();")
is "a backend reconnects to the promoted node, through its proxy" "$out" "t
t
sentinel:mymaster (127.0.0.1:$rproxy_port)"
is "  where the writes go" "$(redis-cli -p "$rport" GET bmfredis:after)" "on the new master"
refute "no backend crashed" grep -Eq "terminated by signal (4|6|7|8|11)[^0-9]" "$BMF_WORK/pgdata.log"
# its worker slot back for the tests after it
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_far_failover WITH (FORCE)" >/dev/null 2>&1
