/*-------------------------------------------------------------------------
 *
 * xact.c
 *		Invalidations and publishes that follow the transaction.
 *
 * Everything a transaction queues (by a function or a trigger) is held
 * here and sent after COMMIT, at XACT_EVENT_COMMIT, when the commit is
 * durable and visible: a reader that misses the cache from then on reads
 * the new row version, so it cannot re-fill the cache with the old one.
 * Nothing is sent for an aborted transaction, and ROLLBACK TO SAVEPOINT
 * (or a PL/pgSQL EXCEPTION block that catches an error) drops exactly what
 * was queued inside the subtransaction.  This is PostgreSQL's own NOTIFY
 * rule.
 *
 * Queue invariants:
 *	- Every item carries the SubTransactionId that was current when it was
 *	  first queued.  Subtransaction ids grow monotonically, and the items a
 *	  subtransaction X (with its children) queued were appended during X's
 *	  lifetime, so when X aborts they are exactly the suffix of items whose
 *	  id is >= X.  Aborting X truncates that suffix: O(items dropped).
 *	  A key queued again inside X, after being queued before X, keeps its
 *	  older id and survives X's abort.
 *	- Keys are de-duplicated through an open-addressing index over the
 *	  item array; strings live in one arena per set, rewound on truncation,
 *	  so a loop that queues and rolls back does not grow memory.  Keys the
 *	  caller vouches for (rendered from the row's id) skip the index: a
 *	  bulk UPDATE then pays no hashing and no cache miss per row.
 *	- Memory is bounded: past bmfredis.max_pending_keys keys the key set is
 *	  replaced by the coarse patterns that cover its keys (or the whole
 *	  namespace for keys without one), and later keys add only their
 *	  pattern.  That collapse is sticky for the rest of the transaction:
 *	  invalidating more than asked is always safe, less never.
 *
 * Streams.  A transaction that queues many keys (a bulk UPDATE of a
 * watched table) sends them to Redis while it runs, as UNLINKs inside
 * MULTI on a connection of their own (pool.c's streams): Redis parses and
 * queues them then, on its own core, and COMMIT sends only the last few
 * and EXEC, which runs them all at once.  Its change events go the same
 * way on a second such connection, whose EXEC comes after every other
 * invalidation, so events still follow what they announce.  Nothing runs
 * before EXEC, so the rule above holds: an aborted transaction closes
 * those connections and Redis drops each MULTI.  Only items already
 * committed to the top level stream (a subtransaction's items can still be
 * rolled back, and new subtransactions only ever drop items queued after
 * them), and a stream that fails, or would wait more than a few
 * milliseconds for Redis, is closed for the rest of the transaction: its
 * items are then sent at commit like any others.
 * bmfredis.stream_invalidations turns streams off.
 *
 * The send at commit runs with interrupts held, bounded by
 * bmfredis.flush_timeout, and never throws: a failure becomes a WARNING
 * and the effects that were not confirmed go to the retry queue
 * (retry.c).  PREPARE TRANSACTION with queued effects is refused, as
 * postgres_fdw refuses it: after PREPARE there is no commit event here.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lwlock.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "base/glob.h"
#include "base/guc.h"
#include "base/sqlutil.h"
#include "base/stats.h"
#include "base/wait.h"
#include "client/client.h"
#include "pool/pool.h"
#include "xact/effects.h"
#include "xact/event.h"
#include "xact/retry.h"
#include "xact/xact.h"

/* One queued string. */
typedef struct QItem
{
	uint32		off;			/* into the set's arena */
	uint32		len;
	uint32		hash;
	SubTransactionId subid;
	int32		coarse;			/* index into coarse set, -1: namespace */
	uint32		arg;			/* publish: message offset; expiry: index of ms */
	uint32		arg_len;		/* publish: message length */
	bool		indexed;		/* in the de-duplication index */
} QItem;

#define SLOT_EMPTY		0
#define SLOT_DELETED	PG_UINT32_MAX

/* A set (or, without the index, a list) of strings. */
typedef struct QSet
{
	bool		dedup;			/* keep the index; else an ordered list */
	QItem	   *items;
	int			n;
	int			cap;
	uint32	   *slots;			/* 0 empty, MAX deleted, else index + 1 */
	uint32		nslots;			/* power of two */
	uint32		used;			/* slots not empty (live or deleted) */
	int			unindexed;		/* items added as distinct, not in the index */
	char	   *arena;
	uint32		arena_used;
	uint32		arena_size;
} QSet;

#define COARSE_RECENT 4

static MemoryContext xact_cxt = NULL;
static bool callbacks_registered = false;
static uint64 queue_generation = 1;

static struct
{
	bool		active;			/* something was queued */
	QSet		keys;
	QSet		tags;
	QSet		patterns;
	QSet		tag_patterns;
	QSet		coarse;			/* interned coarse patterns */
	QSet		expiries;		/* list; arg = index into expiry_ms */
	int64	   *expiry_ms;
	int			nexpiry_ms;
	QSet		publishes;		/* list; arg = offset of message */
	List	   *summaries;		/* Summary, in xact_cxt */
	bool		collapsed;
	bool		namespace_pattern_added;
	bool		wrote_watched;
	/* coarse patterns interned last (see coarse_index) */
	const char *recent_coarse[COARSE_RECENT];
	int32		recent_coarse_idx[COARSE_RECENT];
	int64		queued_uncounted;	/* for STAT_INVALIDATIONS_QUEUED */
	/* the streams (see above), of keys and of publishes */
	struct Stream
	{
		bool		open;
		bool		off;		/* failed or not to be used: no more tries */
		bool		writing;	/* a write is under way (an error may cut it) */
		int			streamed;	/* items[0 .. streamed) of its set went in it */
		char		node[POOL_NAME_LEN];
		int			db;			/* the node's database when it opened */
	}			streams[2];
} q;

typedef enum StreamKind
{
	STREAM_KEYS,				/* q.keys as UNLINKs */
	STREAM_EVENTS				/* q.publishes (and summaries) as PUBLISH */
} StreamKind;

static const char *const stream_tags[2] = {"stream", "events"};

/*
 * Keys a key stream waits for before it opens, and between its writes, in
 * UNLINKs of bmfredis.unlink_batch; messages an event stream waits for.
 * A transaction of fewer never streams.  A write may wait this long for
 * Redis to take it, no longer.
 */
#define STREAM_BATCHES		4
#define STREAM_MESSAGES		256
#define STREAM_WAIT_MS		10

/* row events that did not fit, counted per (channel, operation) */
typedef struct Summary
{
	char	   *channel;
	char	   *entity;
	char	   *operation;
	int64		rows;
} Summary;

/* ---- the set ---- */

static void
qset_init(QSet *s, bool dedup)
{
	memset(s, 0, sizeof(QSet));
	s->dedup = dedup;
}

static uint32
arena_put(QSet *s, const char *str, size_t len)
{
	uint32		off;

	if (len > MaxAllocSize / 4)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("queued Redis key or message too long")));
	if (s->arena_used + len + 1 > s->arena_size)
	{
		size_t		newsize = Max((size_t) s->arena_size * 2, 8192);

		while (newsize < s->arena_used + len + 1)
			newsize *= 2;
		if (newsize > MaxAllocSize)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("too much queued for Redis in one transaction")));
		s->arena = s->arena ? repalloc(s->arena, newsize)
			: MemoryContextAlloc(xact_cxt, newsize);
		s->arena_size = newsize;
	}
	off = s->arena_used;
	memcpy(s->arena + off, str, len);
	s->arena[off + len] = '\0';
	s->arena_used += len + 1;
	return off;
}

static inline const char *
qstr(const QSet *s, const QItem *it)
{
	return s->arena + it->off;
}

static void
qset_reindex(QSet *s, uint32 nslots)
{
	int			i;

	s->slots = s->slots ? repalloc(s->slots, sizeof(uint32) * nslots)
		: MemoryContextAlloc(xact_cxt, sizeof(uint32) * nslots);
	memset(s->slots, 0, sizeof(uint32) * nslots);
	s->nslots = nslots;
	s->used = 0;
	for (i = 0; i < s->n; i++)
	{
		uint32		h = s->items[i].hash & (nslots - 1);

		if (!s->items[i].indexed)
			continue;
		while (s->slots[h] != SLOT_EMPTY)
			h = (h + 1) & (nslots - 1);
		s->slots[h] = i + 1;
		s->used++;
	}
}

/* Index of str in s, or -1.  *slot gets where it would go. */
static int
qset_find(const QSet *s, const char *str, uint32 len, uint32 hash,
		  uint32 *slot)
{
	uint32		h = hash & (s->nslots - 1);
	uint32		first_free = PG_UINT32_MAX;

	for (;;)
	{
		uint32		v = s->slots[h];

		if (v == SLOT_EMPTY)
		{
			*slot = (first_free != PG_UINT32_MAX) ? first_free : h;
			return -1;
		}
		if (v == SLOT_DELETED)
		{
			if (first_free == PG_UINT32_MAX)
				first_free = h;
		}
		else
		{
			const QItem *it = &s->items[v - 1];

			if (it->hash == hash && it->len == len &&
				memcmp(qstr(s, it), str, len) == 0)
				return v - 1;
		}
		h = (h + 1) & (s->nslots - 1);
	}
}

/*
 * Put the items added as distinct into the index, before anything is
 * looked up in it: a bulk statement skipped the hashing, and a later
 * statement of the same transaction that queues one of its keys again
 * must find it.
 */
static void
qset_index_distinct(QSet *s)
{
	uint32		nslots = Max(s->nslots, 64);
	int			i;

	for (i = 0; i < s->n; i++)
	{
		QItem	   *it = &s->items[i];

		if (it->indexed)
			continue;
		it->hash = hash_bytes((const unsigned char *) qstr(s, it), it->len);
		it->indexed = true;
	}
	s->unindexed = 0;
	while ((uint32) (s->n + 1) * 2 > nslots)
		nslots *= 2;
	qset_reindex(s, nslots);
}

/*
 * Add str; returns its item index, and *added whether it is new.  With
 * distinct, the caller vouches that str is new: no index lookup.
 */
static int
qset_add_ex(QSet *s, const char *str, size_t len, SubTransactionId subid,
			bool distinct, bool *added)
{
	uint32		hash = 0;
	uint32		slot = 0;
	QItem	   *it;
	bool		index = s->dedup && !distinct;

	*added = false;
	if (index && s->unindexed > 0)
		qset_index_distinct(s);
	if (index)
	{
		int			found;

		hash = hash_bytes((const unsigned char *) str, len);
		if (s->nslots == 0 || (s->used + 1) * 2 > s->nslots)
			qset_reindex(s, Max(s->nslots * 2, 64));
		found = qset_find(s, str, len, hash, &slot);
		if (found >= 0)
			return found;
	}
	if (s->n == s->cap)
	{
		s->cap = Max(s->cap * 2, 64);
		s->items = s->items ? repalloc_huge(s->items, sizeof(QItem) * s->cap)
			: MemoryContextAllocHuge(xact_cxt, sizeof(QItem) * s->cap);
	}
	it = &s->items[s->n];
	it->off = arena_put(s, str, len);
	it->len = len;
	it->hash = hash;
	it->subid = subid;
	it->coarse = -1;
	it->arg = 0;
	it->arg_len = 0;
	it->indexed = index;
	if (s->dedup && !index)
		s->unindexed++;
	if (index)
	{
		if (s->slots[slot] == SLOT_EMPTY)
			s->used++;
		s->slots[slot] = s->n + 1;
	}
	*added = true;
	return s->n++;
}

static int
qset_add(QSet *s, const char *str, size_t len, SubTransactionId subid,
		 bool *added)
{
	return qset_add_ex(s, str, len, subid, false, added);
}

/* Drop the suffix of items queued by subtransaction subid or its children. */
static void
qset_truncate(QSet *s, SubTransactionId subid)
{
	while (s->n > 0 && s->items[s->n - 1].subid >= subid)
	{
		QItem	   *it = &s->items[s->n - 1];

		if (!it->indexed && s->dedup)
			s->unindexed--;
		if (it->indexed)
		{
			uint32		slot = it->hash & (s->nslots - 1);

			while (s->slots[slot] != (uint32) s->n)
				slot = (slot + 1) & (s->nslots - 1);
			s->slots[slot] = SLOT_DELETED;
		}
		s->arena_used = it->off;
		s->n--;
	}
}

/* ---- queueing ---- */

static void
ensure_active(void)
{
	if (q.active)
		return;
	XactInit();
	PoolNoteDatabase();	/* a connection may first be made at commit */
	(void) RedisDefaultNode();	/* and bmfredis.server's endpoint is read from
								 * the catalogs, which commit cannot */
	if (xact_cxt == NULL)
		xact_cxt = AllocSetContextCreate(TopMemoryContext,
										 "bmfredis transaction queue",
										 ALLOCSET_DEFAULT_SIZES);
	qset_init(&q.keys, true);
	qset_init(&q.tags, true);
	qset_init(&q.patterns, true);
	qset_init(&q.tag_patterns, true);
	qset_init(&q.coarse, true);
	qset_init(&q.expiries, false);
	qset_init(&q.publishes, false);
	q.expiry_ms = NULL;
	q.nexpiry_ms = 0;
	q.summaries = NIL;
	q.collapsed = false;
	q.namespace_pattern_added = false;
	memset(q.recent_coarse, 0, sizeof(q.recent_coarse));
	memset(q.recent_coarse_idx, -1, sizeof(q.recent_coarse_idx));
	q.queued_uncounted = 0;
	memset(q.streams, 0, sizeof(q.streams));
	q.active = true;
}

/*
 * Interned index of a coarse pattern; the caller's string stays valid.
 * A bulk UPDATE passes the same few pattern strings (one per template)
 * over and over: a handful of recent ones are remembered by address.
 */
static int32
coarse_index(const char *coarse, size_t len)
{
	static int	next = 0;
	bool		added;
	int			i;
	int32		idx;

	/*
	 * Interned patterns are never dropped before the transaction ends; the
	 * memcmp against the interned copy guards against a caller's buffer
	 * reused for another pattern.
	 */
	for (i = 0; i < COARSE_RECENT; i++)
	{
		idx = q.recent_coarse_idx[i];
		if (q.recent_coarse[i] == coarse && idx >= 0 &&
			q.coarse.items[idx].len == len &&
			memcmp(coarse, qstr(&q.coarse, &q.coarse.items[idx]), len) == 0)
			return idx;
	}
	idx = qset_add(&q.coarse, coarse, len, TopSubTransactionId, &added);
	q.recent_coarse[next] = coarse;
	q.recent_coarse_idx[next] = idx;
	next = (next + 1) % COARSE_RECENT;
	return idx;
}

/* Queued-key counts go to the shared counters in batches, not per key. */
static void
count_queued(int64 n)
{
	q.queued_uncounted += n;
	if (q.queued_uncounted >= 1024)
	{
		BmfStatsCount(STAT_INVALIDATIONS_QUEUED, q.queued_uncounted);
		q.queued_uncounted = 0;
	}
}

static void
add_namespace_pattern(void)
{
	StringInfoData pat;
	bool		added;

	if (q.namespace_pattern_added)
		return;
	initStringInfo(&pat);
	RedisPatternPrefixed(&pat, "*", 1);
	/* sticky: survives any later ROLLBACK TO, as the keys it covers may */
	qset_add(&q.patterns, pat.data, pat.len, TopSubTransactionId, &added);
	pfree(pat.data);
	q.namespace_pattern_added = true;
}

static void
add_coarse(int32 coarse)
{
	bool		added;

	if (coarse < 0)
		add_namespace_pattern();
	else
		qset_add(&q.patterns, qstr(&q.coarse, &q.coarse.items[coarse]),
				 q.coarse.items[coarse].len, TopSubTransactionId, &added);
}

/*
 * Too many keys: invalidate what covers them instead, and free the keys.
 */
static void
collapse(void)
{
	int			i;

	/* keys queued by hand have no pattern but the namespace's */
	for (i = 0; i < q.keys.n; i++)
		if (q.keys.items[i].coarse < 0)
		{
			if (!BmfMayFlushNamespace())
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("more than %d Redis keys queued for invalidation in one transaction",
								bmf_max_pending_keys),
						 errdetail("Past bmfredis.max_pending_keys the whole namespace would be invalidated, "
								   "which role \"%s\" may not do (it may not execute redis_flush_namespace()).",
								   GetUserNameFromId(GetUserId(), false)),
						 errhint("Invalidate in smaller transactions or by tag.")));
			break;
		}
	for (i = 0; i < q.keys.n; i++)
		add_coarse(q.keys.items[i].coarse);
	q.keys.n = 0;
	q.keys.arena_used = 0;
	if (q.keys.slots)
		pfree(q.keys.slots);
	if (q.keys.arena)
		pfree(q.keys.arena);
	if (q.keys.items)
		pfree(q.keys.items);
	qset_init(&q.keys, true);
	q.streams[STREAM_KEYS].streamed = 0;	/* what streamed stays in its MULTI */
	q.collapsed = true;
	queue_generation++;
	BmfStatsCount(STAT_QUEUE_COLLAPSES, 1);
	ereport(NOTICE,
			(errmsg("more than %d Redis keys queued for invalidation; invalidating their key patterns instead",
					bmf_max_pending_keys),
			 errhint("Raise bmfredis.max_pending_keys to invalidate single keys in larger transactions.")));
}

static void add_summaries(Effect *effects, int *n);
static Effect *with_streams(Effect *effects, int *n);
static void add_effects_range(const QSet *s, char kind, int from, int to,
							  Effect *effects, int *n);

/* Forget a stream; what it carried is discarded with its connection. */
static void
stream_drop(StreamKind kind)
{
	struct Stream *st = &q.streams[kind];

	if (st->open || st->writing)
		EffectsStreamAbandon(st->node, stream_tags[kind]);
	st->open = false;
	st->writing = false;
	st->off = true;
	st->streamed = 0;
}

/*
 * The items of a stream's set from the last write on (keys: in whole
 * UNLINKs unless all), as effects; with summaries, the events' too.
 */
static Effect *
stream_items(StreamKind kind, bool all, bool summaries, int *n)
{
	struct Stream *st = &q.streams[kind];
	const QSet *set = kind == STREAM_KEYS ? &q.keys : &q.publishes;
	int			end = set->n;
	Effect	   *effects;

	if (kind == STREAM_KEYS && !all)
		end = st->streamed + (set->n - st->streamed) / bmf_unlink_batch * bmf_unlink_batch;
	effects = palloc(sizeof(Effect) * (Max(end - st->streamed, 0) +
									   (summaries ? list_length(q.summaries) : 0) + 1));
	*n = 0;
	add_effects_range(set, kind == STREAM_KEYS ? EFFECT_KEY : EFFECT_PUBLISH,
					  st->streamed, end, effects, n);
	if (summaries)
		add_summaries(effects, n);
	st->streamed = end;
	return kind == STREAM_KEYS ? effects : with_streams(effects, n);
}

/*
 * Write what was queued since the last write to a stream, opening it with
 * MULTI.  Only at the top level, with one plain node, and never waiting
 * long: on any failure the stream is dropped.
 */
static void
stream_write(StreamKind kind)
{
	struct Stream *st = &q.streams[kind];
	const RedisNode *node;
	Effect	   *effects;
	RedisError	err;
	int			n;
	bool		ok;

	if (!bmf_stream_invalidations || GetCurrentTransactionNestLevel() != 1 ||
		(kind == STREAM_KEYS && q.collapsed))
		return;
	node = RedisDefaultNode();
	if (node->cluster)
	{
		st->off = true;			/* the items span nodes: sent at commit */
		return;
	}
	if (!st->open)
	{
		if (RetryIsBacklogged())
			return;				/* Redis is catching up after an outage */
		strlcpy(st->node, node->ep.name, sizeof(st->node));
		st->db = node->db;
	}
	effects = stream_items(kind, false, false, &n);
	st->writing = true;
	ok = EffectsStreamWrite(node, stream_tags[kind], !st->open, effects, n,
							TimestampTzPlusMilliseconds(GetCurrentTimestamp(), STREAM_WAIT_MS),
							&err);
	st->writing = false;
	pfree(effects);
	if (ok)
		st->open = true;
	else
	{
		/* closed: Redis dropped the MULTI */
		st->open = false;
		stream_drop(kind);
		BmfStatsCount(STAT_STREAM_FAILURES, 1);
	}
}

/*
 * At commit: the rest of a stream's items (and, for events, the
 * summaries), then EXEC.  true when Redis ran every command the stream
 * carried (*counted: keys that existed, or messages' receivers); false
 * leaves the items to be sent as usual.
 */
static bool
stream_finish(StreamKind kind, TimestampTz deadline, int64 *counted)
{
	struct Stream *st = &q.streams[kind];
	const RedisNode *node = RedisDefaultNode();
	Effect	   *effects;
	RedisError	err;
	int			n;

	*counted = 0;
	if (strcmp(node->ep.name, st->node) != 0 || node->db != st->db)
	{
		stream_drop(kind);		/* the server changed under the transaction */
		return false;
	}
	effects = stream_items(kind, true, kind == STREAM_EVENTS, &n);
	st->open = false;
	if (!EffectsStreamFinish(node, stream_tags[kind], effects, n, deadline,
							 counted, &err))
	{
		ereport(DEBUG1,
				(errmsg_internal("bmfredis: stream not run: %s: %s", err.message, err.detail)));
		stream_drop(kind);
		BmfStatsCount(STAT_STREAM_FAILURES, 1);
		return false;
	}
	BmfStatsCount(STAT_STREAMS, 1);
	return true;
}

static void
queue_key(const char *key, size_t len, const char *coarse, size_t coarse_len,
		  bool distinct)
{
	MemoryContext old;
	int32		coarse_idx = -1;
	bool		added;
	int			i;

	ensure_active();
	old = MemoryContextSwitchTo(xact_cxt);
	if (coarse)
		coarse_idx = coarse_index(coarse, coarse_len);
	if (q.collapsed)
		add_coarse(coarse_idx);
	else
	{
		i = qset_add_ex(&q.keys, key, len, GetCurrentSubTransactionId(),
						distinct, &added);
		if (added)
		{
			q.keys.items[i].coarse = coarse_idx;
			count_queued(1);
		}
		if (q.keys.n > bmf_max_pending_keys)
			collapse();
		else if (q.keys.n - q.streams[STREAM_KEYS].streamed >=
				 STREAM_BATCHES * bmf_unlink_batch &&
				 !q.streams[STREAM_KEYS].off)
			stream_write(STREAM_KEYS);
	}
	MemoryContextSwitchTo(old);
}

void
XactQueueKey(const char *key, size_t len, const char *coarse,
			 size_t coarse_len)
{
	queue_key(key, len, coarse, coarse_len, false);
}

void
XactQueueDistinctKey(const char *key, size_t len, const char *coarse,
					 size_t coarse_len)
{
	queue_key(key, len, coarse, coarse_len, true);
}

static void
queue_plain(QSet *s, const char *str, size_t len)
{
	MemoryContext old;
	bool		added;

	ensure_active();
	old = MemoryContextSwitchTo(xact_cxt);
	qset_add(s, str, len, GetCurrentSubTransactionId(), &added);
	if (added)
		count_queued(1);
	MemoryContextSwitchTo(old);
}

void
XactQueueTag(const char *tagkey, size_t len)
{
	queue_plain(&q.tags, tagkey, len);
}

void
XactQueuePattern(const char *pattern, size_t len)
{
	queue_plain(&q.patterns, pattern, len);
}

void
XactQueueTagPattern(const char *pattern, size_t len)
{
	queue_plain(&q.tag_patterns, pattern, len);
}

void
XactQueueExpireAt(const char *key, size_t len, int64 unix_ms)
{
	MemoryContext old;
	bool		added;
	int			i;

	ensure_active();
	old = MemoryContextSwitchTo(xact_cxt);
	i = qset_add(&q.expiries, key, len, GetCurrentSubTransactionId(), &added);
	q.expiry_ms = q.expiry_ms ? repalloc(q.expiry_ms, sizeof(int64) * (q.nexpiry_ms + 1))
		: palloc(sizeof(int64));
	q.expiry_ms[q.nexpiry_ms] = unix_ms;
	q.expiries.items[i].arg = q.nexpiry_ms++;
	MemoryContextSwitchTo(old);
}

void
XactQueuePublish(const char *channel, size_t clen, const char *message,
				 size_t mlen)
{
	MemoryContext old;
	bool		added;
	int			i;

	ensure_active();
	old = MemoryContextSwitchTo(xact_cxt);
	i = qset_add(&q.publishes, channel, clen, GetCurrentSubTransactionId(), &added);
	/* the message follows the channel in the same arena */
	q.publishes.items[i].arg = arena_put(&q.publishes, message, mlen);
	q.publishes.items[i].arg_len = mlen;
	if (q.publishes.n - q.streams[STREAM_EVENTS].streamed >= STREAM_MESSAGES &&
		!q.streams[STREAM_EVENTS].off)
		stream_write(STREAM_EVENTS);
	MemoryContextSwitchTo(old);
}

bool
XactHasPending(void)
{
	return q.active &&
		((q.keys.n + q.tags.n + q.patterns.n + q.tag_patterns.n +
		  q.expiries.n + q.publishes.n) > 0 || q.summaries != NIL);
}

int
XactPendingPublishes(void)
{
	return q.active ? q.publishes.n : 0;
}

void
XactQueueSummary(const char *channel, const char *entity, const char *operation,
				 int64 rows)
{
	MemoryContext old;
	ListCell   *lc;
	Summary    *sm;

	ensure_active();
	foreach(lc, q.summaries)
	{
		sm = lfirst(lc);
		if (strcmp(sm->channel, channel) == 0 && strcmp(sm->operation, operation) == 0)
		{
			sm->rows += rows;
			return;
		}
	}
	old = MemoryContextSwitchTo(xact_cxt);
	sm = palloc(sizeof(Summary));
	sm->channel = pstrdup(channel);
	sm->entity = pstrdup(entity);
	sm->operation = pstrdup(operation);
	sm->rows = rows;
	q.summaries = lappend(q.summaries, sm);
	MemoryContextSwitchTo(old);
}

int64
XactPendingKeys(void)
{
	return q.active ? q.keys.n : 0;
}

bool
XactCollapsed(void)
{
	return q.active && q.collapsed;
}

void
XactDecide(const bool *immediate, bool *send_now, bool *queue)
{
	if (immediate)
	{
		*send_now = *immediate;
		*queue = !*immediate;
		return;
	}
	*send_now = (bmf_invalidate_at != BMF_INVALIDATE_COMMIT);
	*queue = (bmf_invalidate_at != BMF_INVALIDATE_IMMEDIATE);
}

void
XactNoteWatchedWrite(void)
{
	ensure_active();
	q.wrote_watched = true;
}

bool
XactWroteWatched(void)
{
	return q.active && q.wrote_watched;
}

/* ---- at commit ---- */

/* Items [from, to) of s as effects of kind, appended at effects[*n] */
static void
add_effects_range(const QSet *s, char kind, int from, int to, Effect *effects,
				  int *n)
{
	int			i;

	for (i = from; i < to; i++)
	{
		Effect	   *e = &effects[(*n)++];

		e->kind = kind;
		e->target = qstr(s, &s->items[i]);
		e->target_len = s->items[i].len;
		e->arg = NULL;
		e->arg_len = 0;
		if (kind == EFFECT_PUBLISH)
		{
			e->arg = s->arena + s->items[i].arg;
			e->arg_len = s->items[i].arg_len;
		}
		else if (kind == EFFECT_EXPIRE_AT)
		{
			char	   *ms = palloc(24);

			e->arg_len = pg_lltoa(q.expiry_ms[s->items[i].arg], ms);
			e->arg = ms;
		}
		else if (kind == EFFECT_PATTERN)
		{
			/* the prefix it is under: its locks and semaphores stay */
			e->arg = bmf_key_prefix;
			e->arg_len = strlen(bmf_key_prefix);
		}
	}
}

static void
add_effects(const QSet *s, char kind, Effect *effects, int *n)
{
	add_effects_range(s, kind, 0, s->n, effects, n);
}

static void
add_publish(Effect *e, const char *channel, StringInfo message)
{
	e->kind = EFFECT_PUBLISH;
	e->target = channel;
	e->target_len = strlen(channel);
	e->arg = message->data;
	e->arg_len = message->len;
}

/* One "<family>:bulk" message per summary. */
static void
add_summaries(Effect *effects, int *n)
{
	ListCell   *lc;

	foreach(lc, q.summaries)
	{
		Summary    *sm = lfirst(lc);
		StringInfoData data;
		StringInfoData msg;
		StringInfoData type;
		StringInfoData channel;

		initStringInfo(&data);
		appendStringInfoString(&data, "{\"operation\": ");
		escape_json(&data, sm->operation);
		appendStringInfo(&data, ", \"rows\": " INT64_FORMAT "}", sm->rows);
		initStringInfo(&type);
		appendStringInfo(&type, "%s:bulk", sm->entity);
		initStringInfo(&msg);
		EventEnvelope(&msg, type.data, NULL, data.data, NULL, GetCurrentTimestamp());
		initStringInfo(&channel);
		appendStringInfo(&channel, "%s:bulk", sm->channel);
		add_publish(&effects[(*n)++], channel.data, &msg);
	}
}

/*
 * With bmfredis.announce_invalidations, what COMMIT invalidates is also
 * published on cache:invalidated, so application servers holding a local
 * copy can drop it: {"keys": [...], "tags": [...], "patterns": [...]},
 * at most 1,000 names a message.
 */
static void
add_announcements(Effect *effects, int *n)
{
	const QSet *sets[3] = {&q.keys, &q.tags, &q.patterns};
	const char *names[3] = {"keys", "tags", "patterns"};
	StringInfoData channel;
	int			s;

	initStringInfo(&channel);
	EventChannel(&channel, "cache:invalidated", strlen("cache:invalidated"));
	for (s = 0; s < 3; s++)
	{
		int			i = 0;

		while (i < sets[s]->n)
		{
			StringInfoData data;
			StringInfoData msg;
			int			j;

			initStringInfo(&data);
			appendStringInfo(&data, "{\"%s\": [", names[s]);
			for (j = 0; j < 1000 && i < sets[s]->n; j++, i++)
			{
				if (j > 0)
					appendStringInfoString(&data, ", ");
				escape_json(&data, qstr(sets[s], &sets[s]->items[i]));
			}
			appendStringInfoString(&data, "]}");
			initStringInfo(&msg);
			EventEnvelope(&msg, "cache:invalidated", NULL, data.data, NULL,
						   GetCurrentTimestamp());
			add_publish(&effects[(*n)++], channel.data, &msg);
		}
	}
}

/* Does bmfredis.stream_channels name channel? */
static bool
streamed_channel(const char *channel, size_t len)
{
	const char *p = bmf_stream_channels;
	const char *item;
	size_t		n;

	while (BmfListNext(&p, &item, &n))
		if (n > 0 && BmfGlobMatch(item, n, channel, len))
			return true;
	return false;
}

/*
 * The publishes of effects[0..*n) whose channel bmfredis.stream_channels
 * names, each followed by its append to the channel's stream (XADD), or
 * replaced by it without bmfredis.stream_also_publish.  The array itself
 * when no channel goes to a stream.
 */
static Effect *
with_streams(Effect *effects, int *n)
{
	Effect	   *out;
	int			m = 0;
	int			i;

	if (bmf_stream_channels == NULL || bmf_stream_channels[0] == '\0')
		return effects;
	out = palloc(sizeof(Effect) * Max(2 * *n, 1));
	for (i = 0; i < *n; i++)
	{
		const Effect *e = &effects[i];
		Effect	   *x;
		StringInfoData key;

		if (e->kind != EFFECT_PUBLISH || !streamed_channel(e->target, e->target_len))
		{
			out[m++] = *e;
			continue;
		}
		if (bmf_stream_also_publish)
			out[m++] = *e;
		initStringInfo(&key);
		appendStringInfoString(&key, bmf_stream_key_prefix);
		appendBinaryStringInfo(&key, e->target, e->target_len);
		x = &out[m++];
		*x = *e;
		x->kind = EFFECT_XADD;
		x->target = key.data;
		x->target_len = key.len;
	}
	*n = m;
	return out;
}

/*
 * The queue as effects, in the order EffectsSend wants them: keys (unless
 * a stream sent them), the other invalidations and announcements (with
 * others), then the publishes and summaries (with publishes).
 */
static Effect *
queue_effects(bool keys, bool others, bool publishes, int *n)
{
	int			total = q.keys.n + q.tags.n + q.patterns.n + q.tag_patterns.n +
		q.expiries.n + q.publishes.n + list_length(q.summaries);
	Effect	   *effects;

	if (bmf_announce_invalidations)
		total += (q.keys.n + q.tags.n + q.patterns.n) / 1000 + 3;
	effects = palloc(sizeof(Effect) * Max(total, 1));
	*n = 0;
	if (keys)
		add_effects(&q.keys, EFFECT_KEY, effects, n);
	if (others)
	{
		add_effects(&q.expiries, EFFECT_EXPIRE_AT, effects, n);
		add_effects(&q.tags, EFFECT_TAG, effects, n);
		add_effects(&q.tag_patterns, EFFECT_TAG_PATTERN, effects, n);
		add_effects(&q.patterns, EFFECT_PATTERN, effects, n);
		if (bmf_announce_invalidations)
			add_announcements(effects, n);
	}
	if (publishes)
	{
		add_effects(&q.publishes, EFFECT_PUBLISH, effects, n);
		add_summaries(effects, n);
	}
	return with_streams(effects, n);
}

/* this COMMIT's effects must be sent now, whatever bmfredis.commit_wait says */
static bool commit_must_send = false;

/*
 * Send effects, or queue them for retry when Redis fails or is still
 * catching up after an outage (behind what waits, so publishes keep their
 * order).  true when all were sent now.
 */
static bool
send_effects(Effect *effects, int n, TimestampTz deadline)
{
	bool	   *done = palloc0(sizeof(bool) * Max(n, 1));
	EffectsResult result;
	RedisError	err;

	/*
	 * A COMMIT that does not wait: behind whatever waits in the queue, for
	 * the database's worker to send (this session's next call waits for
	 * that).  Counted as retried when the worker sends it.  Not when its
	 * change events stream (they must follow what they announce), nor for a
	 * transaction lock's release (it must follow the invalidations), nor
	 * when RetryEnqueueAsync declines (no worker for this Redis, no room, a
	 * stream's message): then it is sent now.
	 */
	if (!bmf_commit_wait && !commit_must_send &&
		RetryEnqueueAsync(effects, n, BmfDb(), RedisNamespaceHash()))
		return true;

	/*
	 * A COMMIT never waits for another process's drain, except to send
	 * this session's own earlier COMMITs that did not wait (commit_wait
	 * turned on again): what waits for a failure would be behind them.
	 */
	if (RetryIsBacklogged())
		RetryDrain(deadline, RetryOwnPending());
	if (RetryIsBacklogged())
	{
		RetryEnqueue(effects, done, n, BmfDb(), bmf_key_prefix);
		RetryDrain(deadline, false);
		return false;
	}
	if (!EffectsSend(RedisDefaultNode(), effects, n, deadline, done, &result, &err))
	{
		int			left = 0;
		int			i;

		for (i = 0; i < n; i++)
			left += !done[i];
		BmfStatsCount(STAT_INVALIDATIONS_FAILED, left);
		if (err.status == RS_REPLY)
			ereport(WARNING,
					(errcode(err.sqlerrcode),
					 errmsg("Redis refused %d queued invalidations after commit", left),
					 errdetail_internal("%s", err.detail),
					 errhint("The transaction is committed.  They wait in the retry queue, sent again until Redis takes them, and until then reads through bmfredis in this database are misses: %s.",
							 err.sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE ?
							 "let the Redis user bmfredis connects as (bmfredis.username) reach the keys under this database's bmfredis.key_prefix, with UNLINK, EVALSHA, SCAN and PEXPIREAT" :
							 "remove what Redis refused (redis-cli)")));
		else
			ereport(WARNING,
					(errcode(err.sqlerrcode),
					 errmsg("could not send %d queued Redis invalidations or messages after commit", left),
					 errdetail_internal("%s: %s%s", err.message, err.detail,
										err.status == RS_TIMEOUT ? " COMMIT sends for at most bmfredis.flush_timeout." : ""),
					 errhint("The transaction is committed; they were queued for retry (%s).",
							 RetryIsShared() ? "the database's bmfredis worker sends them when Redis answers"
							 : "this session sends them before its next Redis call; preload bmfredis for a worker that does not wait for that")));
		RetryEnqueue(effects, done, n, BmfDb(), bmf_key_prefix);
		return false;
	}
	BmfStatsCount(STAT_INVALIDATIONS_SENT, n);
	if (result.error_replies > 0)
		ereport(WARNING,
				(errmsg("Redis refused %d messages published after commit", result.error_replies),
				 errdetail_internal("%s", result.first_error),
				 errhint("Pub/sub delivers at most once: they are not sent again.")));
	return true;
}

/*
 * Send what the committed transaction queued.  Runs inside the commit
 * callback: interrupts are held by the caller, and nothing may escape.
 * Order: keys, other invalidations, announcements, then the change events
 * and other publishes.
 */
static void
flush_committed(void)
{
	Effect	   *effects;
	int			n;
	TimestampTz deadline = BmfDeadline(bmf_flush_timeout);
	bool		keys_sent = false;
	bool		events_streamed = q.streams[STREAM_EVENTS].open;
	bool		must_before = commit_must_send;
	bool		ok = true;
	int64		counted;

	/* a stream's keys first: EXEC runs what Redis queued while we ran */
	if (q.streams[STREAM_KEYS].open)
	{
		keys_sent = stream_finish(STREAM_KEYS, deadline, &counted);
		if (keys_sent)
			BmfStatsCount(STAT_INVALIDATIONS_SENT, q.keys.n);
	}
	effects = queue_effects(!keys_sent, true, !events_streamed, &n);
	/* streamed events come after everything: that cannot wait in the queue */
	commit_must_send = must_before || events_streamed;
	if (n > 0)
		ok = send_effects(effects, n, deadline);
	else if (events_streamed)
	{
		/* messages waiting from an outage go before these events */
		if (RetryIsBacklogged())
			RetryDrain(deadline, RetryOwnPending());
		ok = !RetryIsBacklogged();
	}
	commit_must_send = must_before;
	if (!events_streamed)
		return;

	/*
	 * The event stream's EXEC, after every invalidation; when something
	 * before it waits for retry, the events queue behind it instead.
	 */
	if (ok && stream_finish(STREAM_EVENTS, deadline, &counted))
	{
		BmfStatsCount(STAT_INVALIDATIONS_SENT, q.publishes.n + list_length(q.summaries));
		return;
	}
	stream_drop(STREAM_EVENTS);
	effects = queue_effects(false, false, true, &n);
	if (ok)
		send_effects(effects, n, deadline);
	else
	{
		bool	   *done = palloc0(sizeof(bool) * Max(n, 1));

		RetryEnqueue(effects, done, n, BmfDb(), bmf_key_prefix);
	}
}

uint64
XactQueueGeneration(void)
{
	return q.active ? queue_generation : 0;
}

static void
reset_queue(void)
{
	if (q.active && q.queued_uncounted > 0)
		BmfStatsCount(STAT_INVALIDATIONS_QUEUED, q.queued_uncounted);
	q.queued_uncounted = 0;
	queue_generation++;
	if (q.active)
	{
		/* aborted (or done): Redis drops any MULTI left open */
		if (q.streams[STREAM_KEYS].open || q.streams[STREAM_KEYS].writing)
			stream_drop(STREAM_KEYS);
		if (q.streams[STREAM_EVENTS].open || q.streams[STREAM_EVENTS].writing)
			stream_drop(STREAM_EVENTS);
	}
	q.active = false;
	q.wrote_watched = false;
	if (xact_cxt)
		MemoryContextReset(xact_cxt);
}

/*
 * This backend's near-cache drops what the transaction invalidated before
 * COMMIT returns: keys one by one, everything when tags, patterns or a
 * collapsed queue say more than keys.  Other backends learn it from Redis.
 */
static void
near_forget_committed(void)
{
	int			i;

	if (!RedisNearActive())
		return;
	if (q.collapsed || q.tags.n > 0 || q.patterns.n > 0 || q.tag_patterns.n > 0)
	{
		RedisNearForgetAll();
		return;
	}
	for (i = 0; i < q.keys.n; i++)
		RedisNearForget(qstr(&q.keys, &q.keys.items[i]), q.keys.items[i].len);
	for (i = 0; i < q.expiries.n; i++)
		RedisNearForget(qstr(&q.expiries, &q.expiries.items[i]), q.expiries.items[i].len);
}

static void
at_commit(void)
{
	MemoryContext old = CurrentMemoryContext;

	if (!XactHasPending())
		return;
	near_forget_committed();
	HOLD_INTERRUPTS();
	PG_TRY();
	{
		MemoryContextSwitchTo(xact_cxt);
		flush_committed();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		/*
		 * An error does not end a transaction here, so nothing else
		 * releases what the send held: the commit callback is called with
		 * no LWLock held, so any held now is the send's own (the retry
		 * ring's), and must not outlive it (RetryEnqueueNamespace below
		 * takes it exclusively).
		 */
		LWLockReleaseAll();
		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(WARNING,
				(errmsg("could not send queued Redis invalidations after commit: %s",
						edata->message),
				 errhint("The transaction is committed; bmfredis will invalidate the namespace once Redis answers.")));
		FreeErrorData(edata);
		RetryEnqueueNamespace(BmfDb(), bmf_key_prefix);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	RESUME_INTERRUPTS();
}

/*
 * Send what the committed transaction queued now, for a callback that must
 * come after it (locks.c gives its transaction locks back only then, so
 * that the next holder cannot read what the transaction invalidates); the
 * callback of our own that follows finds nothing left.
 */
void
XactSendCommitted(void)
{
	if (!q.active)
		return;
	/* a transaction lock is given back after its invalidations are in Redis */
	commit_must_send = true;
	at_commit();
	commit_must_send = false;
	reset_queue();
}

static void
xact_callback(XactEvent event, void *arg)
{
	(void) arg;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (XactHasPending())
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot prepare a transaction that has queued Redis invalidations or messages"),
						 errdetail("bmfredis sends them when the transaction commits, and a prepared transaction commits elsewhere."),
						 errhint("Use immediate => true, or SET bmfredis.invalidate_at = 'immediate', in transactions that will be prepared.")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			commit_must_send = false;	/* whatever an error left */
			at_commit();
			reset_queue();
			PoolTransactionEnd();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			reset_queue();
			PoolTransactionEnd();
			break;
		default:
			break;
	}
}

static void
subxact_callback(SubXactEvent event, SubTransactionId mySubid,
				 SubTransactionId parentSubid, void *arg)
{
	(void) parentSubid;
	(void) arg;
	if (event != SUBXACT_EVENT_ABORT_SUB || !q.active)
		return;
	queue_generation++;
	if (q.streams[STREAM_KEYS].writing)
		stream_drop(STREAM_KEYS);	/* an error cut a write short */
	if (q.streams[STREAM_EVENTS].writing)
		stream_drop(STREAM_EVENTS);
	qset_truncate(&q.keys, mySubid);
	qset_truncate(&q.tags, mySubid);
	qset_truncate(&q.patterns, mySubid);
	qset_truncate(&q.tag_patterns, mySubid);
	qset_truncate(&q.expiries, mySubid);
	qset_truncate(&q.publishes, mySubid);
}

void
XactInit(void)
{
	if (callbacks_registered)
		return;
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
	callbacks_registered = true;
}

/* ---- inspection ---- */

PG_FUNCTION_INFO_V1(redis_pending_invalidations);

static void
list_set(ReturnSetInfo *rsinfo, const QSet *s, const char *kind)
{
	int			i;

	for (i = 0; i < s->n; i++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = CStringGetTextDatum(kind);
		values[1] = PointerGetDatum(cstring_to_text_with_len(qstr(s, &s->items[i]), s->items[i].len));
		if (strcmp(kind, "publish") == 0)
			values[2] = PointerGetDatum(cstring_to_text_with_len(s->arena + s->items[i].arg,
																 s->items[i].arg_len));
		else if (strcmp(kind, "expire_at") == 0)
			values[2] = CStringGetTextDatum(psprintf("%lld", (long long) q.expiry_ms[s->items[i].arg]));
		else
			nulls[2] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * redis_pending_invalidations() -> setof (kind, target, argument): what
 * this transaction will send at COMMIT, for psql and tests.
 */
Datum
redis_pending_invalidations(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	if (!q.active)
		return (Datum) 0;
	list_set(rsinfo, &q.keys, "key");
	list_set(rsinfo, &q.expiries, "expire_at");
	list_set(rsinfo, &q.tags, "tag");
	list_set(rsinfo, &q.tag_patterns, "tag_pattern");
	list_set(rsinfo, &q.patterns, "pattern");
	list_set(rsinfo, &q.publishes, "publish");
	{
		ListCell   *lc;

		foreach(lc, q.summaries)
		{
			Summary    *sm = lfirst(lc);
			Datum		values[3];
			bool		nulls[3] = {false, false, false};

			values[0] = CStringGetTextDatum("publish_summary");
			values[1] = CStringGetTextDatum(psprintf("%s:bulk", sm->channel));
			values[2] = CStringGetTextDatum(psprintf("%s " INT64_FORMAT, sm->operation, sm->rows));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}
