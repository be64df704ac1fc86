/*-------------------------------------------------------------------------
 *
 * client.c
 *		Commands and pipelines for the features: argument vectors, the key
 *		prefix, the error policy, and reply conversions.
 *
 * Error policy, in one place (DESIGN.md decision 6):
 *	- REDIS_READ: Redis unreachable, slow or unavailable is a cache miss;
 *	  with bmfredis.on_error = warning a WARNING says so, with ignore it is
 *	  only counted, with error it is an ERROR.
 *	- REDIS_WRITE: the same, the caller reports "not written".
 *	- REDIS_STRICT: always an ERROR (locks never degrade; admin calls).
 *	- REDIS_QUIET: never raised; used where throwing is not allowed (after
 *	  commit) and the caller decides.
 *	- REDIS_SOFT: READ for callers that have an answer without Redis
 *	  (redis_cached runs the query): a WARNING unless on_error = ignore,
 *	  never an ERROR.
 * Error replies (WRONGTYPE, NOPERM, OOM, ...) are not faults of the
 * connection: they are raised as ERRORs with their own SQLSTATE whatever
 * the policy, unless the caller asks to see them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "base/guc.h"
#include "base/sqlutil.h"
#include "base/stats.h"
#include "base/url.h"
#include "base/wait.h"
#include "client/client.h"
#include "client/cluster.h"
#include "pool/pool.h"

RedisClientStats redis_client_stats;
RedisBeforeCallHook redis_before_call_hook = NULL;
static bool in_before_call_hook = false;

/* ---- argument vectors ---- */

void
RedisArgsInit(RedisArgs *a, int cap)
{
	a->argc = 0;
	a->cap = Max(cap, 4);
	a->argv = palloc(sizeof(char *) * a->cap);
	a->lens = palloc(sizeof(size_t) * a->cap);
	a->script = NULL;
}

void
RedisArgsAdd(RedisArgs *a, const char *s, size_t len)
{
	if (a->argc == a->cap)
	{
		a->cap *= 2;
		a->argv = repalloc(a->argv, sizeof(char *) * a->cap);
		a->lens = repalloc(a->lens, sizeof(size_t) * a->cap);
	}
	a->argv[a->argc] = s;
	a->lens[a->argc] = len;
	a->argc++;
}

void
RedisArgsAddStr(RedisArgs *a, const char *s)
{
	RedisArgsAdd(a, s, strlen(s));
}

void
RedisArgsAddInt(RedisArgs *a, int64 v)
{
	char	   *buf = palloc(24);

	RedisArgsAdd(a, buf, pg_lltoa(v, buf));
}

void
RedisCheckKey(const char *what, size_t len)
{
	bool		namespaced;

	if (len > 0)
		return;
	namespaced = strstr(what, "key") || strstr(what, "tag") || strstr(what, "pattern");
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must not be empty", what),
			 namespaced ?
			 errhint("Keys, tags and patterns live under bmfredis.key_prefix and must not be empty.") : 0));
}

/*
 * The key prefix (bmfredis.key_prefix) is added here and nowhere else:
 * every key, tag index and lock key bmfredis makes starts with what this
 * appends.
 */
void
RedisKeyPrefix(StringInfo out)
{
	appendStringInfoString(out, bmf_key_prefix);
}

void
RedisKeyPrefixed(StringInfo out, const char *key, size_t len)
{
	RedisKeyPrefix(out);
	appendBinaryStringInfo(out, key, len);
}

void
RedisTagKey(StringInfo out, const char *tag, size_t len)
{
	RedisKeyPrefix(out);
	appendStringInfoString(out, "tag:");
	appendBinaryStringInfo(out, tag, len);
}

void
RedisPatternPrefixed(StringInfo out, const char *pattern, size_t len)
{
	const char *p;

	for (p = bmf_key_prefix; *p; p++)
	{
		if (*p == '*' || *p == '?' || *p == '[' || *p == ']' || *p == '\\')
			appendStringInfoChar(out, '\\');
		appendStringInfoChar(out, *p);
	}
	appendBinaryStringInfo(out, pattern, len);
}

void
RedisArgsAddKey(RedisArgs *a, const char *key, size_t len)
{
	StringInfoData k;

	initStringInfo(&k);
	RedisKeyPrefixed(&k, key, len);
	RedisArgsAdd(a, k.data, k.len);
}

void
RedisArgsAddKeyText(RedisArgs *a, text *key)
{
	RedisCheckKey("Redis key", VARSIZE_ANY_EXHDR(key));
	RedisArgsAddKey(a, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
}

/*
 * The SHA1 Redis names a script by.  OpenSSL directly: PostgreSQL's
 * cryptohash API needs a resource owner, which the background worker does
 * not have between transactions.
 */
bool
BmfSha1(const char *data, size_t len, uint8 *digest)
{
	unsigned int dlen = 0;

	return EVP_Digest(data, len, digest, &dlen, EVP_sha1(), NULL) == 1 && dlen == 20;
}

static void
script_sha(RedisScript *script)
{
	uint8		digest[20];
	int			i;

	if (!BmfSha1(script->source, strlen(script->source), digest))
		elog(ERROR, "could not compute the SHA1 of script %s", script->name);
	for (i = 0; i < 20; i++)
		snprintf(script->sha + 2 * i, 3, "%02x", digest[i]);
}

void
RedisArgsScript(RedisArgs *a, RedisScript *script, int numkeys)
{
	Assert(a->argc == 0);
	if (script->sha[0] == '\0')
		script_sha(script);
	RedisArgsAdd(a, "EVALSHA", 7);
	RedisArgsAdd(a, script->sha, 40);
	RedisArgsAddInt(a, numkeys);
	a->script = script;
}

/* ---- the node ---- */

/*
 * Nodes are named "host:port" (or "unix:path"), with "/db" appended for
 * a logical database other than 0: the pool keeps one connection per name,
 * so a backend and the worker can address several databases of a server.
 */
static void
build_node(RedisNode *node, char *name, int db)
{
	const BmfUrl *url = bmf_url_parsed;
	const char *host = url ? url->host : bmf_host;
	int			port = url ? url->port : bmf_port;
	const char *unix_socket = url ? "" : bmf_unix_socket;
	bool		sentinel = bmf_sentinel_master && bmf_sentinel_master[0];
	int			len;

	node->ep.host = host;
	node->ep.port = port;
	node->ep.unix_socket = sentinel ? "" : unix_socket;
	node->sentinels = sentinel ? bmf_sentinels : NULL;
	node->sentinel_master = sentinel ? bmf_sentinel_master : NULL;
	node->sentinel_username = bmf_sentinel_username;
	node->sentinel_password = bmf_sentinel_password;
	node->cluster = bmf_cluster;
	if (bmf_cluster)
		len = 8 + BmfHostPort(strcpy(name, "cluster:") + 8, POOL_NAME_LEN - 8, host, port);
	else if (sentinel)
		len = snprintf(name, POOL_NAME_LEN, "sentinel:%s", bmf_sentinel_master);
	else if (unix_socket && unix_socket[0])
		len = snprintf(name, POOL_NAME_LEN, "unix:%s", unix_socket);
	else
		len = BmfHostPort(name, POOL_NAME_LEN, host, port);
	if (db != 0 && len < POOL_NAME_LEN)
		snprintf(name + len, POOL_NAME_LEN - len, "/%d", db);
	node->ep.name = name;
	node->ep.tls.enabled = url ? url->tls : bmf_tls;
	node->ep.tls.verify = bmf_tls_verify;
	node->ep.tls.ca_file = bmf_tls_ca_file;
	node->ep.tls.cert_file = bmf_tls_cert_file;
	node->ep.tls.key_file = bmf_tls_key_file;
	node->ep.tls.server_name = bmf_tls_server_name;
	node->username = url ? url->username : bmf_username;
	node->password = url ? url->password : bmf_password;
	node->db = db;
}

const RedisNode *
RedisDefaultNode(void)
{
	static RedisNode node;
	static char name[POOL_NAME_LEN];
	static uint64 built_for = 0;
	static int	built_db = -1;

	if (built_for != bmfredis_config_generation || built_db != BmfDb())
	{
		build_node(&node, name, BmfDb());
		built_for = bmfredis_config_generation;
		built_db = BmfDb();
	}
	return &node;
}

const RedisNode *
RedisNodeForDb(int db)
{
	static RedisNode node;
	static char name[POOL_NAME_LEN];

	build_node(&node, name, db);
	return &node;
}

/*
 * The node to subscribe on: the configured one, or in cluster mode a
 * master of the map (PUBLISH reaches every node of a cluster), another one
 * at each attempt, the map asked for again after the first.
 */
const char *
RedisNodeName(const RedisNode *node)
{
	return node->ep.name;
}

bool
RedisNodeIsCluster(const RedisNode *node)
{
	return node->cluster;
}

const char *
RedisNodeAddress(const RedisNode *node)
{
	return RedisPoolNodeAddress(node->ep.name);
}

bool
RedisNodeIsDown(const RedisNode *node)
{
	return RedisPoolNodeIsDown(node->ep.name, NULL);
}

int
RedisConnections(RedisPoolInfo **rows)
{
	return RedisPoolList(rows);
}

int
RedisDisconnectAll(void)
{
	return RedisPoolDisconnectAll();
}

RedisSubscription *
RedisSubscribe(int attempt, int n, const char *const *names, const bool *patterns,
			   RedisError *err)
{
	return RedisPoolSubscribe(RedisSubscribeNode(attempt), n, names, patterns, err);
}

int
RedisSubscriptionRead(RedisSubscription *sub, TimestampTz deadline,
					  MemoryContext cxt, RedisReply **msg, RedisError *err)
{
	return RedisSubscriptionNext(sub, deadline, cxt, msg, err);
}

void
RedisUnsubscribe(RedisSubscription *sub)
{
	RedisSubscriptionClose(sub);
}

const RedisNode *
RedisSubscribeNode(int attempt)
{
	const RedisNode *node = RedisDefaultNode();
	const RedisNode *master;
	RedisError	err;

	if (!node->cluster)
		return node;
	if (attempt > 0)
		RedisClusterMapStale();
	if (!RedisClusterEnsureMap(node, 0, &err))
		return node;			/* the seed: its failure is reported by the caller */
	master = RedisClusterSubscribeNode(attempt);
	return master ? master : node;
}

/* ---- batches ---- */

void
RedisBatchInit(RedisBatch *b)
{
	initStringInfo(&b->buf);
	b->n = 0;
	b->nparts = 0;
	b->cap = 8;
	b->offsets = palloc(sizeof(int) * b->cap);
	b->scripts = palloc(sizeof(RedisScript *) * b->cap);
	b->slots = NULL;
	b->owner = NULL;
	b->join = NULL;
	b->said = bmf_log_commands ? palloc0(sizeof(char *) * b->cap) : NULL;
	if (bmf_cluster)
	{
		b->slots = palloc(sizeof(int) * b->cap);
		b->owner = palloc(sizeof(int) * b->cap);
		b->join = palloc(b->cap);
	}
}

/*
 * What a command is, for bmfredis.log_commands: its name (a script's
 * name) and its first key or argument, cut at 80 bytes, with how many
 * more arguments there are.  Never a value: a SET's value, a PUBLISH's
 * message and a script's arguments come after what is shown.
 */
static char *
describe_command(int argc, const char *const *argv, const size_t *lens,
				 RedisScript *script)
{
	StringInfoData s;
	int			first = 1;

	initStringInfo(&s);
	if (script)
	{
		appendStringInfo(&s, "script \"%s\"", script->name);
		first = 3;				/* EVALSHA sha numkeys key... */
	}
	else
		appendBinaryStringInfo(&s, argv[0], Min(lens[0], 32));
	if (argc > first)
	{
		appendStringInfoChar(&s, ' ');
		appendBinaryStringInfo(&s, argv[first], Min(lens[first], 80));
		if (lens[first] > 80)
			appendStringInfoString(&s, "...");
	}
	if (argc > first + 1)
		appendStringInfo(&s, " (+%d more)", argc - first - 1);
	return s.data;
}

/* The outcome of one reply, for the log: never its value. */
static void
describe_reply(StringInfo out, const RedisReply *r)
{
	switch (r->type)
	{
		case RESP_NIL:
			appendStringInfoString(out, "nil");
			break;
		case RESP_INTEGER:
			appendStringInfo(out, "integer %lld", (long long) r->integer);
			break;
		case RESP_STATUS:
			appendStringInfo(out, "%.32s", r->str);
			break;
		case RESP_ERROR:
			appendStringInfo(out, "error reply: %.200s", r->str);
			break;
		case RESP_ARRAY:
			appendStringInfo(out, "array of %zu", r->elements);
			break;
		default:
			appendStringInfo(out, "string of %zu bytes", r->len);
			break;
	}
}

/*
 * bmfredis.log_commands: one line per command of a batch, with the node,
 * the batch's round-trip time and each outcome.
 */
static void
log_batch(const RedisBatch *b, const char *node, int64 usec,
		  RedisReply **replies, const RedisError *err, const char *note)
{
	int			i;

	if (b->said == NULL)
		return;
	for (i = 0; i < b->nparts; i++)
	{
		StringInfoData outcome;

		initStringInfo(&outcome);
		if (err)
			appendStringInfo(&outcome, "failed: %s", err->message);
		else if (replies)
			describe_reply(&outcome, replies[i]);
		else
			appendStringInfoString(&outcome, note);
		ereport(bmf_log_commands,
				(errmsg_internal("bmfredis: %s on %s: %.3f ms%s, %s",
								 b->said[i] ? b->said[i] : "(command)", node,
								 usec / 1000.0,
								 b->nparts > 1 ? psprintf(" (pipeline of %d)", b->nparts) : "",
								 outcome.data),
				 errhidestmt(true)));
		pfree(outcome.data);
	}
}

/* Append one part: a command in RESP, with its script and slot. */
static void
batch_part(RedisBatch *b, int argc, const char *const *argv, const size_t *lens,
		   RedisScript *script, int slot)
{
	if (b->nparts == b->cap)
	{
		b->cap *= 2;
		b->offsets = repalloc(b->offsets, sizeof(int) * b->cap);
		b->scripts = repalloc(b->scripts, sizeof(RedisScript *) * b->cap);
		if (b->slots)
		{
			b->slots = repalloc(b->slots, sizeof(int) * b->cap);
			b->owner = repalloc(b->owner, sizeof(int) * b->cap);
			b->join = repalloc(b->join, b->cap);
		}
		if (b->said)
			b->said = repalloc(b->said, sizeof(char *) * b->cap);
	}
	if (b->said)
		b->said[b->nparts] = argv ? describe_command(argc, argv, lens, script) : NULL;
	b->offsets[b->nparts] = b->buf.len;
	b->scripts[b->nparts] = script;
	if (b->slots)
	{
		b->slots[b->nparts] = slot;
		b->owner[b->nparts] = b->n;
	}
	if (argv)
		RespFormat(&b->buf, argc, argv, lens);
	b->nparts++;
}

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
		batch_part(b, 1 + end - start, argv, lens, NULL, keys[start].slot);
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
static void
batch_add_cluster(RedisBatch *b, const RedisArgs *a)
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
					batch_part(b, argc, argv, lens, NULL, slot);
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
	batch_part(b, a->argc, a->argv, a->lens, a->script, slot);
	b->n++;
}

void
RedisBatchAdd(RedisBatch *b, const RedisArgs *a)
{
	if (b->slots)
	{
		batch_add_cluster(b, a);
		return;
	}
	batch_part(b, a->argc, a->argv, a->lens, a->script, -1);
	b->n++;
}

void
RedisBatchReset(RedisBatch *b)
{
	resetStringInfo(&b->buf);
	b->n = 0;
	b->nparts = 0;
}

/* The RESP bytes of part i */
static inline int
part_len(const RedisBatch *b, int i)
{
	return ((i + 1 < b->nparts) ? b->offsets[i + 1] : b->buf.len) - b->offsets[i];
}

/* Copy part i of from into to (raw bytes). */
static void
batch_copy_part(RedisBatch *to, const RedisBatch *from, int i)
{
	int			at = to->buf.len;

	appendBinaryStringInfo(&to->buf, from->buf.data + from->offsets[i], part_len(from, i));
	batch_part(to, 0, NULL, NULL, from->scripts[i], from->slots ? from->slots[i] : -1);
	to->offsets[to->nparts - 1] = at;
	if (to->said && from->said)
		to->said[to->nparts - 1] = from->said[i];
	to->n++;
}

/* ---- error policy ---- */

static void
count_failure(const RedisError *err)
{
	switch (err->status)
	{
		case RS_CONNECT:
		case RS_AUTH:
			BmfStatsCount(STAT_ERRORS_CONNECT, 1);
			break;
		case RS_TIMEOUT:
			BmfStatsCount(STAT_ERRORS_TIMEOUT, 1);
			break;
		case RS_IO:
			BmfStatsCount(STAT_ERRORS_IO, 1);
			break;
		case RS_PROTOCOL:
			BmfStatsCount(STAT_ERRORS_PROTOCOL, 1);
			break;
		case RS_DOWN:
		case RS_UNAVAILABLE:
			BmfStatsCount(STAT_ERRORS_DOWN, 1);
			break;
		default:
			break;
	}
}

void
RedisReportFailure(RedisPolicy policy, int flags, const RedisError *err,
				   const char *command)
{
	int			elevel;
	bool		unknown_outcome;

	redis_client_stats.failures++;
	count_failure(err);
	switch (policy)
	{
		case REDIS_QUIET:
			return;
		case REDIS_STRICT:
			elevel = ERROR;
			break;
		case REDIS_SOFT:
			if (bmf_on_error == BMF_ON_ERROR_IGNORE)
				return;
			elevel = WARNING;
			break;
		default:
			if (bmf_on_error == BMF_ON_ERROR_ERROR)
				elevel = ERROR;
			else if (bmf_on_error == BMF_ON_ERROR_IGNORE)
				return;
			else
				elevel = WARNING;
			break;
	}

	unknown_outcome = !(flags & REDIS_IDEMPOTENT) && err->maybe_sent &&
		(err->status == RS_IO || err->status == RS_TIMEOUT);

	ereport(elevel,
			(errcode(err->sqlerrcode),
			 errmsg("%s", err->message),
			 errdetail_internal("%s", err->detail),
			 unknown_outcome ?
			 errhint("%s may or may not have been executed; it is not retried because it is not idempotent.",
					 command) :
			 (elevel == WARNING && policy == REDIS_READ) ?
			 errhint("The read was treated as a cache miss.") :
			 (elevel == WARNING && policy == REDIS_SOFT) ?
			 errhint("The query was run without the cache.") :
			 (elevel == WARNING && policy == REDIS_WRITE) ?
			 errhint("%s was not carried out.", command) :
			 err->status == RS_DOWN ?
			 errhint("bmfredis retries after a backoff; see redis_connections().") :
			 err->status == RS_CONNECT ?
			 errhint("Check that Redis runs where bmfredis.host and bmfredis.port (or bmfredis.url, or the sentinels) say; redis_health() shows what bmfredis sees.") :
			 err->status == RS_TIMEOUT ?
			 errhint("Redis is slow or frozen; the setting named above gives its time.") : 0));
}

/*
 * The SQLSTATE for an error reply, by its code word (resp.c says why never
 * by its text).  The generic code ERR carries no more than its text, so
 * for ERR alone the argument errors every Redis-compatible server words
 * alike (they come from the same commands' argument parsing) get their
 * precise SQLSTATE; any other ERR is 38000.
 */
int
RedisReplyErrorCode(const char *s)
{
	static const struct
	{
		const char *code;
		int			sqlstate;
	}			codes[] = {
		{"WRONGTYPE", ERRCODE_WRONG_OBJECT_TYPE},
		{"NOPERM", ERRCODE_INSUFFICIENT_PRIVILEGE},
		{"NOAUTH", ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION},
		{"WRONGPASS", ERRCODE_INVALID_PASSWORD},
		{"OOM", ERRCODE_OUT_OF_MEMORY},
		{"BUSY", ERRCODE_CONNECTION_FAILURE},
		{"LOADING", ERRCODE_CONNECTION_FAILURE},
		{"READONLY", ERRCODE_CONNECTION_FAILURE},
		{"MASTERDOWN", ERRCODE_CONNECTION_FAILURE},
		{"NOREPLICAS", ERRCODE_CONNECTION_FAILURE},
		{"CLUSTERDOWN", ERRCODE_CONNECTION_FAILURE},
		{"MISCONF", ERRCODE_CONNECTION_FAILURE},
	};

	for (int i = 0; i < (int) lengthof(codes); i++)
		if (RespErrorCodeIs(s, codes[i].code))
			return codes[i].sqlstate;
	if (RespErrorCodeIs(s, "ERR"))
	{
		if (strstr(s, "not an integer") != NULL)
			return ERRCODE_INVALID_TEXT_REPRESENTATION;
		if (strstr(s, "overflow") != NULL)
			return ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE;
		if (strstr(s, "invalid expire time") != NULL || strstr(s, "syntax error") != NULL)
			return ERRCODE_INVALID_PARAMETER_VALUE;
		if (strncmp(s, "ERR unknown command", 19) == 0)
			return ERRCODE_UNDEFINED_FUNCTION;
	}
	return ERRCODE_EXTERNAL_ROUTINE_EXCEPTION;
}

void
RedisRaiseReplyError(const RedisReply *reply, const char *command)
{
	int			code = RedisReplyErrorCode(reply->str);
	const char *msg;
	const char *hint = NULL;

	switch (code)
	{
		case ERRCODE_WRONG_OBJECT_TYPE:
			msg = "Redis key holds the wrong kind of value";
			hint = "bmfredis cache functions read and write Redis strings; the key holds another type.";
			break;
		case ERRCODE_INSUFFICIENT_PRIVILEGE:
			msg = "permission denied by Redis ACL";
			hint = "Grant the Redis user of bmfredis this command and the keys under bmfredis.key_prefix.";
			break;
		case ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION:
			msg = "Redis requires authentication";
			hint = "Set bmfredis.password (and bmfredis.username for an ACL user) in postgresql.conf.";
			break;
		case ERRCODE_INVALID_PASSWORD:
			msg = "Redis refused the credentials of bmfredis";
			break;
		case ERRCODE_OUT_OF_MEMORY:
			msg = "Redis is out of memory";
			hint = "Raise Redis' maxmemory or give it an eviction policy.";
			break;
		case ERRCODE_CONNECTION_FAILURE:
			msg = "Redis is unavailable";
			break;
		case ERRCODE_INVALID_TEXT_REPRESENTATION:
			msg = "Redis value is not an integer";
			break;
		case ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE:
			msg = "Redis integer out of range";
			break;
		default:
			msg = "Redis returned an error";
			break;
	}
	ereport(ERROR,
			(errcode(code),
			 errmsg("%s", msg),
			 errdetail_internal("%s: %s", command, reply->str),
			 hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

/* ---- calls ---- */

static int
pool_flags(int flags)
{
	int			pflags = 0;

	if (flags & REDIS_IDEMPOTENT)
		pflags |= POOL_IDEMPOTENT;
	if (flags & REDIS_FORCE)
		pflags |= POOL_FORCE;
	return pflags;
}

static bool
is_noscript(const RedisReply *r)
{
	return RespErrorIs(r, "NOSCRIPT");
}

/*
 * Re-run the parts of b whose EVALSHA found no script: load each script
 * they need, then send the same commands again, in one round trip.  A
 * NOSCRIPT reply means the script did not run, so re-sending is safe for
 * any script.  Returns false with err set when Redis fails meanwhile.
 */
static bool
retry_noscript(const RedisNode *node, const RedisBatch *b, RedisReply **replies,
			   int flags, TimestampTz deadline, RedisError *err)
{
	RedisBatch	retry;
	RedisScript **loaded = palloc0(sizeof(RedisScript *) * b->nparts);
	int		   *which = palloc(sizeof(int) * b->nparts);
	int			nloaded = 0;
	int			nretry = 0;
	int			i;
	int			j;
	RedisReply **again;

	RedisBatchInit(&retry);
	for (i = 0; i < b->nparts; i++)
	{
		RedisArgs	load;
		bool		seen = false;

		if (!b->scripts[i] || !is_noscript(replies[i]))
			continue;
		for (j = 0; j < nloaded; j++)
			seen |= (loaded[j] == b->scripts[i]);
		if (seen)
			continue;
		loaded[nloaded++] = b->scripts[i];
		RedisArgsInit(&load, 3);
		RedisArgsAdd(&load, "SCRIPT", 6);
		RedisArgsAdd(&load, "LOAD", 4);
		RedisArgsAddStr(&load, b->scripts[i]->source);
		batch_part(&retry, load.argc, load.argv, load.lens, NULL, -1);
		retry.n++;
	}
	for (i = 0; i < b->nparts; i++)
	{
		if (!b->scripts[i] || !is_noscript(replies[i]))
			continue;
		batch_copy_part(&retry, b, i);
		which[nretry++] = i;
	}
	if (nretry == 0)
		return true;

	again = palloc(sizeof(RedisReply *) * retry.nparts);
	if (!RedisPoolExec(node, &retry.buf, retry.nparts,
					   pool_flags(flags) | POOL_IDEMPOTENT, deadline,
					   CurrentMemoryContext, again, err))
		return false;
	for (i = 0; i < nretry; i++)
		replies[which[i]] = again[nloaded + i];
	return true;
}

/* Send every part of b to one node; NOSCRIPT answered by loading. */
static bool
node_send(const RedisNode *node, const RedisBatch *b, int flags,
		  TimestampTz deadline, RedisReply **replies, RedisError *err)
{
	int			i;
	bool		scripts = false;

	if (!RedisPoolExec(node, &b->buf, b->nparts, pool_flags(flags),
					   deadline, CurrentMemoryContext, replies, err))
		return false;
	for (i = 0; i < b->nparts; i++)
		scripts |= (b->scripts[i] != NULL && is_noscript(replies[i]));
	return !scripts || retry_noscript(node, b, replies, flags, deadline, err);
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

				batch_part(sub, 1, argv, lens, NULL, -1);
				sub->n++;
				which[m++] = -1;
			}
			batch_copy_part(sub, b, j);
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
	if (!RedisPoolExecMany(nnodes, nodes, bufs, counts, pool_flags(flags),
						   deadline, CurrentMemoryContext, r, err))
		return false;
	for (k = 0; k < nnodes; k++)
	{
		bool		scripts = false;
		int			j;

		for (j = 0; j < subs[k].nparts; j++)
			scripts |= (subs[k].scripts[j] != NULL && is_noscript(r[k][j]));
		if (scripts && !retry_noscript(nodes[k], &subs[k], r[k], flags, deadline, err))
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
static bool
cluster_send(const RedisNode *cnode, const RedisBatch *b, int flags,
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
static RedisReply **
join_parts(const RedisBatch *b, RedisReply **parts)
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

static bool
run_before_call_hook(const RedisNode *node)
{
	bool		clear;

	if (redis_before_call_hook == NULL || in_before_call_hook)
		return true;
	in_before_call_hook = true;
	PG_TRY();
	{
		clear = redis_before_call_hook(node);
	}
	PG_CATCH();
	{
		in_before_call_hook = false;
		PG_RE_THROW();
	}
	PG_END_TRY();
	in_before_call_hook = false;
	return clear;
}

/* Which latency histogram a call goes to. */
static BmfCmdClass
command_class(RedisPolicy policy, const char *command)
{
	if (pg_strcasecmp(command, "PUBLISH") == 0)
		return CLASS_PUBLISH;
	if (pg_strncasecmp(command, "lock", 4) == 0 || pg_strncasecmp(command, "semaphore", 9) == 0)
		return CLASS_LOCK;
	/* health checks are quiet too, but invalidate nothing */
	if (pg_strcasecmp(command, "PING") == 0 || pg_strcasecmp(command, "INFO") == 0)
		return CLASS_OTHER;
	switch (policy)
	{
		case REDIS_READ:
		case REDIS_SOFT:
			return CLASS_READ;
		case REDIS_WRITE:
			return CLASS_WRITE;
		case REDIS_QUIET:
			return CLASS_INVALIDATE;
		default:
			return CLASS_OTHER;
	}
}

/* The shared body of RedisPipeline and RedisCommand. */
static RedisReply **
exec_batch(const RedisNode *node, RedisPolicy policy, int flags,
		   const RedisBatch *b, TimestampTz deadline, RedisError *err,
		   const char *command)
{
	RedisReply **replies;
	int			i;
	bool		ok;
	TimestampTz t0;

	Assert(b->n > 0);
	if (!run_before_call_hook(node) && (policy == REDIS_READ || policy == REDIS_SOFT))
	{
		/* the real cause when Redis is away; else, the backlog is being sent */
		if (!RedisPoolDownError(node->ep.name, err))
			RedisErrorSet(err, RS_UNAVAILABLE, ERRCODE_CONNECTION_FAILURE,
						  "Redis is still catching up on invalidations",
						  "Invalidations committed while Redis was unavailable are still being sent to %s; until they are, this session's reads are misses.",
						  node->ep.name);
		RedisReportFailure(policy, flags, err, command);
		return NULL;
	}
	replies = palloc(sizeof(RedisReply *) * b->nparts);
	redis_client_stats.calls += b->nparts;
	t0 = GetCurrentTimestamp();
	if (node->cluster && b->slots)
		ok = cluster_send(node, b, flags, deadline, replies, err);
	else if (node->cluster)
	{
		/* a batch begun before bmfredis.cluster was turned on */
		RedisErrorSet(err, RS_PROTOCOL, ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
					  "bmfredis.cluster changed while a command was being built",
					  "The command was not sent.");
		ok = false;
	}
	else
		ok = node_send(node, b, flags, deadline, replies, err);
	BmfStatsLatency(command_class(policy, command), GetCurrentTimestamp() - t0);
	if (unlikely(b->said != NULL))
		log_batch(b, node->ep.name, GetCurrentTimestamp() - t0, replies, ok ? NULL : err, NULL);
	if (!ok)
	{
		RedisReportFailure(policy, flags, err, command);
		return NULL;
	}
	for (i = 0; i < b->nparts; i++)
		if (replies[i]->type == RESP_ERROR)
		{
			redis_client_stats.error_replies++;
			BmfStatsCount(STAT_ERRORS_REPLY, 1);
		}
	if (b->nparts != b->n)
		replies = join_parts(b, replies);
	return replies;
}

RedisReply **
RedisPipeline(RedisPolicy policy, int flags, const RedisBatch *b,
			  TimestampTz deadline, RedisError *err)
{
	RedisError	local;

	return exec_batch(RedisDefaultNode(), policy, flags, b, deadline,
					  err ? err : &local, "pipeline");
}

RedisReply **
RedisPipelineNode(const RedisNode *node, RedisPolicy policy, int flags,
				  const RedisBatch *b, TimestampTz deadline, RedisError *err)
{
	RedisError	local;

	return exec_batch(node, policy, flags, b, deadline, err ? err : &local,
					  "pipeline");
}

static bool
stream_refuse_cluster(const RedisNode *node, RedisError *err)
{
	if (!node->cluster)
		return false;
	RedisErrorSet(err, RS_PROTOCOL, ERRCODE_FEATURE_NOT_SUPPORTED,
				  "streams are not used with a Redis Cluster",
				  "Their commands would span nodes.");
	return true;
}

bool
RedisStreamSend(const RedisNode *node, const char *tag, bool opening,
				const RedisBatch *b, TimestampTz deadline, RedisError *err)
{
	TimestampTz t0 = GetCurrentTimestamp();
	bool		ok;

	if (stream_refuse_cluster(node, err))
		return false;
	redis_client_stats.calls += b->n;
	ok = RedisPoolStreamSend(node, tag, opening, &b->buf, b->n, deadline, err);
	if (unlikely(b->said != NULL))
		log_batch(b, node->ep.name, GetCurrentTimestamp() - t0, NULL, ok ? NULL : err,
				  "written to the stream; runs at COMMIT's EXEC");
	return ok;
}

RedisReply **
RedisStreamFinish(const RedisNode *node, const char *tag, const RedisBatch *b,
				  TimestampTz deadline, int *nreplies, RedisError *err)
{
	RedisReply **replies;
	int			total;
	int			i;
	TimestampTz t0;

	if (stream_refuse_cluster(node, err))
		return NULL;
	total = RedisPoolStreamUnread(node, tag) + b->n;
	replies = palloc(sizeof(RedisReply *) * total);
	redis_client_stats.calls += b->n;
	t0 = GetCurrentTimestamp();
	if (!RedisPoolStreamFinish(node, tag, &b->buf, b->n, deadline,
							   CurrentMemoryContext, replies, err))
	{
		if (unlikely(b->said != NULL))
			log_batch(b, node->ep.name, GetCurrentTimestamp() - t0, NULL, err, NULL);
		return NULL;
	}
	if (unlikely(b->said != NULL))
		log_batch(b, node->ep.name, GetCurrentTimestamp() - t0, replies + total - b->n, NULL, NULL);
	for (i = 0; i < total; i++)
		if (replies[i]->type == RESP_ERROR)
		{
			redis_client_stats.error_replies++;
			BmfStatsCount(STAT_ERRORS_REPLY, 1);
		}
	*nreplies = total;
	return replies;
}

void
RedisStreamAbandon(const char *node_name, const char *tag)
{
	RedisPoolStreamAbandon(node_name, tag);
}

RedisReply *
RedisCommand(RedisPolicy policy, int flags, const RedisArgs *args,
			 RedisError *err)
{
	RedisBatch	b;
	RedisReply **replies;
	RedisError	local;
	char		command[32];

	RedisBatchInit(&b);
	RedisBatchAdd(&b, args);
	if (args->script)
		strlcpy(command, args->script->name, sizeof(command));
	else
		strlcpy(command, args->argv[0], Min(sizeof(command), args->lens[0] + 1));
	replies = exec_batch(RedisDefaultNode(), policy, flags, &b, 0,
						 err ? err : &local, command);
	pfree(b.buf.data);
	if (replies == NULL)
		return NULL;
	if (replies[0]->type == RESP_ERROR && !(flags & REDIS_ERRORS_OK))
		RedisRaiseReplyError(replies[0], command);
	return replies[0];
}
