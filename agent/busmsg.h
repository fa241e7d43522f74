/* The agent's objects as D-Bus a{sv} dicts, with the keys
 * data/org.sluice.Agent1.xml documents: grants, sessions, approvals, and
 * the typed entries they are made of. Strings that are not UTF-8 go out
 * as "?" (libdbus refuses them). */
#pragma once
#include <dbus/dbus.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct approval;
struct grant;
struct session;

bool dict_str(DBusMessageIter *d, const char *k, const char *v);
bool dict_u32(DBusMessageIter *d, const char *k, uint32_t v);
bool dict_i64(DBusMessageIter *d, const char *k, int64_t v);
bool dict_u64(DBusMessageIter *d, const char *k, uint64_t v);
bool dict_strv(DBusMessageIter *dict, const char *key, const char *const *v, size_t n);

/* pending | active | ended */
const char *grant_state_name(const struct grant *g);
bool append_grant(DBusMessageIter *it, const struct grant *g);
bool append_session(DBusMessageIter *it, const struct session *s);
/* sql_max: bytes of the statement shown (cut on a character boundary,
 * sql_truncated says so); SIZE_MAX for all of it. */
bool append_approval(DBusMessageIter *it, const struct approval *ap, size_t sql_max);
