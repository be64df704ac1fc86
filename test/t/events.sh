# events: one event shape, whoever makes the event, as the marketplace's
# Node services see it through ioredis (their own Redis client, from npm):
# a watched table's change event, an event from the redis_event_* helpers
# and one from redis_event() have the same keys in the same order with the
# same types, integer ids are numbers in both, and cache:invalidated
# announcements are envelopes too.
. "$(dirname "$0")/../tap.sh"
tap_need node=nodejs npm=npm
tap_db bmf_events

tap_ioredis

qs >/dev/null <<'SQL'
CREATE TABLE products (id int PRIMARY KEY, shop_id int, title text, price numeric(10, 2), secret text);
INSERT INTO products VALUES (42, 7, 'Presets', 19.99, 'not for events');
SELECT redis_watch('products', 'product', ARRAY['product:{id}'], columns => ARRAY['title', 'price']);
SELECT redis_watch('products', 'product', rule => 'events', columns => ARRAY['title', 'price'], channel => 'product');
SQL

node "$BMF_ROOT/test/events.js" "$BMF_REDIS_PORT" 4 'product:*' 'cache:*' >"$BMF_WORK/events.out" 2>&1 &
listener=$!
for _ in $(seq 1 50); do grep -q ready "$BMF_WORK/events.out" && break; sleep 0.1; done
qs >/dev/null <<'SQL'
UPDATE products SET price = 17.99 WHERE id = 42;
BEGIN;
UPDATE products SET secret = 'still not' WHERE id = 42;	-- a write: the event has a txid
SELECT redis_publish_event(redis_event_product('updated', '42', '7', 'photo-1'));
COMMIT;
SELECT redis_publish_event(redis_event('product:featured', '{"productId": 42}', '42'));
SET bmfredis.announce_invalidations = on;
SELECT redis_invalidate('product:42');
SQL
wait $listener
line() { grep -F "\"channel\":\"$1\"" "$BMF_WORK/events.out" | sed -n "${2:-1}p"; }
field() { node -e 'const l = JSON.parse(process.argv[1]); console.log(JSON.stringify(eval("l." + process.argv[2])))' "$1" "$2"; }

trig=$(line product:updated 1)
helper=$(line product:updated 2)
plain=$(line product:featured)
ann=$(line cache:invalidated)
check "ioredis received the trigger's event, the helper's, redis_event()'s and the announcement" \
	[ -n "$trig" ] && [ -n "$helper" ] && [ -n "$plain" ] && [ -n "$ann" ]
envelope='["id","type","entity","operation","entity_id","data","time","txid","database"]'
is "a trigger's update event: the envelope's keys in order (with changed)" "$(field "$trig" keys)" \
	'["id","type","entity","operation","entity_id","data","changed","time","txid","database"]'
is "  a helper's event: the same keys, in the same order" "$(field "$helper" keys)" "$envelope"
is "  redis_event()'s: the same" "$(field "$plain" keys)" "$envelope"
is "  the announcement's: the same" "$(field "$ann" keys)" "$envelope"
types='{"id":"string","type":"string","entity":"string","operation":"string","entity_id":"string","data":"object","time":"string","txid":"number","database":"string"}'
is "the envelope's types, from a helper" "$(field "$helper" types)" "$types"
is "  txid is null where the transaction wrote nothing" "$(field "$plain" types.txid)" '"null"'
is "  and from the trigger (with changed an array)" "$(field "$trig" types)" \
	'{"id":"string","type":"string","entity":"string","operation":"string","entity_id":"string","data":"object","changed":"array","time":"string","txid":"number","database":"string"}'
is "integer ids are numbers in the trigger's data" "$(field "$trig" data)" '{"id":"number","title":"string","price":"number"}'
is "  and in the helper's; a text id stays a string" "$(field "$helper" data)" \
	'{"shopId":"number","productId":"number","categoryId":"string"}'
is "  entity_id is a string in both" "$(field "$trig" event.entity_id) $(field "$helper" event.entity_id)" '"42" "42"'
is "the trigger's data carries no column it was not told to" "$(field "$trig" 'event.data.secret')" "undefined"
is "cache:invalidated: an envelope whose data lists the keys" "$(field "$ann" 'event.data')" '{"keys":["bmfredis:product:42"]}'
