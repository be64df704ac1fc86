/*-------------------------------------------------------------------------
 *
 * policy.c
 *		The error policy, in one place (docs/design.md, decision 6): what a
 *		failure of Redis means for the caller, and the SQLSTATE of an error
 *		reply.
 *
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
 * Error replies (WRONGTYPE, NOPERM, ...) are not faults of the
 * connection: they are raised as ERRORs with their own SQLSTATE whatever
 * the policy, unless the caller asks to see them.  OOM is the exception:
 * a full Redis is a cache problem, not a query problem, so under the
 * READ, WRITE and SOFT policies it is reported as on_error says (a write
 * returns "not written", redis_cached runs its query without the cache).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "base/guc.h"
#include "base/stats.h"
#include "client/client.h"
#include "pool/pool.h"

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
			 errhint("bmfredis retries after a backoff; see redis_connections().") :
			 err->status == RS_CONNECT ?
			 errhint("Check that Redis runs where bmfredis.host and bmfredis.port (or bmfredis.url, or the sentinels) say; redis_health() shows what bmfredis sees.") :
			 err->status == RS_TIMEOUT && err->node_alive ?
			 errhint("The command was too large for its time; the setting named above gives it (SET bmfredis.command_timeout = '60s' for this session).") :
			 err->status == RS_TIMEOUT ?
			 errhint("Redis is slow or frozen; the setting named above gives its time.") : 0));
}

/*
 * The SQLSTATE for an error reply, by its code word (resp.c says why never
 * by its text).  The generic code ERR carries no more than its text, so
 * for ERR alone the argument errors every Redis-compatible server words
 * alike (they come from the same commands' argument parsing) get their
 * precise SQLSTATE; any other ERR is 38000.
 */
int
RedisReplyErrorCode(const char *s)
{
	static const struct
	{
		const char *code;
		int			sqlstate;
	}			codes[] = {
		{"WRONGTYPE", ERRCODE_WRONG_OBJECT_TYPE},
		{"NOPERM", ERRCODE_INSUFFICIENT_PRIVILEGE},
		{"NOAUTH", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION},
		{"WRONGPASS", ERRCODE_INVALID_PASSWORD},
		{"OOM", ERRCODE_OUT_OF_MEMORY},
		{"BUSY", ERRCODE_CONNECTION_FAILURE},
		{"LOADING", ERRCODE_CONNECTION_FAILURE},
		{"READONLY", ERRCODE_CONNECTION_FAILURE},
		{"MASTERDOWN", ERRCODE_CONNECTION_FAILURE},
		{"NOREPLICAS", ERRCODE_CONNECTION_FAILURE},
		{"CLUSTERDOWN", ERRCODE_CONNECTION_FAILURE},
		{"MISCONF", ERRCODE_CONNECTION_FAILURE},
	};

	for (int i = 0; i < (int) lengthof(codes); i++)
		if (RespErrorCodeIs(s, codes[i].code))
			return codes[i].sqlstate;
	if (RespErrorCodeIs(s, "ERR"))
	{
		if (strstr(s, "not an integer") != NULL)
			return ERRCODE_INVALID_TEXT_REPRESENTATION;
		if (strstr(s, "overflow") != NULL)
			return ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
		if (strstr(s, "invalid expire time") != NULL || strstr(s, "syntax error") != NULL)
			return ERRCODE_INVALID_PARAMETER_VALUE;
		if (strncmp(s, "ERR unknown command", 19) == 0)
			return ERRCODE_UNDEFINED_FUNCTION;
	}
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
			if (RedisCallerMappedUser() != NULL)
				hint = psprintf("This role talks to Redis as \"%s\" (its user mapping): that Redis user needs this command and these keys, or the call is not this role's to make.",
								RedisCallerMappedUser());
			else
				hint = "Grant the Redis user of bmfredis (bmfredis.username) this command and the keys under bmfredis.key_prefix.";
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
		case ERRCODE_CONNECTION_FAILURE:
			msg = "Redis is unavailable";
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

/*
 * An OOM reply to a cache write: reported as bmfredis.on_error says and
 * true returned (the caller reports "not written"), under the policies
 * that degrade; false for any other reply, which the caller raises.
 */
bool
RedisReplyFull(RedisPolicy policy, int flags, const RedisReply *reply,
			   const char *command)
{
	RedisError	err;

	if (reply->type != RESP_ERROR || !RespErrorIs(reply, "OOM") ||
		(policy != REDIS_READ && policy != REDIS_WRITE && policy != REDIS_SOFT))
		return false;
	RedisErrorSet(&err, RS_REPLY, ERRCODE_OUT_OF_MEMORY, "Redis is out of memory",
				  "%s: %s (maxmemory reached; raise it or give Redis an eviction policy)",
				  command, reply->str);
	RedisReportFailure(policy, flags, &err, command);
	return true;
}
