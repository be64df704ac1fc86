/*-------------------------------------------------------------------------
 *
 * invalidate.c
 *		Invalidation by key, tag, pattern, namespace and time.
 *
 * Key and tag invalidations follow the transaction (xact.c): by default
 * they are queued and sent after COMMIT; immediate => true (or
 * bmfredis.invalidate_at) sends them now, and an immediate send that
 * fails is queued for commit instead of being lost.  Pattern and
 * namespace invalidation are immediate administrative operations that
 * walk SCAN MATCH with UNLINK in batches (never KEYS), confined under the
 * key prefix.  Scheduled invalidations are rows of
 * bmfredis.scheduled_invalidations, so scheduling is transactional and
 * survives restarts; the worker (or redis_run_scheduled()) runs them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "base/compat.h"
#include "base/guc.h"
#include "base/sqlutil.h"
#include "base/stats.h"
#include "base/wait.h"
#include "client/client.h"
#include "feature/invalidate.h"
#include "xact/effects.h"
#include "xact/retry.h"
#include "xact/xact.h"

PG_FUNCTION_INFO_V1(redis_invalidate);
PG_FUNCTION_INFO_V1(redis_invalidate_many);
PG_FUNCTION_INFO_V1(redis_invalidate_tag);
PG_FUNCTION_INFO_V1(redis_invalidate_tags);
PG_FUNCTION_INFO_V1(redis_invalidate_pattern);
PG_FUNCTION_INFO_V1(redis_flush_namespace);
PG_FUNCTION_INFO_V1(redis_invalidate_at);
PG_FUNCTION_INFO_V1(redis_invalidate_tag_at);
PG_FUNCTION_INFO_V1(redis_run_scheduled);

/*
 * Send effects now (policy REDIS_WRITE) to node: the caller's for
 * explicit invalidations, the server's own for a rule's; what fails is
 * queued for commit so that it is not lost.  Returns keys removed.
 */
int64
InvalidateNow(const RedisNode *node, Effect *effects, int n)
{
	bool	   *done = palloc0(sizeof(bool) * n);
	EffectsResult result;
	RedisError	err;
	int			i;

	/* this backend's near-cache: keys go one by one, anything else drops it all */
	for (i = 0; i < n && RedisNearActive(); i++)
	{
		if (effects[i].kind == EFFECT_KEY)
			RedisNearForget(effects[i].target, effects[i].target_len);
		else
			RedisNearForgetAll();
	}

	if (EffectsSend(node, effects, n,
					BmfDeadline(bmf_command_timeout), done, &result, &err))
	{
		BmfStatsCount(STAT_INVALIDATIONS_SENT, n);
		return result.unlinked;
	}
	if (err.status == RS_REPLY)
		ereport(ERROR,
				(errcode(RedisReplyErrorCode(result.first_error)),
				 errmsg("Redis refused an invalidation"),
				 errdetail_internal("%s", result.first_error)));
	/* a mapped role's send is Redis' ACL check: without it, nothing is queued */
	RedisReportFailure(node != RedisDefaultNode() ? REDIS_STRICT : REDIS_WRITE,
					   REDIS_IDEMPOTENT, &err, "invalidation");
	for (i = 0; i < n; i++)
	{
		if (done[i])
			continue;
		if (effects[i].kind == EFFECT_KEY)
			XactQueueKey(effects[i].target, effects[i].target_len, NULL, 0);
		else if (effects[i].kind == EFFECT_TAG)
			XactQueueTag(effects[i].target, effects[i].target_len);
	}
	return result.unlinked;
}

static const bool *
immediate_arg(FunctionCallInfo fcinfo, int argno, bool *buf)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	*buf = PG_GETARG_BOOL(argno);
	return buf;
}

/* A StringInfo of exactly the size asked for: arrays of a million keys pass here. */
static void
init_exact(StringInfo s, size_t size)
{
	if (size >= MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("Redis key too long")));
	s->data = palloc(size + 1);
	s->maxlen = (int) size + 1;
	s->len = 0;
	s->cursor = 0;
	s->data[0] = '\0';
}

/* Invalidate items[from, to), keys or tags (kind), now and/or at commit. */
static void
invalidate_batch(char kind, text **items, int from, int to, bool send_now,
				 bool queue)
{
	Effect	   *effects = palloc(sizeof(Effect) * (to - from));
	size_t		plen = strlen(bmf_key_prefix) + (kind == EFFECT_KEY ? 0 : 4);
	int			i;

	for (i = from; i < to; i++)
	{
		Effect	   *e = &effects[i - from];
		StringInfoData k;

		init_exact(&k, plen + VARSIZE_ANY_EXHDR(items[i]));
		if (kind == EFFECT_KEY)
			RedisKeyPrefixed(&k, VARDATA_ANY(items[i]), VARSIZE_ANY_EXHDR(items[i]));
		else
			RedisTagKey(&k, VARDATA_ANY(items[i]), VARSIZE_ANY_EXHDR(items[i]));
		e->kind = kind;
		e->target = k.data;
		e->target_len = k.len;
		e->arg = NULL;
		e->arg_len = 0;
		if (queue)
		{
			if (kind == EFFECT_KEY)
				XactQueueKey(k.data, k.len, NULL, 0);
			else
				XactQueueTag(k.data, k.len);
		}
	}
	if (send_now)
		InvalidateNow(RedisCallerNode(), effects, to - from);
}

/*
 * Invalidate n keys or tags (kind), now and/or at commit: in batches of
 * bmfredis.array_batch, each built and sent in a memory context reset
 * before the next (what is queued for COMMIT is the queue's own copy).
 */
static void
invalidate(FunctionCallInfo fcinfo, char kind, text **items, int n,
		   int immediate_argno)
{
	bool		buf;
	bool		send_now;
	bool		queue;
	MemoryContext batch;
	int			i;

	XactDecide(immediate_arg(fcinfo, immediate_argno, &buf), &send_now, &queue);

	/*
	 * A role with a user mapping: what COMMIT sends goes as the server's
	 * identity, so the invalidation is also sent now, as the role's Redis
	 * user, for Redis' ACL to refuse keys the role may not touch.
	 */
	if (queue && !send_now && RedisCallerIsMapped())
		send_now = true;
	for (i = 0; i < n; i++)
		RedisCheckKey(kind == EFFECT_KEY ? "Redis key" : "tag", VARSIZE_ANY_EXHDR(items[i]));
	batch = AllocSetContextCreate(CurrentMemoryContext, "bmfredis invalidation batch",
								  ALLOCSET_DEFAULT_SIZES);
	for (i = 0; i < n; i += bmf_array_batch)
	{
		MemoryContext old = MemoryContextSwitchTo(batch);

		invalidate_batch(kind, items, i, Min(n, i + bmf_array_batch), send_now, queue);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch);
	}
	MemoryContextDelete(batch);
}

static text **
text_array_arg(FunctionCallInfo fcinfo, const char *what, int *n)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return BmfTextArrayElements(PG_GETARG_ARRAYTYPE_P(0), what, n);
}

Datum
redis_invalidate(PG_FUNCTION_ARGS)
{
	text	   *key = BmfTextArg(fcinfo, 0, "Redis key");

	invalidate(fcinfo, EFFECT_KEY, &key, 1, 1);
	PG_RETURN_VOID();
}

Datum
redis_invalidate_many(PG_FUNCTION_ARGS)
{
	int			n;
	text	  **keys = text_array_arg(fcinfo, "key array", &n);

	invalidate(fcinfo, EFFECT_KEY, keys, n, 1);
	PG_RETURN_VOID();
}

Datum
redis_invalidate_tag(PG_FUNCTION_ARGS)
{
	text	   *tag = BmfTextArg(fcinfo, 0, "tag");

	invalidate(fcinfo, EFFECT_TAG, &tag, 1, 1);
	PG_RETURN_VOID();
}

Datum
redis_invalidate_tags(PG_FUNCTION_ARGS)
{
	int			n;
	text	  **tags = text_array_arg(fcinfo, "tag array", &n);

	invalidate(fcinfo, EFFECT_TAG, tags, n, 1);
	PG_RETURN_VOID();
}

/* SCAN MATCH <escaped prefix><pattern> + UNLINK, now; keys removed */
static int64
invalidate_pattern_now(const char *pattern, size_t len)
{
	StringInfoData pat;
	Effect		e;
	bool		done;
	EffectsResult result;
	RedisError	err;

	RedisNearForgetAll();
	initStringInfo(&pat);
	RedisPatternPrefixed(&pat, pattern, len);
	e.kind = EFFECT_PATTERN;
	e.target = pat.data;
	e.target_len = pat.len;
	e.arg = bmf_key_prefix;		/* its locks and semaphores stay */
	e.arg_len = strlen(bmf_key_prefix);
	if (!EffectsSend(RedisCallerNode(), &e, 1, 0x7FFFFFFFFFFFFFFF, &done,
					 &result, &err))
		RedisReportFailure(REDIS_STRICT, REDIS_IDEMPOTENT, &err, "SCAN");
	if (result.error_replies > 0)
		ereport(ERROR,
				(errcode(RedisReplyErrorCode(result.first_error)),
				 errmsg("Redis refused the pattern invalidation"),
				 errdetail_internal("%s", result.first_error)));
	BmfStatsCount(STAT_INVALIDATIONS_SENT, 1);
	return result.unlinked;
}

Datum
redis_invalidate_pattern(PG_FUNCTION_ARGS)
{
	text	   *pattern = BmfTextArg(fcinfo, 0, "pattern");

	RedisCheckKey("pattern", VARSIZE_ANY_EXHDR(pattern));
	PG_RETURN_INT64(invalidate_pattern_now(VARDATA_ANY(pattern),
										   VARSIZE_ANY_EXHDR(pattern)));
}

Datum
redis_flush_namespace(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	if (bmf_key_prefix[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("bmfredis.key_prefix is empty"),
				 errdetail("With no prefix the namespace is the whole Redis database."),
				 errhint("Use FLUSHDB through redis_command() if that is what you mean.")));
	PG_RETURN_INT64(invalidate_pattern_now("*", 1));
}

/* ---- scheduled invalidation ---- */

static void
schedule(char kind, const char *target, size_t len, TimestampTz at)
{
	Oid			argtypes[4] = {CHAROID, TEXTOID, INT4OID, TIMESTAMPTZOID};
	Datum		values[4];
	int			rc;
	Oid			save_userid;
	int			save_sec;

	values[0] = CharGetDatum(kind);
	values[1] = PointerGetDatum(cstring_to_text_with_len(target, len));
	values[2] = Int32GetDatum(BmfDb());
	values[3] = TimestampTzGetDatum(at);
	/* the bookkeeping table is the extension's, granted to nobody */
	SPI_connect();
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	rc = SPI_execute_with_args("INSERT INTO bmfredis.scheduled_invalidations (kind, target, db, due_at) "
							   "VALUES ($1, $2, $3, $4)",
							   4, argtypes, values, NULL, false, 0);
	SetUserIdAndSecContext(save_userid, save_sec);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not schedule an invalidation: %s", SPI_result_code_string(rc));
	SPI_finish();
}

static TimestampTz
at_arg(FunctionCallInfo fcinfo)
{
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("invalidation time must not be null")));
	(void) BmfTimestampToUnixMs(PG_GETARG_TIMESTAMPTZ(1), "invalidation time");
	return PG_GETARG_TIMESTAMPTZ(1);
}

/*
 * redis_invalidate_at(key, at): at commit the key's current value is made
 * to expire no later than at (PEXPIREAT ... LT), and a schedule row makes
 * the worker remove whatever value the key holds at that time.
 */
Datum
redis_invalidate_at(PG_FUNCTION_ARGS)
{
	text	   *key = BmfTextArg(fcinfo, 0, "Redis key");
	TimestampTz at = at_arg(fcinfo);
	StringInfoData k;

	RedisCheckKey("Redis key", VARSIZE_ANY_EXHDR(key));
	initStringInfo(&k);
	RedisKeyPrefixed(&k, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));

	/*
	 * COMMIT and the worker send as the server's identity: a role with a
	 * user mapping sends the expiry now too, as its own Redis user, for
	 * Redis' ACL to refuse a key the role may not touch (as redis_invalidate
	 * does).  PEXPIREAT ... LT only ever shortens what is there.
	 */
	if (RedisCallerIsMapped())
	{
		Effect		e;
		char		ms[24];

		e.kind = EFFECT_EXPIRE_AT;
		e.target = k.data;
		e.target_len = k.len;
		e.arg_len = pg_lltoa(BmfTimestampToUnixMs(at, "invalidation time"), ms);
		e.arg = ms;
		(void) InvalidateNow(RedisCallerNode(), &e, 1);
	}
	XactQueueExpireAt(k.data, k.len, BmfTimestampToUnixMs(at, "invalidation time"));
	schedule(EFFECT_KEY, k.data, k.len, at);
	PG_RETURN_VOID();
}

/*
 * Whether the caller's own Redis user may write key (a mapped role's
 * scheduled work goes out later as the server's): SETRANGE with nothing to
 * write changes no key and creates none, but Redis' ACL checks it as a
 * write first.  An ERROR (42501) when it may not.
 */
static void
check_caller_may_write(const char *key, size_t len)
{
	RedisArgs	a;
	RedisReply *r;

	RedisArgsInit(&a, 4);
	RedisArgsAdd(&a, "SETRANGE", 8);
	RedisArgsAdd(&a, key, len);
	RedisArgsAdd(&a, "0", 1);
	RedisArgsAdd(&a, "", 0);
	r = RedisCommand(REDIS_STRICT, REDIS_IDEMPOTENT | REDIS_ERRORS_OK, &a, NULL);
	/* a tag index is a sorted set: WRONGTYPE means the ACL let it through */
	if (r->type == RESP_ERROR && strncmp(r->str, "WRONGTYPE", 9) != 0)
		RedisRaiseReplyError(r, "tag invalidation");
}

Datum
redis_invalidate_tag_at(PG_FUNCTION_ARGS)
{
	text	   *tag = BmfTextArg(fcinfo, 0, "tag");
	TimestampTz at = at_arg(fcinfo);
	StringInfoData k;

	RedisCheckKey("tag", VARSIZE_ANY_EXHDR(tag));
	initStringInfo(&k);
	RedisTagKey(&k, VARDATA_ANY(tag), VARSIZE_ANY_EXHDR(tag));
	if (RedisCallerIsMapped())
		check_caller_may_write(k.data, k.len);
	schedule(EFFECT_TAG, k.data, k.len, at);
	PG_RETURN_VOID();
}

/*
 * Run the due rows of bmfredis.scheduled_invalidations in this database,
 * in a subtransaction: if Redis fails, the rows stay for the next run.
 * Returns how many ran, or -1 when Redis failed.
 */
int
InvalidateRunScheduled(void)
{
	MemoryContext old = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	int			count = 0;
	volatile bool failed = false;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(old);
	PG_TRY();
	{
		int			rc;
		uint64		i;
		Effect	   *effects;
		int		   *dbs;

		SPI_connect();
		rc = SPI_execute("DELETE FROM bmfredis.scheduled_invalidations "
						 "WHERE id OPERATOR(pg_catalog.=) ANY (ARRAY("
						 "      SELECT id FROM bmfredis.scheduled_invalidations "
						 "       WHERE due_at OPERATOR(pg_catalog.<=) pg_catalog.now() "
						 "       ORDER BY due_at USING OPERATOR(pg_catalog.<) LIMIT 10000 "
						 "         FOR UPDATE SKIP LOCKED)) "
						 "RETURNING kind, target, db", false, 0);
		if (rc != SPI_OK_DELETE_RETURNING)
			elog(ERROR, "could not read scheduled invalidations: %s", SPI_result_code_string(rc));
		count = (int) SPI_processed;
		effects = palloc(sizeof(Effect) * Max(count, 1));
		dbs = palloc(sizeof(int) * Max(count, 1));
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;
			text	   *target;

			effects[i].kind = DatumGetChar(SPI_getbinval(tup, desc, 1, &isnull));
			target = DatumGetTextPP(SPI_getbinval(tup, desc, 2, &isnull));
			effects[i].target = VARDATA_ANY(target);
			effects[i].target_len = VARSIZE_ANY_EXHDR(target);
			effects[i].arg = NULL;
			effects[i].arg_len = 0;
			dbs[i] = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
		}
		for (i = 0; i < (uint64) count && !failed; i++)
		{
			bool		done;
			EffectsResult result;
			RedisError	err;

			if (EffectsSend(RedisNodeForDb(dbs[i]), &effects[i], 1,
							BmfDeadline(bmf_command_timeout), &done, &result, &err))
				continue;
			if (err.status == RS_REPLY)
			{
				/*
				 * Refused (its ACL, a key of the wrong type): the retry
				 * queue takes it (and makes it its database's namespace),
				 * so that the ones due after it are not held back.
				 */
				done = false;
				RetryEnqueue(&effects[i], &done, 1, dbs[i], bmf_key_prefix);
				continue;
			}
			failed = true;
		}
		SPI_finish();
		if (failed)
		{
			RollbackAndReleaseCurrentSubTransaction();
			count = -1;
		}
		else
			ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		RollbackAndReleaseCurrentSubTransaction();
		CurrentResourceOwner = owner;
		PG_RE_THROW();
	}
	PG_END_TRY();
	return count;
}

Datum
redis_run_scheduled(PG_FUNCTION_ARGS)
{
	int			n;

	(void) fcinfo;
	n = InvalidateRunScheduled();
	if (n < 0)
	{
		ereport(WARNING,
				(errmsg("could not run scheduled invalidations: Redis is unavailable"),
				 errhint("They stay scheduled and run at the next attempt.")));
		n = 0;
	}
	PG_RETURN_INT32(n);
}
