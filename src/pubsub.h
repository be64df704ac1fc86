/*-------------------------------------------------------------------------
 *
 * pubsub.h
 *		Publishing (transactional by default), event envelopes, and
 *		subscribing (redis_listen, the subscriber worker).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_PUBSUB_H
#define BMFREDIS_PUBSUB_H

#include "postgres.h"

#include "lib/stringinfo.h"

/* bmfredis.channel_prefix + channel */
extern void PubsubChannel(StringInfo out, const char *channel, size_t len);

/*
 * Append the JSON envelope of an event:
 * {"id", "type", "entity", "operation", "entity_id", "data", "changed",
 *  "time", "txid", "database"}.  data_json and changed_json are JSON texts
 * (NULL: {} and absent); entity_id may be NULL.  when is the event's
 * "time" (change events use their statement's start).
 */
extern void PubsubEnvelope(StringInfo out, const char *type,
						   const char *entity_id, const char *data_json,
						   const char *changed_json, TimestampTz when);

/*
 * The same in three parts, for callers that send many events of one type
 * in one statement (change triggers): the head (type, entity, operation)
 * and the tail (time, txid, database, closing brace) are built once and
 * reused; PubsubEnvelopeFrom adds the id, entity_id, data and changed.
 */
extern void PubsubEnvelopeHead(StringInfo out, const char *type);
extern void PubsubEnvelopeTail(StringInfo out, TimestampTz when);
extern void PubsubEnvelopeFrom(StringInfo out, const char *head,
							   const char *entity_id, const char *data_json,
							   const char *changed_json, const char *tail);

/* A timestamp as ISO 8601 UTC with microseconds: 2026-11-25T21:00:00.123456Z */
extern void PubsubIsoTime(StringInfo out, TimestampTz ts);

/* Queue a message for COMMIT; ERROR past bmfredis.max_pending_messages. */
extern void PubsubQueue(const char *channel, size_t clen, const char *message,
						size_t mlen);

/*
 * The relay of Redis messages into NOTIFY, run by a database's worker
 * (subscriber.c): bmfredis.subscribe as that database sees it.
 */
extern char *bmf_subscribe;
extern int	bmf_payload_retention;

typedef struct Relay Relay;

extern Relay *RelayCreate(void);
/* Subscribe as bmfredis.subscribe says now (again when it changed, or
 * after a failure once its backoff passed); the channels relayed. */
extern int	RelaySync(Relay *r);
/* Relay what arrives until the deadline or the latch is set. */
extern void RelayWait(Relay *r, TimestampTz deadline);
extern void RelayClose(Relay *r);

#endif							/* BMFREDIS_PUBSUB_H */
