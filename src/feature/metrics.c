/*-------------------------------------------------------------------------
 *
 * metrics.c
 *		The statistics as SQL: redis_stats (name, value, scope rows for a
 *		person at psql), redis_metrics() (Prometheus names, types and
 *		labels for a monitoring stack) and redis_stats_reset().
 *
 * The counters themselves are base/stats.c's; this file adds what only a
 * feature may know (the retry queue's size, this database's worker).
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

#include "base/guc.h"
#include "base/shmem.h"
#include "base/stats.h"
#include "client/client.h"
#include "xact/retry.h"

PG_FUNCTION_INFO_V1(redis_stats_values);
PG_FUNCTION_INFO_V1(redis_stats_reset);
PG_FUNCTION_INFO_V1(redis_metrics);

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
		total += (counts[b] = BmfStatsLatencyCount(cls, b));
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
	bool		shared = BmfStatsShared();
	const char *scope = shared ? "cluster" : "backend";
	int64		hits = BmfStatsGet(STAT_CACHE_HITS);
	int64		misses = BmfStatsGet(STAT_CACHE_MISSES);
	int64		pending;
	int			namespaces;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (!shared)
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
	if (shared)
	{
		long		secs;
		int			usecs;
		int			channels;
		pid_t		pid = BmfWorkerPid(MyDatabaseId, &channels);

		TimestampDifference(BmfStatsResetTime(), GetCurrentTimestamp(), &secs, &usecs);
		put(rsinfo, "seconds_since_reset", (double) secs, scope);
		put(rsinfo, "worker_running", pid != 0, scope);
		put(rsinfo, "subscriber_running", pid != 0 && channels > 0, scope);
	}
	/* the near-cache is this backend's own: shown where it is on or was used */
	{
		const RedisNearStats *n = RedisNearGetStats();

		if (bmf_near_cache || n->hits + n->misses > 0)
		{
			put(rsinfo, "near_cache_hits", (double) n->hits, "backend");
			put(rsinfo, "near_cache_misses", (double) n->misses, "backend");
			put(rsinfo, "near_cache_entries", (double) n->entries, "backend");
			put(rsinfo, "near_cache_bytes", (double) n->bytes, "backend");
			put(rsinfo, "near_cache_evictions_memory", (double) n->evictions_memory, "backend");
			put(rsinfo, "near_cache_evictions_lifetime", (double) n->evictions_lifetime, "backend");
			put(rsinfo, "near_cache_invalidations", (double) n->invalidations, "backend");
			put(rsinfo, "near_cache_full_flushes", (double) n->full_flushes, "backend");
			put(rsinfo, "near_cache_rejections", (double) n->rejections, "backend");
			put(rsinfo, "near_cache_syncs", (double) n->syncs, "backend");
		}
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

/* ---- metrics for a monitoring stack ---- */

/*
 * The counters as Prometheus names them.  The names, types and labels are
 * a stable interface (the README lists them, test/t/metrics.sh holds the
 * list to it): a counter is renamed or removed only with a major version.
 */
static const struct
{
	BmfStat		stat;
	const char *metric;
	const char *kind;			/* the label of bmfredis_errors_total */
	const char *help;
}			counter_metrics[] = {
	{STAT_CACHE_HITS, "bmfredis_cache_hits_total", NULL, "Cache reads that found a value (per key for multi-key reads)."},
	{STAT_CACHE_MISSES, "bmfredis_cache_misses_total", NULL, "Cache reads that found no value."},
	{STAT_CACHE_SETS, "bmfredis_cache_sets_total", NULL, "Cache writes."},
	{STAT_CACHED_WAITS, "bmfredis_cached_waits_total", NULL, "redis_cached calls that waited for another session's computation."},
	{STAT_CACHED_EARLY, "bmfredis_cached_early_recomputes_total", NULL, "redis_cached calls that recomputed a value before it expired."},
	{STAT_CACHED_BYPASSED, "bmfredis_cached_bypassed_total", NULL, "redis_cached calls that ran without the cache because their transaction had written."},
	{STAT_INVALIDATIONS_QUEUED, "bmfredis_invalidations_queued_total", NULL, "Keys, tags and patterns queued for invalidation at COMMIT."},
	{STAT_INVALIDATIONS_SENT, "bmfredis_invalidations_sent_total", NULL, "Invalidations sent at COMMIT."},
	{STAT_INVALIDATIONS_FAILED, "bmfredis_invalidations_failed_total", NULL, "Invalidations that could not be sent at COMMIT (they went to the retry queue)."},
	{STAT_INVALIDATIONS_RETRIED, "bmfredis_invalidations_retried_total", NULL, "Invalidations sent later from the retry queue."},
	{STAT_RETRY_DROPPED, "bmfredis_retry_dropped_total", NULL, "Retry queue overflows (each followed by a namespace flush)."},
	{STAT_NAMESPACE_FLUSHES, "bmfredis_namespace_flushes_total", NULL, "Whole-namespace invalidations after a retry queue overflow."},
	{STAT_QUEUE_COLLAPSES, "bmfredis_queue_collapses_total", NULL, "Transaction queues collapsed to patterns."},
	{STAT_COLD_STARTS, "bmfredis_cold_starts_total", NULL, "Namespaces invalidated whole after a crash or an unclean stop (one per database)."},
	{STAT_STREAMS, "bmfredis_streams_total", NULL, "Key and event streams of large transactions."},
	{STAT_STREAM_FAILURES, "bmfredis_stream_failures_total", NULL, "Streams dropped, whose items were then sent the ordinary way."},
	{STAT_PUBLISHES, "bmfredis_publishes_total", NULL, "Immediate publishes."},
	{STAT_MESSAGES_RELAYED, "bmfredis_messages_relayed_total", NULL, "Redis messages relayed as NOTIFY."},
	{STAT_PAYLOADS_STORED, "bmfredis_payloads_stored_total", NULL, "Relayed messages stored in bmfredis.notify_payloads because too large for NOTIFY."},
	{STAT_LOCKS_ACQUIRED, "bmfredis_locks_acquired_total", NULL, "Distributed locks acquired."},
	{STAT_LOCK_WAITS, "bmfredis_lock_waits_total", NULL, "Lock acquisitions that had to wait."},
	{STAT_LOCK_TIMEOUTS, "bmfredis_lock_timeouts_total", NULL, "Lock acquisitions that gave up waiting."},
	{STAT_LOCKS_LOST, "bmfredis_locks_lost_total", NULL, "Transaction locks and permits found lost before COMMIT (the transaction failed)."},
	{STAT_ERRORS_CONNECT, "bmfredis_errors_total", "connect", "Failed Redis calls, by kind."},
	{STAT_ERRORS_TIMEOUT, "bmfredis_errors_total", "timeout", "Failed Redis calls, by kind."},
	{STAT_ERRORS_IO, "bmfredis_errors_total", "io", "Failed Redis calls, by kind."},
	{STAT_ERRORS_PROTOCOL, "bmfredis_errors_total", "protocol", "Failed Redis calls, by kind."},
	{STAT_ERRORS_REPLY, "bmfredis_errors_total", "reply", "Failed Redis calls, by kind."},
	{STAT_ERRORS_DOWN, "bmfredis_errors_total", "down", "Failed Redis calls, by kind."},
	{STAT_RECONNECTS, "bmfredis_reconnects_total", NULL, "Reconnections to Redis."},
};

/* the histogram's buckets: every power of two of microseconds from 64 us */
#define METRIC_FIRST_POW 6
#define METRIC_LAST_POW 23

static void
metric(ReturnSetInfo *rsinfo, const char *name, const char *type,
	   const char *kind, const char *class, const char *le, double value,
	   const char *help)
{
	Datum		values[7];
	bool		nulls[7] = {false, false, kind == NULL, class == NULL, le == NULL, false, false};

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(type);
	values[2] = kind ? CStringGetTextDatum(kind) : (Datum) 0;
	values[3] = class ? CStringGetTextDatum(class) : (Datum) 0;
	values[4] = le ? CStringGetTextDatum(le) : (Datum) 0;
	values[5] = Float8GetDatum(value);
	values[6] = CStringGetTextDatum(help);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * redis_metrics() -> setof (metric, type, kind, class, le, value, help):
 * the statistics with Prometheus names and types, one row per sample, its
 * labels in the columns kind (bmfredis_errors_total), class and le (the
 * command duration histogram).  Reads shared memory only: it never talks
 * to Redis, so a scrape cannot hang on it.
 */
Datum
redis_metrics(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		shared = BmfStatsShared();
	int64		pending;
	int			namespaces;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	if (!shared)
		ereport(NOTICE,
				(errmsg("bmfredis statistics are for this backend only"),
				 errhint("Add bmfredis to shared_preload_libraries for statistics across all backends.")));
	for (i = 0; i < (int) lengthof(counter_metrics); i++)
		metric(rsinfo, counter_metrics[i].metric, "counter", counter_metrics[i].kind,
			   NULL, NULL, (double) BmfStatsGet(counter_metrics[i].stat),
			   counter_metrics[i].help);

	for (i = 0; i < CLASS_COUNT; i++)
	{
		const char *help = "Time of Redis calls, by command class (read, write, invalidate, publish, lock, other).";
		uint64		cum = 0;
		int			b = 0;
		int			pow;
		char		le[32];

		for (pow = METRIC_FIRST_POW; pow <= METRIC_LAST_POW; pow++)
		{
			/* buckets up to 2^pow us: bucket 2 * pow ends at 2^pow */
			for (; b <= 2 * pow && b < LATENCY_BUCKETS; b++)
				cum += BmfStatsLatencyCount(i, b);
			snprintf(le, sizeof(le), "%.6f", (double) (1ULL << pow) / 1e6);
			metric(rsinfo, "bmfredis_command_duration_seconds_bucket", "histogram",
				   NULL, bmf_class_names[i], le, (double) cum, help);
		}
		for (; b < LATENCY_BUCKETS; b++)
			cum += BmfStatsLatencyCount(i, b);
		metric(rsinfo, "bmfredis_command_duration_seconds_bucket", "histogram",
			   NULL, bmf_class_names[i], "+Inf", (double) cum, help);
		metric(rsinfo, "bmfredis_command_duration_seconds_sum", "histogram",
			   NULL, bmf_class_names[i], NULL,
			   (double) BmfStatsLatencySumUs(i) / 1e6,
			   help);
		metric(rsinfo, "bmfredis_command_duration_seconds_count", "histogram",
			   NULL, bmf_class_names[i], NULL, (double) cum, help);
	}

	RetryPending(&pending, &namespaces);
	metric(rsinfo, "bmfredis_retry_queue_entries", "gauge", NULL, NULL, NULL, (double) pending,
		   "Effects waiting in the retry queue for Redis, every database's.");
	metric(rsinfo, "bmfredis_retry_queue_namespaces", "gauge", NULL, NULL, NULL, (double) namespaces,
		   "Namespaces waiting for a flush after a retry queue overflow.");
	if (shared)
	{
		int			channels;
		pid_t		pid = BmfWorkerPid(MyDatabaseId, &channels);

		metric(rsinfo, "bmfredis_stats_reset_timestamp_seconds", "gauge", NULL, NULL, NULL,
			   (double) (BmfStatsResetTime() - SetEpochTimestamp()) / 1e6,
			   "When the statistics were last reset (server start or redis_stats_reset()), in Unix seconds.");
		metric(rsinfo, "bmfredis_worker_up", "gauge", NULL, NULL, NULL, pid != 0 ? 1 : 0,
			   "1 when this database's bmfredis worker runs.");
		metric(rsinfo, "bmfredis_relay_up", "gauge", NULL, NULL, NULL, pid != 0 && channels > 0 ? 1 : 0,
			   "1 when this database's worker relays Redis channels (bmfredis.subscribe) as NOTIFY.");
	}
	return (Datum) 0;
}
