/*-------------------------------------------------------------------------
 *
 * wait.h
 *		Deadlines and polling sleeps.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_WAIT_H
#define BMFREDIS_WAIT_H

#include "postgres.h"

#include "datatype/timestamp.h"

/* a monotonic clock, in microseconds (elapsed time, immune to clock steps) */
extern int64 BmfMonotonicUs(void);

/* now + timeout_ms */
extern TimestampTz BmfDeadline(int timeout_ms);

/*
 * Sleep up to delay ms (never past deadline, waking for interrupts) and
 * return the next delay: doubled up to max_ms, with jitter.
 */
extern int	BmfPollSleep(int delay, int max_ms, TimestampTz deadline);

#endif							/* BMFREDIS_WAIT_H */
