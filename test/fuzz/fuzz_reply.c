/*
 * libFuzzer target: the reply reader (src/resp.c over hiredis' parser,
 * with our object functions and bounds) and every conversion of a reply
 * to an SQL value (src/reply.c).  The input is fed in pieces whose sizes
 * come from the input itself, so incremental parsing is exercised too.
 * ERRORs are expected and caught; crashes, leaks and sanitizer reports
 * are what the run looks for.
 */
#include "postgres.h"

#include <stdint.h>
#include <stdlib.h>

#include "lib/stringinfo.h"

#include "fuzz.h"
#include "client/reply.h"
#include "wire/resp.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
convert(const RedisReply *r)
{
	jmp_buf		here;
	int			step;

	for (step = 0; step < 7; step++)
	{
		fuzz_catch = &here;
		if (setjmp(here) == 0)
		{
			StringInfoData s;

			switch (step)
			{
				case 0:
					(void) RedisReplyToText(r);
					break;
				case 1:
					(void) RedisReplyToBytea(r);
					break;
				case 2:
					(void) RedisReplyToCString(r, "fuzz");
					break;
				case 3:
					initStringInfo(&s);
					RedisReplyAppendJson(&s, r);
					break;
				case 4:
					RedisExpect(r, RESP_INTEGER, "fuzz");
					break;
				case 5:
					RedisExpectArray(r, 2, RESP_INTEGER, "fuzz");
					break;
				case 6:
					RedisExpectArray(r, r->type == RESP_ARRAY ? r->elements : 0, 0, "fuzz");
					break;
			}
		}
		fuzz_catch = NULL;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	RespReader *rr;
	RedisError	err;
	size_t		pos = 1;
	size_t		piece;
	int			replies = 0;
	jmp_buf		here;

	if (size < 1)
		return 0;
	piece = (data[0] % 64) + 1;

	fuzz_catch = &here;
	if (setjmp(here) != 0)
	{
		fuzz_catch = NULL;
		fuzz_free_all();
		return 0;				/* RespReaderCreate ran out of memory */
	}
	rr = RespReaderCreate();
	fuzz_catch = NULL;

	while (pos < size)
	{
		size_t		n = Min(piece, size - pos);
		int			rc;
		RedisReply *reply;

		if (!RespReaderFeed(rr, (const char *) data + pos, n, &err))
			break;
		pos += n;
		/* a small max_string, so the "larger than max_value_size" path runs */
		while ((rc = RespReaderGet(rr, CurrentMemoryContext, 4096, &reply, &err)) > 0)
		{
			if (reply->type < RESP_STRING || reply->type > RESP_ERROR)
				abort();
			convert(reply);
			if (++replies > 1000)
				break;
		}
		if (rc < 0)
			break;				/* a protocol error: the connection would be dropped */
	}
	RespReaderFree(rr);
	fuzz_free_all();
	return 0;
}
