/*-------------------------------------------------------------------------
 *
 * reply.c
 *		Replies to SQL values: shape checks, text, bytea, C strings, JSON.
 *
 * Needs nothing but palloc, StringInfo, the encoding check and ereport,
 * so the fuzz target in test/fuzz links it with resp.c and runs whatever
 * the reader makes of random bytes through every conversion.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"

#include "base/compat.h"
#include "client/reply.h"

static void
unexpected_reply(const RedisReply *r, const char *command, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROTOCOL_VIOLATION),
			 errmsg("unexpected reply from Redis to %s", command),
			 errdetail("Expected %s, got %s%s.", expected, RespTypeName(r->type),
					   r->type == RESP_ARRAY ? psprintf(" of %zu elements", r->elements) : "")));
}

void
RedisExpect(const RedisReply *r, int type, const char *command)
{
	if (r->type != type)
		unexpected_reply(r, command, RespTypeName(type));
}

void
RedisExpectArray(const RedisReply *r, size_t n, int elemtype, const char *command)
{
	size_t		i;

	if (r->type != RESP_ARRAY || r->elements != n)
		unexpected_reply(r, command, psprintf("an array of %zu elements", n));
	if (elemtype != 0)
		for (i = 0; i < n; i++)
			if (r->element[i]->type != elemtype)
				unexpected_reply(r->element[i], command,
								 psprintf("%s elements", RespTypeName(elemtype)));
}

static void
check_text(const RedisReply *r)
{
	if (!pg_verifymbstr(r->str, r->len, true))
		ereport(ERROR,
				(errcode(ERRCODE_CHARACTER_NOT_IN_REPERTOIRE),
				 errmsg("Redis value is not valid text in the database encoding"),
				 errdetail("The value is %zu bytes long and contains a NUL byte or an invalid %s sequence.",
						   r->len, GetDatabaseEncodingName()),
				 errhint("Read it with redis_cache_get_bytea().")));
}

/* Callers map nil to SQL NULL themselves; a nil that reaches here is unexpected. */
static void
check_scalar(const RedisReply *r)
{
	if (r->type == RESP_ARRAY)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("unexpected array reply from Redis")));
	if (r->type == RESP_NIL)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("unexpected nil reply from Redis")));
}

text *
RedisReplyToText(const RedisReply *r)
{
	check_scalar(r);
	if (r->type == RESP_INTEGER)
	{
		char		buf[24];

		return cstring_to_text_with_len(buf, pg_lltoa(r->integer, buf));
	}
	check_text(r);
	return cstring_to_text_with_len(r->str, r->len);
}

bytea *
RedisReplyToBytea(const RedisReply *r)
{
	bytea	   *b;

	check_scalar(r);
	if (r->type == RESP_INTEGER)
		return (bytea *) RedisReplyToText(r);
	b = palloc(VARHDRSZ + r->len);
	SET_VARSIZE(b, VARHDRSZ + r->len);
	memcpy(VARDATA(b), r->str, r->len);
	return b;
}

char *
RedisReplyToCString(const RedisReply *r, const char *what)
{
	(void) what;
	check_scalar(r);
	if (r->type == RESP_INTEGER)
	{
		char	   *buf = palloc(24);

		pg_lltoa(r->integer, buf);
		return buf;
	}
	check_text(r);
	return r->str;
}

/* JSON rendering of any reply (arrays of redis_command, for instance). */
void
RedisReplyAppendJson(StringInfo out, const RedisReply *r)
{
	size_t		i;

	check_stack_depth();
	switch (r->type)
	{
		case RESP_NIL:
			appendStringInfoString(out, "null");
			break;
		case RESP_INTEGER:
			appendStringInfo(out, "%lld", r->integer);
			break;
		case RESP_ARRAY:
			appendStringInfoChar(out, '[');
			for (i = 0; i < r->elements; i++)
			{
				if (i > 0)
					appendStringInfoString(out, ", ");
				RedisReplyAppendJson(out, r->element[i]);
			}
			appendStringInfoChar(out, ']');
			break;
		default:
			check_text(r);
			escape_json(out, r->str);
			break;
	}
}
