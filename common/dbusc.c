#include "config.h"
#include "common/dbusc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dbusc {
	DBusConnection *conn;
	int timeout_ms;
};

#define UNREACHABLE_TEXT "sluiced is not running or not reachable on the system bus"

/* D-Bus error names that mean "nobody answered": no bus, no owner for the
 * name, activation failed, or the reply did not come in time. */
static const char *const unreachable_names[] = {
	DBUS_ERROR_SERVICE_UNKNOWN,
	DBUS_ERROR_NAME_HAS_NO_OWNER,
	DBUS_ERROR_NO_REPLY,
	DBUS_ERROR_TIMEOUT,
	DBUS_ERROR_TIMED_OUT,
	DBUS_ERROR_NO_SERVER,
	DBUS_ERROR_DISCONNECTED,
	DBUS_ERROR_NO_NETWORK,
	DBUS_ERROR_FILE_NOT_FOUND,
	DBUS_ERROR_BAD_ADDRESS,
	DBUS_ERROR_AUTH_FAILED,
	DBUS_ERROR_IO_ERROR,
	"org.freedesktop.systemd1.NoSuchUnit",
};

static const struct {
	const char *suffix;
	int errnum;
} agent_errors[] = {
	{ "Denied", -EACCES },
	{ "NotFound", -ENOENT },
	{ "InvalidArgument", -EINVAL },
	{ "LimitExceeded", -ENOSPC },
	{ "AuditUnavailable", -EIO },
	{ "ConfigInvalid", -EINVAL },
	{ "Failed", -EIO },
	{ "TokenRejected", -EPERM },   /* the token did not verify for the account */
	{ "Unavailable", -EAGAIN },    /* the issuer's keys cannot be had */
};

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Copy at most max bytes of s, cut on a UTF-8 character boundary. */
static char *strdup_capped(const char *s, size_t max)
{
	size_t n = strlen(s);
	char *r;

	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	r = malloc(n + 1);
	if (!r)
		return NULL;
	memcpy(r, s, n);
	r[n] = '\0';
	return r;
}

static char *format_message(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *format_message(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL, *capped;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return NULL;
	capped = strdup_capped(s, DBUSC_MAX_MESSAGE);
	free(s);
	return capped;
}

void dbusc_error_clear(struct dbusc_error *e)
{
	if (!e)
		return;
	free(e->name);
	free(e->message);
	*e = (struct dbusc_error){ .kind = DBUSC_ERR_NONE };
}

const char *dbusc_error_agent_name(const struct dbusc_error *e)
{
	if (!e || e->kind != DBUSC_ERR_AGENT || !e->name || !starts_with(e->name, SLUICE_ERROR_PREFIX))
		return NULL;
	return e->name + strlen(SLUICE_ERROR_PREFIX);
}

/* Replace e's contents; on allocation failure e says "out of memory". */
static int error_fill(struct dbusc_error *e, enum dbusc_error_kind kind, const char *name,
		      char *message, int errnum)
{
	char *n = strdup(name ? name : "");

	dbusc_error_clear(e);
	if (!n || !message) {
		free(n);
		free(message);
		e->kind = DBUSC_ERR_OTHER;
		e->errnum = -ENOMEM;
		return -ENOMEM;
	}
	e->kind = kind;
	e->name = n;
	e->message = message;
	e->errnum = errnum;
	return errnum;
}

int dbusc_error_set(struct dbusc_error *e, const char *name, const char *message)
{
	const char *msg = message && *message ? message : NULL;

	if (!name)
		name = "";
	if (starts_with(name, SLUICE_ERROR_PREFIX)) {
		const char *suffix = name + strlen(SLUICE_ERROR_PREFIX);
		int errnum = -EIO;

		for (size_t i = 0; i < ARRAY_SIZE(agent_errors); i++)
			if (strcmp(suffix, agent_errors[i].suffix) == 0)
				errnum = agent_errors[i].errnum;
		/* The agent's messages are written to be printed as they are. */
		return error_fill(e, DBUSC_ERR_AGENT, name,
				  msg ? strdup_capped(msg, DBUSC_MAX_MESSAGE)
				      : format_message("sluiced refused the request (%s)", suffix),
				  errnum);
	}
	for (size_t i = 0; i < ARRAY_SIZE(unreachable_names); i++)
		if (strcmp(name, unreachable_names[i]) == 0)
			return error_fill(e, DBUSC_ERR_UNREACHABLE, name,
					  format_message(UNREACHABLE_TEXT " (%s)", msg ? msg : name),
					  -EHOSTUNREACH);
	if (starts_with(name, "org.freedesktop.DBus.Error.Spawn."))
		return error_fill(e, DBUSC_ERR_UNREACHABLE, name,
				  format_message(UNREACHABLE_TEXT " (%s)", msg ? msg : name),
				  -EHOSTUNREACH);
	if (strcmp(name, DBUS_ERROR_ACCESS_DENIED) == 0)
		return error_fill(e, DBUSC_ERR_BUS_DENIED, name,
				  format_message("the system bus refused the call to sluiced (%s)",
						 msg ? msg : name),
				  -EACCES);
	if (strcmp(name, DBUS_ERROR_NO_MEMORY) == 0)
		return error_fill(e, DBUSC_ERR_OTHER, name, format_message("out of memory"), -ENOMEM);
	if (strcmp(name, DBUS_ERROR_UNKNOWN_METHOD) == 0 ||
	    strcmp(name, DBUS_ERROR_UNKNOWN_INTERFACE) == 0 ||
	    strcmp(name, DBUS_ERROR_UNKNOWN_OBJECT) == 0 ||
	    strcmp(name, DBUS_ERROR_INVALID_ARGS) == 0)
		return error_fill(e, DBUSC_ERR_OTHER, name,
				  format_message("sluiced does not support this call; is it an older "
						 "or newer version than this client? (%s)",
						 msg ? msg : name),
				  -EOPNOTSUPP);
	return error_fill(e, DBUSC_ERR_OTHER, name,
			  msg ? format_message("%s: %s", *name ? name : "D-Bus error", msg)
			      : format_message("%s", *name ? name : "D-Bus error"),
			  -EIO);
}

static int error_from_dbus(struct dbusc_error *e, DBusError *de)
{
	int r = dbusc_error_set(e, de->name, de->message);

	dbus_error_free(de);
	return r;
}

static int error_local(struct dbusc_error *e, enum dbusc_error_kind kind, int errnum, char *message)
{
	return error_fill(e, kind, "", message, errnum);
}

static int finish_open(DBusConnection *conn, int timeout_ms, struct dbusc **out,
		       struct dbusc_error *err)
{
	struct dbusc *c = calloc(1, sizeof(*c));

	if (!c) {
		dbus_connection_close(conn);
		dbus_connection_unref(conn);
		return error_local(err, DBUSC_ERR_OTHER, -ENOMEM, format_message("out of memory"));
	}
	/* libdbus would _exit() the process when the bus goes away: not in a
	 * CLI that wants to say why, and never inside a PAM stack. */
	dbus_connection_set_exit_on_disconnect(conn, FALSE);
	c->conn = conn;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : DBUSC_DEFAULT_TIMEOUT_MS;
	*out = c;
	return 0;
}

/* Connect to the bus at address and say Hello within timeout_ms (libdbus's
 * own registration waits up to 25 s on a hung bus; a PAM stack must not). */
static int open_bounded(const char *address, int timeout_ms, struct dbusc **out,
			struct dbusc_error *err)
{
	DBusError de;
	DBusConnection *conn;
	DBusMessage *hello, *reply = NULL;
	const char *name = NULL;
	char *m;

	if (timeout_ms <= 0)
		timeout_ms = DBUSC_DEFAULT_TIMEOUT_MS;
	dbus_error_init(&de);
	conn = dbus_connection_open_private(address, &de);
	if (!conn)
		goto fail;
	hello = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
					     "Hello");
	if (hello) {
		reply = dbus_connection_send_with_reply_and_block(conn, hello, timeout_ms, &de);
		dbus_message_unref(hello);
	}
	if (!reply || !dbus_message_get_args(reply, &de, DBUS_TYPE_STRING, &name, DBUS_TYPE_INVALID) ||
	    !dbus_bus_set_unique_name(conn, name)) {
		if (reply)
			dbus_message_unref(reply);
		dbus_connection_close(conn);
		dbus_connection_unref(conn);
		goto fail;
	}
	dbus_message_unref(reply);
	return finish_open(conn, timeout_ms, out, err);
fail:
	m = format_message(UNREACHABLE_TEXT " (%s)",
			   dbus_error_is_set(&de) && de.message ? de.message : address);
	dbus_error_free(&de);
	return error_local(err, DBUSC_ERR_UNREACHABLE, -EHOSTUNREACH, m);
}

int dbusc_open_system(int timeout_ms, struct dbusc **out, struct dbusc_error *err)
{
	/* As libdbus does: ignored in a setuid/setgid process, where the
	 * environment belongs to the caller (a fake bus could fake the agent). */
	const char *address = secure_getenv("DBUS_SYSTEM_BUS_ADDRESS");

	if (!address || !*address)
		address = "unix:path=/run/dbus/system_bus_socket";
	return open_bounded(address, timeout_ms, out, err);
}

int dbusc_open_address(const char *address, int timeout_ms, struct dbusc **out,
		       struct dbusc_error *err)
{
	return open_bounded(address, timeout_ms, out, err);
}

struct dbusc *dbusc_close(struct dbusc *c)
{
	if (!c)
		return NULL;
	if (c->conn) {
		dbus_connection_close(c->conn);
		dbus_connection_unref(c->conn);
	}
	free(c);
	return NULL;
}

DBusConnection *dbusc_connection(struct dbusc *c)
{
	return c ? c->conn : NULL;
}

int dbusc_call(struct dbusc *c, const char *method, DBusMessage **reply,
	       struct dbusc_error *err, int first_arg_type, ...)
{
	va_list args;
	int r;

	va_start(args, first_arg_type);
	r = dbusc_call_valist(c, method, reply, err, first_arg_type, args);
	va_end(args);
	return r;
}

int dbusc_call_valist(struct dbusc *c, const char *method, DBusMessage **reply,
		      struct dbusc_error *err, int first_arg_type, va_list args)
{
	DBusMessage *msg, *rep;
	DBusError de;
	va_list ap;
	dbus_bool_t ok;

	/* libdbus aborts the process on an invalid string argument (its checks
	 * are fatal by default): validate first, and take basic types only. */
	va_copy(ap, args);
	for (int type = first_arg_type; type != DBUS_TYPE_INVALID; type = va_arg(ap, int)) {
		const void *p = va_arg(ap, const void *);

		if (!dbus_type_is_basic(type) || !p) {
			va_end(ap);
			return error_local(err, DBUSC_ERR_OTHER, -EINVAL,
					   format_message("%s: unsupported argument type", method));
		}
		if (type == DBUS_TYPE_STRING || type == DBUS_TYPE_OBJECT_PATH ||
		    type == DBUS_TYPE_SIGNATURE) {
			const char *s = *(const char *const *)p;
			bool valid = s && dbus_validate_utf8(s, NULL) &&
				  (type != DBUS_TYPE_OBJECT_PATH || dbus_validate_path(s, NULL)) &&
				  (type != DBUS_TYPE_SIGNATURE || dbus_signature_validate(s, NULL));
			if (!valid) {
				va_end(ap);
				return error_local(err, DBUSC_ERR_OTHER, -EINVAL,
						   format_message("an argument to %s is not valid UTF-8",
								  method));
			}
		}
	}
	va_end(ap);

	msg = dbus_message_new_method_call(SLUICE_BUS_NAME, SLUICE_OBJECT_PATH, SLUICE_INTERFACE,
					   method);
	if (!msg)
		return error_local(err, DBUSC_ERR_OTHER, -ENOMEM, format_message("out of memory"));
	va_copy(ap, args);
	ok = dbus_message_append_args_valist(msg, first_arg_type, ap);
	va_end(ap);
	if (!ok) {
		dbus_message_unref(msg);
		return error_local(err, DBUSC_ERR_OTHER, -ENOMEM,
				   format_message("cannot build the %s call", method));
	}
	dbus_error_init(&de);
	rep = dbus_connection_send_with_reply_and_block(c->conn, msg, c->timeout_ms, &de);
	dbus_message_unref(msg);
	if (!rep) {
		if (dbus_error_is_set(&de))
			return error_from_dbus(err, &de);
		return error_local(err, DBUSC_ERR_UNREACHABLE, -EHOSTUNREACH,
				   format_message(UNREACHABLE_TEXT " (no reply to %s)", method));
	}
	*reply = rep;
	return 0;
}

/* Dictionaries. */

static void value_clear(struct dbusc_value *v)
{
	free(v->key);
	if (v->type == DBUSC_T_STRING)
		free(v->s);
	else if (v->type == DBUSC_T_STRV) {
		for (size_t i = 0; i < v->strv.n; i++)
			free(v->strv.v[i]);
		free(v->strv.v);
	}
	*v = (struct dbusc_value){ 0 };
}

void dbusc_dict_clear(struct dbusc_dict *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++)
		value_clear(&d->v[i]);
	free(d->v);
	d->v = NULL;
	d->n = 0;
}

void dbusc_dict_list_clear(struct dbusc_dict_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		dbusc_dict_clear(&l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static bool iter_has_signature(DBusMessageIter *iter, const char *sig)
{
	char *s = dbus_message_iter_get_signature(iter);
	bool ok = s && strcmp(s, sig) == 0;

	dbus_free(s);
	return ok;
}

static int parse_strv(DBusMessageIter *var, struct dbusc_value *v)
{
	DBusMessageIter arr;
	char **items = NULL;
	size_t n = 0, cap = 0;

	dbus_message_iter_recurse(var, &arr);
	while (dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_STRING) {
		const char *s;

		if (n == DBUSC_MAX_STRV)
			goto fail_msg;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 4;
			char **nv = realloc(items, ncap * sizeof(*nv));
			if (!nv)
				goto fail_mem;
			items = nv;
			cap = ncap;
		}
		dbus_message_iter_get_basic(&arr, &s);
		items[n] = strdup(s);
		if (!items[n])
			goto fail_mem;
		n++;
		dbus_message_iter_next(&arr);
	}
	v->strv.v = items;
	v->strv.n = n;
	return 0;
fail_msg:
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
	return -EBADMSG;
fail_mem:
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
	return -ENOMEM;
}

static int parse_variant(DBusMessageIter *variant, struct dbusc_value *v)
{
	DBusMessageIter inner;
	char *sig;
	int type;

	dbus_message_iter_recurse(variant, &inner);
	sig = dbus_message_iter_get_signature(&inner);
	if (!sig)
		return -ENOMEM;
	snprintf(v->signature, sizeof(v->signature), "%s", sig);
	dbus_free(sig);
	type = dbus_message_iter_get_arg_type(&inner);
	switch (type) {
	case DBUS_TYPE_STRING:
	case DBUS_TYPE_OBJECT_PATH:
	case DBUS_TYPE_SIGNATURE: {
		const char *s;
		dbus_message_iter_get_basic(&inner, &s);
		v->s = strdup(s);
		if (!v->s)
			return -ENOMEM;
		v->type = DBUSC_T_STRING;
		return 0;
	}
	case DBUS_TYPE_BOOLEAN: {
		dbus_bool_t b;
		dbus_message_iter_get_basic(&inner, &b);
		v->b = b != 0;
		v->type = DBUSC_T_BOOL;
		return 0;
	}
	case DBUS_TYPE_INT16: {
		dbus_int16_t x;
		dbus_message_iter_get_basic(&inner, &x);
		v->i = x;
		v->type = DBUSC_T_INT;
		return 0;
	}
	case DBUS_TYPE_INT32: {
		dbus_int32_t x;
		dbus_message_iter_get_basic(&inner, &x);
		v->i = x;
		v->type = DBUSC_T_INT;
		return 0;
	}
	case DBUS_TYPE_INT64: {
		dbus_int64_t x;
		dbus_message_iter_get_basic(&inner, &x);
		v->i = x;
		v->type = DBUSC_T_INT;
		return 0;
	}
	case DBUS_TYPE_BYTE: {
		unsigned char x;
		dbus_message_iter_get_basic(&inner, &x);
		v->u = x;
		v->type = DBUSC_T_UINT;
		return 0;
	}
	case DBUS_TYPE_UINT16: {
		dbus_uint16_t x;
		dbus_message_iter_get_basic(&inner, &x);
		v->u = x;
		v->type = DBUSC_T_UINT;
		return 0;
	}
	case DBUS_TYPE_UINT32: {
		dbus_uint32_t x;
		dbus_message_iter_get_basic(&inner, &x);
		v->u = x;
		v->type = DBUSC_T_UINT;
		return 0;
	}
	case DBUS_TYPE_UINT64: {
		dbus_uint64_t x;
		dbus_message_iter_get_basic(&inner, &x);
		v->u = x;
		v->type = DBUSC_T_UINT;
		return 0;
	}
	case DBUS_TYPE_DOUBLE: {
		double x;
		dbus_message_iter_get_basic(&inner, &x);
		v->d = x;
		v->type = DBUSC_T_DOUBLE;
		return 0;
	}
	case DBUS_TYPE_ARRAY:
		if (dbus_message_iter_get_element_type(&inner) == DBUS_TYPE_STRING) {
			int r = parse_strv(&inner, v);
			if (r < 0)
				return r;
			v->type = DBUSC_T_STRV;
			return 0;
		}
		v->type = DBUSC_T_OTHER;
		return 0;
	default:
		/* Newer agents may add shapes we do not show; keep the key. */
		v->type = DBUSC_T_OTHER;
		return 0;
	}
}

int dbusc_parse_dict(DBusMessageIter *iter, struct dbusc_dict *out)
{
	DBusMessageIter arr;
	struct dbusc_dict d = { 0 };
	size_t cap = 0;
	int r;

	if (!iter_has_signature(iter, "a{sv}"))
		return -EBADMSG;
	dbus_message_iter_recurse(iter, &arr);
	while (dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_DICT_ENTRY) {
		DBusMessageIter entry;
		struct dbusc_value v = { 0 };
		const char *key;

		if (d.n == DBUSC_MAX_DICT_ENTRIES) {
			r = -EBADMSG;
			goto fail;
		}
		dbus_message_iter_recurse(&arr, &entry);
		dbus_message_iter_get_basic(&entry, &key);
		if (dbusc_dict_get(&d, key)) {
			r = -EBADMSG;
			goto fail;
		}
		if (d.n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct dbusc_value *nv = realloc(d.v, ncap * sizeof(*nv));
			if (!nv) {
				r = -ENOMEM;
				goto fail;
			}
			d.v = nv;
			cap = ncap;
		}
		v.key = strdup(key);
		if (!v.key) {
			r = -ENOMEM;
			goto fail;
		}
		dbus_message_iter_next(&entry);
		r = parse_variant(&entry, &v);
		if (r < 0) {
			value_clear(&v);
			goto fail;
		}
		d.v[d.n++] = v;
		dbus_message_iter_next(&arr);
	}
	*out = d;
	return 0;
fail:
	dbusc_dict_clear(&d);
	return r;
}

int dbusc_parse_dict_list(DBusMessageIter *iter, struct dbusc_dict_list *out)
{
	DBusMessageIter arr;
	struct dbusc_dict_list l = { 0 };
	size_t cap = 0;
	int r;

	if (!iter_has_signature(iter, "aa{sv}"))
		return -EBADMSG;
	dbus_message_iter_recurse(iter, &arr);
	while (dbus_message_iter_get_arg_type(&arr) == DBUS_TYPE_ARRAY) {
		struct dbusc_dict d;

		if (l.n == DBUSC_MAX_LIST) {
			r = -EBADMSG;
			goto fail;
		}
		if (l.n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct dbusc_dict *nv = realloc(l.v, ncap * sizeof(*nv));
			if (!nv) {
				r = -ENOMEM;
				goto fail;
			}
			l.v = nv;
			cap = ncap;
		}
		r = dbusc_parse_dict(&arr, &d);
		if (r < 0)
			goto fail;
		l.v[l.n++] = d;
		dbus_message_iter_next(&arr);
	}
	*out = l;
	return 0;
fail:
	dbusc_dict_list_clear(&l);
	return r;
}

int dbusc_reply_dict(DBusMessage *reply, struct dbusc_dict *out)
{
	DBusMessageIter it;

	if (!reply || !dbus_message_has_signature(reply, "a{sv}") || !dbus_message_iter_init(reply, &it))
		return -EBADMSG;
	return dbusc_parse_dict(&it, out);
}

int dbusc_reply_dict_list(DBusMessage *reply, struct dbusc_dict_list *out)
{
	DBusMessageIter it;

	if (!reply || !dbus_message_has_signature(reply, "aa{sv}") || !dbus_message_iter_init(reply, &it))
		return -EBADMSG;
	return dbusc_parse_dict_list(&it, out);
}

const struct dbusc_value *dbusc_dict_get(const struct dbusc_dict *d, const char *key)
{
	if (!d || !key)
		return NULL;
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->v[i].key, key) == 0)
			return &d->v[i];
	return NULL;
}

const char *dbusc_dict_str(const struct dbusc_dict *d, const char *key)
{
	const struct dbusc_value *v = dbusc_dict_get(d, key);

	return v && v->type == DBUSC_T_STRING ? v->s : NULL;
}

int dbusc_dict_int(const struct dbusc_dict *d, const char *key, int64_t *out)
{
	const struct dbusc_value *v = dbusc_dict_get(d, key);

	if (!v)
		return -ENOENT;
	if (v->type == DBUSC_T_INT) {
		*out = v->i;
		return 0;
	}
	if (v->type == DBUSC_T_UINT) {
		if (v->u > (uint64_t)INT64_MAX)
			return -ERANGE;
		*out = (int64_t)v->u;
		return 0;
	}
	return -EINVAL;
}

int dbusc_dict_uint(const struct dbusc_dict *d, const char *key, uint64_t *out)
{
	const struct dbusc_value *v = dbusc_dict_get(d, key);

	if (!v)
		return -ENOENT;
	if (v->type == DBUSC_T_UINT) {
		*out = v->u;
		return 0;
	}
	if (v->type == DBUSC_T_INT) {
		if (v->i < 0)
			return -ERANGE;
		*out = (uint64_t)v->i;
		return 0;
	}
	return -EINVAL;
}

int dbusc_dict_bool(const struct dbusc_dict *d, const char *key, bool *out)
{
	const struct dbusc_value *v = dbusc_dict_get(d, key);

	if (!v)
		return -ENOENT;
	if (v->type != DBUSC_T_BOOL)
		return -EINVAL;
	*out = v->b;
	return 0;
}
