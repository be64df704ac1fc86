# Without shared_preload_libraries: no shared memory and no worker; a
# backend keeps the invalidations it could not send after COMMIT and sends
# them before its next Redis call.
. "$(dirname "$0")/../tap.sh"
bmf_start_pg "shared_preload_libraries = ''
bmfredis.host = '127.0.0.1'
bmfredis.port = $BMF_REDIS_PORT" nopreload
trap 'bmf_stop_pid "$BMF_PG_PID" INT' EXIT
tap_db bmf_nopreload
R=$BMF_REDISCTL

is "no worker, no shared retry queue" "$(q "SELECT worker_pid IS NULL FROM redis_health()")" "t"
out=$(qs <<'SQL'
SET bmfredis.key_prefix = 'np:';
SET bmfredis.connect_timeout = '300ms';
SET bmfredis.retry_backoff_max = '300ms';
SELECT redis_cache_set('a', 'cached');
\! $BMF_REDISCTL stop
SELECT redis_invalidate('a');
SELECT retry_pending FROM redis_health();
\! $BMF_REDISCTL start
SELECT pg_sleep(0.4);
SELECT redis_cache_get('a') IS NULL AS invalidated_before_the_read;
SELECT retry_pending FROM redis_health();
SQL
)
like "a failed post-commit invalidation warns and says when it will be retried" "$out" "this session sends them before its next Redis call"
like "it waits in the session's own queue" "$out" "t?
1
"
like "the next Redis call sends it before reading" "$out" "t
0$"
is "the server log names the preloading cure" "$(grep -c 'preload bmfredis for a worker' "$BMF_WORK/nopreload.log")" "1"
