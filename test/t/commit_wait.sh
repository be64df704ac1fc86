# commit_wait: bmfredis.commit_wait = off.  Redis is 20 ms away (round
# trip, through test/netproxy).  A COMMIT of a watched UPDATE returns
# without waiting for Redis: its invalidation goes to the shared queue and
# the database's worker sends it.  The committing session never reads the
# key it invalidated before Redis has taken the invalidation (50 rounds of
# set, UPDATE, read: every read a miss, none with a WARNING); other
# sessions see the change once the worker has sent it; messages keep
# their commit order; a partition makes what waits a backlog (reads miss,
# never stale), sent when the link returns.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_cw
pport=$(tap_netproxy cw "$BMF_REDIS_PORT" 10000)
qs >/dev/null <<SQL
ALTER DATABASE bmf_cw SET bmfredis.port = $pport;
ALTER DATABASE bmf_cw SET bmfredis.key_prefix = 'cw:';
ALTER DATABASE bmf_cw SET bmfredis.stream_channels = 'cwlog';
CREATE TABLE fw (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO fw (id) SELECT generate_series(1, 10);
SELECT redis_watch('fw', 'fw', ARRAY['fw:{id}']);
SQL
is "the database's worker starts again with the database's settings" "$(tap_restart_worker)" "restarted"
R() { redis-cli -p "$BMF_REDIS_PORT" "$@"; }

# --- COMMIT's latency, both ways
R SET cw:fw:1 old >/dev/null
out=$(qs <<'SQL'
SELECT redis_cache_get('fw:1') \gset
SELECT clock_timestamp() AS t0 \gset
UPDATE fw SET v = v + 1 WHERE id = 1;
SELECT (extract(epoch FROM clock_timestamp() - :'t0') * 1000)::int;
SET bmfredis.commit_wait = off;
SELECT clock_timestamp() AS t0 \gset
UPDATE fw SET v = v + 1 WHERE id = 2;
SELECT (extract(epoch FROM clock_timestamp() - :'t0') * 1000)::int;
SQL
)
wait_ms=$(sed -n 1p <<<"$out"); nowait_ms=$(sed -n 2p <<<"$out")
check "a watched UPDATE's COMMIT waits for Redis, 20 ms away: ${wait_ms} ms" [ "${wait_ms:-0}" -ge 20 ]
check "  with commit_wait = off it does not: ${nowait_ms} ms" [ "${nowait_ms:-999}" -lt 15 ]

# --- another session sees the change once the worker has sent it
R SET cw:fw:3 old >/dev/null
t0=$(ms_now)
q "SET bmfredis.commit_wait = off; UPDATE fw SET v = v + 1 WHERE id = 3" >/dev/null
for _ in $(seq 1 200); do [ "$(R EXISTS cw:fw:3)" = 0 ] && break; sleep 0.01; done
t=$(( $(ms_now) - t0 ))
is "  the worker sends the invalidation" "$(R EXISTS cw:fw:3)" "0"
check "  soon: ${t} ms after the COMMIT began (a psql start and 20 ms of distance included)" [ "$t" -lt 1000 ]

# --- read-your-writes: 50 rounds in one session
script=$BMF_WORK/cw.sql
{ echo "SET bmfredis.commit_wait = off;"
  for i in $(seq 1 50); do
	echo "SELECT redis_cache_set('fw:4', 'old');"
	echo "UPDATE fw SET v = v + 1 WHERE id = 4;"
	echo "SELECT coalesce(redis_cache_get('fw:4'), 'miss');"
  done; } >"$script"
out=$(psql -X -q -A -t -d bmf_cw -f "$script" 2>&1)
is "50 rounds of set, UPDATE (not waiting), read in one session: every read a miss" \
	"$(grep -c '^miss$' <<<"$out")" "50"
refute "  never the old value" grep -q '^old$' <<<"$out"
refute "  and no WARNING" grep -q WARNING <<<"$out"

# --- messages in commit order, from many sessions' commits (pub/sub: a
# stream's messages never wait in the queue, a crash would lose them)
timeout 20 redis-cli -p "$BMF_REDIS_PORT" SUBSCRIBE cwps >"$BMF_WORK/cwps.out" 2>&1 &
sub=$!
sleep 0.3
pubs=()
for s in 1 2 3 4; do
	{ echo "SET bmfredis.commit_wait = off;"
	  for i in $(seq 1 50); do echo "SELECT redis_publish('cwps', '$s-$i');"; done; } |
		psql -X -q -d bmf_cw >/dev/null 2>&1 &
	pubs+=($!)
done
wait "${pubs[@]}"
for _ in $(seq 1 200); do [ "$(grep -c '^[1-4]-' "$BMF_WORK/cwps.out")" = 200 ] && break; sleep 0.05; done
kill $sub 2>/dev/null; wait $sub 2>/dev/null
is "four sessions' 200 messages, committed without waiting, all arrive" "$(grep -c '^[1-4]-' "$BMF_WORK/cwps.out")" "200"
ordered=1
for s in 1 2 3 4; do
	got=$(grep "^$s-" "$BMF_WORK/cwps.out" | cut -d- -f2 | paste -sd,)
	[ "$got" = "$(seq -s, 1 50)" ] || ordered=0
done
is "  each session's in its commit order" "$ordered" "1"
R DEL stream:cwlog >/dev/null
out=$(q "SET bmfredis.commit_wait = off; SELECT redis_publish('cwlog', 'kept'); SELECT 'committed'" | tail -1)
is "a message for a stream is sent by its COMMIT itself: there at once" "$out $(R XLEN stream:cwlog)" "committed 1"

# --- turning commit_wait on again while the worker is stopped: the
# COMMIT sends this session's earlier ones first, within the flush timeout
w=$(q "SELECT worker_pid FROM redis_health()")
kill -STOP "$w"
R SET cw:fw:7 old >/dev/null
out=$(qs 2>&1 <<'SQL'
SET bmfredis.commit_wait = off;
UPDATE fw SET v = v + 1 WHERE id = 7;
SET bmfredis.commit_wait = on;
SELECT clock_timestamp() AS t0 \gset
UPDATE fw SET v = v + 1 WHERE id = 8;
SELECT (extract(epoch FROM clock_timestamp() - :'t0') * 1000)::int;
SQL
)
kill -CONT "$w"
check "with the worker stopped, a waiting COMMIT after one that did not wait takes ${out} ms (the flush timeout is 5 s)" \
	[ "${out:-99999}" -lt 1000 ]
is "  and the first one's invalidation is in Redis" "$(R EXISTS cw:fw:7)" "0"

# --- a partition: what waits becomes a backlog
R SET cw:fw:5 old >/dev/null
np_ctl cw hold >/dev/null
out=$(qs 2>&1 <<'SQL'
SET bmfredis.commit_wait = off;
SET bmfredis.command_timeout = '200ms';
SELECT clock_timestamp() AS t0 \gset
UPDATE fw SET v = v + 1 WHERE id = 5;
UPDATE fw SET v = v + 1 WHERE id = 6;
SELECT (extract(epoch FROM clock_timestamp() - :'t0') * 1000)::int;
SQL
)
check "with the link held, COMMITs that do not wait still return at once (${out} ms)" [ "${out:-999}" -lt 100 ]
sleep 1
out=$(qv <<'SQL'
SET bmfredis.command_timeout = '200ms';
SELECT coalesce(redis_cache_get('fw:5'), 'miss');
SQL
)
like "  another session's read is a miss, never the copy Redis still holds" "$out" "miss$"
np_ctl cw release >/dev/null
for _ in $(seq 1 100); do [ "$(R EXISTS cw:fw:5)" = 0 ] && break; sleep 0.1; done
is "  after the link returns, the invalidation reaches Redis" "$(R EXISTS cw:fw:5)" "0"
for _ in $(seq 1 100); do [ "$(q "SELECT retry_pending FROM redis_health()")" = 0 ] && break; sleep 0.1; done
is "  and nothing waits" "$(q "SELECT retry_pending FROM redis_health()")" "0"
q "ALTER DATABASE bmf_cw RESET ALL" >/dev/null
# its worker slot back for the tests after it
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_cw WITH (FORCE)" >/dev/null 2>&1
