/* Collecting configuration errors. Each error is "FILE:LINE: message";
 * they are gathered while loading (never stopping at the first), then
 * sorted by file (in reading order) and line and handed to the caller's
 * struct pol_errors. Internal to policy/. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "policy/policy.h"

/* A config with more errors than this is mostly noise; say so and stop. */
#define DIAG_MAX_ERRORS 200

struct diag_entry {
	size_t file_idx;
	unsigned line;
	size_t seq;
	char *msg; /* complete "FILE:LINE: ..." */
};

struct diag {
	const struct policy *p;   /* file names by index: p->files (grows while reading) */
	struct diag_entry *v;
	size_t n, cap;
	bool truncated; /* DIAG_MAX_ERRORS reached */
	bool oom;
};

void diag_init(struct diag *d, const struct policy *p);
/* The index of an origin's file in p->files (origins point into it); SIZE_MAX if none. */
size_t diag_file_index(const struct policy *p, const char *file);
/* Record an error at file_idx:line (line 0: the file as a whole). */
void diag_add(struct diag *d, size_t file_idx, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Same, for a path that is not one of p->files (a conf.d directory):
 * "NAME: message", sorted as if in file sort_idx. */
void diag_add_path(struct diag *d, size_t sort_idx, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static inline size_t diag_count(const struct diag *d) { return d->n + d->truncated; }
/* Sort and move everything into errs; returns how many were appended, or
 * -ENOMEM (errs then holds what fitted). Frees d's storage either way. */
int diag_finish(struct diag *d, struct pol_errors *errs) WUR;
void diag_release(struct diag *d);
