/*-------------------------------------------------------------------------
 *
 * cascade.c
 *		Cascades: a shop change invalidates its products through
 *		products.shop_id.  Row triggers note the changed ids; the
 *		statement-level trigger resolves them, one query per cascade, up
 *		to a depth, never visiting a row twice.
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
#include "utils/guc.h"
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

/* ids noted by row triggers for cascades, per transaction */
typedef struct PendingId
{
	char	   *entity;
	char	   *id;
} PendingId;
static List *pending_ids = NIL;

static LocalTransactionId pending_lxid = InvalidLocalTransactionId;

/* ---- cascades ---- */

char *
WatchRowId(Rule *r, const RowView *row)
{
	Datum		v;
	StringInfoData s;

	if (row->slot == NULL)
		return row->id ? pstrdup(row->id) : NULL;
	if (!WatchGetCol(row, r->id_attnum, &v))
		return NULL;
	initStringInfo(&s);
	WatchAppendValue(r, r->id_attnum, v, &s);
	return s.data;
}

/*
 * The same for an entity, which may have no rule: through a stand-in
 * rule that knows only the table (append_value needs no more).
 */
static char *
entity_row_id(Entity *e, const RowView *row)
{
	Rule		r;

	if (row->slot == NULL)
		return row->id ? pstrdup(row->id) : NULL;
	memset(&r, 0, sizeof(r));
	r.id_attnum = e->id_attnum;
	r.cols = e->cols;
	if (!e->cols[e->id_attnum - 1].ready)
	{
		Relation	rel = relation_open(e->relid, AccessShareLock);

		r.natts = e->natts;
		WatchPrepareColumn(&r, RelationGetDescr(rel), e->id_attnum);
		relation_close(rel, NoLock);
	}
	return WatchRowId(&r, row);
}

void
WatchNotePendingId(Rule *r, const RowView *row)
{
	MemoryContext old;
	PendingId  *p;
	char	   *id;

	if (r->ent->ncascades == 0)
		return;
	if (pending_lxid != BmfMyLocalTransactionId())
	{
		pending_ids = NIL;		/* the list of an earlier transaction is gone */
		pending_lxid = BmfMyLocalTransactionId();
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	id = WatchRowId(r, row);
	if (id)
	{
		p = palloc(sizeof(PendingId));
		p->entity = pstrdup(r->entity);
		p->id = id;
		pending_ids = lappend(pending_ids, p);
	}
	MemoryContextSwitchTo(old);
}

/*
 * Has (entity, id) been invalidated already in this cascade?  The list
 * lives in TopTransactionContext: it is extended inside SPI calls whose
 * memory is gone when they finish.
 */
bool
WatchVisit(List **visited, const char *entity, const char *id)
{
	ListCell   *lc;
	MemoryContext old;
	char	   *k;

	old = MemoryContextSwitchTo(TopTransactionContext);
	k = psprintf("%s\x1f%s", entity, id);
	foreach(lc, *visited)
	{
		if (strcmp((char *) lfirst(lc), k) == 0)
		{
			MemoryContextSwitchTo(old);
			return false;
		}
	}
	*visited = lappend(*visited, k);
	MemoryContextSwitchTo(old);
	return true;
}


/*
 * Rows of target whose column via holds one of ids: invalidate them, and
 * follow their own cascades.
 */
static void
cascade_one(Entity *source, const Cascade *c, List *ids, int depth,
			List **visited)
{
	Entity	   *t = WatchEntityGet(c->target, false);
	Relation	rel;
	AttrNumber	via;
	Oid			viatype;
	char	   *sql;
	Datum	   *elems;
	ArrayType  *arr;
	Oid			argtypes[1] = {TEXTARRAYOID};
	Datum		args[1];
	ListCell   *lc;
	int			i = 0;
	int			rc;
	uint64		row;
	AttrNumber *map;
	List	   *next_ids = NIL;
	TupleTableSlot *slot;
	Oid			owner;
	Oid			save_userid;
	int			save_sec;
	int			save_nestlevel;

	if (!OidIsValid(t->relid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("entity \"%s\" cascades to \"%s\", which has no table", source->name, t->name)));
	rel = relation_open(t->relid, AccessShareLock);
	via = WatchFindColumn(RelationGetDescr(rel), c->via);
	if (via == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation %s does not exist", c->via, t->relname),
				 errdetail("Entity \"%s\" cascades to \"%s\" through it.", source->name, t->name)));
	viatype = TupleDescAttr(RelationGetDescr(rel), via - 1)->atttypid;
	owner = rel->rd_rel->relowner;
	relation_close(rel, NoLock);

	/* under the caller's search_path: nothing may resolve through it */
	sql = psprintf("SELECT * FROM %s WHERE %s %s ANY ($1::%s[])", t->relname,
				   quote_identifier(c->via), BmfEqualityOperator(viatype),
				   format_type_be_qualified(viatype));
	elems = palloc(sizeof(Datum) * list_length(ids));
	foreach(lc, ids)
		elems[i++] = CStringGetTextDatum((char *) lfirst(lc));
	arr = construct_array(elems, i, TEXTOID, -1, false, TYPALIGN_INT);
	args[0] = PointerGetDatum(arr);

	/*
	 * As the target table's owner, as PostgreSQL's foreign-key triggers
	 * query the referenced table: a role that may write the source table
	 * need not be able to read the target for the cascade to happen.
	 */
	SPI_connect();
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_NOFORCE_RLS | SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel(); /* an operator of the owner's SETs nothing for the writer */
	rc = SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0);
	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "cascade query failed: %s", SPI_result_code_string(rc));
	/* map the relation's columns to the result's */
	map = palloc0(sizeof(AttrNumber) * t->natts);
	{
		Relation	trel = relation_open(t->relid, AccessShareLock);
		TupleDesc	tdesc = RelationGetDescr(trel);
		int			a;

		for (a = 0; a < t->natts && a < tdesc->natts; a++)
			if (!TupleDescAttr(tdesc, a)->attisdropped)
				map[a] = WatchFindColumn(SPI_tuptable->tupdesc, NameStr(TupleDescAttr(tdesc, a)->attname));
		relation_close(trel, NoLock);
	}
	slot = MakeSingleTupleTableSlot(SPI_tuptable->tupdesc, &TTSOpsHeapTuple);
	for (row = 0; row < SPI_processed; row++)
	{
		RowView		rv;
		char	   *id;

		ExecStoreHeapTuple(SPI_tuptable->vals[row], slot, false);
		rv.slot = slot;
		rv.map = map;
		rv.id = NULL;
		id = entity_row_id(t, &rv);
		if (id && !WatchVisit(visited, t->name, id))
			continue;
		WatchEmitEntity(t, &rv, false);
		if (id && t->ncascades > 0)
		{
			MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

			next_ids = lappend(next_ids, pstrdup(id));
			MemoryContextSwitchTo(old);
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	SPI_finish();
	if (next_ids != NIL)
		WatchCascadeFrom(t, next_ids, depth + 1, visited);
}

void
WatchCascadeFrom(Entity *e, List *ids, int depth, List **visited)
{
	int			i;

	if (ids == NIL || e->ncascades == 0)
		return;
	if (depth > MAX_CASCADE_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cache cascades from entity \"%s\" are nested more than %d deep", e->name,
						MAX_CASCADE_DEPTH)));
	for (i = 0; i < e->ncascades; i++)
		cascade_one(e, &e->cascades[i], ids, depth, visited);
}

/* The ids row triggers noted for entity, taken off the list. */
List *
WatchTakePendingIds(const char *entity)
{
	List	   *mine = NIL;
	List	   *rest = NIL;
	ListCell   *lc;
	MemoryContext old;

	if (pending_lxid != BmfMyLocalTransactionId())
		return NIL;
	old = MemoryContextSwitchTo(TopTransactionContext);
	foreach(lc, pending_ids)
	{
		PendingId  *p = lfirst(lc);

		if (strcmp(p->entity, entity) == 0)
			mine = lappend(mine, p->id);
		else
			rest = lappend(rest, p);
	}
	pending_ids = rest;
	MemoryContextSwitchTo(old);
	return mine;
}
