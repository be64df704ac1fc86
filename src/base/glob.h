/*-------------------------------------------------------------------------
 *
 * glob.h
 *		Redis' glob syntax (* ? [abc] [^a-z] \x), as PSUBSCRIBE and SCAN
 *		MATCH read it.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_GLOB_H
#define BMFREDIS_GLOB_H

#include "postgres.h"

/* Whether str matches pattern, both of the given lengths. */
extern bool BmfGlobMatch(const char *pattern, size_t plen,
						 const char *str, size_t slen);

/*
 * Comma-separated lists of names or patterns (bmfredis.near_cache_prefixes,
 * bmfredis.stream_channels): the item at *p, spaces trimmed (it may be
 * empty), and *p moved past it; false once the list is done.
 */
extern bool BmfListNext(const char **p, const char **item, size_t *len);

#endif							/* BMFREDIS_GLOB_H */
