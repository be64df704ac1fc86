/*-------------------------------------------------------------------------
 *
 * worker.c
 *		A database's bmfredis worker (started by the launcher, launcher.c,
 *		for each database that has the extension): it sends the database's
 *		retried invalidations and messages once Redis answers, runs its
 *		scheduled invalidations when they come due, and relays the Redis
 *		channels of bmfredis.subscribe into NOTIFY (subscriber.c).
 *
 * It runs with the database's own settings (ALTER DATABASE ... SET
 * bmfredis.key_prefix, bmfredis.subscribe, the endpoint), which
 * PostgreSQL applies when a session connects.  They are applied only
 * then, so when they change the worker exits and the launcher starts it
 * again at once.  It also exits when the extension is dropped from its
 * database (and is not started again until CREATE EXTENSION), when a
 * command needs the database alone (DROP DATABASE), and on SIGTERM or
 * postmaster death.
 *
 * Each pass: look at the database (extension, settings), drain the retry
 * queue, run the scheduled invalidations, consume the streams of
 * bmfredis.stream_consumers (inbox.c); then relay messages until the
 * next pass (bmfredis.worker_naptime) or until woken (a backend queued a
 * retry, SIGHUP, the launcher).  Redis faults are paced by the pool's
 * backoff and never end the worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_db_role_setting.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "base/guc.h"
#include "base/shmem.h"
#include "base/sqlutil.h"
#include "base/wait.h"
#include "client/client.h"
#include "feature/inbox.h"
#include "feature/invalidate.h"
#include "pool/pool.h"
#include "worker/launcher.h"
#include "worker/subscriber.h"
#include "worker/worker.h"
#include "xact/retry.h"

/*
 * The database's own settings as stored (pg_db_role_setting, for every
 * role), as text: the worker compares them with what it started with.
 */
static char *
database_settings(void)
{
	Relation	rel;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *out = NULL;

	rel = table_open(DbRoleSettingRelationId, AccessShareLock);
	ScanKeyInit(&keys[0], Anum_pg_db_role_setting_setdatabase,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(MyDatabaseId));
	ScanKeyInit(&keys[1], Anum_pg_db_role_setting_setrole,
				BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(InvalidOid));
	scan = systable_beginscan(rel, DbRoleSettingDatidRolidIndexId, true, NULL, 2, keys);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_db_role_setting_setconfig,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			out = OidOutputFunctionCall(F_ARRAY_OUT, d);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return MemoryContextStrdup(TopMemoryContext, out ? out : "");
}

/*
 * Look at the database: is the extension there, are the settings the ones
 * this worker started with?  Runs the scheduled invalidations when it is.
 * Exits the worker when it should go.  Returns bmfredis.server when it
 * names no server (nothing scheduled was run), else NULL.
 */
static char *
database_pass(const char *settings, bool schedule)
{
	bool		present;
	char	   *now_settings;
	char	   *missing = NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	present = OidIsValid(get_extension_oid("bmfredis", true));
	now_settings = database_settings();
	if (present && RedisServerMissing())
		missing = MemoryContextStrdup(TopMemoryContext, RedisServerMissing());
	else if (present)
		(void) RedisDefaultNode();	/* an ALTER SERVER reaches the relay too */
	if (present && schedule && missing == NULL)
	{
		pgstat_report_activity(STATE_RUNNING, "bmfredis: scheduled invalidations");
		InvalidateRunScheduled();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);

	if (!present)
	{
		/* what it still had to send is not asked for any more */
		RetryDiscardDatabase(MyDatabaseId);
		ereport(LOG,
				(errmsg("bmfredis worker for database \"%s\" stops: the extension was dropped",
						PoolDatabaseName())));
		LauncherNoExtension();
		proc_exit(0);
	}
	if (strcmp(now_settings, settings) != 0)
	{
		ereport(LOG,
				(errmsg("bmfredis worker for database \"%s\" restarts: the database's settings changed",
						PoolDatabaseName())));
		LauncherRestartNow();
		proc_exit(0);
	}
	pfree(now_settings);
	return missing;
}

/*
 * bmfredis.server names a server that is gone (DROP EXTENSION ... CASCADE
 * drops it with its user mappings): say so once, and wait until it is made
 * again, the setting is reset (the worker restarts with the database's new
 * settings) or the extension goes, instead of failing and being restarted
 * every few seconds with the same error.
 */
/* Send what the retry queue holds for the database; did it send any? */
static bool
send_queue(void)
{
	int64		before,
				after;
	int			nns;

	if (!RetryHasWork() || PoolNodeIsDown(RedisDefaultNode()->ep.name, NULL))
		return false;
	pgstat_report_activity(STATE_RUNNING, "bmfredis: sending the retry queue");
	RetryPending(&before, &nns);
	RetryDrain(BmfDeadline(Max(bmf_flush_timeout, bmf_command_timeout)), false);
	RetryPending(&after, &nns);
	pgstat_report_activity(STATE_IDLE, NULL);
	return after < before;
}

static void
wait_for_server(const char *settings, const char *missing)
{
	char	   *note = psprintf("waiting: server \"%s\" named by bmfredis.server does not exist", missing);

	ereport(WARNING,
			(errmsg("bmfredis worker for database \"%s\" waits: server \"%s\" named by bmfredis.server does not exist",
					PoolDatabaseName(), missing),
			 errdetail("DROP EXTENSION bmfredis CASCADE drops the server with its user mappings."),
			 errhint("Make it again (CREATE SERVER %s FOREIGN DATA WRAPPER bmfredis OPTIONS (host '...', port '...'), and its user mappings), or reset bmfredis.server.",
					 missing)));
	for (;;)
	{
		bool		found;

		LauncherReport(BMF_WORKER_RUNNING, 0, note);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 bmf_worker_naptime * 5L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (LauncherStopRequested())
			proc_exit(0);
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* exits when the extension was dropped or the settings changed */
		found = database_pass(settings, false) == NULL;
		if (found)
		{
			SetCurrentStatementStartTimestamp();
			StartTransactionCommand();
			(void) RedisDefaultNode();
			CommitTransactionCommand();
		}
		if (found)
		{
			ereport(LOG,
					(errmsg("bmfredis worker for database \"%s\": server \"%s\" exists again",
							PoolDatabaseName(), missing)));
			LauncherReport(BMF_WORKER_RUNNING, 0, NULL);
			return;
		}
	}
}

void
bmfredis_worker_main(Datum arg)
{
	int			slotno = DatumGetInt32(arg);
	Oid			dboid;
	char	   *settings;
	bool		present;
	char		version[NAMEDATALEN];
	Relay	   *relay;
	TimestampTz next_pass = 0;
	const char *missing;

	memcpy(&dboid, MyBgworkerEntry->bgw_extra, sizeof(Oid));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	if (!LauncherAttach(slotno, dboid))
		proc_exit(0);			/* the launcher changed its mind meanwhile */
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	/* is the extension here at all, and which version are its objects? */
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	present = OidIsValid(get_extension_oid("bmfredis", true));
	if (present)
		BmfExtensionVersion(version, sizeof(version));
	PoolNoteDatabase();
	settings = database_settings();
	missing = present ? RedisServerMissing() : NULL;
	if (missing)
		missing = MemoryContextStrdup(TopMemoryContext, missing);
	else if (present)
		(void) RedisDefaultNode();	/* bmfredis.server's endpoint, from the catalogs */
	CommitTransactionCommand();
	if (!present)
	{
		LauncherNoExtension();
		proc_exit(0);
	}
	if (missing)
		wait_for_server(settings, missing);
	ereport(LOG,
			(errmsg("bmfredis worker serving database \"%s\"", PoolDatabaseName())));
	RetryColdCheck(true);		/* after a crash: this database's namespace */
	if (strcmp(version, BMFREDIS_VERSION) != 0)
		ereport(LOG,
				(errmsg("bmfredis in database \"%s\" has SQL objects of version %s, and the library is version %s",
						PoolDatabaseName(), version, BMFREDIS_VERSION),
				 errdetail("What version %s's objects do keeps working; what is new in %s is missing until the update.",
						   version, BMFREDIS_VERSION),
				 errhint("Run ALTER EXTENSION bmfredis UPDATE in that database.")));
	relay = RelayCreate();

	for (;;)
	{
		TimestampTz now;
		int			channels;
		bool		progressed;

		CHECK_FOR_INTERRUPTS();
		if (LauncherStopRequested())
		{
			RelayClose(relay);
			ereport(LOG,
					(errmsg("bmfredis worker for database \"%s\" stops while a command needs the database alone",
							PoolDatabaseName())));
			proc_exit(0);
		}
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		now = GetCurrentTimestamp();
		progressed = send_queue();
		if (now >= next_pass)
		{
			missing = database_pass(settings, true);
			if (missing)
			{
				RelayClose(relay);
				wait_for_server(settings, missing);
			}
			BmfSetNamespace(MyDatabaseId, RedisNamespaceHash());
			InboxPass();
			next_pass = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), bmf_worker_naptime);
		}
		channels = RelaySync(relay);
		LauncherReport(BMF_WORKER_RUNNING, channels, NULL);
		/*
		 * Work left after a drain that sent something (more came meanwhile):
		 * look again in a moment, not at the next pass, since COMMITs that
		 * did not wait count on us.  A drain that sent nothing (Redis
		 * refuses, or fails) waits for the pass or a wake-up.
		 */
		if (progressed && RetryHasWork())
			RelayWait(relay, Min(next_pass, TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 2)));
		else
			RelayWait(relay, next_pass);
	}
}
