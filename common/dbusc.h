/* D-Bus client helpers for talking to sluiced (org.sluice.Agent1): a
 * private system-bus connection, method calls with a bounded timeout,
 * a{sv} / aa{sv} replies parsed into a small dictionary type, and D-Bus
 * errors turned into a message a program can print.
 *
 * Used by sluicectl and (later) pam_sluice, so: no global state, no
 * logging, no printing, no exit-on-disconnect. Everything a call returns is
 * owned by the caller and freed with the matching *_free/_clear. */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <dbus/dbus.h>
#include "common/util.h"

#define SLUICE_BUS_NAME "org.sluice.Agent1"
#define SLUICE_OBJECT_PATH "/org/sluice/Agent1"
#define SLUICE_INTERFACE "org.sluice.Agent1"
#define SLUICE_ERROR_PREFIX "org.sluice.Agent1.Error."

/* Default bound on one method call. */
#define DBUSC_DEFAULT_TIMEOUT_MS 15000
/* Caps on what a reply may carry (fail closed past them). */
#define DBUSC_MAX_DICT_ENTRIES 1024
#define DBUSC_MAX_LIST 65536
#define DBUSC_MAX_STRV 4096
#define DBUSC_MAX_MESSAGE 65536 /* bytes of an error message kept */

enum dbusc_error_kind {
	DBUSC_ERR_NONE = 0,
	DBUSC_ERR_UNREACHABLE, /* no bus, no agent, no reply in time */
	DBUSC_ERR_AGENT,       /* org.sluice.Agent1.Error.*: print as is */
	DBUSC_ERR_BUS_DENIED,  /* the bus policy refused the call */
	DBUSC_ERR_PROTOCOL,    /* a reply we cannot read */
	DBUSC_ERR_OTHER,       /* any other D-Bus error */
};

struct dbusc_error {
	enum dbusc_error_kind kind;
	char *name;    /* D-Bus error name ("" for local errors); owned */
	char *message; /* what to print, without a program prefix; owned */
	int errnum;    /* the negative errno the call returned */
};

/* Pass err zero-initialised ({ 0 }) or cleared; a failing call fills it,
 * the caller clears it. */
/* Free name and message and reset to DBUSC_ERR_NONE; accepts NULL. */
void dbusc_error_clear(struct dbusc_error *e);
/* The short suffix of an org.sluice.Agent1.Error.* name ("Denied"), or NULL. */
const char *dbusc_error_agent_name(const struct dbusc_error *e);
/* Fill e from a D-Bus error name and message, classifying it as the calls
 * do. Returns the negative errno a call would return for it (-EHOSTUNREACH,
 * -EACCES, -ENOENT, -EINVAL, -EPROTO, -EIO, ...), or -ENOMEM. */
int dbusc_error_set(struct dbusc_error *e, const char *name, const char *message);

struct dbusc;

/* Open a private connection to the system bus (DBUS_SYSTEM_BUS_ADDRESS when
 * set). timeout_ms bounds every call made on it (<= 0: the default).
 * Returns 0 or a negative errno with err filled in. */
int dbusc_open_system(int timeout_ms, struct dbusc **out, struct dbusc_error *err) WUR;
/* Same, on the bus at address (tests). */
int dbusc_open_address(const char *address, int timeout_ms, struct dbusc **out,
		       struct dbusc_error *err) WUR;
struct dbusc *dbusc_close(struct dbusc *c);
/* The libdbus connection under c, still owned by c: for a caller that also
 * listens for signals (adds a match, pops what arrived between calls). */
DBusConnection *dbusc_connection(struct dbusc *c);

/* Call method on org.sluice.Agent1 at /org/sluice/Agent1 with arguments as
 * for dbus_message_append_args (first_arg_type, ..., DBUS_TYPE_INVALID).
 * Returns 0 and *reply (unref with dbus_message_unref), or a negative errno
 * and err. An error reply becomes err (kind by name, see dbusc_error_set). */
int dbusc_call(struct dbusc *c, const char *method, DBusMessage **reply,
	       struct dbusc_error *err, int first_arg_type, ...) WUR;
int dbusc_call_valist(struct dbusc *c, const char *method, DBusMessage **reply,
		      struct dbusc_error *err, int first_arg_type, va_list args) WUR;

/* A variant value, reduced to the few shapes sluiced sends. */
enum dbusc_type {
	DBUSC_T_STRING, /* s, o, g */
	DBUSC_T_BOOL,   /* b */
	DBUSC_T_INT,    /* n, i, x */
	DBUSC_T_UINT,   /* y, q, u, t */
	DBUSC_T_DOUBLE, /* d */
	DBUSC_T_STRV,   /* as */
	DBUSC_T_OTHER,  /* anything else: kept as a key, no value */
};

struct dbusc_value {
	char *key;
	enum dbusc_type type;
	char signature[8]; /* the variant's D-Bus signature, truncated */
	union {
		char *s;
		bool b;
		int64_t i;
		uint64_t u;
		double d;
		struct {
			char **v;
			size_t n;
		} strv;
	};
};

struct dbusc_dict {
	struct dbusc_value *v;
	size_t n;
};

struct dbusc_dict_list {
	struct dbusc_dict *v;
	size_t n;
};

void dbusc_dict_clear(struct dbusc_dict *d);
void dbusc_dict_list_clear(struct dbusc_dict_list *l);

/* Parse an a{sv} at iter (which must point at it) into *out. A duplicate
 * key, a non-UTF-8 string or more than DBUSC_MAX_* entries is -EBADMSG.
 * *out untouched on failure. */
int dbusc_parse_dict(DBusMessageIter *iter, struct dbusc_dict *out) WUR;
/* Same for aa{sv}. */
int dbusc_parse_dict_list(DBusMessageIter *iter, struct dbusc_dict_list *out) WUR;

/* Replies whose only argument is a{sv} / aa{sv}; anything else is -EBADMSG. */
int dbusc_reply_dict(DBusMessage *reply, struct dbusc_dict *out) WUR;
int dbusc_reply_dict_list(DBusMessage *reply, struct dbusc_dict_list *out) WUR;

/* Look-ups. NULL / -ENOENT when the key is absent. */
const struct dbusc_value *dbusc_dict_get(const struct dbusc_dict *d, const char *key);
/* The string, or NULL when absent or not a string. */
const char *dbusc_dict_str(const struct dbusc_dict *d, const char *key);
/* Any integer type that fits: 0, -ENOENT, -EINVAL (not an integer), -ERANGE. */
int dbusc_dict_int(const struct dbusc_dict *d, const char *key, int64_t *out) WUR;
int dbusc_dict_uint(const struct dbusc_dict *d, const char *key, uint64_t *out) WUR;
int dbusc_dict_bool(const struct dbusc_dict *d, const char *key, bool *out) WUR;
