# readme: the README's quick start and usage examples, run as a reader
# would: every SQL block from "## Quick start" to "## Documentation", in
# order, as written, in psql at the root of the repository, in a database
# named marketplace.  Afterwards nothing the examples cached can go stale:
# every column of every row value they cached under a watched key is one
# whose UPDATE invalidates it, and every key and tag the product rules name
# is still invalidated by a change (a later example did not drop them).
. "$(dirname "$0")/../tap.sh"
R=$BMF_REDISCTL
cd "$BMF_ROOT" || exit 1
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS marketplace" -c "CREATE DATABASE marketplace" >/dev/null 2>&1
BMF_DB=marketplace
trap 'kill $mon 2>/dev/null; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS marketplace" >/dev/null 2>&1' EXIT

# the blocks, in order
awk '/^## Quick start/ { on = 1 } /^## Documentation/ { on = 0 }
	on && /^```sql/ { inb = 1; n++; print "\\echo -- README block " n; next }
	inb && /^```/ { inb = 0; next }
	inb { print }' README.md >"$BMF_WORK/readme.sql"
blocks=$(grep -c '^\\echo -- README block' "$BMF_WORK/readme.sql")
# the README is the front page: every link of it and of the manual in
# docs/ leads to a file that exists and a heading that is there
broken=$(perl "$BMF_ROOT/test/doclinks.pl" README.md docs/*.md CHANGELOG.md)
is "every relative link in the README, docs/ and the CHANGELOG resolves (file and heading)" "$broken" ""
check "  and the README stays a front page: at most 40 kB ($(wc -c <README.md) bytes)" [ "$(wc -c <README.md)" -le 40960 ]
check "the README has SQL examples to run ($blocks blocks)" [ "$blocks" -ge 6 ]

# every SET the examples send, as Redis sees it
redis-cli -p "$BMF_REDIS_PORT" MONITOR >"$BMF_WORK/monitor.out" 2>&1 &
mon=$!
sleep 0.2
out=$(psql -X -v ON_ERROR_STOP=1 -d marketplace -f "$BMF_WORK/readme.sql" 2>&1)
rc=$?
sleep 0.2
kill $mon 2>/dev/null
is "every block runs, in order, as written" "$rc" "0"
[ "$rc" = 0 ] || echo "$out" | tail -20 | sed 's/^/#   /'
refute "  with no WARNING" grep -q 'WARNING' <<<"$out"
prefix=$(q "SHOW bmfredis.key_prefix")
is "the quick start's prefix holds in new sessions (ALTER DATABASE ... SET)" "$prefix" "bmf001:prod:"
like "  and in the session that set it (SET): its values are under it" \
	"$(redis-cli -p "$BMF_REDIS_PORT" --scan --pattern 'bmf001:prod:*' | sort | tr '\n' ' ')" "bmf001:prod:views:product:42"

# the row values the examples cached under a watched key: each of their
# columns must be one whose UPDATE invalidates the key
redis-cli -p "$BMF_REDIS_PORT" SET "${prefix}shop:8" x >/dev/null
q "INSERT INTO shops VALUES (8, 7, 'Another shop') ON CONFLICT DO NOTHING;
   INSERT INTO categories VALUES (2, 'Music', NULL) ON CONFLICT DO NOTHING" >/dev/null
value=$(sed -n 's/.*"SET" "bmf001:prod:product:42" "\(.*\)" "PX" ".*/\1/p' "$BMF_WORK/monitor.out" | tail -1 | sed 's/\\"/"/g')
check "the examples cache a product under product:{id}" [ -n "$value" ]
cols=$(psql -X -A -t -d marketplace -v v="$value" <<<"SELECT string_agg(k, ' ' ORDER BY k) FROM jsonb_object_keys(:'v'::jsonb) k")
stale=""
for c in $cols; do
	case $c in
	id) set_expr="id = 4200" back="id = 42" where="4200" ;;
	title) set_expr="title = title || '!'" back="" where="42" ;;
	price) set_expr="price = price + 1" back="" where="42" ;;
	shop_id) set_expr="shop_id = 8" back="shop_id = 7" where="42" ;;
	category_id) set_expr="category_id = 2" back="category_id = 1" where="42" ;;
	*) set_expr="$c = $c" back="" where="42" ;;	# whatever it is, a change must count
	esac
	redis-cli -p "$BMF_REDIS_PORT" SET "${prefix}product:42" "$value" >/dev/null
	q "UPDATE products SET $set_expr WHERE id = 42" >/dev/null
	[ "$(redis-cli -p "$BMF_REDIS_PORT" EXISTS "${prefix}product:42")" = 0 ] || stale="$stale $c"
	[ -n "$back" ] && q "UPDATE products SET $back WHERE id = $where" >/dev/null
done
is "an UPDATE of each column of the cached product ($cols) invalidates it" "$stale" ""
# the column the examples update but do not cache: nothing to invalidate,
# and nothing cached is made of it
redis-cli -p "$BMF_REDIS_PORT" SET "${prefix}product:42" "$value" >/dev/null
q "UPDATE products SET downloads = downloads + 1 WHERE id = 42" >/dev/null
is "  (a downloads counter, which it does not cache, leaves it: nothing in it changed)" \
	"$(redis-cli -p "$BMF_REDIS_PORT" EXISTS "${prefix}product:42")" "1"

# every key and tag of the product rules is still invalidated
keys="product:42 shop:7:products category:1:products"
for k in $keys; do redis-cli -p "$BMF_REDIS_PORT" SET "$prefix$k" cached >/dev/null; done
q "SELECT redis_cache_set('list:all', 'cached', NULL, ARRAY['products']), redis_cache_set('shop:7:dashboard', 'cached', NULL, ARRAY['shop:7'])" >/dev/null
q "UPDATE products SET price = price + 1 WHERE id = 42" >/dev/null
left=""
for k in $keys list:all shop:7:dashboard; do
	[ "$(redis-cli -p "$BMF_REDIS_PORT" EXISTS "$prefix$k")" = 0 ] || left="$left $k"
done
is "after every example, an UPDATE still invalidates each key and tag the product rule names" "$left" ""
is "  and the events rule added beside it, not instead" \
	"$(q "SELECT string_agg(name, ' ' ORDER BY name) FROM bmfredis.cache_rules WHERE entity = 'product'")" "default events"
