/*
 * pgstubs.c: the few PostgreSQL backend services that resp.c, reply.c and
 * template.c use, for the libFuzzer targets (no server in the process).
 *
 * Memory: palloc and friends are malloc with a header linking every live
 * chunk, so fuzz_free_all() releases what one input allocated, and pfree
 * really frees (AddressSanitizer sees use after pfree).  Errors: an
 * ereport(ERROR) longjmps to the target's fuzz_catch point, as PG_TRY
 * would.  Encoding: UTF-8, checked here by a strict validator.
 *
 * Test code, written for bmfredis; not part of the extension.
 */
#include "postgres.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "base/compat.h"
#include "fuzz.h"
#include "wire/error.h"

/* ---- memory ---- */

typedef struct Chunk
{
	struct Chunk *prev;
	struct Chunk *next;
	size_t		size;
	size_t		pad;			/* keeps the payload 16-byte aligned */
} Chunk;

static Chunk live = {&live, &live, 0, 0};

MemoryContext CurrentMemoryContext = (MemoryContext) &live;
MemoryContext TopMemoryContext = (MemoryContext) &live;
MemoryContext ErrorContext = (MemoryContext) &live;

/* a smaller ceiling than 1 GB, so "out of memory" paths are reached */
#define FUZZ_MAX_ALLOC (64 * 1024 * 1024)

static void *
chunk_alloc(size_t size, bool zero, bool no_oom)
{
	Chunk	   *c;

	if (size > FUZZ_MAX_ALLOC || (c = malloc(sizeof(Chunk) + size)) == NULL)
	{
		if (no_oom)
			return NULL;
		elog(ERROR, "out of memory (fuzz allocation of %zu bytes)", size);
	}
	c->size = size;
	c->next = live.next;
	c->prev = &live;
	live.next->prev = c;
	live.next = c;
	if (zero)
		memset(c + 1, 0, size);
	return c + 1;
}

void
fuzz_free_all(void)
{
	while (live.next != &live)
	{
		Chunk	   *c = live.next;

		live.next = c->next;
		free(c);
	}
	live.prev = &live;
}

void *
palloc(Size size)
{
	return chunk_alloc(size, false, false);
}

void *
palloc0(Size size)
{
	return chunk_alloc(size, true, false);
}

void *
palloc_extended(Size size, int flags)
{
	return chunk_alloc(size, (flags & MCXT_ALLOC_ZERO) != 0, (flags & MCXT_ALLOC_NO_OOM) != 0);
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	(void) context;
	return palloc(size);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	(void) context;
	return palloc0(size);
}

void *
MemoryContextAllocExtended(MemoryContext context, Size size, int flags)
{
	(void) context;
	return palloc_extended(size, flags);
}

void
pfree(void *pointer)
{
	Chunk	   *c = ((Chunk *) pointer) - 1;

	c->prev->next = c->next;
	c->next->prev = c->prev;
	free(c);
}

void *
repalloc(void *pointer, Size size)
{
	Chunk	   *old = ((Chunk *) pointer) - 1;
	void	   *p = palloc(size);

	memcpy(p, pointer, Min(old->size, size));
	pfree(pointer);
	return p;
}

char *
MemoryContextStrdup(MemoryContext context, const char *string)
{
	(void) context;
	return pstrdup(string);
}

char *
pstrdup(const char *in)
{
	return pnstrdup(in, strlen(in));
}

char *
pnstrdup(const char *in, Size len)
{
	char	   *out;

	len = strnlen(in, len);
	out = palloc(len + 1);
	memcpy(out, in, len);
	out[len] = '\0';
	return out;
}

char *
psprintf(const char *fmt,...)
{
	va_list		ap;
	int			n;
	char	   *out;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	out = palloc(n + 1);
	va_start(ap, fmt);
	vsnprintf(out, n + 1, fmt, ap);
	va_end(ap);
	return out;
}

/* ---- StringInfo ---- */

void
initStringInfo(StringInfo str)
{
	str->maxlen = 1024;
	str->data = palloc(str->maxlen);
	resetStringInfo(str);
}

void
resetStringInfo(StringInfo str)
{
	str->data[0] = '\0';
	str->len = 0;
	str->cursor = 0;
}

void
enlargeStringInfo(StringInfo str, int needed)
{
	int			newlen = str->maxlen;

	if (needed < 0 || (Size) needed >= MaxAllocSize - (Size) str->len)
		elog(ERROR, "string buffer would exceed 1 GB");
	needed += str->len + 1;
	if (needed <= str->maxlen)
		return;
	while (needed > newlen)
		newlen *= 2;
	str->data = repalloc(str->data, newlen);
	str->maxlen = newlen;
}

void
appendBinaryStringInfo(StringInfo str, BMF_BINARY_DATA data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
	str->data[str->len] = '\0';
}

void
appendStringInfoString(StringInfo str, const char *s)
{
	appendBinaryStringInfo(str, s, strlen(s));
}

void
appendStringInfoChar(StringInfo str, char ch)
{
	appendBinaryStringInfo(str, &ch, 1);
}

void
appendStringInfo(StringInfo str, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	enlargeStringInfo(str, n);
	va_start(ap, fmt);
	vsnprintf(str->data + str->len, n + 1, fmt, ap);
	va_end(ap);
	str->len += n;
}

/* ---- errors ---- */

sigjmp_buf *PG_exception_stack = NULL;
ErrorContextCallback *error_context_stack = NULL;
jmp_buf    *fuzz_catch = NULL;
static int	current_elevel;

bool
errstart(int elevel, const char *domain)
{
	(void) domain;
	current_elevel = elevel;
	return elevel >= ERROR;		/* lower levels are not interesting here */
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	(void) filename;
	(void) lineno;
	(void) funcname;
	if (current_elevel >= ERROR)
	{
		if (fuzz_catch == NULL)
			abort();			/* an ERROR nobody expected */
		longjmp(*fuzz_catch, 1);
	}
}

void
pg_re_throw(void)
{
	if (fuzz_catch == NULL)
		abort();
	longjmp(*fuzz_catch, 1);
}

int
errcode(int sqlerrcode)
{
	(void) sqlerrcode;
	return 0;
}

/* the messages are formatted, so bad format arguments still show up */
static int
format_and_drop(const char *fmt, va_list ap)
{
	char		buf[256];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	return 0;
}

#define FORMATTER(name) \
int name(const char *fmt,...) \
{ \
	va_list ap; \
	int r; \
	va_start(ap, fmt); \
	r = format_and_drop(fmt, ap); \
	va_end(ap); \
	return r; \
}
FORMATTER(errmsg)
FORMATTER(errmsg_internal)
FORMATTER(errdetail)
FORMATTER(errhint)

/* ---- what reply.c needs from the rest of the server ---- */

void
check_stack_depth(void)
{
}

const char *
GetDatabaseEncodingName(void)
{
	return "UTF8";
}

/* strict UTF-8, no NUL: what the server's check accepts in a UTF8 database */
bool
pg_verifymbstr(const char *mbstr, int len, bool noError)
{
	const unsigned char *s = (const unsigned char *) mbstr;
	int			i = 0;

	while (i < len)
	{
		unsigned char c = s[i];
		int			n;
		int			k;
		unsigned int cp;

		if (c == 0)
			goto bad;
		if (c < 0x80)
		{
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			n = 1, cp = c & 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			n = 2, cp = c & 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			n = 3, cp = c & 0x07;
		else
			goto bad;
		if (i + n >= len)
			goto bad;
		for (k = 1; k <= n; k++)
		{
			if ((s[i + k] & 0xC0) != 0x80)
				goto bad;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
			(n == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
			goto bad;
		i += n + 1;
	}
	return true;
bad:
	if (!noError)
		elog(ERROR, "invalid byte sequence for encoding \"UTF8\"");
	return false;
}

text *
cstring_to_text_with_len(const char *s, int len)
{
	text	   *t = palloc(len + VARHDRSZ);

	SET_VARSIZE(t, len + VARHDRSZ);
	memcpy(VARDATA(t), s, len);
	return t;
}

int
pg_lltoa(int64 value, char *a)
{
	return sprintf(a, "%lld", (long long) value);
}

void
escape_json(StringInfo buf, const char *str)
{
	const unsigned char *p;

	appendStringInfoChar(buf, '"');
	for (p = (const unsigned char *) str; *p; p++)
	{
		if (*p == '"' || *p == '\\')
		{
			appendStringInfoChar(buf, '\\');
			appendStringInfoChar(buf, (char) *p);
		}
		else if (*p < 0x20)
			appendStringInfo(buf, "\\u%04x", *p);
		else
			appendStringInfoChar(buf, (char) *p);
	}
	appendStringInfoChar(buf, '"');
}
