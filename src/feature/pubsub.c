/*-------------------------------------------------------------------------
 *
 * pubsub.c
 *		redis_publish, redis_event, redis_publish_event, redis_listen.
 *
 * Publishing follows the transaction, like PostgreSQL's NOTIFY: messages
 * are queued in order and sent after COMMIT, after the transaction's
 * invalidations (so a subscriber reacting to "product:updated" cannot
 * re-read the old cached product); ROLLBACK, ROLLBACK TO SAVEPOINT and a
 * caught exception drop what they published.  immediate => true publishes
 * at once and returns the number of receivers.  Channels get
 * bmfredis.channel_prefix (empty by default: the application's services
 * publish and subscribe without one).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "common/pg_prng.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "base/compat.h"
#include "base/guc.h"
#include "base/sqlutil.h"
#include "base/stats.h"
#include "client/client.h"
#include "feature/privileges.h"
#include "feature/pubsub.h"
#include "xact/event.h"
#include "xact/xact.h"

PG_FUNCTION_INFO_V1(redis_publish);
PG_FUNCTION_INFO_V1(redis_publish_jsonb);
PG_FUNCTION_INFO_V1(redis_event);
PG_FUNCTION_INFO_V1(redis_publish_event);
PG_FUNCTION_INFO_V1(redis_listen);

void
PubsubQueue(const char *channel, size_t clen, const char *message, size_t mlen)
{
	if (XactPendingPublishes() >= bmf_max_pending_messages)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many Redis messages queued in one transaction"),
				 errdetail("bmfredis.max_pending_messages is %d.", bmf_max_pending_messages),
				 errhint("Raise bmfredis.max_pending_messages, or publish with immediate => true.")));
	XactQueuePublish(channel, clen, message, mlen);
}

/* Publish now; the number of receivers, or NULL when Redis failed. */
static Datum
publish_now(FunctionCallInfo fcinfo, const char *channel, size_t clen,
			const char *message, size_t mlen)
{
	RedisArgs	args;
	RedisReply *reply;

	RedisArgsInit(&args, 3);
	RedisArgsAdd(&args, "PUBLISH", 7);
	RedisArgsAdd(&args, channel, clen);
	RedisArgsAdd(&args, message, mlen);
	reply = RedisCommand(REDIS_WRITE, 0, &args, NULL);
	if (reply == NULL)
		PG_RETURN_NULL();
	RedisExpect(reply, RESP_INTEGER, "PUBLISH");
	BmfStatsCount(STAT_PUBLISHES, 1);
	PG_RETURN_INT64(reply->integer);
}

static Datum
publish(FunctionCallInfo fcinfo, const char *message, size_t mlen)
{
	text	   *channel = BmfTextArg(fcinfo, 0, "channel");
	StringInfoData ch;

	RedisCheckKey("channel", VARSIZE_ANY_EXHDR(channel));
	PrivCheckPublish(VARDATA_ANY(channel), VARSIZE_ANY_EXHDR(channel));
	BmfCheckValueSize(mlen);
	initStringInfo(&ch);
	EventChannel(&ch, VARDATA_ANY(channel), VARSIZE_ANY_EXHDR(channel));
	if (!PG_ARGISNULL(2) && PG_GETARG_BOOL(2))
		return publish_now(fcinfo, ch.data, ch.len, message, mlen);
	PubsubQueue(ch.data, ch.len, message, mlen);
	PG_RETURN_NULL();
}

/* redis_publish(channel text, message text, immediate boolean) -> bigint */
Datum
redis_publish(PG_FUNCTION_ARGS)
{
	text	   *message = BmfTextArg(fcinfo, 1, "message");

	return publish(fcinfo, VARDATA_ANY(message), VARSIZE_ANY_EXHDR(message));
}

/* redis_publish(channel text, message jsonb, immediate boolean) -> bigint */
Datum
redis_publish_jsonb(PG_FUNCTION_ARGS)
{
	Jsonb	   *message;
	StringInfoData buf;

	(void) BmfTextArg(fcinfo, 1, "message");
	message = PG_GETARG_JSONB_P(1);
	initStringInfo(&buf);
	JsonbToCString(&buf, &message->root, VARSIZE(message));
	return publish(fcinfo, buf.data, buf.len);
}

/* redis_event(type text, data jsonb, entity_id text) -> jsonb */
Datum
redis_event(PG_FUNCTION_ARGS)
{
	text	   *type = BmfTextArg(fcinfo, 0, "event type");
	StringInfoData data;
	StringInfoData out;
	char	   *entity_id = NULL;

	RedisCheckKey("event type", VARSIZE_ANY_EXHDR(type));
	initStringInfo(&data);
	if (!PG_ARGISNULL(1))
	{
		Jsonb	   *j = PG_GETARG_JSONB_P(1);

		JsonbToCString(&data, &j->root, VARSIZE(j));
	}
	else
		appendStringInfoString(&data, "{}");
	if (PG_NARGS() > 2 && !PG_ARGISNULL(2))
		entity_id = text_to_cstring(PG_GETARG_TEXT_PP(2));
	initStringInfo(&out);
	EventEnvelope(&out, text_to_cstring(type), entity_id, data.data, NULL,
				   GetCurrentTimestamp());
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.data)));
}

/*
 * An event as JSON text, its keys in the envelope's order (id, type,
 * entity, operation, entity_id, data, changed, time, txid, database, then
 * any others), as a watched table's events are sent: jsonb keeps its keys
 * sorted its own way, and consumers that read the text should not see two
 * shapes.
 */
static void
append_event_text(StringInfo out, Jsonb *ev)
{
	static const char *const order[] = {
		"id", "type", "entity", "operation", "entity_id", "data", "changed",
		"time", "txid", "database", NULL
	};
	JsonbIterator *it;
	JsonbValue	k;
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		first = true;
	int			i;

	appendStringInfoChar(out, '{');
	for (i = 0; order[i]; i++)
	{
		JsonbValue	key;
		JsonbValue *val;
		Jsonb	   *j;

		key.type = jbvString;
		key.val.string.val = (char *) order[i];
		key.val.string.len = strlen(order[i]);
		val = findJsonbValueFromContainer(&ev->root, JB_FOBJECT, &key);
		if (val == NULL)
			continue;
		if (!first)
			appendStringInfoString(out, ", ");
		first = false;
		escape_json(out, order[i]);
		appendStringInfoString(out, ": ");
		j = JsonbValueToJsonb(val);
		(void) JsonbToCString(out, &j->root, VARSIZE(j));
	}
	it = JsonbIteratorInit(&ev->root);
	while ((tok = JsonbIteratorNext(&it, &k, true)) != WJB_DONE)
	{
		char	   *name;
		Jsonb	   *j;
		bool		known = false;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(k.val.string.val, k.val.string.len);
		for (i = 0; order[i] && !known; i++)
			known = strcmp(order[i], name) == 0;
		tok = JsonbIteratorNext(&it, &v, true);
		if (known)
			continue;
		if (!first)
			appendStringInfoString(out, ", ");
		first = false;
		escape_json(out, name);
		appendStringInfoString(out, ": ");
		j = JsonbValueToJsonb(&v);
		(void) JsonbToCString(out, &j->root, VARSIZE(j));
	}
	appendStringInfoChar(out, '}');
}

/* redis_publish_event(event jsonb, immediate boolean): on event->>'type' */
Datum
redis_publish_event(PG_FUNCTION_ARGS)
{
	Jsonb	   *event;
	JsonbValue	key;
	JsonbValue *type;
	StringInfoData buf;
	StringInfoData ch;

	(void) BmfTextArg(fcinfo, 0, "event");
	event = PG_GETARG_JSONB_P(0);
	key.type = jbvString;
	key.val.string.val = "type";
	key.val.string.len = 4;
	type = JB_ROOT_IS_OBJECT(event) ?
		findJsonbValueFromContainer(&event->root, JB_FOBJECT, &key) : NULL;
	if (type == NULL || type->type != jbvString || type->val.string.len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event has no \"type\" to publish it on"),
				 errhint("Build events with redis_event(type, data).")));
	PrivCheckPublish(type->val.string.val, type->val.string.len);
	initStringInfo(&buf);
	append_event_text(&buf, event);
	BmfCheckValueSize(buf.len);
	initStringInfo(&ch);
	EventChannel(&ch, type->val.string.val, type->val.string.len);
	if (!PG_ARGISNULL(1) && PG_GETARG_BOOL(1))
		return publish_now(fcinfo, ch.data, ch.len, buf.data, buf.len);
	PubsubQueue(ch.data, ch.len, buf.data, buf.len);
	PG_RETURN_NULL();
}

/* Collect messages into the SRF's tuplestore until deadline or max. */
static void
listen_loop(RedisSubscription *sub, ReturnSetInfo *rsinfo, TimestampTz deadline,
			int64 max_messages, MemoryContext msgcxt, const PrivListen *priv)
{
	int64		received = 0;
	RedisError	err;

	while (max_messages < 0 || received < max_messages)
	{
		RedisReply *msg;
		int			rc;
		Datum		values[3];
		bool		nulls[3] = {false, false, false};
		MemoryContext old;

		MemoryContextReset(msgcxt);
		rc = RedisSubscriptionRead(sub, deadline, msgcxt, &msg, &err);
		if (rc == 0)
			break;
		if (rc < 0)
			RedisReportFailure(REDIS_STRICT, REDIS_IDEMPOTENT, &err, "SUBSCRIBE");
		if (msg->type != RESP_ARRAY || msg->elements < 3 ||
			msg->element[0]->type != RESP_STRING)
			continue;
		/* what the role may not see is dropped, and not counted */
		if (msg->element[msg->elements - 2]->type != RESP_STRING ||
			!PrivListenAllows(priv, msg->element[msg->elements - 2]->str,
							  msg->element[msg->elements - 2]->len))
			continue;
		old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
		if (strcmp(msg->element[0]->str, "message") == 0)
		{
			values[0] = PointerGetDatum(RedisReplyToText(msg->element[1]));
			values[1] = PointerGetDatum(RedisReplyToText(msg->element[2]));
			nulls[2] = true;
		}
		else if (strcmp(msg->element[0]->str, "pmessage") == 0 && msg->elements == 4)
		{
			values[0] = PointerGetDatum(RedisReplyToText(msg->element[2]));
			values[1] = PointerGetDatum(RedisReplyToText(msg->element[3]));
			values[2] = PointerGetDatum(RedisReplyToText(msg->element[1]));
		}
		else
		{
			MemoryContextSwitchTo(old);
			continue;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
		received++;
	}
}

/*
 * redis_listen(channels text[], timeout interval, max_messages int) ->
 * setof (channel, message, pattern): an ad-hoc subscription on a
 * connection of its own, returning what arrives until the timeout (or
 * max_messages).  Names with glob characters are patterns.
 */
Datum
redis_listen(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	  **elems;
	int			n;
	int			i;
	const char **names;
	bool	   *patterns;
	int64		timeout_ms;
	volatile int64 max_messages = -1;
	TimestampTz deadline;
	RedisSubscription *volatile sub;
	RedisError	err;
	MemoryContext msgcxt;
	PrivListen *priv;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("channel array must not be null")));
	elems = BmfTextArrayElements(PG_GETARG_ARRAYTYPE_P(0), "channel array", &n);
	if (n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("redis_listen() needs at least one channel")));
	timeout_ms = PG_ARGISNULL(1) ? 1000 : BmfIntervalToMs(PG_GETARG_INTERVAL_P(1), "timeout");
	if (!PG_ARGISNULL(2))
	{
		max_messages = PG_GETARG_INT32(2);
		if (max_messages <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("max_messages must be positive")));
	}

	names = palloc(sizeof(char *) * n);
	patterns = palloc(sizeof(bool) * n);
	for (i = 0; i < n; i++)
	{
		StringInfoData ch;

		RedisCheckKey("channel", VARSIZE_ANY_EXHDR(elems[i]));
		initStringInfo(&ch);
		EventChannel(&ch, VARDATA_ANY(elems[i]), VARSIZE_ANY_EXHDR(elems[i]));
		names[i] = ch.data;
		patterns[i] = strpbrk(text_to_cstring(elems[i]), "*?[") != NULL;
	}

	priv = PrivListenStart();
	InitMaterializedSRF(fcinfo, 0);
	sub = RedisSubscribe(0, n, names, patterns, &err);
	if (sub == NULL)
		RedisReportFailure(REDIS_STRICT, REDIS_IDEMPOTENT, &err, "SUBSCRIBE");

	msgcxt = AllocSetContextCreate(CurrentMemoryContext, "bmfredis listen",
								   ALLOCSET_DEFAULT_SIZES);
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	PG_TRY();
	{
		listen_loop(sub, rsinfo, deadline, max_messages, msgcxt, priv);
	}
	PG_CATCH();
	{
		RedisUnsubscribe(sub);
		PG_RE_THROW();
	}
	PG_END_TRY();
	RedisUnsubscribe(sub);
	MemoryContextDelete(msgcxt);
	return (Datum) 0;
}
