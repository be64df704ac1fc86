/*-------------------------------------------------------------------------
 *
 * sqlutil.c
 *		Argument checks and conversions shared by the SQL functions.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_operator.h"
#include "catalog/namespace.h"
#include "access/genam.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "commands/extension.h"
#include "parser/parse_func.h"
#include "utils/acl.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "common/pg_prng.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "base/compat.h"
#include "base/guc.h"
#include "base/sqlutil.h"

text *
BmfTextArg(FunctionCallInfo fcinfo, int argno, const char *what)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	return PG_GETARG_TEXT_PP(argno);
}

int64
BmfIntervalToMs(const Interval *iv, const char *what)
{
	int64		months_us;
	int64		days_us;
	int64		total;

	/* months count as 30 days, as in EXTRACT(EPOCH FROM interval) */
	if (pg_mul_s64_overflow((int64) iv->month, 30 * USECS_PER_DAY, &months_us) ||
		pg_mul_s64_overflow((int64) iv->day, USECS_PER_DAY, &days_us) ||
		pg_add_s64_overflow(months_us, days_us, &total) ||
		pg_add_s64_overflow(total, iv->time, &total))
		ereport(ERROR,
				(errcode(ERRCODE_INTERVAL_FIELD_OVERFLOW),
				 errmsg("%s is out of range", what),
				 errhint("Intervals must fit in 64-bit milliseconds.")));
	if (total <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive", what),
				 strcmp(what, "TTL") == 0 ?
				 errhint("Use NULL for no expiry, or redis_cache_del() to remove a key now.") :
				 strstr(what, "lock TTL") || strstr(what, "permit TTL") ?
				 errhint("A lock or permit lasts at most its TTL (30 seconds when not given), so that a holder that dies cannot keep it for ever; give a positive interval.") :
				 strstr(what, "wait") ?
				 errhint("Use the try_ variants to get NULL at once instead of waiting.") :
				 errhint("Give a positive interval, such as '5 seconds'.")));
	/* round up, so that a sub-millisecond TTL is 1 ms rather than none */
	return total / 1000 + (total % 1000 != 0);
}

Interval *
BmfMsToInterval(int64 ms)
{
	Interval   *iv = palloc0(sizeof(Interval));

	/* whole days in the day field, so that 7 days reads "7 days" */
	iv->day = (int32) (ms / (SECS_PER_DAY * 1000));
	iv->time = (ms % (SECS_PER_DAY * 1000)) * 1000;
	return iv;
}

int64
BmfTimestampToUnixMs(TimestampTz ts, const char *what)
{
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s must be finite", what)));
	/* TimestampTz counts microseconds from 2000-01-01 */
	return ts / 1000 +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
}

text **
BmfTextArrayElements(ArrayType *arr, const char *what, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int			i;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	for (i = 0; i < *n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain nulls", what),
					 errdetail("Element %d is NULL.", i + 1),
					 errhint("Leave NULLs out, for instance with array_remove(arr, NULL).")));
	pfree(nulls);
	return (text **) elems;
}

void
BmfCheckValueSize(size_t len)
{
	if (len > (size_t) bmf_max_value_size)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("value too large for the Redis cache"),
				 errdetail("The value is %zu bytes; bmfredis.max_value_size is %d bytes.",
						   len, bmf_max_value_size),
				 errhint("Raise bmfredis.max_value_size; Redis itself accepts up to its proto-max-bulk-len (512 MB by default).")));
}

char *
BmfEqualityOperator(Oid typid)
{
	TypeCacheEntry *tc = lookup_type_cache(typid, TYPECACHE_EQ_OPR);
	HeapTuple	tup;
	Form_pg_operator op;
	char	   *result;

	if (!OidIsValid(tc->eq_opr))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("type %s has no default equality operator", format_type_be(typid)),
				 errhint("Cache rules need an id column whose type can be compared with =.")));
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(tc->eq_opr));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", tc->eq_opr);
	op = (Form_pg_operator) GETSTRUCT(tup);
	result = psprintf("OPERATOR(%s.%s)",
					  quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(tup);
	return result;
}

/*
 * Whether the current role could invalidate the whole namespace itself:
 * it may execute redis_flush_namespace().  A transaction that queues
 * more keys than bmfredis.max_pending_keys falls back to invalidating
 * the namespace; a role that could not do that by hand gets an ERROR
 * instead.
 */
/* extversion of bmfredis in this database (in a transaction), or "?" */
void
BmfExtensionVersion(char *out, size_t size)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	strlcpy(out, "?", size);
	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber,
				F_NAMEEQ, CStringGetDatum("bmfredis"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_extension_extversion,
									 RelationGetDescr(rel), &isnull);

		if (!isnull)
			text_to_cstring_buffer(DatumGetTextPP(d), out, size);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
}

static Oid
extension_schema(Oid ext)
{
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

bool
BmfMayFlushNamespace(void)
{
	Oid			ext;
	Oid			nsp;
	Oid			fn;
	char	   *nspname;

	if (superuser())
		return true;
	ext = get_extension_oid("bmfredis", true);
	if (!OidIsValid(ext))
		return false;
	nsp = extension_schema(ext);
	nspname = get_namespace_name(nsp);
	if (nspname == NULL)
		return false;
	fn = LookupFuncName(list_make2(makeString(nspname), makeString("redis_flush_namespace")),
						0, NULL, true);
	return OidIsValid(fn) && BmfProcAclCheck(fn, GetUserId(), ACL_EXECUTE) == ACLCHECK_OK;
}
