#include "config.h"
#include "policy/ini.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_ws(char c) { return c == ' ' || c == '\t'; }

const char *ini_section_label(const struct ini_section *s, char *buf, size_t n)
{
	if (s->name)
		snprintf(buf, n, "[%s %s]", s->kind, s->name);
	else
		snprintf(buf, n, "[%s]", s->kind);
	return buf;
}

static struct ini_section *find_section(struct ini_doc *doc, const char *kind, const char *name)
{
	for (size_t i = 0; i < doc->n; i++) {
		struct ini_section *s = &doc->v[i];
		if (strcmp(s->kind, kind) != 0)
			continue;
		if ((!s->name && !name) || (s->name && name && strcmp(s->name, name) == 0))
			return s;
	}
	return NULL;
}

static void section_free(struct ini_section *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].key);
		free(s->v[i].value);
	}
	free(s->v);
	free(s->kind);
	free(s->name);
}

void ini_doc_free(struct ini_doc *doc)
{
	if (!doc)
		return;
	for (size_t i = 0; i < doc->n; i++)
		section_free(&doc->v[i]);
	free(doc->v);
	*doc = (struct ini_doc){ 0 };
}

/* Parse "[kind]" / "[kind name]" (p points at '['). Returns 0 and fills
 * kind/name (malloc'ed), 1 after reporting a syntax error, -ENOMEM. */
static int parse_header(const char *p, size_t file_idx, unsigned line, struct diag *d,
			char **kind_out, char **name_out)
{
	const char *k, *n = NULL, *end;
	size_t klen, nlen = 0;
	char *kind = NULL, *name = NULL;

	p++;
	while (is_ws(*p))
		p++;
	k = p;
	while ((*p >= 'a' && *p <= 'z') || *p == '-')
		p++;
	klen = (size_t)(p - k);
	if (klen == 0) {
		diag_add(d, file_idx, line, "malformed section header; expected [kind] or [kind NAME]");
		return 1;
	}
	if (klen > INI_MAX_KIND) {
		diag_add(d, file_idx, line, "section kind longer than %d bytes", INI_MAX_KIND);
		return 1;
	}
	while (is_ws(*p))
		p++;
	if (*p != ']') {
		n = p;
		while (*p && *p != ']' && !is_ws(*p) && *p != '[')
			p++;
		nlen = (size_t)(p - n);
		while (is_ws(*p))
			p++;
		if (nlen == 0 || *p != ']') {
			diag_add(d, file_idx, line,
				 "malformed section header; expected [kind] or [kind NAME] (one name, no spaces)");
			return 1;
		}
		if (nlen > INI_MAX_NAME) {
			diag_add(d, file_idx, line, "section name longer than %d bytes", INI_MAX_NAME);
			return 1;
		}
	}
	end = p + 1;
	while (is_ws(*end))
		end++;
	if (*end && *end != '#') {
		diag_add(d, file_idx, line, "unexpected text after ']'; expected end of line or a # comment");
		return 1;
	}
	kind = strndup(k, klen);
	if (n)
		name = strndup(n, nlen);
	if (!kind || (n && !name)) {
		free(kind);
		free(name);
		return -ENOMEM;
	}
	*kind_out = kind;
	*name_out = name;
	return 0;
}

/* Split "key = value # comment" (p at the first non-blank). Quotes in the
 * key protect '=' and blanks (mask keys hold "Quoted" identifiers).
 * Returns 0, 1 after reporting, -ENOMEM. */
static int parse_entry(const char *p, size_t file_idx, unsigned line, struct diag *d,
		       char **key_out, char **value_out)
{
	const char *k = p, *kend, *v, *vend;
	bool quoted = false;
	char *key, *value;

	for (; *p; p++) {
		if (*p == '"')
			quoted = !quoted;
		else if (*p == '=' && !quoted)
			break;
	}
	if (quoted) {
		diag_add(d, file_idx, line, "unterminated \" in key; expected a closing \"");
		return 1;
	}
	if (*p != '=') {
		diag_add(d, file_idx, line,
			 "expected \"key = value\", a [section] header, or a # comment");
		return 1;
	}
	kend = p;
	while (kend > k && is_ws(kend[-1]))
		kend--;
	if (kend == k) {
		diag_add(d, file_idx, line, "missing key before '='; expected \"key = value\"");
		return 1;
	}
	quoted = false;
	for (const char *q = k; q < kend; q++) {
		if (*q == '"')
			quoted = !quoted;
		else if (is_ws(*q) && !quoted) {
			diag_add(d, file_idx, line, "key \"%.*s\" contains a blank; expected one word before '='",
				 (int)(kend - k), k);
			return 1;
		}
	}
	v = p + 1;
	while (is_ws(*v))
		v++;
	/* A # at the start of the value or after a blank starts a comment. */
	vend = v;
	while (*vend && !(*vend == '#' && (vend == v || is_ws(vend[-1]))))
		vend++;
	while (vend > v && is_ws(vend[-1]))
		vend--;
	key = strndup(k, (size_t)(kend - k));
	value = strndup(v, (size_t)(vend - v));
	if (!key || !value) {
		free(key);
		free(value);
		return -ENOMEM;
	}
	*key_out = key;
	*value_out = value;
	return 0;
}

static int add_entry(struct ini_doc *doc, struct ini_section *s, size_t file_idx, unsigned line,
		     char *key, char *value, struct diag *d)
{
	char label[INI_LABEL_MAX];

	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->v[i].key, key) == 0) {
			diag_add(d, file_idx, line, "key \"%s\" set twice in %s; first set at line %u",
				 key, ini_section_label(s, label, sizeof(label)), s->v[i].line);
			goto drop;
		}
	}
	if (s->n >= INI_MAX_KEYS) {
		diag_add(d, file_idx, line, "more than %d keys in %s", INI_MAX_KEYS,
			 ini_section_label(s, label, sizeof(label)));
		goto drop;
	}
	if (doc->n_entries >= INI_MAX_ENTRIES) {
		diag_add(d, file_idx, line, "more than %d keys in the configuration", INI_MAX_ENTRIES);
		goto drop;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct ini_entry *v = realloc(s->v, cap * sizeof(*v));
		if (!v) {
			free(key);
			free(value);
			return -ENOMEM;
		}
		s->v = v, s->cap = cap;
	}
	s->v[s->n++] = (struct ini_entry){ .key = key, .value = value, .line = line };
	doc->n_entries++;
	return 0;
drop:
	free(key);
	free(value);
	return 0;
}

/* Returns the new section, NULL when it is refused (reported) or on -ENOMEM
 * (*oom set). */
static struct ini_section *add_section(struct ini_doc *doc, size_t file_idx, unsigned line,
				       char *kind, char *name, struct diag *d, bool *oom)
{
	struct ini_section *prev = find_section(doc, kind, name), *s;
	char label[INI_LABEL_MAX];

	if (prev) {
		const char *f = prev->file_idx < d->p->n_files ? d->p->files[prev->file_idx] : "?";
		diag_add(d, file_idx, line, "%s defined twice; first defined at %s:%u; a section appears once across all files",
			 ini_section_label(prev, label, sizeof(label)), f, prev->line);
		goto drop;
	}
	if (doc->n >= INI_MAX_SECTIONS) {
		diag_add(d, file_idx, line, "more than %d sections in the configuration", INI_MAX_SECTIONS);
		goto drop;
	}
	if (doc->n == doc->cap) {
		size_t cap = doc->cap ? doc->cap * 2 : 8;
		struct ini_section *v = realloc(doc->v, cap * sizeof(*v));
		if (!v) {
			*oom = true;
			goto drop;
		}
		doc->v = v, doc->cap = cap;
	}
	s = &doc->v[doc->n++];
	*s = (struct ini_section){ .kind = kind, .name = name, .file_idx = file_idx, .line = line };
	return s;
drop:
	free(kind);
	free(name);
	return NULL;
}

/* Bad bytes make the rest of the line meaningless: report the first. */
static bool line_is_clean(const char *p, size_t len, size_t file_idx, unsigned line, struct diag *d)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\0') {
			diag_add(d, file_idx, line, "NUL byte in line; expected text");
			return false;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			diag_add(d, file_idx, line, "control character 0x%02x in line; expected printable text", c);
			return false;
		}
	}
	return true;
}

int ini_parse(struct ini_doc *doc, size_t file_idx, const char *text, size_t len, struct diag *d)
{
	struct ini_section *cur = NULL;
	bool skipping = false; /* keys of a refused section are not reported again */
	bool oom = false;
	char *buf = NULL;
	unsigned line = 0;
	size_t pos = 0;
	int r = 0;

	if (len > INI_MAX_FILE_SIZE) {
		diag_add(d, file_idx, 0, "file larger than %u bytes", INI_MAX_FILE_SIZE);
		return 0;
	}
	buf = malloc(INI_MAX_LINE + 1);
	if (!buf)
		return -ENOMEM;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
		const char *p;

		line++;
		if (ll > 0 && text[pos + ll - 1] == '\r')
			ll--; /* tolerate CRLF */
		if (ll > INI_MAX_LINE) {
			diag_add(d, file_idx, line, "line longer than %d bytes", INI_MAX_LINE);
			if (cur)
				cur->broken_lines = true;
			goto next;
		}
		if (!line_is_clean(text + pos, ll, file_idx, line, d)) {
			if (cur)
				cur->broken_lines = true;
			goto next;
		}
		memcpy(buf, text + pos, ll);
		buf[ll] = '\0';
		p = buf;
		while (is_ws(*p))
			p++;
		if (*p == '\0' || *p == '#')
			goto next;
		if (*p == '[') {
			char *kind, *name;
			r = parse_header(p, file_idx, line, d, &kind, &name);
			if (r < 0)
				goto out;
			cur = NULL;
			skipping = true;
			if (r == 0) {
				cur = add_section(doc, file_idx, line, kind, name, d, &oom);
				if (oom) {
					r = -ENOMEM;
					goto out;
				}
				skipping = cur == NULL;
			}
			r = 0;
		} else {
			char *key, *value;
			r = parse_entry(p, file_idx, line, d, &key, &value);
			if (r < 0)
				goto out;
			if (r > 0 && cur)
				cur->broken_lines = true;
			if (r == 0) {
				if (cur) {
					r = add_entry(doc, cur, file_idx, line, key, value, d);
					if (r < 0)
						goto out;
				} else {
					if (!skipping)
						diag_add(d, file_idx, line,
							 "key \"%s\" outside of any section; expected a [section] header first",
							 key);
					free(key);
					free(value);
				}
			}
			r = 0;
		}
next:
		pos += (nl ? (size_t)(nl - (text + pos)) + 1 : len - pos);
	}
out:
	free(buf);
	return r;
}
