# streams: messages that wait for their reader.  With
# bmfredis.stream_channels, redis_publish and change events go to a Redis
# Stream with XADD at COMMIT, in commit order; a consumer group in Node
# (ioredis XREADGROUP), started after 1,000 commits, reads all 1,000 in
# order, and none of a rolled-back transaction; with Redis frozen during
# 200 commits, all 200 arrive once it answers; MAXLEN ~ caps a stream;
# without bmfredis.stream_also_publish a message goes to the stream only.
. "$(dirname "$0")/../tap.sh"
tap_need node=nodejs npm=npm
tap_db bmf_streams
R=$BMF_REDISCTL
tap_ioredis
port=$($R port)
consume() { node "$BMF_ROOT/test/stream_consumer.js" "$port" "$@"; }
q "ALTER DATABASE bmf_streams SET bmfredis.stream_channels = 'payment:*, product:*'" >/dev/null
$R cli DEL stream:payment:succeeded stream:product:updated stream:payment:failed >/dev/null

out=$(qv <<<"SET bmfredis.stream_channels = 'payment:*,,x'")
like "an empty pattern in bmfredis.stream_channels is refused" "$out" "invalid value for parameter \"bmfredis.stream_channels\""
q "DROP ROLE IF EXISTS bmf_streams_role; CREATE ROLE bmf_streams_role LOGIN" >/dev/null
like "  and only a superuser sets it" \
	"$(psql -X -q -A -t -d bmf_streams -U bmf_streams_role -c "SET bmfredis.stream_channels = 'x'" 2>&1)" \
	"permission denied to set parameter \"bmfredis.stream_channels\""
q "DROP ROLE bmf_streams_role" >/dev/null

# 1,000 commits, one message each, then one rolled back
for i in $(seq 1 1000); do echo "SELECT redis_publish('payment:succeeded', '{\"n\": $i}');"; done |
	psql -X -q -d bmf_streams >/dev/null
q "BEGIN; SELECT redis_publish('payment:succeeded', '{\"n\": 0}'); ROLLBACK" >/dev/null
is "1,000 committed messages are in the stream" "$($R cli XLEN stream:payment:succeeded)" "1000"
got=$(consume svc 1001 stream:payment:succeeded)
want=$(seq 1 1000 | sed 's/.*/{"n": &}/')
is "a consumer group started after the commits reads all 1,000, in commit order, none rolled back" "$got" "$want"
is "  and acknowledged them all" "$($R cli XPENDING stream:payment:succeeded svc | head -1)" "0"

# a watched table's change events
q "CREATE TABLE products (id int PRIMARY KEY, price numeric);
INSERT INTO products SELECT i, 1 FROM generate_series(1, 3) i;
SELECT redis_watch('products', 'product', rule => 'events', channel => 'product');" >/dev/null
q "UPDATE products SET price = 2 WHERE id = 2" >/dev/null
got=$(consume svc 1 stream:product:updated)
like "a watched table's change event goes to its stream too" "$got" "product:updated"

# Redis frozen during 200 commits
$R pause
for i in $(seq 1 200); do echo "SELECT redis_publish('payment:failed', '{\"n\": $i}');"; done |
	PGOPTIONS="-c bmfredis.on_error=ignore -c bmfredis.connect_timeout=300 -c bmfredis.command_timeout=300 -c bmfredis.flush_timeout=300" \
	psql -X -q -d bmf_streams >/dev/null 2>&1
pending=$(q "SELECT retry_pending FROM redis_health()" 2>/dev/null | tail -1)
$R resume
for _ in $(seq 1 100); do [ "$(q "SELECT retry_pending FROM redis_health()" | tail -1)" = 0 ] && break; sleep 0.1; done
is "Redis frozen during 200 commits: they waited in the retry queue (a PUBLISH and an XADD each)" "$pending" "400"
got=$(consume svc 200 stream:payment:failed)
is "  and all 200 arrive in order once it answers" "$got" "$(seq 1 200 | sed 's/.*/{"n": &}/')"

# the cap, and streams only
q "ALTER DATABASE bmf_streams SET bmfredis.stream_maxlen = 100" >/dev/null
for i in $(seq 1 1000); do echo "SELECT redis_publish('payment:capped', '$i');"; done |
	psql -X -q -d bmf_streams >/dev/null
len=$($R cli XLEN stream:payment:capped)
check "bmfredis.stream_maxlen = 100 keeps about 100 entries (MAXLEN ~): $len" test "$len" -ge 100 -a "$len" -lt 300
is "  the newest kept" "$($R cli XREVRANGE stream:payment:capped + - COUNT 1 | sed -n 3p)" "1000"
redis-cli -p "$port" SUBSCRIBE payment:only >"$BMF_WORK/sub.out" 2>&1 &
sub=$!
for _ in $(seq 1 50); do [ "$($R cli PUBSUB NUMSUB payment:only | sed -n 2p)" = 1 ] && break; sleep 0.1; done
qs >/dev/null <<'SQL'
SET bmfredis.stream_also_publish = off;
SELECT redis_publish('payment:only', 'quiet');
RESET bmfredis.stream_also_publish;
SELECT redis_publish('payment:only', 'loud');
SQL
sleep 0.3
kill "$sub"; wait "$sub" 2>/dev/null
is "without bmfredis.stream_also_publish a message goes to the stream only; with it, to both" \
	"$($R cli XLEN stream:payment:only) $(grep -c -x quiet "$BMF_WORK/sub.out") $(grep -c -x loud "$BMF_WORK/sub.out")" "2 0 1"
$R cli DEL stream:payment:succeeded stream:product:updated stream:payment:failed stream:payment:capped stream:payment:only >/dev/null
q "ALTER DATABASE bmf_streams RESET bmfredis.stream_channels; ALTER DATABASE bmf_streams RESET bmfredis.stream_maxlen" >/dev/null
