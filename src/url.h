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

#endif							/* BMFREDIS_URL_H */
