/*-------------------------------------------------------------------------
 *
 * pool.c
 *		The backend's Redis connections, keyed by node ("host:port" or
 *		"unix:path"), and each node's health.
 *
 * A backend runs one command at a time, so one connection per node is
 * enough.  It is made lazily, authenticated (AUTH, SELECT, CLIENT SETNAME
 * in one pipelined round trip), reused across calls and transactions,
 * checked with PING after bmfredis.idle_check of idleness, and closed at
 * backend exit.
 *
 * Invariants:
 *	- An entry is CONN_READY only between complete exchanges: its reply
 *	  stream is in step.  An exchange marks it CONN_BUSY first; if anything
 *	  interrupts the exchange (cancel, timeout, protocol error) it stays
 *	  BUSY and the next use closes it instead of reading someone else's
 *	  reply.
 *	- A connection made under an older configuration generation (the
 *	  endpoint or credentials changed) is never reused.
 *	- After a failure the node is down until failures' backoff expires
 *	  (base * 2^(n-1), capped, with jitter); calls in that window return
 *	  RS_DOWN without touching the network, so a trigger firing for every
 *	  row of a big UPDATE pays microseconds per row while Redis is away.
 *	- Idempotent pipelines that find a pooled connection broken (the server
 *	  closed it, or CLIENT KILL) are re-sent once on a fresh connection;
 *	  others are not, and their caller reports that the outcome is unknown.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "base/guc.h"
#include "base/stats.h"
#include "base/url.h"
#include "base/wait.h"
#include "pool/pool.h"

typedef enum ConnState
{
	CONN_CLOSED,
	CONN_READY,
	CONN_BUSY
} ConnState;

/* One connection: the socket, its reply parser, and whether it is in step. */
typedef struct Conn
{
	RedisTransport t;
	RespReader *reader;
	ConnState	state;
	uint64		generation;
	int			db;
	TimestampTz since;
	char		addr[POOL_NAME_LEN];	/* Sentinel mode: the master it reached */
} Conn;

typedef struct PoolEntry
{
	char		name[POOL_NAME_LEN];	/* hash key; must be first */
	Conn		c;
	TimestampTz last_used;
	int64		commands;
	int64		errors;
	int64		reconnects;
	int			failures;		/* consecutive */
	TimestampTz down_until;
	char		last_error[256];
	int			unread;			/* a stream's replies not read yet */
} PoolEntry;

static HTAB *pool = NULL;
static bool exit_hook_registered = false;

static PoolEntry *pool_find(const char *name);

/* Socket reads land here before being fed to the reader. */
static char read_buffer[64 * 1024];

void
RedisPoolInit(void)
{
	/* nothing is made until first use: the postmaster never connects */
}

static void
conn_close(Conn *c)
{
	TransportClose(&c->t);
	if (c->reader)
		RespReaderFree(c->reader);
	c->reader = NULL;
	c->state = CONN_CLOSED;
	c->since = 0;
}

static void
conn_init(Conn *c)
{
	TransportInit(&c->t);
	c->reader = NULL;
	c->state = CONN_CLOSED;
	c->generation = 0;
	c->db = 0;
	c->since = 0;
	c->addr[0] = '\0';
}

static void
pool_exit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	RedisPoolDisconnectAll();
}

static PoolEntry *
pool_entry(const char *name)
{
	static PoolEntry *last = NULL;	/* entries are never removed or moved */
	PoolEntry  *e;
	bool		found;
	char		key[POOL_NAME_LEN];

	if (last && strcmp(last->name, name) == 0)
		return last;

	if (pool == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = POOL_NAME_LEN;
		ctl.entrysize = sizeof(PoolEntry);
		ctl.hcxt = TopMemoryContext;
		pool = hash_create("bmfredis connection pool", 8, &ctl,
						   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	if (!exit_hook_registered)
	{
		before_shmem_exit(pool_exit, (Datum) 0);
		exit_hook_registered = true;
	}

	memset(key, 0, sizeof(key));
	strlcpy(key, name, sizeof(key));
	e = hash_search(pool, key, HASH_ENTER, &found);
	if (!found)
	{
		conn_init(&e->c);
		e->last_used = 0;
		e->commands = 0;
		e->errors = 0;
		e->reconnects = 0;
		e->failures = 0;
		e->down_until = 0;
		e->last_error[0] = '\0';
		e->unread = 0;
	}
	last = e;
	return e;
}

static void
mark_failure(PoolEntry *e, const RedisError *err)
{
	int64		delay;
	int			shift = Min(e->failures, 30);

	e->failures++;
	e->errors++;
	delay = (int64) bmf_retry_backoff_base << shift;
	if (delay > bmf_retry_backoff_max)
		delay = bmf_retry_backoff_max;
	/* "equal jitter": half fixed, half random, so backends spread out */
	delay = delay / 2 + (int64) (pg_prng_double(&pg_global_prng_state) * (delay / 2 + 1));
	e->down_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
	snprintf(e->last_error, sizeof(e->last_error), "%s: %s",
			 err->message, err->detail);
}

/*
 * A timeout says which setting gave the time, so the message points at what
 * to change: "(bmfredis.connect_timeout is 2000 ms)" after the detail.
 */
static void
timeout_names_setting(RedisError *err, const char *setting, long ms)
{
	size_t		len = strlen(err->detail);

	if (err->status != RS_TIMEOUT)
		return;
	if (len > 0 && err->detail[len - 1] == '.')
		err->detail[--len] = '\0';
	snprintf(err->detail + len, sizeof(err->detail) - len, " (%s is %ld ms).", setting, ms);
}

/* A command's timeout: the node and the time, and the setting when it is one. */
static void
command_timeout_detail(RedisError *err, const char *name, bool deadline_given,
					   TimestampTz started, TimestampTz deadline)
{
	if (err->status != RS_TIMEOUT || strstr(err->detail, "No reply") == NULL)
		return;
	if (deadline_given)
		snprintf(err->detail, sizeof(err->detail),
				 "No reply from %s within the %ld ms this call allowed.",
				 name, (long) ((deadline - started) / 1000));
	else
		snprintf(err->detail, sizeof(err->detail),
				 "No reply from %s within bmfredis.command_timeout (%d ms).",
				 name, bmf_command_timeout);
}

/* Write a pipeline on a connected entry; it stays BUSY until read. */
static bool
exchange_send(Conn *e, const StringInfoData *cmds, TimestampTz deadline,
			  RedisError *err)
{
	e->state = CONN_BUSY;
	err->maybe_sent = true;
	return TransportWrite(&e->t, cmds->data, cmds->len, deadline, err);
}

/* Read ncmds replies; the entry is READY again when all came. */
static bool
exchange_recv(Conn *e, int ncmds, TimestampTz deadline, MemoryContext cxt,
			  RedisReply **replies, RedisError *err)
{
	bool		wait_first = true;
	int			i;

	err->maybe_sent = true;
	for (i = 0; i < ncmds; i++)
	{
		for (;;)
		{
			int			rc;
			ssize_t		n;

			rc = RespReaderGet(e->reader, cxt, bmf_max_value_size,
							   &replies[i], err);
			if (rc < 0)
				return false;
			if (rc > 0)
				break;
			n = TransportRead(&e->t, read_buffer, sizeof(read_buffer),
							  wait_first, deadline, err);
			wait_first = false;
			if (n < 0)
				return false;
			if (!RespReaderFeed(e->reader, read_buffer, n, err))
				return false;
		}
	}
	e->state = CONN_READY;
	return true;
}

/*
 * One pipelined exchange on a connected entry: write cmds, read ncmds
 * replies.  Leaves the entry BUSY unless it completes.
 */
static bool
exchange(Conn *e, const StringInfoData *cmds, int ncmds,
		 TimestampTz deadline, MemoryContext cxt, RedisReply **replies,
		 RedisError *err)
{
	return exchange_send(e, cmds, deadline, err) &&
		exchange_recv(e, ncmds, deadline, cxt, replies, err);
}

/*
 * A name Redis accepts for CLIENT SETNAME (no spaces or odd bytes):
 * bmfredis:<database>:<pid>.  The database name needs the catalogs, so it
 * is looked up once, inside a transaction; a connection first made outside
 * one (after commit) names the database by OID.
 */
static char *pool_dbname = NULL;

void
RedisPoolNoteDatabase(void)
{
	if (pool_dbname == NULL && OidIsValid(MyDatabaseId) && IsTransactionState())
	{
		char	   *n = get_database_name(MyDatabaseId);

		if (n)
			pool_dbname = MemoryContextStrdup(TopMemoryContext, n);
	}
}

const char *
RedisPoolDatabaseName(void)
{
	RedisPoolNoteDatabase();
	return pool_dbname;
}

static void
client_name(char *buf, size_t size)
{
	char		oidbuf[16];
	const char *db;
	char	   *p;
	char	   *dbname;

	RedisPoolNoteDatabase();
	dbname = pool_dbname;
	if (dbname)
		db = dbname;
	else if (OidIsValid(MyDatabaseId))
	{
		snprintf(oidbuf, sizeof(oidbuf), "%u", MyDatabaseId);
		db = oidbuf;
	}
	else
		db = MyBgworkerEntry ? "worker" : "-";
	snprintf(buf, size, "bmfredis:%s:%d", db, MyProcPid);
	for (p = buf; *p; p++)
		if (*p <= ' ' || *p > '~')
			*p = '_';
}

/* AUTH [username] password, if there is a password; true if appended */
static bool
append_auth(StringInfo buf, const char *username, const char *password)
{
	const char *argv[3];
	size_t		lens[3];
	int			argc = 0;

	if (password == NULL || password[0] == '\0')
		return false;
	argv[argc] = "AUTH";
	lens[argc++] = 4;
	if (username && username[0])
	{
		argv[argc] = username;
		lens[argc++] = strlen(username);
	}
	argv[argc] = password;
	lens[argc++] = strlen(password);
	RespFormat(buf, argc, argv, lens);
	return true;
}

/*
 * Connect to ep, send cmds, read their replies and close: a connection for
 * one exchange, which must not leak if an interrupt throws.
 */
static bool
exchange_once(Conn *c, const RedisEndpoint *ep, const StringInfoData *cmds,
			  int ncmds, TimestampTz deadline, RedisReply **replies,
			  RedisError *err)
{
	volatile bool ok = false;

	PG_TRY();
	{
		c->reader = RespReaderCreate();
		ok = TransportConnect(&c->t, ep, deadline, err) &&
			exchange(c, cmds, ncmds, deadline, CurrentMemoryContext, replies, err);
	}
	PG_CATCH();
	{
		conn_close(c);
		PG_RE_THROW();
	}
	PG_END_TRY();
	conn_close(c);
	return ok;
}

/*
 * Ask one sentinel for the master's address: AUTH (if configured) and
 * SENTINEL get-master-addr-by-name, on a connection made for the purpose
 * and closed again.  true with host/port set; false with why in err.
 */
static bool
ask_sentinel(const RedisNode *node, const char *shost, int sport,
			 TimestampTz deadline, char *host, size_t hostlen, int *port,
			 RedisError *err)
{
	Conn		c;
	RedisEndpoint ep = node->ep;
	char		sname[POOL_NAME_LEN];
	StringInfoData cmds;
	const char *argv[3];
	size_t		lens[3];
	RedisReply *replies[2];
	int			n = 0;
	int			auth_at = -1;

	strcpy(sname, "sentinel ");
	BmfHostPort(sname + 9, sizeof(sname) - 9, shost, sport);
	ep.host = shost;
	ep.port = sport;
	ep.unix_socket = "";
	ep.name = sname;
	conn_init(&c);
	initStringInfo(&cmds);
	if (append_auth(&cmds, node->sentinel_username, node->sentinel_password))
		auth_at = n++;
	argv[0] = "SENTINEL";
	lens[0] = 8;
	argv[1] = "get-master-addr-by-name";
	lens[1] = 23;
	argv[2] = node->sentinel_master;
	lens[2] = strlen(node->sentinel_master);
	RespFormat(&cmds, 3, argv, lens);
	n++;

	if (!exchange_once(&c, &ep, &cmds, n, deadline, replies, err))
	{
		if (err->status == RS_TIMEOUT)
			snprintf(err->detail, sizeof(err->detail),
					 "%s did not answer within its share of bmfredis.connect_timeout (%ld ms of %d).",
					 sname, (long) ((deadline - GetCurrentTimestamp()) / 1000 + 1), bmf_connect_timeout);
		return false;
	}
	if (auth_at >= 0 && replies[auth_at]->type == RESP_ERROR)
	{
		RedisErrorSet(err, RS_AUTH, ERRCODE_INVALID_PASSWORD,
					  "Redis Sentinel refused the credentials of bmfredis",
					  "AUTH at %s: %s", sname, replies[auth_at]->str);
		return false;
	}
	if (replies[n - 1]->type == RESP_ARRAY && replies[n - 1]->elements == 2 &&
		replies[n - 1]->element[0]->type == RESP_STRING &&
		replies[n - 1]->element[1]->type == RESP_STRING)
	{
		char	   *end;
		long		p = strtol(replies[n - 1]->element[1]->str, &end, 10);

		if (*end == '\0' && p >= 1 && p <= 65535 &&
			replies[n - 1]->element[0]->len < hostlen)
		{
			strlcpy(host, replies[n - 1]->element[0]->str, hostlen);
			*port = (int) p;
			return true;
		}
	}
	RedisErrorSet(err, RS_CONNECT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
				  "could not find the Redis master",
				  "%s does not know master \"%s\"%s%s.", sname, node->sentinel_master,
				  replies[n - 1]->type == RESP_ERROR ? ": " : "",
				  replies[n - 1]->type == RESP_ERROR ? replies[n - 1]->str : "");
	return false;
}

/*
 * The sentinel that answered last, asked first next time (as Redis'
 * client guidelines for Sentinel advise), so a sentinel that hangs costs
 * one connect its share of the timeout, not every connect.  Remembered
 * per backend, together with the list it indexes.
 */
static char *preferred_list = NULL;
static int	preferred_sentinel = 0;

#define MAX_SENTINELS 64

/*
 * The master's address, from the first of bmfredis.sentinels that knows
 * it.  Each sentinel gets an equal share of the connect timeout, so one
 * that hangs does not starve the others.
 */
static bool
sentinel_resolve(const RedisNode *node, TimestampTz deadline, char *host,
				 size_t hostlen, int *port, RedisError *err)
{
	const char *sentinels = node->sentinels ? node->sentinels : "";
	char	   *list = pstrdup(sentinels);
	const char *hosts[MAX_SENTINELS];
	int			ports[MAX_SENTINELS];
	int			count = 0;
	int			tried;
	char	   *tok;
	char	   *save = NULL;
	char		last[sizeof(err->detail)] = "";

	for (tok = strtok_r(list, ", ", &save); tok && count < MAX_SENTINELS;
		 tok = strtok_r(NULL, ", ", &save))
	{
		/* the check hook refuses what does not split; be safe anyway */
		if (BmfSplitHostPort(tok, &hosts[count], &ports[count]))
			count++;
	}
	if (preferred_list == NULL || strcmp(preferred_list, sentinels) != 0)
	{
		if (preferred_list)
			pfree(preferred_list);
		preferred_list = MemoryContextStrdup(TopMemoryContext, sentinels);
		preferred_sentinel = 0;
	}
	for (tried = 0; tried < count; tried++)
	{
		int			i = (preferred_sentinel + tried) % count;
		TimestampTz now = GetCurrentTimestamp();
		TimestampTz mine = Min(deadline, now + (deadline - now) / (count - tried));

		if (ask_sentinel(node, hosts[i], ports[i], mine, host, hostlen, port, err))
		{
			preferred_sentinel = i;
			return true;
		}
		snprintf(last, sizeof(last), "%s: %s", err->message, err->detail);
	}
	RedisErrorSet(err, RS_CONNECT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
				  "could not connect to Redis",
				  "No sentinel of bmfredis.sentinels named master \"%s\" (%d asked); last: %s",
				  node->sentinel_master, tried, tried ? last : "the list is empty");
	return false;
}

static bool
conn_connect(Conn *e, const RedisNode *node, RedisError *err)
{
	TimestampTz deadline = BmfDeadline(bmf_connect_timeout);
	RedisEndpoint ep = node->ep;
	char		host[256];
	StringInfoData hs;
	const char *argv[3];
	size_t		lens[3];
	RedisReply *replies[4];
	int			n = 0;
	int			auth_at = -1;
	int			select_at = -1;
	int			role_at = -1;
	char		name[128];
	char		dbstr[16];

	conn_close(e);
	e->addr[0] = '\0';
	if (node->sentinel_master)
	{
		int			port;

		if (!sentinel_resolve(node, deadline, host, sizeof(host), &port, err))
			return false;
		ep.host = host;
		ep.port = port;
		BmfHostPort(e->addr, sizeof(e->addr), host, port);
		ep.name = e->addr;
	}
	e->reader = RespReaderCreate();
	if (!TransportConnect(&e->t, &ep, deadline, err))
	{
		timeout_names_setting(err, "bmfredis.connect_timeout", bmf_connect_timeout);
		return false;
	}

	initStringInfo(&hs);
	if (append_auth(&hs, node->username, node->password))
		auth_at = n++;
	if (node->db != 0)
	{
		snprintf(dbstr, sizeof(dbstr), "%d", node->db);
		argv[0] = "SELECT";
		lens[0] = 6;
		argv[1] = dbstr;
		lens[1] = strlen(dbstr);
		RespFormat(&hs, 2, argv, lens);
		select_at = n++;
	}
	client_name(name, sizeof(name));
	argv[0] = "CLIENT";
	lens[0] = 6;
	argv[1] = "SETNAME";
	lens[1] = 7;
	argv[2] = name;
	lens[2] = strlen(name);
	RespFormat(&hs, 3, argv, lens);
	n++;
	if (node->sentinel_master)
	{
		/* a demoted master must never be written to */
		argv[0] = "ROLE";
		lens[0] = 4;
		RespFormat(&hs, 1, argv, lens);
		role_at = n++;
	}

	if (!exchange(e, &hs, n, deadline, CurrentMemoryContext, replies, err))
	{
		/*
		 * Failing before the first reply is failing to connect.  The usual
		 * causes: TLS on one side only (a TLS server resets a plaintext
		 * client), or a server that wants a client certificate (TLS 1.3
		 * reports that after the handshake, on the first read).
		 */
		char		detail[sizeof(err->detail)];

		if (err->status == RS_IO)
		{
			strlcpy(detail, err->detail, sizeof(detail));
			err->status = RS_CONNECT;
			err->sqlerrcode = ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
			if (ep.tls.enabled && strstr(detail, "certificate required"))
				snprintf(err->detail, sizeof(err->detail),
						 "%s requires a client certificate (bmfredis.tls_cert_file and bmfredis.tls_key_file): %s",
						 ep.name, detail);
			else if (!ep.tls.enabled)
				snprintf(err->detail, sizeof(err->detail),
						 "%s dropped the connection before answering (if it is a TLS port, set bmfredis.tls = on): %s",
						 ep.name, detail);
			else
				snprintf(err->detail, sizeof(err->detail),
						 "%s dropped the connection before answering: %s",
						 ep.name, detail);
		}
		if (err->status == RS_TIMEOUT)
		{
			err->sqlerrcode = ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
			snprintf(err->detail, sizeof(err->detail),
					 "%s accepted the connection but did not answer AUTH, SELECT and CLIENT SETNAME within bmfredis.connect_timeout (%d ms).",
					 ep.name, bmf_connect_timeout);
		}
		if (err->status == RS_TIMEOUT || err->status == RS_CONNECT)
			strlcpy(err->message, "could not connect to Redis", sizeof(err->message));
		pfree(hs.data);
		return false;
	}
	pfree(hs.data);

	if (auth_at >= 0 && replies[auth_at]->type == RESP_ERROR)
	{
		RedisErrorSet(err, RS_AUTH, ERRCODE_INVALID_PASSWORD,
					  "Redis refused the credentials of bmfredis",
					  "AUTH at %s: %s", ep.name, replies[auth_at]->str);
		return false;
	}
	if (select_at >= 0 && replies[select_at]->type == RESP_ERROR)
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_INVALID_PARAMETER_VALUE,
					  "could not select the Redis database",
					  "SELECT %d at %s: %s", node->db, ep.name,
					  replies[select_at]->str);
		return false;
	}
	/* CLIENT SETNAME may be denied by an ACL; the name is a courtesy */
	if (role_at >= 0)
	{
		RedisReply *r = replies[role_at];
		const char *role = (r->type == RESP_ARRAY && r->elements > 0 &&
							r->element[0]->type == RESP_STRING) ? r->element[0]->str : "(no answer)";

		if (strcmp(role, "master") != 0)
		{
			RedisErrorSet(err, RS_UNAVAILABLE, ERRCODE_CONNECTION_FAILURE,
						  "Redis is unavailable",
						  "%s, named master of \"%s\" by Sentinel, says its role is %s (a failover in progress?); the sentinels are asked again after the backoff.",
						  ep.name, node->sentinel_master, role);
			return false;
		}
	}

	e->generation = bmfredis_config_generation;
	e->db = node->db;
	e->since = GetCurrentTimestamp();
	return true;
}

static bool
pool_connect(PoolEntry *e, const RedisNode *node, RedisError *err)
{
	if (e->c.since != 0 || e->commands > 0)
	{
		e->reconnects++;
		BmfStatsCount(STAT_RECONNECTS, 1);
	}
	if (!conn_connect(&e->c, node, err))
		return false;
	e->last_used = e->c.since;
	return true;
}

/* Is a pooled, idle connection still alive?  Closes it when not. */
static bool
idle_connection_alive(Conn *e)
{
	StringInfoData cmd;
	const char *argv[1] = {"PING"};
	size_t		lens[1] = {4};
	RedisReply *reply;
	RedisError	err;
	bool		ok;

	initStringInfo(&cmd);
	RespFormat(&cmd, 1, argv, lens);
	ok = exchange(e, &cmd, 1, BmfDeadline(bmf_command_timeout),
				  CurrentMemoryContext, &reply, &err);
	pfree(cmd.data);
	if (!ok || reply->type == RESP_ERROR)
	{
		conn_close(e);
		return false;
	}
	return true;
}

/* Do any replies say the node cannot serve us right now? */
static bool
replies_unavailable(RedisReply **replies, int n, RedisError *err,
					const char *name, const char *addr)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		if (RespErrorUnavailable(replies[i]))
		{
			RedisErrorSet(err, RS_UNAVAILABLE, ERRCODE_CONNECTION_FAILURE,
						  "Redis is unavailable",
						  addr[0] ? "%s (%s) answered: %s" : "%s%s answered: %s",
						  name, addr, replies[i]->str);
			return true;
		}
	}
	return false;
}

/* err for a node inside its backoff window: why it is left alone, how long */
static void
down_error(PoolEntry *e, const char *name, TimestampTz now, RedisError *err)
{
	RedisErrorSet(err, RS_DOWN, ERRCODE_CONNECTION_FAILURE,
				  "Redis is unavailable",
				  "%s failed %ld ms ago and is left alone for another %ld ms (bmfredis.retry_backoff_base and retry_backoff_max); last error: %s",
				  name, (long) ((now - e->last_used) / 1000),
				  (long) ((e->down_until - now) / 1000), e->last_error);
}

bool
RedisPoolDownError(const char *name, RedisError *err)
{
	PoolEntry  *e = pool_find(name);
	TimestampTz now = GetCurrentTimestamp();

	if (e == NULL || e->down_until <= now)
		return false;
	down_error(e, name, now, err);
	return true;
}

/*
 * Make an entry ready to send to: outside its backoff window (else -1,
 * RS_DOWN, nothing to undo) and with a connection that works (else -2:
 * the caller fails the entry).  *fresh when the connection is new.
 */
static int
pool_begin(PoolEntry *e, const RedisNode *node, int flags, TimestampTz now,
		   bool *fresh, RedisError *err)
{
	err->status = RS_OK;
	err->maybe_sent = false;
	*fresh = false;

	if (!(flags & POOL_FORCE) && e->down_until > now)
	{
		down_error(e, node->ep.name, now, err);
		return -1;
	}

	if (e->c.state != CONN_READY || e->c.generation != bmfredis_config_generation ||
		(bmf_idle_check > 0 &&
		 now - e->last_used > (int64) bmf_idle_check * USECS_PER_SEC &&
		 !idle_connection_alive(&e->c)) ||
		(!(flags & POOL_IDEMPOTENT) && TransportPeerClosed(&e->c.t)))
	{
		if (!pool_connect(e, node, err))
			return -2;
		*fresh = true;
	}
	return 0;
}

/* The deadline of a call: given, or the command timeout from now */
static TimestampTz
call_deadline(TimestampTz deadline, bool fresh, TimestampTz now)
{
	if (deadline != 0)
		return deadline;
	/* after a connect, the command gets its full time */
	return fresh ? BmfDeadline(bmf_command_timeout)
		: TimestampTzPlusMilliseconds(now, bmf_command_timeout);
}

static bool
pool_fail(PoolEntry *e, const RedisError *err)
{
	conn_close(&e->c);
	e->last_used = GetCurrentTimestamp();
	mark_failure(e, err);
	return false;
}

/*
 * Read the replies of what was sent on e; a pooled connection found dead
 * gets one more try on a new one for an idempotent pipeline.  Checks the
 * replies and keeps the books either way.
 */
static bool
pool_receive(PoolEntry *e, const RedisNode *node, const StringInfoData *cmds,
			 int ncmds, int flags, bool fresh, bool deadline_given,
			 TimestampTz started, TimestampTz deadline, MemoryContext cxt,
			 RedisReply **replies, RedisError *err)
{
	bool		ok = exchange_recv(&e->c, ncmds, deadline, cxt, replies, err);

	if (!ok && err->status == RS_IO && !fresh && (flags & POOL_IDEMPOTENT))
	{
		/* the pooled connection was dead: one more try on a new one */
		if (!pool_connect(e, node, err))
			return pool_fail(e, err);
		ok = exchange(&e->c, cmds, ncmds, deadline, cxt, replies, err);
	}
	if (!ok)
	{
		command_timeout_detail(err, node->ep.name, deadline_given, started, deadline);
		return pool_fail(e, err);
	}
	if (RespReaderBuffered(e->c.reader) > 0)
	{
		/* a reply nobody asked for: whatever comes next would be misread */
		RedisErrorSet(err, RS_PROTOCOL, ERRCODE_PROTOCOL_VIOLATION,
					  "invalid reply from Redis",
					  "%s sent more than the replies to the %d command%s sent.",
					  node->ep.name, ncmds, ncmds == 1 ? "" : "s");
		return pool_fail(e, err);
	}
	if (replies_unavailable(replies, ncmds, err, node->ep.name, e->c.addr))
		return pool_fail(e, err);

	e->failures = 0;
	e->down_until = 0;
	e->commands += ncmds;
	e->last_used = started;		/* the start of the call: close enough for idle checks */
	return true;
}

bool
RedisPoolExec(const RedisNode *node, const StringInfoData *cmds, int ncmds,
			  int flags, TimestampTz deadline, MemoryContext cxt,
			  RedisReply **replies, RedisError *err)
{
	PoolEntry  *e = pool_entry(node->ep.name);
	TimestampTz now = GetCurrentTimestamp();
	bool		fresh;
	bool		given = (deadline != 0);
	int			rc = pool_begin(e, node, flags, now, &fresh, err);

	if (rc == -1)
		return false;
	if (rc < 0)
		return pool_fail(e, err);
	deadline = call_deadline(deadline, fresh, now);
	if (!exchange_send(&e->c, cmds, deadline, err))
	{
		command_timeout_detail(err, node->ep.name, given, now, deadline);
		return pool_fail(e, err);
	}
	return pool_receive(e, node, cmds, ncmds, flags, fresh, given, now, deadline,
						cxt, replies, err);
}

bool
RedisPoolExecMany(int n, const RedisNode *const *nodes,
				  const StringInfoData *const *cmds, const int *ncmds,
				  int flags, TimestampTz deadline, MemoryContext cxt,
				  RedisReply ***replies, RedisError *err)
{
	PoolEntry **es = palloc(sizeof(PoolEntry *) * n);
	bool	   *sent = palloc0(sizeof(bool) * n);
	bool	   *fresh = palloc0(sizeof(bool) * n);
	TimestampTz *deadlines = palloc(sizeof(TimestampTz) * n);
	TimestampTz now = GetCurrentTimestamp();
	bool		ok = true;
	RedisError	local;
	int			i;

	/* write to every node, then read from each: they work at once */
	for (i = 0; i < n; i++)
	{
		int			rc;

		es[i] = pool_entry(nodes[i]->ep.name);
		rc = pool_begin(es[i], nodes[i], flags, now, &fresh[i], &local);
		if (rc == 0)
		{
			deadlines[i] = call_deadline(deadline, fresh[i], now);
			if (exchange_send(&es[i]->c, cmds[i], deadlines[i], &local))
			{
				sent[i] = true;
				continue;
			}
		}
		if (rc != -1)
			pool_fail(es[i], &local);
		if (ok)
			*err = local;
		ok = false;
	}
	for (i = 0; i < n; i++)
	{
		if (!sent[i])
			continue;
		if (!pool_receive(es[i], nodes[i], cmds[i], ncmds[i], flags, fresh[i],
						  deadline != 0, now, deadlines[i], cxt, replies[i], &local))
		{
			if (ok)
				*err = local;
			ok = false;
		}
	}
	return ok;
}

/* The pool entry of a node, if this backend has one */
static PoolEntry *
pool_find(const char *name)
{
	char		key[POOL_NAME_LEN];

	if (pool == NULL)
		return NULL;
	memset(key, 0, sizeof(key));
	strlcpy(key, name, sizeof(key));
	return hash_search(pool, key, HASH_FIND, NULL);
}

/*
 * The address a node's connection reached, for nodes named by role
 * (Sentinel); NULL for nodes named by address, or with no connection.
 */
const char *
RedisPoolNodeAddress(const char *name)
{
	PoolEntry  *e = pool_find(name);

	return (e && e->c.state != CONN_CLOSED && e->c.addr[0]) ? e->c.addr : NULL;
}

bool
RedisPoolNodeIsDown(const char *name, long *ms_left)
{
	PoolEntry  *e = pool_find(name);
	TimestampTz now;

	if (e == NULL)
		return false;
	now = GetCurrentTimestamp();
	if (e->down_until <= now)
		return false;
	if (ms_left)
		*ms_left = (long) ((e->down_until - now) / 1000);
	return true;
}

int
RedisPoolDisconnectAll(void)
{
	HASH_SEQ_STATUS seq;
	PoolEntry  *e;
	int			n = 0;

	if (pool == NULL)
		return 0;
	hash_seq_init(&seq, pool);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (TransportIsOpen(&e->c.t))
			n++;
		conn_close(&e->c);
		e->unread = 0;
	}
	return n;
}

int
RedisPoolList(RedisPoolInfo **infos)
{
	HASH_SEQ_STATUS seq;
	PoolEntry  *e;
	int			n = 0;
	int			cap;

	*infos = NULL;
	if (pool == NULL)
		return 0;
	cap = Max(hash_get_num_entries(pool), 1);
	*infos = palloc0(sizeof(RedisPoolInfo) * cap);
	hash_seq_init(&seq, pool);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		RedisPoolInfo *info = &(*infos)[n++];

		if (e->c.addr[0])
			snprintf(info->node, sizeof(info->node), "%s (%s)", e->name, e->c.addr);
		else
			strlcpy(info->node, e->name, sizeof(info->node));
		switch (e->c.state)
		{
			case CONN_READY:
				info->state = "idle";
				break;
			case CONN_BUSY:
				info->state = e->unread > 0 ? "streaming" : "broken";
				break;
			default:
				info->state = e->down_until > GetCurrentTimestamp() ? "down" : "closed";
				break;
		}
		info->db = e->c.db;
		info->since = e->c.since;
		info->last_used = e->last_used;
		info->commands = e->commands;
		info->errors = e->errors;
		info->reconnects = e->reconnects;
		info->failures = e->failures;
		info->down_until = e->down_until;
		strlcpy(info->last_error, e->last_error, sizeof(info->last_error));
	}
	return n;
}

/* ---- streams: pipelines whose replies are read later ---- */

static PoolEntry *
stream_entry(const char *node_name, const char *tag)
{
	char		name[POOL_NAME_LEN];

	snprintf(name, sizeof(name), "%s (%s)", node_name, tag);
	return pool_entry(name);
}

bool
RedisPoolStreamSend(const RedisNode *node, const char *tag, bool opening,
					const StringInfoData *cmds, int ncmds,
					TimestampTz deadline, RedisError *err)
{
	PoolEntry  *e = stream_entry(node->ep.name, tag);
	TimestampTz now = GetCurrentTimestamp();

	if (!opening && e->unread == 0)
	{
		/* closed under the caller (redis_disconnect()): its MULTI is gone */
		RedisErrorSet(err, RS_IO, ERRCODE_CONNECTION_FAILURE,
					  "Redis connection lost", "The stream to %s was closed.",
					  node->ep.name);
		return false;
	}
	if (opening)
	{
		PoolEntry  *main = pool_find(node->ep.name);
		bool		fresh;
		int			rc;

		/* a node the pool has given up on for now is not tried here either */
		if (main && main->down_until > now)
		{
			RedisErrorSet(err, RS_DOWN, ERRCODE_CONNECTION_FAILURE,
						  "Redis is unavailable", "%s is in its backoff window",
						  node->ep.name);
			return false;
		}
		rc = pool_begin(e, node, 0, now, &fresh, err);

		if (rc == -1)
			return false;
		if (rc < 0)
			return pool_fail(e, err);
	}
	if (!exchange_send(&e->c, cmds, deadline, err))
	{
		e->unread = 0;
		return pool_fail(e, err);
	}
	e->unread += ncmds;
	e->last_used = now;
	return true;
}

int
RedisPoolStreamUnread(const RedisNode *node, const char *tag)
{
	return stream_entry(node->ep.name, tag)->unread;
}

bool
RedisPoolStreamFinish(const RedisNode *node, const char *tag,
					  const StringInfoData *cmds, int ncmds,
					  TimestampTz deadline, MemoryContext cxt,
					  RedisReply **replies, RedisError *err)
{
	PoolEntry  *e = stream_entry(node->ep.name, tag);
	int			total = e->unread + ncmds;

	if (e->unread == 0)
	{
		RedisErrorSet(err, RS_IO, ERRCODE_CONNECTION_FAILURE,
					  "Redis connection lost", "The stream to %s was closed.",
					  node->ep.name);
		return false;
	}
	e->unread = 0;
	if (!exchange_send(&e->c, cmds, deadline, err))
		return pool_fail(e, err);
	/* every reply of the stream, checked and counted as any pipeline's */
	return pool_receive(e, node, cmds, total, 0, true, true, GetCurrentTimestamp(),
						deadline, cxt, replies, err);
}

void
RedisPoolStreamAbandon(const char *node_name, const char *tag)
{
	char		name[POOL_NAME_LEN];
	PoolEntry  *e;

	snprintf(name, sizeof(name), "%s (%s)", node_name, tag);
	e = pool_find(name);
	if (e == NULL)
		return;
	/* closed mid-command too: Redis drops a MULTI when its client leaves */
	if (e->unread > 0 || e->c.state == CONN_BUSY)
		conn_close(&e->c);
	e->unread = 0;
}

/* ---- subscriptions: dedicated connections in pub/sub mode ---- */

struct RedisSubscription
{
	Conn		c;
	char		name[POOL_NAME_LEN];
};

static void
sub_command(StringInfo buf, const char *verb, int n, const char *const *names,
			const bool *patterns, bool want_patterns, int *count)
{
	const char **argv = palloc(sizeof(char *) * (n + 1));
	size_t	   *lens = palloc(sizeof(size_t) * (n + 1));
	int			argc = 1;
	int			i;

	argv[0] = verb;
	lens[0] = strlen(verb);
	for (i = 0; i < n; i++)
	{
		if (patterns[i] != want_patterns)
			continue;
		argv[argc] = names[i];
		lens[argc++] = strlen(names[i]);
	}
	if (argc > 1)
	{
		RespFormat(buf, argc, argv, lens);
		*count += argc - 1;		/* one confirmation per name */
	}
}

RedisSubscription *
RedisPoolSubscribe(const RedisNode *node, int n, const char *const *names,
				   const bool *patterns, RedisError *err)
{
	RedisSubscription *sub;
	StringInfoData cmds;
	RedisReply **replies;
	int			nreplies = 0;
	int			i;

	sub = MemoryContextAllocZero(TopMemoryContext, sizeof(RedisSubscription));
	conn_init(&sub->c);
	strlcpy(sub->name, node->ep.name, sizeof(sub->name));
	if (!conn_connect(&sub->c, node, err))
	{
		conn_close(&sub->c);
		pfree(sub);
		return NULL;
	}
	initStringInfo(&cmds);
	sub_command(&cmds, "SUBSCRIBE", n, names, patterns, false, &nreplies);
	sub_command(&cmds, "PSUBSCRIBE", n, names, patterns, true, &nreplies);
	replies = palloc(sizeof(RedisReply *) * Max(nreplies, 1));
	if (nreplies > 0 &&
		!exchange(&sub->c, &cmds, nreplies, BmfDeadline(bmf_command_timeout),
				  CurrentMemoryContext, replies, err))
	{
		conn_close(&sub->c);
		pfree(sub);
		return NULL;
	}
	for (i = 0; i < nreplies; i++)
	{
		if (replies[i]->type == RESP_ERROR)
		{
			RedisErrorSet(err, RS_REPLY, ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
						  "Redis refused the subscription",
						  "%s: %s", sub->name, replies[i]->str);
			conn_close(&sub->c);
			pfree(sub);
			return NULL;
		}
	}
	return sub;
}

int
RedisSubscriptionNext(RedisSubscription *sub, TimestampTz deadline,
					  MemoryContext cxt, RedisReply **msg, RedisError *err)
{
	bool		wait_first = true;

	for (;;)
	{
		int			rc;
		ssize_t		n;

		rc = RespReaderGet(sub->c.reader, cxt, bmf_max_value_size, msg, err);
		if (rc < 0)
			return -1;
		if (rc > 0)
			return 1;
		n = TransportRead(&sub->c.t, read_buffer, sizeof(read_buffer),
						  wait_first, deadline, err);
		wait_first = false;
		if (n < 0)
			return err->status == RS_TIMEOUT ? 0 : -1;
		if (!RespReaderFeed(sub->c.reader, read_buffer, n, err))
			return -1;
	}
}

void
RedisSubscriptionClose(RedisSubscription *sub)
{
	if (sub == NULL)
		return;
	conn_close(&sub->c);
	pfree(sub);
}

void
RedisSubscriptionWakeOnLatch(RedisSubscription *sub)
{
	sub->c.t.wake_on_latch = true;
}
