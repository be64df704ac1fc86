/*-------------------------------------------------------------------------
 *
 * internal.h
 *		What the files of the client layer share among themselves (not for
 *		the layers above: they use client.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_CLIENT_INTERNAL_H
#define BMFREDIS_CLIENT_INTERNAL_H

#include "postgres.h"

#include "client/client.h"

/* client.c: batches, and sending one to one node */
extern void ClientBatchPart(RedisBatch *b, int argc, const char *const *argv,
							const size_t *lens, RedisScript *script, int slot);
extern void ClientBatchCopyPart(RedisBatch *to, const RedisBatch *from, int i);
extern int	ClientPoolFlags(int flags);
extern bool ClientIsNoscript(const RedisReply *r);
extern bool ClientRetryNoscript(const RedisNode *node, const RedisBatch *b,
								RedisReply **replies, int flags,
								TimestampTz deadline, RedisError *err);

/* route.c: a cluster */
extern void ClientBatchAddCluster(RedisBatch *b, const RedisArgs *a);
extern bool ClientClusterSend(const RedisNode *cnode, const RedisBatch *b, int flags,
							  TimestampTz deadline, RedisReply **replies,
							  RedisError *err);
extern RedisReply **ClientJoinParts(const RedisBatch *b, RedisReply **parts);

/* identity.c: the foreign server named by bmfredis.server */
typedef struct ClientServerEndpoint
{
	char		host[256];		/* "": the settings' */
	int			port;			/* -1: the settings' */
	int			tls;			/* -1: the settings', else 0 or 1 */
	char		tls_server_name[256];	/* "": the settings' */
} ClientServerEndpoint;

extern bool ClientServerOptions(ClientServerEndpoint *ep);
extern uint64 ClientIdentityGeneration(void);

#endif							/* BMFREDIS_CLIENT_INTERNAL_H */
