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
 * TLS (bmfredis.tls) is OpenSSL driven over the same non-blocking socket:
 * SSL_connect/SSL_read/SSL_write report WANT_READ or WANT_WRITE and we
 * wait in transport_wait() for that, so the handshake is interruptible and
 * bounded by the connect deadline like the TCP connect before it.  Two
 * things differ from plain sockets: OpenSSL may hold decrypted bytes the
 * socket no longer shows (SSL_pending() is checked before every wait),
 * and bytes on an idle socket may be a TLS 1.3 session ticket rather than
 * an unsolicited reply (TransportPeerClosed() lets OpenSSL judge).  A TLS
 * failure is a connection failure; nothing ever falls back to plaintext.
 *
 * The SSL_CTX (trust store, client certificate) is built once per backend
 * and rebuilt only when the TLS settings change: loading the system trust
 * store costs milliseconds, a handshake should not.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "utils/memutils.h"

#include "base/compat.h"
#include "base/guc.h"
#include "base/shmem.h"
#include "base/wait.h"
#include "wire/transport.h"

/*
 * Every socket this process holds open, for TransportShutdownAll(), which
 * may run in a signal handler: a socket leaves the table before it is
 * closed, so a number reused by another file is never in it.  One that
 * finds the table full is not in it (it is closed the ordinary way).
 */
#define OPEN_SOCKS_MAX 128
static volatile pgsocket open_socks[OPEN_SOCKS_MAX];
static volatile int n_open_socks = 0;	/* slots used, free ones hold -1 */

static void
sock_register(pgsocket s)
{
	int			i;

	for (i = 0; i < n_open_socks; i++)
		if (open_socks[i] == PGINVALID_SOCKET)
		{
			open_socks[i] = s;
			return;
		}
	if (n_open_socks < OPEN_SOCKS_MAX)
	{
		open_socks[n_open_socks] = s;
		n_open_socks = n_open_socks + 1;
	}
}

static void
sock_unregister(pgsocket s)
{
	int			i;

	for (i = 0; i < n_open_socks; i++)
		if (open_socks[i] == s)
			open_socks[i] = PGINVALID_SOCKET;
}

int
TransportOpenCount(void)
{
	int			i;
	int			n = 0;

	for (i = 0; i < n_open_socks; i++)
		n += (open_socks[i] != PGINVALID_SOCKET);
	return n;
}

/*
 * Shut every open socket down both ways: the servers see the connections
 * end (and count them no more), and each transport finds its peer gone
 * at its next use, as after a server-side close.  Async-signal-safe.
 */
int
TransportShutdownAll(void)
{
	int			i;
	int			n = 0;

	for (i = 0; i < n_open_socks; i++)
		if (open_socks[i] != PGINVALID_SOCKET && shutdown(open_socks[i], SHUT_RDWR) == 0)
			n++;
	return n;
}

void
TransportInit(RedisTransport *t)
{
	t->sock = PGINVALID_SOCKET;
	t->ssl = NULL;
	t->ssl_fatal = false;
	t->fd_reserved = false;
	t->wes = NULL;
	t->sock_pos = -1;
	t->sock_events = 0;
	t->read_first = false;
	t->probes = 0;
	t->wake_on_latch = false;
	t->moved = false;
	t->last_moved = 0;
}

bool
TransportIsOpen(const RedisTransport *t)
{
	return t->sock != PGINVALID_SOCKET;
}

void
TransportClose(RedisTransport *t)
{
	if (t->ssl)
	{
		/* one non-blocking close_notify, unless the session is broken */
		if (!t->ssl_fatal)
		{
			ERR_clear_error();
			(void) SSL_shutdown(t->ssl);
		}
		SSL_free(t->ssl);
		ERR_clear_error();
	}
	t->ssl = NULL;
	t->ssl_fatal = false;
	if (t->wes)
		FreeWaitEventSet(t->wes);
	t->wes = NULL;
	if (t->sock != PGINVALID_SOCKET)
	{
		sock_unregister(t->sock);
		close(t->sock);
	}
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
	t->wes = BmfCreateWaitEventSet(3);
	AddWaitEventToSet(t->wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	if (IsUnderPostmaster)
		AddWaitEventToSet(t->wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET,
						  NULL, NULL);
	t->sock_pos = AddWaitEventToSet(t->wes, events, t->sock, NULL, NULL);
	t->sock_events = events;
}

/*
 * The one wait.  Returns the socket events that fired, or 0 once the
 * deadline has passed (or, with wake_on_latch, the latch was set).  May
 * throw through CHECK_FOR_INTERRUPTS().
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

		if (t->moved)
		{
			t->last_moved = now;
			t->moved = false;
		}
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
			if (t->wake_on_latch)
				return 0;
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
	if (t->sock != PGINVALID_SOCKET)
		sock_register(t->sock);
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

/* ---- TLS ---- */

static SSL_CTX *tls_ctx = NULL;
static char *tls_ctx_key = NULL;	/* the settings tls_ctx was built for */

/*
 * Session resumption: the newest session ticket each server gave this
 * backend (under tls_ctx's settings; forgotten when they change), offered
 * when it connects to that server again, after bmfredis.idle_close or a
 * failure.  A server that takes it skips sending and signing for its
 * certificate, and bmfredis skips verifying the chain (the ticket proves
 * it is the server verified before); the round trip stays.  A peer is its
 * address, the name its certificate must carry, and the verify mode.
 */
#define TLS_SESSIONS_MAX 8
typedef struct TlsSession
{
	char		peer[160];
	SSL_SESSION *session;
} TlsSession;
static TlsSession tls_sessions[TLS_SESSIONS_MAX];
static int	tls_sessions_next = 0;	/* the slot a new peer takes */

static TlsSession *
tls_session_slot(const char *peer, bool make)
{
	int			i;

	for (i = 0; i < TLS_SESSIONS_MAX; i++)
		if (tls_sessions[i].session && strcmp(tls_sessions[i].peer, peer) == 0)
			return &tls_sessions[i];
	if (!make)
		return NULL;
	i = tls_sessions_next;
	tls_sessions_next = (tls_sessions_next + 1) % TLS_SESSIONS_MAX;
	return &tls_sessions[i];
}

static void
tls_sessions_forget(void)
{
	int			i;

	for (i = 0; i < TLS_SESSIONS_MAX; i++)
	{
		if (tls_sessions[i].session)
			SSL_SESSION_free(tls_sessions[i].session);
		tls_sessions[i].session = NULL;
		tls_sessions[i].peer[0] = '\0';
	}
}

/*
 * Across backends: each new ticket is also put in shared memory, and a
 * backend without one of its own for a peer takes the shared one.  A
 * backend is a short-lived process that makes its own connections: this
 * is where resumption pays.  The key covers everything a session depends
 * on (the TLS settings and the peer), so a session made under one role's
 * client certificate or verify mode is never resumed under another's.
 */
static uint64
ticket_key(const char *peer)
{
	const char *settings = tls_ctx_key ? tls_ctx_key : "";
	uint64		key;

	/* no allocation: this runs inside OpenSSL's callback too */
	key = hash_combine64(hash_bytes_extended((const unsigned char *) settings, strlen(settings), 0),
						 hash_bytes_extended((const unsigned char *) peer, strlen(peer), 0));
	return key == 0 ? 1 : key;
}

static void
ticket_publish(const char *peer, SSL_SESSION *session)
{
	BmfSharedState *sh = BmfShared();
	unsigned char buf[BMF_TLS_TICKET_MAX];
	unsigned char *p = buf;
	BmfTlsTicket *slot;
	uint64		key;
	int			len;
	int			i;

	if (sh == NULL)
		return;
	len = i2d_SSL_SESSION(session, NULL);
	if (len <= 0 || len > BMF_TLS_TICKET_MAX || i2d_SSL_SESSION(session, &p) != len)
		return;
	key = ticket_key(peer);
	SpinLockAcquire(&sh->tls_mutex);
	/* the peer's slot, else an empty one, else the oldest */
	slot = &sh->tls_tickets[0];
	for (i = 0; i < BMF_TLS_TICKETS; i++)
	{
		BmfTlsTicket *cand = &sh->tls_tickets[i];

		if (cand->key == key)
		{
			slot = cand;
			break;
		}
		if (cand->len == 0 ? slot->len != 0 : (slot->len != 0 && cand->stamp < slot->stamp))
			slot = cand;
	}
	slot->key = key;
	slot->stamp = ++sh->tls_stamp;
	slot->len = len;
	memcpy(slot->der, buf, len);
	SpinLockRelease(&sh->tls_mutex);
	explicit_bzero(buf, len);
}

static SSL_SESSION *
ticket_fetch(const char *peer)
{
	BmfSharedState *sh = BmfShared();
	unsigned char buf[BMF_TLS_TICKET_MAX];
	const unsigned char *p = buf;
	BmfTlsTicket *slot;
	SSL_SESSION *session = NULL;
	TlsSession *mine;
	uint64		key;
	int			len = 0;
	int			i;

	if (sh == NULL)
		return NULL;
	key = ticket_key(peer);
	SpinLockAcquire(&sh->tls_mutex);
	for (i = 0; i < BMF_TLS_TICKETS; i++)
	{
		slot = &sh->tls_tickets[i];
		if (slot->key == key && slot->len > 0)
		{
			len = slot->len;
			memcpy(buf, slot->der, len);
			break;
		}
	}
	SpinLockRelease(&sh->tls_mutex);
	if (len > 0)
		session = d2i_SSL_SESSION(NULL, &p, len);
	explicit_bzero(buf, sizeof(buf));
	ERR_clear_error();
	if (session == NULL)
		return NULL;
	if (!SSL_SESSION_is_resumable(session))
	{
		SSL_SESSION_free(session);
		return NULL;
	}
	mine = tls_session_slot(peer, true);	/* kept (and freed) as our own */
	if (mine->session)
		SSL_SESSION_free(mine->session);
	mine->session = session;
	strlcpy(mine->peer, peer, sizeof(mine->peer));
	return session;
}

/* OpenSSL hands over a new ticket (TLS 1.3: after the handshake, on a read) */
static int
tls_new_session(SSL *ssl, SSL_SESSION *session)
{
	RedisTransport *t = SSL_get_app_data(ssl);
	TlsSession *slot;

	if (t == NULL || t->tls_peer[0] == '\0' || !SSL_SESSION_is_resumable(session))
		return 0;				/* not kept: OpenSSL frees it */
	slot = tls_session_slot(t->tls_peer, true);
	if (slot->session)
		SSL_SESSION_free(slot->session);
	slot->session = session;
	strlcpy(slot->peer, t->tls_peer, sizeof(slot->peer));
	ticket_publish(t->tls_peer, session);
	return 1;					/* ours now */
}

bool
TransportTlsResumed(const RedisTransport *t)
{
	return t->ssl != NULL && SSL_session_reused(t->ssl) == 1;
}

/* OpenSSL's first queued reason, as text in buf; clears the queue. */
static const char *
tls_error_text(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	const char *reason;

	ERR_clear_error();
	if (e == 0)
		return "no further detail from OpenSSL";
	reason = ERR_reason_error_string(e);
	if (reason)
		snprintf(buf, len, "%s", reason);
	else
		snprintf(buf, len, "OpenSSL error code %lu", e);
	return buf;
}

/* Encrypted key files would otherwise prompt on the terminal. */
static int
tls_no_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	(void) buf;
	(void) size;
	(void) rwflag;
	(void) userdata;
	return 0;
}

static bool
is_ip_literal(const char *name)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, addr) == 1 ||
		inet_pton(AF_INET6, name, addr) == 1;
}

static const char *
str_or_empty(const char *s)
{
	return s ? s : "";
}

/*
 * The SSL_CTX for these settings, built on first use and whenever the
 * trust store or client certificate settings change.  NULL with err set
 * when a file cannot be used.
 */
static SSL_CTX *
tls_context(const RedisTlsConfig *cfg, RedisError *err)
{
	bool		verify = cfg->verify != TLS_VERIFY_NONE;
	const char *ca = str_or_empty(cfg->ca_file);
	const char *cert = str_or_empty(cfg->cert_file);
	const char *key = str_or_empty(cfg->key_file);
	char	   *want;
	SSL_CTX    *ctx;
	char		ebuf[256];

	want = psprintf("%d\n%s\n%s\n%s", verify, ca, cert, key);
	if (tls_ctx && strcmp(want, tls_ctx_key) == 0)
	{
		pfree(want);
		return tls_ctx;
	}
	if (tls_ctx)
	{
		tls_sessions_forget();
		SSL_CTX_free(tls_ctx);
		tls_ctx = NULL;
		pfree(tls_ctx_key);
		tls_ctx_key = NULL;
	}

	ERR_clear_error();
	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL)
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_OUT_OF_MEMORY,
					  "could not set up TLS for Redis",
					  "SSL_CTX_new failed: %s.", tls_error_text(ebuf, sizeof(ebuf)));
		pfree(want);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
					 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
	/* RESP is self-delimiting: an EOF without close_notify is a plain EOF */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
	SSL_CTX_set_default_passwd_cb(ctx, tls_no_passphrase);
	/* tickets come to tls_new_session; OpenSSL keeps none itself */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, tls_new_session);

	if (verify)
	{
		if (ca[0] ? SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1
			: SSL_CTX_set_default_verify_paths(ctx) != 1)
		{
			RedisErrorSet(err, RS_CONNECT, ERRCODE_CONFIG_FILE_ERROR,
						  "could not set up TLS for Redis",
						  "Could not load the trusted CA certificates from %s%s%s: %s.",
						  ca[0] ? "\"" : "the system store", ca, ca[0] ? "\"" : "",
						  tls_error_text(ebuf, sizeof(ebuf)));
			goto fail;
		}
	}
	if (key[0] && !cert[0])
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_CONFIG_FILE_ERROR,
					  "could not set up TLS for Redis",
					  "bmfredis.tls_key_file is set but bmfredis.tls_cert_file is not.");
		goto fail;
	}
	if (cert[0])
	{
		if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
		{
			RedisErrorSet(err, RS_CONNECT, ERRCODE_CONFIG_FILE_ERROR,
						  "could not set up TLS for Redis",
						  "Could not load the client certificate \"%s\": %s.",
						  cert, tls_error_text(ebuf, sizeof(ebuf)));
			goto fail;
		}
		/* without a key file, the key is expected in the certificate file */
		if (SSL_CTX_use_PrivateKey_file(ctx, key[0] ? key : cert, SSL_FILETYPE_PEM) != 1 ||
			SSL_CTX_check_private_key(ctx) != 1)
		{
			RedisErrorSet(err, RS_CONNECT, ERRCODE_CONFIG_FILE_ERROR,
						  "could not set up TLS for Redis",
						  "Could not load the private key \"%s\" of the client certificate: %s.",
						  key[0] ? key : cert, tls_error_text(ebuf, sizeof(ebuf)));
			goto fail;
		}
	}

	tls_ctx = ctx;
	tls_ctx_key = MemoryContextStrdup(TopMemoryContext, want);
	pfree(want);
	return tls_ctx;

fail:
	SSL_CTX_free(ctx);
	ERR_clear_error();
	pfree(want);
	return NULL;
}

static const char *
verify_name(int verify)
{
	return verify == TLS_VERIFY_FULL ? "full" : verify == TLS_VERIFY_CA ? "ca" : "none";
}

/* Say why SSL_connect failed, as precisely as OpenSSL lets us. */
static void
tls_handshake_error(RedisTransport *t, const RedisEndpoint *ep, int sslerr,
					const char *name, RedisError *err)
{
	long		vr = SSL_get_verify_result(t->ssl);
	char		ebuf[256];

	if (vr != X509_V_OK)
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					  "could not establish a TLS connection to Redis",
					  "The certificate of %s was refused: %s (verifying %s \"%s\", bmfredis.tls_verify = %s).",
					  ep->name, X509_verify_cert_error_string(vr),
					  ep->tls.verify == TLS_VERIFY_FULL ? "the chain and the name" : "the chain",
					  name, verify_name(ep->tls.verify));
		ERR_clear_error();
	}
	else if ((sslerr == SSL_ERROR_SYSCALL || sslerr == SSL_ERROR_ZERO_RETURN) &&
			 ERR_peek_error() == 0)
	{
		if (errno != 0 && sslerr == SSL_ERROR_SYSCALL)
			RedisErrorSet(err, RS_CONNECT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
						  "could not establish a TLS connection to Redis",
						  "TLS handshake with %s failed: %m.", ep->name);
		else
			RedisErrorSet(err, RS_CONNECT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
						  "could not establish a TLS connection to Redis",
						  "%s closed the connection during the TLS handshake (does it require a client certificate?).",
						  ep->name);
	}
	else
	{
		const char *why = tls_error_text(ebuf, sizeof(ebuf));

		RedisErrorSet(err, RS_CONNECT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					  "could not establish a TLS connection to Redis",
					  "TLS handshake with %s failed: %s%s", ep->name, why,
					  (strstr(why, "wrong version") || strstr(why, "packet length") ||
					   strstr(why, "record layer"))
					  ? " (the server does not speak TLS on this port)." : ".");
	}
}

/*
 * Run the TLS handshake on a connected socket, waiting until the connect
 * deadline.  The SSL object is stored in *t at once, so an interrupt that
 * throws out of the wait leaves nothing behind that TransportClose() does
 * not free.
 */
static bool
tls_handshake(RedisTransport *t, const RedisEndpoint *ep, TimestampTz deadline,
			  RedisError *err)
{
	const RedisTlsConfig *cfg = &ep->tls;
	const char *name = (cfg->server_name && cfg->server_name[0]) ? cfg->server_name : ep->host;
	SSL_CTX    *ctx = tls_context(cfg, err);
	char		ebuf[256];

	if (ctx == NULL)
		return false;

	ERR_clear_error();
	t->ssl = SSL_new(ctx);
	if (t->ssl == NULL || SSL_set_fd(t->ssl, t->sock) != 1 ||
		(!is_ip_literal(name) && SSL_set_tlsext_host_name(t->ssl, name) != 1))
	{
		RedisErrorSet(err, RS_CONNECT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
					  "could not establish a TLS connection to Redis",
					  "Could not prepare TLS for %s: %s.", ep->name,
					  tls_error_text(ebuf, sizeof(ebuf)));
		t->ssl_fatal = true;
		return false;
	}
	/* a ticket from this server, under these settings, is offered */
	snprintf(t->tls_peer, sizeof(t->tls_peer), "%s\n%s\n%d", ep->name, name, (int) cfg->verify);
	SSL_set_app_data(t->ssl, t);
	{
		TlsSession *slot = tls_session_slot(t->tls_peer, false);
		SSL_SESSION *session = (slot && SSL_SESSION_is_resumable(slot->session))
			? slot->session : ticket_fetch(t->tls_peer);

		if (session)
			(void) SSL_set_session(t->ssl, session);
	}
	if (cfg->verify == TLS_VERIFY_FULL)
	{
		int			ok;

		if (is_ip_literal(name))
			ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name);
		else
		{
			SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			ok = SSL_set1_host(t->ssl, name);
		}
		if (ok != 1)
		{
			RedisErrorSet(err, RS_CONNECT, ERRCODE_INVALID_PARAMETER_VALUE,
						  "could not establish a TLS connection to Redis",
						  "\"%s\" cannot be verified as a host name or address.", name);
			t->ssl_fatal = true;
			return false;
		}
	}
	SSL_set_verify(t->ssl, cfg->verify == TLS_VERIFY_NONE ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);

	for (;;)
	{
		int			rc;
		int			sslerr;
		int			save_errno;
		uint32		want;

		ERR_clear_error();
		errno = 0;
		rc = SSL_connect(t->ssl);
		if (rc == 1)
			return true;
		save_errno = errno;
		sslerr = SSL_get_error(t->ssl, rc);
		errno = save_errno;
		if (sslerr == SSL_ERROR_WANT_READ)
			want = WL_SOCKET_READABLE;
		else if (sslerr == SSL_ERROR_WANT_WRITE)
			want = WL_SOCKET_WRITEABLE;
		else
		{
			tls_handshake_error(t, ep, sslerr, name, err);
			t->ssl_fatal = true;
			return false;
		}
		if (transport_wait(t, want, deadline) == 0)
		{
			RedisErrorSet(err, RS_TIMEOUT, ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
						  "could not connect to Redis",
						  "The TLS handshake with %s did not finish within the connect timeout%s.",
						  ep->name, want == WL_SOCKET_READABLE
						  ? " (no TLS answer came: is it a plaintext port?)" : "");
			t->ssl_fatal = true;
			return false;
		}
	}
}

/* Map a failed SSL_read/SSL_write; returns the socket event to wait for, or 0. */
static uint32
tls_io_error(RedisTransport *t, int rc, const char *what, RedisError *err)
{
	int			save_errno = errno;
	int			sslerr = SSL_get_error(t->ssl, rc);
	char		ebuf[256];

	errno = save_errno;
	switch (sslerr)
	{
		case SSL_ERROR_WANT_READ:
			return WL_SOCKET_READABLE;
		case SSL_ERROR_WANT_WRITE:
			return WL_SOCKET_WRITEABLE;
		case SSL_ERROR_ZERO_RETURN:
			RedisErrorSet(err, RS_IO, ERRCODE_CONNECTION_FAILURE,
						  "lost connection to Redis",
						  "The server closed the connection.");
			break;
		case SSL_ERROR_SYSCALL:
			if (errno == 0 && ERR_peek_error() == 0)
				RedisErrorSet(err, RS_IO, ERRCODE_CONNECTION_FAILURE,
							  "lost connection to Redis",
							  "The server closed the connection.");
			else if (ERR_peek_error() == 0)
				RedisErrorSet(err, RS_IO, ERRCODE_CONNECTION_FAILURE,
							  "lost connection to Redis",
							  "Could not %s Redis: %m.", what);
			else
				RedisErrorSet(err, RS_IO, ERRCODE_CONNECTION_FAILURE,
							  "lost connection to Redis",
							  "Could not %s Redis: %s.", what,
							  tls_error_text(ebuf, sizeof(ebuf)));
			break;
		default:
			RedisErrorSet(err, RS_IO, ERRCODE_CONNECTION_FAILURE,
						  "lost connection to Redis",
						  "TLS error while trying to %s Redis: %s.", what,
						  tls_error_text(ebuf, sizeof(ebuf)));
			break;
	}
	t->ssl_fatal = true;
	ERR_clear_error();
	return 0;
}

/*
 * A write failed: did the server send an alert first?  A TLS 1.3 server
 * that wants a client certificate says so after the handshake and closes;
 * if our first write races the close it fails with a reset, and the
 * reason sits unread in the socket.  Read it into err's detail.
 */
static void
tls_pending_alert(RedisTransport *t, RedisError *err)
{
	char		tmp[256];
	char		reason[256];
	int			n;
	size_t		len;

	ERR_clear_error();
	n = SSL_read(t->ssl, tmp, sizeof(tmp));
	if (n <= 0 && SSL_get_error(t->ssl, n) == SSL_ERROR_SSL)
	{
		tls_error_text(reason, sizeof(reason));
		len = strlen(err->detail);
		if (len > 0 && err->detail[len - 1] == '.')
			err->detail[--len] = '\0';
		snprintf(err->detail + len, sizeof(err->detail) - len,
				 " (the server had said: %s).", reason);
	}
	ERR_clear_error();
}

static bool
tls_write(RedisTransport *t, const char *buf, size_t len, TimestampTz deadline,
		  RedisError *err)
{
	size_t		off = 0;

	while (off < len)
	{
		int			chunk = (int) Min(len - off, (size_t) INT_MAX);
		int			n;
		uint32		want;

		ERR_clear_error();
		errno = 0;
		n = SSL_write(t->ssl, buf + off, chunk);
		if (n > 0)
		{
			off += n;
			t->moved = true;
			continue;
		}
		want = tls_io_error(t, n, "send to", err);
		if (want == 0)
		{
			tls_pending_alert(t, err);
			return false;
		}
		if (transport_wait(t, want, deadline) == 0)
		{
			RedisErrorSet(err, RS_TIMEOUT, ERRCODE_CONNECTION_FAILURE,
						  "Redis command timed out",
						  "Sending to Redis did not finish in time.");
			return false;
		}
	}
	return true;
}

static ssize_t
tls_read(RedisTransport *t, char *buf, size_t cap, bool wait_first,
		 TimestampTz deadline, RedisError *err)
{
	uint32		want = WL_SOCKET_READABLE;

	for (;;)
	{
		int			n;

		/*
		 * Decrypted bytes OpenSSL already holds never show on the socket.
		 * (Not SSL_has_pending(): that is also true for half a record,
		 * which needs the socket.)
		 */
		if (wait_first && SSL_pending(t->ssl) == 0 &&
			transport_wait(t, want, deadline) == 0)
		{
			RedisErrorSet(err, RS_TIMEOUT, ERRCODE_CONNECTION_FAILURE,
						  "Redis command timed out",
						  "No reply from Redis in time.");
			return -1;
		}
		ERR_clear_error();
		errno = 0;
		n = SSL_read(t->ssl, buf, (int) Min(cap, (size_t) INT_MAX));
		if (n > 0)
		{
			t->moved = true;
			return n;
		}
		want = tls_io_error(t, n, "receive from", err);
		if (want == 0)
			return -1;
		wait_first = true;
	}
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

		if (ep->tls.enabled)
		{
			RedisErrorSet(err, RS_CONNECT, ERRCODE_INVALID_PARAMETER_VALUE,
						  "could not connect to Redis",
						  "Redis does not offer TLS on a Unix socket; bmfredis.tls needs bmfredis.host and bmfredis.port.");
			return false;
		}

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

	if (ok && ep->tls.enabled && !tls_handshake(t, ep, deadline, err))
	{
		TransportClose(t);
		ok = false;
	}
	return ok;
}

bool
TransportWrite(RedisTransport *t, const char *buf, size_t len,
			   TimestampTz deadline, RedisError *err)
{
	size_t		off = 0;

	if (t->ssl)
		return tls_write(t, buf, len, deadline, err);

	while (off < len)
	{
		ssize_t		n = send(t->sock, buf + off, len - off, MSG_NOSIGNAL);

		if (n > 0)
		{
			off += n;
			t->moved = true;
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

#define READ_PROBE_EVERY 16

/*
 * Read what is available, waiting (until the deadline) when nothing is.
 * wait_first says a request was just sent and nothing of its reply read:
 * whether to look before waiting is then the connection's to learn (see
 * below).  Returns the byte count, or -1 with err set.
 */
ssize_t
TransportRead(RedisTransport *t, char *buf, size_t cap, bool wait_first,
			  TimestampTz deadline, RedisError *err)
{
	bool		optimistic;

	if (t->ssl)
		return tls_read(t, buf, cap, wait_first, deadline, err);

	/*
	 * Look before waiting?  When Redis answers before we get to wait (it
	 * shares our CPU, or is simply fast), the wait is a wasted epoll_wait
	 * per call; when it does not, looking first is a wasted recv.  Each
	 * connection learns which: it looks first while that keeps finding a
	 * reply, and otherwise tries it again every READ_PROBE_EVERY replies.
	 */
	optimistic = wait_first &&
		(t->read_first || ++t->probes >= READ_PROBE_EVERY);
	if (optimistic)
	{
		t->probes = 0;
		wait_first = false;
	}

	for (;;)
	{
		ssize_t		n;

		if (wait_first)
		{
			if (transport_wait(t, WL_SOCKET_READABLE, deadline) == 0)
			{
				RedisErrorSet(err, RS_TIMEOUT, ERRCODE_CONNECTION_FAILURE,
							  "Redis command timed out",
							  "No reply from Redis in time.");
				return -1;
			}
			wait_first = false;
		}

		n = recv(t->sock, buf, cap, 0);
		if (optimistic)
		{
			t->read_first = (n > 0);
			optimistic = false;
		}
		if (n > 0)
		{
			t->moved = true;
			return n;
		}
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
 * Two connections watched together (the near-cache's tracked connection
 * and the one its invalidations arrive on): an epoll set made once, so
 * that asking whether anything arrived on either is one epoll_wait that
 * does not wait, with nothing to set up per call.
 */
struct TransportPair
{
	int			epfd;			/* an epoll set of its own: one syscall a look */
	RedisTransport *a;
	RedisTransport *b;
};

/*
 * Two sockets watched together, for the near-cache's look before each hit.
 * A plain epoll set rather than a WaitEventSet: the look never waits, so
 * it needs no latch, and WaitEventSetWait's bookkeeping was a fifth of a
 * hit's time.  NULL if the kernel refuses (the caller then looks always).
 */
TransportPair *
TransportPairCreate(RedisTransport *a, RedisTransport *b)
{
	TransportPair *p;
	struct epoll_event ev;
	int			fd = epoll_create1(EPOLL_CLOEXEC);

	if (fd < 0)
		return NULL;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.u32 = 0;
	if (epoll_ctl(fd, EPOLL_CTL_ADD, a->sock, &ev) < 0)
	{
		close(fd);
		return NULL;
	}
	ev.data.u32 = 1;
	if (epoll_ctl(fd, EPOLL_CTL_ADD, b->sock, &ev) < 0)
	{
		close(fd);
		return NULL;
	}
	p = MemoryContextAllocZero(TopMemoryContext, sizeof(TransportPair));
	p->epfd = fd;
	p->a = a;
	p->b = b;
	return p;
}

void
TransportPairFree(TransportPair *p)
{
	if (p == NULL)
		return;
	close(p->epfd);
	pfree(p);
}

void
TransportPairPending(TransportPair *p, bool *a_pending, bool *b_pending)
{
	struct epoll_event ev[2];
	int			n;
	int			i;

	if (p == NULL)
	{
		*a_pending = *b_pending = true;	/* no set: look at both */
		return;
	}
	*a_pending = p->a->ssl && SSL_pending(p->a->ssl) > 0;
	*b_pending = p->b->ssl && SSL_pending(p->b->ssl) > 0;
	n = epoll_wait(p->epfd, ev, 2, 0);
	if (n < 0)
	{
		*a_pending = *b_pending = true; /* EINTR: look at both */
		return;
	}
	for (i = 0; i < n; i++)
	{
		if (ev[i].data.u32 == 0)
			*a_pending = true;
		else
			*b_pending = true;
	}
}

/*
 * What has arrived, without waiting: bytes read, 0 when nothing is there,
 * -1 when the connection is gone.  Over TLS, a record that has begun to
 * arrive is read whole (within bmfredis.command_timeout).
 */
ssize_t
TransportTryRead(RedisTransport *t, char *buf, size_t cap, RedisError *err)
{
	ssize_t		n;

	if (t->ssl)
	{
		char		c;

		if (SSL_pending(t->ssl) <= 0)
		{
			n = recv(t->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
				return 0;
			if (n == 0)
			{
				RedisErrorSet(err, RS_IO, ERRCODE_CONNECTION_FAILURE,
							  "lost connection to Redis",
							  "The server closed the connection.");
				return -1;
			}
		}
		return tls_read(t, buf, cap, false, BmfDeadline(bmf_command_timeout), err);
	}
	for (;;)
	{
		n = recv(t->sock, buf, cap, MSG_DONTWAIT);
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
			return 0;
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
	ssize_t		n;
	int			rc;

	if (t->ssl && SSL_pending(t->ssl) > 0)
		return true;			/* unsolicited bytes */
	n = recv(t->sock, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return false;
	if (n <= 0 || t->ssl == NULL)
		return true;			/* EOF, error, or unsolicited bytes */

	/*
	 * Bytes on a TLS connection may be a session ticket or key update,
	 * which OpenSSL consumes without producing data.  Let it look.
	 */
	ERR_clear_error();
	rc = SSL_peek(t->ssl, &c, 1);
	if (rc > 0)
		return true;
	rc = SSL_get_error(t->ssl, rc);
	ERR_clear_error();
	if (rc == SSL_ERROR_WANT_READ || rc == SSL_ERROR_WANT_WRITE)
		return false;
	t->ssl_fatal = true;
	return true;
}
