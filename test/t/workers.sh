# workers: every database with the extension is served by a worker of its
# own, started by the launcher without a restart: its scheduled
# invalidations, its retry queue and its channel relay, with its own
# settings; CREATE and DROP EXTENSION, DROP DATABASE and CREATE DATABASE
# ... TEMPLATE while the server runs; a database that cannot get a worker
# says so.
. "$(dirname "$0")/../tap.sh"
R=$BMF_REDISCTL

# wait_for SQL WANT [DB]: poll (10 s) until the query returns WANT
wait_for() {
	local i got
	for i in $(seq 1 100); do
		got=$(psql -X -A -t -d "${3:-postgres}" -c "$1" 2>&1)
		[ "$got" = "$2" ] && { echo "$got"; return 0; }
		sleep 0.1
	done
	echo "$got"
	return 1
}
state_of() { echo "SELECT coalesce(string_agg(state, ','), 'none') FROM redis_workers() WHERE database = '$1'"; }

for d in wk_a wk_b wk_none; do
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $d" -c "CREATE DATABASE $d" >/dev/null
done
psql -X -q -d postgres -c "CREATE EXTENSION IF NOT EXISTS bmfredis" >/dev/null
is "the launcher runs" "$(psql -X -A -t -d postgres -c "SELECT state FROM redis_workers() WHERE database IS NULL")" "launcher"

# two databases, each with its prefix and its channels, set the PostgreSQL way
psql -X -q -d postgres \
	-c "ALTER DATABASE wk_a SET bmfredis.key_prefix = 'wka:'" -c "ALTER DATABASE wk_a SET bmfredis.subscribe = 'a:*'" \
	-c "ALTER DATABASE wk_b SET bmfredis.key_prefix = 'wkb:'" -c "ALTER DATABASE wk_b SET bmfredis.subscribe = 'b:news'" >/dev/null
t0=$(ms_now)
psql -X -q -d wk_a -c "CREATE EXTENSION bmfredis" >/dev/null
psql -X -q -d wk_b -c "CREATE EXTENSION bmfredis" >/dev/null
out=$(wait_for "$(state_of wk_a)" running)
is "CREATE EXTENSION in a new database gives it a worker, without a restart" "$out" "running"
t1=$(ms_now)
check "  within seconds ($((t1 - t0)) ms)" [ $((t1 - t0)) -lt 5000 ]
is "  and the other database too" "$(wait_for "$(state_of wk_b)" running)" "running"
sleep 3
is "a database without the extension gets no worker" "$(psql -X -A -t -d postgres -c "$(state_of wk_none)")" "none"
is "each worker relays its own database's channels" \
	"$(wait_for "SELECT string_agg(database || '=' || channels, ' ' ORDER BY database) FROM redis_workers() WHERE database LIKE 'wk_%'" "wk_a=1 wk_b=1")" "wk_a=1 wk_b=1"

# the relay: NOTIFY in the database whose list names the channel
listen_in() {	# listen_in DB CHANNEL OUT: LISTEN for two seconds in the background
	psql -X -d "$1" -c "LISTEN \"$2\"" -c "SELECT pg_sleep(2)" >"$3" 2>&1 &
}
listen_in wk_a a:one "$BMF_WORK/wka.out"; la=$!
listen_in wk_b b:news "$BMF_WORK/wkb.out"; lb=$!
listen_in wk_b a:one "$BMF_WORK/wkb-a.out"; lba=$!
sleep 0.5
redis-cli -p "$BMF_REDIS_PORT" PUBLISH a:one to-a >/dev/null
redis-cli -p "$BMF_REDIS_PORT" PUBLISH b:news to-b >/dev/null
wait $la $lb $lba
like "a message on a:* arrives as NOTIFY in wk_a" "$(cat "$BMF_WORK/wka.out")" 'payload "to-a"'
like "a message on b:news arrives as NOTIFY in wk_b" "$(cat "$BMF_WORK/wkb.out")" 'payload "to-b"'
refute "  and wk_b, which does not subscribe to a:*, gets nothing of it" grep -q 'to-a' "$BMF_WORK/wkb-a.out"

# a list set for the whole server serves databases without their own
server_set "bmfredis.subscribe=srv:*"
is "ALTER SYSTEM ... subscribe (and a reload): a database without its own list relays it" \
	"$(wait_for "SELECT channels FROM redis_workers() WHERE database = 'postgres'" 1)" "1"
is "  while the databases with their own keep them" \
	"$(psql -X -A -t -d postgres -c "SELECT string_agg(database || '=' || channels, ' ' ORDER BY database) FROM redis_workers() WHERE database LIKE 'wk_%'")" "wk_a=1 wk_b=1"
listen_in postgres srv:x "$BMF_WORK/srv.out"; ls=$!
listen_in wk_a srv:x "$BMF_WORK/srv-a.out"; lsa=$!
sleep 0.5
redis-cli -p "$BMF_REDIS_PORT" PUBLISH srv:x to-server >/dev/null
wait $ls $lsa
like "  and relays it" "$(cat "$BMF_WORK/srv.out")" 'payload "to-server"'
refute "  where the database's own list wins" grep -q 'to-server' "$BMF_WORK/srv-a.out"
server_reset bmfredis.subscribe

# scheduled invalidations run in each database by its worker, under its prefix
for d in wk_a wk_b; do
	psql -X -q -d "$d" -c "SELECT redis_cache_set('sale', 'flash')" \
		-c "SELECT redis_invalidate_at('sale', now() + interval '300 ms')" >/dev/null
done
is "a scheduled invalidation in each database" \
	"$(redis-cli -p "$BMF_REDIS_PORT" MGET wka:sale wkb:sale | tr '\n' ' ')" "flash flash "
sleep 2
is "  runs in each, by its worker (nobody called redis_run_scheduled)" \
	"$(redis-cli -p "$BMF_REDIS_PORT" EXISTS wka:sale wkb:sale) $(psql -X -A -t -d wk_a -c "SELECT count(*) FROM bmfredis.scheduled_invalidations") $(psql -X -A -t -d wk_b -c "SELECT count(*) FROM bmfredis.scheduled_invalidations")" "0 0 0"

# the retry queue: each database's worker sends what its commits could not
for d in wk_a wk_b; do psql -X -q -d "$d" -c "SELECT redis_cache_set('row:1', 'old')" >/dev/null; done
# Redis keeps them across its restart (a snapshot, removed once loaded), so
# that a worker sending at once cannot come before them
redis-cli -p "$BMF_REDIS_PORT" SAVE >/dev/null
$R stop
for d in wk_a wk_b; do
	PGOPTIONS='-c client_min_messages=error' psql -X -q -d "$d" -c "SELECT redis_invalidate('row:1')" >/dev/null
done
is "while Redis is down, each database has its invalidation waiting" \
	"$(psql -X -A -t -d postgres -c "SELECT string_agg(database || '=' || retry_pending, ' ' ORDER BY database) FROM redis_workers() WHERE database LIKE 'wk_%'")" \
	"wk_a=1 wk_b=1"
$R start
rm -f "$BMF_WORK/redis/dump.rdb"
# (each worker waits out the node's backoff first: up to 30 s on a busy machine)
for _ in $(seq 1 300); do
	[ "$(redis-cli -p "$BMF_REDIS_PORT" EXISTS wka:row:1 wkb:row:1)" = 0 ] && break
	sleep 0.1
done
is "once Redis is back, each database's worker sends its own (nobody else called Redis)" \
	"$(redis-cli -p "$BMF_REDIS_PORT" EXISTS wka:row:1 wkb:row:1)" "0"
is "  and nothing waits any more" \
	"$(psql -X -A -t -d postgres -c "SELECT sum(retry_pending) FROM redis_workers()")" "0"

# a database's settings change: its worker starts again with them
psql -X -q -d postgres -c "ALTER DATABASE wk_b SET bmfredis.subscribe = 'b:news, b:other'" >/dev/null
is "ALTER DATABASE ... SET bmfredis.subscribe: the worker relays the new list" \
	"$(wait_for "SELECT channels FROM redis_workers() WHERE database = 'wk_b'" 2)" "2"

# DROP EXTENSION stops the worker; CREATE EXTENSION starts one again
psql -X -q -d wk_a -c "DROP EXTENSION bmfredis" >/dev/null
is "DROP EXTENSION stops the database's worker" "$(wait_for "$(state_of wk_a)" none)" "none"
sleep 3
is "  and the launcher does not start it again" "$(psql -X -A -t -d postgres -c "$(state_of wk_a)")" "none"
psql -X -q -d wk_a -c "CREATE EXTENSION bmfredis" >/dev/null
is "CREATE EXTENSION again: a worker again" "$(wait_for "$(state_of wk_a)" running)" "running"

# uninstalling: DROP EXTENSION is refused while tables are watched; with
# CASCADE it takes their triggers, and other databases keep theirs
psql -X -q -d wk_a -c "CREATE TABLE t (id int PRIMARY KEY)" -c "SELECT redis_watch('t', 't', ARRAY['t:{id}'])" >/dev/null
out=$(psql -X -q -d wk_a -c "DROP EXTENSION bmfredis" 2>&1)
like "DROP EXTENSION is refused while a table is watched" "$out" "cannot drop extension bmfredis because other objects depend on it"
out=$(psql -X -q -A -t -d wk_a -c "DROP EXTENSION bmfredis CASCADE" -c "INSERT INTO t VALUES (1)" \
	-c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass" 2>&1 | tail -1)
is "  with CASCADE it takes the watch triggers; the table is a plain table again" "$(tr -d ' ' <<<"$out")" "0"
is "  and the other database keeps its extension and its worker" "$(wait_for "$(state_of wk_b)" running)" "running"
psql -X -q -d wk_a -c "DROP TABLE t" -c "CREATE EXTENSION bmfredis" >/dev/null
wait_for "$(state_of wk_a)" running >/dev/null

# commands that need the database alone stop its worker first
t0=$(ms_now)
out=$(psql -X -q -d postgres -c "CREATE DATABASE wk_c TEMPLATE wk_a" 2>&1)
t1=$(ms_now)
is "CREATE DATABASE ... TEMPLATE a served database works" "$out" ""
check "  at once ($((t1 - t0)) ms)" [ $((t1 - t0)) -lt 3000 ]
is "  the template's worker is back" "$(wait_for "$(state_of wk_a)" running)" "running"
is "  and the copy, which has the extension, gets its own" "$(wait_for "$(state_of wk_c)" running)" "running"
out=$(psql -X -q -d postgres -c "ALTER DATABASE wk_c RENAME TO wk_d" 2>&1)
is "ALTER DATABASE ... RENAME of a served database works" "$out" ""
is "  and it is served under its new name" "$(wait_for "$(state_of wk_d)" running)" "running"
t0=$(ms_now)
out=$(psql -X -q -d postgres -c "DROP DATABASE wk_d" -c "DROP DATABASE wk_b" 2>&1)
t1=$(ms_now)
is "DROP DATABASE of served databases works" "$out" ""
check "  at once ($((t1 - t0)) ms)" [ $((t1 - t0)) -lt 4000 ]
is "  and their workers are gone" \
	"$(wait_for "SELECT count(*) FROM redis_workers() WHERE database IN ('wk_b', 'wk_d')" 0)" "0"
psql -X -q -d postgres -c "DROP DATABASE wk_a" -c "DROP DATABASE wk_none" >/dev/null

# a server whose worker slots are used up: a WARNING and a state, not silence
# (three: the bmfredis launcher, the logical replication launcher, one more)
bmf_start_pg "max_worker_processes = 3
max_parallel_workers = 0" slots
trap 'bmf_stop_pid "$BMF_PG_PID" INT' EXIT
for d in sl_a sl_b; do psql -X -q -d postgres -c "CREATE DATABASE $d" >/dev/null; done
psql -X -q -d sl_a -c "CREATE EXTENSION bmfredis" >/dev/null
wait_for "$(state_of sl_a)" running sl_a >/dev/null
psql -X -q -d sl_b -c "CREATE EXTENSION bmfredis" >/dev/null
is "with max_worker_processes used up, the database says so in redis_workers()" \
	"$(wait_for "$(state_of sl_b)" "no worker slot" sl_b)" "no worker slot"
like "  and the server log has a WARNING that names it and the setting" \
	"$(grep 'no background worker slot' "$BMF_WORK/slots.log")" 'WARNING:  bmfredis: no background worker slot is free for database "sl_b"'
psql -X -q -d sl_a -c "DROP EXTENSION bmfredis" >/dev/null
is "once a slot is free, it gets its worker" "$(wait_for "$(state_of sl_b)" running sl_b)" "running"
