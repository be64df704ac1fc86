/*-------------------------------------------------------------------------
 *
 * subscriber.h
 *		The relay of Redis messages into NOTIFY, run by a database's worker.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_SUBSCRIBER_H
#define BMFREDIS_SUBSCRIBER_H

#include "postgres.h"

#include "datatype/timestamp.h"

/*
 * The relay of Redis messages into NOTIFY, run by a database's worker
 * (worker.c): bmfredis.subscribe as that database sees it.
 */

typedef struct Relay Relay;

extern Relay *RelayCreate(void);
/* Subscribe as bmfredis.subscribe says now (again when it changed, or
 * after a failure once its backoff passed); the channels relayed. */
extern int	RelaySync(Relay *r);
/* Relay what arrives until the deadline or the latch is set. */
extern void RelayWait(Relay *r, TimestampTz deadline);
extern void RelayClose(Relay *r);

#endif							/* BMFREDIS_SUBSCRIBER_H */
