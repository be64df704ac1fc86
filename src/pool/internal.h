/*-------------------------------------------------------------------------
 *
 * internal.h
 *		What the files of the pool share among themselves: a connection
 *		(conn.c) and Sentinel (sentinel.c).  Not for the layers above.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_POOL_INTERNAL_H
#define BMFREDIS_POOL_INTERNAL_H

#include "postgres.h"

#include "pool/pool.h"

typedef enum ConnState
{
	CONN_CLOSED,
	CONN_READY,
	CONN_BUSY
} ConnState;

/* Where a handshake's replies are (-1: not sent), and how many. */
typedef struct Handshake
{
	int			n;
	int			auth_at;
	int			select_at;
	int			role_at;
} Handshake;

/*
 * One connection: the socket, its reply parser, and whether it is in step.
 * A handshake sent but not yet read (PoolConnConnect with share_flight)
 * leaves what its replies need here: the connection's next read takes
 * them first.  It never outlives the call that connected.
 */
typedef struct Conn
{
	RedisTransport t;
	RespReader *reader;
	ConnState	state;
	uint64		generation;
	int			db;
	TimestampTz since;
	Handshake	hs;				/* hs.n: handshake replies still to read */
	TimestampTz hs_deadline;	/* by when they must come (connect_timeout) */
	bool		hs_tls;
	int			hs_db;
	char		hs_name[POOL_NAME_LEN];	/* the node, for their errors */
	char		hs_master[POOL_NAME_LEN];	/* its Sentinel master name */
	char		addr[POOL_NAME_LEN];	/* Sentinel mode: the master it reached */
} Conn;

/* conn.c */
extern void PoolConnInit(Conn *c);
extern void PoolConnClose(Conn *c);
/*
 * connect and hand-shake to node (within bmfredis.connect_timeout).  With
 * share_flight the handshake is only written: its replies are read, and
 * checked, before those of the next pipeline, which travels with it and
 * costs no round trip of its own (for reads only: see pool.c).
 */
extern bool PoolConnConnect(Conn *c, const RedisNode *node, bool share_flight,
							RedisError *err);
/* write a pipeline (the connection is BUSY until its replies are read) */
extern bool PoolConnSend(Conn *c, const StringInfoData *cmds, TimestampTz deadline,
						 RedisError *err);
/* read ncmds replies (READY again when all came) */
extern bool PoolConnRecv(Conn *c, int ncmds, TimestampTz deadline, MemoryContext cxt,
						 RedisReply **replies, RedisError *err);
extern bool PoolConnExchange(Conn *c, const StringInfoData *cmds, int ncmds,
							 TimestampTz deadline, MemoryContext cxt,
							 RedisReply **replies, RedisError *err);
/* connect to ep, one exchange, close (never leaks on an interrupt) */
extern bool PoolConnExchangeOnce(Conn *c, const RedisEndpoint *ep,
								 const StringInfoData *cmds, int ncmds,
								 TimestampTz deadline, RedisReply **replies,
								 RedisError *err);
/* one reply whenever it comes: 1 *msg set, 0 none by the deadline (0: do
 * not wait), -1 failure */
extern int	PoolConnReadOne(Conn *c, TimestampTz deadline, MemoryContext cxt,
							RedisReply **msg, RedisError *err);
/* is an idle connection still alive (PING)?  closes it when not */
extern bool PoolConnAlive(Conn *c);
/* AUTH [username] password into buf, if there is a password */
extern bool PoolAppendAuth(StringInfo buf, const char *username, const char *password);

/* sentinel.c: the master's address, from the first sentinel that knows it */
extern bool PoolSentinelResolve(const RedisNode *node, TimestampTz deadline,
								char *host, size_t hostlen, int *port,
								RedisError *err);

#endif							/* BMFREDIS_POOL_INTERNAL_H */
