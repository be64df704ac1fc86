# idle_close: bmfredis.idle_close.  A session idle that long (waiting for
# its client, outside a transaction) has closed every Redis connection: the
# server no longer counts them, and the session's next call connects again
# and serves nothing stale from its near-cache.  A busy session closes what
# it has not used for that long (a large transaction's stream connection,
# the near-cache's tracking pair) and keeps what it uses.  Never inside a
# transaction; never with idle_close = 0.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_idle
q "CREATE TABLE big (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO big (id) SELECT generate_series(1, 3000);
SELECT redis_watch('big', 'big', ARRAY['big:{id}']);
SELECT redis_cache_set('k', 'v1');" >/dev/null
# conns PID: the connections Redis holds for the backend PID
conns() { redis-cli -p "$BMF_REDIS_PORT" CLIENT LIST | grep -c "name=bmfredis:[^ ]*:$1 "; }
C="\\! bash -c 'redis-cli -p $BMF_REDIS_PORT CLIENT LIST | grep -c \"name=bmfredis:[^ ]*:\$(cat $BMF_WORK/idle.pid) \"'"

# --- an idle session
out=$(qs 2>&1 <<SQL
SET bmfredis.idle_close = '1s';
SET bmfredis.near_cache = on;
SELECT pg_backend_pid() \\g $BMF_WORK/idle.pid
SELECT redis_cache_get('k'), redis_cache_get('k'), redis_cache_get('k');
UPDATE big SET v = v + 1;
$C
\\! sleep 2.5
$C
\\! redis-cli -p $BMF_REDIS_PORT SET bmfredis:k v2 >/dev/null
SELECT redis_cache_get('k');
$C
SQL
)
is "a session holds its connections: the command one, the near-cache's tracking one and a large transaction's stream" \
	"$(sed -n 2p <<<"$out")" "3"
is "  idle for bmfredis.idle_close (1 s), it has closed them all: Redis counts none" "$(sed -n 3p <<<"$out")" "0"
is "  its next call connects again and reads what Redis holds now, not its near-cache copy" "$(sed -n 4p <<<"$out")" "v2"
is "  with its command connection and, as it reads through the near-cache, a new tracking one" "$(sed -n 5p <<<"$out")" "2"
refute "  and nothing went wrong" grep -q "ERROR\|WARNING" <<<"$out"

# --- a busy session: what it uses stays, what it does not is closed
out=$(qs 2>&1 <<SQL
SET bmfredis.idle_close = '1s';
SET bmfredis.near_cache = on;
SELECT pg_backend_pid() \\g $BMF_WORK/idle.pid
SELECT redis_cache_get('k'), redis_cache_get('k'), redis_cache_get('k');
UPDATE big SET v = v + 1;
$C
SELECT redis_cache_set('w', 'x');
SELECT pg_sleep(0.4);
SELECT redis_cache_set('w', 'x');
SELECT pg_sleep(0.4);
SELECT redis_cache_set('w', 'x');
SELECT pg_sleep(0.4);
SELECT redis_cache_set('w', 'x');
SELECT pg_sleep(0.4);
SELECT redis_cache_set('w', 'x');
$C
SELECT string_agg(node || ' ' || state, ', ' ORDER BY node) FROM redis_connections();
SQL
)
is "a busy session holds three connections" "$(sed -n 2p <<<"$out")" "3"
is "  after 2 s of writes only, the unused stream and tracking connections are closed" "$(tail -2 <<<"$out" | head -1)" "1"
is "  the command connection stays" "$(tail -1 <<<"$out")" \
	"127.0.0.1:$BMF_REDIS_PORT idle, 127.0.0.1:$BMF_REDIS_PORT (stream) closed"

# --- inside a transaction: nothing is closed
out=$(qs 2>&1 <<SQL
SET bmfredis.idle_close = '1s';
SELECT pg_backend_pid() \\g $BMF_WORK/idle.pid
SELECT redis_cache_get('k');
BEGIN;
SELECT redis_cache_get('k');
\\! sleep 2
$C
SELECT redis_cache_get('k');
COMMIT;
SQL
)
is "idle inside a transaction for longer: the connection stays, and works" "$(sed -n 3,4p <<<"$out")" "1
v2"

# --- idle_close = 0: never
out=$(qs 2>&1 <<SQL
SET bmfredis.idle_close = 0;
SELECT pg_backend_pid() \\g $BMF_WORK/idle.pid
SELECT redis_cache_get('k');
\\! sleep 2
$C
SQL
)
is "idle_close = 0: an idle session keeps its connection" "$(sed -n 2p <<<"$out")" "1"

# --- the setting
out=$(qv <<<"SET bmfredis.idle_close = -1")
like "a negative idle_close is refused" "$out" "ERROR:  22023: -1 ms is outside the valid range"
is "its default is 1 min" "$(q "SELECT setting || unit FROM pg_settings WHERE name = 'bmfredis.idle_close'")" "60000ms"
# its worker slot back for the tests after it
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_idle WITH (FORCE)" >/dev/null 2>&1
