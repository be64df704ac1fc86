/*-------------------------------------------------------------------------
 *
 * locks.c
 *		Distributed locks and fair counting semaphores in Redis, with
 *		PostgreSQL's own lock vocabulary: session and transaction scope,
 *		try and wait variants.
 *
 * Keys (hash-tagged, so that every script touches one Cluster slot):
 *	<prefix>lock:{name}			the mutex: the owner's token, with a TTL
 *	<prefix>lock:{name}:fence	the last fencing number handed out; kept a day
 *								longer than the lock (FENCE_KEEP_MS)
 *	<prefix>sem:{name}			holders: sorted set token -> expiry (ms)
 *	<prefix>sem:{name}:queue	waiters: sorted set token -> ticket (FIFO)
 *	<prefix>sem:{name}:seen		waiters: sorted set token -> last poll (ms)
 *	<prefix>sem:{name}:ticket	the ticket counter
 *
 * Safety rules:
 *	- Locks never degrade: if Redis cannot be asked, acquiring is an ERROR,
 *	  whatever bmfredis.on_error says.  No lock is ever reported held that
 *	  is not.
 *	- Every script compares the owner's token, so a wrong or stale token
 *	  releases or extends nothing, and a lock lost to its TTL is never
 *	  touched once someone else holds it.  Acquire is SET NX PX inside a
 *	  script that also recognises our own token: if the reply of a
 *	  successful acquire was lost, the retry sees the lock is already ours.
 *	  All scripts are therefore safe to re-send.
 *	- Fencing numbers only ever increase for a lock name: the script takes
 *	  the larger of the stored fence + 1 and a floor from a PostgreSQL
 *	  sequence (bmfredis.lock_fence, which survives restarts), so even a
 *	  Redis restarted without persistence cannot hand out a smaller one.
 *	  The floor is taken only for an attempt that can succeed: a waiter
 *	  polls with a probe that takes nothing, and asks for a floor when the
 *	  lock looked free.  Since every holder took its floor before it took
 *	  the lock, a floor taken after the lock was seen free is larger than
 *	  any fence handed out before, so the stored fence need not outlive the
 *	  lock by much: it expires a day after the lock would (in read-only
 *	  transactions and on standbys, where the sequence cannot advance and
 *	  the stored number alone counts, numbers may start again after that).
 *	- Waiting is polling with backoff through the interruptible latch wait:
 *	  statement_timeout and pg_cancel_backend() work.
 *	- Transaction locks and permits are released at COMMIT or ROLLBACK (and
 *	  at the abort of the subtransaction that took them), session ones at
 *	  backend exit, all best effort within bmfredis.command_timeout; their
 *	  TTL frees them if the backend dies hard.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "commands/sequence.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "base/compat.h"
#include "base/guc.h"
#include "base/sqlutil.h"
#include "base/stats.h"
#include "base/wait.h"
#include "client/client.h"
#include "xact/xact.h"

PG_FUNCTION_INFO_V1(redis_lock);
PG_FUNCTION_INFO_V1(redis_try_lock);
PG_FUNCTION_INFO_V1(redis_xact_lock);
PG_FUNCTION_INFO_V1(redis_try_xact_lock);
PG_FUNCTION_INFO_V1(redis_lock_fenced);
PG_FUNCTION_INFO_V1(redis_unlock);
PG_FUNCTION_INFO_V1(redis_lock_extend);
PG_FUNCTION_INFO_V1(redis_locks);
PG_FUNCTION_INFO_V1(redis_with_lock);
PG_FUNCTION_INFO_V1(redis_semaphore_acquire);
PG_FUNCTION_INFO_V1(redis_semaphore_try_acquire);
PG_FUNCTION_INFO_V1(redis_semaphore_xact_acquire);
PG_FUNCTION_INFO_V1(redis_semaphore_try_xact_acquire);
PG_FUNCTION_INFO_V1(redis_semaphore_release);
PG_FUNCTION_INFO_V1(redis_semaphore_refresh);

#define TOKEN_LEN 32			/* hex of 16 random bytes */
#define WAITER_STALE_MS 2000	/* a semaphore waiter not seen for this long has left */

/* A lock or permit this backend holds. */
typedef struct Held
{
	char		kind;			/* 'l' mutex, 's' semaphore permit */
	bool		xact;			/* released at the end of the transaction */
	SubTransactionId subid;		/* the subtransaction that took it */
	char	   *name;
	char	   *key;			/* full key (mutex) or holders set (semaphore) */
	char		token[TOKEN_LEN + 1];
	int64		fence;
	int64		ttl_ms;
	TimestampTz acquired;
} Held;

static List *held = NIL;		/* of Held, in TopMemoryContext */
static bool callbacks_registered = false;

/* ---- scripts ---- */

/*
 * KEYS: lock, fence; ARGV: token, ttl ms, fence floor, fence ttl ms ->
 * {1, fence} taken (or ours already) | {0, pttl} held | {2, 0} free, but a
 * probe (floor -1) takes nothing
 */
static RedisScript acquire_script = REDIS_SCRIPT("lock acquire",
"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
"  return {1, tonumber(redis.call('GET', KEYS[2]) or '0')}\n"
"end\n"
"if ARGV[3] == '-1' then\n"
"  if redis.call('EXISTS', KEYS[1]) == 0 then return {2, 0} end\n"
"  return {0, redis.call('PTTL', KEYS[1])}\n"
"end\n"
"if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
"  local f = tonumber(redis.call('GET', KEYS[2]) or '0') + 1\n"
"  local floor = tonumber(ARGV[3])\n"
"  if floor > f then f = floor end\n"
"  redis.call('SET', KEYS[2], f, 'PX', ARGV[4])\n"
"  return {1, f}\n"
"end\n"
"return {0, redis.call('PTTL', KEYS[1])}\n");

/* the fence key lives this much longer than the lock it numbers */
#define FENCE_KEEP_MS ((int64) 24 * 3600 * 1000)

/* KEYS: lock; ARGV: token -> 1 released, 0 not ours */
static RedisScript release_script = REDIS_SCRIPT("lock release",
"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
"  return redis.call('DEL', KEYS[1])\n"
"end\n"
"return 0\n");

/* KEYS: lock, fence; ARGV: token, ttl ms, fence ttl ms -> 1 extended, 0 not ours */
static RedisScript extend_script = REDIS_SCRIPT("lock extend",
"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
"  local t = redis.call('PTTL', KEYS[2])\n"
"  if t == -1 or (t >= 0 and t < tonumber(ARGV[3])) then\n"
"    redis.call('PEXPIRE', KEYS[2], ARGV[3])\n"
"  end\n"
"  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
"end\n"
"return 0\n");

/*
 * The fair semaphore, on Redis' clock.  KEYS: holders, queue, seen,
 * ticket; ARGV: token, max, ttl ms, stay queued (1/0), stale ms.
 * -> 1 acquired (or already held), 0 not now.
 */
static RedisScript sem_acquire_script = REDIS_SCRIPT("semaphore acquire",
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local token, max, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
"local stale = tonumber(ARGV[5])\n"
"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
"for _, g in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - stale)) do\n"
"  redis.call('ZREM', KEYS[2], g)\n"
"  redis.call('ZREM', KEYS[3], g)\n"
"end\n"
"local function keep()\n"
"  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')\n"
"  if last[2] then redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(last[2]))) end\n"
"  for i = 2, 4 do redis.call('PEXPIRE', KEYS[i], math.max(ttl, stale) * 2) end\n"
"end\n"
"if redis.call('ZSCORE', KEYS[1], token) then\n"
"  redis.call('ZADD', KEYS[1], now + ttl, token)\n"
"  keep()\n"
"  return 1\n"
"end\n"
"if not redis.call('ZSCORE', KEYS[2], token) then\n"
"  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), token)\n"
"end\n"
"redis.call('ZADD', KEYS[3], now, token)\n"
"local rank = redis.call('ZRANK', KEYS[2], token)\n"
"if rank < max - redis.call('ZCARD', KEYS[1]) then\n"
"  redis.call('ZADD', KEYS[1], now + ttl, token)\n"
"  redis.call('ZREM', KEYS[2], token)\n"
"  redis.call('ZREM', KEYS[3], token)\n"
"  keep()\n"
"  return 1\n"
"end\n"
"if ARGV[4] ~= '1' then\n"
"  redis.call('ZREM', KEYS[2], token)\n"
"  redis.call('ZREM', KEYS[3], token)\n"
"end\n"
"keep()\n"
"return 0\n");

/* KEYS: holders, queue, seen; ARGV: token -> 1 released, 0 not held */
static RedisScript sem_release_script = REDIS_SCRIPT("semaphore release",
"redis.call('ZREM', KEYS[2], ARGV[1])\n"
"redis.call('ZREM', KEYS[3], ARGV[1])\n"
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local score = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
"redis.call('ZREM', KEYS[1], ARGV[1])\n"
"if score and tonumber(score) > now then return 1 end\n"
"return 0\n");

/* KEYS: holders; ARGV: token, ttl ms -> 1 refreshed, 0 lost */
static RedisScript sem_refresh_script = REDIS_SCRIPT("semaphore refresh",
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local score = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
"if score and tonumber(score) > now then\n"
"  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[2]), ARGV[1])\n"
"  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')\n"
"  redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(last[2])))\n"
"  return 1\n"
"end\n"
"return 0\n");

/* ---- helpers ---- */

static void lock_xact_callback(XactEvent event, void *arg);
static void lock_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
								  SubTransactionId parentSubid, void *arg);
static void lock_exit(int code, Datum arg);

static void
ensure_callbacks(void)
{
	if (callbacks_registered)
		return;
	RegisterXactCallback(lock_xact_callback, NULL);
	RegisterSubXactCallback(lock_subxact_callback, NULL);
	before_shmem_exit(lock_exit, (Datum) 0);
	callbacks_registered = true;
}

static void
new_token(char *out)
{
	uint8		b[TOKEN_LEN / 2];
	int			i;

	if (!pg_strong_random(b, sizeof(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random lock token")));
	for (i = 0; i < TOKEN_LEN / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* <prefix>lock:{name} or <prefix>sem:{name}, plus suffix */
static char *
lock_key(const char *kind, const char *name, const char *suffix)
{
	StringInfoData k;

	initStringInfo(&k);
	RedisKeyPrefix(&k);
	appendStringInfo(&k, "%s:{%s}%s", kind, name, suffix);
	return k.data;
}

static char *
name_arg(FunctionCallInfo fcinfo, int argno)
{
	text	   *t = BmfTextArg(fcinfo, argno, "lock name");

	RedisCheckKey("lock name", VARSIZE_ANY_EXHDR(t));
	return text_to_cstring(t);
}

static int64
ms_arg(FunctionCallInfo fcinfo, int argno, int64 dflt, const char *what)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return dflt;
	return BmfIntervalToMs(PG_GETARG_INTERVAL_P(argno), what);
}

/* Run a lock script; Redis faults are ERRORs (locks never degrade). */
static RedisReply *
run_script(RedisScript *script, int nkeys, const char *const *keys,
		   int nargs, const char *const *args)
{
	RedisArgs	a;
	int			i;

	RedisArgsInit(&a, nkeys + nargs + 3);
	RedisArgsScript(&a, script, nkeys);
	for (i = 0; i < nkeys; i++)
		RedisArgsAddStr(&a, keys[i]);
	for (i = 0; i < nargs; i++)
		RedisArgsAddStr(&a, args[i]);
	return RedisCommand(REDIS_STRICT, REDIS_IDEMPOTENT, &a, NULL);
}

static Held *
find_held(char kind, const char *name, const char *token)
{
	ListCell   *lc;

	foreach(lc, held)
	{
		Held	   *h = lfirst(lc);

		if (h->kind == kind && strcmp(h->name, name) == 0 &&
			(token == NULL || strcmp(h->token, token) == 0))
			return h;
	}
	return NULL;
}

static Held *
remember(char kind, bool xact, const char *name, const char *key,
		 const char *token, int64 fence, int64 ttl_ms)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
	Held	   *h = palloc0(sizeof(Held));

	h->kind = kind;
	h->xact = xact;
	h->subid = xact ? GetCurrentSubTransactionId() : InvalidSubTransactionId;
	h->name = pstrdup(name);
	h->key = pstrdup(key);
	strlcpy(h->token, token, sizeof(h->token));
	h->fence = fence;
	h->ttl_ms = ttl_ms;
	h->acquired = GetCurrentTimestamp();
	held = lappend(held, h);
	MemoryContextSwitchTo(old);
	return h;
}

static void
forget(Held *h)
{
	held = list_delete_ptr(held, h);
	pfree(h->name);
	pfree(h->key);
	pfree(h);
}

/*
 * A floor for fencing numbers from bmfredis.lock_fence, which only moves
 * forward, across restarts of PostgreSQL and of Redis.  0 where a sequence
 * cannot advance (read-only transactions, standbys): the Redis counter
 * alone then.
 */
static int64
fence_floor(void)
{
	Oid			nsp;
	Oid			seq;

	if (RecoveryInProgress() || XactReadOnly)
		return 0;
	nsp = get_namespace_oid("bmfredis", true);
	seq = OidIsValid(nsp) ? get_relname_relid("lock_fence", nsp) : InvalidOid;
	if (!OidIsValid(seq))
		return 0;
	return nextval_internal(seq, false);
}

/* the cap bounds how long a freed lock stays unclaimed */
#define LOCK_POLL_MAX_MS 10

/* ---- mutex ---- */

/*
 * Acquire name: wait up to wait_ms (-1: do not wait; NULL result when
 * held elsewhere).  Returns the Held entry.
 */
static Held *
acquire_lock(const char *name, int64 ttl_ms, int64 wait_ms, bool xact)
{
	const char *keys[2];
	const char *args[4];
	char		token[TOKEN_LEN + 1];
	char		ttl[24];
	char		floor[24];
	char		fence_ttl[24];
	TimestampTz deadline = 0;
	int			delay = 1;
	bool		waited = false;
	bool		probe = false;
	Held	   *h;

	ensure_callbacks();
	h = find_held('l', name, NULL);
	if (h)
		return h;				/* already ours: acquiring again is a no-op */

	keys[0] = lock_key("lock", name, "");
	keys[1] = lock_key("lock", name, ":fence");
	new_token(token);
	pg_lltoa(ttl_ms, ttl);
	pg_lltoa(ttl_ms + FENCE_KEEP_MS, fence_ttl);
	args[0] = token;
	args[1] = ttl;
	args[2] = floor;
	args[3] = fence_ttl;
	if (wait_ms > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);

	for (;;)
	{
		RedisReply *r;

		/* a floor only for an attempt that can take the lock */
		if (probe)
			strcpy(floor, "-1");
		else
			pg_lltoa(fence_floor(), floor);
		r = run_script(&acquire_script, 2, keys, 4, args);
		RedisExpectArray(r, 2, RESP_INTEGER, "a lock acquisition");
		if (r->element[0]->integer == 1)
		{
			BmfStatsCount(STAT_LOCKS_ACQUIRED, 1);
			return remember('l', xact, name, keys[0], token, r->element[1]->integer, ttl_ms);
		}
		if (r->element[0]->integer == 2)
		{
			probe = false;		/* free: try for real, at once */
			continue;
		}
		probe = true;
		if (wait_ms < 0)
			return NULL;
		if (!waited)
		{
			BmfStatsCount(STAT_LOCK_WAITS, 1);
			waited = true;
		}
		if (GetCurrentTimestamp() >= deadline)
		{
			BmfStatsCount(STAT_LOCK_TIMEOUTS, 1);
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("could not obtain Redis lock \"%s\"", name),
					 errdetail("Another holder has it; it expires in %lld ms unless extended.",
							   (long long) r->element[1]->integer),
					 errhint("Wait longer, or use redis_try_lock() to get NULL instead of waiting.")));
		}
		delay = BmfPollSleep(delay, LOCK_POLL_MAX_MS, deadline);
	}
}

static Datum
token_datum(FunctionCallInfo fcinfo, Held *h)
{
	if (h == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(h->token));
}

/*
 * (name, ttl DEFAULT '30s'[, wait DEFAULT '10s']) -> token, for the four
 * lock functions: the try_ forms do not wait, the xact_ forms release at
 * the end of the transaction.
 */
static Datum
lock_function(FunctionCallInfo fcinfo, bool waits, bool xact)
{
	char	   *name = name_arg(fcinfo, 0);
	int64		ttl = ms_arg(fcinfo, 1, 30000, "lock TTL");
	int64		wait = waits ? ms_arg(fcinfo, 2, 10000, "lock wait") : -1;

	return token_datum(fcinfo, acquire_lock(name, ttl, wait, xact));
}

Datum
redis_lock(PG_FUNCTION_ARGS)
{
	return lock_function(fcinfo, true, false);
}

Datum
redis_try_lock(PG_FUNCTION_ARGS)
{
	return lock_function(fcinfo, false, false);
}

Datum
redis_xact_lock(PG_FUNCTION_ARGS)
{
	return lock_function(fcinfo, true, true);
}

Datum
redis_try_xact_lock(PG_FUNCTION_ARGS)
{
	return lock_function(fcinfo, false, true);
}

/* redis_lock_fenced(name, ttl, wait, xact) -> (token, fence) */
Datum
redis_lock_fenced(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0);
	int64		ttl = ms_arg(fcinfo, 1, 30000, "lock TTL");
	int64		wait = ms_arg(fcinfo, 2, 10000, "lock wait");
	bool		xact = !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);
	Held	   *h = acquire_lock(name, ttl, wait, xact);
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = CStringGetTextDatum(h->token);
	values[1] = Int64GetDatum(h->fence);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

static void
warn_lost(const char *what, const char *name)
{
	ereport(WARNING,
			(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("Redis %s \"%s\" was lost", what, name),
			 errdetail("Its TTL ran out, Redis restarted, or the token is not the holder's; another session may have held it since."),
			 errhint("Give it a longer TTL, or extend it while the work runs.")));
}

/* Release one held entry (or a token given by the caller). */
static bool
release(char kind, const char *name, const char *token, bool warn)
{
	RedisReply *r;
	bool		ok;
	Held	   *h = find_held(kind, name, token);

	if (kind == 'l')
	{
		const char *keys[1] = {lock_key("lock", name, "")};
		const char *args[1] = {token};

		r = run_script(&release_script, 1, keys, 1, args);
	}
	else
	{
		const char *keys[3] = {lock_key("sem", name, ""), lock_key("sem", name, ":queue"),
		lock_key("sem", name, ":seen")};
		const char *args[1] = {token};

		r = run_script(&sem_release_script, 3, keys, 1, args);
	}
	ok = (r->type == RESP_INTEGER && r->integer == 1);
	if (h)
		forget(h);
	if (!ok && warn)
		warn_lost(kind == 'l' ? "lock" : "semaphore permit", name);
	return ok;
}

/* redis_unlock(name, token DEFAULT NULL): NULL token: the one we hold */
Datum
redis_unlock(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0);
	char	   *token;

	if (PG_NARGS() > 1 && !PG_ARGISNULL(1))
		token = text_to_cstring(PG_GETARG_TEXT_PP(1));
	else
	{
		Held	   *h = find_held('l', name, NULL);

		if (h == NULL)
		{
			ereport(WARNING,
					(errmsg("this session does not hold Redis lock \"%s\"", name),
					 errhint("Pass the token to release a lock taken elsewhere.")));
			PG_RETURN_BOOL(false);
		}
		token = pstrdup(h->token);
	}
	PG_RETURN_BOOL(release('l', name, token, true));
}

/* redis_lock_extend(name, token, ttl) -> boolean */
Datum
redis_lock_extend(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0);
	char	   *token;
	int64		ttl = ms_arg(fcinfo, 2, 30000, "lock TTL");
	char		ttlbuf[24];
	char		fence_ttlbuf[24];
	RedisReply *r;
	Held	   *h;

	if (PG_ARGISNULL(1))
	{
		h = find_held('l', name, NULL);
		if (h == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("lock token must not be null"),
					 errhint("This session holds no lock \"%s\" to extend.", name)));
		token = h->token;
	}
	else
		token = text_to_cstring(PG_GETARG_TEXT_PP(1));
	pg_lltoa(ttl, ttlbuf);
	pg_lltoa(ttl + FENCE_KEEP_MS, fence_ttlbuf);
	{
		const char *keys[2] = {lock_key("lock", name, ""), lock_key("lock", name, ":fence")};
		const char *args[3] = {token, ttlbuf, fence_ttlbuf};

		r = run_script(&extend_script, 2, keys, 3, args);
	}
	if (r->type == RESP_INTEGER && r->integer == 1)
	{
		h = find_held('l', name, token);
		if (h)
			h->ttl_ms = ttl;
		PG_RETURN_BOOL(true);
	}
	h = find_held('l', name, token);
	if (h)
		forget(h);
	warn_lost("lock", name);
	PG_RETURN_BOOL(false);
}

/* ---- semaphore ---- */

static Held *
acquire_permit(const char *name, int max, int64 ttl_ms, int64 wait_ms, bool xact)
{
	const char *keys[4];
	const char *args[5];
	char		token[TOKEN_LEN + 1];
	char		maxbuf[16];
	char		ttl[24];
	char		stale[24];
	TimestampTz deadline = 0;
	int			delay = 1;
	bool		waited = false;

	ensure_callbacks();
	if (max < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a semaphore needs at least one holder"),
				 errdetail("max_holders is %d.", max),
				 errhint("max_holders is how many sessions may hold a permit at once; every caller of a semaphore passes the same number.")));
	keys[0] = lock_key("sem", name, "");
	keys[1] = lock_key("sem", name, ":queue");
	keys[2] = lock_key("sem", name, ":seen");
	keys[3] = lock_key("sem", name, ":ticket");
	new_token(token);
	snprintf(maxbuf, sizeof(maxbuf), "%d", max);
	pg_lltoa(ttl_ms, ttl);
	pg_lltoa(WAITER_STALE_MS, stale);
	args[0] = token;
	args[1] = maxbuf;
	args[2] = ttl;
	args[3] = wait_ms > 0 ? "1" : "0";
	args[4] = stale;
	if (wait_ms > 0)
		deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);

	/*
	 * A waiter that is cancelled simply stops polling: it leaves the queue
	 * when it has not been seen for WAITER_STALE_MS.
	 */
	for (;;)
	{
		RedisReply *r = run_script(&sem_acquire_script, 4, keys, 5, args);

		RedisExpect(r, RESP_INTEGER, "a semaphore acquisition");
		if (r->integer == 1)
		{
			BmfStatsCount(STAT_LOCKS_ACQUIRED, 1);
			break;
		}
		if (wait_ms <= 0)
		{
			token[0] = '\0';
			break;
		}
		if (!waited)
		{
			BmfStatsCount(STAT_LOCK_WAITS, 1);
			waited = true;
		}
		if (GetCurrentTimestamp() >= deadline)
		{
			const char *qkeys[3] = {keys[0], keys[1], keys[2]};
			const char *qargs[1] = {token};

			/* give our place in the queue up now, not when it goes stale */
			(void) run_script(&sem_release_script, 3, qkeys, 1, qargs);
			BmfStatsCount(STAT_LOCK_TIMEOUTS, 1);
			ereport(ERROR,
					(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
					 errmsg("could not obtain a permit of Redis semaphore \"%s\"", name),
					 errdetail("All %d permits are held, or taken by earlier waiters.", max),
					 errhint("Wait longer, or use redis_semaphore_try_acquire() to get NULL instead of waiting.")));
		}
		delay = BmfPollSleep(delay, LOCK_POLL_MAX_MS, deadline);
	}
	if (token[0] == '\0')
		return NULL;
	return remember('s', xact, name, keys[0], token, 0, ttl_ms);
}

static Datum
sem_acquire(FunctionCallInfo fcinfo, bool wait, bool xact)
{
	char	   *name = name_arg(fcinfo, 0);
	int			max;
	int64		ttl;
	int64		wait_ms = -1;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_holders must not be null"),
				 errhint("max_holders is how many sessions may hold a permit at once.")));
	max = PG_GETARG_INT32(1);
	ttl = ms_arg(fcinfo, 2, 30000, "permit TTL");
	if (wait)
		wait_ms = ms_arg(fcinfo, 3, 10000, "semaphore wait");
	return token_datum(fcinfo, acquire_permit(name, max, ttl, wait_ms, xact));
}

Datum
redis_semaphore_acquire(PG_FUNCTION_ARGS)
{
	return sem_acquire(fcinfo, true, false);
}

Datum
redis_semaphore_try_acquire(PG_FUNCTION_ARGS)
{
	return sem_acquire(fcinfo, false, false);
}

Datum
redis_semaphore_xact_acquire(PG_FUNCTION_ARGS)
{
	return sem_acquire(fcinfo, true, true);
}

Datum
redis_semaphore_try_xact_acquire(PG_FUNCTION_ARGS)
{
	return sem_acquire(fcinfo, false, true);
}

Datum
redis_semaphore_release(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0);
	char	   *token;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("permit token must not be null")));
	token = text_to_cstring(PG_GETARG_TEXT_PP(1));
	PG_RETURN_BOOL(release('s', name, token, true));
}

Datum
redis_semaphore_refresh(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0);
	char	   *token;
	int64		ttl = ms_arg(fcinfo, 2, 30000, "permit TTL");
	char		ttlbuf[24];
	RedisReply *r;
	Held	   *h;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("permit token must not be null")));
	token = text_to_cstring(PG_GETARG_TEXT_PP(1));
	pg_lltoa(ttl, ttlbuf);
	{
		const char *keys[1] = {lock_key("sem", name, "")};
		const char *args[2] = {token, ttlbuf};

		r = run_script(&sem_refresh_script, 1, keys, 2, args);
	}
	h = find_held('s', name, token);
	if (r->type == RESP_INTEGER && r->integer == 1)
	{
		if (h)
			h->ttl_ms = ttl;
		PG_RETURN_BOOL(true);
	}
	if (h)
		forget(h);
	warn_lost("semaphore permit", name);
	PG_RETURN_BOOL(false);
}

/* ---- confirmation before COMMIT ---- */

/*
 * Still ours, each of entries[0..n) (locks and permits): extended by its
 * TTL in one pipeline, so that it also outlives what follows (the COMMIT).
 * One that was lost (its TTL ran out, Redis restarted without it, another
 * session holds it) is an ERROR: the work it guarded may have overlapped
 * another holder's, and must not commit.  So is a Redis that cannot be
 * asked: locks never degrade.  when: "before COMMIT", "after the statement".
 */
static void
confirm_held(List *entries, const char *when)
{
	RedisBatch	b;
	RedisReply **replies;
	ListCell   *lc;
	int			i = 0;

	if (entries == NIL)
		return;
	RedisBatchInit(&b);
	foreach(lc, entries)
	{
		Held	   *h = lfirst(lc);
		RedisArgs	a;
		char		ttl[24];
		char		fence_ttl[24];

		pg_lltoa(h->ttl_ms, ttl);
		pg_lltoa(h->ttl_ms + FENCE_KEEP_MS, fence_ttl);
		RedisArgsInit(&a, 8);
		if (h->kind == 'l')
		{
			RedisArgsScript(&a, &extend_script, 2);
			RedisArgsAddStr(&a, h->key);
			RedisArgsAddStr(&a, lock_key("lock", h->name, ":fence"));
			RedisArgsAddStr(&a, h->token);
			RedisArgsAddStr(&a, pstrdup(ttl));
			RedisArgsAddStr(&a, pstrdup(fence_ttl));
		}
		else
		{
			RedisArgsScript(&a, &sem_refresh_script, 1);
			RedisArgsAddStr(&a, h->key);
			RedisArgsAddStr(&a, h->token);
			RedisArgsAddStr(&a, pstrdup(ttl));
		}
		RedisBatchAdd(&b, &a);
	}
	replies = RedisPipeline(REDIS_STRICT, REDIS_IDEMPOTENT, &b, 0, NULL);
	foreach(lc, entries)
	{
		Held	   *h = lfirst(lc);

		if (replies[i]->type == RESP_ERROR)
			RedisRaiseReplyError(replies[i], h->kind == 'l' ? "lock extend" : "semaphore refresh");
		if (replies[i]->type != RESP_INTEGER || replies[i]->integer != 1)
		{
			const char *what = h->kind == 'l' ? "lock" : "semaphore permit";
			char	   *name = pstrdup(h->name);
			int64		ttl = h->ttl_ms;

			forget(h);			/* not ours: nothing to release */
			BmfStatsCount(STAT_LOCKS_LOST, 1);
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("Redis %s \"%s\" was lost %s", what, name, when),
					 errdetail("It was taken with a TTL of %lld ms, which ran out while the transaction ran (or Redis restarted without it, or another session took it), so the work it guarded may have overlapped another holder's; the transaction is rolled back.",
							   (long long) ttl),
					 errhint("Give the lock a TTL longer than the work, or extend it while the work runs (redis_lock_extend, redis_semaphore_refresh).")));
		}
		i++;
	}
}

/* The transaction's locks and permits, confirmed before it commits. */
static void
confirm_xact_held(void)
{
	List	   *mine = NIL;
	ListCell   *lc;

	foreach(lc, held)
		if (((Held *) lfirst(lc))->xact)
			mine = lappend(mine, lfirst(lc));
	confirm_held(mine, "before COMMIT");
	list_free(mine);
}

/* ---- scopes ---- */

/*
 * Release the held entries matching xact (and subid >= min_subid), in one
 * pipeline, quietly: this runs at transaction end and at backend exit,
 * where nothing may throw.  A lock found lost gets a WARNING.
 */
static void
release_all(bool xact_only, SubTransactionId min_subid)
{
	RedisBatch	b;
	RedisReply **replies;
	RedisError	err;
	List	   *mine = NIL;
	ListCell   *lc;
	int			i = 0;

	foreach(lc, held)
	{
		Held	   *h = lfirst(lc);

		if ((!xact_only || h->xact) && (min_subid == InvalidSubTransactionId || h->subid >= min_subid))
			mine = lappend(mine, h);
	}
	if (mine == NIL)
		return;
	RedisBatchInit(&b);
	foreach(lc, mine)
	{
		Held	   *h = lfirst(lc);
		RedisArgs	a;

		RedisArgsInit(&a, 8);
		if (h->kind == 'l')
		{
			RedisArgsScript(&a, &release_script, 1);
			RedisArgsAddStr(&a, h->key);
		}
		else
		{
			RedisArgsScript(&a, &sem_release_script, 3);
			RedisArgsAddStr(&a, h->key);
			RedisArgsAddStr(&a, lock_key("sem", h->name, ":queue"));
			RedisArgsAddStr(&a, lock_key("sem", h->name, ":seen"));
		}
		RedisArgsAddStr(&a, h->token);
		RedisBatchAdd(&b, &a);
	}
	replies = RedisPipeline(REDIS_QUIET, REDIS_IDEMPOTENT | REDIS_FORCE, &b,
							BmfDeadline(bmf_command_timeout), &err);
	foreach(lc, mine)
	{
		Held	   *h = lfirst(lc);

		if (replies == NULL)
			ereport(WARNING,
					(errmsg("could not release Redis %s \"%s\"", h->kind == 'l' ? "lock" : "semaphore permit", h->name),
					 errdetail_internal("%s: %s", err.message, err.detail),
					 errhint("It is freed when its TTL runs out.")));
		else if (replies[i]->type != RESP_INTEGER || replies[i]->integer != 1)
			warn_lost(h->kind == 'l' ? "lock" : "semaphore permit", h->name);
		i++;
		forget(h);
	}
}

static void
release_quietly(bool xact_only, SubTransactionId min_subid)
{
	MemoryContext old = CurrentMemoryContext;

	HOLD_INTERRUPTS();
	PG_TRY();
	{
		release_all(xact_only, min_subid);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		ListCell   *lc;

		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(WARNING,
				(errmsg("could not release Redis locks: %s", edata->message),
				 errhint("They are freed when their TTL runs out.")));
		FreeErrorData(edata);
		/* forget them anyway: they are no longer ours to use */
		foreach(lc, held)
		{
			Held	   *h = lfirst(lc);

			if ((!xact_only || h->xact) && (min_subid == InvalidSubTransactionId || h->subid >= min_subid))
				held = foreach_delete_current(held, lc);
		}
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	RESUME_INTERRUPTS();
}

static bool
holds_xact_locks(void)
{
	ListCell   *lc;

	foreach(lc, held)
		if (((Held *) lfirst(lc))->xact)
			return true;
	return false;
}

static void
lock_xact_callback(XactEvent event, void *arg)
{
	(void) arg;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (holds_xact_locks())
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that holds transaction-level Redis locks or permits"),
						 errdetail("They are released when the transaction ends, and a prepared transaction ends elsewhere."),
						 errhint("Use session-level locks (redis_lock) and release them yourself.")));
			break;
		case XACT_EVENT_PRE_COMMIT:
			if (holds_xact_locks())
				confirm_xact_held();
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (holds_xact_locks())
			{
				/* the work's invalidations out first, then the lock */
				XactSendCommitted();
				release_quietly(true, InvalidSubTransactionId);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			if (holds_xact_locks())
				release_quietly(true, InvalidSubTransactionId);
			break;
		default:
			break;
	}
}

static void
lock_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	(void) parentSubid;
	(void) arg;
	if (event == SUBXACT_EVENT_ABORT_SUB && holds_xact_locks())
		release_quietly(true, mySubid);
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* what a released savepoint took now belongs to its parent */
		foreach(lc, held)
		{
			Held	   *h = lfirst(lc);

			if (h->xact && h->subid == mySubid)
				h->subid = parentSubid;
		}
	}
}

static void
lock_exit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	if (held != NIL)
		release_quietly(false, InvalidSubTransactionId);
}

/* ---- listing and the wrapper ---- */

/* redis_locks() -> setof (name, kind, scope, token, fence, acquired_at, expires_in) */
Datum
redis_locks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RedisBatch	b;
	RedisReply **replies = NULL;
	RedisError	err;
	ListCell   *lc;
	int			i = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (held == NIL)
		return (Datum) 0;
	RedisBatchInit(&b);
	foreach(lc, held)
	{
		Held	   *h = lfirst(lc);
		RedisArgs	a;

		RedisArgsInit(&a, 3);
		if (h->kind == 'l')
		{
			RedisArgsAddStr(&a, "PTTL");
			RedisArgsAddStr(&a, h->key);
		}
		else
		{
			RedisArgsAddStr(&a, "ZSCORE");
			RedisArgsAddStr(&a, h->key);
			RedisArgsAddStr(&a, h->token);
		}
		RedisBatchAdd(&b, &a);
	}
	replies = RedisPipeline(REDIS_QUIET, REDIS_IDEMPOTENT | REDIS_ERRORS_OK, &b, 0, &err);
	foreach(lc, held)
	{
		Held	   *h = lfirst(lc);
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, true};

		values[0] = CStringGetTextDatum(h->name);
		values[1] = CStringGetTextDatum(h->kind == 'l' ? "lock" : "semaphore");
		values[2] = CStringGetTextDatum(h->xact ? "transaction" : "session");
		values[3] = CStringGetTextDatum(h->token);
		values[4] = Int64GetDatum(h->fence);
		nulls[4] = (h->kind != 'l');
		values[5] = TimestampTzGetDatum(h->acquired);
		if (replies && replies[i]->type == RESP_INTEGER && replies[i]->integer >= 0)
		{
			values[6] = PointerGetDatum(BmfMsToInterval(replies[i]->integer));
			nulls[6] = false;
		}
		else if (replies && replies[i]->type == RESP_STRING)
		{
			/* a permit: its expiry is the score, in Redis' ms */
			int64		left = (int64) strtod(replies[i]->str, NULL) -
				(GetCurrentTimestamp() / 1000 + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000);

			values[6] = PointerGetDatum(BmfMsToInterval(Max(left, 0)));
			nulls[6] = false;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		i++;
	}
	return (Datum) 0;
}

/*
 * redis_with_lock(name, ttl, wait, query) -> bigint: run query while
 * holding the lock; returns the rows the query processed.  The query runs
 * with the caller's privileges.  The lock is held at transaction scope:
 * what the query did is seen by others only at COMMIT, so the lock is
 * released at COMMIT or ROLLBACK (or at the abort of the subtransaction
 * of a caught exception), never before.  It is confirmed (and extended
 * by its TTL) when the query ends and again before COMMIT: lost to its
 * TTL in between, the transaction fails rather than commit work another
 * holder may have overlapped.  A lock the session already held is used
 * as it is (and released as it would have been).
 */
Datum
redis_with_lock(PG_FUNCTION_ARGS)
{
	char	   *name = name_arg(fcinfo, 0);
	int64		ttl = ms_arg(fcinfo, 1, 30000, "lock TTL");
	int64		wait = ms_arg(fcinfo, 2, 10000, "lock wait");
	text	   *query = BmfTextArg(fcinfo, 3, "query");
	char	   *sql = text_to_cstring(query);
	Held	   *h = acquire_lock(name, ttl, wait, true);
	int			rc;
	uint64		processed;

	SPI_connect();
	rc = SPI_execute(sql, false, 0);
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not run the statement under lock \"%s\": %s", name,
						SPI_result_code_string(rc))));
	processed = SPI_processed;
	SPI_finish();
	if (find_held('l', name, NULL) == h)
		confirm_held(list_make1(h), "while the statement ran");
	PG_RETURN_INT64((int64) processed);
}
