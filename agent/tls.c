/* Client TLS for upstream connections (OpenSSL 3), non-blocking.
 * See tls.h. Every call starts and ends with an empty OpenSSL error queue so
 * that one connection's failure never shows up as another's. */
#include "config.h"
#include "agent/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

struct tls_ctx {
	SSL_CTX *ctx;
	enum sslmode mode;
};

struct tls_conn {
	SSL *ssl;
	enum sslmode mode;
	bool failed; /* a fatal error happened: no close_notify may follow */
	char err[256];
};

/* ALPN as libpq 17 sends it. Servers before 17 ignore it; 17 and later
 * accept it after an SSLRequest and require it for direct TLS. */
static const unsigned char alpn_postgresql[] = "\x0apostgresql";

static bool mode_verifies(enum sslmode m)
{
	return m == SSLMODE_VERIFY_CA || m == SSLMODE_VERIFY_FULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The most specific reason OpenSSL queued, or fallback; empties the queue. */
static const char *openssl_reason(char *tmp, size_t n, const char *fallback)
{
	unsigned long e = ERR_peek_last_error();
	const char *reason;

	if (e == 0) {
		ERR_clear_error();
		return fallback;
	}
	reason = ERR_reason_error_string(e);
	if (reason)
		snprintf(tmp, n, "%s", reason);
	else
		ERR_error_string_n(e, tmp, n);
	ERR_clear_error();
	return tmp;
}

int tls_ctx_new(enum sslmode mode, const char *rootcert, struct tls_ctx **out,
		char *err, size_t errlen)
{
	struct tls_ctx *t;
	char why[200];
	bool verify = mode_verifies(mode);

	switch (mode) {
	case SSLMODE_ALLOW:
	case SSLMODE_PREFER:
	case SSLMODE_REQUIRE:
	case SSLMODE_VERIFY_CA:
	case SSLMODE_VERIFY_FULL:
		break;
	case SSLMODE_DISABLE:
	default:
		set_err(err, errlen, "TLS context requested for sslmode disable");
		return -EINVAL;
	}
	if (verify && (!rootcert || !*rootcert)) {
		set_err(err, errlen, "sslmode %s needs sslrootcert",
			mode == SSLMODE_VERIFY_CA ? "verify-ca" : "verify-full");
		return -EINVAL;
	}

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->mode = mode;
	ERR_clear_error();
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ctx) {
		set_err(err, errlen, "cannot create TLS context: %s", openssl_reason(why, sizeof(why), "unknown error"));
		free(t);
		return -ENOMEM;
	}
	if (!SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION) ||
	    SSL_CTX_set_alpn_protos(t->ctx, alpn_postgresql, sizeof(alpn_postgresql) - 1) != 0) {
		set_err(err, errlen, "cannot configure TLS context: %s", openssl_reason(why, sizeof(why), "unknown error"));
		t = tls_ctx_free(t);
		return -EIO;
	}
	/* No renegotiation (PostgreSQL disables it too), no compression (CRIME),
	 * no session resumption: each upstream connection is a full handshake,
	 * so each one sees the current certificate. */
	SSL_CTX_set_options(t->ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
	/* Partial writes and a write buffer that may move between retries suit
	 * a relay that appends to its buffers; releasing buffers while idle
	 * keeps idle connections small. */
	SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				 SSL_MODE_RELEASE_BUFFERS);

	if (verify) {
		if (SSL_CTX_load_verify_locations(t->ctx, rootcert, NULL) != 1) {
			set_err(err, errlen, "cannot load sslrootcert %s: %s", rootcert,
				openssl_reason(why, sizeof(why), "no certificates"));
			t = tls_ctx_free(t);
			return -EINVAL;
		}
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	} else {
		/* allow / prefer / require: libpq semantics, the channel is
		 * encrypted but the server is not authenticated, so an active
		 * attacker can stand in the middle. (libpq upgrades require to
		 * verify-ca when ~/.postgresql/root.crt exists; we have no such
		 * implicit file: ask for verify-ca explicitly.) */
		SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
	}
	ERR_clear_error();
	*out = t;
	return 0;
}

struct tls_ctx *tls_ctx_free(struct tls_ctx *t)
{
	if (!t)
		return NULL;
	SSL_CTX_free(t->ctx);
	free(t);
	return NULL;
}

static bool is_ip_literal(const char *host)
{
	unsigned char a[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

int tls_conn_new(struct tls_ctx *t, int fd, const char *host, struct tls_conn **out,
		 char *err, size_t errlen)
{
	struct tls_conn *c;
	char why[200];
	bool ip;
	int r = -EIO;

	if (!t || fd < 0)
		return -EINVAL;
	if (!host || !*host || host[0] == '/') {
		/* A Unix socket directory is no name to check or send. */
		if (t->mode == SSLMODE_VERIFY_FULL) {
			set_err(err, errlen, "sslmode verify-full needs a host name or IP address");
			return -EINVAL;
		}
		host = NULL;
	}
	ip = host && is_ip_literal(host);

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->mode = t->mode;
	ERR_clear_error();
	c->ssl = SSL_new(t->ctx);
	if (!c->ssl) {
		r = -ENOMEM;
		goto fail;
	}
	if (SSL_set_fd(c->ssl, fd) != 1)
		goto fail;
	SSL_set_connect_state(c->ssl);
	/* SNI carries host names only (RFC 6066 3: literal IPs are not
	 * permitted). */
	if (host && !ip && SSL_set_tlsext_host_name(c->ssl, host) != 1)
		goto fail;
	if (t->mode == SSLMODE_VERIFY_FULL) {
		if (ip) {
			X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
			if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1)
				goto fail;
		} else {
			/* A wildcard only as the whole left-most label, as libpq. */
			SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (SSL_set1_host(c->ssl, host) != 1)
				goto fail;
		}
	}
	ERR_clear_error();
	*out = c;
	return 0;
fail:
	set_err(err, errlen, "cannot set up TLS connection: %s", openssl_reason(why, sizeof(why), "unknown error"));
	tls_conn_free(c);
	return r;
}

struct tls_conn *tls_conn_free(struct tls_conn *c)
{
	if (!c)
		return NULL;
	SSL_free(c->ssl);
	free(c);
	return NULL;
}

/* Turn a failed SSL_* call into -EAGAIN + *want or an error with a message.
 * what names the step for the message. */
static int failure(struct tls_conn *c, int ret, const char *what, enum tls_want *want)
{
	int e = SSL_get_error(c->ssl, ret), saved = errno;
	unsigned long last = ERR_peek_last_error();
	char why[200];

	switch (e) {
	case SSL_ERROR_WANT_READ:
		ERR_clear_error();
		*want = TLS_WANT_READ;
		return -EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		ERR_clear_error();
		*want = TLS_WANT_WRITE;
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		/* The peer sent close_notify. */
		ERR_clear_error();
		snprintf(c->err, sizeof(c->err), "%s: server closed the TLS session", what);
		return -EPIPE;
	case SSL_ERROR_SYSCALL:
		c->failed = true;
		ERR_clear_error();
		if (saved == 0 || saved == ECONNRESET || saved == EPIPE) {
			snprintf(c->err, sizeof(c->err), "%s: connection closed by server", what);
			return -ECONNRESET;
		}
		snprintf(c->err, sizeof(c->err), "%s: %s", what, strerror(saved));
		return -saved;
	default:
		break;
	}
	c->failed = true;
	if (mode_verifies(c->mode)) {
		long v = SSL_get_verify_result(c->ssl);
		if (v != X509_V_OK) {
			snprintf(c->err, sizeof(c->err), "certificate verify failed: %s",
				 X509_verify_cert_error_string(v));
			ERR_clear_error();
			return -EACCES;
		}
	}
	if (ERR_GET_LIB(last) == ERR_LIB_SSL && ERR_GET_REASON(last) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
		snprintf(c->err, sizeof(c->err), "%s: connection closed by server", what);
		ERR_clear_error();
		return -ECONNRESET;
	}
	snprintf(c->err, sizeof(c->err), "%s: %s", what, openssl_reason(why, sizeof(why), "protocol error"));
	return -EPROTO;
}

int tls_handshake(struct tls_conn *c, enum tls_want *want)
{
	int ret;

	*want = TLS_WANT_NONE;
	if (c->failed)
		return -EPROTO;
	ERR_clear_error();
	errno = 0;
	ret = SSL_connect(c->ssl);
	if (ret != 1) {
		int r = failure(c, ret, "TLS handshake", want);
		if (r == -EPIPE) { /* close_notify during the handshake */
			c->failed = true;
			r = -ECONNRESET;
		}
		return r;
	}
	/* Belt and braces: SSL_VERIFY_PEER already failed the handshake on a
	 * bad chain or name; never report success without a verified peer. */
	if (mode_verifies(c->mode) &&
	    (SSL_get_verify_result(c->ssl) != X509_V_OK || !SSL_get0_peer_certificate(c->ssl))) {
		c->failed = true;
		snprintf(c->err, sizeof(c->err), "certificate verify failed: %s",
			 X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
		ERR_clear_error();
		return -EACCES;
	}
	ERR_clear_error();
	c->err[0] = '\0';
	return 0;
}

ssize_t tls_read(struct tls_conn *c, void *p, size_t n, enum tls_want *want)
{
	size_t got = 0;
	int r;

	*want = TLS_WANT_NONE;
	if (c->failed)
		return -EPROTO;
	if (n == 0)
		return -EINVAL;
	ERR_clear_error();
	errno = 0;
	if (SSL_read_ex(c->ssl, p, n, &got) == 1) {
		ERR_clear_error();
		return (ssize_t)MIN(got, (size_t)SSIZE_MAX);
	}
	r = failure(c, 0, "TLS read", want);
	if (r == -EPIPE) { /* close_notify: a clean end of the stream */
		c->err[0] = '\0';
		return 0;
	}
	return r;
}

ssize_t tls_write(struct tls_conn *c, const void *p, size_t n, enum tls_want *want)
{
	size_t put = 0;

	*want = TLS_WANT_NONE;
	if (c->failed)
		return -EPROTO;
	if (n == 0)
		return -EINVAL;
	ERR_clear_error();
	errno = 0;
	if (SSL_write_ex(c->ssl, p, n, &put) == 1) {
		ERR_clear_error();
		return (ssize_t)MIN(put, (size_t)SSIZE_MAX);
	}
	return failure(c, 0, "TLS write", want);
}

int tls_shutdown(struct tls_conn *c, enum tls_want *want)
{
	int ret;

	*want = TLS_WANT_NONE;
	if (c->failed) {
		/* After a fatal error OpenSSL must not send close_notify. */
		snprintf(c->err, sizeof(c->err), "TLS shutdown: session already failed");
		return -EPROTO;
	}
	ERR_clear_error();
	errno = 0;
	ret = SSL_shutdown(c->ssl);
	if (ret >= 0) { /* 0: ours sent, theirs not awaited; 1: both */
		ERR_clear_error();
		return 0;
	}
	ret = failure(c, ret, "TLS shutdown", want);
	return ret == -EPIPE ? 0 : ret;
}

bool tls_pending(const struct tls_conn *c)
{
	return c && (SSL_pending(c->ssl) > 0 || SSL_has_pending(c->ssl));
}

const char *tls_conn_error(const struct tls_conn *c)
{
	return c ? c->err : "";
}

void tls_conn_describe(const struct tls_conn *c, char *buf, size_t n)
{
	if (!c || !SSL_is_init_finished(c->ssl)) {
		snprintf(buf, n, "no TLS session");
		return;
	}
	snprintf(buf, n, "%s %s", SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
}
