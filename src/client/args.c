/*-------------------------------------------------------------------------
 *
 * args.c
 *		Argument vectors, keys under the key prefix (the one place it is
 *		added), and Lua scripts by their SHA1.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "utils/builtins.h"
#include "utils/memutils.h"

#include "base/compat.h"
#include "base/guc.h"
#include "client/client.h"

void
RedisArgsInit(RedisArgs *a, int cap)
{
	a->argc = 0;
	a->cap = Max(cap, 4);
	a->argv = palloc(sizeof(char *) * a->cap);
	a->lens = palloc(sizeof(size_t) * a->cap);
	a->script = NULL;
}

void
RedisArgsAdd(RedisArgs *a, const char *s, size_t len)
{
	if (a->argc == a->cap)
	{
		a->cap *= 2;
		a->argv = repalloc(a->argv, sizeof(char *) * a->cap);
		a->lens = repalloc(a->lens, sizeof(size_t) * a->cap);
	}
	a->argv[a->argc] = s;
	a->lens[a->argc] = len;
	a->argc++;
}

void
RedisArgsAddStr(RedisArgs *a, const char *s)
{
	RedisArgsAdd(a, s, strlen(s));
}

void
RedisArgsAddInt(RedisArgs *a, int64 v)
{
	char	   *buf = palloc(24);

	RedisArgsAdd(a, buf, pg_lltoa(v, buf));
}

void
RedisCheckKey(const char *what, size_t len)
{
	bool		namespaced;

	if (len > 0)
		return;
	namespaced = strstr(what, "key") || strstr(what, "tag") || strstr(what, "pattern");
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s must not be empty", what),
			 namespaced ?
			 errhint("Keys, tags and patterns live under bmfredis.key_prefix and must not be empty.") : 0));
}

/*
 * The key prefix (bmfredis.key_prefix) is added here (and by
 * RedisArgsAddKey below, which copies it the same way) and nowhere else:
 * every key, tag index and lock key bmfredis makes starts with what this
 * appends.
 */
void
RedisKeyPrefix(StringInfo out)
{
	appendStringInfoString(out, bmf_key_prefix);
}

void
RedisKeyPrefixed(StringInfo out, const char *key, size_t len)
{
	RedisKeyPrefix(out);
	appendBinaryStringInfo(out, key, len);
}

void
RedisTagKey(StringInfo out, const char *tag, size_t len)
{
	RedisKeyPrefix(out);
	appendStringInfoString(out, "tag:");
	appendBinaryStringInfo(out, tag, len);
}

void
RedisPatternPrefixed(StringInfo out, const char *pattern, size_t len)
{
	const char *p;

	for (p = bmf_key_prefix; *p; p++)
	{
		if (*p == '*' || *p == '?' || *p == '[' || *p == ']' || *p == '\\')
			appendStringInfoChar(out, '\\');
		appendStringInfoChar(out, *p);
	}
	appendBinaryStringInfo(out, pattern, len);
}

/* One allocation of the key's exact size: arrays of a million keys pass here. */
void
RedisArgsAddKey(RedisArgs *a, const char *key, size_t len)
{
	size_t		plen = strlen(bmf_key_prefix);
	char	   *k;

	if (len > MaxAllocSize - plen - 1)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("Redis key too long")));
	k = palloc(plen + len + 1);
	memcpy(k, bmf_key_prefix, plen);
	memcpy(k + plen, key, len);
	k[plen + len] = '\0';
	RedisArgsAdd(a, k, plen + len);
}

void
RedisArgsAddKeyText(RedisArgs *a, text *key)
{
	RedisCheckKey("Redis key", VARSIZE_ANY_EXHDR(key));
	RedisArgsAddKey(a, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
}

/*
 * The SHA1 Redis names a script by.  OpenSSL directly: PostgreSQL's
 * cryptohash API needs a resource owner, which the background worker does
 * not have between transactions.
 */
bool
RedisSha1(const char *data, size_t len, uint8 *digest)
{
	unsigned int dlen = 0;

	return EVP_Digest(data, len, digest, &dlen, EVP_sha1(), NULL) == 1 && dlen == 20;
}

static void
script_sha(RedisScript *script)
{
	uint8		digest[20];
	int			i;

	if (!RedisSha1(script->source, strlen(script->source), digest))
		elog(ERROR, "could not compute the SHA1 of script %s", script->name);
	for (i = 0; i < 20; i++)
		snprintf(script->sha + 2 * i, 3, "%02x", digest[i]);
}

void
RedisArgsScript(RedisArgs *a, RedisScript *script, int numkeys)
{
	Assert(a->argc == 0);
	if (script->sha[0] == '\0')
		script_sha(script);
	RedisArgsAdd(a, "EVALSHA", 7);
	RedisArgsAdd(a, script->sha, 40);
	RedisArgsAddInt(a, numkeys);
	a->script = script;
}
