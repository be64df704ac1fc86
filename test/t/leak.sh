# Many calls in one backend leak no memory (flat RSS) and use one Redis
# connection.  The block of calls runs twice to warm up (a 100,000-row
# scan itself moves RSS the first times), then three more times measured.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_leak
out=$(qs <<'SQL'
SELECT redis_cache_set('k', repeat('v', 100));
SELECT redis_cache_set('j', '{"a": [1, 2, 3]}'::jsonb);
\set rss 'SELECT (regexp_match(pg_read_file(''/proc/self/status''), ''VmRSS:\\s+(\\d+)''))[1]'
\set block 'SELECT count(redis_cache_get(''k'')) FROM generate_series(1, 100000); SELECT count(redis_cache_get_json(''j'')) FROM generate_series(1, 20000); SELECT count(redis_cache_set(''s'' || (i % 100), ''x'', ''1 min'')) FROM generate_series(1, 20000) i; SELECT count(redis_cache_mget(ARRAY[''k'', ''j'', ''nope''])) FROM generate_series(1, 20000); SELECT count(redis_cache_get(''nope'')) FROM generate_series(1, 20000);'
:block
:block
\echo rss0
:rss;
:block
:block
:block
\echo rss1
:rss;
SELECT count(*) FROM regexp_split_to_table(redis_command('CLIENT', 'LIST'), E'\n') AS line
 WHERE line LIKE '%name=bmfredis:bmf_leak:' || pg_backend_pid() || ' %';
SELECT count(*) FROM redis_connections();
SQL
)
rss0=$(grep -A1 '^rss0$' <<<"$out" | tail -1)
rss1=$(grep -A1 '^rss1$' <<<"$out" | tail -1)
grow=$((rss1 - rss0))
echo "# RSS ${rss0} kB after warm-up, ${rss1} kB after 540,000 more calls"
check "RSS flat over 540,000 get/get_json/set/mget calls (grew ${grow} kB)" [ "$grow" -lt 256 ]
is "one Redis connection for the backend in CLIENT LIST" "$(tail -2 <<<"$out" | head -1)" "1"
is "one pool entry" "$(tail -1 <<<"$out")" "1"
