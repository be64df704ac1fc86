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

#include "base/guc.h"
#include "base/shmem.h"


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
		SpinLockInit(&shared->tls_mutex);
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

/* ---- the table of per-database workers (the launcher fills it) ---- */

/* The slot of a database, or NULL; the caller holds workers_lock. */
BmfDbWorker *
BmfWorkerSlot(BmfSharedState *sh, Oid dboid)
{
	int			i;

	for (i = 0; i < sh->nworkers; i++)
		if (sh->workers[i].state != BMF_WORKER_FREE && sh->workers[i].dboid == dboid)
			return &sh->workers[i];
	return NULL;
}

/* The pid of a database's running worker (0: none), the channels it relays. */
pid_t
BmfWorkerPid(Oid dboid, int *channels)
{
	BmfSharedState *sh = BmfShared();
	BmfDbWorker *w;
	pid_t		pid = 0;

	*channels = 0;
	if (sh == NULL)
		return 0;
	LWLockAcquire(sh->workers_lock, LW_SHARED);
	w = BmfWorkerSlot(sh, dboid);
	if (w && w->state == BMF_WORKER_RUNNING)
	{
		pid = w->pid;
		*channels = w->channels;
	}
	LWLockRelease(sh->workers_lock);
	return pid;
}

void
BmfSetNamespace(Oid dboid, uint64 hash)
{
	BmfSharedState *sh = BmfShared();
	BmfDbWorker *w;

	if (sh == NULL)
		return;
	LWLockAcquire(sh->workers_lock, LW_EXCLUSIVE);
	w = BmfWorkerSlot(sh, dboid);
	if (w)
		w->ns_hash = hash;
	LWLockRelease(sh->workers_lock);
}

int
BmfNamespaceSharers(uint64 hash, Oid self, Oid *out, int max)
{
	BmfSharedState *sh = BmfShared();
	int			n = 0;
	int			i;

	if (sh == NULL)
		return -1;
	LWLockAcquire(sh->workers_lock, LW_SHARED);
	for (i = 0; i < sh->nworkers; i++)
	{
		BmfDbWorker *w = &sh->workers[i];

		if (w->state == BMF_WORKER_FREE || w->extension_absent || w->dboid == self ||
			w->ns_hash == 0 || w->ns_hash != hash)
			continue;
		if (n < max)
			out[n] = w->dboid;
		n++;
	}
	LWLockRelease(sh->workers_lock);
	return n;
}

/* Set the latch of a database's worker, if it has one. */
void
BmfWakeWorker(Oid dboid)
{
	BmfSharedState *sh = BmfShared();
	BmfDbWorker *w;

	if (sh == NULL)
		return;
	LWLockAcquire(sh->workers_lock, LW_SHARED);
	w = BmfWorkerSlot(sh, dboid);
	if (w && w->latch)
		SetLatch(w->latch);
	LWLockRelease(sh->workers_lock);
}
