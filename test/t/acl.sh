# acl: docs/security.md's table of the Redis ACL each capability needs, run as
# written.  A Redis whose default user is off; for each capability a role
# that holds it alone, mapped to a Redis user whose ACL is the table's row
# (with the prefix and channels filled in), runs every function of the
# capability (test/acl/<capability>.sql; read with the near-cache on):
# nothing is refused and Redis' ACL LOG stays empty (no CLIENT SETNAME
# denial either).  The server's own user, with the table's last row, runs
# everything bmfredis does on its own behalf (rules at COMMIT, schedules,
# the relay, streams out and in).  The capability table above it matches
# bmfredis.capability_objects().
. "$(dirname "$0")/../tap.sh"
bmf_start_redis aclr
aport=$BMF_REDIS_PORT
trap 'bmf_stop_pid "$(cat "$BMF_WORK/aclr.pid")" TERM; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_acl WITH (FORCE)" >/dev/null 2>&1' EXIT
rc() { redis-cli -p "$aport" --user root --pass root-Pw --no-auth-warning "$@"; }
redis-cli -p "$aport" ACL SETUSER root on '>root-Pw' '~*' '&*' '+@all' >/dev/null
redis-cli -p "$aport" ACL SETUSER bmf on '>srv-Pw-1' '~*' '&*' '+@all' >/dev/null
redis-cli -p "$aport" ACL SETUSER default off >/dev/null
pf=$BMF_WORK/acl.pass; echo srv-Pw-1 >"$pf"; chown "$BMF_USER" "$pf"; chmod 600 "$pf"
caps="read write read_write invalidate publish listen lock monitor admin"
cleanup_roles() { for c in $caps; do psql -X -q -d postgres -c "DROP ROLE IF EXISTS c_$c" >/dev/null 2>&1; done; }
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_acl" -c "CREATE DATABASE bmf_acl" \
	-c "ALTER DATABASE bmf_acl SET bmfredis.key_prefix = 'acl:'" >/dev/null
cleanup_roles
BMF_DB=bmf_acl
q "CREATE EXTENSION bmfredis;
CREATE SERVER redis_acl FOREIGN DATA WRAPPER bmfredis OPTIONS (host '127.0.0.1', port '$aport');
ALTER DATABASE bmf_acl SET bmfredis.server = 'redis_acl';
ALTER DATABASE bmf_acl SET bmfredis.username = 'bmf';
ALTER DATABASE bmf_acl SET bmfredis.password_file = '$pf';
ALTER DATABASE bmf_acl SET bmfredis.subscribe = 'acl:*';
ALTER DATABASE bmf_acl SET bmfredis.stream_channels = 'acl_item:*';
CREATE TABLE acl_items (id int PRIMARY KEY, v text);
GRANT SELECT ON acl_items TO PUBLIC;
SELECT redis_watch('acl_items', 'acl_item', ARRAY['item:{id}'], ARRAY['items'], channel => 'acl_item');
CREATE TABLE acl_inbox (stream text, entry_id text, message text, PRIMARY KEY (stream, entry_id));
SELECT redis_consume_stream('stream:acl_in', 'acl_inbox');" >/dev/null

# the table's rows: capability -> ACL, "\|" back to "|", placeholders filled
acl_of() {
	awk -v want="$1" -F ' \\| ' '/^#### The Redis ACL each capability needs/ { on = 1 } /^### / { on = 0 }
		on && /^\| / { sub(/^\| /, ""); gsub(/\\\|/, "\001"); n = split($0, f, / \| /); c = f[1]; a = f[2]
			if (c == want) { gsub(/\001/, "|", a); print a } }' "$BMF_ROOT/docs/security.md" |
		grep -o '`[^`]*`' | tr -d '`' | tr ' ' '\n' | grep -E '^[-~&+%]' |
		sed -e 's/<prefix>/acl:/g' -e 's/<channels>/acl:*/g' | tr '\n' ' '
}
base=$(acl_of "every mapped role")
like "docs/security.md's table has a row for every mapped role" "$base" '~acl:\* \+client\|setname'
refused=""
for cap in $caps; do
	if [ "$cap" = read_write ]; then
		acl="$base $(acl_of '`read`') $(acl_of '`write`') $(acl_of '`read` and `write` (`redis_cached`)')"
	else
		acl="$base $(acl_of "\`$cap\`")"
	fi
	[ "$cap" = admin ] && acl="$acl +ping +get"	# what admin.sql sends with redis_command
	psql -X -q -d postgres -c "CREATE ROLE c_$cap LOGIN" >/dev/null 2>&1
	q "SELECT redis_grant('c_$cap', '${cap//_/\', \'}');
	   CREATE USER MAPPING FOR c_$cap SERVER redis_acl OPTIONS (user 'u_$cap', password 'pw-$cap')" >/dev/null
	# shellcheck disable=SC2086
	rc ACL SETUSER "u_$cap" reset on ">pw-$cap" $acl >/dev/null
	rc ACL LOG RESET >/dev/null
	out=$(PGUSER=c_$cap psql -X -q -A -t -v ON_ERROR_STOP=1 -d bmf_acl -f "$BMF_ROOT/test/acl/$cap.sql" 2>&1)
	log=$(rc ACL LOG 100 | awk '$0=="reason"{getline; r=$0} $0=="object"{getline; o=$0} $0=="username"{getline; print $0 ":" r ":" o}' | sort -u | tr '\n' ' ')
	[[ $out == *ERROR* || -n $log ]] && refused="$refused [$cap: $(grep -m1 ERROR <<<"$out") $log]"
done
is "each capability's functions run through a Redis user with just the table's ACL, with an empty ACL LOG" "$refused" ""
as_user() { local u=$1; shift; redis-cli -p "$aport" --user "u_$u" --pass "pw-$u" --no-auth-warning "$@" 2>&1; }
like "  and what the table says it cannot do, it cannot: read's user writes nothing" "$(as_user read SET acl:x 1)" "NOPERM"
like "  publish's user publishes only on its channels" "$(as_user publish PUBLISH payment:x 1)" "NOPERM"
like "  and no user reaches past the prefix" "$(as_user lock GET other:x)" "NOPERM"
cleanup_roles_in_db() { for c in $caps; do q "DROP USER MAPPING IF EXISTS FOR c_$c SERVER redis_acl; DROP OWNED BY c_$c" >/dev/null 2>&1; done; }

# the server's own user: what bmfredis does on its own behalf
srv=$(acl_of 'the server'"'"'s own user (`bmfredis.username`)' | sed 's/+select.*//')
like "the table has the server's own user" "$srv" "\\+xreadgroup"
# shellcheck disable=SC2086
rc ACL SETUSER bmf reset on '>srv-Pw-1' $srv >/dev/null
rc CLIENT KILL USER bmf >/dev/null 2>&1
rc ACL LOG RESET >/dev/null
rc DEL stream:acl_in >/dev/null
q "SELECT redis_stop_consuming('stream:acl_in'); SELECT redis_consume_stream('stream:acl_in', 'acl_inbox')" >/dev/null
rc XADD stream:acl_in '*' message hi >/dev/null
out=$(cat "$BMF_ROOT"/test/acl/*.sql - <<'SQL' | psql -X -q -A -t -v ON_ERROR_STOP=1 -d bmf_acl 2>&1
INSERT INTO acl_items VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET v = 'b';
UPDATE acl_items SET v = v || 'x';
SELECT redis_invalidate_at('i:9', now() + interval '100 ms');
SELECT redis_invalidate_tag_at('it9', now() + interval '100 ms');
SELECT pg_sleep(1.5);
SELECT redis_run_scheduled();
SQL
)
inbox() { for _ in $(seq 1 100); do [ "$(q "SELECT count(*) FROM acl_inbox")" -ge 1 ] && return 0; sleep 0.1; done; return 1; }
check "  the worker consumes a stream as the server's user" inbox
like "  its relay subscribed" "$(rc PUBSUB NUMPAT)" "^[1-9]"
is "  and a stream got the change events" "$(rc EXISTS stream:acl_item:updated)" "1"
log=$(rc ACL LOG 100 | awk '$0=="reason"{getline; r=$0} $0=="object"{getline; o=$0} $0=="username"{getline; print $0 ":" r ":" o}' | sort -u | tr '\n' ' ')
is "everything ran as the server's user with just the table's ACL: no ERROR, an empty ACL LOG" "$(grep -m1 ERROR <<<"$out")$log" ""
cleanup_roles_in_db

# the capability table (functions) against the catalog
readme=$(awk '/^## Roles and privileges/ { on = 1 } /^\| function \| returns/ { on = 0 }
	on && /^\| `[a-z]/ { sub(/^\| /, ""); split($0, f, / \| /); cap = f[1]; gsub(/`/, "", cap)
		n = split(f[2], w, /`/); for (i = 2; i <= n; i += 2) if (w[i] ~ /^redis_[a-z_]+$/) print cap "|" w[i] }' "$BMF_ROOT/docs/security.md" |
	sed 's/^read and write together/read,write/' | sort -u)
catalog=$(q "SELECT DISTINCT array_to_string(needs, ',') || '|' || substring(object from '\.(redis_[a-z_]+)')
	FROM bmfredis.capability_objects() WHERE object ~ '\.redis_[a-z_]+' ORDER BY 1" | sort -u)
is "docs/security.md's capability table names exactly the functions and views bmfredis.capability_objects() grants" \
	"$(diff <(echo "$readme") <(echo "$catalog") | grep '^[<>]' | tr '\n' ' ')" ""
cleanup_roles
