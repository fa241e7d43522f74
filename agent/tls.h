/* Client TLS (OpenSSL) for the proxy's upstream connections, non-blocking.
 *
 * One tls_ctx per [connection], built from its sslmode and sslrootcert;
 * one tls_conn per upstream socket, over an fd that is already connected
 * (and, for PostgreSQL, after the SSLRequest was answered 'S'). The fd stays
 * the caller's: tls_conn_free() does not close it.
 *
 * Every I/O step returns -EAGAIN with *want set to the event to wait for
 * before calling the same step again. That event can be the opposite of the
 * call: tls_read() may need the socket writable and tls_write() readable
 * (TLS 1.3 KeyUpdate, session tickets); wait for what *want says, not for
 * what the call does. Other failures return a negative errno, and
 * tls_conn_error() says why in a line fit for the log.
 *
 * Decrypted bytes can sit inside OpenSSL where poll() cannot see them:
 * after a readable event keep calling tls_read() until it returns -EAGAIN
 * (or check tls_pending()) before going back to the event loop.
 *
 * OpenSSL writes to the socket with write(2), also to send an alert after a
 * failure: the process must ignore SIGPIPE (sluiced does), or a server that
 * hung up kills it. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include "common/util.h"
#include "policy/policy.h"

enum tls_want {
	TLS_WANT_NONE = 0,
	TLS_WANT_READ,  /* wait for POLLIN / EPOLLIN */
	TLS_WANT_WRITE, /* wait for POLLOUT / EPOLLOUT */
};

struct tls_ctx;
struct tls_conn;

/* sslmode semantics follow libpq:
 *   allow, prefer, require: encrypted, certificate not verified;
 *   verify-ca:   the chain must verify against rootcert;
 *   verify-full: verify-ca plus the host name (or IP literal) must match.
 * Whether to try TLS at all for allow/prefer (and fall back to plaintext on
 * 'N') is the caller's decision; disable gives -EINVAL here.
 * rootcert (a PEM file of CA certificates) is required for verify-ca and
 * verify-full and ignored otherwise. TLS 1.2 is the minimum.
 * On failure, err (may be NULL) receives a reason. */
int tls_ctx_new(enum sslmode mode, const char *rootcert, struct tls_ctx **out,
		char *err, size_t errlen) WUR;
struct tls_ctx *tls_ctx_free(struct tls_ctx *ctx);

/* A connection over fd (connected, non-blocking). host is the [connection]
 * host: sent as SNI unless it is an IP literal, and checked against the
 * certificate under verify-full. The ctx must outlive the connection. */
int tls_conn_new(struct tls_ctx *ctx, int fd, const char *host, struct tls_conn **out,
		 char *err, size_t errlen) WUR;
/* Frees without sending close_notify (call tls_shutdown() first for a clean
 * close); does not close the fd; accepts NULL. */
struct tls_conn *tls_conn_free(struct tls_conn *c);

/* Drive the handshake: 0 when complete (certificate verified as the mode
 * requires), -EAGAIN with *want; on failure -EACCES when the certificate did
 * not verify (chain or name), -ECONNRESET when the server closed, -EPROTO for
 * other TLS errors, or the socket's errno. */
int tls_handshake(struct tls_conn *c, enum tls_want *want) WUR;

/* Read up to n bytes: > 0 bytes read; 0 when the peer closed the TLS session
 * cleanly (close_notify); -EAGAIN with *want; -ECONNRESET when the socket
 * closed without close_notify (truncation); other negative errno on error. */
ssize_t tls_read(struct tls_conn *c, void *p, size_t n, enum tls_want *want) WUR;

/* Write up to n bytes (n > 0): the number written (> 0, possibly fewer than
 * n), or -EAGAIN with *want, then call again with the same bytes (the buffer
 * may move, e.g. after a realloc, but its contents must be the same), or a
 * negative errno on error. */
ssize_t tls_write(struct tls_conn *c, const void *p, size_t n, enum tls_want *want) WUR;

/* Send close_notify: 0 when sent, -EAGAIN with *want, negative errno. Does
 * not wait for the peer's close_notify (PostgreSQL closes the socket). */
int tls_shutdown(struct tls_conn *c, enum tls_want *want) WUR;

/* Decrypted bytes buffered and readable without touching the socket. */
bool tls_pending(const struct tls_conn *c);

/* The reason for the last failure, e.g.
 * "certificate verify failed: hostname mismatch"; "" if none. */
const char *tls_conn_error(const struct tls_conn *c);

/* Protocol and cipher after the handshake, for the log ("TLSv1.3
 * TLS_AES_256_GCM_SHA384"), into buf. */
void tls_conn_describe(const struct tls_conn *c, char *buf, size_t n);
