/*-------------------------------------------------------------------------
 *
 * conn.c
 *		One connection to one node: connect (through Sentinel when the node
 *		is named by it), the handshake (AUTH, SELECT, CLIENT SETNAME and,
 *		for Sentinel, ROLE, in one pipelined round trip), and pipelined
 *		exchanges that keep the reply stream in step.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/memutils.h"

#include "base/guc.h"
#include "base/secret.h"
#include "base/url.h"
#include "base/wait.h"
#include "pool/internal.h"
#include "pool/pool.h"

/* Socket reads land here before being fed to the reader. */
static char read_buffer[64 * 1024];

void
PoolConnClose(Conn *c)
{
	TransportClose(&c->t);
	if (c->reader)
		RespReaderFree(c->reader);
	c->reader = NULL;
	c->state = CONN_CLOSED;
	c->since = 0;
	c->hs.n = 0;
}

void
PoolConnInit(Conn *c)
{
	TransportInit(&c->t);
	c->reader = NULL;
	c->state = CONN_CLOSED;
	c->generation = 0;
	c->db = 0;
	c->since = 0;
	c->hs.n = 0;
	c->addr[0] = '\0';
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

/* Write a pipeline on a connected entry; it stays BUSY until read. */
bool
PoolConnSend(Conn *e, const StringInfoData *cmds, TimestampTz deadline,
			  RedisError *err)
{
	e->state = CONN_BUSY;
	err->maybe_sent = true;
	return TransportWrite(&e->t, cmds->data, cmds->len, deadline, err);
}

/* Read n replies as they come, by the deadline. */
static bool
read_replies(Conn *e, int n, TimestampTz deadline, MemoryContext cxt,
			 RedisReply **replies, RedisError *err)
{
	bool		wait_first = true;
	int			i;

	for (i = 0; i < n; i++)
	{
		for (;;)
		{
			int			rc;
			ssize_t		got;

			rc = RespReaderGet(e->reader, cxt, bmf_max_value_size,
							   &replies[i], err);
			if (rc < 0)
				return false;
			if (rc > 0)
				break;
			got = TransportRead(&e->t, read_buffer, sizeof(read_buffer),
								wait_first, deadline, err);
			wait_first = false;
			if (got < 0)
				return false;
			if (!RespReaderFeed(e->reader, read_buffer, got, err))
				return false;
		}
	}
	return true;
}

static void handshake_failed(const char *name, bool tls, RedisError *err);
static bool handshake_refused(RedisReply **replies, const Handshake *h,
							  int db, const char *master, const char *name,
							  RedisError *err);

/*
 * The replies of a handshake that travelled with this pipeline: read and
 * checked before the pipeline's own, which are not looked at when they
 * refused us (and were, at worst, reads made as Redis' default user).
 */
static bool
read_handshake(Conn *e, TimestampTz deadline, RedisError *err)
{
	Handshake	h = e->hs;
	RedisReply *replies[4];
	TimestampTz by = Min(deadline, e->hs_deadline);

	Assert(h.n <= lengthof(replies));
	e->hs.n = 0;
	/* the handshake is answered within connect_timeout, as when alone */
	if (!read_replies(e, h.n, by, CurrentMemoryContext, replies, err))
	{
		/* a failure to connect, unless the call's own deadline came first */
		if (err->status == RS_IO || (err->status == RS_TIMEOUT && by == e->hs_deadline))
			handshake_failed(e->hs_name, e->hs_tls, err);
		return false;
	}
	return !handshake_refused(replies, &h, e->hs_db, e->hs_master, e->hs_name, err);
}

/* Read ncmds replies; the entry is READY again when all came. */
bool
PoolConnRecv(Conn *e, int ncmds, TimestampTz deadline, MemoryContext cxt,
			  RedisReply **replies, RedisError *err)
{
	err->maybe_sent = true;
	if (e->hs.n > 0 && !read_handshake(e, deadline, err))
		return false;
	if (!read_replies(e, ncmds, deadline, cxt, replies, err))
		return false;
	e->state = CONN_READY;
	return true;
}

/*
 * One pipelined exchange on a connected entry: write cmds, read ncmds
 * replies.  Leaves the entry BUSY unless it completes.
 */
bool
PoolConnExchange(Conn *e, const StringInfoData *cmds, int ncmds,
		 TimestampTz deadline, MemoryContext cxt, RedisReply **replies,
		 RedisError *err)
{
	return PoolConnSend(e, cmds, deadline, err) &&
		PoolConnRecv(e, ncmds, deadline, cxt, replies, err);
}

/*
 * A name Redis accepts for CLIENT SETNAME (no spaces or odd bytes):
 * bmfredis:<database>:<pid>.  The database name needs the catalogs, so it
 * is looked up once, inside a transaction; a connection first made outside
 * one (after commit) names the database by OID.
 */
static char *pool_dbname = NULL;

void
PoolNoteDatabase(void)
{
	if (pool_dbname == NULL && OidIsValid(MyDatabaseId) && IsTransactionState())
	{
		char	   *n = get_database_name(MyDatabaseId);

		if (n)
			pool_dbname = MemoryContextStrdup(TopMemoryContext, n);
	}
}

const char *
PoolDatabaseName(void)
{
	PoolNoteDatabase();
	return pool_dbname;
}

static void
client_name(char *buf, size_t size)
{
	char		oidbuf[16];
	const char *db;
	char	   *p;
	char	   *dbname;

	PoolNoteDatabase();
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
bool
PoolAppendAuth(StringInfo buf, const char *username, const char *password)
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
bool
PoolConnExchangeOnce(Conn *c, const RedisEndpoint *ep, const StringInfoData *cmds,
			  int ncmds, TimestampTz deadline, RedisReply **replies,
			  RedisError *err)
{
	volatile bool ok = false;

	PG_TRY();
	{
		c->reader = RespReaderCreate();
		ok = TransportConnect(&c->t, ep, deadline, err) &&
			PoolConnExchange(c, cmds, ncmds, deadline, CurrentMemoryContext, replies, err);
	}
	PG_CATCH();
	{
		PoolConnClose(c);
		PG_RE_THROW();
	}
	PG_END_TRY();
	PoolConnClose(c);
	return ok;
}

/* AUTH, SELECT, CLIENT SETNAME and, for Sentinel, ROLE, pipelined. */
static void
handshake_commands(StringInfo hs, const RedisNode *node, const char *password,
				   Handshake *h)
{
	const char *argv[3];
	size_t		lens[3];
	char		name[128];
	char		dbstr[16];

	h->n = 0;
	h->auth_at = h->select_at = h->role_at = -1;
	if (PoolAppendAuth(hs, node->username, password))
		h->auth_at = h->n++;
	if (node->db != 0)
	{
		snprintf(dbstr, sizeof(dbstr), "%d", node->db);
		argv[0] = "SELECT";
		lens[0] = 6;
		argv[1] = dbstr;
		lens[1] = strlen(dbstr);
		RespFormat(hs, 2, argv, lens);
		h->select_at = h->n++;
	}
	client_name(name, sizeof(name));
	argv[0] = "CLIENT";
	lens[0] = 6;
	argv[1] = "SETNAME";
	lens[1] = 7;
	argv[2] = name;
	lens[2] = strlen(name);
	RespFormat(hs, 3, argv, lens);
	h->n++;
	if (node->sentinel_master)
	{
		/* a demoted master must never be written to */
		argv[0] = "ROLE";
		lens[0] = 4;
		RespFormat(hs, 1, argv, lens);
		h->role_at = h->n++;
	}
}

/*
 * The handshake failed before its first reply: that is failing to
 * connect.  The usual causes: TLS on one side only (a TLS server resets a
 * plaintext client), or a server that wants a client certificate (TLS 1.3
 * reports that after the handshake, on the first read).
 */
static void
handshake_failed(const char *name, bool tls, RedisError *err)
{
	char		detail[sizeof(err->detail)];

	if (err->status == RS_IO)
	{
		strlcpy(detail, err->detail, sizeof(detail));
		err->status = RS_CONNECT;
		err->sqlerrcode = ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
		if (tls && strstr(detail, "certificate required"))
			snprintf(err->detail, sizeof(err->detail),
					 "%s requires a client certificate (bmfredis.tls_cert_file and bmfredis.tls_key_file): %s",
					 name, detail);
		else if (!tls)
			snprintf(err->detail, sizeof(err->detail),
					 "%s dropped the connection before answering (if it is a TLS port, set bmfredis.tls = on): %s",
					 name, detail);
		else
			snprintf(err->detail, sizeof(err->detail),
					 "%s dropped the connection before answering: %s",
					 name, detail);
	}
	if (err->status == RS_TIMEOUT)
	{
		err->sqlerrcode = ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION;
		snprintf(err->detail, sizeof(err->detail),
				 "%s accepted the connection but did not answer AUTH, SELECT and CLIENT SETNAME within bmfredis.connect_timeout (%d ms).",
				 name, bmf_connect_timeout);
	}
	if (err->status == RS_TIMEOUT || err->status == RS_CONNECT)
		strlcpy(err->message, "could not connect to Redis", sizeof(err->message));
}

/* Did the handshake's replies refuse us?  (CLIENT SETNAME may be denied
 * by an ACL: the name is a courtesy.) */
static bool
handshake_refused(RedisReply **replies, const Handshake *h, int db,
				  const char *master, const char *name, RedisError *err)
{
	if (h->auth_at >= 0 && replies[h->auth_at]->type == RESP_ERROR)
	{
		RedisErrorSet(err, RS_AUTH, ERRCODE_INVALID_PASSWORD,
					  "Redis refused the credentials of bmfredis",
					  "AUTH at %s: %s", name, replies[h->auth_at]->str);
		return true;
	}
	if (h->select_at >= 0 && replies[h->select_at]->type == RESP_ERROR)
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_INVALID_PARAMETER_VALUE,
					  "could not select the Redis database",
					  "SELECT %d at %s: %s", db, name,
					  replies[h->select_at]->str);
		return true;
	}
	if (h->role_at >= 0)
	{
		RedisReply *r = replies[h->role_at];
		const char *role = (r->type == RESP_ARRAY && r->elements > 0 &&
							r->element[0]->type == RESP_STRING) ? r->element[0]->str : "(no answer)";

		if (strcmp(role, "master") != 0)
		{
			RedisErrorSet(err, RS_UNAVAILABLE, ERRCODE_CONNECTION_FAILURE,
						  "Redis is unavailable",
						  "%s, named master of \"%s\" by Sentinel, says its role is %s (a failover in progress?); the sentinels are asked again after the backoff.",
						  name, master, role);
			return true;
		}
	}
	return false;
}

/*
 * The password to AUTH with: the node's, or the first line of its
 * password file, read now (so a rotated secret is picked up by the next
 * connection, and no setting ever holds it).
 */
static bool
node_password(const RedisNode *node, char *buf, size_t size, RedisError *err)
{
	char		reason[512];

	buf[0] = '\0';
	if (node->password && node->password[0])
	{
		strlcpy(buf, node->password, size);
		return true;
	}
	if (node->password_file == NULL || node->password_file[0] == '\0')
		return true;
	if (BmfReadSecretFile(node->password_file, buf, size, reason, sizeof(reason)))
		return true;
	RedisErrorSet(err, RS_CONNECT, ERRCODE_CONFIG_FILE_ERROR,
				  "could not read bmfredis.password_file", "%s", reason);
	return false;
}

bool
PoolConnConnect(Conn *e, const RedisNode *node, bool share_flight,
				RedisError *err)
{
	TimestampTz deadline = BmfDeadline(bmf_connect_timeout);
	RedisEndpoint ep = node->ep;
	char		host[256];
	StringInfoData hs;
	Handshake	h;
	RedisReply *replies[4];
	bool		ok;
	char		password[1024];

	PoolConnClose(e);
	e->addr[0] = '\0';
	if (node->sentinel_master)
	{
		int			port;

		if (!PoolSentinelResolve(node, deadline, host, sizeof(host), &port, err))
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

	if (!node_password(node, password, sizeof(password), err))
		return false;
	initStringInfo(&hs);
	handshake_commands(&hs, node, password, &h);
	if (share_flight)
	{
		/* written now, read with the next pipeline's replies */
		e->state = CONN_BUSY;
		ok = TransportWrite(&e->t, hs.data, hs.len, deadline, err);
	}
	else
		ok = PoolConnExchange(e, &hs, h.n, deadline, CurrentMemoryContext, replies, err);
	explicit_bzero(hs.data, hs.len);
	explicit_bzero(password, sizeof(password));
	pfree(hs.data);
	if (!ok)
	{
		handshake_failed(ep.name, ep.tls.enabled, err);
		return false;
	}
	if (share_flight)
	{
		/* SELECT and ROLE are checked before the pipeline's replies too */
		e->hs = h;
		e->hs_deadline = deadline;
		e->hs_tls = ep.tls.enabled;
		e->hs_db = node->db;
		strlcpy(e->hs_name, ep.name, sizeof(e->hs_name));
		strlcpy(e->hs_master, node->sentinel_master ? node->sentinel_master : "",
				sizeof(e->hs_master));
		e->state = CONN_READY;
	}
	else if (handshake_refused(replies, &h, node->db, node->sentinel_master, ep.name, err))
		return false;

	e->generation = bmfredis_config_generation;
	e->db = node->db;
	e->since = GetCurrentTimestamp();
	return true;
}

/* Is a pooled, idle connection still alive?  Closes it when not. */
bool
PoolConnAlive(Conn *e)
{
	StringInfoData cmd;
	const char *argv[1] = {"PING"};
	size_t		lens[1] = {4};
	RedisReply *reply;
	RedisError	err;
	bool		ok;

	initStringInfo(&cmd);
	RespFormat(&cmd, 1, argv, lens);
	ok = PoolConnExchange(e, &cmd, 1, BmfDeadline(bmf_command_timeout),
				  CurrentMemoryContext, &reply, &err);
	pfree(cmd.data);
	if (!ok || reply->type == RESP_ERROR)
	{
		PoolConnClose(e);
		return false;
	}
	return true;
}

/*
 * One reply, whenever it comes (a subscription's next message): 1 with
 * *msg set; 0 when none came by the deadline; -1 on a failure.  A
 * deadline of 0 does not wait at all: only what has already arrived.
 */
int
PoolConnReadOne(Conn *c, TimestampTz deadline, MemoryContext cxt,
				RedisReply **msg, RedisError *err)
{
	bool		wait_first = true;

	for (;;)
	{
		int			rc;
		ssize_t		n;

		rc = RespReaderGet(c->reader, cxt, bmf_max_value_size, msg, err);
		if (rc < 0)
			return -1;
		if (rc > 0)
			return 1;
		if (deadline == 0)
		{
			n = TransportTryRead(&c->t, read_buffer, sizeof(read_buffer), err);
			if (n == 0)
				return 0;
		}
		else
		{
			n = TransportRead(&c->t, read_buffer, sizeof(read_buffer),
							  wait_first, deadline, err);
			wait_first = false;
			if (n < 0 && err->status == RS_TIMEOUT)
				return 0;
		}
		if (n < 0 || !RespReaderFeed(c->reader, read_buffer, n, err))
			return -1;
	}
}

