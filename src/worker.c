/*-------------------------------------------------------------------------
 *
 * worker.c
 *		The bmfredis background worker (started when the library is in
 *		shared_preload_libraries): drains the retry queue once Redis
 *		answers, and runs scheduled invalidations that have come due.
 *
 * It connects to bmfredis.worker_database for the scheduled
 * invalidations (the bmfredis.scheduled_invalidations table of that
 * database; other databases run redis_run_scheduled() themselves).  It
 * wakes when a backend queues a retry (its latch), and every
 * bmfredis.worker_naptime otherwise; Redis faults are paced by the pool's
 * backoff.  It exits at once on SIGTERM or postmaster death and is
 * restarted by the postmaster if it dies.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "bmfredis.h"
#include "client.h"
#include "invalidate.h"
#include "retry.h"
#include "shmem.h"
#include "worker.h"

char	   *bmf_worker_database = NULL;
int			bmf_worker_naptime = 1000;

PGDLLEXPORT void bmfredis_worker_main(Datum arg);

void
BmfWorkerRegister(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "bmfredis");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "bmfredis_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "bmfredis worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "bmfredis worker");
	RegisterBackgroundWorker(&worker);
}

static void
run_scheduled(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "bmfredis: scheduled invalidations");
	if (OidIsValid(get_extension_oid("bmfredis", true)))
		RunScheduledInvalidations();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
bmfredis_worker_main(Datum arg)
{
	BmfSharedState *sh = BmfShared();

	(void) arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(bmf_worker_database, NULL, 0);

	sh->worker_pid = MyProcPid;
	sh->worker_latch = MyLatch;
	elog(LOG, "bmfredis worker started (database \"%s\")", bmf_worker_database);

	for (;;)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 bmf_worker_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (RetryIsBacklogged() &&
			!RedisPoolNodeIsDown(RedisDefaultNode()->ep.name, NULL))
			RetryDrain(TransportDeadline(Max(bmf_flush_timeout, bmf_command_timeout)), false);
		run_scheduled();
	}
}
