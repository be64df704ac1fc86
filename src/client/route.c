/*-------------------------------------------------------------------------
 *
 * route.c
 *		Redis Cluster in the client: a batch's commands split by the slot
 *		of their keys (multi-key commands into one per slot), sent to each
 *		node as one pipeline per round, MOVED, ASK and TRYAGAIN followed,
 *		and the parts' replies joined back into one per command.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

#include "base/guc.h"
#include "base/wait.h"
#include "client/client.h"
#include "client/cluster.h"
#include "client/internal.h"
#include "pool/pool.h"

/* Where a command's keys are, for routing by slot. */
typedef enum KeySpec
{
	KEYS_NONE,					/* keyless: any node */
	KEYS_FIRST,					/* argv[1] (and maybe more in the same slot) */
	KEYS_ALL,					/* every argument, split by slot, replies summed */
	KEYS_ALL_ARRAY,				/* the same, replies concatenated (MGET) */
	KEYS_PAIRS,					/* key value pairs, split by slot (MSET) */
	KEYS_SCRIPT,				/* EVALSHA sha numkeys key... */
	KEYS_SECOND					/* argv[2] (OBJECT ENCODING key) */
} KeySpec;

static KeySpec
key_spec(const RedisArgs *a)
{
	static const char *const keyless[] = {
		"PING", "INFO", "PUBLISH", "SCAN", "SCRIPT", "CLIENT", "ROLE",
		"CLUSTER", "DBSIZE", "TIME", "HELLO", "AUTH", "SELECT", "CONFIG",
		"ECHO", "COMMAND", "LASTSAVE", "FLUSHALL", "FLUSHDB", "WAIT",
		"SLOWLOG", "LATENCY", "ACL", "RANDOMKEY", "KEYS", "ASKING",
		"READONLY", "READWRITE", "PUBSUB", "FUNCTION", "SAVE", "BGSAVE",
		"BGREWRITEAOF", "SWAPDB", "MULTI", "EXEC", "DISCARD", NULL
	};
	char		cmd[16];
	int			i;

	if (a->lens[0] >= sizeof(cmd))
		return KEYS_FIRST;
	memcpy(cmd, a->argv[0], a->lens[0]);
	cmd[a->lens[0]] = '\0';
	for (i = 0; cmd[i]; i++)
		cmd[i] = pg_ascii_toupper((unsigned char) cmd[i]);
	if (a->argc < 2)
		return KEYS_NONE;
	for (i = 0; keyless[i]; i++)
		if (strcmp(cmd, keyless[i]) == 0)
			return KEYS_NONE;
	if (strcmp(cmd, "UNLINK") == 0 || strcmp(cmd, "DEL") == 0 ||
		strcmp(cmd, "EXISTS") == 0 || strcmp(cmd, "TOUCH") == 0)
		return KEYS_ALL;
	if (strcmp(cmd, "MGET") == 0)
		return KEYS_ALL_ARRAY;
	if (strcmp(cmd, "MSET") == 0)
		return KEYS_PAIRS;
	if (strncmp(cmd, "EVAL", 4) == 0 || strncmp(cmd, "FCALL", 5) == 0)
		return KEYS_SCRIPT;
	if (strcmp(cmd, "OBJECT") == 0 || strcmp(cmd, "MEMORY") == 0 ||
		strcmp(cmd, "XINFO") == 0)
		return KEYS_SECOND;
	return KEYS_FIRST;
}

typedef struct SlotKey
{
	int			slot;
	int			arg;
} SlotKey;

static int
slotkey_cmp(const void *x, const void *y)
{
	const SlotKey *a = x;
	const SlotKey *b = y;

	if (a->slot != b->slot)
		return a->slot < b->slot ? -1 : 1;
	return a->arg < b->arg ? -1 : a->arg > b->arg;
}

/*
 * UNLINK, DEL, EXISTS, TOUCH whose keys span slots: one part per slot
 * (their replies are counts, summed; order does not matter).  false when
 * every key is in one slot and the command goes as it is.
 */
static bool
split_by_slot(RedisBatch *b, const RedisArgs *a)
{
	int			nkeys = a->argc - 1;
	SlotKey    *keys = palloc(sizeof(SlotKey) * nkeys);
	const char **argv = palloc(sizeof(char *) * a->argc);
	size_t	   *lens = palloc(sizeof(size_t) * a->argc);
	bool		one = true;
	int			i;
	int			start;

	for (i = 0; i < nkeys; i++)
	{
		keys[i].slot = RedisKeySlot(a->argv[i + 1], a->lens[i + 1]);
		keys[i].arg = i + 1;
		one &= (keys[i].slot == keys[0].slot);
	}
	if (one)
	{
		pfree(keys);
		pfree(argv);
		pfree(lens);
		return false;
	}
	qsort(keys, nkeys, sizeof(SlotKey), slotkey_cmp);
	argv[0] = a->argv[0];
	lens[0] = a->lens[0];
	for (start = 0; start < nkeys;)
	{
		int			end = start;

		while (end < nkeys && keys[end].slot == keys[start].slot)
		{
			argv[1 + end - start] = a->argv[keys[end].arg];
			lens[1 + end - start] = a->lens[keys[end].arg];
			end++;
		}
		ClientBatchPart(b, 1 + end - start, argv, lens, NULL, keys[start].slot);
		start = end;
	}
	b->join[b->n] = 's';		/* after the parts: join has room for n <= nparts */
	b->n++;
	pfree(keys);
	pfree(argv);
	pfree(lens);
	return true;
}

/*
 * Add a command in cluster mode: the slot of its (first) key; a multi-key
 * command whose keys span slots (Redis refuses it, even on one node)
 * becomes one part per slot (UNLINK, DEL, EXISTS, TOUCH) or per run of
 * consecutive keys in one slot (MGET, MSET: their order matters).
 */
void
ClientBatchAddCluster(RedisBatch *b, const RedisArgs *a)
{
	KeySpec		spec = key_spec(a);
	int			slot = -1;
	int			step;
	int			i;
	int			start;

	switch (spec)
	{
		case KEYS_NONE:
			break;
		case KEYS_FIRST:
			slot = RedisKeySlot(a->argv[1], a->lens[1]);
			break;
		case KEYS_SECOND:
			if (a->argc > 2)
				slot = RedisKeySlot(a->argv[2], a->lens[2]);
			break;
		case KEYS_SCRIPT:
			if (a->argc > 3 && !(a->lens[2] == 1 && a->argv[2][0] == '0'))
				slot = RedisKeySlot(a->argv[3], a->lens[3]);
			break;
		case KEYS_ALL:
			if (split_by_slot(b, a))
				return;
			slot = RedisKeySlot(a->argv[1], a->lens[1]);
			break;
		case KEYS_ALL_ARRAY:
		case KEYS_PAIRS:
			step = (spec == KEYS_PAIRS) ? 2 : 1;
			start = 1;
			slot = RedisKeySlot(a->argv[1], a->lens[1]);
			for (i = 1 + step;; i += step)
			{
				int			next = (i < a->argc) ? RedisKeySlot(a->argv[i], a->lens[i]) : -2;

				if (next == slot)
					continue;
				if (start == 1 && next == -2)
					break;		/* one slot: the command as it is */
				{
					int			argc = 1 + (Min(i, a->argc) - start);
					const char **argv = palloc(sizeof(char *) * argc);
					size_t	   *lens = palloc(sizeof(size_t) * argc);

					argv[0] = a->argv[0];
					lens[0] = a->lens[0];
					memcpy(argv + 1, a->argv + start, sizeof(char *) * (argc - 1));
					memcpy(lens + 1, a->lens + start, sizeof(size_t) * (argc - 1));
					ClientBatchPart(b, argc, argv, lens, NULL, slot);
					pfree(argv);
					pfree(lens);
				}
				if (next == -2)
					break;
				start = i;
				slot = next;
			}
			if (start != 1)
			{
				b->join[b->n] = (spec == KEYS_PAIRS) ? 'o' : 'a';
				b->n++;
				return;
			}
			break;
	}
	ClientBatchPart(b, a->argc, a->argv, a->lens, a->script, slot);
	b->n++;
}


/* "MOVED 3999 127.0.0.1:6381": the slot and the address */
static bool
parse_redirect(const char *s, int *slot, const char **addr)
{
	const char *p = strchr(s, ' ');
	char	   *end;
	long		v;

	if (p == NULL)
		return false;
	v = strtol(p + 1, &end, 10);
	if (end == p + 1 || *end != ' ' || v < 0 || v >= CLUSTER_SLOTS)
		return false;
	*slot = (int) v;
	*addr = end + 1;
	return true;
}

/*
 * One round of cluster_send: the parts without a reply yet, grouped by
 * target node (in the order of their first part), one pipeline per node,
 * all written before any is read.  which is scratch (2 * nparts).
 */
static bool
send_round(const RedisBatch *b, const RedisNode **target, const bool *asking,
		   RedisReply **replies, bool *sent, int *which, int flags,
		   TimestampTz deadline, RedisError *err)
{
	const RedisNode **nodes = palloc(sizeof(RedisNode *) * b->nparts);
	RedisBatch *subs = palloc(sizeof(RedisBatch) * b->nparts);
	const StringInfoData **bufs = palloc(sizeof(StringInfoData *) * b->nparts);
	int		   *counts = palloc(sizeof(int) * b->nparts);
	RedisReply ***r = palloc(sizeof(RedisReply **) * b->nparts);
	int		   *first = palloc(sizeof(int) * (b->nparts + 1));
	int			nnodes = 0;
	int			m = 0;
	int			i;
	int			k;

	for (i = 0; i < b->nparts; i++)
	{
		RedisBatch *sub = &subs[nnodes];
		int			j;

		if (replies[i] != NULL || sent[i])
			continue;
		RedisBatchInit(sub);
		first[nnodes] = m;
		for (j = i; j < b->nparts; j++)
		{
			if (replies[j] != NULL || sent[j] || target[j] != target[i])
				continue;
			if (asking[j])
			{
				static const char *const argv[] = {"ASKING"};
				static const size_t lens[] = {6};

				ClientBatchPart(sub, 1, argv, lens, NULL, -1);
				sub->n++;
				which[m++] = -1;
			}
			ClientBatchCopyPart(sub, b, j);
			which[m++] = j;
			sent[j] = true;
		}
		nodes[nnodes] = target[i];
		bufs[nnodes] = &sub->buf;
		counts[nnodes] = sub->nparts;
		r[nnodes] = palloc(sizeof(RedisReply *) * sub->nparts);
		nnodes++;
	}
	first[nnodes] = m;
	if (!PoolExecMany(nnodes, nodes, bufs, counts, ClientPoolFlags(flags),
						   deadline, CurrentMemoryContext, r, err))
		return false;
	for (k = 0; k < nnodes; k++)
	{
		bool		scripts = false;
		int			j;

		for (j = 0; j < subs[k].nparts; j++)
			scripts |= (subs[k].scripts[j] != NULL && ClientIsNoscript(r[k][j]));
		if (scripts && !ClientRetryNoscript(nodes[k], &subs[k], r[k], flags, deadline, err))
			return false;
		for (j = first[k]; j < first[k + 1]; j++)
			if (which[j] >= 0)
				replies[which[j]] = r[k][j - first[k]];
		pfree(subs[k].buf.data);
	}
	return true;
}

/*
 * A part still answered with a redirect or TRYAGAIN after its bound: the
 * cluster is moving that slot.  That is unavailability, not a refusal: the
 * call fails as the policy says (and what a COMMIT sent goes to the retry
 * queue) rather than standing as an error reply nobody retries.
 */
static bool
redirects_settled(const RedisBatch *b, RedisReply **replies, RedisError *err)
{
	int			i;

	for (i = 0; i < b->nparts; i++)
	{
		const char *s = replies[i]->str;

		if (replies[i]->type != RESP_ERROR)
			continue;
		if (RespErrorIs(replies[i], "MOVED") || RespErrorIs(replies[i], "ASK") ||
			RespErrorIs(replies[i], "TRYAGAIN"))
		{
			RedisClusterMapStale();
			RedisErrorSet(err, RS_UNAVAILABLE, ERRCODE_CONNECTION_FAILURE,
						  "Redis is unavailable",
						  "The cluster is moving a slot: still \"%s\" after %d redirects (bmfredis.cluster_max_redirects).",
						  s, bmf_cluster_max_redirects);
			return false;
		}
	}
	return true;
}

/*
 * Send b's parts through the cluster: each to the node of its slot, one
 * pipeline per node, the nodes at once (commands on one key go to one
 * node, in order; a caller that needs one node's commands done before
 * another's sends them in two batches).  MOVED corrects the map and
 * re-sends, ASK re-sends once to the named node after ASKING, TRYAGAIN
 * (a multi-key command during a migration) waits a little and re-sends;
 * each part follows at most bmfredis.cluster_max_redirects of them, after
 * which the call fails as unavailable.  A node that fails fails the call,
 * and the map is asked for again before the next one.
 */
bool
ClientClusterSend(const RedisNode *cnode, const RedisBatch *b, int flags,
			 TimestampTz deadline, RedisReply **replies, RedisError *err)
{
	const RedisNode **target = palloc(sizeof(RedisNode *) * b->nparts);
	bool	   *asking = palloc0(sizeof(bool) * b->nparts);
	bool	   *sent = palloc(sizeof(bool) * b->nparts);
	int		   *tries = palloc0(sizeof(int) * b->nparts);
	int		   *which = palloc(sizeof(int) * (b->nparts * 2));
	int			i;

	if (cnode->sentinel_master)
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_INVALID_PARAMETER_VALUE,
					  "bmfredis.cluster and bmfredis.sentinel_master cannot both be set",
					  "A Redis Cluster fails over by itself; turn Sentinel mode off.");
		return false;
	}
	if (!RedisClusterEnsureMap(cnode, deadline, err))
		return false;
	for (i = 0; i < b->nparts; i++)
	{
		target[i] = RedisClusterNodeForSlot(b->slots[i]);
		replies[i] = NULL;
	}

	for (;;)
	{
		bool		pending = false;
		bool		wait = false;

		memset(sent, 0, sizeof(bool) * b->nparts);
		if (!send_round(b, target, asking, replies, sent, which, flags, deadline, err))
		{
			RedisClusterMapStale();
			return false;
		}

		for (i = 0; i < b->nparts; i++)
		{
			const char *s;
			const char *addr;
			const RedisNode *to = NULL;
			bool		again = false;
			int			slot;

			if (!sent[i] || replies[i]->type != RESP_ERROR ||
				tries[i] >= bmf_cluster_max_redirects)
				continue;
			s = replies[i]->str;
			if (RespErrorIs(replies[i], "MOVED") && parse_redirect(s, &slot, &addr))
				to = RedisClusterMoved(slot, addr, target[i]);
			else if (RespErrorIs(replies[i], "ASK") && parse_redirect(s, &slot, &addr))
				to = RedisClusterNodeAt(addr, target[i]);
			else if (RespErrorIs(replies[i], "TRYAGAIN"))
			{
				to = target[i];
				again = wait = true;
			}
			if (to == NULL)
				continue;
			/* ASK: ASKING first; TRYAGAIN: as before; MOVED: plainly */
			asking[i] = (s[0] == 'A') || (again && asking[i]);
			target[i] = to;
			replies[i] = NULL;
			tries[i]++;
			pending = true;
		}
		if (!pending)
			return redirects_settled(b, replies, err);
		if (wait)
			BmfPollSleep(10, 10, deadline ? deadline :
						 TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 10));
	}
}

/*
 * The replies to b's commands from the replies to its parts: a command
 * split by slot gets the sum of its parts' counts (UNLINK, DEL, EXISTS,
 * TOUCH), their arrays end to end (MGET), or OK (MSET); the first error
 * reply of a part, if any, instead.
 */
RedisReply **
ClientJoinParts(const RedisBatch *b, RedisReply **parts)
{
	RedisReply **out = palloc(sizeof(RedisReply *) * b->n);
	int			i = 0;
	int			c;

	for (c = 0; c < b->n; c++)
	{
		int			first = i;
		int			k;
		RedisReply *r;

		while (i < b->nparts && b->owner[i] == c)
			i++;
		if (i - first == 1)
		{
			out[c] = parts[first];
			continue;
		}
		for (k = first; k < i; k++)
			if (parts[k]->type == RESP_ERROR)
				break;
		if (k < i)
		{
			out[c] = parts[k];
			continue;
		}
		r = palloc0(sizeof(RedisReply));
		switch (b->join[c])
		{
			case 's':
				r->type = RESP_INTEGER;
				for (k = first; k < i; k++)
					r->integer += parts[k]->integer;
				break;
			case 'a':
				r->type = RESP_ARRAY;
				for (k = first; k < i; k++)
					r->elements += parts[k]->elements;
				r->element = palloc(sizeof(RedisReply *) * Max(r->elements, 1));
				r->elements = 0;
				for (k = first; k < i; k++)
				{
					memcpy(r->element + r->elements, parts[k]->element,
						   sizeof(RedisReply *) * parts[k]->elements);
					r->elements += parts[k]->elements;
				}
				break;
			default:
				r = parts[first];
				break;
		}
		out[c] = r;
	}
	return out;
}
