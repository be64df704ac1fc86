/*-------------------------------------------------------------------------
 *
 * pubsub.h
 *		Publishing (transactional by default) and redis_listen; the event
 *		envelope is xact/event.h's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_PUBSUB_H
#define BMFREDIS_PUBSUB_H

#include "postgres.h"

#include "lib/stringinfo.h"

/* Queue a message for COMMIT; ERROR past bmfredis.max_pending_messages. */
extern void PubsubQueue(const char *channel, size_t clen, const char *message,
						size_t mlen);

#endif							/* BMFREDIS_PUBSUB_H */
