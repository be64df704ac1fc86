/*-------------------------------------------------------------------------
 *
 * trigger.c
 *		Cache rules per entity, the generic change trigger
 *		redis_cache_trigger(), cascades, and redis_invalidate_entity().
 *
 * A rule (a row of bmfredis.cache_rules) says, for an entity such as
 * "product" stored in a table, which keys and tags to invalidate when a
 * row changes (templates over the row's columns), which columns matter,
 * and (bmfredis.cache_cascades) which other entities' rows follow: a shop
 * change invalidates its products through products.shop_id.
 *
 * Rules are compiled once per backend (templates parsed, columns resolved
 * to attribute numbers, output functions looked up) and kept until a
 * relcache invalidation touches the rules tables or a watched table.
 * Changing the rules tables fires redis_rules_changed(), which sends
 * exactly such an invalidation at commit, so every backend recompiles.
 *
 * The row trigger is cheap by design: it renders each template into a
 * reused buffer and hands the key to the transaction queue (xact.c),
 * which de-duplicates it; nothing is sent before COMMIT.  An UPDATE that
 * changes none of the watched columns queues nothing; one that changes a
 * template column queues the keys of both the old and the new row (a
 * product moving from shop 1 to shop 2 invalidates both shops' lists).
 * Cascades need SQL, so the row trigger only notes the ids, and the
 * statement-level trigger resolves them with one query per cascade.
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
#include "xact/xact.h"

PG_FUNCTION_INFO_V1(redis_cache_trigger);
PG_FUNCTION_INFO_V1(redis_rules_changed);
PG_FUNCTION_INFO_V1(redis_rule_check);
PG_FUNCTION_INFO_V1(redis_invalidate_entity);

#define RULE_NAME_LEN	128
#define ID_ATTNUM		(-1000)	/* template column that is the id argument */
#define MAX_CASCADE_DEPTH 8

typedef struct ColOut
{
	bool		ready;
	Oid			typid;
	int16		typlen;
	bool		typbyval;
	FmgrInfo	out;
} ColOut;

typedef struct Cascade
{
	char	   *target;
	char	   *via;
} Cascade;

struct Entity;

/*
 * One rule of an entity (a row of bmfredis.cache_rules): its templates,
 * columns and channel.  The table's facts (relid, id column, output
 * functions) are the entity's, shared by its rules.
 */
typedef struct Rule
{
	const char *entity;			/* the entity's name */
	const char *name;			/* the rule's */
	struct Entity *ent;
	Oid			relid;
	char	   *relname;		/* quoted, qualified */
	char	   *id_column;
	AttrNumber	id_attnum;
	Template  **keys;
	int			nkeys;
	Template  **tags;
	int			ntags;
	AttrNumber *watch;			/* NULL: every column */
	int			nwatch;
	AttrNumber *tcols;			/* columns the templates use */
	int			ntcols;
	char	   *channel;
	int			natts;
	ColOut	   *cols;			/* [natts] */
	/* full coarse patterns, for the prefix they were built under */
	char	   *prefix;
	char	  **key_coarse;
	char	  **tag_coarse;
	/* what this transaction already queued, per template (see seen_check) */
	struct SeenCache *seen;		/* [nkeys + ntags] */
	bool	   *key_has_id;		/* [nkeys]: renders a different key per row */
	/* columns an event carries: the id, the templates', the listed ones */
	AttrNumber *event_cols;
	int			nevent_cols;
	/* built once per channel prefix (see ensure_channels) */
	char	   *chan_prefix;
	char	   *chan[3];		/* <prefix><channel>:created|updated|deleted */
	char	   *etype[3];		/* <channel>:created|updated|deleted */
	char	   *ehead[3];		/* their envelope heads (EventEnvelopeHead) */
	char	  **event_col_json; /* "name": per event column */
	int64		summarized[3];	/* rows past the message limit, not yet counted */
} Rule;

/*
 * An entity (a row of bmfredis.entities): the table whose rows it is, and
 * every rule and cascade of it.  The hash entry of the rules cache.
 */
typedef struct Entity
{
	char		name[RULE_NAME_LEN];	/* hash key */
	Oid			relid;
	char	   *relname;		/* quoted, qualified */
	char	   *id_column;
	AttrNumber	id_attnum;
	int			natts;
	ColOut	   *cols;			/* [natts], shared by the rules */
	Rule	  **rules;
	int			nrules;
	Cascade    *cascades;
	int			ncascades;
} Entity;

/*
 * A small open-addressing memory of values a template was rendered for,
 * valid for one queue generation: a template over one by-value column
 * (shop:{shop_id}) sees the same few values again and again in a bulk
 * UPDATE, and need not render and hash them each time.  A value is looked
 * for in SEEN_PROBES slots from its hash; when they all hold others, it
 * replaces the first (a miss only costs the render and hash it saves).
 * Templates with no column are queued once per generation.  Anything else
 * is not cached.  (At 64 direct-mapped slots, the 100 shops of a bulk
 * UPDATE evicted each other on most rows.)
 */
#define SEEN_SLOTS 512
#define SEEN_PROBES 4
typedef struct SeenCache
{
	uint64		generation;
	bool		cacheable;
	bool		constant;
	bool		id_only;		/* a key over the id alone: new on every row */
	AttrNumber	attnum;
	bool		used[SEEN_SLOTS];
	Datum		values[SEEN_SLOTS];
	char	   *prefix;			/* the prefix the entries were queued under */
} SeenCache;

static HTAB *rules = NULL;		/* of Entity */
static MemoryContext rules_cxt = NULL;
static bool rules_stale = false;
static Oid	rules_relid = InvalidOid;
static Oid	cascades_relid = InvalidOid;
static Oid	entities_relid = InvalidOid;
static bool callback_registered = false;

/* ids noted by row triggers for cascades, per transaction */
typedef struct PendingId
{
	char	   *entity;
	char	   *id;
} PendingId;
static List *pending_ids = NIL;

/*
 * While a statement's transition tables are read into a key queue that was
 * empty when it began, a key rendered from a row's id is one no earlier
 * row queued (each row appears once), so it skips de-duplication: a bulk
 * UPDATE pays no hashing per row.  (An UPDATE that swaps two rows' ids
 * queues a key twice, which only costs an UNLINK argument.)
 */
static bool distinct_ids = false;
static LocalTransactionId pending_lxid = InvalidLocalTransactionId;

/* ---- the rules cache ---- */

/*
 * Invalidation only marks the cache stale: a relcache callback can run in
 * the middle of a compile or while a caller up the stack still uses a
 * Rule (any lock acquisition processes invalidations).  The next entity_get
 * retires the whole context under TopTransactionContext, so every Rule
 * handed out stays valid until the end of the transaction.
 */
static void
flush_rules(void)
{
	rules_stale = true;
}

static void
retire_stale_rules(void)
{
	if (!rules_stale)
		return;
	if (rules_cxt)
	{
		if (IsTransactionState())
			MemoryContextSetParent(rules_cxt, TopTransactionContext);
		else
			MemoryContextDelete(rules_cxt);
	}
	rules_cxt = NULL;
	rules = NULL;
	rules_stale = false;
}

static void
relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	Entity	   *e;

	(void) arg;
	if (rules == NULL || rules_stale)
		return;
	if (relid == InvalidOid || relid == rules_relid || relid == cascades_relid ||
		relid == entities_relid)
	{
		flush_rules();
		return;
	}
	hash_seq_init(&seq, rules);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->relid == relid)
		{
			hash_seq_term(&seq);
			flush_rules();
			return;
		}
	}
}

static void
ensure_cache(void)
{
	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	retire_stale_rules();
	if (rules_cxt == NULL)
		rules_cxt = AllocSetContextCreate(CacheMemoryContext, "bmfredis rules",
										  ALLOCSET_DEFAULT_SIZES);
	if (rules == NULL)
	{
		HASHCTL		ctl;
		Oid			nsp = get_namespace_oid("bmfredis", true);

		ctl.keysize = RULE_NAME_LEN;
		ctl.entrysize = sizeof(Entity);
		ctl.hcxt = rules_cxt;
		rules = hash_create("bmfredis rules", 16, &ctl,
							HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		/* looked up again with every new cache: the extension may be new */
		rules_relid = cascades_relid = entities_relid = InvalidOid;
		if (OidIsValid(nsp))
		{
			rules_relid = get_relname_relid("cache_rules", nsp);
			cascades_relid = get_relname_relid("cache_cascades", nsp);
			entities_relid = get_relname_relid("entities", nsp);
		}
	}
}

static AttrNumber
find_column(TupleDesc desc, const char *name)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
}

static void
add_attnum(AttrNumber **list, int *n, AttrNumber a)
{
	int			i;

	for (i = 0; i < *n; i++)
		if ((*list)[i] == a)
			return;
	*list = *list ? repalloc(*list, sizeof(AttrNumber) * (*n + 1)) : palloc(sizeof(AttrNumber));
	(*list)[(*n)++] = a;
}

/* Parse and resolve the templates of one array column of the rule. */
static Template **
compile_templates(Rule *r, Datum arr, bool isnull, TupleDesc desc,
				  const char *what, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	Template  **out;
	int			i;
	int			j;

	*n = 0;
	if (isnull)
		return NULL;
	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT,
					  &elems, &nulls, n);
	out = palloc(sizeof(Template *) * Max(*n, 1));
	for (i = 0; i < *n; i++)
	{
		char	   *src;
		char	   *error;
		Template   *t;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s templates of entity \"%s\" must not contain nulls", what, r->entity)));
		src = TextDatumGetCString(elems[i]);
		t = TemplateParse(src, &error);
		if (t == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s template \"%s\" for entity \"%s\": %s", what, src, r->entity, error),
					 errhint("Templates name columns in braces, as in \"product:{id}\".")));
		for (j = 0; j < t->nparts; j++)
		{
			TemplatePart *p = &t->parts[j];

			if (!p->is_column)
				continue;
			if (desc == NULL)
			{
				if (strcmp(p->text, r->id_column) != 0)
					ereport(ERROR,
							(errcode(ERRCODE_UNDEFINED_COLUMN),
							 errmsg("%s template \"%s\" of entity \"%s\" names column \"%s\", but the entity has no table",
									what, src, r->entity, p->text),
							 errhint("Without a table a template can only use the id column, {%s}.", r->id_column)));
				p->attnum = ID_ATTNUM;
				continue;
			}
			p->attnum = find_column(desc, p->text);
			if (p->attnum == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of relation %s does not exist", p->text, r->relname),
						 errdetail("The %s template \"%s\" of entity \"%s\" names it.", what, src, r->entity),
						 errhint("Templates name columns exactly as they are spelled in the table, as in \"product:{id}\".")));
			add_attnum(&r->tcols, &r->ntcols, p->attnum);
		}
		out[i] = t;
	}
	return out;
}

/* Look up how to print column attnum (its output function, fast paths). */
static void
prepare_column(Rule *r, TupleDesc desc, AttrNumber attnum)
{
	ColOut	   *c = &r->cols[attnum - 1];
	Oid			func;
	bool		varlena;

	if (c->ready)
		return;
	c->typid = TupleDescAttr(desc, attnum - 1)->atttypid;
	get_typlenbyval(c->typid, &c->typlen, &c->typbyval);
	getTypeOutputInfo(c->typid, &func, &varlena);
	fmgr_info_cxt(func, &c->out, rules_cxt);
	c->ready = true;
}

/*
 * Compile one rule of e from its row of the rules query (keys, tags,
 * columns, channel, name, at columns 3 to 7); reldesc is the table's
 * descriptor, NULL for an entity without a table.
 */
static Rule *
compile_rule(Entity *e, HeapTuple tup, TupleDesc desc, TupleDesc reldesc)
{
	MemoryContext old = MemoryContextSwitchTo(rules_cxt);
	Rule	   *r = palloc0(sizeof(Rule));
	bool		isnull;
	Datum		d;

	r->entity = e->name;
	r->name = TextDatumGetCString(SPI_getbinval(tup, desc, 7, &isnull));
	r->ent = e;
	r->relid = e->relid;
	r->relname = e->relname;
	r->id_column = e->id_column;
	r->id_attnum = e->id_attnum;
	r->natts = e->natts;
	r->cols = e->cols;

	r->keys = compile_templates(r, SPI_getbinval(tup, desc, 3, &isnull), isnull,
								reldesc, "key", &r->nkeys);
	d = SPI_getbinval(tup, desc, 4, &isnull);
	r->tags = compile_templates(r, d, isnull, reldesc, "tag", &r->ntags);

	d = SPI_getbinval(tup, desc, 5, &isnull);
	r->watch = NULL;
	r->nwatch = 0;
	if (!isnull && reldesc)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int			j;

		deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		for (j = 0; j < n; j++)
		{
			char	   *name = TextDatumGetCString(elems[j]);
			AttrNumber	a = find_column(reldesc, name);

			if (a == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of relation %s does not exist", name, r->relname),
						 errdetail("It is a watched column of rule \"%s\" of entity \"%s\".",
								   r->name, r->entity)));
			add_attnum(&r->watch, &r->nwatch, a);
		}
		/* the template columns always count: moving a row moves its keys */
		for (j = 0; j < r->ntcols; j++)
			add_attnum(&r->watch, &r->nwatch, r->tcols[j]);
	}
	d = SPI_getbinval(tup, desc, 6, &isnull);
	r->channel = isnull ? NULL : TextDatumGetCString(d);
	if (reldesc)
	{
		int			j;

		prepare_column(r, reldesc, r->id_attnum);
		for (j = 0; j < r->ntcols; j++)
			prepare_column(r, reldesc, r->tcols[j]);
		if (r->channel)
		{
			/* never a column the DBA did not name: no secrets broadcast */
			add_attnum(&r->event_cols, &r->nevent_cols, r->id_attnum);
			for (j = 0; j < r->ntcols; j++)
				add_attnum(&r->event_cols, &r->nevent_cols, r->tcols[j]);
			for (j = 0; j < r->nwatch; j++)
				add_attnum(&r->event_cols, &r->nevent_cols, r->watch[j]);
			for (j = 0; j < r->nevent_cols; j++)
				prepare_column(r, reldesc, r->event_cols[j]);
		}
	}
	MemoryContextSwitchTo(old);
	return r;
}

/*
 * Compile the entity named e->name: its table, its rules (in name order)
 * and its cascades.  false when there is no such entity.
 */
static bool
compile_entity(Entity *e)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	HeapTuple	tup;
	TupleDesc	desc;
	TupleDesc	reldesc = NULL;
	Relation	rel = NULL;
	bool		isnull;
	Datum		d;
	int			rc;
	uint64		i;

	args[0] = CStringGetTextDatum(e->name);
	SPI_connect();
	if (OidIsValid(entities_relid))
		rc = SPI_execute_with_args("SELECT e.relation::pg_catalog.oid, e.id_column::pg_catalog.text, "
								   "r.keys, r.tags, r.columns::pg_catalog.text[], r.channel, r.name "
								   "FROM bmfredis.entities e LEFT JOIN bmfredis.cache_rules r "
								   "ON r.entity OPERATOR(pg_catalog.=) e.entity "
								   "WHERE e.entity OPERATOR(pg_catalog.=) $1 "
								   "ORDER BY r.name USING OPERATOR(pg_catalog.<)",
								   1, argtypes, args, NULL, true, 0);
	else
	{
		/*
		 * The SQL objects of 1.0 (ALTER EXTENSION bmfredis UPDATE has not
		 * run yet): one rule per entity, in cache_rules.  Watched tables
		 * keep working until it does.
		 */
		rc = SPI_execute_with_args("SELECT relation::pg_catalog.oid, id_column::pg_catalog.text, "
								   "keys, tags, columns::pg_catalog.text[], channel, 'default'::pg_catalog.text "
								   "FROM bmfredis.cache_rules WHERE entity OPERATOR(pg_catalog.=) $1",
								   1, argtypes, args, NULL, true, 0);
	}
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read bmfredis.cache_rules: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
	{
		SPI_finish();
		return false;
	}

	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	{
		MemoryContext old = MemoryContextSwitchTo(rules_cxt);

		d = SPI_getbinval(tup, desc, 1, &isnull);
		e->relid = isnull ? InvalidOid : DatumGetObjectId(d);
		e->id_column = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
		if (OidIsValid(e->relid))
		{
			rel = try_relation_open(e->relid, AccessShareLock);
			if (rel == NULL)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_TABLE),
						 errmsg("the table of entity \"%s\" no longer exists", e->name),
						 errhint("Drop the entity with redis_unwatch() or DELETE FROM bmfredis.entities.")));
			reldesc = RelationGetDescr(rel);
			e->relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													RelationGetRelationName(rel));
			e->natts = reldesc->natts;
			e->cols = palloc0(sizeof(ColOut) * e->natts);
			e->id_attnum = find_column(reldesc, e->id_column);
			if (e->id_attnum == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of relation %s does not exist", e->id_column, e->relname),
						 errdetail("It is the id column of entity \"%s\".", e->name)));
		}
		else
			e->relname = pstrdup("(none)");
		e->rules = palloc(sizeof(Rule *) * SPI_processed);
		MemoryContextSwitchTo(old);
	}
	for (i = 0; i < SPI_processed; i++)
	{
		(void) SPI_getbinval(SPI_tuptable->vals[i], desc, 7, &isnull);
		if (isnull)
			continue;			/* an entity without rules (yet) */
		e->rules[e->nrules++] = compile_rule(e, SPI_tuptable->vals[i], desc, reldesc);
	}

	rc = SPI_execute_with_args("SELECT target, via_column::pg_catalog.text FROM bmfredis.cache_cascades "
							   "WHERE entity OPERATOR(pg_catalog.=) $1 "
							   "ORDER BY target USING OPERATOR(pg_catalog.<), via_column USING OPERATOR(pg_catalog.<)",
							   1, argtypes, args, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read bmfredis.cache_cascades: %s", SPI_result_code_string(rc));
	e->ncascades = (int) SPI_processed;
	e->cascades = MemoryContextAlloc(rules_cxt, sizeof(Cascade) * Max(e->ncascades, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		e->cascades[i].target = MemoryContextStrdup(rules_cxt,
													SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		e->cascades[i].via = MemoryContextStrdup(rules_cxt,
												 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
	}
	SPI_finish();
	if (rel)
		relation_close(rel, NoLock);
	return true;
}

/* Compile an entity into a new cache entry; NULL when there is none. */
static Entity *
compile_entry(const char *key)
{
	Entity	   *volatile e;
	bool		found;
	bool		exists = false;

	e = hash_search(rules, key, HASH_ENTER, &found);
	memset(((char *) e) + RULE_NAME_LEN, 0, sizeof(Entity) - RULE_NAME_LEN);
	PG_TRY();
	{
		exists = compile_entity(e);
	}
	PG_CATCH();
	{
		/* nothing was freed meanwhile (see flush_rules), so e is valid */
		hash_search(rules, key, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (!exists)
	{
		hash_search(rules, key, HASH_REMOVE, NULL);
		return NULL;
	}
	return e;
}

/*
 * The compiled entity, its rules and cascades; ERROR if it is invalid,
 * and if there is none, unless missing_ok (NULL then).
 */
static Entity *
entity_get(const char *name, bool missing_ok)
{
	Entity	   *e = NULL;
	bool		found;
	char		key[RULE_NAME_LEN];
	int			attempt;

	if (strlen(name) >= RULE_NAME_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("entity name \"%s\" is too long", name)));
	memset(key, 0, sizeof(key));
	strlcpy(key, name, sizeof(key));

	/*
	 * Compiling reads the rules tables, which may process an invalidation
	 * that makes the compile stale; try again a few times, then use it.
	 */
	for (attempt = 0; attempt < 3; attempt++)
	{
		ensure_cache();
		e = hash_search(rules, key, HASH_FIND, &found);
		if (found)
			return e;
		e = compile_entry(key);
		if (!rules_stale)
			break;
	}
	if (e == NULL && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("no cache rule for entity \"%s\"", name),
				 errhint("Create one with redis_watch(), or insert it into bmfredis.entities and bmfredis.cache_rules.")));
	return e;
}

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

static void
append_value(Rule *r, AttrNumber attnum, Datum value, StringInfo out)
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

/*
 * A row as seen by a template: a slot, with map[attnum - 1] giving the
 * position in the slot of the relation's column attnum (NULL: the same),
 * or only an id (slot NULL).
 */
typedef struct RowView
{
	TupleTableSlot *slot;
	const AttrNumber *map;
	const char *id;
} RowView;

static bool
get_col(const RowView *row, AttrNumber attnum, Datum *value)
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
		else if (!get_col(row, p->attnum, &v))
			return false;
		else
			append_value(r, p->attnum, v, out);
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
	old = MemoryContextSwitchTo(rules_cxt);
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
	r->key_has_id = MemoryContextAllocZero(rules_cxt, sizeof(bool) * Max(r->nkeys, 1));
	for (i = 0; i < r->nkeys; i++)
		for (j = 0; j < r->keys[i]->nparts; j++)
			if (r->keys[i]->parts[j].is_column &&
				(r->keys[i]->parts[j].attnum == r->id_attnum ||
				 r->keys[i]->parts[j].attnum == ID_ATTNUM))
				r->key_has_id[i] = true;
	r->seen = MemoryContextAllocZero(rules_cxt, sizeof(SeenCache) * Max(r->nkeys + r->ntags, 1));
	for (i = 0; i < r->nkeys + r->ntags; i++)
	{
		Template   *t = i < r->nkeys ? r->keys[i] : r->tags[i - r->nkeys];
		SeenCache  *c = &r->seen[i];
		int			j;

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
	if (row->slot == NULL || !get_col(row, c->attnum, &v))
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
static void
emit(Rule *r, const RowView *row, bool coarse_missing, bool id_queued)
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
		InvalidateNow(effects, neffects);
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
static void
emit_all(Entity *e, List **visited)
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
		emit_all(entity_get(e->cascades[i].target, false), visited);
}

/* emit() for every rule of the entity */
static void
emit_entity(Entity *e, const RowView *row, bool coarse_missing)
{
	int			i;

	for (i = 0; i < e->nrules; i++)
		emit(e->rules[i], row, coarse_missing, false);
}

static bool
columns_differ(const AttrNumber *cols, int ncols, TupleTableSlot *a,
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

/* ---- cascades ---- */

static char *
row_id(Rule *r, const RowView *row)
{
	Datum		v;
	StringInfoData s;

	if (row->slot == NULL)
		return row->id ? pstrdup(row->id) : NULL;
	if (!get_col(row, r->id_attnum, &v))
		return NULL;
	initStringInfo(&s);
	append_value(r, r->id_attnum, v, &s);
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
		prepare_column(&r, RelationGetDescr(rel), e->id_attnum);
		relation_close(rel, NoLock);
	}
	return row_id(&r, row);
}

static void
note_pending_id(Rule *r, const RowView *row)
{
	MemoryContext old;
	PendingId  *p;
	char	   *id;

	if (r->ent->ncascades == 0)
		return;
	if (pending_lxid != MyProc->lxid)
	{
		pending_ids = NIL;		/* the list of an earlier transaction is gone */
		pending_lxid = MyProc->lxid;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	id = row_id(r, row);
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
static bool
visit(List **visited, const char *entity, const char *id)
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

static void cascade_from(Entity *e, List *ids, int depth, List **visited);

/*
 * Rows of target whose column via holds one of ids: invalidate them, and
 * follow their own cascades.
 */
static void
cascade_one(Entity *source, const Cascade *c, List *ids, int depth,
			List **visited)
{
	Entity	   *t = entity_get(c->target, false);
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

	if (!OidIsValid(t->relid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("entity \"%s\" cascades to \"%s\", which has no table", source->name, t->name)));
	rel = relation_open(t->relid, AccessShareLock);
	via = find_column(RelationGetDescr(rel), c->via);
	if (via == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation %s does not exist", c->via, t->relname),
				 errdetail("Entity \"%s\" cascades to \"%s\" through it.", source->name, t->name)));
	viatype = TupleDescAttr(RelationGetDescr(rel), via - 1)->atttypid;
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

	SPI_connect();
	rc = SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0);
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
				map[a] = find_column(SPI_tuptable->tupdesc, NameStr(TupleDescAttr(tdesc, a)->attname));
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
		if (id && !visit(visited, t->name, id))
			continue;
		emit_entity(t, &rv, false);
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
		cascade_from(t, next_ids, depth + 1, visited);
}

static void
cascade_from(Entity *e, List *ids, int depth, List **visited)
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
static List *
take_pending_ids(const char *entity)
{
	List	   *mine = NIL;
	List	   *rest = NIL;
	ListCell   *lc;
	MemoryContext old;

	if (pending_lxid != MyProc->lxid)
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
			append_value(r, attnum, value, out);
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
			append_value(r, attnum, value, &s);
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
	old = MemoryContextSwitchTo(rules_cxt);
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
static void
publish_change(Rule *r, TupleTableSlot *old, TupleTableSlot *new,
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
		if (get_col(&rv, a, &v))
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

			if (!columns_differ(&a, 1, old, new))
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
	EventEnvelopeFrom(&msg, r->ehead[op], row_id(r, &rv), data.data,
					   op == 1 ? changed.data : NULL, tail.data);
	XactQueuePublish(r->chan[op], strlen(r->chan[op]), msg.data, msg.len);
}

/*
 * The rows publish_change only counted, added to the transaction's
 * summaries (one per channel and operation): once per statement rather
 * than once per row.
 */
static void
flush_summaries(Rule *r, TupleDesc desc)
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

		if (r->watch && !columns_differ(r->watch, r->nwatch, old, new))
			return;
		rv.slot = new;
		emit(r, &rv, false, false);
		note_pending_id(r, &rv);
		id_changed = columns_differ(&r->id_attnum, 1, old, new);
		if (id_changed || columns_differ(r->tcols, r->ntcols, old, new))
		{
			/* the same id: its keys over the id alone are queued already */
			rv.slot = old;
			emit(r, &rv, false, !id_changed);
			note_pending_id(r, &rv);
		}
	}
	else
	{
		rv.slot = old ? old : new;
		emit(r, &rv, false, false);
		note_pending_id(r, &rv);
	}
	if (r->channel)
		publish_change(r, old, new, update_unread);
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
updated_cols_known(const TriggerData *td)
{
	Relation	rel = td->tg_relation;

	return TRIGGER_FIRED_BY_UPDATE(td->tg_event) && td->tg_updatedcols != NULL &&
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
 */
static void
scan_transition_tables(Rule *r, TriggerData *td)
{
	TupleDesc	desc = RelationGetDescr(td->tg_relation);
	Tuplestorestate *olds = td->tg_oldtable;
	Tuplestorestate *news = td->tg_newtable;
	bool		update_unread = false;
	TupleTableSlot *os;
	TupleTableSlot *ns;
	MemoryContext rowcxt;
	MemoryContext old;
	uint64		n = 0;

	if (olds && news && updated_cols_known(td))
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
	os = olds ? MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple) : NULL;
	ns = news ? MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple) : NULL;
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "bmfredis rows",
								   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(rowcxt);

	memset(r->summarized, 0, sizeof(r->summarized));	/* an error's leftovers */
	distinct_ids = (XactPendingKeys() == 0);

	if (olds)
	{
		tuplestore_select_read_pointer(olds, tuplestore_alloc_read_pointer(olds, 0));
		tuplestore_rescan(olds);
	}
	if (news)
	{
		tuplestore_select_read_pointer(news, tuplestore_alloc_read_pointer(news, 0));
		tuplestore_rescan(news);
	}
	for (;;)
	{
		bool		ho = olds && tuplestore_gettupleslot(olds, true, false, os);
		bool		hn = news && tuplestore_gettupleslot(news, true, false, ns);

		if (!ho && !hn)
			break;
		if (ho && hn && columns_differ(&r->id_attnum, 1, os, ns))
		{
			changed_row(r, os, NULL, false);
			changed_row(r, NULL, ns, false);
		}
		else
			changed_row(r, ho ? os : NULL, hn ? ns : NULL, update_unread);
		if ((++n & 1023) == 0)
		{
			/* the slots may own tuples read back from disk into rowcxt */
			if (os)
				ExecClearTuple(os);
			if (ns)
				ExecClearTuple(ns);
			MemoryContextReset(rowcxt);
			CHECK_FOR_INTERRUPTS();
		}
	}
	distinct_ids = false;
	flush_summaries(r, desc);
	if (olds)
		tuplestore_select_read_pointer(olds, 0);
	if (news)
		tuplestore_select_read_pointer(news, 0);
	if (os)
		ExecClearTuple(os);
	if (ns)
		ExecClearTuple(ns);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(rowcxt);
	if (os)
		ExecDropSingleTupleTableSlot(os);
	if (ns)
		ExecDropSingleTupleTableSlot(ns);
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
	e = entity_get(td->tg_trigger->tgargs[0], true);
	if (e == NULL || e->relid != RelationGetRelid(td->tg_relation))
	{
		warn_unwatched(td, e);
		return PointerGetDatum(NULL);
	}
	XactNoteWatchedWrite();

	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		List	   *visited = NIL;

		emit_all(e, &visited);
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
		ids = take_pending_ids(e->name);
		cascade_from(e, ids, 1, &visited);
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
		flush_summaries(r, RelationGetDescr(td->tg_relation));
	}
	return PointerGetDatum(NULL);
}

/* Trigger on the rules tables: every backend recompiles at commit. */
Datum
redis_rules_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("redis_rules_changed() must be called as a trigger")));
	td = (TriggerData *) fcinfo->context;
	CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));
	return PointerGetDatum(NULL);
}

/*
 * redis_rule_check(entity) -> text[]: compiles the rule (raising what is
 * wrong with it) and returns the columns an UPDATE must touch to matter,
 * or NULL when every column does.
 */
Datum
redis_rule_check(PG_FUNCTION_ARGS)
{
	Entity	   *e;
	Datum	   *names;
	AttrNumber *watch = NULL;
	int			nwatch = 0;
	int			i;
	int			j;
	Relation	rel;

	flush_rules();				/* always compile from the tables as they are now */
	e = entity_get(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	for (i = 0; i < e->ncascades; i++)
		(void) entity_get(e->cascades[i].target, false);
	/* an UPDATE matters when it sets a column any rule watches */
	for (i = 0; i < e->nrules; i++)
	{
		if (e->rules[i]->watch == NULL)
			PG_RETURN_NULL();
		for (j = 0; j < e->rules[i]->nwatch; j++)
			add_attnum(&watch, &nwatch, e->rules[i]->watch[j]);
	}
	if (nwatch == 0)
		PG_RETURN_NULL();
	rel = relation_open(e->relid, AccessShareLock);
	names = palloc(sizeof(Datum) * nwatch);
	for (i = 0; i < nwatch; i++)
		names[i] = CStringGetTextDatum(NameStr(TupleDescAttr(RelationGetDescr(rel), watch[i] - 1)->attname));
	relation_close(rel, NoLock);
	PG_RETURN_ARRAYTYPE_P(construct_array(names, nwatch, TEXTOID, -1, false, TYPALIGN_INT));
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

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("entity and id must not be null")));
	entity = text_to_cstring(PG_GETARG_TEXT_PP(0));
	id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	action = PG_ARGISNULL(2) ? "update" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	if (strcmp(action, "create") != 0 && strcmp(action, "update") != 0 &&
		strcmp(action, "delete") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid action \"%s\"", action),
				 errhint("The actions are create, update and delete.")));
	r = entity_get(entity, false);

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
					map[a] = find_column(SPI_tuptable->tupdesc,
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
				emit_entity(r, &full, false);
			}
			ExecDropSingleTupleTableSlot(slot);
			found = true;
		}
		SPI_finish();
	}
	if (!found)
		emit_entity(r, &rv, true);

	(void) visit(&visited, r->name, id);
	ids = list_make1(id);
	cascade_from(r, ids, 1, &visited);
	PG_RETURN_VOID();
}
