/* Masking one column value, and finding sensitive values in text: the
 * value-level half of [mask] (sluice.conf(5)). The proxy decides which
 * columns are masked and with what method; this module only turns one
 * value's bytes into what the client may see, or says that it cannot.
 *
 * Pure: no I/O (mask_key_load reads the key file, nothing else does), no
 * logging, no global state; every function is safe to call from several
 * threads at once, including with the same loaded key.
 *
 * Text and encoding. A value arrives as the bytes of one column of a
 * DataRow (or a COPY field), text or binary format. Only PostgreSQL's
 * built-in text types (mask_type_is_text) have the same bytes in both
 * formats, so only they can be rewritten into another string; every other
 * type can only be replaced by SQL NULL, or the statement is refused.
 * Characters are counted as UTF-8 (the proxy pins client_encoding); a value
 * that is not valid UTF-8, or holds a NUL byte, is treated as having no
 * usable shape (last4 and email give their shapeless output below).
 * bpchar's trailing spaces are padding, not content (PostgreSQL ignores
 * them when comparing), so every method strips them first: 'ab  ' and 'ab'
 * mask, and hash, alike. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"
#include "policy/policy.h"

/* PostgreSQL's built-in type OIDs this module knows by number (pg_type.dat;
 * fixed across versions). */
#define MASK_OID_NAME 19
#define MASK_OID_INT4 23
#define MASK_OID_TEXT 25
#define MASK_OID_JSON 114
#define MASK_OID_UNKNOWN 705
#define MASK_OID_BPCHAR 1042
#define MASK_OID_VARCHAR 1043

/* True for the built-in text types whose text and binary wire formats are
 * the same bytes: text, varchar, bpchar, name, unknown. Everything else is
 * not text here: json/jsonb/xml (binary formats differ or a rewritten value
 * would not parse), citext and other extension types (their OIDs are
 * assigned at CREATE EXTENSION, so no fixed number can name them),
 * numbers, bytea, dates. */
bool mask_type_is_text(uint32_t typoid);

/* The most bytes a masked value ever has (email's domain is the longest
 * part: at most 253 bytes, see below). */
#define MASK_OUT_MAX 1024

/* Where mask_value puts a value. Zero-initialise it; buf is allocated on
 * first use (MASK_OUT_MAX + 1 bytes) and reused by later calls, so a row
 * loop allocates once. buf[len] is always '\0'. */
struct mask_out {
	char *buf;
	size_t len;
};
/* Free the buffer and zero *o; accepts NULL and a zeroed struct. */
void mask_out_free(struct mask_out *o);

/* A hash key: HMAC-SHA256 state keyed once at load, so each value costs
 * one copy of that state, not a key schedule. The raw key bytes are not
 * kept. Zero-initialised = no key. */
#define MASK_KEY_MIN 32   /* bytes: 256 bits, HMAC-SHA256's strength */
#define MASK_KEY_MAX 1024
struct mask_key {
	struct evp_mac_ctx_st *mac; /* OpenSSL EVP_MAC_CTX; NULL: no key */
};

/* Key the struct with len bytes (MASK_KEY_MIN..MASK_KEY_MAX, else
 * -EINVAL). Any key k held before is wiped first on success; on failure k
 * is untouched. The caller wipes its copy of the bytes. */
int mask_key_set(struct mask_key *k, const void *bytes, size_t len) WUR;

/* Read a key file into k. The file must be a regular file (opened with
 * O_NOFOLLOW: a symbolic link is refused), with no permission bits for
 * group or others (mode & 077 == 0), owned by root or the effective uid;
 * these are checked with fstat on the opened descriptor, so the file
 * checked is the file read. Its content, less one trailing "\n" (or
 * "\r\n"), is the key: MASK_KEY_MIN..MASK_KEY_MAX bytes, any bytes.
 * Returns 0, or a negative errno with why (path and what is wrong, never
 * any of the key) written to why: -ELOOP symlink, -EPERM mode or owner,
 * -EINVAL not a regular file or wrong size, others from open/read.
 * Every buffer that held key bytes is wiped before it is freed. On failure
 * k is untouched. */
int mask_key_load(const char *path, struct mask_key *k, char *why, size_t whylen) WUR;

/* Wipe and free the keyed state; k is left zeroed (no key). Accepts NULL
 * and a zeroed struct. */
void mask_key_wipe(struct mask_key *k);

enum {
	MASKV_VALUE = 0,  /* send out->buf/out->len instead of the value */
	MASKV_NULL = 1,   /* send SQL NULL instead of the value */
	MASKV_REFUSE = 2, /* the method cannot stand for a value of this type:
			   * refuse the statement (mask-else-refuse) */
};

/* The text redact and the shapeless email give. */
#define MASK_REDACTED "[masked]"

/* Mask one non-NULL value (in, len: its wire bytes; SQL NULL stays NULL
 * and is not passed) of type typoid with method m. Returns MASKV_VALUE
 * (out set), MASKV_NULL, MASKV_REFUSE, -ENOMEM, or -EINVAL (an unknown
 * method; hash without a key — the caller refuses). Only after
 * MASKV_VALUE do out->buf/out->len hold a value to send. The output never depends on the input's length beyond
 * what each method below shows.
 *
 *   redact  text types: "[masked]"; any other type: NULL.
 *   null    NULL, whatever the type.
 *   last4   text types only (else REFUSE): "****" and the value's last 4
 *           characters (UTF-8 characters, not bytes), e.g. "****1111"; a
 *           value of fewer than 8 characters, or not valid UTF-8, gives
 *           "****" alone, so a short value leaks nothing and the output is
 *           4 or 8 characters whatever the input's length.
 *   email   text types only (else REFUSE): the first character, "***@" and
 *           the domain, the part after the LAST '@': "j***@example.com".
 *           Without that shape — no '@', nothing before it, a domain that
 *           is empty, over 253 bytes, has an empty label (leading, trailing
 *           or doubled '.'), or holds anything but ASCII letters, digits,
 *           '-', '.' and non-ASCII characters (internationalised names) —
 *           or not valid UTF-8: "[masked]". So free text around an address
 *           ("mail bob@x.org today") never passes through the domain.
 *   hash    text types only (else REFUSE): a keyed pseudonym, "h:" and the
 *           first 32 lowercase hex digits (128 bits) of
 *           HMAC-SHA256(key, value bytes). Same key and value: same output
 *           (joins and counts still work); another key: unrelated output.
 *           No key (NULL or not loaded): -EINVAL, checked before the type
 *           so a missing key shows on the first value. */
int mask_value(enum mask_method m, const struct mask_key *key, uint32_t typoid,
	       const char *in, size_t len, struct mask_out *out) WUR;

/* mask_detect reads at most this many bytes of a value: a sensitive value
 * that starts (or runs) past it is not seen. The caller decides what a
 * longer value means (a result column fed to the detectors may be long). */
#define MASK_DETECT_SCAN_MAX (64u * 1024u)

/* Which of the enabled detectors (bits of enum detector) find a sensitive
 * value anywhere in the first MASK_DETECT_SCAN_MAX bytes of in. Linear in
 * the bytes read, no allocation. Digits, letters and separators are ASCII.
 *
 *   credit-card  13-19 digits passing the Luhn check, written as one run of
 *                digits or grouped the ways cards are printed, with one
 *                kind of separator (single spaces, or single dashes):
 *                groups of 4 and a last group of 1-4 (4111 1111 1111 1111),
 *                or 4-6-5 / 4-6-4 (American Express, Diners). It starts
 *                the way a card network's numbers do: 3-6, 2221-2720, or 1
 *                with 15 digits (UATP), which keeps out ids and timestamps
 *                that start with a year. The first and last digit must not
 *                touch another digit, so a card is never cut out of a
 *                longer digit run.
 *   ssn          US SSN AAA-GG-SSSS with dashes, or 9 digits when that is
 *                the whole value (spaces around it aside); area not 000,
 *                666 or 900-999, group not 00, serial not 0000. Not part
 *                of a longer digit run, nor of a longer dash-joined number
 *                (1-555-12-3456).
 *   email        a local part of [A-Za-z0-9._%+-], '@', a domain of
 *                [A-Za-z0-9.-] with no empty label, at least one dot, and
 *                a top-level label of 2+ letters (a trailing '.' or '-', as
 *                at the end of a sentence, is not part of the domain).
 *   iban         two letters, two check digits 02-98, 11-30 letters or
 *                digits, either unbroken or in groups of 4 separated by
 *                single spaces (the last group 1-4), not touching another
 *                letter or digit, passing the ISO 13616 mod-97 check; for
 *                a country in the IBAN registry the length must also be
 *                that country's. Letters in either case. */
uint32_t mask_detect(uint32_t detectors, const char *in, size_t len);
