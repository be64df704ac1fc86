/*-------------------------------------------------------------------------
 *
 * fdw.c
 *		The validator of FOREIGN DATA WRAPPER bmfredis: which options a
 *		server and a user mapping may carry (client/identity.c reads
 *		them).  The wrapper has no handler: it holds credentials, not
 *		foreign tables.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/reloptions.h"
#include "catalog/pg_foreign_data_wrapper.h"
#include "catalog/pg_foreign_server.h"
#include "catalog/pg_foreign_table.h"
#include "catalog/pg_user_mapping.h"
#include "commands/defrem.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(bmfredis_fdw_validator);

typedef struct FdwOption
{
	const char *name;
	Oid			context;
} FdwOption;

static const FdwOption options[] = {
	{"host", ForeignServerRelationId},
	{"port", ForeignServerRelationId},
	{"tls", ForeignServerRelationId},
	{"tls_server_name", ForeignServerRelationId},
	{"user", UserMappingRelationId},
	{"password", UserMappingRelationId},
	{NULL, InvalidOid}
};

static const char *
context_name(Oid context)
{
	switch (context)
	{
		case ForeignServerRelationId:
			return "a server";
		case UserMappingRelationId:
			return "a user mapping";
		case ForeignDataWrapperRelationId:
			return "the foreign-data wrapper";
		default:
			return "a foreign table";
	}
}

static void
check_value(DefElem *d)
{
	char	   *v = defGetString(d);

	if (strcmp(d->defname, "port") == 0)
	{
		char	   *end;
		long		port = strtol(v, &end, 10);

		if (*v == '\0' || *end != '\0' || port < 1 || port > 65535)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("invalid port \"%s\"", v),
					 errhint("A port is a number from 1 to 65535."),
					 errhidestmt(true)));
	}
	else if (strcmp(d->defname, "tls") == 0)
	{
		bool		b;

		if (!parse_bool(v, &b))
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("option \"tls\" requires a Boolean value"),
					 errhidestmt(true)));
	}
	else if (strcmp(d->defname, "host") == 0 || strcmp(d->defname, "user") == 0)
	{
		if (*v == '\0' || strlen(v) >= 255)
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
					 errmsg("option \"%s\" must be 1 to 254 bytes long", d->defname),
					 errhidestmt(true)));
	}
	else if (strcmp(d->defname, "password") == 0 && strlen(v) >= 1000)
		ereport(ERROR,
				(errcode(ERRCODE_FDW_INVALID_ATTRIBUTE_VALUE),
				 errmsg("option \"password\" is too long"),
				 errdetail("bmfredis sends passwords of at most 999 bytes."),
				 errhidestmt(true)));
}

Datum
bmfredis_fdw_validator(PG_FUNCTION_ARGS)
{
	List	   *list = untransformRelOptions(PG_GETARG_DATUM(0));
	Oid			context = PG_GETARG_OID(1);
	ListCell   *lc;
	bool		has_password = false;

	foreach(lc, list)
	{
		DefElem    *d = (DefElem *) lfirst(lc);
		const FdwOption *o;
		StringInfoData valid;

		for (o = options; o->name; o++)
			if (o->context == context && strcmp(o->name, d->defname) == 0)
				break;
		if (o->name == NULL)
		{
			initStringInfo(&valid);
			for (o = options; o->name; o++)
				if (o->context == context)
					appendStringInfo(&valid, "%s%s", valid.len ? ", " : "", o->name);
			ereport(ERROR,
					(errcode(ERRCODE_FDW_INVALID_OPTION_NAME),
					 errmsg("invalid option \"%s\" for %s of bmfredis", d->defname,
							context_name(context)),
					 valid.len ? errhint("Valid options here are: %s.", valid.data) :
					 errhint("bmfredis takes no options here."),
					 errhidestmt(true)));
		}
		check_value(d);
		has_password |= strcmp(d->defname, "password") == 0 && defGetString(d)[0] != '\0';
	}

	/*
	 * A user mapping without a password would connect as Redis' default
	 * user: only a superuser may make one (and it serves superusers only;
	 * identity.c refuses it for other roles at connect).
	 */
	if (context == UserMappingRelationId && !has_password && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_S_R_E_PROHIBITED_SQL_STATEMENT_ATTEMPTED),
				 errmsg("a user mapping of bmfredis needs a password"),
				 errdetail("Without one, bmfredis would talk to Redis as its default user, which is another identity."),
				 errhint("Give the mapping's Redis user a password: OPTIONS (user '...', password '...')."),
				 errhidestmt(true)));
	PG_RETURN_VOID();
}
