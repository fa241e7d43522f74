/* The walk over libpg_query's parse tree: see classify_walk.h. */
#include "config.h"
#include "policy/classify_walk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- libpg_query's output ---------------------------------------------------- */

int cw_parse_stmts(struct sj_doc *doc, char *json, const struct sj_node **stmts)
{
	int r = sj_parse(doc, json, strlen(json), SJ_MAX_BYTES, SJ_MAX_DEPTH);

	if (r < 0)
		return r;
	*stmts = sj_get(doc, sj_root(doc), "stmts");
	return *stmts && (*stmts)->type == SJ_ARRAY ? 0 : -EINVAL;
}

/* ---- small helpers ---------------------------------------------------------- */

static bool grow(void **v, size_t *cap, size_t n, size_t size)
{
	size_t c;
	void *p;

	if (n < *cap)
		return true;
	c = *cap ? *cap * 2 : 8;
	p = reallocarray(*v, c, size);
	if (!p)
		return false;
	*v = p;
	*cap = c;
	return true;
}

/* The inner object of a node {"Type": {...}} (and its type), or NULL: a
 * struct embedded in its parent is written without the wrapper, and its
 * fields are lower-case. */
const struct sj_node *cw_unwrap(const struct walk *w, const struct sj_node *n, const char **type)
{
	const struct sj_node *m;

	if (!n || n->type != SJ_OBJECT || n->len != 1)
		return NULL;
	m = sj_first(w->d, n);
	if (m->type != SJ_OBJECT || m->key[0] < 'A' || m->key[0] > 'Z')
		return NULL;
	if (type)
		*type = m->key;
	return m;
}

/* The inner object when n is a node of type want. */
const struct sj_node *cw_node_of(const struct walk *w, const struct sj_node *n, const char *want)
{
	const char *type;
	const struct sj_node *in = cw_unwrap(w, n, &type);

	return in && strcmp(type, want) == 0 ? in : NULL;
}

/* The value of a String node. */
const char *cw_string_node(const struct walk *w, const struct sj_node *n)
{
	return cw_get_str(w, cw_node_of(w, n, "String"), "sval");
}

/* The strings of a name: an array of String nodes, a List node of them, or
 * one String node. Returns how many (at most max), or -1 when something
 * else is in it. */
int cw_names(const struct walk *w, const struct sj_node *n, const char **out, int max)
{
	const struct sj_node *list;
	int k = 0;

	if (!n)
		return -1;
	if ((out[0] = cw_string_node(w, n)))
		return 1;
	list = cw_node_of(w, n, "List");
	if (list)
		n = cw_get(w, list, "items");
	if (!n || n->type != SJ_ARRAY)
		return -1;
	for (const struct sj_node *m = sj_first(w->d, n); m; m = sj_next(w->d, m)) {
		if (k == max || !(out[k] = cw_string_node(w, m)))
			return -1;
		k++;
	}
	return k;
}

bool cw_in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* ---- what the statement names ----------------------------------------------- */

void cw_add_rel(struct walk *w, const char *catalog, const char *schema, const char *name,
		bool written)
{
	if (!name || w->r)
		return;
	if (!grow((void **)&w->rels, &w->cap_rels, w->n_rels, sizeof(*w->rels))) {
		w->r = -ENOMEM;
		return;
	}
	w->rels[w->n_rels++] = (struct rel_ref){ catalog, schema, name, written && !w->dry };
}

/* A RangeVar: unwrapped (a field of its parent) or wrapped. */
void cw_add_rangevar(struct walk *w, const struct sj_node *rv, bool written)
{
	const struct sj_node *in = cw_node_of(w, rv, "RangeVar");

	if (in)
		rv = in;
	cw_add_rel(w, cw_get_str(w, rv, "catalogname"), cw_get_str(w, rv, "schemaname"),
		   cw_get_str(w, rv, "relname"), written);
}

/* The relations a statement writes: a RangeVar or a list of them. */
void cw_mark_written(struct walk *w, const struct sj_node *n)
{
	if (!n)
		return;
	if (n->type == SJ_ARRAY) {
		for (const struct sj_node *m = sj_first(w->d, n); m; m = sj_next(w->d, m))
			cw_add_rangevar(w, m, true);
		return;
	}
	cw_add_rangevar(w, n, true);
}

void cw_add_schema(struct walk *w, const char *schema)
{
	if (!schema || w->r)
		return;
	if (!grow((void **)&w->schemas, &w->cap_schemas, w->n_schemas, sizeof(*w->schemas))) {
		w->r = -ENOMEM;
		return;
	}
	w->schemas[w->n_schemas++] = schema;
}

/* The schema of a qualified name ([catalog.]schema.name). */
void cw_add_qualified(struct walk *w, const struct sj_node *n)
{
	const char *nm[3];
	int k = cw_names(w, n, nm, 3);

	if (k >= 2)
		cw_add_schema(w, nm[k - 2]);
}

void cw_add_fn(struct walk *w, const char *schema, const char *name)
{
	if (w->r)
		return;
	if (!grow((void **)&w->fns, &w->cap_fns, w->n_fns, sizeof(*w->fns))) {
		w->r = -ENOMEM;
		return;
	}
	w->fns[w->n_fns++] = (struct fn_ref){ schema, name };
}

void cw_set_name(struct walk *w, const char *name)
{
	if (!w->dry && !w->name)
		w->name = name;
}

/* ---- objects named by DDL (DROP, COMMENT, ALTER ... OWNER, ...) ------------ */

enum obj_kind {
	OBJ_QUALIFIED, /* [schema.]name: the schema */
	OBJ_REL,       /* a relation */
	OBJ_REL_PART,  /* a relation's column, trigger, rule, policy or constraint */
	OBJ_SCHEMA,    /* a schema */
	OBJ_AM,        /* access method, then [schema.]name (operator class/family) */
	OBJ_NONE,      /* not in a schema, or named by types (casts, transforms) */
};

static enum obj_kind obj_kind(const char *objtype)
{
	static const char *const rel[] = {
		"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_SEQUENCE",
		"OBJECT_INDEX", "OBJECT_FOREIGN_TABLE",
	};
	static const char *const part[] = {
		"OBJECT_COLUMN", "OBJECT_TRIGGER", "OBJECT_RULE", "OBJECT_POLICY",
		"OBJECT_TABCONSTRAINT",
	};
	static const char *const none[] = {
		"OBJECT_CAST", "OBJECT_TRANSFORM", "OBJECT_AMOP", "OBJECT_AMPROC",
		"OBJECT_USER_MAPPING", "OBJECT_DEFACL", "OBJECT_PUBLICATION_REL",
		"OBJECT_PUBLICATION_NAMESPACE",
	};

	if (!objtype)
		return OBJ_NONE;
	if (cw_in_list(objtype, rel, ARRAY_SIZE(rel)))
		return OBJ_REL;
	if (cw_in_list(objtype, part, ARRAY_SIZE(part)))
		return OBJ_REL_PART;
	if (cw_in_list(objtype, none, ARRAY_SIZE(none)))
		return OBJ_NONE;
	if (strcmp(objtype, "OBJECT_SCHEMA") == 0)
		return OBJ_SCHEMA;
	if (strcmp(objtype, "OBJECT_OPCLASS") == 0 || strcmp(objtype, "OBJECT_OPFAMILY") == 0)
		return OBJ_AM;
	return OBJ_QUALIFIED;
}

static void add_rel_names(struct walk *w, const char **nm, int k, bool written)
{
	if (k == 1)
		cw_add_rel(w, NULL, NULL, nm[0], written);
	else if (k == 2)
		cw_add_rel(w, NULL, nm[0], nm[1], written);
	else if (k == 3)
		cw_add_rel(w, nm[0], nm[1], nm[2], written);
}

void cw_add_object(struct walk *w, const char *objtype, const struct sj_node *obj, bool written)
{
	enum obj_kind kind = obj_kind(objtype);
	const struct sj_node *in;
	const char *nm[4];
	int k;

	if (!obj || kind == OBJ_NONE)
		return;
	if ((in = cw_node_of(w, obj, "ObjectWithArgs"))) {
		cw_add_qualified(w, cw_get(w, in, "objname"));
		return;
	}
	if ((in = cw_node_of(w, obj, "TypeName"))) {
		cw_add_qualified(w, cw_get(w, in, "names"));
		return;
	}
	k = cw_names(w, obj, nm, 4);
	if (k < 0) {
		/* A domain constraint: [TypeName, name]. */
		const struct sj_node *list = cw_node_of(w, obj, "List");

		for (const struct sj_node *m = sj_first(w->d, cw_get(w, list, "items")); m;
		     m = sj_next(w->d, m))
			if ((in = cw_node_of(w, m, "TypeName")))
				cw_add_qualified(w, cw_get(w, in, "names"));
		return;
	}
	switch (kind) {
	case OBJ_REL:
		add_rel_names(w, nm, k, written);
		break;
	case OBJ_REL_PART:
		add_rel_names(w, nm, k - 1, written);
		break;
	case OBJ_SCHEMA:
		if (k == 1)
			cw_add_schema(w, nm[0]);
		break;
	case OBJ_AM:
		if (k >= 3)
			cw_add_schema(w, nm[k - 2]);
		break;
	case OBJ_QUALIFIED:
		if (k >= 2)
			cw_add_schema(w, nm[k - 2]);
		break;
	case OBJ_NONE:
		break;
	}
}

static void into_clause(struct walk *w, const struct sj_node *into)
{
	cw_add(w, B(DDL) | B(WRITE));
	cw_mark_written(w, cw_get(w, into, "rel"));
}

/* ---- the walk ------------------------------------------------------------- */

/* A struct's fields. A field "relname" makes it a RangeVar; "intoClause"
 * is SELECT ... INTO (anywhere: the first SELECT of a UNION carries it). */
static void walk_fields(struct walk *w, const struct sj_node *obj)
{
	for (const struct sj_node *m = sj_first(w->d, obj); m && !w->r; m = sj_next(w->d, m)) {
		if (m->type == SJ_OBJECT || m->type == SJ_ARRAY) {
			if (m->type == SJ_OBJECT && m->key[0] == 'i' && strcmp(m->key, "intoClause") == 0)
				into_clause(w, m);
			cw_walk(w, m);
		} else if (m->type == SJ_STRING && m->key[0] == 'r' && strcmp(m->key, "relname") == 0) {
			cw_add_rangevar(w, obj, false);
		}
	}
}

static void walk_node(struct walk *w, const char *type, const struct sj_node *body)
{
	const struct node_kind *k = cw_kind_find(type);

	if (!k) {
		if (cw_is_statement_type(type))
			cw_add(w, B(OPAQUE)); /* a statement we do not know */
		walk_fields(w, body);
		return;
	}
	cw_add(w, k->classes);
	if (k->target)
		cw_mark_written(w, cw_get(w, body, k->target));
	if (k->qualname)
		cw_add_qualified(w, cw_get(w, body, k->qualname));
	if (k->fn)
		k->fn(w, body);
	if (k->mode == WALK_DRY)
		w->dry++;
	if (k->mode != WALK_NONE)
		walk_fields(w, body);
	if (k->mode == WALK_DRY)
		w->dry--;
}

void cw_walk(struct walk *w, const struct sj_node *n)
{
	const struct sj_node *in;
	const char *type;

	if (!n || w->r)
		return;
	/* sj_parse caps the nesting already; this keeps the walk honest. */
	if (w->depth >= SJ_MAX_DEPTH) {
		w->r = -E2BIG;
		return;
	}
	w->depth++;
	if (n->type == SJ_ARRAY) {
		for (const struct sj_node *m = sj_first(w->d, n); m && !w->r; m = sj_next(w->d, m))
			cw_walk(w, m);
	} else if (n->type == SJ_OBJECT) {
		if ((in = cw_unwrap(w, n, &type)))
			walk_node(w, type, in);
		else
			walk_fields(w, n);
	}
	w->depth--;
}

