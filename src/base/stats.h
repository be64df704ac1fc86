/*-------------------------------------------------------------------------
 *
 * stats.h
 *		Counters of what bmfredis did: in shared memory, across all
 *		backends, when the library is preloaded; per backend otherwise.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_STATS_H
#define BMFREDIS_STATS_H

#include "postgres.h"

#include "datatype/timestamp.h"

typedef enum BmfStat
{
	STAT_CACHE_HITS,
	STAT_CACHE_MISSES,
	STAT_CACHE_SETS,
	STAT_CACHED_WAITS,
	STAT_CACHED_EARLY,
	STAT_CACHED_BYPASSED,
	STAT_INVALIDATIONS_QUEUED,
	STAT_INVALIDATIONS_SENT,
	STAT_INVALIDATIONS_FAILED,
	STAT_INVALIDATIONS_RETRIED,
	STAT_RETRY_DROPPED,
	STAT_NAMESPACE_FLUSHES,
	STAT_QUEUE_COLLAPSES,
	STAT_COLD_STARTS,
	STAT_STREAMS,
	STAT_STREAM_FAILURES,
	STAT_PUBLISHES,
	STAT_MESSAGES_RELAYED,
	STAT_PAYLOADS_STORED,
	STAT_LOCKS_ACQUIRED,
	STAT_LOCK_WAITS,
	STAT_LOCK_TIMEOUTS,
	STAT_LOCKS_LOST,
	STAT_ERRORS_CONNECT,
	STAT_ERRORS_TIMEOUT,
	STAT_ERRORS_IO,
	STAT_ERRORS_PROTOCOL,
	STAT_ERRORS_REPLY,
	STAT_ERRORS_DOWN,
	STAT_RECONNECTS,
	STAT_COUNT
} BmfStat;

extern const char *const bmf_stat_names[STAT_COUNT];

/* Command classes whose latency is recorded. */
typedef enum BmfCmdClass
{
	CLASS_READ,
	CLASS_WRITE,
	CLASS_INVALIDATE,
	CLASS_PUBLISH,
	CLASS_LOCK,
	CLASS_OTHER,
	CLASS_COUNT
} BmfCmdClass;

extern const char *const bmf_class_names[CLASS_COUNT];

/* Latency histogram: two buckets per power of two of microseconds. */
#define LATENCY_BUCKETS 64

extern void BmfStatsLatency(BmfCmdClass cls, int64 usec);

/* per class and bucket: calls; per class: their total time */
extern uint64 BmfStatsLatencyCount(BmfCmdClass cls, int bucket);
extern uint64 BmfStatsLatencySumUs(BmfCmdClass cls);

extern void BmfStatsCount(BmfStat stat, int64 n);
extern int64 BmfStatsGet(BmfStat stat);
extern void BmfStatsReset(void);
/* the last reset (or the server's start); 0 when not shared */
extern TimestampTz BmfStatsResetTime(void);

/* From _PG_init when preloading: the shared block. */
extern void BmfStatsShmemInit(void);
/* Are the counters shared (preloaded), or this backend's? */
extern bool BmfStatsShared(void);

#endif							/* BMFREDIS_STATS_H */
