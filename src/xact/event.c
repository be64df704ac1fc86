/*-------------------------------------------------------------------------
 *
 * event.c
 *		Channel names and the JSON envelope of events: what a COMMIT's
 *		announcements, change triggers and redis_event() all send, in one
 *		shape (the marketplace's services parse it).  No I/O.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "port/pg_bswap.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/json.h"
#include "utils/timestamp.h"

#include "base/guc.h"
#include "pool/pool.h"
#include "xact/event.h"

void
EventChannel(StringInfo out, const char *channel, size_t len)
{
	appendStringInfoString(out, bmf_channel_prefix);
	appendBinaryStringInfo(out, channel, len);
}

void
EventIsoTime(StringInfo out, TimestampTz ts)
{
	struct pg_tm tm;
	fsec_t		fsec;

	if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
	{
		appendStringInfoString(out, "null");
		return;
	}
	appendStringInfo(out, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ\"",
					 tm.tm_year, tm.tm_mon, tm.tm_mday,
					 tm.tm_hour, tm.tm_min, tm.tm_sec, (int) fsec);
}

/*
 * A version 4 UUID from a per-process PRNG seeded once from
 * pg_strong_random().  Event ids need to be unique, not unguessable, and
 * OpenSSL's RAND_bytes per message was a fifth of a watched UPDATE's time
 * (perf; README).
 */
static void
append_uuid(StringInfo out)
{
	static pg_prng_state prng;
	static pid_t seeded_for = 0;
	static const char hex[] = "0123456789abcdef";
	uint8		b[16];
	uint64		r0,
				r1;
	char		s[38];
	char	   *p = s;
	int			i;

	if (seeded_for != MyProcPid)
	{
		uint64		seed[2];

		if (!pg_strong_random(seed, sizeof(seed)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not seed the event id generator")));
		pg_prng_seed(&prng, seed[0] ^ (seed[1] << 1));
		seeded_for = MyProcPid;
	}
	r0 = pg_prng_uint64(&prng);
	r1 = pg_prng_uint64(&prng);
	memcpy(b, &r0, 8);
	memcpy(b + 8, &r1, 8);
	b[6] = (b[6] & 0x0f) | 0x40;	/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;	/* variant 1 */
	*p++ = '"';
	for (i = 0; i < 16; i++)
	{
		*p++ = hex[b[i] >> 4];
		*p++ = hex[b[i] & 15];
		if (i == 3 || i == 5 || i == 7 || i == 9)
			*p++ = '-';
	}
	*p++ = '"';
	appendBinaryStringInfo(out, s, p - s);
}

/* EventIsoTime, remembering the last rendering (a statement's rows share it) */
static void
append_time(StringInfo out, TimestampTz ts)
{
	static TimestampTz last_ts = DT_NOBEGIN;
	static char last[40];
	static int	last_len = 0;

	if (ts != last_ts || last_len == 0)
	{
		StringInfoData s;

		initStringInfo(&s);
		EventIsoTime(&s, ts);
		last_len = Min(s.len, (int) sizeof(last) - 1);
		memcpy(last, s.data, last_len);
		pfree(s.data);
		last_ts = ts;
	}
	appendBinaryStringInfo(out, last, last_len);
}

void
EventEnvelopeHead(StringInfo out, const char *type)
{
	const char *colon = strchr(type, ':');

	appendStringInfoString(out, ", \"type\": ");
	escape_json(out, type);
	appendStringInfoString(out, ", \"entity\": ");
	if (colon)
	{
		char	   *entity = pnstrdup(type, colon - type);

		escape_json(out, entity);
		pfree(entity);
		appendStringInfoString(out, ", \"operation\": ");
		escape_json(out, colon + 1);
	}
	else
	{
		escape_json(out, type);
		appendStringInfoString(out, ", \"operation\": null");
	}
}

void
EventEnvelopeTail(StringInfo out, TimestampTz when)
{
	FullTransactionId fxid = GetTopFullTransactionIdIfAny();
	const char *db = PoolDatabaseName();

	appendStringInfoString(out, ", \"time\": ");
	append_time(out, when);
	appendStringInfoString(out, ", \"txid\": ");
	if (FullTransactionIdIsValid(fxid))
		appendStringInfo(out, UINT64_FORMAT, U64FromFullTransactionId(fxid));
	else
		appendStringInfoString(out, "null");
	appendStringInfoString(out, ", \"database\": ");
	if (db)
		escape_json(out, db);
	else
		appendStringInfoString(out, "null");
	appendStringInfoChar(out, '}');
}

void
EventEnvelopeFrom(StringInfo out, const char *head, const char *entity_id,
				   const char *data_json, const char *changed_json,
				   const char *tail)
{
	appendStringInfoString(out, "{\"id\": ");
	append_uuid(out);
	appendStringInfoString(out, head);
	appendStringInfoString(out, ", \"entity_id\": ");
	if (entity_id)
		escape_json(out, entity_id);
	else
		appendStringInfoString(out, "null");
	appendStringInfoString(out, ", \"data\": ");
	appendStringInfoString(out, data_json ? data_json : "{}");
	if (changed_json)
	{
		appendStringInfoString(out, ", \"changed\": ");
		appendStringInfoString(out, changed_json);
	}
	appendStringInfoString(out, tail);
}

void
EventEnvelope(StringInfo out, const char *type, const char *entity_id,
			   const char *data_json, const char *changed_json, TimestampTz when)
{
	StringInfoData head;
	StringInfoData tail;

	initStringInfo(&head);
	EventEnvelopeHead(&head, type);
	initStringInfo(&tail);
	EventEnvelopeTail(&tail, when);
	EventEnvelopeFrom(out, head.data, entity_id, data_json, changed_json, tail.data);
	pfree(head.data);
	pfree(tail.data);
}
