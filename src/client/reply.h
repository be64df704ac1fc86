/*-------------------------------------------------------------------------
 *
 * reply.h
 *		Replies to SQL values, and checks of their shape.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_REPLY_H
#define BMFREDIS_REPLY_H

#include "postgres.h"

#include "lib/stringinfo.h"

#include "wire/resp.h"

/*
 * Shape checks for replies a well-behaved Redis always sends in one form:
 * anything else is a protocol violation (08P01), never a value guessed at.
 * RedisExpectArray also checks the element count and, unless elemtype is
 * 0, the type of every element.
 */
extern void RedisExpect(const RedisReply *r, int type, const char *command);
extern void RedisExpectArray(const RedisReply *r, size_t n, int elemtype,
							 const char *command);

/* Reply conversions; ERROR on bytes that are not valid text */
extern text *RedisReplyToText(const RedisReply *r);
extern bytea *RedisReplyToBytea(const RedisReply *r);
extern char *RedisReplyToCString(const RedisReply *r, const char *what);
extern void RedisReplyAppendJson(StringInfo out, const RedisReply *r);

#endif							/* BMFREDIS_REPLY_H */
