#include "config.h"
#include "policy/classes.h"

#include <string.h>

static const struct {
	const char *name;
	const char *description;
} classes[CLASS__COUNT] = {
	[CLASS_READ] = { "read", "reads only: SELECT, SHOW, EXPLAIN without ANALYZE" },
	[CLASS_WRITE] = { "write", "changes rows: INSERT, UPDATE, DELETE, MERGE" },
	[CLASS_DDL] = { "ddl", "changes the schema: CREATE, ALTER, COMMENT, and DROP/TRUNCATE too" },
	[CLASS_DROP] = { "drop", "drops an object: DROP TABLE, DROP SCHEMA, ..." },
	[CLASS_TRUNCATE] = { "truncate", "empties a table: TRUNCATE" },
	[CLASS_DELETE_WITHOUT_WHERE] = { "delete-without-where", "DELETE with no WHERE clause (every row)" },
	[CLASS_UPDATE_WITHOUT_WHERE] = { "update-without-where", "UPDATE with no WHERE clause (every row)" },
	[CLASS_COPY_OUT] = { "copy-out", "COPY ... TO STDOUT (bulk export to the client)" },
	[CLASS_COPY_IN] = { "copy-in", "COPY ... FROM STDIN (bulk import from the client)" },
	[CLASS_COPY_PROGRAM] = { "copy-program",
				 "COPY to or from a server-side PROGRAM or file" },
	[CLASS_ROLE_CHANGE] = { "role-change",
				"changes identity or privileges: SET ROLE, SET SESSION AUTHORIZATION, "
				"CREATE/ALTER/DROP ROLE, GRANT, REVOKE" },
	[CLASS_CONFIG_CHANGE] = { "config-change",
				  "changes settings: SET, RESET, ALTER SYSTEM, ALTER ... SET" },
	[CLASS_OPAQUE] = { "opaque",
			   "cannot be judged from its text: DO blocks, CALL, EXECUTE of a prepared statement" },
	[CLASS_ADMIN] = { "admin",
			  "server maintenance: VACUUM, ANALYZE, CLUSTER, REINDEX, CHECKPOINT, LOAD" },
	[CLASS_FUNCTIONS] = { "functions",
			      "calls a function on the [guardrail] functions list (by default: backend "
			      "signalling, server file and large-object access, dblink, set_config, ...)" },
};

const char *stmt_class_name(enum stmt_class c)
{
	return (unsigned)c < CLASS__COUNT ? classes[c].name : NULL;
}

const char *stmt_class_description(enum stmt_class c)
{
	return (unsigned)c < CLASS__COUNT ? classes[c].description : NULL;
}

int stmt_class_from_name(const char *name)
{
	for (int i = 0; name && i < CLASS__COUNT; i++)
		if (strcmp(classes[i].name, name) == 0)
			return i;
	return -1;
}

const char *stmt_class_names(void)
{
	return "read write ddl drop truncate delete-without-where update-without-where "
	       "copy-out copy-in copy-program role-change config-change opaque admin functions";
}

static const char *const mask_methods[] = {
	[MASK_REDACT] = "redact", [MASK_LAST4] = "last4", [MASK_EMAIL] = "email",
	[MASK_HASH] = "hash", [MASK_NULL] = "null",
};

static int index_of(const char *const *names, size_t n, const char *name)
{
	for (size_t i = 0; name && i < n; i++)
		if (strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *mask_method_name(enum mask_method m)
{
	return (unsigned)m < ARRAY_SIZE(mask_methods) ? mask_methods[m] : NULL;
}

int mask_method_from_name(const char *name)
{
	return index_of(mask_methods, ARRAY_SIZE(mask_methods), name);
}

const char *mask_method_names(void) { return "redact last4 email hash null"; }

static const struct {
	enum detector bit;
	const char *name;
} detectors[] = {
	{ DETECT_CREDIT_CARD, "credit-card" },
	{ DETECT_SSN, "ssn" },
	{ DETECT_EMAIL, "email" },
	{ DETECT_IBAN, "iban" },
};

const char *detector_name(enum detector d)
{
	for (size_t i = 0; i < ARRAY_SIZE(detectors); i++)
		if (detectors[i].bit == d)
			return detectors[i].name;
	return NULL;
}

int detector_from_name(const char *name)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(detectors); i++)
		if (strcmp(detectors[i].name, name) == 0)
			return (int)detectors[i].bit;
	return -1;
}

const char *detector_names(void) { return "credit-card ssn email iban"; }

static const char *const sslmodes[] = {
	[SSLMODE_DISABLE] = "disable", [SSLMODE_ALLOW] = "allow", [SSLMODE_PREFER] = "prefer",
	[SSLMODE_REQUIRE] = "require", [SSLMODE_VERIFY_CA] = "verify-ca",
	[SSLMODE_VERIFY_FULL] = "verify-full",
};

const char *sslmode_name(enum sslmode m)
{
	return (unsigned)m < ARRAY_SIZE(sslmodes) ? sslmodes[m] : NULL;
}

int sslmode_from_name(const char *name)
{
	return index_of(sslmodes, ARRAY_SIZE(sslmodes), name);
}

const char *sslmode_names(void) { return "disable allow prefer require verify-ca verify-full"; }

static const char *const approvals[] = {
	[APPROVAL_NONE] = "none", [APPROVAL_GRANT] = "grant", [APPROVAL_WRITES] = "writes",
	[APPROVAL_ALL] = "all",
};

const char *approval_mode_name(enum approval_mode m)
{
	return (unsigned)m < ARRAY_SIZE(approvals) ? approvals[m] : NULL;
}

int approval_mode_from_name(const char *name)
{
	return index_of(approvals, ARRAY_SIZE(approvals), name);
}

const char *approval_mode_names(void) { return "none grant writes all"; }

const char *conn_type_name(enum conn_type t)
{
	return t == CONN_POSTGRES ? "postgres" : NULL;
}

static const char *const jws_algs[] = {
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
};

bool jws_alg_allowed(const char *name)
{
	return index_of(jws_algs, ARRAY_SIZE(jws_algs), name) >= 0;
}

const char *jws_alg_names(void) { return "RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384"; }
