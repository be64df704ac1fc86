/*-------------------------------------------------------------------------
 *
 * transport.h
 *		Byte transport to one Redis server: non-blocking sockets, and the one
 *		interruptible wait every Redis wait in bmfredis goes through.
 *
 * Only transport.c touches sockets (and, later, TLS).  Functions report
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

/* Where to connect.  name is "host:port" or "unix:path", for messages. */
typedef struct RedisEndpoint
{
	const char *host;
	int			port;
	const char *unix_socket;	/* NULL or "" for TCP */
	const char *name;
} RedisEndpoint;

typedef struct RedisTransport
{
	pgsocket	sock;
	bool		fd_reserved;	/* AcquireExternalFD() held for sock */
	WaitEventSet *wes;			/* latch, postmaster death, sock */
	int			sock_pos;		/* position of sock in wes */
	uint32		sock_events;	/* events sock is registered for */
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
