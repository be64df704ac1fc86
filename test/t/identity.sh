# Identity: a bmfredis foreign server says where Redis is, user mappings
# give two roles two Redis ACL users with disjoint key patterns, which
# cannot read, write or invalidate each other's keys; the server's own
# identity (its password in a private file) does the rules' work; options
# are validated, passwords hidden from other roles; SECURITY DEFINER uses
# the definer's mapping.
. "$(dirname "$0")/../tap.sh"
R=$BMF_REDISCTL
bmf_start_redis acl
aport=$BMF_REDIS_PORT
trap 'cleanup end; bmf_stop_pid "$(cat "$BMF_WORK/acl.pid")" TERM' EXIT
acl() { redis-cli -p "$aport" --user bmf --pass srv-Secret-5 --no-auth-warning "$@"; }
redis-cli -p "$aport" ACL SETUSER bmf on '>srv-Secret-5' '~*' '&*' '+@all' >/dev/null
redis-cli -p "$aport" ACL SETUSER tenant_a on '>pass-A-77' '~id:a:*' '&a:*' '+@all' >/dev/null
redis-cli -p "$aport" ACL SETUSER tenant_b on '>pass-B-88' '~id:b:*' '&b:*' '+@all' >/dev/null
redis-cli -p "$aport" ACL SETUSER default off >/dev/null

roles="ra rb rc"
cleanup() {
	for r in $roles; do psql -X -q -d bmf_ident -c "DROP OWNED BY $r CASCADE" >/dev/null 2>&1; done
	for r in $roles; do psql -X -q -d postgres -c "DROP ROLE IF EXISTS $r" >/dev/null 2>&1; done
	# its Redis stops with the test: a database left pointing at it would
	# wait for it forever after the next cold start
	[ "${1:-}" = end ] && psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_ident WITH (FORCE)" >/dev/null 2>&1
	return 0
}
cleanup
tap_db bmf_ident
for r in $roles; do psql -X -q -d postgres -c "CREATE ROLE $r LOGIN" >/dev/null; done
as() { local who=$1; shift; PGUSER=$who q "$@"; }

# the server's own password, in a file only the server's user may read
pf=$BMF_WORK/redis.pass
echo "srv-Secret-5" >"$pf"
chown "$BMF_USER" "$pf"
chmod 644 "$pf"

out=$(qv <<<"CREATE SERVER bad FOREIGN DATA WRAPPER bmfredis OPTIONS (hostname 'x');")
like "a server's options are checked (name)" "$out" 'ERROR:  HV00D: invalid option "hostname" for a server of bmfredis'
like "  with the valid ones in the hint" "$out" "HINT:  Valid options here are: host, port, tls, tls_server_name."
like "  and values" "$(q "CREATE SERVER bad FOREIGN DATA WRAPPER bmfredis OPTIONS (port '70000')")" 'invalid port "70000"'
like "a user mapping takes user and password only" \
	"$(q "CREATE SERVER ok FOREIGN DATA WRAPPER bmfredis; CREATE USER MAPPING FOR ra SERVER ok OPTIONS (host 'x')")" \
	'invalid option "host" for a user mapping of bmfredis'
q "DROP SERVER IF EXISTS ok CASCADE" >/dev/null

q "CREATE SERVER redis_acl FOREIGN DATA WRAPPER bmfredis OPTIONS (host '127.0.0.1', port '$aport');
CREATE USER MAPPING FOR ra SERVER redis_acl OPTIONS (user 'tenant_a', password 'pass-A-77');
CREATE USER MAPPING FOR rb SERVER redis_acl OPTIONS (user 'tenant_b', password 'pass-B-88');
ALTER DATABASE bmf_ident SET bmfredis.server = 'redis_acl';
ALTER DATABASE bmf_ident SET bmfredis.key_prefix = 'id:';
ALTER DATABASE bmf_ident SET bmfredis.username = 'bmf';
ALTER DATABASE bmf_ident SET bmfredis.password_file = '$pf';
ALTER DATABASE bmf_ident SET bmfredis.on_error = 'error';
SELECT redis_grant('ra', 'read', 'write', 'invalidate', 'publish', 'monitor');
SELECT redis_grant('rb', 'read', 'write', 'invalidate', 'publish', 'monitor');
SELECT redis_grant('rc', 'read');" >/dev/null

like "a password file others can read is refused, saying why" "$(q "SELECT redis_cache_get('x')")" \
	'could not read bmfredis.password_file.*|must be owned by the database server.s user and readable by it alone'
out=$(qv <<<"SELECT redis_cache_get('x');")
like "  (F0000, naming the file and not its content)" "$out" "F0000: could not read bmfredis.password_file"
case "$out" in *srv-Secret-5*) not_ok "  the secret is not in the message" "$out" ;; *) ok "  the secret is not in the message" ;; esac
chmod 600 "$pf"
is "the server's identity, from the file, works once the file is private" "$(q "SELECT redis_cache_set('a:1', 'A'), redis_cache_set('b:1', 'B')")" "t|t"
is "  and talks to the server the foreign server names" "$(acl GET id:a:1)" "A"

# --- two roles, two Redis users, disjoint keys
is "ra (tenant_a) reads and writes its keys" "$(as ra "SELECT redis_cache_set('a:2', 'A2'), redis_cache_get('a:1')")" "t|A"
is "rb (tenant_b) reads and writes its keys" "$(as rb "SELECT redis_cache_set('b:2', 'B2'), redis_cache_get('b:1')")" "t|B"
like "ra cannot read rb's keys (Redis' ACL: 42501)" "$(as ra "SELECT redis_cache_get('b:1')")" "permission denied by Redis ACL"
like "  the hint names ra's own Redis user, not bmfredis'" "$(PGUSER=ra qv <<<"SELECT redis_cache_get('b:1');")" \
	"HINT:  This role talks to Redis as \"tenant_a\" \(its user mapping\)"
like "ra cannot write them" "$(as ra "SELECT redis_cache_set('b:1', 'forged')")" "permission denied by Redis ACL"
like "rb cannot read ra's" "$(as rb "SELECT redis_cache_get('a:1')")" "permission denied by Redis ACL"
like "ra cannot invalidate rb's key now" "$(as ra "SELECT redis_invalidate('b:1', true)")" "Redis refused an invalidation"
like "  nor at COMMIT (sent now too, as its own user, for the ACL to decide)" \
	"$(as ra "BEGIN; SELECT redis_invalidate('b:1'); COMMIT;")" "Redis refused an invalidation"
like "  nor by tag" "$(as ra "SELECT redis_invalidate_tag('b:things', true)")" "Redis refused an invalidation"
like "  nor at a time (redis_invalidate_at: sent now too, as its own user)" \
	"$(as ra "SELECT redis_invalidate_at('b:1', now() + interval '1 hour')")" "Redis refused an invalidation"
is "  so nothing of it is scheduled" "$(q "SELECT count(*) FROM bmfredis.scheduled_invalidations WHERE target LIKE 'id:b:%'")" "0"
like "  nor a tag at a time (redis_invalidate_tag_at)" \
	"$(as ra "SELECT redis_invalidate_tag_at('b:things', now() + interval '1 hour')")" "permission denied by Redis ACL"
is "  nothing of that scheduled either" "$(q "SELECT count(*) FROM bmfredis.scheduled_invalidations WHERE target LIKE 'id:tag:%'")" "0"
is "rb's key is still there, with no TTL" "$(acl GET id:b:1) $(acl PTTL id:b:1)" "B -1"
as ra "SELECT redis_invalidate_at('a:1', now() + interval '1 hour')" >/dev/null
is "ra schedules its own key's invalidation" \
	"$(q "SELECT count(*) FROM bmfredis.scheduled_invalidations WHERE target = 'id:a:1'") $(acl PTTL id:a:1 | awk '{print ($1 > 0)}')" "1 1"
q "DELETE FROM bmfredis.scheduled_invalidations" >/dev/null
acl PERSIST id:a:1 >/dev/null
is "ra invalidates its own at COMMIT" "$(as ra "BEGIN; SELECT redis_invalidate('a:2'); COMMIT;"; acl EXISTS id:a:2)" "
0"
like "rc, with no user mapping, is refused (28000) with how to map it" "$(PGUSER=rc qv <<<"SELECT redis_cache_get('a:1');")" \
	"28000: role \"rc\" has no user mapping for bmfredis server \"redis_acl\".*CREATE USER MAPPING FOR rc SERVER redis_acl"
q "SELECT redis_grant('rc', 'monitor')" >/dev/null
is "rc, unmapped but with monitor, checks health (as the server's identity: an exporter needs no mapping)" \
	"$(as rc "SELECT healthy, status FROM redis_health()")" "t|connected"
is "  and reads every monitoring view (metrics, stats, connections, workers)" \
	"$(as rc "SELECT (SELECT count(*) > 0 FROM redis_metrics()) AND (SELECT count(*) > 0 FROM redis_stats) AND (SELECT count(*) >= 0 FROM redis_connections()) AND (SELECT count(*) > 0 FROM redis_workers())")" "t"
is "each identity has its own connection in the pool" \
	"$(as ra "SELECT redis_cache_get('a:1'); SELECT node FROM redis_connections() ORDER BY 1")" "A
127.0.0.1:$aport#tenant_a"
like "ra's publishes go through &a:* (Redis refuses b:*)" "$(as ra "SELECT redis_publish('b:news', 'x', true)")" "permission denied by Redis ACL"

# --- redis_command is not bounded by the prefix; a mapping's Redis user is
q "SELECT redis_grant('ra', 'admin')" >/dev/null
is "ra with admin: redis_command reaches its keys" "$(as ra "SELECT redis_command('GET', 'id:a:1')")" "A"
like "  but not rb's (its Redis user's ACL), even with force" "$(as ra "SELECT redis_command(true, 'GET', 'id:b:1')")" "permission denied by Redis ACL"
like "  nor a script reaching past it" "$(as ra "SELECT redis_command(true, 'EVAL', 'return redis.call(''GET'', KEYS[1])', '1', 'id:b:1')")" "permission denied by Redis ACL"
like "  nor have the worker read a stream its Redis user may not (the worker reads as the server's identity)" \
	"$(as ra "SELECT redis_consume_stream('id:b:events', notify => 'x')")" "permission denied by Redis ACL"
is "  while one it may is registered" "$(as ra "SELECT redis_consume_stream('id:a:events', notify => 'x'), redis_stop_consuming('id:a:events')")" "|t"
like "  nor by writing bmfredis.stream_consumers itself" \
	"$(as ra "INSERT INTO bmfredis.stream_consumers (stream, notify) VALUES ('id:b:events', 'leak')")" "permission denied by Redis ACL"
# the inbox runs a table's code as its owner: that code's Redis calls are the owner's, not the server's
q "CREATE TABLE ra_inbox (stream text, entry_id text, message text, PRIMARY KEY (stream, entry_id));
CREATE FUNCTION ra_grab() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
	BEGIN
		NEW.message := 'read: ' || coalesce(redis_command('GET', 'id:b:1'), 'nil');
	EXCEPTION WHEN others THEN
		NEW.message := 'refused: ' || SQLERRM;
	END;
	RETURN NEW;
END \$\$;
CREATE TRIGGER ra_grab BEFORE INSERT ON ra_inbox FOR EACH ROW EXECUTE FUNCTION ra_grab();
ALTER TABLE ra_inbox OWNER TO ra; ALTER FUNCTION ra_grab() OWNER TO ra" >/dev/null
acl DEL id:a:in >/dev/null
as ra "SELECT redis_consume_stream('id:a:in', 'ra_inbox')" >/dev/null
acl XADD id:a:in '*' message go >/dev/null
ra_row() { for _ in $(seq 1 100); do [ "$(q "SELECT count(*) FROM ra_inbox")" = 1 ] && return 0; sleep 0.1; done; return 1; }
check "the worker stores an entry into ra's table" ra_row
like "  whose trigger's Redis call went out as ra's own user (refused), not as the server's" \
	"$(q "SELECT message FROM ra_inbox")" "^refused: .*permission denied by Redis ACL"
as ra "SELECT redis_stop_consuming('id:a:in')" >/dev/null
q "SELECT redis_revoke('ra', 'admin')" >/dev/null

# --- a mapping without a password would be Redis' default user
q "GRANT USAGE ON FOREIGN SERVER redis_acl TO ra" >/dev/null
out=$(PGUSER=ra qv <<<"ALTER USER MAPPING FOR CURRENT_USER SERVER redis_acl OPTIONS (DROP password);")
like "a non-superuser cannot drop its mapping's password (2F003)" "$out" "2F003: a user mapping of bmfredis needs a password"
q "REVOKE USAGE ON FOREIGN SERVER redis_acl FROM ra" >/dev/null
q "ALTER USER MAPPING FOR rb SERVER redis_acl OPTIONS (DROP password)" >/dev/null
like "  a superuser may make one, but a non-superuser's calls through it are refused (28000)" \
	"$(PGUSER=rb qv <<<"SELECT redis_cache_get('b:1');")" \
	"28000: the user mapping of role \"rb\" for bmfredis server \"redis_acl\" has no password"
q "ALTER USER MAPPING FOR rb SERVER redis_acl OPTIONS (ADD password 'pass-B-88')" >/dev/null
is "  with its password back, rb reads again" "$(as rb "SELECT redis_cache_get('b:1')")" "B"

# --- SECURITY DEFINER: the definer's mapping, as postgres_fdw does
q "CREATE FUNCTION read_a(k text) RETURNS text LANGUAGE sql SECURITY DEFINER AS \$\$ SELECT redis_cache_get(k) \$\$;
ALTER FUNCTION read_a(text) OWNER TO ra; GRANT EXECUTE ON FUNCTION read_a(text) TO rb;" >/dev/null
is "rb calling ra's SECURITY DEFINER function reads as tenant_a" "$(as rb "SELECT read_a('a:1')")" "A"

# --- the rules' work is the server's: a watched table's trigger at COMMIT
q "CREATE TABLE things (id int PRIMARY KEY, v text); INSERT INTO things VALUES (1, 'x');
SELECT redis_watch('things', 'thing', ARRAY['b:thing:{id}']);
GRANT UPDATE, SELECT ON things TO ra;" >/dev/null
acl SET id:b:thing:1 cached >/dev/null
out=$(as ra "UPDATE things SET v = 'y'")
is "ra's UPDATE of a watched table invalidates a key ra's Redis user may not touch (the rule is the server's)" \
	"$out $(acl EXISTS id:b:thing:1)" " 0"

# --- passwords: visible only where PostgreSQL shows user mappings
is "rc cannot see the mappings' options" "$(as rc "SELECT count(*) FROM pg_user_mappings WHERE umoptions IS NOT NULL")" "0"
is "  nor ra its own (PostgreSQL shows them to a mapped role only with USAGE on the server)" \
	"$(as ra "SELECT count(*) FROM pg_user_mappings WHERE umoptions IS NOT NULL")" "0"
like "a mapping with a mistyped option is refused" \
	"$(q "CREATE USER MAPPING FOR rc SERVER redis_acl OPTIONS (user 'x', passwd 'Leak-Me-1')")" 'invalid option "passwd"'
like "  and so is a password stored with ALTER DATABASE" \
	"$(q "ALTER DATABASE bmf_ident SET bmfredis.password = 'Leak-Me-2'")" "cannot be stored with ALTER ROLE, ALTER DATABASE"
like "  or a mapping with a bad value" \
	"$(q "CREATE USER MAPPING FOR rc SERVER redis_acl OPTIONS (user '', password 'Leak-Me-3')")" 'must be 1 to 254 bytes long'
refute "no password in the server log (the refused statements are not logged)" \
	grep -q -e "pass-A-77" -e "pass-B-88" -e "srv-Secret-5" -e "Leak-Me-" "$BMF_WORK/pgdata.log"

# --- DROP EXTENSION ... CASCADE takes the server and its mappings with it
note() { q "SELECT coalesce(note, '') FROM redis_workers() WHERE database = 'bmf_ident'"; }
mark=$(wc -l <"$BMF_WORK/pgdata.log")
out=$(q "DROP EXTENSION bmfredis CASCADE")
like "DROP EXTENSION ... CASCADE warns that the server bmfredis.server names went, with its mappings" "$out" \
	'WARNING:  dropping bmfredis dropped foreign server "redis_acl" and its user mappings, which bmfredis.server names'
out=$(q "CREATE EXTENSION bmfredis")
like "  CREATE EXTENSION again warns that bmfredis.server names nothing, and what to do" "$out" \
	'WARNING:  bmfredis.server names server "redis_acl", which does not exist.*HINT:  CREATE SERVER redis_acl'
like "  a call says so too" "$(q "SELECT redis_cache_get('a:1')")" 'server "redis_acl" named by bmfredis.server does not exist'
waiting() {  # the worker waits, at most 10 s
	for _ in $(seq 1 100); do [[ $(note) == waiting:* ]] && return 0; sleep 0.1; done
	return 1
}
check "  the database's worker waits for it (redis_workers says so)" waiting
sleep 6
since=$(tail -n +"$mark" "$BMF_WORK/pgdata.log")
is "  saying it once, not failing and restarting every few seconds" \
	"$(grep -c 'bmfredis worker for database "bmf_ident" waits: server "redis_acl"' <<<"$since") $(grep -c 'bmfredis worker for database "bmf_ident" restarts' <<<"$since")" "1 0"
q "CREATE SERVER redis_acl FOREIGN DATA WRAPPER bmfredis OPTIONS (host '127.0.0.1', port '$aport');
SELECT redis_grant('ra', 'read')" >/dev/null
served() { for _ in $(seq 1 100); do [ -z "$(note)" ] && return 0; sleep 0.1; done; return 1; }
check "  made again, the worker serves the database" served
is "  and calls work (as the server's identity)" "$(q "SELECT redis_cache_get('a:1')")" "A"
like "  while a role needs its mapping again" "$(as ra "SELECT redis_cache_get('a:1')")" "28000|no user mapping|CREATE USER MAPPING"
