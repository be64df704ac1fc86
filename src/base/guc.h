/*-------------------------------------------------------------------------
 *
 * guc.h
 *		Every bmfredis.* setting, for every layer to read.
 *
 * Every bmfredis.* setting is defined in guc.c and declared here; the
 * layers read these variables directly, and set none of them.  Settings that decide which server
 * a connection goes to, or with which credentials, bump
 * bmfredis_config_generation when they change, so the pool can tell that a
 * pooled connection was made under an older configuration.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_GUC_H
#define BMFREDIS_GUC_H

#include "postgres.h"

/* Define every setting; the first thing _PG_init does. */
extern void BmfGucInit(void);

/* bmfredis.tls_verify */
typedef enum RedisTlsVerify
{
	TLS_VERIFY_NONE,			/* encrypt only: anyone can impersonate */
	TLS_VERIFY_CA,				/* a chain to a trusted CA, any name */
	TLS_VERIFY_FULL				/* chain and host name */
} RedisTlsVerify;

/* bmfredis.invalidate_at */
typedef enum BmfInvalidateAt
{
	BMF_INVALIDATE_COMMIT,
	BMF_INVALIDATE_IMMEDIATE,
	BMF_INVALIDATE_BOTH
} BmfInvalidateAt;

/* bmfredis.on_error */
typedef enum BmfOnError
{
	BMF_ON_ERROR_WARNING,
	BMF_ON_ERROR_IGNORE,
	BMF_ON_ERROR_ERROR
} BmfOnError;

/* endpoint and authentication (PGC_SUSET) */
extern char *bmf_host;
extern int	bmf_port;
extern char *bmf_unix_socket;
extern int	bmf_db;
extern char *bmf_username;
extern char *bmf_password;
extern char *bmf_password_file;
extern char *bmf_server;		/* a foreign server of wrapper bmfredis */
extern char *bmf_key_prefix;
extern char *bmf_url;

/* Sentinel (PGC_SUSET) */
extern char *bmf_sentinels;
extern char *bmf_sentinel_master;
extern char *bmf_sentinel_username;
extern char *bmf_sentinel_password;
extern bool bmf_cluster;
extern char *bmf_cluster_nodes;
extern int	bmf_cluster_max_redirects;

/* TLS (PGC_SUSET) */
extern bool bmf_tls;
extern int	bmf_tls_verify;		/* RedisTlsVerify */
extern char *bmf_tls_ca_file;
extern char *bmf_tls_cert_file;
extern char *bmf_tls_key_file;
extern char *bmf_tls_server_name;

/* bmfredis.url, parsed; NULL when the setting is empty */
struct BmfUrl;
extern const struct BmfUrl *bmf_url_parsed;

/* The logical database in effect: the URL's when bmfredis.url is set. */
extern int	BmfDb(void);

/* timeouts and fault handling (PGC_USERSET), in milliseconds */
extern int	bmf_connect_timeout;
extern int	bmf_command_timeout;
extern int	bmf_retry_backoff_base;
extern int	bmf_retry_backoff_max;
extern int	bmf_idle_check;		/* seconds */
extern int	bmf_idle_close;		/* ms, 0: never */
extern bool bmf_commit_wait;
extern int	bmf_on_error;

/* limits */
extern int	bmf_max_value_size; /* bytes */
extern int	bmf_array_batch;	/* keys per command of an array call */

/* the near-cache (client/near.c) */
extern bool bmf_near_cache;
extern int	bmf_near_cache_size;	/* bytes */
extern int	bmf_near_cache_max_age;	/* ms */
extern int	bmf_near_cache_max_lag;	/* ms */
extern char *bmf_near_cache_prefixes;

/* debug: the level each Redis command is logged at; 0: not logged */
extern int	bmf_log_commands;

/* invalidation */
extern int	bmf_invalidate_at;	/* BmfInvalidateAt */
extern int	bmf_unlink_batch;
extern int	bmf_max_pending_keys;
extern int	bmf_flush_timeout;	/* ms */

/* pub/sub */
extern char *bmf_channel_prefix;
extern int	bmf_max_pending_messages;
extern bool bmf_announce_invalidations;
extern bool bmf_stream_invalidations;
/* Redis Streams: channels appended with XADD */
extern char *bmf_stream_channels;
extern char *bmf_stream_key_prefix;
extern int	bmf_stream_maxlen;
extern bool bmf_stream_also_publish;

/* read-through caching (redis_cached) */
extern int	bmf_cached_wait;	/* ms */
extern int	bmf_cached_lease;	/* ms */
extern double bmf_cached_early_beta;

/* named TTL classes, seconds */
extern int	bmf_ttl_short;
extern int	bmf_ttl_medium;
extern int	bmf_ttl_long;
extern int	bmf_ttl_very_long;

/* the workers: per database (PGC_SUSET), the nap (PGC_SIGHUP), the
 * shared retry queue's size (PGC_POSTMASTER, preloaded only) */
extern char *bmf_subscribe;
extern int	bmf_payload_retention;	/* seconds */
extern int	bmf_worker_naptime; /* ms */
extern int	bmf_retry_queue_size;	/* bytes */

/* bumped whenever a setting that shapes a connection changes */
extern uint64 bmfredis_config_generation;

#endif							/* BMFREDIS_GUC_H */
