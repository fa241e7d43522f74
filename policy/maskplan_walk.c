/* The mask planner's walk over expressions and output lists
 * (maskplan_int.h): a value's taint is returned; what is referenced counts
 * for the enclosing sublink and, with strict = yes, may not be compared.
 * Nothing here reads a constant's value. */
#include "config.h"
#include "policy/maskplan_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const struct taint none;

/* ---- expressions ------------------------------------------------------------------ */

bool mp_enter(struct mp_ctx *c)
{
	if (mp_stop(c))
		return false;
	if (c->depth >= MP_MAX_DEPTH) {
		c->r = -E2BIG;
		return false;
	}
	c->depth++;
	return true;
}

void mp_leave(struct mp_ctx *c)
{
	c->depth--;
}

/* Something referenced: it counts for the enclosing sublink, and with
 * strict = yes it may not be compared. */
void mp_seen(struct mp_ctx *c, const struct taint *t)
{
	if (!t->on)
		return;
	mp_add(c, &c->deep, t);
	if (c->clause && c->m->strict)
		mp_refuse_taint(c, t, "in %s (strict)", c->clause);
}

struct taint mp_in_clause(struct mp_ctx *c, const struct sj_node *n, const char *clause)
{
	const char *saved = c->clause;
	struct taint t;

	c->clause = clause;
	t = mp_expr(c, n);
	c->clause = saved;
	return t;
}

#define MP_MAX_FIELDS 8 /* db.schema.table.column, and then some */

/* The handlers stay out of mp_expr's frame: it recurses once per level of
 * the tree, and thousands of levels must fit a thread's stack. */
#define NOINLINE __attribute__((noinline))

static NOINLINE struct taint colref(struct mp_ctx *c, const struct sj_node *b)
{
	const struct sj_node *f = cw_get(&c->w, b, "fields");
	const char *nm[MP_MAX_FIELDS];
	const struct mp_ent *e;
	struct taint t = none, x;
	size_t k = 0;
	bool star = false;

	for (const struct sj_node *m = f && f->type == SJ_ARRAY ? sj_first(c->w.d, f) : NULL; m;
	     m = sj_next(c->w.d, m)) {
		if (star || k == MP_MAX_FIELDS)
			goto unknown;
		if ((nm[k] = cw_string_node(&c->w, m)))
			k++;
		else if (cw_node_of(&c->w, m, "A_Star"))
			star = true;
		else
			goto unknown;
	}
	if ((k == 0 && !star) || c->saturated)
		goto unknown;
	if (star) { /* a whole row: t.* (or * outside a target list) */
		if (k == 0)
			t = c->allwhole;
		else if ((e = mp_map_get(&c->rels, nm[k - 1])))
			t = e->a;
		mp_seen(c, &t);
		return t;
	}
	t = mp_by_name(c, nm[k - 1]);
	if (k == 1) {
		/* A column of any FROM item, or a FROM item's whole row. */
		mp_add(c, &t, &c->anycol);
		if ((e = mp_map_get(&c->rels, nm[0])))
			mp_add(c, &t, &e->a);
	} else {
		/* q.x: column x of FROM item q, or field x of column q. */
		const char *q = nm[k - 2];

		if ((e = mp_map_get(&c->rels, q)))
			mp_add(c, &t, &e->b);
		x = mp_by_name(c, q);
		mp_add(c, &t, &x);
		if (k == 2 && !mp_map_get(&c->relnames, q))
			mp_add(c, &t, &c->anycol);
	}
	mp_seen(c, &t);
	return t;
unknown:
	t = mp_any(MPS_UNKNOWN, NULL);
	mp_seen(c, &t);
	return t;
}

static bool user_function(const struct mp_ctx *c, const char *schema, const char *name)
{
	if (schema && strcmp(schema, "pg_catalog") == 0)
		return false;
	if (c->cat)
		for (size_t i = 0; i < c->cat->n_user_functions; i++)
			if (cw_streq(c->cat->user_functions[i], name))
				return true;
	return c->loc && cw_in_list(name, c->loc->fns, c->loc->n_fns);
}

/* What the classifier knows a built-in of this name does. */
static bool fn_does(const char *name, size_t nargs, uint32_t classes)
{
	struct sql_stmt st = { 0 };
	struct walk w = { .st = &st };

	cw_func_effects(&w, name, nargs);
	return (st.classes & classes) != 0;
}

static NOINLINE struct taint window(struct mp_ctx *c, const struct sj_node *wd)
{
	struct taint t = none, x;

	if (!wd || wd->type != SJ_OBJECT)
		return t;
	t = mp_in_clause(c, cw_get(&c->w, wd, "partitionClause"), "a window's PARTITION BY");
	x = mp_in_clause(c, cw_get(&c->w, wd, "orderClause"), "a window's ORDER BY");
	mp_add(c, &t, &x);
	x = mp_in_clause(c, cw_get(&c->w, wd, "startOffset"), "a window frame");
	mp_add(c, &t, &x);
	x = mp_in_clause(c, cw_get(&c->w, wd, "endOffset"), "a window frame");
	mp_add(c, &t, &x);
	return t;
}

static NOINLINE struct taint funccall(struct mp_ctx *c, const struct sj_node *b)
{
	const struct sj_node *args = cw_get(&c->w, b, "args");
	const char *nm[4], *name;
	int k = cw_names(&c->w, cw_get(&c->w, b, "funcname"), nm, 4);
	size_t nargs = args && args->type == SJ_ARRAY ? args->len : 0;
	struct taint t = mp_expr(c, args), x;

	x = mp_expr(c, cw_get(&c->w, b, "agg_order"));
	mp_add(c, &t, &x);
	x = mp_expr(c, cw_get(&c->w, b, "agg_filter"));
	mp_add(c, &t, &x);
	x = window(c, cw_get(&c->w, b, "over"));
	mp_add(c, &t, &x);
	if (k < 1) { /* a name we cannot read: fail closed */
		x = mp_any(MPS_UNKNOWN, NULL);
		mp_seen(c, &x);
		mp_add(c, &t, &x);
		return t;
	}
	name = nm[k - 1];
	if (fn_does(name, nargs, CLASS_BIT(CLASS_OPAQUE)))
		mp_refuse(c, "function %s runs SQL given as text, which masking cannot follow", name);
	else if (t.on && (strcmp(name, "set_config") == 0 || strcmp(name, "pg_notify") == 0 ||
			  fn_does(name, nargs, CLASS_BIT(CLASS_WRITE))))
		mp_refuse_taint(c, &t, "is passed to %s, which keeps or sends it unmasked", name);
	if (user_function(c, k >= 2 ? nm[k - 2] : NULL, name)) {
		c->user_fn = true;
		x = mp_any(MPS_FUNCTION, name);
		mp_seen(c, &x);
		mp_add(c, &t, &x);
	}
	return t;
}


/* A query inside an expression: its value may be anything it referenced
 * (for EXISTS, what it filtered on). */
static NOINLINE struct taint subquery(struct mp_ctx *c, const char *type, const struct sj_node *b,
			     bool exists)
{
	struct rowsig rs = { 0 };
	struct taint saved = c->deep, d;

	c->deep = none;
	mp_query_body(c, type, b, &rs, exists);
	d = c->deep;
	mp_rowsig_free(&rs);
	c->deep = saved;
	mp_add(c, &c->deep, &d);
	return d;
}

static NOINLINE struct taint sublink(struct mp_ctx *c, const struct sj_node *b)
{
	const struct sj_node *sel = cw_get(&c->w, b, "subselect"), *in;
	const char *type = NULL;
	struct taint t = mp_expr(c, cw_get(&c->w, b, "testexpr")), q;

	if ((in = cw_unwrap(&c->w, sel, &type))) {
		q = subquery(c, type, in, cw_streq(cw_get_str(&c->w, b, "subLinkType"), "EXISTS_SUBLINK"));
		mp_add(c, &t, &q);
	} else {
		q = mp_expr(c, sel);
		mp_add(c, &t, &q);
	}
	return t;
}

struct taint mp_fields(struct mp_ctx *c, const struct sj_node *obj)
{
	struct taint t = none, x;

	for (const struct sj_node *m = sj_first(c->w.d, obj); m && !mp_stop(c); m = sj_next(c->w.d, m))
		if (m->type == SJ_OBJECT || m->type == SJ_ARRAY) {
			x = mp_expr(c, m);
			mp_add(c, &t, &x);
		}
	return t;
}

static struct taint node(struct mp_ctx *c, const char *type, const struct sj_node *b)
{
	static const char *const leaves[] = {
		"A_Const", "ParamRef", "SQLValueFunction", "String", "Integer", "Float",
		"Boolean", "BitString", "TypeName", "CurrentOfExpr", "SetToDefault",
	};

	if (strcmp(type, "ColumnRef") == 0)
		return colref(c, b);
	if (strcmp(type, "FuncCall") == 0)
		return funccall(c, b);
	if (strcmp(type, "SubLink") == 0)
		return sublink(c, b);
	if (strcmp(type, "WindowDef") == 0)
		return window(c, b);
	if (cw_is_statement_type(type))
		return subquery(c, type, b, false);
	if (cw_in_list(type, leaves, ARRAY_SIZE(leaves)))
		return none;
	return mp_fields(c, b);
}

struct taint mp_expr(struct mp_ctx *c, const struct sj_node *n)
{
	struct taint t = none, x;
	const struct sj_node *in;
	const char *type;

	if (!n || (n->type != SJ_ARRAY && n->type != SJ_OBJECT) || !mp_enter(c))
		return t;
	if (n->type == SJ_ARRAY) {
		for (const struct sj_node *m = sj_first(c->w.d, n); m && !mp_stop(c); m = sj_next(c->w.d, m)) {
			x = mp_expr(c, m);
			mp_add(c, &t, &x);
		}
	} else if ((in = cw_unwrap(&c->w, n, &type))) {
		t = node(c, type, in);
	} else {
		t = mp_fields(c, n);
	}
	mp_leave(c);
	return t;
}

/* ---- output lists ---------------------------------------------------------------- */

struct ocol *mp_rs_push(struct mp_ctx *c, struct rowsig *rs, const char *name,
			    const struct taint *t, bool star)
{
	if (c->r)
		return NULL;
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 8;
		struct ocol *v = reallocarray(rs->v, cap, sizeof(*v));

		if (!v) {
			c->r = -ENOMEM;
			return NULL;
		}
		rs->v = v;
		rs->cap = cap;
	}
	rs->v[rs->n] = (struct ocol){ .name = name, .t = *t, .star = star };
	if (star)
		rs->star = true;
	return &rs->v[rs->n++];
}

struct taint mp_rowsig_whole(const struct mp_ctx *c, const struct rowsig *rs)
{
	struct taint t = rs->origin;

	mp_add(c, &t, &rs->anycol);
	for (size_t i = 0; i < rs->n; i++)
		mp_add(c, &t, &rs->v[i].t);
	return t;
}

void mp_rowsig_free(struct rowsig *rs)
{
	free(rs->v);
	*rs = (struct rowsig){ 0 };
}

/* A * (or q.*) in an output list: the columns of this query's FROM items
 * (of the nearest enclosing query that has q, else whatever q was). */
static void expand(struct mp_ctx *c, const char *q, size_t lvl, struct rowsig *rs)
{
	struct taint t = none, origin = none, any = none;
	const struct mp_ent *e;
	bool found = false;

	for (size_t i = lvl; i < c->n_rtes; i++)
		if (!q || cw_streq(c->rtes[i].name, q)) {
			mp_add(c, &origin, &c->rtes[i].origin);
			mp_add(c, &t, &c->rtes[i].oid0);
			mp_add(c, &any, &c->rtes[i].anycol);
			found = true;
		}
	for (size_t i = lvl; q && !found && i-- > 0;)
		if (cw_streq(c->rtes[i].name, q)) {
			origin = c->rtes[i].origin;
			t = c->rtes[i].oid0;
			any = c->rtes[i].anycol;
			found = true;
		}
	if (q && !found && (e = mp_map_get(&c->rels, q))) {
		t = e->a;
		any = e->b;
	}
	if (c->saturated)
		t = any = mp_any(MPS_UNKNOWN, NULL);
	mp_rs_push(c, rs, NULL, &t, true);
	mp_add(c, &rs->origin, &origin);
	mp_add(c, &rs->anycol, &any);
	mp_add(c, &t, &origin);
	mp_seen(c, &t);
}

/* ResTarget val is a * or q.*: q (NULL for *). */
static bool star_ref(const struct mp_ctx *c, const struct sj_node *val, const char **q)
{
	const struct sj_node *cr = cw_node_of(&c->w, val, "ColumnRef"), *f, *last = NULL, *prev = NULL;

	f = cw_get(&c->w, cr, "fields");
	if (!f || f->type != SJ_ARRAY)
		return false;
	for (const struct sj_node *m = sj_first(c->w.d, f); m; m = sj_next(c->w.d, m)) {
		prev = last;
		last = m;
	}
	if (!last || !cw_node_of(&c->w, last, "A_Star"))
		return false;
	*q = prev ? cw_string_node(&c->w, prev) : NULL;
	return true;
}

/* (expr).*: the composite's fields, names unknown. */
static const struct sj_node *indirect_star(const struct mp_ctx *c, const struct sj_node *val)
{
	const struct sj_node *ind = cw_node_of(&c->w, val, "A_Indirection"), *l, *last = NULL;

	l = cw_get(&c->w, ind, "indirection");
	if (!l || l->type != SJ_ARRAY)
		return NULL;
	for (const struct sj_node *m = sj_first(c->w.d, l); m; m = sj_next(c->w.d, m))
		last = m;
	return last && cw_node_of(&c->w, last, "A_Star") ? cw_get(&c->w, ind, "arg") : NULL;
}

/* An output list (target list or RETURNING). For EXISTS nothing of it is
 * used: neither compared nor counted. */
void mp_targets(struct mp_ctx *c, const struct sj_node *list, struct rowsig *rs, size_t lvl,
		    bool exists)
{
	const char *saved = c->clause, *q;
	struct taint deep = c->deep, t;

	if (!list || list->type != SJ_ARRAY)
		return;
	if (exists)
		c->clause = NULL;
	for (const struct sj_node *m = sj_first(c->w.d, list); m && !mp_stop(c); m = sj_next(c->w.d, m)) {
		const struct sj_node *rt = cw_node_of(&c->w, m, "ResTarget"), *val, *arg;

		if (!rt) { /* not what the parser writes: a column of unknown name */
			t = mp_expr(c, m);
			mp_rs_push(c, rs, NULL, &t, false);
			continue;
		}
		val = cw_get(&c->w, rt, "val");
		if (star_ref(c, val, &q)) {
			expand(c, q, lvl, rs);
		} else if ((arg = indirect_star(c, val))) {
			t = mp_expr(c, arg);
			mp_rs_push(c, rs, NULL, &t, true);
			mp_add(c, &rs->anycol, &t);
		} else {
			const char *name = cw_get_str(&c->w, rt, "name");

			t = mp_expr(c, val);
			mp_rs_push(c, rs, name ? name : mp_out_name(c, val), &t, false);
		}
	}
	if (exists) {
		c->clause = saved;
		c->deep = deep;
	}
}

/* ORDER BY 2, GROUP BY name: the output column it means. */
static struct taint out_ref(struct mp_ctx *c, const struct sj_node *n, const struct rowsig *rs)
{
	const struct sj_node *b, *f;
	struct taint t = none, x;
	const char *name;
	uint32_t pos;

	if ((b = cw_node_of(&c->w, n, "SortBy")))
		return out_ref(c, cw_get(&c->w, b, "node"), rs);
	if ((b = cw_node_of(&c->w, n, "GroupingSet"))) {
		f = cw_get(&c->w, b, "content");
		for (const struct sj_node *m = f && f->type == SJ_ARRAY ? sj_first(c->w.d, f) : NULL; m;
		     m = sj_next(c->w.d, m)) {
			if (!mp_enter(c))
				break;
			x = out_ref(c, m, rs);
			mp_leave(c);
			mp_add(c, &t, &x);
		}
		return t;
	}
	if ((b = cw_node_of(&c->w, n, "A_Const"))) {
		if (!cw_get(&c->w, b, "ival"))
			return t;
		if (!sj_uint32(cw_get(&c->w, cw_get(&c->w, b, "ival"), "ival"), &pos))
			pos = 0; /* ival {} is 0 */
		if (rs->star || pos == 0 || pos > rs->n)
			return mp_rowsig_whole(c, rs);
		return rs->v[pos - 1].t;
	}
	if ((b = cw_node_of(&c->w, n, "ColumnRef"))) {
		f = cw_get(&c->w, b, "fields");
		if (!f || f->type != SJ_ARRAY || f->len != 1 || !(name = cw_string_node(&c->w, sj_first(c->w.d, f))))
			return t;
		for (size_t i = 0; i < rs->n; i++)
			if (cw_streq(rs->v[i].name, name))
				mp_add(c, &t, &rs->v[i].t);
	}
	return t;
}

void mp_sort_list(struct mp_ctx *c, const struct sj_node *list, const struct rowsig *rs,
		      const char *clause)
{
	struct taint t;

	if (!list || list->type != SJ_ARRAY)
		return;
	for (const struct sj_node *m = sj_first(c->w.d, list); m && !mp_stop(c); m = sj_next(c->w.d, m)) {
		mp_in_clause(c, m, clause);
		if (!c->m->strict || mp_stop(c))
			continue;
		t = out_ref(c, m, rs);
		if (t.on)
			mp_refuse_taint(c, &t, "in %s (strict)", clause);
	}
}

void mp_distinct(struct mp_ctx *c, const struct sj_node *dc, const struct rowsig *rs)
{
	const struct sj_node *first = dc && dc->type == SJ_ARRAY ? sj_first(c->w.d, dc) : NULL;
	struct taint t;

	if (!first)
		return;
	if (first->type == SJ_OBJECT && first->len == 0) { /* plain DISTINCT: every column */
		t = mp_rowsig_whole(c, rs);
		if (c->m->strict && t.on)
			mp_refuse_taint(c, &t, "in DISTINCT (strict)");
		return;
	}
	mp_sort_list(c, dc, rs, "DISTINCT ON");
}
