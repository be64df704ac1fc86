/*-------------------------------------------------------------------------
 *
 * cluster.h
 *		Redis Cluster: key slots, the slot map, and the keys bmfredis lays
 *		out so that every script touches one slot.
 *
 * Routing itself lives in route.c (batches split by slot, redirects);
 * this file knows which node owns which slot, learns it from CLUSTER
 * SHARDS (or SLOTS) and from MOVED redirects, and hands out RedisNodes for the pool.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_CLUSTER_H
#define BMFREDIS_CLUSTER_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "pool/node.h"
#include "wire/error.h"

#define CLUSTER_SLOTS 16384

/* The slot of a key: CRC16 (XMODEM) of the key or of its {hash tag}. */
extern int	RedisKeySlot(const char *key, size_t len);

/* A short string without braces whose slot is slot ("{<it>}" pins a key). */
extern const char *RedisSlotTag(int slot);

/*
 * A side key that must live in the slot of key (a full, prefixed key):
 * outside cluster mode key || suffix, the layout of bmfredis 1.0; in
 * cluster mode <prefix>{<slot tag>}<key without prefix> || suffix.
 */
extern void RedisSideKey(StringInfo out, const char *key, size_t len,
						 const char *suffix, size_t suffix_len);

/* The same for any key name and a given slot (tag index shards). */
extern void RedisKeyInSlot(StringInfo out, const char *key, size_t len, int slot);

/*
 * Make sure the slot map is known (asking the seeds, or any node we know,
 * for its slot map when it is empty or stale).  false with err set when
 * no node answers.  seed is the configured node (host, port, TLS, auth).
 */
extern bool RedisClusterEnsureMap(const RedisNode *seed, TimestampTz deadline,
								  RedisError *err);

/* The node serving slot (-1: any master), from the map. */
extern const RedisNode *RedisClusterNodeForSlot(int slot);

/*
 * Learn from "MOVED <slot> <addr>", the answer of node from: that slot is
 * served by addr now (":port" is a node at from's host).
 */
extern const RedisNode *RedisClusterMoved(int slot, const char *addr,
										  const RedisNode *from);

/* The node at addr ("host:port", or ":port" at from's host), added to the
 * table if new (ASK). */
extern const RedisNode *RedisClusterNodeAt(const char *addr, const RedisNode *from);

/* Ask for the slot map again before the next routed call. */
extern void RedisClusterMapStale(void);

/* The masters of the current map; *nodes palloc'd.  Returns the count. */
extern int	RedisClusterMasters(const RedisNode ***nodes);

/* A master to subscribe on: the n-th modulo the masters. */
extern const RedisNode *RedisClusterSubscribeNode(int n);

#endif							/* BMFREDIS_CLUSTER_H */
