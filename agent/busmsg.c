#include "config.h"
#include "agent/busmsg.h"

#include <jansson.h>
#include <string.h>

#include "agent/approval.h"
#include "agent/grant.h"
#include "agent/session.h"

static bool dict_entry(DBusMessageIter *dict, const char *key, int type, const void *val)
{
	DBusMessageIter e, v;
	char sig[2] = { (char)type, 0 };

	return dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &e) &&
	       dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) &&
	       dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, sig, &v) &&
	       dbus_message_iter_append_basic(&v, type, val) &&
	       dbus_message_iter_close_container(&e, &v) &&
	       dbus_message_iter_close_container(dict, &e);
}

bool dict_str(DBusMessageIter *d, const char *k, const char *v)
{
	const char *s = v ? v : "";
	/* Strings on the bus must be UTF-8; ours come from config and the bus. */
	if (!dbus_validate_utf8(s, NULL))
		s = "?";
	return dict_entry(d, k, DBUS_TYPE_STRING, &s);
}

bool dict_u32(DBusMessageIter *d, const char *k, uint32_t v)
{
	dbus_uint32_t x = v;
	return dict_entry(d, k, DBUS_TYPE_UINT32, &x);
}

bool dict_i64(DBusMessageIter *d, const char *k, int64_t v)
{
	dbus_int64_t x = v;
	return dict_entry(d, k, DBUS_TYPE_INT64, &x);
}

bool dict_u64(DBusMessageIter *d, const char *k, uint64_t v)
{
	dbus_uint64_t x = v;
	return dict_entry(d, k, DBUS_TYPE_UINT64, &x);
}

bool dict_strv(DBusMessageIter *dict, const char *key, const char *const *v, size_t n)
{
	DBusMessageIter e, var, arr;

	if (!dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &e) ||
	    !dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key) ||
	    !dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "as", &var) ||
	    !dbus_message_iter_open_container(&var, DBUS_TYPE_ARRAY, "s", &arr))
		return false;
	for (size_t i = 0; i < n; i++) {
		const char *x = dbus_validate_utf8(v[i], NULL) ? v[i] : "?";
		if (!dbus_message_iter_append_basic(&arr, DBUS_TYPE_STRING, &x))
			return false;
	}
	return dbus_message_iter_close_container(&var, &arr) &&
	       dbus_message_iter_close_container(&e, &var) &&
	       dbus_message_iter_close_container(dict, &e);
}

/* The grant's groups are kept as the JSON array its audit rows carry. */
static bool dict_groups_json(DBusMessageIter *d, const char *k, const char *json)
{
	json_error_t je;
	json_t *arr = json ? json_loads(json, 0, &je) : NULL;
	const char *v[256];
	size_t n = 0, i;
	json_t *x;
	bool ok;

	json_array_foreach(arr, i, x) {
		if (n < ARRAY_SIZE(v) && json_is_string(x))
			v[n++] = json_string_value(x);
	}
	ok = dict_strv(d, k, v, n);
	json_decref(arr);
	return ok;
}

const char *grant_state_name(const struct grant *g)
{
	switch (g->state) {
	case GRANT_PENDING: return "pending";
	case GRANT_ACTIVE: return "active";
	case GRANT_ENDED: return "ended";
	}
	return "ended";
}

bool append_grant(DBusMessageIter *it, const struct grant *g)
{
	DBusMessageIter d;
	/* A pending grant has no path yet. */
	const char *dir = g->state == GRANT_PENDING ? "" : g->dir;
	const char *sock = g->state == GRANT_PENDING ? "" : g->socket_path;

	return dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "{sv}", &d) &&
	       dict_str(&d, "id", g->id) &&
	       dict_str(&d, "state", grant_state_name(g)) &&
	       dict_str(&d, "end_reason", g->end_reason) &&
	       dict_str(&d, "approval", g->approval) &&
	       dict_str(&d, "mode", access_mode_name(g->access->mode)) &&
	       dict_str(&d, "user", g->user) &&
	       dict_u32(&d, "uid", g->uid) &&
	       dict_str(&d, "connection", g->conn->name) &&
	       dict_str(&d, "protocol", g->proto->name) &&
	       dict_str(&d, "socket_dir", dir) &&
	       dict_str(&d, "socket", sock) &&
	       dict_str(&d, "dbname", g->conn->dbname) &&
	       dict_i64(&d, "created_at", g->created_us) &&
	       dict_i64(&d, "expires_at", g->expires_us) &&
	       dict_u64(&d, "ttl", g->ttl) &&
	       dict_str(&d, "schema", g->schema) &&
	       dict_str(&d, "reason", g->reason) &&
	       dict_str(&d, "access", g->access->name) &&
	       dict_u32(&d, "connections", g->n_conns) &&
	       dict_str(&d, "session", g->session_id) &&
	       dict_str(&d, "subject", g->subject) &&
	       dict_groups_json(&d, "groups", g->groups_json) &&
	       dbus_message_iter_close_container(it, &d);
}

bool append_session(DBusMessageIter *it, const struct session *s)
{
	DBusMessageIter d;

	return dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "{sv}", &d) &&
	       dict_str(&d, "id", s->id) &&
	       dict_str(&d, "state", s->state == SESSION_ACTIVE ? "active" : "ended") &&
	       dict_str(&d, "end_reason", s->end_reason) &&
	       dict_str(&d, "user", s->user) &&
	       dict_u32(&d, "uid", s->uid) &&
	       dict_str(&d, "subject", s->subject) &&
	       dict_str(&d, "issuer", s->issuer) &&
	       dict_str(&d, "oidc", s->oidc) &&
	       dict_strv(&d, "groups", (const char *const *)s->groups, s->n_groups) &&
	       dict_i64(&d, "created_at", s->created_us) &&
	       dict_i64(&d, "expires_at", s->expires_us) &&
	       dict_u32(&d, "grants", session_grant_count(s)) &&
	       dbus_message_iter_close_container(it, &d);
}

/* sql[0..len), cut to max bytes on a character boundary. */
static bool dict_sql(DBusMessageIter *d, const struct approval *ap, size_t max)
{
	size_t len = ap->sql ? ap->sql_len : 0;
	_cleanup_free_ char *cut = NULL;

	if (len <= max)
		return dict_str(d, "sql", ap->sql) && dict_entry(d, "sql_truncated", DBUS_TYPE_BOOLEAN,
								 &(dbus_bool_t){ FALSE });
	len = max;
	while (len > 0 && ((unsigned char)ap->sql[len] & 0xc0) == 0x80)
		len--;
	cut = strndup(ap->sql, len);
	return cut && dict_str(d, "sql", cut) &&
	       dict_entry(d, "sql_truncated", DBUS_TYPE_BOOLEAN, &(dbus_bool_t){ TRUE });
}

bool append_approval(DBusMessageIter *it, const struct approval *ap, size_t sql_max)
{
	DBusMessageIter d;

	return dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "{sv}", &d) &&
	       dict_str(&d, "id", ap->id) &&
	       dict_str(&d, "kind", approval_kind_name(ap->kind)) &&
	       dict_str(&d, "state", approval_state_name(ap->state)) &&
	       dict_str(&d, "grant", ap->grant_id) &&
	       dict_str(&d, "user", ap->user) &&
	       dict_u32(&d, "uid", ap->uid) &&
	       dict_str(&d, "connection", ap->connection) &&
	       dict_sql(&d, ap, sql_max) &&
	       dict_str(&d, "what", ap->what) &&
	       dict_str(&d, "rule", ap->rule) &&
	       dict_str(&d, "reason", ap->reason) &&
	       dict_i64(&d, "created_at", ap->created_us) &&
	       dict_i64(&d, "expires_at", ap->expires_us) &&
	       dict_i64(&d, "decided_at", ap->decided_us) &&
	       dict_str(&d, "decided_by", ap->decided_by) &&
	       dict_str(&d, "note", ap->note) &&
	       dict_i64(&d, "window_ends_at", ap->window_end_us) &&
	       dbus_message_iter_close_container(it, &d);
}
