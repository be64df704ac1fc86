/*-------------------------------------------------------------------------
 *
 * error.h
 *		RedisError: how every layer below the SQL functions reports a
 *		failure (a status, an SQLSTATE, a message and a detail), to be
 *		raised or degraded by the error policy (client/policy.c).
 *
 * Below the transport and the reply parser, so that both (and the fuzz
 * targets, which link the parser alone) can set one.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_ERROR_H
#define BMFREDIS_ERROR_H

#include "postgres.h"

/* What went wrong, in the vocabulary of the error policy (client/policy.c). */
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
	bool		node_alive;		/* a timeout while bytes were still moving:
								 * the node answers, the exchange was too
								 * big for its time (not a reason to back off) */
	char		message[128];	/* primary message: stable, no addresses */
	char		detail[512];	/* where and why: node, errno text, reply */
} RedisError;

extern void RedisErrorSet(RedisError *err, RedisStatus status, int sqlerrcode,
						  const char *message, const char *fmt,...) pg_attribute_printf(5, 6);

#endif							/* BMFREDIS_ERROR_H */
