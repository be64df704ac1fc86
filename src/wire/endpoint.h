/*-------------------------------------------------------------------------
 *
 * endpoint.h
 *		Where a connection goes (host and port, or a Unix socket) and its
 *		TLS settings: plain types, for the layers above to pass around.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_ENDPOINT_H
#define BMFREDIS_ENDPOINT_H

#include "postgres.h"

/* TLS settings of an endpoint; strings NULL or "" when unset. */
typedef struct RedisTlsConfig
{
	bool		enabled;
	int			verify;			/* RedisTlsVerify */
	const char *ca_file;		/* "": the system's trust store */
	const char *cert_file;		/* client certificate (chain) */
	const char *key_file;		/* its private key */
	const char *server_name;	/* SNI and the name verified; "": host */
} RedisTlsConfig;

/* Where to connect.  name is "host:port" or "unix:path", for messages. */
typedef struct RedisEndpoint
{
	const char *host;
	int			port;
	const char *unix_socket;	/* NULL or "" for TCP */
	const char *name;
	RedisTlsConfig tls;
} RedisEndpoint;

#endif							/* BMFREDIS_ENDPOINT_H */
