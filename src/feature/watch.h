/*-------------------------------------------------------------------------
 *
 * watch.h
 *		What the files of the watch feature (rules.c, trigger.c,
 *		cascade.c, changes.c) share: the compiled rules and the row view.
 *		Not for other features.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_WATCH_H
#define BMFREDIS_WATCH_H

#include "postgres.h"

#include "access/attnum.h"
#include "access/tupdesc.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

#include "base/template.h"

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
	TupleDesc	desc;			/* the table's, as compiled (rows of its
								 * partitions and children are converted to it) */
	Oid		   *descendants;	/* partitions and children known (WatchCovers) */
	int			ndescendants;
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

/* rules.c: the rules cache (in watch_rules_cxt, rebuilt after a change) */
extern MemoryContext watch_rules_cxt;
extern Entity *WatchEntityGet(const char *name, bool missing_ok);
extern void WatchFlushRules(void);
extern AttrNumber WatchFindColumn(TupleDesc desc, const char *name);
extern bool WatchCovers(Entity *e, Oid relid);
extern void WatchPrepareColumn(Rule *r, TupleDesc desc, AttrNumber attnum);
extern void WatchAddAttnum(AttrNumber **list, int *n, AttrNumber a);

/* trigger.c: rendering a row into keys, tags and their queueing */
extern bool WatchGetCol(const RowView *row, AttrNumber attnum, Datum *value);
extern void WatchAppendValue(Rule *r, AttrNumber attnum, Datum value, StringInfo out);
extern bool WatchColumnsDiffer(const AttrNumber *cols, int ncols, TupleTableSlot *a, TupleTableSlot *b);
extern void WatchEmit(Rule *r, const RowView *row, bool coarse_missing, bool id_queued);
extern void WatchEmitAll(Entity *e, List **visited);
extern void WatchEmitEntity(Entity *e, const RowView *row, bool coarse_missing);

/* cascade.c: ids noted by row triggers, resolved per statement */
extern char *WatchRowId(Rule *r, const RowView *row);
extern void WatchNotePendingId(Rule *r, const RowView *row);
extern List *WatchTakePendingIds(const char *entity);
extern bool WatchVisit(List **visited, const char *entity, const char *id);
extern void WatchCascadeFrom(Entity *e, List *ids, int depth, List **visited);

/* changes.c: change events */
extern void WatchPublishChange(Rule *r, TupleTableSlot *old, TupleTableSlot *new, bool update_unread);
extern void WatchFlushSummaries(Rule *r, TupleDesc desc);

#endif							/* BMFREDIS_WATCH_H */
