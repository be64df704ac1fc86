# A hostile server: malformed, truncated, oversized, deeply nested,
# mistyped and unasked-for replies (test/fakeredis.c) must only ever end in
# an ERROR (or a miss) and a dropped connection: never a crash, never a
# reply misread as another's, and the session goes on.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_hostile_wire

gcc -O1 -Wall -Werror -o "$BMF_WORK/fakeredis" "$BMF_ROOT/test/fakeredis.c" || { not_ok "fakeredis builds"; exit 1; }
fport=$(bmf_free_port)
P=$BMF_WORK/payload
printf 'keep\n+OK\r\n' >"$P"
"$BMF_WORK/fakeredis" "$fport" "$P" </dev/null >"$BMF_WORK/fakeredis.log" 2>&1 &
echo $! >"$BMF_WORK/fakeredis.pid"
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$fport") 2>/dev/null && break; sleep 0.05; done

S="SET bmfredis.port = $fport; SET bmfredis.on_error = 'error'; SET bmfredis.command_timeout = '400ms';
SET bmfredis.retry_backoff_base = 1; SET bmfredis.retry_backoff_max = 1;"
# payload DIRECTIVE: the rest of the payload comes from stdin
payload() { { echo "$1"; cat; } >"$P"; }
# hostile "what" SQL-CALL REGEX: the call fails (or returns) as REGEX says,
# and the same session can still use Redis afterwards
hostile() {
	local what=$1 call=$2 want=$3 out
	out=$(qv <<<"$S $call;
SELECT 'alive';")
	if [[ $out =~ $want ]] && [[ $out =~ alive$ ]]; then ok "$what"; else not_ok "$what" "$out"; fi
}

printf '?what\r\n' | payload keep
hostile "an unknown reply type: protocol error (08P01)" "SELECT redis_cache_get('k')" "ERROR:  08P01: invalid reply from Redis"
printf '%%1\r\n+a\r\n+b\r\n' | payload keep
hostile "a RESP3 map: protocol error" "SELECT redis_cache_get('k')" "ERROR:  08P01: invalid reply from Redis"
# bmfredis never says HELLO 3: every RESP3 type is refused, whichever
# hiredis parses the bytes (0.14 does not know them, 1.x does)
for r3 in 'a double:,3.14' 'a boolean:#t' 'a set:~1\r\n+a' 'a push:>2\r\n+a\r\n+b' \
	'an attribute:|1\r\n+a\r\n+b\r\n+OK' 'a verbatim string:=7\r\ntxt:abc' 'a big number:(12345678901234567890'; do
	printf "${r3#*:}\r\n" | payload keep
	hostile "a RESP3 ${r3%%:*}: protocol error" "SELECT redis_command('GET', 'k')" "ERROR:  08P01: invalid reply from Redis"
done
# refused by bmfredis' own bounds, not the node's failure: with a long
# backoff, the next call still goes to the node at once
for _ in $(seq 1 9); do printf '*1\r\n'; done | { cat; printf ':1\r\n'; } | payload keep
out=$(qv <<SQL
$S SET bmfredis.retry_backoff_base = 10000; SET bmfredis.retry_backoff_max = 10000;
SELECT redis_command('GET', 'k');
\! printf 'keep\n\$1\r\nx\r\n' >$P
SELECT redis_command('GET', 'k');
SQL
)
like "  a refused reply does not back the node off: the next call is answered" "$out" "08P01: invalid reply from Redis.*nested.*x"
printf ',1.5\r\n' | payload keep
hostile "  as the value of a GET, too" "SELECT redis_cache_get('k')" "ERROR:  08P01: invalid reply from Redis"
printf '*1\r\n#f\r\n' | payload keep
hostile "  and inside an array" "SELECT redis_command('GET', 'k')" "ERROR:  08P01: invalid reply from Redis"
printf '$10\r\nabc' | payload close
hostile "a bulk string cut short, then EOF: connection lost (08006)" "SELECT redis_cache_get('k')" "ERROR:  08006: lost connection to Redis"
printf '$10\r\nabc' | payload stall
hostile "a bulk string cut short, then silence: timeout" "SELECT redis_cache_get('k')" "ERROR:  08006: Redis command timed out"
printf '$99999999999999\r\n' | payload stall
hostile "a declared length of 99 TB: nothing allocated, timeout" "SELECT redis_cache_get('k')" "Redis command timed out"
{ printf '$2000000\r\n'; head -c 2000000 /dev/zero | tr '\0' a; printf '\r\n'; } | payload keep
hostile "a 2 MB string over max_value_size = 1MB: refused" "SET bmfredis.max_value_size = '1MB'; SELECT redis_cache_get('k')" \
	"08P01: invalid reply from Redis.*larger than bmfredis.max_value_size"
{ printf '$8000000\r\n'; head -c 3000000 /dev/zero | tr '\0' a; } | payload stall
hostile "  refused while still arriving (not buffered to the end)" "SET bmfredis.max_value_size = '1MB'; SELECT redis_cache_get('k')" \
	"larger than bmfredis.max_value_size"
for _ in $(seq 1 10000); do printf '*1\r\n'; done | payload keep
hostile "arrays nested 10,000 deep: protocol error" "SELECT redis_command('GET', 'k')" "ERROR:  08P01: invalid reply from Redis"
for _ in $(seq 1 9); do printf '*1\r\n'; done | { cat; printf ':1\r\n'; } | payload keep
hostile "  and 9 deep (hiredis 0.14's limit, kept with 1.x)" "SELECT redis_command('GET', 'k')" "ERROR:  08P01: invalid reply from Redis.*nested"
printf '*2147483647\r\n' | payload stall
hostile "an array of 2^31-1 elements: refused before allocating" "SELECT redis_cache_mget(ARRAY['a'])" "too many elements"
printf '*-5\r\n' | payload keep
hostile "a negative array count other than -1" "SELECT redis_cache_mget(ARRAY['a', 'b'])" "ERROR"
printf '*1\r\n$1\r\na\r\n' | payload keep
hostile "MGET of 3 keys answered with 1 value: protocol error, no read past the array" \
	"SELECT redis_cache_mget(ARRAY['a', 'b', 'c'])" "ERROR:  08P01: unexpected reply from Redis to MGET.*Expected an array of 3 elements, got array of 1 elements"
printf '*-1\r\n' | payload keep
hostile "MGET answered with a nil array: 08P01" "SELECT redis_cache_mget(ARRAY['a', 'b'])" "ERROR:  08P01: unexpected reply from Redis to MGET"
printf '+OK\r\n' | payload keep
hostile "MGET answered with a status: 08P01" "SELECT redis_cache_mget(ARRAY['a', 'b'])" "ERROR:  08P01: unexpected reply from Redis to MGET"
printf '*2\r\n$1\r\na\r\n$1\r\nb\r\n' | payload keep
hostile "GET answered with an array: datatype mismatch (42804)" "SELECT redis_cache_get('k')" "ERROR:  42804: unexpected array reply from Redis"
printf '$3\r\na\0b\r\n' | payload keep
hostile "a NUL byte read as text: 22021" "SELECT redis_cache_get('k')" "ERROR:  22021: Redis value is not valid text"
printf '$4\r\n\xff\xfe\xfd\xfc\r\n' | payload keep
hostile "invalid UTF-8 read as jsonb: refused" "SELECT redis_cache_get_json('k')" "ERROR"
printf '$5\r\n{"a":\r\n' | payload keep
hostile "broken JSON read as jsonb: 22P02" "SELECT redis_cache_get_json('k')" "ERROR:  22P02"
printf ':12x\r\n' | payload keep
hostile "an integer that is not one" "SELECT redis_cache_ttl('k')" "ERROR|alive"
printf '$-1\r\n' | payload keep
hostile "TTL answered with nil: 08P01" "SELECT redis_cache_ttl('k')" "ERROR:  08P01: unexpected reply from Redis to PTTL"
printf '$2\r\nhi\r\n' | payload keep
hostile "INCRBY answered with a string: 08P01" "SELECT redis_cache_incr('k')" "ERROR:  08P01: unexpected reply from Redis to INCRBY.*Expected integer, got bulk string"
{ printf -- '-ERR '; head -c 100000 /dev/zero | tr '\0' E; printf '\r\n'; } | payload keep
hostile "a 100 kB error reply: an ERROR (38000), the message bounded" "SELECT redis_cache_get('k')" "ERROR:  38000"
printf '+OK\r\n+EXTRA\r\n' | payload keep
hostile "a reply nobody asked for after SET: protocol error, connection dropped" \
	"SELECT redis_cache_set('k', 'v')" "ERROR:  08P01: invalid reply from Redis.*sent more than the replies"
printf '*3\r\n:1\r\n' | payload close
hostile "a lock script's reply cut short" "SELECT redis_try_lock('x')" "ERROR:  08006"
printf '*2\r\n$2\r\nzz\r\n:-9\r\n' | payload keep
hostile "a lock script's reply of the wrong shape: 08P01" "SELECT redis_try_lock('x')" "ERROR:  08P01: unexpected reply from Redis to a lock acquisition"
printf ':1\r\n' | payload keep
hostile "INFO answered with an integer" "SELECT redis_info()" "ERROR|alive"
printf '$-1\r\n' | payload keep
hostile "INFO answered with nil: 08P01" "SELECT redis_info()" "ERROR:  08P01: unexpected nil reply from Redis"
printf '*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n*3\r\n$7\r\nmessage\r\n$-1\r\n$-1\r\n' | payload keep
hostile "a pub/sub message with nil channel and payload" "SELECT * FROM redis_listen(ARRAY['ch'], '300ms')" "ERROR|alive"
printf '*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n$1\r\nx\r\n' | payload keep
hostile "redis_command renders legal nesting" "SELECT redis_command('GET', 'k')" '\[\[\[\[\[\["x"\]\]\]\]\]\]'
printf -- '-NOSCRIPT x\r\n' | payload keep
hostile "NOSCRIPT forever (the reload answered NOSCRIPT too): an error, no loop" "SELECT redis_try_lock('x')" "ERROR"
printf 'close\n' >"$P"
hostile "EOF instead of any reply: lost connection" "SELECT redis_cache_get('k')" "ERROR:  08006"
printf '*2\r\n$1\r\n0\r\n*2\r\n:1\r\n*0\r\n' | payload keep
hostile "SCAN with keys that are not strings: an error, not a crash" "SELECT redis_invalidate_pattern('p*')" "ERROR"
printf '*2\r\n:0\r\n*0\r\n' | payload keep
hostile "SCAN with an integer cursor: an error, not a crash" "SELECT redis_invalidate_pattern('p*')" "ERROR"
printf '?\r\n' | payload keep
out=$(q "$S SET bmfredis.on_error = 'warning'; SELECT redis_cache_get('k') IS NULL;")
like "with on_error = warning a hostile reply is a miss and a WARNING" "$out" "WARNING:  invalid reply from Redis.*t$"

# whatever was sent, the server is intact and ordinary work goes on
is "a fresh session works" "$(q 'SELECT 1')" "1"
out=$(q "SELECT redis_cache_set('after', 'x'); SELECT redis_cache_get('after');")
is "and the real Redis is served as before" "$out" "t
x"
refute "no backend crashed" grep -Eq "terminated by signal (4|6|7|8|11)[^0-9]" "$BMF_WORK/pgdata.log"
bmf_stop_pid "$(cat "$BMF_WORK/fakeredis.pid")"	# its children die with it
