/*-------------------------------------------------------------------------
 *
 * cluster.c
 *		Redis Cluster: key slots, the slot map of this backend, and the
 *		layout of the keys bmfredis adds next to a user's key.
 *
 * The map is learned from CLUSTER SHARDS (Redis 7 and Valkey; CLUSTER SLOTS
 * where SHARDS is refused or unknown), asked of the masters we know and
 * then of the seeds (bmfredis.host:port and bmfredis.cluster_nodes), and
 * corrected one slot at a time by MOVED redirects; after a connection
 * failure or a MOVED it is asked for again before the next call.
 *
 * Endpoints.  A node is reached at the endpoint the cluster announces
 * (cluster-preferred-endpoint-type: an IP, or a host name resolved when
 * connecting).  An endpoint that is NULL (unknown-endpoint: the nodes sit
 * behind something they do not know the address of), "" or "?" (a node
 * that does not know its own address) means the address the reply came
 * from, with the port given: so says the CLUSTER SLOTS documentation, and
 * MOVED's ":port" form means the same.  Nodes
 * are never forgotten (a cluster has few of them): each is a RedisNode
 * with the seed's credentials and TLS settings, named "host:port" like
 * any other, so the pool keeps one connection per node used.
 *
 * Side keys.  A value lives at <prefix><key>, the plain layout the
 * application's own services read, in whatever slot that key hashes to.
 * What bmfredis keeps next to it (redis_cached's lease and delta, the
 * shard of a tag index that lists it) must be in the same slot, so a
 * script touching both runs on one node: in cluster mode such a key is
 * <prefix>{<slot tag>}<rest>, where the slot tag is a short string that
 * hashes to the value's slot.  A prefix holding a {hash tag} of its own
 * pins every key to one slot, and the layout stays right.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "base/guc.h"
#include "base/url.h"
#include "client/cluster.h"
#include "pool/pool.h"

#define MAX_CLUSTER_NODES 1024
#define SLOT_TAG_LEN 8
#define REFRESH_MIN_INTERVAL_MS 100

/* ---- CRC16 and slots ---- */

static uint16 crc_table[256];
static bool crc_ready = false;

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0 */
static void
crc_init(void)
{
	int			i;

	for (i = 0; i < 256; i++)
	{
		uint16		c = (uint16) (i << 8);
		int			b;

		for (b = 0; b < 8; b++)
			c = (c & 0x8000) ? (uint16) ((c << 1) ^ 0x1021) : (uint16) (c << 1);
		crc_table[i] = c;
	}
	crc_ready = true;
}

static uint16
crc16(const char *s, size_t len)
{
	uint16		crc = 0;
	size_t		i;

	if (!crc_ready)
		crc_init();
	for (i = 0; i < len; i++)
		crc = (uint16) ((crc << 8) ^ crc_table[((crc >> 8) ^ (uint8) s[i]) & 0xff]);
	return crc;
}

int
RedisKeySlot(const char *key, size_t len)
{
	const char *open = memchr(key, '{', len);

	if (open)
	{
		size_t		from = open - key + 1;
		const char *close = memchr(open + 1, '}', len - from);

		/* a tag is the text between the first { and the next }, if any */
		if (close && close > open + 1)
			return crc16(open + 1, close - open - 1) & (CLUSTER_SLOTS - 1);
	}
	return crc16(key, len) & (CLUSTER_SLOTS - 1);
}

/*
 * One short string per slot, found by counting in base 36 until every
 * slot has one (about 150,000 CRCs of at most four characters, once per
 * backend, only in cluster mode).
 */
static char (*slot_tags)[SLOT_TAG_LEN] = NULL;

const char *
RedisSlotTag(int slot)
{
	Assert(slot >= 0 && slot < CLUSTER_SLOTS);
	if (slot_tags == NULL)
	{
		char		(*tags)[SLOT_TAG_LEN];
		int			left = CLUSTER_SLOTS;
		uint32		n;

		tags = MemoryContextAllocZero(TopMemoryContext, sizeof(*tags) * CLUSTER_SLOTS);
		for (n = 0; left > 0; n++)
		{
			static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
			char		buf[SLOT_TAG_LEN];
			int			len = 0;
			uint32		v = n;
			int			s;

			do
			{
				buf[len++] = digits[v % 36];
				v /= 36;
			} while (v > 0 && len < SLOT_TAG_LEN - 1);
			s = crc16(buf, len) & (CLUSTER_SLOTS - 1);
			if (tags[s][0] == '\0')
			{
				memcpy(tags[s], buf, len);
				left--;
			}
		}
		slot_tags = tags;
	}
	return slot_tags[slot];
}

void
RedisKeyInSlot(StringInfo out, const char *key, size_t len, int slot)
{
	size_t		plen = strlen(bmf_key_prefix);

	if (len >= plen && memcmp(key, bmf_key_prefix, plen) == 0)
	{
		appendBinaryStringInfo(out, key, plen);
		key += plen;
		len -= plen;
	}
	appendStringInfoChar(out, '{');
	appendStringInfoString(out, RedisSlotTag(slot));
	appendStringInfoChar(out, '}');
	appendBinaryStringInfo(out, key, len);
}

void
RedisSideKey(StringInfo out, const char *key, size_t len,
			 const char *suffix, size_t suffix_len)
{
	if (bmf_cluster)
		RedisKeyInSlot(out, key, len, RedisKeySlot(key, len));
	else
		appendBinaryStringInfo(out, key, len);
	appendBinaryStringInfo(out, suffix, suffix_len);
}

/* ---- nodes and the map ---- */

typedef struct ClusterNode
{
	RedisNode	node;
	char		host[256];
	char		name[POOL_NAME_LEN];
	bool		master;			/* serves slots in the current map */
} ClusterNode;

static ClusterNode *nodes[MAX_CLUSTER_NODES];
static int	nnodes = 0;
static int16 slot_map[CLUSTER_SLOTS];
static bool map_known = false;
static bool map_stale = false;
static TimestampTz last_refresh = 0;
static uint64 built_for = 0;
static RedisNode template_node;	/* the seed: credentials, TLS */
static bool shards_refused = false; /* CLUSTER SHARDS answered an error */

/* A plain node at n's address with the seed's credentials and TLS. */
static void
node_configure(ClusterNode *n, int port)
{
	n->node = template_node;
	n->node.ep.host = n->host;
	n->node.ep.port = port;
	n->node.ep.unix_socket = "";
	n->node.ep.name = n->name;
	n->node.cluster = false;
	n->node.sentinels = NULL;
	n->node.sentinel_master = NULL;
	n->node.db = 0;
}

/* The node at host:port, added if new; NULL if the table is full. */
static ClusterNode *
node_get(const char *host, int port)
{
	char		name[POOL_NAME_LEN];
	ClusterNode *n;
	int			i;

	BmfHostPort(name, sizeof(name), host, port);
	for (i = 0; i < nnodes; i++)
		if (strcmp(nodes[i]->name, name) == 0)
			return nodes[i];
	if (nnodes == MAX_CLUSTER_NODES)
		return NULL;
	n = MemoryContextAllocZero(TopMemoryContext, sizeof(ClusterNode));
	strlcpy(n->host, host, sizeof(n->host));
	strlcpy(n->name, name, sizeof(n->name));
	node_configure(n, port);
	nodes[nnodes++] = n;
	return n;
}

static int
node_index(const ClusterNode *n)
{
	int			i;

	for (i = 0; i < nnodes; i++)
		if (nodes[i] == n)
			return i;
	return -1;
}

/* an endpoint that means "where you asked" (see the file header) */
static bool
endpoint_unknown(const char *host)
{
	return host == NULL || host[0] == '\0' || strcmp(host, "?") == 0;
}

/*
 * "host:port" or "[v6]:port" (a MOVED or ASK address, a seed); ":port" or
 * "?:port" is a node at from's host (from NULL: not allowed).
 */
static ClusterNode *
node_at(const char *addr, const RedisNode *from)
{
	char		buf[POOL_NAME_LEN];
	const char *host;
	int			port;

	if (from != NULL && (addr[0] == ':' || strncmp(addr, "?:", 2) == 0))
	{
		snprintf(buf, sizeof(buf), "x%s", strchr(addr, ':'));
		if (!BmfSplitHostPort(buf, &host, &port))
			return NULL;
		return node_get(from->ep.host, port);
	}
	strlcpy(buf, addr, sizeof(buf));
	if (!BmfSplitHostPort(buf, &host, &port) || strlen(host) >= sizeof(((ClusterNode *) 0)->host))
		return NULL;
	return node_get(host, port);
}

/*
 * A new configuration (another seed, credentials, TLS): every node takes
 * the seed's settings, and the map is asked for again.
 */
static void
adopt_seed(const RedisNode *seed)
{
	int			i;

	template_node = *seed;
	shards_refused = false;
	for (i = 0; i < nnodes; i++)
		node_configure(nodes[i], nodes[i]->node.ep.port);
	map_known = false;
	built_for = bmfredis_config_generation;
}

/* Make map (-1 everywhere) the slot map, its nodes the masters. */
static void
install_map(const int16 *map)
{
	int			i;

	memcpy(slot_map, map, sizeof(slot_map));
	for (i = 0; i < nnodes; i++)
		nodes[i]->master = false;
	for (i = 0; i < CLUSTER_SLOTS; i++)
		if (slot_map[i] >= 0)
			nodes[slot_map[i]]->master = true;
}

/* slots first..last go to host:port in map; false if that makes no sense */
static bool
map_range(int16 *map, long long first, long long last, const char *host,
		  long long port, const ClusterNode *asked, int *covered)
{
	ClusterNode *n;
	long long	s;

	if (first < 0 || last >= CLUSTER_SLOTS || first > last || port < 1 || port > 65535)
		return false;
	if (endpoint_unknown(host))
		host = asked->host;
	if (strlen(host) >= sizeof(((ClusterNode *) 0)->host))
		return false;
	n = node_get(host, (int) port);
	if (n == NULL)
		return false;
	for (s = first; s <= last; s++)
	{
		if (map[s] < 0)
			(*covered)++;
		map[s] = (int16) node_index(n);
	}
	return true;
}

/*
 * Load the map from a CLUSTER SLOTS reply: [[first, last, [endpoint,
 * port, id, {metadata}], replicas...], ...]; false if it makes no sense.
 */
static bool
load_slots(const RedisReply *r, const ClusterNode *asked)
{
	int16		map[CLUSTER_SLOTS];
	size_t		i;
	int			covered = 0;

	if (r->type != RESP_ARRAY)
		return false;
	memset(map, 0xff, sizeof(map));		/* -1 */
	for (i = 0; i < r->elements; i++)
	{
		const RedisReply *e = r->element[i];
		const RedisReply *m;

		if (e->type != RESP_ARRAY || e->elements < 3 ||
			e->element[0]->type != RESP_INTEGER ||
			e->element[1]->type != RESP_INTEGER ||
			e->element[2]->type != RESP_ARRAY)
			return false;
		m = e->element[2];
		if (m->elements < 2 ||
			(m->element[0]->type != RESP_STRING && m->element[0]->type != RESP_NIL) ||
			m->element[1]->type != RESP_INTEGER)
			return false;
		if (!map_range(map, e->element[0]->integer, e->element[1]->integer,
					   m->element[0]->type == RESP_NIL ? NULL : m->element[0]->str,
					   m->element[1]->integer, asked, &covered))
			return false;
	}
	if (covered == 0)
		return false;
	install_map(map);
	return true;
}

/* the value of field name in a RESP2 map (a flat array of pairs), or NULL */
static const RedisReply *
map_field(const RedisReply *m, const char *name)
{
	size_t		i;

	if (m->type != RESP_ARRAY || m->elements % 2 != 0)
		return NULL;
	for (i = 0; i < m->elements; i += 2)
		if (m->element[i]->type == RESP_STRING && strcmp(m->element[i]->str, name) == 0)
			return m->element[i + 1];
	return NULL;
}

/*
 * Load the map from a CLUSTER SHARDS reply: per shard, "slots" (pairs of
 * first and last slot) and "nodes" (each with "role", "health",
 * "endpoint", "port" and, for TLS, "tls-port").  A shard's slots go to
 * its master; a shard whose master is not "online" (failed, or loading)
 * is still mapped to it, as CLUSTER SLOTS would, and calls to it fail
 * there until a replica takes over.  false if the reply makes no sense.
 */
static bool
load_shards(const RedisReply *r, const ClusterNode *asked, bool tls)
{
	int16		map[CLUSTER_SLOTS];
	size_t		i,
				j;
	int			covered = 0;

	if (r->type != RESP_ARRAY)
		return false;
	memset(map, 0xff, sizeof(map));		/* -1 */
	for (i = 0; i < r->elements; i++)
	{
		const RedisReply *slots = map_field(r->element[i], "slots");
		const RedisReply *members = map_field(r->element[i], "nodes");
		const RedisReply *master = NULL;
		const RedisReply *endpoint;
		const RedisReply *port;

		if (slots == NULL || members == NULL || slots->type != RESP_ARRAY ||
			slots->elements % 2 != 0 || members->type != RESP_ARRAY)
			return false;
		if (slots->elements == 0)
			continue;			/* a shard with no slots (yet) */
		for (j = 0; j < members->elements; j++)
		{
			const RedisReply *role = map_field(members->element[j], "role");

			if (role && role->type == RESP_STRING && strcmp(role->str, "master") == 0)
				master = members->element[j];
		}
		if (master == NULL)
			return false;
		endpoint = map_field(master, "endpoint");
		port = tls ? map_field(master, "tls-port") : NULL;
		if (port == NULL)
			port = map_field(master, "port");
		if (port == NULL || port->type != RESP_INTEGER ||
			(endpoint != NULL && endpoint->type != RESP_STRING && endpoint->type != RESP_NIL))
			return false;
		for (j = 0; j < slots->elements; j += 2)
		{
			if (slots->element[j]->type != RESP_INTEGER ||
				slots->element[j + 1]->type != RESP_INTEGER)
				return false;
			if (!map_range(map, slots->element[j]->integer, slots->element[j + 1]->integer,
						   (endpoint == NULL || endpoint->type == RESP_NIL) ? NULL : endpoint->str,
						   port->integer, asked, &covered))
				return false;
		}
	}
	if (covered == 0)
		return false;
	install_map(map);
	return true;
}

/* one CLUSTER subcommand to node n */
static bool
ask_cluster(ClusterNode *n, const char *sub, TimestampTz deadline,
			RedisReply **reply, RedisError *err)
{
	StringInfoData cmd;
	const char *argv[2] = {"CLUSTER", sub};
	size_t		lens[2] = {7, strlen(sub)};
	bool		ok;

	initStringInfo(&cmd);
	RespFormat(&cmd, 2, argv, lens);
	ok = PoolExec(&n->node, &cmd, 1, POOL_IDEMPOTENT, deadline,
					   CurrentMemoryContext, reply, err);
	pfree(cmd.data);
	return ok;
}

/*
 * Ask n for the map: CLUSTER SHARDS, or CLUSTER SLOTS when this backend
 * found SHARDS refused (an older server, or an ACL without it).
 */
static bool
ask_slots(ClusterNode *n, TimestampTz deadline, RedisError *err)
{
	RedisReply *reply;
	const char *sub = "SLOTS";

	if (!shards_refused)
	{
		if (!ask_cluster(n, "SHARDS", deadline, &reply, err))
			return false;
		if (reply->type != RESP_ERROR)
		{
			if (load_shards(reply, n, n->node.ep.tls.enabled))
				return true;
			RedisErrorSet(err, RS_PROTOCOL, ERRCODE_PROTOCOL_VIOLATION,
						  "invalid reply from Redis",
						  "CLUSTER SHARDS at %s returned no usable slot map.", n->name);
			return false;
		}
		shards_refused = true;
	}
	if (!ask_cluster(n, sub, deadline, &reply, err))
		return false;
	if (reply->type == RESP_ERROR)
	{
		shards_refused = false;	/* a plain server: ask it all again next time */
		RedisErrorSet(err, RS_CONNECT, ERRCODE_FEATURE_NOT_SUPPORTED,
					  "Redis Cluster is not enabled on the Redis server",
					  "CLUSTER SLOTS at %s: %s", n->name, reply->str);
		return false;
	}
	if (!load_slots(reply, n))
	{
		RedisErrorSet(err, RS_PROTOCOL, ERRCODE_PROTOCOL_VIOLATION,
					  "invalid reply from Redis",
					  "CLUSTER SLOTS at %s returned no usable slot map.", n->name);
		return false;
	}
	return true;
}

/* A prefix may hold no "{", or a whole {hash tag}; see the file header. */
static bool
prefix_fits(void)
{
	const char *open = strchr(bmf_key_prefix, '{');
	const char *close;

	if (open == NULL)
		return true;
	close = strchr(open + 1, '}');
	return close != NULL && close > open + 1;
}

bool
RedisClusterEnsureMap(const RedisNode *seed, TimestampTz deadline,
					  RedisError *err)
{
	TimestampTz now = GetCurrentTimestamp();
	char		last[sizeof(err->detail)] = "";
	int			tried = 0;
	bool		all_down = true;
	int			i;
	char	   *list;
	char	   *tok;
	char	   *save = NULL;
	ClusterNode *n;

	if (seed->db != 0)
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_INVALID_PARAMETER_VALUE,
					  "Redis Cluster has only database 0",
					  "bmfredis.db is %d and bmfredis.cluster is on.", seed->db);
		return false;
	}
	/* checked on every call: the prefix can change without a new map */
	if (!prefix_fits())
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_INVALID_PARAMETER_VALUE,
					  "bmfredis.key_prefix cannot be used with Redis Cluster",
					  "The prefix \"%s\" has a \"{\" that does not open a hash tag; use a prefix without braces, or one with a whole {tag} to keep every key in one slot.",
					  bmf_key_prefix);
		return false;
	}
	if (built_for != bmfredis_config_generation)
		adopt_seed(seed);
	if (map_known && (!map_stale ||
					  now - last_refresh < REFRESH_MIN_INTERVAL_MS * 1000))
		return true;
	last_refresh = now;

	/* the masters we know, then the seeds */
	for (i = 0; i < nnodes; i++)
	{
		if (!nodes[i]->master || !map_known)
			continue;
		if (ask_slots(nodes[i], deadline, err))
			goto loaded;
		tried++;
		all_down &= (err->status == RS_DOWN);
		snprintf(last, sizeof(last), "%s", err->detail);
	}
	n = node_get(seed->ep.host, seed->ep.port);
	if (n == NULL)
		RedisErrorSet(err, RS_CONNECT, ERRCODE_PROGRAM_LIMIT_EXCEEDED,
					  "too many Redis Cluster nodes",
					  "A backend keeps at most %d nodes.", MAX_CLUSTER_NODES);
	else if (ask_slots(n, deadline, err))
		goto loaded;
	tried++;
	all_down &= (err->status == RS_DOWN);
	snprintf(last, sizeof(last), "%s", err->detail);
	if (err->sqlerrcode == ERRCODE_FEATURE_NOT_SUPPORTED)
		return false;			/* a plain Redis: say so, not "unreachable" */
	list = pstrdup(bmf_cluster_nodes ? bmf_cluster_nodes : "");
	for (tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
	{
		n = node_at(tok, NULL);
		if (n == NULL)
			continue;
		if (ask_slots(n, deadline, err))
			goto loaded;
		tried++;
		all_down &= (err->status == RS_DOWN);
		snprintf(last, sizeof(last), "%s", err->detail);
	}
	if (map_known)
		return true;			/* keep routing by the old map; MOVED corrects it */
	if (tried == 1)
		return false;			/* the one seed's own error says it best */
	RedisErrorSet(err, all_down ? RS_DOWN : RS_CONNECT,
				  all_down ? ERRCODE_CONNECTION_FAILURE : ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
				  all_down ? "Redis is unavailable" : "could not connect to Redis",
				  "No node of the cluster told its slot map (%d asked); last: %s",
				  tried, last);
	return false;

loaded:
	map_known = true;
	map_stale = false;
	return true;
}

const RedisNode *
RedisClusterNodeForSlot(int slot)
{
	int			i;

	Assert(map_known);
	if (slot >= 0 && slot_map[slot] >= 0)
		return &nodes[slot_map[slot]]->node;
	/* a keyless command, or a slot nobody serves: any master */
	for (i = 0; i < nnodes; i++)
		if (nodes[i]->master)
			return &nodes[i]->node;
	return &nodes[0]->node;
}

const RedisNode *
RedisClusterMoved(int slot, const char *addr, const RedisNode *from)
{
	ClusterNode *n = node_at(addr, from);

	if (n == NULL)
		return NULL;
	if (slot >= 0 && slot < CLUSTER_SLOTS)
		slot_map[slot] = (int16) node_index(n);
	n->master = true;
	map_stale = true;			/* more slots probably moved with it */
	return &n->node;
}

const RedisNode *
RedisClusterNodeAt(const char *addr, const RedisNode *from)
{
	ClusterNode *n = node_at(addr, from);

	return n ? &n->node : NULL;
}

void
RedisClusterMapStale(void)
{
	map_stale = true;
}

int
RedisClusterMasters(const RedisNode ***out)
{
	const RedisNode **list = palloc(sizeof(RedisNode *) * Max(nnodes, 1));
	int			count = 0;
	int			i;

	for (i = 0; i < nnodes; i++)
		if (nodes[i]->master)
			list[count++] = &nodes[i]->node;
	*out = list;
	return count;
}

const RedisNode *
RedisClusterSubscribeNode(int n)
{
	const RedisNode **masters;
	int			count = RedisClusterMasters(&masters);

	if (count == 0)
		return NULL;
	return masters[n % count];
}
