/* Decisions: a classified statement (policy/classify.h) against what one
 * grant was given — the connection's [guardrail], the [access] rule's mode
 * and approval, and the grant's schema scope. Pure: no I/O, no logging.
 * Used by the proxy for every statement and by `sluicectl policy explain`.
 *
 * Order, first match wins:
 *   1. the text did not parse            -> block (unparsed = block, default)
 *   2. changes standard_conforming_strings -> block (pinned on, built in)
 *   3. mode = read and a write class or leaving read-only -> block
 *   4. schema scope: a relation, function or schema outside it, or
 *      changing search_path -> block
 *   5. a class in the guardrail's block (functions: a listed function) -> block
 *   6. a class in approve, or the access's approval = writes|all -> approve
 *   7. allow
 * The class named is the most severe one that matched (sql_worst_class). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "policy/classify.h"
#include "policy/policy.h"

/* What a grant was given: built once per grant (decide_scope_init), read
 * for every statement. */
struct decide_scope {
	const struct policy *p;
	const struct pol_connection *conn;
	const struct pol_guardrail *guardrail; /* NULL: the built-in defaults */
	const struct pol_access *access;       /* required */
	/* Schema scope, folded like identifiers: the grant's --schema, else the
	 * access's schemas; n_schemas 0 = no scope. */
	const char *const *schemas;
	size_t n_schemas;
	bool schema_requested;                 /* from the request (--schema), not from [access] */
};

/* Fill s for a grant on conn under access with the requested schema
 * (NULL/"" = none). A requested schema must be one of access->schemas
 * when the access lists any: otherwise returns -EPERM and says why in
 * err. The scope points into policy and into `schema` (kept alive by the
 * caller). schema_buf: storage for the one requested schema pointer. */
int decide_scope_init(struct decide_scope *s, const struct policy *p,
		      const struct pol_connection *conn, const struct pol_access *access,
		      const char *schema, const char **schema_buf, char *err, size_t errlen) WUR;

/* The [guardrail] for a connection, NULL when it has none. */
const struct pol_guardrail *policy_guardrail_for(const struct policy *p, const char *connection);

enum verdict_kind {
	VERDICT_ALLOW,
	VERDICT_BLOCK,
	VERDICT_APPROVE,
};
const char *verdict_kind_name(enum verdict_kind k); /* allowed | blocked | approval */

struct verdict {
	enum verdict_kind kind;
	int klass;        /* the deciding class; -1 when not a class (unparsed, schema scope, pinned setting) */
	/* What decided, short: "drop", "unparsed: syntax error at or near \"FORM\"",
	 * "schema-scope: other.t is outside ops", "functions: pg_read_file",
	 * "standard_conforming_strings is pinned on". Empty for allow. */
	char what[256];
	/* Where: "rule at /etc/sluice/sluice.conf:14", "rule: built-in default
	 * (unparsed = block)", "rule: the grant's --schema ops". For allow:
	 * the rule that allowed, "rule at FILE:LINE" of the [access]. */
	char rule[320];
};

/* Decide one statement. extra: classes/flags to add (the agent passes the
 * prepared body's summary for EXECUTE; may be NULL). */
void decide_statement(const struct decide_scope *s, const struct sql_stmt *st,
		      const struct sql_stmt *extra, struct verdict *out);
/* A text that did not parse (c->error set). */
void decide_unparsed(const struct decide_scope *s, const struct sql_class *c, struct verdict *out);

/* The client-facing message: "sluice: blocked: WHAT (RULE)" for a block,
 * "sluice: approval required: WHAT (RULE)" for an approval (the agent
 * appends the approval id and command). Truncated to fit; returns buf. */
const char *verdict_message(const struct verdict *v, char *buf, size_t n);

/* Class sets used by mode = read and approval = writes (sluice.conf(5)). */
uint32_t decide_write_classes(void);
