/*-------------------------------------------------------------------------
 *
 * event.h
 *		Channel names and event envelopes (JSON), shared by COMMIT's
 *		announcements, change triggers and the publishing functions.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_EVENT_H
#define BMFREDIS_EVENT_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"

/* bmfredis.channel_prefix + channel */
extern void EventChannel(StringInfo out, const char *channel, size_t len);

/*
 * Append the JSON envelope of an event:
 * {"id", "type", "entity", "operation", "entity_id", "data", "changed",
 *  "time", "txid", "database"}.  data_json and changed_json are JSON texts
 * (NULL: {} and absent); entity_id may be NULL.  when is the event's
 * "time" (change events use their statement's start).
 */
extern void EventEnvelope(StringInfo out, const char *type,
						   const char *entity_id, const char *data_json,
						   const char *changed_json, TimestampTz when);

/*
 * The same in three parts, for callers that send many events of one type
 * in one statement (change triggers): the head (type, entity, operation)
 * and the tail (time, txid, database, closing brace) are built once and
 * reused; EventEnvelopeFrom adds the id, entity_id, data and changed.
 */
extern void EventEnvelopeHead(StringInfo out, const char *type);
extern void EventEnvelopeTail(StringInfo out, TimestampTz when);
extern void EventEnvelopeFrom(StringInfo out, const char *head,
							   const char *entity_id, const char *data_json,
							   const char *changed_json, const char *tail);

/* A timestamp as ISO 8601 UTC with microseconds: 2026-11-25T21:00:00.123456Z */
extern void EventIsoTime(StringInfo out, TimestampTz ts);

#endif							/* BMFREDIS_EVENT_H */
