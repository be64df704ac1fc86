# Privileges: a role with no grants reaches nothing; each capability
# (redis_grant) gives exactly the functions it names; grants survive
# pg_dump and restore; triggers and cascades work for whoever may write the
# table; channel confinement for publish and listen; change events only to
# roles that may read the table; limits a plain role cannot lift (settings,
# the namespace flush a too-large transaction falls back to); a full Redis
# (OOM) degrades as on_error says instead of failing the query.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_priv
R=$BMF_REDISCTL
q "ALTER DATABASE bmf_priv SET bmfredis.key_prefix = 'pv:'" >/dev/null
roles="plain aud one app ana adm inv app_service analytics dba"
psql -X -q -d postgres >/dev/null 2>&1 <<SQL
$(for r in $roles; do echo "DROP OWNED BY $r CASCADE; DROP ROLE IF EXISTS $r;"; done)
SQL
for r in plain one app ana adm inv; do
	psql -X -q -d postgres -c "DROP ROLE IF EXISTS $r" -c "CREATE ROLE $r LOGIN" >/dev/null
done
psql -X -q -d postgres -c "DROP ROLE IF EXISTS aud" -c "CREATE ROLE aud LOGIN IN ROLE pg_read_all_settings, pg_monitor" >/dev/null
cleanup() {
	for db in bmf_priv bmf_priv2 bmf_roles; do
		for r in $roles; do psql -X -q -d $db -c "DROP OWNED BY $r CASCADE" >/dev/null 2>&1; done
	done
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_priv2" -c "DROP DATABASE IF EXISTS bmf_roles" >/dev/null 2>&1
	for r in $roles; do psql -X -q -d postgres -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1; done
}
trap cleanup EXIT
as() { local who=$1; shift; PGUSER=$who q "$@"; }
denied() { [[ $1 == *"permission denied for"* ]]; }

# capability|call; redis_cached needs read and write
calls=(
	"read|SELECT redis_cache_get('k')"
	"read|SELECT redis_cache_get_json('k')"
	"read|SELECT redis_cache_mget(ARRAY['k'])"
	"read|SELECT redis_cache_exists('k')"
	"read|SELECT redis_cache_ttl('k')"
	"write|SELECT redis_cache_set('k', 'v')"
	"write|SELECT redis_cache_mset(ARRAY['k2'], ARRAY['v'])"
	"write|SELECT redis_cache_del('k2')"
	"write|SELECT redis_cache_incr('n')"
	"write|SELECT redis_cache_expire('k', '1 hour')"
	"invalidate|SELECT redis_invalidate('k3')"
	"invalidate|SELECT redis_invalidate_tag('t')"
	"invalidate|SELECT redis_invalidate_at('k3', now() + interval '1 day')"
	"publish|SELECT redis_publish('ch', 'm')"
	"publish|SELECT redis_publish_event(redis_event('x:y'))"
	"listen|SELECT count(*) FROM redis_listen(ARRAY['ch'], '10 ms')"
	"listen|SELECT count(*) FROM bmfredis.notify_payloads"
	"lock|SELECT redis_try_lock('l') IS NOT NULL"
	"lock|SELECT count(*) FROM redis_locks()"
	"monitor|SELECT count(*) > 0 FROM redis_stats"
	"monitor|SELECT healthy FROM redis_health()"
	"monitor|SELECT count(*) FROM redis_metrics()"
	"admin|SELECT redis_command('PING')"
	"admin|SELECT redis_invalidate_pattern('zz*')"
	"admin|SELECT redis_stats_reset()"
	"admin|SELECT count(*) FROM redis_privileges"
	"read+write|SELECT redis_cached('c', '1 min', 'SELECT 1')"
)
# each_call WHO: every call of calls as WHO, in one session (one psql a
# call made this test slow); OUT[i] is "ok" or "<SQLSTATE> <message>"
each_call() {
	local c
	mapfile -t OUT < <({
		echo "CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS \$f\$
		      BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN others THEN RETURN SQLSTATE || ' ' || SQLERRM; END \$f\$;"
		for c in "${calls[@]}"; do echo "SELECT pg_temp.try(\$q\$${c#*|}\$q\$);"; done
	} | PGUSER=$1 psql -X -q -A -t -d "$BMF_DB" 2>&1)
}
reached=""
for who in plain aud; do
	each_call $who
	[ "${#OUT[@]}" = "${#calls[@]}" ] || reached="$reached [$who: ${#OUT[@]} answers to ${#calls[@]} calls: ${OUT[*]}]"
	for i in "${!calls[@]}"; do
		[[ ${OUT[$i]} == "42501 permission denied for "* ]] || reached="$reached [$who: ${calls[$i]#*|}: ${OUT[$i]}]"
	done
done
is "a role with no grants, and one in pg_read_all_settings and pg_monitor, reach nothing (${#calls[@]} calls each, every capability's functions)" "$reached" ""
nohint=""
for c in "${calls[@]}"; do
	[[ $(as plain "${c#*|}") == *"HINT:  bmfredis grants nothing that reaches Redis to PUBLIC (since 1.1)"*"redis_grant("* ]] || nohint="$nohint [${c#*|}]"
done
is "  and each refusal hints at redis_grant (1.1 took them from PUBLIC)" "$nohint" ""
like "  but PostgreSQL's refusals of other objects get no such hint" "$(as plain "SELECT pg_read_file('x')")" "permission denied for function pg_read_file$"
is "  while computing helpers stay open to it" \
	"$(as plain "SELECT redis_cache_key('a', 'b'), redis_ttl('short'), redis_event_product('created', '1')->>'type'")" \
	"a:b|00:05:00|product:created"

# --- each capability gives exactly what it names
wrong=""
for cap in read write invalidate publish listen lock monitor admin; do
	q "SELECT redis_grant('one', '$cap')" >/dev/null
	each_call one
	for i in "${!calls[@]}"; do
		c=${calls[$i]}
		if [ "${c%%|*}" = "$cap" ]; then
			denied "${OUT[$i]}" && wrong="$wrong [$cap refused: ${c#*|}]"
		else
			denied "${OUT[$i]}" || wrong="$wrong [$cap gave: ${c#*|}]"
		fi
	done
	q "SELECT redis_revoke('one', '$cap')" >/dev/null
done
is "each capability, granted alone, gives its functions and nothing else" "$wrong" ""
q "SELECT redis_grant('one', 'read', 'write')" >/dev/null
refute "redis_cached needs read and write together" denied "$(as one "SELECT redis_cached('c', '1 min', 'SELECT 1')")"
is "redis_revoke takes back one and leaves the other" "$(q "SELECT redis_revoke('one', 'write')")" "{read}"
check "  and redis_cached with it" denied "$(as one "SELECT redis_cached('c', '1 min', 'SELECT 1')")"
out=$(q "SELECT redis_grant('one', 'reed')" 2>&1)
like "an unknown capability is an error naming the known ones" "$out" 'unknown bmfredis capability "reed".*read, write, invalidate, publish, listen, lock, monitor, admin'
out=$(as adm "SELECT redis_grant('adm', 'admin')")
like "only the extension's owner can grant" "$out" "permission denied"
is "redis_privileges lists who holds what" "$(q "SELECT role, capabilities FROM redis_privileges ORDER BY role")" "one|{read}"

# --- grants survive pg_dump and restore
q "SELECT redis_grant('app', 'read', 'write', 'invalidate')" >/dev/null
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_priv2" -c "CREATE DATABASE bmf_priv2" >/dev/null
pg_dump -d bmf_priv | psql -X -q -d bmf_priv2 >/dev/null 2>&1
is "after pg_dump and restore the capabilities are recorded" \
	"$(BMF_DB=bmf_priv2 q "SELECT role, capabilities FROM redis_privileges ORDER BY role")" "app|{invalidate,read,write}
one|{read}"
is "  and granted" \
	"$(BMF_DB=bmf_priv2 q "SELECT has_function_privilege('app', 'redis_cached(text, interval, text, text[])', 'EXECUTE'), has_function_privilege('app', 'redis_publish(text, text, boolean)', 'EXECUTE'), has_function_privilege('plain', 'redis_cache_get(text)', 'EXECUTE')")" \
	"t|f|f"

# --- triggers work for whoever may write the table, cascades included
q "CREATE TABLE shops (id int PRIMARY KEY, name text);
CREATE TABLE products (id int PRIMARY KEY, shop_id int, title text);
INSERT INTO shops VALUES (1, 'a'); INSERT INTO products VALUES (10, 1, 'x');
SELECT redis_watch('shops', 'shop', ARRAY['shop:{id}']);
SELECT redis_watch('products', 'product', ARRAY['product:{id}']);
INSERT INTO bmfredis.cache_cascades VALUES ('shop', 'product', 'shop_id');
GRANT SELECT, UPDATE ON shops TO plain;" >/dev/null
q "SELECT redis_cache_set('shop:1', 's'), redis_cache_set('product:10', 'p')" >/dev/null
out=$(as plain "UPDATE shops SET name = 'b' WHERE id = 1")
is "a role with no bmfredis grant updates a watched table" "$out" ""
is "  its trigger invalidated the row's key and, by cascade, a key of a table it may not read" \
	"$($R cli EXISTS pv:shop:1) $($R cli EXISTS pv:product:10)" "0 0"
check "  redis_watch itself is not for it" denied "$(as plain "SELECT redis_watch('shops', 's2')")"
q "GRANT CREATE ON SCHEMA public TO plain" >/dev/null
is "it creates and drops a table of its own (the extension's sql_drop event trigger runs as the extension)" \
	"$(as plain "CREATE TABLE mine (id int); DROP TABLE mine; SELECT 'dropped'")" "dropped"
q "CREATE TABLE owned (id int PRIMARY KEY); ALTER TABLE owned OWNER TO plain; SELECT redis_watch('owned', 'owned', ARRAY['owned:{id}'])" >/dev/null
like "  and dropping its watched table drops the entity, with the NOTICE" "$(as plain "DROP TABLE owned")" 'bmfredis forgets entity "owned"'
is "  gone from the rules" "$(q "SELECT count(*) FROM bmfredis.entities WHERE entity = 'owned'")" "0"
q "SELECT redis_grant('inv', 'invalidate')" >/dev/null
is "redis_invalidate_at works for the invalidate capability (its bookkeeping table is not granted)" \
	"$(as inv "SELECT redis_invalidate_at('later', now() + interval '1 hour'); SELECT 'scheduled'")" "
scheduled"

# --- channel confinement
q "SELECT redis_grant('app', 'publish', 'listen')" >/dev/null
q "SELECT redis_confine_channels('app', ARRAY['app:*', 'orders:[0-9]*'])" >/dev/null
is "a confined role publishes on its channels" "$(as app "SELECT redis_publish('app:x', 'm', true) >= 0, redis_publish('orders:7', 'm', true) >= 0")" "t|t"
out=$(PGUSER=app qv <<<"SELECT redis_publish('payment:succeeded', '{\"forged\": true}', true)")
like "  and nowhere else (42501, naming the channel)" "$out" 'ERROR:  42501: permission denied to publish on channel "payment:succeeded"'
like "  not even at COMMIT or as an event" "$(as app "SELECT redis_publish_event(redis_event('payment:succeeded'))")" "permission denied to publish"
(as app "SELECT channel FROM redis_listen(ARRAY['*'], '1.5 s') ORDER BY 1" >"$BMF_WORK/listen.out") &
lp=$!
sleep 0.6
for ch in app:one orders:12 orders:x payment:succeeded; do $R cli PUBLISH "$ch" m >/dev/null; done
wait $lp
is "redis_listen('*') returns a confined role only its channels' messages" "$(cat "$BMF_WORK/listen.out")" "app:one
orders:12"
q "SELECT redis_confine_channels('app', NULL)" >/dev/null
# an open session (a pool's) that published before sees a confinement made
# since at its next call
out=$(PGUSER=app psql -X -q -A -t -d "$BMF_DB" 2>&1 <<SQL
SELECT redis_publish('payment:succeeded', 'before', true) >= 0;
\! psql -X -q -U postgres -d $BMF_DB -c "SELECT redis_confine_channels('app', ARRAY['app:*'])" >/dev/null
SELECT redis_publish('payment:succeeded', 'after', true) >= 0;
SQL
)
like "a session open before redis_confine_channels is confined at its next call" "$out" "^t
.*permission denied to publish on channel \"payment:succeeded\""
q "SELECT redis_confine_channels('app', NULL)" >/dev/null

# --- change events go to roles that may read the table
q "CREATE TABLE secrets (id int PRIMARY KEY, owner_email text);
INSERT INTO secrets VALUES (1, 'a@example.com');
SELECT redis_watch('secrets', 'secret', channel => 'secret');" >/dev/null
listen_events() {
	(as app "SELECT channel FROM redis_listen(ARRAY['*'], '1.5 s') ORDER BY 1" >"$BMF_WORK/listen.out") &
	lp=$!
	sleep 0.6
	q "UPDATE secrets SET owner_email = 'b@example.com'" >/dev/null
	$R cli PUBLISH news:1 m >/dev/null
	wait $lp
	cat "$BMF_WORK/listen.out"
}
is "a role that may not SELECT a table does not receive its change events" "$(listen_events)" "news:1"
q "GRANT SELECT ON secrets TO app" >/dev/null
is "  and receives them once it may" "$(listen_events)" "news:1
secret:updated"

# --- limits a plain role cannot lift
bad=""
for s in max_pending_keys max_pending_messages stream_invalidations max_value_size announce_invalidations; do
	case $s in stream_invalidations | announce_invalidations) v=off ;; *) v=100 ;; esac
	[[ $(as inv "SET bmfredis.$s = '$v'") == *"permission denied to set parameter"* ]] || bad="$bad $s"
done
is "the settings that bound what one transaction holds are superuser-set" "$bad" ""
q "ALTER ROLE inv IN DATABASE bmf_priv SET bmfredis.max_pending_keys = 100;
ALTER ROLE adm IN DATABASE bmf_priv SET bmfredis.max_pending_keys = 100;
SELECT redis_grant('adm', 'invalidate', 'admin')" >/dev/null
q "SELECT redis_cache_set('canary', 'alive')" >/dev/null
out=$(PGUSER=inv qv <<<"SELECT count(redis_invalidate('k' || g)) FROM generate_series(1, 101) g;")
like "101 invalidations past a limit of 100 by a role that may not flush: an ERROR (54000)" "$out" \
	"ERROR:  54000: more than 100 Redis keys queued for invalidation in one transaction"
is "  and the namespace was not flushed" "$($R cli GET pv:canary)" "alive"
out=$(as adm "SELECT count(redis_invalidate('k' || g)) FROM generate_series(1, 101) g")
like "a role that may flush falls back to the namespace, as before" "$out" "invalidating their key patterns instead"
is "  (which it could have done itself)" "$($R cli EXISTS pv:canary)" "0"

# --- a full Redis is a cache problem, not a query problem
bmf_start_redis full --maxmemory 1 --maxmemory-policy noeviction
fport=$BMF_REDIS_PORT
trap 'cleanup; bmf_stop_pid "$(cat "$BMF_WORK/full.pid")" TERM' EXIT
full() { q "SET bmfredis.port = $fport; SET bmfredis.on_error = '$1'; $2"; }
out=$(full warning "SELECT redis_cache_set('k', 'v')")
like "OOM: redis_cache_set returns false under on_error = warning" "$out" "^WARNING:  Redis is out of memory.*f$"
like "  with the hint that the SET was not carried out" "$out" "SET was not carried out"
out=$(full warning "SELECT redis_cached('q', '1 min', 'SELECT 42 AS answer')")
like "redis_cached runs its query without the cache" "$out" "WARNING:  Redis is out of memory.*run without the cache.*42$"
is "  silently under on_error = ignore" "$(full ignore "SELECT redis_cached('q', '1 min', 'SELECT 42 AS answer'), redis_cache_set('k', 'v')")" '42|f'
like "  and only on_error = error raises (53200)" "$(qv <<<"SET bmfredis.port = $fport; SET bmfredis.on_error = 'error'; SELECT redis_cache_set('k', 'v');")" \
	"ERROR:  53200: Redis is out of memory"
is "  reads still work" "$(full error "SELECT redis_cache_get('nothing') IS NULL")" "t"

# --- docs/security.md's worked example, as written, and what it promises
tap_db bmf_roles
q "CREATE TABLE products (id int PRIMARY KEY, title text)" >/dev/null
awk '/^## Roles and privileges/ { on = 1 } /^### A Redis identity per role/ { on = 0 }
	on && /^```sql/ { n++; if (n == 1) inb = 1; next }
	inb && /^```/ { inb = 0; next }
	inb { print }' "$BMF_ROOT/docs/security.md" >"$BMF_WORK/roles.sql"
out=$(psql -X -q -A -t -F '|' -v ON_ERROR_STOP=1 -d bmf_roles -f "$BMF_WORK/roles.sql" 2>&1)
want=$(awk '/^## Roles and privileges/ { on = 1 } /^### A Redis identity per role/ { on = 0 }
	on && /^ [a-z_]+ +\|/ && !/^ +role +\|/ { gsub(/ *\| */, "|"); gsub(/^ +| +$/, ""); print }' "$BMF_ROOT/docs/security.md")
is "docs/security.md's roles example runs and prints what it shows" "$(tail -n 4 <<<"$out")" "$want"
BMF_DB=bmf_roles
check "  analytics reads" bash -c '! [[ $(PGUSER=analytics psql -X -A -t -d bmf_roles -c "SELECT redis_cache_get('"'"'product:9'"'"')" 2>&1) == *denied* ]]'
check "  but cannot overwrite product:9" denied "$(as analytics "SELECT redis_cache_set('product:9', 'mine')")"
like "  nor publish a forged payment:succeeded" "$(as analytics "SELECT redis_publish('payment:succeeded', '{}', true)")" "permission denied"
like "  and the application cannot publish outside its families" "$(as app_service "SELECT redis_publish('admin:x', 'm', true)")" "permission denied to publish"
is "  while it publishes its events" "$(as app_service "SELECT redis_publish('payment:succeeded', '{}', true) >= 0")" "t"
is "  and the DBA administers" "$(as dba "SELECT redis_command('PING')")" "PONG"

# --- admin delegated: the README's dba (admin, not a superuser) watches and
# consumes into the tables it owns, and only those
q "CREATE TABLE dba_shops (id int PRIMARY KEY, name text);
CREATE TABLE dba_inbox (stream text, entry_id text, message text, writer name DEFAULT current_user,
	PRIMARY KEY (stream, entry_id));
CREATE FUNCTION dba_escalate() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	BEGIN
		ALTER ROLE dba SUPERUSER;
	EXCEPTION WHEN others THEN NULL;
	END;
	RETURN NEW;
END \$\$;
CREATE TRIGGER dba_escalate BEFORE INSERT ON dba_inbox FOR EACH ROW EXECUTE FUNCTION dba_escalate();
ALTER TABLE dba_shops OWNER TO dba; ALTER TABLE dba_inbox OWNER TO dba; ALTER FUNCTION dba_escalate() OWNER TO dba;
CREATE TABLE su_inbox (stream text, entry_id text, message text, PRIMARY KEY (stream, entry_id));
SELECT redis_watch('products', 'product', ARRAY['product:{id}'])" >/dev/null
is "admin (not a superuser) watches a table it owns" "$(as dba "SELECT redis_watch('dba_shops', 'shop', ARRAY['shop:{id}'], rule => 'pages')")" ""
q "INSERT INTO dba_shops VALUES (1, 'a')" >/dev/null
q "SELECT redis_cache_set('shop:1', 'cached')" >/dev/null
q "UPDATE dba_shops SET name = 'b' WHERE id = 1" >/dev/null
is "  and a write to it invalidates its keys" "$(q "SELECT redis_cache_get('shop:1') IS NULL")" "t"
as dba "SELECT redis_watch('dba_shops', 'shop', tags => ARRAY['shops'], rule => 'list')" >/dev/null
as dba "SELECT redis_unwatch('dba_shops', 'list')" >/dev/null
is "  it adds a rule and removes it" "$(as dba "SELECT string_agg(name, ',') FROM bmfredis.cache_rules WHERE entity = 'shop'")" "pages"
like "  but may not watch a table it does not own (42501, naming its owner)" \
	"$(PGUSER=dba qv <<<"SELECT redis_watch('su_inbox', 'su', ARRAY['su:{id}'])")" \
	"ERROR:  42501: must be owner of table public.su_inbox to change its bmfredis entity.*owned by role postgres"
like "  nor add a rule to another's entity" \
	"$(PGUSER=dba qv <<<"INSERT INTO bmfredis.cache_rules (entity, name, keys) VALUES ('product', 'mine', ARRAY['x:{id}'])")" \
	"ERROR:  42501: must be owner of table public.products to change its bmfredis rules"
is "  nor change one (nothing is updated)" "$(as dba "WITH u AS (UPDATE bmfredis.cache_rules SET keys = '{x}' WHERE entity = 'product' RETURNING 1) SELECT count(*) FROM u")" "0"
is "  nor delete one" "$(as dba "WITH d AS (DELETE FROM bmfredis.entities WHERE entity = 'product' RETURNING 1) SELECT count(*) FROM d")" "0"
like "  nor unwatch it" "$(as dba "SELECT redis_unwatch('products')")" "must be owner of relation products"
is "  and the superuser's rule is intact" "$(q "SELECT keys::text FROM bmfredis.cache_rules WHERE entity = 'product'")" '{"product:{id}"}'
like "admin may not make the worker write into a table it does not own" \
	"$(PGUSER=dba qv <<<"SELECT redis_consume_stream('su:in', 'su_inbox')")" \
	"ERROR:  42501: must be owner of table public.su_inbox to change its stream consumer"
$R cli DEL dba:in >/dev/null
is "  and consumes into its own" "$(as dba "SELECT redis_consume_stream('dba:in', 'dba_inbox')")" ""
$R cli XADD dba:in '*' message hello >/dev/null
inbox_row() {  # at most 10 s
	for _ in $(seq 1 100); do [ "$(q "SELECT count(*) FROM dba_inbox")" = 1 ] && return 0; sleep 0.1; done
	return 1
}
check "  the worker stores the entry" inbox_row
is "  written as the table's owner, not as the worker's superuser" "$(q "SELECT writer FROM dba_inbox")" "dba"
is "  so the table's trigger could not make its owner a superuser" "$(q "SELECT rolsuper FROM pg_roles WHERE rolname = 'dba'")" "f"
is "  and it stops consuming its stream" "$(as dba "SELECT redis_stop_consuming('dba:in')")" "t"
$R cli DEL dba:in >/dev/null

# --- what a hostile admin tries next (a review's findings)
q "INSERT INTO bmfredis.entities (entity, relation) VALUES ('config', NULL);
INSERT INTO bmfredis.cache_rules (entity, keys) VALUES ('config', ARRAY['config:{id}']);
CREATE VIEW dba_view AS SELECT 1 AS id; ALTER VIEW dba_view OWNER TO dba;
CREATE TABLE dba_other (id int PRIMARY KEY, shop_id int); ALTER TABLE dba_other OWNER TO dba" >/dev/null
is "an entity without a table is not anyone's: admin cannot point it at its view" \
	"$(as dba "WITH u AS (UPDATE bmfredis.entities SET relation = 'dba_view' WHERE entity = 'config' RETURNING 1) SELECT count(*) FROM u")" "0"
like "  nor make one" "$(as dba "INSERT INTO bmfredis.entities (entity) VALUES ('mine')")" "only the owner of extension bmfredis may change bmfredis entity without a table"
like "  and a view is no entity, even its own (42809)" "$(PGUSER=dba qv <<<"INSERT INTO bmfredis.entities (entity, relation) VALUES ('v', 'dba_view')")" "42809: public.dba_view is not a table"
like "a cascade into a table admin may not read is refused (it would read its rows)" \
	"$(as dba "INSERT INTO bmfredis.cache_cascades VALUES ('shop', 'product', 'id')")" "permission denied to cascade into table public.products"
like "a descendant row joining another's entity is refused" \
	"$(as dba "INSERT INTO bmfredis.watched_descendants VALUES ('dba_other', 'product')")" "must be owner of table public.products"
q "SELECT redis_consume_stream('su:notify', notify => 'su_channel')" >/dev/null
like "a superuser's NOTIFY-only consumer is not anyone's: admin cannot take it over" \
	"$(as dba "SELECT redis_consume_stream('su:notify', 'dba_inbox')")" "row-level security|42501|violates"
like "  nor stop it" "$(as dba "SELECT redis_stop_consuming('su:notify')")" 'stream "su:notify" is consumed for role postgres'
is "  which is still the superuser's" "$(q "SELECT registrant::text || ' ' || coalesce(target::text, '-') FROM bmfredis.stream_consumers WHERE stream = 'su:notify'")" "postgres -"
q "SELECT redis_stop_consuming('su:notify')" >/dev/null
# the inbox undoes what the owner's code SETs: nothing leaks into the next row (or the worker)
q "CREATE OR REPLACE FUNCTION dba_escalate() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	NEW.message := coalesce(current_setting('bmf.leak', true), '') || '|' || current_setting('search_path');
	PERFORM set_config('bmf.leak', 'leaked', false);
	PERFORM set_config('search_path', 'dba_evil, public', false);
	RETURN NEW;
END \$\$; DELETE FROM dba_inbox" >/dev/null
$R cli DEL dba:in >/dev/null
as dba "SELECT redis_consume_stream('dba:in', 'dba_inbox')" >/dev/null
$R cli XADD dba:in '*' message one >/dev/null
$R cli XADD dba:in '*' message two >/dev/null
two_rows() { for _ in $(seq 1 100); do [ "$(q "SELECT count(*) FROM dba_inbox")" = 2 ] && return 0; sleep 0.1; done; return 1; }
check "the inbox stores two entries whose trigger SETs a setting and search_path" two_rows
is "  and neither saw what the other SET (undone after each row)" \
	"$(q "SELECT string_agg(DISTINCT split_part(message, '|', 1), ',') FROM dba_inbox")" ""
as dba "SELECT redis_stop_consuming('dba:in')" >/dev/null
$R cli DEL dba:in >/dev/null
# a session with row_security = off still fires watch triggers
q "GRANT UPDATE, SELECT ON dba_shops TO app_service" >/dev/null
is "a writer whose session has row_security = off still invalidates (the rules are read as the extension's owner)" \
	"$(q "SELECT redis_cache_set('shop:1', 'again')" >/dev/null; as app_service "SET row_security = off; UPDATE dba_shops SET name = 'c' WHERE id = 1"; q "SELECT redis_cache_get('shop:1') IS NULL")" "t"

# --- and what a second review found
out=$(as dba "SELECT redis_watch('dba_shops', 'shop', ARRAY['s:{id}'], columns => ARRAY[NULL]::text[], rule => 'nul')")
like "a NULL watched column is an ERROR (it crashed the backend)" "$out" 'a watched column of rule "nul" of entity "shop" is NULL'
is "  and the server is up" "$(q "SELECT 1")" "1"
like "a temporary table cannot be an entity (it would leave a stale one behind)" \
	"$(as dba "BEGIN; CREATE TEMP TABLE tmp_e (id int) ON COMMIT DROP; SELECT redis_watch('pg_temp.tmp_e', 'ghost', ARRAY['g:{id}']); COMMIT;")" \
	"is a temporary table"
q "CREATE TABLE secret_rows (id int PRIMARY KEY, owner_name text); ALTER TABLE secret_rows ENABLE ROW LEVEL SECURITY;
CREATE POLICY mine ON secret_rows USING (owner_name = current_user); GRANT SELECT ON secret_rows TO dba;
SELECT redis_watch('secret_rows', 'secret', ARRAY['secret:{id}'])" >/dev/null
like "a cascade into a table with row-level security is refused (it would read past the policies)" \
	"$(as dba "INSERT INTO bmfredis.cache_cascades VALUES ('shop', 'secret', 'owner_name')")" \
	"permission denied to cascade into table public.secret_rows"
like "a rule that announces changes needs the publish capability (its events go out as the server's identity)" \
	"$(as dba "SELECT redis_watch('dba_shops', 'shop', channel => 'payment', rule => 'forge')")" \
	'permission denied to announce changes on channel "payment"'
q "SELECT redis_grant('dba', 'publish'); SELECT redis_confine_channels('dba', ARRAY['shop:*'])" >/dev/null
like "  and the role's confinement allows it" \
	"$(as dba "SELECT redis_watch('dba_shops', 'shop', channel => 'payment', rule => 'forge')")" \
	'permission denied to announce changes on channel "payment:created"'
is "  within it, it may" "$(as dba "SELECT redis_watch('dba_shops', 'shop', channel => 'shop', rule => 'events'), redis_unwatch('dba_shops', 'events')")" "|"
q "SELECT redis_revoke('dba', 'publish'); SELECT redis_confine_channels('dba', NULL)" >/dev/null
