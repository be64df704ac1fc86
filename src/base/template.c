/*-------------------------------------------------------------------------
 *
 * template.c
 *		Parser of key and tag templates.
 *
 * Pure: no catalog access, no Redis, no ereport; only palloc.  The fuzz
 * target in test/fuzz links this file alone.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "base/template.h"

#define TEMPLATE_MAX_LEN (64 * 1024)

static void
add_part(Template *t, int *cap, bool is_column, const char *text, int len)
{
	TemplatePart *p;

	if (t->nparts == *cap)
	{
		*cap *= 2;
		t->parts = repalloc(t->parts, sizeof(TemplatePart) * *cap);
	}
	p = &t->parts[t->nparts++];
	p->is_column = is_column;
	p->text = pnstrdup(text, len);
	p->len = len;
	p->attnum = 0;
	if (is_column)
		t->ncolumns++;
}

static void
glob_escape(StringInfo out, const char *s, int len)
{
	int			i;

	for (i = 0; i < len; i++)
	{
		if (s[i] == '*' || s[i] == '?' || s[i] == '[' || s[i] == ']' || s[i] == '\\')
			appendStringInfoChar(out, '\\');
		appendStringInfoChar(out, s[i]);
	}
}

Template *
TemplateParse(const char *src, char **error)
{
	Template   *t;
	StringInfoData lit;
	StringInfoData coarse;
	int			cap = 4;
	size_t		srclen = strlen(src);
	size_t		i = 0;

	*error = NULL;
	if (srclen == 0)
	{
		*error = pstrdup("template is empty");
		return NULL;
	}
	if (srclen > TEMPLATE_MAX_LEN)
	{
		*error = psprintf("template is longer than %d bytes", TEMPLATE_MAX_LEN);
		return NULL;
	}

	t = palloc0(sizeof(Template));
	t->source = pstrdup(src);
	t->parts = palloc(sizeof(TemplatePart) * cap);
	initStringInfo(&lit);
	initStringInfo(&coarse);

	while (i < srclen)
	{
		char		c = src[i];

		if (c == '{' && i + 1 < srclen && src[i + 1] == '{')
		{
			appendStringInfoChar(&lit, '{');
			i += 2;
		}
		else if (c == '}' && i + 1 < srclen && src[i + 1] == '}')
		{
			appendStringInfoChar(&lit, '}');
			i += 2;
		}
		else if (c == '}')
		{
			*error = psprintf("unmatched \"}\" at offset %zu (write \"}}\" for a literal brace)", i);
			return NULL;
		}
		else if (c == '{')
		{
			const char *end = memchr(src + i + 1, '}', srclen - i - 1);
			const char *open = memchr(src + i + 1, '{', srclen - i - 1);

			if (end == NULL || (open != NULL && open < end))
			{
				*error = psprintf("unterminated \"{\" at offset %zu (write \"{{\" for a literal brace)", i);
				return NULL;
			}
			if (end == src + i + 1)
			{
				*error = psprintf("empty column name at offset %zu", i);
				return NULL;
			}
			if (lit.len > 0)
			{
				add_part(t, &cap, false, lit.data, lit.len);
				glob_escape(&coarse, lit.data, lit.len);
				resetStringInfo(&lit);
			}
			add_part(t, &cap, true, src + i + 1, (int) (end - src - i - 1));
			appendStringInfoChar(&coarse, '*');
			i = end - src + 1;
		}
		else
		{
			appendStringInfoChar(&lit, c);
			i++;
		}
	}
	if (lit.len > 0)
	{
		add_part(t, &cap, false, lit.data, lit.len);
		glob_escape(&coarse, lit.data, lit.len);
	}
	t->coarse = coarse.data;
	pfree(lit.data);
	return t;
}
