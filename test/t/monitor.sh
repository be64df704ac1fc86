# monitor: what the marketplace's own integration watched, from SQL.
# bmfredis.log_commands logs each command (command, key, node, time,
# outcome) at the level a DBA chooses, never a value, and nothing when off;
# redis_health() reports maxmemory, the used fraction, the eviction policy
# and evicted keys, and says when cache writes are about to fail.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_monitor
R=$BMF_REDISCTL
log=$BMF_WORK/pgdata.log
trap '$R cli CONFIG SET maxmemory 0 >/dev/null; $R cli CONFIG SET maxmemory-policy noeviction >/dev/null' EXIT

# --- the debug log of commands
before=$(wc -l <"$log")
q "SELECT redis_cache_set('mon:k', 'secret-value-4711', '1 minute'), redis_cache_get('mon:k')" >/dev/null
is "with bmfredis.log_commands off (the default), nothing is logged" "$(tail -n +"$before" "$log" | grep -c 'bmfredis: SET')" "0"
before=$(wc -l <"$log")
qs >/dev/null <<'SQL'
SET bmfredis.log_commands = 'log';
SELECT redis_cache_set('mon:k', 'secret-value-4711', '1 minute');
SELECT redis_cache_get('mon:k');
SELECT redis_cache_mget(ARRAY['mon:k', 'mon:none']);
SELECT redis_publish('mon:chan', 'secret-message-4711', immediate => true);
BEGIN;
SELECT redis_invalidate(ARRAY['mon:a', 'mon:b']);
COMMIT;
SQL
new=$(tail -n +"$before" "$log")
like "a SET is logged with its key, node, time and outcome" "$new" \
	"LOG:  bmfredis: SET bmfredis:mon:k \(\+3 more\) on 127\.0\.0\.1:[0-9]+: [0-9.]+ ms, OK"
like "  a GET with what it found (not the value)" "$new" "LOG:  bmfredis: GET bmfredis:mon:k on 127\.0\.0\.1:[0-9]+: [0-9.]+ ms, string of 17 bytes"
like "  an MGET" "$new" "LOG:  bmfredis: MGET bmfredis:mon:k \(\+1 more\) on 127\.0\.0\.1:[0-9]+: [0-9.]+ ms, array of 2"
like "  a PUBLISH, by channel" "$new" "LOG:  bmfredis: PUBLISH mon:chan \(\+1 more\) on .*integer 0"
like "  COMMIT's invalidation" "$new" "LOG:  bmfredis: UNLINK bmfredis:mon:a \(\+1 more\) on .*integer 0"
refute "  and never a value or a message" grep -q 'secret-' <<<"$new"
before=$(wc -l <"$log")
out=$(q "SET bmfredis.log_commands = 'debug1'; SELECT redis_cache_get('mon:k')")
is "a level below log_min_messages logs nothing" "$(tail -n +"$before" "$log" | grep -c 'bmfredis: GET')" "0"
out=$(qv <<<"SET bmfredis.log_commands = 'notice'; SELECT redis_cache_get('mon:k');")
like "  and a client sees it at its own level (notice)" "$out" "NOTICE:  00000: bmfredis: GET bmfredis:mon:k on"
out=$(psql -X -q -d "$BMF_DB" -c "CREATE ROLE mon_plain LOGIN" 2>&1; psql -X -q -U mon_plain -d "$BMF_DB" -c "SET bmfredis.log_commands = 'log'" 2>&1; psql -X -q -d "$BMF_DB" -c "DROP ROLE mon_plain" 2>&1)
like "only a superuser may turn it on" "$out" 'permission denied to set parameter "bmfredis.log_commands"'

# --- memory and eviction in redis_health()
$R cli CONFIG SET maxmemory 104857600 >/dev/null
$R cli CONFIG SET maxmemory-policy noeviction >/dev/null
out=$(q "SELECT server, maxmemory, memory_used_fraction < 0.5, maxmemory_policy, evicted_keys >= 0, memory_note FROM redis_health()")
is "redis_health reports the server, maxmemory, the used fraction, the policy and evicted keys" \
	"$(cut -d'|' -f1-5 <<<"$out")" "$BMF_SERVER|104857600|t|noeviction|t"
is "  and the server's own version (Valkey also says redis_version:7.2.4)" "$(q "SELECT version FROM redis_health()")" \
	"$("$(bmf_server_bin)" --version | sed -n 's/.* v=\([^ ]*\) .*/\1/p')"
like "  and says that under noeviction a full Redis fails cache writes" "$(cut -d'|' -f6 <<<"$out")" \
	"maxmemory-policy is noeviction: once Redis is full \([0-9]+% now\), cache writes fail with OOM"
$R cli CONFIG SET maxmemory-policy allkeys-lru >/dev/null
is "  with room and an eviction policy for every key, no note" "$(q "SELECT memory_note IS NULL FROM redis_health()")" "t"
used=$($R cli INFO memory | tr -d '\r' | sed -n 's/^used_memory://p')
$R cli CONFIG SET maxmemory $((used + used / 20)) >/dev/null
$R cli CONFIG SET maxmemory-policy volatile-lru >/dev/null
like "nearly full with volatile-lru: only keys with a TTL can make room" "$(q "SELECT memory_note FROM redis_health()")" \
	"Redis is 9[0-9]% full and evicts only keys with a TTL \(volatile-lru\): writes fail with OOM once none is left"
$R cli CONFIG SET maxmemory 0 >/dev/null
is "without maxmemory: no limit shown, no note" "$(q "SELECT maxmemory IS NULL, memory_used_fraction IS NULL, memory_note IS NULL FROM redis_health()")" "t|t|t"
