/*-------------------------------------------------------------------------
 *
 * url.c
 *		redis:// and rediss:// connection URLs.
 *
 * The grammar is the one hosted Redis services hand out (Upstash:
 * rediss://default:PASSWORD@ENDPOINT:PORT) and that redis-cli and the
 * common clients accept:
 *
 *		redis[s]://[user[:password]@]host[:port][/db]
 *
 * host may be a bracketed IPv6 literal.  User and password are
 * percent-decoded, so a password containing '@', ':' or '/' is written
 * %40, %3A, %2F.  Anything else (a query string, a fragment, a path after
 * the database number) is refused rather than silently ignored: a setting
 * that is half understood points a server somewhere unintended.
 *
 * Messages never quote the password; they point at the part that is wrong.
 *
 *-------------------------------------------------------------------------
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/url.h"

static bool
fail(char *errbuf, size_t errlen, const char *msg)
{
	snprintf(errbuf, errlen, "%s", msg);
	return false;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode [s, s+len) into out; false on a bad escape, NUL or overflow. */
static bool
decode(const char *s, size_t len, char *out, size_t cap)
{
	size_t		o = 0;
	size_t		i;

	for (i = 0; i < len; i++)
	{
		int			c = (unsigned char) s[i];

		if (c == '%')
		{
			int			hi,
						lo;

			if (i + 2 >= len)
				return false;
			hi = hexval(s[i + 1]);
			lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = hi * 16 + lo;
			i += 2;
		}
		if (c == 0 || o + 1 >= cap)
			return false;
		out[o++] = (char) c;
	}
	out[o] = '\0';
	return true;
}

/* A decimal number in [lo, hi] spanning exactly [s, s+len). */
static bool
number(const char *s, size_t len, long lo, long hi, int *out)
{
	long		v = 0;
	size_t		i;

	if (len == 0 || len > 6)
		return false;
	for (i = 0; i < len; i++)
	{
		if (!isdigit((unsigned char) s[i]))
			return false;
		v = v * 10 + (s[i] - '0');
	}
	if (v < lo || v > hi)
		return false;
	*out = (int) v;
	return true;
}

bool
BmfUrlParse(const char *url, BmfUrl *out, char *errbuf, size_t errlen)
{
	const char *p;
	const char *auth_end;
	const char *at;
	const char *host;
	const char *host_end;
	const char *port = NULL;
	size_t		hostlen;

	memset(out, 0, sizeof(*out));
	out->port = 6379;

	if (strncasecmp(url, "redis://", 8) == 0)
		p = url + 8;
	else if (strncasecmp(url, "rediss://", 9) == 0)
	{
		out->tls = true;
		p = url + 9;
	}
	else
		return fail(errbuf, errlen, "The URL must start with redis:// or rediss://.");

	/* the authority runs to the first '/'; user info to its last '@' */
	auth_end = strchr(p, '/');
	if (auth_end == NULL)
		auth_end = p + strlen(p);
	if (memchr(p, '?', auth_end - p) || memchr(p, '#', auth_end - p))
		return fail(errbuf, errlen, "Query strings and fragments are not supported; percent-encode '?' and '#' in a password.");

	at = NULL;
	for (host = p; host < auth_end; host++)
		if (*host == '@')
			at = host;
	if (at)
	{
		const char *colon = memchr(p, ':', at - p);
		const char *user_end = colon ? colon : at;

		if (!decode(p, user_end - p, out->username, sizeof(out->username)))
			return fail(errbuf, errlen, "The user name is not valid (bad percent-encoding, or too long).");
		if (colon && !decode(colon + 1, at - colon - 1, out->password, sizeof(out->password)))
			return fail(errbuf, errlen, "The password is not valid (bad percent-encoding, or too long).");
		host = at + 1;
	}
	else
		host = p;

	/* host: [v6] or a name / IPv4 address, then an optional :port */
	if (*host == '[')
	{
		const char *close = memchr(host, ']', auth_end - host);

		if (close == NULL)
			return fail(errbuf, errlen, "An IPv6 address must be closed with ']'.");
		host_end = close;
		host++;
		if (close + 1 < auth_end)
		{
			if (close[1] != ':')
				return fail(errbuf, errlen, "Only \":port\" may follow \"]\".");
			port = close + 2;
		}
	}
	else
	{
		const char *colon = memchr(host, ':', auth_end - host);

		host_end = colon ? colon : auth_end;
		if (colon)
			port = colon + 1;
	}
	hostlen = host_end - host;
	if (hostlen == 0)
		return fail(errbuf, errlen, "The URL names no host.");
	if (hostlen >= sizeof(out->host))
		return fail(errbuf, errlen, "The host name is too long.");
	for (p = host; p < host_end; p++)
		if (!(isalnum((unsigned char) *p) || *p == '.' || *p == '-' ||
			  *p == '_' || *p == ':' || *p == '%'))
			return fail(errbuf, errlen, "The host name contains a character that is not allowed.");
	memcpy(out->host, host, hostlen);
	out->host[hostlen] = '\0';

	if (port && !number(port, auth_end - port, 1, 65535, &out->port))
		return fail(errbuf, errlen, "The port must be a number from 1 to 65535.");

	/* an optional /db, nothing after it */
	if (*auth_end == '/')
	{
		const char *db = auth_end + 1;
		size_t		dblen = strlen(db);

		if (dblen > 0 && !number(db, dblen, 0, 65535, &out->db))
			return fail(errbuf, errlen, "The path must be a database number from 0 to 65535.");
	}
	return true;
}

void
BmfUrlRedact(const char *url, char *out, size_t outlen)
{
	const char *start = strstr(url, "://");
	const char *auth_end;
	const char *at = NULL;
	const char *colon;
	const char *q;

	if (outlen == 0)
		return;
	if (start == NULL)
	{
		/* not a URL at all: it may be a bare secret */
		snprintf(out, outlen, "%s", url[0] ? "********" : "");
		return;
	}
	start += 3;
	auth_end = strchr(start, '/');
	if (auth_end == NULL)
		auth_end = start + strlen(start);
	for (q = start; q < auth_end; q++)
		if (*q == '@')
			at = q;
	if (at == NULL)
	{
		snprintf(out, outlen, "%s", url);
		return;
	}
	colon = memchr(start, ':', at - start);
	if (colon)
		snprintf(out, outlen, "%.*s********%s", (int) (colon + 1 - url), url, at);
	else
		snprintf(out, outlen, "%.*s********%s", (int) (start - url), url, at);
}

int
BmfHostPort(char *buf, size_t len, const char *host, int port)
{
	return snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

bool
BmfSplitHostPort(char *s, const char **host, int *port)
{
	char	   *colon = strrchr(s, ':');
	char	   *end;
	long		p;

	if (colon == NULL || colon == s)
		return false;
	p = strtol(colon + 1, &end, 10);
	if (end == colon + 1 || *end != '\0' || p < 1 || p > 65535)
		return false;
	*colon = '\0';
	if (s[0] == '[' && colon[-1] == ']')
	{
		colon[-1] = '\0';
		s++;
	}
	if (s[0] == '\0' || strpbrk(s, "[]") != NULL)
		return false;
	*host = s;
	*port = (int) p;
	return true;
}
