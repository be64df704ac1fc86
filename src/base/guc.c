/*-------------------------------------------------------------------------
 *
 * guc.c
 *		Every bmfredis.* setting: its variable, its definition, its check,
 *		assign and show hooks.
 *
 * All settings live here, in one list, rather than in the module that
 * reads each (pgvector's way): who may set what follows one rule that is
 * easiest to check in one place, the secrets share their masking and
 * catalog checks, and the settings that shape a connection share the
 * generation bump.  This file calls nothing of bmfredis but the URL
 * parser next to it; every layer reads the variables through guc.h.
 *
 * Who may set what follows one rule: anything that decides where a
 * connection goes, as whom, or under which key prefix is PGC_SUSET (a user
 * must not be able to point the server's password at a host of their
 * choosing, nor read or write outside the database's namespace), and so is
 * anything that decides how much the server or Redis holds for one
 * transaction or what gets flushed when that is exceeded
 * (max_pending_keys, max_pending_messages, stream_invalidations,
 * max_value_size, array_batch) or what a COMMIT publishes
 * (announce_invalidations);
 * timeouts and degradation knobs are per-session (PGC_USERSET).
 *
 * The secrets (password, url) are additionally GUC_SUPERUSER_ONLY |
 * GUC_NO_SHOW_ALL, and their show hooks print "********" (the url with its
 * password masked) to anyone who is not a superuser, members of
 * pg_read_all_settings included: SHOW, current_setting() and pg_settings
 * all go through the show hook.  Their check hooks refuse to let ALTER
 * ROLE/DATABASE ... SET or a function's SET clause store them, because
 * pg_db_role_setting and pg_proc are readable by every user.  The url's
 * messages quote it with the password masked (the default "invalid value"
 * message would quote it whole).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <stdlib.h>

#include "access/xact.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "base/glob.h"
#include "base/guc.h"
#include "base/url.h"

char	   *bmf_host = NULL;
int			bmf_port = 6379;
char	   *bmf_unix_socket = NULL;
int			bmf_db = 0;
char	   *bmf_username = NULL;
char	   *bmf_password = NULL;
char	   *bmf_password_file = NULL;
char	   *bmf_server = NULL;
char	   *bmf_key_prefix = NULL;
char	   *bmf_url = NULL;
const struct BmfUrl *bmf_url_parsed = NULL;

char	   *bmf_sentinels = NULL;
char	   *bmf_sentinel_master = NULL;
char	   *bmf_sentinel_username = NULL;
char	   *bmf_sentinel_password = NULL;
bool		bmf_cluster = false;
char	   *bmf_cluster_nodes = NULL;
int			bmf_cluster_max_redirects = 5;

bool		bmf_tls = false;
int			bmf_tls_verify = TLS_VERIFY_FULL;
char	   *bmf_tls_ca_file = NULL;
char	   *bmf_tls_cert_file = NULL;
char	   *bmf_tls_key_file = NULL;
char	   *bmf_tls_server_name = NULL;

int			bmf_connect_timeout = 2000;
int			bmf_command_timeout = 2000;
int			bmf_retry_backoff_base = 100;
int			bmf_retry_backoff_max = 10000;
int			bmf_idle_check = 30;
int			bmf_idle_close = 60000;
bool		bmf_commit_wait = true;
int			bmf_on_error = BMF_ON_ERROR_WARNING;

int			bmf_max_value_size = 512 * 1024 * 1024;
int			bmf_array_batch = 10000;
bool		bmf_near_cache = false;
int			bmf_near_cache_size = 16 * 1024 * 1024;
int			bmf_near_cache_max_age = 60 * 1000;
int			bmf_near_cache_max_lag = 10;
char	   *bmf_near_cache_prefixes = NULL;
int			bmf_log_commands = 0;

int			bmf_invalidate_at = BMF_INVALIDATE_COMMIT;
int			bmf_unlink_batch = 500;
int			bmf_max_pending_keys = 200000;
int			bmf_flush_timeout = 5000;

char	   *bmf_channel_prefix = NULL;
int			bmf_max_pending_messages = 10000;
bool		bmf_announce_invalidations = false;
bool		bmf_stream_invalidations = true;
char	   *bmf_stream_channels = NULL;
char	   *bmf_stream_key_prefix = NULL;
int			bmf_stream_maxlen = 100000;
bool		bmf_stream_also_publish = true;

int			bmf_cached_wait = 5000;
int			bmf_cached_lease = 30000;
double		bmf_cached_early_beta = 0;

int			bmf_ttl_short = 5 * 60;
int			bmf_ttl_medium = 60 * 60;
int			bmf_ttl_long = 24 * 60 * 60;
int			bmf_ttl_very_long = 7 * 24 * 60 * 60;

char	   *bmf_subscribe = NULL;
int			bmf_payload_retention = 3600;
int			bmf_worker_naptime = 1000;
int			bmf_retry_queue_size = 8 * 1024 * 1024;

uint64		bmfredis_config_generation = 1;

static const struct config_enum_entry on_error_options[] = {
	{"warning", BMF_ON_ERROR_WARNING, false},
	{"ignore", BMF_ON_ERROR_IGNORE, false},
	{"error", BMF_ON_ERROR_ERROR, false},
	{NULL, 0, false}
};

static const struct config_enum_entry tls_verify_options[] = {
	{"full", TLS_VERIFY_FULL, false},
	{"ca", TLS_VERIFY_CA, false},
	{"none", TLS_VERIFY_NONE, false},
	/* libpq's sslmode names, for people who think in those */
	{"verify-full", TLS_VERIFY_FULL, true},
	{"verify-ca", TLS_VERIFY_CA, true},
	{NULL, 0, false}
};

/* the levels a DBA may log Redis commands at; off is 0 */
static const struct config_enum_entry log_commands_options[] = {
	{"off", 0, false},
	{"debug5", DEBUG5, false},
	{"debug4", DEBUG4, false},
	{"debug3", DEBUG3, false},
	{"debug2", DEBUG2, false},
	{"debug1", DEBUG1, false},
	{"debug", DEBUG2, true},
	{"log", LOG, false},
	{"info", INFO, true},
	{"notice", NOTICE, false},
	{"warning", WARNING, false},
	{NULL, 0, false}
};

static const struct config_enum_entry invalidate_at_options[] = {
	{"commit", BMF_INVALIDATE_COMMIT, false},
	{"immediate", BMF_INVALIDATE_IMMEDIATE, false},
	{"both", BMF_INVALIDATE_BOTH, false},
	{NULL, 0, false}
};

/* Any change to the endpoint or credentials retires pooled connections. */
static void
bump_generation_str(const char *newval, void *extra)
{
	(void) newval;
	(void) extra;
	bmfredis_config_generation++;
}

static void
bump_generation_int(int newval, void *extra)
{
	(void) newval;
	(void) extra;
	bmfredis_config_generation++;
}

static void
bump_generation_bool(bool newval, void *extra)
{
	(void) newval;
	(void) extra;
	bmfredis_config_generation++;
}

int
BmfDb(void)
{
	return bmf_url_parsed ? bmf_url_parsed->db : bmf_db;
}

/* ---- secrets ---- */

/*
 * ALTER ROLE/DATABASE ... SET and CREATE FUNCTION ... SET validate with
 * PGC_S_TEST; what they store, every user can read.
 */
static bool
check_not_stored_in_catalog(const char *name, const char *value, GucSource source)
{
	if (source != PGC_S_TEST || value == NULL || value[0] == '\0')
		return true;

	/*
	 * Raised here rather than through GUC_check_*, so that the server log
	 * does not repeat the statement, secret included, as its STATEMENT:
	 * line.  PGC_S_TEST validation runs in the statement's transaction.
	 */
	if (IsTransactionState())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s cannot be stored with ALTER ROLE, ALTER DATABASE or a function's SET clause", name),
				 errdetail("Such settings are kept in pg_db_role_setting or pg_proc, which every user can read."),
				 errhint("Put it in postgresql.conf, or use ALTER SYSTEM."),
				 errhidestmt(true)));
	GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
	GUC_check_errmsg("%s cannot be stored with ALTER ROLE, ALTER DATABASE or a function's SET clause", name);
	GUC_check_errdetail("Such settings are kept in pg_db_role_setting or pg_proc, which every user can read.");
	GUC_check_errhint("Put it in postgresql.conf, or use ALTER SYSTEM.");
	return false;
}

/*
 * ALTER SYSTEM validates with PGC_S_FILE inside a transaction (a reload
 * does it outside one).  PostgreSQL logs every changed setting's new
 * value on reload, in clear: say so, and where a secret belongs instead.
 */
static void
warn_logged_on_reload(const char *name, bool has_secret, GucSource source)
{
	if (source != PGC_S_FILE || !has_secret || !IsTransactionState())
		return;
	ereport(WARNING,
			(errmsg("the %s set with ALTER SYSTEM will be written in clear to the server log on reload", name),
			 errdetail("PostgreSQL logs each changed setting's new value when it reloads its configuration."),
			 errhint("Put the password in a file only the server's user can read and set bmfredis.password_file, "
					 "or give roles user mappings; then ALTER SYSTEM RESET this setting.")));
}

/* May the current user see secrets?  Only superusers, in a transaction. */
static bool
secrets_visible(void)
{
	return IsTransactionState() && superuser();
}

static bool
check_password(char **newval, void **extra, GucSource source)
{
	(void) extra;
	warn_logged_on_reload("bmfredis.password", *newval && (*newval)[0], source);
	return check_not_stored_in_catalog("bmfredis.password", *newval, source);
}

/* What SHOW prints for a secret: itself to superusers, else a mask */
static const char *
masked(const char *secret)
{
	if (secret == NULL || secret[0] == '\0' || secrets_visible())
		return secret ? secret : "";
	return "********";
}

static const char *
show_password(void)
{
	return masked(bmf_password);
}

static bool
check_sentinel_password(char **newval, void **extra, GucSource source)
{
	(void) extra;
	warn_logged_on_reload("bmfredis.sentinel_password", *newval && (*newval)[0], source);
	return check_not_stored_in_catalog("bmfredis.sentinel_password", *newval, source);
}

static const char *
show_sentinel_password(void)
{
	return masked(bmf_sentinel_password);
}

/* host:port[, host:port ...] with [v6]:port allowed */
static bool
check_sentinels(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;
	int			count = 0;

	(void) extra;
	(void) source;
	if (p == NULL)
		return true;
	while (*p)
	{
		const char *start;
		const char *colon = NULL;
		long		port;
		char	   *end;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		start = p;
		if (*p == '[')
		{
			while (*p && *p != ']')
				p++;
			if (*p == ']')
				p++;
		}
		while (*p && *p != ',' && *p != ' ')
		{
			if (*p == ':')
				colon = p;
			p++;
		}
		if (colon == NULL || colon == start)
		{
			GUC_check_errdetail("\"%.*s\" is not host:port.", (int) (p - start), start);
			return false;
		}
		port = strtol(colon + 1, &end, 10);
		if (end != p || port < 1 || port > 65535)
		{
			GUC_check_errdetail("\"%.*s\" has no port from 1 to 65535.", (int) (p - start), start);
			return false;
		}
		if (++count > 64)
		{
			GUC_check_errdetail("At most 64 addresses can be listed.");
			return false;
		}
	}
	return true;
}

static void
define_sentinel_gucs(void)
{
	DefineCustomStringVariable("bmfredis.sentinels",
							   "Redis Sentinels to ask for the master's address (host:port, comma-separated).",
							   "With bmfredis.sentinel_master set, host, port and unix_socket are not used.",
							   &bmf_sentinels, "",
							   PGC_SUSET, 0,
							   check_sentinels, bump_generation_str, NULL);
	DefineCustomStringVariable("bmfredis.sentinel_master",
							   "Name of the master the sentinels monitor; empty turns Sentinel mode off.",
							   NULL,
							   &bmf_sentinel_master, "",
							   PGC_SUSET, 0,
							   NULL, bump_generation_str, NULL);
	DefineCustomStringVariable("bmfredis.sentinel_username",
							   "ACL user name for the sentinels (not for the master).",
							   NULL,
							   &bmf_sentinel_username, "",
							   PGC_SUSET, 0,
							   NULL, bump_generation_str, NULL);
	DefineCustomStringVariable("bmfredis.sentinel_password",
							   "Password for the sentinels (sentinel requirepass).",
							   "Visible to superusers only.",
							   &bmf_sentinel_password, "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_sentinel_password, bump_generation_str, show_sentinel_password);
}

static void
define_cluster_gucs(void)
{
	DefineCustomBoolVariable("bmfredis.cluster",
							 "Talk to a Redis Cluster: route each command to the node serving its key's slot.",
							 "bmfredis.host and bmfredis.port (or bmfredis.url) name the first seed node.",
							 &bmf_cluster, false,
							 PGC_SUSET, 0,
							 NULL, bump_generation_bool, NULL);
	DefineCustomStringVariable("bmfredis.cluster_nodes",
							   "More seed nodes of the cluster (host:port, comma-separated), asked for the slot map when the first seed does not answer.",
							   NULL,
							   &bmf_cluster_nodes, "",
							   PGC_SUSET, 0,
							   check_sentinels, bump_generation_str, NULL);
	DefineCustomIntVariable("bmfredis.cluster_max_redirects",
							"How many MOVED/ASK redirects one command may follow.",
							NULL,
							&bmf_cluster_max_redirects, 5, 1, 100,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
}

static bool
check_url(char **newval, void **extra, GucSource source)
{
	BmfUrl		parsed;
	char		why[256];

	if (!check_not_stored_in_catalog("bmfredis.url", *newval, source))
		return false;
	*extra = NULL;
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!BmfUrlParse(*newval, &parsed, why, sizeof(why)))
	{
		char		redacted[1024];

		BmfUrlRedact(*newval, redacted, sizeof(redacted));
		GUC_check_errmsg("invalid value for parameter \"bmfredis.url\": \"%s\"", redacted);
		GUC_check_errdetail("%s", why);
		GUC_check_errhint("The form is redis[s]://[user[:password]@]host[:port][/db]; "
						  "percent-encode '@', ':' and '/' in the password.");
		return false;
	}
	warn_logged_on_reload("password in bmfredis.url", parsed.password[0] != '\0', source);
	/* the GUC machinery frees extra with free() */
	*extra = malloc(sizeof(BmfUrl));
	if (*extra == NULL)
		return false;
	memcpy(*extra, &parsed, sizeof(BmfUrl));
	return true;
}

static void
assign_url(const char *newval, void *extra)
{
	(void) newval;
	bmf_url_parsed = (const BmfUrl *) extra;
	bmfredis_config_generation++;
}

static const char *
show_url(void)
{
	static char redacted[1024];

	if (bmf_url == NULL || bmf_url[0] == '\0' || secrets_visible())
		return bmf_url ? bmf_url : "";
	BmfUrlRedact(bmf_url, redacted, sizeof(redacted));
	return redacted;
}

static void
define_tls_gucs(void)
{
	DefineCustomBoolVariable("bmfredis.tls",
							 "Whether connections to Redis use TLS.",
							 "Never falls back to plaintext.  rediss:// in bmfredis.url turns it on.",
							 &bmf_tls, false,
							 PGC_SUSET, 0,
							 NULL, bump_generation_bool, NULL);
	DefineCustomEnumVariable("bmfredis.tls_verify",
							 "How the Redis server's certificate is checked: full, ca or none.",
							 "full: chain to a trusted CA and the host name; ca: the chain only; "
							 "none: nothing (unsafe: anyone on the path can impersonate the server).",
							 &bmf_tls_verify, TLS_VERIFY_FULL, tls_verify_options,
							 PGC_SUSET, 0,
							 NULL, bump_generation_int, NULL);
	DefineCustomStringVariable("bmfredis.tls_ca_file",
							   "File of trusted CA certificates (PEM) for the Redis server's certificate.",
							   "Empty: the system's trust store.",
							   &bmf_tls_ca_file, "",
							   PGC_SUSET, 0,
							   NULL, bump_generation_str, NULL);
	DefineCustomStringVariable("bmfredis.tls_cert_file",
							   "Client certificate (PEM, may hold the chain) presented to Redis.",
							   NULL,
							   &bmf_tls_cert_file, "",
							   PGC_SUSET, 0,
							   NULL, bump_generation_str, NULL);
	DefineCustomStringVariable("bmfredis.tls_key_file",
							   "Private key (PEM, unencrypted) of the client certificate.",
							   "Empty: the key is read from bmfredis.tls_cert_file.",
							   &bmf_tls_key_file, "",
							   PGC_SUSET, 0,
							   NULL, bump_generation_str, NULL);
	DefineCustomStringVariable("bmfredis.tls_server_name",
							   "Name sent as SNI and verified in the Redis server's certificate.",
							   "Empty: the host being connected to.",
							   &bmf_tls_server_name, "",
							   PGC_SUSET, 0,
							   NULL, bump_generation_str, NULL);
}

static void
define_endpoint_gucs(void)
{
	DefineCustomStringVariable("bmfredis.host",
							   "Host name or IP address of the Redis server.",
							   NULL,
							   &bmf_host, "127.0.0.1",
							   PGC_SUSET, 0,
							   NULL, bump_generation_str, NULL);
	DefineCustomIntVariable("bmfredis.port",
							"TCP port of the Redis server.",
							NULL,
							&bmf_port, 6379, 1, 65535,
							PGC_SUSET, 0,
							NULL, bump_generation_int, NULL);
	DefineCustomStringVariable("bmfredis.unix_socket",
							   "Path of the Redis server's Unix socket; when set, host and port are not used.",
							   NULL,
							   &bmf_unix_socket, "",
							   PGC_SUSET, 0,
							   NULL, bump_generation_str, NULL);
	DefineCustomIntVariable("bmfredis.db",
							"Redis logical database number (SELECT).",
							NULL,
							&bmf_db, 0, 0, 65535,
							PGC_SUSET, 0,
							NULL, bump_generation_int, NULL);
	DefineCustomStringVariable("bmfredis.username",
							   "Redis ACL user name; empty means the default user.",
							   NULL,
							   &bmf_username, "",
							   PGC_SUSET, 0,
							   NULL, bump_generation_str, NULL);
	DefineCustomStringVariable("bmfredis.password",
							   "Password sent with AUTH.",
							   "Visible to superusers only.",
							   &bmf_password, "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_password, bump_generation_str, show_password);
	DefineCustomStringVariable("bmfredis.password_file",
							   "File whose first line is the password sent with AUTH, read at each connect.",
							   "Used when neither bmfredis.password nor the URL has a password.  "
							   "The file must belong to the server's user and be readable by it alone.",
							   &bmf_password_file, "",
							   PGC_SUSET, GUC_SUPERUSER_ONLY | GUC_NOT_IN_SAMPLE,
							   NULL, bump_generation_str, NULL);
	DefineCustomStringVariable("bmfredis.server",
							   "Foreign server (FOREIGN DATA WRAPPER bmfredis) whose options say where Redis is, and whose user mappings give each role its own Redis user.",
							   "Empty: the endpoint settings and one identity for every role.",
							   &bmf_server, "",
							   PGC_SUSET, 0,
							   NULL, bump_generation_str, NULL);
	DefineCustomStringVariable("bmfredis.url",
							   "Redis URL, redis[s]://[user[:password]@]host[:port][/db].",
							   "When set, it wins over host, port, unix_socket, username, password, db and tls.  "
							   "Visible to superusers only.",
							   &bmf_url, "",
							   PGC_SUSET,
							   GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   check_url, assign_url, show_url);
	DefineCustomStringVariable("bmfredis.key_prefix",
							   "Prefix of every Redis key bmfredis reads or writes.",
							   "Usually set per database with ALTER DATABASE ... SET.",
							   &bmf_key_prefix, "bmfredis:",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
}

static void
define_behaviour_gucs(void)
{
	DefineCustomIntVariable("bmfredis.connect_timeout",
							"Time allowed to connect and authenticate to Redis.",
							NULL,
							&bmf_connect_timeout, 2000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.command_timeout",
							"Time allowed for one Redis command or pipeline to be answered.",
							NULL,
							&bmf_command_timeout, 2000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.retry_backoff_base",
							"Time a Redis node is left alone after its first failure.",
							"Doubles with each further failure, up to bmfredis.retry_backoff_max, with jitter.",
							&bmf_retry_backoff_base, 100, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.retry_backoff_max",
							"Longest time a failed Redis node is left alone before the next attempt.",
							NULL,
							&bmf_retry_backoff_max, 10000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.idle_check",
							"Idle time after which a pooled connection is checked with PING before use.",
							NULL,
							&bmf_idle_check, 30, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("bmfredis.commit_wait",
							 "Whether COMMIT waits for Redis to take its invalidations and messages.",
							 "off: they go to the shared queue and the database's worker sends them; "
							 "the session's own reads wait for them until they are sent.",
							 &bmf_commit_wait, true,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.idle_close",
							"Idle time after which a backend closes its Redis connections.",
							"A connection unused this long is closed at the end of a transaction; "
							"a session idle this long closes them all.  0: never.",
							&bmf_idle_close, 60000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomEnumVariable("bmfredis.on_error",
							 "What cache operations do when Redis cannot be reached.",
							 "warning: a read is a miss and a write returns false, with a WARNING; "
							 "ignore: the same without the WARNING; error: raise an ERROR.",
							 &bmf_on_error, BMF_ON_ERROR_WARNING, on_error_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomEnumVariable("bmfredis.log_commands",
							 "Logs each Redis command bmfredis sends, at this level: command, key, node, time and outcome.",
							 "off (the default) logs nothing and costs nothing.  Values, messages and secrets are never logged.",
							 &bmf_log_commands, 0, log_commands_options,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.max_value_size",
							"Largest value bmfredis writes to or accepts from Redis.",
							NULL,
							&bmf_max_value_size, 512 * 1024 * 1024, 1, MaxAllocSize / 2,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.array_batch",
							"Keys per Redis command when redis_cache_mget, redis_cache_mset or redis_cache_del is given an array.",
							"Larger arrays are sent in several commands, one after the other, so that what a call holds besides its arrays stays bounded.",
							&bmf_array_batch, 10000, 1, 1000000,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("bmfredis.near_cache",
							 "Whether redis_cache_get keeps the values it reads in this backend, kept true by Redis' invalidation messages.",
							 "Off by default; off costs nothing.",
							 &bmf_near_cache, false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.near_cache_size",
							"Memory one backend's near-cache may hold; past it the least recently used values go.",
							NULL,
							&bmf_near_cache_size, 16 * 1024 * 1024, 64 * 1024, 1024 * 1024 * 1024,
							PGC_SUSET, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.near_cache_max_age",
							"Longest time a value stays in the near-cache, whatever its TTL in Redis.",
							NULL,
							&bmf_near_cache_max_age, 60 * 1000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.near_cache_max_lag",
							"Longest time a write Redis acknowledged can go unseen by a near-cache hit.",
							"A hit is served from memory only if the backend has read everything Redis sent its tracking connection up to this long ago (a PING on that connection, sent ahead while hits come); otherwise it waits for one round trip first.  0: every hit waits for one.",
							&bmf_near_cache_max_lag, 10, 0, 60 * 60 * 1000,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomStringVariable("bmfredis.near_cache_prefixes",
							   "Key prefixes (comma-separated, under bmfredis.key_prefix) whose values the near-cache keeps; empty: all.",
							   NULL,
							   &bmf_near_cache_prefixes, "",
							   PGC_USERSET, 0,
							   NULL, NULL, NULL);
}

static void
define_ttl_gucs(void)
{
	DefineCustomIntVariable("bmfredis.ttl_short",
							"TTL of the \"short\" class (search results, analytics).",
							NULL,
							&bmf_ttl_short, 5 * 60, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.ttl_medium",
							"TTL of the \"medium\" class (products, users).",
							NULL,
							&bmf_ttl_medium, 60 * 60, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.ttl_long",
							"TTL of the \"long\" class (categories, static data).",
							NULL,
							&bmf_ttl_long, 24 * 60 * 60, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.ttl_very_long",
							"TTL of the \"very_long\" class (configuration data).",
							NULL,
							&bmf_ttl_very_long, 7 * 24 * 60 * 60, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_S,
							NULL, NULL, NULL);
}

static void
define_cached_gucs(void)
{
	DefineCustomIntVariable("bmfredis.cached_wait",
							"How long redis_cached waits for another session computing the same key.",
							"Past it, the query runs here too (and is not stored).",
							&bmf_cached_wait, 5000, 0, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.cached_lease",
							"How long a session computing a redis_cached key holds its claim on the key.",
							"If it dies, others compute again after this long at the latest.",
							&bmf_cached_lease, 30000, 10, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
	DefineCustomRealVariable("bmfredis.cached_early_beta",
							 "XFetch beta of redis_cached's early recomputation; 0 turns it off.",
							 "1 is the usual value; larger recomputes earlier.",
							 &bmf_cached_early_beta, 0, 0, 100,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
}

static void
define_invalidation_gucs(void)
{
	DefineCustomEnumVariable("bmfredis.invalidate_at",
							 "When invalidations are sent: after commit, immediately, or both.",
							 "both sends at once and again after commit, for readers that race the writer.",
							 &bmf_invalidate_at, BMF_INVALIDATE_COMMIT, invalidate_at_options,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.unlink_batch",
							"Keys per UNLINK command (and tag members per batch) when invalidating.",
							NULL,
							&bmf_unlink_batch, 500, 1, 100000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.max_pending_keys",
							"Keys one transaction queues for invalidation before it switches to their key patterns.",
							"Bounds the memory of the queue (about 150 bytes a key).",
							&bmf_max_pending_keys, 200000, 100, INT_MAX / 4,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.flush_timeout",
							"Longest time a COMMIT spends sending queued invalidations and messages.",
							"What is not sent by then goes to the retry queue.",
							&bmf_flush_timeout, 5000, 1, INT_MAX,
							PGC_USERSET, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/* bmfredis.stream_channels: a comma-separated list of non-empty patterns */
static bool
check_stream_channels(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;
	const char *item;
	size_t		n;

	(void) extra;
	(void) source;
	if (p == NULL || *p == '\0')
		return true;
	while (BmfListNext(&p, &item, &n))
		if (n == 0)
		{
			GUC_check_errdetail("An empty pattern: patterns are separated by single commas.");
			return false;
		}
	return true;
}

static void
define_pubsub_gucs(void)
{
	DefineCustomStringVariable("bmfredis.channel_prefix",
							   "Prefix of every channel bmfredis publishes on or listens to.",
							   "Empty by default: the application's services use channels without one.",
							   &bmf_channel_prefix, "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.max_pending_messages",
							"Messages one transaction queues for COMMIT.",
							"Past it, explicit publishes fail and trigger events are summarized in one <channel>:bulk message.",
							&bmf_max_pending_messages, 10000, 1, INT_MAX / 4,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("bmfredis.announce_invalidations",
							 "Whether COMMIT also publishes what it invalidated on cache:invalidated.",
							 NULL,
							 &bmf_announce_invalidations, false,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("bmfredis.stream_invalidations",
							 "Whether a transaction queuing many keys or change events sends them inside MULTI while it runs, so that COMMIT sends only EXEC.",
							 "Redis holds the queued commands (about 100 bytes a key, a message per event) until the transaction ends; nothing runs before COMMIT.",
							 &bmf_stream_invalidations, true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
	DefineCustomStringVariable("bmfredis.stream_channels",
							   "Channels whose messages are also appended to a Redis Stream (comma-separated Redis glob patterns).",
							   "Each channel's messages go, at COMMIT and through the retry queue, to the stream <bmfredis.stream_key_prefix><channel> with XADD, where a consumer group gets every committed one even if it was down.",
							   &bmf_stream_channels, "",
							   PGC_SUSET, 0,
							   check_stream_channels, NULL, NULL);
	DefineCustomStringVariable("bmfredis.stream_key_prefix",
							   "Prefix of the Redis Streams that bmfredis.stream_channels fill.",
							   "Keep it outside bmfredis.key_prefix: a namespace invalidation deletes every key under that.",
							   &bmf_stream_key_prefix, "stream:",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.stream_maxlen",
							"Approximate length past which a stream's oldest entries go (XADD MAXLEN ~); 0: none go.",
							NULL,
							&bmf_stream_maxlen, 100000, 0, INT_MAX,
							PGC_SUSET, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("bmfredis.stream_also_publish",
							 "Whether messages that go to a stream are also published on pub/sub.",
							 NULL,
							 &bmf_stream_also_publish, true,
							 PGC_SUSET, 0,
							 NULL, NULL, NULL);
}

/*
 * The workers' settings.  bmfredis.subscribe and payload_retention are
 * per database (ALTER DATABASE ... SET), so superuser-set; the shared
 * retry queue's size can only exist when the library is preloaded (a
 * PGC_POSTMASTER setting cannot be created later).
 */
static char *deprecated_worker_database = NULL;
static char *deprecated_subscribe_database = NULL;

static void
define_worker_gucs(void)
{
	DefineCustomStringVariable("bmfredis.subscribe",
							   "Redis channels and patterns the database's bmfredis worker relays as NOTIFY (comma-separated).",
							   "Names with *, ? or [ are patterns.  Usually set per database with ALTER DATABASE ... SET.",
							   &bmf_subscribe, "",
							   PGC_SUSET, 0,
							   NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.payload_retention",
							"How long messages too large for NOTIFY are kept in bmfredis.notify_payloads.",
							NULL,
							&bmf_payload_retention, 3600, 1, INT_MAX,
							PGC_SUSET, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("bmfredis.worker_naptime",
							"How often a database's bmfredis worker looks for work when not woken.",
							NULL,
							&bmf_worker_naptime, 1000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;
	DefineCustomIntVariable("bmfredis.retry_queue_size",
							"Shared memory for invalidations and messages waiting for Redis to come back.",
							"Needs shared_preload_libraries; when full, the namespace is invalidated whole instead.",
							&bmf_retry_queue_size, 8 * 1024 * 1024, 64 * 1024, INT_MAX / 2,
							PGC_POSTMASTER, GUC_UNIT_BYTE,
							NULL, NULL, NULL);
	/* 1.0's single-database workers; every database is served now */
	DefineCustomStringVariable("bmfredis.worker_database",
							   "No longer used: every database that has the extension has its own worker.",
							   NULL,
							   &deprecated_worker_database, "",
							   PGC_POSTMASTER, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);
	DefineCustomStringVariable("bmfredis.subscribe_database",
							   "No longer used: each database's worker relays bmfredis.subscribe as that database sets it.",
							   NULL,
							   &deprecated_subscribe_database, "",
							   PGC_POSTMASTER, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE,
							   NULL, NULL, NULL);
}

/*
 * Define every setting (from _PG_init, first of all: the modules' inits
 * may read them).  bmfredis.retry_queue_size exists only when the library
 * is preloaded.
 */
void
BmfGucInit(void)
{
	define_endpoint_gucs();
	define_tls_gucs();
	define_sentinel_gucs();
	define_cluster_gucs();
	define_behaviour_gucs();
	define_invalidation_gucs();
	define_cached_gucs();
	define_pubsub_gucs();
	define_worker_gucs();
	define_ttl_gucs();
	MarkGUCPrefixReserved("bmfredis");
}
