/*-------------------------------------------------------------------------
 *
 * near.c
 *		The near-cache: values redis_cache_get read, kept in this backend
 *		and kept true by Redis' server-assisted invalidation (CLIENT
 *		TRACKING, pool.c), so that a hot read costs no round trip.
 *
 * Correct first.  A value is served from here only while the tracking
 * session it was read under (the epoch) is the current one: a new
 * connection, a broken one, a node change or redis_disconnect() all start
 * a new session and drop everything.  Before each read the invalidations
 * that have arrived are applied, without waiting.  A read that misses
 * leaves a placeholder under the key; an invalidation of the key that
 * arrives before its reply removes the placeholder, and the reply is then
 * returned but not kept (the race Lettuce once lost).  FLUSHALL and
 * FLUSHDB arrive as an invalidation without keys: everything goes.  A
 * value never outlives its TTL (PTTL is read with it) nor
 * bmfredis.near_cache_max_age.  This backend's own writes drop its copies
 * at once, without waiting for Redis to say so.
 *
 * What is kept is bounded by bmfredis.near_cache_size (least recently
 * used values go first).  Only the node of this backend's calls, outside
 * cluster mode, and keys shorter than NEAR_KEY_MAX.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/ilist.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "base/guc.h"
#include "base/stats.h"
#include "client/client.h"
#include "client/internal.h"
#include "pool/pool.h"

#define NEAR_KEY_MAX 256

typedef enum NearState
{
	NEAR_FETCHING,				/* a placeholder: the read's reply is awaited */
	NEAR_VALID
} NearState;

typedef struct NearEntry
{
	char		key[NEAR_KEY_MAX];	/* hash key: the Redis key, NUL-padded */
	NearState	state;
	bool		nil;			/* Redis has no such key */
	char	   *value;			/* NUL-terminated copy */
	size_t		len;
	TimestampTz expires;
	uint64		seq;			/* of the read that made the placeholder */
	dlist_node	lru;			/* VALID entries, most recent first */
} NearEntry;

static struct
{
	MemoryContext cxt;
	HTAB	   *hash;
	dlist_head	lru;
	size_t		bytes;
	uint64		epoch;			/* tracking session the entries belong to */
	uint64		seq;
	char		node[POOL_NAME_LEN];
	MemoryContext msgcxt;
	RedisNearStats stats;
}			near;

static size_t
entry_bytes(const NearEntry *e)
{
	return sizeof(NearEntry) + (e->value ? e->len + 1 : 0);
}

static void
ensure_hash(void)
{
	HASHCTL		ctl;

	if (near.hash)
		return;
	if (near.cxt == NULL)
	{
		near.cxt = AllocSetContextCreate(TopMemoryContext, "bmfredis near-cache",
										 ALLOCSET_DEFAULT_SIZES);
		near.msgcxt = AllocSetContextCreate(TopMemoryContext, "bmfredis invalidations",
											ALLOCSET_SMALL_SIZES);
	}
	ctl.keysize = NEAR_KEY_MAX;
	ctl.entrysize = sizeof(NearEntry);
	ctl.hcxt = near.cxt;
	near.hash = hash_create("bmfredis near-cache", 1024, &ctl,
							HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	dlist_init(&near.lru);
	near.bytes = 0;
}

static void
remove_entry(NearEntry *e)
{
	if (e->state == NEAR_VALID)
	{
		dlist_delete(&e->lru);
		near.bytes -= entry_bytes(e);
		near.stats.entries--;
	}
	if (e->value)
		pfree(e->value);
	hash_search(near.hash, e->key, HASH_REMOVE, NULL);
}

bool
RedisNearActive(void)
{
	return near.hash != NULL;
}

void
RedisNearForgetAll(void)
{
	if (near.hash == NULL)
		return;
	near.stats.full_flushes++;
	near.stats.entries = 0;
	near.hash = NULL;
	MemoryContextReset(near.cxt);
	near.bytes = 0;
	dlist_init(&near.lru);
}

static NearEntry *
find(const char *key, size_t len)
{
	char		k[NEAR_KEY_MAX];

	if (near.hash == NULL || len >= NEAR_KEY_MAX)
		return NULL;
	memset(k, 0, sizeof(k));
	memcpy(k, key, len);
	return hash_search(near.hash, k, HASH_FIND, NULL);
}

void
RedisNearForget(const char *key, size_t len)
{
	NearEntry  *e;

	if (near.hash == NULL)
		return;
	if (len >= NEAR_KEY_MAX)
		return;					/* never kept */
	e = find(key, len);
	if (e)
		remove_entry(e);
}

/* Apply one message of __redis__:invalidate. */
static void
apply_invalidation(const RedisReply *msg)
{
	const RedisReply *keys;
	size_t		i;

	if (msg->type != RESP_ARRAY || msg->elements != 3)
		return;
	keys = msg->element[2];
	near.stats.invalidations++;
	if (keys->type == RESP_NIL)
	{
		RedisNearForgetAll();	/* FLUSHALL, FLUSHDB */
		return;
	}
	if (keys->type != RESP_ARRAY)
		return;
	for (i = 0; i < keys->elements; i++)
		if (keys->element[i]->type == RESP_STRING)
			RedisNearForget(keys->element[i]->str, keys->element[i]->len);
}

/*
 * Apply what has arrived; false when tracking broke (everything dropped).
 * look: read the socket even if the last look (PoolTrackingEnsure's or
 * PoolTrackingLook's epoll_wait) saw nothing there.
 */
static bool
drain(bool look)
{
	RedisReply *msg;
	int			rc;
	bool		ok = true;

	while ((rc = PoolTrackingPoll(near.msgcxt, &msg, look)) > 0)
		apply_invalidation(msg);
	if (rc < 0)
	{
		RedisNearForgetAll();
		near.epoch = 0;
		ok = false;
	}
	MemoryContextReset(near.msgcxt);
	return ok;
}

static bool
prefix_allowed(const char *key, size_t len)
{
	size_t		plen = strlen(bmf_key_prefix);
	const char *p = bmf_near_cache_prefixes;

	if (p == NULL || *p == '\0')
		return true;
	if (len < plen)
		return false;
	key += plen;
	len -= plen;
	while (*p)
	{
		const char *end = strchr(p, ',');
		size_t		n = end ? (size_t) (end - p) : strlen(p);

		while (n > 0 && *p == ' ')
		{
			p++;
			n--;
		}
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n > 0 && n <= len && memcmp(key, p, n) == 0)
			return true;
		if (!end)
			break;
		p = end + 1;
	}
	return false;
}

static void
evict_to_budget(void)
{
	while (near.bytes > (size_t) bmf_near_cache_size && !dlist_is_empty(&near.lru))
	{
		NearEntry  *oldest = dlist_tail_element(NearEntry, lru, &near.lru);

		near.stats.evictions_memory++;
		remove_entry(oldest);
	}
}

/* The value as the reply the caller would have had from Redis. */
static RedisReply *
as_reply(const NearEntry *e)
{
	RedisReply *r;

	if (e->nil)
		return NULL;
	r = palloc0(sizeof(RedisReply));
	r->type = RESP_STRING;
	r->str = e->value;
	r->len = e->len;
	return r;
}

/* Keep what a read fetched, unless an invalidation took its placeholder. */
static void
keep(const char *key, size_t len, uint64 seq, uint64 epoch,
	 const RedisReply *value, const RedisReply *pttl, TimestampTz sent,
	 const RedisNode *node)
{
	NearEntry  *e = find(key, len);
	int64		ttl_ms;

	if (e == NULL || e->state != NEAR_FETCHING || e->seq != seq)
	{
		near.stats.rejections++;
		return;
	}
	if (near.epoch != epoch || PoolTrackingEpoch(node) != epoch ||
		(value->type != RESP_STRING && value->type != RESP_NIL) ||
		pttl->type != RESP_INTEGER || pttl->integer == 0 || pttl->integer < -2 ||
		(value->type == RESP_STRING && pttl->integer == -2))
	{
		/* tracking changed under the read, or the key expires (or expired) now */
		near.stats.rejections++;
		remove_entry(e);
		return;
	}
	ttl_ms = bmf_near_cache_max_age;
	if (pttl->integer > 0)
		ttl_ms = Min(ttl_ms, pttl->integer);
	e->state = NEAR_VALID;
	e->nil = (value->type == RESP_NIL);
	e->value = NULL;
	e->len = 0;
	if (!e->nil)
	{
		e->value = MemoryContextAlloc(near.cxt, value->len + 1);
		memcpy(e->value, value->str, value->len);
		e->value[value->len] = '\0';
		e->len = value->len;
	}
	e->expires = TimestampTzPlusMilliseconds(sent, ttl_ms);
	dlist_push_head(&near.lru, &e->lru);
	near.bytes += entry_bytes(e);
	near.stats.entries++;
	evict_to_budget();
}

/*
 * Ready to serve from memory: the caller's node, in the current tracking
 * session, with what has arrived applied.  NULL when the near-cache cannot
 * take the read (cluster mode, tracking refused or broken just now).
 */
static const RedisNode *
begin(uint64 *epoch)
{
	const RedisNode *node = RedisCallerNode();
	RedisError	err;

	if (node->cluster)
		return NULL;
	if (strcmp(node->ep.name, near.node) != 0)
	{
		RedisNearForgetAll();
		strlcpy(near.node, node->ep.name, sizeof(near.node));
	}
	if (!PoolTrackingEnsure(node, epoch, &err))
		return NULL;			/* the ordinary read reports what failed */
	ensure_hash();
	if (*epoch != near.epoch)
	{
		RedisNearForgetAll();
		ensure_hash();
		near.epoch = *epoch;
	}
	if (!drain(false))
		return NULL;
	ensure_hash();				/* a FLUSHALL may have dropped it */
	return node;
}

/* A hit's entry, or NULL after leaving a placeholder (*seq) for the read. */
static NearEntry *
lookup(const char *key, size_t len, TimestampTz now, uint64 *seq)
{
	NearEntry  *e = find(key, len);
	char		k[NEAR_KEY_MAX];
	bool		found;

	if (e && e->state == NEAR_VALID)
	{
		if (now < e->expires)
		{
			dlist_move_head(&near.lru, &e->lru);
			near.stats.hits++;
			return e;
		}
		near.stats.evictions_lifetime++;
		remove_entry(e);
	}
	memset(k, 0, sizeof(k));
	memcpy(k, key, len);
	e = hash_search(near.hash, k, HASH_ENTER, &found);
	/* found: another read's placeholder, left by an error; this one wins */
	e->state = NEAR_FETCHING;
	e->value = NULL;
	e->seq = *seq = ++near.seq;
	near.stats.misses++;
	return NULL;
}

static void
drop_placeholder(const char *key, size_t len, uint64 seq)
{
	NearEntry  *e = find(key, len);

	if (e && e->state == NEAR_FETCHING && e->seq == seq)
		remove_entry(e);
}

bool
RedisNearGet(const char *key, size_t len, RedisReply **reply)
{
	const RedisNode *node;
	RedisError	err;
	uint64		epoch;
	NearEntry  *e;
	TimestampTz now;
	RedisBatch	b;
	RedisArgs	a;
	RedisReply **replies;
	uint64		seq;

	if (len >= NEAR_KEY_MAX || !prefix_allowed(key, len))
		return false;
	if ((node = begin(&epoch)) == NULL)
		return false;
	now = GetCurrentTimestamp();
	if ((e = lookup(key, len, now, &seq)) != NULL)
	{
		*reply = as_reply(e);
		return true;
	}

	/* a miss: GET and PTTL (the connection tracks what it reads) */
	RedisBatchInit(&b);
	RedisArgsInit(&a, 2);
	RedisArgsAdd(&a, "GET", 3);
	RedisArgsAdd(&a, key, len);
	RedisBatchAdd(&b, &a);
	RedisArgsInit(&a, 2);
	RedisArgsAdd(&a, "PTTL", 4);
	RedisArgsAdd(&a, key, len);
	RedisBatchAdd(&b, &a);
	replies = RedisPipelineNode(node, REDIS_READ, REDIS_IDEMPOTENT, &b, 0, &err);
	if (replies == NULL)
	{
		drop_placeholder(key, len, seq);
		*reply = NULL;
		return true;			/* a miss, as the policy said */
	}
	PoolTrackingLook();
	(void) drain(false);
	keep(key, len, seq, epoch, replies[0], replies[1], now, node);
	if (replies[0]->type == RESP_ERROR)
		RedisRaiseReplyError(replies[0], "GET");
	*reply = replies[0]->type == RESP_NIL ? NULL : replies[0];
	return true;
}

bool
RedisNearMget(int n, const char *const *keys, const size_t *lens,
			  RedisReply **replies)
{
	const RedisNode *node;
	RedisError	err;
	uint64		epoch;
	TimestampTz now;
	uint64	   *seqs = palloc(sizeof(uint64) * n);
	int		   *miss = palloc(sizeof(int) * n);
	int			nmiss = 0;
	RedisBatch	b;
	RedisArgs	a;
	RedisReply **r;
	int			i;

	for (i = 0; i < n; i++)
		if (lens[i] >= NEAR_KEY_MAX || !prefix_allowed(keys[i], lens[i]))
			return false;
	if ((node = begin(&epoch)) == NULL)
		return false;
	now = GetCurrentTimestamp();
	for (i = 0; i < n; i++)
	{
		NearEntry  *e = lookup(keys[i], lens[i], now, &seqs[i]);

		if (e)
		{
			/* a copy: keeping the misses below may evict this entry */
			replies[i] = e->nil ? NULL : as_reply(e);
			if (replies[i])
				replies[i]->str = pnstrdup(e->value, e->len);
		}
		else
			miss[nmiss++] = i;
	}
	if (nmiss == 0)
		return true;

	/* the misses: one MGET and their PTTLs */
	RedisBatchInit(&b);
	RedisArgsInit(&a, nmiss + 1);
	RedisArgsAdd(&a, "MGET", 4);
	for (i = 0; i < nmiss; i++)
		RedisArgsAdd(&a, keys[miss[i]], lens[miss[i]]);
	RedisBatchAdd(&b, &a);
	for (i = 0; i < nmiss; i++)
	{
		RedisArgsInit(&a, 2);
		RedisArgsAdd(&a, "PTTL", 4);
		RedisArgsAdd(&a, keys[miss[i]], lens[miss[i]]);
		RedisBatchAdd(&b, &a);
	}
	r = RedisPipelineNode(node, REDIS_READ, REDIS_IDEMPOTENT, &b, 0, &err);
	if (r == NULL)
	{
		for (i = 0; i < nmiss; i++)
		{
			drop_placeholder(keys[miss[i]], lens[miss[i]], seqs[miss[i]]);
			replies[miss[i]] = NULL;
		}
		return true;			/* misses, as the policy said */
	}
	RedisExpectArray(r[0], nmiss, 0, "MGET");
	PoolTrackingLook();
	(void) drain(false);
	for (i = 0; i < nmiss; i++)
		keep(keys[miss[i]], lens[miss[i]], seqs[miss[i]], epoch,
			 r[0]->element[i], r[1 + i], now, node);
	for (i = 0; i < nmiss; i++)
		replies[miss[i]] = r[0]->element[i]->type == RESP_NIL ? NULL : r[0]->element[i];
	return true;
}

void
RedisNearDisconnect(void)
{
	RedisNearForgetAll();
	near.epoch = 0;
	PoolTrackingStop();
}

const RedisNearStats *
RedisNearGetStats(void)
{
	near.stats.bytes = near.bytes;
	return &near.stats;
}
