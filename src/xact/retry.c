/*-------------------------------------------------------------------------
 *
 * retry.c
 *		The retry queue: nothing committed is silently lost.
 *
 * An effect (an invalidation or a publish) that could not be sent after
 * its transaction committed is kept here and sent when Redis answers
 * again.  With the library in shared_preload_libraries the queue is a
 * byte ring in shared memory (bmfredis.retry_queue_size); the background
 * worker drains it, and so does any backend before its next Redis call,
 * so a backend never reads from Redis while invalidations it could send
 * are still waiting.  Without preloading each backend keeps its own
 * queue and drains it before its next Redis call.
 *
 * Every entry belongs to the PostgreSQL database whose transaction queued
 * it, and only processes of that database send it: its worker, or its
 * backends before their next call.  A database's settings (endpoint,
 * credentials, logical database) may differ from another's, and only its
 * own processes see them.  Entries of other databases that wait in front
 * are stepped over; the ring's tail moves past entries once they are sent
 * (marked done), whoever sent them.
 *
 * When the queue is full, what does not fit is not dropped silently: the
 * namespace it belongs to (logical database and key prefix) is recorded,
 * and once Redis answers every key under that prefix is invalidated
 * (SCAN + UNLINK), so no entry written before the outage can be read
 * again.  Publishes that do not fit are dropped, counted and warned
 * about: a message cannot be replaced by something coarser.
 *
 * Ring layout: entries are MAXALIGNed, each a RingHeader followed by the
 * target and the argument.  Positions (head, tail) grow forever; the
 * physical offset is position % ring_size.  An entry never wraps: when it
 * does not fit before the end, the writer skips to the start, leaving a
 * header with size 0 if there is room for one.  Only one process drains
 * at a time (the draining flag); it copies entries out under the lock,
 * sends them without the lock, and then advances tail past the prefix of
 * entries that were confirmed, so nothing is lost if sending fails midway
 * and producers are never blocked by Redis.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "base/guc.h"
#include "base/shmem.h"
#include "base/stats.h"
#include "base/wait.h"
#include "pool/pool.h"
#include "xact/retry.h"

typedef struct RingHeader
{
	uint32		size;			/* whole entry, MAXALIGNed; 0: skip to start */
	char		kind;
	bool		done;			/* sent (or discarded): the tail may pass it */
	bool		async;			/* queued by a COMMIT that did not wait
								 * (bmfredis.commit_wait = off), not by a
								 * failure: other sessions do not wait for it */
	int32		db;
	Oid			dboid;			/* the PostgreSQL database that queued it */
	uint32		target_len;
	uint32		arg_len;
} RingHeader;

/* the non-shared queue */
typedef struct LocalEffect
{
	char		kind;
	int			db;
	char	   *target;
	uint32		target_len;
	char	   *arg;
	uint32		arg_len;
} LocalEffect;

static MemoryContext local_cxt = NULL;
static LocalEffect *local_q = NULL;
static int	local_n = 0;
static int	local_cap = 0;
static BmfNamespace local_ns[BMF_MAX_NAMESPACES];
static int	local_nns = 0;

static bool i_am_draining = false;

/*
 * Where the ring's head was after this session's last COMMIT that did not
 * wait: until everything of this database before it is sent, this
 * session's own reads wait for it (or miss), as after a failure.  0: none.
 */
static uint64 my_async_end = 0;

static void shared_pending(BmfSharedState *sh, bool *backlog, bool *any, bool *mine);

/* how long a reader waits for another process's drain */
#define RETRY_WAIT_MS 20
static bool exit_hook_registered = false;

bool
RetryIsShared(void)
{
	return BmfShared() != NULL;
}

/* ---- namespaces ---- */

/*
 * This process's database must start cold but its namespace found no room
 * in the shared list: it reads nothing from Redis until it has queued it.
 */
static bool cold_blocked = false;

static bool
ns_add(BmfNamespace *list, int *n, int db, const char *prefix)
{
	int			i;

	for (i = 0; i < *n; i++)
		if (list[i].dboid == MyDatabaseId && list[i].db == db &&
			strcmp(list[i].prefix, prefix) == 0)
			return true;
	if (*n >= BMF_MAX_NAMESPACES || strlen(prefix) >= BMF_PREFIX_MAX)
		return false;
	list[*n].dboid = MyDatabaseId;
	list[*n].db = db;
	strlcpy(list[*n].prefix, prefix, BMF_PREFIX_MAX);
	(*n)++;
	return true;
}

void
RetryEnqueueNamespace(int db, const char *prefix)
{
	BmfSharedState *sh = BmfShared();
	bool		ok;

	if (sh)
	{
		LWLockAcquire(sh->lock, LW_EXCLUSIVE);
		ok = ns_add(sh->namespaces, &sh->nnamespaces, db, prefix);
		sh->generation++;
		LWLockRelease(sh->lock);
		BmfWakeWorker(MyDatabaseId);
	}
	else
		ok = ns_add(local_ns, &local_nns, db, prefix);
	if (!ok)
		elog(LOG, "bmfredis: cannot remember namespace \"%s\" (db %d) for invalidation: too many namespaces are waiting",
			 prefix, db);
}

/* ---- enqueue ---- */

/*
 * The entry at ring position *pos, or NULL once *pos reaches end; steps
 * over the gap an entry that did not fit before the ring's end left (its
 * size-0 header, or too little room for one), moving *pos past it.  The
 * caller moves *pos past the entry (h->size).
 */
static RingHeader *
ring_at(BmfSharedState *sh, uint64 *pos, uint64 end)
{
	while (*pos < end)
	{
		uint32		phys = *pos % sh->ring_size;

		if (sh->ring_size - phys < sizeof(RingHeader) ||
			((RingHeader *) (sh->ring + phys))->size == 0)
		{
			*pos += sh->ring_size - phys;
			continue;
		}
		return (RingHeader *) (sh->ring + phys);
	}
	return NULL;
}

/*
 * Put one entry at the ring's head; false when it does not fit (the caller
 * holds lock exclusively).
 */
static bool
ring_put(BmfSharedState *sh, char kind, int db, Oid dboid, bool async,
		 const char *target, uint32 target_len, const char *arg, uint32 arg_len)
{
	uint32		need = MAXALIGN(sizeof(RingHeader) + target_len + arg_len);
	uint32		phys = sh->head % sh->ring_size;
	uint32		skip = 0;
	RingHeader *h;

	if (sh->ring_size - phys < need)
		skip = sh->ring_size - phys;
	if (need > sh->ring_size / 4 ||
		sh->head + skip + need - sh->tail > sh->ring_size)
		return false;
	if (skip > 0)
	{
		if (skip >= sizeof(RingHeader))
			((RingHeader *) (sh->ring + phys))->size = 0;
		sh->head += skip;
		phys = 0;
	}
	h = (RingHeader *) (sh->ring + phys);
	h->size = need;
	h->kind = kind;
	h->done = false;
	h->async = async;
	h->db = db;
	h->dboid = dboid;
	h->target_len = target_len;
	h->arg_len = arg_len;
	memcpy(sh->ring + phys + sizeof(RingHeader), target, target_len);
	if (arg_len)
		memcpy(sh->ring + phys + sizeof(RingHeader) + target_len, arg, arg_len);
	sh->head += need;
	pg_atomic_fetch_add_u32(&sh->entries, 1);
	return true;
}

static void
enqueue_shared(BmfSharedState *sh, const Effect *effects, const bool *done,
			   int n, int db, const char *prefix)
{
	int			i;
	int			dropped_publishes = 0;
	bool		overflow = false;

	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	for (i = 0; i < n; i++)
	{
		const Effect *e = &effects[i];

		if (done[i] ||
			ring_put(sh, e->kind, db, MyDatabaseId, false, e->target, e->target_len,
					 e->arg, e->arg_len))
			continue;
		if (e->kind == EFFECT_PUBLISH || e->kind == EFFECT_XADD)
			dropped_publishes++;
		else
			overflow = true;
	}
	if (overflow)
		ns_add(sh->namespaces, &sh->nnamespaces, db, prefix);
	sh->generation++;
	LWLockRelease(sh->lock);

	if (overflow)
	{
		BmfStatsCount(STAT_RETRY_DROPPED, 1);
		ereport(WARNING,
				(errmsg("the bmfredis retry queue is full"),
				 errdetail("Every key under prefix \"%s\" will be invalidated once Redis answers.", prefix),
				 errhint("Raise bmfredis.retry_queue_size.")));
	}
	if (dropped_publishes)
	{
		BmfStatsCount(STAT_RETRY_DROPPED, dropped_publishes);
		ereport(WARNING,
				(errmsg("dropped %d Redis messages: the bmfredis retry queue is full", dropped_publishes),
				 errhint("Raise bmfredis.retry_queue_size.")));
	}
	BmfWakeWorker(MyDatabaseId);
}

static void
enqueue_local(const Effect *effects, const bool *done, int n, int db,
			  const char *prefix)
{
	int			i;
	int			dropped_publishes = 0;
	bool		overflow = false;

	if (local_cxt == NULL)
		local_cxt = AllocSetContextCreate(TopMemoryContext, "bmfredis retry queue",
										  ALLOCSET_DEFAULT_SIZES);
	for (i = 0; i < n; i++)
	{
		const Effect *e = &effects[i];
		LocalEffect *l;

		if (done[i])
			continue;
		if (local_n >= bmf_max_pending_keys)
		{
			if (e->kind == EFFECT_PUBLISH || e->kind == EFFECT_XADD)
				dropped_publishes++;
			else
				overflow = true;
			continue;
		}
		if (local_n == local_cap)
		{
			local_cap = Max(local_cap * 2, 64);
			local_q = local_q ? repalloc(local_q, sizeof(LocalEffect) * local_cap)
				: MemoryContextAlloc(local_cxt, sizeof(LocalEffect) * local_cap);
		}
		l = &local_q[local_n++];
		l->kind = e->kind;
		l->db = db;
		l->target = MemoryContextAlloc(local_cxt, e->target_len + e->arg_len + 1);
		memcpy(l->target, e->target, e->target_len);
		l->target_len = e->target_len;
		l->arg = l->target + e->target_len;
		if (e->arg_len)
			memcpy(l->arg, e->arg, e->arg_len);
		l->arg_len = e->arg_len;
	}
	if (overflow)
	{
		ns_add(local_ns, &local_nns, db, prefix);
		BmfStatsCount(STAT_RETRY_DROPPED, 1);
		ereport(WARNING,
				(errmsg("too many Redis invalidations are waiting in this session"),
				 errdetail("Every key under prefix \"%s\" will be invalidated once Redis answers.", prefix)));
	}
	if (dropped_publishes)
	{
		BmfStatsCount(STAT_RETRY_DROPPED, dropped_publishes);
		ereport(WARNING,
				(errmsg("dropped %d Redis messages: too many are waiting in this session", dropped_publishes)));
	}
}

void
RetryEnqueue(const Effect *effects, const bool *done, int n, int db,
			 const char *prefix)
{
	BmfSharedState *sh = BmfShared();

	if (sh)
		enqueue_shared(sh, effects, done, n, db, prefix);
	else
		enqueue_local(effects, done, n, db, prefix);
}

bool
RetryEnqueueAsync(const Effect *effects, int n, int db, uint64 ns_hash)
{
	BmfSharedState *sh = BmfShared();
	BmfDbWorker *w;
	uint64		need = 0;
	uint64		start;
	bool		same = false;
	int			i;

	if (sh == NULL)
		return false;
	/*
	 * Only for the worker's own Redis and key prefix (a role whose settings
	 * name another server is sent to by itself), and never a message
	 * appended to a stream: a crash empties the queue, and a stream's
	 * messages are delivered at least once.
	 */
	LWLockAcquire(sh->workers_lock, LW_SHARED);
	w = BmfWorkerSlot(sh, MyDatabaseId);
	same = w && w->state == BMF_WORKER_RUNNING && w->ns_hash == ns_hash;
	LWLockRelease(sh->workers_lock);
	if (!same)
		return false;
	for (i = 0; i < n; i++)
	{
		if (effects[i].kind == EFFECT_XADD)
			return false;
		need += MAXALIGN(sizeof(RingHeader) + effects[i].target_len + effects[i].arg_len);
		if (need > sh->ring_size / 4)
			return false;
	}
	/*
	 * All of it, or none (then COMMIT sends it itself): never a dropped
	 * message or a namespace flushed for want of room while Redis is well.
	 * At most half the ring, so that an outage's backlog still has room.
	 */
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	if (sh->head - sh->tail + need + sh->ring_size / 4 > sh->ring_size / 2)
	{
		LWLockRelease(sh->lock);
		return false;
	}
	start = sh->head;
	for (i = 0; i < n; i++)
		if (!ring_put(sh, effects[i].kind, db, MyDatabaseId, true, effects[i].target,
					  effects[i].target_len, effects[i].arg, effects[i].arg_len))
		{
			/* cannot happen after the check above; never an ERROR at COMMIT */
			sh->head = start;
			pg_atomic_fetch_sub_u32(&sh->entries, i);
			LWLockRelease(sh->lock);
			return false;
		}
	my_async_end = sh->head;
	sh->generation++;
	LWLockRelease(sh->lock);
	BmfWakeWorker(MyDatabaseId);
	return true;
}

bool
RetryOwnPending(void)
{
	BmfSharedState *sh = BmfShared();
	bool		backlog,
				any,
				mine;

	if (sh == NULL || my_async_end == 0)
		return false;
	shared_pending(sh, &backlog, &any, &mine);
	return mine;
}

/* ---- drain ---- */

/*
 * What Redis refuses in the shared queue becomes its database's namespace
 * (drain_shared): the namespace's invalidation is tried at every pass until
 * Redis takes it, and reads in the database miss meanwhile.  Said loudly,
 * but once a minute per process, not at every pass.
 */
static void
refused_warning(const EffectsResult *result)
{
	static TimestampTz last = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (last != 0 && !TimestampDifferenceExceeds(last, now, 60 * 1000))
		return;
	last = now;
	ereport(WARNING,
			(errmsg("bmfredis: Redis refuses %d invalidations waiting in the retry queue of database \"%s\"",
					result->error_replies, PoolDatabaseName()),
			 errdetail_internal("%s", result->first_error),
			 errhint("The database's whole namespace (bmfredis.key_prefix) is invalidated instead, tried again until Redis takes it; until then reads through bmfredis in this database are misses.  If Redis' ACL refused them, let bmfredis' Redis user reach this database's key prefix.")));
}

/*
 * What Redis refused becomes the namespace it is under (the caller holds
 * the lock).  Only this database's own namespace, and only for a target
 * under it: a worker whose settings lag an ALTER DATABASE (it restarts
 * soon) must not flush another namespace and call the refused one done.
 * A message appended to a stream cannot be made coarser: it is dropped,
 * as PUBLISH's refusals are.  false: it stays in the queue.
 */
static bool
refused_to_namespace(BmfSharedState *sh, const Effect *e, int db, const char *prefix)
{
	size_t		plen = prefix ? strlen(prefix) : 0;

	if (e->kind == EFFECT_XADD || e->kind == EFFECT_PUBLISH)
		return true;
	if (plen == 0 || e->target_len < plen || memcmp(e->target, prefix, plen) != 0)
		return false;
	return ns_add(sh->namespaces, &sh->nnamespaces, db, prefix);
}

/*
 * Send effects[0..n) (each with its db), in groups by db.  done[] tells
 * which were confirmed.  Returns false if Redis failed.
 */
static bool
send_grouped(const Effect *effects, const int *dbs, int n, bool *done,
			 bool *refused, TimestampTz deadline)
{
	bool	   *handled = palloc0(sizeof(bool) * n);
	int			i;
	bool		ok = true;

	for (i = 0; i < n && ok; i++)
	{
		int			db = dbs[i];
		Effect	   *group;
		int		   *where;
		bool	   *gdone;
		int			m = 0;
		int			j;
		EffectsResult result;
		RedisError	err;

		if (handled[i])
			continue;
		group = palloc(sizeof(Effect) * n);
		where = palloc(sizeof(int) * n);
		for (j = i; j < n; j++)
			if (!handled[j] && dbs[j] == db)
			{
				group[m] = effects[j];
				where[m++] = j;
				handled[j] = true;
			}
		gdone = palloc(sizeof(bool) * m);
		ok = EffectsSend(RedisNodeForDb(db), group, m, deadline, gdone, &result, &err);
		for (j = 0; j < m; j++)
		{
			done[where[j]] = gdone[j];
			/* every one was answered: what is not done, Redis refused */
			if (refused)
				refused[where[j]] = !ok && err.status == RS_REPLY && !gdone[j];
		}
		if (!ok && err.status == RS_REPLY)
			ok = true;			/* Redis answered: go on */
		if (result.error_replies > 0)
			refused_warning(&result);
	}
	return ok;
}

static bool
drain_namespace(int db, const char *prefix, TimestampTz deadline)
{
	StringInfoData pat;
	Effect		e;
	bool		done;
	EffectsResult result;
	RedisError	err;
	const char *p;

	initStringInfo(&pat);
	for (p = prefix; *p; p++)
	{
		if (*p == '*' || *p == '?' || *p == '[' || *p == ']' || *p == '\\')
			appendStringInfoChar(&pat, '\\');
		appendStringInfoChar(&pat, *p);
	}
	appendStringInfoChar(&pat, '*');
	e.kind = EFFECT_PATTERN;
	e.target = pat.data;
	e.target_len = pat.len;
	e.arg = prefix;				/* locks and semaphores under it stay */
	e.arg_len = strlen(prefix);
	if (!EffectsSend(RedisNodeForDb(db), &e, 1, deadline, &done, &result, &err))
	{
		if (err.status == RS_REPLY)
			refused_warning(&result);
		return false;
	}
	BmfStatsCount(STAT_NAMESPACE_FLUSHES, 1);
	elog(LOG, "bmfredis: invalidated namespace \"%s\" (db %d), %lld keys: its invalidations were not kept one by one (the retry queue overflowed, or the cache started cold)",
		 prefix, db, (long long) result.unlinked);
	return true;
}

/*
 * Move the tail past the entries at its front that are done (and past the
 * ends of the ring); the caller holds the lock exclusively.
 */
static void
advance_tail(BmfSharedState *sh)
{
	RingHeader *h;

	while ((h = ring_at(sh, &sh->tail, sh->head)) != NULL && h->done)
		sh->tail += h->size;
}

/* A batch of this database's entries, copied out of the ring. */
typedef struct RingBatch
{
	int			n;
	Effect	   *effects;
	int		   *dbs;			/* each entry's logical database */
	uint64	   *where;			/* its position in the ring (not modulo) */
	uint64		next;			/* where the next batch starts looking */
} RingBatch;

#define RING_BATCH_ENTRIES 1024
#define RING_BATCH_BYTES (4 * 1024 * 1024)

/* Copy out up to RING_BATCH_ENTRIES of this database's entries, or 4 MB. */
static void
ring_copy_out(BmfSharedState *sh, uint64 from, RingBatch *rb)
{
	uint64		pos;
	RingHeader *h;
	uint64		head;
	char	   *copy;
	size_t		bytes = 0;
	size_t		used = 0;

	size_t		room;

	rb->n = 0;
	rb->effects = palloc(sizeof(Effect) * RING_BATCH_ENTRIES);
	rb->dbs = palloc(sizeof(int) * RING_BATCH_ENTRIES);
	rb->where = palloc(sizeof(uint64) * RING_BATCH_ENTRIES);
	/* nothing is allocated under the lock: an error there would keep it */
	LWLockAcquire(sh->lock, LW_SHARED);
	pos = Max(sh->tail, from);
	head = sh->head;
	LWLockRelease(sh->lock);
	room = Min(head - pos, (uint64) RING_BATCH_BYTES + sh->ring_size / 4);
	copy = palloc(room + 1);
	LWLockAcquire(sh->lock, LW_SHARED);
	pos = Max(sh->tail, from);
	while (rb->n < RING_BATCH_ENTRIES && bytes < RING_BATCH_BYTES &&
		   (h = ring_at(sh, &pos, head)) != NULL)
	{
		Effect	   *e;

		if (used + h->target_len + h->arg_len > room)
			break;				/* the next batch's */
		rb->where[rb->n] = pos;
		pos += h->size;
		if (h->done || h->dboid != MyDatabaseId)
			continue;
		memcpy(copy + used, (char *) h + sizeof(RingHeader),
			   h->target_len + h->arg_len);
		e = &rb->effects[rb->n];
		e->kind = h->kind;
		e->target = copy + used;
		e->target_len = h->target_len;
		e->arg = copy + used + h->target_len;
		e->arg_len = h->arg_len;
		rb->dbs[rb->n] = h->db;
		used += h->target_len + h->arg_len;
		bytes += h->size;
		rb->n++;
	}
	LWLockRelease(sh->lock);
	rb->next = pos;
}

/* Send this database's namespaces (after an overflow); false if Redis failed. */
static bool
drain_namespaces(BmfSharedState *sh, TimestampTz deadline)
{
	for (;;)
	{
		BmfNamespace ns;
		int			i;

		LWLockAcquire(sh->lock, LW_SHARED);
		for (i = 0; i < sh->nnamespaces; i++)
			if (sh->namespaces[i].dboid == MyDatabaseId)
				break;
		if (i == sh->nnamespaces)
		{
			LWLockRelease(sh->lock);
			return true;
		}
		ns = sh->namespaces[i];
		LWLockRelease(sh->lock);
		if (!drain_namespace(ns.db, ns.prefix, deadline))
			return false;
		LWLockAcquire(sh->lock, LW_EXCLUSIVE);
		for (i = 0; i < sh->nnamespaces; i++)
		{
			if (sh->namespaces[i].dboid == ns.dboid && sh->namespaces[i].db == ns.db &&
				strcmp(sh->namespaces[i].prefix, ns.prefix) == 0)
			{
				memmove(&sh->namespaces[i], &sh->namespaces[i + 1],
						sizeof(BmfNamespace) * (sh->nnamespaces - i - 1));
				sh->nnamespaces--;
				break;
			}
		}
		sh->generation++;
		LWLockRelease(sh->lock);
	}
}

/*
 * Redis failed while this database's entries that COMMITs queued without
 * waiting were being sent: they are a backlog now, like any failure's, and
 * every session's reads miss until they are sent.
 */
static void
async_to_backlog(BmfSharedState *sh)
{
	uint64		pos;
	RingHeader *h;

	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	for (pos = sh->tail; (h = ring_at(sh, &pos, sh->head)) != NULL; pos += h->size)
	{
		if (!h->done && h->dboid == MyDatabaseId)
			h->async = false;
	}
	sh->generation++;
	LWLockRelease(sh->lock);
}

/*
 * Drain this database's entries of the shared ring, then its namespaces;
 * the caller owns the draining flag.  Entries are copied out under the
 * lock and sent without it; those Redis confirmed are marked done, and the
 * tail moves past whatever is done at the front.
 */
static void
drain_shared(BmfSharedState *sh, TimestampTz deadline)
{
	uint64		from = 0;		/* where the next batch starts looking */

	for (;;)
	{
		RingBatch	rb;
		bool	   *done;
		bool	   *refused;
		bool		ok;
		int			k;
		int			i;
		int			nmarked = 0;

		ring_copy_out(sh, from, &rb);
		if (rb.n == 0)
			break;
		done = palloc0(sizeof(bool) * rb.n);
		refused = palloc0(sizeof(bool) * rb.n);
		ok = send_grouped(rb.effects, rb.dbs, rb.n, done, refused, deadline);

		/*
		 * Redis failed: what it confirmed before is done, in order (a
		 * message never overtakes one that failed before it).  Redis
		 * answered: all of it was sent, so mark everything it took (or the
		 * messages after a refusal would go again at every pass), and an
		 * invalidation it refused (its ACL, a key of the wrong type, a
		 * command it does not know) becomes the namespace of its database:
		 * coarser, never lost, and never blocking the queue behind it.
		 */
		for (k = 0; k < rb.n && done[k]; k++)
			;
		for (i = k; !ok && i < rb.n; i++)
			done[i] = false;
		for (i = 0; i < rb.n; i++)
			nmarked += done[i] || refused[i];
		if (nmarked > 0)
		{
			uint32		marked = 0;
			const char *prefix = GetConfigOptionResetString("bmfredis.key_prefix");

			LWLockAcquire(sh->lock, LW_EXCLUSIVE);
			for (i = 0; i < rb.n; i++)
			{
				RingHeader *h = (RingHeader *) (sh->ring + rb.where[i] % sh->ring_size);

				if (!done[i] && !refused[i])
					continue;

				/*
				 * Discarded meanwhile (RetryDiscardDatabase marks and counts
				 * too): done already, or passed by the tail, its place
				 * maybe another entry's now.
				 */
				if (rb.where[i] < sh->tail || h->done)
					continue;
				if (refused[i] && !refused_to_namespace(sh, &rb.effects[i], rb.dbs[i], prefix))
					continue;	/* it stays, tried again */
				h->done = true;
				marked++;
			}
			pg_atomic_fetch_sub_u32(&sh->entries, marked);
			advance_tail(sh);
			sh->generation++;
			LWLockRelease(sh->lock);
			BmfStatsCount(STAT_INVALIDATIONS_RETRIED, marked);
		}
		if (!ok)
		{
			/* Redis failed; try again later */
			async_to_backlog(sh);
			return;
		}
		from = rb.next;
	}
	(void) drain_namespaces(sh, deadline);
}

static void
drain_local(TimestampTz deadline)
{
	Effect	   *effects;
	int		   *dbs;
	bool	   *done;
	int			i;
	int			kept = 0;

	if (local_n > 0)
	{
		effects = palloc(sizeof(Effect) * local_n);
		dbs = palloc(sizeof(int) * local_n);
		done = palloc0(sizeof(bool) * local_n);
		for (i = 0; i < local_n; i++)
		{
			effects[i].kind = local_q[i].kind;
			effects[i].target = local_q[i].target;
			effects[i].target_len = local_q[i].target_len;
			effects[i].arg = local_q[i].arg;
			effects[i].arg_len = local_q[i].arg_len;
			dbs[i] = local_q[i].db;
		}
		send_grouped(effects, dbs, local_n, done, NULL, deadline);
		for (i = 0; i < local_n; i++)
		{
			if (done[i])
				pfree(local_q[i].target);
			else
				local_q[kept++] = local_q[i];
		}
		BmfStatsCount(STAT_INVALIDATIONS_RETRIED, local_n - kept);
		local_n = kept;
		if (kept > 0)
			return;
	}
	while (local_nns > 0)
	{
		if (!drain_namespace(local_ns[0].db, local_ns[0].prefix, deadline))
			return;
		memmove(&local_ns[0], &local_ns[1], sizeof(BmfNamespace) * (local_nns - 1));
		local_nns--;
	}
}

static void
draining_exit(int code, Datum arg)
{
	BmfSharedState *sh = BmfShared();

	(void) code;
	(void) arg;
	if (i_am_draining && sh)
		pg_atomic_clear_flag(&sh->draining);
	i_am_draining = false;
}

/*
 * When this process's drain emptied what its database had waiting: said
 * once (the outage's WARNINGs said it began; this says it is over).
 */
static TimestampTz backlog_since = 0;

static void
drained_log(void)
{
	long		secs;
	int			usecs;

	if (backlog_since == 0 || RetryIsBacklogged())
		return;
	TimestampDifference(backlog_since, GetCurrentTimestamp(), &secs, &usecs);
	backlog_since = 0;
	ereport(LOG,
			(errmsg("bmfredis: everything database \"%s\" had waiting for Redis is sent (it waited %ld s or more)",
					PoolDatabaseName(), secs),
			 errdetail("Reads through bmfredis in this database go to Redis again.")));
}

void
RetryDrain(TimestampTz deadline, bool wait)
{
	BmfSharedState *sh = BmfShared();
	MemoryContext cxt;
	MemoryContext old;
	bool		acquired = false;
	TimestampTz wait_until;

	if (!RetryHasWork())
	{
		backlog_since = 0;		/* another process sent it */
		return;
	}
	/* a failure's backlog is logged when sent; COMMITs that did not wait are not */
	if (backlog_since == 0 && RetryIsBacklogged() && my_async_end == 0)
		backlog_since = GetCurrentTimestamp();
	cxt = AllocSetContextCreate(CurrentMemoryContext, "bmfredis retry drain",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	if (sh)
	{
		Assert(OidIsValid(MyDatabaseId));
		if (!exit_hook_registered)
		{
			before_shmem_exit(draining_exit, (Datum) 0);
			exit_hook_registered = true;
		}
		/*
		 * Someone else (the worker) may be draining: wait a little for it,
		 * then drain what is left ourselves.  Not long: a reader that finds
		 * the backlog still there reads a miss instead (client.c), which is
		 * always safe, and a drain stuck on a frozen Redis must not hold
		 * every reader for its whole timeout.
		 */
		wait_until = Min(deadline, BmfDeadline(RETRY_WAIT_MS));
		/* this session's own COMMITs that did not wait: wait for them */
		if (my_async_end != 0)
			wait_until = deadline;
		for (;;)
		{
			if (pg_atomic_test_set_flag(&sh->draining))
			{
				acquired = true;
				break;
			}
			if (!wait || GetCurrentTimestamp() >= wait_until || !RetryIsBacklogged())
				break;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 1, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		if (acquired)
		{
			i_am_draining = true;
			PG_TRY();
			{
				drain_shared(sh, deadline);
			}
			PG_CATCH();
			{
				pg_atomic_clear_flag(&sh->draining);
				i_am_draining = false;
				PG_RE_THROW();
			}
			PG_END_TRY();
			pg_atomic_clear_flag(&sh->draining);
			i_am_draining = false;
			drained_log();
		}
	}
	else
		drain_local(deadline);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * What this database has waiting: *backlog, entries a failure left (or a
 * namespace); *any, entries of any kind; *mine, entries queued before this
 * session's last COMMIT that did not wait.  The common answer, an empty
 * ring, costs an atomic read.  Otherwise the ring is scanned for this
 * database's entries, and the answer kept until the ring changes (its
 * generation): a database whose ring is clear need not scan again on
 * every call while another database's entries wait.
 */
static void
shared_pending(BmfSharedState *sh, bool *backlog, bool *any, bool *mine)
{
	static uint64 known_generation = 0;
	static uint64 known_end = 0;
	static bool known[3];
	uint64		pos;
	RingHeader *h;
	int			i;

	*backlog = *any = *mine = false;
	if (pg_atomic_read_u32(&sh->entries) == 0 && sh->nnamespaces == 0)
	{
		my_async_end = 0;
		return;
	}
	LWLockAcquire(sh->lock, LW_SHARED);
	if (known_generation == sh->generation && known_generation != 0 &&
		known_end == my_async_end)
	{
		LWLockRelease(sh->lock);
		*backlog = known[0];
		*any = known[1];
		*mine = known[2];
		return;
	}
	for (i = 0; i < sh->nnamespaces && !*backlog; i++)
		*backlog = (sh->namespaces[i].dboid == MyDatabaseId);
	*any = *backlog;
	for (pos = sh->tail; !(*backlog && *mine) &&
		 (h = ring_at(sh, &pos, sh->head)) != NULL; pos += h->size)
	{
		if (!h->done && h->dboid == MyDatabaseId)
		{
			*any = true;
			*backlog |= !h->async;
			*mine |= pos < my_async_end;
		}
	}
	if (!*mine)
		my_async_end = 0;		/* all sent */
	known_generation = sh->generation;
	known_end = my_async_end;
	known[0] = *backlog;
	known[1] = *any;
	known[2] = *mine;
	LWLockRelease(sh->lock);
}

bool
RetryIsBacklogged(void)
{
	BmfSharedState *sh = BmfShared();
	bool		backlog,
				any,
				mine;

	if (cold_blocked)
		return true;			/* a cold start that found no room to queue */
	if (sh == NULL)
		return local_n > 0 || local_nns > 0;
	shared_pending(sh, &backlog, &any, &mine);
	return backlog || mine;
}

bool
RetryHasWork(void)
{
	BmfSharedState *sh = BmfShared();
	bool		backlog,
				any,
				mine;

	if (cold_blocked)
		return true;
	if (sh == NULL)
		return local_n > 0 || local_nns > 0;
	shared_pending(sh, &backlog, &any, &mine);
	return any;
}

void
RetryPending(int64 *entries, int *namespaces)
{
	BmfSharedState *sh = BmfShared();

	if (sh)
	{
		*entries = pg_atomic_read_u32(&sh->entries);
		*namespaces = sh->nnamespaces;
	}
	else
	{
		*entries = local_n;
		*namespaces = local_nns;
	}
}

void
RetryPendingFor(Oid dboid, int64 *entries, int *namespaces)
{
	BmfSharedState *sh = BmfShared();
	uint64		pos;
	RingHeader *h;
	int			i;

	*entries = 0;
	*namespaces = 0;
	if (sh == NULL)
	{
		if (dboid == MyDatabaseId)
			RetryPending(entries, namespaces);
		return;
	}
	LWLockAcquire(sh->lock, LW_SHARED);
	for (i = 0; i < sh->nnamespaces; i++)
		*namespaces += (sh->namespaces[i].dboid == dboid);
	for (pos = sh->tail; (h = ring_at(sh, &pos, sh->head)) != NULL; pos += h->size)
	{
		*entries += (!h->done && h->dboid == dboid);
	}
	LWLockRelease(sh->lock);
}

/*
 * Forget what a database queued: it was dropped, or its extension was
 * (nobody asks for its cache to be kept true any more).  Logged.
 */
void
RetryDiscardDatabase(Oid dboid)
{
	BmfSharedState *sh = BmfShared();
	uint64		pos;
	RingHeader *h;
	int			i;
	int			kept = 0;
	int64		discarded = 0;
	int			namespaces = 0;

	if (sh == NULL)
		return;
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	for (i = 0; i < sh->nnamespaces; i++)
	{
		if (sh->namespaces[i].dboid == dboid)
			namespaces++;
		else
			sh->namespaces[kept++] = sh->namespaces[i];
	}
	sh->nnamespaces = kept;
	for (pos = sh->tail; (h = ring_at(sh, &pos, sh->head)) != NULL; pos += h->size)
	{
		if (!h->done && h->dboid == dboid)
		{
			h->done = true;
			discarded++;
		}
	}
	if (discarded > 0)
		pg_atomic_fetch_sub_u32(&sh->entries, (uint32) discarded);
	advance_tail(sh);
	sh->generation++;
	LWLockRelease(sh->lock);
	if (discarded > 0 || namespaces > 0)
		elog(LOG, "bmfredis: discarded %lld waiting invalidations or messages and %d namespaces of database %u, which no longer has the extension",
			 (long long) discarded, namespaces, dboid);
}

/* ---- across restarts (the file itself is durable.c's) ---- */

/*
 * Every entry not yet sent, as the ring holds it (header, target and
 * argument), appended to out; how many.  Only when no other process runs:
 * the postmaster, shutting down.
 */
int
RetrySerialize(StringInfo out)
{
	BmfSharedState *sh = BmfShared();
	uint64		pos;
	RingHeader *h;
	int			n = 0;

	if (sh == NULL)
		return 0;
	for (pos = sh->tail; (h = ring_at(sh, &pos, sh->head)) != NULL; pos += h->size)
	{
		if (!h->done)
		{
			appendBinaryStringInfo(out, (const char *) h, h->size);
			n++;
		}
	}
	return n;
}

/*
 * Put back n entries that RetrySerialize wrote (len bytes), checking each
 * as it goes: false when they are not what it writes (nothing is put back
 * then).  *lost: entries that did not fit (the ring is smaller now).
 * Only when no other process runs: the postmaster, starting.
 */
bool
RetryRestore(const char *data, Size len, int n, int *lost)
{
	BmfSharedState *sh = BmfShared();
	Size		pos;
	int			i;

	*lost = 0;
	if (sh == NULL)
		return false;
	for (pos = 0, i = 0; i < n; i++)
	{
		RingHeader	h;

		if (len - pos < sizeof(RingHeader))
			return false;
		memcpy(&h, data + pos, sizeof(RingHeader));
		if ((Size) h.size > len - pos || h.target_len > h.size || h.arg_len > h.size ||
			h.size != MAXALIGN(sizeof(RingHeader) + h.target_len + h.arg_len) ||
			h.target_len == 0 || h.done ||
			(h.kind != EFFECT_KEY && h.kind != EFFECT_TAG && h.kind != EFFECT_PATTERN &&
			 h.kind != EFFECT_TAG_PATTERN && h.kind != EFFECT_EXPIRE_AT &&
			 h.kind != EFFECT_PUBLISH && h.kind != EFFECT_XADD))
			return false;
		pos += h.size;
	}
	if (pos != len)
		return false;
	for (pos = 0, i = 0; i < n; i++)
	{
		RingHeader	h;
		const char *p = data + pos;

		memcpy(&h, p, sizeof(RingHeader));
		if (!ring_put(sh, h.kind, h.db, h.dboid, false, p + sizeof(RingHeader), h.target_len,
					  p + sizeof(RingHeader) + h.target_len, h.arg_len))
			(*lost)++;
		pos += h.size;
	}
	sh->generation++;
	return true;
}

/* ---- the cold start (durable.c decides it; each database acts here) ---- */

/*
 * The namespaces a cold start invalidates for this process: its own, and
 * the one its settings had before any SET in the session (the database's,
 * or the role's), which is what other sessions of the database use.
 */
static bool
cold_namespaces(BmfSharedState *sh)
{
	const char *reset_prefix = GetConfigOptionResetString("bmfredis.key_prefix");
	const char *reset_db = GetConfigOptionResetString("bmfredis.db");
	bool		queued = true;

	if (reset_prefix && reset_db)
		queued &= ns_add(sh->namespaces, &sh->nnamespaces, atoi(reset_db), reset_prefix);
	queued &= ns_add(sh->namespaces, &sh->nnamespaces, BmfDb(), bmf_key_prefix);
	return queued;
}

/*
 * A cold start begins (the caller holds sh->lock exclusively, or is the
 * postmaster with nobody else running).  again: every database does it
 * again, even those done with one under way.
 */
void
RetryColdBegin(BmfSharedState *sh, const char *reason, bool again)
{
	if (!sh->cold || again)
		sh->ncold_done = 0;
	sh->cold = true;
	strlcpy(sh->cold_reason, reason, sizeof(sh->cold_reason));
	sh->cold_epoch++;
	sh->generation++;
}

/*
 * A standby that was promoted (or a point-in-time recovery that ended):
 * the first process to see it begins a cold start, logged once.
 */
static void
promotion_check(BmfSharedState *sh)
{
	bool		begun = false;

	if (!sh->cold_at_promotion || RecoveryInProgress())
		return;
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	if (sh->cold_at_promotion)
	{
		RetryColdBegin(sh, "this server left recovery (a standby promoted, or a point-in-time recovery ended)", true);
		/* the new epoch before the flag: a reader that sees one sees both */
		pg_write_barrier();
		sh->cold_at_promotion = false;
		begun = true;
	}
	LWLockRelease(sh->lock);
	if (begun)
		ereport(LOG,
				(errmsg("bmfredis: the cache starts cold: this server left recovery (a standby promoted, or a point-in-time recovery ended)"),
				 errdetail("What the old primary had still to send to Redis is unknown: each database's namespace (bmfredis.key_prefix) will be invalidated once Redis answers, before the database reads from it.")));
}

void
RetryColdCheck(bool worker)
{
	static uint32 checked_epoch = 0;
	BmfSharedState *sh = BmfShared();
	bool		queued = false;
	bool		first = false;
	char		reason[sizeof(sh->cold_reason)];
	int			i;

	if (sh == NULL)
		return;
	if (unlikely(sh->cold_at_promotion))
		promotion_check(sh);
	pg_read_barrier();
	/* once a process and cold start: the state began before it */
	if (checked_epoch == sh->cold_epoch)
		return;
	checked_epoch = sh->cold_epoch;
	if (!sh->cold || !OidIsValid(MyDatabaseId))
		return;
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	for (i = 0; i < sh->ncold_done && sh->cold_done[i] != MyDatabaseId; i++)
		;
	/* the worker, with the database's settings, always; a backend if first */
	if (sh->cold && (worker || i == sh->ncold_done))
	{
		first = (i == sh->ncold_done);
		queued = cold_namespaces(sh);
		/* done only once queued: with no room, this process tries again */
		if (queued && first && sh->ncold_done < BMF_MAX_COLD)
			sh->cold_done[sh->ncold_done++] = MyDatabaseId;
		strlcpy(reason, sh->cold_reason, sizeof(reason));
		sh->generation++;
	}
	LWLockRelease(sh->lock);
	cold_blocked = (first || worker) && !queued;
	if (cold_blocked)
	{
		checked_epoch = 0;
		return;
	}
	if (!queued)
		return;
	if (first)
		BmfStatsCount(STAT_COLD_STARTS, 1);	/* once a database */
	ereport(LOG,
			(errmsg("bmfredis: every key under prefix \"%s\" (Redis database %d) will be invalidated once Redis answers, before this database reads from it",
					bmf_key_prefix, BmfDb()),
			 errdetail("The cache starts cold: %s, so what committed transactions had still to send is unknown.",
					   reason)));
	BmfWakeWorker(MyDatabaseId);
}

void
RetryColdSettle(const Oid *dboids, int n)
{
	BmfSharedState *sh = BmfShared();
	int			i;
	int			j;

	if (sh == NULL || !sh->cold)
		return;
	LWLockAcquire(sh->lock, LW_EXCLUSIVE);
	for (i = 0; i < n; i++)
	{
		for (j = 0; j < sh->ncold_done && sh->cold_done[j] != dboids[i]; j++)
			;
		if (j == sh->ncold_done)
			break;
	}
	if (i == n && sh->cold)
	{
		sh->cold = false;
		sh->ncold_done = 0;
	}
	LWLockRelease(sh->lock);
	if (i == n)
		elog(LOG, "bmfredis: every database with the extension has queued its cold-start invalidation");
}

static RedisBacklog
before_call(const RedisNode *node)
{
	/* the drain's own sends (a COMMIT that drains): it is the drain */
	if (i_am_draining)
		return REDIS_BACKLOG_NONE;
	RetryColdCheck(false);
	if (!RetryIsBacklogged())
		return REDIS_BACKLOG_NONE;
	if (!PoolNodeIsDown(node->ep.name, NULL))
		RetryDrain(BmfDeadline(bmf_command_timeout), true);
	return RetryIsBacklogged() ? REDIS_BACKLOG_WAITING : REDIS_BACKLOG_SENT;
}

void
RetryInstallHook(void)
{
	redis_before_call_hook = before_call;
}
