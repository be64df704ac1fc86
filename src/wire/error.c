/*-------------------------------------------------------------------------
 *
 * error.c
 *		Filling in a RedisError.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "wire/error.h"

/* Fill in a RedisError: message is stable, detail formatted. */
void
RedisErrorSet(RedisError *err, RedisStatus status, int sqlerrcode,
			  const char *message, const char *fmt,...)
{
	va_list		ap;

	err->status = status;
	err->sqlerrcode = sqlerrcode;
	err->node_alive = false;
	strlcpy(err->message, message, sizeof(err->message));
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
}
