# messages: each failure names its real cause and the setting that governs
# it (a connect that times out is not a command timeout; a dead Redis is
# not "catching up"), with the SQLSTATE of its kind.
. "$(dirname "$0")/../tap.sh"
tap_db bmf_msg
R=$BMF_REDISCTL
trap '$R resume' EXIT

# a fresh connection to a frozen Redis: the kernel accepts, Redis never answers
$R pause
out=$(qv <<<"SET bmfredis.connect_timeout = '300ms'; SET bmfredis.on_error = 'error'; SELECT redis_cache_get('k');")
$R resume
like "a connect that times out is a connect error (08001)" "$out" "ERROR:  08001: could not connect to Redis"
like "  that says Redis accepted but did not answer, within bmfredis.connect_timeout and its value" "$out" \
	"DETAIL:  127\.0\.0\.1:[0-9]+ accepted the connection but did not answer AUTH, SELECT and CLIENT SETNAME within bmfredis\.connect_timeout \(300 ms\)\."
refute "  and does not speak of the command timeout" grep -q "command timeout\|command_timeout" <<<"$out"

# a pooled connection, then Redis frozen: the command's own timeout
out=$(qv <<SQL
SET bmfredis.command_timeout = '300ms'; SET bmfredis.on_error = 'error';
SELECT redis_cache_set('k', 'v');
\! $R pause
SELECT redis_cache_get('k');
\! $R resume
SQL
)
like "a command that gets no reply names bmfredis.command_timeout and its value" "$out" \
	"ERROR:  08006: Redis command timed out
DETAIL:  No reply from 127\.0\.0\.1:[0-9]+ within bmfredis\.command_timeout \(300 ms\)\."

# COMMIT's send is bounded by bmfredis.flush_timeout, and says so
out=$(qv <<SQL
SET bmfredis.flush_timeout = '300ms';
SELECT redis_cache_set('k', 'v');
\! $R pause
SELECT redis_invalidate('k');
\! $R resume
SQL
)
like "a COMMIT whose send times out names bmfredis.flush_timeout" "$out" \
	"WARNING:  08006: could not send 1 queued Redis invalidations or messages after commit
DETAIL:  Redis command timed out: No reply from 127\.0\.0\.1:[0-9]+ within the [0-9]+ ms this call allowed\. COMMIT sends for at most bmfredis\.flush_timeout\."
sleep 1

# Redis dead with invalidations waiting: the error is the connection's,
# not "catching up"
out=$(qv <<SQL
SET bmfredis.retry_backoff_base = '5s'; SET bmfredis.retry_backoff_max = '5s';
SELECT redis_cache_set('k', 'v');
\! $R stop
SELECT redis_invalidate('k');
SET bmfredis.on_error = 'error';
SELECT redis_cache_get('k');
\! $R start
SQL
)
like "with on_error = error and Redis dead while invalidations wait, the error says Redis is unavailable" "$out" \
	"ERROR:  08006: Redis is unavailable"
like "  and why: the connection was refused" "$out" \
	"DETAIL:  127\.0\.0\.1:[0-9]+ failed [0-9]+ ms ago and is left alone for another [0-9]+ ms \(bmfredis\.retry_backoff_base and retry_backoff_max\); last error: could not connect to Redis: Connection to 127\.0\.0\.1:[0-9]+ failed: Connection refused\."
refute "  not that Redis is catching up" grep -q "catching up" <<<"$out"

# a refused connect says where to look (nothing waiting to be sent first)
for _ in $(seq 1 100); do [ "$(q "SELECT retry_pending FROM redis_health()")" = 0 ] && break; sleep 0.1; done
$R stop
out=$(qv <<<"SET bmfredis.on_error = 'error'; SELECT redis_disconnect(); SELECT redis_cache_get('k');")
$R start
like "a refused connect hints at bmfredis.host and port" "$out" \
	"HINT:  Check that Redis runs where bmfredis.host and bmfredis.port \(or bmfredis.url, or the sentinels\) say"

# a value too big for its time (the issue's 400 MB): the timeout cuts a
# transfer under way, which says nothing against Redis, so the session's
# next call is served, not refused for a backoff
out=$(qv <<SQL
SET bmfredis.command_timeout = '100ms'; SET bmfredis.on_error = 'error';
SELECT redis_cache_set('small', 'v');
SELECT redis_cache_set('big', repeat('x', 400 * 1024 * 1024));
SELECT redis_cache_get('small');
SELECT failures, retry_after IS NULL AS up FROM redis_connections();
SQL
)
like "a 400 MB write cut by command_timeout says the node is not marked down, and what to raise" "$out" \
	"ERROR:  08006: Redis command timed out
DETAIL:  Sending to 127\.0\.0\.1:[0-9]+ did not finish within bmfredis\.command_timeout \(100 ms\); bytes were still moving, so the node is not marked down\.
HINT:  .*"
like "  and the session's next call is served (no failure counted, no backoff)" "$out" "
v
0\|t$"
# while a frozen Redis with the same short timeout still backs off
out=$(qv <<SQL
SET bmfredis.command_timeout = '100ms'; SET bmfredis.on_error = 'error';
SELECT redis_cache_get('small');
\! $R pause
SELECT redis_cache_get('small');
\! $R resume
SELECT failures > 0 AS backing_off FROM redis_connections();
SQL
)
like "  while a frozen Redis, at the same timeout, is still marked down" "$out" "No reply from .*
t$"
