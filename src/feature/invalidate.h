/*-------------------------------------------------------------------------
 *
 * invalidate.h
 *		Invalidation by key, tag, pattern, namespace and time.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_INVALIDATE_H
#define BMFREDIS_INVALIDATE_H

#include "xact/effects.h"

/* Send now (REDIS_WRITE policy); what fails is queued for commit. */
extern int64 InvalidateNow(const RedisNode *node, Effect *effects, int n);

/* Run due scheduled invalidations; -1 if Redis failed (rows kept). */
extern int	InvalidateRunScheduled(void);

#endif							/* BMFREDIS_INVALIDATE_H */
