/*-------------------------------------------------------------------------
 *
 * stats.c
 *		Counters, shared (atomics in shared memory) when preloaded, else
 *		kept per backend.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "launcher.h"
#include "retry.h"
#include "shmem.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(redis_stats_values);
PG_FUNCTION_INFO_V1(redis_stats_reset);

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
	"streams",
	"stream_failures",
	"publishes",
	"messages_relayed",
	"payloads_stored",
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

const char *const bmf_class_names[CLASS_COUNT] = {
	"read", "write", "invalidate", "publish", "lock", "other"
};

static int64 local_counters[STAT_COUNT];
static uint64 local_latency[CLASS_COUNT][LATENCY_BUCKETS];

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

/* The upper bound of bucket b, in microseconds. */
static double
bucket_upper(int b)
{
	int			p;

	if (b == 0)
		return 1;
	p = (b - 1) / 2;
	return ((b - 1) % 2) ? (double) (2ULL << p) : (double) (1ULL << p) * 1.5;
}

void
BmfStatsLatency(BmfCmdClass cls, int64 usec)
{
	BmfSharedState *sh = BmfShared();
	int			b = latency_bucket(usec);

	if (sh)
		pg_atomic_fetch_add_u64(&sh->latency[cls][b], 1);
	else
		local_latency[cls][b]++;
}

static uint64
latency_count(BmfCmdClass cls, int b)
{
	BmfSharedState *sh = BmfShared();

	return sh ? pg_atomic_read_u64(&sh->latency[cls][b]) : local_latency[cls][b];
}

/* calls, and the p50 and p99 upper bounds in ms (-1 without calls) */
static void
latency_summary(BmfCmdClass cls, uint64 *calls, double *p50, double *p99)
{
	uint64		counts[LATENCY_BUCKETS];
	uint64		total = 0;
	uint64		seen = 0;
	int			b;

	*p50 = *p99 = -1;
	for (b = 0; b < LATENCY_BUCKETS; b++)
		total += (counts[b] = latency_count(cls, b));
	*calls = total;
	if (total == 0)
		return;
	for (b = 0; b < LATENCY_BUCKETS; b++)
	{
		seen += counts[b];
		if (*p50 < 0 && seen * 2 >= total)
			*p50 = bucket_upper(b) / 1000.0;
		if (*p99 < 0 && seen * 100 >= total * 99)
		{
			*p99 = bucket_upper(b) / 1000.0;
			break;
		}
	}
}

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
	for (i = 0; i < CLASS_COUNT * LATENCY_BUCKETS; i++)
	{
		if (sh)
			pg_atomic_write_u64(&sh->latency[i / LATENCY_BUCKETS][i % LATENCY_BUCKETS], 0);
		local_latency[i / LATENCY_BUCKETS][i % LATENCY_BUCKETS] = 0;
	}
	if (sh)
		sh->stats_reset = GetCurrentTimestamp();
}

bool
BmfStatsShared(void)
{
	return BmfShared() != NULL;
}

static void
put(ReturnSetInfo *rsinfo, const char *name, double value, const char *scope)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	values[0] = CStringGetTextDatum(name);
	/* NaN stands for "no value yet" (a ratio of nothing): NULL */
	nulls[1] = isnan(value);
	values[1] = nulls[1] ? (Datum) 0 : DirectFunctionCall1(float8_numeric, Float8GetDatum(value));
	values[2] = CStringGetTextDatum(scope);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * redis_stats_values() -> setof (name, value, scope): every counter, the
 * hit rate, per command class the calls and p50/p99 latency (upper bound
 * of a histogram bucket, 25% wide, in ms), and the retry queue.  scope is
 * "cluster" when the counters are shared, "backend" otherwise.
 */
Datum
redis_stats_values(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BmfSharedState *sh = BmfShared();
	const char *scope = sh ? "cluster" : "backend";
	int64		hits = BmfStatsGet(STAT_CACHE_HITS);
	int64		misses = BmfStatsGet(STAT_CACHE_MISSES);
	int64		pending;
	int			namespaces;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (!sh)
		ereport(NOTICE,
				(errmsg("bmfredis statistics are for this backend only"),
				 errhint("Add bmfredis to shared_preload_libraries for statistics across all backends.")));
	for (i = 0; i < STAT_COUNT; i++)
		put(rsinfo, bmf_stat_names[i], (double) BmfStatsGet(i), scope);
	/* no reads, no rate: NULL, as redis_health() shows it */
	put(rsinfo, "hit_rate", hits + misses > 0 ? (double) hits / (hits + misses) : get_float8_nan(), scope);
	for (i = 0; i < CLASS_COUNT; i++)
	{
		uint64		calls;
		double		p50;
		double		p99;
		char		name[64];

		latency_summary(i, &calls, &p50, &p99);
		snprintf(name, sizeof(name), "latency_%s_calls", bmf_class_names[i]);
		put(rsinfo, name, (double) calls, scope);
		if (calls == 0)
			continue;
		snprintf(name, sizeof(name), "latency_%s_p50_ms", bmf_class_names[i]);
		put(rsinfo, name, p50, scope);
		snprintf(name, sizeof(name), "latency_%s_p99_ms", bmf_class_names[i]);
		put(rsinfo, name, p99, scope);
	}
	RetryPending(&pending, &namespaces);
	put(rsinfo, "retry_queue_entries", (double) pending, scope);
	put(rsinfo, "retry_queue_namespaces", (double) namespaces, scope);
	if (sh)
	{
		long		secs;
		int			usecs;
		int			channels;
		pid_t		pid = BmfWorkerPid(MyDatabaseId, &channels);

		TimestampDifference(sh->stats_reset, GetCurrentTimestamp(), &secs, &usecs);
		put(rsinfo, "seconds_since_reset", (double) secs, scope);
		put(rsinfo, "worker_running", pid != 0, scope);
		put(rsinfo, "subscriber_running", pid != 0 && channels > 0, scope);
	}
	return (Datum) 0;
}

Datum
redis_stats_reset(PG_FUNCTION_ARGS)
{
	(void) fcinfo;
	BmfStatsReset();
	PG_RETURN_VOID();
}
