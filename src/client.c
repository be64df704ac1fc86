/*-------------------------------------------------------------------------
 *
 * client.c
 *		Commands and pipelines for the features: argument vectors, the key
 *		prefix, the error policy, and reply conversions.
 *
 * Error policy, in one place (DESIGN.md decision 6):
 *	- REDIS_READ: Redis unreachable, slow or unavailable is a cache miss;
 *	  with bmfredis.on_error = warning a WARNING says so, with ignore it is
 *	  only counted, with error it is an ERROR.
 *	- REDIS_WRITE: the same, the caller reports "not written".
 *	- REDIS_STRICT: always an ERROR (locks never degrade; admin calls).
 *	- REDIS_QUIET: never raised; used where throwing is not allowed (after
 *	  commit) and the caller decides.
 *	- REDIS_SOFT: READ for callers that have an answer without Redis
 *	  (redis_cached runs the query): a WARNING unless on_error = ignore,
 *	  never an ERROR.
 * Error replies (WRONGTYPE, NOPERM, OOM, ...) are not faults of the
 * connection: they are raised as ERRORs with their own SQLSTATE whatever
 * the policy, unless the caller asks to see them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "bmfredis.h"
#include "client.h"
#include "stats.h"
#include "url.h"

RedisClientStats redis_client_stats;
RedisBeforeCallHook redis_before_call_hook = NULL;
static bool in_before_call_hook = false;

/* ---- argument vectors ---- */

void
RedisArgsInit(RedisArgs *a, int cap)
{
	a->argc = 0;
	a->cap = Max(cap, 4);
	a->argv = palloc(sizeof(char *) * a->cap);
	a->lens = palloc(sizeof(size_t) * a->cap);
	a->script = NULL;
}

void
RedisArgsAdd(RedisArgs *a, const char *s, size_t len)
{
	if (a->argc == a->cap)
	{
		a->cap *= 2;
		a->argv = repalloc(a->argv, sizeof(char *) * a->cap);
		a->lens = repalloc(a->lens, sizeof(size_t) * a->cap);
	}
	a->argv[a->argc] = s;
	a->lens[a->argc] = len;
	a->argc++;
}

void
RedisArgsAddStr(RedisArgs *a, const char *s)
{
	RedisArgsAdd(a, s, strlen(s));
}

void
RedisArgsAddInt(RedisArgs *a, int64 v)
{
	char	   *buf = palloc(24);

	RedisArgsAdd(a, buf, pg_lltoa(v, buf));
}

void
RedisCheckKey(const char *what, size_t len)
{
	bool		namespaced;

	if (len > 0)
		return;
	namespaced = strstr(what, "key") || strstr(what, "tag") || strstr(what, "pattern");
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must not be empty", what),
			 namespaced ?
			 errhint("Keys, tags and patterns live under bmfredis.key_prefix and must not be empty.") : 0));
}

void
RedisKeyPrefixed(StringInfo out, const char *key, size_t len)
{
	appendStringInfoString(out, bmf_key_prefix);
	appendBinaryStringInfo(out, key, len);
}

void
RedisPatternPrefixed(StringInfo out, const char *pattern, size_t len)
{
	const char *p;

	for (p = bmf_key_prefix; *p; p++)
	{
		if (*p == '*' || *p == '?' || *p == '[' || *p == ']' || *p == '\\')
			appendStringInfoChar(out, '\\');
		appendStringInfoChar(out, *p);
	}
	appendBinaryStringInfo(out, pattern, len);
}

void
RedisArgsAddKey(RedisArgs *a, const char *key, size_t len)
{
	StringInfoData k;

	initStringInfo(&k);
	RedisKeyPrefixed(&k, key, len);
	RedisArgsAdd(a, k.data, k.len);
}

void
RedisArgsAddKeyText(RedisArgs *a, text *key)
{
	RedisCheckKey("Redis key", VARSIZE_ANY_EXHDR(key));
	RedisArgsAddKey(a, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
}

/*
 * The SHA1 Redis names a script by.  OpenSSL directly: PostgreSQL's
 * cryptohash API needs a resource owner, which the background worker does
 * not have between transactions.
 */
bool
BmfSha1(const char *data, size_t len, uint8 *digest)
{
	unsigned int dlen = 0;

	return EVP_Digest(data, len, digest, &dlen, EVP_sha1(), NULL) == 1 && dlen == 20;
}

static void
script_sha(RedisScript *script)
{
	uint8		digest[20];
	int			i;

	if (!BmfSha1(script->source, strlen(script->source), digest))
		elog(ERROR, "could not compute the SHA1 of script %s", script->name);
	for (i = 0; i < 20; i++)
		snprintf(script->sha + 2 * i, 3, "%02x", digest[i]);
}

void
RedisArgsScript(RedisArgs *a, RedisScript *script, int numkeys)
{
	Assert(a->argc == 0);
	if (script->sha[0] == '\0')
		script_sha(script);
	RedisArgsAdd(a, "EVALSHA", 7);
	RedisArgsAdd(a, script->sha, 40);
	RedisArgsAddInt(a, numkeys);
	a->script = script;
}

/* ---- the node ---- */

/*
 * Nodes are named "host:port" (or "unix:path"), with "/db" appended for
 * a logical database other than 0: the pool keeps one connection per name,
 * so a backend and the worker can address several databases of a server.
 */
static void
build_node(RedisNode *node, char *name, int db)
{
	const BmfUrl *url = bmf_url_parsed;
	const char *host = url ? url->host : bmf_host;
	int			port = url ? url->port : bmf_port;
	const char *unix_socket = url ? "" : bmf_unix_socket;
	bool		sentinel = bmf_sentinel_master && bmf_sentinel_master[0];
	int			len;

	node->ep.host = host;
	node->ep.port = port;
	node->ep.unix_socket = sentinel ? "" : unix_socket;
	node->sentinels = sentinel ? bmf_sentinels : NULL;
	node->sentinel_master = sentinel ? bmf_sentinel_master : NULL;
	node->sentinel_username = bmf_sentinel_username;
	node->sentinel_password = bmf_sentinel_password;
	if (sentinel)
		len = snprintf(name, POOL_NAME_LEN, "sentinel:%s", bmf_sentinel_master);
	else if (unix_socket && unix_socket[0])
		len = snprintf(name, POOL_NAME_LEN, "unix:%s", unix_socket);
	else if (strchr(host, ':'))
		len = snprintf(name, POOL_NAME_LEN, "[%s]:%d", host, port);
	else
		len = snprintf(name, POOL_NAME_LEN, "%s:%d", host, port);
	if (db != 0 && len < POOL_NAME_LEN)
		snprintf(name + len, POOL_NAME_LEN - len, "/%d", db);
	node->ep.name = name;
	node->ep.tls.enabled = url ? url->tls : bmf_tls;
	node->ep.tls.verify = bmf_tls_verify;
	node->ep.tls.ca_file = bmf_tls_ca_file;
	node->ep.tls.cert_file = bmf_tls_cert_file;
	node->ep.tls.key_file = bmf_tls_key_file;
	node->ep.tls.server_name = bmf_tls_server_name;
	node->username = url ? url->username : bmf_username;
	node->password = url ? url->password : bmf_password;
	node->db = db;
}

const RedisNode *
RedisDefaultNode(void)
{
	static RedisNode node;
	static char name[POOL_NAME_LEN];
	static uint64 built_for = 0;
	static int	built_db = -1;

	if (built_for != bmfredis_config_generation || built_db != BmfDb())
	{
		build_node(&node, name, BmfDb());
		built_for = bmfredis_config_generation;
		built_db = BmfDb();
	}
	return &node;
}

const RedisNode *
RedisNodeForDb(int db)
{
	static RedisNode node;
	static char name[POOL_NAME_LEN];

	build_node(&node, name, db);
	return &node;
}

/* ---- batches ---- */

void
RedisBatchInit(RedisBatch *b)
{
	initStringInfo(&b->buf);
	b->n = 0;
	b->cap = 8;
	b->offsets = palloc(sizeof(int) * b->cap);
	b->scripts = palloc(sizeof(RedisScript *) * b->cap);
}

void
RedisBatchAdd(RedisBatch *b, const RedisArgs *a)
{
	if (b->n == b->cap)
	{
		b->cap *= 2;
		b->offsets = repalloc(b->offsets, sizeof(int) * b->cap);
		b->scripts = repalloc(b->scripts, sizeof(RedisScript *) * b->cap);
	}
	b->offsets[b->n] = b->buf.len;
	b->scripts[b->n] = a->script;
	RespFormat(&b->buf, a->argc, a->argv, a->lens);
	b->n++;
}

void
RedisBatchReset(RedisBatch *b)
{
	resetStringInfo(&b->buf);
	b->n = 0;
}

/* ---- error policy ---- */

static void
count_failure(const RedisError *err)
{
	switch (err->status)
	{
		case RS_CONNECT:
		case RS_AUTH:
			BmfStatsCount(STAT_ERRORS_CONNECT, 1);
			break;
		case RS_TIMEOUT:
			BmfStatsCount(STAT_ERRORS_TIMEOUT, 1);
			break;
		case RS_IO:
			BmfStatsCount(STAT_ERRORS_IO, 1);
			break;
		case RS_PROTOCOL:
			BmfStatsCount(STAT_ERRORS_PROTOCOL, 1);
			break;
		case RS_DOWN:
		case RS_UNAVAILABLE:
			BmfStatsCount(STAT_ERRORS_DOWN, 1);
			break;
		default:
			break;
	}
}

void
RedisReportFailure(RedisPolicy policy, int flags, const RedisError *err,
				   const char *command)
{
	int			elevel;
	bool		unknown_outcome;

	redis_client_stats.failures++;
	count_failure(err);
	switch (policy)
	{
		case REDIS_QUIET:
			return;
		case REDIS_STRICT:
			elevel = ERROR;
			break;
		case REDIS_SOFT:
			if (bmf_on_error == BMF_ON_ERROR_IGNORE)
				return;
			elevel = WARNING;
			break;
		default:
			if (bmf_on_error == BMF_ON_ERROR_ERROR)
				elevel = ERROR;
			else if (bmf_on_error == BMF_ON_ERROR_IGNORE)
				return;
			else
				elevel = WARNING;
			break;
	}

	unknown_outcome = !(flags & REDIS_IDEMPOTENT) && err->maybe_sent &&
		(err->status == RS_IO || err->status == RS_TIMEOUT);

	ereport(elevel,
			(errcode(err->sqlerrcode),
			 errmsg("%s", err->message),
			 errdetail_internal("%s", err->detail),
			 unknown_outcome ?
			 errhint("%s may or may not have been executed; it is not retried because it is not idempotent.",
					 command) :
			 (elevel == WARNING && policy == REDIS_READ) ?
			 errhint("The read was treated as a cache miss.") :
			 (elevel == WARNING && policy == REDIS_SOFT) ?
			 errhint("The query was run without the cache.") :
			 (elevel == WARNING && policy == REDIS_WRITE) ?
			 errhint("%s was not carried out.", command) :
			 err->status == RS_DOWN ?
			 errhint("bmfredis retries after a backoff; see redis_connections().") : 0));
}

int
RedisReplyErrorCode(const char *s)
{
	if (strncmp(s, "WRONGTYPE", 9) == 0)
		return ERRCODE_WRONG_OBJECT_TYPE;
	if (strncmp(s, "NOPERM", 6) == 0)
		return ERRCODE_INSUFFICIENT_PRIVILEGE;
	if (strncmp(s, "NOAUTH", 6) == 0)
		return ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION;
	if (strncmp(s, "WRONGPASS", 9) == 0)
		return ERRCODE_INVALID_PASSWORD;
	if (strncmp(s, "OOM", 3) == 0)
		return ERRCODE_OUT_OF_MEMORY;
	if (strncmp(s, "BUSY", 4) == 0)
		return ERRCODE_OBJECT_IN_USE;
	if (strncmp(s, "LOADING", 7) == 0 || strncmp(s, "READONLY", 8) == 0 ||
		strncmp(s, "MASTERDOWN", 10) == 0)
		return ERRCODE_CONNECTION_FAILURE;
	if (strstr(s, "not an integer") != NULL)
		return ERRCODE_INVALID_TEXT_REPRESENTATION;
	if (strstr(s, "overflow") != NULL)
		return ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
	if (strstr(s, "invalid expire time") != NULL || strstr(s, "syntax error") != NULL)
		return ERRCODE_INVALID_PARAMETER_VALUE;
	if (strncmp(s, "ERR unknown command", 19) == 0)
		return ERRCODE_UNDEFINED_FUNCTION;
	return ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
}

void
RedisRaiseReplyError(const RedisReply *reply, const char *command)
{
	int			code = RedisReplyErrorCode(reply->str);
	const char *msg;
	const char *hint = NULL;

	switch (code)
	{
		case ERRCODE_WRONG_OBJECT_TYPE:
			msg = "Redis key holds the wrong kind of value";
			hint = "bmfredis cache functions read and write Redis strings; the key holds another type.";
			break;
		case ERRCODE_INSUFFICIENT_PRIVILEGE:
			msg = "permission denied by Redis ACL";
			hint = "Grant the Redis user of bmfredis this command and the keys under bmfredis.key_prefix.";
			break;
		case ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION:
			msg = "Redis requires authentication";
			hint = "Set bmfredis.password (and bmfredis.username for an ACL user) in postgresql.conf.";
			break;
		case ERRCODE_INVALID_PASSWORD:
			msg = "Redis refused the credentials of bmfredis";
			break;
		case ERRCODE_OUT_OF_MEMORY:
			msg = "Redis is out of memory";
			hint = "Raise Redis' maxmemory or give it an eviction policy.";
			break;
		case ERRCODE_OBJECT_IN_USE:
			msg = "Redis is busy running a script";
			break;
		case ERRCODE_INVALID_TEXT_REPRESENTATION:
			msg = "Redis value is not an integer";
			break;
		case ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE:
			msg = "Redis integer out of range";
			break;
		default:
			msg = "Redis returned an error";
			break;
	}
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s", msg),
			 errdetail_internal("%s: %s", command, reply->str),
			 hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

/* ---- calls ---- */

static int
pool_flags(int flags)
{
	int			pflags = 0;

	if (flags & REDIS_IDEMPOTENT)
		pflags |= POOL_IDEMPOTENT;
	if (flags & REDIS_FORCE)
		pflags |= POOL_FORCE;
	return pflags;
}

static bool
is_noscript(const RedisReply *r)
{
	return r->type == RESP_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/*
 * Re-run the commands of b whose EVALSHA found no script: load each script
 * they need, then send the same commands again, in one round trip.  A
 * NOSCRIPT reply means the script did not run, so re-sending is safe for
 * any script.  Returns false with err set when Redis fails meanwhile.
 */
static bool
retry_noscript(const RedisNode *node, const RedisBatch *b, RedisReply **replies,
			   int flags, TimestampTz deadline, RedisError *err)
{
	RedisBatch	retry;
	RedisScript **loaded = palloc0(sizeof(RedisScript *) * b->n);
	int		   *which = palloc(sizeof(int) * b->n);
	int			nloaded = 0;
	int			nretry = 0;
	int			i;
	int			j;
	RedisReply **again;

	RedisBatchInit(&retry);
	for (i = 0; i < b->n; i++)
	{
		RedisArgs	load;
		bool		seen = false;

		if (!b->scripts[i] || !is_noscript(replies[i]))
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
		RedisBatchAdd(&retry, &load);
	}
	for (i = 0; i < b->n; i++)
	{
		int			end;

		if (!b->scripts[i] || !is_noscript(replies[i]))
			continue;
		end = (i + 1 < b->n) ? b->offsets[i + 1] : b->buf.len;
		retry.offsets[retry.n] = retry.buf.len;	/* raw copy of the command */
		appendBinaryStringInfo(&retry.buf, b->buf.data + b->offsets[i], end - b->offsets[i]);
		which[nretry++] = i;
		retry.n++;
		if (retry.n == retry.cap)
		{
			retry.cap *= 2;
			retry.offsets = repalloc(retry.offsets, sizeof(int) * retry.cap);
			retry.scripts = repalloc(retry.scripts, sizeof(RedisScript *) * retry.cap);
		}
	}
	if (nretry == 0)
		return true;

	again = palloc(sizeof(RedisReply *) * retry.n);
	if (!RedisPoolExec(node, &retry.buf, retry.n,
					   pool_flags(flags) | POOL_IDEMPOTENT, deadline,
					   CurrentMemoryContext, again, err))
		return false;
	for (i = 0; i < nretry; i++)
		replies[which[i]] = again[nloaded + i];
	return true;
}

static bool
run_before_call_hook(const RedisNode *node)
{
	bool		clear;

	if (redis_before_call_hook == NULL || in_before_call_hook)
		return true;
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
	bool		scripts = false;
	bool		ok;
	TimestampTz t0;

	Assert(b->n > 0);
	if (!run_before_call_hook(node) && (policy == REDIS_READ || policy == REDIS_SOFT))
	{
		RedisErrorSet(err, RS_UNAVAILABLE, ERRCODE_CONNECTION_FAILURE,
					  "Redis is still catching up on invalidations",
					  "Invalidations committed while Redis was unavailable are still being sent to %s.",
					  node->ep.name);
		RedisReportFailure(policy, flags, err, command);
		return NULL;
	}
	replies = palloc(sizeof(RedisReply *) * b->n);
	redis_client_stats.calls += b->n;
	t0 = GetCurrentTimestamp();
	ok = RedisPoolExec(node, &b->buf, b->n, pool_flags(flags),
					   deadline, CurrentMemoryContext, replies, err);
	BmfStatsLatency(command_class(policy, command), GetCurrentTimestamp() - t0);
	if (!ok)
	{
		RedisReportFailure(policy, flags, err, command);
		return NULL;
	}
	for (i = 0; i < b->n; i++)
		scripts |= (b->scripts[i] != NULL && is_noscript(replies[i]));
	if (scripts && !retry_noscript(node, b, replies, flags, deadline, err))
	{
		RedisReportFailure(policy, flags, err, command);
		return NULL;
	}
	for (i = 0; i < b->n; i++)
		if (replies[i]->type == RESP_ERROR)
		{
			redis_client_stats.error_replies++;
			BmfStatsCount(STAT_ERRORS_REPLY, 1);
		}
	return replies;
}

RedisReply **
RedisPipeline(RedisPolicy policy, int flags, const RedisBatch *b,
			  TimestampTz deadline, RedisError *err)
{
	RedisError	local;

	return exec_batch(RedisDefaultNode(), policy, flags, b, deadline,
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

RedisReply *
RedisCommand(RedisPolicy policy, int flags, const RedisArgs *args,
			 RedisError *err)
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
	replies = exec_batch(RedisDefaultNode(), policy, flags, &b, 0,
						 err ? err : &local, command);
	pfree(b.buf.data);
	if (replies == NULL)
		return NULL;
	if (replies[0]->type == RESP_ERROR && !(flags & REDIS_ERRORS_OK))
		RedisRaiseReplyError(replies[0], command);
	return replies[0];
}
