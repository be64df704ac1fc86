# restart: nothing committed is lost across a restart of PostgreSQL, and
# after a crash the cache starts cold.  A PostgreSQL and a Redis of this
# test's own.  With Redis frozen (SIGSTOP), 1,000 watched commits wait in
# the retry queue; PostgreSQL restarts fast (then smart, then stop and
# start) and, once Redis answers, every affected key is gone, key by key,
# and nothing else.  A damaged queue file is ignored with a WARNING and
# the cache starts cold.  A backend SIGKILLed while its COMMIT waits on the
# frozen Redis, and an immediate shutdown, leave no stale value either:
# the namespace is invalidated once Redis answers.
. "$(dirname "$0")/../tap.sh"
pgbin=$(pg_config --bindir)

bmf_start_redis rs
RS="$BMF_REDISCTL -n rs"
bmf_start_pg "bmfredis.command_timeout = 300
bmfredis.connect_timeout = 300
bmfredis.flush_timeout = 300" pgrs
pglog=$BMF_WORK/pgrs.log
trap 'bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -w stop -m immediate >/dev/null 2>&1; $RS resume; bmf_stop_pid "$(cat "$BMF_WORK/rs.pid")" TERM' EXIT
tap_db bmf_restart
queue_file=$BMF_PGDATA/pg_stat/bmfredis_retry.queue

pg_restart() {  # pg_ctl restart -m MODE, or "stopstart"
	if [ "$1" = stopstart ]; then
		bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -w -t 60 stop -m fast >/dev/null 2>&1
		bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -l "$pglog" -w -t 60 start >/dev/null 2>&1
	else
		bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -l "$pglog" -w -t 60 restart -m "$1" >/dev/null 2>&1
	fi
}
pending() { q "SELECT retry_pending FROM redis_health()"; }
wait_sent() {  # until nothing waits (Redis answering), at most 20 s
	for _ in $(seq 1 200); do [ "$(pending)" = 0 ] && return 0; sleep 0.1; done
	return 1
}
wait_pg() {  # until PostgreSQL accepts connections again, at most 30 s
	for _ in $(seq 1 300); do q "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}
keys_left() {  # how many of item:FROM..TO exist in Redis
	local i args=()
	for i in $(seq "$1" "$2"); do args+=("bmfredis:item:$i"); done
	$RS cli EXISTS "${args[@]}"
}
seed() {  # every item's key and a key nobody invalidates
	q "SELECT redis_cache_mset(array_agg('item:' || i), array_agg('v'::text)) FROM generate_series(1, 1000) i" >/dev/null
	$RS cli SET bmfredis:other keep >/dev/null
}

q "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO items (id) SELECT generate_series(1, 1000);
SELECT redis_watch('items', 'item', ARRAY['item:{id}']);" >/dev/null
seed
is "1,000 item keys and one other in Redis" "$(keys_left 1 1000) $($RS cli EXISTS bmfredis:other)" "1000 1"

# --- fast restart with 1,000 commits waiting
$RS pause
for i in $(seq 1 1000); do echo "UPDATE items SET v = v + 1 WHERE id = $i;"; done |
	psql -X -q -d bmf_restart >/dev/null 2>&1
is "Redis frozen: 1,000 watched commits wait in the retry queue" "$(pending)" "1000"
pg_restart fast
check "pg_ctl restart -m fast: the queue was saved at shutdown" grep -q "bmfredis: saved 1000 invalidations and messages still to send" "$pglog"
check "  and queued again at start" grep -q "bmfredis: 1000 invalidations and messages saved at the last shutdown are queued again" "$pglog"
check "  the file removed once loaded" test ! -e "$queue_file"
is "  1,000 waiting after the restart" "$(pending)" "1000"
is "  and reads in the meantime are misses" "$(q "SELECT redis_cache_get('item:5') IS NULL" | tail -1)" "t"
$RS resume
check "Redis back: the queue drains" wait_sent
is "  every affected key is gone, key by key" "$(keys_left 1 1000)" "0"
is "  and nothing else was invalidated (no cold start)" "$($RS cli GET bmfredis:other)" "keep"
is "  no cold start was counted" "$(q "SELECT value FROM redis_stats WHERE name = 'cold_starts'")" "0"

# --- smart restart, and a stop and a start
for mode in smart stopstart; do
	seed
	$RS pause
	for i in $(seq 1 10); do echo "UPDATE items SET v = v + 1 WHERE id = $i;"; done |
		psql -X -q -d bmf_restart >/dev/null 2>&1
	pg_restart "$mode"
	is "$mode: 10 commits still waiting after the restart" "$(pending)" "10"
	$RS resume
	wait_sent
	is "  their keys gone once Redis answers, the others kept" \
		"$(keys_left 1 10) $(keys_left 11 1000) $($RS cli GET bmfredis:other)" "0 990 keep"
done

# --- a damaged queue file
seed
$RS cli SET 'bmfredis:lock:{held}' other-server PX 60000 >/dev/null
$RS cli ZADD 'bmfredis:sem:{pool}' 1 holder >/dev/null
$RS pause
for i in $(seq 1 10); do echo "UPDATE items SET v = v + 1 WHERE id = $i;"; done |
	psql -X -q -d bmf_restart >/dev/null 2>&1
bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -w -t 60 stop -m fast >/dev/null 2>&1
check "a stop with work waiting leaves the queue file" test -s "$queue_file"
printf '\377\377\377\377' | dd of="$queue_file" bs=1 seek=200 conv=notrunc 2>/dev/null
bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -l "$pglog" -w -t 60 start >/dev/null 2>&1
check "a damaged file is ignored with a WARNING" grep -q "WARNING:  bmfredis: ignoring \".*bmfredis_retry.queue\": its checksum does not match" "$pglog"
check "  kept aside as .damaged" test -e "$queue_file.damaged"
check "  and the cache starts cold" grep -q "bmfredis: the cache starts cold: the retry queue saved at the last shutdown cannot be trusted" "$pglog"
is "  reads meanwhile are misses" "$(q "SELECT redis_cache_get('item:500') IS NULL" | tail -1)" "t"
$RS resume
wait_sent
is "  once Redis answers, the whole namespace is gone (the damaged entries' keys with it)" \
	"$(keys_left 1 1000) $($RS cli EXISTS bmfredis:other)" "0 0"
is "  counted once for the database" "$(q "SELECT value FROM redis_stats WHERE name = 'cold_starts'")" "1"
is "  but a lock and a semaphore held under the prefix are kept" \
	"$($RS cli GET 'bmfredis:lock:{held}') $($RS cli ZCARD 'bmfredis:sem:{pool}')" "other-server 1"
rm -f "$queue_file.damaged"

# --- a backend killed while its COMMIT's send waits on a frozen Redis
pg_restart fast
seed
$RS pause
psql -X -q -d bmf_restart -c "SET bmfredis.flush_timeout = '30s'; SET bmfredis.command_timeout = '30s'; SET bmfredis.connect_timeout = '30s'" \
	-c "UPDATE items SET v = v + 1 WHERE id <= 100" >/dev/null 2>&1 &
bg=$!
pid=""
for _ in $(seq 1 100); do
	pid=$(q "SELECT pid FROM pg_stat_activity WHERE query LIKE 'UPDATE items%' AND state = 'active'")
	[ -n "$pid" ] && break
	sleep 0.1
done
sleep 0.3
check "a COMMIT waits on the frozen Redis (pid $pid)" test -n "$pid"
kill -KILL "$pid"
wait "$bg" 2>/dev/null
check "  killed with SIGKILL: PostgreSQL restarts its processes" wait_pg
check "  and the cache starts cold" grep -q "bmfredis: the cache starts cold: a PostgreSQL process crashed" "$pglog"
is "  the UPDATE committed before the kill" "$(q "SELECT count(*) FROM items WHERE id <= 100 AND v > 0")" "100"
$RS resume
wait_sent
is "  once Redis answers, no key of the crashed COMMIT is left (nor any other)" \
	"$(keys_left 1 100) $(keys_left 101 1000) $($RS cli EXISTS bmfredis:other)" "0 0 0"
out=$(q "SELECT count(*) FROM items i WHERE (redis_cached('page:' || id, '1 hour', 'SELECT v FROM items WHERE id = ' || id)->0->>'v')::int <> i.v")
is "  and no page read through redis_cached disagrees with its row" "$out" "0"
check "  the worker logged why" grep -q "bmfredis: every key under prefix \"bmfredis:\" (Redis database 0) will be invalidated once Redis answers" "$pglog"

# --- an immediate shutdown
seed
cold=$(tap_cold_mark "$pglog")
bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -w -t 60 stop -m immediate >/dev/null 2>&1
bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -l "$pglog" -w -t 60 start >/dev/null 2>&1
check "an immediate shutdown: the next start is cold" grep -q "bmfredis: the cache starts cold: PostgreSQL did not shut down cleanly" "$pglog"
wait_sent
is "  the namespace is invalidated once Redis answers" "$(keys_left 1 1000) $($RS cli EXISTS bmfredis:other)" "0 0"
# (a cold start not over at a clean shutdown goes on after the start)
check "  the cold start is over" tap_cold_over "$cold" "$pglog"
seed
pg_restart fast
wait_sent
is "  and a clean restart after it is not cold again" "$(keys_left 1 1000) $($RS cli EXISTS bmfredis:other)" "1000 1"

# --- five databases, each its own prefix: a cold start covers every one
for i in 1 2 3 4 5; do
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_many$i" -c "CREATE DATABASE bmf_many$i" >/dev/null
	psql -X -q -d bmf_many$i -c "CREATE EXTENSION bmfredis" -c "ALTER DATABASE bmf_many$i SET bmfredis.key_prefix = 'many$i:'" >/dev/null
done
many_left() { local i n=0; for i in 1 2 3 4 5; do n=$((n + $($RS cli EXISTS "many$i:k"))); done; echo $n; }
for i in 1 2 3 4 5; do $RS cli SET "many$i:k" v >/dev/null; done
q "CHECKPOINT" >/dev/null	# synchronous_commit is off here: keep the CREATE EXTENSIONs
bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -w -t 60 stop -m immediate >/dev/null 2>&1
bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -l "$pglog" -w -t 60 start >/dev/null 2>&1
wait_pg
for _ in $(seq 1 300); do [ "$(many_left)" = 0 ] && break; sleep 0.1; done
is "an immediate shutdown with six databases: every database's namespace is invalidated (no session in any)" "$(many_left)" "0"
for _ in $(seq 1 100); do [ "$(q "SELECT value FROM redis_stats WHERE name = 'cold_starts'")" = 6 ] && break; sleep 0.1; done
is "  counted once per database" "$(q "SELECT value FROM redis_stats WHERE name = 'cold_starts'")" "6"

# --- a shutdown whose save of the queue fails: the next start is cold
seed
$RS pause
for i in $(seq 1 10); do echo "UPDATE items SET v = v + 1 WHERE id = $i;"; done |
	psql -X -q -d bmf_restart >/dev/null 2>&1
chmod 555 "$BMF_PGDATA/pg_stat"
bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -w -t 60 stop -m fast >/dev/null 2>&1
check "a fast stop that cannot write the queue (pg_stat read-only) leaves no queue file" test ! -e "$queue_file"
check "  but the marker of a running server" test -e "$BMF_PGDATA/pg_stat/bmfredis_retry.running"
chmod 700 "$BMF_PGDATA/pg_stat"
bmf_as_user "$pgbin/pg_ctl" -D "$BMF_PGDATA" -l "$pglog" -w -t 60 start >/dev/null 2>&1
check "  the next start is cold, saying why" grep -q "bmfredis: the cache starts cold: the last shutdown did not save the retry queue" "$pglog"
$RS resume
wait_sent
is "  once Redis answers, the namespace is gone (the 10 unsaved invalidations' keys with it)" \
	"$(keys_left 1 1000) $($RS cli EXISTS bmfredis:other)" "0 0"
for i in 1 2 3 4 5; do psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_many$i WITH (FORCE)" >/dev/null 2>&1; done
