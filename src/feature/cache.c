/*-------------------------------------------------------------------------
 *
 * cache.c
 *		The cache API: redis_cache_set/get/mget/mset/del/exists/ttl/expire/
 *		incr and the named TTL classes.
 *
 * Values are stored as their plain bytes, with no framing, so that other
 * clients of the same Redis read what SQL wrote and the other way round:
 * text as its bytes in the database encoding, jsonb as its text form,
 * bytea raw.  A key k lives at <bmfredis.key_prefix>k.
 *
 * Reads follow the REDIS_READ policy (a fault is a miss), writes the
 * REDIS_WRITE policy (a fault returns false or NULL); error replies such
 * as WRONGTYPE are ERRORs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "base/compat.h"
#include "base/guc.h"
#include "base/sqlutil.h"
#include "base/stats.h"
#include "client/client.h"
#include "xact/effects.h"

PG_FUNCTION_INFO_V1(redis_cache_set);
PG_FUNCTION_INFO_V1(redis_cache_set_jsonb);
PG_FUNCTION_INFO_V1(redis_cache_get);
PG_FUNCTION_INFO_V1(redis_cache_get_json);
PG_FUNCTION_INFO_V1(redis_cache_get_bytea);
PG_FUNCTION_INFO_V1(redis_cache_mget);
PG_FUNCTION_INFO_V1(redis_cache_mset);
PG_FUNCTION_INFO_V1(redis_cache_del);
PG_FUNCTION_INFO_V1(redis_cache_del_many);
PG_FUNCTION_INFO_V1(redis_cache_exists);
PG_FUNCTION_INFO_V1(redis_cache_ttl);
PG_FUNCTION_INFO_V1(redis_cache_expire);
PG_FUNCTION_INFO_V1(redis_cache_expire_at);
PG_FUNCTION_INFO_V1(redis_cache_incr);
PG_FUNCTION_INFO_V1(redis_ttl);

/*
 * SET <key> <value> [PX ms]; with tags, the tagged-set script, which also
 * records the key in each tag's index (see effects.c).  True when stored.
 */
static bool
cache_set(text *key, const char *value, size_t len, FunctionCallInfo fcinfo,
		  int ttl_argno)
{
	RedisArgs	args;
	RedisReply *reply;
	int64		ttl = 0;
	text	  **tags = NULL;
	int			ntags = 0;
	int			tags_argno = ttl_argno + 1;

	BmfCheckValueSize(len);
	if (!PG_ARGISNULL(ttl_argno))
		ttl = BmfIntervalToMs(PG_GETARG_INTERVAL_P(ttl_argno), "TTL");
	if (PG_NARGS() > tags_argno && !PG_ARGISNULL(tags_argno))
		tags = BmfTextArrayElements(PG_GETARG_ARRAYTYPE_P(tags_argno), "tag array", &ntags);

	if (ntags == 0)
	{
		RedisArgsInit(&args, 5);
		RedisArgsAddStr(&args, "SET");
		RedisArgsAddKeyText(&args, key);
		RedisArgsAdd(&args, value, len);
		if (ttl > 0)
		{
			RedisArgsAddStr(&args, "PX");
			RedisArgsAddInt(&args, ttl);
		}
	}
	else
	{
		RedisArgsInit(&args, ntags + 6);
		RedisArgsScript(&args, &effects_set_tagged_script, ntags + 1);
		RedisArgsAddKeyText(&args, key);
		if (!EffectsAddTagIndexes(&args, args.argv[3], args.lens[3], tags, ntags,
								  ttl, REDIS_WRITE))
			return false;
		RedisArgsAdd(&args, value, len);
		RedisArgsAddInt(&args, ttl);
	}
	/* this backend's copy goes now, whatever Redis answers */
	RedisNearForget(ntags == 0 ? args.argv[1] : args.argv[3],
					ntags == 0 ? args.lens[1] : args.lens[3]);
	reply = RedisCommand(REDIS_WRITE, REDIS_IDEMPOTENT, &args, NULL);
	if (reply == NULL)
		return false;
	BmfStatsCount(STAT_CACHE_SETS, 1);
	return true;
}

static text *
value_arg(FunctionCallInfo fcinfo, int argno)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("cache value must not be null"),
				 errhint("Use redis_cache_del() to remove a key.")));
	return PG_GETARG_TEXT_PP(argno);
}

/* redis_cache_set(key text, value text|bytea, ttl interval) */
Datum
redis_cache_set(PG_FUNCTION_ARGS)
{
	text	   *key = BmfTextArg(fcinfo, 0, "Redis key");
	text	   *value = value_arg(fcinfo, 1);

	PG_RETURN_BOOL(cache_set(key, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value),
							 fcinfo, 2));
}

/* redis_cache_set(key text, value jsonb, ttl interval): stored as JSON text */
Datum
redis_cache_set_jsonb(PG_FUNCTION_ARGS)
{
	text	   *key = BmfTextArg(fcinfo, 0, "Redis key");
	Jsonb	   *value;
	StringInfoData buf;

	(void) value_arg(fcinfo, 1);
	value = PG_GETARG_JSONB_P(1);
	initStringInfo(&buf);
	JsonbToCString(&buf, &value->root, VARSIZE(value));
	PG_RETURN_BOOL(cache_set(key, buf.data, buf.len, fcinfo, 2));
}

/* GET <key>: the reply, or NULL for a miss (absent key or Redis fault) */
static RedisReply *
cache_get(FunctionCallInfo fcinfo)
{
	text	   *key = BmfTextArg(fcinfo, 0, "Redis key");
	RedisArgs	args;
	RedisReply *reply;

	RedisArgsInit(&args, 2);
	RedisArgsAddStr(&args, "GET");
	RedisArgsAddKeyText(&args, key);
	if (!bmf_near_cache ||
		!RedisNearGet(args.argv[1], args.lens[1], &reply))
		reply = RedisCommand(REDIS_READ, REDIS_IDEMPOTENT, &args, NULL);
	if (reply == NULL || reply->type == RESP_NIL)
	{
		BmfStatsCount(STAT_CACHE_MISSES, 1);
		return NULL;
	}
	BmfStatsCount(STAT_CACHE_HITS, 1);
	return reply;
}

Datum
redis_cache_get(PG_FUNCTION_ARGS)
{
	RedisReply *reply = cache_get(fcinfo);

	if (reply == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(RedisReplyToText(reply));
}

Datum
redis_cache_get_bytea(PG_FUNCTION_ARGS)
{
	RedisReply *reply = cache_get(fcinfo);

	if (reply == NULL)
		PG_RETURN_NULL();
	PG_RETURN_BYTEA_P(RedisReplyToBytea(reply));
}

static void
json_read_context(void *arg)
{
	text	   *key = (text *) arg;

	errcontext("reading Redis key \"%s\" as jsonb", text_to_cstring(key));
}

Datum
redis_cache_get_json(PG_FUNCTION_ARGS)
{
	RedisReply *reply = cache_get(fcinfo);
	ErrorContextCallback ctx;
	Datum		result;

	if (reply == NULL)
		PG_RETURN_NULL();
	ctx.callback = json_read_context;
	ctx.arg = PG_GETARG_TEXT_PP(0);
	ctx.previous = error_context_stack;
	error_context_stack = &ctx;
	result = DirectFunctionCall1(jsonb_in,
								 CStringGetDatum(RedisReplyToCString(reply, "jsonb")));
	error_context_stack = ctx.previous;
	PG_RETURN_DATUM(result);
}

/*
 * Arrays are sent in commands of bmfredis.array_batch keys, one after the
 * other, each built, sent and read in a memory context of its own that is
 * reset before the next: a call holds, besides its arguments and result,
 * one batch's keys, wire buffer and replies (measured: bench/run memory).
 */
static MemoryContext
batch_context(void)
{
	return AllocSetContextCreate(CurrentMemoryContext, "bmfredis array batch",
								 ALLOCSET_DEFAULT_SIZES);
}

/*
 * The near-cache's answer to an MGET of args' n keys, as the reply MGET
 * would have given; NULL when it does not take the read.
 */
static RedisReply *
near_mget(const RedisArgs *args, int n)
{
	static RedisReply nil = {.type = RESP_NIL};
	RedisReply **els = palloc(sizeof(RedisReply *) * n);
	RedisReply *reply;
	int			i;

	if (!RedisNearMget(n, args->argv + 1, args->lens + 1, els))
		return NULL;
	reply = palloc0(sizeof(RedisReply));
	reply->type = RESP_ARRAY;
	reply->elements = n;
	reply->element = els;
	for (i = 0; i < n; i++)
		if (els[i] == NULL)
			els[i] = &nil;
	return reply;
}

/* MGET of keys[from, to) into values/nulls; false when Redis failed. */
static bool
mget_batch(text **keys, int from, int to, Datum *values, bool *nulls,
		   MemoryContext outer)
{
	RedisArgs	args;
	RedisReply *reply;
	int			i;

	RedisArgsInit(&args, to - from + 1);
	RedisArgsAddStr(&args, "MGET");
	for (i = from; i < to; i++)
		RedisArgsAddKeyText(&args, keys[i]);
	reply = bmf_near_cache ? near_mget(&args, to - from) : NULL;
	if (reply == NULL)
	{
		reply = RedisCommand(REDIS_READ, REDIS_IDEMPOTENT, &args, NULL);
		if (reply == NULL)
			return false;
		RedisExpectArray(reply, to - from, 0, "MGET");
	}
	for (i = from; i < to; i++)
	{
		RedisReply *el = reply->element[i - from];
		MemoryContext old;

		if (el->type == RESP_NIL)
		{
			BmfStatsCount(STAT_CACHE_MISSES, 1);
			continue;
		}
		BmfStatsCount(STAT_CACHE_HITS, 1);
		old = MemoryContextSwitchTo(outer);
		values[i] = PointerGetDatum(RedisReplyToText(el));
		MemoryContextSwitchTo(old);
		nulls[i] = false;
	}
	return true;
}

/* redis_cache_mget(keys text[]) -> text[]: MGET, one round trip a batch */
Datum
redis_cache_mget(PG_FUNCTION_ARGS)
{
	text	  **keys;
	int			n;
	int			i;
	Datum	   *values;
	bool	   *nulls;
	int			dims[1];
	int			lbs[1] = {1};
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext batch;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key array must not be null")));
	keys = BmfTextArrayElements(PG_GETARG_ARRAYTYPE_P(0), "key array", &n);
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TEXTOID));

	values = palloc0(sizeof(Datum) * n);
	nulls = palloc(sizeof(bool) * n);
	memset(nulls, true, sizeof(bool) * n);
	batch = batch_context();
	for (i = 0; i < n; i += bmf_array_batch)
	{
		MemoryContext old = MemoryContextSwitchTo(batch);
		bool		ok = mget_batch(keys, i, Min(n, i + bmf_array_batch), values, nulls, outer);

		MemoryContextSwitchTo(old);
		MemoryContextReset(batch);
		if (!ok)
			break;				/* the rest are misses, as on_error said */
	}
	MemoryContextDelete(batch);
	dims[0] = n;
	PG_RETURN_ARRAYTYPE_P(construct_md_array(values, nulls, 1, dims, lbs,
											 TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * MSET of keys[from, to), or one pipelined SET PX per key when a TTL is
 * given; one round trip either way.  False when not written.
 */
static bool
mset_batch(text **keys, text **vals, int from, int to, const char *ttl)
{
	RedisBatch	batch;
	RedisArgs	args;
	RedisReply **replies;
	int			i;

	RedisBatchInit(&batch);
	if (ttl == NULL)
	{
		RedisArgsInit(&args, 2 * (to - from) + 1);
		RedisArgsAddStr(&args, "MSET");
		for (i = from; i < to; i++)
		{
			RedisArgsAddKeyText(&args, keys[i]);
			RedisNearForget(args.argv[args.argc - 1], args.lens[args.argc - 1]);
			RedisArgsAdd(&args, VARDATA_ANY(vals[i]), VARSIZE_ANY_EXHDR(vals[i]));
		}
		RedisBatchAdd(&batch, &args);
	}
	else
	{
		/* one argument vector, refilled per key: RedisBatchAdd copies it */
		RedisArgsInit(&args, 5);
		for (i = from; i < to; i++)
		{
			args.argc = 0;
			RedisArgsAdd(&args, "SET", 3);
			RedisArgsAddKeyText(&args, keys[i]);
			RedisNearForget(args.argv[1], args.lens[1]);
			RedisArgsAdd(&args, VARDATA_ANY(vals[i]), VARSIZE_ANY_EXHDR(vals[i]));
			RedisArgsAdd(&args, "PX", 2);
			RedisArgsAdd(&args, ttl, strlen(ttl));
			RedisBatchAdd(&batch, &args);
			pfree((char *) args.argv[1]);
		}
	}
	replies = RedisPipeline(REDIS_WRITE, REDIS_IDEMPOTENT, &batch, 0, NULL);
	if (replies == NULL)
		return false;
	for (i = 0; i < batch.n; i++)
		if (replies[i]->type == RESP_ERROR)
		{
			if (RedisReplyFull(REDIS_WRITE, REDIS_IDEMPOTENT, replies[i], ttl ? "SET" : "MSET"))
				return false;
			RedisRaiseReplyError(replies[i], ttl ? "SET" : "MSET");
		}
	return true;
}

/*
 * redis_cache_mset(keys text[], vals text[], ttl interval) -> boolean.
 * Each batch of bmfredis.array_batch keys is written atomically (MSET),
 * or key by key with a TTL; false, once one batch was not written.
 */
Datum
redis_cache_mset(PG_FUNCTION_ARGS)
{
	text	  **keys;
	text	  **vals;
	int			nkeys;
	int			nvals;
	int			i;
	char	   *ttl = NULL;
	MemoryContext batch;
	bool		ok = true;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key and value arrays must not be null")));
	keys = BmfTextArrayElements(PG_GETARG_ARRAYTYPE_P(0), "key array", &nkeys);
	vals = BmfTextArrayElements(PG_GETARG_ARRAYTYPE_P(1), "value array", &nvals);
	if (nkeys != nvals)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("key and value arrays differ in length"),
				 errdetail("There are %d keys and %d values.", nkeys, nvals)));
	if (nkeys == 0)
		PG_RETURN_BOOL(true);
	for (i = 0; i < nvals; i++)
	{
		BmfCheckValueSize(VARSIZE_ANY_EXHDR(vals[i]));
		RedisCheckKey("Redis key", VARSIZE_ANY_EXHDR(keys[i]));
	}
	if (!PG_ARGISNULL(2))
	{
		ttl = palloc(24);
		pg_lltoa(BmfIntervalToMs(PG_GETARG_INTERVAL_P(2), "TTL"), ttl);
	}

	batch = batch_context();
	for (i = 0; i < nkeys && ok; i += bmf_array_batch)
	{
		MemoryContext old = MemoryContextSwitchTo(batch);

		ok = mset_batch(keys, vals, i, Min(nkeys, i + bmf_array_batch), ttl);
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch);
	}
	MemoryContextDelete(batch);
	PG_RETURN_BOOL(ok);
}

/* UNLINK, a batch at a time: the memory is reclaimed by Redis in the background */
static Datum
cache_unlink(FunctionCallInfo fcinfo, text **keys, int n)
{
	MemoryContext batch = batch_context();
	int64		removed = 0;
	int			from;
	int			i;

	for (i = 0; i < n; i++)
		RedisCheckKey("Redis key", VARSIZE_ANY_EXHDR(keys[i]));
	for (from = 0; from < n; from += bmf_array_batch)
	{
		MemoryContext old = MemoryContextSwitchTo(batch);
		int			to = Min(n, from + bmf_array_batch);
		RedisArgs	args;
		RedisReply *reply;

		RedisArgsInit(&args, to - from + 1);
		RedisArgsAddStr(&args, "UNLINK");
		for (i = from; i < to; i++)
		{
			RedisArgsAddKey(&args, VARDATA_ANY(keys[i]), VARSIZE_ANY_EXHDR(keys[i]));
			RedisNearForget(args.argv[args.argc - 1], args.lens[args.argc - 1]);
		}
		reply = RedisCommand(REDIS_WRITE, REDIS_IDEMPOTENT, &args, NULL);
		if (reply)
		{
			RedisExpect(reply, RESP_INTEGER, "UNLINK");
			removed += reply->integer;
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(batch);
		if (reply == NULL)
		{
			MemoryContextDelete(batch);
			PG_RETURN_NULL();
		}
	}
	MemoryContextDelete(batch);
	PG_RETURN_INT64(removed);
}

Datum
redis_cache_del(PG_FUNCTION_ARGS)
{
	text	   *key = BmfTextArg(fcinfo, 0, "Redis key");

	return cache_unlink(fcinfo, &key, 1);
}

Datum
redis_cache_del_many(PG_FUNCTION_ARGS)
{
	text	  **keys;
	int			n;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key array must not be null")));
	keys = BmfTextArrayElements(PG_GETARG_ARRAYTYPE_P(0), "key array", &n);
	if (n == 0)
		PG_RETURN_INT64(0);
	return cache_unlink(fcinfo, keys, n);
}

/* One-key command returning an integer reply, or NULL on a fault. */
static RedisReply *
key_command(FunctionCallInfo fcinfo, const char *cmd, RedisPolicy policy,
			int flags, const char *extra)
{
	RedisArgs	args;
	RedisReply *reply;

	RedisArgsInit(&args, 3);
	RedisArgsAddStr(&args, cmd);
	RedisArgsAddKeyText(&args, BmfTextArg(fcinfo, 0, "Redis key"));
	if (extra)
		RedisArgsAddStr(&args, extra);
	if (policy == REDIS_WRITE)
		RedisNearForget(args.argv[1], args.lens[1]);
	reply = RedisCommand(policy, flags, &args, NULL);
	if (reply)
		RedisExpect(reply, RESP_INTEGER, cmd);
	return reply;
}

Datum
redis_cache_exists(PG_FUNCTION_ARGS)
{
	RedisReply *reply = key_command(fcinfo, "EXISTS", REDIS_READ, REDIS_IDEMPOTENT, NULL);

	if (reply == NULL)
		PG_RETURN_NULL();
	PG_RETURN_BOOL(reply->integer > 0);
}

/* PTTL: NULL when the key does not exist or has no expiry */
Datum
redis_cache_ttl(PG_FUNCTION_ARGS)
{
	RedisReply *reply = key_command(fcinfo, "PTTL", REDIS_READ, REDIS_IDEMPOTENT, NULL);

	if (reply == NULL || reply->integer < 0)
		PG_RETURN_NULL();
	PG_RETURN_INTERVAL_P(BmfMsToInterval(reply->integer));
}

Datum
redis_cache_expire(PG_FUNCTION_ARGS)
{
	char		ms[24];
	RedisReply *reply;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("TTL must not be null"),
				 errhint("Use redis_cache_set() without a TTL to make a key persistent.")));
	pg_lltoa(BmfIntervalToMs(PG_GETARG_INTERVAL_P(1), "TTL"), ms);
	reply = key_command(fcinfo, "PEXPIRE", REDIS_WRITE, REDIS_IDEMPOTENT, ms);
	if (reply == NULL)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(reply->integer == 1);
}

/* PEXPIREAT: a time in the past removes the key at once, as in Redis */
Datum
redis_cache_expire_at(PG_FUNCTION_ARGS)
{
	char		ms[24];
	RedisReply *reply;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("expiry time must not be null")));
	pg_lltoa(BmfTimestampToUnixMs(PG_GETARG_TIMESTAMPTZ(1), "expiry time"), ms);
	reply = key_command(fcinfo, "PEXPIREAT", REDIS_WRITE, REDIS_IDEMPOTENT, ms);
	if (reply == NULL)
		PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(reply->integer == 1);
}

/* INCRBY: not idempotent, so never re-sent after a broken connection */
Datum
redis_cache_incr(PG_FUNCTION_ARGS)
{
	char		by[24];
	RedisReply *reply;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("increment must not be null")));
	pg_lltoa(PG_GETARG_INT64(1), by);
	reply = key_command(fcinfo, "INCRBY", REDIS_WRITE, 0, by);
	if (reply == NULL)
		PG_RETURN_NULL();
	PG_RETURN_INT64(reply->integer);
}

/* redis_ttl(class text) -> interval: the application's TTL classes */
Datum
redis_ttl(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *p;
	int			secs;

	for (p = name; *p; p++)
		*p = (*p == ' ' || *p == '-') ? '_' : pg_tolower((unsigned char) *p);

	if (strcmp(name, "short") == 0)
		secs = bmf_ttl_short;
	else if (strcmp(name, "medium") == 0)
		secs = bmf_ttl_medium;
	else if (strcmp(name, "long") == 0)
		secs = bmf_ttl_long;
	else if (strcmp(name, "very_long") == 0)
		secs = bmf_ttl_very_long;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown TTL class \"%s\"", text_to_cstring(PG_GETARG_TEXT_PP(0))),
				 errhint("The classes are short, medium, long and very_long (bmfredis.ttl_<class>).")));
	PG_RETURN_INTERVAL_P(BmfMsToInterval((int64) secs * 1000));
}
