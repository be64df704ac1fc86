# standby: a streaming replica and a promotion.  A primary and a Redis of
# this test's own; a standby made by pg_basebackup -R with bmfredis
# preloaded.  Adding the standby touches nothing in Redis (a base backup's
# control file looks like a crash, but a standby has nothing of its own to
# invalidate); reads on it go through Redis as on the primary.  Then a
# failover: Redis frozen, a watched COMMIT on the primary waits in its retry
# queue, the primary stops with -m immediate, the standby is promoted, Redis
# comes back: the promoted server starts cold (logged once, counted), so
# the committed row's old value is gone before anyone reads it.
. "$(dirname "$0")/../tap.sh"
pgbin=$(pg_config --bindir)

bmf_start_redis rsb
RS="$BMF_REDISCTL -n rsb"
bmf_start_pg "bmfredis.command_timeout = 300
bmfredis.connect_timeout = 300
bmfredis.flush_timeout = 300" pgprim
prim_data=$BMF_PGDATA
prim_port=$PGPORT
prim_log=$BMF_WORK/pgprim.log
sb_data=$BMF_WORK/pgstandby
sb_log=$BMF_WORK/pgstandby.log
sb_port=$(bmf_free_port)
trap 'for d in "$prim_data" "$sb_data"; do bmf_as_user "$pgbin/pg_ctl" -D "$d" -w stop -m immediate >/dev/null 2>&1; done
	$RS resume; bmf_stop_pid "$(cat "$BMF_WORK/rsb.pid")" TERM' EXIT
tap_db bmf_standby
qsb() { PGPORT=$sb_port q "$1"; }
wait_up() {  # PORT: until it accepts connections, at most 30 s
	for _ in $(seq 1 300); do PGPORT=$1 q "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}

q "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO items (id) SELECT generate_series(1, 100);
SELECT redis_watch('items', 'item', ARRAY['item:{id}']);" >/dev/null
q "SELECT redis_cache_mset(array_agg('item:' || i), array_agg('v'::text)) FROM generate_series(1, 100) i" >/dev/null
$RS cli SET bmfredis:other keep >/dev/null

# --- a new standby
bmf_as_user "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$prim_port" -U postgres -D "$sb_data" -R -X stream -c fast \
	>"$BMF_WORK/basebackup.log" 2>&1
check "pg_basebackup -R made a standby" test -e "$sb_data/standby.signal"
echo "port = $sb_port" >>"$sb_data/postgresql.conf"
bmf_as_user "$pgbin/pg_ctl" -D "$sb_data" -l "$sb_log" -w -t 60 start >/dev/null 2>&1
check "  it starts, bmfredis preloaded" wait_up "$sb_port"
is "  in recovery" "$(qsb "SELECT pg_is_in_recovery()")" "t"
is "  it reads through Redis like the primary" "$(qsb "SELECT redis_cache_get('item:7')")" "v"
sleep 1
check "  it says it will start cold only when promoted" grep -q "this server starts in recovery: its cache starts cold when it is promoted" "$sb_log"
refute "  and does not start cold now" grep -q "the cache starts cold" "$sb_log"
is "  the primary's keys are all still there" "$($RS cli EVAL "return #redis.call('KEYS', 'bmfredis:item:*')" 0) $($RS cli GET bmfredis:other)" "100 keep"
is "  nothing counted as a cold start on the standby" "$(qsb "SELECT value FROM redis_stats WHERE name = 'cold_starts'")" "0"
is "  nor waits to be sent" "$(qsb "SELECT retry_pending FROM redis_health()")" "0"
# a restart of the standby (its control file again looks unclean)
bmf_as_user "$pgbin/pg_ctl" -D "$sb_data" -w -t 60 stop -m immediate >/dev/null 2>&1
bmf_as_user "$pgbin/pg_ctl" -D "$sb_data" -l "$sb_log" -w -t 60 start >/dev/null 2>&1
wait_up "$sb_port"
qsb "SELECT redis_cache_get('item:7')" >/dev/null
sleep 1
refute "  an immediate stop and start of the standby is not a cold start either" grep -q "the cache starts cold" "$sb_log"
is "  the keys are still there" "$($RS cli EVAL "return #redis.call('KEYS', 'bmfredis:item:*')" 0)" "100"

# --- a write on the primary is seen on the standby's reads
q "UPDATE items SET v = 1 WHERE id = 1" >/dev/null
is "a watched COMMIT on the primary invalidates its key" "$($RS cli EXISTS bmfredis:item:1)" "0"

# --- redis_cached on a standby whose replay lags: it never stores
qsb "SELECT pg_wal_replay_pause()" >/dev/null
q "UPDATE items SET v = 10 WHERE id = 3" >/dev/null
out=$(qsb "SELECT redis_cached('page:3', '1 hour', 'SELECT v FROM items WHERE id = 3')::text")
is "replay paused: redis_cached on the standby answers from its own (older) snapshot" "$out" "0"
is "  and does not store it (the primary's invalidation is already past)" "$($RS cli EXISTS bmfredis:page:3)" "0"
qsb "SELECT pg_wal_replay_resume()" >/dev/null
out=$(q "SELECT redis_cached('page:3', '1 hour', 'SELECT v FROM items WHERE id = 3')::text")
is "  the primary's redis_cached then stores the committed value" "$out $($RS cli EXISTS bmfredis:page:3)" "10 1"
is "  which the standby's hit returns" "$(qsb "SELECT redis_cached('page:3', '1 hour', 'SELECT v FROM items WHERE id = 3')::text")" "10"

# --- failover while Redis is frozen
$RS pause
q "UPDATE items SET v = 2 WHERE id = 2" >/dev/null 2>&1
is "Redis frozen: the primary's watched COMMIT waits in its retry queue" "$(q "SELECT retry_pending FROM redis_health()")" "1"
for _ in $(seq 1 100); do [ "$(qsb "SELECT v FROM items WHERE id = 2")" = 2 ] && break; sleep 0.1; done
is "  the standby has replayed the row" "$(qsb "SELECT v FROM items WHERE id = 2")" "2"
bmf_as_user "$pgbin/pg_ctl" -D "$prim_data" -w -t 60 stop -m immediate >/dev/null 2>&1
check "the primary is gone (immediate shutdown, its queue with it)" test ! -e "$prim_data/postmaster.pid"
bmf_as_user "$pgbin/pg_ctl" -D "$sb_data" -w -t 60 promote >/dev/null 2>&1
for _ in $(seq 1 100); do [ "$(qsb "SELECT pg_is_in_recovery()")" = f ] && break; sleep 0.1; done
is "the standby is promoted" "$(qsb "SELECT pg_is_in_recovery()")" "f"
$RS resume
out=$(PGPORT=$sb_port BMF_DB=bmf_standby q "SELECT coalesce(redis_cache_get('item:2'), 'miss')")
is "  its first read of the row's key after the promotion is a miss" "$out" "miss"
for _ in $(seq 1 200); do [ "$($RS cli EXISTS bmfredis:item:2)" = 0 ] && break; sleep 0.1; done
is "  the key the lost primary never invalidated is gone once Redis answers" "$($RS cli EXISTS bmfredis:item:2)" "0"
is "  with the rest of the namespace (a cold start)" "$($RS cli EXISTS bmfredis:other)" "0"
is "  logged once" "$(grep -c "the cache starts cold: this server left recovery" "$sb_log")" "1"
is "  counted once for the database" "$(qsb "SELECT value FROM redis_stats WHERE name = 'cold_starts'")" "1"
out=$(qsb "SELECT redis_cached('row:2', '1 hour', 'SELECT v FROM items WHERE id = 2')::text")
is "  and a read through redis_cached there sees the committed value" "$out" "2"
qsb "SELECT redis_cache_set('item:2', 'old', '1 hour')" >/dev/null
qsb "UPDATE items SET v = 3 WHERE id = 2" >/dev/null
is "  the promoted server's own watched COMMITs invalidate as usual" \
	"$($RS cli EXISTS bmfredis:item:2) $(qsb "SELECT retry_pending FROM redis_health()")" "0 0"
