/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Counters and latency histograms: atomics in a shared block of
 *		their own when the library is preloaded, else kept per backend.
 *
 * This file owns its block ("bmfredis stats"): it asks for it in the
 * shared memory request hook and makes it in the startup hook, as
 * pg_stat_statements does with its own.  Counters only ever grow (or are
 * zeroed by a reset), so they need no lock: atomics are enough, and a
 * reader may see one counter of a reset before another.  The SQL functions
 * that show them are in feature/metrics.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "base/stats.h"

const char *const bmf_stat_names[STAT_COUNT] = {
	"cache_hits",
	"cache_misses",
	"cache_sets",
	"cached_waits",
	"cached_early_recomputes",
	"cached_bypassed",
	"invalidations_queued",
	"invalidations_sent",
	"invalidations_failed",
	"invalidations_retried",
	"retry_dropped",
	"namespace_flushes",
	"queue_collapses",
	"cold_starts",
	"streams",
	"stream_failures",
	"publishes",
	"messages_relayed",
	"payloads_stored",
	"locks_acquired",
	"lock_waits",
	"lock_timeouts",
	"locks_lost",
	"errors_connect",
	"errors_timeout",
	"errors_io",
	"errors_protocol",
	"errors_reply",
	"errors_down",
	"reconnects"
};

const char *const bmf_class_names[CLASS_COUNT] = {
	"read", "write", "invalidate", "publish", "lock", "other"
};

typedef struct StatsBlock
{
	pg_atomic_uint64 counters[STAT_COUNT];
	pg_atomic_uint64 latency[CLASS_COUNT][LATENCY_BUCKETS];
	pg_atomic_uint64 latency_sum_us[CLASS_COUNT];	/* for the histogram's _sum */
	TimestampTz reset;			/* written by a reset; a plain 8-byte store */
} StatsBlock;

static StatsBlock *block = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static int64 local_counters[STAT_COUNT];
static uint64 local_latency[CLASS_COUNT][LATENCY_BUCKETS];
static uint64 local_latency_sum_us[CLASS_COUNT];

static void
stats_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(StatsBlock)));
}

static void
stats_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	block = ShmemInitStruct("bmfredis stats", sizeof(StatsBlock), &found);
	if (!found)
	{
		for (i = 0; i < STAT_COUNT; i++)
			pg_atomic_init_u64(&block->counters[i], 0);
		for (i = 0; i < CLASS_COUNT * LATENCY_BUCKETS; i++)
			pg_atomic_init_u64(&block->latency[i / LATENCY_BUCKETS][i % LATENCY_BUCKETS], 0);
		for (i = 0; i < CLASS_COUNT; i++)
			pg_atomic_init_u64(&block->latency_sum_us[i], 0);
		block->reset = GetCurrentTimestamp();
	}
	LWLockRelease(AddinShmemInitLock);
}

void
BmfStatsShmemInit(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = stats_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = stats_startup;
}

bool
BmfStatsShared(void)
{
	return block != NULL;
}

static int
latency_bucket(int64 usec)
{
	int			b;

	if (usec < 1)
		return 0;
	b = 63 - __builtin_clzll((uint64) usec);	/* floor(log2) */
	b = 2 * b + ((usec >> Max(b - 1, 0)) & 1 && b > 0 ? 1 : 0) + 1;
	return Min(b, LATENCY_BUCKETS - 1);
}

void
BmfStatsLatency(BmfCmdClass cls, int64 usec)
{
	int			b = latency_bucket(usec);

	if (usec < 0)
		usec = 0;
	if (block)
	{
		pg_atomic_fetch_add_u64(&block->latency[cls][b], 1);
		pg_atomic_fetch_add_u64(&block->latency_sum_us[cls], (uint64) usec);
	}
	else
	{
		local_latency[cls][b]++;
		local_latency_sum_us[cls] += (uint64) usec;
	}
}

uint64
BmfStatsLatencyCount(BmfCmdClass cls, int b)
{
	return block ? pg_atomic_read_u64(&block->latency[cls][b]) : local_latency[cls][b];
}

uint64
BmfStatsLatencySumUs(BmfCmdClass cls)
{
	return block ? pg_atomic_read_u64(&block->latency_sum_us[cls]) : local_latency_sum_us[cls];
}

void
BmfStatsCount(BmfStat stat, int64 n)
{
	if (block)
		pg_atomic_fetch_add_u64(&block->counters[stat], (uint64) n);
	else
		local_counters[stat] += n;
}

int64
BmfStatsGet(BmfStat stat)
{
	if (block)
		return (int64) pg_atomic_read_u64(&block->counters[stat]);
	return local_counters[stat];
}

TimestampTz
BmfStatsResetTime(void)
{
	return block ? block->reset : 0;
}

void
BmfStatsReset(void)
{
	int			i;

	for (i = 0; i < STAT_COUNT; i++)
	{
		if (block)
			pg_atomic_write_u64(&block->counters[i], 0);
		local_counters[i] = 0;
	}
	for (i = 0; i < CLASS_COUNT * LATENCY_BUCKETS; i++)
	{
		if (block)
			pg_atomic_write_u64(&block->latency[i / LATENCY_BUCKETS][i % LATENCY_BUCKETS], 0);
		local_latency[i / LATENCY_BUCKETS][i % LATENCY_BUCKETS] = 0;
	}
	for (i = 0; i < CLASS_COUNT; i++)
	{
		if (block)
			pg_atomic_write_u64(&block->latency_sum_us[i], 0);
		local_latency_sum_us[i] = 0;
	}
	if (block)
		block->reset = GetCurrentTimestamp();
}
