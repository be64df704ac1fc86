/*-------------------------------------------------------------------------
 *
 * wait.c
 *		Deadlines, and the sleep of whatever waits for something in Redis
 *		by polling it.  (Waits for a socket are the transport's, in
 *		wire/transport.c: one interruptible wait on the latch, postmaster
 *		death and the socket.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"

#include "base/wait.h"

int64
BmfMonotonicUs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* now + timeout_ms */
TimestampTz
BmfDeadline(int timeout_ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
}

/*
 * Sleep up to delay ms, never past deadline, waking for interrupts
 * (cancel, statement_timeout, terminate) and postmaster death; returns
 * the next delay: doubled up to max_ms, with jitter so that sessions
 * polling the same key do not poll in step.  For whatever waits on
 * something in Redis by polling it: a lock, another session's lease, a
 * cluster slot in migration (TRYAGAIN).  With interrupts held (the commit
 * callback) it still returns by the deadline; cancel waits until then.
 */
int
BmfPollSleep(int delay, int max_ms, TimestampTz deadline)
{
	long		left = (long) ((deadline - GetCurrentTimestamp()) / 1000);
	long		ms = Min((long) delay, Max(left, 1L));

	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	delay = Min(delay * 2, max_ms);
	return Max(1, delay / 2 + (int) (pg_prng_double(&pg_global_prng_state) * (delay / 2 + 1)));
}
