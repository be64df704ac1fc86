/*-------------------------------------------------------------------------
 *
 * resp.c
 *		RESP2 through hiredis: redisFormatCommandArgv builds commands,
 *		redisReader parses replies into our own RedisReply objects.
 *
 * hiredis allocates with malloc.  The formatter's buffer is copied into
 * the caller's StringInfo and freed at once, before anything can throw.
 * The reader's own buffer is malloc'd and lives with the connection (freed
 * by RespReaderFree); the reply objects are built by the object functions
 * below, with palloc in the memory context the caller passes to
 * RespReaderGet, and with MCXT_ALLOC_NO_OOM so that running out of memory
 * is reported to hiredis as a NULL object (a reader error) instead of a
 * longjmp through hiredis' frames.  freeObject is therefore a no-op: the
 * objects go away with their context.
 *
 * A server cannot push us past these bounds: a string longer than
 * max_string (bmfredis.max_value_size), an array of more than
 * RESP_MAX_ELEMENTS, or nesting deeper than hiredis' 7 levels.  Each is a
 * protocol error, after which the connection must be dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include "utils/memutils.h"

#include "resp.h"

struct RespReader
{
	redisReader *reader;		/* malloc'd by hiredis */
	MemoryContext cxt;			/* where objects go during RespReaderGet */
	size_t		max_string;
	const char *refused;		/* why an object function returned NULL */
};

StaticAssertDecl(RESP_STRING == REDIS_REPLY_STRING, "reply type mismatch");
StaticAssertDecl(RESP_ARRAY == REDIS_REPLY_ARRAY, "reply type mismatch");
StaticAssertDecl(RESP_INTEGER == REDIS_REPLY_INTEGER, "reply type mismatch");
StaticAssertDecl(RESP_NIL == REDIS_REPLY_NIL, "reply type mismatch");
StaticAssertDecl(RESP_STATUS == REDIS_REPLY_STATUS, "reply type mismatch");
StaticAssertDecl(RESP_ERROR == REDIS_REPLY_ERROR, "reply type mismatch");

void
RespFormat(StringInfo buf, int argc, const char *const *argv,
		   const size_t *argvlen)
{
	char	   *cmd = NULL;
	int			len;

	len = redisFormatCommandArgv(&cmd, argc, (const char **) argv, argvlen);
	if (len < 0 || cmd == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Could not format a Redis command of %d arguments.", argc)));
	PG_TRY();
	{
		appendBinaryStringInfo(buf, cmd, len);
	}
	PG_FINALLY();
	{
		redisFreeCommand(cmd);
	}
	PG_END_TRY();
}

/* ---- reply object functions, called from inside redisReaderGetReply ---- */

static RedisReply *
new_reply(const redisReadTask *task, int type)
{
	RespReader *rr = (RespReader *) task->privdata;
	RedisReply *rep;

	rep = MemoryContextAllocExtended(rr->cxt, sizeof(RedisReply),
									 MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO);
	if (rep == NULL)
	{
		rr->refused = "out of memory while reading a reply";
		return NULL;
	}
	rep->type = type;
	if (task->parent)
	{
		RedisReply *parent = (RedisReply *) task->parent->obj;

		Assert(parent->type == RESP_ARRAY);
		Assert(task->idx >= 0 && (size_t) task->idx < parent->elements);
		parent->element[task->idx] = rep;
	}
	return rep;
}

static void *
create_string(const redisReadTask *task, char *str, size_t len)
{
	RespReader *rr = (RespReader *) task->privdata;
	RedisReply *rep;
	char	   *copy;

	if (len > rr->max_string)
	{
		rr->refused = "a string in the reply is larger than bmfredis.max_value_size";
		return NULL;
	}
	copy = MemoryContextAllocExtended(rr->cxt, len + 1, MCXT_ALLOC_NO_OOM);
	if (copy == NULL)
	{
		rr->refused = "out of memory while reading a reply";
		return NULL;
	}
	rep = new_reply(task, task->type);
	if (rep == NULL)
		return NULL;
	memcpy(copy, str, len);
	copy[len] = '\0';
	rep->str = copy;
	rep->len = len;
	return rep;
}

static void *
create_array(const redisReadTask *task, int elements)
{
	RespReader *rr = (RespReader *) task->privdata;
	RedisReply *rep;

	if (elements < 0 || elements > RESP_MAX_ELEMENTS)
	{
		rr->refused = "an array in the reply has too many elements";
		return NULL;
	}
	rep = new_reply(task, RESP_ARRAY);
	if (rep == NULL)
		return NULL;
	if (elements > 0)
	{
		rep->element = MemoryContextAllocExtended(rr->cxt,
												  sizeof(RedisReply *) * elements,
												  MCXT_ALLOC_NO_OOM | MCXT_ALLOC_ZERO);
		if (rep->element == NULL)
		{
			rr->refused = "out of memory while reading a reply";
			return NULL;
		}
	}
	rep->elements = elements;
	return rep;
}

static void *
create_integer(const redisReadTask *task, long long value)
{
	RedisReply *rep = new_reply(task, RESP_INTEGER);

	if (rep)
		rep->integer = value;
	return rep;
}

static void *
create_nil(const redisReadTask *task)
{
	return new_reply(task, RESP_NIL);
}

/* Objects live in a memory context; nothing to free here. */
static void
free_object(void *obj)
{
	(void) obj;
}

static redisReplyObjectFunctions reply_functions = {
	create_string,
	create_array,
	create_integer,
	create_nil,
	free_object
};

RespReader *
RespReaderCreate(void)
{
	RespReader *rr = MemoryContextAllocZero(TopMemoryContext, sizeof(RespReader));

	rr->reader = redisReaderCreateWithFunctions(&reply_functions);
	if (rr->reader == NULL)
	{
		pfree(rr);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	rr->reader->privdata = rr;
	return rr;
}

void
RespReaderFree(RespReader *rr)
{
	if (rr == NULL)
		return;
	redisReaderFree(rr->reader);
	pfree(rr);
}

bool
RespReaderFeed(RespReader *rr, const char *buf, size_t len, RedisError *err)
{
	if (redisReaderFeed(rr->reader, buf, len) != REDIS_OK)
	{
		RedisErrorSet(err, RS_PROTOCOL, ERRCODE_PROTOCOL_VIOLATION,
					  "invalid reply from Redis",
					  "%s.", rr->reader->errstr[0] ? rr->reader->errstr : "out of memory");
		return false;
	}
	return true;
}

int
RespReaderGet(RespReader *rr, MemoryContext cxt, size_t max_string,
			  RedisReply **reply, RedisError *err)
{
	redisReader *r = rr->reader;
	void	   *obj = NULL;

	rr->cxt = cxt;
	rr->max_string = max_string;
	rr->refused = NULL;

	if (redisReaderGetReply(r, &obj) != REDIS_OK)
	{
		RedisErrorSet(err, RS_PROTOCOL, ERRCODE_PROTOCOL_VIOLATION,
					  "invalid reply from Redis", "%s.",
					  rr->refused ? rr->refused : r->errstr);
		return -1;
	}
	if (obj == NULL)
	{
		/*
		 * Incomplete.  hiredis keeps only the unparsed tail of the current
		 * element buffered, so if that tail is already longer than any
		 * string we would accept, the server is sending something we will
		 * refuse anyway: stop now rather than buffer it.
		 */
		if (r->len - r->pos > max_string + 64)
		{
			RedisErrorSet(err, RS_PROTOCOL, ERRCODE_PROTOCOL_VIOLATION,
						  "invalid reply from Redis",
						  "A string in the reply is larger than bmfredis.max_value_size.");
			return -1;
		}
		return 0;
	}
	*reply = (RedisReply *) obj;
	return 1;
}

size_t
RespReaderBuffered(const RespReader *rr)
{
	return rr->reader->len - rr->reader->pos;
}

const char *
RespTypeName(int type)
{
	switch (type)
	{
		case RESP_STRING:
			return "bulk string";
		case RESP_ARRAY:
			return "array";
		case RESP_INTEGER:
			return "integer";
		case RESP_NIL:
			return "nil";
		case RESP_STATUS:
			return "status";
		case RESP_ERROR:
			return "error";
	}
	return "unknown";
}
