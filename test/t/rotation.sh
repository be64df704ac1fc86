# rotation: the server's Redis credentials change while sessions, the
# database's worker (its schedules, retry queue and channel relay) and the
# near-cache run.  A new Redis user and password file go into
# postgresql.conf, a reload, and every process talks as the new user at
# its next call: no connection is left on the old user, and a pgbench
# load of cache calls across the rotation (and the old user's deletion
# after it settled) has no failed call.
. "$(dirname "$0")/../tap.sh"
R=$BMF_REDISCTL
pf=$BMF_WORK/rot.pass
restore() {
	psql -X -q -d postgres -c "ALTER SYSTEM RESET bmfredis.username" -c "ALTER SYSTEM RESET bmfredis.password_file" \
		-c "SELECT pg_reload_conf()" >/dev/null 2>&1
	sleep 0.5
	$R cli ACL DELUSER rot_old rot_new >/dev/null 2>&1
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_rot WITH (FORCE)" >/dev/null 2>&1
	return 0
}
trap restore EXIT
$R cli ACL SETUSER rot_old on '>old-Pass-1' '~*' '&*' '+@all' >/dev/null
$R cli ACL SETUSER rot_new on '>new-Pass-2' '~*' '&*' '+@all' >/dev/null
echo "old-Pass-1" >"$pf"
chown "$BMF_USER" "$pf"
chmod 600 "$pf"
psql -X -q -d postgres -c "ALTER SYSTEM SET bmfredis.username = 'rot_old'" \
	-c "ALTER SYSTEM SET bmfredis.password_file = '$pf'" -c "SELECT pg_reload_conf()" >/dev/null
tap_db bmf_rot
q "ALTER DATABASE bmf_rot SET bmfredis.key_prefix = 'rot:';
ALTER DATABASE bmf_rot SET bmfredis.on_error = 'error';
ALTER DATABASE bmf_rot SET bmfredis.subscribe = 'rot:news'" >/dev/null
# users() : the Redis users of the connections of this test's processes
users() { $R cli CLIENT LIST | grep -o 'name=bmfredis[^ ]*bmf_rot[^ ]* .* user=[^ ]*' | grep -o 'user=[^ ]*' | sort | uniq -c | awk '{print $2 "=" $1}' | tr '\n' ' '; }
wait_users() {  # until every connection is $1's, at most 10 s
	for _ in $(seq 1 100); do
		u=$(users)
		[[ -n $u && $u != *"user=rot_old"* && $u != *"user=default"* ]] && [[ $u == *"user=$1"* ]] && return 0
		sleep 0.1
	done
	return 1
}
# the worker is running, subscribed, and talks as rot_old
for _ in $(seq 1 100); do [[ $(users) == *rot_old* ]] && break; sleep 0.1; done
like "before: the worker's connections are rot_old's" "$(users)" "user=rot_old"

cat >"$BMF_WORK/rot.bench" <<'SQL'
\set id random(1, 1000)
SELECT redis_cache_set('k:' || :id, 'v', '1 min');
SELECT redis_cache_get('k:' || :id);
SELECT redis_cache_get('k:' || (:id + 1));
SQL
chown "$BMF_USER" "$BMF_WORK/rot.bench"
PGOPTIONS="-c bmfredis.near_cache=on" pgbench -n -c 4 -j 2 -T 8 -f "$BMF_WORK/rot.bench" bmf_rot >"$BMF_WORK/rot.out" 2>&1 &
bench=$!
sleep 2
# rotate: the new user's password into the same file, the new user in postgresql.conf
echo "new-Pass-2" >"$pf"
psql -X -q -d postgres -c "ALTER SYSTEM SET bmfredis.username = 'rot_new'" -c "SELECT pg_reload_conf()" >/dev/null
check "after the reload, every connection (sessions, near-cache, worker, relay) is rot_new's within seconds" wait_users rot_new
[[ $(users) == *rot_old* ]] && echo "# left: $(users)"
$R cli ACL DELUSER rot_old >/dev/null
wait $bench
rc=$?
out=$(cat "$BMF_WORK/rot.out")
is "  the load ran through the rotation and the old user's deletion with no failed call" "$rc $(grep -c -i 'aborted\|error' <<<"$out")" "0 0"
[ "$rc" = 0 ] || echo "$out" | head -20 | sed 's/^/# /'
like "  and did work" "$out" "number of transactions actually processed: [1-9]"
$R cli PUBLISH rot:news hi >/dev/null
is "the relay still delivers (subscribed again as rot_new)" "$($R cli PUBSUB NUMSUB rot:news | tail -1)" "1"
