# Redis frozen (SIGSTOP) while 1,000 transactions commit changes to a
# watched table: every COMMIT succeeds, the invalidations wait in the
# retry queue, and once Redis answers not one cached value disagrees with
# its table (checked key by key), whoever reads first.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_outage
R=$BMF_REDISCTL
psql -X -q -d postgres -c "ALTER DATABASE bmf_outage SET bmfredis.key_prefix = 'out:'" \
	-c "ALTER DATABASE bmf_outage SET bmfredis.flush_timeout = '300ms'" \
	-c "ALTER DATABASE bmf_outage SET bmfredis.command_timeout = '300ms'" \
	-c "ALTER DATABASE bmf_outage SET bmfredis.connect_timeout = '300ms'" >/dev/null
# watched_table TABLE ENTITY ROWS: ROWS rows (id, price 100), watched with
# the key <ENTITY>:{id}, every row cached
watched_table() {
	qs >/dev/null <<SQL
CREATE TABLE $1 (id int PRIMARY KEY, price int NOT NULL);
INSERT INTO $1 SELECT i, 100 FROM generate_series(1, $3) i;
SELECT redis_watch('$1', '$2', ARRAY['$2:{id}']);
SELECT count(redis_cache_set('$2:' || id, price::text)) FROM $1;
SQL
}
watched_table products product 200
is "every product is cached before the outage" "$($R cli EVAL "return #redis.call('KEYS', 'out:product:*')" 0)" "200"

cat >"$BMF_WORK/outage.pgbench" <<'EOF2'
\set id random(1, 200)
BEGIN;
UPDATE products SET price = price + 1 WHERE id = :id;
SELECT redis_cache_get('product:' || :id);
END;
EOF2
$R pause
start=$(ms_now)
out=$(PGOPTIONS='-c client_min_messages=error' "$(pg_config --bindir)/pgbench" -n -f "$BMF_WORK/outage.pgbench" -c 4 -j 2 -t 250 bmf_outage 2>&1)
elapsed=$(( $(ms_now) - start ))
like "1,000 transactions committed while Redis was frozen (${elapsed} ms)" "$out" "number of transactions actually processed: 1000/1000"
like "none of them failed" "$out" "number of failed transactions: 0"
pending=$(q "SELECT retry_pending FROM redis_health()")
check "the invalidations wait in the retry queue ($pending entries)" [ "$pending" -gt 0 ]
is "the database changed 1,000 times" "$(q "SELECT sum(price) - 200 * 100 FROM products")" "1000"

# the first reader after Redis answers again drains the queue before it
# reads, so it cannot see a value the outage left behind
$R resume
out=$(q "SELECT count(*) FILTER (WHERE c IS NOT NULL AND c <> price::text) AS stale,
                count(*) FILTER (WHERE c IS NULL) AS invalidated
           FROM (SELECT p.price, redis_cache_get('product:' || p.id) AS c FROM products p) s")
stale=${out%%|*}
is "no stale value is read right after Redis comes back" "$stale" "0"
check "the changed products were invalidated (${out#*|} of 200)" [ "${out#*|}" -gt 0 ]
is "the retry queue is empty" "$(q "SELECT retry_pending + retry_namespaces FROM redis_health()")" "0"
check "  and the server log says the outage's backlog is sent" \
	grep -q 'LOG:  bmfredis: everything database "bmf_outage" had waiting for Redis is sent' "$BMF_WORK/pgdata.log"
n=$($R cli EVAL "local n = 0 for _, k in ipairs(redis.call('KEYS', 'out:product:*')) do n = n + 1 end return n" 0)
echo "# $n product keys left in Redis"

# the background worker drains on its own, with no bmfredis reader to
# help: watched from outside, as the application's services see Redis
stale_from_outside() {
	local ids prices cached n=0 i
	ids=$(psql -X -At -d bmf_outage -c "SELECT string_agg('out:product:' || id, ' ' ORDER BY id) FROM products")
	prices=$(psql -X -At -d bmf_outage -c "SELECT price FROM products ORDER BY id")
	# shellcheck disable=SC2086
	cached=$(redis-cli -p "$BMF_REDIS_PORT" MGET $ids)
	paste <(echo "$prices") <(echo "$cached") | while IFS=$'\t' read -r p c; do
		[ -n "$c" ] && [ "$c" != "$p" ] && echo stale
	done | wc -l
}
q "SELECT count(redis_cache_set('product:' || id, price::text)) FROM products" >/dev/null
$R pause
"$(pg_config --bindir)/pgbench" -n -f "$BMF_WORK/outage.pgbench" -c 2 -t 100 bmf_outage >/dev/null 2>&1
waiting=$(psql -X -At -d bmf_outage -c "SELECT retry_pending FROM redis_health()" 2>/dev/null)
$R resume
# the worker's backoff may hold it up to bmfredis.retry_backoff_max (10 s)
for i in $(seq 1 75); do
	n=$(stale_from_outside)
	[ "$n" = 0 ] && break
	sleep 0.2
done
check "invalidations were waiting when Redis came back ($waiting)" [ "${waiting:-0}" -gt 0 ]
is "the worker removed every stale value by itself" "$n" "0"

# A bulk transaction streams its keys (UNLINKs inside MULTI while it
# runs); Redis frozen halfway through: the rest of the UPDATE does not
# wait for it, COMMIT succeeds, and the keys reach Redis once it answers.
watched_table bulk bulk 20000
out=$(psql -X -q -At -d bmf_outage 2>&1 <<SQL
BEGIN;
UPDATE bulk SET price = price + 1 WHERE id <= 10000;
SELECT 'stream ' || state FROM redis_connections() WHERE node LIKE '% (stream)';
\! $R pause
SELECT clock_timestamp() AS t0 \gset
UPDATE bulk SET price = price + 1 WHERE id > 10000;
SELECT 'update took ' || round(extract(epoch FROM clock_timestamp() - :'t0') * 1000) || ' ms';
COMMIT;
SQL
)
like "a bulk transaction was streaming when Redis froze" "$out" "stream streaming"
like "COMMIT succeeds, its keys queued for retry" "$out" "queued for retry"
ms=$(sed -n 's/^update took \([0-9]*\) ms$/\1/p' <<<"$out")
# a stream write waits 10 ms at most, then the stream is dropped
check "the second UPDATE did not wait for Redis (${ms} ms)" [ "${ms:-99999}" -lt 2000 ]
$R resume
for i in $(seq 1 75); do
	left=$($R cli EVAL "return #redis.call('KEYS', 'out:bulk:*')" 0)
	[ "$left" = 0 ] && break
	sleep 0.2
done
is "every changed row's key is gone once Redis answers" "$left" "0"
