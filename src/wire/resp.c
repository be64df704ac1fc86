/*-------------------------------------------------------------------------
 *
 * resp.c
 *		RESP2: commands formatted here, replies parsed by hiredis' redisReader
 *		into our own RedisReply objects.
 *
 * hiredis allocates with malloc.  The reader's own buffer is malloc'd and
 * lives with the connection (freed by RespReaderFree); the reply objects
 * are built by the object functions below, with palloc in the memory context the caller passes to
 * RespReaderGet, and with MCXT_ALLOC_NO_OOM so that running out of memory
 * is reported to hiredis as a NULL object (a reader error) instead of a
 * longjmp through hiredis' frames.  freeObject is therefore a no-op: the
 * objects go away with their context.
 *
 * A server cannot push us past these bounds: a string longer than
 * max_string (bmfredis.max_value_size), an array of more than
 * RESP_MAX_ELEMENTS, arrays nested more than RESP_MAX_DEPTH deep, or a
 * RESP3 type (double, boolean, map, set, push, attribute, verbatim string,
 * big number): bmfredis never says HELLO 3, so a RESP3 reply is one it did
 * not ask for.  Each is a protocol error, after which the connection must
 * be dropped.  hiredis 0.14 refuses the RESP3 types and deep nesting
 * itself; 1.x parses both, so the checks below are ours with either
 * version (base/compat.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

#include "utils/memutils.h"

#include "base/compat.h"
#include "wire/resp.h"

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

/* "<kind><n>\r\n" at p; returns the end */
static char *
put_header(char *p, char kind, size_t n)
{
	char		digits[20];
	int			i = 0;

	*p++ = kind;
	do
	{
		digits[i++] = (char) ('0' + n % 10);
		n /= 10;
	} while (n > 0);
	while (i > 0)
		*p++ = digits[--i];
	*p++ = '\r';
	*p++ = '\n';
	return p;
}

/*
 * A command is an array of bulk strings: "*<argc>\r\n" then
 * "$<len>\r\n<bytes>\r\n" per argument.  Formatted here, straight into the
 * StringInfo, rather than by redisFormatCommandArgv: hiredis formats every
 * length through sprintf into a malloc'd buffer that is then copied, a
 * quarter of the user-space time of a GET round trip (perf, see README).
 */
void
RespFormat(StringInfo buf, int argc, const char *const *argv,
		   const size_t *argvlen)
{
	size_t		total = 1 + 20 + 2;
	char	   *p;
	int			i;

	for (i = 0; i < argc; i++)
	{
		total += 1 + 20 + 2 + 2;
		if (argvlen[i] >= MaxAllocSize - total)
			total = MaxAllocSize;
		else
			total += argvlen[i];
	}
	if (total >= (size_t) (MaxAllocSize - buf->len - 1))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("Redis command too large"),
				 errdetail("A command of %d arguments would exceed 1 GB, together with %d bytes already batched.",
						   argc, buf->len)));
	enlargeStringInfo(buf, (int) total);
	p = put_header(buf->data + buf->len, '*', (size_t) argc);
	for (i = 0; i < argc; i++)
	{
		p = put_header(p, '$', argvlen[i]);
		memcpy(p, argv[i], argvlen[i]);
		p += argvlen[i];
		*p++ = '\r';
		*p++ = '\n';
	}
	buf->len = (int) (p - buf->data);
	buf->data[buf->len] = '\0';
}

/*
 * Arrays nested in at most 7 others (hiredis 0.14's own limit).  No reply
 * of a command bmfredis sends on its own is nested deeper than 4; what
 * redis_command relays can be (a script's nested tables, COMMAND DOCS),
 * and is refused as it always was with 0.14, without counting against the
 * node.
 */
#define RESP_MAX_DEPTH	8

/* ---- reply object functions, called from inside redisReaderGetReply ---- */

/* a reply type bmfredis did not ask for: RESP3's, which hiredis 1.x parses */
static void *
refuse_resp3(const redisReadTask *task)
{
	((RespReader *) task->privdata)->refused =
		"a RESP3 reply type, which bmfredis does not ask for";
	return NULL;
}

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

	if (task->type != REDIS_REPLY_STRING && task->type != REDIS_REPLY_STATUS &&
		task->type != REDIS_REPLY_ERROR)
		return refuse_resp3(task);	/* a verbatim string or big number */
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
create_array(const redisReadTask *task, BmfRespCount elements)
{
	RespReader *rr = (RespReader *) task->privdata;
	RedisReply *rep;
	const redisReadTask *t;
	int			depth = 0;

	if (task->type != REDIS_REPLY_ARRAY)
		return refuse_resp3(task);	/* a map, set, push or attribute */
	if ((int64) elements < 0 || (int64) elements > RESP_MAX_ELEMENTS)
	{
		rr->refused = "an array in the reply has too many elements";
		return NULL;
	}
	for (t = task->parent; t != NULL; t = t->parent)
		if (++depth >= RESP_MAX_DEPTH)
		{
			rr->refused = "arrays in the reply are nested too deep";
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

#ifdef BMF_HIREDIS_RESP3
static void *
create_double(const redisReadTask *task, double value, char *str, size_t len)
{
	(void) value;
	(void) str;
	(void) len;
	return refuse_resp3(task);
}

static void *
create_bool(const redisReadTask *task, int value)
{
	(void) value;
	return refuse_resp3(task);
}
#endif

/* Objects live in a memory context; nothing to free here. */
static void
free_object(void *obj)
{
	(void) obj;
}

static redisReplyObjectFunctions reply_functions = {
	.createString = create_string,
	.createArray = create_array,
	.createInteger = create_integer,
#ifdef BMF_HIREDIS_RESP3
	.createDouble = create_double,
	.createBool = create_bool,
#endif
	.createNil = create_nil,
	.freeObject = free_object
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
		/*
		 * Refused by our bounds, not malformed: the node is well.  hiredis
		 * 0.14 applies the depth bound itself, before our createArray.
		 */
		err->node_alive = (rr->refused != NULL || strstr(r->errstr, "nested") != NULL);
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
			err->node_alive = true;
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

/*
 * Error replies start with a code: an upper-case word ("WRONGTYPE Operation
 * against ...", "LOADING Valkey is loading ...").  Only the code is
 * stable: servers reword the rest (Valkey 8 says "Valkey is loading" where
 * Redis says "Redis is loading"), so errors are told apart by the whole
 * code word, never by prefix (BUSYKEY and BUSYGROUP are not BUSY) and
 * never by the text after it.
 */
bool
RespErrorCodeIs(const char *text, const char *code)
{
	size_t		n = strlen(code);

	return strncmp(text, code, n) == 0 && (text[n] == ' ' || text[n] == '\0');
}

bool
RespErrorIs(const RedisReply *r, const char *code)
{
	return r->type == RESP_ERROR && RespErrorCodeIs(r->str, code);
}

/*
 * Codes that say the node cannot serve this call now, whatever the call:
 * a replica or a loading, misconfigured (MISCONF: writes refused after a
 * failed save), script-blocked (BUSY), partitioned or cut-off node.  The
 * caller treats them as a failure of the node (backoff, retry queue), not
 * as an answer.
 */
bool
RespErrorUnavailable(const RedisReply *r)
{
	static const char *const codes[] = {
		"READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS", "CLUSTERDOWN",
		"MISCONF", "BUSY"
	};

	if (r->type != RESP_ERROR)
		return false;
	for (int i = 0; i < (int) lengthof(codes); i++)
		if (RespErrorIs(r, codes[i]))
			return true;
	return false;
}
