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

#endif							/* BMFREDIS_GLOB_H */
