/*-------------------------------------------------------------------------
 *
 * inbox.c
 *		Redis Streams into PostgreSQL: the database's worker reads each
 *		stream named in bmfredis.stream_consumers with a consumer group,
 *		stores every entry (a row in the table the DBA named, a NOTIFY, or
 *		both) and acknowledges it (XACK) only once that committed.
 *
 * Exactly once per entry id, across a crash anywhere: the row goes in
 * with ON CONFLICT DO NOTHING on the table's unique (stream, entry_id),
 * and the NOTIFY only when the row was new.  An entry whose transaction
 * did not commit was not acknowledged, so Redis still holds it as pending
 * for this consumer, and the next pass reads the pending entries first
 * (XREADGROUP … 0); one that committed and was not acknowledged comes back
 * the same way and finds its row there.  Without a table (NOTIFY only)
 * that becomes at least once.
 *
 * An entry that cannot be stored (a message that is not JSON for a jsonb
 * column, a constraint) stops its stream there: the entries before it
 * commit and are acknowledged, it stays pending, and each pass tries it
 * again with a WARNING that says how to skip it.  Nothing is dropped.
 *
 * The rows are written as the table's owner (who alone may register it,
 * row-level security on bmfredis.stream_consumers), in a security-
 * restricted operation whose settings are undone after each row, and the
 * table is named with its schema: the table's triggers, defaults and
 * checks never run with the worker's superuser rights, nor leave anything
 * (a search_path) behind for what the worker does next.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "base/guc.h"
#include "base/wait.h"
#include "client/client.h"
#include "feature/inbox.h"

#define INBOX_BATCH 100
#define INBOX_ROUNDS 20			/* batches per stream and pass */

typedef struct Consumer
{
	char	   *stream;
	char	   *group;
	char	   *notify;			/* NULL: none */
	char	   *insert_sql;		/* NULL: no table */
	Oid			owner;			/* the table's owner, who writes its rows */
} Consumer;

static char consumer_name[NAMEDATALEN + 16];
static List *groups_made = NIL; /* "<group> <stream>" made (or found) */

/* Read bmfredis.stream_consumers, in cxt; NIL when the objects are 1.0's. */
static List *
load_consumers(MemoryContext cxt)
{
	List	   *out = NIL;
	uint64		i;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (consumer_name[0] == '\0')
		snprintf(consumer_name, sizeof(consumer_name), "bmfredis:%s",
				 get_database_name(MyDatabaseId));
	if (SPI_execute("SELECT pg_catalog.to_regclass('bmfredis.stream_consumers') IS NOT NULL",
					true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1 &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") == 0 &&
		SPI_execute("SELECT c.stream, c.group_name, c.notify, "
					"       pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' "
					"       OPERATOR(pg_catalog.||) pg_catalog.quote_ident(r.relname), "
					"       pg_catalog.format_type(a.atttypid, a.atttypmod), r.relowner "
					"  FROM bmfredis.stream_consumers c "
					"  LEFT JOIN pg_catalog.pg_attribute a "
					"    ON a.attrelid OPERATOR(pg_catalog.=) c.target "
					"   AND a.attname OPERATOR(pg_catalog.=) 'message' AND NOT a.attisdropped "
					"  LEFT JOIN pg_catalog.pg_class r ON r.oid OPERATOR(pg_catalog.=) c.target "
					"  LEFT JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) r.relnamespace "
					" ORDER BY c.stream", true, 0) == SPI_OK_SELECT)
	{
		for (i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *target = SPI_getvalue(tup, desc, 4);
			char	   *type = SPI_getvalue(tup, desc, 5);
			char	   *notify = SPI_getvalue(tup, desc, 3);
			Consumer   *c = MemoryContextAllocZero(cxt, sizeof(Consumer));

			c->stream = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 1));
			c->group = MemoryContextStrdup(cxt, SPI_getvalue(tup, desc, 2));
			c->notify = notify ? MemoryContextStrdup(cxt, notify) : NULL;
			if (target)
			{
				bool		isnull;

				c->owner = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
				if (isnull)
					c->owner = BOOTSTRAP_SUPERUSERID;	/* dropped meanwhile: the INSERT fails */
				c->insert_sql = MemoryContextStrdup(cxt, psprintf(
					"INSERT INTO %s (stream, entry_id, message) VALUES ($1, $2, $3::%s) "
					"ON CONFLICT (stream, entry_id) DO NOTHING", target, type ? type : "text"));
			}
			{
				MemoryContext o = MemoryContextSwitchTo(cxt);

				out = lappend(out, c);
				MemoryContextSwitchTo(o);
			}
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return out;
}

/* XGROUP CREATE from the stream's first entry, once per worker */
static bool
ensure_group(const Consumer *c)
{
	char	   *name = psprintf("%s %s", c->group, c->stream);
	ListCell   *lc;
	RedisArgs	a;
	RedisBatch	b;
	RedisReply **r;
	RedisError	err;
	MemoryContext old;

	foreach(lc, groups_made)
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	RedisArgsInit(&a, 6);
	RedisArgsAddStr(&a, "XGROUP");
	RedisArgsAddStr(&a, "CREATE");
	RedisArgsAddStr(&a, c->stream);
	RedisArgsAddStr(&a, c->group);
	RedisArgsAddStr(&a, "0");
	RedisArgsAddStr(&a, "MKSTREAM");
	RedisBatchInit(&b);
	RedisBatchAdd(&b, &a);
	r = RedisPipeline(REDIS_QUIET, REDIS_IDEMPOTENT, &b, 0, &err);
	if (r == NULL)
		return false;			/* Redis away: the next pass */
	if (r[0]->type == RESP_ERROR && !RespErrorIs(r[0], "BUSYGROUP"))
	{
		ereport(WARNING,
				(errmsg("bmfredis cannot consume stream \"%s\": %s", c->stream, r[0]->str),
				 errhint("The key must be a stream, or absent.")));
		return false;
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	groups_made = lappend(groups_made, pstrdup(name));
	MemoryContextSwitchTo(old);
	return true;
}

static void
forget_group(const Consumer *c)
{
	char	   *name = psprintf("%s %s", c->group, c->stream);
	ListCell   *lc;

	foreach(lc, groups_made)
		if (strcmp(lfirst(lc), name) == 0)
		{
			groups_made = foreach_delete_current(groups_made, lc);
			break;
		}
}

/*
 * XREADGROUP from id ("0": this consumer's pending entries; ">": new
 * ones), without blocking: the entries array, or NULL on failure.
 */
static RedisReply *
read_entries(const Consumer *c, const char *id)
{
	RedisArgs	a;
	RedisBatch	b;
	RedisReply **r;
	RedisError	err;
	static RedisReply none = {.type = RESP_ARRAY};

	RedisArgsInit(&a, 10);
	RedisArgsAddStr(&a, "XREADGROUP");
	RedisArgsAddStr(&a, "GROUP");
	RedisArgsAddStr(&a, c->group);
	RedisArgsAddStr(&a, consumer_name);
	RedisArgsAddStr(&a, "COUNT");
	RedisArgsAddInt(&a, INBOX_BATCH);
	RedisArgsAddStr(&a, "STREAMS");
	RedisArgsAddStr(&a, c->stream);
	RedisArgsAddStr(&a, id);
	RedisBatchInit(&b);
	RedisBatchAdd(&b, &a);
	r = RedisPipeline(REDIS_QUIET, REDIS_IDEMPOTENT, &b, 0, &err);
	if (r == NULL)
		return NULL;
	if (r[0]->type == RESP_NIL)
		return &none;
	if (r[0]->type == RESP_ERROR)
	{
		if (RespErrorIs(r[0], "NOGROUP"))
			forget_group(c);	/* the stream was deleted: made again next pass */
		else
			ereport(WARNING,
					(errmsg("bmfredis cannot read stream \"%s\": %s", c->stream, r[0]->str)));
		return NULL;
	}
	if (r[0]->type != RESP_ARRAY || r[0]->elements != 1 ||
		r[0]->element[0]->type != RESP_ARRAY || r[0]->element[0]->elements != 2 ||
		r[0]->element[0]->element[1]->type != RESP_ARRAY)
		return NULL;
	return r[0]->element[0]->element[1];
}

/* The entry's message: its "message" field, or all its fields as JSON. */
static char *
entry_message(const RedisReply *fields)
{
	StringInfoData s;
	size_t		i;

	for (i = 0; i + 1 < fields->elements; i += 2)
		if (fields->element[i]->len == 7 && memcmp(fields->element[i]->str, "message", 7) == 0)
			return pnstrdup(fields->element[i + 1]->str, fields->element[i + 1]->len);
	initStringInfo(&s);
	appendStringInfoChar(&s, '{');
	for (i = 0; i + 1 < fields->elements; i += 2)
	{
		if (i > 0)
			appendStringInfoString(&s, ", ");
		escape_json(&s, pnstrdup(fields->element[i]->str, fields->element[i]->len));
		appendStringInfoString(&s, ": ");
		escape_json(&s, pnstrdup(fields->element[i + 1]->str, fields->element[i + 1]->len));
	}
	appendStringInfoChar(&s, '}');
	return s.data;
}

/* Store one entry: its row (new or not) and, when new, its NOTIFY. */
static void
store_entry(const Consumer *c, const char *id, const char *message)
{
	bool		fresh = true;

	if (c->insert_sql)
	{
		Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
		Datum		values[3];
		Oid			save_userid;
		int			save_sec;
		int			save_nestlevel;

		values[0] = CStringGetTextDatum(c->stream);
		values[1] = CStringGetTextDatum(id);
		values[2] = CStringGetTextDatum(message);

		/*
		 * As the table's owner, as autovacuum and REFRESH MATERIALIZED VIEW
		 * run a table's code: its triggers, defaults and checks are the
		 * owner's, never the worker's superuser rights.  An error restores
		 * the worker's identity with the subtransaction.
		 */
		GetUserIdAndSecContext(&save_userid, &save_sec);
		SetUserIdAndSecContext(c->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		save_nestlevel = NewGUCNestLevel(); /* what its code SETs, undone */
		if (SPI_execute_with_args(c->insert_sql, 3, types, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not insert the entry");
		AtEOXact_GUC(false, save_nestlevel);
		SetUserIdAndSecContext(save_userid, save_sec);
		fresh = (SPI_processed == 1);
	}
	if (fresh && c->notify)
	{
		/* with a table, the row holds the message: the payload names it */
		if (c->insert_sql)
		{
			StringInfoData p;

			initStringInfo(&p);
			appendStringInfoString(&p, "{\"stream\": ");
			escape_json(&p, c->stream);
			appendStringInfoString(&p, ", \"id\": ");
			escape_json(&p, id);
			appendStringInfoChar(&p, '}');
			Async_Notify(c->notify, p.data);
		}
		else
			Async_Notify(c->notify, message);
	}
}

/*
 * Store entries in one transaction, each in a subtransaction, up to the
 * first that fails; how many are stored (committed), or -1 when the
 * transaction itself failed.
 */

/*
 * An entry the table refuses is tried at every pass: its WARNING is said
 * once, then again every REFUSED_REPEAT_MIN minutes with how many passes
 * refused it meanwhile (the passes between are DEBUG1).  Returns 0: say
 * it (first time, or another entry); > 0: quiet; < 0: say it again, with
 * minus the count.  A few streams at most per worker.
 */
#define REFUSED_REPEAT_MIN	5
#define REFUSED_SLOTS		16

typedef struct Refused
{
	char		stream[128];
	char		id[64];
	TimestampTz said;
	int			since;
} Refused;

static Refused refused_slots[REFUSED_SLOTS];

static int
refused_again(const char *stream, const char *id)
{
	TimestampTz now = GetCurrentTimestamp();
	Refused    *r = NULL;
	int			i;

	for (i = 0; i < REFUSED_SLOTS && r == NULL; i++)
		if (strncmp(refused_slots[i].stream, stream, sizeof(refused_slots[i].stream) - 1) == 0)
			r = &refused_slots[i];
	for (i = 0; i < REFUSED_SLOTS && r == NULL; i++)
		if (refused_slots[i].stream[0] == '\0')
			r = &refused_slots[i];
	if (r == NULL)
		r = &refused_slots[now % REFUSED_SLOTS];
	if (strcmp(r->stream, stream) != 0 || strcmp(r->id, id) != 0)
	{
		strlcpy(r->stream, stream, sizeof(r->stream));
		strlcpy(r->id, id, sizeof(r->id));
		r->said = now;
		r->since = 0;
		return 0;
	}
	r->since++;
	if (!TimestampDifferenceExceeds(r->said, now, REFUSED_REPEAT_MIN * 60 * 1000))
		return r->since;
	r->said = now;
	i = r->since;
	r->since = 0;
	return -i;
}

static int
store_entries(const Consumer *c, const RedisReply *entries)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile int stored = 0;
	volatile size_t i;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());

	/*
	 * Deferred constraints (a DEFERRABLE foreign key, a constraint trigger)
	 * are checked at each entry's INSERT, inside its subtransaction, so that
	 * one that fails stops the stream at that entry with its WARNING rather
	 * than failing the whole batch at COMMIT.
	 */
	if (SPI_execute("SET CONSTRAINTS ALL IMMEDIATE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not make the inbox's constraints immediate");
	for (i = 0; i < entries->elements; i++)
	{
		const RedisReply *e = entries->element[i];
		ResourceOwner owner = CurrentResourceOwner;
		MemoryContext old = CurrentMemoryContext;
		char	   *id;
		int			refused;
		volatile bool ok = true;

		if (e->type != RESP_ARRAY || e->elements != 2 || e->element[0]->type != RESP_STRING)
			break;
		id = pnstrdup(e->element[0]->str, e->element[0]->len);
		if (e->element[1]->type != RESP_ARRAY)
		{
			stored++;			/* trimmed away since: nothing to store */
			continue;
		}
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(old);
		PG_TRY();
		{
			store_entry(c, id, entry_message(e->element[1]));
			ReleaseCurrentSubTransaction();
		}
		PG_CATCH();
		{
			ErrorData  *edata;

			MemoryContextSwitchTo(cxt);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			refused = refused_again(c->stream, id);
			ereport(refused > 0 ? DEBUG1 : WARNING,
					(errmsg("bmfredis could not store entry %s of stream \"%s\": %s",
							id, c->stream, edata->message),
					 refused < 0 ?
					 errdetail("It is still pending in consumer group \"%s\", refused at every pass since this was last said (%d times); the entries after it wait.",
							   c->group, -refused) :
					 errdetail("It stays pending in consumer group \"%s\" and is tried again on the next pass (said again every %d minutes while it is refused); the entries after it wait.",
							   c->group, REFUSED_REPEAT_MIN),
					 errhint("Fix the cause, or skip the entry: XACK %s %s %s in Redis.",
							 c->stream, c->group, id)));
			FreeErrorData(edata);
			ok = false;
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
		CurrentResourceOwner = owner;
		if (!ok)
			break;
		stored++;
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return stored;
}

/* XACK the first n entries */
static void
ack_entries(const Consumer *c, const RedisReply *entries, int n)
{
	RedisArgs	a;
	RedisBatch	b;
	RedisError	err;
	int			i;

	if (n == 0)
		return;
	RedisArgsInit(&a, n + 3);
	RedisArgsAddStr(&a, "XACK");
	RedisArgsAddStr(&a, c->stream);
	RedisArgsAddStr(&a, c->group);
	for (i = 0; i < n; i++)
		RedisArgsAdd(&a, entries->element[i]->element[0]->str,
					 entries->element[i]->element[0]->len);
	RedisBatchInit(&b);
	RedisBatchAdd(&b, &a);
	/* lost: the entries come back as pending and find their rows */
	(void) RedisPipeline(REDIS_QUIET, REDIS_IDEMPOTENT, &b, 0, &err);
}

/*
 * Entries another consumer of the group took and left unacknowledged for
 * a minute (a database renamed, restored or moved: its consumer name
 * changed) become this one's pending entries.
 */
static void
claim_abandoned(const Consumer *c)
{
	RedisArgs	a;
	RedisBatch	b;
	RedisError	err;

	RedisArgsInit(&a, 9);
	RedisArgsAddStr(&a, "XAUTOCLAIM");
	RedisArgsAddStr(&a, c->stream);
	RedisArgsAddStr(&a, c->group);
	RedisArgsAddStr(&a, consumer_name);
	RedisArgsAddStr(&a, "60000");
	RedisArgsAddStr(&a, "0");
	RedisArgsAddStr(&a, "COUNT");
	RedisArgsAddInt(&a, INBOX_BATCH);
	RedisArgsAddStr(&a, "JUSTID");
	RedisBatchInit(&b);
	RedisBatchAdd(&b, &a);
	(void) RedisPipeline(REDIS_QUIET, REDIS_IDEMPOTENT, &b, 0, &err);
}

static void
consume(const Consumer *c)
{
	bool		pending = true;
	int			round;

	if (!ensure_group(c))
		return;
	claim_abandoned(c);
	for (round = 0; round < INBOX_ROUNDS; round++)
	{
		RedisReply *entries = read_entries(c, pending ? "0" : ">");
		int			stored;

		if (entries == NULL)
			return;
		if (entries->elements == 0)
		{
			if (!pending)
				return;
			pending = false;
			continue;
		}
		stored = store_entries(c, entries);
		ack_entries(c, entries, stored);
		if (stored < (int) entries->elements)
			return;				/* one failed: it waits, and those after it */
	}
}

void
InboxPass(void)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "bmfredis inbox",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	List	   *consumers = load_consumers(cxt);
	ListCell   *lc;

	if (consumers != NIL)
		pgstat_report_activity(STATE_RUNNING, "bmfredis: consuming streams");
	foreach(lc, consumers)
		consume(lfirst(lc));
	if (consumers != NIL)
		pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}
