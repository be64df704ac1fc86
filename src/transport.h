/*-------------------------------------------------------------------------
 *
 * transport.h
 *		Byte transport to one Redis server: non-blocking sockets, and the one
 *		interruptible wait every Redis wait in bmfredis goes through.
 *
 * Only transport.c touches sockets and TLS.  Functions report
 * failures through a RedisError and a false/negative return; the only
 * thing that may throw out of them is CHECK_FOR_INTERRUPTS() (cancel,
 * statement_timeout, termination), which the caller must be ready for: a
 * connection whose command was interrupted is out of step and is dropped
 * by the pool on its next use.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_TRANSPORT_H
#define BMFREDIS_TRANSPORT_H

#include "postgres.h"

#include "storage/latch.h"
#include "utils/timestamp.h"

/* What went wrong, in the vocabulary of the error policy (client.c). */
typedef enum RedisStatus
{
	RS_OK = 0,
	RS_DOWN,					/* node in its backoff window; nothing sent */
	RS_CONNECT,					/* could not connect or handshake */
	RS_AUTH,					/* server refused our credentials */
	RS_TIMEOUT,					/* deadline passed while waiting */
	RS_IO,						/* connection broken (EOF, reset) */
	RS_PROTOCOL,				/* malformed or oversized reply */
	RS_UNAVAILABLE,				/* node answered READONLY or LOADING */
	RS_REPLY					/* server answered with an error reply */
} RedisStatus;

typedef struct RedisError
{
	RedisStatus status;
	int			sqlerrcode;
	bool		maybe_sent;		/* the command may have reached the server */
	char		message[128];	/* primary message: stable, no addresses */
	char		detail[512];	/* where and why: node, errno text, reply */
} RedisError;

extern void RedisErrorSet(RedisError *err, RedisStatus status, int sqlerrcode,
						  const char *message, const char *fmt,...) pg_attribute_printf(5, 6);

/* bmfredis.tls_verify */
typedef enum RedisTlsVerify
{
	TLS_VERIFY_NONE,			/* encrypt only: anyone can impersonate */
	TLS_VERIFY_CA,				/* a chain to a trusted CA, any name */
	TLS_VERIFY_FULL				/* chain and host name */
} RedisTlsVerify;

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

typedef struct ssl_st RedisSSL;	/* OpenSSL's SSL, kept opaque here */

typedef struct RedisTransport
{
	pgsocket	sock;
	RedisSSL   *ssl;			/* NULL on a plaintext connection */
	bool		ssl_fatal;		/* no close_notify may be sent */
	bool		fd_reserved;	/* AcquireExternalFD() held for sock */
	WaitEventSet *wes;			/* latch, postmaster death, sock */
	int			sock_pos;		/* position of sock in wes */
	uint32		sock_events;	/* events sock is registered for */
	bool		read_first;		/* replies have been there by the time we look */
	uint8		probes;			/* reads since the last optimistic one */
	bool		wake_on_latch;	/* a wait ends when the latch is set (as if
								 * its deadline passed): for a worker
								 * listening on this connection */
} RedisTransport;

extern void TransportInit(RedisTransport *t);
extern bool TransportConnect(RedisTransport *t, const RedisEndpoint *ep,
							 TimestampTz deadline, RedisError *err);
extern bool TransportWrite(RedisTransport *t, const char *buf, size_t len,
						   TimestampTz deadline, RedisError *err);
extern ssize_t TransportRead(RedisTransport *t, char *buf, size_t cap,
							 bool wait_first, TimestampTz deadline,
							 RedisError *err);
extern bool TransportPeerClosed(RedisTransport *t);
extern void TransportClose(RedisTransport *t);
extern bool TransportIsOpen(const RedisTransport *t);

/* deadline helper: now + ms */
extern TimestampTz TransportDeadline(int timeout_ms);

#endif							/* BMFREDIS_TRANSPORT_H */
