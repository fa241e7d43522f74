/* Inside the mask planner (maskplan.h). maskplan_taint.c holds taints,
 * names and refusals; maskplan_walk.c follows taint through expressions and
 * output lists, maskplan_query.c through queries; maskplan.c reads
 * statements (COPY, EXPLAIN, cursors, DDL), drives the walk to its fixed
 * point and writes the plans.
 *
 * The walk is by name, over one statement at a time, and conservative. A
 * pass over the statement reads what it knows so far (the names a subquery,
 * CTE or function in FROM derives from a masked value, the relations whose
 * rows carry one) and adds what it finds; it is repeated until a pass adds
 * nothing, so a name used before the clause that taints it (a recursive CTE,
 * a sublink in ORDER BY) is still caught. What is known only grows, so the
 * result does not depend on the order of the walk, and a refusal found in
 * any pass stands. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "policy/classify_walk.h"
#include "policy/maskplan.h"

/* At most this many passes; a statement still growing after them is
 * planned once more with every name tainted (fail closed). */
#define MP_MAX_PASSES 16u
/* Nesting of the walk (JSON levels), as the classifier's walk. */
#define MP_MAX_DEPTH SJ_MAX_DEPTH

/* Where a taint was first met, for the refusal message. */
enum mp_src {
	MPS_COLUMN,   /* a masked column (by name) */
	MPS_VIEW,     /* a column of a tainted view (src: its name) */
	MPS_FUNCTION, /* a user function's result (src: its name) */
	MPS_RELATION, /* a relation that shows any column's values (src) */
	MPS_UNKNOWN,  /* fail closed: the statement could not be followed */
};

/* A set of rules, as mp_column keeps it: the first rule, whether there
 * are more, whether their methods differ (or one is MP_RULE_ANY). */
struct taint {
	bool on, several, mixed;
	uint8_t kind;     /* enum mp_src of the first rule */
	int rule;         /* index into pol_mask.rules, or MP_RULE_ANY */
	const char *src;  /* MPS_VIEW, MPS_FUNCTION, MPS_RELATION: its name */
};

/* A map from names (pointing into the parse tree) to two taints. */
struct mp_ent {
	const char *key;
	struct taint a, b;
};

struct mp_map {
	struct mp_ent *v;
	uint32_t *slots;  /* open addressing: index into v + 1, 0 = empty */
	uint32_t n, cap, nslots;
};

/* One output column of a query; star: a * expansion (positions unknown). */
struct ocol {
	const char *name; /* as PostgreSQL names it; NULL: not known here */
	struct taint t;
	bool star;
};

/* A query's output. */
struct rowsig {
	struct ocol *v;
	size_t n, cap;
	bool star;
	/* * expansions of plain tables: the server reports those columns
	 * with their origin at the top of a SELECT or RETURNING. */
	struct taint origin;
	/* Columns whose names are not known (a view's or function's, by *):
	 * any name may be one of them. */
	struct taint anycol;
};

/* A FROM item of the query being walked, for * expansion. */
struct rte {
	const char *name;
	struct taint origin, oid0, anycol;
};

/* What earlier statements of the same text created (the catalog the agent
 * holds does not know them yet). */
struct mp_lview {
	const char *schema, *name;
	struct taint t;
};

struct mp_local {
	struct mp_lview *views;
	size_t n_views, cap_views;
	const char **fns;
	size_t n_fns, cap_fns;
};

struct mp_ctx {
	struct walk w;                  /* .d only: for the cw_* helpers */
	const struct pol_mask *m;
	const struct mask_catalog *cat;
	const struct mp_local *loc;
	/* The statement, read before the walk. */
	size_t *scope;                  /* rules whose table it names */
	size_t n_scope, cap_scope;
	struct mp_map relnames;         /* every name that can qualify a column */
	/* Grows to a fixed point. */
	struct mp_map names;            /* derived output names: a */
	struct mp_map rels;             /* FROM item names: a = whole row, b = any column */
	struct mp_map ctes;             /* CTE names: a = whole row, b = any column */
	struct taint anycol;            /* a column of unknown name may carry this */
	struct taint allwhole;          /* every FROM item's row */
	bool changed, saturated;
	/* One pass. */
	struct rte *rtes;
	size_t n_rtes, cap_rtes;
	struct taint deep;              /* everything referenced so far */
	const char *clause;             /* strict = yes: the comparing clause being walked */
	bool dry;                       /* nothing walked runs (EXPLAIN, a view's query) */
	bool user_fn;                   /* a user function is called */
	unsigned depth;
	char *why;                      /* the first refusal */
	/* Names made up here (VALUES' columnN), alive for the statement. */
	char **colnames;
	size_t n_colnames;
	int r;                          /* -ENOMEM, -E2BIG */
};

static inline bool mp_stop(const struct mp_ctx *c)
{
	return c->r || c->why;
}

/* Taints, rules, names (maskplan_taint.c). */
bool mp_add(const struct mp_ctx *c, struct taint *a, const struct taint *b);
/* mp_add into what only grows: c->changed when it grew. */
void mp_grow(struct mp_ctx *c, struct taint *a, const struct taint *b);
struct taint mp_rule_taint(size_t rule);
struct taint mp_any(enum mp_src kind, const char *src);
/* Rules (in scope) on relation [schema.]rel; the view or statistics taint
 * of a relation name (the catalog's, or made earlier in the text). */
struct taint mp_table_rules(const struct mp_ctx *c, const char *schema, const char *rel);
struct taint mp_view_taint(const struct mp_ctx *c, const char *schema, const char *rel);
bool mp_rule_on(const struct pol_mask_rule *r, const char *schema, const char *rel);
/* A RangeVar's body, wrapped or not. */
const struct sj_node *mp_rv_body(const struct mp_ctx *c, const struct sj_node *n);
/* What a column reference's last name may carry; a derived name, a FROM
 * item (whole row, any column) found to carry a taint. */
struct taint mp_by_name(const struct mp_ctx *c, const char *name);
void mp_name_add(struct mp_ctx *c, const char *name, const struct taint *t);
void mp_rel_add(struct mp_ctx *c, const char *name, const struct taint *whole,
		const struct taint *any);
/* VALUES' column i's name; an output column's name without AS (NULL: not
 * known here). */
const char *mp_values_name(struct mp_ctx *c, size_t i);
/* The last String node of a list (a qualified name's own part). */
const char *mp_last_string(const struct mp_ctx *c, const struct sj_node *list);
const char *mp_out_name(const struct mp_ctx *c, const struct sj_node *val);

/* Maps. */
struct mp_ent *mp_map_get(const struct mp_map *mp, const char *key);
struct mp_ent *mp_map_put(struct mp_ctx *c, struct mp_map *mp, const char *key);
void mp_map_clear(struct mp_map *mp);

/* Refusals: the first one wins; the walk stops. */
void mp_refuse(struct mp_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mp_refuse_taint(struct mp_ctx *c, const struct taint *t, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* t was written into [schema.]rel.col (col NULL: a column not known). */
void mp_write(struct mp_ctx *c, const struct sj_node *rv, const char *col, const struct taint *t);

/* Expressions and output lists (maskplan_walk.c). */
bool mp_enter(struct mp_ctx *c);  /* false: stop (depth cap, error, refusal) */
void mp_leave(struct mp_ctx *c);
/* Something referenced: counted for the enclosing sublink; with strict,
 * refused inside a comparing clause. */
void mp_seen(struct mp_ctx *c, const struct taint *t);
struct taint mp_expr(struct mp_ctx *c, const struct sj_node *n);
struct taint mp_in_clause(struct mp_ctx *c, const struct sj_node *n, const char *clause);
struct taint mp_fields(struct mp_ctx *c, const struct sj_node *obj);
struct ocol *mp_rs_push(struct mp_ctx *c, struct rowsig *rs, const char *name,
			const struct taint *t, bool star);
/* A target list or RETURNING into rs; lvl: the query's first FROM item in
 * c->rtes. For EXISTS nothing of it counts. */
void mp_targets(struct mp_ctx *c, const struct sj_node *list, struct rowsig *rs, size_t lvl,
		bool exists);
void mp_sort_list(struct mp_ctx *c, const struct sj_node *list, const struct rowsig *rs,
		  const char *clause);
void mp_distinct(struct mp_ctx *c, const struct sj_node *dc, const struct rowsig *rs);
/* Everything a query's output may carry (origin columns included). */
struct taint mp_rowsig_whole(const struct mp_ctx *c, const struct rowsig *rs);
void mp_rowsig_free(struct rowsig *rs);

/* Queries (maskplan_query.c). */
/* A query (SelectStmt, InsertStmt, UpdateStmt, DeleteStmt, MergeStmt,
 * wrapped or a bare SelectStmt body) into out (zeroed by the caller; free
 * with mp_rowsig_free). */
void mp_query(struct mp_ctx *c, const struct sj_node *n, struct rowsig *out);
void mp_query_body(struct mp_ctx *c, const char *type, const struct sj_node *b,
		   struct rowsig *rs, bool exists);

/* For the unit test: plan libpg_query's JSON for text (json modified in
 * place), as mask_plan does after parsing. 0, -ENOMEM, or -EINVAL/-E2BIG
 * when the tree cannot be read (out untouched). */
int mp_plan_json(char *json, const struct pol_mask *m, const struct mask_catalog *cat,
		 struct mask_plans *out) WUR;
