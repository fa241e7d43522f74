/* SQL classification (classify.h): libpg_query parses, sqljson.c reads
 * its JSON tree, classify_walk.c walks it (classify_nodes.c says what each
 * node means); here: the statements of a text, their spans, and the
 * summaries handed out. */
#include "config.h"
#include "policy/classify.h"

#include <errno.h>
#include <pg_query.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/classify_walk.h"
#include "policy/sqljson.h"

/* ---- results --------------------------------------------------------------- */

static int cmp_opt(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static int rel_cmp(const void *x, const void *y)
{
	const struct rel_ref *a = x, *b = y;
	int c = cmp_opt(a->catalog, b->catalog);

	if (!c)
		c = cmp_opt(a->schema, b->schema);
	return c ? c : strcmp(a->name, b->name);
}

static int fn_cmp(const void *x, const void *y)
{
	const struct fn_ref *a = x, *b = y;
	int c = cmp_opt(a->schema, b->schema);

	return c ? c : strcmp(a->name, b->name);
}

static int str_cmp(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int copy_rels(struct walk *w, struct sql_stmt *st)
{
	size_t n = 0;

	if (!w->n_rels)
		return 0;
	qsort(w->rels, w->n_rels, sizeof(*w->rels), rel_cmp);
	st->rels = calloc(w->n_rels, sizeof(*st->rels));
	if (!st->rels)
		return -ENOMEM;
	for (size_t i = 0; i < w->n_rels; i++) {
		struct sql_rel *r;

		if (n > 0 && rel_cmp(&w->rels[i - 1], &w->rels[i]) == 0) {
			st->rels[n - 1].written |= w->rels[i].written;
			continue;
		}
		r = &st->rels[n++];
		st->n_rels = n;
		r->written = w->rels[i].written;
		if (!(r->name = strdup(w->rels[i].name)) ||
		    (w->rels[i].schema && !(r->schema = strdup(w->rels[i].schema))) ||
		    (w->rels[i].catalog && !(r->catalog = strdup(w->rels[i].catalog))))
			return -ENOMEM;
	}
	return 0;
}

static int copy_fns(struct walk *w, struct sql_stmt *st)
{
	if (!w->n_fns)
		return 0;
	qsort(w->fns, w->n_fns, sizeof(*w->fns), fn_cmp);
	st->functions = calloc(w->n_fns, sizeof(*st->functions));
	if (!st->functions)
		return -ENOMEM;
	for (size_t i = 0; i < w->n_fns; i++) {
		const struct fn_ref *f = &w->fns[i];
		char *s;

		if (i > 0 && fn_cmp(&w->fns[i - 1], f) == 0)
			continue;
		if (f->schema) {
			size_t ls = strlen(f->schema), ln = strlen(f->name);

			s = malloc(ls + ln + 2);
			if (s) {
				memcpy(s, f->schema, ls);
				s[ls] = '.';
				memcpy(s + ls + 1, f->name, ln + 1);
			}
		} else {
			s = strdup(f->name);
		}
		if (!s)
			return -ENOMEM;
		st->functions[st->n_functions++] = s;
	}
	return 0;
}

static int copy_schemas(struct walk *w, struct sql_stmt *st)
{
	if (!w->n_schemas)
		return 0;
	qsort(w->schemas, w->n_schemas, sizeof(*w->schemas), str_cmp);
	st->schemas = calloc(w->n_schemas, sizeof(*st->schemas));
	if (!st->schemas)
		return -ENOMEM;
	for (size_t i = 0; i < w->n_schemas; i++) {
		if (i > 0 && strcmp(w->schemas[i - 1], w->schemas[i]) == 0)
			continue;
		if (!(st->schemas[st->n_schemas] = strdup(w->schemas[i])))
			return -ENOMEM;
		st->n_schemas++;
	}
	return 0;
}

void cw_stmt_begin(struct walk *w, struct sql_stmt *st)
{
	w->st = st;
	w->n_rels = w->n_fns = w->n_schemas = 0;
	w->name = NULL;
	w->depth = w->dry = 0;
	w->r = 0;
}

int cw_stmt_finish(struct walk *w, struct sql_stmt *st)
{
	int r;

	if (w->r)
		return w->r;
	if (!st->classes) /* nothing known ran: not "read" */
		st->classes = B(OPAQUE);
	if (w->name && !(st->name = strdup(w->name)))
		return -ENOMEM;
	r = copy_rels(w, st);
	if (r == 0)
		r = copy_fns(w, st);
	if (r == 0)
		r = copy_schemas(w, st);
	return r;
}

static int classify_stmt(struct walk *w, const struct sj_node *stmt, struct sql_stmt *st)
{
	const char *type;

	cw_stmt_begin(w, st);
	/* At the top only a statement of a known type may be anything but
	 * opaque. */
	if (!cw_unwrap(w, stmt, &type) || !cw_is_statement_type(type) || !cw_kind_find(type))
		st->classes |= B(OPAQUE);
	cw_walk(w, stmt);
	return cw_stmt_finish(w, st);
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* The statement's bytes, as agent/pgtrack.c's split_query finds them:
 * libpg_query's stmt_location and stmt_len (0 = to the end), blanks
 * trimmed. */
void cw_stmt_span(uint32_t loc, uint32_t stmt_len, const char *text, size_t len,
		  struct sql_stmt *st)
{
	size_t off = loc > len ? len : loc, n = stmt_len;

	if (n == 0 || off + n > len)
		n = len - off;
	while (n > 0 && is_blank(text[off])) {
		off++;
		n--;
	}
	while (n > 0 && is_blank(text[off + n - 1]))
		n--;
	st->off = (uint32_t)off;
	st->len = (uint32_t)n;
}

static int stmt_span(const struct walk *w, const struct sj_node *item, const char *text,
		     size_t len, struct sql_stmt *st)
{
	const struct sj_node *loc = cw_get(w, item, "stmt_location"), *sl = cw_get(w, item, "stmt_len");
	uint32_t o = 0, l = 0;

	if ((loc && !sj_uint32(loc, &o)) || (sl && !sj_uint32(sl, &l)))
		return -EINVAL;
	cw_stmt_span(o, l, text, len, st);
	return 0;
}

static int fail(struct sql_class *out, int pos, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = str_vprintf(&out->error, fmt, ap);
	va_end(ap);
	if (r < 0)
		return r;
	out->error_pos = pos;
	return 0;
}

int classify_json(char *json, const char *text, size_t len, struct sql_class *out)
{
	struct sj_doc doc = { 0 };
	struct walk w = { .d = &doc };
	const struct sj_node *stmts;
	size_t i = 0;
	int r;

	r = cw_parse_stmts(&doc, json, &stmts);
	if (r < 0)
		goto out;
	if (stmts->len > 0 && !(out->v = calloc(stmts->len, sizeof(*out->v)))) {
		r = -ENOMEM;
		goto out;
	}
	for (const struct sj_node *m = sj_first(&doc, stmts); m; m = sj_next(&doc, m), i++) {
		out->n = i + 1;
		r = stmt_span(&w, m, text, len, &out->v[i]);
		if (r == 0)
			r = classify_stmt(&w, cw_get(&w, m, "stmt"), &out->v[i]);
		if (r < 0)
			goto out;
	}
out:
	free(w.rels);
	free(w.fns);
	free(w.schemas);
	sj_doc_clear(&doc);
	return r;
}

int sql_classify_json_path(const char *text, struct sql_class *out)
{
	PgQueryParseResult res;
	size_t len = strlen(text);
	int r;

	res = pg_query_parse(text);
	if (res.error) {
		r = fail(out, res.error->cursorpos, "%s", res.error->message);
	} else {
		r = classify_json(res.parse_tree, text, len, out);
		if (r < 0 && r != -ENOMEM) {
			/* Not a verdict on the text: what we could not read. */
			sql_class_free(out);
			r = fail(out, 0, r == -E2BIG ? "statement too complex to classify"
					     : "could not read the parser's output for this statement");
		}
	}
	pg_query_free_parse_result(res);
	if (r < 0)
		sql_class_free(out);
	return r;
}

int sql_classify(const char *text, struct sql_class *out)
{
	size_t len = strlen(text);
	int r;

	*out = (struct sql_class){ 0 };
	if (len > SQL_CLASSIFY_MAX)
		return fail(out, 0, "statement too long to classify (%zu bytes)", len);
	r = classify_raw(text, len, out);
	if (r != 0)
		return r < 0 ? r : 0;
	*out = (struct sql_class){ 0 };
	return sql_classify_json_path(text, out);
}

void sql_class_free(struct sql_class *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++) {
		struct sql_stmt *st = &c->v[i];

		free(st->name);
		for (size_t j = 0; j < st->n_rels; j++) {
			free(st->rels[j].schema);
			free(st->rels[j].name);
			free(st->rels[j].catalog);
		}
		free(st->rels);
		for (size_t j = 0; j < st->n_functions; j++)
			free(st->functions[j]);
		free(st->functions);
		for (size_t j = 0; j < st->n_schemas; j++)
			free(st->schemas[j]);
		free(st->schemas);
	}
	free(c->v);
	free(c->error);
	*c = (struct sql_class){ 0 };
}

/* ---- class order and the default functions list --------------------------- */

int sql_worst_class(uint32_t bits)
{
	static const enum stmt_class order[] = {
		CLASS_COPY_PROGRAM, CLASS_ROLE_CHANGE, CLASS_DROP, CLASS_TRUNCATE,
		CLASS_DELETE_WITHOUT_WHERE, CLASS_UPDATE_WITHOUT_WHERE, CLASS_ADMIN, CLASS_DDL,
		CLASS_OPAQUE, CLASS_FUNCTIONS, CLASS_COPY_IN, CLASS_WRITE, CLASS_CONFIG_CHANGE,
		CLASS_COPY_OUT, CLASS_READ,
	};

	for (size_t i = 0; i < ARRAY_SIZE(order); i++)
		if (bits & CLASS_BIT(order[i]))
			return (int)order[i];
	return -1;
}

/* One list, space-separated: what sluice.conf(5) documents is what is
 * matched. */
static const char dangerous[] =
	"pg_terminate_backend pg_cancel_backend pg_reload_conf pg_rotate_logfile "
	"pg_promote pg_read_file pg_read_binary_file pg_ls_dir pg_ls_logdir "
	"pg_ls_waldir pg_ls_tmpdir pg_ls_archive_statusdir pg_stat_file "
	"lo_import lo_export lo_open lo_unlink lowrite loread lo_put "
	"lo_get lo_from_bytea lo_truncate lo_truncate64 lo_lseek lo_lseek64 "
	"lo_tell lo_tell64 lo_close lo_creat lo_create "
	"dblink dblink_exec dblink_connect dblink_connect_u dblink_open "
	"dblink_fetch dblink_send_query dblink_get_result "
	"set_config pg_file_write pg_file_rename pg_file_unlink pg_logdir_ls "
	"pg_switch_wal pg_create_restore_point pg_start_backup pg_stop_backup "
	"pg_backup_start pg_backup_stop pg_create_physical_replication_slot "
	"pg_create_logical_replication_slot pg_drop_replication_slot "
	"pg_replication_origin_create pg_import_system_collations";

static bool in_words(const char *words, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = words; n > 0 && (p = strstr(p, name)); p += n)
		if ((p == words || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
	return false;
}

bool sql_function_is_dangerous_default(const char *fn)
{
	const char *dot = fn ? strrchr(fn, '.') : NULL, *name = dot ? dot + 1 : fn;

	if (!fn)
		return false;
	/* Built-ins live in pg_catalog; dblink in whatever schema its
	 * extension was installed. */
	if (dot && !(dot - fn == 10 && strncmp(fn, "pg_catalog", 10) == 0) &&
	    strncmp(name, "dblink", 6) != 0)
		return false;
	return in_words(dangerous, name);
}

const char *sql_dangerous_functions_default(void)
{
	return dangerous;
}
