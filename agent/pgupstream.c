/* The proxy's upstream side: resolve, connect (TCP or Unix socket), TLS as
 * sslmode says, the startup packet, authentication with the credential only
 * the agent holds, and the hello the client gets once the server is ready.
 * Also CancelRequest forwarding. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/maskwire.h"
#include "agent/pgauth.h"
#include "agent/pgconn.h"
#include "agent/pgwire.h"
#include "agent/resolve.h"
#include "common/log.h"

#define CANCEL_TIMEOUT_US (5 * 1000000)

static void upstream_fail(struct pgconn *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void upstream_fail(struct pgconn *c, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("grant %s connection %llu: upstream %s: %s", c->gc.grant->id,
		 (unsigned long long)c->serial, c->gc.grant->conn->name, msg);
	c->end_reason = "upstream connection failed";
	pg_fatal_client(c, sqlstate, "sluice: cannot connect to %s: %s", c->gc.grant->conn->name, msg);
}

ssize_t pg_up_read(struct pgconn *c, void *p, size_t n)
{
	ssize_t r;

	if (c->tls) {
		enum tls_want want = TLS_WANT_NONE;
		r = tls_read(c->tls, p, n, &want);
		c->tls_rd_want = r == -EAGAIN ? want : TLS_WANT_NONE;
		return r;
	}
	r = recv(c->ufd, p, n, 0);
	return r < 0 ? -errno : r;
}

ssize_t pg_up_write(struct pgconn *c, const void *p, size_t n)
{
	ssize_t r;

	if (c->tls) {
		enum tls_want want = TLS_WANT_NONE;
		r = tls_write(c->tls, p, n, &want);
		c->tls_wr_want = r == -EAGAIN ? want : TLS_WANT_NONE;
		return r;
	}
	r = send(c->ufd, p, n, MSG_NOSIGNAL);
	return r < 0 ? -errno : r;
}

static void close_socket(struct pgconn *c)
{
	c->tls = tls_conn_free(c->tls);
	c->uw = loop_watch_del(c->uw);
	if (c->ufd >= 0)
		close(c->ufd);
	c->ufd = -1;
	c->tls_want = c->tls_rd_want = c->tls_wr_want = TLS_WANT_NONE;
}

void pg_upstream_close(struct pgconn *c)
{
	c->rq = resolve_cancel(c->rq);
	if (c->ai)
		freeaddrinfo(c->ai);
	c->ai = c->ai_next = NULL;
	c->scram = scram_free(c->scram);
	/* A polite goodbye when we are between messages; best effort. */
	if (c->ufd >= 0 && c->state != PGS_UPSTREAM && c->c2s.stream_left == 0 &&
	    c->c2s.off == c->c2s.scan) {
		static const uint8_t terminate[5] = { 'X', 0, 0, 0, 4 };
		if (pg_up_write(c, terminate, sizeof(terminate)) < 0)
			log_debug("grant %s: no Terminate sent upstream", c->gc.grant->id);
	}
	close_socket(c);
	/* Whatever was still queued for upstream goes nowhere now; auth
	 * messages among it are wiped. */
	c->c2s.off = c->c2s.scan;
	c->c2s.stream_left = 0;
}

static int send_startup(struct pgconn *c)
{
	/* The client's parameters (at most 64) and ours. */
	const char *keys[80], *vals[80];
	struct buf m = BUF_INIT(PG_STARTUP_MAX);
	size_t off = 0, n = 0;
	int r;

	/* Never cut short: the pinned settings are among them. */
	if (c->n_params > ARRAY_SIZE(keys))
		return -E2BIG;
	while (off < c->params.len && n < ARRAY_SIZE(keys)) {
		keys[n] = (const char *)c->params.data + off;
		off += strlen(keys[n]) + 1;
		vals[n] = (const char *)c->params.data + off;
		off += strlen(vals[n]) + 1;
		n++;
	}
	r = pgw_startup(&m, keys, vals, n);
	if (r == 0)
		r = pg_pipe_insert(&c->c2s, m.data, m.len);
	buf_release(&m, 0);
	if (r < 0)
		return r;
	c->up = UP_AUTH;
	return 0;
}

static void connected(struct pgconn *c)
{
	const struct pol_connection *conn = c->gc.grant->conn;
	int one = 1;

	if (c->ai) {
		freeaddrinfo(c->ai);
		c->ai = c->ai_next = NULL;
	}
	if (c->up_addr.ss_family != AF_UNIX) {
		(void)setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		(void)setsockopt(c->ufd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	}
	c->use_tls = conn->sslmode >= SSLMODE_PREFER ||
		     (conn->sslmode == SSLMODE_ALLOW && c->tls_plain_retry);
	if (c->use_tls) {
		uint8_t req[8];
		put_u32(req, 8);
		put_u32(req + 4, PG_SSL_REQUEST);
		/* Eight bytes on a fresh socket: the send buffer is empty. */
		if (send(c->ufd, req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req)) {
			upstream_fail(c, "08006", "cannot send SSLRequest: %s", strerror(errno));
			return;
		}
		c->up = UP_SSL_ANSWER;
		return;
	}
	if (send_startup(c) < 0)
		upstream_fail(c, "53200", "out of memory");
}

static void try_next_address(struct pgconn *c, int last_err);

static int start_connect(struct pgconn *c, const struct sockaddr *sa, socklen_t len)
{
	int r;

	c->ufd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->ufd < 0)
		return -errno;
	memcpy(&c->up_addr, sa, len);
	c->up_addrlen = len;
	r = loop_watch_add(c->agent->loop, c->ufd, EPOLLOUT, pg_on_upstream, c, &c->uw);
	if (r < 0) {
		close_socket(c);
		return r;
	}
	if (connect(c->ufd, sa, len) == 0) {
		connected(c);
		return 0;
	}
	if (errno == EINPROGRESS) {
		c->up = UP_CONNECTING;
		return 0;
	}
	r = -errno;
	close_socket(c);
	return r;
}

static void try_next_address(struct pgconn *c, int last_err)
{
	const struct pol_connection *conn = c->gc.grant->conn;

	while (c->ai_next) {
		struct addrinfo *ai = c->ai_next;
		int r;

		c->ai_next = ai->ai_next;
		r = start_connect(c, ai->ai_addr, ai->ai_addrlen);
		if (r == 0)
			return;
		last_err = r;
	}
	upstream_fail(c, "08001", "%s port %u: %s", conn->host, (unsigned)conn->port,
		      strerror(-last_err));
}

static void on_resolved(int err, struct addrinfo *res, void *ud)
{
	struct pgconn *c = ud;

	c->rq = NULL;
	if (err != 0) {
		upstream_fail(c, "08001", "cannot resolve %s: %s", c->gc.grant->conn->host,
			      gai_strerror(err));
	} else {
		c->ai = c->ai_next = res;
		try_next_address(c, -EHOSTUNREACH);
	}
	pg_pump(c, 0, 0);
}

static int connect_upstream(struct pgconn *c)
{
	const struct pol_connection *conn = c->gc.grant->conn;

	c->up = UP_RESOLVING;
	if (conn->host[0] == '/') {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.%u", conn->host,
				 (unsigned)conn->port);
		int r;

		if (n < 0 || (size_t)n >= sizeof(sa.sun_path)) {
			upstream_fail(c, "08001", "socket path under %s is too long", conn->host);
			return 0;
		}
		r = start_connect(c, (struct sockaddr *)&sa, sizeof(sa));
		if (r < 0)
			upstream_fail(c, "08001", "%s: %s", sa.sun_path, strerror(-r));
		return 0;
	}
	return resolve_start(c->agent->resolver, conn->host, conn->port, on_resolved, c, &c->rq);
}

int pg_upstream_start(struct pgconn *c)
{
	const struct pol_agent *cfg = &c->agent->pol->p->agent;

	loop_timer_move(c->timer, mono_us() + (int64_t)cfg->connect_timeout * 1000000);
	return connect_upstream(c);
}

/* sslmode=allow: plaintext was refused; start over with TLS. */
static void retry_with_tls(struct pgconn *c)
{
	close_socket(c);
	c->tls_plain_retry = true;
	c->c2s.off = c->c2s.scan = c->c2s.b.len = 0;
	c->s2c.off = c->s2c.scan = c->s2c.b.len = 0;
	if (connect_upstream(c) < 0)
		upstream_fail(c, "08001", "cannot retry with TLS");
}

static void handshake(struct pgconn *c)
{
	struct pg_grant *pg = c->gc.grant->proto_data;
	char err[256] = "";
	int r;

	if (!c->tls) {
		if (!pg || !pg->tls) {
			upstream_fail(c, "08006", "no TLS context");
			return;
		}
		r = tls_conn_new(pg->tls, c->ufd, c->gc.grant->conn->host, &c->tls, err, sizeof(err));
		if (r < 0) {
			upstream_fail(c, "08006", "TLS: %s", err);
			return;
		}
	}
	r = tls_handshake(c->tls, &c->tls_want);
	if (r == -EAGAIN)
		return;
	if (r < 0) {
		upstream_fail(c, "08006", "TLS handshake with %s failed: %s", c->gc.grant->conn->host,
			      tls_conn_error(c->tls));
		return;
	}
	c->tls_want = TLS_WANT_NONE;
	if (log_debug_enabled()) {
		char desc[128];
		tls_conn_describe(c->tls, desc, sizeof(desc));
		log_debug("grant %s connection %llu: upstream TLS %s", c->gc.grant->id,
			  (unsigned long long)c->serial, desc);
	}
	if (send_startup(c) < 0)
		upstream_fail(c, "53200", "out of memory");
}

void pg_upstream_event(struct pgconn *c, uint32_t events)
{
	const struct pol_connection *conn = c->gc.grant->conn;

	switch (c->up) {
	case UP_RESOLVING:
		return;
	case UP_CONNECTING: {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err == 0) {
			connected(c);
			return;
		}
		close_socket(c);
		if (c->ai_next)
			try_next_address(c, -err);
		else
			upstream_fail(c, "08001", "%s port %u: %s", conn->host, (unsigned)conn->port,
				      strerror(err));
		return;
	}
	case UP_SSL_ANSWER: {
		uint8_t answer[2];
		ssize_t n = recv(c->ufd, answer, sizeof(answer), 0);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		/* Exactly one byte: anything more arrived unencrypted before the
		 * handshake and must not be trusted (CVE-2021-23222). */
		if (n == 1 && answer[0] == 'S') {
			c->up = UP_TLS;
			handshake(c);
		} else if (n == 1 && answer[0] == 'N') {
			if (conn->sslmode == SSLMODE_PREFER ||
			    (conn->sslmode == SSLMODE_ALLOW && c->tls_plain_retry)) {
				c->use_tls = false;
				if (send_startup(c) < 0)
					upstream_fail(c, "53200", "out of memory");
			} else {
				upstream_fail(c, "08001", "the server does not support TLS, but sslmode requires it");
			}
		} else {
			upstream_fail(c, "08P01", "unexpected answer to SSLRequest");
		}
		return;
	}
	case UP_TLS:
		handshake(c);
		return;
	default:
		return;
	}
}

/* A complete server message while setting up (UP_AUTH, UP_PARAMS). */
int pg_upstream_message(struct pgconn *c, char type, const uint8_t *body, size_t n)
{
	struct grant *g = c->gc.grant;
	const struct pol_connection *conn = g->conn;
	struct pg_grant *pg = g->proto_data;
	struct buf out = BUF_INIT(64 * 1024);
	int r = 0;

	if (c->up == UP_CATALOG) {
		r = pg_mask_catalog_message(c, type, body, n);
		if (r < 0) {
			upstream_fail(c, "08006", "sluice: cannot read the catalog to mask this connection's columns (see the agent's log)");
			return 0;
		}
		if (r == 1)
			pg_ready_for_client(c);
		return 0;
	}
	switch (type) {
	case 'R': {
		uint32_t code;

		if (n < 4 || c->up != UP_AUTH) {
			upstream_fail(c, "08P01", "unexpected authentication message");
			return 0;
		}
		code = get_u32(body);
		if (code == 0) {
			if (c->scram && !scram_done(c->scram)) {
				upstream_fail(c, "28000", "the server skipped SCRAM verification");
				return 0;
			}
			c->scram = scram_free(c->scram);
			c->up = UP_PARAMS;
			return pgw_auth_ok(&c->hello);
		}
		if (!pg || !pg->password) {
			upstream_fail(c, "28000",
				      "the server asks for a password, but [connection %s] has no password_file",
				      conn->name);
			return 0;
		}
		switch (code) {
		case 3: /* cleartext */
			r = pg_msg_password(&out, pg->password);
			break;
		case 5: { /* md5 */
			char hash[PGAUTH_MD5_LEN + 1];
			if (n != 8) {
				upstream_fail(c, "08P01", "malformed md5 request");
				return 0;
			}
			r = pgauth_md5(conn->user, pg->password, body + 4, hash);
			if (r == 0)
				r = pg_msg_password(&out, hash);
			explicit_bzero(hash, sizeof(hash));
			break;
		}
		case 10: { /* SASL */
			struct buf first = BUF_INIT(1024);
			if (c->scram) {
				upstream_fail(c, "08P01", "SASL restarted");
				return 0;
			}
			r = pgauth_sasl_offers_scram(body + 4, n - 4);
			if (r < 0) {
				upstream_fail(c, "28000", "the server offers no SASL mechanism sluice supports");
				return 0;
			}
			r = scram_new(&c->scram);
			if (r == 0)
				r = scram_client_first(c->scram, &first);
			if (r == 0)
				r = pg_msg_sasl_initial(&out, PGAUTH_SCRAM_MECH, first.data, first.len);
			buf_release(&first, 1);
			break;
		}
		case 11: { /* SASL continue */
			struct buf fin = BUF_INIT(4096);
			if (!c->scram) {
				upstream_fail(c, "08P01", "SASLContinue without SASL");
				return 0;
			}
			r = scram_client_final(c->scram, pg->password, body + 4, n - 4, &fin);
			if (r < 0) {
				buf_release(&fin, 1);
				upstream_fail(c, "28000", "SCRAM: %s", scram_error(c->scram));
				return 0;
			}
			r = pg_msg_sasl_response(&out, fin.data, fin.len);
			buf_release(&fin, 1);
			break;
		}
		case 12: /* SASL final */
			if (!c->scram || scram_verify_server_final(c->scram, body + 4, n - 4) < 0) {
				upstream_fail(c, "28000", "SCRAM: %s",
					      c->scram ? scram_error(c->scram) : "SASLFinal without SASL");
				return 0;
			}
			return 0;
		default:
			upstream_fail(c, "28000", "the server asks for authentication method %u, which sluice does not support",
				      (unsigned)code);
			return 0;
		}
		if (r == 0) {
			r = pg_pipe_insert(&c->c2s, out.data, out.len);
			c->c2s.secret = true;
		}
		buf_release(&out, 1);
		return r;
	}
	case 'E': {
		struct pg_error_fields f = { 0 };
		if (conn->sslmode == SSLMODE_ALLOW && !c->use_tls && !c->tls_plain_retry) {
			retry_with_tls(c);
			return 0;
		}
		if (pgw_parse_error(body, n, &f) < 0)
			f = (struct pg_error_fields){ 0 };
		upstream_fail(c, f.sqlstate ? f.sqlstate : "08006", "the server says: %s",
			      f.message ? f.message : "(no message)");
		return 0;
	}
	case 'N': /* a notice while connecting: the client may see it */
		if ((r = buf_put_u8(&c->hello, 'N')) < 0 || (r = buf_put_u32(&c->hello, (uint32_t)n + 4)) < 0)
			return r;
		return buf_append(&c->hello, body, n);
	case 'S':
		if (c->up != UP_PARAMS)
			break;
		pg_note_parameter(c, body, n);
		if ((r = buf_put_u8(&c->hello, 'S')) < 0 || (r = buf_put_u32(&c->hello, (uint32_t)n + 4)) < 0)
			return r;
		return buf_append(&c->hello, body, n);
	case 'K': {
		uint8_t key[8];
		if (c->up != UP_PARAMS || n != 8)
			break;
		c->up_pid = get_u32(body);
		c->up_key = get_u32(body + 4);
		c->have_up_key = true;
		/* The client gets keys of ours; CancelRequest maps them back. */
		if ((r = random_bytes(key, sizeof(key))) < 0)
			return r;
		c->proxy_pid = get_u32(key) & 0x7fffffff;
		c->proxy_key = get_u32(key + 4);
		if (c->proxy_pid == 0)
			c->proxy_pid = 1;
		return pgw_backend_key(&c->hello, c->proxy_pid, c->proxy_key);
	}
	case 'Z':
		if (c->up != UP_PARAMS || n != 1)
			break;
		if ((r = pgw_ready(&c->hello, (char)body[0])) < 0)
			return r;
		/* Masking first learns which columns to mask. */
		r = pg_mask_catalog_start(c);
		if (r < 0)
			return r;
		if (r == 1) {
			c->up = UP_CATALOG;
			return 0;
		}
		pg_ready_for_client(c);
		return 0;
	default:
		break;
	}
	upstream_fail(c, "08P01", "unexpected message '%c' during start-up", type);
	return 0;
}

/* --- CancelRequest ------------------------------------------------------ */

struct pgcancel {
	struct loop *loop;
	int fd;
	struct loop_watch *w;
	struct loop_timer *t;
	uint8_t pkt[16];
	size_t sent;
};

static void cancel_free(struct pgcancel *k)
{
	k->w = loop_watch_del(k->w);
	k->t = loop_timer_del(k->t);
	if (k->fd >= 0)
		close(k->fd);
	free(k);
}

static void cancel_timeout(struct loop_timer *t, void *ud)
{
	struct pgcancel *k = ud;

	log_warn("cancel request to upstream timed out");
	cancel_free(k);
}

static void cancel_event(struct loop_watch *w, uint32_t events, void *ud)
{
	struct pgcancel *k = ud;
	int err = 0;
	socklen_t len = sizeof(err);

	if (k->sent == 0 && (getsockopt(k->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)) {
		log_warn("cancel request: cannot connect upstream: %s", strerror(err ? err : errno));
		cancel_free(k);
		return;
	}
	while (k->sent < sizeof(k->pkt)) {
		ssize_t n = send(k->fd, k->pkt + k->sent, sizeof(k->pkt) - k->sent, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			log_warn("cancel request: %s", strerror(errno));
			break;
		}
		k->sent += (size_t)n;
	}
	/* PostgreSQL answers a cancel by closing; we need not wait for it. */
	cancel_free(k);
}

int pg_send_cancel(struct pgconn *c)
{
	struct pgcancel *k;
	int r;

	if (!c->have_up_key || c->up_addrlen == 0)
		return -ENOENT;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->loop = c->agent->loop;
	put_u32(k->pkt, 16);
	put_u32(k->pkt + 4, PG_CANCEL_REQUEST);
	put_u32(k->pkt + 8, c->up_pid);
	put_u32(k->pkt + 12, c->up_key);
	k->fd = socket(c->up_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (k->fd < 0) {
		r = -errno;
		free(k);
		return r;
	}
	if (connect(k->fd, (struct sockaddr *)&c->up_addr, c->up_addrlen) < 0 && errno != EINPROGRESS) {
		r = -errno;
		cancel_free(k);
		return r;
	}
	if ((r = loop_watch_add(k->loop, k->fd, EPOLLOUT, cancel_event, k, &k->w)) < 0 ||
	    (r = loop_timer_add(k->loop, mono_us() + CANCEL_TIMEOUT_US, cancel_timeout, k, &k->t)) < 0) {
		cancel_free(k);
		return r;
	}
	return 0;
}
