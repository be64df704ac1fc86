# bench/cached.sh: a redis_cached hit against running its query, a
# three-table join on the marketplace example (a shop's best sellers with
# their category: products ⋈ categories ⋈ purchases), in the same run.
# Sourced by bench/run.

cached_setup() {
	psql -X -q -d bench >/dev/null <<'SQL'
CREATE SCHEMA IF NOT EXISTS mp;
SET search_path = mp, public;
\i examples/marketplace.sql
INSERT INTO categories SELECT i, 'category ' || i, NULL FROM generate_series(1, 50) i;
INSERT INTO users SELECT i, 'u' || i || '@example.com', 'user ' || i, 'x' FROM generate_series(1, 20000) i;
INSERT INTO shops SELECT i, i, 'shop ' || i FROM generate_series(1, 1000) i;
INSERT INTO products SELECT i, 1 + i % 1000, 1 + i % 50, 'product ' || i, (i % 100) + 0.99
  FROM generate_series(1, 100000) i;
INSERT INTO purchases SELECT i, 1 + i % 20000, 1 + (i::bigint * 7919) % 100000, 9.99
  FROM generate_series(1, 300000) i;
CREATE INDEX ON products (shop_id);
CREATE INDEX ON purchases (product_id);
ANALYZE;
SQL
}

CACHED_QUERY="SELECT p.id, p.title, c.name AS category, count(pu.id) AS sales
  FROM mp.products p JOIN mp.categories c ON c.id = p.category_id
  LEFT JOIN mp.purchases pu ON pu.product_id = p.id
 WHERE p.shop_id = 42 GROUP BY p.id, p.title, c.name ORDER BY sales DESC, p.id LIMIT 10"

# µs per call (pgbench, one client, latency average) over N calls;
# $2: query | cached | get (the raw GET of the same key: the floor)
cached_once() {
	local n=$1 mode=$2 call
	if [ "$mode" = cached ]; then
		call="SELECT redis_cached('bench:shop:42:best', '1 hour', \$q\$$CACHED_QUERY\$q\$)"
	elif [ "$mode" = get ]; then
		call="SELECT redis_cache_get('bench:shop:42:best')"
	else
		call="SELECT jsonb_agg(t) FROM ($CACHED_QUERY) t"
	fi
	echo "$call;" >"$BMF_WORK/cached-$mode.sql"
	"$(pg_config --bindir)/pgbench" -n -f "$BMF_WORK/cached-$mode.sql" -c 1 -t "$n" bench 2>/dev/null |
		awk '/latency average/ { printf "%.2f\n", $4 * 1000 }'
}

bench_cached() {
	local n=$1 i q c g
	local -a v_q v_c v_g r rg
	cached_setup
	psql -X -q -d bench -c "SELECT redis_cache_del('bench:shop:42:best')" >/dev/null
	cached_once 10 cached >/dev/null		# store it once
	for i in $(seq 1 "$BMF_BENCH_RUNS"); do
		q=$(cached_once "$n" query)
		c=$(cached_once "$n" cached)
		g=$(cached_once "$n" get)
		v_q+=("$q"); v_c+=("$c"); v_g+=("$g"); r+=("$(ratio "$c" "$q")"); rg+=("$(ratio "$c" "$g")")
	done
	record "3-table join run each time (as jsonb)" "$(printf '%s\n' "${v_q[@]}" | median)" "µs/call"
	record "redis_cached hit of the same result" "$(printf '%s\n' "${v_c[@]}" | median)" "µs/call" \
		"3-table join run each time (as jsonb)" "$(printf '%s\n' "${r[@]}" | median)"
	record "redis_cache_get of the same key (the floor)" "$(printf '%s\n' "${v_g[@]}" | median)" "µs/call"
	record "redis_cached hit, against that floor" "$(printf '%s\n' "${v_c[@]}" | median)" "µs/call" \
		"redis_cache_get of the same key" "$(printf '%s\n' "${rg[@]}" | median)"
}
