/*
 * libFuzzer target: the key-template parser (src/template.c).
 * Invariants checked on every input it accepts: parts and column count
 * agree, every part is non-empty text or a non-empty column name, and
 * the coarse glob has one '*' per column.
 */
#include "postgres.h"

#include <stdint.h>
#include <stdlib.h>

#include "fuzz.h"
#include "base/template.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *src = malloc(size + 1);
	char	   *error = NULL;
	Template   *t;

	memcpy(src, data, size);
	src[size] = '\0';			/* SQL text has no NUL: the parser sees a C string */
	t = TemplateParse(src, &error);
	if (t == NULL)
	{
		if (error == NULL)
			abort();			/* a refusal must say why */
	}
	else
	{
		int			columns = 0;
		int			stars = 0;
		int			i;
		const char *c;

		for (i = 0; i < t->nparts; i++)
		{
			if (t->parts[i].len <= 0 || (int) strlen(t->parts[i].text) != t->parts[i].len)
				abort();
			columns += t->parts[i].is_column;
		}
		if (columns != t->ncolumns)
			abort();
		for (c = t->coarse; *c; c++)
		{
			if (*c == '\\' && c[1])
				c++;
			else if (*c == '*')
				stars++;
		}
		if (stars != columns)
			abort();
	}
	fuzz_free_all();
	free(src);
	return 0;
}
