/* The INI layer of sluice.conf(5): lines, comments, [kind NAME] headers and
 * key = value entries, with the file and line of each. It knows nothing of
 * what the sections mean (policy.c and conf_*.c do); it only enforces the
 * syntax, the size caps and "a section at most once, a key at most once per
 * section". Internal to policy/. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "policy/diag.h"

#define INI_MAX_FILE_SIZE (1u << 20)  /* bytes per file */
#define INI_MAX_LINE 4096             /* bytes per line, without the newline */
#define INI_MAX_SECTIONS 1024         /* across all files */
#define INI_MAX_KEYS 4096             /* per section */
#define INI_MAX_ENTRIES 65536         /* across all files */

struct ini_entry {
	char *key;   /* as written; may hold "quoted" identifiers */
	char *value; /* trimmed, comment removed; may be empty */
	unsigned line;
};

struct ini_section {
	char *kind;  /* "connection" */
	char *name;  /* "orders-pg", NULL for a bare [kind] */
	size_t file_idx;
	unsigned line;
	bool broken_lines; /* a line in it did not parse: it may be a "missing" key */
	struct ini_entry *v;
	size_t n, cap;
};

struct ini_doc {
	struct ini_section *v;
	size_t n, cap;
	size_t n_entries;
};

/* Append the sections of one file (text of len bytes, not necessarily
 * NUL-terminated) to doc. Problems go to d; returns 0, or -ENOMEM. */
int ini_parse(struct ini_doc *doc, size_t file_idx, const char *text, size_t len,
	      struct diag *d) WUR;
void ini_doc_free(struct ini_doc *doc);

/* "[kind]" or "[kind name]" for messages, into buf. */
const char *ini_section_label(const struct ini_section *s, char *buf, size_t n);
#define INI_MAX_KIND 32               /* bytes in a section kind */
#define INI_MAX_NAME 128              /* bytes in a section name */
#define INI_LABEL_MAX (INI_MAX_KIND + INI_MAX_NAME + 4)
