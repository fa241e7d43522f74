/* Client side of PostgreSQL authentication, as the proxy speaks it to the
 * upstream server: SCRAM-SHA-256 (RFC 5802, RFC 7677, without channel
 * binding), md5 and cleartext password, plus builders for the wire messages.
 *
 * Pure: no I/O, no logging. Every function returns 0 or a negative errno.
 * The password is never copied into an error string; every key derived from
 * it is wiped as soon as it is no longer needed.
 *
 * SCRAM flow, with the PostgreSQL messages that carry each step:
 *   R AuthenticationSASL(10)       -> pgauth_sasl_offers_scram()
 *                                     scram_new() + scram_client_first()
 *   p SASLInitialResponse          <- pg_msg_sasl_initial(PGAUTH_SCRAM_MECH, ...)
 *   R AuthenticationSASLContinue(11) -> scram_client_final(server-first)
 *   p SASLResponse                 <- pg_msg_sasl_response(client-final)
 *   R AuthenticationSASLFinal(12)  -> scram_verify_server_final(server-final)
 *   R AuthenticationOk(0)          only accept it after the verify succeeded
 *
 * The proxy advertises "n,," (client does not support channel binding) and
 * only ever picks SCRAM-SHA-256, also when the server lists
 * SCRAM-SHA-256-PLUS. (A server that *requires* channel binding does not
 * exist in PostgreSQL: PLUS is only ever offered alongside the plain one.) */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "common/util.h"

#define PGAUTH_SCRAM_MECH "SCRAM-SHA-256"

/* Bounds on the server-chosen PBKDF2 iteration count. PostgreSQL never
 * stores fewer than 4096; the upper bound caps the CPU a hostile or
 * misconfigured server can make us burn (10M rounds is seconds of CPU). */
#define SCRAM_MIN_ITERATIONS 4096u
#define SCRAM_MAX_ITERATIONS 10000000u

/* Largest server-first / server-final message accepted (bytes). */
#define SCRAM_MAX_SERVER_MSG 4096u

struct scram;

/* A new exchange with an 18-byte random client nonce (base64, 24 chars). */
int scram_new(struct scram **out) WUR;
/* Tests only: a fixed client nonce (printable ASCII except ',', 1..255
 * bytes) and a user name for the client-first-message (NULL or "" for the
 * empty one the proxy sends; at most 255 bytes, '=' and ',' are escaped), so
 * published test vectors (RFC 7677: user "user") can be replayed. */
int scram_new_with_nonce(const char *user, const char *nonce, struct scram **out) WUR;
/* Wipes the whole state (keys, messages) and frees it; accepts NULL. */
struct scram *scram_free(struct scram *s);

/* Append client-first-message ("n,,n=,r=NONCE", no terminating NUL) to out.
 * Must be the first step. */
int scram_client_first(struct scram *s, struct buf *out) WUR;

/* Consume server-first-message (the body of AuthenticationSASLContinue, no
 * NUL needed) and append client-final-message with the ClientProof to out.
 * SASLprep: an ASCII password is used as is (as PostgreSQL does); any other
 * is used as raw bytes, which matches PostgreSQL unless SASLprep would have
 * changed it (see pgauth.c). Fails with -EBADMSG on a malformed message,
 * -EPROTO on a wrong nonce or a mandatory extension, -ERANGE on an
 * iteration count out of bounds, -EINVAL on an empty password or a call out
 * of sequence. Any failure ends the exchange (later calls give -EINVAL).
 * Out should be released with wiping (the proof is password-derived). */
int scram_client_final(struct scram *s, const char *password,
		       const uint8_t *server_first, size_t len, struct buf *out) WUR;

/* Consume server-final-message (body of AuthenticationSASLFinal) and check
 * the ServerSignature in constant time. -EACCES when it does not match (the
 * server does not know the password: treat as an impostor), -EBADMSG when
 * malformed, -EPERM when the server sent "e=..." (see scram_error()). */
int scram_verify_server_final(struct scram *s, const uint8_t *server_final, size_t len) WUR;

/* True once scram_verify_server_final() succeeded. */
bool scram_done(const struct scram *s);

/* A short reason for the last failure, for the log ("" if none). Never holds
 * the password; may quote a server-sent error attribute (sanitised). */
const char *scram_error(const struct scram *s);

/* Whether the mechanism list of an AuthenticationSASL message (the bytes after
 * the int32 code 10: NUL-terminated names, ended by an empty name) offers
 * SCRAM-SHA-256. 0 when it does, -ENOTSUP when not, -EBADMSG if malformed. */
int pgauth_sasl_offers_scram(const uint8_t *mechs, size_t len) WUR;

/* md5 password response: "md5" + md5hex(md5hex(password + user) + salt).
 * out receives 35 characters and a NUL. */
#define PGAUTH_MD5_LEN 35
int pgauth_md5(const char *user, const char *password, const uint8_t salt[4],
	       char out[PGAUTH_MD5_LEN + 1]) WUR;

/* Wire messages, appended to out ('p', int32 length, body). Callers release
 * out with wiping since all of them carry password-derived bytes. */
/* SASLInitialResponse: mechanism name, int32 length, data. */
int pg_msg_sasl_initial(struct buf *out, const char *mech, const void *data, size_t n) WUR;
/* SASLResponse: data. */
int pg_msg_sasl_response(struct buf *out, const void *data, size_t n) WUR;
/* PasswordMessage: NUL-terminated string (cleartext password or md5 hash). */
int pg_msg_password(struct buf *out, const char *password) WUR;
