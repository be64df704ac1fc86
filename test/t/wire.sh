# Wire and pool behaviour that needs more than one session or another
# Redis: cancel and statement_timeout during a blocked wait, Unix sockets,
# AUTH with a password and with an ACL user, SELECT of a database.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_wire
R=$BMF_REDISCTL

q "SELECT redis_cache_set('k', 'v')" >/dev/null

# --- pg_cancel_backend during a wait on a frozen Redis
$R pause
start=$(ms_now)
q "SET bmfredis.command_timeout = '60s'; SET bmfredis.on_error = 'error'; SELECT redis_cache_get('k')" >"$BMF_WORK/cancel.out" &
waiter=$!
sleep 0.7
state=$(q "SELECT wait_event_type || '/' || wait_event FROM pg_stat_activity WHERE query LIKE '%redis_cache_get(''k'')%' AND pid <> pg_backend_pid()")
is "a blocked Redis wait shows in pg_stat_activity" "$state" "Extension/Extension"
q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%redis_cache_get(''k'')%' AND pid <> pg_backend_pid()" >/dev/null
wait $waiter
elapsed=$(( $(ms_now) - start ))
like "pg_cancel_backend interrupts the wait" "$(cat "$BMF_WORK/cancel.out")" "canceling statement due to user request"
check "cancel took effect within a second of being sent (${elapsed} ms in all)" [ "$elapsed" -lt 1700 ]

# --- statement_timeout during the same kind of wait
start=$(ms_now)
out=$(q "SET bmfredis.command_timeout = '60s'; SET statement_timeout = '300ms'; SELECT redis_cache_get('k')")
elapsed=$(( $(ms_now) - start ))
like "statement_timeout interrupts the wait" "$out" "canceling statement due to statement timeout"
check "statement_timeout took effect in time (${elapsed} ms)" [ "$elapsed" -lt 1300 ]

# --- pg_terminate_backend: the backend exits
q "SET bmfredis.command_timeout = '60s'; SELECT redis_cache_get('k')" >/dev/null 2>&1 &
waiter=$!
sleep 0.5
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%redis_cache_get(''k'')%' AND pid <> pg_backend_pid()" >/dev/null
start=$(ms_now)
wait $waiter
elapsed=$(( $(ms_now) - start ))
check "pg_terminate_backend ends a backend waiting on Redis (${elapsed} ms)" [ "$elapsed" -lt 1500 ]
$R resume

# after an interrupted command the connection is out of step: it is
# replaced, never read from again
out=$(q "SET bmfredis.command_timeout = '60s'; SELECT redis_cache_set('k2', 'v2');
SELECT redis_cache_get('k2');")
is "the next session reads its own values after resume" "$out" "t
v2"

# --- Unix socket
sock=$BMF_WORK/redis/redis.sock
$R cli CONFIG SET unixsocketperm 777 >/dev/null 2>&1
bmf_start_redis unix --unixsocket "$sock" --unixsocketperm 777
out=$(q "SET bmfredis.unix_socket = '$sock'; SELECT redis_cache_set('u', 'over unix');
SELECT node LIKE 'unix:%' FROM redis_connections() WHERE state = 'idle';")
is "connects over a Unix socket" "$out" "t
t"
is "the value went to the Unix-socket server" "$($R -n unix cli GET bmfredis:u)" "over unix"

# --- AUTH with a password, wrong and right
bmf_start_redis auth --requirepass s3cr3t-pw
port=$($R -n auth port)
out=$(q "SET bmfredis.port = $port; SET bmfredis.on_error = 'error'; SELECT redis_cache_get('x')")
like "no password: Redis requires authentication" "$out" "ERROR:  Redis requires authentication"
out=$(qv <<<"SET bmfredis.port = $port; SET bmfredis.password = 'wrong-pw'; SET bmfredis.on_error = 'error';
SELECT redis_cache_get('x');")
like "wrong password: refused with SQLSTATE 28P01" "$out" "ERROR:  28P01: Redis refused the credentials of bmfredis"
out=$(q "SET bmfredis.port = $port; SET bmfredis.password = 's3cr3t-pw'; SELECT redis_cache_set('x', 'authed');
SELECT redis_cache_get('x');")
is "right password: works" "$out" "t
authed"
# PostgreSQL itself logs the text of a statement that fails (STATEMENT:
# lines), which is why the README says to set secrets in postgresql.conf;
# bmfredis' own messages never contain them.
if grep -v 'STATEMENT:' "$BMF_WORK/pgdata.log" | grep -q 's3cr3t-pw\|wrong-pw'; then
	not_ok "passwords never appear in bmfredis' messages in the server log"
else
	ok "passwords never appear in bmfredis' messages in the server log"
fi

# --- an ACL user confined to the prefix
$R -n auth cli -a s3cr3t-pw --no-auth-warning ACL SETUSER app on '>app-pw' '~app:*' '&app:*' '+@all' '-@dangerous' '+client|setname' >/dev/null
out=$(q "SET bmfredis.port = $port; SET bmfredis.username = 'app'; SET bmfredis.password = 'app-pw';
SET bmfredis.key_prefix = 'app:'; SELECT redis_cache_set('x', 'acl user');
SELECT redis_cache_get('x');")
is "an ACL user (username + password) works inside its keys" "$out" "t
acl user"
out=$(qv <<<"SET bmfredis.port = $port; SET bmfredis.username = 'app'; SET bmfredis.password = 'app-pw';
SET bmfredis.key_prefix = 'other:'; SELECT redis_cache_get('x');")
like "outside its keys it gets NOPERM as SQLSTATE 42501" "$out" "ERROR:  42501: permission denied by Redis ACL"

# --- SELECT db
q "SET bmfredis.db = 3; SELECT redis_cache_set('in_db3', 'three')" >/dev/null
is "bmfredis.db selects the Redis database" "$($R cli -n 3 GET bmfredis:in_db3)" "three"
is "and not database 0" "$($R cli -n 0 EXISTS bmfredis:in_db3)" "0"
out=$(q "SET bmfredis.db = 3; SELECT redis_cache_get('in_db3'); SELECT db FROM redis_connections();")
is "redis_connections shows the database" "$out" "three
3"

# --- changing the endpoint mid-session switches connections
out=$(q "SELECT redis_cache_set('sw', 'main'); SET bmfredis.port = $port; SET bmfredis.password = 's3cr3t-pw';
SELECT redis_cache_set('sw', 'auth-server'); RESET bmfredis.port; RESET bmfredis.password; SELECT redis_cache_get('sw');
SELECT count(*) FROM redis_connections();")
is "settings changed mid-session take effect on the next call" "$out" "t
t
main
2"
