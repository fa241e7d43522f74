/* [guardrail CONN] (statement classes blocked or held for approval, the
 * dangerous functions, what to do with text that does not parse) and
 * [mask CONN] (columns masked in results, value detectors, strict, the
 * hash key). The guardrail is enforced by the proxy through
 * policy/decide.c, [mask] by agent/maskwire.c with policy/maskplan.c and
 * policy/maskval.c. */
#include "config.h"
#include "policy/loader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/classes.h"
#include "policy/classify.h"
#include "policy/ident.h"
#include "policy/maskval.h"
#include "policy/value.h"

enum { G_BLOCK, G_APPROVE, G_FUNCTIONS, G_UNPARSED };
static const struct key_def guardrail_keys[] = {
	[G_BLOCK] = { "block", false, "statement classes" },
	[G_APPROVE] = { "approve", false, "statement classes" },
	[G_FUNCTIONS] = { "functions", false, "function names, or default" },
	[G_UNPARSED] = { "unparsed", false, "block or allow" },
};

/* Without a block key: the functions on the list and COPY ... PROGRAM. */
#define GUARDRAIL_DEFAULT_BLOCK (CLASS_BIT(CLASS_FUNCTIONS) | CLASS_BIT(CLASS_COPY_PROGRAM))

static void section_is_connection(struct loader *L, const struct ini_section *s)
{
	if (!name_is_safe(s->name, SAFE_NAME_MAX))
		ld_err(L, s->line, "invalid connection name in %s; expected [%s CONNECTION] naming a "
		       "[connection NAME] section", L->label, s->kind);
}

static bool classes(struct loader *L, const struct ini_entry *e, uint32_t *dst)
{
	uint32_t bits = 0;
	char **items;
	size_t n;
	bool ok = true;

	if (!ld_list(L, e, true, &items, &n))
		return false;
	for (size_t i = 0; i < n; i++) {
		int c = stmt_class_from_name(items[i]);
		if (c < 0) {
			ld_err(L, e->line, "unknown statement class \"%.64s\" in %s of %s; expected one of: %s",
			       items[i], e->key, L->label, stmt_class_names());
			ok = false;
		} else if (bits & (1u << c)) {
			ld_err(L, e->line, "statement class %s listed twice in %s of %s", items[i], e->key,
			       L->label);
			ok = false;
		} else {
			bits |= 1u << c;
		}
	}
	list_items_free(items, n);
	if (ok)
		*dst = bits;
	return ok;
}

/* The dot between schema and name, outside quotes; NULL when unqualified.
 * *more: a second such dot (three parts). */
static const char *unquoted_dot(const char *s, bool *more)
{
	const char *dot = NULL;
	bool quoted = false;

	*more = false;
	for (; *s; s++) {
		if (*s == '"') {
			quoted = !quoted;
		} else if (*s == '.' && !quoted) {
			if (dot)
				*more = true;
			else
				dot = s;
		}
	}
	return dot;
}

/* One entry of functions: NAME or SCHEMA.NAME folded like PostgreSQL
 * identifiers ("schema.name" as classify.h reports calls), NAME may end in
 * * (a prefix: dblink* is every dblink function). 0, -EINVAL with *why,
 * -ENOMEM. */
static int function_name(const char *item, char **out, const char **why)
{
	_cleanup_free_ char *copy = strdup(item), *schema = NULL, *name = NULL;
	const char *dot;
	bool more, prefix = false;
	size_t len;
	int r;

	if (!copy)
		return -ENOMEM;
	len = strlen(copy);
	if (len > 1 && copy[len - 1] == '*') {
		copy[--len] = '\0';
		prefix = true;
	}
	dot = unquoted_dot(copy, &more);
	if (more) {
		*why = "expected NAME or SCHEMA.NAME";
		return -EINVAL;
	}
	if (dot) {
		copy[dot - copy] = '\0';
		r = ident_fold(copy, &schema, why);
		if (r < 0)
			return r;
		r = ident_fold(copy + (dot - copy) + 1, &name, why);
	} else {
		r = ident_fold(copy, &name, why);
	}
	if (r < 0)
		return r;
	if (asprintf(out, "%s%s%s%s", schema ? schema : "", schema ? "." : "", name,
		     prefix ? "*" : "") < 0)
		return -ENOMEM;
	return 0;
}

static bool str_list_has(const struct str_list *l, const char *s)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], s) == 0)
			return true;
	return false;
}

static int str_list_push(struct str_list *l, char *s)
{
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	l->v = v;
	l->v[l->n++] = s;
	return 0;
}

/* The word default: every name of the built-in list not there yet. */
static int add_default_functions(struct str_list *out)
{
	char **names;
	size_t n;
	int r = list_split(sql_dangerous_functions_default(), LIST_MAX_ITEMS, &names, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++) {
		if (str_list_has(out, names[i]))
			continue;
		r = str_list_push(out, names[i]);
		if (r == 0)
			names[i] = NULL;
	}
	list_items_free(names, n);
	return r;
}

static bool functions(struct loader *L, const struct ini_entry *e, struct pol_guardrail *g)
{
	struct str_list out = { 0 };
	char **items;
	size_t n;
	bool ok = true, with_default = false;
	int r = 0;

	if (!ld_list(L, e, true, &items, &n))
		return false;
	for (size_t i = 0; i < n && r == 0; i++) {
		const char *why;
		char *name;

		if (strcmp(items[i], "default") == 0) {
			if (with_default) {
				ld_err(L, e->line, "default listed twice in functions of %s", L->label);
				ok = false;
			}
			with_default = true;
			r = add_default_functions(&out);
			continue;
		}
		r = function_name(items[i], &name, &why);
		if (r == -EINVAL) {
			ld_err(L, e->line, "invalid function \"%.80s\" in functions of %s: %s", items[i],
			       L->label, why);
			ok = false;
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		/* Listed with default too: once is enough. Twice by hand: a typo. */
		if (str_list_has(&out, name)) {
			if (!with_default) {
				ld_err(L, e->line, "function %s listed twice in functions of %s (names are "
				       "folded to lower case unless quoted)", name, L->label);
				ok = false;
			}
			free(name);
			continue;
		}
		r = str_list_push(&out, name);
		if (r < 0)
			free(name);
	}
	list_items_free(items, n);
	if (r < 0) {
		L->oom = true;
		ok = false;
	}
	if (ok) {
		str_list_release(&g->functions);
		g->functions = out;
	} else {
		str_list_release(&out);
	}
	return ok;
}

static int unparsed_from_name(const char *name)
{
	return strcmp(name, "block") == 0 ? 0 : strcmp(name, "allow") == 0 ? 1 : -1;
}

void conf_guardrail(struct loader *L, const struct ini_section *s, struct pol_guardrail *g)
{
	const struct ini_entry *block = NULL, *approve = NULL;
	bool block_written = false;
	int v;

	ld_begin(L, s, &g->origin);
	section_is_connection(L, s);
	ld_default(L, &g->connection, s->name);
	g->block = GUARDRAIL_DEFAULT_BLOCK;
	for (size_t i = 0; i < s->n; i++) {
		const struct ini_entry *e = &s->v[i];
		struct pol_origin here = { .file = L->p->files[s->file_idx], .line = e->line };

		switch (ld_key(L, e, guardrail_keys, ARRAY_SIZE(guardrail_keys))) {
		case G_BLOCK:
			block_written = true;
			if (classes(L, e, &g->block)) {
				block = e, g->block_origin = here;
				g->block_set = true;
			}
			break;
		case G_APPROVE:
			if (classes(L, e, &g->approve))
				approve = e, g->approve_origin = here;
			break;
		case G_FUNCTIONS:
			if (functions(L, e, g))
				g->functions_origin = here;
			break;
		case G_UNPARSED:
			if (ld_enum(L, e, "block allow", unparsed_from_name, &v)) {
				g->unparsed_allow = v == 1;
				g->unparsed_origin = here;
			}
			break;
		default:
			break;
		}
	}
	/* An invalid block key was reported already: no second guess. */
	if (!approve || !(g->block & g->approve) || (block_written && !block))
		return;
	for (int c = 0; c < CLASS__COUNT; c++) {
		if (!(g->block & g->approve & (1u << c)))
			continue;
		if (block)
			ld_err(L, MAX(block->line, approve->line), "statement class %s is in both block and "
			       "approve of %s; expected it in one of them", stmt_class_name((enum stmt_class)c),
			       L->label);
		else
			ld_err(L, approve->line, "statement class %s in approve of %s is blocked anyway: "
			       "without a block key, block = functions copy-program; expected a block key "
			       "that leaves %s out (block = functions, for instance)",
			       stmt_class_name((enum stmt_class)c), L->label, stmt_class_name((enum stmt_class)c));
	}
}

static bool key_has_dot(const char *k)
{
	bool quoted = false;

	for (; *k; k++) {
		if (*k == '"')
			quoted = !quoted;
		else if (*k == '.' && !quoted)
			return true;
	}
	return false;
}

static void detect(struct loader *L, const struct ini_entry *e, struct pol_mask *m)
{
	uint32_t bits = 0;
	char **items;
	size_t n;
	bool ok = true;

	if (!ld_list(L, e, true, &items, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		int d = detector_from_name(items[i]);
		if (d < 0) {
			ld_err(L, e->line, "unknown detector \"%.64s\" in %s; expected one of: %s", items[i],
			       L->label, detector_names());
			ok = false;
		} else if (bits & (uint32_t)d) {
			ld_err(L, e->line, "detector %s listed twice in %s", items[i], L->label);
			ok = false;
		} else {
			bits |= (uint32_t)d;
		}
	}
	list_items_free(items, n);
	if (ok)
		m->detect = bits;
}

static int yes_no_from_name(const char *v)
{
	return strcmp(v, "yes") == 0 ? 1 : strcmp(v, "no") == 0 ? 0 : -1;
}

static void mask_rule(struct loader *L, const struct ini_entry *e, struct pol_mask *m)
{
	struct pol_mask_rule *rule = &m->rules[m->n_rules];
	char *parts[3];
	const char *why;
	int method, r;

	if (!key_has_dot(e->key)) {
		ld_err(L, e->line, "unknown key \"%.80s\" in %s; expected detect = DETECTORS, strict = "
		       "yes|no, hash_key_file = PATH or schema.table.column = METHOD", e->key, L->label);
		return;
	}
	r = ident_split3(e->key, parts, &why);
	if (r == -ENOMEM) {
		L->oom = true;
		return;
	}
	if (r < 0) {
		ld_err(L, e->line, "invalid column \"%.200s\" in %s: %s", e->key, L->label, why);
		return;
	}
	method = mask_method_from_name(e->value);
	if (method < 0) {
		ld_err(L, e->line, "invalid mask method \"%.64s\" for %s.%s.%s in %s; expected one of: %s",
		       e->value, parts[0], parts[1], parts[2], L->label, mask_method_names());
		goto drop;
	}
	for (size_t i = 0; i < m->n_rules; i++) {
		const struct pol_mask_rule *o = &m->rules[i];
		if (strcmp(o->schema, parts[0]) == 0 && strcmp(o->table, parts[1]) == 0 &&
		    strcmp(o->column, parts[2]) == 0) {
			ld_err(L, e->line, "column %s.%s.%s is masked twice in %s (first at line %u); unquoted "
			       "names are folded to lower case", parts[0], parts[1], parts[2], L->label,
			       o->origin.line);
			goto drop;
		}
	}
	*rule = (struct pol_mask_rule){
		.origin = { .file = L->p->files[L->s->file_idx], .line = e->line },
		.schema = parts[0], .table = parts[1], .column = parts[2],
		.method = (enum mask_method)method,
	};
	m->n_rules++;
	return;
drop:
	for (int i = 0; i < 3; i++)
		free(parts[i]);
}

void conf_mask(struct loader *L, const struct ini_section *s, struct pol_mask *m)
{
	ld_begin(L, s, &m->origin);
	section_is_connection(L, s);
	ld_default(L, &m->connection, s->name);
	m->rules = calloc(s->n ? s->n : 1, sizeof(*m->rules));
	if (!m->rules) {
		L->oom = true;
		return;
	}
	for (size_t i = 0; i < s->n; i++) {
		const struct ini_entry *e = &s->v[i];

		int v;

		if (strcmp(e->key, "detect") == 0) {
			detect(L, e, m);
		} else if (strcmp(e->key, "strict") == 0) {
			if (ld_enum(L, e, "yes no", yes_no_from_name, &v))
				m->strict = v == 1;
		} else if (strcmp(e->key, "hash_key_file") == 0) {
			(void)ld_path(L, e, &m->hash_key_file);
		} else {
			mask_rule(L, e, m);
		}
	}
	for (size_t i = 0; i < m->n_rules && !m->hash_key_file; i++)
		if (m->rules[i].method == MASK_HASH) {
			ld_err(L, m->rules[i].origin.line, "%s.%s.%s = hash in %s needs the key: add "
			       "hash_key_file = PATH (32 to 1024 bytes, mode 0600)", m->rules[i].schema,
			       m->rules[i].table, m->rules[i].column, L->label);
			break;
		}
}

void conf_check_rules(struct loader *L)
{
	const struct policy *p = L->p;
	char names[512];

	conn_names(p, names, sizeof(names));
	for (size_t i = 0; i < L->doc->n; i++) {
		const struct ini_section *s = &L->doc->v[i];

		if (!s->name || (strcmp(s->kind, "guardrail") != 0 && strcmp(s->kind, "mask") != 0))
			continue;
		if (policy_connection(p, s->name))
			continue;
		ld_begin(L, s, NULL);
		ld_err(L, s->line, "%s names no connection: [connection %s] is not defined; expected "
		       "[%s CONNECTION] with CONNECTION%s%s", L->label, s->name, s->kind,
		       names[0] ? " one of: " : " a [connection NAME] (there are none)", names);
	}
}

void conf_free_mask(struct pol_mask *m)
{
	for (size_t i = 0; i < m->n_rules; i++) {
		free(m->rules[i].schema);
		free(m->rules[i].table);
		free(m->rules[i].column);
	}
	free(m->rules);
	free(m->connection);
	free(m->hash_key_file);
	if (m->key) {
		mask_key_wipe(m->key);
		free(m->key);
	}
}
