# far_partition: PostgreSQL cut from Redis while Redis itself is well (a
# partition of the link alone, which SIGSTOP cannot make: Redis answers
# everyone else, and a Sentinel would see it alive).  Every backend and
# the database's worker reach Redis through test/netproxy at 5 ms round
# trip with up to 1 ms of jitter each way; the proxy holds the link
# (silence, not a reset) for 3 s.  Meanwhile a near-cache session reads a
# watched row every few ms and checks each read against the value
# committed before it began.  Expected: COMMITs of a watched table commit
# within bmfredis.flush_timeout, the invalidations they could not send go
# to the retry queue, reads during the partition are misses (never the
# stale copy), and after the link returns the queue drains and nothing
# stale is served, from Redis or from the near-cache.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_far
pport=$(tap_netproxy far "$BMF_REDIS_PORT" 2500 1000)
qs >/dev/null <<SQL
ALTER DATABASE bmf_far SET bmfredis.port = $pport;
ALTER DATABASE bmf_far SET bmfredis.key_prefix = 'far:';
ALTER DATABASE bmf_far SET bmfredis.flush_timeout = '400ms';
ALTER DATABASE bmf_far SET bmfredis.command_timeout = '300ms';
ALTER DATABASE bmf_far SET bmfredis.connect_timeout = '300ms';
SQL
qs >/dev/null <<'SQL'
CREATE TABLE fp (id int PRIMARY KEY, v int NOT NULL DEFAULT 1);
INSERT INTO fp (id) SELECT generate_series(1, 20);
SELECT redis_watch('fp', 'fp', ARRAY['fp:{id}']);
CREATE TABLE flag (what text);
SQL
# the worker starts anew, with the database's settings (it sends the retry
# queue: through the proxy too)
is "the database's worker restarts with the database's settings" "$(tap_restart_worker)" "restarted"
q "SELECT count(redis_cached('fp:' || id, '1 hour', 'SELECT v FROM fp WHERE id = ' || id)) FROM fp" >/dev/null
is "through the proxy, the rows are cached in Redis" "$(redis-cli -p "$BMF_REDIS_PORT" GET far:fp:1)" '1'

# the reader: near-cache on, until the flag says stop
qs >"$BMF_WORK/far-reader.out" 2>&1 <<'SQL' &
SET bmfredis.near_cache = on;
DO $$
DECLARE
    before int; got int; reads int := 0; bad int := 0; misses int := 0;
BEGIN
    LOOP
        EXIT WHEN EXISTS (SELECT FROM flag WHERE what = 'stop');
        before := (SELECT v FROM fp WHERE id = 1);
        got := redis_cached('fp:1', '1 hour', 'SELECT v FROM fp WHERE id = 1')::text::int;
        reads := reads + 1;
        IF got < before THEN
            bad := bad + 1;
            RAISE NOTICE 'violation: read % after % was committed', got, before;
        END IF;
        PERFORM pg_sleep(0.005);
    END LOOP;
    RAISE NOTICE 'reads=% violations=%', reads, bad;
END
$$;
SELECT 'near_hits=' || value FROM redis_stats WHERE name = 'near_cache_hits';
SQL
reader=$!
sleep 1

is "hold: the link between PostgreSQL and Redis goes silent" "$(np_ctl far hold)" "ok held"
is "  while Redis answers everyone else" "$(redis-cli -p "$BMF_REDIS_PORT" PING)" "PONG"
t0=$(ms_now)
out=$(q "UPDATE fp SET v = v + 1 WHERE id <= 5 RETURNING 'committed'" | tail -1)
t1=$(( $(ms_now) - t0 ))
is "a watched UPDATE commits during the partition" "$out" "committed"
check "  within flush_timeout (400 ms) and the connect it waited for: ${t1} ms" [ "$t1" -lt 1500 ]
t0=$(ms_now)
for i in 1 2 3; do q "UPDATE fp SET v = v + 1 WHERE id = 1" >/dev/null; done
t2=$(( $(ms_now) - t0 ))
check "  and three more commit without waiting for the link again (${t2} ms for three)" [ "$t2" -lt 1500 ]
pending=$(q "SELECT retry_pending FROM redis_health()")
check "  what they could not send is in the retry queue (retry_pending ${pending})" [ "${pending:-0}" -gt 0 ]
is "  Redis still holds the old copy, unreachable to bmfredis" "$(redis-cli -p "$BMF_REDIS_PORT" GET far:fp:1)" '1'
like "  a read of it now is the table's value, not the copy (with a WARNING that says why)" \
	"$(q "SELECT redis_cached('fp:1', '1 hour', 'SELECT v FROM fp WHERE id = 1')")" "^WARNING:  Redis is (unavailable|still catching up on invalidations).*5$"
sleep 2
is "release" "$(np_ctl far release)" "ok released"
for _ in $(seq 1 100); do
	[ "$(q "SELECT retry_pending FROM redis_health()")" = 0 ] && break
	sleep 0.1
done
is "after the link returns, the retry queue drains" "$(q "SELECT retry_pending FROM redis_health()")" "0"
refute "  and Redis no longer holds the old copy" [ "$(redis-cli -p "$BMF_REDIS_PORT" GET far:fp:1)" = '1' ]
is "  and a read is the table's value" \
	"$(q "SELECT redis_cached('fp:1', '1 hour', 'SELECT v FROM fp WHERE id = 1')")" "5"
sleep 0.5
q "INSERT INTO flag VALUES ('stop')" >/dev/null
wait $reader
line=$(grep -o 'reads=[0-9]* violations=[0-9]*' "$BMF_WORK/far-reader.out")
reads=${line#reads=}; reads=${reads%% *}; bad=${line##*violations=}
check "the near-cache reader read before, during and after the partition (${reads:-0} reads)" [ "${reads:-0}" -gt 50 ]
is "  and never a value older than the one committed before its read" "${bad:-none}" "0"
grep 'violation:' "$BMF_WORK/far-reader.out" | head -3 | sed 's/^/#   /'
check "  while serving reads from its memory ($(sed -n 's/.*near_hits=//p' "$BMF_WORK/far-reader.out") hits)" \
	[ "$(sed -n 's/.*near_hits=//p' "$BMF_WORK/far-reader.out")" -gt 10 ]
q "ALTER DATABASE bmf_far RESET ALL" >/dev/null
# its worker slot back for the tests after it
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_far WITH (FORCE)" >/dev/null 2>&1
