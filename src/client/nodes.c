/*-------------------------------------------------------------------------
 *
 * nodes.c
 *		The configured node (host and port, Sentinel or cluster seed, with
 *		credentials and TLS) and what features may know of nodes and of
 *		this backend's connections.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"

#include "base/guc.h"
#include "base/shmem.h"
#include "base/url.h"
#include "client/client.h"
#include "client/cluster.h"
#include "client/internal.h"
#include "pool/pool.h"

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
	static ClientServerEndpoint fs;
	bool		has_fs = ClientServerOptions(&fs);

	/* a bmfredis foreign server's options win over the settings */
	if (has_fs && fs.host[0])
	{
		host = fs.host;
		unix_socket = "";
	}
	if (has_fs && fs.port >= 0)
		port = fs.port;

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
	node->ep.tls.enabled = has_fs && fs.tls >= 0 ? fs.tls == 1 : url ? url->tls : bmf_tls;
	node->ep.tls.verify = bmf_tls_verify;
	node->ep.tls.ca_file = bmf_tls_ca_file;
	node->ep.tls.cert_file = bmf_tls_cert_file;
	node->ep.tls.key_file = bmf_tls_key_file;
	node->ep.tls.server_name = has_fs && fs.tls_server_name[0] ? fs.tls_server_name : bmf_tls_server_name;
	node->username = url ? url->username : bmf_username;
	node->password = url ? url->password : bmf_password;
	node->password_file = bmf_password_file;
	node->db = db;
}

const RedisNode *
RedisDefaultNode(void)
{
	static RedisNode node;
	static char name[POOL_NAME_LEN];
	static uint64 built_for = 0;
	static uint64 built_for_catalog = 0;
	static int	built_db = -1;

	if (built_for != bmfredis_config_generation || built_db != BmfDb() ||
		(bmf_server[0] && built_for_catalog != ClientIdentityGeneration() && IsTransactionState()))
	{
		build_node(&node, name, BmfDb());
		built_for = bmfredis_config_generation;
		built_for_catalog = ClientIdentityGeneration();
		built_db = BmfDb();
	}
	return &node;
}

/*
 * The namespace this process's calls use, hashed: the default node's name
 * (its endpoint and database number) and bmfredis.key_prefix.
 */
uint64
RedisNamespaceHash(void)
{
	char	   *ns = psprintf("%s|%s", RedisNodeName(RedisDefaultNode()),
							  bmf_key_prefix ? bmf_key_prefix : "");
	uint64		h = hash_bytes_extended((const unsigned char *) ns, strlen(ns), 0);

	pfree(ns);
	return h == 0 ? 1 : h;
}

/*
 * The other databases that share it (names, in a transaction, into
 * *names): their workers serve the same node and prefix.  Returns how
 * many, or -1 when that cannot be known (not preloaded).
 */
int
RedisNamespaceSharers(List **names)
{
	Oid			oids[16];
	int			n = BmfNamespaceSharers(RedisNamespaceHash(), MyDatabaseId, oids, lengthof(oids));
	int			i;

	*names = NIL;
	for (i = 0; i < Min(n, (int) lengthof(oids)); i++)
	{
		char	   *name = get_database_name(oids[i]);

		if (name)
			*names = lappend(*names, name);
	}
	return n;
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
	return PoolNodeAddress(node->ep.name);
}

bool
RedisNodeIsDown(const RedisNode *node)
{
	return PoolNodeIsDown(node->ep.name, NULL);
}

int
RedisConnections(PoolInfo **rows)
{
	return PoolList(rows);
}

int
RedisDisconnectAll(void)
{
	return PoolDisconnectAll();
}

RedisSubscription *
RedisSubscribe(int attempt, int n, const char *const *names, const bool *patterns,
			   RedisError *err)
{
	return PoolSubscribe(RedisSubscribeNode(attempt), n, names, patterns, err);
}

int
RedisSubscriptionRead(RedisSubscription *sub, TimestampTz deadline,
					  MemoryContext cxt, RedisReply **msg, RedisError *err)
{
	return PoolSubscriptionNext(sub, deadline, cxt, msg, err);
}

void
RedisUnsubscribe(RedisSubscription *sub)
{
	PoolSubscriptionClose(sub);
}

const RedisNode *
RedisSubscribeNode(int attempt)
{
	const RedisNode *node = RedisCallerNode();
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
