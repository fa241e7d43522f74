/* A small, strict JSON reader for libpg_query's parse trees.
 *
 * The classifier runs on the proxy's data path, and a general JSON library
 * costs three times what the SQL parser does (jansson: ~13 µs for pgbench's
 * SELECT). This reader decodes strings in place, in the text it is given,
 * and keeps every value in one array of nodes (grown geometrically up to a
 * cap), linked by index: first child, next sibling. No recursion while
 * parsing; nesting is capped.
 *
 * Strict: RFC 8259 grammar, one value, nothing after it but blanks.
 * Strings may not contain raw control characters or \u0000 (no SQL name
 * can), surrogates must pair; bytes >= 0x80 pass through unchecked (the
 * names compared are PostgreSQL's, in the client's encoding). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

enum sj_type {
	SJ_NULL,
	SJ_FALSE,
	SJ_TRUE,
	SJ_NUMBER,
	SJ_STRING,
	SJ_ARRAY,
	SJ_OBJECT,
};

struct sj_node {
	uint8_t type;       /* enum sj_type */
	uint32_t len;       /* string: bytes (without the NUL); number: text bytes; array/object: members */
	const char *key;    /* member name (NUL-terminated) when the parent is an object */
	const char *s;      /* string: decoded, NUL-terminated; number: its text (not terminated) */
	uint32_t first;     /* first member; 0 = none */
	uint32_t next;      /* next sibling; 0 = none */
};

struct sj_doc {
	struct sj_node *v;  /* v[0] unused (index 0 = none), v[1] the root */
	uint32_t n, cap;
	uint32_t *stack;    /* open containers while parsing */
	uint32_t stack_cap;
};

/* Defaults for sj_parse's limits: a 16 MiB statement's tree fits. */
#define SJ_MAX_BYTES (64u << 20)
#define SJ_MAX_DEPTH 10000u

/* Parse text[0..len) (modified: strings are decoded in place, so node
 * strings point into text, which must outlive the document). max_bytes caps
 * the node array, max_depth the nesting. Returns 0, -EINVAL (not JSON),
 * -E2BIG (a cap reached) or -ENOMEM. The document can be reused: parse
 * again into it, or sj_doc_clear() it. */
int sj_parse(struct sj_doc *d, char *text, size_t len, size_t max_bytes,
	     unsigned max_depth) WUR;
void sj_doc_clear(struct sj_doc *d);

static inline const struct sj_node *sj_root(const struct sj_doc *d)
{
	return d->n > 1 ? &d->v[1] : NULL;
}

static inline const struct sj_node *sj_first(const struct sj_doc *d, const struct sj_node *n)
{
	return n && n->first ? &d->v[n->first] : NULL;
}

static inline const struct sj_node *sj_next(const struct sj_doc *d, const struct sj_node *n)
{
	return n->next ? &d->v[n->next] : NULL;
}

/* The member key of object obj; NULL when obj is not an object or has no
 * such member (the first one when repeated). */
const struct sj_node *sj_get(const struct sj_doc *d, const struct sj_node *obj, const char *key);

/* The string value of member key, NULL when absent or not a string. */
const char *sj_get_str(const struct sj_doc *d, const struct sj_node *obj, const char *key);

/* A non-negative integer number node into *out; false when n is not one
 * (or does not fit). */
bool sj_uint32(const struct sj_node *n, uint32_t *out);
