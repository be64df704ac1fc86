/*-------------------------------------------------------------------------
 *
 * url.h
 *		redis:// and rediss:// connection URLs (bmfredis.url).
 *
 * Pure string functions with no PostgreSQL calls (no palloc, no ereport),
 * so the fuzz target links them as they are.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_URL_H
#define BMFREDIS_URL_H

#include <stdbool.h>
#include <stddef.h>

typedef struct BmfUrl
{
	bool		tls;			/* rediss:// */
	int			port;			/* 6379 when not given */
	int			db;				/* 0 when not given */
	char		host[256];		/* without the brackets of an IPv6 literal */
	char		username[256];	/* "" when not given */
	char		password[1024]; /* "" when not given */
} BmfUrl;

/*
 * Parse redis[s]://[user[:password]@]host[:port][/db].  User and password
 * are percent-decoded.  Returns false with a message (never containing the
 * password) in errbuf.
 */
extern bool BmfUrlParse(const char *url, BmfUrl *out, char *errbuf, size_t errlen);

/*
 * Copy url to out with the password (or, when there is no ':', the whole
 * user part) replaced by "********".  Works on any string, parsable or not.
 */
extern void BmfUrlRedact(const char *url, char *out, size_t outlen);

/*
 * host:port into buf, an IPv6 literal in brackets ([::1]:6379), the form
 * every node and address is named by.  Returns what snprintf returns.
 */
extern int	BmfHostPort(char *buf, size_t len, const char *host, int port);

/*
 * Split "host:port" or "[v6]:port" in place (s is modified): *host points
 * into s, without brackets.  false if there is no host, a host with
 * brackets inside, or no port from 1 to 65535.  (A bare "::1:7000", as
 * Redis writes IPv6 addresses in MOVED, splits at the last colon.)
 */
extern bool BmfSplitHostPort(char *s, const char **host, int *port);

#endif							/* BMFREDIS_URL_H */
