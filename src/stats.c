/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Counters, shared (atomics in shared memory) when preloaded, else
 *		kept per backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "shmem.h"
#include "stats.h"

const char *const bmf_stat_names[STAT_COUNT] = {
	"cache_hits",
	"cache_misses",
	"cache_sets",
	"invalidations_queued",
	"invalidations_sent",
	"invalidations_failed",
	"invalidations_retried",
	"retry_dropped",
	"namespace_flushes",
	"queue_collapses",
	"publishes",
	"locks_acquired",
	"lock_waits",
	"lock_timeouts",
	"errors_connect",
	"errors_timeout",
	"errors_io",
	"errors_protocol",
	"errors_reply",
	"errors_down",
	"reconnects"
};

static int64 local_counters[STAT_COUNT];

void
BmfStatsCount(BmfStat stat, int64 n)
{
	BmfSharedState *sh = BmfShared();

	if (sh)
		pg_atomic_fetch_add_u64(&sh->counters[stat], (uint64) n);
	else
		local_counters[stat] += n;
}

int64
BmfStatsGet(BmfStat stat)
{
	BmfSharedState *sh = BmfShared();

	if (sh)
		return (int64) pg_atomic_read_u64(&sh->counters[stat]);
	return local_counters[stat];
}

void
BmfStatsReset(void)
{
	BmfSharedState *sh = BmfShared();
	int			i;

	for (i = 0; i < STAT_COUNT; i++)
	{
		if (sh)
			pg_atomic_write_u64(&sh->counters[i], 0);
		local_counters[i] = 0;
	}
	if (sh)
		sh->stats_reset = GetCurrentTimestamp();
}

bool
BmfStatsShared(void)
{
	return BmfShared() != NULL;
}
