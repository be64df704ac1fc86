# upgrade: 1.0's SQL objects, with rules, cascades, watched tables (both
# modes), scheduled invalidations, stored payloads and grants, updated with
# ALTER EXTENSION bmfredis UPDATE: everything still works, and the schema
# is the one a fresh install makes (pg_dump --binary-upgrade
# --schema-only of both, the comparison postgresql-unit and pg_cron use).
# 1.1 with a watched partitioned table, updated to 1.2: the partitions get
# their triggers, and the keys writes aimed at them left stale go once.
# Then pg_dump and restore into a new database, and pg_upgrade into a new
# cluster: the rules and triggers come back working.  On a server of its
# own (it is stopped for pg_upgrade).
. "$(dirname "$0")/../tap.sh"
pgbin=$(pg_config --bindir)
bmf_start_pg "" upold
oldport=$PGPORT
oldpid=$BMF_PG_PID
trap 'bmf_stop_pid "$oldpid" INT; [ -n "${newpid:-}" ] && bmf_stop_pid "$newpid" INT' EXIT
BMF_DB=up
psql -X -q -d postgres -c "CREATE DATABASE up" >/dev/null

# --- 1.0, used
out=$(qs <<'SQL'
CREATE EXTENSION bmfredis VERSION '1.0';
SET bmfredis.key_prefix = 'up:';
\o /dev/null
\i examples/marketplace.sql
\o
SELECT redis_watch('payments', 'payment', ARRAY['payment:{id}', 'purchase:{purchase_id}'], mode => 'row');
INSERT INTO bmfredis.cache_cascades VALUES ('product', 'purchase', 'product_id');
SELECT redis_invalidate_at('sale:1', now() + interval '1 day');
INSERT INTO bmfredis.notify_payloads (channel, message) VALUES ('big', 'stored message');
CREATE ROLE up_admin;
GRANT EXECUTE ON FUNCTION redis_command(text[]) TO up_admin;
SELECT fence FROM redis_lock_fenced('up:lock') \gset
SELECT redis_unlock('up:lock');
SELECT extversion FROM pg_extension WHERE extname = 'bmfredis';
SQL
)
like "1.0 installs and is used (rules, cascades, row and statement watches, schedules, payloads, grants)" "$out" "1\.0$"
is "  1.0's objects work with this library: redis_health() (fewer columns in 1.0)" \
	"$(q "SELECT healthy, key_prefix FROM redis_health()")" "t|bmfredis:"
for _ in $(seq 1 100); do grep -q 'has SQL objects of version 1.0' "$BMF_WORK/upold.log" && break; sleep 0.1; done
like "  and the database's worker logs that its objects are older than the library, and what to run" \
	"$(grep -A2 'has SQL objects of version 1.0' "$BMF_WORK/upold.log")" \
	'LOG:  bmfredis in database "up" has SQL objects of version 1\.0, and the library is version 1\.2.*HINT:  Run ALTER EXTENSION bmfredis UPDATE in that database\.'
cd "$BMF_ROOT" || exit 1

# --- the update
out=$(q "ALTER EXTENSION bmfredis UPDATE" 2>&1)
like "ALTER EXTENSION bmfredis UPDATE warns that PUBLIC lost the functions, with the redis_grant to run" "$out" \
	"^WARNING:  bmfredis 1.2 no longer grants PUBLIC the functions that reach Redis
DETAIL:  .*permission denied for function redis_.*
HINT:  Give each role what it needs: SELECT redis_grant\\('app'"
like "  and the application's next call is refused with that hint too" \
	"$(psql -X -q -A -t -d up -c "CREATE ROLE up_app LOGIN" -c "SET ROLE up_app" -c "SELECT redis_cache_get('x')" 2>&1; psql -X -q -d up -c "DROP ROLE up_app" >/dev/null 2>&1)" \
	"permission denied for function redis_cache_get.*HINT:  bmfredis grants nothing that reaches Redis to PUBLIC \\(since 1.1\\)"
is "  is 1.2 (1.0, then 1.1, then 1.2)" "$(q "SELECT extversion FROM pg_extension WHERE extname = 'bmfredis'")" "1.2"
is "  each entity's rule became its rule default, with its table and mode" \
	"$(q "SELECT string_agg(e.entity || '/' || r.name || '/' || e.mode, ' ' ORDER BY e.entity) FROM bmfredis.entities e JOIN bmfredis.cache_rules r USING (entity)")" \
	"category/default/statement payment/default/row product/default/statement purchase/default/statement shop/default/statement user/default/statement"
is "  the cascades are kept" "$(q "SELECT count(*) FROM bmfredis.cache_cascades")" "3"
is "  the schedule and the stored payload are kept" \
	"$(q "SELECT (SELECT count(*) FROM bmfredis.scheduled_invalidations) || ' ' || (SELECT count(*) FROM bmfredis.notify_payloads)")" "1 1"
is "  the grant is kept" "$(q "SELECT has_function_privilege('up_admin', 'redis_command(text[])', 'EXECUTE')")" "t"
is "  1.1's functions are there" "$(q "SELECT count(*) FROM pg_proc WHERE proname IN ('redis_workers', 'redis_rewatch', 'redis_event_id')")" "3"

# everything still works: a watched UPDATE (statement and row mode), a
# cascade, a named rule added, the worker
qs >/dev/null <<'SQL'
INSERT INTO users VALUES (1, 'a@example.com', 'A', 'x');
INSERT INTO shops VALUES (1, 1, 'S');
INSERT INTO products VALUES (1, 1, NULL, 'P', 1);
INSERT INTO purchases VALUES (1, 1, 1, 1);
INSERT INTO payments VALUES (1, 1, 'paid');
SQL
redis-cli -p "$BMF_REDIS_PORT" MSET up:product:1 c up:purchase:1 c up:payment:1 c up:shop:1:products c >/dev/null
q "SET bmfredis.key_prefix = 'up:'; UPDATE shops SET name = 'T' WHERE id = 1; UPDATE payments SET status = 'refunded'" >/dev/null
is "after the update, watched UPDATEs invalidate (statement, row mode, cascades shop > product > purchase)" \
	"$(redis-cli -p "$BMF_REDIS_PORT" EXISTS up:product:1 up:purchase:1 up:payment:1 up:shop:1:products)" "0"
out=$(q "SELECT redis_watch('products', 'product', rule => 'events', columns => ARRAY['title'], channel => 'product')" 2>&1)
is "  and a named rule can be added to a migrated entity" "$out" ""
is "  the database's worker serves it" "$(for _ in $(seq 1 50); do s=$(q "SELECT state FROM redis_workers() WHERE database = 'up'"); [ "$s" = running ] && break; sleep 0.1; done; echo "$s")" "running"

# --- 1.1 with a partitioned table watched, updated: the partitions get
# their triggers, and what writes aimed at them left stale is invalidated
psql -X -q -d postgres -c "CREATE DATABASE ext_part" >/dev/null
BMF_DB=ext_part qs >/dev/null <<'SQL'
CREATE EXTENSION bmfredis VERSION '1.1';
CREATE TABLE orders (id int NOT NULL, region text NOT NULL) PARTITION BY LIST (region);
CREATE TABLE orders_eu PARTITION OF orders FOR VALUES IN ('eu');
INSERT INTO orders VALUES (1, 'eu');
SELECT redis_watch('orders', 'order', ARRAY['order:{id}']);
SQL
redis-cli -p "$BMF_REDIS_PORT" SET bmfredis:order:1 stale >/dev/null
BMF_DB=ext_part q "UPDATE orders_eu SET region = 'eu' WHERE id = 1" >/dev/null
is "1.1: a write aimed at a partition of a watched table leaves its key (the defect 1.2 fixes)" \
	"$(redis-cli -p "$BMF_REDIS_PORT" GET bmfredis:order:1)" "stale"
is "  ALTER EXTENSION bmfredis UPDATE to 1.2" "$(BMF_DB=ext_part q "ALTER EXTENSION bmfredis UPDATE" 2>&1)" ""
is "  invalidates the entity's keys once (writes aimed at partitions were not seen)" \
	"$(redis-cli -p "$BMF_REDIS_PORT" EXISTS bmfredis:order:1)" "0"
is "  and gives the partition the table's triggers" \
	"$(BMF_DB=ext_part q "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'orders_eu'::regclass AND tgname LIKE 'bmfredis%'")" "4"
redis-cli -p "$BMF_REDIS_PORT" SET bmfredis:order:1 cached >/dev/null
BMF_DB=ext_part q "UPDATE orders_eu SET region = 'eu' WHERE id = 1" >/dev/null
is "  so a write aimed at the partition now invalidates" "$(redis-cli -p "$BMF_REDIS_PORT" EXISTS bmfredis:order:1)" "0"
psql -X -q -d postgres -c "DROP DATABASE ext_part" >/dev/null

# --- the schema: an updated 1.0 against a fresh install
psql -X -q -d postgres -c "CREATE DATABASE ext10" -c "CREATE DATABASE ext11" >/dev/null
psql -X -q -d ext10 -c "CREATE EXTENSION bmfredis VERSION '1.0'" -c "ALTER EXTENSION bmfredis UPDATE" >/dev/null
psql -X -q -d ext11 -c "CREATE EXTENSION bmfredis" >/dev/null
schema() {	# the extension's objects as pg_upgrade sees them, without OIDs
	"$pgbin/pg_dump" --binary-upgrade --schema-only -d "$1" |
		grep -v -E 'binary_upgrade_set_next|^-- Dumped|^-- Name:|^SET |^SELECT pg_catalog.set_config|^\\(un)?restrict ' |
		sed -E 's/[0-9]{5,}/OID/g'
}
schema ext10 >"$BMF_WORK/ext10.sql"
schema ext11 >"$BMF_WORK/ext11.sql"
d=$(diff -u "$BMF_WORK/ext11.sql" "$BMF_WORK/ext10.sql" | head -40)
is "the updated schema is the one a fresh install makes (pg_dump --binary-upgrade --schema-only)" "$d" ""
check "  (and the dump holds the extension's objects: $(grep -c 'ALTER EXTENSION bmfredis ADD' "$BMF_WORK/ext11.sql") of them)" \
	[ "$(grep -c 'ALTER EXTENSION bmfredis ADD' "$BMF_WORK/ext11.sql")" -gt 50 ]

# --- pg_dump and restore into a new database
"$pgbin/pg_dump" -d up -f "$BMF_WORK/up.sql"
psql -X -q -d postgres -c "CREATE DATABASE up_restored" >/dev/null
out=$(psql -X -q -v ON_ERROR_STOP=1 -o /dev/null -d up_restored -f "$BMF_WORK/up.sql" 2>&1)
like "pg_dump of a database that uses bmfredis restores into a new one, warning that the two now share a namespace" "$out" \
	'WARNING:  bmfredis in database "up_restored" shares its key prefix "bmfredis:" on Redis 127.0.0.1:[0-9]+ with [0-9] other database\(s\): [^
]*"up"[^
]*
DETAIL:  Each reads the values the other cached, and a cold start of one invalidates the other.s keys.
HINT:  Give each database a prefix of its own: ALTER DATABASE up_restored SET bmfredis.key_prefix = .up_restored:.\.$'
shared() {  # until the restored database's worker is counted too, at most 10 s
	for _ in $(seq 1 100); do
		[[ $(psql -X -A -t -d up -c "SELECT prefix_shared_with FROM redis_health()") == *up_restored* ]] && return 0
		sleep 0.1
	done
	return 1
}
check "  and redis_health() in either names the other (prefix_shared_with)" shared
is "  while a database with a prefix of its own shares with none" \
	"$(psql -X -q -A -t -d up -c "SET bmfredis.key_prefix = 'up_own:'" -c "SELECT prefix_shared_with FROM redis_health()")" "{}"
is "  with its entities, rules, cascades and schedules" \
	"$(psql -X -A -t -d up_restored -c "SELECT (SELECT count(*) FROM bmfredis.entities) || ' ' || (SELECT count(*) FROM bmfredis.cache_rules) || ' ' || (SELECT count(*) FROM bmfredis.cache_cascades) || ' ' || (SELECT count(*) FROM bmfredis.scheduled_invalidations)")" \
	"6 7 3 1"
check "  and the fencing sequence where it was ($(psql -X -A -t -d up_restored -c "SELECT last_value FROM bmfredis.lock_fence"))" \
	[ "$(psql -X -A -t -d up_restored -c "SELECT last_value FROM bmfredis.lock_fence")" = "$(q "SELECT last_value FROM bmfredis.lock_fence")" ]
redis-cli -p "$BMF_REDIS_PORT" MSET up:product:1 c up:purchase:1 c >/dev/null
psql -X -q -d up_restored -c "SET bmfredis.key_prefix = 'up:'" -c "UPDATE products SET title = 'Q' WHERE id = 1" >/dev/null
is "  and its triggers invalidate (with the cascade)" "$(redis-cli -p "$BMF_REDIS_PORT" EXISTS up:product:1 up:purchase:1)" "0"

# --- pg_upgrade into a new cluster
psql -X -q -d postgres -c "DROP DATABASE ext10" -c "DROP DATABASE ext11" -c "DROP DATABASE up_restored" >/dev/null
bmf_as_user "$pgbin/pg_ctl" -D "$BMF_WORK/upold" -w stop -m fast >/dev/null
newdir=$BMF_WORK/upnew
bmf_as_user "$pgbin/initdb" -D "$newdir" -U postgres --auth=trust --no-sync -E UTF8 --locale=C >"$BMF_WORK/initdb-upnew.log" 2>&1
newport=$(bmf_free_port)
{
	echo "listen_addresses = '127.0.0.1'"
	echo "port = $newport"
	echo "unix_socket_directories = '$BMF_WORK'"
	echo "shared_preload_libraries = 'bmfredis'"
	echo "bmfredis.port = $BMF_REDIS_PORT"
} >>"$newdir/postgresql.conf"
mkdir -p "$BMF_WORK/pg_upgrade" && chown "$BMF_USER" "$BMF_WORK/pg_upgrade"
out=$(cd "$BMF_WORK/pg_upgrade" && bmf_as_user "$pgbin/pg_upgrade" -b "$pgbin" -B "$pgbin" \
	-d "$BMF_WORK/upold" -D "$newdir" -p "$(bmf_free_port)" -P "$(bmf_free_port)" -U postgres 2>&1)
rc=$?
is "pg_upgrade carries the database into a new cluster" "$rc" "0"
[ "$rc" = 0 ] || echo "$out" | tail -15 | sed 's/^/#   /'
bmf_as_user "$pgbin/pg_ctl" -D "$newdir" -l "$BMF_WORK/upnew.log" -w start >/dev/null 2>&1
newpid=$(head -1 "$newdir/postmaster.pid" 2>/dev/null)
export PGPORT=$newport
redis-cli -p "$BMF_REDIS_PORT" MSET up:product:1 c up:payment:1 c >/dev/null
q "SET bmfredis.key_prefix = 'up:'; UPDATE products SET price = 2 WHERE id = 1; UPDATE payments SET status = 'paid'" >/dev/null
is "  where its rules and triggers (both modes) invalidate" "$(redis-cli -p "$BMF_REDIS_PORT" EXISTS up:product:1 up:payment:1)" "0"
is "  and the rules are all there" "$(q "SELECT count(*) FROM bmfredis.cache_rules")" "7"
