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
#include "utils/backend_status.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timeout.h"

#include "base/compat.h"
#include "base/guc.h"
#include "base/stats.h"
#include "base/url.h"
#include "base/wait.h"
#include "pool/internal.h"
#include "pool/pool.h"

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
	uint64		connects;		/* successful connects, ever */
} PoolEntry;

static HTAB *pool = NULL;
static bool exit_hook_registered = false;

static PoolEntry *pool_find(const char *name);
static void after_idle_close(void);

/*
 * Client-side caching (the near-cache): per node, one connection
 * subscribed to __redis__:invalidate, to which Redis redirects the
 * invalidations of the keys the node's pooled connection reads after a
 * CLIENT CACHING yes (CLIENT TRACKING on REDIRECT <id> OPTIN; RESP2, which
 * Debian's hiredis reads; only what the near-cache keeps is tracked, so
 * Redis' tracking table holds no key of the other reads).  One node
 * outside cluster mode, each master read from in it.  epoch names a
 * tracking session, unique across the nodes: a new one whenever what
 * Redis tracks for us may have been lost (either connection made again or
 * broken).
 */
#define POOL_TRACKING_MAX 16

typedef struct PoolTracking
{
	Conn		c;
	char		name[POOL_NAME_LEN];	/* the node whose entry is tracked */
	int64		client_id;		/* of c, the redirect target */
	uint64		main_connects;	/* the entry's connects when tracking began */
	uint64		epoch;			/* 0 while off */
	bool		on;
	bool		inited;			/* c initialized (a zeroed Conn holds fd 0) */
	bool		pending;		/* the last look saw invalidations waiting */
	TransportPair *watch;		/* the entry's connection and c, watched together */
	PoolEntry  *entry;			/* the tracked entry (pool entries stay put) */
	int64		messages;
	/*
	 * Syncs (PoolTrackingSync): a PING on c is answered after everything
	 * Redis wrote to c before it processed the PING, invalidations
	 * included.  ping_sent: when the PING in flight was written (0: none);
	 * synced: when the last answered one was.  Monotonic microseconds.
	 */
	int64		ping_sent;
	int64		synced;
	/*
	 * Redis refused CLIENT TRACKING (a hosted Redis may): not asked again
	 * while the entry's connection and the configuration stay the same,
	 * so that every near-cache read is not a connection and a refusal.
	 */
	bool		refused;
	uint64		refused_connects;
	uint64		refused_generation;
	TimestampTz refused_at;
	char		refused_detail[128];	/* logged once while it is the same */
	/* use, for closing it when idle: reads counted, and when last seen */
	uint64		uses;
	uint64		uses_seen;
	TimestampTz used_at;
} PoolTracking;

/* a node that refused tracking is asked again after this long (ms) */
#define TRACKING_REFUSED_RETRY_MS	60000

static PoolTracking trackings[POOL_TRACKING_MAX];
static int	ntrackings = 0;
static uint64 last_epoch = 0;

static void
tracking_stop(PoolTracking *t)
{
	if (!t->inited)
		return;
	TransportPairFree(t->watch);
	t->watch = NULL;
	PoolConnClose(&t->c);
	t->on = false;
	t->epoch = 0;
	t->ping_sent = 0;
	t->synced = 0;
}

/* The node's tracking, or a free one for it when make (NULL: none free). */
static PoolTracking *
tracking_find(const char *name, bool make)
{
	PoolTracking *free_one = NULL;
	int			i;

	after_idle_close();
	for (i = 0; i < ntrackings; i++)
	{
		if (strcmp(trackings[i].name, name) == 0)
			return &trackings[i];
		if (!trackings[i].on && free_one == NULL)
			free_one = &trackings[i];
	}
	if (!make)
		return NULL;
	if (free_one == NULL && ntrackings < POOL_TRACKING_MAX)
		free_one = &trackings[ntrackings++];
	if (free_one)
	{
		tracking_stop(free_one);
		strlcpy(free_one->name, name, sizeof(free_one->name));
		free_one->refused = false;	/* another node's refusal is not this one's */
	}
	return free_one;
}

void
PoolInit(void)
{
	/* nothing is made until first use: the postmaster never connects */
}

static void
pool_exit(int code, Datum arg)
{
	(void) code;
	(void) arg;
	PoolDisconnectAll();
}

/* ---- closing what is idle (bmfredis.idle_close) ---- */

/*
 * Set by the idle timeout's handler when it shut this backend's sockets
 * down; the next use of the pool closes them the ordinary way (freeing
 * TLS state, ending the near-cache's tracking) before anything else.
 */
static volatile sig_atomic_t idle_closed = false;
static volatile TimestampTz last_xact_end = 0;
static TimestampTz last_reap = 0;
static TimeoutId idle_timeout;
static bool idle_timeout_registered = false;
static int	idle_period = 0;	/* the timeout's period now (ms; 0: off) */

static void
after_idle_close(void)
{
	if (likely(!idle_closed))
		return;
	idle_closed = false;
	(void) PoolDisconnectAll();
}

/*
 * The idle timeout, every quarter of bmfredis.idle_close while this
 * backend holds connections.  It runs in a signal handler, so it only
 * looks: a session idle (waiting for its client, outside a transaction:
 * none of bmfredis' code can be running) since its last transaction ended
 * that long ago has its sockets shut down, so that Redis stops counting
 * them at once and not when the session next speaks.
 */
static void
idle_timeout_handler(void)
{
	int			save_errno = errno;
	volatile PgBackendStatus *be = MyBEEntry;

	if (!idle_closed && be != NULL && be->st_state == STATE_IDLE &&
		bmf_idle_close > 0 &&
		GetCurrentTimestamp() - last_xact_end >= (int64) bmf_idle_close * 1000 &&
		TransportShutdownAll() > 0)
		idle_closed = true;
	errno = save_errno;
}

/*
 * Close what this busy backend has not used for bmfredis.idle_close: the
 * near-cache's tracking of a node no longer read through it (its copies
 * go with it), then connections idle that long (the stream and events
 * connections of a large transaction, a node no longer called), but not
 * one whose tracking is still in use.
 */
static void
reap_unused(TimestampTz now)
{
	int64		limit = (int64) bmf_idle_close * 1000;
	HASH_SEQ_STATUS seq;
	PoolEntry  *e;
	int			i;

	for (i = 0; i < ntrackings; i++)
	{
		PoolTracking *t = &trackings[i];

		if (!t->on)
			continue;
		if (t->uses != t->uses_seen || t->used_at == 0)
		{
			t->uses_seen = t->uses;
			t->used_at = now;
		}
		else if (now - t->used_at >= limit)
			tracking_stop(t);
	}
	if (pool == NULL)
		return;
	hash_seq_init(&seq, pool);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		bool		tracked = false;

		if (e->c.state != CONN_READY || e->unread > 0 || now - e->last_used < limit)
			continue;
		for (i = 0; i < ntrackings; i++)
			tracked |= (trackings[i].on && trackings[i].entry == e);
		if (!tracked)
			PoolConnClose(&e->c);
	}
}

void
PoolTransactionEnd(void)
{
	TimestampTz now;
	int			period;

	if (bmf_idle_close <= 0 || !IsUnderPostmaster || BmfIsBackgroundWorker())
	{
		if (idle_period > 0)
			disable_timeout(idle_timeout, false);
		idle_period = 0;
		return;
	}
	if (TransportOpenCount() == 0)
		return;
	now = GetCurrentTimestamp();
	last_xact_end = now;
	period = Max(bmf_idle_close / 4, 10);
	if (now - last_reap >= (int64) period * 1000)
	{
		last_reap = now;
		reap_unused(now);
	}
	if (!idle_timeout_registered)
	{
		idle_timeout = RegisterTimeout(USER_TIMEOUT, idle_timeout_handler);
		idle_timeout_registered = true;
	}
	/* an ERROR's recovery disables every timeout: armed again here */
	if (idle_period != period || !get_timeout_active(idle_timeout))
	{
		enable_timeout_every(idle_timeout, TimestampTzPlusMilliseconds(now, period), period);
		idle_period = period;
	}
}

static PoolEntry *
pool_entry(const char *name)
{
	static PoolEntry *last = NULL;	/* entries are never removed or moved */
	PoolEntry  *e;
	bool		found;
	char		key[POOL_NAME_LEN];

	after_idle_close();
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
		PoolConnInit(&e->c);
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

	/*
	 * A command that timed out while its bytes were still moving (a value
	 * of hundreds of MB), or a reply the reader refused by bmfredis' own
	 * bounds (too large, nested too deep, a RESP3 type), says nothing
	 * against the node: its connection is closed (the exchange is cut),
	 * but the next call is not refused.
	 */
	if (err->node_alive)
	{
		e->errors++;
		snprintf(e->last_error, sizeof(e->last_error), "%s: %s",
				 err->message, err->detail);
		return;
	}

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
 * A command's timeout: the node and the time, and the setting when it is
 * one.  And whether bytes were still moving when it came: a last transfer
 * within the last quarter of the call's time (at most 250 ms before the
 * deadline) cut a transfer still under way (a value of hundreds of MB),
 * while a frozen or unreachable server stalls the socket right after the
 * request went out (or after the socket buffers filled).
 */
#define ALIVE_WINDOW_MS 250

static void
command_timeout_detail(RedisError *err, const RedisTransport *t, const char *name,
					   bool deadline_given, TimestampTz started, TimestampTz deadline)
{
	char		head[128];
	char		within[96];

	if (err->status != RS_TIMEOUT)
		return;
	if (t->last_moved >= started &&
		deadline - t->last_moved <= Min(ALIVE_WINDOW_MS * INT64CONST(1000), (deadline - started) / 4))
		err->node_alive = true;
	if (strstr(err->detail, "Sending") != NULL)
		snprintf(head, sizeof(head), "Sending to %s did not finish", name);
	else if (strstr(err->detail, "No reply") != NULL)
		snprintf(head, sizeof(head), "No reply from %s", name);
	else
		return;
	if (deadline_given)
		snprintf(within, sizeof(within), "within the %ld ms this call allowed",
				 (long) ((deadline - started) / 1000));
	else
		snprintf(within, sizeof(within), "within bmfredis.command_timeout (%d ms)",
				 bmf_command_timeout);
	snprintf(err->detail, sizeof(err->detail), "%s %s%s.", head, within,
			 err->node_alive ? "; bytes were still moving, so the node is not marked down" : "");
}

/*
 * May a new connection's handshake travel with the pipeline that needs it
 * (one round trip, not two)?  Only a read's.  A pipeline sent before its
 * handshake is answered may run even when the connect then fails (a Redis
 * that stops answering in between runs it when it wakes), and had AUTH
 * been refused it would run as Redis' default user: harmless for a read,
 * not for a write the caller would then queue and send again.
 */
static bool
share_flight(int flags)
{
	return (flags & POOL_READ_ONLY) != 0;
}

static bool
pool_connect(PoolEntry *e, const RedisNode *node, int flags, RedisError *err)
{
	if (e->c.since != 0 || e->commands > 0)
	{
		e->reconnects++;
		BmfStatsCount(STAT_RECONNECTS, 1);
	}
	if (!PoolConnConnect(&e->c, node, share_flight(flags), err))
		return false;
	e->connects++;
	e->last_used = e->c.since;
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
PoolDownError(const char *name, RedisError *err)
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
		 !PoolConnAlive(&e->c)) ||
		(!(flags & POOL_IDEMPOTENT) && TransportPeerClosed(&e->c.t)))
	{
		if (!pool_connect(e, node, flags, err))
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
	PoolConnClose(&e->c);
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
	bool		ok = PoolConnRecv(&e->c, ncmds, deadline, cxt, replies, err);

	if (!ok && err->status == RS_IO && !fresh && (flags & POOL_IDEMPOTENT))
	{
		/* the pooled connection was dead: one more try on a new one */
		if (!pool_connect(e, node, flags, err))
			return pool_fail(e, err);
		ok = PoolConnExchange(&e->c, cmds, ncmds, deadline, cxt, replies, err);
	}
	if (!ok)
	{
		command_timeout_detail(err, &e->c.t, node->ep.name, deadline_given, started, deadline);
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
PoolExec(const RedisNode *node, const StringInfoData *cmds, int ncmds,
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
	if (!PoolConnSend(&e->c, cmds, deadline, err))
	{
		/*
		 * The pooled connection died while idle (a reset the peer check
		 * cannot see before writing): one more try on a new one, as when
		 * its reply does not come.
		 */
		if (err->status == RS_IO && !fresh && (flags & POOL_IDEMPOTENT))
		{
			if (!pool_connect(e, node, flags, err))
				return pool_fail(e, err);
			fresh = true;
			if (PoolConnSend(&e->c, cmds, deadline, err))
				return pool_receive(e, node, cmds, ncmds, flags, fresh, given, now,
									deadline, cxt, replies, err);
		}
		command_timeout_detail(err, &e->c.t, node->ep.name, given, now, deadline);
		return pool_fail(e, err);
	}
	return pool_receive(e, node, cmds, ncmds, flags, fresh, given, now, deadline,
						cxt, replies, err);
}

bool
PoolExecMany(int n, const RedisNode *const *nodes,
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
			if (PoolConnSend(&es[i]->c, cmds[i], deadlines[i], &local))
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
PoolNodeAddress(const char *name)
{
	PoolEntry  *e = pool_find(name);

	return (e && e->c.state != CONN_CLOSED && e->c.addr[0]) ? e->c.addr : NULL;
}

bool
PoolNodeIsDown(const char *name, long *ms_left)
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
PoolDisconnectAll(void)
{
	HASH_SEQ_STATUS seq;
	PoolEntry  *e;
	int			n = 0;
	int			i;

	if (pool == NULL)
		return 0;
	hash_seq_init(&seq, pool);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (TransportIsOpen(&e->c.t))
			n++;
		PoolConnClose(&e->c);
		e->unread = 0;
	}
	for (i = 0; i < ntrackings; i++)
	{
		if (trackings[i].inited && TransportIsOpen(&trackings[i].c.t))
			n++;
		tracking_stop(&trackings[i]);
	}
	return n;
}

int
PoolList(PoolInfo **infos)
{
	HASH_SEQ_STATUS seq;
	PoolEntry  *e;
	int			n = 0;
	int			cap;
	int			i;

	*infos = NULL;
	after_idle_close();
	if (pool == NULL)
		return 0;
	cap = Max(hash_get_num_entries(pool), 1);
	*infos = palloc0(sizeof(PoolInfo) * cap);
	hash_seq_init(&seq, pool);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		PoolInfo *info = &(*infos)[n++];

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
	for (i = 0; i < ntrackings; i++)
	{
		PoolTracking *t = &trackings[i];
		PoolInfo   *info;

		if (!t->on)
			continue;
		*infos = repalloc(*infos, sizeof(PoolInfo) * (n + 1));
		info = &(*infos)[n++];
		memset(info, 0, sizeof(PoolInfo));
		snprintf(info->node, sizeof(info->node), "%s (tracking)", t->name);
		info->state = t->c.state == CONN_READY ? "tracking" : "closed";
		info->db = t->c.db;
		info->since = t->c.since;
		info->last_used = t->c.since;
		info->commands = t->messages;
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
PoolStreamSend(const RedisNode *node, const char *tag, bool opening,
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
	if (!PoolConnSend(&e->c, cmds, deadline, err))
	{
		e->unread = 0;
		return pool_fail(e, err);
	}
	e->unread += ncmds;
	e->last_used = now;
	return true;
}

int
PoolStreamUnread(const RedisNode *node, const char *tag)
{
	return stream_entry(node->ep.name, tag)->unread;
}

bool
PoolStreamFinish(const RedisNode *node, const char *tag,
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
	if (!PoolConnSend(&e->c, cmds, deadline, err))
		return pool_fail(e, err);
	/* every reply of the stream, checked and counted as any pipeline's */
	return pool_receive(e, node, cmds, total, 0, true, true, GetCurrentTimestamp(),
						deadline, cxt, replies, err);
}

void
PoolStreamAbandon(const char *node_name, const char *tag)
{
	char		name[POOL_NAME_LEN];
	PoolEntry  *e;

	snprintf(name, sizeof(name), "%s (%s)", node_name, tag);
	e = pool_find(name);
	if (e == NULL)
		return;
	/* closed mid-command too: Redis drops a MULTI when its client leaves */
	if (e->unread > 0 || e->c.state == CONN_BUSY)
		PoolConnClose(&e->c);
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
PoolSubscribe(const RedisNode *node, int n, const char *const *names,
				   const bool *patterns, RedisError *err)
{
	RedisSubscription *sub;
	StringInfoData cmds;
	RedisReply **replies;
	int			nreplies = 0;
	int			i;

	sub = MemoryContextAllocZero(TopMemoryContext, sizeof(RedisSubscription));
	PoolConnInit(&sub->c);
	strlcpy(sub->name, node->ep.name, sizeof(sub->name));
	if (!PoolConnConnect(&sub->c, node, false, err))
	{
		PoolConnClose(&sub->c);
		pfree(sub);
		return NULL;
	}
	initStringInfo(&cmds);
	sub_command(&cmds, "SUBSCRIBE", n, names, patterns, false, &nreplies);
	sub_command(&cmds, "PSUBSCRIBE", n, names, patterns, true, &nreplies);
	replies = palloc(sizeof(RedisReply *) * Max(nreplies, 1));
	if (nreplies > 0 &&
		!PoolConnExchange(&sub->c, &cmds, nreplies, BmfDeadline(bmf_command_timeout),
				  CurrentMemoryContext, replies, err))
	{
		PoolConnClose(&sub->c);
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
			PoolConnClose(&sub->c);
			pfree(sub);
			return NULL;
		}
	}
	return sub;
}

int
PoolSubscriptionNext(RedisSubscription *sub, TimestampTz deadline,
					  MemoryContext cxt, RedisReply **msg, RedisError *err)
{
	return PoolConnReadOne(&sub->c, deadline, cxt, msg, err);
}

void
PoolSubscriptionClose(RedisSubscription *sub)
{
	if (sub == NULL)
		return;
	PoolConnClose(&sub->c);
	pfree(sub);
}

void
PoolSubscriptionWakeOnLatch(RedisSubscription *sub)
{
	sub->c.t.wake_on_latch = true;
}

/* ---- client-side caching ---- */

/* CLIENT ID and SUBSCRIBE __redis__:invalidate on a new tracking connection */
static bool
tracking_connect(PoolTracking *t, const RedisNode *node, RedisError *err)
{
	StringInfoData cmds;
	RedisReply *replies[2];
	const char *argv[2];
	size_t		lens[2];

	tracking_stop(t);
	PoolConnInit(&t->c);
	t->inited = true;
	/* CLIENT ID and SUBSCRIBE change no data: the handshake goes with them */
	if (!PoolConnConnect(&t->c, node, true, err))
		return false;
	initStringInfo(&cmds);
	argv[0] = "CLIENT";
	lens[0] = 6;
	argv[1] = "ID";
	lens[1] = 2;
	RespFormat(&cmds, 2, argv, lens);
	argv[0] = "SUBSCRIBE";
	lens[0] = 9;
	argv[1] = "__redis__:invalidate";
	lens[1] = strlen(argv[1]);
	RespFormat(&cmds, 2, argv, lens);
	if (!PoolConnExchange(&t->c, &cmds, 2, BmfDeadline(bmf_command_timeout),
						  CurrentMemoryContext, replies, err))
	{
		tracking_stop(t);
		return false;
	}
	if (replies[0]->type != RESP_INTEGER || replies[1]->type != RESP_ARRAY)
	{
		RedisErrorSet(err, RS_REPLY, ERRCODE_FEATURE_NOT_SUPPORTED,
					  "Redis refused client-side caching",
					  "%s: CLIENT ID and SUBSCRIBE __redis__:invalidate answered %s",
					  node->ep.name,
					  replies[0]->type == RESP_ERROR ? replies[0]->str :
					  replies[1]->type == RESP_ERROR ? replies[1]->str : "unexpectedly");
		tracking_stop(t);
		return false;
	}
	t->client_id = replies[0]->integer;
	return true;
}

/* The pooled connection redirects to t what it is asked to track */
static bool
tracking_redirect(PoolTracking *t, const RedisNode *node, RedisError *err)
{
	StringInfoData cmd;
	RedisReply *reply;
	char		id[24];
	const char *argv[6];
	size_t		lens[6];
	int			i;

	snprintf(id, sizeof(id), INT64_FORMAT, t->client_id);
	argv[0] = "CLIENT";
	argv[1] = "TRACKING";
	argv[2] = "on";
	argv[3] = "REDIRECT";
	argv[4] = id;
	argv[5] = "OPTIN";
	for (i = 0; i < 6; i++)
		lens[i] = strlen(argv[i]);
	initStringInfo(&cmd);
	RespFormat(&cmd, 6, argv, lens);
	if (!PoolExec(node, &cmd, 1, POOL_IDEMPOTENT | POOL_READ_ONLY, 0,
				  CurrentMemoryContext, &reply, err))
		return false;
	if (reply->type == RESP_ERROR)
	{
		/*
		 * A redirect target that no longer exists (its connection was
		 * killed meanwhile) is not a refusal: the next read tries anew.
		 * Told by the tracking connection itself, not by the error's
		 * wording (which servers change).
		 */
		RedisErrorSet(err, TransportPeerClosed(&t->c.t) ? RS_PROTOCOL : RS_REPLY,
					  ERRCODE_FEATURE_NOT_SUPPORTED,
					  "Redis refused client-side caching",
					  "%s: CLIENT TRACKING answered %s", node->ep.name, reply->str);
		return false;
	}
	return true;
}

/*
 * Remember that the node refused tracking, and say so in the server log
 * once a backend and node: the near-cache reads that node's keys from
 * Redis until the connection or the configuration changes.
 */
static void
tracking_refused(PoolTracking *t, const PoolEntry *e, const RedisError *err)
{
	if (!t->refused || t->refused_generation != bmfredis_config_generation ||
		strcmp(t->refused_detail, err->detail) != 0)
		ereport(LOG,
				(errmsg("bmfredis: the near-cache is off for Redis node %s: it refused client-side caching", t->name),
				 errdetail_internal("%s", err->detail),
				 errhint("Reads of its keys go to Redis each time; the Redis user needs CLIENT TRACKING (hosted Redis may not offer it).")));
	t->refused = true;
	t->refused_connects = e->connects;
	t->refused_generation = bmfredis_config_generation;
	t->refused_at = GetCurrentTimestamp();
	strlcpy(t->refused_detail, err->detail, sizeof(t->refused_detail));
}

bool
PoolTrackingEnsure(const RedisNode *node, uint64 *epoch, RedisError *err)
{
	PoolTracking *t = tracking_find(node->ep.name, false);
	PoolEntry  *e;

	if (t)
		t->uses++;

	/*
	 * Still the same session?  The pooled connection is looked at too, in
	 * the same epoll_wait as the invalidations: killed, it takes what
	 * Redis tracked for it along, and a hit would not otherwise touch it.
	 */
	if (t && t->on && t->c.state == CONN_READY &&
		(e = t->entry)->c.state == CONN_READY &&
		e->connects == t->main_connects &&
		e->c.generation == bmfredis_config_generation)
	{
		bool		main_pending;
		bool		messages;

		TransportPairPending(t->watch, &main_pending, &messages);
		t->pending = messages;
		if (!main_pending || !TransportPeerClosed(&e->c.t))
		{
			*epoch = t->epoch;
			return true;
		}
	}
	e = pool_entry(node->ep.name);
	if ((t = tracking_find(node->ep.name, true)) == NULL)
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_CONFIGURATION_LIMIT_EXCEEDED,
					  "too many Redis nodes tracked",
					  "The near-cache tracks at most %d nodes a backend.",
					  POOL_TRACKING_MAX);
		return false;
	}
	if (e->c.state == CONN_READY && TransportPeerClosed(&e->c.t))
		PoolConnClose(&e->c);	/* a new connection, tracked anew */
	if (t->refused && e->c.state == CONN_READY &&
		t->refused_connects == e->connects &&
		t->refused_generation == bmfredis_config_generation &&
		!TimestampDifferenceExceeds(t->refused_at, GetCurrentTimestamp(),
									TRACKING_REFUSED_RETRY_MS))
	{
		RedisErrorSet(err, RS_REPLY, ERRCODE_FEATURE_NOT_SUPPORTED,
					  "Redis refused client-side caching",
					  "%s refused CLIENT TRACKING on this connection before.", node->ep.name);
		return false;
	}

	/* a node backing off is not tried here either: fail fast */
	if (e->down_until > GetCurrentTimestamp())
	{
		down_error(e, node->ep.name, GetCurrentTimestamp(), err);
		return false;
	}
	if (!tracking_connect(t, node, err))
	{
		/*
		 * Refused (an ACL without the invalidation channel or CLIENT ID):
		 * the node serves reads all the same.  Unreachable: so is it for
		 * them.
		 */
		if (err->status == RS_REPLY)
			tracking_refused(t, e, err);
		else
		{
			e->last_used = GetCurrentTimestamp();
			mark_failure(e, err);
		}
		return false;
	}
	if (!tracking_redirect(t, node, err))
	{
		tracking_stop(t);
		if (err->status == RS_REPLY)
			tracking_refused(t, e, err);
		return false;
	}
	t->refused = false;
	t->main_connects = e->connects;
	t->entry = e;
	t->watch = TransportPairCreate(&e->c.t, &t->c.t);
	t->pending = true;			/* look at least once */
	t->on = true;
	t->epoch = ++last_epoch;
	*epoch = t->epoch;
	return true;
}

void
PoolTrackingLook(const RedisNode *node)
{
	PoolTracking *t = tracking_find(node->ep.name, false);
	bool		main_pending;

	if (t && t->on && t->watch)
		TransportPairPending(t->watch, &main_pending, &t->pending);
	else if (t)
		t->pending = true;
}

uint64
PoolTrackingEpoch(const RedisNode *node)
{
	PoolEntry  *e = pool_find(node->ep.name);
	PoolTracking *t = tracking_find(node->ep.name, false);

	if (t == NULL || !t->on || e == NULL ||
		t->c.state != CONN_READY || e->c.state != CONN_READY ||
		e->connects != t->main_connects)
		return 0;
	return t->epoch;
}

/* RESP2's answer to a PING on a subscribed connection: ["pong", ""] */
static bool
is_pong(const RedisReply *r)
{
	return r->type == RESP_ARRAY && r->elements == 2 &&
		r->element[0]->type == RESP_STRING && r->element[0]->len == 4 &&
		pg_strncasecmp(r->element[0]->str, "pong", 4) == 0;
}

int
PoolTrackingPoll(const RedisNode *node, MemoryContext cxt, RedisReply **msg,
				 bool look, TimestampTz deadline)
{
	PoolTracking *t = tracking_find(node->ep.name, false);
	RedisError	err;
	int			rc;

	if (t == NULL || !t->on || t->c.state != CONN_READY)
		return -1;
	/* nothing seen by PoolTrackingEnsure's poll, nothing parsed and waiting */
	if (!look && deadline == 0 && !t->pending && !RespReaderBuffered(t->c.reader))
		return 0;
	rc = PoolConnReadOne(&t->c, deadline, cxt, msg, &err);
	if (rc == 0 && deadline != 0)
	{
		/* a sync Redis did not answer: as a command that timed out */
		RedisErrorSet(&err, RS_TIMEOUT, ERRCODE_CONNECTION_FAILURE,
					  "Redis command timed out",
					  "%s did not answer the near-cache's PING within bmfredis.command_timeout.",
					  node->ep.name);
		if (t->entry)
			mark_failure(t->entry, &err);
		rc = -1;
	}
	if (rc == 0)
		t->pending = false;
	if (rc < 0)
	{
		tracking_stop(t);
		return -1;
	}
	if (rc > 0 && is_pong(*msg))
	{
		/* what was written before the PING has been read: synced */
		if (t->ping_sent == 0)
		{
			tracking_stop(t);	/* an answer nobody asked for: out of step */
			return -1;
		}
		t->synced = t->ping_sent;
		t->ping_sent = 0;
		return 2;
	}
	if (rc > 0)
		t->messages++;
	return rc;
}

/*
 * A PING on the tracking connection, not waited for: its answer (read by
 * PoolTrackingPoll) says that everything Redis wrote there before it has
 * been read.  One at a time; false when it could not be written (the
 * connection is then closed, and the tracking session over).
 */
bool
PoolTrackingPing(const RedisNode *node)
{
	PoolTracking *t = tracking_find(node->ep.name, false);
	static const char ping[] = "*1\r\n$4\r\nPING\r\n";
	RedisError	err;
	int64		now = BmfMonotonicUs();

	if (t == NULL || !t->on || t->c.state != CONN_READY)
		return false;
	if (t->ping_sent != 0)
		return true;			/* one is on its way */
	if (!TransportWrite(&t->c.t, ping, sizeof(ping) - 1,
						BmfDeadline(bmf_command_timeout), &err))
	{
		tracking_stop(t);
		return false;
	}
	t->ping_sent = now;
	return true;
}

void
PoolTrackingSyncState(const RedisNode *node, int64 *synced, int64 *ping_sent)
{
	PoolTracking *t = tracking_find(node->ep.name, false);

	*synced = (t && t->on) ? t->synced : 0;
	*ping_sent = (t && t->on) ? t->ping_sent : 0;
}

void
PoolTrackingStop(void)
{
	int			i;

	for (i = 0; i < ntrackings; i++)
		tracking_stop(&trackings[i]);
}
