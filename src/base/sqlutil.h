/*-------------------------------------------------------------------------
 *
 * sqlutil.h
 *		Argument checks and conversions shared by the SQL-callable
 *		functions of every feature: keys, TTLs, arrays of keys.
 *
 * Each check raises an ERROR with an SQLSTATE and a hint; none talks to
 * Redis.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_SQLUTIL_H
#define BMFREDIS_SQLUTIL_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/array.h"

/* The text argument argno; ERROR (22004) naming what when it is NULL. */
extern text *BmfTextArg(FunctionCallInfo fcinfo, int argno, const char *what);

/* A TTL interval in milliseconds; ERROR unless 1 ms <= ttl < ~292k years. */
extern int64 BmfIntervalToMs(const Interval *iv, const char *what);

/* Milliseconds as an interval. */
extern Interval *BmfMsToInterval(int64 ms);

/* Unix epoch milliseconds of a finite timestamptz. */
extern int64 BmfTimestampToUnixMs(TimestampTz ts, const char *what);

/*
 * The elements of a one-dimensional text[] with no NULLs (what names it in
 * errors).  *n gets the count; the pointers point into the array.
 */
extern text **BmfTextArrayElements(ArrayType *arr, const char *what, int *n);

/*
 * "OPERATOR(schema.=)" for the default equality operator of a type, for
 * SQL that bmfredis runs with SPI under the caller's search_path: nothing
 * in it may resolve through that path (a user's operator or type would
 * otherwise be called).  ERROR when the type has no equality operator.
 */
extern char *BmfEqualityOperator(Oid typid);

/* Check a value against bmfredis.max_value_size. */
extern void BmfCheckValueSize(size_t len);

/* Whether the current role may execute redis_flush_namespace(). */
extern bool BmfMayFlushNamespace(void);

/* extversion of bmfredis in this database (in a transaction), or "?" */
extern void BmfExtensionVersion(char *out, size_t size);

#endif							/* BMFREDIS_SQLUTIL_H */
