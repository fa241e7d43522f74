/* PostgreSQL frontend/backend protocol 3.0: constants, building the few
 * messages the proxy writes itself, and parsing the ones it must read.
 * Pure functions over byte buffers; no I/O. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"

#define PG_PROTO_3_0 196608u
#define PG_SSL_REQUEST 80877103u
#define PG_GSSENC_REQUEST 80877104u
#define PG_CANCEL_REQUEST 80877102u
#define PG_STARTUP_MAX 10000u /* what PostgreSQL itself accepts */
#define PG_HEADER 5           /* type byte + int32 length */
#define PG_MESSAGE_MAX (1u << 30) /* PostgreSQL's own limit on a message */

/* A startup-phase packet from a client (no type byte). */
struct pg_startup {
	uint32_t code;           /* protocol version or a request code */
	/* For PG_CANCEL_REQUEST: */
	uint32_t cancel_pid, cancel_key;
	/* For protocol 3.x: parameters (pointers into the packet). */
	const char *keys[64], *vals[64];
	size_t n;
};

/* Parse a startup packet of total length len (including the length word).
 * Returns 0, or -EPROTO with *why set to a static explanation. */
int pgw_parse_startup(const uint8_t *p, size_t len, struct pg_startup *out, const char **why) WUR;
const char *pgw_startup_get(const struct pg_startup *s, const char *key);

/* Messages the proxy writes. All return 0 or -EMSGSIZE/-ENOMEM. */
int pgw_error(struct buf *b, char type, const char *severity, const char *sqlstate,
	      const char *message, const char *detail, const char *hint) WUR;
int pgw_ready(struct buf *b, char txn_status) WUR;
int pgw_auth_ok(struct buf *b) WUR;
int pgw_parameter_status(struct buf *b, const char *name, const char *value) WUR;
int pgw_backend_key(struct buf *b, uint32_t pid, uint32_t key) WUR;
int pgw_negotiate_version(struct buf *b, uint32_t newest_minor, const char *const *unknown, size_t n) WUR;
/* Frontend messages the proxy sends upstream. */
int pgw_startup(struct buf *b, const char *const *keys, const char *const *vals, size_t n) WUR;
int pgw_ssl_request(struct buf *b) WUR;
int pgw_cancel_request(struct buf *b, uint32_t pid, uint32_t key) WUR;
int pgw_terminate(struct buf *b) WUR;

/* Fields of an ErrorResponse/NoticeResponse body (after the length word).
 * Pointers into body; NULL when absent. Returns -EPROTO when malformed. */
struct pg_error_fields {
	const char *severity;  /* V (non-localized) or S */
	const char *sqlstate;  /* C */
	const char *message;   /* M */
};
int pgw_parse_error(const uint8_t *body, size_t n, struct pg_error_fields *out) WUR;

/* The row count at the end of a CommandComplete tag ("SELECT 5",
 * "INSERT 0 3", "COPY 10"); -1 when the tag carries none. */
int64_t pgw_tag_rows(const char *tag, size_t n);

/* Read a NUL-terminated string at *off within [p, p+n); advances *off.
 * NULL when there is no terminator. */
const char *pgw_get_cstr(const uint8_t *p, size_t n, size_t *off);
