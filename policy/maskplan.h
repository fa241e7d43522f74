/* Mask plans: which result columns of a statement may carry a value of a
 * masked column, read off the statement's parse tree (issue 5, section 2).
 *
 * The proxy knows a result column's origin only when it is a plain table
 * column: RowDescription then carries the table's OID and the column's
 * number, and the agent compares them with the masked columns it resolved
 * in the catalog. Everything else (expressions, set operations, functions,
 * views, whole-row references, columns of subqueries the server does not
 * trace) arrives with table OID 0, and this plan says whether such a column
 * may carry a masked value, and under which rule. It is conservative: when
 * in doubt a column is tainted (it is then masked if the method can
 * represent it, else the statement is refused: mask-else-refuse). It never
 * reads a constant's value and never touches a database.
 *
 * Matching is by name, the way PostgreSQL resolves names: identifiers are
 * compared as the parser folds them (unquoted lower-cased, quoted kept), a
 * rule ops.customers.ssn is in scope for a statement that names relation
 * customers unqualified (search_path may find it) or as ops.customers, and a
 * column reference is tainted by a rule in scope when its last name equals
 * the rule's column, whatever relation qualifies it (over-masking a
 * same-named column of another table is the price of not knowing the
 * catalog here). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "policy/policy.h"

/* What the agent learnt from the catalog, per connection: names the plan
 * cannot know from the statement alone. All optional (NULL/0). */
struct mask_catalog {
	/* Views and materialized views that depend on a masked column
	 * ("schema.name", folded), each with the index of the rule (in
	 * pol_mask.rules) of one masked column it depends on. Every column of
	 * such a view counts as tainted by that rule. */
	const char *const *views;
	const size_t *view_rules;
	size_t n_views;
	/* Functions defined outside pg_catalog and information_schema (bare
	 * names, folded): their bodies are not visible, so a call of one may
	 * return anything, masked values included. */
	const char *const *user_functions;
	size_t n_user_functions;
};

/* Why a column is tainted: a rule index, or one of these. */
#define MP_RULE_ANY (-1)    /* an unknown source (a user function, an unknown cursor): any rule */

enum mp_verdict {
	MP_CLEAN,      /* nothing masked can reach the output: pass every column */
	MP_MASK,       /* apply the plan (below) to the result */
	MP_REFUSE,     /* refuse the statement before it runs; why says which column */
};

struct mp_column {
	bool tainted;
	int rule;            /* index into pol_mask.rules, or MP_RULE_ANY; when several
				rules taint one column, the first (the proxy then
				uses redact unless all agree: see mp_method) */
	bool several;        /* more than one rule taints it */
};

/* The plan for one statement (one element of a multi-statement text). */
struct mask_plan {
	enum mp_verdict verdict;
	char *why;           /* MP_REFUSE: e.g. "masked column ops.customers.ssn in WHERE (strict)" */
	/* MP_MASK: the result's columns by position, when positions are known
	 * (no * in the output list at any level that feeds it); n_columns is
	 * then the number of result columns. Otherwise positional = false and
	 * every column arriving with table OID 0 is tainted as `all` says. */
	bool positional;
	struct mp_column *columns;
	size_t n_columns;
	struct mp_column all; /* !positional: the taint of any OID-0 column */
	/* DECLARE name CURSOR FOR ...: the plan is the query's, for FETCH. */
	char *cursor;
	/* FETCH/MOVE name: the plan is the cursor's (the agent looks it up;
	 * unknown cursor: every OID-0 column tainted by MP_RULE_ANY). */
	char *fetch_cursor;
	/* PREPARE name AS query: the plan is the query's, kept by the agent
	 * under name; EXECUTE name: the agent uses the plan kept for name
	 * (unknown name: every OID-0 column tainted by MP_RULE_ANY). */
	char *prepare;
	char *execute;
};

struct mask_plans {
	struct mask_plan *v;  /* one per statement of the text, in order */
	size_t n;
	char *error;          /* the text does not parse: no plan (the guardrail
				 refuses such text anyway) */
};

/* Plan text (NUL-terminated) for connection mask m (strict, rules) and
 * catalog names cat (NULL = none known). Returns 0 with *out filled (free
 * with mask_plans_free), or -ENOMEM. Pure and thread-safe.
 *
 * Verdicts, per statement:
 *  - MP_REFUSE: COPY ... TO (a table with a masked column, without a column
 *    list leaving them out, or a query that would be tainted); with
 *    m->strict, a masked column (or a tainted name) referenced in WHERE,
 *    JOIN ... ON/USING, GROUP BY, HAVING, ORDER BY, DISTINCT ON, window
 *    PARTITION/ORDER, or a set operation's comparison (UNION/INTERSECT/EXCEPT
 *    without ALL compares values); a statement whose effect cannot be read
 *    (DO, CALL, EXECUTE of an unknown name is the agent's: see below).
 *  - MP_MASK: some output column may carry a masked value: through a plain
 *    or qualified column reference, any expression over one (functions,
 *    casts, operators, aggregates, CASE, subqueries, arrays, rows), a
 *    whole-row reference (t, t.*, row_to_json(t), to_jsonb(t), json_agg(t),
 *    a function given t.*) of a relation in scope, a column of a tainted
 *    view, a call of a user function, or a name a subquery or CTE derived
 *    from any of these (taint flows through FROM subqueries, CTEs, set
 *    operations by position, INSERT/UPDATE/DELETE ... RETURNING).
 *    DO and CALL are MP_REFUSE (what they read and RAISE cannot be seen),
 *    and so is any statement the classifier calls opaque that can return
 *    or print data.
 *  - MP_CLEAN: none of that.
 * Statements that return no rows (DDL, SET, ...) are MP_CLEAN. */
int mask_plan(const char *text, const struct pol_mask *m, const struct mask_catalog *cat,
	      struct mask_plans *out);
void mask_plans_free(struct mask_plans *p);

/* The method for a tainted column: its rule's, or redact when several
 * rules with different methods (or MP_RULE_ANY) taint it. */
enum mask_method mp_method(const struct pol_mask *m, const struct mp_column *c);
