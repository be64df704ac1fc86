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
 * used values go first), and only keys shorter than NEAR_KEY_MAX.
 *
 * In cluster mode each master a key is read from is tracked on its own
 * (an entry belongs to its node's session), a MOVED or ASK drops what
 * that node gave, and missing keys are not kept: a slot handed over
 * while empty sends no invalidation of the keys it may hold later.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "lib/ilist.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "base/glob.h"
#include "base/guc.h"
#include "base/stats.h"
#include "base/wait.h"
#include "client/client.h"
#include "client/cluster.h"
#include "client/internal.h"
#include "pool/pool.h"

#define NEAR_KEY_MAX 256
#define NEAR_NODES_MAX 16		/* as many as the pool tracks */

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
	int64		fetched;		/* when its read was sent (BmfMonotonicUs) */
	uint64		epoch;			/* the tracking session it was read under */
	uint64		seq;			/* of the read that made the placeholder */
	dlist_node	lru;			/* VALID entries, most recent first */
} NearEntry;

static struct
{
	MemoryContext cxt;
	HTAB	   *hash;
	dlist_head	lru;
	size_t		bytes;
	uint64		seq;
	char		node[POOL_NAME_LEN];	/* of this backend's calls */
	int			nsessions;
	struct
	{
		char		name[POOL_NAME_LEN];
		uint64		epoch;		/* the entries of this node are in it */
	}			sessions[NEAR_NODES_MAX];
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

/* Drop what one node's tracking session gave (all of it outside a cluster) */
static void
forget_epoch(uint64 epoch, bool cluster)
{
	HASH_SEQ_STATUS seq;
	NearEntry  *e;

	if (near.hash == NULL)
		return;
	if (!cluster)
	{
		RedisNearForgetAll();
		return;
	}
	near.stats.full_flushes++;
	hash_seq_init(&seq, near.hash);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->epoch == epoch)
			remove_entry(e);	/* dynahash allows removing the current one */
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

/* The session near knows for a node: what its entries were read under */
static int
session_of(const char *name)
{
	int			i;

	for (i = 0; i < near.nsessions; i++)
		if (strcmp(near.sessions[i].name, name) == 0)
			return i;
	if (near.nsessions == NEAR_NODES_MAX)
		return -1;
	strlcpy(near.sessions[i].name, name, sizeof(near.sessions[i].name));
	near.sessions[i].epoch = 0;
	return near.nsessions++;
}

/* Tracking broke: drop what the node's session gave; false */
static bool
lost(int s, bool cluster)
{
	if (near.sessions[s].epoch != 0)
		forget_epoch(near.sessions[s].epoch, cluster);
	near.sessions[s].epoch = 0;
	return false;
}

/*
 * Apply what the node's tracking connection has for us; false when
 * tracking broke (what the node gave dropped).  look: read the socket
 * even if the last look (PoolTrackingEnsure's or PoolTrackingLook's
 * epoll_wait) saw nothing there.
 */
static bool
drain(const RedisNode *node, int s, bool cluster, bool look)
{
	RedisReply *msg;
	int			rc;
	bool		read = false;

	while ((rc = PoolTrackingPoll(node, near.msgcxt, &msg, look, 0)) > 0)
	{
		if (rc == 1)
			apply_invalidation(msg);
		read = true;
	}
	if (read)
		MemoryContextReset(near.msgcxt);
	return rc < 0 ? lost(s, cluster) : true;
}

/*
 * Wait until a sync sent at need or later has been answered, applying the
 * invalidations that come before its answer.  false when tracking broke
 * or Redis did not answer within bmfredis.command_timeout (the pool then
 * leaves the node alone for its backoff): what the node gave is dropped,
 * and the read goes the ordinary way.
 */
static bool
sync_node(const RedisNode *node, int s, bool cluster, int64 need)
{
	TimestampTz deadline = BmfDeadline(bmf_command_timeout);
	int64		synced;
	int64		ping_sent;
	RedisReply *msg;
	int			rc;

	near.stats.syncs++;
	for (;;)
	{
		PoolTrackingSyncState(node, &synced, &ping_sent);
		if (synced >= need)
			break;
		/* one in flight sent too early is answered first: then another */
		if (ping_sent == 0 && !PoolTrackingPing(node))
			rc = -1;
		else
			rc = PoolTrackingPoll(node, near.msgcxt, &msg, true, deadline);
		if (rc == 1)
			apply_invalidation(msg);
		else if (rc <= 0)
		{
			MemoryContextReset(near.msgcxt);
			return lost(s, cluster);
		}
	}
	MemoryContextReset(near.msgcxt);
	return true;
}

/*
 * The bound on staleness (bmfredis.near_cache_max_lag): a kept key of the
 * node's among keys[0..n) (those nodes[] gives the node, when nodes) is
 * served only if everything Redis wrote to the tracking connection until
 * max_lag ago has been read (a sync answered), or the key itself was read
 * since; otherwise one sync first.  While hits come, a sync is sent ahead
 * whenever the last is half max_lag old, so that they never wait.  false
 * when tracking broke (what the node gave is dropped).
 */
static bool
ready(const RedisNode *node, bool cluster, uint64 epoch, int n,
	  const char *const *keys, const size_t *lens,
	  const RedisNode *const *nodes, int64 now_us)
{
	int64		lag = (int64) bmf_near_cache_max_lag * 1000;
	int64		synced;
	int64		ping_sent;
	int			s = session_of(node->ep.name);
	int			i;

	if (s < 0)
		return false;
	PoolTrackingSyncState(node, &synced, &ping_sent);
	for (i = 0; i < n; i++)
	{
		NearEntry  *e;

		if (nodes && nodes[i] != node)
			continue;
		e = find(keys[i], lens[i]);
		if (e && e->state == NEAR_VALID && e->epoch == epoch &&
			now_us - Max(synced, e->fetched) > lag)
			return sync_node(node, s, cluster, now_us - lag);
	}
	if (lag > 0 && ping_sent == 0 && now_us - synced > lag / 2 &&
		!PoolTrackingPing(node))
		return lost(s, cluster);
	return true;
}

/*
 * No hit while invalidations that committed earlier wait to be sent (the
 * retry queue): a copy could be what they remove.  Whatever this call
 * found waiting, the copies go (their invalidations may not be here yet).
 */
static bool
backlog_clear(const RedisNode *node)
{
	switch (RedisBeforeCall(node))
	{
		case REDIS_BACKLOG_NONE:
			return true;
		case REDIS_BACKLOG_SENT:
			RedisNearForgetAll();
			return true;
		default:
			RedisNearForgetAll();
			return false;
	}
}

/*
 * Admission: a key is kept from its second read on.  The first read of a
 * key this backend does not hold goes to Redis as an ordinary read,
 * untracked and without the PTTL, so a stream of keys read once costs
 * what it costs with the near-cache off (the doorkeeper of TinyLFU).  A
 * direct-mapped table of key hashes: a collision at worst admits a key on
 * its first read, or on its third.
 */
#define NEAR_SEEN 8192			/* 32 kB */

static uint32 near_seen[NEAR_SEEN];	/* 0: empty */

static bool
admitted(const char *key, size_t len)
{
	uint32		h = hash_bytes((const unsigned char *) key, (int) len);
	uint32	   *slot = &near_seen[h % NEAR_SEEN];

	h |= 1;						/* never 0 (the index is taken before) */
	if (*slot == h)
		return true;
	*slot = h;
	return false;
}

static bool
prefix_allowed(const char *key, size_t len)
{
	size_t		plen = strlen(bmf_key_prefix);
	const char *p = bmf_near_cache_prefixes;
	const char *item;
	size_t		n;

	if (p == NULL || *p == '\0')
		return true;
	if (len < plen)
		return false;
	key += plen;
	len -= plen;
	while (BmfListNext(&p, &item, &n))
		if (n > 0 && n <= len && memcmp(key, item, n) == 0)
			return true;
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
	 int64 sent_us, const RedisNode *node, bool cluster)
{
	NearEntry  *e = find(key, len);
	int64		ttl_ms;

	if (e == NULL || e->state != NEAR_FETCHING || e->seq != seq)
	{
		near.stats.rejections++;
		return;
	}
	if (e->epoch != epoch || PoolTrackingEpoch(node) != epoch ||
		(value->type != RESP_STRING && value->type != RESP_NIL) ||
		pttl->type != RESP_INTEGER || pttl->integer == 0 || pttl->integer < -2 ||
		(value->type == RESP_STRING && pttl->integer == -2))
	{
		/* tracking changed under the read, or the key expires (or expired) now */
		near.stats.rejections++;
		remove_entry(e);
		return;
	}
	if (value->type == RESP_NIL && cluster)
	{
		remove_entry(e);		/* see the top of the file */
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
	e->fetched = sent_us;
	dlist_push_head(&near.lru, &e->lru);
	near.bytes += entry_bytes(e);
	near.stats.entries++;
	evict_to_budget();
}

/*
 * The node of this backend's calls (the seed in cluster mode, its slot map
 * known), or NULL when the near-cache cannot take the read.  A new node
 * (bmfredis.host changed, a Sentinel failover) starts from nothing.
 */
static const RedisNode *
caller(void)
{
	const RedisNode *node = RedisCallerNode();
	RedisError	err;

	if (strcmp(node->ep.name, near.node) != 0)
	{
		RedisNearDisconnect();
		strlcpy(near.node, node->ep.name, sizeof(near.node));
	}
	if (RedisNodeIsCluster(node) &&
		!RedisClusterEnsureMap(node, BmfDeadline(bmf_command_timeout), &err))
		return NULL;			/* the ordinary read reports what failed */
	return node;
}

/* The node that serves key: the caller's, or in a cluster its slot's. */
static const RedisNode *
key_node(const RedisNode *caller_node, const char *key, size_t len)
{
	if (!RedisNodeIsCluster(caller_node))
		return caller_node;
	return RedisClusterNodeForSlot(RedisKeySlot(key, len));
}

/*
 * Ready to serve node's keys from memory: its tracking session current,
 * what it has sent applied.  false when the near-cache cannot take the
 * read (tracking refused or broken just now).
 */
static bool
begin(const RedisNode *node, bool cluster, uint64 *epoch)
{
	RedisError	err;
	int			s;

	if (!PoolTrackingEnsure(node, epoch, &err))
		return false;			/* the ordinary read reports what failed */
	ensure_hash();
	if ((s = session_of(node->ep.name)) < 0)
		return false;
	if (near.sessions[s].epoch != *epoch)
	{
		if (near.sessions[s].epoch != 0)
			forget_epoch(near.sessions[s].epoch, cluster);
		near.sessions[s].epoch = *epoch;
	}
	if (!drain(node, s, cluster, false))
		return false;
	ensure_hash();				/* a FLUSHALL may have dropped it */
	return true;
}

/* After the read's reply: what the node sent meanwhile, applied */
static void
settle(const RedisNode *node, bool cluster)
{
	int			s = session_of(node->ep.name);

	PoolTrackingLook(node);
	if (s >= 0)
		(void) drain(node, s, cluster, false);
}

/* A hit's entry, or NULL after leaving a placeholder (*seq) for the read. */
static NearEntry *
lookup(const char *key, size_t len, TimestampTz now, uint64 epoch, uint64 *seq)
{
	NearEntry  *e = find(key, len);
	char		k[NEAR_KEY_MAX];
	bool		found;

	if (e && e->state == NEAR_VALID)
	{
		if (now < e->expires && e->epoch == epoch)
		{
			dlist_move_head(&near.lru, &e->lru);
			near.stats.hits++;
			return e;
		}
		if (e->epoch == epoch)
			near.stats.evictions_lifetime++;
		remove_entry(e);
	}
	memset(k, 0, sizeof(k));
	memcpy(k, key, len);
	ensure_hash();				/* a FLUSHALL another node sent dropped it */
	e = hash_search(near.hash, k, HASH_ENTER, &found);
	/* found: another read's placeholder, left by an error; this one wins */
	e->state = NEAR_FETCHING;
	e->value = NULL;
	e->epoch = epoch;
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

/* A read that could not be tracked: counted, and its placeholder dropped */
static void
reject(const char *key, size_t len, uint64 seq)
{
	near.stats.rejections++;
	drop_placeholder(key, len, seq);
}

/* A cluster's redirect: the slot is elsewhere now; drop what node gave */
static bool
redirected(const RedisReply *r, uint64 epoch)
{
	if (r->type != RESP_ERROR ||
		!(RespErrorIs(r, "MOVED") || RespErrorIs(r, "ASK")))
		return false;
	RedisClusterMapStale();
	forget_epoch(epoch, true);
	return true;
}

/*
 * The batch that reads keys to keep them, for one node: CLIENT CACHING yes
 * (tracking is OPTIN: the command after it is tracked), then MGET and the
 * PTTLs; or, with pairs, CLIENT CACHING yes, GET and PTTL for each key (a
 * cluster node refuses an MGET across slots).
 */
#define FETCH_PAIR 3			/* CACHING, GET, PTTL */

static void
add2(RedisBatch *b, const char *cmd, const char *arg, size_t len)
{
	RedisArgs	a;

	RedisArgsInit(&a, 2);
	RedisArgsAdd(&a, cmd, strlen(cmd));
	RedisArgsAdd(&a, arg, len);
	RedisBatchAdd(b, &a);
}

static void
fetch_batch(RedisBatch *b, bool pairs, int n, const int *which,
			const char *const *keys, const size_t *lens)
{
	RedisArgs	a;
	int			i;

	RedisBatchInit(b);
	if (!pairs)
	{
		RedisArgsInit(&a, 3);
		RedisArgsAdd(&a, "CLIENT", 6);
		RedisArgsAdd(&a, "CACHING", 7);
		RedisArgsAdd(&a, "yes", 3);
		RedisBatchAdd(b, &a);
		RedisArgsInit(&a, n + 1);
		RedisArgsAdd(&a, "MGET", 4);
		for (i = 0; i < n; i++)
			RedisArgsAdd(&a, keys[which[i]], lens[which[i]]);
		RedisBatchAdd(b, &a);
	}
	for (i = 0; i < n; i++)
	{
		if (pairs)
		{
			RedisArgsInit(&a, 3);
			RedisArgsAdd(&a, "CLIENT", 6);
			RedisArgsAdd(&a, "CACHING", 7);
			RedisArgsAdd(&a, "yes", 3);
			RedisBatchAdd(b, &a);
			add2(b, "GET", keys[which[i]], lens[which[i]]);
		}
		add2(b, "PTTL", keys[which[i]], lens[which[i]]);
	}
}

/* CLIENT CACHING yes answered OK: the read after it is tracked */
static bool
caching_on(const RedisReply *r)
{
	return r->type == RESP_STATUS && r->len == 2 && memcmp(r->str, "OK", 2) == 0;
}

bool
RedisNearGet(const char *key, size_t len, RedisReply **reply)
{
	const RedisNode *cnode;
	const RedisNode *node;
	bool		cluster;
	RedisError	err;
	uint64		epoch;
	NearEntry  *e;
	TimestampTz now;
	int64		now_us;
	RedisBatch	b;
	RedisReply **replies;
	uint64		seq;
	int			only = 0;

	if (len >= NEAR_KEY_MAX || !prefix_allowed(key, len))
		return false;
	if (find(key, len) == NULL && !admitted(key, len))
	{
		near.stats.misses++;
		return false;			/* a first read: an ordinary one */
	}
	if ((cnode = caller()) == NULL || !backlog_clear(cnode))
		return false;
	cluster = RedisNodeIsCluster(cnode);
	node = key_node(cnode, key, len);
	if (!begin(node, cluster, &epoch))
		return false;
	now = GetCurrentTimestamp();
	now_us = BmfMonotonicUs();
	if (!ready(node, cluster, epoch, 1, &key, &len, NULL, now_us))
		return false;
	if ((e = lookup(key, len, now, epoch, &seq)) != NULL)
	{
		*reply = as_reply(e);
		return true;
	}

	/* a miss: GET and PTTL (the connection tracks what it reads) */
	fetch_batch(&b, true, 1, &only, &key, &len);
	replies = RedisPipelineNode(node, REDIS_READ, REDIS_IDEMPOTENT, &b, 0, &err);
	if (replies == NULL)
	{
		drop_placeholder(key, len, seq);
		*reply = NULL;
		return true;			/* a miss, as the policy said */
	}
	if (cluster && redirected(replies[1], epoch))
		return false;			/* read through the cluster's routing */
	settle(node, cluster);
	if (caching_on(replies[0]))
		keep(key, len, seq, epoch, replies[1], replies[2], now, now_us, node, cluster);
	else
		reject(key, len, seq);
	if (replies[1]->type == RESP_ERROR)
		RedisRaiseReplyError(replies[1], "GET");
	*reply = replies[1]->type == RESP_NIL ? NULL : replies[1];
	return true;
}

/*
 * The misses which[0..n) of one node, read in one round trip, kept and
 * answered; false after a redirect (the caller reads them all as usual).
 */
static bool
fetch_misses(const RedisNode *node, bool cluster, uint64 epoch, int n,
			 const int *which, const char *const *keys, const size_t *lens,
			 const uint64 *seqs, TimestampTz now, int64 now_us, RedisReply **replies)
{
	RedisError	err;
	RedisBatch	b;
	RedisReply **r;
	int			i;

	fetch_batch(&b, cluster, n, which, keys, lens);
	r = RedisPipelineNode(node, REDIS_READ, REDIS_IDEMPOTENT, &b, 0, &err);
	if (r == NULL)
	{
		for (i = 0; i < n; i++)
		{
			drop_placeholder(keys[which[i]], lens[which[i]], seqs[which[i]]);
			replies[which[i]] = NULL;
		}
		return true;			/* misses, as the policy said */
	}
	for (i = 0; cluster && i < n; i++)
		if (redirected(r[3 * i + 1], epoch))
			return false;
	if (!cluster)
		RedisExpectArray(r[1], n, 0, "MGET");
	settle(node, cluster);
	for (i = 0; i < n; i++)
	{
		/* MGET answers nil for a key of another type; so does this */
		RedisReply *caching = cluster ? r[3 * i] : r[0];
		RedisReply *v = cluster ? r[3 * i + 1] : r[1]->element[i];
		RedisReply *pttl = cluster ? r[3 * i + 2] : r[2 + i];

		if (caching_on(caching))
			keep(keys[which[i]], lens[which[i]], seqs[which[i]], epoch, v, pttl,
				 now, now_us, node, cluster);
		else
			reject(keys[which[i]], lens[which[i]], seqs[which[i]]);
		replies[which[i]] = v->type == RESP_STRING ? v : NULL;
	}
	return true;
}

bool
RedisNearMget(int n, const char *const *keys, const size_t *lens,
			  RedisReply **replies)
{
	const RedisNode *cnode;
	const RedisNode **nodes = palloc(sizeof(RedisNode *) * n);
	const RedisNode **distinct = palloc(sizeof(RedisNode *) * n);
	uint64	   *epochs = palloc(sizeof(uint64) * n);
	uint64	   *seqs = palloc0(sizeof(uint64) * n);	/* 0: no placeholder */
	int		   *which = palloc(sizeof(int) * n);
	bool		cluster;
	TimestampTz now;
	int64		now_us;
	int			ndistinct = 0;
	int			i;
	int			d;

	bool		known = false;

	for (i = 0; i < n; i++)
		if (lens[i] >= NEAR_KEY_MAX || !prefix_allowed(keys[i], lens[i]))
			return false;
	for (i = 0; i < n; i++)
		known |= (find(keys[i], lens[i]) != NULL) | admitted(keys[i], lens[i]);
	if (!known)
	{
		near.stats.misses += n;
		return false;			/* all first reads: an ordinary MGET */
	}
	if ((cnode = caller()) == NULL || !backlog_clear(cnode))
		return false;
	cluster = RedisNodeIsCluster(cnode);

	/* every node ready (its invalidations applied) before any lookup */
	for (i = 0; i < n; i++)
	{
		nodes[i] = key_node(cnode, keys[i], lens[i]);
		for (d = 0; d < ndistinct && distinct[d] != nodes[i]; d++)
			;
		if (d == ndistinct)
		{
			if (!begin(nodes[i], cluster, &epochs[d]))
				return false;
			distinct[ndistinct++] = nodes[i];
		}
	}
	now = GetCurrentTimestamp();
	now_us = BmfMonotonicUs();
	for (d = 0; d < ndistinct; d++)
		if (!ready(distinct[d], cluster, epochs[d], n, keys, lens, nodes, now_us))
			return false;
	for (d = 0; d < ndistinct; d++)
	{
		int			m = 0;

		for (i = 0; i < n; i++)
		{
			NearEntry  *e;

			if (nodes[i] != distinct[d])
				continue;
			e = lookup(keys[i], lens[i], now, epochs[d], &seqs[i]);
			if (e == NULL)
				which[m++] = i;
			else
			{
				/* a copy: keeping the misses below may evict this entry */
				replies[i] = e->nil ? NULL : as_reply(e);
				if (replies[i])
					replies[i]->str = pnstrdup(e->value, e->len);
			}
		}
		if (m > 0 && !fetch_misses(distinct[d], cluster, epochs[d], m, which,
								   keys, lens, seqs, now, now_us, replies))
		{
			for (i = 0; i < n; i++)
				if (seqs[i] != 0)
					drop_placeholder(keys[i], lens[i], seqs[i]);
			return false;
		}
	}
	return true;
}

void
RedisNearDisconnect(void)
{
	RedisNearForgetAll();
	near.nsessions = 0;
	PoolTrackingStop();
}

const RedisNearStats *
RedisNearGetStats(void)
{
	near.stats.bytes = near.bytes;
	return &near.stats;
}
