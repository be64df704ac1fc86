/*-------------------------------------------------------------------------
 *
 * launcher.c
 *		Every database that has the extension gets a bmfredis worker, within
 *		seconds and without a restart: a launcher starts them.
 *
 * The launcher is a background worker connected to no database (it reads
 * pg_database, a shared catalog).  It starts a worker (worker.c) for each
 * database that allows connections and is not a template; the worker
 * looks for the extension and, finding none, exits and is not started
 * again until a CREATE EXTENSION bmfredis in that database commits (this
 * backend's utility hook then asks the launcher to start one at once).  A
 * worker whose database drops the extension exits by itself; one that
 * dies is started again after a pause; one whose database's settings
 * changed (ALTER DATABASE ... SET bmfredis.subscribe) exits and is started
 * again at once, so it reads them anew.  TimescaleDB's scheduler launcher
 * works the same way.
 *
 * Workers are background worker slots (max_worker_processes, shared with
 * parallel query and logical replication): each served database takes
 * one, the launcher one more.  A database that cannot get one is logged
 * with a WARNING and shown as "no worker slot" by redis_workers(), and the
 * launcher tries again at every scan.
 *
 * A worker is connected to its database, and some commands need a
 * database with no one connected: DROP DATABASE, CREATE DATABASE ...
 * TEMPLATE it, ALTER DATABASE ... RENAME or SET TABLESPACE.  The utility
 * hook stops that database's worker first (and keeps the launcher from
 * starting it again until the command is over), as the launcher of
 * TimescaleDB does.
 *
 * Slots (BmfDbWorker, in shared memory) are filled and freed by the
 * launcher; a worker writes its own slot's pid, latch, state and activity;
 * backends read them (redis_workers()) and pause a slot.  All under
 * workers_lock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "base/shmem.h"
#include "base/sqlutil.h"
#include "base/guc.h"
#include "client/client.h"
#include "worker/launcher.h"
#include "xact/retry.h"

PG_FUNCTION_INFO_V1(redis_workers);

PGDLLEXPORT void bmfredis_launcher_main(Datum arg);


/* how long a worker that died waits before it is started again */
#define RESTART_DELAY_MS	5000
/* how often the launcher looks for new databases */
#define SCAN_INTERVAL_MS	2000
/* workers looking for their extension at once (the rest wait their turn) */
#define MAX_STARTING		2
/* longest a command waits for a worker to leave its database */
#define PAUSE_WAIT_MS		10000

static ProcessUtility_hook_type prev_utility_hook = NULL;

/* this worker's slot (worker side) */
static BmfDbWorker *my_slot = NULL;

static const char *
state_name(BmfWorkerState s)
{
	switch (s)
	{
		case BMF_WORKER_STARTING:
			return "starting";
		case BMF_WORKER_RUNNING:
			return "running";
		case BMF_WORKER_NO_SLOT:
			return "no worker slot";
		case BMF_WORKER_RESTARTING:
			return "restarting";
		case BMF_WORKER_PAUSED:
			return "paused";
		default:
			return "free";
	}
}

static void
set_state(BmfDbWorker *w, BmfWorkerState state, const char *note)
{
	if (w->state != state)
		w->state_since = GetCurrentTimestamp();
	w->state = state;
	strlcpy(w->note, note ? note : "", sizeof(w->note));
}

/* ---- the worker's side ---- */

static void
worker_detach(int code, Datum arg)
{
	BmfSharedState *sh = BmfShared();

	(void) code;
	(void) arg;
	if (my_slot == NULL)
		return;
	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	if (my_slot->pid == MyProcPid)
	{
		my_slot->pid = 0;
		my_slot->latch = NULL;
	}
	LWLockRelease(sh->workers_lock);
	if (sh->launcher_latch)
		SetLatch(sh->launcher_latch);
	my_slot = NULL;
}

bool
LauncherAttach(int slotno, Oid dboid)
{
	BmfSharedState *sh = BmfShared();
	BmfDbWorker *w;
	bool		ok;

	if (sh == NULL || slotno < 0 || slotno >= sh->nworkers)
		return false;
	w = &sh->workers[slotno];
	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	ok = w->dboid == dboid && w->state != BMF_WORKER_FREE &&
		w->state != BMF_WORKER_PAUSED && w->pid == 0;
	if (ok)
	{
		w->pid = MyProcPid;
		w->latch = MyLatch;
		w->extension_absent = false;
		w->last_active = GetCurrentTimestamp();
		my_slot = w;
	}
	LWLockRelease(sh->workers_lock);
	if (ok)
		before_shmem_exit(worker_detach, (Datum) 0);
	return ok;
}

void
LauncherReport(BmfWorkerState state, int channels, const char *note)
{
	BmfSharedState *sh = BmfShared();

	if (my_slot == NULL)
		return;
	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	if (my_slot->state != BMF_WORKER_PAUSED)
		set_state(my_slot, state, note);
	my_slot->has_extension = true;
	my_slot->channels = channels;
	my_slot->last_active = GetCurrentTimestamp();
	LWLockRelease(sh->workers_lock);
}

bool
LauncherStopRequested(void)
{
	BmfSharedState *sh = BmfShared();
	bool		stop;

	if (my_slot == NULL)
		return false;
	LWLockAcquire(sh->workers_lock, LW_SHARED);
	stop = my_slot->state == BMF_WORKER_PAUSED;
	LWLockRelease(sh->workers_lock);
	return stop;
}

void
LauncherNoExtension(void)
{
	BmfSharedState *sh = BmfShared();

	if (my_slot == NULL)
		return;
	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	my_slot->extension_absent = true;
	LWLockRelease(sh->workers_lock);
}

void
LauncherRestartNow(void)
{
	BmfSharedState *sh = BmfShared();

	if (my_slot == NULL)
		return;
	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	my_slot->restart_now = true;
	LWLockRelease(sh->workers_lock);
}

/* ---- the launcher ---- */

/* A database the launcher knows: from pg_database, or has a slot. */
typedef struct KnownDb
{
	Oid			dboid;			/* hash key */
	bool		absent;			/* a worker found no extension there */
	bool		no_slot;		/* every slot was taken (logged once) */
	bool		seen;			/* in the latest scan of pg_database */
	bool		servable;		/* allows connections, not a template */
	char		name[NAMEDATALEN];
} KnownDb;

static HTAB *known = NULL;
/* the handle of each slot's background worker (launcher's memory) */
static BackgroundWorkerHandle **handles = NULL;
static TimestampTz *restart_at = NULL;

static void
launcher_detach(int code, Datum arg)
{
	BmfSharedState *sh = BmfShared();

	(void) code;
	(void) arg;
	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	sh->launcher_pid = 0;
	sh->launcher_latch = NULL;
	LWLockRelease(sh->workers_lock);
}

/* Read pg_database: every database, whether a worker may serve it. */
static void
scan_databases(void)
{
	HASH_SEQ_STATUS seq;
	KnownDb    *k;
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;

	hash_seq_init(&seq, known);
	while ((k = hash_seq_search(&seq)) != NULL)
		k->seen = false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database d = (Form_pg_database) GETSTRUCT(tup);
		bool		found;

		k = hash_search(known, &d->oid, HASH_ENTER, &found);
		if (!found)
		{
			k->absent = false;
			k->no_slot = false;
		}
		k->seen = true;
		/* an invalid database (an interrupted DROP DATABASE) cannot be entered */
		k->servable = d->datallowconn && !d->datistemplate && !database_is_invalid_form(d);
		strlcpy(k->name, NameStr(d->datname), NAMEDATALEN);
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	PopActiveSnapshot();
	CommitTransactionCommand();

	/* databases dropped since: forget them */
	hash_seq_init(&seq, known);
	while ((k = hash_seq_search(&seq)) != NULL)
		if (!k->seen)
			hash_search(known, &k->dboid, HASH_REMOVE, NULL);
}

static const char *
db_name(Oid dboid)
{
	KnownDb    *k = hash_search(known, &dboid, HASH_FIND, NULL);

	return k ? k->name : "(unknown)";
}

/* Register slot i's worker; false (and the slot NO_SLOT) if none is free. */
static bool
start_worker(BmfSharedState *sh, int i)
{
	BmfDbWorker *w = &sh->workers[i];
	BackgroundWorker worker;
	bool		warned;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "bmfredis");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "bmfredis_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "bmfredis worker for database %s", db_name(w->dboid));
	snprintf(worker.bgw_type, BGW_MAXLEN, "bmfredis worker");
	worker.bgw_main_arg = Int32GetDatum(i);
	memcpy(worker.bgw_extra, &w->dboid, sizeof(Oid));
	worker.bgw_notify_pid = MyProcPid;

	if (handles[i])
	{
		pfree(handles[i]);
		handles[i] = NULL;
	}
	if (!RegisterDynamicBackgroundWorker(&worker, &handles[i]))
	{
		bool		warn;

		LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
		set_state(w, BMF_WORKER_NO_SLOT, w->has_extension ? "max_worker_processes is used up" :
				  "max_worker_processes is used up; whether the database has the extension is not known yet");
		/* a database not known to have the extension is no news */
		warn = w->has_extension && !w->warned;
		w->warned |= warn;
		LWLockRelease(sh->workers_lock);
		if (warn)
			ereport(WARNING,
					(errmsg("bmfredis: no background worker slot is free for database \"%s\"",
							db_name(w->dboid)),
					 errdetail("Its scheduled invalidations, retry queue and channel relay wait until one is."),
					 errhint("Each database with the extension needs one background worker and the bmfredis launcher one more; raise max_worker_processes (a restart).")));
		return false;
	}
	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	set_state(w, BMF_WORKER_STARTING, NULL);
	w->restart_now = false;
	warned = w->warned;
	w->warned = false;
	LWLockRelease(sh->workers_lock);
	if (warned)
		ereport(LOG,
				(errmsg("bmfredis: database \"%s\" has a background worker again", db_name(w->dboid))));
	return true;
}

/* A free slot for dboid, or -1 when none is left. */
static int
claim_slot(BmfSharedState *sh, Oid dboid)
{
	int			i;

	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	for (i = 0; i < sh->nworkers; i++)
		if (sh->workers[i].state == BMF_WORKER_FREE)
			break;
	if (i < sh->nworkers)
	{
		memset(&sh->workers[i], 0, sizeof(BmfDbWorker));
		sh->workers[i].dboid = dboid;
		set_state(&sh->workers[i], BMF_WORKER_STARTING, NULL);
	}
	LWLockRelease(sh->workers_lock);
	if (i == sh->nworkers)
		return -1;
	restart_at[i] = 0;
	return i;
}

static void
free_slot(BmfSharedState *sh, int i)
{
	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	memset(&sh->workers[i], 0, sizeof(BmfDbWorker));
	LWLockRelease(sh->workers_lock);
	if (handles[i])
	{
		pfree(handles[i]);
		handles[i] = NULL;
	}
}

/* The databases whose CREATE EXTENSION committed since the last pass. */
static int
take_requests(BmfSharedState *sh, Oid *requests)
{
	int			nrequests;
	int			i;

	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	nrequests = sh->nrequests;
	memcpy(requests, sh->requests, sizeof(Oid) * nrequests);
	sh->nrequests = 0;
	LWLockRelease(sh->workers_lock);
	for (i = 0; i < nrequests; i++)
	{
		KnownDb    *k = hash_search(known, &requests[i], HASH_FIND, NULL);
		BmfDbWorker *w;

		if (k)
			k->absent = false;
		LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
		w = BmfWorkerSlot(sh, requests[i]);
		if (w)
			w->has_extension = true;
		LWLockRelease(sh->workers_lock);
	}
	return nrequests;
}

/*
 * Slot i's worker: free the slot of a database that is gone or has no
 * extension, restart a worker that exited (at once when it asked to, after
 * a pause otherwise).  *starting counts the workers starting now.
 */
static void
tend_slot(BmfSharedState *sh, int i, TimestampTz now, int *starting)
{
	BmfDbWorker *w = &sh->workers[i];
	KnownDb    *k = hash_search(known, &w->dboid, HASH_FIND, NULL);
	pid_t		pid;
	BgwHandleStatus st;
	bool		absent;
	bool		restart_now;
	BmfWorkerState state;

	if (k == NULL || !k->servable)
	{
		/* dropped (or made a template): its worker is gone or going */
		if (w->pid != 0)
		{
			kill(w->pid, SIGTERM);
			return;
		}
		RetryDiscardDatabase(w->dboid);
		free_slot(sh, i);
		return;
	}
	st = handles[i] ? GetBackgroundWorkerPid(handles[i], &pid) : BGWH_STOPPED;
	if (st == BGWH_POSTMASTER_DIED)
		proc_exit(1);
	LWLockAcquire(sh->workers_lock, LW_SHARED);
	absent = w->extension_absent;
	restart_now = w->restart_now;
	state = w->state;
	LWLockRelease(sh->workers_lock);
	if (st != BGWH_STOPPED)
	{
		*starting += (state == BMF_WORKER_STARTING);
		return;
	}
	if (absent)
	{
		/* no extension there: not started again before CREATE EXTENSION */
		k->absent = true;
		RetryDiscardDatabase(w->dboid);
		free_slot(sh, i);
		return;
	}
	if (state == BMF_WORKER_PAUSED)
	{
		if (w->paused_until > now)
			return;
	}
	else if (state == BMF_WORKER_STARTING || state == BMF_WORKER_RUNNING)
	{
		/* it exited: at once when it asked to, else after a pause */
		LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
		w->restarts++;
		set_state(w, BMF_WORKER_RESTARTING,
				  restart_now ? "its database's settings changed" : "it exited; see the server log");
		LWLockRelease(sh->workers_lock);
		restart_at[i] = restart_now ? now : TimestampTzPlusMilliseconds(now, RESTART_DELAY_MS);
	}
	if (restart_at[i] > now || *starting >= MAX_STARTING)
		return;
	if (start_worker(sh, i))
		(*starting)++;
}

/* A worker for each servable database that has no slot yet. */
static void
start_new(BmfSharedState *sh, const Oid *requests, int nrequests, int *starting)
{
	HASH_SEQ_STATUS seq;
	KnownDb    *k;
	int			i;
	int			j;

	hash_seq_init(&seq, known);
	while ((k = hash_seq_search(&seq)) != NULL)
	{
		BmfDbWorker *w;

		if (!k->servable || k->absent)
			continue;
		LWLockAcquire(sh->workers_lock, LW_SHARED);
		w = BmfWorkerSlot(sh, k->dboid);
		LWLockRelease(sh->workers_lock);
		if (w != NULL || *starting >= MAX_STARTING)
			continue;
		i = claim_slot(sh, k->dboid);
		if (i < 0)
		{
			/* tried again at every scan: a slot frees when a database goes */
			if (!k->no_slot)
				ereport(WARNING,
						(errmsg("bmfredis: cannot serve database \"%s\": %d databases are served already",
								k->name, sh->nworkers),
						 errhint("Raise max_worker_processes (a restart).")));
			k->no_slot = true;
			continue;
		}
		k->no_slot = false;
		for (j = 0; j < nrequests; j++)
			if (requests[j] == k->dboid)
				sh->workers[i].has_extension = true;	/* CREATE EXTENSION said so */
		if (start_worker(sh, i))
			(*starting)++;
	}
}

/*
 * A cold start ends once every database that may have had pending work
 * when it began has queued its namespace's invalidation (each worker does
 * as it starts): those pg_database listed as servable when the launcher
 * first saw the cold start (a database made later had nothing pending),
 * but those whose worker found no extension and those dropped since.  Not
 * only those holding a slot now: the launcher starts a few workers a
 * pass, and a database still waiting for its turn (or for a free slot)
 * has not done it yet.
 */
static uint32 cold_epoch_seen = 0;
static Oid *cold_must = NULL;	/* the databases of that cold start */
static int	cold_nmust = 0;

static void
settle_cold(BmfSharedState *sh)
{
	HASH_SEQ_STATUS seq;
	KnownDb    *k;
	Oid		   *dboids;
	int			n = 0;
	int			i;

	if (cold_epoch_seen != sh->cold_epoch || cold_must == NULL)
	{
		cold_epoch_seen = sh->cold_epoch;
		if (cold_must)
			pfree(cold_must);
		cold_must = MemoryContextAlloc(TopMemoryContext,
									   sizeof(Oid) * (hash_get_num_entries(known) + 1));
		cold_nmust = 0;
		hash_seq_init(&seq, known);
		while ((k = hash_seq_search(&seq)) != NULL)
			if (k->servable)
				cold_must[cold_nmust++] = k->dboid;
	}
	dboids = palloc(sizeof(Oid) * (cold_nmust + 1));
	for (i = 0; i < cold_nmust; i++)
	{
		k = hash_search(known, &cold_must[i], HASH_FIND, NULL);
		if (k && k->servable && !k->absent)
			dboids[n++] = cold_must[i];
	}
	RetryColdSettle(dboids, n);
	pfree(dboids);
}

/*
 * One pass: take requests, look at each slot's worker, start what should
 * run.  scan: pg_database was read just now.
 */
static void
launcher_pass(BmfSharedState *sh, bool scan)
{
	Oid			requests[lengthof(sh->requests)];
	int			nrequests = take_requests(sh, requests);
	int			starting = 0;
	int			i;
	TimestampTz now = GetCurrentTimestamp();

	for (i = 0; i < sh->nworkers; i++)
		if (sh->workers[i].state != BMF_WORKER_FREE)
			tend_slot(sh, i, now, &starting);
	/* databases nobody has looked at yet (or whose extension was created) */
	if (scan || nrequests > 0)
		start_new(sh, requests, nrequests, &starting);
	if (sh->cold)
		settle_cold(sh);
}

void
bmfredis_launcher_main(Datum arg)
{
	BmfSharedState *sh = BmfShared();
	HASHCTL		ctl;
	TimestampTz last_scan = 0;

	(void) arg;
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	sh->launcher_pid = MyProcPid;
	sh->launcher_latch = MyLatch;
	LWLockRelease(sh->workers_lock);
	before_shmem_exit(launcher_detach, (Datum) 0);

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(KnownDb);
	ctl.hcxt = TopMemoryContext;
	known = hash_create("bmfredis databases", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	handles = MemoryContextAllocZero(TopMemoryContext, sizeof(BackgroundWorkerHandle *) * sh->nworkers);
	restart_at = MemoryContextAllocZero(TopMemoryContext, sizeof(TimestampTz) * sh->nworkers);
	ereport(LOG,
			(errmsg("bmfredis launcher started: every database with the extension gets a worker")));

	for (;;)
	{
		bool		scan;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		scan = last_scan == 0 ||
			TimestampDifferenceExceeds(last_scan, GetCurrentTimestamp(), SCAN_INTERVAL_MS);
		if (!scan)
		{
			int			i;

			/* a slot about to be started again needs a fresh list too */
			for (i = 0; i < sh->nworkers && !scan; i++)
				scan = sh->workers[i].state != BMF_WORKER_FREE &&
					sh->workers[i].state != BMF_WORKER_RUNNING &&
					sh->workers[i].state != BMF_WORKER_STARTING;
			scan |= sh->nrequests > 0;
		}
		if (scan)
		{
			scan_databases();
			last_scan = GetCurrentTimestamp();
		}
		launcher_pass(sh, scan);
		pgstat_report_activity(STATE_IDLE, NULL);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ---- backends: commands that need a database alone, CREATE EXTENSION ---- */

/*
 * Stop the worker of dboid and keep it stopped until resumed (or for a
 * minute, should this backend die meanwhile): the command that follows
 * needs the database without other sessions.
 */
static void
pause_worker(Oid dboid)
{
	BmfSharedState *sh = BmfShared();
	BmfDbWorker *w;
	TimestampTz give_up = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PAUSE_WAIT_MS);

	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	w = BmfWorkerSlot(sh, dboid);
	if (w)
	{
		set_state(w, BMF_WORKER_PAUSED, "stopped for a command that needs the database alone");
		w->paused_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 60 * 1000);
		if (w->latch)
			SetLatch(w->latch);
	}
	LWLockRelease(sh->workers_lock);
	if (w == NULL)
		return;
	/* it notices the pause at its next pass (a Redis call is bounded) */
	for (;;)
	{
		pid_t		pid;

		LWLockAcquire(sh->workers_lock, LW_SHARED);
		pid = (w->dboid == dboid) ? w->pid : 0;
		LWLockRelease(sh->workers_lock);
		if (pid == 0)
			return;
		if (GetCurrentTimestamp() >= give_up)
		{
			kill(pid, SIGTERM);
			give_up = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PAUSE_WAIT_MS);
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static void
resume_worker(Oid dboid)
{
	BmfSharedState *sh = BmfShared();
	BmfDbWorker *w;

	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	w = BmfWorkerSlot(sh, dboid);
	if (w && w->state == BMF_WORKER_PAUSED)
		w->paused_until = 0;
	if (sh->launcher_latch)
		SetLatch(sh->launcher_latch);
	LWLockRelease(sh->workers_lock);
}

/* The database a command needs without other sessions, or InvalidOid. */
static Oid
database_needed_alone(Node *stmt)
{
	const char *name = NULL;
	ListCell   *lc;

	switch (nodeTag(stmt))
	{
		case T_DropdbStmt:
			name = ((DropdbStmt *) stmt)->dbname;
			break;
		case T_CreatedbStmt:
			foreach(lc, ((CreatedbStmt *) stmt)->options)
			{
				DefElem    *d = lfirst(lc);

				if (strcmp(d->defname, "template") == 0 && d->arg)
					name = defGetString(d);
			}
			break;
		case T_RenameStmt:
			if (((RenameStmt *) stmt)->renameType == OBJECT_DATABASE)
				name = ((RenameStmt *) stmt)->subname;
			break;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) stmt)->options)
			{
				DefElem    *d = lfirst(lc);

				if (strcmp(d->defname, "tablespace") == 0)
					name = ((AlterDatabaseStmt *) stmt)->dbname;
			}
			break;
		default:
			break;
	}
	return name ? get_database_oid(name, true) : InvalidOid;
}

static bool
names_bmfredis(List *objects)
{
	ListCell   *lc;

	foreach(lc, objects)
		if (IsA(lfirst(lc), String) && strcmp(strVal(lfirst(lc)), "bmfredis") == 0)
			return true;
	return false;
}

/* CREATE or DROP EXTENSION bmfredis in this transaction: tell at COMMIT */
static bool extension_created = false;
static bool extension_dropped = false;

static void
launcher_xact_callback(XactEvent event, void *arg)
{
	BmfSharedState *sh = BmfShared();

	(void) arg;
	if (event == XACT_EVENT_COMMIT && (extension_created || extension_dropped))
	{
		LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
		if (extension_created && sh->nrequests < (int) lengthof(sh->requests))
			sh->requests[sh->nrequests++] = MyDatabaseId;
		if (sh->launcher_latch)
			SetLatch(sh->launcher_latch);
		LWLockRelease(sh->workers_lock);
		if (extension_dropped)
			BmfWakeWorker(MyDatabaseId);	/* it finds the extension gone */
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		extension_created = extension_dropped = false;
}

/*
 * 1.1 took every function that reaches Redis away from PUBLIC.  The
 * NOTICE its script raises is not seen (extension scripts run with
 * client_min_messages at WARNING at least), and an application that
 * relied on PUBLIC meets "permission denied" next: say it at the update.
 */
static void
warn_updated_from_1_0(void)
{
	char		to[64];

	CommandCounterIncrement();
	BmfExtensionVersion(to, sizeof(to));
	if (strcmp(to, "1.0") != 0)
		ereport(WARNING,
				(errmsg("bmfredis %s no longer grants PUBLIC the functions that reach Redis", to),
				 errdetail("Under 1.0 every role could call them; now only superusers and the roles given capabilities can, and other roles get \"permission denied for function redis_...\"."),
				 errhint("Give each role what it needs: SELECT redis_grant('app', 'read', 'write', 'invalidate', 'publish', 'lock'); "
						 "SELECT * FROM bmfredis.capability_objects() lists what each capability covers.")));
}

/*
 * The foreign server bmfredis.server names belongs to the extension's
 * wrapper: DROP EXTENSION ... CASCADE drops it and its user mappings
 * (with their passwords), and the setting then names nothing.
 */
static void
warn_server_dropped(void)
{
	CommandCounterIncrement();
	if (RedisServerMissing())
		ereport(WARNING,
				(errmsg("dropping bmfredis dropped foreign server \"%s\" and its user mappings, which bmfredis.server names", bmf_server),
				 errdetail("Their options, passwords included, are gone."),
				 errhint("After CREATE EXTENSION bmfredis, make the server and its user mappings again, or reset bmfredis.server (ALTER DATABASE ... RESET bmfredis.server).")));
}

/*
 * After CREATE EXTENSION: bmfredis.server naming nothing (left from a DROP
 * EXTENSION ... CASCADE); or a key prefix shared with another database on
 * the same Redis (a database without one of its own shares "bmfredis:"
 * with every other such database, and a pg_restore into a new database
 * does it silently): each reads the other's values, and one's cold start
 * invalidates the other's keys.
 */
static void
warn_at_create(void)
{
	List	   *sharers;
	int			n;
	char	   *db = get_database_name(MyDatabaseId);

	if (RedisServerMissing())
	{
		ereport(WARNING,
				(errmsg("bmfredis.server names server \"%s\", which does not exist", bmf_server),
				 errdetail("Calls that reach Redis fail until it does (a DROP EXTENSION bmfredis CASCADE drops it with its user mappings)."),
				 errhint("CREATE SERVER %s FOREIGN DATA WRAPPER bmfredis OPTIONS (host '...', port '...') and its user mappings, or reset bmfredis.server.",
						 quote_identifier(bmf_server))));
		return;
	}
	n = RedisNamespaceSharers(&sharers);
	if (n > 0)
	{
		StringInfoData names;
		ListCell   *lc;

		initStringInfo(&names);
		foreach(lc, sharers)
			appendStringInfo(&names, "%s\"%s\"", names.len ? ", " : "", (char *) lfirst(lc));
		if (n > list_length(sharers))
			appendStringInfo(&names, ", ...");
		ereport(WARNING,
				(errmsg("bmfredis in database \"%s\" shares its key prefix \"%s\" on Redis %s with %d other database(s): %s",
						db, bmf_key_prefix, RedisNodeName(RedisDefaultNode()), n, names.data),
				 errdetail("Each reads the values the other cached, and a cold start of one invalidates the other's keys."),
				 errhint("Give each database a prefix of its own: ALTER DATABASE %s SET bmfredis.key_prefix = %s.",
						 quote_identifier(db), quote_literal_cstr(psprintf("%s:", db)))));
	}
}

static void
bmf_utility_hook(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				 ProcessUtilityContext context, ParamListInfo params,
				 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;
	Oid			alone = database_needed_alone(stmt);
	char		from[64] = "";
	bool		dropping = IsA(stmt, DropStmt) &&
		((DropStmt *) stmt)->removeType == OBJECT_EXTENSION &&
		names_bmfredis(((DropStmt *) stmt)->objects);
	bool		had_server = false;

	if (dropping && IsTransactionState() && bmf_server && bmf_server[0] &&
		OidIsValid(get_extension_oid("bmfredis", true)))
		had_server = RedisServerMissing() == NULL;
	if (IsA(stmt, AlterExtensionStmt) &&
		strcmp(((AlterExtensionStmt *) stmt)->extname, "bmfredis") == 0 &&
		IsTransactionState())
		BmfExtensionVersion(from, sizeof(from));
	if (OidIsValid(alone))
		pause_worker(alone);
	PG_TRY();
	{
		if (prev_utility_hook)
			prev_utility_hook(pstmt, queryString, readOnlyTree, context, params,
							  queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		if (OidIsValid(alone))
			resume_worker(alone);
	}
	PG_END_TRY();

	if (strcmp(from, "1.0") == 0)
		warn_updated_from_1_0();
	if (had_server)
		warn_server_dropped();
	if (IsA(stmt, CreateExtensionStmt) &&
		strcmp(((CreateExtensionStmt *) stmt)->extname, "bmfredis") == 0 &&
		IsTransactionState())
		warn_at_create();

	if (IsA(stmt, CreateExtensionStmt) &&
		strcmp(((CreateExtensionStmt *) stmt)->extname, "bmfredis") == 0)
		extension_created = true;
	else if (IsA(stmt, DropStmt) && ((DropStmt *) stmt)->removeType == OBJECT_EXTENSION &&
			 names_bmfredis(((DropStmt *) stmt)->objects))
		extension_dropped = true;
}

void
LauncherRegister(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "bmfredis");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "bmfredis_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "bmfredis launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "bmfredis launcher");
	RegisterBackgroundWorker(&worker);

	prev_utility_hook = ProcessUtility_hook;
	ProcessUtility_hook = bmf_utility_hook;
	RegisterXactCallback(launcher_xact_callback, NULL);
}

/* ---- redis_workers() ---- */

/*
 * redis_workers() -> setof (database, state, pid, since, last_active,
 * channels, retry_pending, restarts, note): the launcher and every
 * database's worker.
 */
Datum
redis_workers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BmfSharedState *sh = BmfShared();
	BmfDbWorker *copy;
	int			n;
	int			i;
	pid_t		launcher_pid;

	InitMaterializedSRF(fcinfo, 0);
	if (sh == NULL)
	{
		ereport(NOTICE,
				(errmsg("bmfredis has no workers: it is not in shared_preload_libraries"),
				 errhint("Without them, call redis_run_scheduled() from cron; each session sends its own retries.")));
		return (Datum) 0;
	}
	LWLockAcquire(sh->workers_lock, LW_SHARED);
	n = sh->nworkers;
	copy = palloc(sizeof(BmfDbWorker) * n);
	memcpy(copy, sh->workers, sizeof(BmfDbWorker) * n);
	launcher_pid = sh->launcher_pid;
	LWLockRelease(sh->workers_lock);

	{
		Datum		values[9];
		bool		nulls[9];

		memset(nulls, true, sizeof(nulls));
		values[1] = CStringGetTextDatum(launcher_pid ? "launcher" : "launcher not running");
		nulls[1] = false;
		if (launcher_pid)
		{
			values[2] = Int32GetDatum(launcher_pid);
			nulls[2] = false;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	for (i = 0; i < n; i++)
	{
		BmfDbWorker *w = &copy[i];
		Datum		values[9];
		bool		nulls[9];
		char	   *name;
		int64		pending;
		int			namespaces;

		if (w->state == BMF_WORKER_FREE)
			continue;
		memset(nulls, false, sizeof(nulls));
		name = get_database_name(w->dboid);
		if (name == NULL)
			continue;			/* dropped a moment ago */
		values[0] = DirectFunctionCall1(namein, CStringGetDatum(name));
		values[1] = CStringGetTextDatum(state_name(w->state));
		values[2] = Int32GetDatum(w->pid);
		nulls[2] = (w->pid == 0);
		values[3] = TimestampTzGetDatum(w->state_since);
		values[4] = TimestampTzGetDatum(w->last_active);
		nulls[4] = (w->last_active == 0);
		values[5] = Int32GetDatum(w->channels);
		RetryPendingFor(w->dboid, &pending, &namespaces);
		values[6] = Int64GetDatum(pending + namespaces);
		values[7] = Int32GetDatum(w->restarts);
		values[8] = CStringGetTextDatum(w->note);
		nulls[8] = (w->note[0] == '\0');
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
