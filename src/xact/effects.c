/*-------------------------------------------------------------------------
 *
 * effects.c
 *		The executor of side effects: UNLINK of keys in batches, tag index
 *		invalidation in bounded script calls, SCAN-based pattern
 *		invalidation, expiries and publishes, pipelined.
 *
 * Tag indexes.  A tag t is a sorted set at <prefix>tag:<t> whose members
 * are the full keys set with that tag and whose scores are the keys'
 * expiry times (epoch ms, +inf for keys without a TTL).  Setting a tagged
 * key (effects_set_tagged_script) adds it, prunes members that have
 * expired, and makes the index itself expire with its last member, so an
 * index never outlives its keys and never grows with dead members.
 * Invalidating a tag pops at most bmfredis.unlink_batch members per script
 * call and unlinks them, so a tag of 100,000 keys never blocks Redis for
 * more than one batch; a key set with the tag while the invalidation runs
 * is either popped by a later batch or was set after the tag was emptied.
 *
 * In a Redis Cluster a tag's keys live in every slot, so its index is
 * sharded by slot: <prefix>{<slot tag>}tag:<t> holds the keys of one slot
 * (the same upkeep as above), and <prefix>tag:<t> is the registry of the
 * slots it has keys in (a sorted set scored by the latest expiry there).
 * A tagged set records its slot in the registry first (EffectsAdd-
 * TagIndexes), then runs the one-slot script; invalidating the tag reads
 * the registry and empties each shard as above (empty_registries).
 *
 * Everything here runs with the REDIS_QUIET policy: it never raises for a
 * Redis fault, because it runs after COMMIT and in the background worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/timestamp.h"

#include "base/compat.h"
#include "base/guc.h"
#include "client/cluster.h"
#include "xact/effects.h"

/* commands per pipelined round trip (500 keys each: 512k keys a trip) */
#define EFFECTS_PIPELINE 1024
/* SCAN COUNT hint */
#define EFFECTS_SCAN_COUNT "1000"

/*
 * SET key value [PX ttl] and add key to each tag index in KEYS[2..]:
 * score = expiry (ms, from Redis' own clock), prune expired members, and
 * let the index expire with its last member.
 */
RedisScript effects_set_tagged_script = REDIS_SCRIPT("tagged set",
"local ttl = tonumber(ARGV[2])\n"
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local exp = '+inf'\n"
"if ttl > 0 then\n"
"  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)\n"
"  exp = now + ttl\n"
"else\n"
"  redis.call('SET', KEYS[1], ARGV[1])\n"
"end\n"
"for i = 2, #KEYS do\n"
"  redis.call('ZADD', KEYS[i], exp, KEYS[1])\n"
"  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. now)\n"
"  local last = redis.call('ZRANGE', KEYS[i], -1, -1, 'WITHSCORES')\n"
"  if last[2] == 'inf' then\n"
"    redis.call('PERSIST', KEYS[i])\n"
"  else\n"
"    redis.call('PEXPIREAT', KEYS[i], math.floor(tonumber(last[2])))\n"
"  end\n"
"end\n"
"return 1\n");

/* Pop up to ARGV[1] members of tag index KEYS[1], unlink them. */
static RedisScript tag_batch_script = REDIS_SCRIPT("tag invalidation",
"local m = redis.call('ZPOPMIN', KEYS[1], ARGV[1])\n"
"local n = 0\n"
"for i = 1, #m, 2 do\n"
"  n = n + redis.call('UNLINK', m[i])\n"
"end\n"
"return {n, redis.call('ZCARD', KEYS[1])}\n");

/*
 * Cluster mode: record slot ARGV[1] in the registry KEYS[1] of a tag, with
 * the expiry of the key set there (ARGV[2] ms, 0: none) as its score if
 * later than the one it has; prune slots whose keys have all expired; let
 * the registry expire with its last slot.
 */
static RedisScript tag_register_script = REDIS_SCRIPT("tag registry",
"local t = redis.call('TIME')\n"
"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
"local ttl = tonumber(ARGV[2])\n"
"local exp = '+inf'\n"
"if ttl > 0 then exp = now + ttl end\n"
"redis.call('ZADD', KEYS[1], 'GT', exp, ARGV[1])\n"
"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)\n"
"local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')\n"
"if last[2] == 'inf' then\n"
"  redis.call('PERSIST', KEYS[1])\n"
"else\n"
"  redis.call('PEXPIREAT', KEYS[1], math.floor(tonumber(last[2])))\n"
"end\n"
"return 1\n");

bool
EffectsAddTagIndexes(RedisArgs *a, const char *key, size_t keylen,
					 text **tags, int ntags, int64 ttl_ms, RedisPolicy policy)
{
	RedisBatch	b;
	int			slot = bmf_cluster ? RedisKeySlot(key, keylen) : -1;
	char		slotstr[8];
	int			i;

	if (bmf_cluster)
	{
		RedisBatchInit(&b);
		snprintf(slotstr, sizeof(slotstr), "%d", slot);
	}
	for (i = 0; i < ntags; i++)
	{
		StringInfoData tk;

		RedisCheckKey("tag", VARSIZE_ANY_EXHDR(tags[i]));
		initStringInfo(&tk);
		RedisTagKey(&tk, VARDATA_ANY(tags[i]), VARSIZE_ANY_EXHDR(tags[i]));
		if (bmf_cluster)
		{
			StringInfoData shard;
			RedisArgs	reg;

			RedisArgsInit(&reg, 6);
			RedisArgsScript(&reg, &tag_register_script, 1);
			RedisArgsAdd(&reg, tk.data, tk.len);
			RedisArgsAddStr(&reg, pstrdup(slotstr));
			RedisArgsAddInt(&reg, ttl_ms);
			RedisBatchAdd(&b, &reg);
			initStringInfo(&shard);
			RedisKeyInSlot(&shard, tk.data, tk.len, slot);
			RedisArgsAdd(a, shard.data, shard.len);
		}
		else
			RedisArgsAdd(a, tk.data, tk.len);
	}
	if (bmf_cluster && ntags > 0)
	{
		RedisReply **r = RedisPipeline(policy, REDIS_IDEMPOTENT, &b, 0, NULL);

		if (r == NULL)
			return false;
		for (i = 0; i < ntags; i++)
			if (r[i]->type == RESP_ERROR)
			{
				if (policy == REDIS_SOFT)
					return false;	/* redis_cached: run without the cache */
				RedisRaiseReplyError(r[i], "tag registry");
			}
	}
	return true;
}

/* A planned command and the effects its reply settles. */
typedef struct Planned
{
	RedisArgs	args;
	char		kind;
	int		   *which;
	int			nwhich;
} Planned;

static void
note_error(EffectsResult *result, const RedisReply *r)
{
	result->error_replies++;
	if (result->first_error[0] == '\0')
		strlcpy(result->first_error, r->str, sizeof(result->first_error));
}

static Planned *
plan_new(Planned **plans, int *nplans, int *cap, char kind, int maxwhich)
{
	Planned    *p;

	if (*nplans == *cap)
	{
		*cap *= 2;
		*plans = repalloc(*plans, sizeof(Planned) * *cap);
	}
	p = &(*plans)[(*nplans)++];
	p->kind = kind;
	p->which = palloc(sizeof(int) * maxwhich);
	p->nwhich = 0;
	return p;
}

static void
add_tag_call(RedisArgs *a, const char *tagkey, size_t len)
{
	RedisArgsInit(a, 5);
	RedisArgsScript(a, &tag_batch_script, 1);
	RedisArgsAdd(a, tagkey, len);
	RedisArgsAddInt(a, bmf_unlink_batch);
}

/*
 * Run planned commands in pipelines of EFFECTS_PIPELINE; on each reply
 * call settle.  Returns false when Redis fails.
 */
typedef void (*SettleFn) (Planned *p, RedisReply *r, void *arg);

static bool
run_planned(const RedisNode *node, Planned *plans, int nplans, int flags,
			TimestampTz deadline, SettleFn settle, void *arg, RedisError *err)
{
	int			start;

	for (start = 0; start < nplans; start += EFFECTS_PIPELINE)
	{
		int			end = Min(nplans, start + EFFECTS_PIPELINE);
		RedisBatch	b;
		RedisReply **replies;
		int			i;

		if (GetCurrentTimestamp() >= deadline)
		{
			RedisErrorSet(err, RS_TIMEOUT, ERRCODE_CONNECTION_FAILURE,
						  "Redis command timed out",
						  "Sending queued effects did not finish in time.");
			return false;
		}
		RedisBatchInit(&b);
		for (i = start; i < end; i++)
			RedisBatchAdd(&b, &plans[i].args);
		replies = RedisPipelineNode(node, REDIS_QUIET, flags, &b, deadline, err);
		pfree(b.buf.data);
		if (replies == NULL)
			return false;
		for (i = start; i < end; i++)
			settle(&plans[i], replies[i - start], arg);
	}
	return true;
}

typedef struct SettleState
{
	const Effect *effects;
	bool	   *done;
	EffectsResult *result;
	/* tags still holding members after their first batch */
	int		   *pending;
	int			npending;
} SettleState;

static void
settle_first(Planned *p, RedisReply *r, void *arg)
{
	SettleState *st = (SettleState *) arg;
	int			i;

	if (r->type == RESP_ERROR)
	{
		note_error(st->result, r);
		return;					/* refused: kept for retry */
	}
	else if (p->kind == EFFECT_KEY && r->type == RESP_INTEGER)
		st->result->unlinked += r->integer;
	else if (p->kind == EFFECT_TAG && r->type == RESP_ARRAY && r->elements == 2)
	{
		st->result->unlinked += r->element[0]->integer;
		if (r->element[1]->integer > 0)
		{
			st->pending[st->npending++] = p->which[0];
			return;				/* not done yet */
		}
	}
	for (i = 0; i < p->nwhich; i++)
		st->done[p->which[i]] = true;
}

/*
 * Empty the tag indexes named by tagkeys (lengths lens), bmfredis.
 * unlink_batch members per script call, all tags of a round in one
 * pipeline.  Each tag gets as many rounds as its size asked for when we
 * started, plus two, so a writer adding to it all along cannot keep us
 * here: what it adds later was set after the invalidation.
 */
static bool
empty_tags(const RedisNode *node, const char **tagkeys, const uint32 *lens,
		   int n, TimestampTz deadline, bool *emptied, EffectsResult *result,
		   RedisError *err)
{
	int		   *rounds = palloc(sizeof(int) * n);
	bool	   *refused = palloc0(sizeof(bool) * n);
	int			i;
	bool		more = true;

	for (i = 0; i < n; i++)
	{
		rounds[i] = -1;			/* unknown until the first reply */
		emptied[i] = false;
	}
	while (more)
	{
		RedisBatch	b;
		RedisReply **replies;
		int		   *idx = palloc(sizeof(int) * n);
		int			m = 0;

		RedisBatchInit(&b);
		for (i = 0; i < n && m < EFFECTS_PIPELINE; i++)
		{
			RedisArgs	a;

			if (emptied[i])
				continue;
			add_tag_call(&a, tagkeys[i], lens[i]);
			RedisBatchAdd(&b, &a);
			idx[m++] = i;
		}
		if (m == 0)
			break;
		if (GetCurrentTimestamp() >= deadline)
		{
			RedisErrorSet(err, RS_TIMEOUT, ERRCODE_CONNECTION_FAILURE,
						  "Redis command timed out",
						  "Invalidating tags did not finish in time.");
			return false;
		}
		replies = RedisPipelineNode(node, REDIS_QUIET, REDIS_IDEMPOTENT, &b, deadline, err);
		if (replies == NULL)
			return false;
		for (i = 0; i < m; i++)
		{
			RedisReply *r = replies[i];
			int			t = idx[i];

			if (r->type != RESP_ARRAY || r->elements != 2)
			{
				if (r->type == RESP_ERROR)
				{
					note_error(result, r);
					refused[t] = true;	/* kept for retry */
				}
				emptied[t] = true;	/* no more rounds */
				continue;
			}
			result->unlinked += r->element[0]->integer;
			if (rounds[t] < 0)
				rounds[t] = (int) (r->element[1]->integer / Max(bmf_unlink_batch, 1)) + 2;
			if (r->element[1]->integer == 0 || --rounds[t] <= 0)
				emptied[t] = true;
		}
		pfree(b.buf.data);
		more = false;
		for (i = 0; i < n; i++)
			more |= !emptied[i];
	}
	for (i = 0; i < n; i++)
		emptied[i] &= !refused[i];
	return true;
}

/*
 * Cluster mode: empty the tag indexes whose registries are names: read
 * each registry's slots, then empty the shard of each slot as empty_tags
 * does.  The registry itself is left to expire with its last slot: a
 * writer may be adding its slot again right now.
 */
static bool
empty_registries(const RedisNode *node, const char **names, const uint32 *lens,
				 int n, TimestampTz deadline, bool *emptied,
				 EffectsResult *result, RedisError *err)
{
	const char **shards = NULL;
	uint32	   *slens = NULL;
	int		   *owner = NULL;
	int			nshards = 0;
	int			cap = 0;
	bool	   *sdone;
	int			start;
	int			i;

	for (i = 0; i < n; i++)
		emptied[i] = true;
	for (start = 0; start < n; start += EFFECTS_PIPELINE)
	{
		int			end = Min(n, start + EFFECTS_PIPELINE);
		RedisBatch	b;
		RedisReply **replies;

		RedisBatchInit(&b);
		for (i = start; i < end; i++)
		{
			RedisArgs	a;

			RedisArgsInit(&a, 4);
			RedisArgsAdd(&a, "ZRANGE", 6);
			RedisArgsAdd(&a, names[i], lens[i]);
			RedisArgsAdd(&a, "0", 1);
			RedisArgsAdd(&a, "-1", 2);
			RedisBatchAdd(&b, &a);
		}
		replies = RedisPipelineNode(node, REDIS_QUIET, REDIS_IDEMPOTENT, &b, deadline, err);
		if (replies == NULL)
			return false;
		for (i = start; i < end; i++)
		{
			RedisReply *r = replies[i - start];
			size_t		k;

			if (r->type == RESP_ERROR)
			{
				note_error(result, r);
				emptied[i] = false;	/* refused: kept for retry */
				continue;
			}
			if (r->type != RESP_ARRAY)
				continue;
			for (k = 0; k < r->elements; k++)
			{
				StringInfoData sk;
				int			slot;

				if (r->element[k]->type != RESP_STRING)
					continue;
				slot = atoi(r->element[k]->str);
				if (slot < 0 || slot >= CLUSTER_SLOTS)
					continue;
				if (nshards == cap)
				{
					cap = Max(cap * 2, 16);
					shards = shards ? repalloc(shards, sizeof(char *) * cap) : palloc(sizeof(char *) * cap);
					slens = slens ? repalloc(slens, sizeof(uint32) * cap) : palloc(sizeof(uint32) * cap);
					owner = owner ? repalloc(owner, sizeof(int) * cap) : palloc(sizeof(int) * cap);
				}
				initStringInfo(&sk);
				RedisKeyInSlot(&sk, names[i], lens[i], slot);
				shards[nshards] = sk.data;
				slens[nshards] = sk.len;
				owner[nshards++] = i;
			}
		}
		pfree(b.buf.data);
	}
	if (nshards == 0)
		return true;
	sdone = palloc(sizeof(bool) * nshards);
	if (!empty_tags(node, shards, slens, nshards, deadline, sdone, result, err))
		return false;
	for (i = 0; i < nshards; i++)
		if (!sdone[i])
			emptied[owner[i]] = false;
	return true;
}

/*
 * SCAN for keys matching pattern; unlink them (tags == false) or empty
 * them as tag indexes (tags == true).  The UNLINK of one batch travels
 * with the SCAN for the next.
 */
/* SCAN answers [cursor, [key, ...]] with strings only; we index it blindly after this. */
static bool
scan_reply_ok(const RedisReply *reply)
{
	size_t		i;

	if (reply->type != RESP_ARRAY || reply->elements != 2 ||
		reply->element[0]->type != RESP_STRING ||
		reply->element[1]->type != RESP_ARRAY)
		return false;
	for (i = 0; i < reply->element[1]->elements; i++)
		if (reply->element[1]->element[i]->type != RESP_STRING)
			return false;
	return true;
}

/* UNLINK what a SCAN found (un), counted */
static bool
unlink_found(const RedisNode *node, RedisBatch *b, RedisArgs *un,
			 TimestampTz deadline, EffectsResult *result, RedisError *err)
{
	RedisReply **rr;

	RedisBatchReset(b);
	RedisBatchAdd(b, un);
	rr = RedisPipelineNode(node, REDIS_QUIET, REDIS_IDEMPOTENT, b, deadline, err);
	if (rr == NULL)
		return false;
	if (rr[0]->type == RESP_INTEGER)
		result->unlinked += rr[0]->integer;
	else if (rr[0]->type == RESP_ERROR)
		note_error(result, rr[0]);
	return true;
}

/*
 * A pattern invalidation (keep: the key prefix it was made under, "" for
 * none) leaves the locks and semaphores under that prefix alone
 * (<prefix>lock:{…}, <prefix>sem:{…}, with their fences and queues),
 * whatever the pattern: they are not cached data, and deleting a held
 * lock would let a second holder in.  The namespace after an overflow or
 * a cold start, redis_flush_namespace(), redis_invalidate_pattern('*') and
 * a TRUNCATE's {name} template all come here.
 */
static bool
kept_key(const RedisReply *k, const char *keep, uint32 keep_len)
{
	const char *rest;
	size_t		n;

	if (keep == NULL || k->len < keep_len || memcmp(k->str, keep, keep_len) != 0)
		return false;
	rest = k->str + keep_len;
	n = k->len - keep_len;
	return (n >= 6 && memcmp(rest, "lock:{", 6) == 0) ||
		(n >= 5 && memcmp(rest, "sem:{", 5) == 0);
}

static bool
scan_pattern(const RedisNode *node, const RedisNode *scan_node,
			 const char *pattern, uint32 len, bool tags, const char *keep,
			 uint32 keep_len, TimestampTz deadline, EffectsResult *result,
			 RedisError *err)
{
	char	   *cursor = pstrdup("0");

	for (;;)
	{
		RedisArgs	scan;
		RedisReply *reply;
		RedisReply *keys;
		RedisBatch	b;
		size_t		i;

		CHECK_FOR_INTERRUPTS();
		if (GetCurrentTimestamp() >= deadline)
		{
			RedisErrorSet(err, RS_TIMEOUT, ERRCODE_CONNECTION_FAILURE,
						  "Redis command timed out",
						  "Pattern invalidation did not finish in time.");
			return false;
		}
		RedisArgsInit(&scan, 7);
		RedisArgsAdd(&scan, "SCAN", 4);
		RedisArgsAddStr(&scan, cursor);
		RedisArgsAdd(&scan, "MATCH", 5);
		RedisArgsAdd(&scan, pattern, len);
		RedisArgsAdd(&scan, "COUNT", 5);
		RedisArgsAddStr(&scan, EFFECTS_SCAN_COUNT);
		if (tags)
		{
			RedisArgsAdd(&scan, "TYPE", 4);
			RedisArgsAdd(&scan, "zset", 4);
		}
		RedisBatchInit(&b);
		RedisBatchAdd(&b, &scan);
		{
			RedisReply **r = RedisPipelineNode(scan_node, REDIS_QUIET, REDIS_IDEMPOTENT,
											   &b, deadline, err);

			if (r == NULL)
				return false;
			reply = r[0];
		}
		if (reply->type == RESP_ERROR)
		{
			note_error(result, reply);
			return true;
		}
		if (!scan_reply_ok(reply))
		{
			RedisErrorSet(err, RS_PROTOCOL, ERRCODE_PROTOCOL_VIOLATION,
						  "invalid reply from Redis", "SCAN returned an unexpected reply.");
			return false;
		}
		keys = reply->element[1];
		if (keys->elements > 0 && tags)
		{
			const char **names = palloc(sizeof(char *) * keys->elements);
			uint32	   *lens = palloc(sizeof(uint32) * keys->elements);
			bool	   *emptied = palloc(sizeof(bool) * keys->elements);

			for (i = 0; i < keys->elements; i++)
			{
				names[i] = keys->element[i]->str;
				lens[i] = keys->element[i]->len;
			}
			if (!(node->cluster ?
				  empty_registries(node, names, lens, keys->elements, deadline, emptied, result, err) :
				  empty_tags(node, names, lens, keys->elements, deadline, emptied, result, err)))
				return false;
		}
		else if (keys->elements > 0)
		{
			RedisArgs	un;

			RedisArgsInit(&un, keys->elements + 1);
			RedisArgsAdd(&un, "UNLINK", 6);
			for (i = 0; i < keys->elements; i++)
				if (!kept_key(keys->element[i], keep, keep_len))
					RedisArgsAdd(&un, keys->element[i]->str, keys->element[i]->len);
			if (un.argc > 1 && !unlink_found(node, &b, &un, deadline, result, err))
				return false;
		}
		cursor = reply->element[0]->str;
		if (strcmp(cursor, "0") == 0)
			return true;
	}
}

/* SCAN on the node, or on every master of a cluster. */
static bool
scan_everywhere(const RedisNode *node, const Effect *e, TimestampTz deadline,
				EffectsResult *result, RedisError *err)
{
	bool		tags = e->kind == EFFECT_TAG_PATTERN;
	/* the prefix whose locks and semaphores a key pattern leaves alone */
	const char *keep = tags ? NULL : e->arg_len > 0 ? e->arg : "";
	const RedisNode **masters;
	int			n;
	int			i;

	if (!node->cluster)
		return scan_pattern(node, node, e->target, e->target_len, tags, keep,
							e->arg_len, deadline, result, err);
	if (!RedisClusterEnsureMap(node, deadline, err))
		return false;
	n = RedisClusterMasters(&masters);
	for (i = 0; i < n; i++)
		if (!scan_pattern(node, masters[i], e->target, e->target_len, tags, keep,
						  e->arg_len, deadline, result, err))
			return false;
	return true;
}

static void
settle_publish(Planned *p, RedisReply *r, void *arg)
{
	SettleState *st = (SettleState *) arg;

	if (r->type == RESP_ERROR)
		note_error(st->result, r);
	else
	{
		st->result->published++;
		st->result->receivers += r->integer;
	}
	st->done[p->which[0]] = true;
}

/* A message appended to a stream: it is there once Redis gave its id */
static void
settle_xadd(Planned *p, RedisReply *r, void *arg)
{
	SettleState *st = (SettleState *) arg;

	if (r->type == RESP_ERROR)
	{
		note_error(st->result, r);
		return;					/* at least once: kept for retry */
	}
	st->result->appended++;
	st->done[p->which[0]] = true;
}

/* An UNLINK with room for bmfredis.unlink_batch keys, to be added */
static void
unlink_args(RedisArgs *a)
{
	RedisArgsInit(a, bmf_unlink_batch + 1);
	RedisArgsAdd(a, "UNLINK", 6);
}

static void
publish_args(RedisArgs *a, const Effect *e)
{
	RedisArgsInit(a, 3);
	RedisArgsAdd(a, "PUBLISH", 7);
	RedisArgsAdd(a, e->target, e->target_len);
	RedisArgsAdd(a, e->arg, e->arg_len);
}

/*
 * XADD <stream> [MAXLEN ~ n] * message <message>: the cap is the one in
 * force where it is sent (the worker's, for what the retry queue holds).
 */
static void
xadd_args(RedisArgs *a, const Effect *e)
{
	RedisArgsInit(a, 8);
	RedisArgsAdd(a, "XADD", 4);
	RedisArgsAdd(a, e->target, e->target_len);
	if (bmf_stream_maxlen > 0)
	{
		RedisArgsAdd(a, "MAXLEN", 6);
		RedisArgsAdd(a, "~", 1);
		RedisArgsAddInt(a, bmf_stream_maxlen);	/* copied */
	}
	RedisArgsAdd(a, "*", 1);
	RedisArgsAdd(a, "message", 7);
	RedisArgsAdd(a, e->arg, e->arg_len);
}

/* Step 1's plans: keys (UNLINK in batches), expiries, first batch of every tag. */
static int
plan_keys(const RedisNode *node, const Effect *effects, int n, Planned **plans,
		  int *cap)
{
	Planned    *unlink = NULL;
	int			nplans = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		const Effect *e = &effects[i];
		Planned    *p;

		switch (e->kind)
		{
			case EFFECT_KEY:
				if (unlink == NULL || unlink->nwhich >= bmf_unlink_batch)
				{
					unlink = plan_new(plans, &nplans, cap, EFFECT_KEY, bmf_unlink_batch);
					unlink_args(&unlink->args);
				}
				RedisArgsAdd(&unlink->args, e->target, e->target_len);
				unlink->which[unlink->nwhich++] = i;
				break;
			case EFFECT_EXPIRE_AT:
				p = plan_new(plans, &nplans, cap, EFFECT_EXPIRE_AT, 1);
				RedisArgsInit(&p->args, 4);
				RedisArgsAdd(&p->args, "PEXPIREAT", 9);
				RedisArgsAdd(&p->args, e->target, e->target_len);
				RedisArgsAdd(&p->args, e->arg, e->arg_len);
				RedisArgsAdd(&p->args, "LT", 2);
				p->which[p->nwhich++] = i;
				break;
			case EFFECT_TAG:
				if (node->cluster)
					break;		/* registries: after the keys (cluster_tags) */
				p = plan_new(plans, &nplans, cap, EFFECT_TAG, 1);
				add_tag_call(&p->args, e->target, e->target_len);
				p->which[p->nwhich++] = i;
				break;
			default:
				break;
		}
	}
	return nplans;
}

/* Step 2: the tags that had more than one batch, emptied to the end. */
static bool
rest_of_tags(const RedisNode *node, const Effect *effects, SettleState *st,
			 TimestampTz deadline, RedisError *err)
{
	const char **names = palloc(sizeof(char *) * st->npending);
	uint32	   *lens = palloc(sizeof(uint32) * st->npending);
	bool	   *emptied = palloc(sizeof(bool) * st->npending);
	bool		ok;
	int			i;

	for (i = 0; i < st->npending; i++)
	{
		names[i] = effects[st->pending[i]].target;
		lens[i] = effects[st->pending[i]].target_len;
	}
	ok = empty_tags(node, names, lens, st->npending, deadline, emptied, st->result, err);
	for (i = 0; i < st->npending; i++)
		st->done[st->pending[i]] = emptied[i];
	return ok;
}

/* Step 2b, cluster mode: every shard of every tag. */
static bool
cluster_tags(const RedisNode *node, const Effect *effects, int n, bool *done,
			 TimestampTz deadline, EffectsResult *result, RedisError *err)
{
	const char **names = palloc(sizeof(char *) * Max(n, 1));
	uint32	   *lens = palloc(sizeof(uint32) * Max(n, 1));
	int		   *which = palloc(sizeof(int) * Max(n, 1));
	bool	   *emptied = palloc(sizeof(bool) * Max(n, 1));
	int			m = 0;
	bool		ok = true;
	int			i;

	for (i = 0; i < n; i++)
	{
		if (effects[i].kind != EFFECT_TAG)
			continue;
		names[m] = effects[i].target;
		lens[m] = effects[i].target_len;
		which[m++] = i;
	}
	if (m > 0)
	{
		ok = empty_registries(node, names, lens, m, deadline, emptied, result, err);
		for (i = 0; ok && i < m; i++)
			done[which[i]] = emptied[i];
	}
	return ok;
}

static void
settle_message(Planned *p, RedisReply *r, void *arg)
{
	if (p->kind == EFFECT_XADD)
		settle_xadd(p, r, arg);
	else
		settle_publish(p, r, arg);
}

/* Step 4: the publishes and stream appends, in their order, after every invalidation. */
static bool
publishes(const RedisNode *node, const Effect *effects, int n, Planned **plans,
		  int *cap, SettleState *st, TimestampTz deadline, RedisError *err)
{
	int			nplans = 0;
	int			i;

	for (i = 0; i < n; i++)
	{
		const Effect *e = &effects[i];
		Planned    *p;

		if (e->kind != EFFECT_PUBLISH && e->kind != EFFECT_XADD)
			continue;
		p = plan_new(plans, &nplans, cap, e->kind, 1);
		if (e->kind == EFFECT_XADD)
			xadd_args(&p->args, e);
		else
			publish_args(&p->args, e);
		p->which[p->nwhich++] = i;
	}
	return nplans == 0 ||
		run_planned(node, *plans, nplans, 0, deadline, settle_message, st, err);
}

bool
EffectsSend(const RedisNode *node, const Effect *effects, int n,
			TimestampTz deadline, bool *done, EffectsResult *result,
			RedisError *err)
{
	SettleState st;
	int			cap = 16;
	Planned    *plans = palloc(sizeof(Planned) * cap);
	int			nplans;
	int			i;
	int			refusals;
	bool		ok = true;

	memset(result, 0, sizeof(EffectsResult));
	memset(done, 0, sizeof(bool) * n);
	st.effects = effects;
	st.done = done;
	st.result = result;
	st.pending = palloc(sizeof(int) * Max(n, 1));
	st.npending = 0;

	/* 1. keys, expiries, the first batch of every tag */
	nplans = plan_keys(node, effects, n, &plans, &cap);
	if (nplans > 0)
		ok = run_planned(node, plans, nplans, REDIS_IDEMPOTENT, deadline,
						 settle_first, &st, err);
	/* 2. tags that had more than one batch; 2b. a cluster's tag shards */
	if (ok && st.npending > 0)
		ok = rest_of_tags(node, effects, &st, deadline, err);
	if (ok && node->cluster)
		ok = cluster_tags(node, effects, n, done, deadline, result, err);
	/* 3. tag patterns and key patterns */
	for (i = 0; ok && i < n; i++)
	{
		const Effect *e = &effects[i];

		if (e->kind != EFFECT_PATTERN && e->kind != EFFECT_TAG_PATTERN)
			continue;
		refusals = result->error_replies;
		ok = scan_everywhere(node, e, deadline, result, err);
		done[i] = ok && result->error_replies == refusals;
	}
	/* 4. publishes */
	if (ok)
		ok = publishes(node, effects, n, &plans, &cap, &st, deadline, err);

	for (i = 0; i < n; i++)
		if (!done[i])
			result->failed++;
	if (ok && result->failed > 0)
		RedisErrorSet(err, RS_REPLY, RedisReplyErrorCode(result->first_error),
					  "Redis refused invalidations",
					  "%s answered: %s", node->ep.name, result->first_error);
	return ok && result->failed == 0;
}


/* ---- streams ---- */

static void
add_word(RedisBatch *b, const char *word)
{
	RedisArgs	a;

	RedisArgsInit(&a, 1);
	RedisArgsAddStr(&a, word);
	RedisBatchAdd(b, &a);
}

/*
 * Keys (EFFECT_KEY, as UNLINKs of bmfredis.unlink_batch) and publishes of
 * effects[0 .. n), in order, onto b; other kinds are not streamed.
 */
static void
stream_batch(RedisBatch *b, const Effect *effects, int n)
{
	RedisArgs	unlink;
	int			nkeys = 0;
	int			i;

	for (i = 0; i <= n; i++)
	{
		const Effect *e = i < n ? &effects[i] : NULL;

		if (nkeys > 0 && (e == NULL || e->kind != EFFECT_KEY || nkeys == bmf_unlink_batch))
		{
			RedisBatchAdd(b, &unlink);
			nkeys = 0;
		}
		if (e == NULL)
			break;
		if (e->kind == EFFECT_KEY)
		{
			if (nkeys == 0)
				unlink_args(&unlink);
			RedisArgsAdd(&unlink, e->target, e->target_len);
			nkeys++;
		}
		else if (e->kind == EFFECT_PUBLISH || e->kind == EFFECT_XADD)
		{
			RedisArgs	a;

			if (e->kind == EFFECT_XADD)
				xadd_args(&a, e);
			else
				publish_args(&a, e);
			RedisBatchAdd(b, &a);
		}
	}
}

bool
EffectsStreamWrite(const RedisNode *node, const char *tag, bool opening,
				   const Effect *effects, int n, TimestampTz deadline,
				   RedisError *err)
{
	RedisBatch	b;
	bool		ok;

	RedisBatchInit(&b);
	if (opening)
		add_word(&b, "MULTI");
	stream_batch(&b, effects, n);
	if (b.n == 0)
		return true;
	ok = RedisStreamSend(node, tag, opening, &b, deadline, err);
	pfree(b.buf.data);
	return ok;
}

bool
EffectsStreamFinish(const RedisNode *node, const char *tag,
					const Effect *effects, int n, TimestampTz deadline,
					int64 *counted, RedisError *err)
{
	RedisBatch	b;
	RedisReply **replies;
	RedisReply *exec;
	int			nreplies;
	int			i;

	*counted = 0;
	RedisBatchInit(&b);
	stream_batch(&b, effects, n);
	add_word(&b, "EXEC");
	replies = RedisStreamFinish(node, tag, &b, deadline, &nreplies, err);
	pfree(b.buf.data);
	if (replies == NULL)
		return false;
	/* MULTI's OK, a QUEUED per command, and EXEC's array of their replies */
	exec = replies[nreplies - 1];
	if (exec->type != RESP_ARRAY || exec->elements != (size_t) (nreplies - 2))
	{
		RedisErrorSet(err, RS_PROTOCOL, ERRCODE_CONNECTION_EXCEPTION,
					  "Redis did not run a stream",
					  "EXEC answered %s.",
					  exec->type == RESP_ERROR ? exec->str : RespTypeName(exec->type));
		return false;
	}
	for (i = 0; i < (int) exec->elements; i++)
	{
		/*
		 * A command EXEC ran and Redis refused (an ACL changed since, a key
		 * of the wrong type): the stream failed, so its items go at COMMIT
		 * the ordinary way, where what is refused again waits for retry.
		 */
		if (exec->element[i]->type == RESP_ERROR)
		{
			RedisErrorSet(err, RS_REPLY, ERRCODE_CONNECTION_EXCEPTION,
						  "Redis refused part of a stream",
						  "%s", exec->element[i]->str);
			return false;
		}
		if (exec->element[i]->type == RESP_INTEGER)
			*counted += exec->element[i]->integer;
	}
	return true;
}

void
EffectsStreamAbandon(const char *node_name, const char *tag)
{
	RedisStreamAbandon(node_name, tag);
}
