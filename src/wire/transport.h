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

#include "wire/endpoint.h"
#include "wire/error.h"

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
	bool		moved;			/* bytes went either way since the last wait */
	TimestampTz last_moved;		/* when a wait last found that they had: a
								 * timeout soon after it cut a transfer
								 * still under way (pool.c) */
	char		tls_peer[160];	/* TLS: whose session tickets it keeps */
} RedisTransport;

extern void TransportInit(RedisTransport *t);
extern bool TransportConnect(RedisTransport *t, const RedisEndpoint *ep,
							 TimestampTz deadline, RedisError *err);
extern bool TransportWrite(RedisTransport *t, const char *buf, size_t len,
						   TimestampTz deadline, RedisError *err);
/* two connections watched together: is anything to read on either? */
typedef struct TransportPair TransportPair;
extern TransportPair *TransportPairCreate(RedisTransport *a, RedisTransport *b);
extern void TransportPairFree(TransportPair *p);
extern void TransportPairPending(TransportPair *p, bool *a_pending, bool *b_pending);
extern ssize_t TransportTryRead(RedisTransport *t, char *buf, size_t cap,
								RedisError *err);
extern ssize_t TransportRead(RedisTransport *t, char *buf, size_t cap,
							 bool wait_first, TimestampTz deadline,
							 RedisError *err);
extern bool TransportPeerClosed(RedisTransport *t);
extern void TransportClose(RedisTransport *t);
extern bool TransportIsOpen(const RedisTransport *t);
/* did this TLS connection resume an earlier session (no chain verified)? */
extern bool TransportTlsResumed(const RedisTransport *t);
/* sockets open in this process; shut them all down (async-signal-safe) */
extern int	TransportOpenCount(void);
extern int	TransportShutdownAll(void);

#endif							/* BMFREDIS_TRANSPORT_H */
