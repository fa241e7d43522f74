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
 * catalog here).
 *
 * Conservative by name, statement-wide (over-masking, never under):
 *  - An output name a FROM subquery, CTE, VALUES or function in FROM derives
 *    from a tainted value taints every reference of that name in the
 *    statement; alias column lists rename by position (after a *, every
 *    renamed column carries the whole row's taint). A CTE named like a
 *    rule's table counts as both.
 *  - A tainted view, a function in FROM with tainted arguments (or a user
 *    function), pg_stats and the other statistics views (they show sampled
 *    values of every column): their columns' names are not known here, so
 *    every unqualified reference in the statement, and every one qualified
 *    by their name, is tainted by them.
 *  - A sublink's value is tainted by anything its query references (WHERE
 *    included): EXISTS (... WHERE ssn = 'x') is a masked boolean. An
 *    EXISTS's own output list counts for nothing.
 *  - A view's columns arrive with the view's OID, not 0: the agent must
 *    treat the OIDs of the catalog's tainted views as tainting every
 *    column; the plan taints them too.
 * Names created earlier in the same text (CREATE VIEW / MATERIALIZED VIEW
 * over a tainted query, CREATE FUNCTION, a tainted view renamed or moved to
 * another schema, a function renamed) count as the catalog's for the
 * statements after them: the agent's catalog learns them only later.
 *
 * Passes: the walk is repeated until it finds nothing new (a recursive CTE,
 * a name used before the clause that taints it), at most MP_MAX_PASSES
 * (maskplan_int.h) times; a statement still growing then is planned with
 * every name tainted by MP_RULE_ANY. A text over SQL_CLASSIFY_MAX bytes or
 * nested deeper than the walk goes gets no plan (error set). */
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
	bool mixed;          /* the rules tainting it do not all have rule's method,
				or one of them is MP_RULE_ANY: mp_method says redact */
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
 *    list leaving them out, a tainted view, or a query that would be
 *    tainted: its * of a plain table counts, COPY has no origin); with
 *    m->strict, any tainted value (a masked column, a tainted name or view
 *    column, a user function's result) referenced at any depth in WHERE,
 *    JOIN ... ON/USING, NATURAL JOIN of a relation with one, GROUP BY,
 *    HAVING, ORDER BY (output positions and aliases resolved), DISTINCT,
 *    DISTINCT ON, window PARTITION/ORDER/frame, LIMIT/OFFSET, TABLESAMPLE,
 *    ON CONFLICT ... WHERE, MERGE ... ON/WHEN, the arguments of a function
 *    in FROM (its row count), or a set operation's comparison (UNION
 *    without ALL; INTERSECT and EXCEPT compare even with ALL), EXPLAIN's
 *    statement included (estimates come from the values' statistics); a
 *    statement whose effect cannot be read (DO, CALL, EXECUTE of an unknown
 *    name is the agent's: see below).
 *    Also refused, because the value would leave unmasked another way:
 *    a tainted value written into a table (INSERT, UPDATE, MERGE, ON
 *    CONFLICT DO UPDATE, CREATE TABLE AS / SELECT INTO with data, ALTER
 *    ... TYPE ... USING, a generated column), unless into the very column
 *    of the one rule that taints it (UPDATE t SET ssn = upper(ssn)): it
 *    would be read back later as a plain column; a tainted value passed to
 *    set_config, pg_notify or a built-in that writes (nextval, lo_*, ...);
 *    a built-in that runs SQL given as text (query_to_xml and its family,
 *    ts_stat); CREATE TABLE AS EXECUTE; renaming a masked column, its
 *    table or schema, or moving the table to another schema (the rules
 *    name them); a trigger or rule on a table with a masked column (its
 *    function or actions see every value). Writes are not refused where
 *    nothing runs (EXPLAIN without ANALYZE, a view's query).
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
 *    MP_MASK also when only columns a top-level * brought from plain
 *    tables may carry masked values (SELECT * FROM customers, RETURNING *):
 *    they arrive with their origin, so `all` is clean and the agent masks
 *    them by the catalog.
 *    EXPLAIN prints a plan, not rows, but the planner folds immutable calls
 *    into constants it prints, and a user function may return a masked
 *    value: EXPLAIN of a statement calling one (or of EXECUTE) is MP_MASK
 *    with one column tainted by MP_RULE_ANY, any other EXPLAIN MP_CLEAN.
 *  - MP_CLEAN: none of that.
 * Statements that return no rows (DDL, SET, ...) are MP_CLEAN. FETCH is
 * MP_MASK (every OID-0 column by MP_RULE_ANY until the agent finds the
 * cursor's plan), MOVE MP_CLEAN (no rows); both set fetch_cursor. */
int mask_plan(const char *text, const struct pol_mask *m, const struct mask_catalog *cat,
	      struct mask_plans *out);
void mask_plans_free(struct mask_plans *p);

/* The method for a tainted column: its rule's, or redact when several
 * rules with different methods (or MP_RULE_ANY) taint it. */
enum mask_method mp_method(const struct pol_mask *m, const struct mp_column *c);
