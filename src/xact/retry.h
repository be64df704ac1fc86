/*-------------------------------------------------------------------------
 *
 * retry.h
 *		Effects that could not be sent after commit, kept until Redis
 *		answers again: in a shared ring drained by the background worker
 *		(and by any backend before it talks to Redis) when the library is
 *		preloaded, or in the backend itself otherwise.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_RETRY_H
#define BMFREDIS_RETRY_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "xact/effects.h"

/*
 * Keep the effects not marked done, for logical database db under key
 * prefix prefix.  When the queue is full, the namespace (every key under
 * the prefix) is remembered instead, to be invalidated whole.  Does not
 * throw except for out-of-memory in the non-shared queue.
 */
extern void RetryEnqueue(const Effect *effects, const bool *done, int n,
						 int db, const char *prefix);
/*
 * A COMMIT that does not wait (bmfredis.commit_wait = off): its effects go
 * to the shared queue and the database's worker, woken, sends them with
 * other sessions'.  This session's own reads wait for them (or miss) until
 * they are sent; other sessions' do not, unless sending them fails.  false
 * (nothing queued: COMMIT sends them itself) when there is no shared queue,
 * no worker running for this Redis and key prefix (ns_hash), no room, or a
 * message for a stream among them.
 */
extern bool RetryEnqueueAsync(const Effect *effects, int n, int db, uint64 ns_hash);
/* Has this session's own COMMIT that did not wait something still queued? */
extern bool RetryOwnPending(void);
/* Remember a namespace to invalidate whole; never allocates or throws. */
extern void RetryEnqueueNamespace(int db, const char *prefix);

/*
 * Send what this database queued, until the deadline; quiet about Redis
 * faults.  With
 * wait, when another process is draining, wait for it (a reader must not
 * read past invalidations being sent); without, leave it the work.
 */
extern void RetryDrain(TimestampTz deadline, bool wait);

/*
 * Must this session wait for (or miss past) what waits: a failure's
 * backlog of this database, or its own COMMITs' that did not wait?
 */
extern bool RetryIsBacklogged(void);
/* Does this database have anything waiting, of any kind (the worker's)? */
extern bool RetryHasWork(void);
extern bool RetryIsShared(void);
/* entries and namespaces waiting, of every database */
extern void RetryPending(int64 *entries, int *namespaces);
/* the same for one database */
extern void RetryPendingFor(Oid dboid, int64 *entries, int *namespaces);
/* forget what a database queued (it was dropped, or its extension was) */
extern void RetryDiscardDatabase(Oid dboid);

/* the client hook: drain before this backend uses Redis again */
extern void RetryInstallHook(void);

/*
 * Across a restart (durable.c): the entries not yet sent, as bytes, and
 * back; only in the postmaster, while no other process runs.
 */
extern int	RetrySerialize(StringInfo out);
extern bool RetryRestore(const char *data, Size len, int n, int *lost);

/*
 * After a crash or an unclean stop (durable.c): the first backend of each
 * database to talk to Redis queues the invalidation of its namespaces (its
 * own, and its settings' before any SET), and the database's worker that
 * of the database's settings as it starts.  Cheap when there is nothing to
 * do.  RetryColdInit: from _PG_init when preloading.
 */
extern void RetryColdCheck(bool worker);
struct BmfSharedState;
extern void RetryColdBegin(struct BmfSharedState *sh, const char *reason, bool again);
extern void RetryColdInit(void);
/* the launcher: every database with a worker has checked; the state ends */
extern void RetryColdSettle(const Oid *dboids, int n);

#endif							/* BMFREDIS_RETRY_H */
