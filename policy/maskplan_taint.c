/* The mask planner's taints (maskplan_int.h): sets of rules, what the
 * catalog and the rules say of a relation, the maps of tainted names and
 * relations a statement grows, refusals, and the names PostgreSQL gives
 * output columns. */
#include "config.h"
#include "policy/maskplan_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct taint none;
/* ---- taints ------------------------------------------------------------------ */

struct taint mp_rule_taint(size_t rule)
{
	return (struct taint){ .on = true, .kind = MPS_COLUMN, .rule = (int)rule };
}

struct taint mp_any(enum mp_src kind, const char *src)
{
	return (struct taint){ .on = true, .kind = (uint8_t)kind, .rule = MP_RULE_ANY, .src = src };
}

/* a |= b; true when a changed in a way mp_column shows (the first rule
 * stays first). */
bool mp_add(const struct mp_ctx *c, struct taint *a, const struct taint *b)
{
	bool several, mixed;

	if (!b->on)
		return false;
	if (!a->on) {
		*a = *b;
		return true;
	}
	several = a->several || b->several || a->rule != b->rule;
	mixed = a->mixed || b->mixed;
	if (a->rule != b->rule &&
	    (a->rule == MP_RULE_ANY || b->rule == MP_RULE_ANY ||
	     c->m->rules[a->rule].method != c->m->rules[b->rule].method))
		mixed = true;
	if (several == a->several && mixed == a->mixed)
		return false;
	a->several = several;
	a->mixed = mixed;
	return true;
}

/* For what only grows: note that this pass found more. */
void mp_grow(struct mp_ctx *c, struct taint *a, const struct taint *b)
{
	if (mp_add(c, a, b))
		c->changed = true;
}

bool mp_rule_on(const struct pol_mask_rule *r, const char *schema, const char *rel)
{
	return r->table && rel && strcmp(r->table, rel) == 0 &&
	       (!schema || !r->schema || strcmp(r->schema, schema) == 0);
}

struct taint mp_table_rules(const struct mp_ctx *c, const char *schema, const char *rel)
{
	struct taint t = none;

	for (size_t i = 0; i < c->n_scope; i++)
		if (mp_rule_on(&c->m->rules[c->scope[i]], schema, rel)) {
			struct taint r = mp_rule_taint(c->scope[i]);

			mp_add(c, &t, &r);
		}
	return t;
}

/* A catalog view name "schema.name" against [schema.]rel. */
static bool view_is(const char *v, const char *schema, const char *rel)
{
	size_t lv = strlen(v), lr = strlen(rel);

	if (lv <= lr || v[lv - lr - 1] != '.' || strcmp(v + lv - lr, rel) != 0)
		return false;
	return !schema || (strlen(schema) == lv - lr - 1 && memcmp(v, schema, lv - lr - 1) == 0);
}

/* The statistics views show sampled values of every column (most common
 * values, histogram bounds), masked ones included. */
static bool shows_statistics(const char *schema, const char *rel)
{
	static const char *const stats[] = {
		"pg_stats", "pg_stats_ext", "pg_stats_ext_exprs", "pg_statistic",
		"pg_statistic_ext_data",
	};

	return (!schema || strcmp(schema, "pg_catalog") == 0) &&
	       cw_in_list(rel, stats, ARRAY_SIZE(stats));
}

struct taint mp_view_taint(const struct mp_ctx *c, const char *schema, const char *rel)
{
	const struct mask_catalog *cat = c->cat;
	struct taint t = none, x;

	if (!rel)
		return t;
	for (size_t i = 0; cat && i < cat->n_views; i++) {
		if (!cat->views[i] || !view_is(cat->views[i], schema, rel))
			continue;
		if (cat->view_rules && cat->view_rules[i] < c->m->n_rules) {
			x = mp_rule_taint(cat->view_rules[i]);
			x.kind = MPS_VIEW;
			x.src = cat->views[i];
		} else {
			x = mp_any(MPS_VIEW, cat->views[i]);
		}
		mp_add(c, &t, &x);
	}
	for (size_t i = 0; c->loc && i < c->loc->n_views; i++) {
		const struct mp_lview *v = &c->loc->views[i];

		if (strcmp(v->name, rel) == 0 && (!schema || !v->schema || strcmp(v->schema, schema) == 0))
			mp_add(c, &t, &v->t);
	}
	if (shows_statistics(schema, rel)) {
		x = mp_any(MPS_RELATION, rel);
		mp_add(c, &t, &x);
	}
	return t;
}

/* ---- maps ----------------------------------------------------------------------- */

static uint32_t hash_str(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct mp_ent *mp_map_get(const struct mp_map *mp, const char *key)
{
	uint32_t mask = mp->nslots - 1;

	if (!mp->nslots || !key)
		return NULL;
	for (uint32_t i = hash_str(key) & mask; mp->slots[i]; i = (i + 1) & mask) {
		struct mp_ent *e = &mp->v[mp->slots[i] - 1];

		if (strcmp(e->key, key) == 0)
			return e;
	}
	return NULL;
}

static bool map_rehash(struct mp_map *mp, uint32_t nslots)
{
	uint32_t *s = calloc(nslots, sizeof(*s));

	if (!s)
		return false;
	for (uint32_t k = 0; k < mp->n; k++) {
		uint32_t i = hash_str(mp->v[k].key) & (nslots - 1);

		while (s[i])
			i = (i + 1) & (nslots - 1);
		s[i] = k + 1;
	}
	free(mp->slots);
	mp->slots = s;
	mp->nslots = nslots;
	return true;
}

/* The entry for key, added (with no taint) when missing; NULL and c->r set
 * when memory runs out. The key must outlive the map. */
struct mp_ent *mp_map_put(struct mp_ctx *c, struct mp_map *mp, const char *key)
{
	struct mp_ent *e = mp_map_get(mp, key);
	uint32_t i;

	if (e || c->r || !key)
		return e;
	if (mp->n >= (1u << 28)) { /* the node cap keeps real trees far below */
		c->r = -E2BIG;
		return NULL;
	}
	if (mp->n == mp->cap) {
		uint32_t cap = mp->cap ? mp->cap * 2 : 16;
		void *v = reallocarray(mp->v, cap, sizeof(*mp->v));

		if (!v) {
			c->r = -ENOMEM;
			return NULL;
		}
		mp->v = v;
		mp->cap = cap;
	}
	if ((mp->n + 1) * 2 > mp->nslots && !map_rehash(mp, mp->nslots ? mp->nslots * 2 : 32)) {
		c->r = -ENOMEM;
		return NULL;
	}
	mp->v[mp->n] = (struct mp_ent){ .key = key };
	for (i = hash_str(key) & (mp->nslots - 1); mp->slots[i]; i = (i + 1) & (mp->nslots - 1))
		;
	mp->slots[i] = ++mp->n;
	return &mp->v[mp->n - 1];
}

void mp_map_clear(struct mp_map *mp)
{
	free(mp->v);
	free(mp->slots);
	*mp = (struct mp_map){ 0 };
}

/* ---- refusals ---------------------------------------------------------------- */

static char *describe(const struct mp_ctx *c, const struct taint *t)
{
	char *s = NULL;
	int r;

	if (t->rule >= 0) {
		const struct pol_mask_rule *rl = &c->m->rules[t->rule];
		const char *sch = rl->schema ? rl->schema : "", *dot = rl->schema ? "." : "";

		if (t->kind == MPS_VIEW && t->src)
			r = asprintf(&s, "view %s (masked column %s%s%s.%s)", t->src, sch, dot,
				     rl->table, rl->column);
		else
			r = asprintf(&s, "masked column %s%s%s.%s", sch, dot, rl->table, rl->column);
	} else if (t->kind == MPS_FUNCTION && t->src) {
		r = asprintf(&s, "function %s (its result may be a masked value)", t->src);
	} else if (t->src) {
		r = asprintf(&s, "%s (it may show masked values)", t->src);
	} else {
		r = asprintf(&s, "a value masking could not follow");
	}
	return r < 0 ? NULL : s;
}

static void refuse_v(struct mp_ctx *c, const struct taint *t, const char *fmt, va_list ap)
{
	char *what = NULL, *rest = NULL;

	if (mp_stop(c))
		return;
	if (vasprintf(&rest, fmt, ap) < 0) {
		c->r = -ENOMEM;
		return;
	}
	if (!t) {
		c->why = rest;
		return;
	}
	if (!(what = describe(c, t)) || asprintf(&c->why, "%s %s", what, rest) < 0) {
		c->why = NULL;
		c->r = -ENOMEM;
	}
	free(what);
	free(rest);
}

void mp_refuse(struct mp_ctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	refuse_v(c, NULL, fmt, ap);
	va_end(ap);
}

void mp_refuse_taint(struct mp_ctx *c, const struct taint *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	refuse_v(c, t, fmt, ap);
	va_end(ap);
}

/* A value written into a table is read back later as that column's: only
 * a column masked by the very rule that taints the value keeps it masked.
 * Copies anywhere else would come back in the clear. */
void mp_write(struct mp_ctx *c, const struct sj_node *rv, const char *col, const struct taint *t)
{
	const char *schema = cw_get_str(&c->w, rv, "schemaname"), *rel = cw_get_str(&c->w, rv, "relname");

	if (!t->on || c->dry || mp_stop(c))
		return;
	if (col && rel && !t->several && t->rule >= 0 &&
	    mp_rule_on(&c->m->rules[t->rule], schema, rel) &&
	    strcmp(c->m->rules[t->rule].column, col) == 0)
		return;
	mp_refuse_taint(c, t, "would be written to %s%s%s%s%s, where it is not masked",
			schema ? schema : "", schema ? "." : "", rel ? rel : "a table",
			col ? "." : "", col ? col : "");
}

/* ---- names ------------------------------------------------------------------------ */

const struct sj_node *mp_rv_body(const struct mp_ctx *c, const struct sj_node *n)
{
	const struct sj_node *in = cw_node_of(&c->w, n, "RangeVar");

	return in ? in : n;
}

/* What a column reference's last name may carry: the rules in scope that
 * name such a column, and what subqueries derived under that name. */
struct taint mp_by_name(const struct mp_ctx *c, const char *name)
{
	struct taint t = none;
	const struct mp_ent *e;

	if (c->saturated)
		return mp_any(MPS_UNKNOWN, NULL);
	for (size_t i = 0; i < c->n_scope; i++) {
		const struct pol_mask_rule *r = &c->m->rules[c->scope[i]];

		if (r->column && strcmp(r->column, name) == 0) {
			struct taint x = mp_rule_taint(c->scope[i]);

			mp_add(c, &t, &x);
		}
	}
	if ((e = mp_map_get(&c->names, name)))
		mp_add(c, &t, &e->a);
	return t;
}

void mp_name_add(struct mp_ctx *c, const char *name, const struct taint *t)
{
	struct mp_ent *e;

	if (!t->on || !name)
		return;
	if ((e = mp_map_put(c, &c->names, name)))
		mp_grow(c, &e->a, t);
}

/* A FROM item under name: its whole row, and what any column of it whose
 * name is not known here may carry. */
void mp_rel_add(struct mp_ctx *c, const char *name, const struct taint *whole,
		    const struct taint *any)
{
	struct mp_ent *e;

	mp_grow(c, &c->allwhole, whole);
	mp_grow(c, &c->anycol, any);
	if (!name || (!whole->on && !any->on))
		return;
	if ((e = mp_map_put(c, &c->rels, name))) {
		mp_grow(c, &e->a, whole);
		mp_grow(c, &e->b, any);
	}
}

/* VALUES' column names, made once per statement. */
const char *mp_values_name(struct mp_ctx *c, size_t i)
{
	char **v;

	if (i < c->n_colnames)
		return c->colnames[i];
	if (i >= 4096) /* past PostgreSQL's column limit: no name */
		return NULL;
	v = reallocarray(c->colnames, i + 1, sizeof(*v));
	if (!v) {
		c->r = -ENOMEM;
		return NULL;
	}
	c->colnames = v;
	for (; c->n_colnames <= i; c->n_colnames++)
		if (asprintf(&v[c->n_colnames], "column%zu", c->n_colnames + 1) < 0) {
			c->r = -ENOMEM;
			return NULL;
		}
	return v[i];
}

/* The name PostgreSQL gives an output column written without AS
 * (FigureColname in parse_target.c), and its strength there: 2 a name of
 * the expression, 1 a type's or keyword's, 0 none ("?column?"); -1 when
 * this code does not know the node (the caller then treats the name as
 * unknown). Only tainted columns' names matter. */
static int figure(const struct mp_ctx *c, const struct sj_node *n, const char **name);

const char *mp_last_string(const struct mp_ctx *c, const struct sj_node *list)
{
	const char *s = NULL, *x;

	if (!list || list->type != SJ_ARRAY)
		return NULL;
	for (const struct sj_node *m = sj_first(c->w.d, list); m; m = sj_next(c->w.d, m))
		if ((x = cw_string_node(&c->w, m)))
			s = x;
	return s;
}

/* EXPR sublink: its query's first column's name. */
static int sublink_name(const struct mp_ctx *c, const struct sj_node *sel, const char **name)
{
	const struct sj_node *b = cw_node_of(&c->w, sel, "SelectStmt"), *tl, *rt;
	const char *op;
	int k;

	while (b && (op = cw_get_str(&c->w, b, "op")) && strcmp(op, "SETOP_NONE") != 0)
		b = cw_get(&c->w, b, "larg");
	if (!b)
		return -1;
	if (cw_get(&c->w, b, "valuesLists")) {
		*name = "column1";
		return 2;
	}
	tl = cw_get(&c->w, b, "targetList");
	rt = cw_node_of(&c->w, tl && tl->type == SJ_ARRAY ? sj_first(c->w.d, tl) : NULL, "ResTarget");
	if (!rt)
		return -1;
	if ((*name = cw_get_str(&c->w, rt, "name")))
		return 2;
	k = figure(c, cw_get(&c->w, rt, "val"), name);
	if (k == 0)
		*name = "?column?";
	return k < 0 ? -1 : 2;
}

static int figure(const struct mp_ctx *c, const struct sj_node *n, const char **name)
{
	static const char *const weak[] = {
		"A_Const", "ParamRef", "BoolExpr", "NullTest", "BooleanTest", "SQLValueFunction",
		"SetToDefault", "CurrentOfExpr",
	};
	const struct walk *w = &c->w;
	const char *type, *s;
	const struct sj_node *b = cw_unwrap(w, n, &type);
	int k;

	if (!n)
		return 0;
	if (!b)
		return -1;
	if (strcmp(type, "ColumnRef") == 0) {
		*name = mp_last_string(c, cw_get(w, b, "fields"));
		return *name ? 2 : 0;
	}
	if (strcmp(type, "A_Indirection") == 0) {
		if ((*name = mp_last_string(c, cw_get(w, b, "indirection"))))
			return 2;
		return figure(c, cw_get(w, b, "arg"), name);
	}
	if (strcmp(type, "FuncCall") == 0) {
		*name = mp_last_string(c, cw_get(w, b, "funcname"));
		return *name ? 2 : -1;
	}
	if (strcmp(type, "A_Expr") == 0) {
		*name = "nullif";
		return cw_streq(cw_get_str(w, b, "kind"), "AEXPR_NULLIF") ? 2 : 0;
	}
	if (strcmp(type, "TypeCast") == 0) {
		k = figure(c, cw_get(w, b, "arg"), name);
		if (k < 0 || k > 1)
			return k;
		s = mp_last_string(c, cw_get(w, cw_get(w, b, "typeName"), "names"));
		if (!s)
			return -1;
		*name = s;
		return 1;
	}
	if (strcmp(type, "CollateClause") == 0)
		return figure(c, cw_get(w, b, "arg"), name);
	if (strcmp(type, "GroupingFunc") == 0) {
		*name = "grouping";
		return 2;
	}
	if (strcmp(type, "SubLink") == 0) {
		s = cw_get_str(w, b, "subLinkType");
		if (cw_streq(s, "EXISTS_SUBLINK") || cw_streq(s, "ARRAY_SUBLINK")) {
			*name = s[0] == 'E' ? "exists" : "array";
			return 2;
		}
		if (cw_streq(s, "EXPR_SUBLINK"))
			return sublink_name(c, cw_get(w, b, "subselect"), name);
		return 0;
	}
	if (strcmp(type, "CaseExpr") == 0) {
		k = figure(c, cw_get(w, b, "defresult"), name);
		if (k >= 0 && k <= 1) {
			*name = "case";
			return 1;
		}
		return k;
	}
	if (strcmp(type, "A_ArrayExpr") == 0 || strcmp(type, "RowExpr") == 0) {
		*name = type[0] == 'A' ? "array" : "row";
		return 1;
	}
	if (strcmp(type, "CoalesceExpr") == 0) {
		*name = "coalesce";
		return 2;
	}
	if (strcmp(type, "MinMaxExpr") == 0) {
		s = cw_get_str(w, b, "op");
		*name = cw_streq(s, "IS_GREATEST") ? "greatest" : "least";
		return cw_streq(s, "IS_GREATEST") || cw_streq(s, "IS_LEAST") ? 2 : -1;
	}
	if (strcmp(type, "XmlExpr") == 0) {
		static const char *const ops[][2] = {
			{ "IS_XMLCONCAT", "xmlconcat" }, { "IS_XMLELEMENT", "xmlelement" },
			{ "IS_XMLFOREST", "xmlforest" }, { "IS_XMLPARSE", "xmlparse" },
			{ "IS_XMLPI", "xmlpi" }, { "IS_XMLROOT", "xmlroot" },
			{ "IS_XMLSERIALIZE", "xmlserialize" }, { "IS_DOCUMENT", NULL },
		};

		s = cw_get_str(w, b, "op");
		for (size_t i = 0; s && i < ARRAY_SIZE(ops); i++)
			if (strcmp(s, ops[i][0]) == 0) {
				*name = ops[i][1];
				return *name ? 2 : 0;
			}
		return -1;
	}
	if (strcmp(type, "XmlSerialize") == 0) {
		*name = "xmlserialize";
		return 2;
	}
	return cw_in_list(type, weak, ARRAY_SIZE(weak)) ? 0 : -1;
}

const char *mp_out_name(const struct mp_ctx *c, const struct sj_node *val)
{
	const char *name = NULL;
	int k = figure(c, val, &name);

	return k < 0 ? NULL : k == 0 ? "?column?" : name;
}
