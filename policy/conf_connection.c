/* [connection NAME] (an upstream warehouse and the credential only the
 * agent holds) and [access NAME] (who may get a grant on it, for how long,
 * read-only or not, limited to which schemas, with which approvals). */
#include "config.h"
#include "policy/loader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/duration.h"
#include "policy/classes.h"
#include "policy/ident.h"
#include "policy/principal.h"
#include "policy/value.h"

#define PG_NAME_MAX 63 /* NAMEDATALEN - 1 */
#define TTL_MAX (30 * 86400)

enum { C_TYPE, C_HOST, C_PORT, C_DBNAME, C_USER, C_PASSWORD_FILE, C_SSLMODE, C_SSLROOTCERT };
static const struct key_def connection_keys[] = {
	[C_TYPE] = { "type", true, "postgres" },
	[C_HOST] = { "host", true, "a host name, an IP address, or an absolute Unix socket directory" },
	[C_PORT] = { "port", false, "a port number" },
	[C_DBNAME] = { "dbname", true, "the database name" },
	[C_USER] = { "user", true, "the role sluiced logs in as" },
	[C_PASSWORD_FILE] = { "password_file", false, "an absolute path" },
	[C_SSLMODE] = { "sslmode", false, "an sslmode" },
	[C_SSLROOTCERT] = { "sslrootcert", false, "an absolute path" },
};

static void conn_type(struct loader *L, const struct ini_entry *e, struct pol_connection *c)
{
	if (strcmp(e->value, "postgres") == 0)
		c->type = CONN_POSTGRES;
	else if (strcmp(e->value, "snowflake") == 0 || strcmp(e->value, "bigquery") == 0)
		ld_err(L, e->line, "type %s in %s is not supported by this version of sluice yet; "
		       "expected type = postgres", e->value, L->label);
	else
		ld_invalid(L, e, "postgres (snowflake and bigquery are planned, not yet supported)");
}

static void conn_host(struct loader *L, const struct ini_entry *e, struct pol_connection *c,
		      enum host_kind *kind)
{
	int r = val_host(e->value, kind);

	if (r == -ENAMETOOLONG) {
		ld_invalid(L, e, "a socket directory of at most 92 bytes "
			   "(it must fit in a socket address with /.s.PGSQL.PORT)");
		return;
	}
	if (r < 0) {
		ld_invalid(L, e, connection_keys[C_HOST].expect);
		return;
	}
	ld_default(L, &c->host, e->value);
}

void conf_connection(struct loader *L, const struct ini_section *s, struct pol_connection *c)
{
	const struct ini_entry *sslmode = NULL, *rootcert = NULL;
	enum host_kind kind = HOST_NAME;
	uint64_t seen = 0;
	int mode;

	ld_begin(L, s, &c->origin);
	if (!name_is_safe(s->name, SAFE_NAME_MAX))
		ld_err(L, s->line, "invalid connection name in %s; expected [connection NAME] with NAME "
		       "of 1 to 64 bytes of [A-Za-z0-9._-]", L->label);
	ld_default(L, &c->name, s->name);
	c->port = 5432;
	for (size_t i = 0; i < s->n; i++) {
		const struct ini_entry *e = &s->v[i];
		int k = ld_key(L, e, connection_keys, ARRAY_SIZE(connection_keys));
		uint32_t port;

		if (k >= 0)
			seen |= UINT64_C(1) << k;
		switch (k) {
		case C_TYPE:
			conn_type(L, e, c);
			break;
		case C_HOST:
			conn_host(L, e, c, &kind);
			break;
		case C_PORT:
			if (ld_u32(L, e, 1, 65535, &port))
				c->port = (uint16_t)port;
			break;
		case C_DBNAME:
			(void)ld_string(L, e, "a database name of 1 to 63 bytes", PG_NAME_MAX, &c->dbname);
			break;
		case C_USER:
			(void)ld_string(L, e, "a role name of 1 to 63 bytes", PG_NAME_MAX, &c->user);
			break;
		case C_PASSWORD_FILE:
			(void)ld_path(L, e, &c->password_file);
			break;
		case C_SSLMODE:
			if (ld_enum(L, e, sslmode_names(), sslmode_from_name, &mode)) {
				c->sslmode = (enum sslmode)mode;
				sslmode = e;
			}
			break;
		case C_SSLROOTCERT:
			if (ld_path(L, e, &c->sslrootcert))
				rootcert = e;
			break;
		default:
			break;
		}
	}
	ld_require(L, connection_keys, ARRAY_SIZE(connection_keys), seen);
	if (c->host && kind == HOST_SOCKET_DIR) {
		if (!sslmode)
			c->sslmode = SSLMODE_DISABLE;
		else if (c->sslmode != SSLMODE_DISABLE)
			ld_err(L, sslmode->line, "sslmode = %s in %s asks for TLS, but host is a Unix socket "
			       "directory, which has none; expected sslmode = disable or no sslmode",
			       sslmode_name(c->sslmode), L->label);
		if (rootcert)
			ld_err(L, rootcert->line, "sslrootcert in %s has no use: host is a Unix socket "
			       "directory (no TLS); expected no sslrootcert", L->label);
	} else {
		if (!sslmode)
			c->sslmode = SSLMODE_VERIFY_FULL;
		if (rootcert && c->sslmode == SSLMODE_DISABLE)
			ld_err(L, rootcert->line, "sslrootcert in %s has no use with sslmode = disable; "
			       "expected sslmode = verify-ca or verify-full, or no sslrootcert", L->label);
	}
	ld_default(L, &c->sslrootcert, "/etc/ssl/certs/ca-certificates.crt");
}

enum {
	X_CONNECTION, X_ALLOW, X_SCHEMAS, X_MAX_TTL, X_DEFAULT_TTL, X_APPROVAL, X_MODE,
	X_APPROVAL_TIMEOUT, X_APPROVAL_WINDOW, X_APPROVAL_WAIT,
};
static const struct key_def access_keys[] = {
	[X_CONNECTION] = { "connection", true, "the NAME of a [connection NAME] section" },
	[X_ALLOW] = { "allow", true, "who may request a grant: account, @idp-group or %unix-group" },
	[X_SCHEMAS] = { "schemas", false, "schema names" },
	[X_MAX_TTL] = { "max_ttl", false, "a duration" },
	[X_DEFAULT_TTL] = { "default_ttl", false, "a duration" },
	[X_APPROVAL] = { "approval", false, "an approval mode" },
	[X_MODE] = { "mode", false, "read or write" },
	[X_APPROVAL_TIMEOUT] = { "approval_timeout", false, "a duration" },
	[X_APPROVAL_WINDOW] = { "approval_window", false, "a duration" },
	[X_APPROVAL_WAIT] = { "approval_wait", false, "a duration" },
};

/* Approval timing (sluice.conf(5)): a pending approval waits at least 10s
 * for a human; a held statement keeps its client waiting at most 10m. */
#define APPROVAL_TIMEOUT_MIN 10
#define APPROVAL_TIMEOUT_MAX 86400
#define APPROVAL_WINDOW_MAX 86400
#define APPROVAL_WAIT_MAX 600

static const char *const access_modes[] = { [ACCESS_WRITE] = "write", [ACCESS_READ] = "read" };

const char *access_mode_name(enum access_mode m)
{
	return (unsigned)m < ARRAY_SIZE(access_modes) ? access_modes[m] : NULL;
}

static int access_mode_from_name(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(access_modes); i++)
		if (strcmp(access_modes[i], name) == 0)
			return (int)i;
	return -1;
}

static void schemas(struct loader *L, const struct ini_entry *e, struct pol_access *a)
{
	struct str_list out = { 0 };
	char **items;
	size_t n;
	bool ok = true;

	if (!ld_list(L, e, false, &items, &n))
		return;
	out.v = calloc(n, sizeof(*out.v));
	if (!out.v) {
		L->oom = true;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *why;
		char *folded;
		int r = ident_fold(items[i], &folded, &why);

		if (r == -ENOMEM) {
			L->oom = true;
			ok = false;
			break;
		}
		if (r < 0) {
			ld_err(L, e->line, "invalid schema \"%.80s\" in %s: %s", items[i], L->label, why);
			ok = false;
			continue;
		}
		for (size_t j = 0; j < out.n; j++)
			if (strcmp(out.v[j], folded) == 0) {
				ld_err(L, e->line, "schema \"%s\" listed twice in %s (names are folded "
				       "to lower case unless quoted)", folded, L->label);
				ok = false;
				break;
			}
		out.v[out.n++] = folded;
	}
	if (ok) {
		str_list_release(&a->schemas);
		a->schemas = out;
		out = (struct str_list){ 0 };
		a->schemas_origin = (struct pol_origin){ .file = L->p->files[L->s->file_idx], .line = e->line };
	}
out:
	str_list_release(&out);
	list_items_free(items, n);
}

void conf_access(struct loader *L, const struct ini_section *s, struct pol_access *a)
{
	const struct ini_entry *dttl = NULL, *wait = NULL;
	uint64_t seen = 0;
	int mode;

	ld_begin(L, s, &a->origin);
	if (!name_is_safe(s->name, SAFE_NAME_MAX))
		ld_err(L, s->line, "invalid access rule name in %s; expected [access NAME] with NAME of "
		       "1 to 64 bytes of [A-Za-z0-9._-]", L->label);
	ld_default(L, &a->name, s->name);
	a->max_ttl = 3600;
	a->mode = ACCESS_WRITE;
	a->approval_timeout = 900;
	a->approval_window = 600;
	a->approval_wait = 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct ini_entry *e = &s->v[i];
		int k = ld_key(L, e, access_keys, ARRAY_SIZE(access_keys));

		if (k >= 0)
			seen |= UINT64_C(1) << k;
		switch (k) {
		case X_CONNECTION:
			if (!name_is_safe(e->value, SAFE_NAME_MAX))
				ld_invalid(L, e, access_keys[X_CONNECTION].expect);
			else
				ld_default(L, &a->connection, e->value);
			break;
		case X_ALLOW:
			(void)ld_principals(L, e, false, &a->allow);
			break;
		case X_SCHEMAS:
			schemas(L, e, a);
			break;
		case X_MAX_TTL:
			(void)ld_duration(L, e, 1, TTL_MAX, &a->max_ttl);
			break;
		case X_DEFAULT_TTL:
			if (ld_duration(L, e, 1, TTL_MAX, &a->default_ttl))
				dttl = e;
			break;
		case X_MODE:
			if (ld_enum(L, e, "read write", access_mode_from_name, &mode)) {
				a->mode = (enum access_mode)mode;
				a->mode_origin = (struct pol_origin){ .file = L->p->files[s->file_idx],
								      .line = e->line };
			}
			break;
		case X_APPROVAL:
			if (ld_enum(L, e, approval_mode_names(), approval_mode_from_name, &mode)) {
				a->approval = (enum approval_mode)mode;
				a->approval_origin = (struct pol_origin){ .file = L->p->files[s->file_idx],
									  .line = e->line };
			}
			break;
		case X_APPROVAL_TIMEOUT:
			(void)ld_duration(L, e, APPROVAL_TIMEOUT_MIN, APPROVAL_TIMEOUT_MAX, &a->approval_timeout);
			break;
		case X_APPROVAL_WINDOW:
			(void)ld_duration(L, e, 1, APPROVAL_WINDOW_MAX, &a->approval_window);
			break;
		case X_APPROVAL_WAIT:
			if (ld_duration(L, e, 0, APPROVAL_WAIT_MAX, &a->approval_wait))
				wait = e;
			break;
		default:
			break;
		}
	}
	ld_require(L, access_keys, ARRAY_SIZE(access_keys), seen);
	if (!dttl) {
		a->default_ttl = MIN((uint64_t)600, a->max_ttl);
	} else if (a->default_ttl > a->max_ttl) {
		char d[32], m[32];
		duration_format(a->default_ttl, d, sizeof(d));
		duration_format(a->max_ttl, m, sizeof(m));
		ld_err(L, dttl->line, "default_ttl %s in %s is longer than max_ttl %s; expected "
		       "default_ttl <= max_ttl", d, L->label, m);
	}
	/* A held statement whose approval expired first would wait for nothing. */
	if (wait && a->approval_wait > a->approval_timeout) {
		char w[32], t[32];
		duration_format(a->approval_wait, w, sizeof(w));
		duration_format(a->approval_timeout, t, sizeof(t));
		ld_err(L, wait->line, "approval_wait %s in %s is longer than approval_timeout %s; "
		       "expected approval_wait <= approval_timeout", w, L->label, t);
	}
}

void conn_names(const struct policy *p, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < p->n_connections && off < n; i++) {
		int w;
		if (!p->connections[i].name)
			continue;
		w = snprintf(buf + off, n - off, "%s%s", off ? " " : "", p->connections[i].name);
		if (w < 0)
			break;
		off += (size_t)w;
	}
}

void conf_check_access(struct loader *L)
{
	const struct policy *p = L->p;
	char names[512];

	conn_names(p, names, sizeof(names));
	for (size_t i = 0; i < p->n_access; i++) {
		const struct pol_access *a = &p->access[i];
		const struct ini_section *s = ld_find_section(L, "access", a->name);

		if (!s || !a->connection || policy_connection(p, a->connection))
			continue;
		ld_begin(L, s, NULL);
		ld_err(L, ld_key_line(s, "connection"), "connection \"%s\" of %s is not defined; expected "
		       "the NAME of a [connection NAME] section%s%s", a->connection, L->label,
		       names[0] ? ", one of: " : " (there are none)", names);
	}
}

void conf_free_connection(struct pol_connection *c)
{
	free(c->name);
	free(c->host);
	free(c->dbname);
	free(c->user);
	free(c->password_file);
	free(c->sslrootcert);
}

void conf_free_access(struct pol_access *a)
{
	free(a->name);
	free(a->connection);
	principal_list_release(&a->allow);
	str_list_release(&a->schemas);
}
