/*-------------------------------------------------------------------------
 *
 * template.h
 *		Key and tag templates over a row's columns: "product:{id}",
 *		"shop:{shop_id}:products".
 *
 * Syntax: {name} is the value of column name (exactly as spelled in the
 * catalog); {{ and }} are a literal brace.  A template is parsed once
 * (TemplateParse, which needs nothing but palloc, so it can be fuzzed on
 * its own) and its columns resolved against a tuple descriptor by the
 * caller.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BMFREDIS_TEMPLATE_H
#define BMFREDIS_TEMPLATE_H

#include "postgres.h"

#include "access/attnum.h"

typedef struct TemplatePart
{
	bool		is_column;
	char	   *text;			/* literal text, or the column name */
	int			len;
	AttrNumber	attnum;			/* resolved by the caller; 0 until then */
} TemplatePart;

typedef struct Template
{
	char	   *source;
	int			nparts;
	TemplatePart *parts;
	int			ncolumns;
	char	   *coarse;			/* glob covering every rendering: columns as '*' */
} Template;

/*
 * Parse src.  On a syntax error returns NULL and sets *error to a
 * palloc'd message naming the offset.  Max length: 64 kB.
 */
extern Template *TemplateParse(const char *src, char **error);

#endif							/* BMFREDIS_TEMPLATE_H */
