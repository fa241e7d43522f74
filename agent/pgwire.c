#include "config.h"
#include "agent/pgwire.h"

#include <errno.h>
#include <string.h>

const char *pgw_get_cstr(const uint8_t *p, size_t n, size_t *off)
{
	const uint8_t *s, *z;

	if (*off >= n)
		return NULL;
	s = p + *off;
	z = memchr(s, '\0', n - *off);
	if (!z)
		return NULL;
	*off += (size_t)(z - s) + 1;
	return (const char *)s;
}

int pgw_parse_startup(const uint8_t *p, size_t len, struct pg_startup *out, const char **why)
{
	struct pg_startup s = { 0 };
	size_t off = 8;

	if (len < 8 || len > PG_STARTUP_MAX || get_u32(p) != len) {
		*why = "invalid startup packet length";
		return -EPROTO;
	}
	s.code = get_u32(p + 4);
	if (s.code == PG_SSL_REQUEST || s.code == PG_GSSENC_REQUEST) {
		if (len != 8) {
			*why = "invalid encryption request";
			return -EPROTO;
		}
		*out = s;
		return 0;
	}
	if (s.code == PG_CANCEL_REQUEST) {
		if (len != 16) {
			*why = "invalid cancel request";
			return -EPROTO;
		}
		s.cancel_pid = get_u32(p + 8);
		s.cancel_key = get_u32(p + 12);
		*out = s;
		return 0;
	}
	if (s.code >> 16 != 3) {
		*why = "unsupported frontend protocol (sluice speaks 3.0)";
		return -EPROTO;
	}
	/* Name/value pairs, terminated by an empty name. */
	for (;;) {
		const char *k = pgw_get_cstr(p, len, &off), *v;
		if (!k) {
			*why = "startup packet is not terminated";
			return -EPROTO;
		}
		if (*k == '\0')
			break;
		v = pgw_get_cstr(p, len, &off);
		if (!v) {
			*why = "startup parameter has no value";
			return -EPROTO;
		}
		if (s.n == ARRAY_SIZE(s.keys)) {
			*why = "too many startup parameters";
			return -EPROTO;
		}
		for (size_t i = 0; i < s.n; i++) {
			if (strcmp(s.keys[i], k) == 0) {
				*why = "duplicate startup parameter";
				return -EPROTO;
			}
		}
		s.keys[s.n] = k;
		s.vals[s.n++] = v;
	}
	if (off != len) {
		*why = "trailing bytes after startup parameters";
		return -EPROTO;
	}
	*out = s;
	return 0;
}

const char *pgw_startup_get(const struct pg_startup *s, const char *key)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->keys[i], key) == 0)
			return s->vals[i];
	return NULL;
}

/* Start a typed message; returns the offset of its length word. */
static int msg_begin(struct buf *b, char type, size_t *len_off)
{
	int r = buf_put_u8(b, (uint8_t)type);

	if (r == 0) {
		*len_off = b->len;
		r = buf_put_u32(b, 0);
	}
	return r;
}

static void msg_end(struct buf *b, size_t len_off)
{
	buf_set_u32(b, len_off, (uint32_t)(b->len - len_off));
}

static int put_field(struct buf *b, char code, const char *value)
{
	int r;

	if (!value)
		return 0;
	r = buf_put_u8(b, (uint8_t)code);
	return r < 0 ? r : buf_put_cstr(b, value);
}

int pgw_error(struct buf *b, char type, const char *severity, const char *sqlstate,
	      const char *message, const char *detail, const char *hint)
{
	size_t lo = 0;
	int r;

	if ((r = msg_begin(b, type, &lo)) < 0 ||
	    (r = put_field(b, 'S', severity)) < 0 ||
	    (r = put_field(b, 'V', severity)) < 0 ||
	    (r = put_field(b, 'C', sqlstate)) < 0 ||
	    (r = put_field(b, 'M', message)) < 0 ||
	    (r = put_field(b, 'D', detail)) < 0 ||
	    (r = put_field(b, 'H', hint)) < 0 ||
	    (r = buf_put_u8(b, 0)) < 0)
		return r;
	msg_end(b, lo);
	return 0;
}

int pgw_ready(struct buf *b, char txn_status)
{
	size_t lo = 0;
	int r;

	if ((r = msg_begin(b, 'Z', &lo)) < 0 || (r = buf_put_u8(b, (uint8_t)txn_status)) < 0)
		return r;
	msg_end(b, lo);
	return 0;
}

int pgw_auth_ok(struct buf *b)
{
	size_t lo = 0;
	int r;

	if ((r = msg_begin(b, 'R', &lo)) < 0 || (r = buf_put_u32(b, 0)) < 0)
		return r;
	msg_end(b, lo);
	return 0;
}

int pgw_parameter_status(struct buf *b, const char *name, const char *value)
{
	size_t lo = 0;
	int r;

	if ((r = msg_begin(b, 'S', &lo)) < 0 || (r = buf_put_cstr(b, name)) < 0 ||
	    (r = buf_put_cstr(b, value)) < 0)
		return r;
	msg_end(b, lo);
	return 0;
}

int pgw_backend_key(struct buf *b, uint32_t pid, uint32_t key)
{
	size_t lo = 0;
	int r;

	if ((r = msg_begin(b, 'K', &lo)) < 0 || (r = buf_put_u32(b, pid)) < 0 ||
	    (r = buf_put_u32(b, key)) < 0)
		return r;
	msg_end(b, lo);
	return 0;
}

int pgw_negotiate_version(struct buf *b, uint32_t newest_minor, const char *const *unknown, size_t n)
{
	size_t lo = 0;
	int r;

	if ((r = msg_begin(b, 'v', &lo)) < 0 || (r = buf_put_u32(b, (3u << 16) | newest_minor)) < 0 ||
	    (r = buf_put_u32(b, (uint32_t)n)) < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if ((r = buf_put_cstr(b, unknown[i])) < 0)
			return r;
	msg_end(b, lo);
	return 0;
}

int pgw_startup(struct buf *b, const char *const *keys, const char *const *vals, size_t n)
{
	size_t lo = b->len;
	int r;

	if ((r = buf_put_u32(b, 0)) < 0 || (r = buf_put_u32(b, PG_PROTO_3_0)) < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if ((r = buf_put_cstr(b, keys[i])) < 0 || (r = buf_put_cstr(b, vals[i])) < 0)
			return r;
	if ((r = buf_put_u8(b, 0)) < 0)
		return r;
	buf_set_u32(b, lo, (uint32_t)(b->len - lo));
	return 0;
}

int pgw_ssl_request(struct buf *b)
{
	int r = buf_put_u32(b, 8);
	return r < 0 ? r : buf_put_u32(b, PG_SSL_REQUEST);
}

int pgw_cancel_request(struct buf *b, uint32_t pid, uint32_t key)
{
	int r;

	if ((r = buf_put_u32(b, 16)) < 0 || (r = buf_put_u32(b, PG_CANCEL_REQUEST)) < 0 ||
	    (r = buf_put_u32(b, pid)) < 0)
		return r;
	return buf_put_u32(b, key);
}

int pgw_terminate(struct buf *b)
{
	int r = buf_put_u8(b, 'X');
	return r < 0 ? r : buf_put_u32(b, 4);
}

int pgw_parse_error(const uint8_t *body, size_t n, struct pg_error_fields *out)
{
	struct pg_error_fields f = { 0 };
	size_t off = 0;

	while (off < n && body[off] != 0) {
		char code = (char)body[off++];
		const char *v = pgw_get_cstr(body, n, &off);
		if (!v)
			return -EPROTO;
		switch (code) {
		case 'V': f.severity = v; break;
		case 'S': if (!f.severity) f.severity = v; break;
		case 'C': f.sqlstate = v; break;
		case 'M': f.message = v; break;
		default: break;
		}
	}
	if (off >= n)
		return -EPROTO; /* no terminating zero byte */
	*out = f;
	return 0;
}

int64_t pgw_tag_rows(const char *tag, size_t n)
{
	size_t i = n, start;
	int64_t v = 0;

	/* The count is the last space-separated word, when the command has one. */
	static const char *const counted[] = { "SELECT ", "INSERT ", "UPDATE ", "DELETE ",
					       "MERGE ", "COPY ", "FETCH ", "MOVE " };
	bool ok = false;
	for (size_t k = 0; k < ARRAY_SIZE(counted); k++) {
		size_t cl = strlen(counted[k]);
		if (n > cl && memcmp(tag, counted[k], cl) == 0)
			ok = true;
	}
	if (!ok)
		return -1;
	while (i > 0 && tag[i - 1] >= '0' && tag[i - 1] <= '9')
		i--;
	start = i;
	if (start == n || n - start > 18)
		return -1;
	for (i = start; i < n; i++)
		v = v * 10 + (tag[i] - '0');
	return v;
}
