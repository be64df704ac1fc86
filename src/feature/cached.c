/*-------------------------------------------------------------------------
 *
 * cached.c
 *		Read-through caching of queries: redis_cached() and redis_cache_key().
 *
 * redis_cached(key, ttl, query, tags) returns the jsonb cached at key, or
 * runs the query (SPI, the caller's privileges), stores its result and
 * returns it.  Three mechanisms make that safe to use on hot keys:
 *
 * Leases (the guard against stale re-population).  A backend that misses
 * does not just compute and SET.  It first takes a lease, atomically in
 * Lua: the key is set to "" (the placeholder; every Redis client the
 * application uses reads "" as a miss) and a side key K\0lease to a random
 * token, both with a TTL of bmfredis.cached_lease, and the key is entered
 * in its tags' indexes.  Only then does it take its snapshot and run the
 * query.  It stores with a second script that writes the value only if the
 * key still holds "" and the side key still holds its token.  Every
 * invalidation path removes the key itself (UNLINK of the key, a tag's
 * members, a SCAN pattern), so a change committed and invalidated while
 * the query ran deletes the placeholder and the store is refused: the
 * value computed from the older snapshot is returned to its caller but
 * never cached.  A change whose invalidation lands before the lease is
 * visible to the query, whose snapshot is taken after the lease (READ
 * COMMITTED takes a fresh snapshot per query; under REPEATABLE READ and
 * SERIALIZABLE the snapshot predates the lease, so those never store).
 * Side keys contain a NUL byte, which no key given from SQL can, so they
 * never collide with the application's keys.  In a Redis Cluster they are
 * <prefix>{<slot tag>}<key>\0lease, in the slot of K (RedisSideKey), so
 * both scripts touch one slot; the tag indexes are that slot's shards.
 *
 * Stampede protection.  Backends that find the placeholder wait (polling
 * with backoff, at most bmfredis.cached_wait) for the value instead of
 * running the same query; past the wait, or if the lease vanishes without
 * a value, they take a lease themselves or compute without storing.  A
 * computing backend that fails gives its lease back at once.
 *
 * Early recomputation (XFetch, Vattani et al., VLDB 2015), when
 * bmfredis.cached_early_beta > 0: the time a computation took is kept in
 * a side key K\0delta with the value's TTL, and a hit recomputes early
 * with probability rising as expiry nears: when
 * -delta * beta * ln(rand()) >= ttl left.  One backend does it (a lease
 * on the side key); the others keep getting the old value meanwhile.  Its
 * store is a compare-and-set on the SHA1 of the value it replaced, so an
 * invalidation during the recomputation wins.
 *
 * On a standby (in recovery) redis_cached serves hits but never stores:
 * replay lags the primary, so its snapshot may predate a change whose
 * invalidation the primary has already sent.
 *
 * Redis down, or still catching up on invalidations: the query runs and
 * its answer is returned, with a WARNING unless bmfredis.on_error is
 * ignore; never an ERROR from the cache layer.  A transaction that has
 * written to a watched table (or queued invalidations or messages) runs
 * the query without reading or writing the cache: its own uncommitted
 * changes must neither be hidden by a cached value nor leak into one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "common/jsonapi.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/jsonfuncs.h"
#include "utils/plancache.h"
#include "utils/timestamp.h"

#include "base/compat.h"
#include "base/guc.h"
#include "base/sqlutil.h"
#include "base/stats.h"
#include "base/wait.h"
#include "client/client.h"
#include "client/cluster.h"
#include "xact/effects.h"
#include "xact/xact.h"

PG_FUNCTION_INFO_V1(redis_cached);
PG_FUNCTION_INFO_V1(redis_cache_key);

#define TOKEN_LEN 32
#define POLL_MIN_MS 2
#define POLL_MAX_MS 50

/* Helper shared by the scripts: enter KEYS[1] in tag index tag until exp. */
#define LUA_INDEX \
"local function index(tag, key, exp, now)\n" \
"  redis.call('ZADD', tag, exp, key)\n" \
"  redis.call('ZREMRANGEBYSCORE', tag, '-inf', '(' .. now)\n" \
"  local last = redis.call('ZRANGE', tag, -1, -1, 'WITHSCORES')\n" \
"  if last[2] == 'inf' then redis.call('PERSIST', tag)\n" \
"  else redis.call('PEXPIREAT', tag, math.floor(tonumber(last[2]))) end\n" \
"end\n" \
"local t = redis.call('TIME')\n" \
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/*
 * KEYS: key, lease side key, tag indexes...  ARGV: token, lease ms.
 * {1, value}: a hit; {2}: someone else holds the lease; {0}: ours now.
 */
static RedisScript lease_script = REDIS_SCRIPT("cached lease",
"local v = redis.call('GET', KEYS[1])\n"
"if v then\n"
"  if v == '' then return {2} end\n"
"  return {1, v}\n"
"end\n"
"local ms = tonumber(ARGV[2])\n"
"redis.call('SET', KEYS[1], '', 'PX', ms)\n"
"redis.call('SET', KEYS[2], ARGV[1], 'PX', ms)\n"
"if #KEYS > 2 then\n"
LUA_INDEX
"  for i = 3, #KEYS do index(KEYS[i], KEYS[1], now + ms, now) end\n"
"end\n"
"return {0}\n");

/*
 * KEYS: key, lease side key, delta side key, tag indexes...
 * ARGV: token, value, ttl ms, delta ms or '', '' (after a lease) or the
 * SHA1 of the value an early recomputation replaces.  1 when stored.
 */
static RedisScript store_script = REDIS_SCRIPT("cached store",
"local cur = redis.call('GET', KEYS[1])\n"
"if ARGV[5] == '' then\n"
"  if cur ~= '' then return 0 end\n"
"elseif not cur or cur == '' or redis.sha1hex(cur) ~= ARGV[5] then\n"
"  return 0\n"
"end\n"
"if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end\n"
"local ttl = tonumber(ARGV[3])\n"
"redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)\n"
"redis.call('DEL', KEYS[2])\n"
"if ARGV[4] ~= '' then redis.call('SET', KEYS[3], ARGV[4], 'PX', ttl) end\n"
"if #KEYS > 3 then\n"
LUA_INDEX
"  for i = 4, #KEYS do index(KEYS[i], KEYS[1], now + ttl, now) end\n"
"end\n"
"return 1\n");

/* KEYS: key, lease side key.  ARGV: token.  Gives a lease back. */
static RedisScript release_script = REDIS_SCRIPT("cached release",
"if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end\n"
"redis.call('DEL', KEYS[2])\n"
"if redis.call('GET', KEYS[1]) == '' then redis.call('DEL', KEYS[1]) end\n"
"return 1\n");

typedef struct CachedCall
{
	StringInfoData key;			/* prefixed */
	StringInfoData lease;		/* key \0 lease */
	StringInfoData delta;		/* key \0 delta */
	text	  **tags;
	int			ntags;
	int64		ttl_ms;
	const char *query;
	char		token[TOKEN_LEN + 1];
} CachedCall;

/* ---- the query ---- */

/*
 * Run query (one SELECT) and return its result as jsonb text, allocated
 * in the caller's memory context: one column and at most one row is that
 * value (null for no row); anything else an array of row objects.
 */
static char *
run_query(const char *query)
{
	MemoryContext caller = CurrentMemoryContext;
	SPIPlanPtr	plan;
	List	   *sources;
	CachedPlanSource *ps;
	ListCell   *lc;
	TupleDesc	tupdesc;
	uint64		i;
	int			rc;
	char	   *result;

	SPI_connect();
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare the query of redis_cached: %s",
			 SPI_result_code_string(SPI_result));
	sources = SPI_plan_get_plan_sources(plan);
	if (list_length(sources) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYNTAX_ERROR),
				 errmsg("redis_cached runs exactly one query, not %d", list_length(sources)),
				 errhint("Cache each query under a key of its own, or combine them into one SELECT (a join, a UNION, or subqueries in the select list).")));
	ps = (CachedPlanSource *) linitial(sources);
	foreach(lc, ps->query_list)
	{
		Query	   *q = lfirst_node(Query, lc);

		if (q->commandType != CMD_SELECT || q->utilityStmt != NULL || q->hasModifyingCTE)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("redis_cached caches only SELECT queries"),
					 q->hasModifyingCTE ? errdetail("Its WITH clause changes data.") :
					 (q->utilityStmt && IsA(q->utilityStmt, CreateTableAsStmt)) ?
					 errdetail("SELECT INTO creates a table.") :
					 errdetail("The query is %s.", GetCommandTagName(ps->commandTag)),
					 errhint("A query that changes data must run every time; call it directly.")));
	}

	/* read_only = false: READ COMMITTED takes a fresh snapshot now */
	rc = SPI_execute_plan(plan, NULL, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "redis_cached query failed: %s", SPI_result_code_string(rc));

	tupdesc = BlessTupleDesc(SPI_tuptable->tupdesc);
	if (tupdesc->natts == 1 && SPI_processed <= 1)
	{
		if (SPI_processed == 0)
			result = MemoryContextStrdup(caller, "null");
		else
		{
			Datum		row = heap_copy_tuple_as_datum(SPI_tuptable->vals[0], tupdesc);
			Datum		obj = DirectFunctionCall1(jsonb_in,
												  CStringGetDatum(text_to_cstring(DatumGetTextPP(DirectFunctionCall1(row_to_json, row)))));
			Datum		val = DirectFunctionCall2(jsonb_object_field, obj,
												  CStringGetTextDatum(NameStr(TupleDescAttr(tupdesc, 0)->attname)));
			char	   *out = DatumGetCString(DirectFunctionCall1(jsonb_out, val));

			result = MemoryContextStrdup(caller, out);
		}
	}
	else
	{
		StringInfoData buf;

		initStringInfo(&buf);
		appendStringInfoChar(&buf, '[');
		for (i = 0; i < SPI_processed; i++)
		{
			Datum		row = heap_copy_tuple_as_datum(SPI_tuptable->vals[i], tupdesc);
			text	   *json = DatumGetTextPP(DirectFunctionCall1(row_to_json, row));

			if (i > 0)
				appendStringInfoString(&buf, ", ");
			appendBinaryStringInfo(&buf, VARDATA_ANY(json), VARSIZE_ANY_EXHDR(json));
		}
		appendStringInfoChar(&buf, ']');
		/* through jsonb, so what is stored is what a hit returns */
		result = MemoryContextStrdup(caller,
									 DatumGetCString(DirectFunctionCall1(jsonb_out,
																		 DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)))));
	}
	SPI_finish();
	return result;
}

static Datum
jsonb_datum(const char *json)
{
	return DirectFunctionCall1(jsonb_in, CStringGetDatum(json));
}

/* Is a cached value valid JSON text, so jsonb_in cannot fail on it? */
static bool
valid_json(const char *s, size_t len)
{
	JsonLexContext *lex;

	if (memchr(s, '\0', len) || !pg_verifymbstr(s, (int) len, true))
		return false;
	lex = BmfJsonLexer(s, len, GetDatabaseEncoding());
	return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

/* ---- Redis side ---- */

static void
make_token(char *out)
{
	uint8		b[TOKEN_LEN / 2];
	int			i;

	if (!pg_strong_random(b, sizeof(b)))
		for (i = 0; i < (int) sizeof(b); i++)
			b[i] = (uint8) pg_prng_uint32(&pg_global_prng_state);
	hex_encode((const char *) b, sizeof(b), out);
	out[TOKEN_LEN] = '\0';
}

/* 1 hit (*value set), 2 leased by another, 0 the lease is ours, -1 fault */
static int
take_lease(CachedCall *c, RedisReply **value)
{
	RedisArgs	a;
	RedisReply *r;

	RedisNearForget(c->key.data, c->key.len);	/* it writes the key */
	make_token(c->token);
	RedisArgsInit(&a, 6 + c->ntags);
	RedisArgsScript(&a, &lease_script, 2 + c->ntags);
	RedisArgsAdd(&a, c->key.data, c->key.len);
	RedisArgsAdd(&a, c->lease.data, c->lease.len);
	if (!EffectsAddTagIndexes(&a, c->key.data, c->key.len, c->tags, c->ntags,
							  bmf_cached_lease, REDIS_SOFT))
		return -1;
	RedisArgsAdd(&a, c->token, TOKEN_LEN);
	RedisArgsAddInt(&a, bmf_cached_lease);
	r = RedisCommand(REDIS_SOFT, REDIS_IDEMPOTENT, &a, NULL);
	if (r == NULL)
		return -1;
	if (r->type != RESP_ARRAY || r->elements < 1 || r->element[0]->type != RESP_INTEGER)
		RedisExpectArray(r, 1, RESP_INTEGER, "a cached lease");
	if (r->element[0]->integer == 1)
	{
		RedisExpectArray(r, 2, 0, "a cached lease");
		RedisExpect(r->element[1], RESP_STRING, "a cached lease");
		*value = r->element[1];
	}
	return (int) r->element[0]->integer;
}

/*
 * Store value under our lease (old_sha NULL) or over old_sha (early
 * refresh).  1 stored, 0 refused (an invalidation overtook us), -1 not
 * attempted or failed (too large, Redis unusable).
 */
static int
store(CachedCall *c, const char *value, size_t len, int64 delta_ms, const char *old_sha)
{
	RedisArgs	a;
	RedisReply *r;
	char		delta[24] = "";

	RedisNearForget(c->key.data, c->key.len);	/* it writes the key */
	if (len > (size_t) bmf_max_value_size)
		return -1;
	if (bmf_cached_early_beta > 0)
		snprintf(delta, sizeof(delta), INT64_FORMAT, Max(delta_ms, 1));
	RedisArgsInit(&a, 10 + c->ntags);
	RedisArgsScript(&a, &store_script, 3 + c->ntags);
	RedisArgsAdd(&a, c->key.data, c->key.len);
	RedisArgsAdd(&a, c->lease.data, c->lease.len);
	RedisArgsAdd(&a, c->delta.data, c->delta.len);
	if (!EffectsAddTagIndexes(&a, c->key.data, c->key.len, c->tags, c->ntags,
							  c->ttl_ms, REDIS_SOFT))
		return -1;
	RedisArgsAdd(&a, c->token, TOKEN_LEN);
	RedisArgsAdd(&a, value, len);
	RedisArgsAddInt(&a, c->ttl_ms);
	RedisArgsAddStr(&a, delta);
	RedisArgsAddStr(&a, old_sha ? old_sha : "");
	r = RedisCommand(REDIS_SOFT, REDIS_IDEMPOTENT, &a, NULL);
	if (r == NULL)
		return -1;
	RedisExpect(r, RESP_INTEGER, "a cached store");
	if (r->integer == 1)
		BmfStatsCount(STAT_CACHE_SETS, 1);
	return r->integer == 1 ? 1 : 0;
}

/*
 * Give a lease back (the query failed, or its result could not be
 * stored), so waiters need not sit out the lease.  Quiet: called while an
 * error is being handled, it raises nothing of its own about Redis (only
 * running out of memory could), and interrupts wait until it is done.
 */
static void
release(CachedCall *c)
{
	RedisArgs	a;
	RedisError	err;

	HOLD_INTERRUPTS();
	RedisNearForget(c->key.data, c->key.len);
	RedisArgsInit(&a, 5);
	RedisArgsScript(&a, &release_script, 2);
	RedisArgsAdd(&a, c->key.data, c->key.len);
	RedisArgsAdd(&a, c->lease.data, c->lease.len);
	RedisArgsAdd(&a, c->token, TOKEN_LEN);
	(void) RedisCommand(REDIS_QUIET, REDIS_IDEMPOTENT | REDIS_ERRORS_OK, &a, &err);
	RESUME_INTERRUPTS();
}

/* Compute under our lease and store; the lease is given back on error. */
static char *
compute_and_store(CachedCall *c, const char *old_sha)
{
	TimestampTz t0 = GetCurrentTimestamp();
	char	   *json;
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		json = run_query(c->query);
	}
	PG_CATCH();
	{
		MemoryContext ecxt = MemoryContextSwitchTo(cxt);

		release(c);
		MemoryContextSwitchTo(ecxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (store(c, json, strlen(json), (GetCurrentTimestamp() - t0) / 1000, old_sha) < 0)
		release(c);
	return json;
}

/*
 * XFetch: recompute now?  ttl_ms is what the value has left, delta_ms
 * what computing it took.
 */
static bool
recompute_early(int64 ttl_ms, int64 delta_ms)
{
	double		r = 1.0 - pg_prng_double(&pg_global_prng_state);	/* (0, 1] */

	if (bmf_cached_early_beta <= 0 || ttl_ms <= 0 || delta_ms <= 0)
		return false;
	return -(double) delta_ms * bmf_cached_early_beta * log(r) >= (double) ttl_ms;
}

/* The early recomputation: one backend at a time, compare-and-set. */
static char *
refresh(CachedCall *c, const RedisReply *current)
{
	RedisArgs	a;
	RedisReply *r;
	char		sha[41];
	char	   *json;
	uint8		digest[20];

	make_token(c->token);
	RedisArgsInit(&a, 7);
	RedisArgsAddStr(&a, "SET");
	RedisArgsAdd(&a, c->lease.data, c->lease.len);
	RedisArgsAdd(&a, c->token, TOKEN_LEN);
	RedisArgsAddStr(&a, "NX");
	RedisArgsAddStr(&a, "PX");
	RedisArgsAddInt(&a, bmf_cached_lease);
	r = RedisCommand(REDIS_SOFT, REDIS_IDEMPOTENT, &a, NULL);
	if (r == NULL || r->type != RESP_STATUS)
		return NULL;			/* another backend is at it */
	if (!RedisSha1(current->str, current->len, digest))
		return NULL;
	hex_encode((const char *) digest, 20, sha);
	sha[40] = '\0';
	json = compute_and_store(c, sha);
	BmfStatsCount(STAT_CACHED_EARLY, 1);
	return json;
}

/* ---- SQL ---- */

/*
 * Look the key up: its value and, when XFetch is on (cached_early_beta),
 * its PTTL and the time its last computation took.  NULL when Redis
 * cannot be used.
 */
static RedisReply **
look(CachedCall *c)
{
	RedisBatch	b;
	RedisArgs	a;

	RedisBatchInit(&b);
	RedisArgsInit(&a, 2);
	RedisArgsAddStr(&a, "GET");
	RedisArgsAdd(&a, c->key.data, c->key.len);
	RedisBatchAdd(&b, &a);
	if (bmf_cached_early_beta > 0)
	{
		RedisArgsInit(&a, 2);
		RedisArgsAddStr(&a, "PTTL");
		RedisArgsAdd(&a, c->key.data, c->key.len);
		RedisBatchAdd(&b, &a);
		RedisArgsInit(&a, 2);
		RedisArgsAddStr(&a, "GET");
		RedisArgsAdd(&a, c->delta.data, c->delta.len);
		RedisBatchAdd(&b, &a);
	}
	return RedisPipeline(REDIS_SOFT, REDIS_IDEMPOTENT | REDIS_READ_ONLY, &b, 0, NULL);
}

/*
 * One attempt at the cached value: 1 with *json the answer (a hit, an
 * early recomputation, or our own computation under a lease we took); 0
 * when another backend holds the lease (wait and try again); -1 when there
 * is no cache to be had (Redis unusable, a value that is not JSON, a
 * snapshot older than any lease): run the query.
 */
static int
attempt(CachedCall *c, text *key, char **json)
{
	RedisReply **rr;
	RedisReply *r;
	RedisReply *value = NULL;

	/*
	 * The near-cache: a stored result is a hit from this backend's memory.
	 * Not with early recomputation, which needs the TTL and the delta of
	 * each read; anything else (a lease, a miss) takes the ordinary path.
	 */
	if (bmf_near_cache && bmf_cached_early_beta <= 0 &&
		RedisNearGet(c->key.data, c->key.len, &r) &&
		r != NULL && r->len > 0 && valid_json(r->str, r->len))
	{
		BmfStatsCount(STAT_CACHE_HITS, 1);
		*json = pnstrdup(r->str, r->len);
		return 1;
	}
	rr = look(c);
	if (rr == NULL)
		return -1;
	r = rr[0];
	if (r->type == RESP_ERROR)
		RedisRaiseReplyError(r, "GET");
	if (r->type == RESP_STRING && r->len > 0)
	{
		if (!valid_json(r->str, r->len))
		{
			ereport(WARNING,
					(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					 errmsg("Redis key \"%s\" does not hold JSON", text_to_cstring(key)),
					 errhint("Something other than redis_cached wrote it; the query was run instead.")));
			return -1;
		}
		BmfStatsCount(STAT_CACHE_HITS, 1);
		*json = r->str;
		if (bmf_cached_early_beta > 0 && !IsolationUsesXactSnapshot() &&
			!RecoveryInProgress() &&
			rr[1]->type == RESP_INTEGER && rr[2]->type == RESP_STRING &&
			recompute_early(rr[1]->integer, strtoll(rr[2]->str, NULL, 10)))
		{
			char	   *fresh = refresh(c, r);

			if (fresh)
				*json = fresh;
		}
		return 1;
	}
	if (r->type != RESP_STRING && r->type != RESP_NIL)
		RedisExpect(r, RESP_STRING, "GET");

	/* a miss: someone computing ("") or nobody (nil) */
	if (IsolationUsesXactSnapshot())
		return -1;				/* our snapshot predates any lease: never store */

	/*
	 * A standby's snapshot can be older than an invalidation the primary
	 * already sent (replay lags the primary's COMMIT): what it computes is
	 * returned, never stored.
	 */
	if (RecoveryInProgress())
		return -1;
	if (r->type == RESP_NIL)
	{
		int			got = take_lease(c, &value);

		if (got < 0)
			return -1;
		if (got == 1 && value->len > 0 && valid_json(value->str, value->len))
		{
			BmfStatsCount(STAT_CACHE_HITS, 1);
			*json = value->str;
			return 1;
		}
		if (got == 0)
		{
			BmfStatsCount(STAT_CACHE_MISSES, 1);
			*json = compute_and_store(c, NULL);
			return 1;
		}
	}
	return 0;
}

/* redis_cached(key text, ttl interval, query text, tags text[]) -> jsonb */
Datum
redis_cached(PG_FUNCTION_ARGS)
{
	text	   *key = BmfTextArg(fcinfo, 0, "cache key");
	CachedCall	c;
	TimestampTz deadline = 0;
	int			delay = POLL_MIN_MS;
	char	   *json;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("TTL must not be null"),
				 errhint("A cached query result needs an expiry; the TTL classes are in redis_ttl().")));
	c.ttl_ms = BmfIntervalToMs(PG_GETARG_INTERVAL_P(1), "TTL");
	c.query = text_to_cstring(BmfTextArg(fcinfo, 2, "query"));
	c.tags = NULL;
	c.ntags = 0;
	if (!PG_ARGISNULL(3))
		c.tags = BmfTextArrayElements(PG_GETARG_ARRAYTYPE_P(3), "tag array", &c.ntags);
	RedisCheckKey("cache key", VARSIZE_ANY_EXHDR(key));
	for (int i = 0; i < c.ntags; i++)
		RedisCheckKey("tag", VARSIZE_ANY_EXHDR(c.tags[i]));

	/* own uncommitted changes: neither read nor write the cache */
	if (XactWroteWatched() || XactHasPending())
	{
		BmfStatsCount(STAT_CACHED_BYPASSED, 1);
		PG_RETURN_DATUM(jsonb_datum(run_query(c.query)));
	}

	initStringInfo(&c.key);
	RedisKeyPrefixed(&c.key, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
	initStringInfo(&c.lease);
	RedisSideKey(&c.lease, c.key.data, c.key.len, "\0lease", 6);
	initStringInfo(&c.delta);
	RedisSideKey(&c.delta, c.key.data, c.key.len, "\0delta", 6);

	for (;;)
	{
		int			rc = attempt(&c, key, &json);

		if (rc > 0)
			PG_RETURN_DATUM(jsonb_datum(json));
		if (rc < 0)
			break;
		/* leased by another backend: wait for its value, for a while */
		if (deadline == 0)
		{
			BmfStatsCount(STAT_CACHED_WAITS, 1);
			deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), bmf_cached_wait);
		}
		if (GetCurrentTimestamp() >= deadline)
			break;
		delay = BmfPollSleep(delay, POLL_MAX_MS, deadline);
	}

	/* no cache to be had: the query's own answer */
	BmfStatsCount(STAT_CACHE_MISSES, 1);
	PG_RETURN_DATUM(jsonb_datum(run_query(c.query)));
}

/*
 * redis_cache_key(VARIADIC parts text[]) -> text: parts joined with ':',
 * each part's ':', '%', glob characters (* ? [ ] \), spaces and control
 * bytes percent-encoded, so parts can never merge or act as patterns.
 * Ids, numbers, UUIDs and slugs come out unchanged: redis_cache_key
 * ('product', id) is the key the template product:{id} invalidates.
 */
Datum
redis_cache_key(PG_FUNCTION_ARGS)
{
	int			n;
	text	  **parts = BmfTextArrayElements(PG_GETARG_ARRAYTYPE_P(0), "key parts", &n);
	StringInfoData out;
	int			i;

	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("redis_cache_key needs at least one part")));
	initStringInfo(&out);
	for (i = 0; i < n; i++)
	{
		const unsigned char *s = (const unsigned char *) VARDATA_ANY(parts[i]);
		int			len = VARSIZE_ANY_EXHDR(parts[i]);
		int			j;

		if (i > 0)
			appendStringInfoChar(&out, ':');
		for (j = 0; j < len; j++)
		{
			unsigned char ch = s[j];

			if (ch <= ' ' || ch == 0x7f || strchr(":%*?[]\\", ch))
				appendStringInfo(&out, "%%%02X", ch);
			else
				appendStringInfoChar(&out, (char) ch);
		}
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len(out.data, out.len));
}
