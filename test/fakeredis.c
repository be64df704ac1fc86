/*
 * fakeredis: a hostile Redis for the "hostile" test.
 *
 *   fakeredis PORT PAYLOAD_FILE
 *
 * Listens on 127.0.0.1:PORT.  Each connection is served by a child
 * process (killed with its parent).  The handshake commands bmfredis sends
 * (AUTH, SELECT, CLIENT, HELLO, PING) get +OK/+PONG; every other command
 * gets the bytes of PAYLOAD_FILE, read afresh each time so the test can
 * change them between calls.  The file's first line is a directive:
 *
 *   close    send the payload, then close the connection
 *   keep     send the payload and go on serving
 *   stall    send the payload, then read and answer nothing more
 *
 * Requests are parsed as RESP arrays of bulk strings (what bmfredis sends).
 * Test code, not part of the extension.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *payload_path;

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t) n;
	}
	return 0;
}

/* Read one byte; -1 at EOF. */
static int
get_byte(int fd, char *inbuf, size_t *pos, size_t *len)
{
	if (*pos == *len)
	{
		ssize_t		n;

		do
			n = read(fd, inbuf, 65536);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			return -1;
		*pos = 0;
		*len = (size_t) n;
	}
	return (unsigned char) inbuf[(*pos)++];
}

/* Read a line "<c><number>\r\n"; returns the number, -1 on EOF or junk. */
static long
read_header(int fd, char expect, char *inbuf, size_t *pos, size_t *len)
{
	long		v = 0;
	int			c = get_byte(fd, inbuf, pos, len);

	if (c != expect)
		return -1;
	while ((c = get_byte(fd, inbuf, pos, len)) >= '0' && c <= '9')
		v = v * 10 + (c - '0');
	if (c != '\r' || get_byte(fd, inbuf, pos, len) != '\n')
		return -1;
	return v;
}

static void
serve(int fd)
{
	static char inbuf[65536];
	size_t		pos = 0,
				len = 0;

	for (;;)
	{
		long		argc = read_header(fd, '*', inbuf, &pos, &len);
		char		name[16] = "";
		long		i;
		FILE	   *f;
		char		directive[32] = "";
		char	   *payload;
		size_t		plen;

		if (argc <= 0)
			return;
		for (i = 0; i < argc; i++)
		{
			long		n = read_header(fd, '$', inbuf, &pos, &len);
			long		j;

			if (n < 0)
				return;
			for (j = 0; j < n + 2; j++)
			{
				int			c = get_byte(fd, inbuf, &pos, &len);

				if (c < 0)
					return;
				if (i == 0 && j < n && j < (long) sizeof(name) - 1)
					name[j] = (char) c;
			}
		}
		if (strcasecmp(name, "PING") == 0)
		{
			if (write_all(fd, "+PONG\r\n", 7) < 0)
				return;
			continue;
		}
		if (strcasecmp(name, "AUTH") == 0 || strcasecmp(name, "SELECT") == 0 ||
			strcasecmp(name, "CLIENT") == 0 || strcasecmp(name, "HELLO") == 0)
		{
			if (write_all(fd, "+OK\r\n", 5) < 0)
				return;
			continue;
		}

		f = fopen(payload_path, "rb");
		if (f == NULL || fgets(directive, sizeof(directive), f) == NULL)
			return;
		payload = NULL;
		plen = 0;
		{
			char		chunk[65536];
			size_t		n;

			while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			{
				char	   *p = realloc(payload, plen + n);

				if (p == NULL)
					return;
				payload = p;
				memcpy(payload + plen, chunk, n);
				plen += n;
			}
		}
		fclose(f);
		if (plen > 0 && write_all(fd, payload, plen) < 0)
			return;
		free(payload);
		if (strncmp(directive, "close", 5) == 0)
			return;
		if (strncmp(directive, "stall", 5) == 0)
		{
			for (;;)
				pause();
		}
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_in addr;
	int			lfd;
	int			on = 1;

	if (argc != 3)
	{
		fprintf(stderr, "usage: fakeredis PORT PAYLOAD_FILE\n");
		return 2;
	}
	payload_path = argv[2];
	signal(SIGCHLD, SIG_IGN);	/* children are reaped automatically */
	signal(SIGPIPE, SIG_IGN);

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short) atoi(argv[1]));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *) &addr, sizeof(addr)) < 0 || listen(lfd, 64) < 0)
	{
		perror("fakeredis: bind/listen");
		return 1;
	}
	for (;;)
	{
		int			fd = accept(lfd, NULL, NULL);

		if (fd < 0)
		{
			if (errno == EINTR)
				continue;
			perror("fakeredis: accept");
			return 1;
		}
		if (fork() == 0)
		{
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			close(lfd);
			serve(fd);
			_exit(0);
		}
		close(fd);
	}
}
