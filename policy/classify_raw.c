/* The classifier's fast path: PostgreSQL's own parse tree, read directly.
 *
 * libpg_query turns a parse tree into JSON and classify_json reads the JSON
 * back; for a short statement the two JSON steps cost more than the parse.
 * Here the tree from pg_query_raw_parse is read in place, for the node
 * kinds that make up ordinary queries and writes (SELECT, INSERT, UPDATE,
 * DELETE with expressions, joins, subqueries, CTEs, calls) and the
 * transaction statements around them. A tree holding any other kind, or a
 * shape this file does not read (SELECT INTO, FOR UPDATE, windows,
 * ON CONFLICT, set_config, functions in FROM, ...), is left to the JSON
 * path whole: 0 is returned and the caller classifies the text as before.
 *
 * The result must be exactly classify_json's for the same text: the unit
 * test compares the two paths over the classifier's corpus and PostgreSQL's
 * regression SQL, and the first call here compares them on statements
 * covering every kind this file reads, turning the fast path off for the
 * life of the process if any differs (a libpg_query built from other
 * PostgreSQL headers than this file was).
 *
 * The node structs come from PostgreSQL 15's server headers; libpg_query
 * 15-4.0.0 is PostgreSQL 15's parser. Nothing here touches libpg_query's
 * globals (they are thread-local there, not in these headers): memory is
 * entered and left through pg_query_enter/exit_memory_context. */
#include "postgres.h"
#include "nodes/parsenodes.h"
#include "nodes/pg_list.h"
#include "nodes/value.h"
#include <pg_query.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes" /* f() for f(void) */
#include <pg_query_internal.h>
#pragma GCC diagnostic pop
/* PostgreSQL's pg_config.h and ours both describe a package. */
#undef PACKAGE_BUGREPORT
#undef PACKAGE_NAME
#undef PACKAGE_STRING
#undef PACKAGE_TARNAME
#undef PACKAGE_URL
#undef PACKAGE_VERSION
#include "config.h"
#include "policy/classify_walk.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

/* Deeper trees go the JSON way, which caps them its own way. */
#define RAW_MAX_DEPTH 64

struct rw {
	struct walk *w;
	unsigned depth;
	bool bail; /* a node or shape this file does not read */
};

static void node(struct rw *r, const void *n);

static void list(struct rw *r, const List *l)
{
	const ListCell *lc;

	foreach (lc, l) {
		if (r->bail)
			return;
		node(r, lfirst(lc));
	}
}

/* A list of String nodes (a name); false for anything else. */
static bool strings(const List *l)
{
	const ListCell *lc;

	foreach (lc, l)
		if (!lfirst(lc) || !IsA(lfirst(lc), String))
			return false;
	return true;
}

static void range_var(struct rw *r, const RangeVar *rv, bool written)
{
	if (rv->alias && !strings(rv->alias->colnames)) {
		r->bail = true;
		return;
	}
	cw_add_rel(r->w, rv->catalogname, rv->schemaname, rv->relname, written);
}

/* INSERT/UPDATE/DELETE's target: written, and named as any RangeVar. */
static void target(struct rw *r, const RangeVar *rv)
{
	if (!rv) {
		r->bail = true;
		return;
	}
	range_var(r, rv, true);
}

static void func_call(struct rw *r, const FuncCall *fc)
{
	int k = list_length(fc->funcname);
	const char *name, *schema;

	if (k < 1 || k > 4 || !strings(fc->funcname)) {
		r->bail = true;
		return;
	}
	name = strVal(llast(fc->funcname));
	schema = k >= 2 ? strVal(list_nth(fc->funcname, k - 2)) : NULL;
	if (strcmp(name, "set_config") == 0) { /* its setting name is the JSON path's */
		r->bail = true;
		return;
	}
	cw_add_fn(r->w, schema, name);
	cw_func_effects(r->w, name, (size_t)list_length(fc->args));
	list(r, fc->args);
	list(r, fc->agg_order);
	node(r, fc->agg_filter);
	node(r, fc->over);
}

/* Functions in FROM: each item is [call, column definitions]; column
 * definitions are the JSON path's. */
static void range_function(struct rw *r, const RangeFunction *f)
{
	const ListCell *lc;

	if (f->coldeflist || (f->alias && !strings(f->alias->colnames))) {
		r->bail = true;
		return;
	}
	foreach (lc, f->functions) {
		const List *item = lfirst(lc);

		if (!item || !IsA(item, List) || list_length(item) != 2 || lsecond(item)) {
			r->bail = true;
			return;
		}
		node(r, linitial(item));
	}
}

static void select_stmt(struct rw *r, const SelectStmt *s)
{
	if (s->intoClause) {
		r->bail = true;
		return;
	}
	cw_add(r->w, B(READ));
	list(r, s->distinctClause); /* plain DISTINCT is a list of one NULL */
	list(r, s->targetList);
	list(r, s->fromClause);
	node(r, s->whereClause);
	list(r, s->groupClause);
	node(r, s->havingClause);
	list(r, s->windowClause);
	list(r, s->valuesLists);
	list(r, s->sortClause);
	node(r, s->limitOffset);
	node(r, s->limitCount);
	list(r, s->lockingClause);
	node(r, s->withClause);
	node(r, s->larg);
	node(r, s->rarg);
}

static void insert_stmt(struct rw *r, const InsertStmt *s)
{
	cw_add(r->w, B(READ) | B(WRITE));
	target(r, s->relation);
	list(r, s->cols);
	node(r, s->selectStmt);
	node(r, s->onConflictClause);
	list(r, s->returningList);
	node(r, s->withClause);
}

static void update_stmt(struct rw *r, const UpdateStmt *s)
{
	cw_add(r->w, B(READ) | B(WRITE));
	if (!s->whereClause)
		cw_add(r->w, B(UPDATE_WITHOUT_WHERE));
	target(r, s->relation);
	list(r, s->targetList);
	node(r, s->whereClause);
	list(r, s->fromClause);
	list(r, s->returningList);
	node(r, s->withClause);
}

static void delete_stmt(struct rw *r, const DeleteStmt *s)
{
	cw_add(r->w, B(READ) | B(WRITE));
	if (!s->whereClause) /* WHERE CURRENT OF is a WHERE too */
		cw_add(r->w, B(DELETE_WITHOUT_WHERE));
	target(r, s->relation);
	list(r, s->usingClause);
	node(r, s->whereClause);
	list(r, s->returningList);
	node(r, s->withClause);
}

/* BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ... without options (modes such as
 * READ WRITE and two-phase commit are the JSON path's). */
static void transaction_stmt(struct rw *r, const TransactionStmt *s)
{
	switch (s->kind) {
	case TRANS_STMT_BEGIN:
	case TRANS_STMT_START:
	case TRANS_STMT_COMMIT:
	case TRANS_STMT_ROLLBACK:
	case TRANS_STMT_SAVEPOINT:
	case TRANS_STMT_RELEASE:
	case TRANS_STMT_ROLLBACK_TO:
		break;
	default:
		r->bail = true;
		return;
	}
	if (s->options) {
		r->bail = true;
		return;
	}
	cw_add(r->w, B(READ));
}

static void expr_node(struct rw *r, const Node *n)
{
	switch (nodeTag(n)) {
	case T_String:
	case T_Integer:
	case T_Float:
	case T_Boolean:
	case T_BitString:
	case T_A_Star:
	case T_A_Const:
	case T_ParamRef:
	case T_SetToDefault:
	case T_SQLValueFunction:
		break;
	case T_ColumnRef:
		list(r, ((const ColumnRef *)n)->fields);
		break;
	case T_A_Expr: {
		const A_Expr *e = (const A_Expr *)n;

		if (!strings(e->name)) {
			r->bail = true;
			break;
		}
		node(r, e->lexpr);
		node(r, e->rexpr);
		break;
	}
	case T_BoolExpr:
		list(r, ((const BoolExpr *)n)->args);
		break;
	case T_NullTest:
		node(r, ((const NullTest *)n)->arg);
		break;
	case T_BooleanTest:
		node(r, ((const BooleanTest *)n)->arg);
		break;
	case T_TypeCast: {
		const TypeCast *c = (const TypeCast *)n;

		node(r, c->arg);
		if (c->typeName && !strings(c->typeName->names)) {
			r->bail = true;
			break;
		}
		if (c->typeName) {
			list(r, c->typeName->typmods);
			list(r, c->typeName->arrayBounds);
		}
		break;
	}
	case T_CollateClause: {
		const CollateClause *c = (const CollateClause *)n;

		if (!strings(c->collname))
			r->bail = true;
		node(r, c->arg);
		break;
	}
	case T_FuncCall:
		func_call(r, (const FuncCall *)n);
		break;
	case T_A_Indirection:
		node(r, ((const A_Indirection *)n)->arg);
		list(r, ((const A_Indirection *)n)->indirection);
		break;
	case T_A_Indices:
		node(r, ((const A_Indices *)n)->lidx);
		node(r, ((const A_Indices *)n)->uidx);
		break;
	case T_A_ArrayExpr:
		list(r, ((const A_ArrayExpr *)n)->elements);
		break;
	case T_RowExpr:
		list(r, ((const RowExpr *)n)->args);
		break;
	case T_CaseExpr:
		node(r, ((const CaseExpr *)n)->arg);
		list(r, ((const CaseExpr *)n)->args);
		node(r, ((const CaseExpr *)n)->defresult);
		break;
	case T_CaseWhen:
		node(r, ((const CaseWhen *)n)->expr);
		node(r, ((const CaseWhen *)n)->result);
		break;
	case T_CoalesceExpr:
		list(r, ((const CoalesceExpr *)n)->args);
		break;
	case T_MinMaxExpr:
		list(r, ((const MinMaxExpr *)n)->args);
		break;
	case T_NamedArgExpr:
		node(r, ((const NamedArgExpr *)n)->arg);
		break;
	case T_GroupingFunc:
		list(r, ((const GroupingFunc *)n)->args);
		break;
	case T_CurrentOfExpr:
		break;
	case T_SubLink: {
		const SubLink *s = (const SubLink *)n;

		if (!strings(s->operName)) {
			r->bail = true;
			break;
		}
		node(r, s->testexpr);
		node(r, s->subselect);
		break;
	}
	default:
		r->bail = true;
	}
}

static void node(struct rw *r, const void *p)
{
	const Node *n = p;

	if (!n || r->bail)
		return;
	if (r->depth >= RAW_MAX_DEPTH) {
		r->bail = true;
		return;
	}
	r->depth++;
	switch (nodeTag(n)) {
	case T_List:
		list(r, (const List *)n);
		break;
	case T_SelectStmt:
		select_stmt(r, (const SelectStmt *)n);
		break;
	case T_InsertStmt:
		insert_stmt(r, (const InsertStmt *)n);
		break;
	case T_UpdateStmt:
		update_stmt(r, (const UpdateStmt *)n);
		break;
	case T_DeleteStmt:
		delete_stmt(r, (const DeleteStmt *)n);
		break;
	case T_WithClause:
		list(r, ((const WithClause *)n)->ctes);
		break;
	case T_CommonTableExpr: {
		const CommonTableExpr *c = (const CommonTableExpr *)n;

		if (c->search_clause || c->cycle_clause || !strings(c->aliascolnames))
			r->bail = true;
		else
			node(r, c->ctequery);
		break;
	}
	case T_ResTarget:
		list(r, ((const ResTarget *)n)->indirection);
		node(r, ((const ResTarget *)n)->val);
		break;
	case T_MultiAssignRef:
		node(r, ((const MultiAssignRef *)n)->source);
		break;
	case T_SortBy:
		if (!strings(((const SortBy *)n)->useOp))
			r->bail = true;
		else
			node(r, ((const SortBy *)n)->node);
		break;
	case T_RangeVar:
		range_var(r, (const RangeVar *)n, false);
		break;
	case T_JoinExpr: {
		const JoinExpr *j = (const JoinExpr *)n;

		if (!strings(j->usingClause) || (j->alias && !strings(j->alias->colnames))) {
			r->bail = true;
			break;
		}
		node(r, j->larg);
		node(r, j->rarg);
		node(r, j->quals);
		break;
	}
	case T_RangeFunction:
		range_function(r, (const RangeFunction *)n);
		break;
	case T_LockingClause: /* SELECT ... FOR UPDATE/SHARE locks rows */
		cw_add(r->w, B(WRITE));
		list(r, ((const LockingClause *)n)->lockedRels);
		break;
	case T_WindowDef: {
		const WindowDef *d = (const WindowDef *)n;

		list(r, d->partitionClause);
		list(r, d->orderClause);
		node(r, d->startOffset);
		node(r, d->endOffset);
		break;
	}
	case T_OnConflictClause: {
		const OnConflictClause *c = (const OnConflictClause *)n;

		node(r, c->infer);
		list(r, c->targetList);
		node(r, c->whereClause);
		break;
	}
	case T_InferClause:
		list(r, ((const InferClause *)n)->indexElems);
		node(r, ((const InferClause *)n)->whereClause);
		break;
	case T_IndexElem: {
		const IndexElem *e = (const IndexElem *)n;

		if (e->opclassopts || !strings(e->collation) || !strings(e->opclass))
			r->bail = true;
		else
			node(r, e->expr);
		break;
	}
	case T_GroupingSet:
		list(r, ((const GroupingSet *)n)->content);
		break;
	case T_RangeSubselect: {
		const RangeSubselect *s = (const RangeSubselect *)n;

		if (s->alias && !strings(s->alias->colnames))
			r->bail = true;
		else
			node(r, s->subquery);
		break;
	}
	default:
		expr_node(r, n);
	}
	r->depth--;
}

/* The statement kinds the fast path starts from. */
static void top(struct rw *r, const Node *n)
{
	if (!n) {
		r->bail = true;
		return;
	}
	switch (nodeTag(n)) {
	case T_SelectStmt:
	case T_InsertStmt:
	case T_UpdateStmt:
	case T_DeleteStmt:
		node(r, n);
		break;
	case T_TransactionStmt:
		transaction_stmt(r, (const TransactionStmt *)n);
		break;
	case T_VariableShowStmt:
		cw_add(r->w, B(READ));
		break;
	default:
		r->bail = true;
	}
}

/* 1 done, 0 not for the fast path, -ENOMEM. */
static int classify_tree(const List *tree, const char *sql, size_t len, struct sql_class *out)
{
	struct walk w = { 0 };
	struct rw r = { .w = &w };
	size_t n = (size_t)list_length(tree), i = 0;
	const ListCell *lc;
	int ret = 1;

	if (n == 0)
		return 0; /* nothing but blanks and comments */
	*out = (struct sql_class){ 0 };
	out->v = calloc(n, sizeof(*out->v));
	if (!out->v)
		return -ENOMEM;
	foreach (lc, tree) {
		const RawStmt *rs = lfirst(lc);
		struct sql_stmt *st = &out->v[i++];

		out->n = i;
		if (!rs || !IsA(rs, RawStmt) || rs->stmt_location < 0 || rs->stmt_len < 0) {
			ret = 0;
			break;
		}
		cw_stmt_span((uint32_t)rs->stmt_location, (uint32_t)rs->stmt_len, sql, len, st);
		cw_stmt_begin(&w, st);
		top(&r, rs->stmt);
		if (r.bail) {
			ret = 0;
			break;
		}
		ret = cw_stmt_finish(&w, st);
		if (ret < 0)
			break;
		ret = 1;
	}
	free(w.rels);
	free(w.fns);
	free(w.schemas);
	if (ret != 1)
		sql_class_free(out);
	return ret;
}

static int classify_raw_now(const char *sql, size_t len, struct sql_class *out)
{
	MemoryContext ctx = pg_query_enter_memory_context();
	PgQueryInternalParsetreeAndError res = pg_query_raw_parse(sql);
	int r = 0;

	/* A parse error is the JSON path's to word. */
	if (!res.error)
		r = classify_tree(res.tree, sql, len, out);
	free(res.stderr_buffer);
	if (res.error)
		pg_query_free_error(res.error);
	pg_query_exit_memory_context(ctx);
	return r;
}

/* ---- the check that the two paths agree ------------------------------------ */

static bool opt_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool same(const struct sql_class *a, const struct sql_class *b)
{
	if (a->n != b->n || !opt_eq(a->error, b->error))
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct sql_stmt *x = &a->v[i], *y = &b->v[i];

		if (x->off != y->off || x->len != y->len || x->classes != y->classes ||
		    x->flags != y->flags || !opt_eq(x->name, y->name) || x->n_rels != y->n_rels ||
		    x->n_functions != y->n_functions || x->n_schemas != y->n_schemas)
			return false;
		for (size_t j = 0; j < x->n_rels; j++)
			if (!opt_eq(x->rels[j].schema, y->rels[j].schema) ||
			    !opt_eq(x->rels[j].name, y->rels[j].name) ||
			    !opt_eq(x->rels[j].catalog, y->rels[j].catalog) ||
			    x->rels[j].written != y->rels[j].written)
				return false;
		for (size_t j = 0; j < x->n_functions; j++)
			if (!opt_eq(x->functions[j], y->functions[j]))
				return false;
		for (size_t j = 0; j < x->n_schemas; j++)
			if (!opt_eq(x->schemas[j], y->schemas[j]))
				return false;
	}
	return true;
}

int classify_raw_compare(const char *sql)
{
	struct sql_class fast, slow = { 0 };
	int r, handled;

	handled = classify_raw_now(sql, strlen(sql), &fast);
	if (handled <= 0)
		return handled;
	r = sql_classify_json_path(sql, &slow);
	if (r == 0)
		r = same(&fast, &slow) ? 1 : -EPROTO;
	sql_class_free(&fast);
	sql_class_free(&slow);
	return r;
}

/* One statement per kind and shape the fast path reads. */
static const char *const self_test[] = {
	"SELECT abalance FROM pgbench_accounts WHERE aid = 1",
	"select distinct a.x, b.\"Y\", count(*) filter (where a.z > 0) from s.t a join c.s2.u b "
	"using (k) left join (select 1 as k) q on q.k = a.k where a.x in (1, 2) and not b.y is null "
	"and a.z is true group by 1, 2 having sum(a.z) > 3 order by 1 desc limit 10 offset 2",
	"with w as (delete from x.t where id = $1 returning *) select coalesce(a, b), "
	"greatest(1, 2), case when c then d else e end, (f).g, h[1:2], array[1, 2], row(1, 2), "
	"'a'::text collate \"C\", current_user, exists (select 1 from w), nextval('sq') from w",
	"insert into t (a, b[1]) values (1, default), (2, 3) returning a",
	"insert into s.t select * from u union all select * from v",
	"update t set (a, b) = (select 1, 2), c = c + 1 from u where t.id = u.id",
	"update t set a = 1",
	"delete from t using u",
	"begin; select 1; commit",
	"show search_path",
	"select row_number() over (partition by a order by b rows between 1 preceding and current row), "
	"rank() over w from t, generate_series(1, 3) g, lateral unnest(array[1]) with ordinality u(x, n) "
	"group by rollup (a, b), grouping sets ((a), ()) window w as (order by a) for update of t skip locked",
	"insert into t values (1) on conflict (a, lower(b) collate \"C\") where c do update set b = excluded.b "
	"where t.a > 0",
	"select f(a => 1, b => 2), grouping(a) from t group by a",
	"select ts_rewrite('a'::tsquery, 'b'::tsquery), pg_catalog.query_to_xml('x', true, true, '')",
};

static bool fast_ok;
static pthread_once_t fast_once = PTHREAD_ONCE_INIT;

static void fast_check(void)
{
	for (size_t i = 0; i < ARRAY_SIZE(self_test); i++)
		if (classify_raw_compare(self_test[i]) != 1)
			return;
	fast_ok = true;
}

bool sql_classify_fast_enabled(void)
{
	pthread_once(&fast_once, fast_check);
	return fast_ok;
}

int classify_raw(const char *sql, size_t len, struct sql_class *out)
{
	if (!sql_classify_fast_enabled())
		return 0;
	return classify_raw_now(sql, len, out);
}
