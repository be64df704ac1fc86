/*-------------------------------------------------------------------------
 *
 * shmem.h
 *		bmfredis' shared memory: the retry queue, the launcher's and the
 *		per-database workers' slots (the statistics have a block of their
 *		own, in stats.c).  Present only when the library is in
 *		shared_preload_libraries; BmfShared() is NULL otherwise.
 *
 * Locking: lock protects the retry ring's positions, the namespace
 * list and the cold start's fields; workers_lock the launcher's and the workers' slots; draining is a flag that lets one process at a time send
 * the ring's entries, without holding the lock while it talks to Redis.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_SHMEM_H
#define BMFREDIS_SHMEM_H

#include "postgres.h"

#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"
#include "storage/lwlock.h"


#define BMF_MAX_NAMESPACES	64
#define BMF_PREFIX_MAX		256
#define BMF_MAX_COLD		256

/* A namespace (logical Redis database and key prefix) of a PG database. */
typedef struct BmfNamespace
{
	Oid			dboid;			/* the PostgreSQL database that queued it */
	int			db;
	char		prefix[BMF_PREFIX_MAX];
} BmfNamespace;

/* What a database's bmfredis worker is doing (launcher.c). */
typedef enum BmfWorkerState
{
	BMF_WORKER_FREE = 0,		/* an unused slot */
	BMF_WORKER_STARTING,		/* registered; looking for the extension */
	BMF_WORKER_RUNNING,			/* serving the database */
	BMF_WORKER_NO_SLOT,			/* no background worker slot was free */
	BMF_WORKER_RESTARTING,		/* exited; the launcher starts it again */
	BMF_WORKER_PAUSED			/* stopped while a command needs the database alone */
} BmfWorkerState;

/*
 * One database that has (or may have) the extension.  The launcher owns
 * the slots (it fills and frees them); a worker updates its own slot's
 * pid, latch, state and activity.  workers_lock protects them all.
 */
typedef struct BmfDbWorker
{
	Oid			dboid;
	BmfWorkerState state;
	pid_t		pid;
	Latch	   *latch;
	TimestampTz state_since;
	TimestampTz last_active;	/* the worker's last pass through its loop */
	TimestampTz paused_until;	/* PAUSED: not restarted before this */
	int			channels;		/* channels and patterns it relays */
	int			restarts;
	bool		extension_absent;	/* the worker found no extension */
	bool		restart_now;	/* it exits to be started again at once */
	bool		has_extension;	/* known to have it (a worker ran, or CREATE EXTENSION) */
	bool		warned;			/* "no worker slot" was logged */
	char		note[128];		/* why it is not running, for redis_workers() */
	uint64		ns_hash;		/* its Redis node and key prefix, hashed; 0: unknown */
} BmfDbWorker;

/*
 * A TLS session ticket (DER), shared so that a new backend resumes the
 * session another made (wire/transport.c); key: its settings and server,
 * hashed.  tls_mutex guards them.
 */
#define BMF_TLS_TICKETS 8
#define BMF_TLS_TICKET_MAX 4096
typedef struct BmfTlsTicket
{
	uint64		key;
	uint64		stamp;			/* when stored (a counter): the oldest goes first */
	int			len;			/* 0: empty */
	unsigned char der[BMF_TLS_TICKET_MAX];
} BmfTlsTicket;

typedef struct BmfSharedState
{
	LWLock	   *lock;			/* the retry ring and namespaces */
	LWLock	   *workers_lock;	/* workers[] and the launcher's fields */
	/* the retry ring: byte positions grow forever, modulo ring_size */
	uint64		head;
	uint64		tail;
	uint32		ring_size;
	pg_atomic_uint32 entries;	/* not yet sent (every database's) */
	uint64		generation;		/* bumped by every change to the ring */
	pg_atomic_flag draining;
	/* namespaces to invalidate whole, after the ring overflowed */
	int			nnamespaces;
	BmfNamespace namespaces[BMF_MAX_NAMESPACES];
	/*
	 * A cold start (xact/durable.c): after a crash or an unclean stop what
	 * was pending is unknown, so each database's namespace is invalidated
	 * once, by its first process to talk to Redis (those done: cold_done).
	 */
	bool		cold;
	char		cold_reason[128];
	int			ncold_done;
	Oid			cold_done[BMF_MAX_COLD];
	uint32		cold_epoch;		/* bumped whenever a cold start begins */
	/*
	 * The server started as a standby (or for archive recovery): no cold
	 * start of its own, but one when it leaves recovery (a promotion), since
	 * what the old primary had still to send is unknown.
	 */
	bool		cold_at_promotion;
	/* the launcher and the per-database workers */
	pid_t		launcher_pid;
	Latch	   *launcher_latch;
	int			nrequests;		/* databases whose extension was just created */
	Oid			requests[16];
	slock_t		tls_mutex;
	uint64		tls_stamp;
	BmfTlsTicket tls_tickets[BMF_TLS_TICKETS];
	int			nworkers;		/* the size of workers[] */
	BmfDbWorker *workers;		/* in the same shared block, after ring */
	char		ring[FLEXIBLE_ARRAY_MEMBER];
} BmfSharedState;

extern void BmfShmemInit(void);	/* from _PG_init, when preloading */
extern BmfSharedState *BmfShared(void);

/*
 * The worker table.  BmfWorkerSlot: a database's slot or NULL (the caller
 * holds workers_lock); BmfWorkerPid: its running worker's pid (0: none)
 * and the channels it relays; BmfWakeWorker: set that worker's latch.
 */
extern BmfDbWorker *BmfWorkerSlot(BmfSharedState *sh, Oid dboid);
/*
 * The namespace (Redis node and key prefix) each database's worker serves,
 * hashed: databases that share one read each other's values and cold-start
 * each other's keys.  BmfSetNamespace records a worker's; BmfNamespaceSharers
 * fills out[] with up to max other databases whose worker serves hash and
 * returns how many there are (-1: no shared memory, not preloaded).
 */
extern void BmfSetNamespace(Oid dboid, uint64 hash);
extern int	BmfNamespaceSharers(uint64 hash, Oid self, Oid *out, int max);

extern pid_t BmfWorkerPid(Oid dboid, int *channels);
extern void BmfWakeWorker(Oid dboid);

#endif							/* BMFREDIS_SHMEM_H */
