/*
 * libFuzzer target: bmfredis.url parsing and redaction (src/url.c).
 * Invariants: a parsed URL has a host and numbers in range; its redacted
 * form parses to the same host, port, database and user, with the
 * password (if any) replaced by "********".  host:port splitting
 * (BmfSplitHostPort) gives a non-empty host and a port in range, and
 * formatting them back (BmfHostPort) splits to the same pair.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/url.h"

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
	{
		char	   *hp = strdup(s);
		const char *host;
		int			port;

		if (BmfSplitHostPort(hp, &host, &port))
		{
			size_t		blen = strlen(host) + 16;
			char	   *back = malloc(blen);
			const char *host2;
			int			port2;

			if (host[0] == '\0' || port < 1 || port > 65535)
				abort();
			BmfHostPort(back, blen, host, port);
			if (!BmfSplitHostPort(back, &host2, &port2) || port2 != port ||
				strcmp(host2, host) != 0)
				abort();
			free(back);
		}
		free(hp);
	}
	free(red);
	free(s);
	return 0;
}
