/* The validated configuration: every section of sluice.conf(5) as plain
 * data. policy_load() parses /etc/sluice/sluice.conf plus every *.conf in conf.d/;
 * nothing here does I/O beyond reading those files, and nothing logs.
 * Errors come back as a list of "FILE:LINE: message" strings. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

/* Where a section or key was written, for messages ("FILE:LINE").
 * file NULL and line 0: not written (a default). */
struct pol_origin {
	const char *file; /* owned by struct policy (files[]) */
	unsigned line;
};

enum principal_kind {
	PRINCIPAL_USER,       /* bare name: a local account */
	PRINCIPAL_IDP_GROUP,  /* @name: an IdP group carried by a live session */
	PRINCIPAL_UNIX_GROUP, /* %name: a local Unix group */
};

struct principal {
	enum principal_kind kind;
	char *name; /* without the @ or % */
};

struct principal_list {
	struct principal *v;
	size_t n;
};

struct str_list {
	char **v;
	size_t n;
};

struct pol_agent {
	struct pol_origin origin;
	char *runtime_dir;                  /* default /run/sluice */
	char *database;                     /* default /var/lib/sluice/sluice.db */
	char *user;                         /* default "sluice": the account sluiced runs as */
	struct principal_list admins;       /* default: root */
	struct principal_list approvers;    /* default: empty */
	uint32_t max_grants_per_user;       /* default 16 */
	uint32_t max_connections_per_grant; /* default 64 */
	uint32_t max_message_size;          /* bytes, default 16 MiB; cap on one buffered protocol message */
	uint32_t max_prepared_statements;   /* per connection, default 1000 */
	uint32_t audit_queue;               /* records, default 65536 */
	uint64_t connect_timeout;           /* seconds, default 10: upstream connect + auth */
	uint64_t startup_timeout;           /* seconds, default 30: client startup packet */
	char *approval_webhook;             /* optional: https:// URL (http:// only for localhost) POSTed a JSON notice per approval request */
	uint32_t record_rows;               /* default 20: rows of each result kept for replay (0: none) */
	uint32_t record_bytes;              /* default 16 KiB: cap on what is kept of one result */
};

enum sslmode {
	SSLMODE_DISABLE,
	SSLMODE_ALLOW,
	SSLMODE_PREFER,
	SSLMODE_REQUIRE,
	SSLMODE_VERIFY_CA,
	SSLMODE_VERIFY_FULL,
};
/* The libpq spelling ("verify-full"); NULL when out of range. */
const char *sslmode_name(enum sslmode m);

struct pol_oidc {
	struct pol_origin origin;
	char *name;                 /* NULL for the bare [oidc] section */
	char *issuer;               /* required, https:// (http:// only for localhost) */
	char *audience;             /* required */
	char *ca_file;              /* default /etc/ssl/certs/ca-certificates.crt */
	struct str_list algorithms; /* default RS256 ES256; from RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 */
	uint64_t leeway;            /* seconds, default 60, at most 300 */
	char *groups_claim;         /* default "groups" */
	uint64_t max_session;       /* seconds, default 8h */
};

struct pol_identity {
	struct pol_origin origin;
	char *name;     /* local account name (section name) */
	char *subject;  /* required: the OIDC sub, exact match */
	char *issuer;   /* name of an [oidc NAME] section; NULL = the default [oidc] */
	bool has_uid;
	uint32_t uid;   /* only when NSS should provide the account */
	char *home;     /* default /nonexistent */
	struct pol_origin uid_origin; /* line 0 when not set */
};

enum conn_type {
	CONN_POSTGRES,
};
const char *conn_type_name(enum conn_type t);

struct pol_connection {
	struct pol_origin origin;
	char *name;
	enum conn_type type;
	char *host;          /* required: hostname, IP, or an absolute directory holding .s.PGSQL.<port> */
	uint16_t port;       /* default 5432 */
	char *dbname;        /* required */
	char *user;          /* required */
	char *password_file; /* optional (trust/peer upstream); absolute path */
	enum sslmode sslmode;/* default verify-full for TCP hosts, disable for a Unix socket directory */
	char *sslrootcert;   /* default /etc/ssl/certs/ca-certificates.crt */
};

enum approval_mode {
	APPROVAL_NONE,
	APPROVAL_GRANT,
	APPROVAL_WRITES,
	APPROVAL_ALL,
};
const char *approval_mode_name(enum approval_mode m);

enum access_mode {
	ACCESS_WRITE, /* default: what the guardrail allows */
	ACCESS_READ,  /* upstream default_transaction_read_only on; every write class blocked */
};
const char *access_mode_name(enum access_mode m);

struct pol_access {
	struct pol_origin origin;
	char *name;
	char *connection;              /* required: a [connection] name */
	struct principal_list allow;   /* required, non-empty */
	struct str_list schemas;       /* optional; folded like PostgreSQL identifiers */
	uint64_t max_ttl;              /* seconds, default 1h */
	uint64_t default_ttl;          /* seconds, default min(10m, max_ttl) */
	enum approval_mode approval;   /* default none */
	enum access_mode mode;         /* default write */
	uint64_t approval_timeout;     /* seconds, default 15m: a pending approval (grant or statement) expires */
	uint64_t approval_window;      /* seconds, default 10m: an approved statement may run once within it */
	uint64_t approval_wait;        /* seconds, default 0: hold a statement this long for a decision instead of refusing at once */
	struct pol_origin schemas_origin, approval_origin, mode_origin; /* line 0 when not set */
};

/* Statement classes for [guardrail] block/approve (sluice.conf(5)). */
enum stmt_class {
	CLASS_READ,
	CLASS_WRITE,
	CLASS_DDL,
	CLASS_DROP,
	CLASS_TRUNCATE,
	CLASS_DELETE_WITHOUT_WHERE,
	CLASS_UPDATE_WITHOUT_WHERE,
	CLASS_COPY_OUT,
	CLASS_COPY_IN,
	CLASS_COPY_PROGRAM,
	CLASS_ROLE_CHANGE,
	CLASS_CONFIG_CHANGE,
	CLASS_OPAQUE,
	CLASS_ADMIN,
	CLASS_FUNCTIONS, /* calls a function on the guardrail's functions list (decide.c sets it) */
	CLASS__COUNT,
};
const char *stmt_class_name(enum stmt_class c);
/* One line on what the class covers (sluice.conf(5), policy explain). */
const char *stmt_class_description(enum stmt_class c);
/* -1 when name is not a class. */
int stmt_class_from_name(const char *name);

struct pol_guardrail {
	struct pol_origin origin;
	char *connection;  /* section name: a [connection] name */
	uint32_t block;    /* bit (1u << CLASS_x) */
	uint32_t approve;
	/* Functions for the `functions` class: names as classify.h reports
	 * them ("name" or "schema.name", folded); the word "default" in the
	 * config expands to sql_dangerous_functions_default(). Default (key
	 * absent): the default list. */
	struct str_list functions;
	bool unparsed_allow;  /* unparsed = allow; default block */
	bool block_set;       /* block written; when not: block = functions copy-program */
	struct pol_origin block_origin, approve_origin, functions_origin, unparsed_origin;
};

enum mask_method {
	MASK_REDACT,
	MASK_LAST4,
	MASK_EMAIL,
	MASK_HASH,
	MASK_NULL,
};
const char *mask_method_name(enum mask_method m);

enum detector {
	DETECT_CREDIT_CARD = 1u << 0,
	DETECT_SSN = 1u << 1,
	DETECT_EMAIL = 1u << 2,
	DETECT_IBAN = 1u << 3,
};
/* "credit-card"; NULL for anything but a single known bit. */
const char *detector_name(enum detector d);

struct pol_mask_rule {
	struct pol_origin origin;
	char *schema, *table, *column; /* folded: unquoted lower-cased, quoted kept */
	enum mask_method method;
};

struct pol_mask {
	struct pol_origin origin;
	char *connection;
	struct pol_mask_rule *rules;
	size_t n_rules;
	uint32_t detect; /* enum detector bits */
	bool strict;     /* strict = yes: refuse masked columns where their value can be inferred */
	char *hash_key_file; /* hash_key_file = PATH: the key of the hash method (required by it) */
	struct mask_key *key; /* loaded from hash_key_file by sluiced (agent_load_policy); NULL otherwise */
};

struct pol_nss {
	struct pol_origin origin;
	char *group_prefix;  /* default "idp-" */
	uint32_t gid_min, gid_max; /* gid_range; default 880000-889999 */
};

struct policy {
	char **files; /* every file read, in order; origins point into these */
	size_t n_files;
	struct pol_agent agent;
	struct pol_oidc *oidc;            size_t n_oidc;
	struct pol_identity *identities;  size_t n_identities;
	struct pol_connection *connections; size_t n_connections;
	struct pol_access *access;        size_t n_access;
	struct pol_guardrail *guardrails; size_t n_guardrails;
	struct pol_mask *masks;           size_t n_masks;
	bool has_nss;
	struct pol_nss nss;
};

/* Error list: each entry "FILE:LINE: what is wrong; what was expected". */
struct pol_errors {
	char **v;
	size_t n;
};
void pol_errors_clear(struct pol_errors *e);

/* Read and validate path, then every *.conf in the conf.d/ directory next to
 * it (sorted by name; a missing conf.d is fine). Every problem found is
 * appended to errs; returns 0 and *out, or -EINVAL (errors in errs) or
 * -errno when path cannot be read (also described in errs). */
int policy_load(const char *path, struct policy **out, struct pol_errors *errs) WUR;
/* Same, from a string (tests, fuzzing); name is used in messages. No conf.d. */
int policy_load_string(const char *name, const char *text, struct policy **out,
		       struct pol_errors *errs) WUR;
struct policy *policy_free(struct policy *p);


/* Look-ups. */
const struct pol_connection *policy_connection(const struct policy *p, const char *name);

/* Principal matching: the caller resolves the facts, policy decides.
 * groups: the caller's local Unix group names; idp_groups: groups from its
 * live session (none before the identity issue). */
struct caller_facts {
	const char *user;
	uint32_t uid;
	const char *const *unix_groups; size_t n_unix_groups;
	const char *const *idp_groups;  size_t n_idp_groups;
};
bool principal_list_matches(const struct principal_list *l, const struct caller_facts *c);

/* The [access] sections that let this caller use connection, best first
 * (longest max_ttl); NULL when none. */
const struct pol_access *policy_access_for(const struct policy *p, const char *connection,
					   const struct caller_facts *c);
