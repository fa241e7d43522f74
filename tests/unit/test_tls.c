/* Unit tests for agent/tls.c: the client against an in-process OpenSSL
 * server on a non-blocking socketpair, with a test PKI made here (two CAs, a
 * server certificate for localhost / 127.0.0.1, an expired one). */
#include "config.h"
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "agent/tls.h"

struct pki {
	EVP_PKEY *ca_key, *ca2_key, *srv_key;
	X509 *ca, *ca2, *srv, *expired;
	char ca_file[64], ca2_file[64], junk_file[64];
};

static struct pki pki;

/* --- test PKI ----------------------------------------------------------- */

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ex;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	ex = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	assert_non_null(ex);
	assert_int_equal(X509_add_ext(cert, ex, -1), 1);
	X509_EXTENSION_free(ex);
}

/* issuer NULL: self-signed CA. san NULL: a CA. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key,
		       const char *san, long not_before, long not_after)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), not_before));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), not_after));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
	add_ext(x, issuer ? issuer : x, NID_subject_key_identifier, "hash");
	if (!san) {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, issuer, NID_authority_key_identifier, "keyid");
		add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
		add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
		add_ext(x, issuer, NID_subject_alt_name, san);
	}
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

static void write_file(char *path, size_t n, X509 *cert, const char *text)
{
	FILE *f;
	int fd;

	snprintf(path, n, "/tmp/sluice-test-tls-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	if (cert)
		assert_int_equal(PEM_write_X509(f, cert), 1);
	else
		fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

static int pki_setup(void **state)
{
	/* As sluiced does: OpenSSL writes alerts with write(2), and a peer that
	 * hung up must give EPIPE, not kill the process. */
	signal(SIGPIPE, SIG_IGN);
	pki.ca_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	pki.ca2_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	pki.srv_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (!pki.ca_key || !pki.ca2_key || !pki.srv_key)
		return -1;
	pki.ca = make_cert(pki.ca_key, "sluice test CA", NULL, NULL, NULL, -3600, 86400);
	pki.ca2 = make_cert(pki.ca2_key, "sluice other test CA", NULL, NULL, NULL, -3600, 86400);
	pki.srv = make_cert(pki.srv_key, "localhost", pki.ca, pki.ca_key,
			    "DNS:localhost,IP:127.0.0.1", -3600, 86400);
	pki.expired = make_cert(pki.srv_key, "localhost", pki.ca, pki.ca_key,
				"DNS:localhost,IP:127.0.0.1", -86400, -3600);
	write_file(pki.ca_file, sizeof(pki.ca_file), pki.ca, NULL);
	write_file(pki.ca2_file, sizeof(pki.ca2_file), pki.ca2, NULL);
	write_file(pki.junk_file, sizeof(pki.junk_file), NULL, "not a certificate\n");
	return 0;
}

static int pki_teardown(void **state)
{
	unlink(pki.ca_file);
	unlink(pki.ca2_file);
	unlink(pki.junk_file);
	X509_free(pki.ca);
	X509_free(pki.ca2);
	X509_free(pki.srv);
	X509_free(pki.expired);
	EVP_PKEY_free(pki.ca_key);
	EVP_PKEY_free(pki.ca2_key);
	EVP_PKEY_free(pki.srv_key);
	return 0;
}

/* --- an in-process server and a client on a socketpair ------------------ */

struct pair {
	int cfd, sfd;
	SSL_CTX *sctx;
	SSL *s;
	struct tls_ctx *ctx;
	struct tls_conn *c;
	char sni[256];
	bool got_sni;
	bool server_failed;
};

static int sni_cb(SSL *ssl, int *alert, void *arg)
{
	struct pair *p = arg;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);

	if (name) {
		p->got_sni = true;
		snprintf(p->sni, sizeof(p->sni), "%s", name);
	}
	return SSL_TLSEXT_ERR_OK;
}

/* A server presenting cert; max_version 0 for the default. */
static void pair_open_server(struct pair *p, X509 *cert, int min_version, int max_version)
{
	int sv[2];

	memset(p, 0, sizeof(*p));
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	p->cfd = sv[0];
	p->sfd = sv[1];
	p->sctx = SSL_CTX_new(TLS_server_method());
	assert_non_null(p->sctx);
	assert_int_equal(SSL_CTX_use_certificate(p->sctx, cert), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(p->sctx, pki.srv_key), 1);
	SSL_CTX_set_mode(p->sctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (min_version) {
		SSL_CTX_set_security_level(p->sctx, 0);
		assert_int_equal(SSL_CTX_set_min_proto_version(p->sctx, min_version), 1);
	}
	if (max_version)
		assert_int_equal(SSL_CTX_set_max_proto_version(p->sctx, max_version), 1);
	SSL_CTX_set_tlsext_servername_callback(p->sctx, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(p->sctx, p);
	p->s = SSL_new(p->sctx);
	assert_non_null(p->s);
	assert_int_equal(SSL_set_fd(p->s, p->sfd), 1);
	SSL_set_accept_state(p->s);
}

static void pair_open_client(struct pair *p, enum sslmode mode, const char *rootcert, const char *host)
{
	char err[256] = "";

	if (tls_ctx_new(mode, rootcert, &p->ctx, err, sizeof(err)) != 0)
		fail_msg("tls_ctx_new: %s", err);
	if (tls_conn_new(p->ctx, p->cfd, host, &p->c, err, sizeof(err)) != 0)
		fail_msg("tls_conn_new: %s", err);
}

static void pair_open(struct pair *p, X509 *cert, enum sslmode mode, const char *rootcert, const char *host)
{
	pair_open_server(p, cert, 0, 0);
	pair_open_client(p, mode, rootcert, host);
}

static void pair_close(struct pair *p)
{
	p->c = tls_conn_free(p->c);
	p->ctx = tls_ctx_free(p->ctx);
	SSL_free(p->s);
	SSL_CTX_free(p->sctx);
	if (p->cfd >= 0)
		close(p->cfd);
	if (p->sfd >= 0)
		close(p->sfd);
	ERR_clear_error();
}

/* Step the server side of the handshake once. */
static void server_step(struct pair *p, bool *done)
{
	int r;

	if (*done)
		return;
	r = SSL_accept(p->s);
	if (r == 1) {
		*done = true;
	} else {
		int e = SSL_get_error(p->s, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			p->server_failed = true;
			*done = true;
		}
	}
	ERR_clear_error();
}

/* Both sides in turn until the client finishes; the client's result. Every
 * -EAGAIN must name an event, and the socket must not already be ready for
 * it when the server has nothing in flight. */
static int handshake(struct pair *p)
{
	bool sdone = false;

	for (int i = 0; i < 200; i++) {
		enum tls_want want = TLS_WANT_NONE;
		int r = tls_handshake(p->c, &want);

		if (r != -EAGAIN) {
			assert_int_equal(want, TLS_WANT_NONE);
			/* let the server finish reading our last flight */
			for (int k = 0; k < 4; k++)
				server_step(p, &sdone);
			return r;
		}
		assert_true(want == TLS_WANT_READ || want == TLS_WANT_WRITE);
		server_step(p, &sdone);
	}
	fail_msg("handshake did not finish");
	return -ETIMEDOUT;
}

/* --- handshakes ---------------------------------------------------------- */

static void verify_full_hostname(void **state)
{
	struct pair p;
	char desc[128];

	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca_file, "localhost");
	assert_int_equal(handshake(&p), 0);
	assert_false(p.server_failed);
	assert_string_equal(tls_conn_error(p.c), "");
	assert_true(p.got_sni);
	assert_string_equal(p.sni, "localhost");
	tls_conn_describe(p.c, desc, sizeof(desc));
	assert_non_null(strstr(desc, "TLSv1.3"));
	pair_close(&p);
}

static void verify_full_ip(void **state)
{
	struct pair p;

	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca_file, "127.0.0.1");
	assert_int_equal(handshake(&p), 0);
	assert_false(p.got_sni); /* no SNI for an IP literal */
	pair_close(&p);
}

static void verify_full_wrong_name(void **state)
{
	struct pair p;

	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca_file, "other.example");
	assert_int_equal(handshake(&p), -EACCES);
	assert_string_equal(tls_conn_error(p.c), "certificate verify failed: hostname mismatch");
	assert_string_equal(p.sni, "other.example");
	/* the session is dead: everything else fails */
	{
		enum tls_want w;
		char b[8];
		assert_int_equal(tls_handshake(p.c, &w), -EPROTO);
		assert_int_equal(tls_read(p.c, b, sizeof(b), &w), -EPROTO);
		assert_int_equal(tls_write(p.c, "x", 1, &w), -EPROTO);
		assert_int_equal(tls_shutdown(p.c, &w), -EPROTO);
	}
	pair_close(&p);
}

static void verify_full_wrong_ip(void **state)
{
	struct pair p;

	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca_file, "127.0.0.2");
	assert_int_equal(handshake(&p), -EACCES);
	assert_string_equal(tls_conn_error(p.c), "certificate verify failed: IP address mismatch");
	pair_close(&p);
}

static void verify_full_wrong_ca(void **state)
{
	struct pair p;

	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca2_file, "localhost");
	assert_int_equal(handshake(&p), -EACCES);
	assert_string_equal(tls_conn_error(p.c), "certificate verify failed: unable to get local issuer certificate");
	pair_close(&p);
}

static void verify_ca(void **state)
{
	struct pair p;

	/* the chain is checked, the name is not */
	pair_open(&p, pki.srv, SSLMODE_VERIFY_CA, pki.ca_file, "other.example");
	assert_int_equal(handshake(&p), 0);
	pair_close(&p);

	pair_open(&p, pki.srv, SSLMODE_VERIFY_CA, pki.ca2_file, "localhost");
	assert_int_equal(handshake(&p), -EACCES);
	assert_string_equal(tls_conn_error(p.c), "certificate verify failed: unable to get local issuer certificate");
	pair_close(&p);

	pair_open(&p, pki.expired, SSLMODE_VERIFY_CA, pki.ca_file, "localhost");
	assert_int_equal(handshake(&p), -EACCES);
	assert_string_equal(tls_conn_error(p.c), "certificate verify failed: certificate has expired");
	pair_close(&p);
}

static void require_does_not_verify(void **state)
{
	static const enum sslmode modes[] = { SSLMODE_REQUIRE, SSLMODE_PREFER, SSLMODE_ALLOW };
	struct pair p;

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
		/* wrong CA, wrong name, expired: libpq's require encrypts only */
		pair_open(&p, pki.expired, modes[i], pki.ca2_file, "other.example");
		assert_int_equal(handshake(&p), 0);
		pair_close(&p);
		pair_open(&p, pki.srv, modes[i], NULL, NULL);
		assert_int_equal(handshake(&p), 0);
		pair_close(&p);
	}
}

static void minimum_tls12(void **state)
{
	struct pair p;
	char desc[128];

	pair_open_server(&p, pki.srv, TLS1_VERSION, TLS1_1_VERSION);
	pair_open_client(&p, SSLMODE_VERIFY_FULL, pki.ca_file, "localhost");
	assert_int_equal(handshake(&p), -EPROTO);
	assert_non_null(strstr(tls_conn_error(p.c), "TLS handshake: "));
	assert_non_null(strstr(tls_conn_error(p.c), "version"));
	pair_close(&p);

	pair_open_server(&p, pki.srv, 0, TLS1_2_VERSION);
	pair_open_client(&p, SSLMODE_VERIFY_FULL, pki.ca_file, "localhost");
	assert_int_equal(handshake(&p), 0);
	tls_conn_describe(p.c, desc, sizeof(desc));
	assert_non_null(strstr(desc, "TLSv1.2"));
	pair_close(&p);
}

static void not_a_tls_server(void **state)
{
	static const char reply[] = "HTTP/1.0 400 Bad Request\r\n\r\n";
	struct pair p;
	enum tls_want w;

	pair_open(&p, pki.srv, SSLMODE_REQUIRE, NULL, "localhost");
	assert_int_equal(tls_handshake(p.c, &w), -EAGAIN);
	assert_int_equal(w, TLS_WANT_READ);
	assert_int_equal(write(p.sfd, reply, sizeof(reply) - 1), (ssize_t)sizeof(reply) - 1);
	assert_int_equal(tls_handshake(p.c, &w), -EPROTO);
	assert_int_equal(strncmp(tls_conn_error(p.c), "TLS handshake: ", 15), 0);
	assert_true(strlen(tls_conn_error(p.c)) > 15);
	assert_int_equal(ERR_peek_error(), 0); /* queue left empty */
	pair_close(&p);

	/* the server hangs up mid-handshake */
	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca_file, "localhost");
	assert_int_equal(tls_handshake(p.c, &w), -EAGAIN);
	close(p.sfd);
	p.sfd = -1;
	assert_int_equal(tls_handshake(p.c, &w), -ECONNRESET);
	assert_string_equal(tls_conn_error(p.c), "TLS handshake: connection closed by server");
	pair_close(&p);
}

static void context_errors(void **state)
{
	struct tls_ctx *ctx = NULL;
	struct tls_conn *c = NULL;
	char err[256];

	assert_int_equal(tls_ctx_new(SSLMODE_DISABLE, NULL, &ctx, err, sizeof(err)), -EINVAL);
	assert_int_equal(tls_ctx_new(SSLMODE_VERIFY_FULL, NULL, &ctx, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "sslmode verify-full needs sslrootcert");
	assert_int_equal(tls_ctx_new(SSLMODE_VERIFY_CA, "", &ctx, err, sizeof(err)), -EINVAL);
	assert_int_equal(tls_ctx_new(SSLMODE_VERIFY_CA, "/nonexistent/ca.pem", &ctx, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cannot load sslrootcert /nonexistent/ca.pem: "));
	assert_int_equal(tls_ctx_new(SSLMODE_VERIFY_FULL, pki.junk_file, &ctx, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cannot load sslrootcert"));
	assert_null(ctx);
	assert_int_equal(ERR_peek_error(), 0);

	/* verify-full needs a name to check */
	assert_int_equal(tls_ctx_new(SSLMODE_VERIFY_FULL, pki.ca_file, &ctx, NULL, 0), 0);
	assert_int_equal(tls_conn_new(ctx, 0, NULL, &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(tls_conn_new(ctx, 0, "/run/postgresql", &c, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "sslmode verify-full needs a host name or IP address");
	assert_int_equal(tls_conn_new(ctx, -1, "localhost", &c, err, sizeof(err)), -EINVAL);
	assert_null(c);
	assert_null(tls_ctx_free(ctx));
	assert_null(tls_ctx_free(NULL));
	assert_null(tls_conn_free(NULL));
}

/* --- data --------------------------------------------------------------- */

#define BIG (1u << 20)

static uint8_t pattern(size_t i, unsigned seed) { return (uint8_t)(i * 131 + seed + (i >> 11)); }

/* Server: read what there is. Returns bytes read (0 when it would block). */
static size_t server_drain(struct pair *p, uint8_t *dst, size_t cap)
{
	size_t total = 0, got;

	while (total < cap && SSL_read_ex(p->s, dst + total, cap - total, &got) == 1)
		total += got;
	ERR_clear_error();
	return total;
}

static void round_trip(void **state)
{
	uint8_t *src = malloc(BIG), *dst = malloc(BIG);
	size_t sent = 0, recvd = 0;
	unsigned write_waits = 0, read_waits = 0;
	struct pair p;

	assert_non_null(src);
	assert_non_null(dst);
	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca_file, "localhost");
	assert_int_equal(handshake(&p), 0);

	/* client -> server: the socketpair fills up long before 1 MiB */
	for (size_t i = 0; i < BIG; i++)
		src[i] = pattern(i, 1);
	for (int guard = 0; sent < BIG && guard < 100000; guard++) {
		enum tls_want want;
		ssize_t n = tls_write(p.c, src + sent, MIN((size_t)65536, BIG - sent), &want);

		if (n > 0) {
			sent += (size_t)n;
			continue;
		}
		assert_int_equal(n, -EAGAIN);
		assert_int_equal(want, TLS_WANT_WRITE);
		/* the want is real: the socket is full now */
		struct pollfd pfd = { .fd = p.cfd, .events = POLLOUT };
		assert_int_equal(poll(&pfd, 1, 0), 0);
		write_waits++;
		recvd += server_drain(&p, dst + recvd, BIG - recvd);
		assert_int_equal(poll(&pfd, 1, 1000), 1);
	}
	while (recvd < BIG) {
		size_t n = server_drain(&p, dst + recvd, BIG - recvd);
		assert_true(n > 0);
		recvd += n;
	}
	assert_int_equal(sent, BIG);
	assert_memory_equal(src, dst, BIG);
	assert_true(write_waits > 0);

	/* server -> client */
	for (size_t i = 0; i < BIG; i++)
		src[i] = pattern(i, 7);
	memset(dst, 0, BIG);
	sent = recvd = 0;
	for (int guard = 0; recvd < BIG && guard < 100000; guard++) {
		enum tls_want want;
		size_t put;
		ssize_t n;

		while (sent < BIG && SSL_write_ex(p.s, src + sent, BIG - sent, &put) == 1)
			sent += put;
		ERR_clear_error();
		do {
			n = tls_read(p.c, dst + recvd, BIG - recvd, &want);
			if (n > 0)
				recvd += (size_t)n;
		} while (n > 0 && recvd < BIG);
		if (recvd == BIG)
			break;
		assert_int_equal(n, -EAGAIN);
		assert_int_equal(want, TLS_WANT_READ);
		assert_false(tls_pending(p.c));
		struct pollfd pfd = { .fd = p.cfd, .events = POLLIN };
		assert_int_equal(poll(&pfd, 1, 0), 0); /* the want is real */
		read_waits++;
	}
	assert_int_equal(recvd, BIG);
	assert_memory_equal(src, dst, BIG);
	assert_true(read_waits > 0);

	/* small messages both ways, interleaved, as a query and its result */
	for (int i = 0; i < 50; i++) {
		char q[32], r[32];
		enum tls_want want;
		size_t got = 0;
		int len = snprintf(q, sizeof(q), "query %d", i);

		assert_int_equal(tls_write(p.c, q, (size_t)len, &want), len);
		assert_int_equal(SSL_read_ex(p.s, r, sizeof(r), &got), 1);
		assert_int_equal(got, (size_t)len);
		assert_memory_equal(q, r, got);
		assert_int_equal(SSL_write_ex(p.s, "result", 6, &got), 1);
		assert_int_equal(tls_read(p.c, r, sizeof(r), &want), 6);
		assert_memory_equal(r, "result", 6);
	}
	free(src);
	free(dst);
	pair_close(&p);
}

/* TLS 1.3 KeyUpdate from the server, in the middle of a stream: reading
 * goes on, and our next write carries our own updated key. */
static void key_update(void **state)
{
	struct pair p;
	enum tls_want want;
	char b[16];
	size_t got;

	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca_file, "localhost");
	assert_int_equal(handshake(&p), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(SSL_key_update(p.s, SSL_KEY_UPDATE_REQUESTED), 1);
		assert_int_equal(SSL_write_ex(p.s, "abc", 3, &got), 1);
		assert_int_equal(tls_read(p.c, b, sizeof(b), &want), 3);
		assert_memory_equal(b, "abc", 3);
		assert_int_equal(tls_write(p.c, "xyz", 3, &want), 3);
		assert_int_equal(SSL_read_ex(p.s, b, sizeof(b), &got), 1);
		assert_int_equal(got, 3);
		assert_memory_equal(b, "xyz", 3);
	}
	pair_close(&p);
}

static void closing(void **state)
{
	struct pair p;
	enum tls_want want;
	char b[16];
	size_t got;

	/* the server's close_notify is a clean end of stream */
	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca_file, "localhost");
	assert_int_equal(handshake(&p), 0);
	assert_int_equal(SSL_write_ex(p.s, "bye", 3, &got), 1);
	assert_true(SSL_shutdown(p.s) >= 0);
	assert_int_equal(tls_read(p.c, b, sizeof(b), &want), 3);
	assert_int_equal(tls_read(p.c, b, sizeof(b), &want), 0);
	assert_string_equal(tls_conn_error(p.c), "");
	pair_close(&p);

	/* a hang-up without close_notify is truncation, not end of stream */
	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca_file, "localhost");
	assert_int_equal(handshake(&p), 0);
	assert_int_equal(tls_read(p.c, b, sizeof(b), &want), -EAGAIN);
	close(p.sfd);
	p.sfd = -1;
	assert_int_equal(tls_read(p.c, b, sizeof(b), &want), -ECONNRESET);
	assert_string_equal(tls_conn_error(p.c), "TLS read: connection closed by server");
	pair_close(&p);

	/* our close_notify reaches the server */
	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca_file, "localhost");
	assert_int_equal(handshake(&p), 0);
	assert_int_equal(tls_shutdown(p.c, &want), 0);
	assert_int_equal(SSL_read_ex(p.s, b, sizeof(b), &got), 0);
	assert_int_equal(SSL_get_error(p.s, 0), SSL_ERROR_ZERO_RETURN);
	pair_close(&p);

	/* garbage after the handshake */
	pair_open(&p, pki.srv, SSLMODE_VERIFY_FULL, pki.ca_file, "localhost");
	assert_int_equal(handshake(&p), 0);
	assert_int_equal(write(p.sfd, "\x17\x03\x03\x00\x05hello", 10), 10);
	assert_int_equal(tls_read(p.c, b, sizeof(b), &want), -EPROTO);
	assert_int_equal(strncmp(tls_conn_error(p.c), "TLS read: ", 10), 0);
	assert_int_equal(ERR_peek_error(), 0);
	pair_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(verify_full_hostname),
		cmocka_unit_test(verify_full_ip),
		cmocka_unit_test(verify_full_wrong_name),
		cmocka_unit_test(verify_full_wrong_ip),
		cmocka_unit_test(verify_full_wrong_ca),
		cmocka_unit_test(verify_ca),
		cmocka_unit_test(require_does_not_verify),
		cmocka_unit_test(minimum_tls12),
		cmocka_unit_test(not_a_tls_server),
		cmocka_unit_test(context_errors),
		cmocka_unit_test(round_trip),
		cmocka_unit_test(key_update),
		cmocka_unit_test(closing),
	};
	return cmocka_run_group_tests(tests, pki_setup, pki_teardown);
}
