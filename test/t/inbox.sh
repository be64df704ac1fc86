# inbox: Redis Streams consumed into PostgreSQL.  The database's worker
# reads a stream with a consumer group, puts each entry in the table the
# DBA named (and NOTIFYs) and acknowledges it only once that committed:
# 100 entries land once each; the worker killed in the middle of a slow
# batch (SIGTERM, then SIGKILL) loses nothing and applies nothing twice;
# entries delivered again (the group rewound) are not applied again; an
# entry the table refuses stays pending with a WARNING, and the entries
# after it wait; a NOTIFY-only consumer; bad registrations are refused.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_inbox
R=$BMF_REDISCTL
$R cli DEL payments:in notes:in >/dev/null

q "CREATE TABLE payment_inbox (stream text, entry_id text, message jsonb,
	received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (stream, entry_id));
CREATE TABLE applied (n int);
CREATE FUNCTION count_applied() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	INSERT INTO applied VALUES ((NEW.message->>'n')::int);
	PERFORM pg_sleep(coalesce(current_setting('inbox.delay', true), '0')::float8);
	RETURN NEW;
END \$\$;
CREATE TRIGGER count_applied AFTER INSERT ON payment_inbox FOR EACH ROW EXECUTE FUNCTION count_applied();" >/dev/null

# --- registrations refused
out=$(qv <<<"SELECT redis_consume_stream('payments:in')")
like "a stream going nowhere is refused" "$out" "ERROR:  22023: stream \"payments:in\" would go nowhere"
q "CREATE TABLE wrong (id int)" >/dev/null
out=$(qv <<<"SELECT redis_consume_stream('payments:in', 'wrong')")
like "a table without the columns is refused, naming them" "$out" "ERROR:  42P16: table public.wrong cannot hold stream entries.*lacks: stream text, entry_id text, message text, json or jsonb"
q "CREATE TABLE no_key (stream text, entry_id text, message text)" >/dev/null
out=$(qv <<<"SELECT redis_consume_stream('payments:in', 'no_key')")
like "  and one without a unique (stream, entry_id)" "$out" "ERROR:  42P16: table public.no_key has no unique index on \\(stream, entry_id\\)"
q "CREATE ROLE bmf_inbox_user LOGIN" >/dev/null 2>&1
out=$(psql -X -q -A -t -d bmf_inbox -U bmf_inbox_user -c "SELECT redis_consume_stream('x', notify => 'y')" 2>&1)
like "  and a role without the admin capability may not register one" "$out" "permission denied for function redis_consume_stream"
q "DROP ROLE bmf_inbox_user" >/dev/null

# --- 100 entries, once each
q "SELECT redis_consume_stream('payments:in', 'payment_inbox')" >/dev/null
for i in $(seq 1 100); do echo "XADD payments:in * message '{\"n\":$i}'"; done | $R cli >/dev/null
rows() { q "SELECT count(*) || ' ' || count(DISTINCT entry_id) FROM payment_inbox"; }
wait_rows() {  # until the table has $1 rows, at most 20 s
	for _ in $(seq 1 200); do [ "$(rows)" = "$1 $1" ] && return 0; sleep 0.1; done
	return 1
}
check "100 entries land in the table" wait_rows 100
is "  each once, in order" "$(q "SELECT string_agg(n::text, ',' ORDER BY n) = string_agg(n::text, ',') FROM applied")" "t"
is "  and are acknowledged (nothing pending in the group)" "$($R cli XPENDING payments:in bmfredis | head -1)" "0"
is "  the consumer is named after the database" "$($R cli XINFO CONSUMERS payments:in bmfredis | sed -n 2p)" "bmfredis:bmf_inbox"

# --- the worker killed in the middle of a slow batch
worker_pid() { q "SELECT pid FROM redis_workers() WHERE database = 'bmf_inbox' AND state = 'running'"; }
q "ALTER DATABASE bmf_inbox SET inbox.delay = '0.02'" >/dev/null	# the worker restarts with it
sleep 2
for i in $(seq 101 300); do echo "XADD payments:in * message '{\"n\":$i}'"; done | $R cli >/dev/null
for _ in $(seq 1 100); do [ "$(q "SELECT count(*) FROM payment_inbox")" -gt 100 ] 2>/dev/null && break; sleep 0.05; done
sleep 0.5
pid=$(worker_pid)
kill -TERM "$pid" 2>/dev/null
check "the worker (pid $pid) stopped mid-batch with SIGTERM" test -n "$pid"
check "  its replacement stores the rest" wait_rows 300
is "  nothing applied twice (the trigger ran once per entry)" "$(q "SELECT count(*) || ' ' || count(DISTINCT n) FROM applied")" "300 300"
for i in $(seq 301 400); do echo "XADD payments:in * message '{\"n\":$i}'"; done | $R cli >/dev/null
sleep 1
pid=$(worker_pid)
echo "$pid" >>"$BMF_WORK/killed.pids"	# not a death test/run should report
cold=$(tap_cold_mark)
kill -KILL "$pid" 2>/dev/null
for _ in $(seq 1 300); do q "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
check "killed with SIGKILL mid-batch (pid $pid): after the crash restart the rest lands" wait_rows 400
is "  nothing applied twice" "$(q "SELECT count(*) || ' ' || count(DISTINCT n) FROM applied")" "400 400"
is "  nothing pending" "$($R cli XPENDING payments:in bmfredis | head -1)" "0"
check "  the cold start the crash began is over" tap_cold_over "$cold"
q "ALTER DATABASE bmf_inbox RESET inbox.delay" >/dev/null

# --- delivered again: the group rewound to the start
$R cli XGROUP SETID payments:in bmfredis 0 >/dev/null
sleep 3
is "entries delivered again (XGROUP SETID 0) are not applied again" \
	"$(rows) $(q "SELECT count(*) FROM applied")" "400 400 400"

# --- an entry the table refuses
# in one MULTI, so that the worker reads the three in one batch (one it
# read alone would leave the two others unread behind it, not pending)
printf '%s\n' MULTI "XADD payments:in * message 'not json'" \
	"XADD payments:in * message '{\"n\":401}'" "XADD payments:in * message '{\"n\":402}'" EXEC | $R cli >/dev/null
sleep 3
check "an entry that is not JSON for a jsonb column: a WARNING naming it and how to skip it" \
	grep -q "WARNING:  bmfredis could not store entry .* of stream \"payments:in\": invalid input syntax for type json" "$BMF_WORK/pgdata.log"
is "  it stays pending, and the two read after it wait with it" "$(rows) $($R cli XPENDING payments:in bmfredis | head -1)" "400 400 3"
is "  said once, not at every pass (again every 5 minutes while refused)" \
	"$(grep -c 'WARNING:  bmfredis could not store entry .* of stream "payments:in": invalid input syntax' "$BMF_WORK/pgdata.log")" "1"
bad=$($R cli XPENDING payments:in bmfredis - + 1 | head -1)
$R cli XACK payments:in bmfredis "$bad" >/dev/null
check "  skipped by hand (XACK), the rest follows" wait_rows 402

# --- NOTIFY only
q "SELECT redis_consume_stream('notes:in', notify => 'notes')" >/dev/null
out=$(psql -X -q -A -t -d bmf_inbox <<SQL 2>&1
LISTEN notes;
SELECT pg_sleep(1.5);
\! $R cli XADD notes:in '*' message hello >/dev/null
SELECT pg_sleep(2.5);
SQL
)
like "a NOTIFY-only consumer: a listener gets the message" "$out" "Asynchronous notification \"notes\" with payload \"hello\""
is "redis_stop_consuming forgets a stream" "$(q "SELECT redis_stop_consuming('notes:in'), redis_stop_consuming('notes:in')")" "t|f"
q "SELECT redis_stop_consuming('payments:in')" >/dev/null
$R cli DEL payments:in notes:in >/dev/null

# --- a second unique index: an entry it refuses is not acknowledged
$R cli DEL orders:in >/dev/null
q "CREATE TABLE order_inbox (stream text, entry_id text, message jsonb,
	PRIMARY KEY (stream, entry_id));
CREATE UNIQUE INDEX order_inbox_once ON order_inbox ((message->>'order'));" >/dev/null
# the three are in the stream before the group is made: one pass reads them all
$R cli XADD orders:in '*' message '{"order":1}' >/dev/null
$R cli XADD orders:in '*' message '{"order":1}' >/dev/null
$R cli XADD orders:in '*' message '{"order":2}' >/dev/null
q "SELECT redis_consume_stream('orders:in', 'order_inbox')" >/dev/null
sleep 3
is "two entries that collide on another unique index: the first stored" \
	"$(q "SELECT count(*) FROM order_inbox")" "1"
is "  the second is not acknowledged: it and the one after it stay pending" \
	"$($R cli XPENDING orders:in bmfredis | head -1)" "2"
check "  with a WARNING naming the constraint" \
	grep -q "WARNING:  bmfredis could not store entry .* of stream \"orders:in\": duplicate key value violates unique constraint \"order_inbox_once\"" "$BMF_WORK/pgdata.log"
q "SELECT redis_stop_consuming('orders:in')" >/dev/null
$R cli DEL orders:in >/dev/null

# --- a deferred foreign key: checked at the entry, not at the batch's COMMIT
$R cli DEL deferred:in >/dev/null
q "CREATE TABLE known_orders (id int PRIMARY KEY);
INSERT INTO known_orders VALUES (1);
CREATE TABLE deferred_inbox (stream text, entry_id text, message jsonb,
	order_id int GENERATED ALWAYS AS ((message->>'order')::int) STORED
		REFERENCES known_orders DEFERRABLE INITIALLY DEFERRED,
	PRIMARY KEY (stream, entry_id));" >/dev/null
$R cli XADD deferred:in '*' message '{"order":1}' >/dev/null
$R cli XADD deferred:in '*' message '{"order":2}' >/dev/null
$R cli XADD deferred:in '*' message '{"order":1}' >/dev/null
q "SELECT redis_consume_stream('deferred:in', 'deferred_inbox')" >/dev/null
sleep 3
is "a DEFERRABLE INITIALLY DEFERRED foreign key refuses the second entry: the first is stored" \
	"$(q "SELECT count(*) FROM deferred_inbox")" "1"
is "  the refused one and the one after it stay pending" "$($R cli XPENDING deferred:in bmfredis | head -1)" "2"
check "  with a WARNING naming the constraint (the worker did not fail the batch)" \
	grep -q "WARNING:  bmfredis could not store entry .* of stream \"deferred:in\": insert or update on table \"deferred_inbox\" violates foreign key constraint" "$BMF_WORK/pgdata.log"
q "SELECT redis_stop_consuming('deferred:in')" >/dev/null
$R cli DEL deferred:in >/dev/null
