# refused: an invalidation Redis refuses is never dropped.  Redis' ACL lets
# bmfredis' user read but not write the keys of a database whose prefix it
# was not given (%R~acl2:*): a watched COMMIT there warns with the reason
# and a hint, its invalidation waits in the retry queue (reads in that
# database miss meanwhile), the worker says so in the log and turns it into
# the database's namespace (so that nothing waits behind it), and once the
# ACL is fixed the namespace goes.  An immediate invalidation Redis refuses is an
# ERROR with Redis' SQLSTATE.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_acl
R=$BMF_REDISCTL
q "ALTER DATABASE bmf_acl SET bmfredis.key_prefix = 'acl2:'" >/dev/null
trap '$R cli ACL SETUSER default reset on nopass "~*" "&*" "+@all" >/dev/null 2>&1' EXIT
q "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO items VALUES (1), (2);
SELECT redis_watch('items', 'item', ARRAY['item:{id}']);" >/dev/null
$R cli SET acl2:item:1 old >/dev/null
$R cli SET acl2:item:2 old >/dev/null
# a backend that finds the queue refused says so too (once a minute): the last line is the value
q1() { q "$1" | tail -1; }
pending() { q1 "SELECT retry_pending + retry_namespaces FROM redis_health()"; }

$R cli ACL SETUSER default resetkeys '~bmfredis:*' '~stream:*' '%R~acl2:*' >/dev/null
out=$(qv <<<"UPDATE items SET v = 1 WHERE id = 1")
like "Redis' ACL refuses the key: the COMMIT warns, with the SQLSTATE" "$out" "WARNING:  42501: Redis refused 1 queued invalidations after commit"
like "  and the hint to fix the ACL" "$out" "let the Redis user bmfredis connects as \\(bmfredis.username\\) reach the keys"
is "  the transaction committed" "$(q "SELECT v FROM items WHERE id = 1")" "1"
is "  the invalidation waits in the retry queue" "$(pending)" "1"
is "  the key is still in Redis" "$($R cli GET acl2:item:1)" "old"
out=$(q "SELECT coalesce(redis_cache_get('item:1'), 'miss')")
like "  and reads in the database miss meanwhile" "$(tail -1 <<<"$out")" "^miss$"
like "  with a WARNING that says why" "$out" "WARNING:  bmfredis: Redis refuses 1 invalidations waiting in the retry queue of database \"bmf_acl\""
for _ in $(seq 1 100); do grep -q 'Redis refuses .* invalidations waiting in the retry queue of database "bmf_acl"' "$BMF_WORK/pgdata.log" && break; sleep 0.1; done
check "  the worker, retrying, says in the log that Redis refuses them" \
	grep -q 'WARNING:  bmfredis: Redis refuses 1 invalidations waiting in the retry queue of database "bmf_acl"' "$BMF_WORK/pgdata.log"
sleep 2
is "  still waiting after retries" "$(pending) $($R cli GET acl2:item:1)" "1 old"
out=$(qv <<<"SELECT redis_invalidate('item:2', true)")
like "an immediate invalidation Redis refuses is an ERROR with its SQLSTATE" "$out" "ERROR:  42501: Redis refused an invalidation"

$R cli ACL SETUSER default '~acl2:*' >/dev/null
for _ in $(seq 1 150); do [ "$(pending)" = 0 ] && break; sleep 0.1; done
is "the ACL fixed: the waiting invalidation goes through" "$(pending) $($R cli EXISTS acl2:item:1)" "0 0"
is "  with the database's namespace (what Redis refused became it)" "$($R cli EXISTS acl2:item:2)" "0"
$R cli ACL SETUSER default reset on nopass '~*' '&*' '+@all' >/dev/null
