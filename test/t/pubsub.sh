# Pub/sub both ways, observed from outside: a real `redis-cli SUBSCRIBE`
# sees what SQL publishes (only what committed, in order), and a psql
# session that LISTENs sees what `redis-cli PUBLISH` sends, through the
# database's worker, across a Redis restart and a change of channels.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_pubsub
R=$BMF_REDISCTL

# sub_start FILE CHANNEL...: a redis-cli subscriber in the background
SUB_PID=
sub_start() {
	local file=$1; shift
	redis-cli -p "$BMF_REDIS_PORT" SUBSCRIBE "$@" >"$file" 2>&1 &
	SUB_PID=$!
	for _ in $(seq 1 50); do
		[ "$(grep -c '^subscribe$' "$file")" -ge $# ] && return 0
		sleep 0.05
	done
}
sub_stop() { kill "$SUB_PID" 2>/dev/null; wait "$SUB_PID" 2>/dev/null; }
# payloads of the messages in FILE, one per line
messages() { awk 'p == 2 { print; p = 0; next } p == 1 { p = 2; next } $0 == "message" { p = 1 }' "$1"; }
trap 'sub_stop' EXIT

# --- transactional publishing, seen by redis-cli
f=$BMF_WORK/sub1.out
sub_start "$f" orders
qs >/dev/null <<'SQL'
SELECT redis_publish('orders', 'autocommit');
BEGIN;
SELECT redis_publish('orders', 'committed-1');
SELECT redis_publish('orders', 'committed-2');
COMMIT;
BEGIN;
SELECT redis_publish('orders', 'rolled-back');
ROLLBACK;
BEGIN;
SELECT redis_publish('orders', 'before-savepoint');
SAVEPOINT s;
SELECT redis_publish('orders', 'in-rolled-back-savepoint');
ROLLBACK TO s;
SELECT redis_publish('orders', 'after-savepoint');
COMMIT;
DO $$
BEGIN
    PERFORM redis_publish('orders', 'outer');
    BEGIN
        PERFORM redis_publish('orders', 'in-caught-exception');
        RAISE EXCEPTION 'caught';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
END $$;
BEGIN;
SELECT redis_publish('orders', 'immediate', immediate => true);
SELECT redis_publish('orders', 'queued-before-error');
SELECT 1 / 0;
COMMIT;
SQL
sleep 0.2
sub_stop
is "redis-cli saw exactly the committed messages, in order" "$(messages "$f" | tr '\n' ' ')" \
	"autocommit committed-1 committed-2 before-savepoint after-savepoint outer immediate "

# --- a publish committed while Redis is frozen is delivered when it answers
f=$BMF_WORK/sub0.out
sub_start "$f" orders
$R pause
q "SET bmfredis.flush_timeout = '200ms'; SET client_min_messages = error; SELECT redis_publish('orders', 'during-outage')" >/dev/null
$R resume
for i in $(seq 1 100); do grep -q during-outage "$f" && break; sleep 0.1; done
sub_stop
is "the retry queue delivered it" "$(messages "$f" | tr '\n' ' ')" "during-outage "

# --- trigger events with their envelope, seen by redis-cli
q "CREATE TABLE products (id int PRIMARY KEY, shop_id int, title text, price numeric, cost numeric);
   SELECT redis_watch('products', 'product', ARRAY['product:{id}', 'shop:{shop_id}:products'],
                      columns => ARRAY['title', 'price'], channel => 'product')" >/dev/null
f=$BMF_WORK/sub2.out
sub_start "$f" product:created product:updated product:deleted
txid=$(qs <<'SQL'
BEGIN;
INSERT INTO products VALUES (1, 7, 'Presets', 19.99, 3.10);
UPDATE products SET price = 17.99, cost = 2.00 WHERE id = 1;
UPDATE products SET cost = 1.00 WHERE id = 1;
DELETE FROM products WHERE id = 1;
SELECT txid_current();
COMMIT;
SQL
)
sleep 0.2
sub_stop
messages "$f" >"$BMF_WORK/events.json"
is "three events: created, updated, deleted (the cost-only update is not one)" "$(wc -l <"$BMF_WORK/events.json")" "3"
norm=$(while IFS= read -r line; do
	psql -X -At -d bmf_pubsub -v ev="$line" <<<"SELECT (:'ev'::jsonb - 'id' - 'time' - 'txid')::text"
done <"$BMF_WORK/events.json")
is "the envelopes, exactly" "$norm" '{"data": {"id": 1, "price": 19.99, "title": "Presets", "shop_id": 7}, "type": "product:created", "entity": "product", "database": "bmf_pubsub", "entity_id": "1", "operation": "created"}
{"data": {"id": 1, "price": 17.99, "title": "Presets", "shop_id": 7}, "type": "product:updated", "entity": "product", "changed": ["price"], "database": "bmf_pubsub", "entity_id": "1", "operation": "updated"}
{"data": {"id": 1, "price": 17.99, "title": "Presets", "shop_id": 7}, "type": "product:deleted", "entity": "product", "database": "bmf_pubsub", "entity_id": "1", "operation": "deleted"}'
first=$(head -1 "$BMF_WORK/events.json")
like "the envelope is sent in its documented key order" "$first" '^\{"id": "[0-9a-f-]{36}", "type": "product:created", "entity": "product", "operation": "created", "entity_id": "1", "data": \{"id": 1, "shop_id": 7, "title": "Presets", "price": 19.99\}, "time": "[0-9-]{10}T[0-9:.]{15}Z", "txid": [0-9]+, "database": "bmf_pubsub"\}$'
like "the txid is the writing transaction's" "$first" "\"txid\": $txid,"
refute "the column not listed (cost) never travels" grep -q cost "$BMF_WORK/events.json"

# --- a bulk change streams its events (PUBLISH inside MULTI while it runs,
# EXEC after COMMIT's invalidations): every event arrives, in order, then
# the summary; a rolled-back savepoint's events and an aborted change's
# never do
q "CREATE TABLE items (id int PRIMARY KEY, n int);
   INSERT INTO items SELECT i, 0 FROM generate_series(1, 3000) i;
   SELECT redis_watch('items', 'item', ARRAY['item:{id}'], channel => 'item')" >/dev/null
f=$BMF_WORK/sub_bulk.out
sub_start "$f" item:updated item:updated:bulk
streams=$(q "SELECT value FROM redis_stats_values() WHERE name = 'streams'")
qs >/dev/null <<'SQL'
SET bmfredis.max_pending_messages = 2000;
BEGIN;
UPDATE items SET n = 1 WHERE id <= 1000;
SAVEPOINT s;
UPDATE items SET n = 2 WHERE id > 2500;
ROLLBACK TO s;
RELEASE s;
UPDATE items SET n = 3 WHERE id > 1000 AND id <= 2500;
COMMIT;
BEGIN;
UPDATE items SET n = 4;
ROLLBACK;
SQL
for i in $(seq 1 50); do grep -q '"rows": 500' "$f" && break; sleep 0.1; done
sleep 0.2
sub_stop
is "the committed change used a key stream and an event stream" \
	"$(q "SELECT value - $streams FROM redis_stats_values() WHERE name = 'streams'")" "2"
ids=$(messages "$f" | sed -n 's/.*"entity_id": "\([0-9]*\)".*/\1/p' | tr '\n' ' ')
is "its 2,000 events arrived, in order, and none of the savepoint's" "$ids" "$(seq -s ' ' 1 2000) "
like "then the summary of the 500 past bmfredis.max_pending_messages" "$(messages "$f" | tail -1)" '"type": "item:bulk".*"rows": 500'

# --- invalidations announce themselves on cache:invalidated
f=$BMF_WORK/sub3.out
sub_start "$f" cache:invalidated
q "SET bmfredis.announce_invalidations = on; SELECT redis_invalidate(ARRAY['a', 'b']); SELECT redis_invalidate_tag('shop:7')" >/dev/null
sleep 0.2
sub_stop
ann=$(messages "$f" | while IFS= read -r line; do psql -X -At -d bmf_pubsub -v ev="$line" <<<"SELECT (:'ev'::jsonb -> 'data')::text"; done | tr '\n' ' ')
is "cache:invalidated announces the keys and the tags" "$ann" '{"keys": ["bmfredis:a", "bmfredis:b"]} {"tags": ["bmfredis:tag:shop:7"]} '

# --- Redis -> NOTIFY through the database's worker
# (its own list, set the PostgreSQL way: the worker starts again with it)
psql -X -q -d postgres -c "ALTER DATABASE bmf_pubsub SET bmfredis.subscribe = 'product:*, big, cache:*'" >/dev/null
spid=$(subscriber_pid)
check "the database's worker relays its channels (pid $spid)" [ -n "$spid" ]
subscribed() {  # subscribed PATTERN_COUNT: the worker's connection has them
	local i
	for i in $(seq 1 100); do
		redis-cli -p "$BMF_REDIS_PORT" CLIENT LIST | grep -q "name=bmfredis:[^ ]*:$spid .*psub=$1 " && return 0
		sleep 0.1
	done
	return 1
}
check "it subscribes to the database's list (two patterns, one channel)" subscribed 2

# listen CHANNEL SECONDS OUT: a psql session LISTENing for SECONDS
listen() {
	psql -X -d bmf_pubsub -c "LISTEN \"$1\"" -c "SELECT pg_sleep($2)" >"$3" 2>&1 &
	LISTEN_PID=$!
	sleep 0.5
}
relayed0=$(q "SELECT value FROM redis_stats WHERE name = 'messages_relayed'")	# other tests' relays
listen product:created 2 "$BMF_WORK/listen1.out"
redis-cli -p "$BMF_REDIS_PORT" PUBLISH product:created '{"productId": "p-1"}' >/dev/null
wait "$LISTEN_PID"
like "redis-cli PUBLISH arrives as a NOTIFY" "$(cat "$BMF_WORK/listen1.out")" \
	'Asynchronous notification "product:created" with payload "\{"productId": "p-1"\}" received'

listen big 2 "$BMF_WORK/listen2.out"
redis-cli -p "$BMF_REDIS_PORT" PUBLISH big "$(head -c 9000 /dev/zero | tr '\0' 'x')" >/dev/null
wait "$LISTEN_PID"
like "a 9,000-byte message arrives as a reference" "$(cat "$BMF_WORK/listen2.out")" \
	'payload "\{"bmfredis_payload": [0-9]+, "bytes": 9000\}"'
id=$(grep -o '"bmfredis_payload": [0-9]*' "$BMF_WORK/listen2.out" | grep -o '[0-9]*$')
is "and is kept in bmfredis.notify_payloads" "$(q "SELECT length(message) FROM bmfredis.notify_payloads WHERE id = $id")" "9000"

# the worker survives a Redis restart and subscribes again
$R restart
check "after a Redis restart the worker subscribes again" subscribed 2
listen product:updated 2 "$BMF_WORK/listen3.out"
redis-cli -p "$BMF_REDIS_PORT" PUBLISH product:updated after-restart >/dev/null
wait "$LISTEN_PID"
like "messages published after that arrive" "$(cat "$BMF_WORK/listen3.out")" 'payload "after-restart"'

# another list: old channels stop, new ones start
psql -X -q -d postgres -c "ALTER DATABASE bmf_pubsub SET bmfredis.subscribe = 'shop:*'" >/dev/null
for _ in $(seq 1 100); do
	[ "$(q "SELECT subscriber_pid FROM redis_health()")" != "$spid" ] && break
	sleep 0.1
done
spid=$(subscriber_pid)
check "with another list the worker subscribes to it" subscribed 1
listen shop:updated 2 "$BMF_WORK/listen4.out"
redis-cli -p "$BMF_REDIS_PORT" PUBLISH shop:updated new-list >/dev/null
wait "$LISTEN_PID"
like "the new channels arrive" "$(cat "$BMF_WORK/listen4.out")" 'payload "new-list"'
listen product:created 2 "$BMF_WORK/listen5.out"
redis-cli -p "$BMF_REDIS_PORT" PUBLISH product:created old-list >/dev/null
wait "$LISTEN_PID"
refute "the old ones no longer do" grep -q 'old-list' "$BMF_WORK/listen5.out"
is "the relayed messages are counted" "$(q "SELECT value - $relayed0 FROM redis_stats WHERE name = 'messages_relayed'")" "4"
psql -X -q -d postgres -c "ALTER DATABASE bmf_pubsub RESET bmfredis.subscribe" >/dev/null
