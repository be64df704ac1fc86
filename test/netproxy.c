/*
 * netproxy: a network distance on one machine, for tests and benchmarks.
 *
 *   netproxy LISTEN_PORT TARGET_PORT CONTROL_PORT [DELAY_US [JITTER_US]]
 *
 * Listens on 127.0.0.1:LISTEN_PORT and forwards each connection to
 * 127.0.0.1:TARGET_PORT, delaying each direction by DELAY_US microseconds
 * (one way; a round trip costs twice that) plus up to JITTER_US at random,
 * never reordering bytes.  This kernel has no netem, so the distance is
 * made here, in user space: bytes are read as soon as they arrive (so the
 * kernel's buffers never add their own delay), stamped, and written when
 * their time comes, by a timerfd with nanosecond resolution in the same
 * epoll_wait as the sockets: one process, one thread, no sleeps per
 * packet.
 *
 * CONTROL_PORT (127.0.0.1) takes one command a line and answers one line:
 *
 *   delay US [JITTER_US]  change the one-way delay (bytes already stamped
 *                         keep theirs)
 *   rate BYTES_PER_S      limit each direction's bandwidth (0: none)
 *   hold                  a partition: nothing is read or written on any
 *                         link until release, and new connections wait in
 *                         the listen queue (the kernel completes their
 *                         handshake); the links stay open: the peers see
 *                         silence, not a reset
 *   release               end the partition; what was held flows, delayed
 *   reset                 close every link with a TCP reset (new ones are
 *                         accepted)
 *   stats                 "links L accepted A round_trips R up U down D":
 *                         open links, links accepted, round trips (a flight
 *                         of bytes towards the target after bytes came
 *                         back, or the link's first; a connect counts its
 *                         own), bytes each way
 *
 * A connect costs a round trip, as across a network: the kernel completes
 * it at once on loopback, so the proxy holds what the client sends for one
 * round trip after accepting it.
 *   zero                  zero the counters
 *
 * Test code, not part of the extension.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINKS	4096
#define CHUNK		65536

typedef struct Chunk
{
	struct Chunk *next;
	int64_t		due;			/* ns, CLOCK_MONOTONIC */
	size_t		len;
	size_t		off;			/* written so far */
	char		data[];
} Chunk;

typedef struct Dir
{
	int			from;
	int			to;
	Chunk	   *head;
	Chunk	   *tail;
	int64_t		last_due;		/* keeps bytes in order under jitter */
	int64_t		tx_free;		/* when the link has sent what it holds (rate) */
	int			eof;			/* from closed its side */
	int			shut;			/* shutdown(to, SHUT_WR) done */
	int			want_out;		/* waiting for EPOLLOUT on to */
} Dir;

typedef struct Link
{
	int			used;
	int			client;
	int			server;
	int			connected;		/* server's connect completed */
	int			answered;		/* bytes came back since the last flight up */
	uint32_t	cmask;			/* what epoll watches on client and server now */
	uint32_t	smask;
	Dir			up;				/* client -> server */
	Dir			down;			/* server -> client */
} Link;

static Link links[MAX_LINKS];
static int	nslots;				/* links[] beyond this are unused */
static int	ep;
static int	timer;
static int	listener;
static int	control;
static int	target_port;
static int64_t delay_ns;
static int64_t jitter_ns;
static int64_t rate;			/* bytes a second, 0: unlimited */
static int	held;
static long long n_links, n_accepted, n_rtt, n_up, n_down;

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* epoll data: link index * 4 + role (0 client, 1 server), or a tag */
#define TAG_LISTEN	(-1)
#define TAG_CONTROL	(-2)
#define TAG_TIMER	(-3)
#define TAG_CTLCONN	(-4)		/* -4 - fd for a control connection */

static void
watch(int fd, int64_t tag, uint32_t events, int op)
{
	struct epoll_event ev = {.events = events, .data.u64 = (uint64_t) tag};

	epoll_ctl(ep, op, fd, &ev);
}

static void
link_events(Link *l, int idx)
{
	uint32_t	ce = 0,
				se = 0;

	if (!held)
	{
		if (!l->up.eof)
			ce |= EPOLLIN;
		if (!l->down.eof && l->connected)
			se |= EPOLLIN;
		if (l->down.want_out)
			ce |= EPOLLOUT;
		if (l->up.want_out)
			se |= EPOLLOUT;
	}
	if (!l->connected)
		se |= EPOLLOUT;			/* the connect's completion */
	/* a system call only when the interest changes: most events change none */
	if (ce != l->cmask)
		watch(l->client, (int64_t) idx * 4, ce, EPOLL_CTL_MOD);
	if (se != l->smask)
		watch(l->server, (int64_t) idx * 4 + 1, se, EPOLL_CTL_MOD);
	l->cmask = ce;
	l->smask = se;
}

static void
free_chunks(Dir *d)
{
	while (d->head)
	{
		Chunk	   *c = d->head;

		d->head = c->next;
		free(c);
	}
	d->tail = NULL;
}

static void
close_link(int idx, int rst)
{
	Link	   *l = &links[idx];

	if (!l->used)
		return;
	if (rst)
	{
		struct linger lg = {.l_onoff = 1, .l_linger = 0};

		setsockopt(l->client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		setsockopt(l->server, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(l->client);
	close(l->server);
	free_chunks(&l->up);
	free_chunks(&l->down);
	memset(l, 0, sizeof(*l));
	n_links--;
}

/* when the next chunk is due, over every link: arm the timer */
static void
arm_timer(void)
{
	int64_t		next = INT64_MAX;
	struct itimerspec its = {0};
	int			i;

	if (!held)
		for (i = 0; i < nslots; i++)
		{
			if (!links[i].used)
				continue;
			if (links[i].up.head && !links[i].up.want_out && links[i].up.head->due < next)
				next = links[i].up.head->due;
			if (links[i].down.head && !links[i].down.want_out && links[i].down.head->due < next)
				next = links[i].down.head->due;
		}
	if (next != INT64_MAX)
	{
		if (next <= 0)
			next = 1;
		its.it_value.tv_sec = next / 1000000000;
		its.it_value.tv_nsec = next % 1000000000;
	}
	timerfd_settime(timer, TFD_TIMER_ABSTIME, &its, NULL);
}

static void
accept_link(void)
{
	int			c = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int			s;
	int			one = 1;
	int			i;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(target_port)};

	if (c < 0)
		return;
	for (i = 0; i < MAX_LINKS && links[i].used; i++)
		;
	s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (i == MAX_LINKS || s < 0)
	{
		close(c);
		if (s >= 0)
			close(s);
		return;
	}
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(s, (struct sockaddr *) &sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
	{
		close(c);
		close(s);
		return;
	}
	memset(&links[i], 0, sizeof(links[i]));
	if (i >= nslots)
		nslots = i + 1;
	links[i].used = 1;
	links[i].answered = 1;		/* the first flight is a round trip too */
	links[i].client = c;
	links[i].server = s;
	links[i].up = (Dir) {.from = c, .to = s};
	links[i].down = (Dir) {.from = s, .to = c};
	n_links++;
	n_accepted++;
	n_rtt++;					/* the handshake */
	/*
	 * The client's connect() returned at once (the kernel completed it on
	 * loopback); across a network it would return a round trip later, so
	 * nothing it sends leaves before then.
	 */
	links[i].up.tx_free = now_ns() + 2 * delay_ns;
	watch(c, (int64_t) i * 4, 0, EPOLL_CTL_ADD);
	watch(s, (int64_t) i * 4 + 1, 0, EPOLL_CTL_ADD);
	link_events(&links[i], i);
}

/* read what arrived on d->from and stamp it */
static int
read_dir(Link *l, Dir *d, int up)
{
	char		buf[CHUNK];
	ssize_t		n = read(d->from, buf, sizeof(buf));
	Chunk	   *c;
	int64_t		now,
				sent,
				due;

	if (n < 0)
		return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
	if (n == 0)
	{
		d->eof = 1;
		if (d->head == NULL)
		{
			shutdown(d->to, SHUT_WR);
			d->shut = 1;
		}
		return 0;
	}
	/* the link sends one chunk at a time at the rate, then it travels */
	now = now_ns();
	sent = (d->tx_free > now ? d->tx_free : now) + (rate > 0 ? (int64_t) n * 1000000000 / rate : 0);
	d->tx_free = sent;
	due = sent + delay_ns + (jitter_ns > 0 ? (int64_t) (random() % (jitter_ns + 1)) : 0);
	if (due < d->last_due)
		due = d->last_due;
	d->last_due = due;
	c = malloc(sizeof(Chunk) + (size_t) n);
	if (c == NULL)
		return -1;
	c->next = NULL;
	c->due = due;
	c->len = (size_t) n;
	c->off = 0;
	memcpy(c->data, buf, (size_t) n);
	if (d->tail)
		d->tail->next = c;
	else
		d->head = c;
	d->tail = c;
	if (up)
	{
		n_up += n;
		if (l->answered)
			n_rtt++;
		l->answered = 0;
	}
	else
	{
		n_down += n;
		l->answered = 1;
	}
	return 0;
}

/* write the chunks that are due; -1: the link is dead */
static int
flush_dir(Dir *d, int64_t now)
{
	while (d->head && d->head->due <= now)
	{
		Chunk	   *c = d->head;
		ssize_t		n = write(d->to, c->data + c->off, c->len - c->off);

		if (n < 0)
		{
			if (errno == EAGAIN || errno == EINTR)
			{
				d->want_out = 1;
				return 0;
			}
			return -1;
		}
		c->off += (size_t) n;
		if (c->off < c->len)
		{
			d->want_out = 1;
			return 0;
		}
		d->head = c->next;
		if (d->head == NULL)
			d->tail = NULL;
		free(c);
	}
	d->want_out = 0;
	if (d->eof && d->head == NULL && !d->shut)
	{
		shutdown(d->to, SHUT_WR);
		d->shut = 1;
	}
	return 0;
}

static void
flush_all(void)
{
	int64_t		now = now_ns();
	int			i;

	if (held)
		return;
	for (i = 0; i < nslots; i++)
	{
		Link	   *l = &links[i];

		if (!l->used || !l->connected)
			continue;
		if (flush_dir(&l->up, now) < 0 || flush_dir(&l->down, now) < 0)
		{
			close_link(i, 0);
			continue;
		}
		if (l->up.shut && l->down.shut)
		{
			close_link(i, 0);
			continue;
		}
		link_events(l, i);
	}
}

static void
link_event(int idx, int role, uint32_t events)
{
	Link	   *l = &links[idx];

	if (!l->used)
		return;
	if (role == 1 && !l->connected && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
	{
		int			err = 0;
		socklen_t	len = sizeof(err);

		getsockopt(l->server, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err != 0)
		{
			close_link(idx, 1);	/* the target refused: so does the proxy */
			return;
		}
		l->connected = 1;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
	{
		Dir		   *d = role == 0 ? &l->up : &l->down;

		if (!d->eof && read_dir(l, d, role == 0) < 0)
		{
			close_link(idx, 1);	/* a reset passes on as a reset */
			return;
		}
	}
	if (events & EPOLLOUT)
	{
		if (role == 1)
			l->up.want_out = 0;
		else
			l->down.want_out = 0;
	}
	flush_all();
}

static void
control_line(int fd, char *line)
{
	char		out[256];
	long long	a = 0,
				b = 0;
	int			i;

	if (sscanf(line, "delay %lld %lld", &a, &b) >= 1)
	{
		delay_ns = a * 1000;
		jitter_ns = b * 1000;
		snprintf(out, sizeof(out), "ok delay %lld jitter %lld\n", a, b);
	}
	else if (sscanf(line, "rate %lld", &a) == 1)
	{
		rate = a;
		snprintf(out, sizeof(out), "ok rate %lld\n", a);
	}
	else if (strncmp(line, "hold", 4) == 0)
	{
		/* out of epoll altogether: a peer's close must not spin us */
		if (!held)
		{
			epoll_ctl(ep, EPOLL_CTL_DEL, listener, NULL);
			for (i = 0; i < nslots; i++)
				if (links[i].used)
				{
					epoll_ctl(ep, EPOLL_CTL_DEL, links[i].client, NULL);
					epoll_ctl(ep, EPOLL_CTL_DEL, links[i].server, NULL);
				}
		}
		held = 1;
		snprintf(out, sizeof(out), "ok held\n");
	}
	else if (strncmp(line, "release", 7) == 0)
	{
		if (held)
		{
			held = 0;
			watch(listener, TAG_LISTEN, EPOLLIN, EPOLL_CTL_ADD);
			for (i = 0; i < nslots; i++)
				if (links[i].used)
				{
					watch(links[i].client, (int64_t) i * 4, 0, EPOLL_CTL_ADD);
					watch(links[i].server, (int64_t) i * 4 + 1, 0, EPOLL_CTL_ADD);
					links[i].cmask = links[i].smask = 0;
					link_events(&links[i], i);
				}
		}
		snprintf(out, sizeof(out), "ok released\n");
	}
	else if (strncmp(line, "reset", 5) == 0)
	{
		int			n = 0;

		for (i = 0; i < nslots; i++)
			if (links[i].used)
			{
				close_link(i, 1);
				n++;
			}
		snprintf(out, sizeof(out), "ok reset %d\n", n);
	}
	else if (strncmp(line, "stats", 5) == 0)
		snprintf(out, sizeof(out), "links %lld accepted %lld round_trips %lld up %lld down %lld\n",
				 n_links, n_accepted, n_rtt, n_up, n_down);
	else if (strncmp(line, "zero", 4) == 0)
	{
		n_accepted = n_rtt = n_up = n_down = 0;
		snprintf(out, sizeof(out), "ok zero\n");
	}
	else
		snprintf(out, sizeof(out), "error unknown command\n");
	if (write(fd, out, strlen(out)) < 0)
		return;
}

static void
control_event(int fd)
{
	char		buf[512];
	ssize_t		n = read(fd, buf, sizeof(buf) - 1);
	char	   *line,
			   *save = NULL;

	if (n <= 0)
	{
		epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
		close(fd);
		return;
	}
	buf[n] = '\0';
	for (line = strtok_r(buf, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save))
		control_line(fd, line);
}

static int
listen_on(int port)
{
	int			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int			one = 1;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 512) < 0)
	{
		perror("netproxy: bind/listen");
		exit(1);
	}
	return fd;
}

int
main(int argc, char **argv)
{
	struct epoll_event evs[256];

	if (argc < 4)
	{
		fprintf(stderr, "usage: netproxy LISTEN_PORT TARGET_PORT CONTROL_PORT [DELAY_US [JITTER_US]]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* the timer wakes us when a chunk is due, not up to 50 us later */
	prctl(PR_SET_TIMERSLACK, 1UL);
	target_port = atoi(argv[2]);
	delay_ns = argc > 4 ? atoll(argv[4]) * 1000 : 0;
	jitter_ns = argc > 5 ? atoll(argv[5]) * 1000 : 0;
	srandom((unsigned) getpid());
	ep = epoll_create1(EPOLL_CLOEXEC);
	listener = listen_on(atoi(argv[1]));
	control = listen_on(atoi(argv[3]));
	timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	watch(listener, TAG_LISTEN, EPOLLIN, EPOLL_CTL_ADD);
	watch(control, TAG_CONTROL, EPOLLIN, EPOLL_CTL_ADD);
	watch(timer, TAG_TIMER, EPOLLIN, EPOLL_CTL_ADD);
	for (;;)
	{
		int			n = epoll_wait(ep, evs, 256, -1);
		int			i;

		for (i = 0; i < n; i++)
		{
			int64_t		tag = (int64_t) evs[i].data.u64;

			if (tag == TAG_LISTEN)
				accept_link();
			else if (tag == TAG_CONTROL)
			{
				int			c = accept4(control, NULL, NULL, SOCK_CLOEXEC);

				if (c >= 0)
					watch(c, TAG_CTLCONN - c, EPOLLIN, EPOLL_CTL_ADD);
			}
			else if (tag == TAG_TIMER)
			{
				uint64_t	exp;

				if (read(timer, &exp, sizeof(exp)) < 0)
					continue;
				flush_all();
			}
			else if (tag <= TAG_CTLCONN)
				control_event((int) (TAG_CTLCONN - tag));
			else
				link_event((int) (tag / 4), (int) (tag % 4), evs[i].events);
		}
		arm_timer();
	}
}
