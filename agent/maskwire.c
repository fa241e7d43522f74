/* Masking on the wire: see maskwire.h. */
#include "config.h"
#include "agent/maskwire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent/pgconn.h"
#include "agent/pgwire.h"
#include "common/log.h"
#include "common/util.h"
#include "policy/classes.h"
#include "policy/classify.h"
#include "policy/maskplan.h"
#include "policy/maskval.h"

#define CATALOG_ROWS_MAX 200000 /* masked columns, views and functions read at start */
#define CURSORS_MAX 256         /* DECLAREd cursors remembered per connection */
/* Bytes of the catalog's values kept (view definitions can be long): a
 * bigger catalog refuses the connection. */
#define CATALOG_BYTES_MAX (32u << 20)
/* The rows buffer is given back at ReadyForQuery when one big result grew
 * it past this (it may reach twice max_message_size). */
#define BATCH_KEEP (64u << 10)

/* Bumped when DDL on any sluice connection of this agent ends its
 * transaction: every masked connection then reads its catalog again before
 * its next request (the loop thread is the only one, as for guard.h's
 * cache). */
static uint64_t ddl_generation;

enum { FA_PASS, FA_MASK, FA_DETECT };

struct fieldact {
	uint8_t kind;
	uint8_t method;   /* enum mask_method (FA_MASK) */
	int16_t format;
	uint32_t typoid;
};

struct mcol {
	uint32_t oid;
	int32_t attnum;
	uint32_t rule;
};

struct mview {
	uint32_t oid;
	uint32_t rule;
	char *def;                  /* pg_get_viewdef: planned once the catalog is read, then freed */
	struct mp_column *cols;     /* its columns' taints, by attnum - 1 (NULL: see all) */
	size_t n_cols;
	struct mp_column all;       /* when the plan was not positional, or had no column */
};

/* The catalog read at start, kept while a refresh reads the next one. */
struct catsave {
	struct mcol *cols;
	size_t n_cols;
	struct mview *views;
	size_t n_views;
	char **view_names;
	size_t *view_rules;
	char **funcs;
	size_t n_funcs;
};

struct rowmask {
	struct fieldact *fa;
	size_t n;
	bool set;     /* decided for the current result */
	bool whole;   /* rows are taken whole and rewritten */
	struct sqltext *of; /* next: the described portal's statement (a reference) */
};

struct cursor {
	char *name;
	char *text;   /* the DECLARE statement */
};

struct maskconn {
	const struct pol_mask *m;
	const char *section;  /* "rule at FILE:LINE" of the [mask] */
	/* The catalog, read at start. */
	struct mcol *cols;
	size_t n_cols;
	struct mview *views;
	size_t n_views;
	char **view_names;     /* "schema.name", parallel to views */
	size_t *view_rules;
	char **funcs;
	size_t n_funcs;
	size_t cat_rows;
	size_t cat_bytes;
	bool cat_failed;
	char cat_sqlstate[6];  /* of a failed read */
	/* After DDL on this connection the catalog is read again, before the
	 * next request (maskwire.h). */
	bool stale;
	bool in_batch;         /* the client is inside an extended-protocol batch */
	struct catsave *saved; /* the catalog before a refresh, until it succeeds */
	uint64_t generation;   /* ddl_generation when the catalog was read */
	bool refreshed_in_txn; /* ...read inside a transaction: read again once it ends */
	bool ddl_in_request;   /* DDL completed since the last ReadyForQuery: the catalog
				  cannot be read before the rest of this request runs */
	/* Results. */
	struct rowmask cur;    /* the result being relayed */
	struct rowmask next;   /* from a Describe of a portal: for Executes of its
				  statement's portals, until ReadyForQuery */
	struct cursor *cursors;
	size_t n_cursors;
	/* Withholding until ReadyForQuery after a refusal. */
	bool withhold;
	bool first_recorded;
	char refusal[480];
	struct buf repl;
	struct buf batch;      /* rows rewritten in one pass (pg_mask_batch) */
	struct mask_out out;   /* one masked value, reused */
};

/* ---- set-up ---------------------------------------------------------------------- */

static const struct pol_mask *mask_of(const struct pgconn *c)
{
	const struct grant *g = c->gc.grant;
	const struct policy *p = g->pol->p;

	for (size_t i = 0; i < p->n_masks; i++)
		if (strcmp(p->masks[i].connection, g->conn->name) == 0 && p->masks[i].n_rules > 0)
			return &p->masks[i];
	return NULL;
}

static int quote_lit(struct buf *b, const char *s)
{
	int r = buf_put_u8(b, '\'');

	for (; r == 0 && *s; s++)
		r = *s == '\'' ? buf_append(b, "''", 2) : buf_put_u8(b, (uint8_t)*s);
	return r ? r : buf_put_u8(b, '\'');
}

static int appends(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

/* The rules' columns, the views that depend on them (through views on
 * views too), and the functions outside pg_catalog. Every value is text. */
static int catalog_query(const struct pol_mask *m, struct buf *q)
{
	int r = appends(q, "WITH RECURSIVE r(ri, s, t, c) AS (VALUES ");

	for (size_t i = 0; r == 0 && i < m->n_rules; i++) {
		char num[48];

		snprintf(num, sizeof(num), "%s(%zu, ", i ? ", " : "", i);
		r = appends(q, num);
		if (r == 0)
			r = quote_lit(q, m->rules[i].schema);
		if (r == 0)
			r = appends(q, "::pg_catalog.name, ");
		if (r == 0)
			r = quote_lit(q, m->rules[i].table);
		if (r == 0)
			r = appends(q, "::pg_catalog.name, ");
		if (r == 0)
			r = quote_lit(q, m->rules[i].column);
		if (r == 0)
			r = appends(q, "::pg_catalog.name)");
	}
	if (r == 0)
		r = appends(q,
			"), m AS (SELECT r.ri, a.attrelid AS oid, a.attnum FROM r"
			" JOIN pg_catalog.pg_namespace n ON n.nspname = r.s"
			" JOIN pg_catalog.pg_class k ON k.relnamespace = n.oid AND k.relname = r.t"
			" JOIN pg_catalog.pg_attribute a ON a.attrelid = k.oid AND a.attname = r.c"
			" AND a.attnum > 0 AND NOT a.attisdropped),"
			" v(oid, ri) AS ("
			"SELECT w.ev_class, m.ri FROM m JOIN pg_catalog.pg_depend d"
			" ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
			" AND d.refobjid = m.oid AND d.refobjsubid = m.attnum"
			" AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
			" JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid WHERE w.ev_class <> m.oid"
			/* Views that call functions outside pg_catalog: what those read
			 * is not in pg_depend, so any rule (ri = the number of rules). */
			" UNION SELECT w.ev_class, (SELECT count(*) FROM r)::integer FROM pg_catalog.pg_depend d"
			" JOIN pg_catalog.pg_proc p ON d.refclassid = 'pg_catalog.pg_proc'::pg_catalog.regclass"
			" AND d.refobjid = p.oid"
			" JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace"
			" AND pn.nspname NOT IN ('pg_catalog', 'information_schema')"
			" JOIN pg_catalog.pg_rewrite w ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
			" AND w.oid = d.objid"
			" UNION SELECT w.ev_class, v.ri FROM v JOIN pg_catalog.pg_depend d"
			" ON d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass"
			" AND d.refobjid = v.oid"
			" AND d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass"
			" JOIN pg_catalog.pg_rewrite w ON w.oid = d.objid WHERE w.ev_class <> v.oid)"
			" SELECT 'c', m.oid::pg_catalog.text, m.attnum::pg_catalog.text,"
			" m.ri::pg_catalog.text, NULL FROM m"
			" UNION ALL SELECT 'v', v.oid::pg_catalog.text, v.ri::pg_catalog.text,"
			" n.nspname::pg_catalog.text || '.' || k.relname::pg_catalog.text,"
			" pg_catalog.pg_get_viewdef(v.oid) FROM v"
			" JOIN pg_catalog.pg_class k ON k.oid = v.oid"
			" JOIN pg_catalog.pg_namespace n ON n.oid = k.relnamespace"
			" UNION ALL SELECT DISTINCT 'f', p.proname::pg_catalog.text, NULL, NULL, NULL"
			" FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
			" WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')");
	return r;
}

static void catalog_free(struct catsave *k)
{
	free(k->cols);
	for (size_t i = 0; i < k->n_views; i++) {
		free(k->views[i].def);
		free(k->views[i].cols);
		free(k->view_names[i]);
	}
	free(k->views);
	free(k->view_names);
	free(k->view_rules);
	for (size_t i = 0; i < k->n_funcs; i++)
		free(k->funcs[i]);
	free(k->funcs);
	*k = (struct catsave){ 0 };
}

static struct catsave catalog_take(struct maskconn *mc)
{
	struct catsave k = { mc->cols, mc->n_cols, mc->views, mc->n_views, mc->view_names,
			     mc->view_rules, mc->funcs, mc->n_funcs };

	mc->cols = NULL;
	mc->n_cols = 0;
	mc->views = NULL;
	mc->n_views = 0;
	mc->view_names = NULL;
	mc->view_rules = NULL;
	mc->funcs = NULL;
	mc->n_funcs = 0;
	mc->cat_rows = 0;
	mc->cat_bytes = 0;
	mc->cat_failed = false;
	mc->cat_sqlstate[0] = '\0';
	return k;
}

static void catalog_put(struct maskconn *mc, struct catsave *k)
{
	mc->cols = k->cols;
	mc->n_cols = k->n_cols;
	mc->views = k->views;
	mc->n_views = k->n_views;
	mc->view_names = k->view_names;
	mc->view_rules = k->view_rules;
	mc->funcs = k->funcs;
	mc->n_funcs = k->n_funcs;
	*k = (struct catsave){ 0 };
}

/* The catalog query as a Query message, inserted into the pipe upstream
 * at its examination point (before whatever the client sent next). */
static int send_catalog_query(struct pgconn *c, const struct pol_mask *m)
{
	struct buf q = BUF_INIT(1u << 20), msg = BUF_INIT(0);
	int r = catalog_query(m, &q);

	if (r == 0)
		r = buf_put_u8(&q, 0);
	msg.max = q.len + 8;
	if (r == 0 && (r = buf_put_u8(&msg, 'Q')) == 0 && (r = buf_put_u32(&msg, (uint32_t)q.len + 4)) == 0)
		r = buf_append(&msg, q.data, q.len);
	if (r == 0)
		r = pg_pipe_insert(&c->c2s, msg.data, msg.len);
	buf_release(&q, 0);
	buf_release(&msg, 0);
	return r;
}

int pg_mask_catalog_start(struct pgconn *c)
{
	const struct pol_mask *m = mask_of(c);
	struct maskconn *mc;
	int r;

	if (!m)
		return 0;
	mc = calloc(1, sizeof(*mc));
	if (!mc)
		return -ENOMEM;
	mc->m = m;
	mc->repl = (struct buf)BUF_INIT(c->agent->pol->p->agent.max_message_size + 64);
	mc->batch = (struct buf)BUF_INIT(2 * (size_t)c->agent->pol->p->agent.max_message_size + (1u << 20));
	mc->generation = ddl_generation;
	c->mask = mc;
	r = send_catalog_query(c, m);
	return r < 0 ? r : 1;
}

int pg_mask_client(struct pgconn *c, char type)
{
	struct maskconn *mc = c->mask;
	bool batch_msg = type == 'P' || type == 'B' || type == 'D' || type == 'E' || type == 'C' ||
			 type == 'H';
	int r;

	if (!mc)
		return 0;
	/* DDL on another connection, since the catalog was read. */
	if (mc->generation != ddl_generation && !mc->saved) {
		mc->stale = true;
		mc->generation = ddl_generation;
	}
	/* Only between requests: a Query, or the first message of a batch. */
	if (mc->stale && !mc->saved && (type == 'Q' || (batch_msg && !mc->in_batch))) {
		mc->saved = malloc(sizeof(*mc->saved));
		if (!mc->saved)
			return -ENOMEM;
		*mc->saved = catalog_take(mc);
		mc->stale = false;
		if ((r = send_catalog_query(c, mc->m)) < 0 || !pg_fifo_push(c, PEND_MASKCAT))
			return r < 0 ? r : -ENOMEM;
		return 1;
	}
	if (batch_msg)
		mc->in_batch = true;
	else if (type == 'S')
		mc->in_batch = false;
	return 0;
}

bool pg_mask_refreshing(struct pgconn *c)
{
	struct pend *e = c->mask ? pg_fifo_head(c) : NULL;

	return e && e->kind == PEND_MASKCAT;
}

int pg_mask_refresh_message(struct pgconn *c, char type, const uint8_t *body, size_t n)
{
	struct maskconn *mc = c->mask;
	int r;

	if (type != 'Z') {
		/* A row or message it cannot read marks the read failed; that
		 * is decided at its ReadyForQuery. */
		r = pg_mask_catalog_message(c, type, body, n);
		if (r < 0)
			mc->cat_failed = true;
		return 0;
	}
	if (mc->cat_failed && mc->saved && strcmp(mc->cat_sqlstate, "25P02") == 0) {
		/* In an aborted transaction: keep what we knew, read it later. */
		struct catsave k = catalog_take(mc);

		catalog_free(&k);
		catalog_put(mc, mc->saved);
		mc->stale = true;
	} else {
		r = pg_mask_catalog_message(c, 'Z', body, n);
		if (r < 0)
			return r; /* the connection fails: nothing masked from a stale catalog */
		catalog_free(mc->saved);
	}
	/* Read inside a transaction: what it saw may be rolled back (a view
	 * dropped comes back), or be an older snapshot. */
	if (n >= 1 && body[0] != 'I')
		mc->refreshed_in_txn = true;
	free(mc->saved);
	mc->saved = NULL;
	return pg_fifo_pop_emit(c);
}

static int push_ptr(void ***v, size_t n, void *p)
{
	void **nv = reallocarray(*v, n + 1, sizeof(**v));

	if (!nv)
		return -ENOMEM;
	nv[n] = p;
	*v = nv;
	return 0;
}

/* A number of the catalog answer in [min, max] (NULL: none). */
static bool catalog_num(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	return s && parse_u64(s, min, max, out) == 0;
}

/* One row of the catalog answer: kind, then three text values (or NULL). */
static int catalog_row(struct maskconn *mc, const uint8_t *body, size_t n)
{
	char *v[5] = { NULL };
	size_t off = 2;
	uint64_t a, b, att;
	int r = -EPROTO;

	if (n < 2 || get_u16(body) != 5)
		return -EPROTO;
	for (int i = 0; i < 5; i++) {
		uint32_t len;

		if (n - off < 4)
			goto out;
		len = get_u32(body + off);
		off += 4;
		if (len == UINT32_MAX)
			continue;
		if (n - off < len || !(v[i] = strndup((const char *)body + off, len))) {
			r = n - off < len ? -EPROTO : -ENOMEM;
			goto out;
		}
		off += len;
	}
	if (++mc->cat_rows > CATALOG_ROWS_MAX) {
		r = -E2BIG;
		goto out;
	}
	mc->cat_bytes += n;
	if (mc->cat_bytes > CATALOG_BYTES_MAX) {
		r = -EFBIG;
		goto out;
	}
	/* A column: its table's OID, its number (user columns only), its rule. */
	if (v[0] && strcmp(v[0], "c") == 0 && catalog_num(v[1], 1, UINT32_MAX, &a) &&
	    catalog_num(v[2], 1, INT16_MAX, &att) && mc->m->n_rules > 0 &&
	    catalog_num(v[3], 0, mc->m->n_rules - 1, &b)) {
		struct mcol *nc = reallocarray(mc->cols, mc->n_cols + 1, sizeof(*nc));

		if (!nc) {
			r = -ENOMEM;
			goto out;
		}
		mc->cols = nc;
		nc[mc->n_cols++] = (struct mcol){ (uint32_t)a, (int32_t)att, (uint32_t)b };
		r = 0;
	} else if (v[0] && strcmp(v[0], "v") == 0 && catalog_num(v[1], 1, UINT32_MAX, &a) &&
		   catalog_num(v[2], 0, mc->m->n_rules, &b) && v[3]) { /* n_rules: through a user function, any rule */
		struct mview *nv = reallocarray(mc->views, mc->n_views + 1, sizeof(*nv));
		size_t *nr = nv ? reallocarray(mc->view_rules, mc->n_views + 1, sizeof(*nr)) : NULL;

		if (nv)
			mc->views = nv;
		if (nr)
			mc->view_rules = nr;
		if (!nv || !nr || push_ptr((void ***)&mc->view_names, mc->n_views, v[3]) < 0) {
			r = -ENOMEM;
			goto out;
		}
		nv[mc->n_views] = (struct mview){ .oid = (uint32_t)a, .rule = (uint32_t)b, .def = v[4] };
		v[4] = NULL;
		nr[mc->n_views] = b;
		mc->n_views++;
		v[3] = NULL;
		r = 0;
	} else if (v[0] && strcmp(v[0], "f") == 0 && v[1]) {
		if (push_ptr((void ***)&mc->funcs, mc->n_funcs, v[1]) < 0) {
			r = -ENOMEM;
			goto out;
		}
		mc->n_funcs++;
		v[1] = NULL;
		r = 0;
	}
out:
	for (int i = 0; i < 5; i++)
		free(v[i]);
	return r;
}

/* Which columns of each view over masked data carry it: the view's query,
 * planned like a statement. A view whose query cannot be planned has every
 * column tainted by its rule. */
static int plan_views(struct maskconn *mc)
{
	struct mask_catalog cat = {
		.views = (const char *const *)mc->view_names, .view_rules = mc->view_rules,
		.n_views = mc->n_views, .user_functions = (const char *const *)mc->funcs,
		.n_user_functions = mc->n_funcs,
	};

	for (size_t i = 0; i < mc->n_views; i++) {
		struct mview *v = &mc->views[i];
		struct mask_plans p = { 0 };
		int rule = v->rule < mc->m->n_rules ? (int)v->rule : MP_RULE_ANY;
		int r;

		v->all = (struct mp_column){ .tainted = true, .rule = rule, .mixed = rule == MP_RULE_ANY };
		if (!v->def)
			continue;
		if ((r = mask_plan(v->def, mc->m, &cat, &p)) < 0)
			return -ENOMEM;
		if (!p.error && p.n == 1 && p.v[0].verdict != MP_REFUSE) {
			if (p.v[0].verdict == MP_CLEAN) {
				v->all = (struct mp_column){ 0 };
			} else if (p.v[0].positional) {
				v->cols = p.v[0].columns;
				v->n_cols = p.v[0].n_columns;
				p.v[0].columns = NULL;
				p.v[0].n_columns = 0;
				v->all = p.v[0].all;
			} else {
				v->all = p.v[0].all;
			}
		}
		mask_plans_free(&p);
		/* Nothing reads the definition again. */
		free(v->def);
		v->def = NULL;
	}
	return 0;
}

int pg_mask_catalog_message(struct pgconn *c, char type, const uint8_t *body, size_t n)
{
	struct maskconn *mc = c->mask;
	struct pg_error_fields f;
	int r;

	switch (type) {
	case 'T':
	case 'C':
	case 'N':
	case 'S':
		return 0;
	case 'D':
		if (mc->cat_failed)
			return 0;
		r = catalog_row(mc, body, n);
		if (r < 0) {
			log_warn("grant %s: cannot read the masking catalog: %s", c->gc.grant->id,
				 r == -E2BIG ? "too many rows (more than 200000)"
				 : r == -EFBIG ? "too large (more than 32 MiB: view definitions?)"
				 : strerror(-r));
			mc->cat_failed = true;
		}
		return 0;
	case 'E':
		if (pgw_parse_error(body, n, &f) < 0)
			f = (struct pg_error_fields){ 0 };
		snprintf(mc->cat_sqlstate, sizeof(mc->cat_sqlstate), "%s", f.sqlstate ? f.sqlstate : "");
		/* An aborted transaction answers every query so: read it later. */
		if (!mc->saved || strcmp(mc->cat_sqlstate, "25P02") != 0)
			log_warn("grant %s: cannot read the masking catalog: the server says: %s",
				 c->gc.grant->id, f.message ? f.message : "(no message)");
		mc->cat_failed = true;
		return 0;
	case 'Z':
		if (mc->cat_failed)
			return -EPROTO;
		if ((r = plan_views(mc)) < 0) {
			log_warn("grant %s: cannot plan the views over masked columns: %s", c->gc.grant->id,
				 strerror(-r));
			return r;
		}
		log_debug("grant %s connection %llu: masking %zu column(s), %zu dependent view(s), "
			  "%zu user function name(s)", c->gc.grant->id, (unsigned long long)c->serial,
			  mc->n_cols, mc->n_views, mc->n_funcs);
		return 1;
	default:
		return -EPROTO;
	}
}

static void rowmask_clear(struct rowmask *rm)
{
	free(rm->fa);
	sqltext_unref(rm->of);
	*rm = (struct rowmask){ 0 };
}

void pg_mask_free(struct pgconn *c)
{
	struct maskconn *mc = c->mask;
	struct catsave k;

	if (!mc)
		return;
	k = catalog_take(mc);
	catalog_free(&k);
	if (mc->saved) {
		catalog_free(mc->saved);
		free(mc->saved);
	}
	for (size_t i = 0; i < mc->n_cursors; i++) {
		free(mc->cursors[i].name);
		free(mc->cursors[i].text);
	}
	free(mc->cursors);
	rowmask_clear(&mc->cur);
	rowmask_clear(&mc->next);
	buf_release(&mc->repl, 0);
	buf_release(&mc->batch, 0);
	mask_out_free(&mc->out);
	free(mc);
	c->mask = NULL;
}

/* ---- plans ---------------------------------------------------------------------- */

static void catalog_view(const struct maskconn *mc, struct mask_catalog *cat)
{
	*cat = (struct mask_catalog){
		.views = (const char *const *)mc->view_names, .view_rules = mc->view_rules,
		.n_views = mc->n_views, .user_functions = (const char *const *)mc->funcs,
		.n_user_functions = mc->n_funcs,
	};
}

static bool name_in(char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return true;
	return false;
}

/* Could the statement touch anything masked? A cheap look at what the
 * classifier found, so most statements never need a plan. */
static bool in_scope(const struct maskconn *mc, const struct sql_stmt *st)
{
	if (!st)
		return true;
	if (st->classes & (CLASS_BIT(CLASS_OPAQUE) | CLASS_BIT(CLASS_COPY_OUT)))
		return true;
	if (st->flags & (SQLF_EXECUTE | SQLF_PREPARE))
		return true;
	for (size_t i = 0; i < st->n_rels; i++) {
		const struct sql_rel *rel = &st->rels[i];

		for (size_t k = 0; k < mc->m->n_rules; k++)
			if (strcmp(rel->name, mc->m->rules[k].table) == 0 &&
			    (!rel->schema || strcmp(rel->schema, mc->m->rules[k].schema) == 0))
				return true;
		for (size_t k = 0; k < mc->n_views; k++) {
			const char *dot = strchr(mc->view_names[k], '.');

			if (dot && strcmp(rel->name, dot + 1) == 0 &&
			    (!rel->schema || (strlen(rel->schema) == (size_t)(dot - mc->view_names[k]) &&
					      strncmp(rel->schema, mc->view_names[k], (size_t)(dot - mc->view_names[k])) == 0)))
				return true;
		}
	}
	for (size_t i = 0; i < st->n_functions; i++) {
		const char *f = st->functions[i], *dot = strrchr(f, '.');

		if (dot && strncmp(f, "pg_catalog.", 11) == 0)
			continue;
		if (name_in(mc->funcs, mc->n_funcs, dot ? dot + 1 : f))
			return true;
	}
	/* FETCH names no relation: its cursor's query decides. */
	return false;
}

/* Where the statement's first word starts: blanks and comments (-- to the
 * end of the line, nested block comments) skipped. */
static const char *first_word(const char *t, size_t len, size_t *left)
{
	const char *end = t + len;

	while (t < end) {
		if (*t == ' ' || *t == '\t' || *t == '\n' || *t == '\r' || *t == '\f' || *t == '\v') {
			t++;
		} else if (end - t >= 2 && t[0] == '-' && t[1] == '-') {
			while (t < end && *t != '\n')
				t++;
		} else if (end - t >= 2 && t[0] == '/' && t[1] == '*') {
			unsigned depth = 0;

			do {
				if (end - t >= 2 && t[0] == '/' && t[1] == '*') {
					depth++;
					t += 2;
				} else if (end - t >= 2 && t[0] == '*' && t[1] == '/') {
					depth--;
					t += 2;
				} else {
					t++;
				}
			} while (t < end && depth > 0);
		} else {
			break;
		}
	}
	*left = (size_t)(end - t);
	return t;
}

static bool starts_with_word(const char *text, size_t len, const char *word)
{
	size_t left, n = strlen(word);
	const char *t = first_word(text, len, &left);

	return left >= n && strncasecmp(t, word, n) == 0 &&
	       (left == n || !((t[n] >= 'a' && t[n] <= 'z') || (t[n] >= 'A' && t[n] <= 'Z') ||
			       (t[n] >= '0' && t[n] <= '9') || t[n] == '_'));
}

/* FETCH and MOVE name no relation: their cursor's query decides. */
static bool is_fetch(const char *text, size_t len)
{
	return starts_with_word(text, len, "fetch") || starts_with_word(text, len, "move");
}

static bool is_declare(const char *text, size_t len)
{
	return starts_with_word(text, len, "declare");
}

/* The plan of text[0..len) (one statement), following FETCH to its cursor
 * and EXECUTE to its PREPARE. 0 with *out (free with mask_plans_free), or
 * -ENOMEM. */
static int plan_of(struct pgconn *c, const char *text, size_t len, struct mask_plans *out, int depth)
{
	struct maskconn *mc = c->mask;
	struct mask_catalog cat;
	char *copy = strndup(text, len);
	int r;

	if (!copy)
		return -ENOMEM;
	catalog_view(mc, &cat);
	r = mask_plan(copy, mc->m, &cat, out);
	free(copy);
	if (r < 0 || out->error || out->n != 1 || depth > 2)
		return r;
	{
		struct mask_plan *p = &out->v[0];
		const char *follow = NULL;
		struct name_ent *ne;

		if (p->fetch_cursor) {
			for (size_t i = 0; i < mc->n_cursors; i++)
				if (strcmp(mc->cursors[i].name, p->fetch_cursor) == 0)
					follow = mc->cursors[i].text;
		} else if (p->execute && (ne = map_find(&c->stmts, p->execute)) && ne->sql) {
			follow = ne->sql->text;
		} else if (!p->execute) {
			return 0;
		}
		if (follow) {
			struct mask_plans inner = { 0 };

			r = plan_of(c, follow, strlen(follow), &inner, depth + 1);
			if (r < 0)
				return r;
			mask_plans_free(out);
			*out = inner;
			return 0;
		}
		/* An unknown cursor or prepared name: anything may come out. */
		free(p->columns);
		p->columns = NULL;
		p->n_columns = 0;
		p->positional = false;
		p->verdict = MP_MASK;
		p->all = (struct mp_column){ .tainted = true, .rule = MP_RULE_ANY };
	}
	return 0;
}

static void remember_cursor(struct maskconn *mc, const char *name, const char *text, size_t len)
{
	struct cursor *v;
	size_t i;

	for (i = 0; i < mc->n_cursors; i++)
		if (strcmp(mc->cursors[i].name, name) == 0)
			break;
	if (i == mc->n_cursors) {
		if (mc->n_cursors >= CURSORS_MAX)
			return; /* forgotten: a FETCH of it is then masked as unknown */
		v = reallocarray(mc->cursors, mc->n_cursors + 1, sizeof(*v));
		if (!v)
			return;
		mc->cursors = v;
		v[i] = (struct cursor){ strdup(name), NULL };
		if (!v[i].name)
			return;
		mc->n_cursors++;
	}
	free(mc->cursors[i].text);
	mc->cursors[i].text = strndup(text, len);
}

void pg_mask_verdict(struct pgconn *c, const char *text, size_t len, const struct sql_stmt *st,
		     struct verdict *v)
{
	struct maskconn *mc = c->mask;
	struct mask_plans plans = { 0 };
	const char *s = text;
	size_t n = len;

	if (v->kind == VERDICT_BLOCK)
		return;
	/* DDL may move what the catalog said (a table dropped and made
	 * again has a new OID): read it again before the next request, on
	 * this connection and, once its transaction ends, on the others. */
	if (!st || (st->classes & (CLASS_BIT(CLASS_DDL) | CLASS_BIT(CLASS_DROP)))) {
		c->mask_ddl = true;
		if (mc)
			mc->stale = true;
	}
	if (!mc)
		return;
	if (st && st->len) {
		s = text + st->off;
		n = st->len;
	}
	if (!in_scope(mc, st) && !is_fetch(s, n) && !is_declare(s, n))
		return;
	/* A plain read cannot be refused (COPY, DO, CALL, writes, settings
	 * and SQL-running built-ins all add classes of their own) unless
	 * strict: its plan waits until its result is described. */
	if (!mc->m->strict && st && (st->classes & ~CLASS_BIT(CLASS_READ)) == 0 &&
	    !(st->flags & (SQLF_EXECUTE | SQLF_PREPARE)) && !is_declare(s, n))
		return;
	if (plan_of(c, s, n, &plans, 0) < 0) {
		v->kind = VERDICT_BLOCK;
		v->klass = -1;
		snprintf(v->what, sizeof(v->what), "masking: out of memory planning the statement");
	} else if (plans.n == 1 && plans.v[0].verdict == MP_REFUSE) {
		v->kind = VERDICT_BLOCK;
		v->klass = -1;
		snprintf(v->what, sizeof(v->what), "masking: %s",
			 plans.v[0].why ? plans.v[0].why : "a masked column cannot be hidden here");
		snprintf(v->rule, sizeof(v->rule), "rule at %s:%u", mc->m->origin.file, mc->m->origin.line);
	} else if (plans.n == 1 && plans.v[0].cursor) {
		remember_cursor(mc, plans.v[0].cursor, s, n);
	}
	mask_plans_free(&plans);
}

/* ---- results --------------------------------------------------------------------- */

/* A command tag of a statement that may change the catalog (an EXECUTE of
 * a statement prepared in an earlier request was never decided here). */
static bool ddl_tag(const uint8_t *body, size_t n)
{
	static const char *const words[] = { "CREATE ", "ALTER ", "DROP " };

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		size_t k = strlen(words[i]);

		if (n >= k && memcmp(body, words[i], k) == 0)
			return true;
	}
	return false;
}

static bool starts_with_word(const char *text, size_t len, const char *word);

/* The word "into" anywhere in text (a SELECT INTO makes a table). */
static bool has_into(const char *t, size_t len)
{
	for (size_t i = 0; i + 4 <= len; i++)
		if (strncasecmp(t + i, "into", 4) == 0)
			return true;
	return false;
}

/* The statement completing (the head of the FIFO, before the tracker moves
 * on) may have changed the catalog: its tag says so, or its classes do. A
 * CREATE MATERIALIZED VIEW, CREATE TABLE AS or SELECT INTO is tagged
 * "SELECT n"; an Execute's statement was decided when it was parsed,
 * maybe requests ago. */
static bool completed_ddl(struct pgconn *c, const uint8_t *body, size_t n)
{
	const uint32_t ddl = CLASS_BIT(CLASS_DDL) | CLASS_BIT(CLASS_DROP);
	struct pend *e = pg_fifo_head(c);
	struct guard_class *k = NULL;
	const char *t;
	size_t len;
	bool yes;

	if (ddl_tag(body, n))
		return true;
	if (!e || !e->sql || (e->kind != PEND_QUERY && e->kind != PEND_EXECUTE))
		return false;
	if (e->kind == PEND_QUERY && e->cls)
		return e->cur < e->cls->c.n && (e->cls->c.v[e->cur].classes & ddl);
	t = e->sql->text;
	len = e->sql->len;
	if (starts_with_word(t, len, "create"))
		return true;
	if (n < 7 || memcmp(body, "SELECT ", 7) != 0 || !has_into(t, len))
		return false;
	/* Rare: classified once, then cached. No memory: say DDL (read again). */
	if (guard_classify(t, len, &k) < 0 || !k)
		return true;
	yes = false;
	for (size_t i = 0; i < k->c.n; i++)
		yes |= (k->c.v[i].classes & ddl) != 0;
	guard_class_unref(k);
	return yes;
}

void pg_mask_settle(struct pgconn *c, char type, const uint8_t *body, size_t n)
{
	struct maskconn *mc = c->mask;

	/* Nothing masks on this agent: no catalog to keep fresh, and no
	 * statement pays for looking (a connection that starts masking after
	 * a reload reads its catalog then). */
	if (!mc && c->agent->pol->p->n_masks == 0)
		return;
	if (type == 'C' && completed_ddl(c, body, n)) {
		c->mask_ddl = true;
		if (mc) {
			mc->stale = true;
			mc->ddl_in_request = true;
		}
		return;
	}
	if (type != 'Z' || n < 1)
		return;
	if (mc) {
		mc->ddl_in_request = false;
		/* One big result does not keep its buffers for the connection's life. */
		if (mc->batch.cap > BATCH_KEEP)
			buf_release(&mc->batch, 0);
		if (!mc->withhold && mc->repl.cap > BATCH_KEEP)
			buf_release(&mc->repl, 0);
	}
	if (body[0] != 'I')
		return; /* still in a transaction: not seen by the others yet, and may be rolled back */
	if (c->mask_ddl) {
		c->mask_ddl = false;
		ddl_generation++;
	}
	if (mc && mc->refreshed_in_txn) {
		mc->refreshed_in_txn = false;
		mc->stale = true;
	}
}

static enum mask_action refuse(struct pgconn *c, const char *why);

#define AFTER_DDL_WHY "masking: the catalog changes with DDL earlier in this request; send this statement after a Sync (or in a Query of its own)"

static const struct mcol *masked_col(const struct maskconn *mc, uint32_t oid, int attnum)
{
	for (size_t i = 0; i < mc->n_cols; i++)
		if (mc->cols[i].oid == oid && mc->cols[i].attnum == attnum)
			return &mc->cols[i];
	return NULL;
}

static const struct mview *masked_view(const struct maskconn *mc, uint32_t oid)
{
	for (size_t i = 0; i < mc->n_views; i++)
		if (mc->views[i].oid == oid)
			return &mc->views[i];
	return NULL;
}

static void rule_name(const struct pol_mask *m, int rule, char *buf, size_t n)
{
	if (rule >= 0 && (size_t)rule < m->n_rules)
		snprintf(buf, n, "%s.%s.%s", m->rules[rule].schema, m->rules[rule].table,
			 m->rules[rule].column);
	else
		snprintf(buf, n, "a masked column (through a function or cursor sluice cannot see into)");
}

/* Could method stand for a value of this type? */
static bool representable(enum mask_method method, uint32_t typoid)
{
	struct mask_out o = { 0 };
	int r = mask_value(method, NULL, typoid, "x", 1, &o);

	mask_out_free(&o);
	/* hash without a key says -EINVAL before looking at the type. */
	if (r == -EINVAL && method == MASK_HASH)
		return mask_type_is_text(typoid);
	return r == MASKV_VALUE || r == MASKV_NULL;
}

/* The actions for a RowDescription, for a statement text. 0, 1 (refuse:
 * why set), or -ENOMEM. */
static int build(struct pgconn *c, const uint8_t *body, size_t n, const char *text, size_t len,
		 const struct sql_stmt *st, struct rowmask *rm, char *why, size_t whylen)
{
	struct maskconn *mc = c->mask;
	struct mask_plans plans = { 0 };
	const struct mask_plan *plan = NULL;
	bool planned = false;
	size_t off = 2;
	uint16_t nf;
	int ret = 0;

	rowmask_clear(rm);
	rm->set = true;
	if (n < 2)
		return -EPROTO;
	nf = get_u16(body);
	rm->fa = calloc(nf ? nf : 1, sizeof(*rm->fa));
	if (!rm->fa)
		return -ENOMEM;
	rm->n = nf;
	for (uint16_t i = 0; i < nf; i++) {
		const uint8_t *end = memchr(body + off, '\0', n - off);
		const char *fname = (const char *)body + off;
		struct fieldact *fa = &rm->fa[i];
		uint32_t tableoid, typoid;
		int16_t attnum, format;
		int rule = -2;
		struct mp_column taint = { 0 };

		if (!end || (size_t)(end - body) + 19 > n) {
			ret = -EPROTO;
			goto out;
		}
		off = (size_t)(end - body) + 1;
		tableoid = get_u32(body + off);
		attnum = (int16_t)get_u16(body + off + 4);
		typoid = get_u32(body + off + 6);
		format = (int16_t)get_u16(body + off + 16);
		off += 18;
		fa->typoid = typoid;
		fa->format = format;
		if (tableoid != 0) {
			const struct mcol *mcl = masked_col(mc, tableoid, attnum);
			const struct mview *mv = mcl ? NULL : masked_view(mc, tableoid);

			if (!mcl && !mv && attnum == 0) {
				/* A whole row of a table (SELECT t FROM t): its masked columns. */
				for (size_t k = 0; k < mc->n_cols; k++) {
					if (mc->cols[k].oid != tableoid)
						continue;
					if (rule == -2) {
						rule = (int)mc->cols[k].rule;
					} else {
						taint.several = true;
						taint.mixed |= mc->m->rules[rule].method !=
							       mc->m->rules[mc->cols[k].rule].method;
					}
				}
				if (rule != -2)
					taint = (struct mp_column){ .tainted = true, .rule = rule,
								    .several = taint.several, .mixed = taint.mixed };
			} else if (mcl) {
				rule = (int)mcl->rule;
			} else if (mv) {
				/* A view over masked data: its query said which columns. */
				const struct mp_column *vc = attnum > 0 && (size_t)attnum <= mv->n_cols
								     ? &mv->cols[attnum - 1] : &mv->all;
				if (vc->tainted) {
					rule = vc->rule;
					taint = *vc;
				}
				/* Its whole row carries every column's. */
				for (size_t k = 0; attnum == 0 && !mv->all.tainted && k < mv->n_cols; k++) {
					if (!mv->cols[k].tainted)
						continue;
					if (rule == -2) {
						rule = mv->cols[k].rule;
						taint = mv->cols[k];
					} else {
						taint.several = true;
						taint.mixed = true;
					}
				}
			}
			if (rule != -2 && !taint.tainted)
				taint = (struct mp_column){ .tainted = true, .rule = rule,
							    .mixed = rule == MP_RULE_ANY };
		} else {
			if (!planned) {
				planned = true;
				if (in_scope(mc, st) || is_fetch(text, len)) {
					ret = plan_of(c, text, len, &plans, 0);
					if (ret < 0)
						goto out;
					if (plans.n == 1)
						plan = &plans.v[0];
					else
						plan = NULL; /* not parsed: it did run, so be safe */
					if (!plan) {
						snprintf(why, whylen, "masking: the statement's result cannot be traced");
						ret = 1;
						goto out;
					}
				}
			}
			if (plan && plan->verdict == MP_MASK) {
				const struct mp_column *pc =
					plan->positional && i < plan->n_columns ? &plan->columns[i] : &plan->all;

				if (pc->tainted) {
					rule = pc->rule;
					taint = *pc;
				}
			}
		}
		if (rule == -2) {
			fa->kind = mc->m->detect && tableoid == 0 ? FA_DETECT : FA_PASS;
		} else {
			enum mask_method method = mp_method(mc->m, &taint);

			if (!representable(method, typoid)) {
				char col[400];

				rule_name(mc->m, rule, col, sizeof(col));
				/* A long name is cut: the message is still a refusal. */
				if (snprintf(why, whylen,
					     "masking: result column %u (%.*s) carries %s, and %s cannot stand for a value of its type",
					     i + 1u, (int)MIN(strlen(fname), (size_t)64), fname, col,
					     mask_method_name(method)) >= (int)whylen)
					why[whylen - 1] = '\0';
				ret = 1;
				goto out;
			}
			fa->kind = FA_MASK;
			fa->method = (uint8_t)method;
		}
		if (fa->kind != FA_PASS)
			rm->whole = true;
	}
out:
	mask_plans_free(&plans);
	return ret;
}

/* Withhold everything until ReadyForQuery; the client gets why instead of
 * the message at hand. */
static enum mask_action refuse(struct pgconn *c, const char *why)
{
	struct maskconn *mc = c->mask;

	snprintf(mc->refusal, sizeof(mc->refusal), "sluice: refused: %s", why);
	mc->withhold = true;
	mc->first_recorded = false;
	rowmask_clear(&mc->cur);
	rowmask_clear(&mc->next);
	buf_clear(&mc->repl);
	if (pgw_error(&mc->repl, 'E', "ERROR", "42501", mc->refusal, NULL, NULL) < 0) {
		/* No memory for words: the client sees nothing until
		 * ReadyForQuery, and no half-written error either. */
		buf_clear(&mc->repl);
		return MA_WITHHOLD;
	}
	return MA_REPLACE;
}

/* The statement a result belongs to: text, length and classification. */
static bool head_statement(struct pgconn *c, struct pend *e, const char **text, size_t *len,
			   const struct sql_stmt **st)
{
	*st = NULL;
	if (!e || !e->sql)
		return false;
	*text = e->sql->text;
	*len = e->sql->len;
	if (e->kind == PEND_QUERY && e->cls && e->cur < e->cls->c.n) {
		*st = &e->cls->c.v[e->cur];
		/* Always the statement's own text: a Query of one statement may
		 * still begin with empty ones (";FETCH ...") or end with them. */
		if ((*st)->len) {
			*text = e->sql->text + (*st)->off;
			*len = (*st)->len;
		}
	}
	(void)c;
	return true;
}

static enum mask_action on_description(struct pgconn *c, const uint8_t *body, size_t n)
{
	struct maskconn *mc = c->mask;
	struct pend *e = pg_fifo_head(c);
	const struct sql_stmt *st;
	const char *text;
	size_t len;
	char why[400];
	struct rowmask *rm;
	int r;

	if (!e)
		return MA_PASS;
	if (e->kind == PEND_DESCRIBE && !e->describe_portal)
		return MA_PASS; /* a statement's: formats are the Bind's, the portal's comes later */
	if (mc->ddl_in_request)
		return refuse(c, AFTER_DDL_WHY);
	rm = e->kind == PEND_DESCRIBE ? &mc->next : &mc->cur;
	if (!head_statement(c, e, &text, &len, &st)) {
		/* A portal sluice did not see made: trace nothing, mask everything. */
		text = "FETCH ALL FROM \"sluice unknown\"";
		len = strlen(text);
		st = NULL;
	}
	r = build(c, body, n, text, len, st, rm, why, sizeof(why));
	if (r < 0)
		return refuse(c, r == -ENOMEM ? "masking: out of memory" : "masking: a malformed row description");
	if (r == 1)
		return refuse(c, why);
	/* Which portal it was is not on the wire's answers: its statement
	 * is (an Execute of another statement's portal plans its own). */
	if (rm == &mc->next)
		rm->of = sqltext_ref(e->sql);
	return MA_PASS;
}

static int put_value(struct buf *b, const void *p, uint32_t len)
{
	int r = buf_put_u32(b, len);

	return r || len == UINT32_MAX ? r : buf_append(b, p, len);
}

static enum mask_action start_rows(struct pgconn *c);

/* Append the masked row to dst (header included). Runs of values that pass
 * are copied whole. MA_REPLACE: appended; otherwise refused (the error is
 * in the replacement, dst is as it was). */
static enum mask_action rewrite_row(struct pgconn *c, const uint8_t *body, size_t n, struct buf *dst)
{
	struct maskconn *mc = c->mask;
	const struct rowmask *rm = &mc->cur;
	struct mask_out *o = &mc->out;
	size_t off = 2, run = 0, start = dst->len;
	uint16_t nv;
	int r = 0;

	if (n < 2 || (nv = get_u16(body)) != rm->n)
		return refuse(c, "masking: a row does not match its description");
	if ((r = buf_put_u8(dst, 'D')) < 0 || (r = buf_put_u32(dst, 0)) < 0)
		goto fail;
	for (uint16_t i = 0; i < nv; i++) {
		const struct fieldact *fa = &rm->fa[i];
		size_t at = off;
		uint32_t len;
		const uint8_t *v;
		enum mask_method method;
		int k;

		if (n - off < 4)
			goto malformed;
		len = get_u32(body + off);
		off += 4;
		v = body + off;
		if (len != UINT32_MAX) {
			if (n - off < len)
				goto malformed;
			off += len;
		}
		if (len == UINT32_MAX || fa->kind == FA_PASS ||
		    (fa->kind == FA_DETECT &&
		     ((fa->format == 1 && !mask_type_is_text(fa->typoid)) ||
		      !mask_detect(mc->m->detect, (const char *)v, len))))
			continue; /* part of the run */
		method = fa->kind == FA_MASK ? (enum mask_method)fa->method : MASK_REDACT;
		k = mask_value(method, mc->m->key, fa->typoid, (const char *)v, len, o);
		if (k != MASKV_VALUE && k != MASKV_NULL) {
			dst->len = start;
			return refuse(c, k == -ENOMEM ? "masking: out of memory"
				      : "masking: a value cannot be masked with its column's method");
		}
		if ((r = buf_append(dst, body + run, at - run)) < 0 ||
		    (r = k == MASKV_VALUE ? put_value(dst, o->buf, (uint32_t)o->len)
					  : put_value(dst, NULL, UINT32_MAX)) < 0)
			goto fail;
		run = off;
	}
	if (off != n)
		goto malformed;
	if ((r = buf_append(dst, body + run, n - run)) < 0)
		goto fail;
	buf_set_u32(dst, start + 1, (uint32_t)(dst->len - start - 1));
	return MA_REPLACE;
malformed:
	dst->len = start;
	return refuse(c, "masking: a malformed row");
fail:
	dst->len = start;
	return refuse(c, r == -EMSGSIZE ? "masking: a masked row grew past max_message_size"
		      : "masking: out of memory");
}

enum mask_action pg_mask_row(struct pgconn *c, const uint8_t *body, size_t n, struct buf *dst)
{
	enum mask_action a = start_rows(c);

	if (a != MA_PASS)
		return a;
	if (!c->mask->cur.whole)
		return MA_PASS;
	a = rewrite_row(c, body, n, dst);
	/* Refused: the caller sends the error (the replacement) instead. */
	return a == MA_REPLACE && c->mask->withhold ? MA_WITHHOLD : a;
}

/* Quoted values in a server message ("..." and =(...)) become ***. A value
 * may hold the quote that ends it (the server does not escape it), so a
 * quoted run lasts to the text's last '"' (or ')'), or to its end when
 * there is no other: names between two values are lost with them. A text
 * in which a detector still finds something is withheld whole. */
static int scrub_text(const struct maskconn *mc, const char *s, struct buf *out)
{
	size_t start = out->len;
	const char *p = s;
	int r = 0;

	while (r == 0 && *p) {
		bool quote = *p == '"';

		if (quote || (*p == '=' && p[1] == '(')) {
			const char *end = strrchr(p + (quote ? 1 : 2), quote ? '"' : ')');

			r = appends(out, quote ? "\"***\"" : "=(***)");
			p = end ? end + 1 : p + strlen(p);
		} else {
			r = buf_put_u8(out, (uint8_t)*p++);
		}
	}
	if (r == 0 && mask_detect(mc->m->detect | DETECT_CREDIT_CARD | DETECT_SSN | DETECT_EMAIL | DETECT_IBAN,
				  (const char *)out->data + start, out->len - start)) {
		out->len = start;
		r = appends(out, "(withheld by sluice: it may quote a masked value)");
	}
	return r ? r : buf_put_u8(out, 0);
}

static enum mask_action scrub_notice(struct pgconn *c, char type, const uint8_t *body, size_t n)
{
	static const char withheld[] = "(withheld by sluice: it may contain masked values)";
	struct maskconn *mc = c->mask;
	size_t off = 0;
	int r;

	buf_clear(&mc->repl);
	if ((r = buf_put_u8(&mc->repl, (uint8_t)type)) < 0 || (r = buf_put_u32(&mc->repl, 0)) < 0)
		goto fail;
	while (off < n && body[off] != 0) {
		char field = (char)body[off++];
		const char *v = pgw_get_cstr(body, n, &off);

		if (!v || (r = buf_put_u8(&mc->repl, (uint8_t)field)) < 0)
			goto fail;
		/* A detail shows rows and keys as they are ("Failing row contains
		 * (...)", "Key (k)=(...)"), a context the text a function could
		 * not read ("JSON data, line 1: ..."), an internal query what a
		 * function built from data: none is told. The message and hint
		 * quote values in known ways (scrubbed); the rest (severity, code,
		 * position, file, line, routine, names of objects) are kept. */
		if (field == 'D' || field == 'W' || field == 'q')
			r = buf_append(&mc->repl, withheld, sizeof(withheld)); /* its NUL too */
		else if (field == 'M' || field == 'H')
			r = scrub_text(mc, v, &mc->repl);
		else
			r = buf_append(&mc->repl, v, strlen(v) + 1);
		if (r < 0)
			goto fail;
	}
	if ((r = buf_put_u8(&mc->repl, 0)) < 0)
		goto fail;
	buf_set_u32(&mc->repl, 1, (uint32_t)mc->repl.len - 1);
	return MA_REPLACE;
fail:
	/* Malformed, or no memory: the message is withheld, and nothing
	 * half-written is left to be sent in its place. */
	buf_clear(&mc->repl);
	return MA_WITHHOLD;
}

bool pg_mask_rows_whole(const struct pgconn *c)
{
	return c->mask && c->mask->cur.set && c->mask->cur.whole;
}

bool pg_mask_withholding(const struct pgconn *c)
{
	return c->mask && c->mask->withhold;
}

/* The first row of a result: decide its mask if the description did not
 * (an Execute: from its Describe, else from its plan alone). */
static enum mask_action start_rows(struct pgconn *c)
{
	struct maskconn *mc = c->mask;
	struct pend *e = pg_fifo_head(c);
	struct mask_plans plans = { 0 };
	const struct sql_stmt *st;
	const char *text;
	size_t len;
	bool clean;

	if (mc->cur.set)
		return MA_PASS;
	if (mc->ddl_in_request)
		return refuse(c, AFTER_DDL_WHY);
	/* A description of a portal of the same statement (the portal itself,
	 * or another bound to it: the same columns, masked alike); it stays
	 * for the portal's next Execute (a row limit) until ReadyForQuery. */
	if (e && e->kind == PEND_EXECUTE && mc->next.set && mc->next.of && e->sql == mc->next.of) {
		rowmask_clear(&mc->cur);
		mc->cur = (struct rowmask){ .n = mc->next.n, .set = true, .whole = mc->next.whole };
		mc->cur.fa = calloc(mc->next.n ? mc->next.n : 1, sizeof(*mc->cur.fa));
		if (!mc->cur.fa)
			return refuse(c, "masking: out of memory");
		memcpy(mc->cur.fa, mc->next.fa, mc->next.n * sizeof(*mc->cur.fa));
		return MA_PASS;
	}
	/* No description: only a result that cannot carry anything masked passes. */
	if (!head_statement(c, e, &text, &len, &st))
		return refuse(c, "masking: rows of a statement sluice did not see prepared, without a description");
	clean = !in_scope(mc, st) && !is_fetch(text, len);
	if (!clean) {
		if (plan_of(c, text, len, &plans, 0) < 0)
			return refuse(c, "masking: out of memory");
		clean = plans.n == 1 && plans.v[0].verdict == MP_CLEAN;
		mask_plans_free(&plans);
	}
	if (!clean)
		return refuse(c, "masking: rows that may carry masked columns arrived without a row description (describe the portal before executing it)");
	mc->cur.set = true;
	/* Detectors need the types: without them every value is scanned as text. */
	return MA_PASS;
}

enum mask_action pg_mask_server(struct pgconn *c, char type, const uint8_t *body, size_t n)
{
	struct maskconn *mc = c->mask;

	if (!mc)
		return MA_PASS;
	if (mc->withhold) {
		if (type != 'Z')
			return MA_WITHHOLD;
		mc->withhold = false;
		return MA_PASS;
	}
	switch (type) {
	case 'T':
		return on_description(c, body, n);
	case 'n':
		rowmask_clear(&mc->next);
		return MA_PASS;
	case '2': /* BindComplete: a Describe before it described another portal */
		rowmask_clear(&mc->next);
		return MA_PASS;
	case 'C':
	case 's':
	case 'I':
		rowmask_clear(&mc->cur);
		return MA_PASS;
	case 'E':
		rowmask_clear(&mc->cur);
		return scrub_notice(c, type, body, n);
	case 'N':
		return scrub_notice(c, type, body, n);
	case 'Z':
		rowmask_clear(&mc->cur);
		rowmask_clear(&mc->next);
		return MA_PASS;
	case 'H': /* CopyOutResponse: the plan refused COPY of masked data before it ran */
	default:
		return MA_PASS;
	}
}

/* Called for a DataRow before deciding to stream it: the first row of a
 * result may need its mask decided (or refuse). */
enum mask_action pg_mask_row_begin(struct pgconn *c)
{
	if (!c->mask || c->mask->withhold)
		return c->mask ? MA_WITHHOLD : MA_PASS;
	return start_rows(c);
}

struct buf *pg_mask_replacement(struct pgconn *c)
{
	return &c->mask->repl;
}

struct buf *pg_mask_batch(struct pgconn *c)
{
	return &c->mask->batch;
}

enum mask_action pg_mask_row_too_big(struct pgconn *c, size_t total)
{
	char why[160];

	snprintf(why, sizeof(why), "masking: a row of %zu bytes needs masking and is larger than max_message_size",
		 total);
	return refuse(c, why);
}

const char *pg_mask_withheld_error(struct pgconn *c)
{
	struct maskconn *mc = c->mask;

	if (!mc || !mc->withhold)
		return NULL;
	if (!mc->first_recorded) {
		mc->first_recorded = true;
		return mc->refusal;
	}
	return "not delivered: an earlier result of the same request was refused (masking)";
}
