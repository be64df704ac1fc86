# near: the near-cache.  Off by default; on, a hot redis_cache_get reaches
# Redis once; a write by another client, acknowledged before a read
# starts, is seen by that read; FLUSHALL, killing either connection, a
# restart, Redis' tracking table evicting, a TTL, this backend's own
# writes and commits each leave no stale value, and a rollback drops
# nothing.  Each case in one session (psql runs redis-cli with \!).
. "$(dirname "$0")/../tap.sh"
tap_db bmf_near
R=$BMF_REDISCTL
q "ALTER DATABASE bmf_near SET bmfredis.key_prefix = 'nr:'" >/dev/null
gets() { $R cli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_get:calls=\([0-9]*\).*/\1/p'; }
# session SQL: the near-cache on, then the lines given
near() { printf 'SET bmfredis.near_cache = on;\n%s\n' "$1" | psql -X -q -A -t -v ON_ERROR_STOP=1 -d bmf_near 2>&1; }

is "off by default" "$(q "SHOW bmfredis.near_cache")" "off"

$R cli SET nr:hot v1 >/dev/null
before=$(gets)
out=$(near "SELECT count(redis_cache_get('hot')) FROM generate_series(1, 1000);")
after=$(gets)
is "1,000 reads of one key in a session" "$out" "1000"
is "  reach Redis twice (a key is kept from its second read)" "$((after - before))" "2"
before=$(gets)
q "SELECT count(redis_cache_get('hot')) FROM generate_series(1, 100)" >/dev/null
is "  and 100 with it off reach it 100 times" "$(( $(gets) - before ))" "100"

out=$(near "SELECT redis_cache_get('hot');
\\! $R cli SET nr:hot v2 >/dev/null
SELECT redis_cache_get('hot');
\\! $R cli DEL nr:hot >/dev/null
SELECT redis_cache_get('hot') IS NULL;
\\! $R cli SET nr:hot v3 >/dev/null
SELECT redis_cache_get('hot');")
is "another client's SET and DEL, acknowledged before the read, are seen by it" "$out" "v1
v2
t
v3"

out=$(near "SELECT redis_cache_get('hot');
\\! $R cli FLUSHALL >/dev/null
SELECT redis_cache_get('hot') IS NULL;")
is "FLUSHALL empties it" "$out" "v3
t"

$R cli SET nr:k a >/dev/null
out=$(near "SELECT redis_cache_get('k');
\\! $R cli CLIENT KILL TYPE pubsub >/dev/null
\\! $R cli SET nr:k b >/dev/null
SELECT redis_cache_get('k');
SELECT redis_cache_get('k');
SELECT count(*) FROM redis_connections() WHERE node LIKE '% (tracking)' AND state = 'tracking';")
is "the invalidation connection killed: the next read goes to Redis, the one after tracks again" "$out" "a
b
b
1"

out=$(near "SELECT redis_cache_get('k');
\\! $R cli CLIENT KILL TYPE normal SKIPME yes >/dev/null 2>&1
\\! $R cli SET nr:k c >/dev/null
SELECT redis_cache_get('k');")
is "the tracked connection killed (with what Redis tracked for it): the same" "$out" "b
c"

out=$(near "SELECT redis_cache_get('k');
\\! $R restart
\\! $R cli SET nr:k d >/dev/null
SELECT redis_cache_get('k');")
is "Redis restarted: the same" "$out" "c
d"

$R cli CONFIG SET tracking-table-max-keys 1 >/dev/null
$R cli MSET nr:t1 x1 nr:t2 x2 >/dev/null
out=$(near "SELECT redis_cache_get('t1'), redis_cache_get('t2');
\\! $R cli SET nr:t1 y1 >/dev/null
SELECT redis_cache_get('t1'), redis_cache_get('t2');")
is "Redis' tracking table holding one key: the key it stopped tracking is not kept stale" "$out" "x1|x2
y1|x2"
$R cli CONFIG SET tracking-table-max-keys 0 >/dev/null

$R cli SET nr:ttl short PX 300 >/dev/null
out=$(near "SELECT redis_cache_get('ttl');
SELECT pg_sleep(0.4);
SELECT redis_cache_get('ttl') IS NULL;")
is "a copy does not outlive the key's TTL" "$out" "short

t"

$R cli SET nr:own o1 >/dev/null
out=$(near "SELECT redis_cache_get('own');
SELECT redis_cache_set('own', 'o2');
SELECT redis_cache_get('own');
BEGIN; SELECT redis_invalidate('own'); COMMIT;
SELECT redis_cache_get('own') IS NULL;")
is "this backend's own SET and committed invalidation are seen at once" "$out" "o1
t
o2

t"

$R cli SET nr:rb r1 >/dev/null
before=$(gets)
out=$(near "SELECT redis_cache_get('rb') AS first \\gset
SELECT redis_cache_get('rb');
BEGIN; SELECT redis_invalidate('rb'); ROLLBACK;
SELECT redis_cache_get('rb');")
is "a rolled-back invalidation drops nothing" "$out" "r1

r1"
is "  (the read after the rollback did not reach Redis)" "$(( $(gets) - before ))" "2"

out=$(near "SELECT redis_cache_get('rb');
SELECT redis_disconnect() >= 1;
\\! $R cli SET nr:rb r2 >/dev/null
SELECT redis_cache_get('rb');")
is "redis_disconnect() drops the copies" "$out" "r1
t
r2"

$R cli MSET nr:m1 a nr:m2 b >/dev/null
before=$(gets); mb=$($R cli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_mget:calls=\([0-9]*\).*/\1/p')
out=$(near "SELECT redis_cache_mget(ARRAY['m1', 'm2', 'm3']);
SELECT redis_cache_get('m1');
SELECT count(redis_cache_mget(ARRAY['m1', 'm2', 'm3'])) FROM generate_series(1, 100);
\\! $R cli SET nr:m2 B >/dev/null
SELECT redis_cache_mget(ARRAY['m1', 'm2', 'm3']);")
ma=$($R cli INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_mget:calls=\([0-9]*\).*/\1/p')
is "redis_cache_mget: hits from memory, a key another client changed read again" "$out" "{a,b,NULL}
a
100
{a,B,NULL}"
is "  in three MGETs for 102 calls (the first reads, the one keeping m2 and m3, the changed key's), one GET (keeping m1)" \
	"$((ma - ${mb:-0})) $(( $(gets) - before ))" "3 1"

tracked() { $R cli INFO stats | tr -d '\r' | sed -n 's/^tracking_total_keys:\([0-9]*\).*/\1/p'; }
$R cli FLUSHALL >/dev/null
q "SELECT redis_cache_mset(array_agg('s' || i), array_agg('v' || i)) FROM generate_series(1, 1000) i" >/dev/null
before=$(gets)
out=$(near "SELECT count(redis_cache_get('s' || i)) FROM generate_series(1, 1000) i;
\\! $R cli INFO stats | tr -d '\\r' | grep '^tracking_total_keys:'
SELECT count(redis_cache_get('s' || i)) FROM generate_series(1, 10) i, generate_series(1, 3) r;
\\! $R cli INFO stats | tr -d '\\r' | grep '^tracking_total_keys:'")
is "1,000 keys read once each: ordinary reads, none tracked by Redis; 10 read again: kept, 10 tracked" "$out" "1000
tracking_total_keys:0
30
tracking_total_keys:10"
n=$(( $(gets) - before ))
check "  (GETs: 1,000, then 10, and one more for each key whose admission slot a later key took: $n)" \
	test "$n" -ge 1010 -a "$n" -le 1020

q "CREATE TABLE pages (id int PRIMARY KEY, title text); INSERT INTO pages VALUES (1, 'one');
SELECT redis_watch('pages', 'page', ARRAY['page:{id}'])" >/dev/null
out=$(near "SELECT redis_cached('page:1', '1 hour', 'SELECT title FROM pages WHERE id = 1');
SELECT redis_cached('page:1', '1 hour', 'SELECT title FROM pages WHERE id = 1') IS NOT NULL AS warm;
\\! $R cli INFO commandstats | tr -d '\\r' | sed -n 's/^cmdstat_get:calls=\\([0-9]*\\).*/\\1/p' >$BMF_WORK/g0
SELECT count(redis_cached('page:1', '1 hour', 'SELECT title FROM pages WHERE id = 1')) FROM generate_series(1, 100);
\\! $R cli INFO commandstats | tr -d '\\r' | sed -n 's/^cmdstat_get:calls=\\([0-9]*\\).*/\\1/p' >$BMF_WORK/g1
\\! psql -X -q -d bmf_near -c \"UPDATE pages SET title = 'uno' WHERE id = 1\"
SELECT redis_cached('page:1', '1 hour', 'SELECT title FROM pages WHERE id = 1');")
is "redis_cached: hits from memory, and another session's UPDATE of the watched row is seen" "$out" '"one"
t
100
"uno"'
is "  (the 100 hits sent no GET)" "$(( $(cat "$BMF_WORK/g1") - $(cat "$BMF_WORK/g0") ))" "0"

# Redis gone: reads fail fast (the node's backoff holds for the tracking
# connection too), and after it restarts (empty) no copy of before is served
$R cli SET nr:gone g >/dev/null
start=$(ms_now)
out=$(near "SET bmfredis.on_error = 'ignore';
SELECT redis_cache_get('gone');
\\! $R stop
SELECT count(redis_cache_get('gone' || g)) FROM generate_series(1, 50) g;
\\! $R start
SELECT pg_sleep(0.3);
SELECT redis_cache_get('gone') IS NULL;")
took=$(( $(ms_now) - start ))
is "with Redis stopped, 50 reads that miss answer NULL; restarted empty, the old copy is not served" "$out" "g
0

t"
check "  quickly ($took ms, connect_timeout is 2 s)" [ "$took" -lt 3000 ]

q "INSERT INTO pages VALUES (2, 'two')" >/dev/null
$R cli SET nr:page:2 '"cached two"' >/dev/null
out=$(near "SELECT redis_cache_get('page:2');
UPDATE pages SET title = 'deux' WHERE id = 2;
SELECT redis_cache_get('page:2') IS NULL;")
is "this backend's own UPDATE of a watched row drops its copy at COMMIT" "$out" '"cached two"
t'
