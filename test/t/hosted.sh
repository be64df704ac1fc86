# hosted: a Redis that refuses what hosted plans often refuse (CONFIG,
# CLIENT TRACKING, DEBUG, MONITOR) to the user bmfredis logs in as.
# Everything but the near-cache works as usual; with near_cache on, reads
# go to Redis each time (so a change made behind bmfredis' back is seen at
# once), the refusal is logged once and CLIENT TRACKING is not asked again
# on every read.
. "$(dirname "$0")/../tap.sh"
mport=$BMF_REDIS_PORT	# the suite's own Redis, which allows tracking
bmf_start_redis hosted
hport=$BMF_REDIS_PORT
trap 'bmf_stop_pid "$(cat "$BMF_WORK/hosted.pid")" TERM; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_hosted WITH (FORCE)" >/dev/null 2>&1' EXIT
rc() { redis-cli -p "$hport" --user root --pass root-Pw --no-auth-warning "$@"; }
redis-cli -p "$hport" ACL SETUSER root on '>root-Pw' '~*' '&*' '+@all' >/dev/null
redis-cli -p "$hport" ACL SETUSER app on '>app-Pw' '~*' '&*' '+@all' '-config' '-client|tracking' '-debug' '-monitor' >/dev/null
redis-cli -p "$hport" ACL SETUSER default off >/dev/null
pf=$BMF_WORK/hosted.pass; echo app-Pw >"$pf"; chown "$BMF_USER" "$pf"; chmod 600 "$pf"
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS bmf_hosted" -c "CREATE DATABASE bmf_hosted" \
	-c "ALTER DATABASE bmf_hosted SET bmfredis.key_prefix = 'h:'" \
	-c "ALTER DATABASE bmf_hosted SET bmfredis.port = $hport" \
	-c "ALTER DATABASE bmf_hosted SET bmfredis.username = 'app'" \
	-c "ALTER DATABASE bmf_hosted SET bmfredis.password_file = '$pf'" >/dev/null
BMF_DB=bmf_hosted
q "CREATE EXTENSION bmfredis;
CREATE TABLE products (id int PRIMARY KEY, title text);
INSERT INTO products VALUES (1, 'one');
SELECT redis_watch('products', 'product', ARRAY['product:{id}']);" >/dev/null
like "the user is refused CONFIG and CLIENT TRACKING" "$(redis-cli -p "$hport" --user app --pass app-Pw --no-auth-warning CONFIG GET maxmemory 2>&1)" "NOPERM"

out=$(q "SELECT redis_cache_set('product:1', 'one', redis_ttl('short'), ARRAY['shop:1']);
SELECT redis_cache_get('product:1');
SELECT healthy, status FROM redis_health();
SELECT count(*) > 10 FROM redis_info();
SELECT redis_try_lock('h1') IS NOT NULL;
SELECT redis_publish('ch', 'm', immediate => true) >= 0;" | tr '\n' ' ')
is "caching, health, INFO, locks and publish work without CONFIG" "$out" "t one t|connected t t t "

mark=$(wc -l <"$BMF_WORK/pgdata.log")
out=$(BMF_HOSTED_PORT=$hport qs <<'SQL'
SET bmfredis.near_cache = on;
SELECT redis_cache_set('product:1', 'one');
SELECT redis_cache_get('product:1');
\! redis-cli -p "$BMF_HOSTED_PORT" --user root --pass root-Pw --no-auth-warning SET h:product:1 changed >/dev/null
SELECT redis_cache_get('product:1');
SELECT count(redis_cache_get('product:1')) FROM generate_series(1, 50);
UPDATE products SET title = 'uno' WHERE id = 1;
SELECT redis_cache_get('product:1') IS NULL;
SQL
)
is "near_cache on: reads work, and a change behind bmfredis' back is seen at once (no stale memory copy)" \
	"$(echo "$out" | tr '\n' ' ')" "t one changed 50 t "
tracked=$(rc INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_client|tracking:.*rejected_calls=\([0-9]*\).*/\1/p')
like "  CLIENT TRACKING was asked once in that session, not on each of its 53 reads" "${tracked:-0}" "^[12]$"
like "  the refusal is logged, once, with what it means" \
	"$(tail -n +"$((mark + 1))" "$BMF_WORK/pgdata.log" | grep -c 'near-cache is off for Redis node') $(tail -n +"$((mark + 1))" "$BMF_WORK/pgdata.log" | grep -m1 -A2 'near-cache is off' | tr '\n' ' ')" \
	"^1 .*refused client-side caching.*HINT:  Reads of its keys go to Redis each time"

# a user with no channel rights (Redis 7's default for a new user): the
# near-cache's SUBSCRIBE is refused, which is a refusal too, not a node
# down: reads go on, and nothing backs off
rc ACL SETUSER app2 on '>app2-Pw' '~*' resetchannels '+@all' >/dev/null
mark=$(wc -l <"$BMF_WORK/pgdata.log")
pf2=$BMF_WORK/hosted2.pass; echo app2-Pw >"$pf2"; chown "$BMF_USER" "$pf2"; chmod 600 "$pf2"
out=$(qs <<SQL
SET bmfredis.username = 'app2';
SET bmfredis.password_file = '$pf2';
SET bmfredis.near_cache = on;
SET bmfredis.retry_backoff_base = 10000;
SELECT redis_cache_set('product:2', 'two');
SELECT count(redis_cache_get('product:2')) FROM generate_series(1, 20);
SELECT sum(failures), count(*) FILTER (WHERE state = 'down') FROM redis_connections();
SQL
)
is "a user without channels (SUBSCRIBE refused): near-cache reads still work, the node is not backed off" \
	"$(echo "$out" | tr '\n' ' ')" "t 20 0|0 "
like "  and the log says why the near-cache is off" "$(tail -n +"$((mark + 1))" "$BMF_WORK/pgdata.log" | grep 'near-cache is off for Redis node' -A1 | tr '\n' ' ')" \
	"SUBSCRIBE __redis__:invalidate answered NOPERM"

# a refusal is the node's own: in the same session, another Redis (the
# suite's, which allows tracking) gets its near-cache
before=$(redis-cli -p "$mport" INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_client|tracking:calls=\([0-9]*\).*/\1/p')
out=$(qs <<SQL
SET bmfredis.near_cache = on;
SELECT count(redis_cache_get('product:1')) FROM generate_series(1, 3);
SET bmfredis.username = '';
SET bmfredis.password_file = '';
SET bmfredis.port = $mport;
SELECT redis_cache_set('hosted:x', 'x');
SELECT count(redis_cache_get('hosted:x')) FROM generate_series(1, 5);
SELECT value FROM redis_stats WHERE name = 'near_cache_hits';
SQL
)
after=$(redis-cli -p "$mport" INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_client|tracking:calls=\([0-9]*\).*/\1/p')
is "  then a Redis that allows tracking, in the same session, gets it (CLIENT TRACKING sent to it)" "$(( ${after:-0} - ${before:-0} ))" "1"
like "  and its reads are near-cache hits" "$(echo "$out" | tail -1)" "^[1-9][0-9]*$"
