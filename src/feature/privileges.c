/*-------------------------------------------------------------------------
 *
 * privileges.c
 *		Channel confinement (bmfredis.role_channels) and the change-event
 *		filter of redis_listen.
 *
 * EXECUTE on the functions decides who may call what (redis_grant gives it
 * by capability).  Two things need more than that, and are decided here:
 *
 *	- A role confined with redis_confine_channels may publish only on
 *	  channels matching its patterns, and redis_listen returns it only the
 *	  messages of such channels, whatever it subscribed to.  The patterns
 *	  are those of the calling role itself (current_user), not of the
 *	  roles it is a member of: a confinement narrows one role.
 *	- The change events of a watched table carry its rows; redis_listen
 *	  returns them only to a role that may SELECT the table (or all its
 *	  columns), confined or not.
 *
 * And one thing is said: PostgreSQL's own "permission denied for function
 * redis_cache_get" carries a hint naming redis_grant (an emit_log_hook),
 * since 1.1 took every Redis-reaching function away from PUBLIC and an
 * application that worked under 1.0 meets it first.
 *
 * Superusers are neither confined nor filtered.  The bookkeeping tables are
 * read as the bootstrap superuser (they are not granted to anyone), with
 * the calling role restored by PostgreSQL on any error.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "base/compat.h"
#include "base/glob.h"
#include "base/guc.h"
#include "feature/privileges.h"

/* The confinement of one role, cached until bmfredis.role_channels changes. */
typedef struct Confinement
{
	Oid			role;
	bool		valid;
	bool		confined;
	int			n;
	char	  **patterns;
	int		   *lens;
} Confinement;

static Confinement cache = {InvalidOid, false, false, 0, NULL, NULL};
static MemoryContext cache_cxt = NULL;
static Oid	role_channels_relid = InvalidOid;
static bool callback_registered = false;

struct PrivListen
{
	bool		everything;		/* superuser */
	const Confinement *conf;	/* NULL: not confined */
	int			ndenied;
	char	  **denied;			/* "<rule channel>:" of tables it may not read */
	int		   *denied_lens;
};

static emit_log_hook_type prev_emit_log_hook = NULL;

/*
 * The objects capabilities cover (bmfredis.capability_objects()), by the
 * name PostgreSQL's message gives them (without schema): another
 * application's redis_sessions table gets no hint.
 */
static const char *const granted_objects[] = {
	"redis_cache_get", "redis_cache_get_json", "redis_cache_get_bytea", "redis_cache_mget",
	"redis_cache_exists", "redis_cache_ttl", "redis_cached", "redis_cache_set",
	"redis_cache_mset", "redis_cache_del", "redis_cache_expire", "redis_cache_expire_at",
	"redis_cache_incr", "redis_invalidate", "redis_invalidate_tag", "redis_invalidate_at",
	"redis_invalidate_tag_at", "redis_invalidate_entity", "redis_pending_invalidations",
	"redis_publish", "redis_publish_event", "redis_listen", "notify_payloads",
	"redis_lock", "redis_try_lock", "redis_xact_lock", "redis_try_xact_lock",
	"redis_lock_fenced", "redis_unlock", "redis_lock_extend", "redis_locks", "redis_with_lock",
	"redis_semaphore_acquire", "redis_semaphore_try_acquire", "redis_semaphore_xact_acquire",
	"redis_semaphore_try_xact_acquire", "redis_semaphore_release", "redis_semaphore_refresh",
	"redis_health", "redis_connections", "redis_workers", "redis_stats_values", "redis_stats",
	"redis_metrics", "redis_command", "redis_info", "redis_invalidate_pattern",
	"redis_flush_namespace", "redis_run_scheduled", "redis_stats_reset", "redis_rule_check",
	"redis_watch", "redis_unwatch", "redis_rewatch", "redis_cache_trigger",
	"redis_consume_stream", "redis_stop_consuming", "redis_privileges", NULL
};

static void
grant_hint_hook(ErrorData *edata)
{
	static const char *const ids[] = {
		"permission denied for function %s", "permission denied for view %s",
		"permission denied for table %s", NULL
	};
	const char *name;
	int			i;

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
	if (edata->elevel != ERROR || edata->sqlerrcode != ERRCODE_INSUFFICIENT_PRIVILEGE ||
		edata->hint != NULL || edata->message_id == NULL || edata->message == NULL)
		return;
	for (i = 0; ids[i]; i++)
		if (strcmp(edata->message_id, ids[i]) == 0)
			break;
	if (ids[i] == NULL)
		return;
	name = strrchr(edata->message, ' ');
	if (name == NULL)
		return;
	name++;
	for (i = 0; granted_objects[i]; i++)
		if (strcmp(name, granted_objects[i]) == 0)
			break;
	if (granted_objects[i] == NULL)
		return;
	edata->hint = pstrdup("bmfredis grants nothing that reaches Redis to PUBLIC (since 1.1): "
						  "the extension's owner gives a role what it needs with "
						  "SELECT redis_grant('role', 'read', 'write', ...); "
						  "SELECT * FROM bmfredis.capability_objects() lists what each capability covers.");
}

void
PrivInstallHook(void)
{
	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = grant_hint_hook;
}

static void
relcache_callback(Datum arg, Oid relid)
{
	(void) arg;
	if (relid == InvalidOid || relid == role_channels_relid)
		cache.valid = false;
}

/* Run a query on the bookkeeping tables as the bootstrap superuser. */
static int
spi_as_owner(const char *sql, int nargs, Oid *argtypes, Datum *values)
{
	Oid			save_userid;
	int			save_sec;
	int			rc;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	rc = SPI_execute_with_args(sql, nargs, argtypes, values, NULL, true, 0);
	SetUserIdAndSecContext(save_userid, save_sec);
	return rc;
}

static const Confinement *
confinement(void)
{
	Oid			role = GetUserId();
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	int			rc;
	Oid			nsp;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	if (cache.valid && cache.role == role)
		return cache.confined ? &cache : NULL;

	if (cache_cxt == NULL)
		cache_cxt = AllocSetContextCreate(CacheMemoryContext, "bmfredis channel confinement",
										  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(cache_cxt);
	cache.role = role;
	cache.confined = false;
	cache.n = 0;
	cache.valid = false;

	nsp = get_namespace_oid("bmfredis", true);
	role_channels_relid = OidIsValid(nsp) ? get_relname_relid("role_channels", nsp) : InvalidOid;
	if (!OidIsValid(role_channels_relid))
	{
		cache.valid = true;
		return NULL;
	}

	values[0] = ObjectIdGetDatum(role);
	SPI_connect();
	rc = spi_as_owner("SELECT patterns FROM bmfredis.role_channels "
					  "WHERE role::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
					  1, argtypes, values);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read bmfredis.role_channels: %s", SPI_result_code_string(rc));
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(cache_cxt);
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		int			i;

		deconstruct_array(DatumGetArrayTypePCopy(d), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &nulls, &n);
		cache.patterns = palloc(sizeof(char *) * Max(n, 1));
		cache.lens = palloc(sizeof(int) * Max(n, 1));
		for (i = 0; i < n; i++)
		{
			if (nulls[i])
				continue;
			cache.patterns[cache.n] = TextDatumGetCString(elems[i]);
			cache.lens[cache.n] = strlen(cache.patterns[cache.n]);
			cache.n++;
		}
		cache.confined = true;
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	cache.valid = true;
	return cache.confined ? &cache : NULL;
}

static bool
confined_allows(const Confinement *c, const char *channel, size_t len)
{
	int			i;

	for (i = 0; i < c->n; i++)
		if (BmfGlobMatch(c->patterns[i], c->lens[i], channel, len))
			return true;
	return false;
}

/*
 * bmfredis.channel_allowed(channel text) -> boolean: whether the current
 * role's confinement allows publishing on channel (the row-level security
 * of bmfredis.cache_rules asks it for a rule's event channels).
 */
PG_FUNCTION_INFO_V1(bmfredis_channel_allowed);

Datum
bmfredis_channel_allowed(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	const Confinement *c;

	if (superuser())
		PG_RETURN_BOOL(true);
	c = confinement();
	PG_RETURN_BOOL(c == NULL || confined_allows(c, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t)));
}

void
PrivCheckPublish(const char *channel, size_t len)
{
	const Confinement *c;

	if (superuser())
		return;
	c = confinement();
	if (c == NULL || confined_allows(c, channel, len))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("permission denied to publish on channel \"%s\"",
					pnstrdup(channel, len)),
			 errdetail("Role \"%s\" is confined to channels matching %d pattern(s).",
					   GetUserNameFromId(GetUserId(), false), c->n),
			 errhint("An administrator widens it with redis_confine_channels().")));
}

/* "<channel>:" of every rule whose table the current role may not read. */
static void
load_denied(PrivListen *pl)
{
	Oid			nsp = get_namespace_oid("bmfredis", true);
	int			rc;
	uint64		i;
	Oid			role = GetUserId();
	MemoryContext cxt = CurrentMemoryContext;

	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("cache_rules", nsp)))
		return;
	SPI_connect();
	rc = spi_as_owner("SELECT DISTINCT r.channel, e.relation::pg_catalog.oid "
					  "FROM bmfredis.cache_rules r JOIN bmfredis.entities e "
					  "ON e.entity OPERATOR(pg_catalog.=) r.entity "
					  "WHERE r.channel IS NOT NULL AND e.relation IS NOT NULL",
					  0, NULL, NULL);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read bmfredis.cache_rules: %s", SPI_result_code_string(rc));
	pl->denied = MemoryContextAlloc(cxt, sizeof(char *) * Max(SPI_processed, 1));
	pl->denied_lens = MemoryContextAlloc(cxt, sizeof(int) * Max(SPI_processed, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		char	   *channel = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 2, &isnull));

		if (pg_class_aclcheck(relid, role, ACL_SELECT) == ACLCHECK_OK ||
			pg_attribute_aclcheck_all(relid, role, ACL_SELECT, ACLMASK_ALL) == ACLCHECK_OK)
			continue;
		pl->denied[pl->ndenied] = MemoryContextStrdup(cxt, psprintf("%s:", channel));
		pl->denied_lens[pl->ndenied] = strlen(pl->denied[pl->ndenied]);
		pl->ndenied++;
	}
	SPI_finish();
}

PrivListen *
PrivListenStart(void)
{
	PrivListen *pl = palloc0(sizeof(PrivListen));

	if (superuser())
	{
		pl->everything = true;
		return pl;
	}
	pl->conf = confinement();
	load_denied(pl);
	return pl;
}

bool
PrivListenAllows(const PrivListen *pl, const char *channel, size_t len)
{
	size_t		plen = strlen(bmf_channel_prefix);
	int			i;

	if (pl->everything)
		return true;
	/* confinements and rule channels are named without the prefix */
	if (plen > 0)
	{
		if (len < plen || memcmp(channel, bmf_channel_prefix, plen) != 0)
			return pl->conf == NULL;	/* not ours: no table's events */
		channel += plen;
		len -= plen;
	}
	for (i = 0; i < pl->ndenied; i++)
		if (len > (size_t) pl->denied_lens[i] &&
			memcmp(channel, pl->denied[i], pl->denied_lens[i]) == 0)
			return false;
	return pl->conf == NULL || confined_allows(pl->conf, channel, len);
}
