/*-------------------------------------------------------------------------
 *
 * xact.h
 *		Side effects that follow the transaction: queued per
 *		(sub)transaction, de-duplicated, sent after COMMIT, dropped on abort.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_XACT_H
#define BMFREDIS_XACT_H

#include "postgres.h"

extern void XactInit(void);

/*
 * Queue an invalidation.  key is the full (prefixed) key; coarse is the
 * pattern that covers it (a key template with its columns as '*'), or
 * NULL: when more than bmfredis.max_pending_keys keys are queued the
 * transaction switches to invalidating those patterns (or, for keys
 * without one, the whole namespace) instead of single keys.
 */
extern void XactQueueKey(const char *key, size_t len, const char *coarse,
						 size_t coarse_len);
/*
 * The same for a key the caller knows to be new in the queue, in practice
 * (a template over the row's id): it skips the de-duplication index.  A
 * duplicate that slips through costs one more UNLINK argument, nothing more.
 */
extern void XactQueueDistinctKey(const char *key, size_t len, const char *coarse,
								 size_t coarse_len);
/* tagkey is the full tag index key (<prefix>tag:<tag>) */
extern void XactQueueTag(const char *tagkey, size_t len);
/* pattern is a full MATCH pattern, already confined under the prefix */
extern void XactQueuePattern(const char *pattern, size_t len);
extern void XactQueueTagPattern(const char *pattern, size_t len);
/* PEXPIREAT key ms LT at commit */
extern void XactQueueExpireAt(const char *key, size_t len, int64 unix_ms);
/* PUBLISH at commit, in order */
extern void XactQueuePublish(const char *channel, size_t clen,
							 const char *message, size_t mlen);

extern bool XactHasPending(void);
extern void XactSendCommitted(void);
extern int	XactPendingPublishes(void);

/*
 * Count rows whose events were not queued because the transaction already
 * holds bmfredis.max_pending_messages: at COMMIT one summary message per
 * (channel, operation) says how many rows it stands for.  Summaries are
 * never dropped by a ROLLBACK TO (more rows announced than survived is
 * safe for subscribers that invalidate; fewer would not be).
 */
extern void XactQueueSummary(const char *channel, const char *entity,
							 const char *operation, int64 rows);

/*
 * Changes whenever queued items may have been dropped (a subtransaction
 * aborted, the transaction ended, the key set collapsed).  A caller may
 * remember "I queued this" only together with the generation it saw.
 */
extern uint64 XactQueueGeneration(void);
/* How many keys are queued, and whether the queue collapsed */
extern int64 XactPendingKeys(void);
extern bool XactCollapsed(void);

/* Should an effect be sent now, queued, or both?  (immediate may be NULL) */
extern void XactDecide(const bool *immediate, bool *send_now, bool *queue);

/* Record that this transaction wrote to a watched table (see cached.c). */
extern void XactNoteWatchedWrite(void);
extern bool XactWroteWatched(void);

#endif							/* BMFREDIS_XACT_H */
