/*-------------------------------------------------------------------------
 *
 * rules.c
 *		Cache rules per entity, compiled once per backend: templates
 *		parsed, columns resolved to attribute numbers, output functions
 *		looked up; redis_rules_changed() and redis_rule_check().
 *
 * A rule (a row of bmfredis.cache_rules) says, for an entity such as
 * "product" stored in a table, which keys and tags to invalidate when a
 * row changes (templates over the row's columns), which columns matter,
 * and (bmfredis.cache_cascades) which other entities' rows follow.
 * Compiled rules are kept until a relcache invalidation touches the rules
 * tables or a watched table.  Changing the rules tables fires
 * redis_rules_changed(), which sends exactly such an invalidation at
 * commit, so every backend recompiles.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/sysattr.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "catalog/namespace.h"
#include "catalog/pg_inherits.h"
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

PG_FUNCTION_INFO_V1(redis_rules_changed);
PG_FUNCTION_INFO_V1(redis_rule_check);

static HTAB *rules = NULL;		/* of Entity */
MemoryContext watch_rules_cxt = NULL;
static bool rules_stale = false;
static Oid	rules_relid = InvalidOid;
static Oid	cascades_relid = InvalidOid;
static Oid	entities_relid = InvalidOid;
static bool callback_registered = false;


/* ---- the rules cache ---- */

/*
 * Invalidation only marks the cache stale: a relcache callback can run in
 * the middle of a compile or while a caller up the stack still uses a
 * Rule (any lock acquisition processes invalidations).  The next entity_get
 * retires the whole context under TopTransactionContext, so every Rule
 * handed out stays valid until the end of the transaction.
 */
void
WatchFlushRules(void)
{
	rules_stale = true;
}

static void
retire_stale_rules(void)
{
	if (!rules_stale)
		return;
	if (watch_rules_cxt)
	{
		if (IsTransactionState())
			MemoryContextSetParent(watch_rules_cxt, TopTransactionContext);
		else
			MemoryContextDelete(watch_rules_cxt);
	}
	watch_rules_cxt = NULL;
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
		WatchFlushRules();
		return;
	}
	hash_seq_init(&seq, rules);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->relid == relid)
		{
			hash_seq_term(&seq);
			WatchFlushRules();
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
	if (watch_rules_cxt == NULL)
		watch_rules_cxt = AllocSetContextCreate(CacheMemoryContext, "bmfredis rules",
										  ALLOCSET_DEFAULT_SIZES);
	if (rules == NULL)
	{
		HASHCTL		ctl;
		Oid			nsp = get_namespace_oid("bmfredis", true);

		ctl.keysize = RULE_NAME_LEN;
		ctl.entrysize = sizeof(Entity);
		ctl.hcxt = watch_rules_cxt;
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

AttrNumber
WatchFindColumn(TupleDesc desc, const char *name)
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

void
WatchAddAttnum(AttrNumber **list, int *n, AttrNumber a)
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
			p->attnum = WatchFindColumn(desc, p->text);
			if (p->attnum == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of relation %s does not exist", p->text, r->relname),
						 errdetail("The %s template \"%s\" of entity \"%s\" names it.", what, src, r->entity),
						 errhint("Templates name columns exactly as they are spelled in the table, as in \"product:{id}\".")));
			WatchAddAttnum(&r->tcols, &r->ntcols, p->attnum);
		}
		out[i] = t;
	}
	return out;
}

/* Look up how to print column attnum (its output function, fast paths). */
void
WatchPrepareColumn(Rule *r, TupleDesc desc, AttrNumber attnum)
{
	ColOut	   *c = &r->cols[attnum - 1];
	Oid			func;
	bool		varlena;

	if (c->ready)
		return;
	c->typid = TupleDescAttr(desc, attnum - 1)->atttypid;
	get_typlenbyval(c->typid, &c->typlen, &c->typbyval);
	getTypeOutputInfo(c->typid, &func, &varlena);
	fmgr_info_cxt(func, &c->out, watch_rules_cxt);
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
	MemoryContext old = MemoryContextSwitchTo(watch_rules_cxt);
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
			char	   *name;
			AttrNumber	a;

			if (nulls[j])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("a watched column of rule \"%s\" of entity \"%s\" is NULL", r->name, r->entity),
						 errhint("Name the columns whose changes count: columns => ARRAY['price', 'title'].")));
			name = TextDatumGetCString(elems[j]);
			a = WatchFindColumn(reldesc, name);

			if (a == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_COLUMN),
						 errmsg("column \"%s\" of relation %s does not exist", name, r->relname),
						 errdetail("It is a watched column of rule \"%s\" of entity \"%s\".",
								   r->name, r->entity)));
			WatchAddAttnum(&r->watch, &r->nwatch, a);
		}
		/* the template columns always count: moving a row moves its keys */
		for (j = 0; j < r->ntcols; j++)
			WatchAddAttnum(&r->watch, &r->nwatch, r->tcols[j]);
	}
	d = SPI_getbinval(tup, desc, 6, &isnull);
	r->channel = isnull ? NULL : TextDatumGetCString(d);
	if (reldesc)
	{
		int			j;

		WatchPrepareColumn(r, reldesc, r->id_attnum);
		for (j = 0; j < r->ntcols; j++)
			WatchPrepareColumn(r, reldesc, r->tcols[j]);
		if (r->channel)
		{
			/* never a column the DBA did not name: no secrets broadcast */
			WatchAddAttnum(&r->event_cols, &r->nevent_cols, r->id_attnum);
			for (j = 0; j < r->ntcols; j++)
				WatchAddAttnum(&r->event_cols, &r->nevent_cols, r->tcols[j]);
			for (j = 0; j < r->nwatch; j++)
				WatchAddAttnum(&r->event_cols, &r->nevent_cols, r->watch[j]);
			for (j = 0; j < r->nevent_cols; j++)
				WatchPrepareColumn(r, reldesc, r->event_cols[j]);
		}
	}
	MemoryContextSwitchTo(old);
	return r;
}

/*
 * Compile the entity named e->name: its table, its rules (in name order)
 * and its cascades.  false when there is no such entity.
 */
/*
 * Read the rules tables as the bootstrap superuser, whoever writes the
 * watched table: they carry row-level security (admin writes only the
 * rows of tables it owns), which a session with row_security = off would
 * otherwise meet as an ERROR.  The queries are fixed and schema-qualified.
 */
static int
rules_query(const char *sql, Oid *argtypes, Datum *args)
{
	Oid			save_userid;
	int			save_sec;
	int			rc;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, save_sec | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	rc = SPI_execute_with_args(sql, 1, argtypes, args, NULL, true, 0);
	SetUserIdAndSecContext(save_userid, save_sec);
	return rc;
}

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
		rc = rules_query("SELECT e.relation::pg_catalog.oid, e.id_column::pg_catalog.text, "
						 "r.keys, r.tags, r.columns::pg_catalog.text[], r.channel, r.name "
						 "FROM bmfredis.entities e LEFT JOIN bmfredis.cache_rules r "
						 "ON r.entity OPERATOR(pg_catalog.=) e.entity "
						 "WHERE e.entity OPERATOR(pg_catalog.=) $1 "
						 "ORDER BY r.name USING OPERATOR(pg_catalog.<)",
						 argtypes, args);
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
		MemoryContext old = MemoryContextSwitchTo(watch_rules_cxt);

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
			e->desc = CreateTupleDescCopy(reldesc);
			e->relname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
													RelationGetRelationName(rel));
			e->natts = reldesc->natts;
			e->cols = palloc0(sizeof(ColOut) * e->natts);
			e->id_attnum = WatchFindColumn(reldesc, e->id_column);
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

	rc = rules_query("SELECT target, via_column::pg_catalog.text FROM bmfredis.cache_cascades "
					 "WHERE entity OPERATOR(pg_catalog.=) $1 "
					 "ORDER BY target USING OPERATOR(pg_catalog.<), via_column USING OPERATOR(pg_catalog.<)",
					 argtypes, args);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read bmfredis.cache_cascades: %s", SPI_result_code_string(rc));
	e->ncascades = (int) SPI_processed;
	e->cascades = MemoryContextAlloc(watch_rules_cxt, sizeof(Cascade) * Max(e->ncascades, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		e->cascades[i].target = MemoryContextStrdup(watch_rules_cxt,
													SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		e->cascades[i].via = MemoryContextStrdup(watch_rules_cxt,
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
 * Is relid the entity's table, or one of its partitions or inheritance
 * children (at any depth)?  Their triggers fire for writes aimed at them,
 * which the table's own statement triggers do not see.  What is known is
 * kept until the rules are compiled again (an ATTACH or DETACH
 * invalidates the table's relcache entry, which recompiles them).
 */
bool
WatchCovers(Entity *e, Oid relid)
{
	List	   *all;
	ListCell   *lc;
	int			i;

	if (relid == e->relid)
		return true;
	for (i = 0; i < e->ndescendants; i++)
		if (e->descendants[i] == relid)
			return true;
	if (!OidIsValid(e->relid))
		return false;
	all = find_all_inheritors(e->relid, NoLock, NULL);
	if (!list_member_oid(all, relid))
		return false;
	e->ndescendants = 0;
	if (e->descendants)
		pfree(e->descendants);
	e->descendants = MemoryContextAlloc(watch_rules_cxt, sizeof(Oid) * list_length(all));
	foreach(lc, all)
		if (lfirst_oid(lc) != e->relid)
			e->descendants[e->ndescendants++] = lfirst_oid(lc);
	list_free(all);
	return true;
}

/*
 * The compiled entity, its rules and cascades; ERROR if it is invalid,
 * and if there is none, unless missing_ok (NULL then).
 */
Entity *
WatchEntityGet(const char *name, bool missing_ok)
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

	WatchFlushRules();				/* always compile from the tables as they are now */
	e = WatchEntityGet(text_to_cstring(PG_GETARG_TEXT_PP(0)), false);
	for (i = 0; i < e->ncascades; i++)
		(void) WatchEntityGet(e->cascades[i].target, false);
	/* an UPDATE matters when it sets a column any rule watches */
	for (i = 0; i < e->nrules; i++)
	{
		if (e->rules[i]->watch == NULL)
			PG_RETURN_NULL();
		for (j = 0; j < e->rules[i]->nwatch; j++)
			WatchAddAttnum(&watch, &nwatch, e->rules[i]->watch[j]);
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
