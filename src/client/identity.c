/*-------------------------------------------------------------------------
 *
 * identity.c
 *		Where Redis is and as whom each role talks to it, the PostgreSQL
 *		way: a foreign server of wrapper bmfredis (named by the setting
 *		bmfredis.server) says where, and a user mapping per role says as
 *		which Redis ACL user, as postgres_fdw and dblink keep credentials.
 *
 *	- The server's options (host, port, tls, tls_server_name) replace
 *	  the endpoint settings for everything bmfredis sends.
 *	- A call made from SQL (RedisCallerNode) talks to Redis as the user of
 *	  the calling role's mapping (or of the mapping FOR PUBLIC), on a
 *	  connection of its own: the pool keys connections by node name, and
 *	  the name of such a node ends in "#<redis user>".  Inside a SECURITY
 *	  DEFINER function the calling role is the definer, as for
 *	  postgres_fdw.  A role with no mapping is refused, unless it is a
 *	  superuser, which talks as the server's own identity.
 *	- What bmfredis does on its own behalf (the effects of watched tables'
 *	  rules, sent at COMMIT; the worker's retries, schedules and relay)
 *	  talks as the server's own identity (bmfredis.username and
 *	  bmfredis.password or password_file, or the URL's), through
 *	  RedisDefaultNode().
 *
 * The options are read from the catalogs inside a transaction and kept
 * until a catalog change (a syscache callback) or a setting change (the
 * configuration generation) makes them stale.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "access/xact.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "foreign/foreign.h"
#include "miscadmin.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "base/compat.h"
#include "base/guc.h"
#include "client/client.h"
#include "client/internal.h"

static bool callbacks_registered = false;
static uint64 catalog_generation = 1;

/* The server's endpoint, as last read */
static struct
{
	uint64		config_generation;
	uint64		catalog_generation;
	bool		loaded;
	ClientServerEndpoint ep;
}			server;

/* The current role's mapped node, as last built */
static struct
{
	uint64		config_generation;
	uint64		catalog_generation;
	Oid			role;
	int			db;
	bool		mapped;			/* false: the default node is the answer */
	RedisNode	node;
	char		name[POOL_NAME_LEN];
	char		user[128];
	char	   *password;
}			caller;

static void
catalog_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	(void) arg;
	(void) cacheid;
	(void) hashvalue;
	catalog_generation++;
}

static void
register_callbacks(void)
{
	if (callbacks_registered)
		return;
	CacheRegisterSyscacheCallback(FOREIGNSERVEROID, catalog_changed, (Datum) 0);
	CacheRegisterSyscacheCallback(USERMAPPINGOID, catalog_changed, (Datum) 0);
	callbacks_registered = true;
}

static ForeignServer *
find_server(void)
{
	ForeignServer *fs = GetForeignServerByName(bmf_server, true);
	ForeignDataWrapper *fdw;

	if (fs == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("server \"%s\" named by bmfredis.server does not exist", bmf_server),
				 errhint("CREATE SERVER %s FOREIGN DATA WRAPPER bmfredis OPTIONS (host '...', port '...'), or reset bmfredis.server.",
						 bmf_server)));
	fdw = GetForeignDataWrapper(fs->fdwid);
	if (strcmp(fdw->fdwname, "bmfredis") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("server \"%s\" named by bmfredis.server is not a bmfredis server", bmf_server),
				 errdetail("Its foreign-data wrapper is \"%s\".", fdw->fdwname)));
	return fs;
}

/*
 * bmfredis.server when it names no bmfredis server (DROP EXTENSION ...
 * CASCADE dropped it), else NULL.  In a transaction.
 */
const char *
RedisServerMissing(void)
{
	ForeignServer *fs;

	if (bmf_server == NULL || bmf_server[0] == '\0')
		return NULL;
	fs = GetForeignServerByName(bmf_server, true);
	if (fs != NULL && strcmp(GetForeignDataWrapper(fs->fdwid)->fdwname, "bmfredis") == 0)
		return NULL;
	return bmf_server;
}

bool
ClientServerOptions(ClientServerEndpoint *ep)
{
	ForeignServer *fs;
	ListCell   *lc;

	if (bmf_server == NULL || bmf_server[0] == '\0')
		return false;
	register_callbacks();
	if (server.loaded && (!IsTransactionState() ||
						  (server.config_generation == bmfredis_config_generation &&
						   server.catalog_generation == catalog_generation)))
	{
		*ep = server.ep;
		return true;
	}
	if (!IsTransactionState())
		return false;			/* never read: the settings, until a transaction */

	fs = find_server();
	memset(&server.ep, 0, sizeof(server.ep));
	server.ep.port = -1;
	server.ep.tls = -1;
	foreach(lc, fs->options)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (strcmp(d->defname, "host") == 0)
			strlcpy(server.ep.host, defGetString(d), sizeof(server.ep.host));
		else if (strcmp(d->defname, "port") == 0)
			server.ep.port = atoi(defGetString(d));
		else if (strcmp(d->defname, "tls") == 0)
			server.ep.tls = defGetBoolean(d) ? 1 : 0;
		else if (strcmp(d->defname, "tls_server_name") == 0)
			strlcpy(server.ep.tls_server_name, defGetString(d), sizeof(server.ep.tls_server_name));
	}
	server.config_generation = bmfredis_config_generation;
	server.catalog_generation = catalog_generation;
	server.loaded = true;
	*ep = server.ep;
	return true;
}

/* The mapping of role on fs, or of PUBLIC; NULL when neither exists. */
static List *
mapping_options(Oid role, ForeignServer *fs, bool *found)
{
	HeapTuple	tp;
	Datum		datum;
	bool		isnull;
	List	   *options = NIL;

	tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(role),
						 ObjectIdGetDatum(fs->serverid));
	if (!HeapTupleIsValid(tp))
		tp = SearchSysCache2(USERMAPPINGUSERSERVER, ObjectIdGetDatum(InvalidOid),
							 ObjectIdGetDatum(fs->serverid));
	*found = HeapTupleIsValid(tp);
	if (!*found)
		return NIL;
	datum = SysCacheGetAttr(USERMAPPINGUSERSERVER, tp, Anum_pg_user_mapping_umoptions, &isnull);
	if (!isnull)
		options = untransformRelOptions(datum);
	ReleaseSysCache(tp);
	return options;
}

/*
 * The Redis user this session's current role talks as through its user
 * mapping, if the last call resolved one (never raises: for messages).
 */
const char *
RedisCallerMappedUser(void)
{
	if (caller.mapped && caller.role == GetUserId())
		return caller.user[0] ? caller.user : "default";
	return NULL;
}

bool
RedisCallerIsMapped(void)
{
	return RedisCallerNode() != RedisDefaultNode();
}

uint64
ClientIdentityGeneration(void)
{
	return catalog_generation;
}

const RedisNode *
RedisCallerNode(void)
{
	const RedisNode *def = RedisDefaultNode();
	Oid			role;
	ForeignServer *fs;
	List	   *options;
	ListCell   *lc;
	bool		found;

	/*
	 * A background worker talks as the server's identity, except while it
	 * runs a role's code as that role (the inbox inserts as the target
	 * table's owner): that code's calls are the role's own.
	 */
	if (bmf_server == NULL || bmf_server[0] == '\0' ||
		(BmfIsBackgroundWorker() && GetUserId() == GetAuthenticatedUserId()) ||
		!IsTransactionState())
		return def;
	register_callbacks();
	role = GetUserId();
	if (caller.role == role && caller.db == def->db &&
		caller.config_generation == bmfredis_config_generation &&
		caller.catalog_generation == catalog_generation)
		return caller.mapped ? &caller.node : def;

	fs = find_server();
	options = mapping_options(role, fs, &found);
	caller.mapped = false;
	caller.role = role;
	caller.db = def->db;
	caller.config_generation = bmfredis_config_generation;
	caller.catalog_generation = catalog_generation;
	if (!found)
	{
		if (superuser_arg(role))
			return def;
		caller.role = InvalidOid;	/* ask again next time */
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("role \"%s\" has no user mapping for bmfredis server \"%s\"",
						GetUserNameFromId(role, false), fs->servername),
				 errhint("CREATE USER MAPPING FOR %s SERVER %s OPTIONS (user '...', password '...').",
						 GetUserNameFromId(role, false), fs->servername)));
	}
	if (def->cluster)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("user mappings of bmfredis server \"%s\" are not supported with bmfredis.cluster",
						fs->servername),
				 errhint("In cluster mode every role talks to Redis as bmfredis.username.")));

	caller.node = *def;
	caller.user[0] = '\0';
	if (caller.password)
	{
		explicit_bzero(caller.password, strlen(caller.password));
		pfree(caller.password);
		caller.password = NULL;
	}
	foreach(lc, options)
	{
		DefElem    *d = (DefElem *) lfirst(lc);

		if (strcmp(d->defname, "user") == 0)
			strlcpy(caller.user, defGetString(d), sizeof(caller.user));
		else if (strcmp(d->defname, "password") == 0)
			caller.password = MemoryContextStrdup(TopMemoryContext, defGetString(d));
	}
	/*
	 * A non-superuser's mapping must authenticate: without a password the
	 * connection would be Redis' default user, which is someone else (as
	 * postgres_fdw requires a password of non-superusers).
	 */
	if ((caller.password == NULL || caller.password[0] == '\0') && !superuser_arg(role))
	{
		caller.role = InvalidOid;	/* ask again next time */
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("the user mapping of role \"%s\" for bmfredis server \"%s\" has no password",
						GetUserNameFromId(role, false), fs->servername),
				 errdetail("Without one, bmfredis would talk to Redis as its default user, not as \"%s\".",
						   caller.user[0] ? caller.user : "the mapping's user"),
				 errhint("ALTER USER MAPPING FOR %s SERVER %s OPTIONS (ADD password '...').",
						 GetUserNameFromId(role, false), fs->servername)));
	}
	caller.node.username = caller.user;
	caller.node.password = caller.password ? caller.password : "";
	caller.node.password_file = NULL;
	snprintf(caller.name, sizeof(caller.name), "%s#%s", def->ep.name,
			 caller.user[0] ? caller.user : "default");
	caller.node.ep.name = caller.name;
	caller.mapped = true;
	return &caller.node;
}
