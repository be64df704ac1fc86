/*-------------------------------------------------------------------------
 *
 * transport.c
 *		Non-blocking socket I/O to one Redis server.
 *
 * Every wait for the network in bmfredis happens in transport_wait(): a
 * WaitEventSet holding MyLatch, postmaster death (the backend exits at
 * once) and the socket, waited on with the time left to a deadline.  When
 * the latch is set we run CHECK_FOR_INTERRUPTS(), so pg_cancel_backend(),
 * statement_timeout and pg_terminate_backend() take effect within
 * milliseconds even while Redis is frozen.  Callers that must not be
 * interrupted (the post-commit send) hold interrupts; the deadline still
 * bounds them.
 *
 * The WaitEventSet lives as long as the socket, so a command costs a
 * send(), an epoll_wait() and a recv(), with no per-call set-up.
 *
 * Name resolution uses getaddrinfo(), which blocks; numeric addresses (the
 * usual case, and the default 127.0.0.1) never touch the resolver.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "transport.h"

void
RedisErrorSet(RedisError *err, RedisStatus status, int sqlerrcode,
			  const char *message, const char *fmt,...)
{
	va_list		ap;

	err->status = status;
	err->sqlerrcode = sqlerrcode;
	strlcpy(err->message, message, sizeof(err->message));
	va_start(ap, fmt);
	vsnprintf(err->detail, sizeof(err->detail), fmt, ap);
	va_end(ap);
}

TimestampTz
TransportDeadline(int timeout_ms)
{
	return TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
}

void
TransportInit(RedisTransport *t)
{
	t->sock = PGINVALID_SOCKET;
	t->fd_reserved = false;
	t->wes = NULL;
	t->sock_pos = -1;
	t->sock_events = 0;
}

bool
TransportIsOpen(const RedisTransport *t)
{
	return t->sock != PGINVALID_SOCKET;
}

void
TransportClose(RedisTransport *t)
{
	if (t->wes)
		FreeWaitEventSet(t->wes);
	t->wes = NULL;
	if (t->sock != PGINVALID_SOCKET)
		close(t->sock);
	t->sock = PGINVALID_SOCKET;
	if (t->fd_reserved)
		ReleaseExternalFD();
	t->fd_reserved = false;
	t->sock_pos = -1;
	t->sock_events = 0;
}

/*
 * Make the wait set for a freshly created socket.  Allocation failure
 * throws; the caller has already stored the socket in *t, so the pool can
 * close it.
 */
static void
transport_attach(RedisTransport *t, uint32 events)
{
	t->wes = CreateWaitEventSet(TopMemoryContext, 3);
	AddWaitEventToSet(t->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	if (IsUnderPostmaster)
		AddWaitEventToSet(t->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET,
						  NULL, NULL);
	t->sock_pos = AddWaitEventToSet(t->wes, events, t->sock, NULL, NULL);
	t->sock_events = events;
}

/*
 * The one wait.  Returns the socket events that fired, or 0 once the
 * deadline has passed.  May throw through CHECK_FOR_INTERRUPTS().
 */
static uint32
transport_wait(RedisTransport *t, uint32 events, TimestampTz deadline)
{
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		timeout_ms;
		WaitEvent	ev;
		int			rc;

		if (now >= deadline)
			return 0;
		timeout_ms = (long) ((deadline - now + 999) / 1000);

		if (t->sock_events != events)
		{
			ModifyWaitEvent(t->wes, t->sock_pos, events, NULL);
			t->sock_events = events;
		}

		rc = WaitEventSetWait(t->wes, timeout_ms, &ev, 1, PG_WAIT_EXTENSION);
		if (rc == 0)
			continue;			/* timed out: the loop re-checks the deadline */
		if (ev.events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (ev.events & events)
			return ev.events;
	}
}

static bool
set_socket_options(pgsocket sock, bool tcp)
{
	int			on = 1;

	if (fcntl(sock, F_SETFL, O_NONBLOCK) < 0)
		return false;
	if (fcntl(sock, F_SETFD, FD_CLOEXEC) < 0)
		return false;
	if (tcp)
	{
		if (setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) < 0)
			return false;
		if (setsockopt(sock, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on)) < 0)
			return false;
	}
	return true;
}

/*
 * Connect one socket to one address, waiting until the deadline.  On
 * failure the socket is closed again and err says why.
 */
static bool
connect_one(RedisTransport *t, int family, const struct sockaddr *addr,
			socklen_t addrlen, const RedisEndpoint *ep, TimestampTz deadline,
			RedisError *err)
{
	int			so_error = 0;
	socklen_t	optlen = sizeof(so_error);

	if (!AcquireExternalFD())
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_INSUFFICIENT_RESOURCES,
					  "could not connect to Redis",
					  "No file descriptor is free for a connection to %s.",
					  ep->name);
		return false;
	}
	t->fd_reserved = true;

	t->sock = socket(family, SOCK_STREAM, 0);
	if (t->sock == PGINVALID_SOCKET ||
		!set_socket_options(t->sock, family != AF_UNIX))
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					  "could not connect to Redis",
					  "Could not create a socket for %s: %m.", ep->name);
		TransportClose(t);
		return false;
	}

	if (connect(t->sock, addr, addrlen) == 0)
	{
		transport_attach(t, WL_SOCKET_READABLE);
		return true;
	}
	if (errno != EINPROGRESS && errno != EAGAIN && errno != EINTR)
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					  "could not connect to Redis",
					  "Connection to %s failed: %m.", ep->name);
		TransportClose(t);
		return false;
	}

	transport_attach(t, WL_SOCKET_CONNECTED);
	if (transport_wait(t, WL_SOCKET_CONNECTED, deadline) == 0)
	{
		RedisErrorSet(err, RS_TIMEOUT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					  "could not connect to Redis",
					  "Connection to %s timed out.", ep->name);
		TransportClose(t);
		return false;
	}
	if (getsockopt(t->sock, SOL_SOCKET, SO_ERROR, &so_error, &optlen) < 0)
		so_error = errno;
	if (so_error != 0)
	{
		errno = so_error;
		RedisErrorSet(err, RS_CONNECT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					  "could not connect to Redis",
					  "Connection to %s failed: %m.", ep->name);
		TransportClose(t);
		return false;
	}
	return true;
}

bool
TransportConnect(RedisTransport *t, const RedisEndpoint *ep,
				 TimestampTz deadline, RedisError *err)
{
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	struct addrinfo *ai;
	char		portstr[16];
	int			rc;
	bool		ok = false;

	Assert(!TransportIsOpen(t));

	if (ep->unix_socket && ep->unix_socket[0])
	{
		struct sockaddr_un sun;

		if (strlen(ep->unix_socket) >= sizeof(sun.sun_path))
		{
			RedisErrorSet(err, RS_CONNECT, ERRCODE_INVALID_PARAMETER_VALUE,
						  "could not connect to Redis",
						  "Unix socket path \"%s\" is too long.", ep->unix_socket);
			return false;
		}
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		strlcpy(sun.sun_path, ep->unix_socket, sizeof(sun.sun_path));
		return connect_one(t, AF_UNIX, (struct sockaddr *) &sun, sizeof(sun),
						   ep, deadline, err);
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", ep->port);
	rc = getaddrinfo(ep->host, portstr, &hints, &res);
	if (rc != 0)
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					  "could not connect to Redis",
					  "Could not resolve host \"%s\": %s.", ep->host,
					  gai_strerror(rc));
		return false;
	}

	for (ai = res; ai != NULL; ai = ai->ai_next)
	{
		ok = connect_one(t, ai->ai_family, ai->ai_addr, ai->ai_addrlen,
						 ep, deadline, err);
		if (ok || err->status == RS_TIMEOUT)
			break;
	}
	freeaddrinfo(res);
	return ok;
}

bool
TransportWrite(RedisTransport *t, const char *buf, size_t len,
			   TimestampTz deadline, RedisError *err)
{
	size_t		off = 0;

	while (off < len)
	{
		ssize_t		n = send(t->sock, buf + off, len - off, MSG_NOSIGNAL);

		if (n > 0)
		{
			off += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		{
			if (transport_wait(t, WL_SOCKET_WRITEABLE, deadline) == 0)
			{
				RedisErrorSet(err, RS_TIMEOUT, ERRCODE_CONNECTION_FAILURE,
							  "Redis command timed out",
							  "Sending to Redis did not finish in time.");
				return false;
			}
			continue;
		}
		RedisErrorSet(err, RS_IO, ERRCODE_CONNECTION_FAILURE,
					  "lost connection to Redis",
					  "Could not send to Redis: %m.");
		return false;
	}
	return true;
}

/*
 * Read what is available, waiting (until the deadline) when nothing is.
 * wait_first skips the recv() that would only return EAGAIN right after a
 * request was sent.  Returns the byte count, or -1 with err set.
 */
ssize_t
TransportRead(RedisTransport *t, char *buf, size_t cap, bool wait_first,
			  TimestampTz deadline, RedisError *err)
{
	for (;;)
	{
		ssize_t		n;

		if (wait_first)
		{
			if (transport_wait(t, WL_SOCKET_READABLE, deadline) == 0)
			{
				RedisErrorSet(err, RS_TIMEOUT, ERRCODE_CONNECTION_FAILURE,
							  "Redis command timed out",
							  "No reply from Redis within the command timeout.");
				return -1;
			}
			wait_first = false;
		}

		n = recv(t->sock, buf, cap, 0);
		if (n > 0)
			return n;
		if (n == 0)
		{
			RedisErrorSet(err, RS_IO, ERRCODE_CONNECTION_FAILURE,
						  "lost connection to Redis",
						  "The server closed the connection.");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
		{
			wait_first = true;
			continue;
		}
		RedisErrorSet(err, RS_IO, ERRCODE_CONNECTION_FAILURE,
					  "lost connection to Redis",
					  "Could not receive from Redis: %m.");
		return -1;
	}
}

/*
 * Has the server closed an idle connection (or sent something unasked)?
 * Costs one non-blocking recv(MSG_PEEK); used before commands that must
 * not be retried, so they are not sent into a connection already dead.
 */
bool
TransportPeerClosed(RedisTransport *t)
{
	char		c;
	ssize_t		n = recv(t->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	return true;				/* EOF, error, or unsolicited bytes */
}
