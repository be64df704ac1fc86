/*-------------------------------------------------------------------------
 *
 * shmem.c
 *		Allocation of bmfredis' shared memory (PostgreSQL 15 hooks).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "shmem.h"

int			bmf_retry_queue_size = 8 * 1024 * 1024;

static BmfSharedState *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/*
 * Worker slots: one per database that may be served.  Each served
 * database needs a background worker, so more than max_worker_processes
 * could never all run; the extra slots let redis_workers() show the
 * databases left without one.
 */
static int
worker_slots(void)
{
	return max_worker_processes * 2 + 16;
}

static Size
shared_size(void)
{
	return add_size(add_size(offsetof(BmfSharedState, ring), MAXALIGN(bmf_retry_queue_size)),
					mul_size(worker_slots(), sizeof(BmfDbWorker)));
}

static void
request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche("bmfredis", 2);
}

static void
startup_hook(void)
{
	bool		found;
	int			i;
	LWLockPadded *locks;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("bmfredis", shared_size(), &found);
	if (!found)
	{
		memset(shared, 0, offsetof(BmfSharedState, ring));
		locks = GetNamedLWLockTranche("bmfredis");
		shared->lock = &locks[0].lock;
		shared->workers_lock = &locks[1].lock;
		shared->ring_size = bmf_retry_queue_size;
		shared->nworkers = worker_slots();
		shared->workers = (BmfDbWorker *) (shared->ring + MAXALIGN(bmf_retry_queue_size));
		memset(shared->workers, 0, sizeof(BmfDbWorker) * shared->nworkers);
		pg_atomic_init_u32(&shared->entries, 0);
		pg_atomic_init_flag(&shared->draining);
		for (i = 0; i < STAT_COUNT; i++)
			pg_atomic_init_u64(&shared->counters[i], 0);
		for (i = 0; i < CLASS_COUNT * LATENCY_BUCKETS; i++)
			pg_atomic_init_u64(&shared->latency[i / LATENCY_BUCKETS][i % LATENCY_BUCKETS], 0);
		for (i = 0; i < CLASS_COUNT; i++)
			pg_atomic_init_u64(&shared->latency_sum_us[i], 0);
		shared->stats_reset = GetCurrentTimestamp();
	}
	LWLockRelease(AddinShmemInitLock);
}

void
BmfShmemInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = request_hook;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = startup_hook;
}

BmfSharedState *
BmfShared(void)
{
	return shared;
}
