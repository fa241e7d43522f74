/* Mask plans (maskplan.h): libpg_query parses, sqljson.c reads its tree,
 * maskplan_walk.c follows taint through queries. Here: what each kind of
 * statement returns (rows, a cursor's, a prepared statement's, EXPLAIN's
 * text, nothing), the paths out that are refused rather than masked (COPY
 * TO, DO, CALL, DDL that would unmask a column), the passes to a fixed
 * point, and the plans handed out. */
#include "config.h"
#include "policy/maskplan.h"

#include <errno.h>
#include <pg_query.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/classify.h"
#include "policy/maskplan_int.h"

static const struct taint none;

/* ---- what the statement names, before the walk --------------------------------- */

static void scope_add(struct mp_ctx *c, const char *schema, const char *rel)
{
	for (size_t i = 0; i < c->m->n_rules && !c->r; i++) {
		bool have = false;

		if (!mp_rule_on(&c->m->rules[i], schema, rel))
			continue;
		for (size_t j = 0; j < c->n_scope && !have; j++)
			have = c->scope[j] == i;
		if (have)
			continue;
		if (c->n_scope == c->cap_scope) {
			size_t *v = reallocarray(c->scope, c->m->n_rules, sizeof(*v));

			if (!v) {
				c->r = -ENOMEM;
				return;
			}
			c->scope = v;
			c->cap_scope = c->m->n_rules;
		}
		c->scope[c->n_scope++] = i;
	}
}

static void relname_add(struct mp_ctx *c, const char *name)
{
	mp_map_put(c, &c->relnames, name);
}

/* Every relation the statement names (anywhere: a rule's table named in a
 * subquery is in scope for the whole statement) and every name that can
 * qualify a column (aliases, CTEs, functions in FROM). */
static void prepass(struct mp_ctx *c, const struct sj_node *n, unsigned depth)
{
	if (!n || c->r)
		return;
	if (depth >= MP_MAX_DEPTH) {
		c->r = -E2BIG;
		return;
	}
	if (n->type == SJ_ARRAY) {
		for (const struct sj_node *m = sj_first(c->w.d, n); m; m = sj_next(c->w.d, m))
			prepass(c, m, depth + 1);
		return;
	}
	if (n->type != SJ_OBJECT)
		return;
	for (const struct sj_node *m = sj_first(c->w.d, n); m; m = sj_next(c->w.d, m)) {
		if (m->type == SJ_STRING) {
			if (strcmp(m->key, "relname") == 0) {
				scope_add(c, cw_get_str(&c->w, n, "schemaname"), m->s);
				relname_add(c, m->s);
			} else if (strcmp(m->key, "aliasname") == 0 || strcmp(m->key, "ctename") == 0) {
				relname_add(c, m->s);
			}
			continue;
		}
		if (m->type == SJ_OBJECT && strcmp(m->key, "RangeFunction") == 0) {
			/* Unaliased, a function in FROM is named after itself. */
			const struct sj_node *fns = cw_get(&c->w, m, "functions");

			for (const struct sj_node *f = fns && fns->type == SJ_ARRAY ? sj_first(c->w.d, fns) : NULL;
			     f; f = sj_next(c->w.d, f)) {
				const struct sj_node *it = cw_get(&c->w, cw_node_of(&c->w, f, "List"), "items");
				const struct sj_node *fc = cw_node_of(&c->w, it && it->type == SJ_ARRAY ? sj_first(c->w.d, it) : NULL, "FuncCall");
				const char *nm[4];
				int k = cw_names(&c->w, cw_get(&c->w, fc, "funcname"), nm, 4);

				if (k > 0)
					relname_add(c, nm[k - 1]);
			}
		}
		prepass(c, m, depth + 1);
	}
}

/* ---- statements ------------------------------------------------------------------ */

enum top_out {
	TOP_NONE,    /* no rows, or rows that cannot carry a masked value */
	TOP_ROWS,    /* rs */
	TOP_UNKNOWN, /* rows the agent knows (a cursor's, a prepared statement's) */
	TOP_TEXT,    /* one text column that may quote a user function's result */
};

struct top {
	enum top_out out;
	struct rowsig rs;
	const char *cursor, *fetch, *prepare, *execute;
	/* What the statement creates, for the statements after it. */
	const char *view_schema, *view;  /* a view over masked values */
	struct taint view_t;
	const char *fn;             /* a function */
};

static void statement(struct mp_ctx *c, const struct sj_node *n, struct top *t);

static bool explain_analyzes(const struct mp_ctx *c, const struct sj_node *options)
{
	bool analyze = false;

	/* As the classifier: any ANALYZE not plainly off. */
	for (const struct sj_node *m = options && options->type == SJ_ARRAY ? sj_first(c->w.d, options) : NULL;
	     m; m = sj_next(c->w.d, m)) {
		const struct sj_node *de = cw_node_of(&c->w, m, "DefElem"), *arg;
		const char *name = cw_get_str(&c->w, de, "defname"), *v;

		if (!name || strcasecmp(name, "analyze") != 0)
			continue;
		arg = cw_get(&c->w, de, "arg");
		v = arg ? cw_string_node(&c->w, arg) : NULL;
		if (!arg || !v || (strcasecmp(v, "false") != 0 && strcasecmp(v, "off") != 0))
			analyze = true;
	}
	return analyze;
}

/* EXPLAIN prints a plan, not rows; but the planner folds immutable calls
 * with constant arguments into constants, and a user function may be
 * declared immutable and return a masked value: then the text is tainted.
 * Without ANALYZE nothing runs (writes are not refused); strict still
 * applies, since estimates come from the statistics of the values. */
static void explain(struct mp_ctx *c, const struct sj_node *b, struct top *t)
{
	bool analyze = explain_analyzes(c, cw_get(&c->w, b, "options"));
	bool dry = c->dry, user_fn = c->user_fn;
	struct top in = { 0 };

	c->dry = dry || !analyze;
	c->user_fn = false;
	statement(c, cw_get(&c->w, b, "query"), &in);
	t->out = in.execute || c->user_fn ? TOP_TEXT : TOP_NONE;
	if (analyze) {
		t->view_schema = in.view_schema;
		t->view = in.view;
		t->view_t = in.view_t;
	}
	c->dry = dry;
	c->user_fn |= user_fn;
	mp_rowsig_free(&in.rs);
}

/* COPY ... TO sends rows as text the proxy does not rewrite: a table with a
 * masked column (unless the column list leaves it out), or a query that
 * could carry one, is refused. COPY FROM brings the client's own data. */
static void copy(struct mp_ctx *c, const struct sj_node *b)
{
	const struct sj_node *rv = cw_get(&c->w, b, "relation"), *q = cw_get(&c->w, b, "query");
	const struct sj_node *att = cw_get(&c->w, b, "attlist"), *in;
	const char *schema, *rel;
	struct taint t;

	if (cw_get_true(&c->w, b, "is_from"))
		return;
	if (q) {
		struct rowsig rs = { 0 };

		mp_query(c, q, &rs);
		t = mp_rowsig_whole(c, &rs);
		mp_rowsig_free(&rs);
		if (t.on)
			mp_refuse_taint(c, &t, "in COPY ... TO (COPY data is not masked)");
		return;
	}
	if ((in = cw_node_of(&c->w, rv, "RangeVar")))
		rv = in;
	schema = cw_get_str(&c->w, rv, "schemaname");
	rel = cw_get_str(&c->w, rv, "relname");
	if (!rel)
		return;
	for (size_t i = 0; i < c->n_scope && !mp_stop(c); i++) {
		const struct pol_mask_rule *r = &c->m->rules[c->scope[i]];
		bool listed = !att;

		if (!mp_rule_on(r, schema, rel))
			continue;
		for (const struct sj_node *m = att && att->type == SJ_ARRAY ? sj_first(c->w.d, att) : NULL;
		     m && !listed; m = sj_next(c->w.d, m))
			listed = cw_streq(cw_string_node(&c->w, m), r->column);
		if (listed) {
			t = mp_rule_taint(c->scope[i]);
			mp_refuse_taint(c, &t, "in COPY %s TO (COPY data is not masked)", rel);
		}
	}
	t = mp_view_taint(c, schema, rel);
	if (t.on)
		mp_refuse_taint(c, &t, "in COPY %s TO (COPY data is not masked)", rel);
}

/* CREATE TABLE AS / SELECT INTO copy the rows into a table masking does not
 * know; a materialized view is one the catalog does (it depends on the
 * columns), and statements later in this text see it as a tainted view. */
static void create_as(struct mp_ctx *c, const struct sj_node *q, const struct sj_node *into,
		      bool matview, struct top *t)
{
	const struct sj_node *rel = cw_get(&c->w, into, "rel");
	struct rowsig rs = { 0 };
	struct taint w;

	if (cw_node_of(&c->w, q, "ExecuteStmt")) {
		mp_refuse(c, "CREATE TABLE AS EXECUTE copies a prepared statement's rows, which "
			     "masking does not follow");
		return;
	}
	mp_query(c, q, &rs);
	w = mp_rowsig_whole(c, &rs);
	mp_rowsig_free(&rs);
	if (matview) {
		if (w.on) {
			t->view_schema = cw_get_str(&c->w, rel, "schemaname");
			t->view = cw_get_str(&c->w, rel, "relname");
			t->view_t = w;
		}
	} else if (!cw_get_true(&c->w, into, "skipData")) {
		mp_write(c, rel, NULL, &w);
	}
}

/* SELECT ... INTO: the INTO of the leftmost SELECT. */
static const struct sj_node *select_into(const struct mp_ctx *c, const struct sj_node *b)
{
	const char *op;

	while (b && (op = cw_get_str(&c->w, b, "op")) && strcmp(op, "SETOP_NONE") != 0)
		b = cw_get(&c->w, b, "larg");
	return cw_get(&c->w, b, "intoClause");
}

static void view(struct mp_ctx *c, const struct sj_node *b, struct top *t)
{
	const struct sj_node *rv = cw_get(&c->w, b, "view");
	struct rowsig rs = { 0 };
	bool dry = c->dry;
	struct taint w;

	c->dry = true; /* a view's query runs later, as the view */
	mp_query(c, cw_get(&c->w, b, "query"), &rs);
	c->dry = dry;
	w = mp_rowsig_whole(c, &rs);
	mp_rowsig_free(&rs);
	if (w.on) {
		t->view_schema = cw_get_str(&c->w, rv, "schemaname");
		t->view = cw_get_str(&c->w, rv, "relname");
		t->view_t = w;
	}
}

/* A tainted view renamed or moved: its new name, for the statements after
 * it in this text (the catalog learns it later). */
static void view_moved(struct mp_ctx *c, const struct sj_node *rv, const char *schema,
		       const char *name, struct top *t)
{
	struct taint v;

	rv = mp_rv_body(c, rv);
	v = mp_view_taint(c, cw_get_str(&c->w, rv, "schemaname"), cw_get_str(&c->w, rv, "relname"));
	if (!v.on || !name)
		return;
	t->view_schema = schema;
	t->view = name;
	t->view_t = v;
}

/* The rules on relation rv (a RangeVar, wrapped or not). */
static struct taint rules_on(const struct mp_ctx *c, const struct sj_node *rv, const char *column)
{
	const struct sj_node *in = cw_node_of(&c->w, rv, "RangeVar");
	const char *schema, *rel;
	struct taint t = none;

	if (in)
		rv = in;
	schema = cw_get_str(&c->w, rv, "schemaname");
	rel = cw_get_str(&c->w, rv, "relname");
	for (size_t i = 0; rel && i < c->n_scope; i++) {
		const struct pol_mask_rule *r = &c->m->rules[c->scope[i]];

		if (mp_rule_on(r, schema, rel) && (!column || cw_streq(r->column, column))) {
			struct taint x = mp_rule_taint(c->scope[i]);

			mp_add(c, &t, &x);
		}
	}
	return t;
}

/* Rules name tables and columns: renaming one, or moving its table to
 * another schema, would leave its values unmasked. */
static void ddl_rename(struct mp_ctx *c, const struct sj_node *b, struct top *top)
{
	static const char *const tables[] = {
		"OBJECT_TABLE", "OBJECT_FOREIGN_TABLE",
	};
	static const char *const fns[] = {
		"OBJECT_FUNCTION", "OBJECT_AGGREGATE", "OBJECT_ROUTINE",
	};
	const char *type = cw_get_str(&c->w, b, "renameType"), *sub = cw_get_str(&c->w, b, "subname");
	const struct sj_node *rv = cw_get(&c->w, b, "relation");
	struct taint t = none;

	if (!type)
		return;
	if (cw_in_list(type, tables, ARRAY_SIZE(tables)))
		t = rules_on(c, rv, NULL);
	else if (strcmp(type, "OBJECT_COLUMN") == 0 && sub)
		t = rules_on(c, rv, sub);
	else if (strcmp(type, "OBJECT_SCHEMA") == 0 && sub)
		for (size_t i = 0; i < c->m->n_rules; i++)
			if (cw_streq(c->m->rules[i].schema, sub)) {
				struct taint x = mp_rule_taint(i);

				mp_add(c, &t, &x);
			}
	if (t.on)
		mp_refuse_taint(c, &t, "would no longer be masked once renamed");
	else if (cw_in_list(type, fns, ARRAY_SIZE(fns)))
		top->fn = cw_get_str(&c->w, b, "newname"); /* it was, or may be, a user function */
	else if (strcmp(type, "OBJECT_COLUMN") != 0 && strcmp(type, "OBJECT_SCHEMA") != 0)
		view_moved(c, rv, cw_get_str(&c->w, mp_rv_body(c, rv), "schemaname"),
			   cw_get_str(&c->w, b, "newname"), top);
}

static void set_schema(struct mp_ctx *c, const struct sj_node *b, struct top *top)
{
	const char *type = cw_get_str(&c->w, b, "objectType"), *to = cw_get_str(&c->w, b, "newschema");
	const struct sj_node *rv = cw_get(&c->w, b, "relation");
	struct taint t;

	if (cw_streq(type, "OBJECT_VIEW") || cw_streq(type, "OBJECT_MATVIEW"))
		view_moved(c, rv, to, cw_get_str(&c->w, mp_rv_body(c, rv), "relname"), top);
	if (!cw_streq(type, "OBJECT_TABLE") && !cw_streq(type, "OBJECT_FOREIGN_TABLE"))
		return;
	t = rules_on(c, rv, NULL);
	if (t.on)
		mp_refuse_taint(c, &t, "would no longer be masked once its table moves to schema %s",
				to ? to : "?");
	else
		view_moved(c, rv, to, cw_get_str(&c->w, mp_rv_body(c, rv), "relname"), top);
}

/* ALTER TABLE ... ALTER col TYPE ... USING expr rewrites col from expr;
 * ADD col ... GENERATED ALWAYS AS (expr) stores expr in col: both write. */
static void alter_table(struct mp_ctx *c, const struct sj_node *b)
{
	const struct sj_node *rv = cw_get(&c->w, b, "relation"), *cmds = cw_get(&c->w, b, "cmds");

	if (cw_node_of(&c->w, rv, "RangeVar"))
		rv = cw_node_of(&c->w, rv, "RangeVar");
	for (const struct sj_node *m = cmds && cmds->type == SJ_ARRAY ? sj_first(c->w.d, cmds) : NULL;
	     m && !mp_stop(c); m = sj_next(c->w.d, m)) {
		const struct sj_node *cmd = cw_node_of(&c->w, m, "AlterTableCmd");
		const struct sj_node *def = cw_node_of(&c->w, cw_get(&c->w, cmd, "def"), "ColumnDef");
		const char *sub = cw_get_str(&c->w, cmd, "subtype"), *col;
		const struct sj_node *cons = cw_get(&c->w, def, "constraints");
		struct taint t;

		if (!def)
			continue;
		if (cw_streq(sub, "AT_AlterColumnType")) {
			t = mp_expr(c, cw_get(&c->w, def, "raw_default"));
			mp_write(c, rv, cw_get_str(&c->w, cmd, "name"), &t);
			continue;
		}
		if (!cw_streq(sub, "AT_AddColumn"))
			continue;
		col = cw_get_str(&c->w, def, "colname");
		for (const struct sj_node *k = cons && cons->type == SJ_ARRAY ? sj_first(c->w.d, cons) : NULL;
		     k && !mp_stop(c); k = sj_next(c->w.d, k)) {
			t = mp_expr(c, cw_get(&c->w, cw_node_of(&c->w, k, "Constraint"), "raw_expr"));
			mp_write(c, rv, col, &t);
		}
	}
}

/* A trigger's function or a rule's actions see every row of their table,
 * masked columns included, and can copy them anywhere. */
static void hook(struct mp_ctx *c, const struct sj_node *b, const char *what)
{
	struct taint t = rules_on(c, cw_get(&c->w, b, "relation"), NULL);

	if (t.on)
		mp_refuse_taint(c, &t, "would be seen by a %s, which masking cannot follow", what);
}

static void statement(struct mp_ctx *c, const struct sj_node *n, struct top *t)
{
	const char *type;
	const struct sj_node *b = cw_unwrap(&c->w, n, &type), *into;

	if (!n || mp_stop(c))
		return;
	if (!b) {
		c->r = -EINVAL;
		return;
	}
	if (strcmp(type, "SelectStmt") == 0) {
		if ((into = select_into(c, b))) {
			create_as(c, n, into, false, t);
		} else {
			mp_query(c, n, &t->rs);
			t->out = TOP_ROWS;
		}
	} else if (strcmp(type, "InsertStmt") == 0 || strcmp(type, "UpdateStmt") == 0 ||
		   strcmp(type, "DeleteStmt") == 0 || strcmp(type, "MergeStmt") == 0) {
		mp_query(c, n, &t->rs);
		if (cw_get(&c->w, b, "returningList"))
			t->out = TOP_ROWS;
	} else if (strcmp(type, "DeclareCursorStmt") == 0) {
		t->cursor = cw_get_str(&c->w, b, "portalname");
		mp_query(c, cw_get(&c->w, b, "query"), &t->rs);
		t->out = TOP_ROWS;
	} else if (strcmp(type, "FetchStmt") == 0) {
		t->fetch = cw_get_str(&c->w, b, "portalname");
		t->out = cw_get_true(&c->w, b, "ismove") ? TOP_NONE : TOP_UNKNOWN;
	} else if (strcmp(type, "PrepareStmt") == 0) {
		t->prepare = cw_get_str(&c->w, b, "name");
		statement(c, cw_get(&c->w, b, "query"), t);
	} else if (strcmp(type, "ExecuteStmt") == 0) {
		t->execute = cw_get_str(&c->w, b, "name");
		mp_expr(c, cw_get(&c->w, b, "params"));
		t->out = TOP_UNKNOWN;
	} else if (strcmp(type, "ExplainStmt") == 0) {
		explain(c, b, t);
	} else if (strcmp(type, "CopyStmt") == 0) {
		copy(c, b);
	} else if (strcmp(type, "CreateTableAsStmt") == 0) {
		create_as(c, cw_get(&c->w, b, "query"), cw_get(&c->w, b, "into"),
			  cw_streq(cw_get_str(&c->w, b, "objtype"), "OBJECT_MATVIEW"), t);
	} else if (strcmp(type, "ViewStmt") == 0) {
		view(c, b, t);
	} else if (strcmp(type, "CreateFunctionStmt") == 0) {
		const char *nm[4];
		int k = cw_names(&c->w, cw_get(&c->w, b, "funcname"), nm, 4);

		t->fn = k > 0 ? nm[k - 1] : NULL;
	} else if (strcmp(type, "DoStmt") == 0) {
		mp_refuse(c, "DO: what a DO block reads and prints cannot be followed by masking");
	} else if (strcmp(type, "CallStmt") == 0) {
		const struct sj_node *fc = cw_get(&c->w, b, "funccall");
		const char *nm[4];
		int k = cw_names(&c->w, cw_get(&c->w, fc, "funcname"), nm, 4);

		mp_refuse(c, "CALL %s: what a procedure reads and prints cannot be followed by masking",
			  k > 0 ? nm[k - 1] : "?");
	} else if (strcmp(type, "RenameStmt") == 0) {
		ddl_rename(c, b, t);
	} else if (strcmp(type, "AlterObjectSchemaStmt") == 0) {
		set_schema(c, b, t);
	} else if (strcmp(type, "AlterTableStmt") == 0) {
		alter_table(c, b);
	} else if (strcmp(type, "CreateTrigStmt") == 0) {
		hook(c, b, "trigger");
	} else if (strcmp(type, "RuleStmt") == 0) {
		hook(c, b, "rule");
	}
	/* Anything else returns no rows (SHOW returns a setting, which
	 * set_config() of a masked value cannot reach: that is refused). */
}

/* ---- plans -------------------------------------------------------------------------- */

static struct mp_column column_of(const struct taint *t)
{
	if (!t->on)
		return (struct mp_column){ 0 };
	return (struct mp_column){ .tainted = true, .rule = t->rule, .several = t->several,
				   .mixed = t->mixed || t->rule == MP_RULE_ANY };
}

static int dup_name(const char *s, char **out)
{
	if (!s)
		return 0;
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

static int rows_plan(const struct mp_ctx *c, const struct rowsig *rs, struct mask_plan *p)
{
	struct taint all = rs->anycol;
	bool any = false;

	if (!rs->star) {
		p->positional = true;
		p->n_columns = rs->n;
		if (rs->n && !(p->columns = calloc(rs->n, sizeof(*p->columns))))
			return -ENOMEM;
		for (size_t i = 0; i < rs->n; i++) {
			p->columns[i] = column_of(&rs->v[i].t);
			any |= p->columns[i].tainted;
		}
		p->verdict = any ? MP_MASK : MP_CLEAN;
		return 0;
	}
	for (size_t i = 0; i < rs->n; i++)
		mp_add(c, &all, &rs->v[i].t);
	p->all = column_of(&all);
	/* Columns a * brought from plain tables arrive with their origin: the
	 * agent masks those by the catalog; the plan still says MASK. */
	p->verdict = all.on || rs->origin.on ? MP_MASK : MP_CLEAN;
	return 0;
}

static int fill(struct mp_ctx *c, const struct top *t, struct mask_plan *p)
{
	int r = 0;

	if (c->why) {
		p->verdict = MP_REFUSE;
		p->why = c->why;
		c->why = NULL;
	} else if (t->out == TOP_ROWS) {
		r = rows_plan(c, &t->rs, p);
	} else if (t->out == TOP_UNKNOWN) {
		/* Until the agent finds the kept plan: everything. */
		p->verdict = MP_MASK;
		p->all = (struct mp_column){ .tainted = true, .rule = MP_RULE_ANY, .mixed = true };
	} else if (t->out == TOP_TEXT) {
		p->verdict = MP_MASK;
		p->positional = true;
		p->n_columns = 1;
		if (!(p->columns = calloc(1, sizeof(*p->columns))))
			return -ENOMEM;
		p->columns[0] = (struct mp_column){ .tainted = true, .rule = MP_RULE_ANY, .mixed = true };
	} else {
		p->verdict = MP_CLEAN;
	}
	if (r == 0)
		r = dup_name(t->cursor, &p->cursor);
	if (r == 0)
		r = dup_name(t->fetch, &p->fetch_cursor);
	if (r == 0)
		r = dup_name(t->prepare, &p->prepare);
	if (r == 0)
		r = dup_name(t->execute, &p->execute);
	return r;
}

/* What a statement created, for the ones after it in this text. */
static int remember(const struct top *t, struct mp_local *loc)
{
	if (t->view) {
		if (loc->n_views == loc->cap_views) {
			size_t cap = loc->cap_views ? loc->cap_views * 2 : 4;
			struct mp_lview *v = reallocarray(loc->views, cap, sizeof(*v));

			if (!v)
				return -ENOMEM;
			loc->views = v;
			loc->cap_views = cap;
		}
		loc->views[loc->n_views] = (struct mp_lview){ t->view_schema, t->view, t->view_t };
		loc->views[loc->n_views].t.kind = MPS_VIEW;
		loc->views[loc->n_views].t.src = t->view;
		loc->n_views++;
	}
	if (t->fn) {
		if (loc->n_fns == loc->cap_fns) {
			size_t cap = loc->cap_fns ? loc->cap_fns * 2 : 4;
			const char **v = reallocarray(loc->fns, cap, sizeof(*v));

			if (!v)
				return -ENOMEM;
			loc->fns = v;
			loc->cap_fns = cap;
		}
		loc->fns[loc->n_fns++] = t->fn;
	}
	return 0;
}

static void stmt_clear(struct mp_ctx *c)
{
	free(c->scope);
	c->scope = NULL;
	c->n_scope = c->cap_scope = 0;
	mp_map_clear(&c->relnames);
	mp_map_clear(&c->names);
	mp_map_clear(&c->rels);
	mp_map_clear(&c->ctes);
	c->anycol = c->allwhole = none;
	c->saturated = false;
	free(c->why);
	c->why = NULL;
	for (size_t i = 0; i < c->n_colnames; i++)
		free(c->colnames[i]);
	free(c->colnames);
	c->colnames = NULL;
	c->n_colnames = 0;
}

/* One statement: passes until nothing more is found. */
static int plan_one(struct mp_ctx *c, const struct sj_node *stmt, struct mask_plan *p,
		    struct mp_local *loc)
{
	struct top t = { 0 };
	int r;

	prepass(c, stmt, 0);
	relname_add(c, "excluded"); /* ON CONFLICT's */
	for (unsigned pass = 0; !c->r; pass++) {
		mp_rowsig_free(&t.rs);
		t = (struct top){ 0 };
		c->n_rtes = 0;
		c->deep = none;
		c->clause = NULL;
		c->dry = c->user_fn = false;
		c->depth = 0;
		c->changed = false;
		statement(c, stmt, &t);
		if (c->r || c->why || !c->changed || c->saturated)
			break;
		if (pass + 1 >= MP_MAX_PASSES)
			c->saturated = true; /* fail closed: every name tainted */
	}
	r = c->r;
	if (r == 0)
		r = fill(c, &t, p);
	if (r == 0)
		r = remember(&t, loc);
	mp_rowsig_free(&t.rs);
	stmt_clear(c);
	return r;
}

int mp_plan_json(char *json, const struct pol_mask *m, const struct mask_catalog *cat,
		 struct mask_plans *out)
{
	struct sj_doc doc = { 0 };
	struct mp_local loc = { 0 };
	struct mp_ctx c = { .w = { .d = &doc }, .m = m, .cat = cat, .loc = &loc };
	struct mask_plans p = { 0 };
	const struct sj_node *stmts;
	size_t i = 0;
	int r;

	r = cw_parse_stmts(&doc, json, &stmts);
	if (r < 0)
		goto out;
	if (stmts->len > 0 && !(p.v = calloc(stmts->len, sizeof(*p.v)))) {
		r = -ENOMEM;
		goto out;
	}
	for (const struct sj_node *s = sj_first(&doc, stmts); s; s = sj_next(&doc, s), i++) {
		p.n = i + 1;
		r = plan_one(&c, sj_get(&doc, s, "stmt"), &p.v[i], &loc);
		if (r < 0)
			goto out;
	}
	*out = p;
	p = (struct mask_plans){ 0 };
out:
	mask_plans_free(&p);
	stmt_clear(&c);
	free(c.rtes);
	free(loc.views);
	free(loc.fns);
	sj_doc_clear(&doc);
	return r;
}

static int plans_error(struct mask_plans *p, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = str_vprintf(&p->error, fmt, ap);
	va_end(ap);
	return r;
}

int mask_plan(const char *text, const struct pol_mask *m, const struct mask_catalog *cat,
	      struct mask_plans *out)
{
	static const struct pol_mask empty;
	struct mask_plans p = { 0 };
	PgQueryParseResult res;
	size_t len = strlen(text);
	int r;

	if (!m)
		m = &empty;
	if (len > SQL_CLASSIFY_MAX) {
		r = plans_error(&p, "statement too long to plan for masking (%zu bytes)", len);
		goto out;
	}
	res = pg_query_parse(text);
	if (res.error) {
		r = plans_error(&p, "%s", res.error->message);
	} else {
		r = mp_plan_json(res.parse_tree, m, cat, &p);
		if (r < 0 && r != -ENOMEM)
			r = plans_error(&p, r == -E2BIG ? "statement too complex to plan for masking"
						   : "could not read the parser's output for this statement");
	}
	pg_query_free_parse_result(res);
out:
	if (r < 0) {
		mask_plans_free(&p);
		return r;
	}
	*out = p;
	return 0;
}

void mask_plans_free(struct mask_plans *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n; i++) {
		struct mask_plan *x = &p->v[i];

		free(x->why);
		free(x->columns);
		free(x->cursor);
		free(x->fetch_cursor);
		free(x->prepare);
		free(x->execute);
	}
	free(p->v);
	free(p->error);
	*p = (struct mask_plans){ 0 };
}

enum mask_method mp_method(const struct pol_mask *m, const struct mp_column *c)
{
	if (!c->tainted || c->rule < 0 || c->mixed || (size_t)c->rule >= m->n_rules)
		return MASK_REDACT;
	return m->rules[c->rule].method;
}
