#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <string.h>

#include "common/dbusc.h"

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool in_list(const char *key, const char *const *list)
{
	for (; list && *list; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

static json_t *time_json(int64_t us)
{
	char buf[40];

	if (us == 0)
		return json_null();
	ctl_format_utc(us, false, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *value_json(const struct dbusc_value *v, const char *const *null_if_empty)
{
	bool is_time = ends_with(v->key, "_at");

	switch (v->type) {
	case DBUSC_T_STRING:
		if (v->s[0] == '\0' && in_list(v->key, null_if_empty))
			return json_null();
		return json_string(v->s);
	case DBUSC_T_BOOL:
		return json_boolean(v->b);
	case DBUSC_T_INT:
		return is_time ? time_json(v->i) : json_integer(v->i);
	case DBUSC_T_UINT:
		if (v->u > (uint64_t)INT64_MAX)
			return json_real((double)v->u);
		return is_time ? time_json((int64_t)v->u) : json_integer((json_int_t)v->u);
	case DBUSC_T_DOUBLE:
		return json_real(v->d);
	case DBUSC_T_STRV: {
		json_t *a = json_array();
		if (!a)
			return NULL;
		for (size_t i = 0; i < v->strv.n; i++)
			if (json_array_append_new(a, json_string(v->strv.v[i])) < 0) {
				json_decref(a);
				return NULL;
			}
		return a;
	}
	case DBUSC_T_OTHER:
		break;
	}
	return NULL;
}

json_t *ctl_dict_json(const struct dbusc_dict *d, const char *const *null_if_empty)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	for (size_t i = 0; i < d->n; i++) {
		json_t *v;

		if (d->v[i].type == DBUSC_T_OTHER)
			continue; /* a shape this version does not know: leave it out */
		v = value_json(&d->v[i], null_if_empty);
		if (!v || json_object_set_new(o, d->v[i].key, v) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

json_t *ctl_dict_json_shaped(const struct dbusc_dict *d, const char *const *null_if_empty,
			     const char *const *required, size_t n_required)
{
	json_t *o = ctl_dict_json(d, null_if_empty);

	if (!o)
		return NULL;
	for (size_t i = 0; i < n_required; i++)
		if (!json_object_get(o, required[i]) && json_object_set_new(o, required[i], json_null()) < 0) {
			json_decref(o);
			return NULL;
		}
	return o;
}

json_t *ctl_grant_json(const struct dbusc_dict *g)
{
	static const char *const optional[] = { "schema", "reason", "end_reason", NULL };
	static const char *const required[] = {
		"id", "state", "end_reason", "user", "uid", "connection", "protocol", "socket_dir",
		"socket", "dbname", "created_at", "expires_at", "schema", "reason", "connections",
	};

	return ctl_dict_json_shaped(g, optional, required, ARRAY_SIZE(required));
}

json_t *ctl_status_json(const struct dbusc_dict *s, int64_t now)
{
	json_t *o = ctl_dict_json(s, NULL);
	int64_t started;

	if (!o)
		return NULL;
	if (dbusc_dict_int(s, "started_at", &started) == 0 && started > 0 && now >= started &&
	    json_object_set_new(o, "uptime_seconds", json_integer((now - started) / 1000000)) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *ctl_json_string(const char *s)
{
	json_t *j;
	char *fixed;

	if (!s)
		return json_null();
	j = json_string(s);
	if (j)
		return j;
	fixed = ctl_utf8_fix(s);
	if (!fixed)
		return NULL;
	j = json_string(fixed);
	free(fixed);
	return j;
}

int ctl_print_json(json_t *j, FILE *out)
{
	if (!j || json_dumpf(j, out, JSON_INDENT(2)) < 0 || fputc('\n', out) == EOF)
		return -EIO;
	return 0;
}

/* Appends to a bounded buffer; remembers overflow. */
struct sbuf {
	char *p;
	size_t n, len;
	bool overflow;
};

static void sb_putc(struct sbuf *b, char c)
{
	if (b->len + 1 >= b->n) {
		b->overflow = true;
		return;
	}
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
	for (; *s; s++)
		sb_putc(b, *s);
}

static bool conninfo_plain(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '/' || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

/* key=value for a libpq conninfo string: quoted with \' and \\ unless plain. */
static void conninfo_pair(struct sbuf *b, const char *key, const char *value)
{
	sb_puts(b, key);
	sb_putc(b, '=');
	if (conninfo_plain(value)) {
		sb_puts(b, value);
		return;
	}
	sb_putc(b, '\'');
	for (const char *p = value; *p; p++) {
		if (*p == '\'' || *p == '\\')
			sb_putc(b, '\\');
		sb_putc(b, *p);
	}
	sb_putc(b, '\'');
}

int ctl_psql_command(const char *socket_dir, const char *dbname, char *buf, size_t n)
{
	char info[1024], cmd[2400];
	struct sbuf ci = { info, sizeof(info), 0, false }, out = { cmd, sizeof(cmd), 0, false };
	bool dquote_ok = true;

	info[0] = cmd[0] = '\0';
	for (const char *p = socket_dir; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return -EINVAL;
	for (const char *p = dbname; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return -EINVAL;
	conninfo_pair(&ci, "host", socket_dir);
	sb_putc(&ci, ' ');
	conninfo_pair(&ci, "dbname", dbname);
	if (ci.overflow)
		return -ENAMETOOLONG;
	/* Inside "..." a POSIX shell still expands $ ` \ and (bash) !. */
	for (const char *p = info; *p; p++)
		if (strchr("$`\"\\!", *p))
			dquote_ok = false;
	sb_puts(&out, "psql ");
	if (dquote_ok) {
		sb_putc(&out, '"');
		sb_puts(&out, info);
		sb_putc(&out, '"');
	} else {
		sb_putc(&out, '\'');
		for (const char *p = info; *p; p++) {
			if (*p == '\'')
				sb_puts(&out, "'\\''");
			else
				sb_putc(&out, *p);
		}
		sb_putc(&out, '\'');
	}
	if (out.overflow || out.len >= n)
		return -ENAMETOOLONG;
	memcpy(buf, cmd, out.len + 1);
	return 0;
}
