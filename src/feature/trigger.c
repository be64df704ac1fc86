/*-------------------------------------------------------------------------
 *
 * trigger.c
 *		The generic change trigger redis_cache_trigger(): a changed row
 *		rendered into the keys and tags of its entity's rules and queued
 *		for COMMIT; and redis_invalidate_entity().
 *
 * The row trigger is cheap by design: it renders each template into a
 * reused buffer and hands the key to the transaction queue (xact.c),
 * which de-duplicates it; nothing is sent before COMMIT.  An UPDATE that
 * changes none of the watched columns queues nothing; one that changes a
 * template column queues the keys of both the old and the new row (a
 * product moving from shop 1 to shop 2 invalidates both shops' lists).
 * Cascades need SQL, so the row trigger only notes the ids, and the
 * statement-level trigger resolves them with one query per cascade
 * (cascade.c).  The rules are rules.c's; change events changes.c's.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "access/tupconvert.h"
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

#include "base/compat.h"
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

PG_FUNCTION_INFO_V1(redis_cache_trigger);
PG_FUNCTION_INFO_V1(redis_invalidate_entity);

/*
 * While a statement's transition tables are read into a key queue that was
 * empty when it began, a key rendered from a row's id is one no earlier
 * row queued (each row appears once), so it skips de-duplication: a bulk
 * UPDATE pays no hashing per row.  (An UPDATE that swaps two rows' ids
 * queues a key twice, which only costs an UNLINK argument.)
 */
static bool distinct_ids = false;


/* ---- rendering ---- */

/*
 * Dates and times in keys must not depend on the session rendering them
 * (DateStyle, TimeZone): ISO 8601, and timestamptz in UTC.  Infinities use
 * their usual names.
 */
static void
append_datetime(Oid typid, Datum value, StringInfo out)
{
	struct pg_tm tm;
	fsec_t		fsec = 0;
	char		buf[MAXDATELEN + 1];

	if (typid == DATEOID)
	{
		DateADT		d = DatumGetDateADT(value);

		if (DATE_NOT_FINITE(d))
		{
			appendStringInfoString(out, DATE_IS_NOBEGIN(d) ? "-infinity" : "infinity");
			return;
		}
		j2date(d + POSTGRES_EPOCH_JDATE, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
		EncodeDateOnly(&tm, USE_ISO_DATES, buf);
	}
	else
	{
		Timestamp	ts = DatumGetTimestamp(value);

		if (TIMESTAMP_NOT_FINITE(ts))
		{
			appendStringInfoString(out, TIMESTAMP_IS_NOBEGIN(ts) ? "-infinity" : "infinity");
			return;
		}
		/* a NULL tz pointer reads the timestamp as UTC */
		if (timestamp2tm(ts, NULL, &tm, &fsec, NULL, NULL) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
					 errmsg("timestamp out of range")));
		tm.tm_isdst = 0;		/* print the "+00" of UTC */
		EncodeDateTime(&tm, fsec, typid == TIMESTAMPTZOID, 0, typid == TIMESTAMPTZOID ? "UTC" : NULL,
					   USE_ISO_DATES, buf);
	}
	appendStringInfoString(out, buf);
}

void
WatchAppendValue(Rule *r, AttrNumber attnum, Datum value, StringInfo out)
{
	ColOut	   *c = &r->cols[attnum - 1];
	char		buf[24];

	Assert(c->ready);
	switch (c->typid)
	{
		case INT2OID:
			appendBinaryStringInfo(out, buf, pg_itoa(DatumGetInt16(value), buf));
			break;
		case INT4OID:
			appendBinaryStringInfo(out, buf, pg_ltoa(DatumGetInt32(value), buf));
			break;
		case INT8OID:
			appendBinaryStringInfo(out, buf, pg_lltoa(DatumGetInt64(value), buf));
			break;
		case TEXTOID:
		case VARCHAROID:
			{
				text	   *t = DatumGetTextPP(value);

				appendBinaryStringInfo(out, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
				break;
			}
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			append_datetime(c->typid, value, out);
			break;
		default:
			appendStringInfoString(out, OutputFunctionCall(&c->out, value));
			break;
	}
}


bool
WatchGetCol(const RowView *row, AttrNumber attnum, Datum *value)
{
	bool		isnull;
	AttrNumber	pos = row->map ? row->map[attnum - 1] : attnum;

	if (pos == InvalidAttrNumber)
		return false;
	*value = slot_getattr(row->slot, pos, &isnull);
	return !isnull;
}

/* Render t for row into out; false when a column is NULL (no key). */
static bool
render(Rule *r, const Template *t, const RowView *row, StringInfo out)
{
	int			i;

	for (i = 0; i < t->nparts; i++)
	{
		const TemplatePart *p = &t->parts[i];
		Datum		v;

		if (!p->is_column)
			appendBinaryStringInfo(out, p->text, p->len);
		else if (p->attnum == ID_ATTNUM || row->slot == NULL)
		{
			if (row->id == NULL || (p->attnum != ID_ATTNUM && p->attnum != r->id_attnum))
				return false;
			appendStringInfoString(out, row->id);
		}
		else if (!WatchGetCol(row, p->attnum, &v))
			return false;
		else
			WatchAppendValue(r, p->attnum, v, out);
	}
	return true;
}

static void
ensure_coarse(Rule *r)
{
	MemoryContext old;
	int			i;

	if (r->prefix && strcmp(r->prefix, bmf_key_prefix) == 0)
		return;
	old = MemoryContextSwitchTo(watch_rules_cxt);
	r->prefix = pstrdup(bmf_key_prefix);
	r->key_coarse = palloc(sizeof(char *) * Max(r->nkeys, 1));
	for (i = 0; i < r->nkeys; i++)
	{
		StringInfoData s;

		initStringInfo(&s);
		RedisPatternPrefixed(&s, r->keys[i]->coarse, strlen(r->keys[i]->coarse));
		r->key_coarse[i] = s.data;
	}
	r->tag_coarse = palloc(sizeof(char *) * Max(r->ntags, 1));
	for (i = 0; i < r->ntags; i++)
	{
		StringInfoData s;

		initStringInfo(&s);
		RedisPatternPrefixed(&s, "tag:", 4);
		appendStringInfoString(&s, r->tags[i]->coarse);
		r->tag_coarse[i] = s.data;
	}
	MemoryContextSwitchTo(old);
}

static void
ensure_seen(Rule *r)
{
	int			i;
	int			j;

	if (r->seen)
		return;
	r->key_has_id = MemoryContextAllocZero(watch_rules_cxt, sizeof(bool) * Max(r->nkeys, 1));
	for (i = 0; i < r->nkeys; i++)
		for (j = 0; j < r->keys[i]->nparts; j++)
			if (r->keys[i]->parts[j].is_column &&
				(r->keys[i]->parts[j].attnum == r->id_attnum ||
				 r->keys[i]->parts[j].attnum == ID_ATTNUM))
				r->key_has_id[i] = true;
	r->seen = MemoryContextAllocZero(watch_rules_cxt, sizeof(SeenCache) * Max(r->nkeys + r->ntags, 1));
	for (i = 0; i < r->nkeys + r->ntags; i++)
	{
		Template   *t = i < r->nkeys ? r->keys[i] : r->tags[i - r->nkeys];
		SeenCache  *c = &r->seen[i];

		c->constant = (t->ncolumns == 0);
		if (t->ncolumns == 1)
			for (j = 0; j < t->nparts; j++)
			{
				if (!t->parts[j].is_column)
					continue;
				if (i < r->nkeys && (t->parts[j].attnum == r->id_attnum ||
									 t->parts[j].attnum == ID_ATTNUM))
					c->id_only = true;	/* remembering it would only miss */
				else if (t->parts[j].attnum > 0 &&
						 r->cols[t->parts[j].attnum - 1].typbyval)
				{
					c->cacheable = true;
					c->attnum = t->parts[j].attnum;
				}
			}
	}
}

/*
 * Has template i already been queued for this row's value in this queue
 * generation?  If not, remember that it is about to be.
 */
static bool
seen_check(Rule *r, int i, const RowView *row)
{
	SeenCache  *c = &r->seen[i];
	uint64		gen = XactQueueGeneration();
	Datum		v;
	uint32		home;
	uint32		slot;
	int			probe;

	if (!c->constant && !c->cacheable)
		return false;
	if (c->generation != gen || gen == 0 || c->prefix != r->prefix)
	{
		memset(c->used, 0, sizeof(c->used));
		c->generation = gen;
		c->prefix = r->prefix;
	}
	if (c->constant)
	{
		if (c->used[0])
			return true;
		c->used[0] = true;
		return false;
	}
	if (row->slot == NULL || !WatchGetCol(row, c->attnum, &v))
		return false;
	home = murmurhash32((uint32) v ^ (uint32) ((uint64) v >> 32)) & (SEEN_SLOTS - 1);
	for (probe = 0; probe < SEEN_PROBES; probe++)
	{
		slot = (home + probe) & (SEEN_SLOTS - 1);
		if (!c->used[slot])
			break;
		if (c->values[slot] == v)
			return true;
	}
	if (probe == SEEN_PROBES)
		slot = home;
	c->used[slot] = true;
	c->values[slot] = v;
	return false;
}

/*
 * Invalidate what row stands for: its keys and tags, queued and/or sent
 * now.  Templates a row cannot render (a NULL column; an id-only row and
 * a template over other columns) are covered by their coarse pattern when
 * coarse_missing, else skipped.  id_queued: the other version of this
 * row, with the same id, was emitted just before, so keys over the id
 * alone are skipped (they are queued without de-duplication).
 */
void
WatchEmit(Rule *r, const RowView *row, bool coarse_missing, bool id_queued)
{
	static StringInfoData buf;
	static bool buf_ready = false;
	bool		send_now;
	bool		queue;
	Effect	   *effects = NULL;
	int			neffects = 0;
	int			i;

	if (!buf_ready)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&buf);
		MemoryContextSwitchTo(old);
		buf_ready = true;
	}
	XactDecide(NULL, &send_now, &queue);
	ensure_coarse(r);
	ensure_seen(r);
	if (send_now)
		effects = palloc(sizeof(Effect) * (r->nkeys + r->ntags + 1));

	for (i = 0; i < r->nkeys; i++)
	{
		/* the key over this row's id, queued for its other version */
		if (id_queued && r->seen[i].id_only)
			continue;
		/* the queue is sure to hold it already: skip render and hash */
		if (!send_now && !coarse_missing && seen_check(r, i, row))
			continue;
		resetStringInfo(&buf);
		RedisKeyPrefix(&buf);
		if (render(r, r->keys[i], row, &buf))
		{
			if (queue && r->key_has_id[i] && distinct_ids)
				XactQueueDistinctKey(buf.data, buf.len, r->key_coarse[i], strlen(r->key_coarse[i]));
			else if (queue)
				XactQueueKey(buf.data, buf.len, r->key_coarse[i], strlen(r->key_coarse[i]));
			if (send_now)
			{
				effects[neffects].kind = EFFECT_KEY;
				effects[neffects].target = pstrdup(buf.data);
				effects[neffects].target_len = buf.len;
				effects[neffects].arg = NULL;
				effects[neffects++].arg_len = 0;
			}
		}
		else if (coarse_missing)
			XactQueuePattern(r->key_coarse[i], strlen(r->key_coarse[i]));
	}
	for (i = 0; i < r->ntags; i++)
	{
		if (!send_now && !coarse_missing && seen_check(r, r->nkeys + i, row))
			continue;
		resetStringInfo(&buf);
		RedisTagKey(&buf, "", 0);
		if (render(r, r->tags[i], row, &buf))
		{
			if (queue)
				XactQueueTag(buf.data, buf.len);
			if (send_now)
			{
				effects[neffects].kind = EFFECT_TAG;
				effects[neffects].target = pstrdup(buf.data);
				effects[neffects].target_len = buf.len;
				effects[neffects].arg = NULL;
				effects[neffects++].arg_len = 0;
			}
		}
		else if (coarse_missing)
			XactQueueTagPattern(r->tag_coarse[i], strlen(r->tag_coarse[i]));
	}
	if (send_now && neffects > 0)
		InvalidateNow(RedisDefaultNode(), effects, neffects);
}

/* Every key and tag one rule could have made. */
static void
emit_all_rule(Rule *r)
{
	int			i;

	ensure_coarse(r);
	for (i = 0; i < r->nkeys; i++)
	{
		if (r->keys[i]->ncolumns == 0)
		{
			StringInfoData s;

			initStringInfo(&s);
			RedisKeyPrefixed(&s, r->keys[i]->parts[0].text, r->keys[i]->parts[0].len);
			XactQueueKey(s.data, s.len, NULL, 0);
		}
		else
			XactQueuePattern(r->key_coarse[i], strlen(r->key_coarse[i]));
	}
	for (i = 0; i < r->ntags; i++)
	{
		if (r->tags[i]->ncolumns == 0)
		{
			StringInfoData s;

			initStringInfo(&s);
			RedisTagKey(&s, r->tags[i]->source, strlen(r->tags[i]->source));
			XactQueueTag(s.data, s.len);
		}
		else
			XactQueueTagPattern(r->tag_coarse[i], strlen(r->tag_coarse[i]));
	}
}

/* Every key and tag the entity could have, and its cascades': for TRUNCATE. */
void
WatchEmitAll(Entity *e, List **visited)
{
	ListCell   *lc;
	int			i;

	foreach(lc, *visited)
		if (strcmp((char *) lfirst(lc), e->name) == 0)
			return;
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		*visited = lappend(*visited, pstrdup(e->name));
		MemoryContextSwitchTo(old);
	}
	for (i = 0; i < e->nrules; i++)
		emit_all_rule(e->rules[i]);
	for (i = 0; i < e->ncascades; i++)
		WatchEmitAll(WatchEntityGet(e->cascades[i].target, false), visited);
}

/* WatchEmit() for every rule of the entity */
void
WatchEmitEntity(Entity *e, const RowView *row, bool coarse_missing)
{
	int			i;

	for (i = 0; i < e->nrules; i++)
		WatchEmit(e->rules[i], row, coarse_missing, false);
}

bool
WatchColumnsDiffer(const AttrNumber *cols, int ncols, TupleTableSlot *a,
			   TupleTableSlot *b)
{
	int			i;

	for (i = 0; i < ncols; i++)
	{
		Form_pg_attribute att = TupleDescAttr(a->tts_tupleDescriptor, cols[i] - 1);
		bool		anull;
		bool		bnull;
		Datum		av = slot_getattr(a, cols[i], &anull);
		Datum		bv = slot_getattr(b, cols[i], &bnull);

		if (anull != bnull)
			return true;
		if (!anull && !datumIsEqual(av, bv, att->attbyval, att->attlen))
			return true;
	}
	return false;
}

/* ---- the trigger ---- */

/*
 * One changed row: old is NULL for an INSERT, new NULL for a DELETE.  An
 * UPDATE that leaves every watched column as it was does nothing; one
 * that changes a template column invalidates the old row's keys too.
 * update_unread: new is an UPDATE's new row whose old one was not read
 * (its keys, and the columns its event carries, were not set).
 */
static void
changed_row(Rule *r, TupleTableSlot *old, TupleTableSlot *new,
			bool update_unread)
{
	RowView		rv;

	rv.map = NULL;
	rv.id = NULL;
	if (old && new)
	{
		bool		id_changed;

		if (r->watch && !WatchColumnsDiffer(r->watch, r->nwatch, old, new))
			return;
		rv.slot = new;
		WatchEmit(r, &rv, false, false);
		WatchNotePendingId(r, &rv);
		id_changed = WatchColumnsDiffer(&r->id_attnum, 1, old, new);
		if (id_changed || WatchColumnsDiffer(r->tcols, r->ntcols, old, new))
		{
			/* the same id: its keys over the id alone are queued already */
			rv.slot = old;
			WatchEmit(r, &rv, false, !id_changed);
			WatchNotePendingId(r, &rv);
		}
	}
	else
	{
		rv.slot = old ? old : new;
		WatchEmit(r, &rv, false, false);
		WatchNotePendingId(r, &rv);
	}
	if (r->channel)
		WatchPublishChange(r, old, new, update_unread);
}

/*
 * Does an UPDATE statement trigger know every column the statement may
 * have changed?  PostgreSQL hands it the columns the statement sets,
 * generated columns that follow from them included (tg_updatedcols).  What
 * it cannot see: a BEFORE ROW trigger, which may change any column, and
 * the rows of partitions or inheritance children, which may have BEFORE
 * triggers of their own.  So only a plain table without either.
 */
static bool
updated_cols_known(const TriggerData *td, const Entity *e)
{
	Relation	rel = td->tg_relation;

	/* (a partition's or child's attnums need not be the table's) */
	return TRIGGER_FIRED_BY_UPDATE(td->tg_event) && td->tg_updatedcols != NULL &&
		RelationGetRelid(rel) == e->relid &&
		rel->rd_rel->relkind == RELKIND_RELATION && !rel->rd_rel->relhassubclass &&
		!(rel->trigdesc && rel->trigdesc->trig_update_before_row);
}

/* Did the statement set any of cols?  (updated_cols_known must hold) */
static bool
any_updated(const TriggerData *td, const AttrNumber *cols, int ncols)
{
	int			i;

	for (i = 0; i < ncols; i++)
		if (bms_is_member(cols[i] - FirstLowInvalidHeapAttributeNumber, td->tg_updatedcols))
			return true;
	return false;
}

/*
 * The statement-level path: walk the transition tables.  For an UPDATE,
 * PostgreSQL fills the old and new tables pairwise, in the same order; we
 * rely on that only after checking that the pair has the same id, and
 * treat a pair whose ids differ as a change of everything (both rows'
 * keys), which is always safe.  We read through read pointers of our own,
 * so other triggers reading the same tables are not disturbed.
 *
 * An UPDATE that sets none of the rule's watched columns changes nothing
 * that matters; one that sets neither the id nor a template column leaves
 * every row's keys as they were, and then, unless a column filter must
 * compare the versions or the statement set a column that events carry
 * (their "changed" list compares them), the old rows are not read at all:
 * each new row's keys are all there is to invalidate, and its event says
 * nothing it carries changed.
 *
 * Fired for a write aimed at a partition or an inheritance child, the
 * rows are in that table's layout; when it is not the table's (columns in
 * another order, dropped columns), each row is converted to it by column
 * name, since the rules were compiled against the table.
 */
/*
 * One transition table read through a read pointer of our own (other
 * triggers reading the same table are not disturbed), into a slot in the
 * table's layout: a partition's or child's rows converted to it (map)
 * when theirs differs.
 */
typedef struct TransitionReader
{
	Tuplestorestate *ts;		/* NULL: not read */
	TupleTableSlot *slot;		/* the row, in the table's layout */
	TupleTableSlot *in;			/* read into, when converting */
	TupleConversionMap *map;
} TransitionReader;

static void
reader_open(TransitionReader *rd, Tuplestorestate *ts, TupleDesc from,
			TupleDesc to, TupleConversionMap *map)
{
	rd->ts = ts;
	rd->map = map;
	rd->slot = rd->in = NULL;
	if (ts == NULL)
		return;
	rd->slot = MakeSingleTupleTableSlot(to, map ? &TTSOpsVirtual : &TTSOpsMinimalTuple);
	if (map)
		rd->in = MakeSingleTupleTableSlot(from, &TTSOpsMinimalTuple);
	tuplestore_select_read_pointer(ts, tuplestore_alloc_read_pointer(ts, 0));
	tuplestore_rescan(ts);
}

static bool
reader_next(TransitionReader *rd)
{
	if (rd->ts == NULL ||
		!tuplestore_gettupleslot(rd->ts, true, false, rd->map ? rd->in : rd->slot))
		return false;
	if (rd->map)
		execute_attr_map_slot(rd->map->attrMap, rd->in, rd->slot);
	return true;
}

/* the slots may own tuples read back from disk into the rows' context */
static void
reader_clear(TransitionReader *rd)
{
	if (rd->slot)
		ExecClearTuple(rd->slot);
	if (rd->in)
		ExecClearTuple(rd->in);
}

static void
reader_close(TransitionReader *rd)
{
	if (rd->ts)
		tuplestore_select_read_pointer(rd->ts, 0);
	if (rd->slot)
		ExecDropSingleTupleTableSlot(rd->slot);
	if (rd->in)
		ExecDropSingleTupleTableSlot(rd->in);
}

static void
scan_transition_tables(Rule *r, TriggerData *td)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	Tuplestorestate *olds = td->tg_oldtable;
	bool		update_unread = false;
	TransitionReader ro;
	TransitionReader rn;
	TupleConversionMap *map = NULL;
	MemoryContext rowcxt;
	MemoryContext old;
	uint64		n = 0;

	if (olds && td->tg_newtable && updated_cols_known(td, r->ent))
	{
		bool		keys_fixed;

		if (r->watch && !any_updated(td, r->watch, r->nwatch))
			return;				/* no watched column was set */
		keys_fixed = !any_updated(td, r->tcols, r->ntcols) &&
			!any_updated(td, &r->id_attnum, 1);
		/* the new rows' keys are the old rows', and so are their events' columns */
		if (keys_fixed && !r->watch &&
			!(r->channel && any_updated(td, r->event_cols, r->nevent_cols)))
		{
			olds = NULL;
			update_unread = true;
		}
	}
	if (RelationGetRelid(td->tg_relation) != r->ent->relid)
		map = convert_tuples_by_name(desc, r->ent->desc);	/* NULL: the same */
	reader_open(&ro, olds, desc, r->ent->desc, map);
	reader_open(&rn, td->tg_newtable, desc, r->ent->desc, map);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "bmfredis rows",
								   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(rowcxt);

	memset(r->summarized, 0, sizeof(r->summarized));	/* an error's leftovers */
	distinct_ids = (XactPendingKeys() == 0);
	for (;;)
	{
		bool		ho = reader_next(&ro);
		bool		hn = reader_next(&rn);

		if (!ho && !hn)
			break;
		if (ho && hn && WatchColumnsDiffer(&r->id_attnum, 1, ro.slot, rn.slot))
		{
			changed_row(r, ro.slot, NULL, false);
			changed_row(r, NULL, rn.slot, false);
		}
		else
			changed_row(r, ho ? ro.slot : NULL, hn ? rn.slot : NULL, update_unread);
		if ((++n & 1023) == 0)
		{
			reader_clear(&ro);
			reader_clear(&rn);
			MemoryContextReset(rowcxt);
			CHECK_FOR_INTERRUPTS();
		}
	}
	distinct_ids = false;
	WatchFlushSummaries(r, r->ent->desc);
	reader_clear(&ro);
	reader_clear(&rn);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(rowcxt);
	reader_close(&ro);
	reader_close(&rn);
	if (map)
		free_conversion_map(map);
}

/* The row of a TRUNCATE event: <channel>:truncated, no rows. */
static void
publish_truncated(Rule *r)
{
	StringInfoData channel;
	StringInfoData type;
	StringInfoData msg;

	initStringInfo(&channel);
	EventChannel(&channel, r->channel, strlen(r->channel));
	appendStringInfoString(&channel, ":truncated");
	initStringInfo(&type);
	appendStringInfo(&type, "%s:truncated", r->channel);
	initStringInfo(&msg);
	EventEnvelope(&msg, type.data, NULL, NULL, NULL,
				   GetCurrentStatementStartTimestamp());
	XactQueuePublish(channel.data, channel.len, msg.data, msg.len);
}

/*
 * A watch trigger whose entity is gone, or now names another table (the
 * rules tables were edited by hand): the change goes through, with one
 * WARNING per statement, never an ERROR.  A configuration change made
 * elsewhere must not break the application's writes.
 */
static void
warn_unwatched(TriggerData *td, Entity *e)
{
	static Oid	last_trigger = InvalidOid;
	static TimestampTz last_statement = 0;
	const char *table = RelationGetRelationName(td->tg_relation);

	if (last_trigger == td->tg_trigger->tgoid &&
		last_statement == GetCurrentStatementStartTimestamp())
		return;
	last_trigger = td->tg_trigger->tgoid;
	last_statement = GetCurrentStatementStartTimestamp();
	ereport(WARNING,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 e == NULL ?
			 errmsg("trigger %s on %s fires for entity \"%s\", which has no cache rule",
					td->tg_trigger->tgname, table, td->tg_trigger->tgargs[0]) :
			 errmsg("trigger %s on %s fires for entity \"%s\", whose table is now %s",
					td->tg_trigger->tgname, table, e->name, e->relname),
			 errdetail("This change invalidates nothing in Redis."),
			 errhint("Watch the table again with redis_watch(), or drop its triggers with redis_unwatch('%s').",
					 table)));
}

Datum
redis_cache_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	Entity	   *e;
	int			i;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("redis_cache_trigger() must be called as a trigger"),
				 errhint("Set up a table with redis_watch().")));
	td = (TriggerData *) fcinfo->context;
	if (!TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("redis_cache_trigger() must be fired AFTER the change"),
				 errhint("Set up a table with redis_watch().")));
	if (td->tg_trigger->tgnargs != 1)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("redis_cache_trigger() takes the entity name as its only argument")));

	distinct_ids = false;		/* whatever an error left */
	e = WatchEntityGet(td->tg_trigger->tgargs[0], true);
	if (e == NULL || !WatchCovers(e, RelationGetRelid(td->tg_relation)))
	{
		warn_unwatched(td, e);
		return PointerGetDatum(NULL);
	}
	XactNoteWatchedWrite();

	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		List	   *visited = NIL;

		WatchEmitAll(e, &visited);
		for (i = 0; i < e->nrules; i++)
			if (e->rules[i]->channel)
				publish_truncated(e->rules[i]);
		return PointerGetDatum(NULL);
	}
	if (TRIGGER_FIRED_FOR_STATEMENT(td->tg_event))
	{
		List	   *ids;
		List	   *visited = NIL;

		/* each rule reads the transition tables; most entities have one */
		if (td->tg_oldtable || td->tg_newtable)
			for (i = 0; i < e->nrules; i++)
				scan_transition_tables(e->rules[i], td);
		ids = WatchTakePendingIds(e->name);
		WatchCascadeFrom(e, ids, 1, &visited);
		return PointerGetDatum(NULL);
	}

	for (i = 0; i < e->nrules; i++)
	{
		Rule	   *r = e->rules[i];

		memset(r->summarized, 0, sizeof(r->summarized));
		if (TRIGGER_FIRED_BY_UPDATE(td->tg_event))
			changed_row(r, td->tg_trigslot, td->tg_newslot, false);
		else
			changed_row(r, TRIGGER_FIRED_BY_DELETE(td->tg_event) ? td->tg_trigslot : NULL,
						TRIGGER_FIRED_BY_INSERT(td->tg_event) ? td->tg_trigslot : NULL, false);
		WatchFlushSummaries(r, RelationGetDescr(td->tg_relation));
	}
	return PointerGetDatum(NULL);
}

/*
 * redis_invalidate_entity(entity, id, action, immediate): the rules by
 * hand, as the application's invalidateCache.product(id, 'update').  With
 * a table the row is read, so every template renders; if it is gone
 * (deleted), templates over other columns fall back to their patterns.
 */
Datum
redis_invalidate_entity(PG_FUNCTION_ARGS)
{
	char	   *entity;
	char	   *id;
	char	   *action;
	Entity	   *r;
	List	   *visited = NIL;
	List	   *ids;
	RowView		rv;
	bool		found = false;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("entity must not be null")));
	entity = text_to_cstring(PG_GETARG_TEXT_PP(0));
	action = PG_ARGISNULL(2) ? "update" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strcmp(action, "create") != 0 && strcmp(action, "update") != 0 &&
		strcmp(action, "delete") != 0 && strcmp(action, "truncate") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid action \"%s\"", action),
				 errhint("The actions are create, update, delete and truncate.")));
	r = WatchEntityGet(entity, false);
	if (strcmp(action, "truncate") == 0)
	{
		/* every row at once: whatever the templates can produce (the id is not used) */
		WatchEmitAll(r, &visited);
		PG_RETURN_VOID();
	}
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("id must not be null"),
				 errhint("Only action truncate, which invalidates every row, takes no id.")));
	id = text_to_cstring(PG_GETARG_TEXT_PP(1));

	rv.map = NULL;
	rv.id = id;
	rv.slot = NULL;
	if (OidIsValid(r->relid))
	{
		Oid			argtypes[1] = {TEXTOID};
		Datum		args[1];
		Relation	rel = relation_open(r->relid, AccessShareLock);
		Oid			idtype = TupleDescAttr(RelationGetDescr(rel), r->id_attnum - 1)->atttypid;
		char	   *sql;
		int			rc;

		relation_close(rel, NoLock);
		sql = psprintf("SELECT * FROM %s WHERE %s %s $1::%s", r->relname,
					   quote_identifier(r->id_column), BmfEqualityOperator(idtype),
					   format_type_be_qualified(idtype));
		args[0] = CStringGetTextDatum(id);
		SPI_connect();
		rc = SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not read the row of entity \"%s\": %s", entity, SPI_result_code_string(rc));
		if (SPI_processed > 0)
		{
			AttrNumber *map = palloc0(sizeof(AttrNumber) * r->natts);
			TupleTableSlot *slot;
			Relation	rel2 = relation_open(r->relid, AccessShareLock);
			int			a;
			uint64		row;

			for (a = 0; a < r->natts; a++)
				if (!TupleDescAttr(RelationGetDescr(rel2), a)->attisdropped)
					map[a] = WatchFindColumn(SPI_tuptable->tupdesc,
										 NameStr(TupleDescAttr(RelationGetDescr(rel2), a)->attname));
			relation_close(rel2, NoLock);
			slot = MakeSingleTupleTableSlot(SPI_tuptable->tupdesc, &TTSOpsHeapTuple);
			for (row = 0; row < SPI_processed; row++)
			{
				RowView		full;

				ExecStoreHeapTuple(SPI_tuptable->vals[row], slot, false);
				full.slot = slot;
				full.map = map;
				full.id = id;
				WatchEmitEntity(r, &full, false);
			}
			ExecDropSingleTupleTableSlot(slot);
			found = true;
		}
		SPI_finish();
	}
	if (!found)
		WatchEmitEntity(r, &rv, true);

	(void) WatchVisit(&visited, r->name, id);
	ids = list_make1(id);
	WatchCascadeFrom(r, ids, 1, &visited);
	PG_RETURN_VOID();
}
