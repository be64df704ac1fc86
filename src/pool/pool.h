/*-------------------------------------------------------------------------
 *
 * pool.h
 *		This backend's Redis connections, one per node, and node health.
 *
 * Only pool/ (pool.c, conn.c) owns connections.  Callers hand it RESP-encoded commands
 * and get replies back; they never see a connection or a socket.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_POOL_H
#define BMFREDIS_POOL_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "pool/node.h"
#include "wire/resp.h"
#include "wire/transport.h"

/* PoolExec flags */
#define POOL_IDEMPOTENT		0x01	/* may be re-sent on a fresh connection */
#define POOL_FORCE			0x02	/* try even inside the backoff window */
#define POOL_READ_ONLY		0x04	/* reads only: a new connection's handshake
									 * may travel with it */

extern void PoolInit(void);
/* Learn the database name (for CLIENT SETNAME) while catalogs are usable */
extern void PoolNoteDatabase(void);
/* That name, or NULL if it could not be learned yet */
extern const char *PoolDatabaseName(void);

/*
 * Send ncmds commands (RESP in cmds) to node as one pipeline and read
 * their replies into replies[0..ncmds-1], allocated in cxt.  Error
 * replies are replies, not failures.  Returns false with err set when the
 * node is down, unreachable, too slow (deadline; 0 means now +
 * bmfredis.command_timeout), or breaks the protocol; the connection is
 * then dropped and the node enters its backoff window.  Throws only
 * through CHECK_FOR_INTERRUPTS() and out-of-memory.
 */
extern bool PoolExec(const RedisNode *node, const StringInfoData *cmds,
						  int ncmds, int flags, TimestampTz deadline,
						  MemoryContext cxt, RedisReply **replies,
						  RedisError *err);

/*
 * The same for n nodes at once: every pipeline is written before any
 * reply is read, so the nodes work in parallel.  replies[i] receives
 * node i's.  false with err set (the first failure) if any node failed;
 * the others' replies are read all the same, so their connections stay
 * usable.
 */
extern bool PoolExecMany(int n, const RedisNode *const *nodes,
							  const StringInfoData *const *cmds,
							  const int *ncmds, int flags,
							  TimestampTz deadline, MemoryContext cxt,
							  RedisReply ***replies, RedisError *err);

/*
 * Streams: a pipeline written to a node's extra connection (named
 * "<node> (<tag>)") a piece at a time, whose replies are all read at the
 * end.  xact.c writes a large transaction's UNLINKs and change events
 * inside MULTI while the transaction runs, so that Redis parses them then,
 * and COMMIT sends only EXEC.
 *
 * PoolStreamSend writes ncmds commands, connecting first when
 * opening (the first commands then start with MULTI); false with err set
 * when it cannot, the connection then closed (Redis discards what it
 * had), or when a stream that is not opening was closed meanwhile.  PoolStreamFinish writes
 * the last ncmds commands and reads the replies of everything the stream
 * carried into replies[0 .. unread + ncmds - 1] (PoolStreamUnread
 * tells how many were unread before).  PoolStreamAbandon closes a
 * stream that is open: nothing it carried after its last EXEC runs.
 */
extern bool PoolStreamSend(const RedisNode *node, const char *tag,
								bool opening,
								const StringInfoData *cmds, int ncmds,
								TimestampTz deadline, RedisError *err);
extern int	PoolStreamUnread(const RedisNode *node, const char *tag);
extern bool PoolStreamFinish(const RedisNode *node, const char *tag,
								  const StringInfoData *cmds, int ncmds,
								  TimestampTz deadline, MemoryContext cxt,
								  RedisReply **replies, RedisError *err);
extern void PoolStreamAbandon(const char *node_name, const char *tag);

/* If the node is inside its backoff window, err says why and how long. */
extern bool PoolDownError(const char *name, RedisError *err);
/* Is the node inside its backoff window?  (*ms_left set when so) */
extern bool PoolNodeIsDown(const char *name, long *ms_left);
extern const char *PoolNodeAddress(const char *name);

/* Close every connection of this backend; returns how many were open. */
extern int	PoolDisconnectAll(void);
/*
 * At the end of every transaction: close what has been idle for
 * bmfredis.idle_close, and keep the timeout armed that closes everything
 * in a session idle that long.
 */
extern void PoolTransactionEnd(void);


/* Snapshot of all known nodes, palloc'd in CurrentMemoryContext. */
extern int	PoolList(PoolInfo **infos);

/*
 * A dedicated connection in pub/sub mode (outside the pool: it cannot run
 * commands).  names[i] is a channel, or a pattern when patterns[i].  The
 * caller closes it, on error paths too.
 */
extern RedisSubscription *PoolSubscribe(const RedisNode *node, int n,
											 const char *const *names,
											 const bool *patterns,
											 RedisError *err);
/* 1: *msg is the next push message; 0: none by the deadline; -1: failure */
extern int	PoolSubscriptionNext(RedisSubscription *sub, TimestampTz deadline,
								  MemoryContext cxt, RedisReply **msg,
								  RedisError *err);
extern void PoolSubscriptionClose(RedisSubscription *sub);
/* From now on PoolSubscriptionNext also returns 0 when the latch is set. */
extern void PoolSubscriptionWakeOnLatch(RedisSubscription *sub);

/*
 * Client-side caching, per node.  PoolTrackingEnsure: the node's pooled
 * connection tracks what it reads, and redirects the invalidations to a
 * connection of their own; *epoch names this tracking session (unique
 * across nodes; a new one whenever anything tracked may have been lost).
 * PoolTrackingEpoch: the node's current session, 0 when there is none.
 * PoolTrackingPoll: one invalidation message of the node's if one has
 * arrived (1), a sync answered (2: PoolTrackingSyncState moved on), none
 * (0), or tracking broken (-1, a new epoch follows); with a deadline it
 * waits for one until then, without one it does not wait, and unless
 * look it trusts what PoolTrackingEnsure's or PoolTrackingLook's poll()
 * just saw.  PoolTrackingStop: every node's.
 *
 * Syncs bound how late an invalidation can be seen.  Redis writes a
 * writer's reply and the invalidations its write causes in the same pass
 * of its event loop, the reply first: a reader that learns of the write
 * by other means can look before the invalidation is on its socket (for
 * microseconds; for as long as Redis is off the CPU when it is starved).
 * A PING on the tracking connection is answered after everything written
 * there before Redis read it: once its answer has been read, every write
 * acknowledged before the PING was sent has been seen.  PoolTrackingPing
 * sends one (not waiting; one at a time); PoolTrackingSyncState: when the
 * last answered one was sent, and the one in flight (0: none), in
 * BmfMonotonicUs() microseconds.
 */
extern bool PoolTrackingEnsure(const RedisNode *node, uint64 *epoch, RedisError *err);
extern uint64 PoolTrackingEpoch(const RedisNode *node);
extern int	PoolTrackingPoll(const RedisNode *node, MemoryContext cxt,
							 RedisReply **msg, bool look, TimestampTz deadline);
extern bool PoolTrackingPing(const RedisNode *node);
extern void PoolTrackingSyncState(const RedisNode *node, int64 *synced, int64 *ping_sent);
extern void PoolTrackingStop(void);
/* look (one epoll_wait) whether the node's invalidations have arrived since */
extern void PoolTrackingLook(const RedisNode *node);

#endif							/* BMFREDIS_POOL_H */
