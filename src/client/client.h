/*-------------------------------------------------------------------------
 *
 * client.h
 *		The API features use to talk to Redis: commands and pipelines built
 *		from argument vectors, key prefixing, the error policy, statistics.
 *
 * Features never build RESP, never see a connection, and never decide on
 * their own what a Redis fault means: they name a policy.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_CLIENT_H
#define BMFREDIS_CLIENT_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"

#include "base/compat.h"
#include "client/reply.h"
#include "pool/node.h"
#include "wire/resp.h"

/* What a call does when Redis is down, slow or unreachable. */
typedef enum RedisPolicy
{
	REDIS_READ,					/* a miss, per bmfredis.on_error */
	REDIS_WRITE,				/* "not done", per bmfredis.on_error */
	REDIS_STRICT,				/* always an ERROR (locks, admin) */
	REDIS_QUIET,				/* never raised; the caller reads err */
	REDIS_SOFT					/* a miss like READ, but at most a WARNING */
} RedisPolicy;

/* call flags */
#define REDIS_IDEMPOTENT	0x01	/* safe to re-send after a broken connection */
#define REDIS_FORCE			0x02	/* try even while the node is backing off */
#define REDIS_ERRORS_OK		0x04	/* return error replies instead of raising */
#define REDIS_READ_ONLY		0x08	/* reads only (implied by REDIS_READ) */

/*
 * A Lua script run with EVALSHA; the SHA1 is computed from the source on
 * first use.  When Redis answers NOSCRIPT (after a restart, or on a fresh
 * node) the client loads the script and re-sends, so callers never see it.
 */
typedef struct RedisScript
{
	const char *name;			/* for messages */
	const char *source;
	char		sha[41];		/* "" until computed */
} RedisScript;

#define REDIS_SCRIPT(name, source) {name, source, ""}

/* SHA1 (OpenSSL: PostgreSQL's cryptohash needs a resource owner) */
extern bool RedisSha1(const char *data, size_t len, uint8 *digest);

/* An argument vector, palloc'd in the current memory context. */
typedef struct RedisArgs
{
	int			argc;
	int			cap;
	const char **argv;
	size_t	   *lens;
	RedisScript *script;		/* set by RedisArgsScript */
} RedisArgs;

extern void RedisArgsInit(RedisArgs *a, int cap);
extern void RedisArgsAdd(RedisArgs *a, const char *s, size_t len);
extern void RedisArgsAddStr(RedisArgs *a, const char *s);
extern void RedisArgsAddInt(RedisArgs *a, int64 v);
extern void RedisArgsAddKey(RedisArgs *a, const char *key, size_t len);
extern void RedisArgsAddKeyText(RedisArgs *a, text *key);
/* Start a for "EVALSHA <sha> <numkeys>"; add keys, then arguments. */
extern void RedisArgsScript(RedisArgs *a, RedisScript *script, int numkeys);

/* The one prefixing function: out gets <bmfredis.key_prefix><key>. */
extern void RedisKeyPrefixed(StringInfo out, const char *key, size_t len);
/* Append the key prefix alone (for a key rendered after it). */
extern void RedisKeyPrefix(StringInfo out);
/* <prefix>tag:<tag>: the index of a tag's keys */
extern void RedisTagKey(StringInfo out, const char *tag, size_t len);
/* A MATCH pattern confined under the prefix (prefix globs escaped). */
extern void RedisPatternPrefixed(StringInfo out, const char *pattern, size_t len);
/* Checks a user-supplied key: not NULL (caller), not empty. */
extern void RedisCheckKey(const char *what, size_t len);

/*
 * A pipeline of commands sent in one round trip (one per node in cluster
 * mode).  In cluster mode a multi-key command whose keys hash to several
 * slots (MGET, MSET, UNLINK, DEL, EXISTS, TOUCH) is split into one part
 * per run of keys in the same slot; the caller still gets one reply per
 * command added, joined from its parts.
 */
typedef struct RedisBatch
{
	StringInfoData buf;
	int			n;				/* commands added: replies returned */
	int			nparts;			/* commands in buf (n unless split) */
	int			cap;
	int		   *offsets;		/* [nparts] where each starts in buf */
	RedisScript **scripts;		/* [nparts] the script of an EVALSHA, else NULL */
	int		   *slots;			/* [nparts] cluster mode: slot, -1 keyless */
	int		   *owner;			/* [nparts] cluster mode: its command */
	char	   *join;			/* [n] cluster mode: how parts' replies join */
	char	  **said;			/* [nparts] with bmfredis.log_commands: what
								 * each part is, for the log (never values) */
} RedisBatch;

extern void RedisBatchInit(RedisBatch *b);
extern void RedisBatchAdd(RedisBatch *b, const RedisArgs *a);
extern void RedisBatchReset(RedisBatch *b);

/*
 * Run one command.  Returns its reply, or NULL when Redis could not be
 * used and the policy says to carry on (the caller treats it as a miss
 * or a failed write).  Error replies are raised as ERRORs with a mapped
 * SQLSTATE unless REDIS_ERRORS_OK.  err may be NULL except with
 * REDIS_QUIET.
 */
extern RedisReply *RedisCommand(RedisPolicy policy, int flags,
								const RedisArgs *args, RedisError *err);

/* The same on a given node (the server's identity, whoever calls) */
extern RedisReply *RedisCommandNode(const RedisNode *node, RedisPolicy policy, int flags,
									const RedisArgs *args, RedisError *err);

/* Run a pipeline; NULL as for RedisCommand.  deadline 0: command timeout */
extern RedisReply **RedisPipeline(RedisPolicy policy, int flags,
								  const RedisBatch *b, TimestampTz deadline,
								  RedisError *err);
/* The same on a given node (another database of the same server, say) */
extern RedisReply **RedisPipelineNode(const RedisNode *node, RedisPolicy policy,
									  int flags, const RedisBatch *b,
									  TimestampTz deadline, RedisError *err);

/*
 * Streams (pool.h): a batch written to node's stream connection <tag> now,
 * its replies read with the last one.  RedisStreamSend writes b (opening:
 * on a fresh stream); false with err set when it cannot (the stream is
 * then closed).  RedisStreamFinish writes b and returns the replies of
 * everything the stream carried (*nreplies of them), or NULL with err set.
 * Neither raises for a Redis fault, nor routes by slot: not for a
 * cluster, where they fail.  RedisStreamAbandon closes an open stream.
 */
extern bool RedisStreamSend(const RedisNode *node, const char *tag,
							bool opening, const RedisBatch *b,
							TimestampTz deadline, RedisError *err);
extern RedisReply **RedisStreamFinish(const RedisNode *node, const char *tag,
									  const RedisBatch *b, TimestampTz deadline,
									  int *nreplies, RedisError *err);
extern void RedisStreamAbandon(const char *node_name, const char *tag);

/* Report a transport failure at the level the policy gives. */
extern void RedisReportFailure(RedisPolicy policy, int flags,
							   const RedisError *err, const char *command);
/* Raise an error reply as an ERROR with a mapped SQLSTATE. */
pg_noreturn extern void RedisRaiseReplyError(const RedisReply *reply, const char *command);
extern bool RedisReplyFull(RedisPolicy policy, int flags, const RedisReply *reply,
						   const char *command);
/* SQLSTATE for an error reply's text */
extern int	RedisReplyErrorCode(const char *text);

/* The configured node (bmfredis.host/port/unix_socket, credentials). */
extern const RedisNode *RedisDefaultNode(void);

/*
 * The namespace (default node and key prefix) hashed, and the other
 * databases whose workers serve the same one: their names into *names (in
 * a transaction), how many, or -1 without shared memory (not preloaded).
 */
extern uint64 RedisNamespaceHash(void);
extern int	RedisNamespaceSharers(List **names);

/* bmfredis.server when it names no bmfredis server, else NULL (in a transaction) */
extern const char *RedisServerMissing(void);

/*
 * The node a call made from SQL talks to: RedisDefaultNode(), or with
 * bmfredis.server and a user mapping for the current role, the same node
 * as that mapping's Redis user (identity.c).
 */
extern const RedisNode *RedisCallerNode(void);
extern bool RedisCallerIsMapped(void);
extern const char *RedisCallerMappedUser(void);

/*
 * The near-cache (near.c): RedisNearGet answers a GET of key (the Redis
 * key, prefix included) from this backend's copy or by reading it
 * tracked; false when it does not take the read (then read as usual).
 * *reply is NULL for a missing key.  RedisNearForget drops this backend's
 * copy of a key it writes; RedisNearForgetAll everything.
 */
typedef struct RedisNearStats
{
	int64		hits;
	int64		misses;
	int64		entries;
	int64		bytes;
	int64		evictions_memory;
	int64		evictions_lifetime;
	int64		invalidations;
	int64		full_flushes;
	int64		rejections;
	int64		syncs;			/* hits that waited for a sync (max_lag) */
} RedisNearStats;

extern bool RedisNearGet(const char *key, size_t len, RedisReply **reply);
/* the same for n keys: hits from memory, the misses in one round trip */
extern bool RedisNearMget(int n, const char *const *keys, const size_t *lens,
						  RedisReply **replies);
extern void RedisNearForget(const char *key, size_t len);
extern void RedisNearForgetAll(void);
extern bool RedisNearActive(void);
extern void RedisNearDisconnect(void);
extern const RedisNearStats *RedisNearGetStats(void);
/* The node to SUBSCRIBE on (attempt: how many tries came before). */
extern const RedisNode *RedisSubscribeNode(int attempt);
/* The same server and credentials, logical database db. */
extern const RedisNode *RedisNodeForDb(int db);

/*
 * What features may know of nodes and of this backend's connections (the
 * pool itself is not theirs to call): a node's name ("host:port",
 * "sentinel:<master>", "cluster:<seed>"), whether it is a cluster, the
 * address a Sentinel node reached (NULL if none), whether it is inside
 * its backoff window; the pool's snapshot; closing every connection.
 */
extern const char *RedisNodeName(const RedisNode *node);
extern bool RedisNodeIsCluster(const RedisNode *node);
extern const char *RedisNodeAddress(const RedisNode *node);
extern bool RedisNodeIsDown(const RedisNode *node);
extern int	RedisConnections(PoolInfo **rows);
extern int	RedisDisconnectAll(void);

/*
 * A subscription for redis_listen (attempt: how many came before; see
 * RedisSubscribeNode): the messages as they come (1: *msg set; 0: none by
 * the deadline; -1: failure, err set), then closed, on error paths too.
 */
extern RedisSubscription *RedisSubscribe(int attempt, int n, const char *const *names,
										 const bool *patterns, RedisError *err);
extern int	RedisSubscriptionRead(RedisSubscription *sub, TimestampTz deadline,
								  MemoryContext cxt, RedisReply **msg, RedisError *err);
extern void RedisUnsubscribe(RedisSubscription *sub);

/*
 * Called before every command or pipeline, unless already inside it: the
 * transaction layer uses it to re-send invalidations that failed earlier,
 * before this backend reads anything from Redis again.  It says whether
 * nothing was waiting, whatever was waiting has just been sent, or some
 * are still waiting; a cache read then is a miss, as a value read now
 * could be one those invalidations are about to remove.  RedisBeforeCall
 * runs it (the near-cache, whose hits send no command, asks it itself).
 */
typedef enum RedisBacklog
{
	REDIS_BACKLOG_NONE,
	REDIS_BACKLOG_SENT,
	REDIS_BACKLOG_WAITING
} RedisBacklog;
typedef RedisBacklog (*RedisBeforeCallHook) (const RedisNode *node);
extern RedisBacklog RedisBeforeCall(const RedisNode *node);
extern RedisBeforeCallHook redis_before_call_hook;


/* Per-backend counters (shared counters come with preloading). */
typedef struct RedisClientStats
{
	int64		calls;
	int64		failures;
	int64		error_replies;
} RedisClientStats;

extern RedisClientStats redis_client_stats;

#endif							/* BMFREDIS_CLIENT_H */
