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

static Size
shared_size(void)
{
	return add_size(offsetof(BmfSharedState, ring), bmf_retry_queue_size);
}

static void
request_hook(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(shared_size());
	RequestNamedLWLockTranche("bmfredis", 1);
}

static void
startup_hook(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("bmfredis", shared_size(), &found);
	if (!found)
	{
		memset(shared, 0, offsetof(BmfSharedState, ring));
		shared->lock = &(GetNamedLWLockTranche("bmfredis"))->lock;
		shared->ring_size = bmf_retry_queue_size;
		pg_atomic_init_u32(&shared->entries, 0);
		pg_atomic_init_flag(&shared->draining);
		for (i = 0; i < STAT_COUNT; i++)
			pg_atomic_init_u64(&shared->counters[i], 0);
		for (i = 0; i < CLASS_COUNT * LATENCY_BUCKETS; i++)
			pg_atomic_init_u64(&shared->latency[i / LATENCY_BUCKETS][i % LATENCY_BUCKETS], 0);
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
