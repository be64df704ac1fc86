# states: a server that answers but cannot serve now (BUSY: a script runs
# past busy-reply-threshold; MISCONF: writes refused after a failed save)
# is unavailable, as a dead one is: a read is a miss with a WARNING
# (08006), a COMMIT's invalidation waits in the retry queue and is
# delivered once the state ends.  Errors are told apart by their whole
# code word: BUSYGROUP is an error of its command, not a busy server.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_states
R=$BMF_REDISCTL
psql -X -q -d postgres -c "ALTER DATABASE bmf_states SET bmfredis.key_prefix = 'st:'" >/dev/null
dir=$($R cli CONFIG GET dir | tail -1)
trap 'chmod 755 "$dir"; $R cli SCRIPT KILL >/dev/null 2>&1; $R cli CONFIG SET save "" >/dev/null 2>&1' EXIT
wait_delivered() {
	for _ in $(seq 1 100); do
		[ "$(q "SELECT retry_pending FROM redis_health()")" = 0 ] && return 0
		sleep 0.1
	done
	return 1
}

# BUSY: a script that loops until SCRIPT KILL
$R cli CONFIG SET busy-reply-threshold 100 >/dev/null
q "SELECT redis_cache_set('b', 'v')" >/dev/null
$R cli EVAL "while true do end" 0 >/dev/null 2>&1 &
busy=$!
for _ in $(seq 1 50); do
	$R cli PING 2>&1 | grep -q '^BUSY' && break
	sleep 0.05
done
out=$(qv <<<"SELECT redis_cache_get('b') IS NULL")
check "a read while a script keeps Redis BUSY is a miss" grep -qx t <<<"$out"
like "  with a WARNING that Redis is unavailable and its answer (08006)" "$out" \
	"WARNING:  08006: Redis is unavailable
DETAIL:  127\.0\.0\.1:[0-9]+ answered: BUSY"
out=$(qv <<<"SET bmfredis.retry_backoff_base = '10ms'; BEGIN; SELECT redis_invalidate('b'); COMMIT;")
like "  and a COMMIT's invalidation goes to the retry queue" "$out" "queued for retry"
$R cli SCRIPT KILL >/dev/null 2>&1
wait "$busy"
check "  which delivers it once the script is killed" wait_delivered
is "  and the key is gone" "$($R cli EXISTS st:b)" "0"
$R cli CONFIG SET busy-reply-threshold 5000 >/dev/null

# MISCONF: a background save that fails (its directory not writable)
# makes Redis refuse writes (stop-writes-on-bgsave-error, which needs a
# save point)
$R cli CONFIG SET save "3600 1" >/dev/null
q "SELECT redis_cache_set('m', 'v')" >/dev/null
chmod 500 "$dir"
$R cli BGSAVE >/dev/null
for _ in $(seq 1 100); do
	$R cli INFO persistence | grep -q '^rdb_last_bgsave_status:err' && break
	sleep 0.05
done
out=$(qv <<<"SELECT redis_cache_set('m2', 'v')")
like "a write while Redis refuses writes (MISCONF) is a WARNING that Redis is unavailable" "$out" \
	"WARNING:  08006: Redis is unavailable
DETAIL:  127\.0\.0\.1:[0-9]+ answered: MISCONF"
out=$(qv <<<"SET bmfredis.retry_backoff_base = '10ms'; BEGIN; SELECT redis_invalidate('m'); COMMIT;")
like "  and a COMMIT's invalidation goes to the retry queue" "$out" "queued for retry"
chmod 755 "$dir"
$R cli BGSAVE >/dev/null
check "  which delivers it once a save succeeds" wait_delivered
is "  and the key is gone" "$($R cli EXISTS st:m)" "0"
$R cli CONFIG SET save "" >/dev/null
rm -f "$dir/dump.rdb"

# BUSYGROUP is not BUSY: an error of that command, and Redis stays usable
q "SELECT redis_command('XGROUP', 'CREATE', 'st:s', 'g', '\$', 'MKSTREAM')" >/dev/null
out=$(qv <<<"SELECT redis_command('XGROUP', 'CREATE', 'st:s', 'g', '\$', 'MKSTREAM')")
like "an error whose code only begins like BUSY (BUSYGROUP) is that command's error (38000)" "$out" \
	"ERROR:  38000: Redis returned an error
DETAIL:  XGROUP: BUSYGROUP"
is "  and the next call goes through at once (no backoff)" "$(q "SELECT redis_command('DEL', 'st:s')")" "1"
