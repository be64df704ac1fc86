/*-------------------------------------------------------------------------
 *
 * changes.c
 *		Change events: a watched table's rows published at COMMIT as
 *		<channel>:created|updated|deleted envelopes with the columns the
 *		rule names, and summaries once a transaction passes
 *		bmfredis.max_pending_messages.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplestore.h"

#include "base/guc.h"
#include "base/sqlutil.h"
#include "base/template.h"
#include "client/client.h"
#include "feature/invalidate.h"
#include "feature/pubsub.h"
#include "xact/effects.h"
#include "xact/event.h"
#include "feature/watch.h"
#include "xact/xact.h"

/* ---- change events ---- */

/* A column value as JSON: numbers and booleans bare, dates ISO, the rest strings. */
static void
append_json_value(Rule *r, AttrNumber attnum, Datum value, StringInfo out)
{
	ColOut	   *c = &r->cols[attnum - 1];
	StringInfoData s;
	char	   *str;

	switch (c->typid)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
			WatchAppendValue(r, attnum, value, out);
			return;
		case BOOLOID:
			appendStringInfoString(out, DatumGetBool(value) ? "true" : "false");
			return;
		case JSONOID:
		case JSONBOID:
			appendStringInfoString(out, OutputFunctionCall(&c->out, value));
			return;
		case NUMERICOID:
		case FLOAT4OID:
		case FLOAT8OID:
			str = OutputFunctionCall(&c->out, value);
			if (strpbrk(str, "NIa") == NULL)	/* not NaN, Infinity */
			{
				appendStringInfoString(out, str);
				return;
			}
			escape_json(out, str);
			return;
		default:
			initStringInfo(&s);
			WatchAppendValue(r, attnum, value, &s);
			escape_json(out, s.data);
			return;
	}
}

/*
 * Publish a row change on <channel>:<created|updated|deleted>, at COMMIT,
 * with the envelope; data holds only the event columns.  Past
 * bmfredis.max_pending_messages, the row is counted in a summary instead.
 */
static const char *const event_ops[3] = {"created", "updated", "deleted"};

/* The channel names, event types and JSON column names of a rule's events. */
static void
ensure_channels(Rule *r, TupleDesc desc)
{
	MemoryContext old;
	int			i;

	if (r->chan_prefix && strcmp(r->chan_prefix, bmf_channel_prefix) == 0)
		return;
	old = MemoryContextSwitchTo(watch_rules_cxt);
	for (i = 0; i < 3; i++)
	{
		StringInfoData s;

		initStringInfo(&s);
		EventChannel(&s, r->channel, strlen(r->channel));
		appendStringInfo(&s, ":%s", event_ops[i]);
		r->chan[i] = s.data;
		r->etype[i] = psprintf("%s:%s", r->channel, event_ops[i]);
		initStringInfo(&s);
		EventEnvelopeHead(&s, r->etype[i]);
		r->ehead[i] = s.data;
	}
	if (r->event_col_json == NULL)
	{
		r->event_col_json = palloc(sizeof(char *) * Max(r->nevent_cols, 1));
		for (i = 0; i < r->nevent_cols; i++)
		{
			StringInfoData s;

			initStringInfo(&s);
			escape_json(&s, NameStr(TupleDescAttr(desc, r->event_cols[i] - 1)->attname));
			appendStringInfoString(&s, ": ");
			r->event_col_json[i] = s.data;
		}
	}
	r->chan_prefix = pstrdup(bmf_channel_prefix);
	MemoryContextSwitchTo(old);
}

/* A buffer that lives across rows; shrunk back when a huge row grew it. */
static void
reset_buffer(StringInfo s, bool *ready)
{
	if (*ready && s->maxlen > 1024 * 1024)
	{
		pfree(s->data);
		*ready = false;
	}
	if (!*ready)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(s);
		MemoryContextSwitchTo(old);
		*ready = true;
	}
	resetStringInfo(s);
}

/*
 * The change event of one row, queued for COMMIT: {"id", "type":
 * "<channel>:<op>", ..., "data": {the event columns}, "changed": [...]}.
 * Past bmfredis.max_pending_messages only a count is kept (one summary
 * per channel and operation at COMMIT).  Per-rule strings are built once;
 * the buffers live across rows.
 */
void
WatchPublishChange(Rule *r, TupleTableSlot *old, TupleTableSlot *new,
			   bool update_unread)
{
	static StringInfoData data;
	static StringInfoData changed;
	static StringInfoData msg;
	static bool data_ready = false;
	static bool changed_ready = false;
	static bool msg_ready = false;
	static StringInfoData tail;
	static bool tail_ready = false;
	static TimestampTz tail_ts = 0;
	static FullTransactionId tail_fxid;
	int			op = (old && new) || update_unread ? 1 : new ? 0 : 2;
	TupleTableSlot *row = new ? new : old;
	RowView		rv;
	int			i;
	bool		first = true;

	if (XactPendingPublishes() >= bmf_max_pending_messages)
	{
		r->summarized[op]++;	/* counted by flush_summaries */
		return;
	}
	ensure_channels(r, row->tts_tupleDescriptor);

	rv.slot = row;
	rv.map = NULL;
	rv.id = NULL;
	reset_buffer(&data, &data_ready);
	appendStringInfoChar(&data, '{');
	for (i = 0; i < r->nevent_cols; i++)
	{
		AttrNumber	a = r->event_cols[i];
		Datum		v;

		if (i > 0)
			appendStringInfoString(&data, ", ");
		appendStringInfoString(&data, r->event_col_json[i]);
		if (WatchGetCol(&rv, a, &v))
			append_json_value(r, a, v, &data);
		else
			appendStringInfoString(&data, "null");
	}
	appendStringInfoChar(&data, '}');

	reset_buffer(&changed, &changed_ready);
	if (update_unread)
		appendStringInfoString(&changed, "[]");	/* none was set */
	else if (old && new)
	{
		appendStringInfoChar(&changed, '[');
		for (i = 0; i < r->nevent_cols; i++)
		{
			AttrNumber	a = r->event_cols[i];
			const char *name = r->event_col_json[i];

			if (!WatchColumnsDiffer(&a, 1, old, new))
				continue;
			if (!first)
				appendStringInfoString(&changed, ", ");
			/* the JSON name without its ": " */
			appendBinaryStringInfo(&changed, name, strlen(name) - 2);
			first = false;
		}
		appendStringInfoChar(&changed, ']');
	}

	/* time, txid and database: the same for every row of the statement */
	if (!tail_ready || tail_ts != GetCurrentStatementStartTimestamp() ||
		!FullTransactionIdEquals(tail_fxid, GetTopFullTransactionIdIfAny()))
	{
		reset_buffer(&tail, &tail_ready);
		tail_ts = GetCurrentStatementStartTimestamp();
		tail_fxid = GetTopFullTransactionIdIfAny();
		EventEnvelopeTail(&tail, tail_ts);
	}
	reset_buffer(&msg, &msg_ready);
	EventEnvelopeFrom(&msg, r->ehead[op], WatchRowId(r, &rv), data.data,
					   op == 1 ? changed.data : NULL, tail.data);
	XactQueuePublish(r->chan[op], strlen(r->chan[op]), msg.data, msg.len);
}

/*
 * The rows publish_change only counted, added to the transaction's
 * summaries (one per channel and operation): once per statement rather
 * than once per row.
 */
void
WatchFlushSummaries(Rule *r, TupleDesc desc)
{
	int			op;

	for (op = 0; op < 3; op++)
	{
		if (r->summarized[op] == 0)
			continue;
		ensure_channels(r, desc);
		XactQueueSummary(r->chan[op], r->channel, event_ops[op], r->summarized[op]);
		r->summarized[op] = 0;
	}
}
