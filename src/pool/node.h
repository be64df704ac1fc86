/*-------------------------------------------------------------------------
 *
 * node.h
 *		The pool's plain types, for the layers above to name: a node and
 *		how to log in to it, a row of the pool's snapshot, and the
 *		(opaque) subscription.  No functions: features reach the pool
 *		through client/client.h only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_NODE_H
#define BMFREDIS_NODE_H

#include "postgres.h"

#include "datatype/timestamp.h"

#include "wire/endpoint.h"

#define POOL_NAME_LEN 320

/* A Redis node and how to log in to it. */
typedef struct RedisNode
{
	RedisEndpoint ep;
	const char *username;		/* NULL or "": the default user */
	const char *password;		/* NULL or "": password_file, or no AUTH */
	const char *password_file;	/* NULL or "": none */
	int			db;
	/*
	 * Sentinel mode, when sentinel_master is set: ep's host and port are
	 * not used; the master's address is asked of the sentinels (a list of
	 * host:port) at every connect, and a connection is kept only to a
	 * node that says (ROLE) it is the master.
	 */
	const char *sentinels;
	const char *sentinel_master;
	const char *sentinel_username;
	const char *sentinel_password;
	/*
	 * Cluster mode (bmfredis.cluster): ep is the first seed; commands are
	 * routed by slot to the nodes of the map (cluster.c), which are plain
	 * nodes.  The pool never sees this node itself.
	 */
	bool		cluster;
} RedisNode;

/* One row of redis_connections() */
typedef struct PoolInfo
{
	char		node[POOL_NAME_LEN];
	const char *state;
	int			db;
	TimestampTz since;			/* 0 when not connected */
	TimestampTz last_used;
	int64		commands;
	int64		errors;
	int64		reconnects;
	int			failures;
	TimestampTz down_until;
	char		last_error[256];
} PoolInfo;

/* A dedicated connection in pub/sub mode (pool.h, client.h). */
typedef struct RedisSubscription RedisSubscription;

#endif							/* BMFREDIS_NODE_H */
