/* [agent] and [nss]: the daemon's own settings and limits, and how IdP
 * groups are published through NSS. */
#include "config.h"
#include "policy/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/principal.h"
#include "policy/value.h"

/* Grant sockets live at RUNTIME_DIR/grants/<id>/.s.PGSQL.5432 and sun_path
 * holds 108 bytes: keep the prefix short enough for any grant id. */
#define RUNTIME_DIR_MAX 48

enum {
	A_RUNTIME_DIR, A_DATABASE, A_USER, A_ADMINS, A_APPROVERS, A_MAX_GRANTS_PER_USER,
	A_MAX_CONNECTIONS_PER_GRANT, A_MAX_MESSAGE_SIZE, A_MAX_PREPARED_STATEMENTS,
	A_AUDIT_QUEUE, A_CONNECT_TIMEOUT, A_STARTUP_TIMEOUT, A_APPROVAL_WEBHOOK, A_RECORD_ROWS,
	A_RECORD_BYTES,
};
static const struct key_def agent_keys[] = {
	[A_RUNTIME_DIR] = { "runtime_dir", false, "an absolute directory" },
	[A_DATABASE] = { "database", false, "an absolute path" },
	[A_USER] = { "user", false, "a local account name" },
	[A_ADMINS] = { "admins", false, "principals" },
	[A_APPROVERS] = { "approvers", false, "principals" },
	[A_MAX_GRANTS_PER_USER] = { "max_grants_per_user", false, "a number" },
	[A_MAX_CONNECTIONS_PER_GRANT] = { "max_connections_per_grant", false, "a number" },
	[A_MAX_MESSAGE_SIZE] = { "max_message_size", false, "a size" },
	[A_MAX_PREPARED_STATEMENTS] = { "max_prepared_statements", false, "a number" },
	[A_AUDIT_QUEUE] = { "audit_queue", false, "a number" },
	[A_CONNECT_TIMEOUT] = { "connect_timeout", false, "a duration" },
	[A_STARTUP_TIMEOUT] = { "startup_timeout", false, "a duration" },
	[A_APPROVAL_WEBHOOK] = { "approval_webhook", false, "an https:// URL" },
	[A_RECORD_ROWS] = { "record_rows", false, "a number" },
	[A_RECORD_BYTES] = { "record_bytes", false, "a size" },
};

#define WEBHOOK_MAX 2048

/* The URL may carry a secret (a token in its path or query), so messages
 * never quote it. The scheme and host rules are the issuer's (https://,
 * http:// only for a loopback receiver); unlike an issuer it may have a
 * query. */
static void approval_webhook(struct loader *L, const struct ini_entry *e, struct pol_agent *a)
{
	const char *v = e->value, *why = NULL, *host;
	char base[WEBHOOK_MAX + 1];
	size_t blen = strcspn(v, "?"), hlen;

	if (!val_word(v, WEBHOOK_MAX)) {
		why = v[0] ? "it has a blank or a control character, or is longer than 2048 bytes"
			   : "it is empty";
	} else if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0) {
		why = "it is not an http(s):// URL";
	} else if (strchr(v, '#')) {
		why = "a webhook URL has no fragment (#)";
	} else {
		host = strstr(v, "://") + 3;
		hlen = strcspn(host, "/?");
		if (memchr(host, '@', hlen))
			why = "a webhook URL has no user info (\"@\"); put a secret in its path or query";
	}
	if (!why) {
		memcpy(base, v, blen);
		base[blen] = '\0';
		if (val_issuer(base, &why) == 0)
			why = NULL;
	}
	if (why) {
		ld_err(L, e->line, "invalid approval_webhook in %s: %s; expected an https:// URL "
		       "(http:// only for localhost, 127.0.0.1 and [::1])", L->label, why);
		return;
	}
	free(a->approval_webhook);
	a->approval_webhook = strdup(v);
	if (!a->approval_webhook)
		L->oom = true;
}

void conf_agent_defaults(struct loader *L, struct pol_agent *a)
{
	ld_default(L, &a->runtime_dir, "/run/sluice");
	ld_default(L, &a->database, "/var/lib/sluice/sluice.db");
	ld_default(L, &a->user, "sluice");
	if (!a->admins.v) {
		const char *why;
		a->admins.v = calloc(1, sizeof(*a->admins.v));
		if (!a->admins.v || principal_parse("root", &a->admins.v[0], &why) < 0) {
			free(a->admins.v);
			a->admins.v = NULL;
			L->oom = true;
		} else {
			a->admins.n = 1;
		}
	}
	a->max_grants_per_user = 16;
	a->max_connections_per_grant = 64;
	a->max_message_size = 16u << 20;
	a->max_prepared_statements = 1000;
	a->audit_queue = 65536;
	a->connect_timeout = 10;
	a->startup_timeout = 30;
	a->record_rows = 20;
	a->record_bytes = 16u << 10;
}

void conf_agent(struct loader *L, const struct ini_section *s, struct pol_agent *a)
{
	ld_begin(L, s, &a->origin);
	for (size_t i = 0; i < s->n; i++) {
		const struct ini_entry *e = &s->v[i];

		switch (ld_key(L, e, agent_keys, ARRAY_SIZE(agent_keys))) {
		case A_RUNTIME_DIR:
			if (val_abs_path(e->value) && strlen(e->value) > RUNTIME_DIR_MAX)
				ld_invalid(L, e, "an absolute directory of at most 48 bytes "
					   "(grant sockets below it must fit in a socket address)");
			else
				(void)ld_path(L, e, &a->runtime_dir);
			break;
		case A_DATABASE:
			(void)ld_path(L, e, &a->database);
			break;
		case A_USER:
			if (strcmp(e->value, "root") == 0)
				ld_invalid(L, e, "an unprivileged account (sluiced does not run as root)");
			else
				(void)ld_unix_name(L, e, &a->user);
			break;
		case A_ADMINS:
			(void)ld_principals(L, e, true, &a->admins);
			break;
		case A_APPROVERS:
			(void)ld_principals(L, e, true, &a->approvers);
			break;
		case A_MAX_GRANTS_PER_USER:
			(void)ld_u32(L, e, 1, 1024, &a->max_grants_per_user);
			break;
		case A_MAX_CONNECTIONS_PER_GRANT:
			(void)ld_u32(L, e, 1, 4096, &a->max_connections_per_grant);
			break;
		case A_MAX_MESSAGE_SIZE:
			(void)ld_size(L, e, 64u << 10, 1u << 30, &a->max_message_size);
			break;
		case A_MAX_PREPARED_STATEMENTS:
			(void)ld_u32(L, e, 1, 100000, &a->max_prepared_statements);
			break;
		case A_AUDIT_QUEUE:
			(void)ld_u32(L, e, 64, 1u << 20, &a->audit_queue);
			break;
		case A_CONNECT_TIMEOUT:
			(void)ld_duration(L, e, 1, 300, &a->connect_timeout);
			break;
		case A_STARTUP_TIMEOUT:
			(void)ld_duration(L, e, 1, 300, &a->startup_timeout);
			break;
		case A_APPROVAL_WEBHOOK:
			approval_webhook(L, e, a);
			break;
		case A_RECORD_ROWS:
			(void)ld_u32(L, e, 0, 100000, &a->record_rows);
			break;
		case A_RECORD_BYTES:
			(void)ld_size(L, e, 0, 1u << 20, &a->record_bytes);
			break;
		default:
			break;
		}
	}
}

enum { N_GROUP_PREFIX, N_GID_RANGE };
static const struct key_def nss_keys[] = {
	[N_GROUP_PREFIX] = { "group_prefix", false, "a group name prefix" },
	[N_GID_RANGE] = { "gid_range", false, "FIRST-LAST" },
};

#define GROUP_PREFIX_MAX 16
#define GID_NOGROUP 65534

void conf_nss_defaults(struct loader *L, struct pol_nss *n)
{
	ld_default(L, &n->group_prefix, "idp-");
	n->gid_min = 880000;
	n->gid_max = 889999;
}

static bool prefix_ok(const char *v)
{
	size_t len = strlen(v);

	if (len == 0 || len > GROUP_PREFIX_MAX || !(v[0] >= 'a' && v[0] <= 'z'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = v[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static void gid_range(struct loader *L, const struct ini_entry *e, struct pol_nss *n)
{
	static const char expect[] =
		"FIRST-LAST, two GIDs from 1000 to 4294967294 with FIRST <= LAST, e.g. 880000-889999";
	char first[16];
	const char *dash = strchr(e->value, '-');
	size_t fl = dash ? (size_t)(dash - e->value) : 0;
	uint64_t lo, hi;

	if (!dash || fl == 0 || fl >= sizeof(first)) {
		ld_invalid(L, e, expect);
		return;
	}
	memcpy(first, e->value, fl);
	first[fl] = '\0';
	if (parse_u64(first, 0, UINT32_MAX, &lo) < 0 || parse_u64(dash + 1, 0, UINT32_MAX, &hi) < 0) {
		ld_invalid(L, e, expect);
		return;
	}
	if (lo < 1000) {
		ld_err(L, e->line, "invalid gid_range \"%s\" in %s: GIDs below 1000 belong to the system; "
		       "expected %s", e->value, L->label, expect);
		return;
	}
	if (hi > UINT32_MAX - 1 || lo > hi) {
		ld_invalid(L, e, expect);
		return;
	}
	if (lo <= GID_NOGROUP && GID_NOGROUP <= hi) {
		ld_err(L, e->line, "invalid gid_range \"%s\" in %s: it contains 65534 (nogroup); "
		       "expected a range that leaves it out", e->value, L->label);
		return;
	}
	n->gid_min = (uint32_t)lo;
	n->gid_max = (uint32_t)hi;
}

void conf_nss(struct loader *L, const struct ini_section *s, struct pol_nss *n)
{
	ld_begin(L, s, &n->origin);
	for (size_t i = 0; i < s->n; i++) {
		const struct ini_entry *e = &s->v[i];

		switch (ld_key(L, e, nss_keys, ARRAY_SIZE(nss_keys))) {
		case N_GROUP_PREFIX:
			if (!prefix_ok(e->value)) {
				ld_invalid(L, e, "1 to 16 bytes of [a-z0-9._-] starting with a letter, e.g. idp-");
				break;
			}
			free(n->group_prefix);
			n->group_prefix = strdup(e->value);
			if (!n->group_prefix)
				L->oom = true;
			break;
		case N_GID_RANGE:
			gid_range(L, e, n);
			break;
		default:
			break;
		}
	}
}
