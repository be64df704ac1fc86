/*-------------------------------------------------------------------------
 *
 * shmem.h
 *		bmfredis' shared memory: statistics, the retry queue, the worker's
 *		whereabouts.  Present only when the library is in
 *		shared_preload_libraries; BmfShared() is NULL otherwise.
 *
 * Locking: lock protects the retry ring's positions and the namespace
 * list; the counters are atomics; draining is a flag that lets one
 * process at a time send the ring's entries, without holding the lock
 * while it talks to Redis.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_SHMEM_H
#define BMFREDIS_SHMEM_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#include "stats.h"

#define BMF_MAX_NAMESPACES	64
#define BMF_PREFIX_MAX		256

typedef struct BmfNamespace
{
	int			db;
	char		prefix[BMF_PREFIX_MAX];
} BmfNamespace;

typedef struct BmfSharedState
{
	LWLock	   *lock;
	/* the retry ring: byte positions grow forever, modulo ring_size */
	uint64		head;
	uint64		tail;
	uint32		ring_size;
	pg_atomic_uint32 entries;
	pg_atomic_flag draining;
	/* namespaces to invalidate whole, after the ring overflowed */
	int			nnamespaces;
	BmfNamespace namespaces[BMF_MAX_NAMESPACES];
	/* the background workers */
	pid_t		worker_pid;
	pid_t		subscriber_pid;
	Latch	   *worker_latch;
	TimestampTz worker_last_drain;
	/* counters and latency histograms */
	pg_atomic_uint64 counters[STAT_COUNT];
	pg_atomic_uint64 latency[CLASS_COUNT][LATENCY_BUCKETS];
	TimestampTz stats_reset;
	char		ring[FLEXIBLE_ARRAY_MEMBER];
} BmfSharedState;

extern void BmfShmemInit(void);	/* from _PG_init, when preloading */
extern BmfSharedState *BmfShared(void);

/* bmfredis.retry_queue_size, bytes */
extern int	bmf_retry_queue_size;

#endif							/* BMFREDIS_SHMEM_H */
