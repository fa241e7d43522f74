#include "config.h"
#include "policy/sqljson.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static char *skip_ws(char *p, const char *end)
{
	while (p < end && is_ws(*p))
		p++;
	return p;
}

/* A new node at the end of the array; its index, or 0 with *r set. */
static uint32_t node_new(struct sj_doc *d, size_t max_nodes, size_t hint, int *r)
{
	if (d->n >= max_nodes) {
		*r = -E2BIG;
		return 0;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? (size_t)d->cap * 2 : MAX(hint, (size_t)32);
		struct sj_node *v;

		if (cap > max_nodes)
			cap = max_nodes;
		v = realloc(d->v, cap * sizeof(*v));
		if (!v) {
			*r = -ENOMEM;
			return 0;
		}
		d->v = v;
		d->cap = (uint32_t)cap;
	}
	memset(&d->v[d->n], 0, sizeof(d->v[0]));
	return d->n++;
}

/* Open containers: pairs (container, its last member so far). */
static int push(struct sj_doc *d, uint32_t depth, unsigned max_depth, uint32_t idx)
{
	if (depth >= max_depth)
		return -E2BIG;
	if (2 * (depth + 1) > d->stack_cap) {
		uint32_t cap = d->stack_cap ? d->stack_cap * 2 : 64;
		uint32_t *s;

		if (cap > 2 * max_depth)
			cap = 2 * max_depth;
		s = realloc(d->stack, cap * sizeof(*s));
		if (!s)
			return -ENOMEM;
		d->stack = s;
		d->stack_cap = cap;
	}
	d->stack[2 * depth] = idx;
	d->stack[2 * depth + 1] = 0;
	return 0;
}

static int hex4(const char *p, const char *end, uint32_t *out)
{
	uint32_t v = 0;

	if (end - p < 4)
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			return -EINVAL;
	}
	*out = v;
	return 0;
}

static char *put_utf8(char *w, uint32_t cp)
{
	if (cp < 0x80) {
		*w++ = (char)cp;
	} else if (cp < 0x800) {
		*w++ = (char)(0xc0 | (cp >> 6));
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*w++ = (char)(0xe0 | (cp >> 12));
		*w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*w++ = (char)(0xf0 | (cp >> 18));
		*w++ = (char)(0x80 | ((cp >> 12) & 0x3f));
		*w++ = (char)(0x80 | ((cp >> 6) & 0x3f));
		*w++ = (char)(0x80 | (cp & 0x3f));
	}
	return w;
}

/* \uXXXX (p after the 'u'), with its low surrogate when it is a high one. */
static int unicode_escape(char **pp, const char *end, uint32_t *cp)
{
	char *p = *pp;
	uint32_t hi, lo;

	if (hex4(p, end, &hi) < 0)
		return -EINVAL;
	p += 4;
	if (hi >= 0xdc00 && hi <= 0xdfff)
		return -EINVAL;
	if (hi >= 0xd800 && hi <= 0xdbff) {
		if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, end, &lo) < 0 ||
		    lo < 0xdc00 || lo > 0xdfff)
			return -EINVAL;
		p += 6;
		hi = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (hi == 0)
		return -EINVAL; /* no SQL name or setting holds a NUL */
	*cp = hi;
	*pp = p;
	return 0;
}

/* Bytes that end the plain run of a string: controls, quote, backslash. */
static const bool string_stop[256] = {
	[0 ... 0x1f] = true, ['"'] = true, ['\\'] = true,
};

/* The string at *pp (its opening quote), decoded in place: the decoded
 * form is never longer than the escaped one, so it ends, NUL-terminated,
 * at or before the closing quote. */
static int read_string(char **pp, const char *end, const char **out, uint32_t *len)
{
	char *p = *pp + 1, *w, *start = p;
	uint32_t cp;

	/* Most strings have no escape: find the end without copying. */
	while (p < end && !string_stop[(unsigned char)*p])
		p++;
	w = p;
	for (;;) {
		unsigned char c;

		if (p >= end)
			return -EINVAL;
		c = (unsigned char)*p;
		if (c == '"')
			break;
		if (c < 0x20)
			return -EINVAL;
		if (c != '\\') {
			*w++ = *p++;
			continue;
		}
		if (++p >= end)
			return -EINVAL;
		switch (*p++) {
		case '"': *w++ = '"'; break;
		case '\\': *w++ = '\\'; break;
		case '/': *w++ = '/'; break;
		case 'b': *w++ = '\b'; break;
		case 'f': *w++ = '\f'; break;
		case 'n': *w++ = '\n'; break;
		case 'r': *w++ = '\r'; break;
		case 't': *w++ = '\t'; break;
		case 'u':
			if (unicode_escape(&p, end, &cp) < 0)
				return -EINVAL;
			w = put_utf8(w, cp);
			break;
		default:
			return -EINVAL;
		}
	}
	if ((size_t)(w - start) > UINT32_MAX)
		return -E2BIG;
	*w = '\0';
	*out = start;
	*len = (uint32_t)(w - start);
	*pp = p + 1;
	return 0;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int read_number(char **pp, const char *end)
{
	char *p = *pp;

	if (p < end && *p == '-')
		p++;
	if (p >= end)
		return -EINVAL;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < end && is_digit(*p))
			p++;
	} else {
		return -EINVAL;
	}
	if (p < end && *p == '.') {
		if (++p >= end || !is_digit(*p))
			return -EINVAL;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !is_digit(*p))
			return -EINVAL;
		while (p < end && is_digit(*p))
			p++;
	}
	*pp = p;
	return 0;
}

static int read_literal(char **pp, const char *end, uint8_t *type)
{
	static const struct { const char *word; size_t len; uint8_t type; } lits[] = {
		{ "true", 4, SJ_TRUE }, { "false", 5, SJ_FALSE }, { "null", 4, SJ_NULL },
	};

	for (size_t i = 0; i < ARRAY_SIZE(lits); i++)
		if ((size_t)(end - *pp) >= lits[i].len && memcmp(*pp, lits[i].word, lits[i].len) == 0) {
			*pp += lits[i].len;
			*type = lits[i].type;
			return 0;
		}
	return -EINVAL;
}

/* A member name and its colon; p at the opening quote. */
static int read_key(char **pp, const char *end, const char **key)
{
	uint32_t len;

	if (*pp >= end || **pp != '"' || read_string(pp, end, key, &len) < 0)
		return -EINVAL;
	*pp = skip_ws(*pp, end);
	if (*pp >= end || **pp != ':')
		return -EINVAL;
	*pp = skip_ws(*pp + 1, end);
	return 0;
}

/* One scalar or the opening of a container into node idx. */
static int read_value(struct sj_doc *d, uint32_t idx, char **pp, const char *end)
{
	struct sj_node *n = &d->v[idx];
	char *start = *pp;
	int r;

	switch (*start) {
	case '{':
	case '[':
		n->type = *start == '{' ? SJ_OBJECT : SJ_ARRAY;
		(*pp)++;
		return 0;
	case '"':
		n->type = SJ_STRING;
		return read_string(pp, end, &n->s, &n->len);
	case 't':
	case 'f':
	case 'n':
		return read_literal(pp, end, &n->type);
	default:
		r = read_number(pp, end);
		if (r < 0)
			return r;
		n->type = SJ_NUMBER;
		n->s = start;
		n->len = (uint32_t)(*pp - start);
		return 0;
	}
}

int sj_parse(struct sj_doc *d, char *text, size_t len, size_t max_bytes, unsigned max_depth)
{
	const char *end = text + len;
	size_t max_nodes = max_bytes / sizeof(struct sj_node);
	char *p = skip_ws(text, end);
	const char *key = NULL;
	uint32_t depth = 0;
	int r = 0;

	if (max_nodes > UINT32_MAX)
		max_nodes = UINT32_MAX;
	d->n = 0;
	/* Index 0 stands for "none"; it is a node only to keep indices simple. */
	node_new(d, max_nodes, len / 8 + 16, &r);
	if (r < 0)
		return r;
	for (;;) {
		uint32_t idx;

		if (p >= end)
			return -EINVAL;
		idx = node_new(d, max_nodes, 0, &r);
		if (!idx)
			return r;
		d->v[idx].key = key;
		key = NULL;
		if (depth > 0) {
			uint32_t *top = &d->stack[2 * (depth - 1)];

			if (top[1])
				d->v[top[1]].next = idx;
			else
				d->v[top[0]].first = idx;
			top[1] = idx;
			d->v[top[0]].len++;
		}
		r = read_value(d, idx, &p, end);
		if (r < 0)
			return r;
		if (d->v[idx].type == SJ_OBJECT || d->v[idx].type == SJ_ARRAY) {
			bool object = d->v[idx].type == SJ_OBJECT;

			r = push(d, depth, max_depth, idx);
			if (r < 0)
				return r;
			depth++;
			p = skip_ws(p, end);
			if (p < end && *p == (object ? '}' : ']')) {
				p++;
				depth--;
			} else if (object) {
				if (read_key(&p, end, &key) < 0)
					return -EINVAL;
				continue;
			} else {
				continue;
			}
		}
		/* After a value: a comma, or the end of containers, or the end. */
		for (;;) {
			uint32_t top;
			bool object;

			p = skip_ws(p, end);
			if (depth == 0)
				return p == end ? 0 : -EINVAL;
			if (p >= end)
				return -EINVAL;
			top = d->stack[2 * (depth - 1)];
			object = d->v[top].type == SJ_OBJECT;
			if (*p == ',') {
				p = skip_ws(p + 1, end);
				if (object && read_key(&p, end, &key) < 0)
					return -EINVAL;
				break;
			}
			if (*p != (object ? '}' : ']'))
				return -EINVAL;
			p++;
			depth--;
		}
	}
}

void sj_doc_clear(struct sj_doc *d)
{
	free(d->v);
	free(d->stack);
	*d = (struct sj_doc){ 0 };
}

const struct sj_node *sj_get(const struct sj_doc *d, const struct sj_node *obj, const char *key)
{
	if (!obj || obj->type != SJ_OBJECT)
		return NULL;
	for (const struct sj_node *m = sj_first(d, obj); m; m = sj_next(d, m))
		if (m->key[0] == key[0] && strcmp(m->key, key) == 0)
			return m;
	return NULL;
}

const char *sj_get_str(const struct sj_doc *d, const struct sj_node *obj, const char *key)
{
	const struct sj_node *m = sj_get(d, obj, key);

	return m && m->type == SJ_STRING ? m->s : NULL;
}

bool sj_uint32(const struct sj_node *n, uint32_t *out)
{
	uint64_t v = 0;

	if (!n || n->type != SJ_NUMBER || n->len == 0 || n->len > 10)
		return false;
	for (uint32_t i = 0; i < n->len; i++) {
		if (!is_digit(n->s[i]))
			return false;
		v = v * 10 + (uint64_t)(n->s[i] - '0');
	}
	if (v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}
