/*-------------------------------------------------------------------------
 *
 * resp.h
 *		RESP2 encoding (our own formatter) and decoding (hiredis' reader).
 *
 * Only resp.c includes hiredis.  Replies are built by our own object
 * functions directly in a PostgreSQL memory context chosen by the caller,
 * so a reply needs no freeing and cannot leak when an ERROR is raised
 * while it is in use.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_RESP_H
#define BMFREDIS_RESP_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "wire/error.h"

/* Reply types: the same values as hiredis' REDIS_REPLY_* */
#define RESP_STRING		1
#define RESP_ARRAY		2
#define RESP_INTEGER	3
#define RESP_NIL		4
#define RESP_STATUS		5
#define RESP_ERROR		6

typedef struct RedisReply
{
	int			type;
	long long	integer;		/* RESP_INTEGER */
	size_t		len;			/* STRING, STATUS, ERROR */
	char	   *str;			/* NUL-terminated copy */
	size_t		elements;		/* RESP_ARRAY */
	struct RedisReply **element;
} RedisReply;

/* Bounds a server cannot push us past; see RespReaderGet. */
#define RESP_MAX_ELEMENTS	(16 * 1024 * 1024)

typedef struct RespReader RespReader;

/* Append one command, in RESP, to buf.  argv entries are binary-safe;
 * ERROR (54000) past 1 GB. */
extern void RespFormat(StringInfo buf, int argc, const char *const *argv,
					   const size_t *argvlen);

/* The reader is malloc'd by hiredis; free it with RespReaderFree. */
extern RespReader *RespReaderCreate(void);
extern void RespReaderFree(RespReader *r);
extern bool RespReaderFeed(RespReader *r, const char *buf, size_t len,
						   RedisError *err);
/* 1: *reply set; 0: more input needed; -1: protocol error (err set) */
extern int	RespReaderGet(RespReader *r, MemoryContext cxt, size_t max_string,
						  RedisReply **reply, RedisError *err);

/* Is r an error reply with this code (its first word)?  Is it a code that
 * says the node cannot serve us now (READONLY, LOADING, MISCONF, BUSY, ...)? */
extern bool RespErrorIs(const RedisReply *r, const char *code);
extern bool RespErrorCodeIs(const char *text, const char *code);
extern bool RespErrorUnavailable(const RedisReply *r);

/* Bytes received but not yet parsed into a reply. */
extern size_t RespReaderBuffered(const RespReader *r);

/* helpers for code that reads replies */
extern const char *RespTypeName(int type);

#endif							/* BMFREDIS_RESP_H */
