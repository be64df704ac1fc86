/*-------------------------------------------------------------------------
 *
 * effects.h
 *		Side effects on Redis (invalidations, publishes) and the executor
 *		that sends a list of them in as few pipelined round trips as it can.
 *
 * The transaction layer queues effects and sends them after COMMIT; the
 * retry queue stores the ones that failed; immediate calls send at once.
 * All of them go through EffectsSend.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_EFFECTS_H
#define BMFREDIS_EFFECTS_H

#include "postgres.h"

#include "client/client.h"

typedef enum EffectKind
{
	EFFECT_KEY = 'k',			/* UNLINK target (a full key) */
	EFFECT_TAG = 't',			/* remove every key of tag index target */
	EFFECT_PATTERN = 'p',		/* SCAN MATCH target, UNLINK what matches;
								 * with arg (a namespace's prefix), not its
								 * locks and semaphores */
	EFFECT_TAG_PATTERN = 'q',	/* EFFECT_TAG for every tag index matching */
	EFFECT_EXPIRE_AT = 'x',		/* PEXPIREAT target arg LT */
	EFFECT_PUBLISH = 'm',		/* PUBLISH target arg */
	EFFECT_XADD = 's'			/* XADD target MAXLEN ~ n * message arg */
} EffectKind;

typedef struct Effect
{
	char		kind;			/* EffectKind */
	uint32		target_len;
	uint32		arg_len;
	const char *target;			/* key, tag index key, pattern or channel */
	const char *arg;			/* message, or epoch milliseconds */
} Effect;

/* What EffectsSend did. */
typedef struct EffectsResult
{
	int64		unlinked;		/* keys removed */
	int64		published;		/* messages sent */
	int64		appended;		/* messages appended to streams */
	int64		receivers;		/* sum of PUBLISH replies */
	int			failed;			/* effects not confirmed */
	int			error_replies;	/* error replies Redis gave */
	char		first_error[256];	/* the first error reply, for a WARNING */
} EffectsResult;

/*
 * Send n effects to node, in order of kind (keys and expiries, tags, tag
 * patterns, patterns, then publishes in their own order), stopping at the
 * deadline.  done[i] is set for each effect that Redis confirmed, and for
 * a PUBLISH it refused (pub/sub is at most once).  An invalidation or a
 * stream append that Redis refused with an error reply (an ACL's NOPERM,
 * a WRONGTYPE tag index) is not done: it is kept for retry like one Redis
 * never got, so that a refusal is loud and never a silent stale key.
 * Returns false, with err set (for refusals, RS_REPLY and the first
 * error's SQLSTATE), if anything is not done.  Never raises for a Redis
 * fault; throws only for out-of-memory and, unless the caller holds
 * interrupts, for cancel.
 */
extern bool EffectsSend(const RedisNode *node, const Effect *effects, int n,
						TimestampTz deadline, bool *done,
						EffectsResult *result, RedisError *err);

/*
 * Streams (xact.c): keys (as UNLINKs) and publishes of effects[0 .. n)
 * written to node's stream connection <tag> inside MULTI while the
 * transaction runs.  EffectsStreamWrite writes them (opening: starting
 * with MULTI); EffectsStreamFinish writes the last ones and EXEC, and is
 * true when Redis ran everything the stream carried (*counted: keys that
 * existed, or messages' receivers).  false, with err set, leaves the
 * effects to be sent the ordinary way; the stream is then closed, and
 * Redis drops its MULTI.  EffectsStreamAbandon closes an open stream.
 * None of them raises for a Redis fault.  Not for a cluster.
 */
extern bool EffectsStreamWrite(const RedisNode *node, const char *tag,
							   bool opening, const Effect *effects, int n,
							   TimestampTz deadline, RedisError *err);
extern bool EffectsStreamFinish(const RedisNode *node, const char *tag,
								const Effect *effects, int n,
								TimestampTz deadline, int64 *counted,
								RedisError *err);
extern void EffectsStreamAbandon(const char *node_name, const char *tag);


/*
 * Add to a (a script's keys) the tag index keys of a script that sets key
 * (full, prefixed) with tags, for ttl_ms (0: no TTL): <prefix>tag:<t>; in
 * cluster mode the shard of each index in key's slot, after recording that
 * slot in each index's registry <prefix>tag:<t> (one round trip, before
 * the script runs, so an invalidation that misses the slot cannot miss the
 * key).  false when the registries could not be written (reported as the
 * policy says).
 */
extern bool EffectsAddTagIndexes(RedisArgs *a, const char *key, size_t keylen,
								 text **tags, int ntags, int64 ttl_ms,
								 RedisPolicy policy);

/* The script redis_cache_set(..., tags) runs: SET plus tag index upkeep. */
extern RedisScript effects_set_tagged_script;

#endif							/* BMFREDIS_EFFECTS_H */
