#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <string.h>

/* Decode one UTF-8 character at s; returns its length, or 0 when the bytes
 * there are not valid UTF-8 (overlong, surrogate, past U+10FFFF, cut). */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
	uint32_t c;
	size_t len;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		c = s[0] & 0x1F, len = 2;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		c = s[0] & 0x0F, len = 3;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		c = s[0] & 0x07, len = 4;
	else
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0; /* also catches the terminating NUL */
		c = c << 6 | (s[i] & 0x3F);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10FFFF)) ||
	    (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return len;
}

/* Characters a terminal would act on rather than show: C0 and C1 controls,
 * DEL, and the bidirectional overrides that reorder what follows. */
static bool is_unsafe(uint32_t c)
{
	return c < 0x20 || c == 0x7F || (c >= 0x80 && c <= 0x9F) || c == 0x2028 || c == 0x2029 ||
	       (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

static bool is_space(uint32_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

char *ctl_sanitize(const char *s, bool one_line)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t n = strlen((const char *)p), o = 0;
	bool pending_space = false;
	char *out = malloc(n + 1);

	if (!out)
		return NULL;
	while (*p) {
		uint32_t c;
		size_t len = utf8_next(p, &c);

		if (len == 0) {
			if (pending_space && o > 0)
				out[o++] = ' ';
			pending_space = false;
			out[o++] = '?';
			p++;
			continue;
		}
		if (one_line && is_space(c)) {
			pending_space = true; /* leading and trailing runs vanish */
			p += len;
			continue;
		}
		if (pending_space && o > 0)
			out[o++] = ' ';
		pending_space = false;
		if (!one_line && (c == '\n' || c == '\t')) {
			out[o++] = (char)c;
		} else if (is_unsafe(c)) {
			out[o++] = '?';
		} else {
			memcpy(out + o, p, len);
			o += len;
		}
		p += len;
	}
	out[o] = '\0';
	return out;
}

char *ctl_utf8_fix(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0;
	char *out;

	if (n > (SIZE_MAX - 1) / 3)
		return NULL;
	out = malloc(3 * n + 1);
	if (!out)
		return NULL;
	while (*p) {
		uint32_t c;
		size_t len = utf8_next(p, &c);

		if (len == 0) {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			p++;
		} else {
			memcpy(out + o, p, len);
			o += len;
			p += len;
		}
	}
	out[o] = '\0';
	return out;
}

size_t ctl_text_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t w = 0;

	while (*p) {
		uint32_t c;
		size_t len = utf8_next(p, &c);
		p += len ? len : 1;
		w++;
	}
	return w;
}

/* Byte length of the first `chars` characters of s. */
static size_t prefix_bytes(const char *s, size_t chars)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p && chars > 0) {
		uint32_t c;
		size_t len = utf8_next(p, &c);
		p += len ? len : 1;
		chars--;
	}
	return (size_t)(p - (const unsigned char *)s);
}

struct table {
	size_t n_cols;
	char **headers;
	size_t *width;
	size_t *max_width;        /* 0: no limit */
	const char **ellipsis;
	char **cells;             /* n_rows * n_cols */
	size_t n_rows, cap_rows;
	bool header_printed;
};

static void free_rows(struct table *t)
{
	for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
		free(t->cells[i]);
	t->n_rows = 0;
}

struct table *table_free(struct table *t)
{
	if (!t)
		return NULL;
	free_rows(t);
	free(t->cells);
	if (t->headers)
		for (size_t i = 0; i < t->n_cols; i++)
			free(t->headers[i]);
	free(t->headers);
	free(t->width);
	free(t->max_width);
	free(t->ellipsis);
	free(t);
	return NULL;
}

struct table *table_new(size_t n_cols, const char *const *headers)
{
	struct table *t;

	if (n_cols == 0)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->n_cols = n_cols;
	t->headers = calloc(n_cols, sizeof(*t->headers));
	t->width = calloc(n_cols, sizeof(*t->width));
	t->max_width = calloc(n_cols, sizeof(*t->max_width));
	t->ellipsis = calloc(n_cols, sizeof(*t->ellipsis));
	if (!t->headers || !t->width || !t->max_width || !t->ellipsis)
		return table_free(t);
	for (size_t i = 0; i < n_cols; i++) {
		t->headers[i] = ctl_sanitize(headers[i], true);
		if (!t->headers[i])
			return table_free(t);
		t->width[i] = ctl_text_width(t->headers[i]);
	}
	return t;
}

void table_set_max_width(struct table *t, size_t col, size_t width, const char *ellipsis)
{
	if (col >= t->n_cols)
		return;
	t->ellipsis[col] = ellipsis ? ellipsis : "...";
	/* room for at least one character before the ellipsis */
	t->max_width[col] = width ? MAX(width, ctl_text_width(t->ellipsis[col]) + 1) : 0;
}

size_t table_rows(const struct table *t)
{
	return t->n_rows;
}

static char *make_cell(const struct table *t, size_t col, const char *s)
{
	char *c = ctl_sanitize(s ? s : "-", true);
	size_t w, keep, ew;
	char *cut;

	if (!c || t->max_width[col] == 0)
		return c;
	w = ctl_text_width(c);
	if (w <= t->max_width[col])
		return c;
	ew = ctl_text_width(t->ellipsis[col]);
	keep = prefix_bytes(c, t->max_width[col] - ew);
	/* no blank just before the ellipsis */
	while (keep > 0 && c[keep - 1] == ' ')
		keep--;
	cut = malloc(keep + strlen(t->ellipsis[col]) + 1);
	if (cut) {
		memcpy(cut, c, keep);
		memcpy(cut + keep, t->ellipsis[col], strlen(t->ellipsis[col]) + 1);
	}
	free(c);
	return cut;
}

int table_add_row(struct table *t, const char *const *cells)
{
	char **row;

	if (t->n_rows == t->cap_rows) {
		size_t ncap = t->cap_rows ? t->cap_rows * 2 : 16;
		char **nc = reallocarray(t->cells, ncap * t->n_cols, sizeof(*nc));
		if (!nc)
			return -ENOMEM;
		t->cells = nc;
		t->cap_rows = ncap;
	}
	row = t->cells + t->n_rows * t->n_cols;
	for (size_t i = 0; i < t->n_cols; i++) {
		row[i] = make_cell(t, i, cells[i]);
		if (!row[i]) {
			for (size_t j = 0; j < i; j++)
				free(row[j]);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < t->n_cols; i++)
		t->width[i] = MAX(t->width[i], ctl_text_width(row[i]));
	t->n_rows++;
	return 0;
}

static void print_line(const struct table *t, char *const *cells, FILE *out)
{
	size_t last = t->n_cols - 1;

	/* trailing empty cells print nothing, so no line ends in blanks */
	while (last > 0 && cells[last][0] == '\0')
		last--;
	for (size_t i = 0; i <= last; i++) {
		fputs(cells[i], out);
		if (i < last)
			fprintf(out, "%*s", (int)(t->width[i] - ctl_text_width(cells[i]) + 2), "");
	}
	fputc('\n', out);
}

int table_flush(struct table *t, FILE *out)
{
	if (!t->header_printed) {
		print_line(t, t->headers, out);
		t->header_printed = true;
	}
	for (size_t r = 0; r < t->n_rows; r++)
		print_line(t, t->cells + r * t->n_cols, out);
	free_rows(t);
	if (ferror(out))
		return -EIO;
	return 0;
}

void ctl_print_field_raw(FILE *out, const char *key, const char *value, size_t key_width)
{
	size_t used = strlen(key) + 1;

	fprintf(out, "%s:%*s%s\n", key, (int)(key_width > used + 1 ? key_width - used : 1), "", value);
}

void ctl_print_field(FILE *out, const char *key, const char *value, size_t key_width)
{
	char *v = ctl_sanitize(value ? value : "-", true);

	ctl_print_field_raw(out, key, v ? v : "?", key_width);
	free(v);
}
