/*
 * seen: how long a watched UPDATE's COMMIT takes, and how long until
 * another client of Redis sees its invalidation.
 *
 *   seen REDIS_PORT KEY N SQL
 *
 * N times: SET KEY in Redis (on REDIS_PORT, directly: the other client),
 * send SQL (one statement, autocommit) through libpq (PG* environment,
 * PGOPTIONS included), and, while it runs and after, ask Redis EXISTS KEY
 * until it answers 0.  Prints the medians, in ms from the start of the
 * statement: "COMMIT_MS SEEN_MS" (its result came; Redis said 0).  Test code for bench/distance.sh, not part of the extension.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

/* send a command, read its one-line reply into buf */
static void
redis(int s, const char *cmd, char *buf, size_t size)
{
	size_t		n = 0;

	if (write(s, cmd, strlen(cmd)) != (ssize_t) strlen(cmd))
	{
		perror("seen: write");
		exit(1);
	}
	while (n < size - 1)
	{
		ssize_t		r = read(s, buf + n, 1);

		if (r <= 0)
		{
			perror("seen: read");
			exit(1);
		}
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
}

static int
cmp(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char		set[512],
				exists[512],
				buf[256];
	int			n,
				i,
				s,
				one = 1;
	double	   *commit,
			   *seen;
	PGconn	   *c;

	if (argc != 5)
	{
		fprintf(stderr, "usage: seen REDIS_PORT KEY N SQL\n");
		return 2;
	}
	n = atoi(argv[3]);
	commit = calloc(n, sizeof(double));
	seen = calloc(n, sizeof(double));
	sa.sin_port = htons(atoi(argv[1]));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *) &sa, sizeof(sa)) < 0)
	{
		perror("seen: connect to Redis");
		return 1;
	}
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	snprintf(set, sizeof(set), "*3\r\n$3\r\nSET\r\n$%zu\r\n%s\r\n$1\r\n1\r\n", strlen(argv[2]), argv[2]);
	snprintf(exists, sizeof(exists), "*2\r\n$6\r\nEXISTS\r\n$%zu\r\n%s\r\n", strlen(argv[2]), argv[2]);
	c = PQconnectdb("");
	if (PQstatus(c) != CONNECTION_OK)
	{
		fprintf(stderr, "seen: %s", PQerrorMessage(c));
		return 1;
	}
	PQclear(PQexec(c, "SELECT redis_cache_get('warm')"));	/* the connect, untimed */
	for (i = 0; i < n; i++)
	{
		double		t0;
		PGresult   *r;

		redis(s, set, buf, sizeof(buf));
		t0 = now_ms();
		commit[i] = seen[i] = 0;
		if (!PQsendQuery(c, argv[4]))
		{
			fprintf(stderr, "seen: %s", PQerrorMessage(c));
			return 1;
		}
		/* Redis is asked while the statement runs: its COMMIT may wait */
		while ((commit[i] == 0 || seen[i] == 0) && now_ms() - t0 < 10000)
		{
			if (seen[i] == 0)
			{
				redis(s, exists, buf, sizeof(buf));
				if (strcmp(buf, ":0\r\n") == 0)
					seen[i] = now_ms() - t0;
			}
			if (commit[i] == 0 && PQconsumeInput(c) && !PQisBusy(c))
			{
				commit[i] = now_ms() - t0;
				while ((r = PQgetResult(c)) != NULL)
				{
					if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
					{
						fprintf(stderr, "seen: %s", PQerrorMessage(c));
						return 1;
					}
					PQclear(r);
				}
			}
		}
		usleep(2000);
	}
	qsort(commit, n, sizeof(double), cmp);
	qsort(seen, n, sizeof(double), cmp);
	printf("%.3f %.3f\n", commit[n / 2], seen[n / 2]);
	PQfinish(c);
	return 0;
}
