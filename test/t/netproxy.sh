# netproxy: test/netproxy.c, the network distance the benchmarks and the
# distance tests put between PostgreSQL and Redis.  Its delay is never
# shorter than asked (a round trip through a 500 us one-way delay takes at
# least 1 ms), it counts round trips as a client makes them (a connect, then
# one per flight of commands: a pipeline is one), it holds a link without
# closing it (a partition Redis itself does not see: bmfredis times out,
# and is well again when the link comes back) and it resets every link
# (bmfredis reconnects on its next call).
. "$(dirname "$0")/../tap.sh"
tap_db bmf_netproxy
pport=$(tap_netproxy np "$BMF_REDIS_PORT" 500)
cport=$(cat "$BMF_WORK/np.ctl")
ctl() { np_ctl np "$1"; }
rtts() { ctl stats | sed -n 's/.* round_trips \([0-9]*\) .*/\1/p'; }
check "it starts, listening and taking commands" [ "$(ctl 'delay 500')" = "ok delay 500 jitter 0" ]

# --- the delay: never shorter than asked
lat=$(redis-benchmark -p "$pport" -c 1 -n 200 -t ping --csv 2>/dev/null | sed -n 's/^"PING_INLINE","[^"]*","\([^"]*\)","\([^"]*\)".*/\2/p')
like "a PING through 500 us each way: at least 1 ms a round trip (min ${lat:-?} ms)" "$lat" '^(1\.|[2-9]\.)[0-9]+$'

# --- counting: a connect is one round trip, then each flight of bytes
# towards Redis that follows an answer
# flights N REPLIES BYTES: connect, then N times: write BYTES in one
# write and read REPLIES one-line replies
flights() {
	local n=$1 r=$2 i j
	exec 4<>"/dev/tcp/127.0.0.1/$pport"
	for i in $(seq 1 "$n"); do
		printf '%s' "$3" >&4
		for j in $(seq 1 "$r"); do read -r _ <&4; done
	done
	exec 4<&-
}
P1=$'*1\r\n$4\r\nPING\r\n'
ctl zero >/dev/null
flights 1 1 "$P1"
is "a connect and one command: 2 round trips" "$(rtts)" "2"
ctl zero >/dev/null
flights 1 3 "$P1$P1$P1"
is "  a connect and three commands in one pipeline: still 2" "$(rtts)" "2"
ctl zero >/dev/null
flights 3 1 "$P1"
is "  a connect and three commands one after the other: 4" "$(rtts)" "4"
# a connect costs a round trip in time as well: at 20 ms each way, a new
# connection's first PING takes two round trips, 80 ms
t0=$(ms_now)
redis-cli -p "$pport" PING >/dev/null 2>&1
t=$(( $(ms_now) - t0 ))
ctl 'delay 20000' >/dev/null
t0=$(ms_now)
redis-cli -p "$pport" PING >/dev/null 2>&1
t20=$(( $(ms_now) - t0 ))
ctl 'delay 500' >/dev/null
check "  and takes one in time: a new connection's PING at 20 ms each way takes at least 80 ms (${t20} ms; ${t} ms at 0.5 ms)" [ "$t20" -ge 80 ]

# --- bmfredis' own round trips: a new session's first read is the
# connect and one flight (its handshake travels with the GET)
q "SELECT redis_cache_set('k', 'v')" >/dev/null
# trips SQL: the round trips one session running SQL made
trips() { ctl zero >/dev/null; q "SET bmfredis.port = $pport; $1" >/dev/null; rtts; }
is "a new session's first redis_cache_get: 2 round trips (connect, then handshake and GET)" \
	"$(trips "SELECT redis_cache_get('k')")" "2"
is "  its second: one more" "$(trips "SELECT redis_cache_get('k'); SELECT redis_cache_get('k')")" "3"
# a write waits for its handshake's answer: a pipeline sent with it may
# run even when the connect then fails (a Redis that stops answering in
# between runs it when it wakes), and the caller would send it again
is "  a first redis_cache_set: 3 (the handshake is answered first)" "$(trips "SELECT redis_cache_set('k', 'v')")" "3"
q "SELECT redis_cached('k:c', '1 min', 'SELECT 1')" >/dev/null
is "  a first redis_cached hit: 2" "$(trips "SELECT redis_cached('k:c', '1 min', 'SELECT 1')")" "2"
# with AUTH too: a read that ran as Redis' default user (AUTH refused) is
# never returned
redis-cli -p "$BMF_REDIS_PORT" ACL SETUSER bmf_np on '>np-secret' '~*' '&*' +@all >/dev/null
A="SET bmfredis.username = bmf_np; SET bmfredis.password = 'np-secret';"
is "  with AUTH, a first redis_cache_get: 2" "$(trips "$A SELECT redis_cache_get('k')")" "2"
is "  with AUTH, a first redis_cache_set: 3 (the handshake waits for its answer first)" \
	"$(trips "$A SELECT redis_cache_set('k', 'v')")" "3"
redis-cli -p "$BMF_REDIS_PORT" SET np:only-default secret-of-default >/dev/null
out=$(qv <<SQL 2>&1
SET bmfredis.port = $pport; SET bmfredis.username = bmf_np; SET bmfredis.password = 'wrong';
SET bmfredis.on_error = 'error';
SELECT redis_cache_get('np:only-default');
SQL
)
like "  a refused AUTH in the shared flight: 28P01, and the GET that ran as the default user is not returned" \
	"$out" "ERROR:  28P01: Redis refused the credentials"
refute "  (its value appears nowhere)" grep -q secret-of-default <<<"$out"
out=$(qv <<SQL 2>&1
SET bmfredis.port = $pport; SET bmfredis.username = bmf_np; SET bmfredis.password = 'wrong';
SET bmfredis.on_error = 'error';
SELECT redis_cache_set('np:written', 'x');
SQL
)
like "  a refused AUTH before a write: 28P01" "$out" "ERROR:  28P01: Redis refused the credentials"
is "  and nothing was written as the default user" "$(redis-cli -p "$BMF_REDIS_PORT" EXISTS np:written)" "0"
redis-cli -p "$BMF_REDIS_PORT" ACL DELUSER bmf_np >/dev/null
redis-cli -p "$BMF_REDIS_PORT" DEL np:only-default >/dev/null
# SELECT is checked before the read's reply is looked at: had it failed,
# the read ran in database 0
is "  with bmfredis.db = 3, a first redis_cache_get: 2 as well" \
	"$(trips "SET bmfredis.db = 3; SELECT redis_cache_get('k')")" "2"
out=$(qv <<SQL 2>&1
SET bmfredis.port = $pport; SET bmfredis.db = 99; SET bmfredis.on_error = 'error';
SELECT redis_cache_get('k');
SQL
)
like "  a read in a database Redis does not have: the SELECT's error, not database 0's value" "$out" \
	"ERROR:  22023: could not select the Redis database"
out=$(qv <<SQL 2>&1
SET bmfredis.port = $pport; SET bmfredis.db = 99; SET bmfredis.on_error = 'error';
SELECT redis_cache_set('np:db', 'x');
SQL
)
like "  a database Redis does not have: the write fails" "$out" "ERROR:  22023: could not select the Redis database"
is "  and did not go to database 0" "$(redis-cli -p "$BMF_REDIS_PORT" EXISTS np:db)" "0"

# --- a partition: the link stays open, nothing moves
S="SET bmfredis.port = $pport; SET bmfredis.command_timeout = '300ms'; SET bmfredis.on_error = 'error'; SET bmfredis.retry_backoff_base = 1; SET bmfredis.retry_backoff_max = 1;"
is "hold" "$(ctl hold)" "ok held"
timeout 1 redis-cli -p "$pport" PING >/dev/null 2>&1
is "  a PING through a held link gets no answer (and no reset)" "$?" "124"
is "release" "$(ctl release)" "ok released"
out=$(qv <<SQL
$S
SELECT redis_cache_get('k');
\! bash -c 'exec 3<>/dev/tcp/127.0.0.1/$cport; echo hold >&3; read -r l <&3'
SELECT redis_cache_get('k');
\! redis-cli -p $BMF_REDIS_PORT PING
\! bash -c 'exec 3<>/dev/tcp/127.0.0.1/$cport; echo release >&3; read -r l <&3'
SELECT redis_cache_get('k');
SQL
)
like "a session's open link held: bmfredis times out (08006) while Redis itself answers" "$out" \
	"^v.*ERROR:  08006: Redis command timed out.*PONG"
like "  after release, the same session's next call works" "$out" "PONG.*v$"

# --- a reset: every link closed with a TCP reset
out=$(qs <<SQL
$S
SELECT redis_cache_get('k');
\! bash -c 'exec 3<>/dev/tcp/127.0.0.1/$cport; echo reset >&3; read -r l <&3; echo "\$l" >$BMF_WORK/reset.out'
SELECT redis_cache_get('k');
SQL
)
like "reset closes the open links" "$(cat "$BMF_WORK/reset.out")" "^ok reset [1-9]"
is "  and bmfredis' next call reconnects and works" "$(tail -1 <<<"$out")" "v"

# --- bandwidth
ctl 'delay 0' >/dev/null
ctl 'rate 1000000' >/dev/null
head -c 500000 /dev/zero | tr '\0' x | redis-cli -p "$BMF_REDIS_PORT" -x SET big >/dev/null
t0=$(ms_now)
redis-cli -p "$pport" GET big >/dev/null
t=$(( $(ms_now) - t0 ))
check "rate 1 MB/s: a 500 kB reply takes at least 0.45 s (${t} ms)" [ "$t" -ge 450 ]
ctl 'rate 0' >/dev/null

bmf_stop_pid "$(cat "$BMF_WORK/np.pid")"
rm -f "$BMF_WORK/np.pid"
