/*-------------------------------------------------------------------------
 *
 * client.c
 *		Commands and pipelines for the features: batches, sending them to
 *		a node (with NOSCRIPT handled), the command log, streams.
 *
 * The rest of the client layer: args.c (argument vectors, the key prefix,
 * scripts), nodes.c (the configured node, what features may know of
 * nodes and connections), policy.c (what a failure means), route.c (a
 * cluster: batches split by slot, redirects, replies joined), cluster.c
 * (the slot map), reply.c (replies to SQL values).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "base/guc.h"
#include "base/sqlutil.h"
#include "base/stats.h"
#include "base/url.h"
#include "base/wait.h"
#include "client/client.h"
#include "client/cluster.h"
#include "client/internal.h"
#include "pool/pool.h"

RedisClientStats redis_client_stats;
RedisBeforeCallHook redis_before_call_hook = NULL;
static bool in_before_call_hook = false;

/* ---- batches ---- */

void
RedisBatchInit(RedisBatch *b)
{
	initStringInfo(&b->buf);
	b->n = 0;
	b->nparts = 0;
	b->cap = 8;
	b->offsets = palloc(sizeof(int) * b->cap);
	b->scripts = palloc(sizeof(RedisScript *) * b->cap);
	b->slots = NULL;
	b->owner = NULL;
	b->join = NULL;
	b->said = bmf_log_commands ? palloc0(sizeof(char *) * b->cap) : NULL;
	if (bmf_cluster)
	{
		b->slots = palloc(sizeof(int) * b->cap);
		b->owner = palloc(sizeof(int) * b->cap);
		b->join = palloc(b->cap);
	}
}

/*
 * What a command is, for bmfredis.log_commands: its name (a script's
 * name) and its first key or argument, cut at 80 bytes, with how many
 * more arguments there are.  Never a value: a SET's value, a PUBLISH's
 * message and a script's arguments come after what is shown.
 */
static char *
describe_command(int argc, const char *const *argv, const size_t *lens,
				 RedisScript *script)
{
	StringInfoData s;
	int			first = 1;

	initStringInfo(&s);
	if (script)
	{
		appendStringInfo(&s, "script \"%s\"", script->name);
		first = 3;				/* EVALSHA sha numkeys key... */
	}
	else
		appendBinaryStringInfo(&s, argv[0], Min(lens[0], 32));
	if (argc > first)
	{
		appendStringInfoChar(&s, ' ');
		appendBinaryStringInfo(&s, argv[first], Min(lens[first], 80));
		if (lens[first] > 80)
			appendStringInfoString(&s, "...");
	}
	if (argc > first + 1)
		appendStringInfo(&s, " (+%d more)", argc - first - 1);
	return s.data;
}

/* The outcome of one reply, for the log: never its value. */
static void
describe_reply(StringInfo out, const RedisReply *r)
{
	switch (r->type)
	{
		case RESP_NIL:
			appendStringInfoString(out, "nil");
			break;
		case RESP_INTEGER:
			appendStringInfo(out, "integer %lld", (long long) r->integer);
			break;
		case RESP_STATUS:
			appendStringInfo(out, "%.32s", r->str);
			break;
		case RESP_ERROR:
			appendStringInfo(out, "error reply: %.200s", r->str);
			break;
		case RESP_ARRAY:
			appendStringInfo(out, "array of %zu", r->elements);
			break;
		default:
			appendStringInfo(out, "string of %zu bytes", r->len);
			break;
	}
}

/*
 * bmfredis.log_commands: one line per command of a batch, with the node,
 * the batch's round-trip time and each outcome.
 */
static void
log_batch(const RedisBatch *b, const char *node, int64 usec,
		  RedisReply **replies, const RedisError *err, const char *note)
{
	int			i;

	if (b->said == NULL)
		return;
	for (i = 0; i < b->nparts; i++)
	{
		StringInfoData outcome;

		initStringInfo(&outcome);
		if (err)
			appendStringInfo(&outcome, "failed: %s", err->message);
		else if (replies)
			describe_reply(&outcome, replies[i]);
		else
			appendStringInfoString(&outcome, note);
		ereport(bmf_log_commands,
				(errmsg_internal("bmfredis: %s on %s: %.3f ms%s, %s",
								 b->said[i] ? b->said[i] : "(command)", node,
								 usec / 1000.0,
								 b->nparts > 1 ? psprintf(" (pipeline of %d)", b->nparts) : "",
								 outcome.data),
				 errhidestmt(true)));
		pfree(outcome.data);
	}
}

/* Append one part: a command in RESP, with its script and slot. */
void
ClientBatchPart(RedisBatch *b, int argc, const char *const *argv, const size_t *lens,
		   RedisScript *script, int slot)
{
	if (b->nparts == b->cap)
	{
		b->cap *= 2;
		b->offsets = repalloc(b->offsets, sizeof(int) * b->cap);
		b->scripts = repalloc(b->scripts, sizeof(RedisScript *) * b->cap);
		if (b->slots)
		{
			b->slots = repalloc(b->slots, sizeof(int) * b->cap);
			b->owner = repalloc(b->owner, sizeof(int) * b->cap);
			b->join = repalloc(b->join, b->cap);
		}
		if (b->said)
			b->said = repalloc(b->said, sizeof(char *) * b->cap);
	}
	if (b->said)
		b->said[b->nparts] = argv ? describe_command(argc, argv, lens, script) : NULL;
	b->offsets[b->nparts] = b->buf.len;
	b->scripts[b->nparts] = script;
	if (b->slots)
	{
		b->slots[b->nparts] = slot;
		b->owner[b->nparts] = b->n;
	}
	if (argv)
		RespFormat(&b->buf, argc, argv, lens);
	b->nparts++;
}

void
RedisBatchAdd(RedisBatch *b, const RedisArgs *a)
{
	if (b->slots)
	{
		ClientBatchAddCluster(b, a);
		return;
	}
	ClientBatchPart(b, a->argc, a->argv, a->lens, a->script, -1);
	b->n++;
}

void
RedisBatchReset(RedisBatch *b)
{
	resetStringInfo(&b->buf);
	b->n = 0;
	b->nparts = 0;
}

/* The RESP bytes of part i */
static inline int
part_len(const RedisBatch *b, int i)
{
	return ((i + 1 < b->nparts) ? b->offsets[i + 1] : b->buf.len) - b->offsets[i];
}

/* Copy part i of from into to (raw bytes). */
void
ClientBatchCopyPart(RedisBatch *to, const RedisBatch *from, int i)
{
	int			at = to->buf.len;

	appendBinaryStringInfo(&to->buf, from->buf.data + from->offsets[i], part_len(from, i));
	ClientBatchPart(to, 0, NULL, NULL, from->scripts[i], from->slots ? from->slots[i] : -1);
	to->offsets[to->nparts - 1] = at;
	if (to->said && from->said)
		to->said[to->nparts - 1] = from->said[i];
	to->n++;
}

/* ---- calls ---- */

int
ClientPoolFlags(int flags)
{
	int			pflags = 0;

	if (flags & REDIS_IDEMPOTENT)
		pflags |= POOL_IDEMPOTENT;
	if (flags & REDIS_FORCE)
		pflags |= POOL_FORCE;
	if (flags & REDIS_READ_ONLY)
		pflags |= POOL_READ_ONLY;
	return pflags;
}

bool
ClientIsNoscript(const RedisReply *r)
{
	return RespErrorIs(r, "NOSCRIPT");
}

/*
 * Re-run the parts of b whose EVALSHA found no script: load each script
 * they need, then send the same commands again, in one round trip.  A
 * NOSCRIPT reply means the script did not run, so re-sending is safe for
 * any script.  Returns false with err set when Redis fails meanwhile.
 */
bool
ClientRetryNoscript(const RedisNode *node, const RedisBatch *b, RedisReply **replies,
			   int flags, TimestampTz deadline, RedisError *err)
{
	RedisBatch	retry;
	RedisScript **loaded = palloc0(sizeof(RedisScript *) * b->nparts);
	int		   *which = palloc(sizeof(int) * b->nparts);
	int			nloaded = 0;
	int			nretry = 0;
	int			i;
	int			j;
	RedisReply **again;

	RedisBatchInit(&retry);
	for (i = 0; i < b->nparts; i++)
	{
		RedisArgs	load;
		bool		seen = false;

		if (!b->scripts[i] || !ClientIsNoscript(replies[i]))
			continue;
		for (j = 0; j < nloaded; j++)
			seen |= (loaded[j] == b->scripts[i]);
		if (seen)
			continue;
		loaded[nloaded++] = b->scripts[i];
		RedisArgsInit(&load, 3);
		RedisArgsAdd(&load, "SCRIPT", 6);
		RedisArgsAdd(&load, "LOAD", 4);
		RedisArgsAddStr(&load, b->scripts[i]->source);
		ClientBatchPart(&retry, load.argc, load.argv, load.lens, NULL, -1);
		retry.n++;
	}
	for (i = 0; i < b->nparts; i++)
	{
		if (!b->scripts[i] || !ClientIsNoscript(replies[i]))
			continue;
		ClientBatchCopyPart(&retry, b, i);
		which[nretry++] = i;
	}
	if (nretry == 0)
		return true;

	again = palloc(sizeof(RedisReply *) * retry.nparts);
	if (!PoolExec(node, &retry.buf, retry.nparts,
					   ClientPoolFlags(flags) | POOL_IDEMPOTENT, deadline,
					   CurrentMemoryContext, again, err))
		return false;
	for (i = 0; i < nretry; i++)
		replies[which[i]] = again[nloaded + i];
	return true;
}

/* Send every part of b to one node; NOSCRIPT answered by loading. */
static bool
node_send(const RedisNode *node, const RedisBatch *b, int flags,
		  TimestampTz deadline, RedisReply **replies, RedisError *err)
{
	int			i;
	bool		scripts = false;

	if (!PoolExec(node, &b->buf, b->nparts, ClientPoolFlags(flags),
					   deadline, CurrentMemoryContext, replies, err))
		return false;
	for (i = 0; i < b->nparts; i++)
		scripts |= (b->scripts[i] != NULL && ClientIsNoscript(replies[i]));
	return !scripts || ClientRetryNoscript(node, b, replies, flags, deadline, err);
}

RedisBacklog
RedisBeforeCall(const RedisNode *node)
{
	RedisBacklog clear;

	if (redis_before_call_hook == NULL || in_before_call_hook)
		return REDIS_BACKLOG_NONE;
	in_before_call_hook = true;
	PG_TRY();
	{
		clear = redis_before_call_hook(node);
	}
	PG_CATCH();
	{
		in_before_call_hook = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	in_before_call_hook = false;
	return clear;
}

/* Which latency histogram a call goes to. */
static BmfCmdClass
command_class(RedisPolicy policy, const char *command)
{
	if (pg_strcasecmp(command, "PUBLISH") == 0)
		return CLASS_PUBLISH;
	if (pg_strncasecmp(command, "lock", 4) == 0 || pg_strncasecmp(command, "semaphore", 9) == 0)
		return CLASS_LOCK;
	/* health checks are quiet too, but invalidate nothing */
	if (pg_strcasecmp(command, "PING") == 0 || pg_strcasecmp(command, "INFO") == 0)
		return CLASS_OTHER;
	switch (policy)
	{
		case REDIS_READ:
		case REDIS_SOFT:
			return CLASS_READ;
		case REDIS_WRITE:
			return CLASS_WRITE;
		case REDIS_QUIET:
			return CLASS_INVALIDATE;
		default:
			return CLASS_OTHER;
	}
}

/* The shared body of RedisPipeline and RedisCommand. */
static RedisReply **
exec_batch(const RedisNode *node, RedisPolicy policy, int flags,
		   const RedisBatch *b, TimestampTz deadline, RedisError *err,
		   const char *command)
{
	RedisReply **replies;
	int			i;
	bool		ok;
	TimestampTz t0;

	Assert(b->n > 0);
	if (policy == REDIS_READ)
		flags |= REDIS_READ_ONLY;
	if (RedisBeforeCall(node) == REDIS_BACKLOG_WAITING &&
		(policy == REDIS_READ || policy == REDIS_SOFT))
	{
		/* the real cause when Redis is away; else, the backlog is being sent */
		if (!PoolDownError(node->ep.name, err))
			RedisErrorSet(err, RS_UNAVAILABLE, ERRCODE_CONNECTION_FAILURE,
						  "Redis is still catching up on invalidations",
						  "Invalidations committed while Redis was unavailable are still being sent to %s; until they are, this session's reads are misses.",
						  node->ep.name);
		RedisReportFailure(policy, flags, err, command);
		return NULL;
	}
	replies = palloc(sizeof(RedisReply *) * b->nparts);
	redis_client_stats.calls += b->nparts;
	t0 = GetCurrentTimestamp();
	if (node->cluster && b->slots)
		ok = ClientClusterSend(node, b, flags, deadline, replies, err);
	else if (node->cluster)
	{
		/* a batch begun before bmfredis.cluster was turned on */
		RedisErrorSet(err, RS_PROTOCOL, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
					  "bmfredis.cluster changed while a command was being built",
					  "The command was not sent.");
		ok = false;
	}
	else
		ok = node_send(node, b, flags, deadline, replies, err);
	BmfStatsLatency(command_class(policy, command), GetCurrentTimestamp() - t0);
	if (unlikely(b->said != NULL))
		log_batch(b, node->ep.name, GetCurrentTimestamp() - t0, replies, ok ? NULL : err, NULL);
	if (!ok)
	{
		RedisReportFailure(policy, flags, err, command);
		return NULL;
	}
	for (i = 0; i < b->nparts; i++)
		if (replies[i]->type == RESP_ERROR)
		{
			redis_client_stats.error_replies++;
			BmfStatsCount(STAT_ERRORS_REPLY, 1);
		}
	if (b->nparts != b->n)
		replies = ClientJoinParts(b, replies);
	return replies;
}

RedisReply **
RedisPipeline(RedisPolicy policy, int flags, const RedisBatch *b,
			  TimestampTz deadline, RedisError *err)
{
	RedisError	local;

	return exec_batch(RedisCallerNode(), policy, flags, b, deadline,
					  err ? err : &local, "pipeline");
}

RedisReply **
RedisPipelineNode(const RedisNode *node, RedisPolicy policy, int flags,
				  const RedisBatch *b, TimestampTz deadline, RedisError *err)
{
	RedisError	local;

	return exec_batch(node, policy, flags, b, deadline, err ? err : &local,
					  "pipeline");
}

static bool
stream_refuse_cluster(const RedisNode *node, RedisError *err)
{
	if (!node->cluster)
		return false;
	RedisErrorSet(err, RS_PROTOCOL, ERRCODE_FEATURE_NOT_SUPPORTED,
				  "streams are not used with a Redis Cluster",
				  "Their commands would span nodes.");
	return true;
}

bool
RedisStreamSend(const RedisNode *node, const char *tag, bool opening,
				const RedisBatch *b, TimestampTz deadline, RedisError *err)
{
	TimestampTz t0 = GetCurrentTimestamp();
	bool		ok;

	if (stream_refuse_cluster(node, err))
		return false;
	redis_client_stats.calls += b->n;
	ok = PoolStreamSend(node, tag, opening, &b->buf, b->n, deadline, err);
	if (unlikely(b->said != NULL))
		log_batch(b, node->ep.name, GetCurrentTimestamp() - t0, NULL, ok ? NULL : err,
				  "written to the stream; runs at COMMIT's EXEC");
	return ok;
}

RedisReply **
RedisStreamFinish(const RedisNode *node, const char *tag, const RedisBatch *b,
				  TimestampTz deadline, int *nreplies, RedisError *err)
{
	RedisReply **replies;
	int			total;
	int			i;
	TimestampTz t0;

	if (stream_refuse_cluster(node, err))
		return NULL;
	total = PoolStreamUnread(node, tag) + b->n;
	replies = palloc(sizeof(RedisReply *) * total);
	redis_client_stats.calls += b->n;
	t0 = GetCurrentTimestamp();
	if (!PoolStreamFinish(node, tag, &b->buf, b->n, deadline,
							   CurrentMemoryContext, replies, err))
	{
		if (unlikely(b->said != NULL))
			log_batch(b, node->ep.name, GetCurrentTimestamp() - t0, NULL, err, NULL);
		return NULL;
	}
	if (unlikely(b->said != NULL))
		log_batch(b, node->ep.name, GetCurrentTimestamp() - t0, replies + total - b->n, NULL, NULL);
	for (i = 0; i < total; i++)
		if (replies[i]->type == RESP_ERROR)
		{
			redis_client_stats.error_replies++;
			BmfStatsCount(STAT_ERRORS_REPLY, 1);
		}
	*nreplies = total;
	return replies;
}

void
RedisStreamAbandon(const char *node_name, const char *tag)
{
	PoolStreamAbandon(node_name, tag);
}

RedisReply *
RedisCommand(RedisPolicy policy, int flags, const RedisArgs *args,
			 RedisError *err)
{
	return RedisCommandNode(RedisCallerNode(), policy, flags, args, err);
}

RedisReply *
RedisCommandNode(const RedisNode *node, RedisPolicy policy, int flags,
				 const RedisArgs *args, RedisError *err)
{
	RedisBatch	b;
	RedisReply **replies;
	RedisError	local;
	char		command[32];

	RedisBatchInit(&b);
	RedisBatchAdd(&b, args);
	if (args->script)
		strlcpy(command, args->script->name, sizeof(command));
	else
		strlcpy(command, args->argv[0], Min(sizeof(command), args->lens[0] + 1));
	replies = exec_batch(node, policy, flags, &b, 0, err ? err : &local, command);
	pfree(b.buf.data);
	if (replies == NULL)
		return NULL;
	if (replies[0]->type == RESP_ERROR && !(flags & REDIS_ERRORS_OK))
	{
		if (RedisReplyFull(policy, flags, replies[0], command))
			return NULL;
		RedisRaiseReplyError(replies[0], command);
	}
	return replies[0];
}
