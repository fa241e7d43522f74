#include "config.h"
#include "policy/diag.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One message is a sentence or two; longer ones are cut, never overrun. */
#define DIAG_MSG_MAX 1024

void diag_init(struct diag *d, const struct policy *p)
{
	*d = (struct diag){ .p = p };
}

size_t diag_file_index(const struct policy *p, const char *file)
{
	for (size_t i = 0; file && i < p->n_files; i++)
		if (p->files[i] == file)
			return i;
	return SIZE_MAX;
}

static const char *file_name(const struct diag *d, size_t idx)
{
	return idx < d->p->n_files ? d->p->files[idx] : "?";
}

static void diag_vadd(struct diag *d, size_t sort_idx, const char *file, unsigned line,
		      const char *fmt, va_list ap)
{
	char body[DIAG_MSG_MAX], *msg;
	int w;

	if (d->n >= DIAG_MAX_ERRORS) {
		d->truncated = true;
		return;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct diag_entry *v = realloc(d->v, cap * sizeof(*v));
		if (!v) {
			d->oom = true;
			return;
		}
		d->v = v, d->cap = cap;
	}
	w = vsnprintf(body, sizeof(body), fmt, ap);
	if (w < 0)
		snprintf(body, sizeof(body), "(unprintable error)");
	if (line > 0)
		w = asprintf(&msg, "%s:%u: %s", file, line, body);
	else
		w = asprintf(&msg, "%s: %s", file, body);
	if (w < 0) {
		d->oom = true;
		return;
	}
	d->v[d->n] = (struct diag_entry){ .file_idx = sort_idx, .line = line, .seq = d->n, .msg = msg };
	d->n++;
}

void diag_add(struct diag *d, size_t file_idx, unsigned line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, file_idx, file_name(d, file_idx), line, fmt, ap);
	va_end(ap);
}

void diag_add_path(struct diag *d, size_t sort_idx, const char *name, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	diag_vadd(d, sort_idx, name, 0, fmt, ap);
	va_end(ap);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct diag_entry *x = a, *y = b;

	if (x->file_idx != y->file_idx)
		return x->file_idx < y->file_idx ? -1 : 1;
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int errs_push(struct pol_errors *errs, char *msg)
{
	char **v = realloc(errs->v, (errs->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	errs->v = v;
	errs->v[errs->n++] = msg;
	return 0;
}

int diag_finish(struct diag *d, struct pol_errors *errs)
{
	size_t added = 0;
	int r = 0;

	if (d->n > 1)
		qsort(d->v, d->n, sizeof(*d->v), entry_cmp);
	for (size_t i = 0; i < d->n; i++) {
		if (r == 0 && errs_push(errs, d->v[i].msg) == 0) {
			d->v[i].msg = NULL;
			added++;
		} else {
			r = -ENOMEM;
		}
	}
	if (r == 0 && d->truncated) {
		char *msg = NULL;
		if (asprintf(&msg, "%s: too many errors; stopped after the first %d",
			     file_name(d, 0), DIAG_MAX_ERRORS) < 0)
			msg = NULL;
		if (!msg || errs_push(errs, msg) < 0) {
			free(msg);
			r = -ENOMEM;
		} else {
			added++;
		}
	}
	if (d->oom)
		r = -ENOMEM;
	diag_release(d);
	return r < 0 ? r : (int)added;
}

void diag_release(struct diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->v[i].msg);
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
}

void pol_errors_clear(struct pol_errors *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
	e->v = NULL;
	e->n = 0;
}
