/*-------------------------------------------------------------------------
 *
 * compat.h
 *		The one place where bmfredis meets the differences between the
 *		versions it builds against: PostgreSQL 15 to 18 and hiredis 0.14
 *		and 1.x.  Every other file is written against the names below, so
 *		that a new major version is a change to this file alone.
 *
 * Included after postgres.h.  The hiredis part applies only where
 * hiredis' own headers were included first (src/wire/resp.c: the only
 * file that talks to hiredis, test/layers.pl).
 *
 * Tested on PostgreSQL 15 (Debian 12), 17 (Debian 13) and 18 (Debian
 * forky); 16 is covered by the same guards, but no Debian suite offers it,
 * so it is built and tested nowhere.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMF_COMPAT_H
#define BMF_COMPAT_H

/*
 * 16 moved the varlena macros (VARDATA, VARSIZE_ANY_EXHDR, SET_VARSIZE...)
 * out of postgres.h into varatt.h.
 */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * 16: appendBinaryStringInfo takes its bytes as const void * (the fuzz
 * targets' stubs, test/fuzz/pgstubs.c, define it).
 */
#if PG_VERSION_NUM >= 160000
#define BMF_BINARY_DATA const void *
#else
#define BMF_BINARY_DATA const char *
#endif

/*
 * 16 folded the per-catalog ACL checks (pg_proc_aclcheck and its
 * siblings) into object_aclcheck, which takes the catalog's OID.  The
 * caller includes utils/acl.h, as it would anyway.
 */
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_proc_d.h"
#define BmfProcAclCheck(fn, role, mode) \
	object_aclcheck(ProcedureRelationId, (fn), (role), (mode))
#else
#define BmfProcAclCheck(fn, role, mode) pg_proc_aclcheck((fn), (role), (mode))
#endif

/*
 * 17 replaced the IsBackgroundWorker flag by a process type
 * (AmBackgroundWorkerProcess) and moved a backend's local transaction ID
 * into MyProc->vxid.  Both come from headers the caller includes
 * (miscadmin.h, storage/proc.h).
 */
#if PG_VERSION_NUM >= 170000
#define BmfIsBackgroundWorker() AmBackgroundWorkerProcess()
#define BmfMyLocalTransactionId() (MyProc->vxid.lxid)
#else
#define BmfIsBackgroundWorker() (IsBackgroundWorker)
#define BmfMyLocalTransactionId() (MyProc->lxid)
#endif

/*
 * 17: makeJsonLexContextCstringLen takes a context to fill (NULL: it
 * allocates one) and a size_t length; 15 and 16 take neither.
 */
#if PG_VERSION_NUM >= 170000
#define BmfJsonLexer(json, len, encoding) \
	makeJsonLexContextCstringLen(NULL, (json), (len), (encoding), false)
#else
#define BmfJsonLexer(json, len, encoding) \
	makeJsonLexContextCstringLen((char *) (json), (int) (len), (encoding), false)
#endif

/*
 * 17: a WaitEventSet belongs to a resource owner (NULL: to nobody, for a
 * set that lives as long as its connection) instead of a memory context.
 */
#if PG_VERSION_NUM >= 170000
#define BmfCreateWaitEventSet(nevents) CreateWaitEventSet(NULL, (nevents))
#else
#define BmfCreateWaitEventSet(nevents) CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/*
 * 18 spells "does not return" as pg_noreturn before the declaration
 * (C11's _Noreturn); before it, pg_attribute_noreturn() came after.  The
 * GNU attribute is as good at the front, so older versions get a
 * pg_noreturn that means it.
 */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * hiredis 1.0 added RESP3 to its reader: redisReplyObjectFunctions gained
 * createDouble and createBool, createArray takes a size_t, and the reader
 * no longer limits nesting (0.14 stops at 7 levels).  bmfredis speaks
 * RESP2 only, so src/wire/resp.c refuses every RESP3 type itself and keeps
 * its own depth limit with either version.
 */
#if defined(HIREDIS_MAJOR) && HIREDIS_MAJOR >= 1
#define BMF_HIREDIS_RESP3 1
typedef size_t BmfRespCount;
#elif defined(HIREDIS_MAJOR)
typedef int BmfRespCount;
#endif

#endif							/* BMF_COMPAT_H */
