/* Inside the SQL classifier (classify.h): the walk over libpg_query's
 * parse tree. classify_walk.c holds the walk and what it collects;
 * classify_nodes.c the table of node types and what each one means.
 *
 * The walk is generic: every object and array of the tree is visited, so a
 * statement hidden anywhere (a CTE, a subquery, EXPLAIN ANALYZE, CREATE ...
 * AS, PREPARE, COPY's query) is found. A node {"TypeName": {...}} whose
 * type is in the table adds its classes and may do more (mark the relation
 * it writes, read a setting's name); any other node ending in "Stmt" is a
 * statement this code does not know: opaque, never read.
 *
 * Code that does not run now (EXPLAIN without ANALYZE, the query of a view,
 * rule actions, function bodies, policy and column expressions) is walked
 * "dry": its relations and functions are named (the planner folds
 * immutable calls, so EXPLAIN can run them), its classes, flags and writes
 * are not counted. The statements that create such code are opaque or ddl
 * themselves. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "policy/classify.h"
#include "policy/sqljson.h"

#define B(c) CLASS_BIT(CLASS_##c)

struct rel_ref {
	const char *catalog, *schema, *name;
	bool written;
};

struct fn_ref {
	const char *schema, *name;
};

/* One statement's walk. Strings point into the decoded JSON until the
 * statement is finished (classify.c copies them). Every list grows at most
 * by one entry per node, so sj_parse's node cap bounds them. */
struct walk {
	const struct sj_doc *d;
	struct sql_stmt *st;
	struct rel_ref *rels;
	size_t n_rels, cap_rels;
	struct fn_ref *fns;
	size_t n_fns, cap_fns;
	const char **schemas;
	size_t n_schemas, cap_schemas;
	const char *name;   /* PREPARE/EXECUTE/DEALLOCATE */
	unsigned depth;
	unsigned dry;       /* > 0: inside code that does not run now */
	int r;              /* first error: -ENOMEM, -E2BIG */
};

static inline void cw_add(struct walk *w, uint32_t classes)
{
	if (!w->dry)
		w->st->classes |= classes;
}

static inline void cw_flag(struct walk *w, uint32_t flags)
{
	if (!w->dry)
		w->st->flags |= flags;
}

static inline bool cw_streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static inline const struct sj_node *cw_get(const struct walk *w, const struct sj_node *obj,
					   const char *key)
{
	return sj_get(w->d, obj, key);
}

static inline const char *cw_get_str(const struct walk *w, const struct sj_node *obj,
				     const char *key)
{
	return sj_get_str(w->d, obj, key);
}

static inline bool cw_get_true(const struct walk *w, const struct sj_node *obj, const char *key)
{
	const struct sj_node *m = cw_get(w, obj, key);

	return m && m->type == SJ_TRUE;
}

/* Read libpg_query's JSON output (modified in place, capped) into doc:
 * its "stmts" array. 0, -EINVAL (not the tree expected), -E2BIG, -ENOMEM;
 * doc is cleared by the caller either way. */
int cw_parse_stmts(struct sj_doc *doc, char *json, const struct sj_node **stmts) WUR;
/* The tree. */
const struct sj_node *cw_unwrap(const struct walk *w, const struct sj_node *n, const char **type);
const struct sj_node *cw_node_of(const struct walk *w, const struct sj_node *n, const char *want);
const char *cw_string_node(const struct walk *w, const struct sj_node *n);
int cw_names(const struct walk *w, const struct sj_node *n, const char **out, int max);
bool cw_in_list(const char *s, const char *const *list, size_t n);
bool cw_is_statement_type(const char *type);

/* What the statement names. */
void cw_add_rel(struct walk *w, const char *catalog, const char *schema, const char *name,
		bool written);
void cw_add_rangevar(struct walk *w, const struct sj_node *rv, bool written);
void cw_mark_written(struct walk *w, const struct sj_node *n);
void cw_add_schema(struct walk *w, const char *schema);
void cw_add_qualified(struct walk *w, const struct sj_node *n);
void cw_add_fn(struct walk *w, const char *schema, const char *name);
void cw_set_name(struct walk *w, const char *name);
void cw_add_object(struct walk *w, const char *objtype, const struct sj_node *obj, bool written);

/* What a call of the built-in name does besides reading (not set_config). */
void cw_func_effects(struct walk *w, const char *name, size_t nargs);
/* One statement: begin resets the walk for st; finish copies what it
 * collected into st (the strings must still be alive) and returns w->r or
 * -ENOMEM. */
void cw_stmt_begin(struct walk *w, struct sql_stmt *st);
int cw_stmt_finish(struct walk *w, struct sql_stmt *st) WUR;
/* st->off/len from libpg_query's stmt_location and stmt_len. */
void cw_stmt_span(uint32_t loc, uint32_t stmt_len, const char *text, size_t len,
		  struct sql_stmt *st);
/* Walk a value; errors land in w->r. */
void cw_walk(struct walk *w, const struct sj_node *n);

/* The node table (classify_nodes.c). */
enum walk_mode {
	WALK,      /* then walk the node's fields */
	WALK_DRY,  /* ... as code that runs later */
	WALK_NONE, /* the handler walked what runs */
};

struct node_kind {
	const char *type;
	uint32_t classes;
	const char *target;   /* field naming the relation(s) written */
	const char *qualname; /* field holding a qualified name: its schema */
	void (*fn)(struct walk *w, const struct sj_node *body);
	enum walk_mode mode;
};

const struct node_kind *cw_kind_find(const char *type);
/* For the unit test: the table is sorted, each type once and found. */
bool cw_kinds_check(void);

/* Classify libpg_query's JSON output (modified in place) for text[0..len)
 * into out (zeroed by the caller). 0, -EINVAL (not the tree expected),
 * -E2BIG (too large or deep), -ENOMEM. Exposed for the unit test, which
 * feeds it trees no SQL text produces. */
int classify_json(char *json, const char *text, size_t len, struct sql_class *out) WUR;

/* The fast path (classify_raw.c): classify text from PostgreSQL's own parse
 * tree, without the JSON step, when every node in it is one of the common
 * kinds that file knows; the result is what classify_json gives for the
 * same text. Returns 1 with out filled, 0 when the text is not for the fast
 * path (out untouched: use the JSON path), or -ENOMEM. */
int classify_raw(const char *text, size_t len, struct sql_class *out) WUR;
/* The JSON path alone (out zeroed by the caller), and, for the unit test,
 * both paths on one text: 1 when the fast path took it and agrees, 0 when
 * it is not for the fast path, -EPROTO when they differ, -ENOMEM. */
int sql_classify_json_path(const char *text, struct sql_class *out) WUR;
int classify_raw_compare(const char *text) WUR;
