#include "config.h"
#include "policy/loader.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/duration.h"
#include "policy/principal.h"
#include "policy/value.h"

/* Values quoted back in messages are cut here (subjects can be long). */
#define ECHO_MAX 200

void ld_begin(struct loader *L, const struct ini_section *s, struct pol_origin *origin)
{
	L->s = s;
	ini_section_label(s, L->label, sizeof(L->label));
	if (origin) {
		origin->file = L->p->files[s->file_idx];
		origin->line = s->line;
	}
}

const struct ini_section *ld_find_section(const struct loader *L, const char *kind, const char *name)
{
	for (size_t i = 0; name && i < L->doc->n; i++) {
		const struct ini_section *s = &L->doc->v[i];
		if (strcmp(s->kind, kind) == 0 && s->name && strcmp(s->name, name) == 0)
			return s;
	}
	return NULL;
}

unsigned ld_key_line(const struct ini_section *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i].key, key) == 0)
			return s->v[i].line;
	return s->line;
}

void ld_err(struct loader *L, unsigned line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	diag_add(L->d, L->s->file_idx, line, "%s", msg);
}

int ld_key(struct loader *L, const struct ini_entry *e, const struct key_def *keys, size_t n)
{
	char list[512];
	size_t off = 0;

	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i].name, e->key) == 0)
			return (int)i;
	list[0] = '\0';
	for (size_t i = 0; i < n && off < sizeof(list); i++) {
		int w = snprintf(list + off, sizeof(list) - off, "%s%s", i ? " " : "", keys[i].name);
		if (w < 0)
			break;
		off += (size_t)w;
	}
	ld_err(L, e->line, "unknown key \"%.*s\" in %s; expected one of: %s", ECHO_MAX, e->key,
	       L->label, list);
	return -1;
}

void ld_require(struct loader *L, const struct key_def *keys, size_t n, uint64_t seen)
{
	/* A line that did not parse may be the key: that error says enough. */
	if (L->s->broken_lines)
		return;
	for (size_t i = 0; i < n && i < 64; i++)
		if (keys[i].required && !(seen & (UINT64_C(1) << i)))
			ld_err(L, L->s->line, "%s is missing required key \"%s\"; expected %s = %s",
			       L->label, keys[i].name, keys[i].name, keys[i].expect);
}

void ld_invalid(struct loader *L, const struct ini_entry *e, const char *expect)
{
	ld_err(L, e->line, "invalid %s \"%.*s\" in %s; expected %s", e->key, ECHO_MAX, e->value,
	       L->label, expect);
}

void ld_default(struct loader *L, char **dst, const char *value)
{
	if (*dst)
		return;
	*dst = strdup(value);
	if (!*dst)
		L->oom = true;
}

static bool set_string(struct loader *L, char **dst, const char *v)
{
	char *dup = strdup(v);

	if (!dup) {
		L->oom = true;
		return false;
	}
	free(*dst);
	*dst = dup;
	return true;
}

bool ld_string(struct loader *L, const struct ini_entry *e, const char *expect, size_t max, char **dst)
{
	if (e->value[0] == '\0' || strlen(e->value) > max) {
		ld_invalid(L, e, expect);
		return false;
	}
	return set_string(L, dst, e->value);
}

bool ld_word(struct loader *L, const struct ini_entry *e, const char *expect, size_t max, char **dst)
{
	if (!val_word(e->value, max)) {
		ld_invalid(L, e, expect);
		return false;
	}
	return set_string(L, dst, e->value);
}

bool ld_path(struct loader *L, const struct ini_entry *e, char **dst)
{
	if (!val_abs_path(e->value)) {
		ld_invalid(L, e, "an absolute path (starting with /, no blanks, no . or .. components)");
		return false;
	}
	return set_string(L, dst, e->value);
}

bool ld_unix_name(struct loader *L, const struct ini_entry *e, char **dst)
{
	if (!val_unix_name(e->value)) {
		ld_invalid(L, e, "a local account name ([A-Za-z_][A-Za-z0-9_.-]*, at most 32 bytes)");
		return false;
	}
	return set_string(L, dst, e->value);
}

bool ld_u32(struct loader *L, const struct ini_entry *e, uint32_t min, uint32_t max, uint32_t *dst)
{
	uint64_t v;

	if (parse_u64(e->value, min, max, &v) < 0) {
		char expect[96];
		snprintf(expect, sizeof(expect), "a whole number from %u to %u", min, max);
		ld_invalid(L, e, expect);
		return false;
	}
	*dst = (uint32_t)v;
	return true;
}

bool ld_size(struct loader *L, const struct ini_entry *e, uint64_t min, uint64_t max, uint32_t *dst)
{
	uint64_t v;

	if (max > UINT32_MAX || val_size(e->value, min, max, &v) < 0) {
		char expect[160];
		snprintf(expect, sizeof(expect),
			 "a size in bytes from %llu to %llu, optionally with K, M or G (powers of 1024), e.g. 16M",
			 (unsigned long long)min, (unsigned long long)max);
		ld_invalid(L, e, expect);
		return false;
	}
	*dst = (uint32_t)v;
	return true;
}

bool ld_duration(struct loader *L, const struct ini_entry *e, uint64_t min, uint64_t max, uint64_t *dst)
{
	uint64_t v;

	if (duration_parse(e->value, &v) < 0 || v < min || v > max) {
		char lo[32], hi[32], expect[160];
		duration_format(min, lo, sizeof(lo));
		duration_format(max, hi, sizeof(hi));
		snprintf(expect, sizeof(expect), "a duration from %s to %s, like 90s, 15m, 1h or 1h30m", lo, hi);
		ld_invalid(L, e, expect);
		return false;
	}
	*dst = v;
	return true;
}

bool ld_enum(struct loader *L, const struct ini_entry *e, const char *names,
	     int (*from)(const char *), int *dst)
{
	int v = from(e->value);
	char expect[256];

	if (v < 0) {
		snprintf(expect, sizeof(expect), "one of: %s", names);
		ld_invalid(L, e, expect);
		return false;
	}
	*dst = v;
	return true;
}

bool ld_list(struct loader *L, const struct ini_entry *e, bool allow_empty, char ***items, size_t *n)
{
	int r = list_split(e->value, LIST_MAX_ITEMS, items, n);

	if (r == -ENOMEM) {
		L->oom = true;
		return false;
	}
	if (r == -EINVAL) {
		ld_err(L, e->line, "unterminated \" in %s of %s; expected a closing \"", e->key, L->label);
		return false;
	}
	if (r == -E2BIG) {
		ld_err(L, e->line, "more than %d items in %s of %s", LIST_MAX_ITEMS, e->key, L->label);
		return false;
	}
	if (r < 0)
		return false;
	if (*n == 0 && !allow_empty) {
		ld_err(L, e->line, "empty %s in %s; expected at least one item", e->key, L->label);
		list_items_free(*items, *n);
		return false;
	}
	return true;
}

bool ld_principals(struct loader *L, const struct ini_entry *e, bool allow_empty, struct principal_list *dst)
{
	struct principal_list out = { 0 };
	char **items;
	size_t n;
	bool ok = true;

	if (!ld_list(L, e, allow_empty, &items, &n))
		return false;
	out.v = calloc(n ? n : 1, sizeof(*out.v));
	if (!out.v) {
		L->oom = true;
		list_items_free(items, n);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const char *why;
		int r = principal_parse(items[i], &out.v[out.n], &why);
		if (r == -ENOMEM) {
			L->oom = true;
			ok = false;
			break;
		}
		if (r < 0) {
			ld_err(L, e->line, "invalid principal \"%.*s\" in %s of %s; %s", ECHO_MAX, items[i],
			       e->key, L->label, why);
			ok = false;
			continue;
		}
		for (size_t j = 0; j < out.n; j++) {
			if (principal_equal(&out.v[j], &out.v[out.n])) {
				ld_err(L, e->line, "principal \"%.*s\" listed twice in %s of %s", ECHO_MAX,
				       items[i], e->key, L->label);
				ok = false;
				break;
			}
		}
		out.n++;
	}
	list_items_free(items, n);
	if (!ok) {
		principal_list_release(&out);
		return false;
	}
	principal_list_release(dst);
	*dst = out;
	return true;
}

void str_list_release(struct str_list *l)
{
	if (!l)
		return;
	list_items_free(l->v, l->n);
	l->v = NULL;
	l->n = 0;
}
