/*-------------------------------------------------------------------------
 *
 * subscriber.c
 *		The relay of Redis pub/sub messages into PostgreSQL NOTIFYs, run by
 *		each database's bmfredis worker, so any PostgreSQL client can LISTEN.
 *
 * It subscribes to the channels and patterns in bmfredis.subscribe (as the
 * database sees it: ALTER DATABASE ... SET gives each database its own
 * list) and sends each message it receives as NOTIFY in that database:
 *	- the NOTIFY channel is the Redis channel's name; a name longer than 63
 *	  bytes (PostgreSQL's limit) is cut to 54 bytes plus "#" and 8 hex
 *	  digits of its hash;
 *	- the payload is the message; one NOTIFY cannot carry more than 7,999
 *	  bytes, nor a NUL byte, nor bytes that are not valid text, so such a
 *	  message is stored in bmfredis.notify_payloads (kept for
 *	  bmfredis.payload_retention) and the payload says where:
 *	  {"bmfredis_payload": <id>, "bytes": <n>}.
 * Messages that arrive together are sent in one transaction.  After a
 * connection error it subscribes again, with backoff; when the list
 * changes (SIGHUP) it subscribes to the new one, and so it does when
 * Redis' endpoint or user changed (a reload, ALTER SERVER).  Every wait is
 * interruptible and returns when the worker's latch is set, so the worker
 * does its other work in time.  Messages published while it is not
 * subscribed (between a Redis restart and the resubscription) are not
 * seen: Redis pub/sub keeps nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "commands/extension.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "base/compat.h"
#include "base/guc.h"
#include "base/stats.h"
#include "client/client.h"
#include "pool/pool.h"
#include "worker/subscriber.h"
#include "xact/event.h"


#define NOTIFY_MAX_PAYLOAD	7999
#define RELAY_BATCH			256

struct Relay
{
	RedisSubscription *sub;		/* NULL when not subscribed */
	char	   *subscribed;		/* the list it is (or tried to be) subscribed to */
	char	   *identity;		/* "node|user" it subscribed as */
	int			channels;
	int			failures;		/* consecutive failures to subscribe */
	int			attempts;
	TimestampTz next_try;		/* no attempt before this */
	TimestampTz last_cleanup;
	MemoryContext cxt;			/* messages of one batch */
};

/* Split bmfredis.subscribe into names; *patterns[i] when it has globs. */
static int
parse_list(const char *list, char ***names, bool **patterns)
{
	char	   *copy = pstrdup(list);
	char	   *tok;
	char	   *save = NULL;
	int			n = 0;
	int			cap = 8;

	*names = palloc(sizeof(char *) * cap);
	*patterns = palloc(sizeof(bool) * cap);
	for (tok = strtok_r(copy, ", \t\n", &save); tok; tok = strtok_r(NULL, ", \t\n", &save))
	{
		StringInfoData ch;

		if (n == cap)
		{
			cap *= 2;
			*names = repalloc(*names, sizeof(char *) * cap);
			*patterns = repalloc(*patterns, sizeof(bool) * cap);
		}
		initStringInfo(&ch);
		EventChannel(&ch, tok, strlen(tok));
		(*names)[n] = ch.data;
		(*patterns)[n] = strpbrk(tok, "*?[") != NULL;
		n++;
	}
	return n;
}

/* The NOTIFY channel of a Redis channel: at most NAMEDATALEN - 1 bytes. */
static void
notify_channel(const char *channel, size_t len, char *out)
{
	if (len < NAMEDATALEN)
	{
		memcpy(out, channel, len);
		out[len] = '\0';
		return;
	}
	len = pg_mbcliplen(channel, len, NAMEDATALEN - 10);
	memcpy(out, channel, len);
	snprintf(out + len, NAMEDATALEN - len, "#%08x",
			 hash_bytes((const unsigned char *) channel, strlen(channel)));
}

/* Store a message NOTIFY cannot carry; returns the payload referring to it. */
static char *
store_payload(const char *channel, const char *message, size_t len)
{
	Oid			argtypes[2] = {TEXTOID, BYTEAOID};
	Datum		values[2];
	bytea	   *b;
	int			rc;
	bool		isnull;
	int64		id;

	if (!OidIsValid(get_extension_oid("bmfredis", true)))
		return NULL;
	b = palloc(VARHDRSZ + len);
	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), message, len);
	values[0] = CStringGetTextDatum(channel);
	values[1] = PointerGetDatum(b);
	SPI_connect();
	rc = SPI_execute_with_args("INSERT INTO bmfredis.notify_payloads (channel, message) "
							   "VALUES ($1, $2) RETURNING id",
							   2, argtypes, values, NULL, false, 1);
	if (rc != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not store a large message: %s", SPI_result_code_string(rc));
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	BmfStatsCount(STAT_PAYLOADS_STORED, 1);
	return psprintf("{\"bmfredis_payload\": " INT64_FORMAT ", \"bytes\": %zu}", id, len);
}

/* Send a batch of "message"/"pmessage" replies as NOTIFYs, one transaction. */
static void
relay(RedisReply **msgs, int n)
{
	int			i;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "bmfredis: relaying messages");
	for (i = 0; i < n; i++)
	{
		RedisReply *m = msgs[i];
		RedisReply *ch;
		RedisReply *payload;
		char		name[NAMEDATALEN];
		const char *send;

		if (strcmp(m->element[0]->str, "pmessage") == 0)
		{
			ch = m->element[2];
			payload = m->element[3];
		}
		else
		{
			ch = m->element[1];
			payload = m->element[2];
		}
		if (ch->type != RESP_STRING || payload->type != RESP_STRING ||
			!pg_verifymbstr(ch->str, ch->len, true))
			continue;
		notify_channel(ch->str, ch->len, name);
		if (payload->len <= NOTIFY_MAX_PAYLOAD &&
			pg_verifymbstr(payload->str, payload->len, true))
			send = payload->str;
		else
		{
			send = store_payload(ch->str, payload->str, payload->len);
			if (send == NULL)
			{
				elog(WARNING, "bmfredis subscriber: dropped a %zu-byte message on \"%s\": "
					 "it is too large for NOTIFY and the bmfredis extension is gone from this database",
					 payload->len, name);
				continue;
			}
		}
		Async_Notify(name, send);
		BmfStatsCount(STAT_MESSAGES_RELAYED, 1);
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

static void
cleanup_payloads(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (OidIsValid(get_extension_oid("bmfredis", true)))
	{
		/* OPERATOR() forms share one precedence: the parentheses matter */
		char	   *sql = psprintf("DELETE FROM bmfredis.notify_payloads "
								   "WHERE received_at OPERATOR(pg_catalog.<) "
								   "(pg_catalog.now() OPERATOR(pg_catalog.-) '%d seconds'::pg_catalog.interval)",
								   bmf_payload_retention);

		SPI_connect();
		SPI_execute(sql, false, 0);
		SPI_finish();
	}
	PopActiveSnapshot();
	CommitTransactionCommand();
}

Relay *
RelayCreate(void)
{
	Relay	   *r = MemoryContextAllocZero(TopMemoryContext, sizeof(Relay));

	r->cxt = AllocSetContextCreate(TopMemoryContext, "bmfredis relay",
								   ALLOCSET_DEFAULT_SIZES);
	r->last_cleanup = GetCurrentTimestamp();
	return r;
}

void
RelayClose(Relay *r)
{
	if (r->sub)
		PoolSubscriptionClose(r->sub);
	r->sub = NULL;
	r->channels = 0;
}

/* Where and as whom the relay talks: a reload or ALTER SERVER may change it. */
static const char *
relay_identity(void)
{
	static char buf[512];
	const RedisNode *node = RedisDefaultNode();

	snprintf(buf, sizeof(buf), "%s|%s", RedisNodeName(node),
			 node->username ? node->username : "");
	return buf;
}

int
RelaySync(Relay *r)
{
	char	  **names;
	bool	   *patterns;
	int			n;
	RedisError	err;
	const char *want = bmf_subscribe ? bmf_subscribe : "";

	if (r->subscribed && strcmp(r->subscribed, want) != 0)
	{
		if (r->sub)
			elog(LOG, "bmfredis subscriber: bmfredis.subscribe changed; subscribing again");
		RelayClose(r);
		r->failures = 0;
		r->next_try = 0;
	}
	if (r->sub && strcmp(r->identity, relay_identity()) != 0)
	{
		/* a reload changed where Redis is or who we are: the new identity */
		elog(LOG, "bmfredis subscriber: Redis' endpoint or credentials changed; subscribing again");
		RelayClose(r);
		r->failures = 0;
		r->next_try = 0;
	}
	if (r->subscribed == NULL || strcmp(r->subscribed, want) != 0)
	{
		if (r->subscribed)
			pfree(r->subscribed);
		r->subscribed = MemoryContextStrdup(TopMemoryContext, want);
	}
	if (r->sub || GetCurrentTimestamp() < r->next_try)
		return r->channels;
	n = parse_list(want, &names, &patterns);
	if (n == 0)
		return 0;
	r->sub = PoolSubscribe(RedisSubscribeNode(r->attempts++), n, (const char *const *) names,
								patterns, &err);
	if (r->sub == NULL)
	{
		long		delay = Min((long) bmf_retry_backoff_base << Min(r->failures, 20),
								(long) bmf_retry_backoff_max);

		if (r->failures == 0)
			elog(LOG, "bmfredis subscriber: could not subscribe: %s: %s; retrying with backoff",
				 err.message, err.detail);
		r->failures++;
		r->next_try = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
		return 0;
	}
	PoolSubscriptionWakeOnLatch(r->sub);
	if (r->identity)
		pfree(r->identity);
	r->identity = MemoryContextStrdup(TopMemoryContext, relay_identity());
	r->failures = 0;
	r->channels = n;
	elog(LOG, "bmfredis subscriber: relaying %d channels and patterns as NOTIFY in database \"%s\"",
		 n, PoolDatabaseName() ? PoolDatabaseName() : "?");
	return n;
}

void
RelayWait(Relay *r, TimestampTz deadline)
{
	RedisReply *msgs[RELAY_BATCH];
	RedisReply *msg;
	RedisError	err;
	int			n = 0;
	int			rc;
	MemoryContext old;

	if (TimestampDifferenceExceeds(r->last_cleanup, GetCurrentTimestamp(), 60 * 1000))
	{
		cleanup_payloads();
		r->last_cleanup = GetCurrentTimestamp();
	}
	if (r->sub == NULL)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (r->next_try > now && r->next_try < deadline)
			deadline = r->next_try;
		if (deadline > now)
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 (long) ((deadline - now + 999) / 1000), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		return;
	}
	MemoryContextReset(r->cxt);
	old = MemoryContextSwitchTo(r->cxt);
	rc = PoolSubscriptionNext(r->sub, deadline, r->cxt, &msg, &err);
	while (rc > 0)
	{
		if (msg->type == RESP_ARRAY && msg->elements >= 3 &&
			msg->element[0]->type == RESP_STRING &&
			(strcmp(msg->element[0]->str, "message") == 0 ||
			 (strcmp(msg->element[0]->str, "pmessage") == 0 && msg->elements == 4)))
			msgs[n++] = msg;
		if (n == RELAY_BATCH)
			break;
		/* whatever else is already here goes in the same transaction */
		rc = PoolSubscriptionNext(r->sub, GetCurrentTimestamp(), r->cxt, &msg, &err);
	}
	MemoryContextSwitchTo(old);
	if (n > 0)
		relay(msgs, n);
	if (rc < 0)
	{
		elog(LOG, "bmfredis subscriber: lost the subscription: %s: %s; subscribing again",
			 err.message, err.detail);
		RelayClose(r);
	}
}
