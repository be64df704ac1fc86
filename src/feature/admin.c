/*-------------------------------------------------------------------------
 *
 * admin.c
 *		Health and administration: redis_health, redis_info,
 *		redis_connections, redis_disconnect, redis_command.
 *
 * redis_health() never raises for a Redis fault (a health check that
 * throws is no health check) and ignores the backoff window, so it always
 * makes a real attempt.  redis_command() is for administrators: its
 * arguments are passed as they are (no key prefix), and commands that
 * would leave the pooled connection in a state the pool does not track
 * (SUBSCRIBE, SELECT, MULTI, ...) are refused.  Commands that would harm
 * every application on the Redis (FLUSHALL, SHUTDOWN, CONFIG SET, ...)
 * run only through redis_command(force => true, ...), and so do scripts
 * (EVAL, FCALL, ...), which can run those: an administrator's typo should
 * not empty a shared Redis.  It is a guard against mistakes, not a bound:
 * keys are not confined to the prefix (the Redis user of a user mapping
 * is what bounds a role).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "base/compat.h"
#include "base/guc.h"
#include "base/shmem.h"
#include "base/sqlutil.h"
#include "base/stats.h"
#include "client/client.h"
#include "client/cluster.h"
#include "xact/retry.h"

PG_FUNCTION_INFO_V1(redis_health);
PG_FUNCTION_INFO_V1(redis_info);
PG_FUNCTION_INFO_V1(redis_connections);
PG_FUNCTION_INFO_V1(redis_disconnect);
PG_FUNCTION_INFO_V1(redis_command);
PG_FUNCTION_INFO_V1(redis_command_force);

/*
 * Find key in INFO text ("key:value\r\n" lines); a palloc'd value or NULL.
 */
static char *
info_value(const char *info, const char *key)
{
	size_t		klen = strlen(key);
	const char *p = info;

	while (p && *p)
	{
		if (strncmp(p, key, klen) == 0 && p[klen] == ':')
		{
			const char *v = p + klen + 1;
			size_t		n = strcspn(v, "\r\n");

			return pnstrdup(v, n);
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

#define HEALTH_COLS 23

/*
 * Cluster mode: the cluster's own verdict (CLUSTER INFO of the node that
 * answered INFO); a cluster whose state is not ok is not healthy.
 */
/*
 * Health is bmfredis' own connection's: PING and INFO go as the server's
 * identity, so that a monitoring role (an exporter's, a pg_monitor member)
 * needs no user mapping of its own when bmfredis.server is set.  They
 * read nothing of the cache.
 */
static RedisReply *
server_command(int flags, const RedisArgs *args, RedisError *err)
{
	return RedisCommandNode(RedisDefaultNode(), REDIS_QUIET, flags, args, err);
}

static void
cluster_health(Datum *values)
{
	RedisArgs	args;
	RedisReply *reply;
	RedisError	err;
	char	   *state;

	RedisArgsInit(&args, 2);
	RedisArgsAddStr(&args, "CLUSTER");
	RedisArgsAddStr(&args, "INFO");
	reply = server_command(REDIS_IDEMPOTENT | REDIS_ERRORS_OK, &args, &err);
	if (reply == NULL || reply->type != RESP_STRING)
		return;
	state = info_value(reply->str, "cluster_state");
	if (state == NULL)
		return;
	values[1] = CStringGetTextDatum(psprintf("connected, cluster_state:%s", state));
	if (strcmp(state, "ok") != 0)
		values[0] = BoolGetDatum(false);
}

/*
 * The server and its memory, from INFO: which server (Valkey reports
 * redis_version 7.2.4 for compatibility and its own version apart),
 * maxmemory, the used fraction, the eviction policy, evicted keys, and a
 * note when cache writes are about to fail: under noeviction Redis answers
 * OOM once full, and volatile-* policies evict only keys with a TTL.
 */
static void
server_and_memory(const char *info, Datum *values, bool *nulls)
{
	char	   *s;
	int64		used = -1;
	int64		max = 0;
	char	   *policy = info_value(info, "maxmemory_policy");

	if ((s = info_value(info, "valkey_version")))
	{
		values[3] = CStringGetTextDatum(s), nulls[3] = false;
		values[16] = CStringGetTextDatum("valkey"), nulls[16] = false;
	}
	else
	{
		s = info_value(info, "server_name");
		values[16] = CStringGetTextDatum(s ? s : "redis"), nulls[16] = false;
	}
	if ((s = info_value(info, "used_memory")))
		used = strtoll(s, NULL, 10);
	if ((s = info_value(info, "maxmemory")))
		max = strtoll(s, NULL, 10);
	if (max > 0)
	{
		values[17] = Int64GetDatum(max), nulls[17] = false;
		if (used >= 0)
			values[18] = Float8GetDatum((double) used / (double) max), nulls[18] = false;
	}
	if (policy)
		values[19] = CStringGetTextDatum(policy), nulls[19] = false;
	if ((s = info_value(info, "evicted_keys")))
		values[20] = Int64GetDatum(strtoll(s, NULL, 10)), nulls[20] = false;
	if (max > 0 && used >= 0 && policy)
	{
		int			pct = (int) (100.0 * used / max);
		char	   *note = NULL;

		if (strcmp(policy, "noeviction") == 0)
			note = psprintf("maxmemory-policy is noeviction: once Redis is full (%d%% now), cache writes fail with OOM", pct);
		else if (pct >= 90 && strncmp(policy, "volatile-", 9) == 0)
			note = psprintf("Redis is %d%% full and evicts only keys with a TTL (%s): writes fail with OOM once none is left", pct, policy);
		else if (pct >= 90)
			note = psprintf("Redis is %d%% full; it evicts keys (%s) to take new ones", pct, policy);
		if (note)
			values[21] = CStringGetTextDatum(note), nulls[21] = false;
	}
}

/* redis_health's columns from bmfredis itself: hit rate, retry queue, worker. */
static void
health_own(Datum *values, bool *nulls)
{
	int64		hits = BmfStatsGet(STAT_CACHE_HITS);
	int64		misses = BmfStatsGet(STAT_CACHE_MISSES);
	int64		pending;
	int			namespaces;

	values[9] = CStringGetTextDatum(RedisNodeName(RedisDefaultNode()));
	nulls[9] = false;
	values[10] = CStringGetTextDatum(bmf_key_prefix);
	nulls[10] = false;
	if (hits + misses > 0)
	{
		values[11] = Float8GetDatum((double) hits / (double) (hits + misses));
		nulls[11] = false;
	}
	RetryPending(&pending, &namespaces);
	values[12] = Int64GetDatum(pending);
	nulls[12] = false;
	values[13] = Int32GetDatum(namespaces);
	nulls[13] = false;
	if (BmfShared())
	{
		int			channels;
		pid_t		pid = BmfWorkerPid(MyDatabaseId, &channels);

		/* this database's worker; it is the subscriber when it relays */
		if (pid != 0)
		{
			values[14] = Int32GetDatum(pid);
			nulls[14] = false;
		}
		if (pid != 0 && channels > 0)
		{
			values[15] = Int32GetDatum(pid);
			nulls[15] = false;
		}
	}
}

/* The columns from the server: INFO's fields, healthy and status. */
static void
health_info(const char *info, Datum *values, bool *nulls)
{
	char	   *s;

	values[0] = BoolGetDatum(true);
	values[1] = CStringGetTextDatum("connected");
	if ((s = info_value(info, "redis_version")))
		values[3] = CStringGetTextDatum(s), nulls[3] = false;
	if ((s = info_value(info, "role")))
		values[4] = CStringGetTextDatum(s), nulls[4] = false;
	if ((s = info_value(info, "used_memory")))
		values[5] = Int64GetDatum(strtoll(s, NULL, 10)), nulls[5] = false;
	if ((s = info_value(info, "used_memory_human")))
		values[6] = CStringGetTextDatum(s), nulls[6] = false;
	if ((s = info_value(info, "connected_clients")))
		values[7] = Int32GetDatum(atoi(s)), nulls[7] = false;
	if ((s = info_value(info, "uptime_in_seconds")))
		values[8] = Int64GetDatum(strtoll(s, NULL, 10)), nulls[8] = false;
	server_and_memory(info, values, nulls);
	if (RedisNodeIsCluster(RedisDefaultNode()))
		cluster_health(values);
}

/* PING (timed), then INFO: a real attempt, never raised, even in backoff. */
static void
health_server(Datum *values, bool *nulls)
{
	RedisArgs	args;
	RedisReply *reply;
	RedisError	err;
	TimestampTz t0;
	long		secs;
	int			usecs;

	RedisArgsInit(&args, 1);
	RedisArgsAddStr(&args, "PING");
	t0 = GetCurrentTimestamp();
	reply = server_command(REDIS_IDEMPOTENT | REDIS_FORCE | REDIS_ERRORS_OK, &args, &err);
	TimestampDifference(t0, GetCurrentTimestamp(), &secs, &usecs);

	values[0] = BoolGetDatum(false);
	nulls[0] = false;
	nulls[1] = false;
	if (reply == NULL)
	{
		values[1] = CStringGetTextDatum(psprintf("%s: %s", err.message, err.detail));
		return;
	}
	if (reply->type == RESP_ERROR)
	{
		values[1] = CStringGetTextDatum(psprintf("error: %s", reply->str));
		return;
	}
	values[2] = Float8GetDatum(secs * 1000.0 + usecs / 1000.0);
	nulls[2] = false;

	RedisArgsInit(&args, 1);
	RedisArgsAddStr(&args, "INFO");
	reply = server_command(REDIS_IDEMPOTENT | REDIS_ERRORS_OK, &args, &err);
	if (reply == NULL || reply->type != RESP_STRING)
		values[1] = CStringGetTextDatum(reply == NULL ?
										psprintf("INFO failed: %s", err.detail) :
										psprintf("INFO failed: %s", reply->str ? reply->str : "no text"));
	else
		health_info(reply->str, values, nulls);
}

Datum
redis_health(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[HEALTH_COLS];
	bool		nulls[HEALTH_COLS];
	const char *name = RedisNodeName(RedisDefaultNode());
	const char *addr;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	memset(nulls, true, sizeof(nulls));
	health_own(values, nulls);
	health_server(values, nulls);

	/* a node named by role (Sentinel): also the address it reached */
	addr = RedisNodeAddress(RedisDefaultNode());
	if (addr)
		values[9] = CStringGetTextDatum(psprintf("%s (%s)", name, addr));
	else if (RedisNodeIsCluster(RedisDefaultNode()))
	{
		const RedisNode **masters;
		int			n = RedisClusterMasters(&masters);

		values[9] = CStringGetTextDatum(psprintf("%s (%d master%s)", name, n, n == 1 ? "" : "s"));
	}
	if (tupdesc->natts >= 23)
	{
		List	   *sharers;
		int			n = RedisNamespaceSharers(&sharers);

		if (n >= 0)
		{
			Datum	   *names = palloc(sizeof(Datum) * Max(list_length(sharers), 1));
			ListCell   *lc;
			int			i = 0;

			foreach(lc, sharers)
				names[i++] = CStringGetTextDatum(lfirst(lc));
			values[22] = PointerGetDatum(construct_array(names, i, TEXTOID, -1, false, TYPALIGN_INT));
			nulls[22] = false;
		}
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* redis_info(section text DEFAULT NULL) -> setof (section, key, value) */
Datum
redis_info(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	RedisArgs	args;
	RedisReply *reply;
	char	   *section = pstrdup("");
	char	   *line;
	char	   *save = NULL;
	char	   *text_copy;

	InitMaterializedSRF(fcinfo, 0);

	RedisArgsInit(&args, 2);
	RedisArgsAddStr(&args, "INFO");
	if (!PG_ARGISNULL(0))
		RedisArgsAddStr(&args, text_to_cstring(PG_GETARG_TEXT_PP(0)));
	reply = RedisCommand(REDIS_STRICT, REDIS_IDEMPOTENT, &args, NULL);
	text_copy = RedisReplyToCString(reply, "INFO");

	for (line = strtok_r(text_copy, "\r\n", &save); line;
		 line = strtok_r(NULL, "\r\n", &save))
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		char	   *colon;

		if (line[0] == '#')
		{
			char	   *p;

			section = pstrdup(line + 1 + strspn(line + 1, " "));
			for (p = section; *p; p++)
				*p = pg_tolower((unsigned char) *p);
			continue;
		}
		colon = strchr(line, ':');
		if (colon == NULL)
			continue;
		*colon = '\0';
		values[0] = CStringGetTextDatum(section);
		values[1] = CStringGetTextDatum(line);
		values[2] = CStringGetTextDatum(colon + 1);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* redis_connections(): this backend's pool, one row per node */
Datum
redis_connections(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PoolInfo *infos;
	int			n;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	n = RedisConnections(&infos);
	for (i = 0; i < n; i++)
	{
		PoolInfo *p = &infos[i];
		Datum		values[11];
		bool		nulls[11];

		memset(nulls, false, sizeof(nulls));
		values[0] = CStringGetTextDatum(p->node);
		values[1] = CStringGetTextDatum(p->state);
		values[2] = Int32GetDatum(p->db);
		values[3] = TimestampTzGetDatum(p->since);
		nulls[3] = (p->since == 0);
		values[4] = TimestampTzGetDatum(p->last_used);
		nulls[4] = (p->last_used == 0);
		values[5] = Int64GetDatum(p->commands);
		values[6] = Int64GetDatum(p->errors);
		values[7] = Int64GetDatum(p->reconnects);
		values[8] = Int32GetDatum(p->failures);
		values[9] = TimestampTzGetDatum(p->down_until);
		nulls[9] = (p->down_until == 0);
		values[10] = CStringGetTextDatum(p->last_error);
		nulls[10] = (p->last_error[0] == '\0');
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
redis_disconnect(PG_FUNCTION_ARGS)
{
	int			n;

	(void) fcinfo;
	n = RedisDisconnectAll();
	RedisNearDisconnect();
	PG_RETURN_INT32(n);
}

/* Commands that would change connection state behind the pool's back. */
static const char *const refused_commands[] = {
	"SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE",
	"SUNSUBSCRIBE", "MONITOR", "SELECT", "AUTH", "HELLO", "RESET", "QUIT",
	"MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SYNC", "PSYNC",
	"REPLCONF", NULL
};

static void
check_admin_command(const char *name, size_t len, const char *second)
{
	int			i;

	for (i = 0; refused_commands[i]; i++)
	{
		if (strlen(refused_commands[i]) == len &&
			pg_strncasecmp(name, refused_commands[i], len) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("redis_command() cannot run %s", refused_commands[i]),
					 errdetail("It would change the state of the pooled connection."),
					 errhint("Set bmfredis.db instead of SELECT and the bmfredis.* settings instead of AUTH; for atomic multi-command work, a script: redis_command(true, 'EVAL', ...).")));
	}
	if (len == 6 && pg_strncasecmp(name, "client", 6) == 0 && second &&
		pg_strcasecmp(second, "reply") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("redis_command() cannot run CLIENT REPLY"),
				 errdetail("It would change the state of the pooled connection.")));
}

/*
 * Commands that harm every application using the Redis, not only this
 * database's namespace: by name, or by name and subcommand.  KEYS blocks
 * the server for as long as it walks the whole keyspace.
 */
static const struct
{
	const char *name;
	const char *sub;			/* NULL: any */
}			harmful_commands[] = {
	{"FLUSHALL", NULL}, {"FLUSHDB", NULL}, {"SHUTDOWN", NULL}, {"DEBUG", NULL},
	{"REPLICAOF", NULL}, {"SLAVEOF", NULL}, {"MODULE", NULL}, {"KEYS", NULL},
	{"FAILOVER", NULL}, {"SWAPDB", NULL}, {"MIGRATE", NULL},
	{"CONFIG", "SET"}, {"CONFIG", "RESETSTAT"}, {"CONFIG", "REWRITE"},
	{"ACL", "SETUSER"}, {"ACL", "DELUSER"}, {"ACL", "LOAD"}, {"ACL", "SAVE"},
	{"SCRIPT", "FLUSH"}, {"FUNCTION", "FLUSH"}, {"FUNCTION", "DELETE"}, {"FUNCTION", "RESTORE"},
	{"CLUSTER", "RESET"}, {"CLUSTER", "FAILOVER"}, {"CLUSTER", "FORGET"},
	{"CLUSTER", "ADDSLOTS"}, {"CLUSTER", "DELSLOTS"}, {"CLUSTER", "SETSLOT"},
	{"CLUSTER", "MEET"}, {"CLUSTER", "REPLICATE"}, {"CLUSTER", "FLUSHSLOTS"},
	{"CLIENT", "KILL"}, {"CLIENT", "PAUSE"},
	{"FUNCTION", "LOAD"},		/* LOAD REPLACE swaps another application's library */
	{NULL, NULL}
};

/*
 * Scripts run whatever they contain, the commands above included (EVAL
 * "return redis.call('FLUSHALL')" 0), and a script named by its SHA1 or
 * a function by its name cannot be read first: they need force too.
 */
static const char *const script_commands[] = {
	"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO", NULL
};

static void
check_harmful_command(const char *name, size_t len, const char *second)
{
	int			i;

	for (i = 0; harmful_commands[i].name; i++)
	{
		if (strlen(harmful_commands[i].name) != len ||
			pg_strncasecmp(name, harmful_commands[i].name, len) != 0)
			continue;
		if (harmful_commands[i].sub &&
			(second == NULL || pg_strcasecmp(second, harmful_commands[i].sub) != 0))
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("redis_command() refuses %s%s%s without force", harmful_commands[i].name,
						harmful_commands[i].sub ? " " : "",
						harmful_commands[i].sub ? harmful_commands[i].sub : ""),
				 errdetail("It acts on the whole Redis server and every application using it, not only bmfredis.key_prefix."),
				 errhint("If that is meant, call redis_command(force => true, VARIADIC args => ARRAY[...]); "
						 "redis_flush_namespace() empties only this database's keys.")));
	}
	for (i = 0; script_commands[i]; i++)
	{
		if (strlen(script_commands[i]) != len ||
			pg_strncasecmp(name, script_commands[i], len) != 0)
			continue;
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("redis_command() refuses %s without force", script_commands[i]),
				 errdetail("A script or function can run any command, those that act on the whole Redis server (FLUSHALL, CONFIG SET, ...) included."),
				 errhint("If the script is meant, call redis_command(force => true, VARIADIC args => ARRAY['%s', ...]).",
						 script_commands[i])));
	}
}

/* redis_command(VARIADIC args text[]) -> text; JSON text for arrays */
static Datum
run_command(ArrayType *arr, bool force)
{
	text	  **elems;
	int			n;
	int			i;
	char	   *second;
	RedisArgs	args;
	RedisReply *reply;
	StringInfoData out;

	elems = BmfTextArrayElements(arr, "command", &n);
	if (n == 0 || VARSIZE_ANY_EXHDR(elems[0]) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("redis_command() needs a command name")));
	second = n > 1 ? text_to_cstring(elems[1]) : NULL;
	check_admin_command(VARDATA_ANY(elems[0]), VARSIZE_ANY_EXHDR(elems[0]), second);
	if (!force)
		check_harmful_command(VARDATA_ANY(elems[0]), VARSIZE_ANY_EXHDR(elems[0]), second);

	RedisArgsInit(&args, n);
	for (i = 0; i < n; i++)
		RedisArgsAdd(&args, VARDATA_ANY(elems[i]), VARSIZE_ANY_EXHDR(elems[i]));
	RedisNearForgetAll();		/* a raw command may write anything */
	reply = RedisCommand(REDIS_STRICT, 0, &args, NULL);

	switch (reply->type)
	{
		case RESP_NIL:
			return (Datum) 0;
		case RESP_ARRAY:
			initStringInfo(&out);
			RedisReplyAppendJson(&out, reply);
			return PointerGetDatum(cstring_to_text_with_len(out.data, out.len));
		default:
			return PointerGetDatum(RedisReplyToText(reply));
	}
}

Datum
redis_command(PG_FUNCTION_ARGS)
{
	Datum		d;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("command must not be null")));
	d = run_command(PG_GETARG_ARRAYTYPE_P(0), false);
	if (d == (Datum) 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(d);
}

/* redis_command(force boolean, VARIADIC args text[]) */
Datum
redis_command_force(PG_FUNCTION_ARGS)
{
	Datum		d;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("force and command must not be null")));
	d = run_command(PG_GETARG_ARRAYTYPE_P(1), PG_GETARG_BOOL(0));
	if (d == (Datum) 0)
		PG_RETURN_NULL();
	PG_RETURN_DATUM(d);
}
