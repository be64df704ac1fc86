/*
 * libFuzzer target: bmfredis.url parsing and redaction (src/url.c).
 * Invariants: a parsed URL has a host and numbers in range; its redacted
 * form parses to the same host, port, database and user, with the
 * password (if any) replaced by "********".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *s = malloc(size + 1);
	size_t		redlen = size + 16;
	char	   *red = malloc(redlen);
	char		why[256];
	BmfUrl		u;
	BmfUrl		r;

	memcpy(s, data, size);
	s[size] = '\0';
	BmfUrlRedact(s, red, redlen);
	if (BmfUrlParse(s, &u, why, sizeof(why)))
	{
		if (u.host[0] == '\0' || u.port < 1 || u.port > 65535 || u.db < 0 || u.db > 65535)
			abort();
		if (u.password[0] != '\0')
		{
			if (!BmfUrlParse(red, &r, why, sizeof(why)) ||
				strcmp(r.password, "********") != 0 || strcmp(r.host, u.host) != 0 ||
				strcmp(r.username, u.username) != 0 || r.port != u.port || r.db != u.db)
				abort();
		}
	}
	free(red);
	free(s);
	return 0;
}
