/* The mask planner's walk over queries (maskplan_int.h): FROM items and
 * the names they bring, WITH, set operations, VALUES, SELECT's clauses, and
 * INSERT, UPDATE, DELETE, MERGE with what they write. */
#include "config.h"
#include "policy/maskplan_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct taint none;

/* ---- FROM ------------------------------------------------------------------------- */

struct fsum {
	struct taint origin; /* plain table columns, reported with their origin */
	struct taint oid0;   /* columns reported without one */
	struct taint any;    /* columns whose names are not known here */
};

static void fsum_add(const struct mp_ctx *c, struct fsum *a, const struct fsum *b)
{
	mp_add(c, &a->origin, &b->origin);
	mp_add(c, &a->oid0, &b->oid0);
	mp_add(c, &a->any, &b->any);
}

static void push_rte(struct mp_ctx *c, const char *name, const struct fsum *s)
{
	if (c->r)
		return;
	if (c->n_rtes == c->cap_rtes) {
		size_t cap = c->cap_rtes ? c->cap_rtes * 2 : 16;
		struct rte *v = reallocarray(c->rtes, cap, sizeof(*v));

		if (!v) {
			c->r = -ENOMEM;
			return;
		}
		c->rtes = v;
		c->cap_rtes = cap;
	}
	c->rtes[c->n_rtes++] = (struct rte){ name, s->origin, s->oid0, s->any };
}

/* A FROM item under name; colnames (an alias's column list) rename its
 * columns, which one is which not known here. */
static void register_item(struct mp_ctx *c, const char *name, const struct fsum *s,
			  const struct sj_node *colnames)
{
	struct taint whole = s->origin;

	mp_add(c, &whole, &s->oid0);
	mp_rel_add(c, name, &whole, &s->any);
	for (const struct sj_node *m = colnames && colnames->type == SJ_ARRAY ? sj_first(c->w.d, colnames) : NULL;
	     m; m = sj_next(c->w.d, m))
		mp_name_add(c, cw_string_node(&c->w, m), &whole);
	push_rte(c, name, s);
}

/* A derived table's (subquery's, CTE's) output: its names carry their
 * taints outside; colnames rename by position. */
static void derive(struct mp_ctx *c, const struct rowsig *rs, const struct sj_node *colnames,
		   struct taint *whole, struct taint *any)
{
	size_t i = 0;

	*whole = mp_rowsig_whole(c, rs);
	*any = rs->anycol;
	for (const struct sj_node *m = colnames && colnames->type == SJ_ARRAY ? sj_first(c->w.d, colnames) : NULL;
	     m; m = sj_next(c->w.d, m), i++) {
		const char *s = cw_string_node(&c->w, m);
		struct taint t = rs->star ? *whole : i < rs->n ? rs->v[i].t : none;

		if (s)
			mp_name_add(c, s, &t);
		else
			mp_add(c, any, &t);
	}
	for (; i < rs->n; i++) {
		const struct ocol *o = &rs->v[i];

		/* A * brings the names of what it expanded, tainted where
		 * they were derived, or unknown ones (already in anycol). */
		if (o->star)
			continue;
		if (o->name)
			mp_name_add(c, o->name, &o->t);
		else
			mp_add(c, any, &o->t);
	}
}

static void alias_of(const struct mp_ctx *c, const struct sj_node *b, const char **name,
		     const struct sj_node **cols)
{
	const struct sj_node *a = cw_get(&c->w, b, "alias");

	*name = cw_get_str(&c->w, a, "aliasname");
	*cols = cw_get(&c->w, a, "colnames");
}

static void range_var(struct mp_ctx *c, const struct sj_node *rv, struct fsum *s)
{
	const char *rel = cw_get_str(&c->w, rv, "relname"), *schema = cw_get_str(&c->w, rv, "schemaname");
	const struct sj_node *cols;
	const struct mp_ent *e;
	const char *alias;

	alias_of(c, rv, &alias, &cols);
	*s = (struct fsum){ 0 };
	if (!rel) {
		s->oid0 = s->any = mp_any(MPS_UNKNOWN, NULL);
	} else {
		s->origin = mp_table_rules(c, schema, rel);
		s->oid0 = s->any = mp_view_taint(c, schema, rel);
		/* An unqualified name may be a CTE's (or, for us, both). */
		if (!schema && (e = mp_map_get(&c->ctes, rel))) {
			mp_add(c, &s->oid0, &e->a);
			mp_add(c, &s->any, &e->b);
		}
	}
	register_item(c, alias ? alias : rel, s, cols);
}

static void range_subselect(struct mp_ctx *c, const struct sj_node *b, struct fsum *s)
{
	struct rowsig rs = { 0 };
	const struct sj_node *cols;
	const char *alias;

	alias_of(c, b, &alias, &cols);
	mp_query(c, cw_get(&c->w, b, "subquery"), &rs);
	*s = (struct fsum){ 0 };
	derive(c, &rs, cols, &s->oid0, &s->any);
	mp_rowsig_free(&rs);
	register_item(c, alias, s, NULL);
}

/* Column definition lists (ColumnDef, RangeTableFuncCol): their names. */
static void coldefs(struct mp_ctx *c, const struct sj_node *list, const struct taint *t)
{
	for (const struct sj_node *m = list && list->type == SJ_ARRAY ? sj_first(c->w.d, list) : NULL; m;
	     m = sj_next(c->w.d, m)) {
		const struct sj_node *d = cw_node_of(&c->w, m, "ColumnDef");

		if (!d)
			d = cw_node_of(&c->w, m, "RangeTableFuncCol");
		mp_name_add(c, cw_get_str(&c->w, d, "colname"), t);
	}
}

/* A function (or ROWS FROM, XMLTABLE) in FROM: every column of it may be
 * whatever its arguments (or a user function) carry. */
static void range_function(struct mp_ctx *c, const char *type, const struct sj_node *b,
			   struct fsum *s)
{
	const struct sj_node *fns = cw_get(&c->w, b, "functions"), *cols;
	const char *alias, *fname = NULL;
	struct taint t = none, x;
	size_t n = 0;

	alias_of(c, b, &alias, &cols);
	if (strcmp(type, "RangeFunction") == 0) {
		for (const struct sj_node *m = fns && fns->type == SJ_ARRAY ? sj_first(c->w.d, fns) : NULL;
		     m && !mp_stop(c); m = sj_next(c->w.d, m), n++) {
			const struct sj_node *items = cw_get(&c->w, cw_node_of(&c->w, m, "List"), "items");
			const struct sj_node *fn = items && items->type == SJ_ARRAY ? sj_first(c->w.d, items) : NULL;

			x = mp_expr(c, fn);
			mp_add(c, &t, &x);
			fname = mp_last_string(c, cw_get(&c->w, cw_node_of(&c->w, fn, "FuncCall"), "funcname"));
			if (fn && (fn = sj_next(c->w.d, fn)))
				coldefs(c, fn, &t); /* ROWS FROM (f() AS (a int, ...)) */
		}
		if (!fns || fns->type != SJ_ARRAY) {
			x = mp_any(MPS_UNKNOWN, NULL);
			mp_add(c, &t, &x);
		}
	} else { /* RangeTableFunc */
		t = mp_fields(c, b);
	}
	/* The rows it returns are what its arguments made them. */
	if (t.on && c->m->strict)
		mp_refuse_taint(c, &t, "in a function in FROM (strict)");
	coldefs(c, cw_get(&c->w, b, "coldeflist"), &t);
	coldefs(c, cw_get(&c->w, b, "columns"), &t);
	*s = (struct fsum){ .oid0 = t, .any = t };
	register_item(c, alias ? alias : n == 1 ? fname : NULL, s, cols);
}

static void from_item(struct mp_ctx *c, const struct sj_node *n, struct fsum *s);

static void join(struct mp_ctx *c, const struct sj_node *b, struct fsum *s)
{
	const struct sj_node *using = cw_get(&c->w, b, "usingClause"), *cols;
	const char *alias, *saved;
	struct fsum l, r;
	struct taint t;

	from_item(c, cw_get(&c->w, b, "larg"), &l);
	from_item(c, cw_get(&c->w, b, "rarg"), &r);
	*s = l;
	fsum_add(c, s, &r);
	mp_in_clause(c, cw_get(&c->w, b, "quals"), "JOIN ... ON");
	saved = c->clause;
	c->clause = "JOIN ... USING";
	for (const struct sj_node *m = using && using->type == SJ_ARRAY ? sj_first(c->w.d, using) : NULL;
	     m && !mp_stop(c); m = sj_next(c->w.d, m)) {
		const char *name = cw_string_node(&c->w, m);

		t = name ? mp_by_name(c, name) : mp_any(MPS_UNKNOWN, NULL);
		mp_add(c, &t, &c->anycol);
		mp_seen(c, &t);
	}
	c->clause = saved;
	if (c->m->strict && cw_get_true(&c->w, b, "isNatural")) {
		t = s->origin;
		mp_add(c, &t, &s->oid0);
		if (t.on)
			mp_refuse_taint(c, &t, "in NATURAL JOIN (strict)");
	}
	alias_of(c, b, &alias, &cols);
	if (alias || cols)
		register_item(c, alias, s, cols);
}

static void from_item(struct mp_ctx *c, const struct sj_node *n, struct fsum *s)
{
	const char *type;
	const struct sj_node *b = cw_unwrap(&c->w, n, &type);
	struct taint t;

	*s = (struct fsum){ 0 };
	if (!n || !mp_enter(c))
		return;
	if (!b) {
		type = "";
		b = n;
	}
	if (strcmp(type, "RangeVar") == 0) {
		range_var(c, b, s);
	} else if (strcmp(type, "RangeSubselect") == 0) {
		range_subselect(c, b, s);
	} else if (strcmp(type, "RangeFunction") == 0 || strcmp(type, "RangeTableFunc") == 0) {
		range_function(c, type, b, s);
	} else if (strcmp(type, "RangeTableSample") == 0) {
		from_item(c, cw_get(&c->w, b, "relation"), s);
		mp_in_clause(c, cw_get(&c->w, b, "args"), "TABLESAMPLE");
		mp_in_clause(c, cw_get(&c->w, b, "repeatable"), "TABLESAMPLE");
	} else if (strcmp(type, "JoinExpr") == 0) {
		join(c, b, s);
	} else { /* not what the parser writes: its columns may be anything */
		t = mp_expr(c, n);
		s->oid0 = s->any = t;
		mp_grow(c, &c->anycol, &t);
		push_rte(c, NULL, s);
	}
	mp_leave(c);
}

static void from_list(struct mp_ctx *c, const struct sj_node *list)
{
	struct fsum s;

	for (const struct sj_node *m = list && list->type == SJ_ARRAY ? sj_first(c->w.d, list) : NULL;
	     m && !mp_stop(c); m = sj_next(c->w.d, m))
		from_item(c, m, &s);
}

/* ---- queries ------------------------------------------------------------------------ */

static void with_clause(struct mp_ctx *c, const struct sj_node *wc)
{
	const struct sj_node *ctes = cw_get(&c->w, wc, "ctes");

	for (const struct sj_node *m = ctes && ctes->type == SJ_ARRAY ? sj_first(c->w.d, ctes) : NULL;
	     m && !mp_stop(c); m = sj_next(c->w.d, m)) {
		const struct sj_node *cte = cw_node_of(&c->w, m, "CommonTableExpr");
		const char *name = cw_get_str(&c->w, cte, "ctename");
		struct rowsig rs = { 0 };
		struct taint whole, any;
		struct mp_ent *e;

		mp_query(c, cw_get(&c->w, cte, "ctequery"), &rs);
		derive(c, &rs, cw_get(&c->w, cte, "aliascolnames"), &whole, &any);
		mp_rowsig_free(&rs);
		if ((whole.on || any.on) && name && (e = mp_map_put(c, &c->ctes, name))) {
			mp_grow(c, &e->a, &whole);
			mp_grow(c, &e->b, &any);
		}
	}
}

static void select_body(struct mp_ctx *c, const struct sj_node *b, struct rowsig *rs, bool exists);

/* A set operation's branch: a SelectStmt body (or, wrapped, a node). */
static void branch(struct mp_ctx *c, const struct sj_node *n, struct rowsig *rs, bool exists)
{
	const struct sj_node *in = cw_node_of(&c->w, n, "SelectStmt");

	select_body(c, in ? in : n, rs, exists);
}

/* UNION, INTERSECT, EXCEPT: columns combine by position; their output
 * has no origin, so what a * brought counts in full. */
static void setop(struct mp_ctx *c, const struct sj_node *b, const char *op, struct rowsig *rs,
		  bool exists)
{
	struct rowsig l = { 0 }, r = { 0 };
	struct taint u, ur;

	branch(c, cw_get(&c->w, b, "larg"), &l, exists);
	branch(c, cw_get(&c->w, b, "rarg"), &r, exists);
	if (!l.star && !r.star && l.n == r.n) {
		for (size_t i = 0; i < l.n; i++)
			mp_add(c, &l.v[i].t, &r.v[i].t);
		mp_add(c, &l.anycol, &r.anycol);
	} else {
		u = mp_rowsig_whole(c, &l);
		ur = mp_rowsig_whole(c, &r);

		mp_add(c, &u, &ur);
		for (size_t i = 0; i < l.n; i++)
			l.v[i].t = u;
		if (l.n == 0)
			mp_rs_push(c, &l, NULL, &u, true);
		l.star = true;
		l.anycol = u;
	}
	l.origin = none;
	*rs = l;
	mp_rowsig_free(&r);
	/* Only UNION ALL leaves values uncompared. */
	if (c->m->strict && !(strcmp(op, "SETOP_UNION") == 0 && cw_get_true(&c->w, b, "all"))) {
		u = mp_rowsig_whole(c, rs);
		if (u.on)
			mp_refuse_taint(c, &u, "in %s (strict)",
					strcmp(op, "SETOP_UNION") == 0 ? "UNION"
					: strcmp(op, "SETOP_INTERSECT") == 0 ? "INTERSECT" : "EXCEPT");
	}
}

static void values(struct mp_ctx *c, const struct sj_node *rows, struct rowsig *rs)
{
	for (const struct sj_node *row = rows->type == SJ_ARRAY ? sj_first(c->w.d, rows) : NULL;
	     row && !mp_stop(c); row = sj_next(c->w.d, row)) {
		const struct sj_node *items = cw_get(&c->w, cw_node_of(&c->w, row, "List"), "items");
		size_t i = 0;

		if (!items)
			items = row;
		for (const struct sj_node *m = items->type == SJ_ARRAY ? sj_first(c->w.d, items) : NULL;
		     m && !mp_stop(c); m = sj_next(c->w.d, m), i++) {
			struct taint t = mp_expr(c, m);

			if (i == rs->n && !mp_rs_push(c, rs, mp_values_name(c, i), &none, false))
				return;
			mp_add(c, &rs->v[i].t, &t);
		}
	}
}

static void select_body(struct mp_ctx *c, const struct sj_node *b, struct rowsig *rs, bool exists)
{
	const char *op = cw_get_str(&c->w, b, "op");
	const struct sj_node *vl = cw_get(&c->w, b, "valuesLists");
	size_t lvl = c->n_rtes;

	if (!mp_enter(c))
		return;
	with_clause(c, cw_get(&c->w, b, "withClause"));
	if (op && strcmp(op, "SETOP_NONE") != 0) {
		setop(c, b, op, rs, exists);
	} else if (vl) {
		values(c, vl, rs);
	} else {
		from_list(c, cw_get(&c->w, b, "fromClause"));
		mp_targets(c, cw_get(&c->w, b, "targetList"), rs, lvl, exists);
		mp_in_clause(c, cw_get(&c->w, b, "whereClause"), "WHERE");
		mp_sort_list(c, cw_get(&c->w, b, "groupClause"), rs, "GROUP BY");
		mp_in_clause(c, cw_get(&c->w, b, "havingClause"), "HAVING");
		mp_in_clause(c, cw_get(&c->w, b, "windowClause"), "WINDOW");
		mp_distinct(c, cw_get(&c->w, b, "distinctClause"), rs);
	}
	mp_sort_list(c, cw_get(&c->w, b, "sortClause"), rs, "ORDER BY");
	mp_in_clause(c, cw_get(&c->w, b, "limitCount"), "LIMIT");
	mp_in_clause(c, cw_get(&c->w, b, "limitOffset"), "OFFSET");
	c->n_rtes = lvl;
	mp_leave(c);
}

/* ---- INSERT, UPDATE, DELETE, MERGE ------------------------------------------------ */

/* SET col = expr, ... (UPDATE, ON CONFLICT DO UPDATE, MERGE). */
static void set_list(struct mp_ctx *c, const struct sj_node *rv, const struct sj_node *list)
{
	for (const struct sj_node *m = list && list->type == SJ_ARRAY ? sj_first(c->w.d, list) : NULL;
	     m && !mp_stop(c); m = sj_next(c->w.d, m)) {
		const struct sj_node *rt = cw_node_of(&c->w, m, "ResTarget"), *val, *multi;
		struct taint t;

		val = cw_get(&c->w, rt, "val");
		multi = cw_node_of(&c->w, val, "MultiAssignRef");
		t = mp_expr(c, multi ? cw_get(&c->w, multi, "source") : rt ? val : m);
		mp_write(c, rv, cw_get_str(&c->w, rt, "name"), &t);
	}
}

/* Values written by position into the columns named in cols (ResTargets;
 * none: the table's own order, unknown here). */
static void write_row(struct mp_ctx *c, const struct sj_node *rv, const struct sj_node *cols,
		      const struct taint *v, size_t n)
{
	const struct sj_node *col = cols && cols->type == SJ_ARRAY ? sj_first(c->w.d, cols) : NULL;

	for (size_t i = 0; i < n && !mp_stop(c); i++) {
		const char *name = col ? cw_get_str(&c->w, cw_node_of(&c->w, col, "ResTarget"), "name") : NULL;

		mp_write(c, rv, name, &v[i]);
		if (col)
			col = sj_next(c->w.d, col);
	}
}

static void insert_body(struct mp_ctx *c, const struct sj_node *b, struct rowsig *rs)
{
	const struct sj_node *rv = mp_rv_body(c, cw_get(&c->w, b, "relation"));
	const struct sj_node *occ = cw_get(&c->w, b, "onConflictClause");
	struct rowsig src = { 0 };
	size_t lvl = c->n_rtes;
	struct fsum s;

	with_clause(c, cw_get(&c->w, b, "withClause"));
	mp_query(c, cw_get(&c->w, b, "selectStmt"), &src);
	if (src.star) {
		struct taint w = mp_rowsig_whole(c, &src);

		mp_write(c, rv, NULL, &w);
	} else if (src.n) {
		struct taint *v = calloc(src.n, sizeof(*v));

		if (!v) {
			c->r = -ENOMEM;
		} else {
			for (size_t i = 0; i < src.n; i++)
				v[i] = src.v[i].t;
			write_row(c, rv, cw_get(&c->w, b, "cols"), v, src.n);
			free(v);
		}
	}
	mp_rowsig_free(&src);
	range_var(c, rv, &s);
	if (occ) {
		register_item(c, "excluded", &s, NULL);
		mp_in_clause(c, cw_get(&c->w, occ, "whereClause"), "ON CONFLICT ... WHERE");
		set_list(c, rv, cw_get(&c->w, occ, "targetList"));
	}
	mp_targets(c, cw_get(&c->w, b, "returningList"), rs, lvl, false);
	c->n_rtes = lvl;
}

static void update_body(struct mp_ctx *c, const struct sj_node *b, struct rowsig *rs)
{
	const struct sj_node *rv = mp_rv_body(c, cw_get(&c->w, b, "relation"));
	size_t lvl = c->n_rtes;
	struct fsum s;

	with_clause(c, cw_get(&c->w, b, "withClause"));
	range_var(c, rv, &s);
	from_list(c, cw_get(&c->w, b, "fromClause"));
	set_list(c, rv, cw_get(&c->w, b, "targetList"));
	mp_in_clause(c, cw_get(&c->w, b, "whereClause"), "WHERE");
	mp_targets(c, cw_get(&c->w, b, "returningList"), rs, lvl, false);
	c->n_rtes = lvl;
}

static void delete_body(struct mp_ctx *c, const struct sj_node *b, struct rowsig *rs)
{
	size_t lvl = c->n_rtes;
	struct fsum s;

	with_clause(c, cw_get(&c->w, b, "withClause"));
	range_var(c, mp_rv_body(c, cw_get(&c->w, b, "relation")), &s);
	from_list(c, cw_get(&c->w, b, "usingClause"));
	mp_in_clause(c, cw_get(&c->w, b, "whereClause"), "WHERE");
	mp_targets(c, cw_get(&c->w, b, "returningList"), rs, lvl, false);
	c->n_rtes = lvl;
}

static void merge_body(struct mp_ctx *c, const struct sj_node *b)
{
	const struct sj_node *rv = mp_rv_body(c, cw_get(&c->w, b, "relation"));
	const struct sj_node *whens = cw_get(&c->w, b, "mergeWhenClauses");
	size_t lvl = c->n_rtes;
	struct fsum s;

	with_clause(c, cw_get(&c->w, b, "withClause"));
	range_var(c, rv, &s);
	from_item(c, cw_get(&c->w, b, "sourceRelation"), &s);
	mp_in_clause(c, cw_get(&c->w, b, "joinCondition"), "MERGE ... ON");
	for (const struct sj_node *m = whens && whens->type == SJ_ARRAY ? sj_first(c->w.d, whens) : NULL;
	     m && !mp_stop(c); m = sj_next(c->w.d, m)) {
		const struct sj_node *wc = cw_node_of(&c->w, m, "MergeWhenClause"), *vals;
		const char *cmd = cw_get_str(&c->w, wc, "commandType");

		mp_in_clause(c, cw_get(&c->w, wc, "condition"), "MERGE ... WHEN");
		if (cw_streq(cmd, "CMD_UPDATE")) {
			set_list(c, rv, cw_get(&c->w, wc, "targetList"));
		} else if ((vals = cw_get(&c->w, wc, "values")) && vals->type == SJ_ARRAY && vals->len) {
			struct taint *v = calloc(vals->len, sizeof(*v));
			size_t i = 0;

			if (!v) {
				c->r = -ENOMEM;
				break;
			}
			for (const struct sj_node *e = sj_first(c->w.d, vals); e; e = sj_next(c->w.d, e))
				v[i++] = mp_expr(c, e);
			write_row(c, rv, cw_get(&c->w, wc, "targetList"), v, i);
			free(v);
		}
	}
	c->n_rtes = lvl;
}

void mp_query_body(struct mp_ctx *c, const char *type, const struct sj_node *b,
		       struct rowsig *rs, bool exists)
{
	struct taint t;

	if (!mp_enter(c))
		return;
	if (strcmp(type, "SelectStmt") == 0) {
		select_body(c, b, rs, exists);
	} else if (strcmp(type, "InsertStmt") == 0) {
		insert_body(c, b, rs);
	} else if (strcmp(type, "UpdateStmt") == 0) {
		update_body(c, b, rs);
	} else if (strcmp(type, "DeleteStmt") == 0) {
		delete_body(c, b, rs);
	} else if (strcmp(type, "MergeStmt") == 0) {
		merge_body(c, b);
	} else { /* no query the parser puts here: its output may be anything */
		mp_fields(c, b);
		t = mp_any(MPS_UNKNOWN, NULL);
		mp_seen(c, &t);
		mp_rs_push(c, rs, NULL, &t, true);
		rs->anycol = t;
	}
	mp_leave(c);
}

void mp_query(struct mp_ctx *c, const struct sj_node *n, struct rowsig *out)
{
	const struct sj_node *in;
	const char *type;

	if (!n || mp_stop(c))
		return;
	if ((in = cw_unwrap(&c->w, n, &type)))
		mp_query_body(c, type, in, out, false);
	else if (n->type == SJ_OBJECT)
		mp_query_body(c, "SelectStmt", n, out, false);
}
