/*-------------------------------------------------------------------------
 *
 * glob.c
 *		Redis' glob matching, so that a channel confinement written as a
 *		PSUBSCRIBE pattern means here what it means to Redis.
 *
 * Written from Redis' documentation of the syntax (KEYS, PSUBSCRIBE): *
 * any run of bytes, ? one byte, [...] a set with ranges a-z and a leading
 * ^ for its complement, \ takes the next byte literally.  An unterminated
 * set matches as if closed at the end.  Iterative with one backtrack
 * point for the last *, so a pattern cannot make it exponential.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "base/glob.h"

/* Match one [...] set at *p against c; *p is left after the set. */
static bool
match_set(const char **pp, const char *pend, unsigned char c)
{
	const char *p = *pp + 1;	/* after '[' */
	bool		negate = false;
	bool		found = false;

	if (p < pend && *p == '^')
	{
		negate = true;
		p++;
	}
	while (p < pend && *p != ']')
	{
		if (*p == '\\' && p + 1 < pend)
		{
			p++;
			if ((unsigned char) *p == c)
				found = true;
			p++;
		}
		else if (p + 2 < pend && p[1] == '-' && p[2] != ']')
		{
			unsigned char lo = (unsigned char) p[0];
			unsigned char hi = (unsigned char) p[2];

			if (lo > hi)
			{
				unsigned char t = lo;

				lo = hi;
				hi = t;
			}
			if (c >= lo && c <= hi)
				found = true;
			p += 3;
		}
		else
		{
			if ((unsigned char) *p == c)
				found = true;
			p++;
		}
	}
	if (p < pend)
		p++;					/* the ']' */
	*pp = p;
	return negate ? !found : found;
}

bool
BmfGlobMatch(const char *pattern, size_t plen, const char *str, size_t slen)
{
	const char *p = pattern;
	const char *pend = pattern + plen;
	const char *s = str;
	const char *send = str + slen;
	const char *star_p = NULL;	/* after the last '*' seen */
	const char *star_s = NULL;	/* where that '*' is retried from */

	while (s < send)
	{
		if (p < pend && *p == '*')
		{
			while (p < pend && *p == '*')
				p++;
			if (p == pend)
				return true;
			star_p = p;
			star_s = s;
			continue;
		}
		if (p < pend)
		{
			const char *next = p;
			bool		ok;

			if (*p == '?')
			{
				ok = true;
				next = p + 1;
			}
			else if (*p == '[')
				ok = match_set(&next, pend, (unsigned char) *s);
			else if (*p == '\\' && p + 1 < pend)
			{
				ok = p[1] == *s;
				next = p + 2;
			}
			else
			{
				ok = *p == *s;
				next = p + 1;
			}
			if (ok)
			{
				p = next;
				s++;
				continue;
			}
		}
		if (star_p == NULL)
			return false;
		p = star_p;
		s = ++star_s;
	}
	while (p < pend && *p == '*')
		p++;
	return p == pend;
}

bool
BmfListNext(const char **p, const char **item, size_t *len)
{
	const char *s = *p;
	const char *end;
	size_t		n;

	if (s == NULL)
		return false;
	end = strchr(s, ',');
	n = end ? (size_t) (end - s) : strlen(s);
	while (n > 0 && *s == ' ')
	{
		s++;
		n--;
	}
	while (n > 0 && s[n - 1] == ' ')
		n--;
	*item = s;
	*len = n;
	*p = end ? end + 1 : NULL;
	return true;
}
