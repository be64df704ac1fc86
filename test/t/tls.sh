# TLS: verification of the server (CA, host name, expiry, trust), the
# plaintext/TLS mismatches both ways, client certificates, an ACL user
# over TLS, redis:// and rediss:// URLs, large values and pub/sub across
# TLS records, restarts and a frozen server during the handshake.
# The test PKI comes from test/run (bmf_make_certs, $BMF_CERTS).
. "$(dirname "$0")/../tap.sh"
tap_db bmf_tls
C=$BMF_CERTS
R="$BMF_REDISCTL -n tls"

tport=$(bmf_free_port)
bmf_start_redis tls --tls-port "$tport" --tls-cert-file "$C/server.crt" --tls-key-file "$C/server.key" \
	--tls-ca-cert-file "$C/ca.crt" --tls-auth-clients no
pport=$BMF_REDIS_PORT
use_cert() { $R cli CONFIG SET tls-cert-file "$C/$1.crt" tls-key-file "$C/$1.key" >/dev/null; }

# every session: TLS to the TLS port, errors raised, our CA trusted
TLS="SET bmfredis.port = $tport; SET bmfredis.tls = on; SET bmfredis.tls_ca_file = '$C/ca.crt';
SET bmfredis.on_error = 'error'; SET bmfredis.retry_backoff_base = 1; SET bmfredis.retry_backoff_max = 1;"

# --- verification passes: by address and by name
out=$(q "$TLS SELECT redis_cache_set('t', 'over tls'); SELECT redis_cache_get('t');")
is "connects with CA verification to 127.0.0.1 (address in the certificate)" "$out" "t
over tls"
is "the value is in the TLS server" "$($R cli GET bmfredis:t)" "over tls"
out=$(q "$TLS SET bmfredis.host = 'localhost'; SELECT redis_cache_get('t');")
is "connects by host name (localhost) with full verification" "$out" "over tls"

# --- refusals, each with its reason and SQLSTATE 08001
use_cert other
out=$(qv <<<"$TLS SET bmfredis.host = 'localhost'; SELECT redis_cache_get('t');")
like "a certificate for another host name is refused" "$out" "ERROR:  08001: could not establish a TLS connection to Redis"
like "  and the reason is the name" "$out" "refused: hostname mismatch"
out=$(q "$TLS SET bmfredis.host = 'localhost'; SET bmfredis.tls_server_name = 'other.example'; SELECT redis_cache_get('t');")
is "tls_server_name names the certificate to expect" "$out" "over tls"
out=$(q "$TLS SET bmfredis.host = 'localhost'; SET bmfredis.tls_verify = 'ca'; SELECT redis_cache_get('t');")
is "tls_verify = ca checks the chain only" "$out" "over tls"

use_cert expired
out=$(qv <<<"$TLS SELECT redis_cache_get('t');")
like "an expired certificate is refused" "$out" "ERROR:  08001: could not establish a TLS connection to Redis"
like "  and the reason is the expiry" "$out" "refused: certificate has expired"
out=$(q "$TLS SET bmfredis.tls_verify = 'ca'; SELECT redis_cache_get('t');")
like "tls_verify = ca still refuses an expired certificate" "$out" "certificate has expired"

use_cert rogue
out=$(qv <<<"$TLS SELECT redis_cache_get('t');")
like "a certificate from an untrusted CA is refused" "$out" "ERROR:  08001: could not establish a TLS connection to Redis"
like "  and the reason is the issuer" "$out" "refused: unable to get local issuer certificate"
out=$(q "$TLS SET bmfredis.tls_ca_file = ''; SELECT redis_cache_get('t');")
like "the system trust store does not know the test CA either" "$out" "refused: unable to get local issuer certificate"
out=$(q "$TLS SET bmfredis.tls_verify = 'none'; SELECT redis_cache_get('t');")
is "tls_verify = none connects to anyone (documented as unsafe)" "$out" "over tls"
use_cert server

# --- TLS and plaintext mixed up, both ways: clear errors, no fallback
out=$(qv <<<"SET bmfredis.port = $tport; SET bmfredis.on_error = 'error'; SELECT redis_cache_get('t');")
like "a plaintext client on the TLS port gets a connection error" "$out" "ERROR:  08001: could not connect to Redis"
like "  that suggests bmfredis.tls" "$out" "if it is a TLS port, set bmfredis.tls = on"
start=$(ms_now)
out=$(qv <<<"$TLS SET bmfredis.port = $pport; SET bmfredis.connect_timeout = '500ms'; SELECT redis_cache_get('t');")
elapsed=$(( $(ms_now) - start ))
like "TLS to a plaintext port fails, never falls back" "$out" "ERROR:  08001: could not connect to Redis"
like "  saying no TLS answer came" "$out" "no TLS answer came: is it a plaintext port"
check "  within the connect timeout (${elapsed} ms)" [ "$elapsed" -lt 1500 ]
out=$(q "$TLS SET bmfredis.unix_socket = '/tmp/none.sock'; SELECT redis_cache_get('t');")
like "TLS with a Unix socket is refused, not downgraded" "$out" "Redis does not offer TLS on a Unix socket"

# --- session resumption: a reconnect offers the server's ticket (this
# backend's, or one another backend left in shared memory); the server
# then sends no certificate (told by the bytes it sends back, counted by
# test/netproxy in front of the TLS port)
rp=$(tap_netproxy tls_link "$tport")
RS="SET bmfredis.port = $rp; SET bmfredis.tls = on; SET bmfredis.tls_ca_file = '$C/ca.crt'; SET bmfredis.on_error = 'error';"
z="\\! bash -c 'exec 3<>/dev/tcp/127.0.0.1/$(cat "$BMF_WORK/tls_link.ctl"); echo zero >&3; read -r l <&3'"
d="\\! bash -c 'exec 3<>/dev/tcp/127.0.0.1/$(cat "$BMF_WORK/tls_link.ctl"); echo stats >&3; read -r l <&3; echo \"\$l\"' | sed 's/.* down //'"
out=$(qs <<SQL 2>&1
$RS
$z
SELECT redis_cache_get('t');
$d
SELECT redis_disconnect() > 0;
$z
SELECT redis_cache_get('t');
$d
SELECT redis_disconnect() > 0;
SET bmfredis.tls_verify = 'ca';
$z
SELECT redis_cache_get('t');
$d
SQL
)
full=$(sed -n 2p <<<"$out"); resumed=$(sed -n 5p <<<"$out"); other=$(sed -n 8p <<<"$out")
is "TLS session resumption: three connects read the value" "$(grep -c '^over tls$' <<<"$out")" "3"
# (the sizes depend on the TLS library: OpenSSL 3.5's hybrid key share
# adds a kilobyte to every handshake; a certificate is another 1.5 to 2)
check "  the first connect receives the server's certificate (${full} bytes down)" [ "${full:-0}" -gt 1500 ]
check "  a reconnect in the same backend resumes: no certificate (${resumed} bytes down, under half)" \
	[ $(( ${resumed:-99999} * 2 )) -lt "${full:-0}" ]
check "  other TLS settings are another session: the certificate again (${other} bytes down)" \
	[ $(( ${other:-0} * 4 )) -gt $(( ${full:-0} * 3 )) ]
out=$(qs <<SQL 2>&1
$RS
$z
SELECT redis_cache_get('t');
$d
SQL
)
is "  a new backend reads the value" "$(sed -n 1p <<<"$out")" "over tls"
again=$(sed -n 2p <<<"$out")
check "  and resumes the session another backend made (shared memory): no certificate (${again} bytes down)" \
	[ $(( ${again:-99999} * 2 )) -lt "${full:-0}" ]
bmf_stop_pid "$(cat "$BMF_WORK/tls_link.pid")"
rm -f "$BMF_WORK/tls_link.pid"

# --- client certificates
$R cli CONFIG SET tls-auth-clients yes >/dev/null
out=$(qv <<<"$TLS SELECT redis_cache_get('t');")
like "without a client certificate the server refuses" "$out" "ERROR:  08001: could not connect to Redis"
like "  and the error says a certificate is required" "$out" "requires a client certificate"
out=$(q "$TLS SET bmfredis.tls_cert_file = '$C/client.crt'; SET bmfredis.tls_key_file = '$C/client.key';
SELECT redis_cache_get('t');")
is "with a client certificate (tls-auth-clients yes) it works" "$out" "over tls"
cat "$C/client.crt" "$C/client.key" >"$C/client-both.pem"
out=$(q "$TLS SET bmfredis.tls_cert_file = '$C/client-both.pem'; SELECT redis_cache_get('t');")
is "the key may live in the certificate file" "$out" "over tls"
out=$(qv <<<"$TLS SET bmfredis.tls_cert_file = '$C/missing.crt'; SELECT redis_cache_get('t');")
like "a missing certificate file is a configuration error (F0000)" "$out" "ERROR:  F0000: could not set up TLS for Redis"
like "  naming the file" "$out" "missing.crt"
out=$(q "$TLS SET bmfredis.tls_cert_file = '$C/client.crt'; SET bmfredis.tls_key_file = '$C/server.key'; SELECT redis_cache_get('t');")
like "a key that does not match the certificate is refused" "$out" "Could not load the private key"
$R cli CONFIG SET tls-auth-clients no >/dev/null

# --- an ACL user confined to the prefix, over TLS
$R cli ACL SETUSER app on '>app-pw' '~app:*' '&app:*' '+@all' '-@dangerous' '+client|setname' >/dev/null
out=$(q "$TLS SET bmfredis.username = 'app'; SET bmfredis.password = 'app-pw'; SET bmfredis.key_prefix = 'app:';
SELECT redis_cache_set('x', 'acl over tls'); SELECT redis_cache_get('x');")
is "an ACL user works inside its prefix over TLS" "$out" "t
acl over tls"
out=$(qv <<<"$TLS SET bmfredis.username = 'app'; SET bmfredis.password = 'app-pw'; SET bmfredis.key_prefix = 'other:';
SELECT redis_cache_get('x');")
like "outside it Redis says NOPERM: SQLSTATE 42501" "$out" "ERROR:  42501: permission denied by Redis ACL"
out=$(qv <<<"$TLS SET bmfredis.username = 'app'; SET bmfredis.password = 'app-pw'; SET bmfredis.key_prefix = 'app:';
SELECT redis_publish('elsewhere', 'm', true);")
like "publishing outside its channels: NOPERM too" "$out" "ERROR:  42501: permission denied by Redis ACL"
out=$(qv <<<"$TLS SET bmfredis.username = 'app'; SET bmfredis.password = 'wrong'; SELECT redis_cache_get('x');")
like "a wrong password over TLS: 28P01" "$out" "ERROR:  28P01: Redis refused the credentials of bmfredis"

# --- URLs
out=$(q "SET bmfredis.url = 'rediss://app:app-pw@127.0.0.1:$tport/0'; SET bmfredis.tls_ca_file = '$C/ca.crt';
SET bmfredis.key_prefix = 'app:'; SET bmfredis.on_error = 'error'; SELECT redis_cache_get('x');")
is "rediss://user:password@host:port/db connects over TLS as that user" "$out" "acl over tls"
$R cli ACL SETUSER odd on '>p@ss:w/rd' '~*' '&*' '+@all' >/dev/null
out=$(q "SET bmfredis.url = 'rediss://odd:p%40ss%3Aw%2Frd@localhost:$tport/4'; SET bmfredis.tls_ca_file = '$C/ca.crt';
SET bmfredis.on_error = 'error'; SELECT redis_cache_set('in4', 'four'); SELECT db FROM redis_connections();")
is "a percent-encoded password and a database number in the URL" "$out" "t
4"
is "  the value went to database 4" "$($R cli -n 4 GET bmfredis:in4)" "four"
out=$(q "SET bmfredis.url = 'redis://127.0.0.1:$pport'; SET bmfredis.tls = on; SET bmfredis.on_error = 'error';
SELECT redis_cache_get('t');")
is "redis:// means plaintext and wins over bmfredis.tls" "$out" "over tls"
out=$(q "SET bmfredis.url = 'rediss://127.0.0.1:$pport'; SET bmfredis.tls_ca_file = '$C/ca.crt';
SET bmfredis.connect_timeout = '300ms'; SET bmfredis.on_error = 'error'; SELECT redis_cache_get('t');")
like "rediss:// to a plaintext port fails rather than falling back" "$out" "could not connect to Redis"
out=$(qv <<<"SET bmfredis.url = 'rediss://default:Sup3rS3cret@127.0.0.1:99999';")
like "a bad URL is refused with SQLSTATE 22023" "$out" "ERROR:  22023: invalid value for parameter \"bmfredis.url\""
like "  quoting the URL with the password masked" "$out" "rediss://default:\*\*\*\*\*\*\*\*@127.0.0.1:99999"
like "  and saying what is wrong" "$out" "The port must be a number from 1 to 65535"
for bad in 'http://h:1' 'rediss://' 'redis://h:1/x' 'redis://h:1?ssl=true' 'redis://[::1' 'redis://u:%zz@h' 'redis://h h:1'; do
	out=$(q "SET bmfredis.url = '$bad'")
	like "URL '$bad' is refused" "$out" "ERROR:  invalid value for parameter \"bmfredis.url\""
done
refute "the password of a refused URL is not in the log (except PostgreSQL's STATEMENT line)" \
	sh -c "grep -v 'STATEMENT:' '$BMF_WORK/pgdata.log' | grep -q Sup3rS3cret"

# --- large values and pipelines span many TLS records
out=$(q "$TLS SELECT redis_cache_set('big', repeat('x', 3000000)); SELECT length(redis_cache_get('big'));")
is "a 3 MB value goes and comes back over TLS" "$out" "t
3000000"
out=$(q "$TLS SELECT redis_cache_mset(array_agg('m' || i), array_agg(repeat('v', 1000)), '1 minute')
FROM generate_series(1, 2000) i;
SELECT count(*) FROM unnest(redis_cache_mget(ARRAY(SELECT 'm' || i FROM generate_series(1, 2000) i))) v WHERE length(v) = 1000;")
is "2,000 keys of 1 kB in one MSET and one MGET over TLS" "$out" "t
2000"

# --- pub/sub: several messages arriving in one read, decrypted ahead
( sleep 0.5; for i in 1 2 3 4 5; do printf 'PUBLISH tlsch m%s\r\n' "$i"; done | redis-cli -p "$pport" >/dev/null ) &
publisher=$!
out=$(q "$TLS SELECT string_agg(message, ',' ORDER BY message) FROM redis_listen(ARRAY['tlsch'], '5 seconds', 5);")
wait $publisher
is "redis_listen receives five messages sent back to back over TLS" "$out" "m1,m2,m3,m4,m5"

# --- a pooled TLS connection survives idleness, and a restart is survived
out=$(q "$TLS SET bmfredis.idle_check = 0; SELECT redis_cache_get('t'); SELECT pg_sleep(0.3);
SELECT redis_publish('c', 'once', true); SELECT redis_try_lock('tls-lock') IS NOT NULL;")
is "non-idempotent commands on a pooled TLS connection (peer check sees only TLS records)" "$out" "over tls

0
t"
out=$(q "$TLS SELECT redis_cache_get('t');" && $R restart && q "$TLS SELECT redis_cache_set('t', 'after restart'); SELECT redis_cache_get('t');")
like "after a Redis restart the next call reconnects over TLS" "$out" "after restart$"
out=$(q "$TLS SELECT redis_cache_get('t'); SELECT pg_sleep(0.2);" >/dev/null; $R restart;
	q "$TLS SET bmfredis.on_error = 'warning'; SELECT redis_cache_get('t') IS NULL;")
is "a dropped TLS connection is a miss, not a crash (on_error = warning)" "$(echo "$out" | tail -1)" "t"

# --- a server frozen during the handshake: bounded by connect_timeout, cancellable
$R pause
start=$(ms_now)
out=$(q "$TLS SET bmfredis.connect_timeout = '400ms'; SELECT redis_cache_get('t');")
elapsed=$(( $(ms_now) - start ))
like "a frozen server times out the TLS handshake" "$out" "could not connect to Redis"
check "  within the connect timeout (${elapsed} ms)" [ "$elapsed" -lt 1400 ]
start=$(ms_now)
out=$(q "$TLS SET bmfredis.connect_timeout = '60s'; SET statement_timeout = '300ms'; SELECT redis_cache_get('t');")
elapsed=$(( $(ms_now) - start ))
like "statement_timeout interrupts a TLS handshake" "$out" "canceling statement due to statement timeout"
check "  in time (${elapsed} ms)" [ "$elapsed" -lt 1300 ]
$R resume
out=$(q "$TLS SELECT redis_cache_set('t', 'back'); SELECT redis_cache_get('t');")
is "and the next session connects normally" "$out" "t
back"
refute "no backend crashed (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL)" grep -Eq "terminated by signal (4|6|7|8|11)[^0-9]" "$BMF_WORK/pgdata.log"
