# Redis Cluster over TLS with a password: three masters whose client,
# cluster-bus and replication ports are TLS only and that require AUTH.
# Every node of the map is reached with the seed's TLS settings (the
# certificate checked against the CA and the node's address) and
# credentials.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_cluster_tls

bmf_make_certs "$BMF_WORK/certs"
export BMF_CLUSTER_TLS=$BMF_WORK/certs BMF_CLUSTER_PASS=clusterpass
bmf_start_cluster 3 0 ct
disown -a
trap 'bmf_stop_cluster ct' EXIT
ports=("${BMF_CLUSTER_PORTS[@]}")
is "three TLS masters" "$(for p in "${ports[@]}"; do bmf_cluster_cli "$p" ROLE | head -1; done | sort | uniq -c | tr -s ' ')" " 3 master"

S="SET bmfredis.cluster = on; SET bmfredis.port = ${ports[0]}; SET bmfredis.tls = on;
SET bmfredis.tls_ca_file = '$BMF_WORK/certs/ca.crt'; SET bmfredis.password = 'clusterpass';"
out=$(q "$S SELECT redis_cache_mset(array_agg('k:' || i), array_agg('v' || i)) FROM generate_series(1, 300) i;
SELECT redis_cache_mget(array_agg('k:' || i ORDER BY i)) = array_agg('v' || i ORDER BY i) FROM generate_series(1, 300) i;
SELECT count(*) FROM redis_connections();" 2>&1)
is "300 keys over three TLS masters, with AUTH" "$out" "t
t
3"
sum=0
for p in "${ports[@]}"; do sum=$((sum + $(bmf_cluster_cli "$p" DBSIZE))); done
is "  on every master" "$sum" "300"
out=$(q "$S SET bmfredis.on_error = 'error'; SET bmfredis.password = 'wrong'; SELECT redis_cache_get('k:1')" 2>&1)
like "a wrong password: a clear error" "$out" "Redis refused the credentials of bmfredis"
out=$(q "$S SET bmfredis.on_error = 'error'; SET bmfredis.tls_ca_file = '$BMF_WORK/certs/rogue-ca.crt'; SELECT redis_cache_get('k:1')" 2>&1)
like "nodes checked against another CA are refused" "$out" "could not establish a TLS connection to Redis"
like "  naming the node and why" "$out" "The certificate of 127.0.0.1:[0-9]+ was refused: self-signed certificate in certificate chain"
is "tags over TLS in a cluster" \
	"$(q "$S SELECT count(redis_cache_set('t:' || i, 'x', NULL, ARRAY['tls'])) FROM generate_series(1, 50) i; SELECT redis_invalidate_tag('tls', true); SELECT count(*) FROM unnest(redis_cache_mget((SELECT array_agg('t:' || i) FROM generate_series(1, 50) i))) v WHERE v IS NOT NULL" | tail -1)" "0"
