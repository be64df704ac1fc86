# Security: secrets invisible to non-superusers by every route, endpoint
# settings out of their reach, admin functions revoked (and given out by
# the documented GRANTs), secrets refused by ALTER ROLE/DATABASE, and an
# install and triggers unaffected by a hostile search_path.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_sec
R=$BMF_REDISCTL
SECRET=Pw-Only-Superusers-See
URLSECRET=Url-Secret-9931

psql -X -q -d postgres <<'SQL' >/dev/null 2>&1
DROP ROLE IF EXISTS mallory; DROP ROLE IF EXISTS auditor; DROP ROLE IF EXISTS ops;
DROP ROLE IF EXISTS bmfredis_admin;
SQL
psql -X -q -d postgres <<'SQL' >/dev/null
CREATE ROLE mallory LOGIN;
CREATE ROLE auditor LOGIN IN ROLE pg_read_all_settings;
CREATE ROLE ops LOGIN;
SQL
# the server's secrets, the way the README says to set them
# (the URL wins over bmfredis.password, so the server takes the URL's)
bmf_start_redis sec --requirepass "$URLSECRET"
reset_server() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET bmfredis.password" -c "ALTER SYSTEM RESET bmfredis.url" \
		-c "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
}
trap reset_server EXIT
sport=$($R -n sec port)
psql -X -q -d postgres -c "ALTER SYSTEM SET bmfredis.password = '$SECRET'" \
	-c "ALTER SYSTEM SET bmfredis.url = 'redis://default:$URLSECRET@127.0.0.1:$sport/0'" \
	-c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
as() { local who=$1; shift; PGUSER=$who q "$@"; }

out=$(q "SHOW bmfredis.password; SHOW bmfredis.url;")
is "a superuser sees the secrets" "$out" "$SECRET
redis://default:$URLSECRET@127.0.0.1:$sport/0"

# --- every route a setting can be read by, as two kinds of non-superuser
leaks=""
for who in mallory auditor; do
	for sql in "SHOW bmfredis.password" "SHOW bmfredis.url" "SHOW ALL" \
		"SELECT current_setting('bmfredis.password')" "SELECT current_setting('bmfredis.url', true)" \
		"SELECT name, setting, reset_val, boot_val FROM pg_settings" \
		"SELECT * FROM pg_file_settings" "SELECT pg_catalog.pg_read_file('postgresql.auto.conf')" \
		"SELECT setconfig FROM pg_db_role_setting" "SELECT redis_cache_get('k')" \
		"SELECT * FROM redis_connections()" "SELECT * FROM redis_health()" "SELECT * FROM redis_stats"; do
		out=$(as "$who" "SET bmfredis.on_error = 'error'; $sql")
		case "$out" in *"$SECRET"* | *"$URLSECRET"*) leaks="$leaks [$who: $sql]" ;; esac
	done
done
is "no route shows a secret to mallory or to a pg_read_all_settings member" "$leaks" ""
like "mallory may not examine the password at all" "$(as mallory 'SHOW bmfredis.password')" \
	"must be superuser or have privileges of pg_read_all_settings"
is "pg_read_all_settings members see it masked" "$(as auditor 'SHOW bmfredis.password')" "********"
is "  and the URL with only its password masked" "$(as auditor 'SHOW bmfredis.url')" \
	"redis://default:********@127.0.0.1:$sport/0"
q "SELECT redis_grant('mallory', 'read', 'write')" >/dev/null
is "the server's password works for mallory's calls once she may make them" \
	"$(as mallory "SELECT redis_cache_set('k', 'v'); SELECT redis_cache_get('k');")" "t
v"

# errors and CONTEXT lines: a wrong password on the server, called from a trigger
psql -X -q -d postgres -c "ALTER SYSTEM SET bmfredis.url = 'redis://default:Wrong-$URLSECRET@127.0.0.1:$sport/0'" \
	-c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
q "CREATE TABLE t (id int PRIMARY KEY); GRANT ALL ON t TO mallory;
SELECT redis_watch('t', 'thing', ARRAY['thing:{id}']);" >/dev/null
out=$(PGUSER=mallory qv <<<"SET bmfredis.on_error = 'error'; SET bmfredis.invalidate_at = 'immediate';
INSERT INTO t VALUES (1); SELECT redis_cache_get('k');")
like "a refused password is an error (28P01)" "$out" "28P01: Redis refused the credentials of bmfredis"
case "$out" in *"$URLSECRET"* | *"$SECRET"*) not_ok "the error, DETAIL and CONTEXT hold no secret" "$out" ;;
*) ok "the error, DETAIL and CONTEXT hold no secret" ;; esac
reset_server

# --- the hosted-Redis recipe of the README: the URL without its password,
# the password in a file; nothing secret in the log, even across reloads
out=$(psql -X -q -d postgres -c "ALTER SYSTEM SET bmfredis.password = '$SECRET'" 2>&1)
like "ALTER SYSTEM SET bmfredis.password warns that a reload logs it" "$out" \
	"WARNING:  the bmfredis.password set with ALTER SYSTEM will be written in clear to the server log on reload"
like "  and says where it belongs" "$out" "set bmfredis.password_file"
like "  as does a URL with a password" \
	"$(psql -X -q -d postgres -c "ALTER SYSTEM SET bmfredis.url = 'rediss://u:$SECRET@h:1'" 2>&1)" "password in bmfredis.url set with ALTER SYSTEM"
psql -X -q -d postgres -c "ALTER SYSTEM RESET bmfredis.password" -c "ALTER SYSTEM RESET bmfredis.url" >/dev/null
logsize=$(stat -c %s "$BMF_WORK/pgdata.log")
pf=$BMF_WORK/hosted.pass
printf '%s\n' "$URLSECRET" >"$pf"
chown "$BMF_USER" "$pf"
chmod 600 "$pf"
out=$(psql -X -q -A -t -d postgres -c "ALTER SYSTEM SET bmfredis.url = 'redis://default@127.0.0.1:$sport/0'" \
	-c "ALTER SYSTEM SET bmfredis.password_file = '$pf'" -c "SELECT pg_reload_conf()" 2>&1)
is "the recipe's ALTER SYSTEM lines warn of nothing" "$out" "t"
sleep 0.5
is "calls authenticate with the password from the file" "$(as mallory "SELECT redis_cache_set('k', 'from-file'); SELECT redis_cache_get('k');")" "t
from-file"
psql -X -q -d postgres -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
check "the reload was logged" bash -c "tail -c +$logsize '$BMF_WORK/pgdata.log' | grep -q 'changed to'"
refute "  and no log line since holds the secret" bash -c "tail -c +$logsize '$BMF_WORK/pgdata.log' | grep -q '$URLSECRET'"
psql -X -q -d postgres -c "ALTER SYSTEM RESET bmfredis.password_file" >/dev/null
reset_server

# --- a non-superuser cannot redirect or re-key anything
denied=""
for setting in host port unix_socket db username password url key_prefix channel_prefix \
	tls tls_verify tls_ca_file tls_cert_file tls_key_file tls_server_name \
	sentinels sentinel_master sentinel_username sentinel_password; do
	case $setting in port | db) v=1 ;; tls) v=on ;; tls_verify) v=none ;; sentinels) v=127.0.0.1:1 ;; *) v=x ;; esac
	out=$(as mallory "SET bmfredis.$setting = '$v'")
	[[ $out =~ "permission denied to set parameter" ]] || denied="$denied $setting"
	out=$(as mallory "SELECT set_config('bmfredis.$setting', '$v', false)")
	[[ $out =~ "permission denied to set parameter" ]] || denied="$denied set_config:$setting"
	out=$(as mallory "ALTER ROLE mallory SET bmfredis.$setting = '$v'")
	[[ $out =~ "permission denied" ]] || denied="$denied alter_role:$setting"
done
is "mallory cannot SET, set_config or ALTER ROLE SET any endpoint, TLS, credential or prefix setting" "$denied" ""
out=$(as mallory "SET bmfredis.command_timeout = '1s'; SET bmfredis.on_error = 'ignore'; SHOW bmfredis.on_error")
is "  while per-session knobs stay hers" "$out" "ignore"

# --- secrets cannot be stored where every user can read them
out=$(qv <<<"ALTER ROLE mallory SET bmfredis.password = 'x';")
like "ALTER ROLE ... SET bmfredis.password is refused" "$out" \
	"ERROR:  22023: bmfredis.password cannot be stored with ALTER ROLE, ALTER DATABASE or a function's SET clause"
like "  with a hint where to put it" "$out" "HINT:  Put it in postgresql.conf, or use ALTER SYSTEM."
out=$(q "ALTER DATABASE bmf_sec SET bmfredis.url = 'redis://u:p@h:1'")
like "ALTER DATABASE ... SET bmfredis.url is refused" "$out" "bmfredis.url cannot be stored"
out=$(q "ALTER DATABASE bmf_sec SET bmfredis.sentinel_password = 'x'")
like "ALTER DATABASE ... SET bmfredis.sentinel_password is refused" "$out" "bmfredis.sentinel_password cannot be stored"
psql -X -q -d postgres -c "ALTER SYSTEM SET bmfredis.sentinel_password = '$SECRET'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
is "a pg_read_all_settings member sees the sentinel password masked" \
	"$(as auditor 'SHOW bmfredis.sentinel_password')" "********"
out=$(as auditor 'SHOW ALL')
check "  and SHOW ALL (which answers) does not list it" \
	bash -c '[[ $1 == *bmfredis.key_prefix* && $1 != *"$2"* ]]' _ "$out" "$SECRET"
psql -X -q -d postgres -c "ALTER SYSTEM RESET bmfredis.sentinel_password" -c "SELECT pg_reload_conf()" >/dev/null
out=$(q "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET bmfredis.password = 'x' AS 'SELECT 1'")
like "a function's SET clause cannot carry the password" "$out" "bmfredis.password cannot be stored"
is "nothing was stored" "$(q "SELECT count(*) FROM pg_db_role_setting WHERE array_to_string(setconfig, ',') LIKE '%bmfredis.password=%' OR array_to_string(setconfig, ',') LIKE '%bmfredis.url=%'")" "0"

# --- admin functions: revoked from PUBLIC, given out by the documented GRANTs
calls=("SELECT redis_command('PING')" "SELECT redis_info()" "SELECT redis_invalidate_pattern('x*')"
	"SELECT redis_flush_namespace()" "SELECT redis_stats_reset()")
bad=""
for c in "${calls[@]}"; do
	[[ $(as ops "$c") =~ "permission denied for function" ]] || bad="$bad [$c]"
done
is "unprivileged calls to admin functions get 'permission denied'" "$bad" ""
q "CREATE ROLE bmfredis_admin NOLOGIN;
GRANT EXECUTE ON FUNCTION redis_command(text[]), redis_info(text), redis_invalidate_pattern(text),
      redis_flush_namespace(), redis_stats_reset() TO bmfredis_admin;
GRANT bmfredis_admin TO ops;" >/dev/null
bad=""
for c in "${calls[@]}"; do
	out=$(as ops "$c")
	[[ $out =~ "ERROR" ]] && bad="$bad [$c: $out]"
done
is "after the README's GRANTs to bmfredis_admin, a member can call each" "$bad" ""
[[ $(as mallory "SELECT redis_command('PING')") =~ "permission denied" ]] && ok "  and a non-member still cannot" || not_ok "  and a non-member still cannot"

# --- hostile search_path: traps in the schema the extension goes into,
# and a schema put before pg_catalog when the triggers run
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_hostile" -c "CREATE DATABASE bmf_hostile" >/dev/null
BMF_DB=bmf_hostile
out=$(qs <<'SQL'
CREATE SCHEMA evil;
CREATE FUNCTION evil.trap() RETURNS boolean LANGUAGE plpgsql AS
$$BEGIN RAISE EXCEPTION 'TRAP: an object from a hostile search_path was used'; END$$;
DO $$
DECLARE
    s text; t text; op text;
BEGIN
    FOREACH s IN ARRAY ARRAY['evil', 'public'] LOOP
        FOREACH t IN ARRAY ARRAY['text', 'integer', 'bigint', 'timestamptz', '"char"', 'oid', 'name'] LOOP
            EXECUTE pg_catalog.format('CREATE FUNCTION %I.trap_op(%s, %s) RETURNS boolean LANGUAGE sql AS ''SELECT evil.trap()''', s, t, t);
            FOREACH op IN ARRAY ARRAY['=', '<>', '<', '<=', '>', '>='] LOOP
                EXECUTE pg_catalog.format('CREATE OPERATOR %I.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %I.trap_op)', s, op, t, t, s);
            END LOOP;
        END LOOP;
        EXECUTE pg_catalog.format('CREATE FUNCTION %I.now() RETURNS timestamptz LANGUAGE sql AS ''SELECT CASE WHEN evil.trap() THEN pg_catalog.now() END''', s);
        EXECUTE pg_catalog.format('CREATE FUNCTION %I.length(text) RETURNS integer LANGUAGE sql AS ''SELECT CASE WHEN evil.trap() THEN 1 END''', s);
        EXECUTE pg_catalog.format('CREATE FUNCTION %I.format(text, VARIADIC text[]) RETURNS text LANGUAGE sql AS ''SELECT CASE WHEN evil.trap() THEN '''''''' END''', s);
        EXECUTE pg_catalog.format('CREATE FUNCTION %I.quote_ident(text) RETURNS text LANGUAGE sql AS ''SELECT CASE WHEN evil.trap() THEN '''''''' END''', s);
        EXECUTE pg_catalog.format('CREATE FUNCTION %I.coalesce_trap(text[]) RETURNS text[] LANGUAGE sql AS ''SELECT NULL::text[]''', s);
    END LOOP;
END $$;
SELECT 'traps set';
SQL
)
is "trap operators and functions in public and evil (they even catch unqualified calls)" "$out" "traps set"
out=$(qs <<'SQL'
SET search_path = public, evil;
SET bmfredis.key_prefix = 'hostile:';
CREATE EXTENSION bmfredis SCHEMA public;
SELECT 'installed';
SQL
)
is "CREATE EXTENSION into a schema full of trap operators and functions" "$out" "installed"
out=$(qs <<'SQL'
SET search_path = evil, public, pg_catalog;
CREATE TABLE shops (id integer PRIMARY KEY, name text);
CREATE TABLE products (id bigint PRIMARY KEY, shop_id integer, title text, updated timestamptz);
SELECT redis_watch('shops', 'shop', ARRAY['shop:{id}']);
SELECT redis_watch('products', 'product', ARRAY['product:{id}'], ARRAY['shop:{shop_id}']);
INSERT INTO bmfredis.cache_cascades VALUES ('shop', 'product', 'shop_id');
INSERT INTO shops VALUES (1, 'a');
INSERT INTO products SELECT i, 1, 't' || i, pg_catalog.now() FROM generate_series(1, 5) i;
SELECT redis_cache_set('product:3', 'cached');
UPDATE shops SET name = 'b' WHERE id OPERATOR(pg_catalog.=) 1;
SELECT redis_cache_get('product:3') IS NULL;
SELECT redis_invalidate_entity('product', '2');
SELECT redis_invalidate_at('product:4', pg_catalog.now());
SELECT redis_run_scheduled() OPERATOR(pg_catalog.>=) 0;
SELECT redis_unwatch('products');
SELECT 'done';
SQL
)
is "watch, triggers, cascades, schedules and unwatch under search_path = evil, public, pg_catalog" \
	"$out" $'\n\nt\nt\n\n\nt\n\ndone'
refute "  no trap fired anywhere" grep -q "TRAP: an object" "$BMF_WORK/pgdata.log"
