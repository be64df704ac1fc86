# Redis Cluster: three masters and three replicas on loopback, made by
# redis-cli --cluster create; the whole server is pointed at it.  Keys,
# multi-key commands, tags, patterns, triggers, redis_cached, locks and
# pub/sub work across the masters; MOVED and ASK are followed; the cache,
# invalidation, trigger, pub/sub and lock suites pass; a slot range is
# resharded and then a master is killed while pgbench reads and updates a
# watched table, and afterwards no cached value disagrees with its table.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_cluster
PGBENCH="$(pg_config --bindir)/pgbench"

bmf_start_cluster 3 1
disown -a	# they are stopped by PID; no job-control noise when one is killed
ports=("${BMF_CLUSTER_PORTS[@]}")
ccli() { redis-cli -c -p "${ports[0]}" "$@"; }
role() { redis-cli -p "$1" ROLE 2>/dev/null | head -1; }
masters() {  # the ports of the current masters
	local p
	for p in "${ports[@]}"; do [ "$(role "$p")" = master ] && echo "$p"; done
}
is "three masters and three replicas" "$(masters | wc -l)" "3"

trap 'server_reset bmfredis.cluster bmfredis.port bmfredis.cluster_nodes; psql -X -q -d postgres -c "ALTER DATABASE postgres RESET bmfredis.subscribe" >/dev/null; bmf_stop_cluster c' EXIT
server_set bmfredis.cluster=on "bmfredis.port=${ports[0]}" \
	"bmfredis.cluster_nodes=127.0.0.1:${ports[1]}, 127.0.0.1:${ports[2]}"

out=$(qv <<<"SET bmfredis.cluster_nodes = 'nohost'")
like "a malformed seed list is refused" "$out" "invalid value for parameter \"bmfredis.cluster_nodes\""

out=$(qv <<<"SET bmfredis.on_error = 'error'; SET bmfredis.db = 2; SELECT redis_cache_get('x')")
like "bmfredis.db other than 0: a clear error" "$out" "ERROR:  22023: Redis Cluster has only database 0"
out=$(qv <<<"SET bmfredis.on_error = 'error'; SET bmfredis.key_prefix = 'app{x:'; SELECT redis_cache_get('x')")
like "a prefix whose { opens no hash tag: a clear error" "$out" "ERROR:  22023: bmfredis.key_prefix cannot be used with Redis Cluster"
out=$(qv <<<"SET bmfredis.on_error = 'error'; SET bmfredis.sentinel_master = 'm'; SELECT redis_cache_get('x')")
like "Sentinel and Cluster at once: a clear error" "$out" "cannot both be set"
out=$(qv <<<"SET bmfredis.on_error = 'error'; SET bmfredis.port = $BMF_REDIS_PORT; SET bmfredis.cluster_nodes = ''; SELECT redis_cache_get('x')")
like "a seed that is not a cluster node: a clear error" "$out" "ERROR:  0A000: Redis Cluster is not enabled on the Redis server"
out=$(qs <<'EOF'
SET bmfredis.key_prefix = '{app}:';
SELECT redis_cache_set('one', '1', NULL, ARRAY['t']);
SELECT redis_cached('two', '1 hour', 'SELECT 2', ARRAY['t']);
SELECT redis_invalidate_tag('t');
SELECT redis_cache_get('one') IS NULL, redis_cache_get('two') IS NULL;
EOF
)
is "a prefix holding a whole {hash tag}: tags and redis_cached work" "$(tail -1 <<<"$out")" "t|t"
is "  and every key it made is in that tag's slot" \
	"$(for p in $(masters); do redis-cli -p "$p" --scan --pattern '{app}:*'; done | while read -r k; do ccli CLUSTER KEYSLOT "$k"; done | sort -u)" \
	"$(ccli CLUSTER KEYSLOT '{app}')"

# keys land in their own slots, on every master, in the plain layout
q "SELECT redis_cache_set('k:' || i, 'v' || i) FROM generate_series(1, 300) i" >/dev/null
sum=0; every=1
for p in $(masters); do
	n=$(redis-cli -p "$p" --scan --pattern 'bmfredis:k:*' | wc -l); sum=$((sum + n)); [ "$n" -gt 0 ] || every=0
done
is "300 keys set, spread over the masters" "$sum $every" "300 1"
is "  each where a cluster client finds it" "$(ccli GET bmfredis:k:123)" "v123"
is "redis_health reports the cluster" "$(q "SELECT healthy, status, node FROM redis_health()")" \
	"t|connected, cluster_state:ok|cluster:127.0.0.1:${ports[0]} (3 masters)"

# endpoints as the cluster announces them (cluster-preferred-endpoint-type)
# and the map from CLUSTER SHARDS, or CLUSTER SLOTS where SHARDS is refused
every_node() { local p; for p in "${ports[@]}"; do redis-cli -p "$p" "$@" >/dev/null; done; }
cmdcalls() {  # calls of a command on every node since CONFIG RESETSTAT
	local p
	for p in "${ports[@]}"; do redis-cli -p "$p" INFO commandstats; done |
		tr -d '\r' | awk -F '[:=,]' -v c="cmdstat_$1" '$1 == c { n += $3 } END { print n + 0 }'
}
endpoints_settle() {  # until every node sees endpoint $1 for every node
	local p n
	for _ in $(seq 1 100); do
		n=0
		for p in "${ports[@]}"; do
			n=$((n + $(redis-cli -p "$p" CLUSTER SHARDS | tr -d '\r' | grep -A1 -x endpoint | grep -c -x -- "$1")))
		done
		[ "$n" -eq $((${#ports[@]} * ${#ports[@]})) ] && return 0
		sleep 0.1
	done
	return 1
}
every_node CONFIG RESETSTAT
out=$(q "SELECT count(redis_cache_get('k:' || i)) FROM generate_series(1, 50) i")
is "the slot map comes from CLUSTER SHARDS" "$(($(cmdcalls 'cluster|shards') > 0)) $(cmdcalls 'cluster|slots')" "1 0"

every_node CONFIG SET cluster-announce-hostname localhost
every_node CONFIG SET cluster-preferred-endpoint-type hostname
endpoints_settle localhost || bmf_log "the endpoints did not become localhost everywhere"
out=$(q "SELECT count(redis_cache_set('h:' || i, 'v' || i)) FROM generate_series(1, 100) i;
	SELECT string_agg(DISTINCT split_part(node, ':', 1), ' ') FROM redis_connections()
	WHERE node <> '127.0.0.1:${ports[0]}'" | tail -1)
is "host name endpoints: the nodes are reached by the names the cluster gives (the seed aside)" "$out" "localhost"
is "  and each key is where a cluster client finds it" "$(ccli GET bmfredis:h:77)" "v77"
every_node CONFIG SET cluster-preferred-endpoint-type unknown-endpoint
endpoints_settle "" || bmf_log "the endpoints did not become "" everywhere"
# a seed named localhost: an unknown endpoint is the seed's host, port given
out=$(q "SET bmfredis.host = 'localhost';
	SELECT count(redis_cache_get('h:' || i)) FROM generate_series(1, 100) i;
	SELECT string_agg(node, ' ' ORDER BY node) FROM redis_connections()" | tail -1)
want=$(for p in $(masters); do echo "localhost:$p"; done | sort | tr '\n' ' ' | sed 's/ $//')
is "unknown (NULL) endpoints: the address the map came from, with each node's port" "$out" "$want"
slot=$(ccli CLUSTER KEYSLOT bmfredis:mu)
src=""; for p in $(masters); do [ "$(redis-cli -p "$p" SET bmfredis:mu unknown)" = OK ] && src=$p; done
dst=$(masters | grep -v "^$src\$" | head -1)
srcid=$(redis-cli -p "$src" CLUSTER MYID); dstid=$(redis-cli -p "$dst" CLUSTER MYID)
out=$(qs <<EOF
SET bmfredis.host = 'localhost';
SELECT redis_cache_get('mu');
\\! redis-cli -p $dst CLUSTER SETSLOT $slot IMPORTING $srcid >/dev/null
\\! redis-cli -p $src CLUSTER SETSLOT $slot MIGRATING $dstid >/dev/null
\\! redis-cli -p $src MIGRATE 127.0.0.1 $dst bmfredis:mu 0 5000 >/dev/null
\\! for p in $(masters | tr '\n' ' '); do redis-cli -p \$p CLUSTER SETSLOT $slot NODE $dstid >/dev/null; done
SELECT redis_cache_get('mu');
SELECT count(*) FROM redis_connections() WHERE node = 'localhost:$dst';
EOF
)
is "  and a 'MOVED <slot> :<port>' is followed to that port at the same host" "$(tr '\n' ' ' <<<"$out")" "unknown unknown 1 "
every_node CONFIG SET cluster-preferred-endpoint-type ip
every_node CONFIG SET cluster-announce-hostname ""
endpoints_settle 127.0.0.1 || bmf_log "the endpoints did not become 127.0.0.1 everywhere"
every_node ACL SETUSER noshards on '>pw' '~*' '&*' +@all -cluster\|shards
every_node CONFIG RESETSTAT
out=$(q "SET bmfredis.username = 'noshards'; SET bmfredis.password = 'pw';
	SELECT count(redis_cache_get('h:' || i)) FROM generate_series(1, 100) i" | tail -1)
is "an ACL that refuses CLUSTER SHARDS: the map comes from CLUSTER SLOTS" \
	"$out $(($(cmdcalls 'cluster|slots') > 0))" "100 1"
every_node ACL DELUSER noshards
is "one connection per master" \
	"$(q "SELECT count(redis_cache_get('k:' || i)) FROM generate_series(1, 300) i; SELECT count(*) FROM redis_connections()" | tail -1)" "3"
is "MGET over three masters keeps the order" \
	"$(q "SELECT redis_cache_mget(array_agg('k:' || i ORDER BY i)) = array_agg('v' || i ORDER BY i) FROM generate_series(1, 300) i")" "t"
is "  and misses stay in place" "$(q "SELECT redis_cache_mget(ARRAY['k:1', 'nope', 'k:2'])")" "{v1,NULL,v2}"
is "MSET over three masters" \
	"$(q "SELECT redis_cache_mset(ARRAY['m:1', 'm:2', 'm:3', 'm:4'], ARRAY['a', 'b', 'c', 'd']); SELECT redis_cache_mget(ARRAY['m:4', 'm:1'])")" "t
{d,a}"
# keys sharing a {hash tag} travel in one command, mixed with others
q "SELECT redis_cache_mset(ARRAY['{user:1}:a', '{user:1}:b', '{user:1}:c'], ARRAY['1', '2', '3'])" >/dev/null
owner=""; for p in $(masters); do [ "$(redis-cli -p "$p" GET 'bmfredis:{user:1}:b')" = 2 ] && owner=$p; done
# UNLINKs the owner should see: one for the family, one per other slot of its own
want=1; seen=""
for k in k:1 k:2; do
	ks=$(ccli CLUSTER KEYSLOT "bmfredis:$k")
	[ "$(redis-cli -p "$owner" EXISTS "bmfredis:$k")" = 1 ] && [ "$ks" != "$seen" ] && want=$((want + 1)) && seen=$ks
done
redis-cli -p "$owner" CONFIG RESETSTAT >/dev/null
is "a DEL of a {hash tag} family and other keys counts them all" \
	"$(q "SELECT redis_cache_del(ARRAY['{user:1}:a', 'k:1', '{user:1}:b', 'k:2', '{user:1}:c'])")" "5"
is "  and the family went to its master as one UNLINK" \
	"$(redis-cli -p "$owner" INFO commandstats | tr -d '\r' | grep -o '^cmdstat_unlink:calls=[0-9]*')" "cmdstat_unlink:calls=$want"
is "DEL of 300 keys in 3 masters' slots counts them all" \
	"$(q "SELECT redis_cache_del(array_agg('k:' || i)) FROM generate_series(3, 300) i")" "298"

# tags: members in every slot; the registry lists the slots, each slot has
# a shard next to its keys; invalidation empties every shard
q "SELECT redis_cache_set('t:' || i, 'x', '1 hour', ARRAY['shop:1', 'all']) FROM generate_series(1, 200) i" >/dev/null
slots=$(ccli ZCARD bmfredis:tag:shop:1)
check "the tag registry lists the slots its keys are in ($slots)" [ "${slots:-0}" -gt 150 ]
k7slot=$(ccli CLUSTER KEYSLOT bmfredis:t:7)
shards=$(for p in $(masters); do redis-cli -p "$p" --scan --pattern 'bmfredis:{*}tag:shop:1'; done)
is "  and there is one shard per slot, named {slot tag}tag:<tag>" "$(wc -l <<<"$shards")" "$slots"
is "  the shard in t:7's slot lists t:7" \
	"$(while read -r k; do [ "$(ccli CLUSTER KEYSLOT "$k")" = "$k7slot" ] && ccli ZSCORE "$k" bmfredis:t:7 >/dev/null && echo yes; done <<<"$shards" | head -1)" "yes"
is "tag invalidation at commit removes keys in every slot" \
	"$(q "BEGIN; SELECT redis_invalidate_tag('shop:1'); COMMIT; SELECT count(*) FROM unnest(redis_cache_mget((SELECT array_agg('t:' || i) FROM generate_series(1, 200) i))) v WHERE v IS NOT NULL" | tail -1)" "0"

# patterns SCAN every master
q "SELECT redis_cache_set('p:' || i, 'x') FROM generate_series(1, 100) i" >/dev/null
is "pattern invalidation scans every master" "$(q "SELECT redis_invalidate_pattern('p:*')")" "100"

# a watched table: UPDATE invalidates keys in many slots at COMMIT
q "CREATE TABLE products (id int PRIMARY KEY, shop_id int, title text);
INSERT INTO products SELECT i, i % 5, 'title ' || i FROM generate_series(1, 1000) i;
SELECT redis_watch('products', 'product', ARRAY['product:{id}'], ARRAY['shop:{shop_id}']);" >/dev/null
q "SELECT redis_cache_set('product:' || id, title) FROM products" >/dev/null
q "UPDATE products SET title = title || '!'" >/dev/null
is "a 1,000-row UPDATE of a watched table clears 1,000 keys over the masters" \
	"$(q "SELECT count(*) FROM unnest(redis_cache_mget((SELECT array_agg('product:' || id) FROM products))) v WHERE v IS NOT NULL")" "0"
# past max_pending_keys the queue collapses to tag patterns and key
# patterns: SCANs of every master, registries expanded to their shards
q "SELECT redis_cache_set('list:' || i, 'x', '1 hour', ARRAY['shop:' || (i % 5)]) FROM generate_series(1, 200) i" >/dev/null
q "SELECT redis_cache_set('product:' || id, title) FROM products" >/dev/null
q "SET bmfredis.max_pending_keys = 100; UPDATE products SET title = title || '?'" >/dev/null
is "a collapsed UPDATE (tag and key patterns) clears every master" \
	"$(q "SELECT count(*) FROM unnest(redis_cache_mget((SELECT array_agg(k) FROM (SELECT 'product:' || id AS k FROM products UNION ALL SELECT 'list:' || i FROM generate_series(1, 200) i) s))) v WHERE v IS NOT NULL")" "0"

# redis_cached: lease and delta side keys, and tag shards, in the key's slot
out=$(q "SET bmfredis.cached_early_beta = 1;
SELECT redis_cached('cq:1', '1 hour', 'SELECT 42', ARRAY['cq']);
SELECT redis_cached('cq:1', '1 hour', 'SELECT 43', ARRAY['cq']);" 2>&1)
is "redis_cached stores and hits in a cluster" "$out" "42
42"
is "  and a tag invalidation removes it" "$(q "SELECT redis_invalidate_tag('cq'); SELECT redis_cached('cq:1', '1 hour', 'SELECT 44')" | tail -1)" "44"

# locks and semaphores: their keys share a {hash tag}
is "locks in a cluster" "$(q "SELECT redis_lock('stock:1') IS NOT NULL; SELECT redis_unlock('stock:1')" | tr '\n' ' ')" "t t "

# MOVED and ASK: a slot migrated under a session that knows the old map
out=$(q "SELECT redis_cache_set('mv', 'moving')")
slot=$(ccli CLUSTER KEYSLOT bmfredis:mv)
src=""; for p in $(masters); do [ "$(redis-cli -p "$p" GET bmfredis:mv)" = moving ] && src=$p; done
dst=$(masters | grep -v "^$src\$" | head -1)
srcid=$(redis-cli -p "$src" CLUSTER MYID); dstid=$(redis-cli -p "$dst" CLUSTER MYID)
out=$(qs <<EOF
SELECT redis_cache_get('mv');
\\! redis-cli -p $dst CLUSTER SETSLOT $slot IMPORTING $srcid >/dev/null
\\! redis-cli -p $src CLUSTER SETSLOT $slot MIGRATING $dstid >/dev/null
\\! redis-cli -p $src MIGRATE 127.0.0.1 $dst bmfredis:mv 0 5000 >/dev/null
SELECT redis_cache_get('mv');
SELECT redis_cache_set('mv', 'asked');
\\! for p in $(masters | tr '\n' ' '); do redis-cli -p \$p CLUSTER SETSLOT $slot NODE $dstid >/dev/null; done
SELECT redis_cache_get('mv');
EOF
)
is "a key in a migrating slot is followed by ASK, then MOVED" "$out" "moving
moving
t
asked"
is "  and it is on the new node" "$(redis-cli -p "$dst" GET bmfredis:mv)" "asked"

# a slot half migrated: a multi-key command on it gets TRYAGAIN; past the
# bound that is unavailability, not a refusal (a miss and a WARNING; at
# COMMIT the retry queue, delivered once the migration ends)
q "SELECT redis_cache_mset(ARRAY['{hm}a', '{hm}b'], ARRAY['1', '2'])" >/dev/null
slot=$(ccli CLUSTER KEYSLOT 'bmfredis:{hm}a')
src=""; for p in $(masters); do [ "$(redis-cli -p "$p" GET 'bmfredis:{hm}a')" = 1 ] && src=$p; done
dst=$(masters | grep -v "^$src\$" | head -1)
srcid=$(redis-cli -p "$src" CLUSTER MYID); dstid=$(redis-cli -p "$dst" CLUSTER MYID)
redis-cli -p "$dst" CLUSTER SETSLOT "$slot" IMPORTING "$srcid" >/dev/null
redis-cli -p "$src" CLUSTER SETSLOT "$slot" MIGRATING "$dstid" >/dev/null
redis-cli -p "$src" MIGRATE 127.0.0.1 "$dst" 'bmfredis:{hm}a' 0 5000 >/dev/null
out=$(qv <<<"SELECT redis_cache_mget(ARRAY['{hm}a', '{hm}b'])")
like "a multi-key read on a half-migrated slot is a miss" "$out" "\{NULL,NULL\}"
like "  with a WARNING that the cluster is moving a slot" "$out" "WARNING:  08006: Redis is unavailable.*TRYAGAIN"
out=$(qv <<<"BEGIN; SELECT redis_invalidate(ARRAY['{hm}a', '{hm}b']); COMMIT;")
like "  and a COMMIT's UNLINK there goes to the retry queue" "$out" "queued for retry"
redis-cli -p "$src" MIGRATE 127.0.0.1 "$dst" 'bmfredis:{hm}b' 0 5000 >/dev/null
for p in $(masters); do redis-cli -p "$p" CLUSTER SETSLOT "$slot" NODE "$dstid" >/dev/null; done
for _ in $(seq 1 100); do
	[ "$(q "SELECT retry_pending FROM redis_health()")" = 0 ] && break
	sleep 0.1
done
is "  which delivers it once the migration ends" "$(ccli EXISTS 'bmfredis:{hm}a' 'bmfredis:{hm}b')" "0"

# the near-cache: each master tracked on its own connection; another
# client's writes on any master are seen; a killed tracking connection
# drops that master's copies; a MOVED drops what the old node gave
nearq() { printf 'SET bmfredis.near_cache = on;\n%s\n' "$1" | psql -X -q -A -t -v ON_ERROR_STOP=1 -d bmf_cluster 2>&1; }
every_node CONFIG RESETSTAT
q "SELECT redis_cache_set('nc:' || i, 'a' || i) FROM generate_series(1, 30) i" >/dev/null
nk() { local i; for i in $(seq 1 30); do printf ' %s' "bmfredis:nc:$i"; done; }
out=$(nearq "SELECT string_agg(redis_cache_get('nc:' || i), ',' ORDER BY i) FROM generate_series(1, 30) i;
SELECT string_agg(redis_cache_get('nc:' || i), ',' ORDER BY i) FROM generate_series(1, 30) i, generate_series(1, 3) r;
SELECT count(*) FROM redis_connections() WHERE node LIKE '% (tracking)' AND state = 'tracking';
\\! for i in \$(seq 1 30); do redis-cli -c -p ${ports[0]} SET bmfredis:nc:\$i b\$i >/dev/null; done
SELECT string_agg(redis_cache_get('nc:' || i), ',' ORDER BY i) FROM generate_series(1, 30) i;
SELECT redis_cache_get('nc:none') IS NULL, redis_cache_get('nc:none') IS NULL;
SELECT string_agg(coalesce(v, '-'), ',') FROM unnest(redis_cache_mget(ARRAY(SELECT 'nc:' || i FROM generate_series(1, 30) i) || 'nc:none'::text)) v;")
want_a=$(seq 1 30 | sed 's/^/a/' | paste -sd,); want_b=$(seq 1 30 | sed 's/^/b/' | paste -sd,)
is "near-cache in a cluster: 30 keys over the masters read, then again" "$(sed -n 1p <<<"$out")" "$want_a"
is "  a tracking connection on each master" "$(sed -n 3p <<<"$out")" "3"
is "  another client's writes on every master are seen" "$(sed -n 4p <<<"$out")" "$want_b"
is "  mget over the masters: the kept values, the missing key" "$(sed -n 6p <<<"$out")" "$want_b,-"
is "  GETs that reached the cluster: 30 first reads + 30 keeping + 30 after the writes + 2 + 1 (a missing key is not kept)" \
	"$(cmdcalls get)" "93"

holder() { local p; for p in $(masters); do [ "$(redis-cli -p "$p" GET "bmfredis:nc:$1")" = "b$1" ] && echo "$p"; done; }
src=$(holder 1)
for other_key in $(seq 2 30); do other=$(holder "$other_key"); [ "$other" != "$src" ] && break; done
every_node CONFIG RESETSTAT
out=$(nearq "SELECT redis_cache_get('nc:1'), redis_cache_get('nc:$other_key') \\gset
SELECT redis_cache_get('nc:1'), redis_cache_get('nc:$other_key');
\\! redis-cli -p $src CLIENT KILL TYPE pubsub >/dev/null
\\! redis-cli -p $src SET bmfredis:nc:1 c1 >/dev/null
SELECT redis_cache_get('nc:1'), redis_cache_get('nc:$other_key');")
is "  one master's tracking connection killed: its key is read anew, the other's still kept" \
	"$out" "b1|b$other_key
c1|b$other_key"
is "  (GETs: 2 to keep each, then 1 on the killed master's node only)" \
	"$(redis-cli -p "$src" INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_get:calls=\([0-9]*\).*/\1/p') $(redis-cli -p "$other" INFO commandstats | tr -d '\r' | sed -n 's/^cmdstat_get:calls=\([0-9]*\).*/\1/p')" "3 2"

slot=$(ccli CLUSTER KEYSLOT bmfredis:nc:1)
dst=$(masters | grep -v "^$src\$" | head -1)
srcid=$(redis-cli -p "$src" CLUSTER MYID); dstid=$(redis-cli -p "$dst" CLUSTER MYID)
out=$(nearq "SELECT redis_cache_get('nc:1');
SELECT value FROM redis_stats WHERE name = 'near_cache_full_flushes';
\\! redis-cli -p $dst CLUSTER SETSLOT $slot IMPORTING $srcid >/dev/null
\\! redis-cli -p $src CLUSTER SETSLOT $slot MIGRATING $dstid >/dev/null
\\! redis-cli -p $src MIGRATE 127.0.0.1 $dst bmfredis:nc:1 0 5000 >/dev/null
\\! for p in $(masters | tr '\n' ' '); do redis-cli -p \$p CLUSTER SETSLOT $slot NODE $dstid >/dev/null; done
\\! redis-cli -p $dst SET bmfredis:nc:1 d1 >/dev/null
SELECT redis_cache_get('nc:1');
SELECT redis_cache_get('nc:1');
SELECT value FROM redis_stats WHERE name = 'near_cache_full_flushes';")
is "  a key's slot moved to another master and written there: the new value" \
	"$(sed -n '1p;3p;4p' <<<"$out" | paste -sd' ')" "c1 d1 d1"
is "  the MOVED dropped what the old node gave" "$(( $(sed -n 5p <<<"$out") - $(sed -n 2p <<<"$out") ))" "1"

# FLUSHALL on the masters while a session's mgets span them: a flush that
# lands between two nodes of one mget drops the near-cache's table under
# it (this once crashed the backend, and the whole server with it)
flusher() { local i p; for i in $(seq 1 150); do for p in $(masters); do redis-cli -p "$p" FLUSHALL >/dev/null 2>&1; done; sleep 0.01; done; }
flusher &
fl=$!
out=$(nearq "SELECT count(*) FROM generate_series(1, 3000) g,
	LATERAL (SELECT redis_cache_set('nc:' || (g % 30 + 1), 'f') , redis_cache_mget(ARRAY(SELECT 'nc:' || i FROM generate_series(1, 30) i))) x;" )
wait $fl
is "  mgets across the masters while every master is flushed 150 times: they answer" "$out" "3000"
refute "  and no backend crashed" grep -Eq "terminated by signal (6|11)[^0-9]" "$BMF_WORK/pgdata.log"

# the suites, against the cluster
pgxs=$(dirname "$(dirname "$(pg_config --pgxs)")")
mkdir -p "$BMF_WORK/cluster-regress"
suites="cache ttl invalidate pattern watch cascade publish locks"
(cd "$BMF_ROOT" && BMF_REDISCTL="$BMF_ROOT/test/redisctl -n c1" "$pgxs/test/regress/pg_regress" \
	--host=127.0.0.1 --port="$PGPORT" --user=postgres --bindir="$(pg_config --bindir)" \
	--inputdir="$BMF_ROOT" --outputdir="$BMF_WORK/cluster-regress" \
	--load-extension=bmfredis --dbname=bmf_cluster_regress $suites) \
	>"$BMF_WORK/cluster-regress/out.txt" 2>&1
for s in $suites; do
	if regress_passed "$BMF_WORK/cluster-regress/out.txt" "$s"; then
		ok "the $s suite passes against the cluster"
	else
		not_ok "the $s suite passes against the cluster" "$(head -60 "$BMF_WORK/cluster-regress/regression.diffs" 2>/dev/null)"
	fi
done

# a load of reads (redis_cached) and watched updates
q "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
INSERT INTO items SELECT i, 0 FROM generate_series(1, 1000) i;
SELECT redis_watch('items', 'item', ARRAY['item:{id}']);" >/dev/null
cat >"$BMF_WORK/load.pgbench" <<'EOF'
\set r random(1, 1000)
\set w random(1, 1000)
SELECT redis_cached('item:' || :r, '1 hour', 'SELECT v FROM items WHERE id = ' || :r);
SELECT redis_cache_get('item:' || :w);
UPDATE items SET v = v + 1 WHERE id = :w;
EOF
stale() {  # cached values that disagree with the table
	q "SELECT count(*) FROM items i, unnest(redis_cache_mget((SELECT array_agg('item:' || id ORDER BY id) FROM items))) WITH ORDINALITY AS c(v, n)
	   WHERE c.n = i.id AND c.v IS NOT NULL AND c.v <> i.v::text"
}
cached_count() {
	q "SELECT count(*) FROM unnest(redis_cache_mget((SELECT array_agg('item:' || id) FROM items))) v WHERE v IS NOT NULL"
}

# reshard 1,000 slots from the first master to the second under the load;
# every Redis fault would be an ERROR (on_error = error) and end a client
m1=$(masters | head -1); m2=$(masters | sed -n 2p)
PGOPTIONS='-c bmfredis.on_error=error -c client_min_messages=warning' \
	$PGBENCH -n -f "$BMF_WORK/load.pgbench" -c 4 -j 2 -T 12 bmf_cluster >"$BMF_WORK/reshard-load.out" 2>&1 &
lpid=$!
sleep 2
redis-cli --cluster reshard "127.0.0.1:$m1" --cluster-from "$(redis-cli -p "$m1" CLUSTER MYID)" \
	--cluster-to "$(redis-cli -p "$m2" CLUSTER MYID)" --cluster-slots 1000 --cluster-yes \
	>"$BMF_WORK/reshard.out" 2>&1
rs=$?
wait "$lpid"; lrc=$?
bmf_log "reshard: load: $(grep -E 'number of transactions actually processed|tps' "$BMF_WORK/reshard-load.out" | tr '\n' ' ')"
moved=$(grep -o 'Moving slot [0-9]*' "$BMF_WORK/reshard.out" | sort -u | wc -l)
is "redis-cli --cluster reshard moved 1,000 slots under the load" "$rs $moved" "0 1000"
is "  the load saw no errors" "$lrc $(grep -Ec 'ERROR|WARNING|aborted' "$BMF_WORK/reshard-load.out")" "0 0"
n=$(awk '/^number of transactions actually processed/ { print $NF }' "$BMF_WORK/reshard-load.out")
check "  while it ran ($n transactions)" [ "${n:-0}" -gt 1000 ]
n=$(cached_count)
check "  values were cached during the load ($n)" [ "${n:-0}" -gt 100 ]
is "  and not one cached value disagrees with its table" "$(stale)" "0"

# a master killed under the same load: its replica takes over
PGOPTIONS='-c client_min_messages=error' \
	$PGBENCH -n -f "$BMF_WORK/load.pgbench" -c 4 -j 2 -T 12 bmf_cluster >"$BMF_WORK/kill-load.out" 2>&1 &
lpid=$!
sleep 2
victim=$(masters | sed -n 2p)
for i in $(seq 1 ${#ports[@]}); do [ "$(cat "$BMF_WORK/c$i.port")" = "$victim" ] && vname=c$i; done
"$BMF_ROOT/test/redisctl" -n "$vname" kill
start=$(ms_now)
promoted=""
for _ in $(seq 1 200); do
	now_masters=$(for p in "${ports[@]}"; do [ "$p" != "$victim" ] && [ "$(role "$p")" = master ] && echo "$p"; done | wc -l)
	[ "$now_masters" = 3 ] && promoted=$(( $(ms_now) - start )) && break
	sleep 0.05
done
wait "$lpid"; lrc=$?
bmf_log "failover in ${promoted:-?} ms; load: $(grep -E 'number of transactions actually processed' "$BMF_WORK/kill-load.out")"
check "a replica was promoted after the master was killed (${promoted:-never} ms)" [ -n "$promoted" ]
is "  the load ran on through the failover" "$lrc $(grep -c aborted "$BMF_WORK/kill-load.out")" "0 0"
n=$(awk '/^number of transactions actually processed/ { print $NF }' "$BMF_WORK/kill-load.out")
check "  ($n transactions)" [ "${n:-0}" -gt 1000 ]
# what failed during the failover reaches the new master from the retry queue
for _ in $(seq 1 100); do
	[ "$(q "SELECT retry_pending FROM redis_health()" 2>/dev/null)" = 0 ] && break
	sleep 0.1
done
is "  and afterwards not one cached value disagrees with its table" "$(stale)" "0"
is "  and the cluster serves every call again" "$(q "SET bmfredis.on_error = 'error'; SELECT count(*) FROM (SELECT redis_cache_set('after:' || i, 'x') FROM generate_series(1, 100) i) s")" "100"
out=$( (sleep 1; q "SELECT redis_publish('cl:news', 'hello', true)" >/dev/null) &
	q "SELECT count(*) FROM redis_listen(ARRAY['cl:news'], '5s', 1)" 2>&1; wait)
is "  pub/sub works with one master gone" "$out" "1"
# the subscriber worker subscribes on a master, and moves when it dies
"$BMF_ROOT/test/redisctl" -n "$vname" start	# back, as a replica of its successor
for _ in $(seq 1 200); do
	n=0; for p in $(masters); do redis-cli -p "$p" INFO replication | grep -q '^connected_slaves:1' && n=$((n + 1)); done
	[ "$n" = 3 ] && break
	sleep 0.1
done
is "the killed master came back as a replica: every master has one again" "$n" "3"
psql -X -q -d postgres -c "CREATE EXTENSION IF NOT EXISTS bmfredis" \
	-c "ALTER DATABASE postgres SET bmfredis.subscribe = 'cl:*'" >/dev/null
spid=$(subscriber_pid postgres)
subscribed_on() {  # the node the worker's subscription is on, other than $1
	local i p
	for i in $(seq 1 150); do
		for p in "${ports[@]}"; do
			[ "$p" = "${1:-}" ] && continue
			redis-cli -p "$p" CLIENT LIST 2>/dev/null | grep -q "name=bmfredis:[^ ]*:$spid .*psub=1 " && { echo "$p"; return 0; }
		done
		sleep 0.1
	done
	return 1
}
sub1=$(subscribed_on)
is "the subscriber worker subscribes on a master" "$(role "${sub1:-0}")" "master"
for i in $(seq 1 ${#ports[@]}); do [ "$(cat "$BMF_WORK/c$i.port")" = "$sub1" ] && sname=c$i; done
"$BMF_ROOT/test/redisctl" -n "$sname" kill
sub2=$(subscribed_on "$sub1")
check "  and subscribes on another node when that master dies (${sub2:-none})" [ -n "$sub2" ]
for _ in $(seq 1 100); do
	[ "$(for p in "${ports[@]}"; do [ "$p" != "$sub1" ] && [ "$(role "$p")" = master ] && echo "$p"; done | wc -l)" = 3 ] && break
	sleep 0.1
done
psql -X -d postgres -c "LISTEN \"cl:x\"" -c "SELECT pg_sleep(2)" >"$BMF_WORK/cl-listen.out" 2>&1 &
lpid=$!
sleep 0.5
redis-cli -c -p "$sub2" PUBLISH cl:x after-failover >/dev/null
wait "$lpid"
like "  and a message published in the cluster arrives as NOTIFY" "$(cat "$BMF_WORK/cl-listen.out")" 'payload "after-failover"'

refute "no backend crashed" grep -Eq "terminated by signal (4|6|7|8|11)[^0-9]" "$BMF_WORK/pgdata.log"
