/*-------------------------------------------------------------------------
 *
 * sentinel.c
 *		The master of a Sentinel-named node, asked of bmfredis.sentinels at
 *		every connect: each sentinel gets an equal share of the connect
 *		timeout, and the one that answered last is asked first next time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "base/guc.h"
#include "base/url.h"
#include "pool/internal.h"
#include "pool/pool.h"

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
	PoolConnInit(&c);
	initStringInfo(&cmds);
	if (PoolAppendAuth(&cmds, node->sentinel_username, node->sentinel_password))
		auth_at = n++;
	argv[0] = "SENTINEL";
	lens[0] = 8;
	argv[1] = "get-master-addr-by-name";
	lens[1] = 23;
	argv[2] = node->sentinel_master;
	lens[2] = strlen(node->sentinel_master);
	RespFormat(&cmds, 3, argv, lens);
	n++;

	if (!PoolConnExchangeOnce(&c, &ep, &cmds, n, deadline, replies, err))
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
bool
PoolSentinelResolve(const RedisNode *node, TimestampTz deadline, char *host,
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

