/* Which response belongs to which request. Every client message that the
 * server answers is queued in order (the pending FIFO); server messages pop
 * it. That gives each statement its outcome for the audit, and lets the
 * proxy answer a refused message itself at exactly the place in the stream
 * where the server's answer would have been. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "agent/audit.h"
#include "agent/guard.h"
#include "agent/pgconn.h"
#include "agent/pgenc.h"
#include "agent/pgwire.h"
#include "common/log.h"

#define AUDIT_ROW_OVERHEAD 256

/* --- The pending FIFO ----------------------------------------------------- */

static struct pend *fifo_at(struct pgconn *c, size_t i)
{
	return &c->fifo[(c->fifo_head + i) % c->fifo_cap];
}

static struct pend *fifo_head(struct pgconn *c)
{
	return c->fifo_n ? fifo_at(c, 0) : NULL;
}

static struct pend *fifo_push(struct pgconn *c, enum pend_kind kind)
{
	struct pend *e;

	if (c->fifo_n == c->fifo_cap) {
		size_t cap = c->fifo_cap ? c->fifo_cap * 2 : 8;
		struct pend *v = malloc(cap * sizeof(*v));
		if (!v)
			return NULL;
		for (size_t i = 0; i < c->fifo_n; i++)
			v[i] = *fifo_at(c, i);
		free(c->fifo);
		c->fifo = v;
		c->fifo_cap = cap;
		c->fifo_head = 0;
	}
	e = fifo_at(c, c->fifo_n++);
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	return e;
}

static void pend_clear(struct pgconn *c, struct pend *e)
{
	for (; e->reserved > 0; e->reserved--)
		audit_unreserve(c->agent->audit, e->hint);
	sqltext_unref(e->sql);
	guard_class_unref(e->cls);
	free(e->rule);
	free(e->name);
	buf_release(&e->local, 0);
	memset(e, 0, sizeof(*e));
}

static void fifo_pop(struct pgconn *c)
{
	pend_clear(c, fifo_head(c));
	c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
	if (--c->fifo_n == 0) {
		/* Idle connections keep no FIFO. */
		free(c->fifo);
		c->fifo = NULL;
		c->fifo_cap = c->fifo_head = 0;
	}
}

/* --- Audit records ---------------------------------------------------------- */

struct outcome {
	const char *decision;    /* NULL: allowed */
	const char *rule;        /* NULL: the entry's */
	const char *tag;
	const char *sqlstate;
	const char *error;
	int64_t rows;
	bool executed;
};

void pg_note_parameter(struct pgconn *c, const uint8_t *body, size_t n)
{
	size_t off = 0;
	const char *name = pgw_get_cstr(body, n, &off);
	const char *value = name ? pgw_get_cstr(body, n, &off) : NULL;
	const char *conv;

	if (!value || strcmp(name, "client_encoding") != 0)
		return;
	if (c->enc != (iconv_t)-1)
		iconv_close(c->enc);
	c->enc = (iconv_t)-1;
	conv = pgenc_iconv_name(value);
	if (conv)
		c->enc = iconv_open("UTF-8", conv);
}

static void record(struct pgconn *c, struct pend *e, const char *sql, size_t len,
		   const struct outcome *o)
{
	struct grant *g = c->gc.grant;
	char *utf8 = NULL;

	if (e->reserved == 0)
		return; /* more answers than we counted statements: nothing to do */
	/* The audit shows the text the server ran, in UTF-8; bytes that do not
	 * convert are kept as sent. */
	if (c->enc != (iconv_t)-1 && sql && pgenc_to_utf8(c->enc, sql, len, &utf8, &len) == 0)
		sql = utf8;
	audit_statement(c->agent->audit, &(struct audit_statement){
		.ts_us = e->ts_us, .grant_id = g->id, .uid = g->uid, .user = g->user,
		.connection = g->conn->name, .conn_serial = c->serial, .sql = sql, .sql_len = len,
		.decision = o->decision ? o->decision : AUDIT_ALLOWED,
		.rule = o->rule ? o->rule : e->rule ? e->rule : sqltext_rule(c, e->sql),
		.outcome = o->tag, .sqlstate = o->sqlstate,
		.error = o->error, .rows = o->rows,
		.duration_us = o->executed ? mono_us() - e->t0 : -1,
		.subject = g->subject, .issuer = g->issuer, .groups = g->groups_json }, e->hint);
	free(utf8);
	e->reserved--;
	c->n_statements++;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Statement i of a classified text, as the audit shows it: without the
 * blanks between it and the previous ';'. */
static void stmt_bounds(const struct sql_stmt *st, size_t textlen, size_t *off, size_t *len,
			const char *text)
{
	size_t o = MIN((size_t)st->off, textlen), l = st->len;

	if (l == 0 || o + l > textlen)
		l = textlen - o; /* 0 means "to the end" */
	while (l > 0 && is_blank(text[o])) {
		o++;
		l--;
	}
	while (l > 0 && is_blank(text[o + l - 1]))
		l--;
	*off = o;
	*len = l;
}

/* The next statement of cls that runs, from i on. */
static uint32_t next_running(const struct guard_class *cls, uint32_t i)
{
	while (cls && i < cls->c.n && !guard_stmt_runs(&cls->c, i))
		i++;
	return i;
}

/* The current statement of a QUERY, or an EXECUTE, is done. */
static void complete_current(struct pgconn *c, struct pend *e, const struct outcome *o)
{
	if (e->kind == PEND_QUERY) {
		const struct sql_stmt *st = e->cls && e->cur < e->cls->c.n ? &e->cls->c.v[e->cur] : NULL;
		const char *sql = e->sql->text;
		size_t off = 0, len = e->sql->len;

		if (e->done >= e->n_parts)
			return;
		/* One statement: the whole text, as the client sent it. */
		if (st && e->n_parts > 1)
			stmt_bounds(st, len, &off, &len, sql);
		record(c, e, sql + off, len, o);
		/* The server now knows (or forgot) a prepared statement. */
		if (st && o->tag && (st->flags & (SQLF_PREPARE | SQLF_DEALLOCATE))) {
			int r = guard_sql_prepared(c, st, sql);
			if (r < 0)
				log_warn("grant %s connection %llu: cannot track a prepared statement: %s",
					 c->gc.grant->id, (unsigned long long)c->serial, strerror(-r));
		}
		e->done++;
		e->cur = next_running(e->cls, e->cur + 1);
		/* The next statement starts now. */
		e->ts_us = now_us();
		e->t0 = mono_us();
		e->rows = 0;
	} else if (e->kind == PEND_EXECUTE || e->kind == PEND_PARSE) {
		if (e->sql)
			record(c, e, e->sql->text, e->sql->len, o);
		else
			record(c, e, "(a prepared statement sluice did not see prepared)", 51, o);
		/* A PREPARE or DEALLOCATE sent through the extended protocol. */
		if (e->kind == PEND_EXECUTE && e->sql && o->tag &&
		    (strncmp(o->tag, "PREPARE", 7) == 0 || strncmp(o->tag, "DEALLOCATE", 10) == 0)) {
			int r = guard_sql_prepared_text(c, e->sql);
			if (r < 0)
				log_warn("grant %s connection %llu: cannot track a prepared statement: %s",
					 c->gc.grant->id, (unsigned long long)c->serial, strerror(-r));
		}
	}
}

/* Everything of e that did not run. */
static void complete_rest(struct pgconn *c, struct pend *e, const char *why)
{
	struct outcome o = { .error = why, .rows = -1 };

	if (e->kind == PEND_QUERY) {
		while (e->done < e->n_parts)
			complete_current(c, e, &o);
	} else if (e->kind == PEND_EXECUTE) {
		complete_current(c, e, &o);
	}
}

/* Pop the head, then hand out replies of ours that were waiting for it. */
static int pop_and_emit(struct pgconn *c)
{
	struct pend *e;
	int r;

	fifo_pop(c);
	while ((e = fifo_head(c)) && e->kind == PEND_LOCAL) {
		if ((r = buf_append(&c->emit, e->local.data, e->local.len)) < 0)
			return r;
		if (e->local_rfq && (r = pgw_ready(&c->emit, c->txn_status)) < 0)
			return r;
		fifo_pop(c);
	}
	return 0;
}

int pg_refuse_local(struct pgconn *c, const char *sqlstate, const char *msg, bool rfq)
{
	struct buf m = BUF_INIT(0);
	struct pend *e;
	int r = pgw_error(&m, 'E', "ERROR", sqlstate, msg, NULL, NULL);

	if (r < 0)
		goto out;
	if (c->fifo_n == 0) {
		/* Nothing in flight: answer now. */
		r = buf_append(&c->emit, m.data, m.len);
		if (r == 0 && rfq)
			r = pgw_ready(&c->emit, c->txn_status);
		if (r == 0)
			r = pg_flush_emit(c);
		goto out;
	}
	e = fifo_push(c, PEND_LOCAL);
	if (!e) {
		r = -ENOMEM;
		goto out;
	}
	e->local = m;
	e->local_rfq = rfq;
	return 0;
out:
	buf_release(&m, 0);
	return r;
}

/* A statement decided here, never sent upstream: recorded when the audit
 * can take it (if it cannot, the refusal itself is what protects). */
static void record_decided(struct pgconn *c, const char *sql, size_t len, const char *decision,
			   const char *rule, const char *sqlstate, const char *why)
{
	struct pend tmp = { .ts_us = now_us(), .t0 = mono_us(), .hint = AUDIT_ROW_OVERHEAD + len };

	if (audit_reserve(c->agent->audit, tmp.hint) < 0)
		return;
	tmp.reserved = 1;
	record(c, &tmp, sql, len, &(struct outcome){ .decision = decision, .rule = rule,
		.sqlstate = sqlstate, .error = why, .rows = -1 });
}

static void record_refused(struct pgconn *c, const char *sql, size_t len, const char *sqlstate,
			   const char *why)
{
	record_decided(c, sql, len, AUDIT_REFUSED, NULL, sqlstate, why);
}

/* --- Client messages --------------------------------------------------------- */

static const char *audit_down_message(struct pgconn *c)
{
	const char *why = audit_failure(c->agent->audit);
	static char msg[400];
	static int64_t last_log;
	static unsigned refused;

	/* Nothing can be recorded now: the log says it, at most once a second. */
	refused++;
	if (mono_us() - last_log > 1000000) {
		log_warn("audit unavailable (%s): refused %u statement(s), latest on grant %s for %s",
			 why ? why : "queue full", refused, c->gc.grant->id, c->gc.grant->user);
		last_log = mono_us();
		refused = 0;
	}
	snprintf(msg, sizeof(msg),
		 "sluice: refused: the audit log cannot record this statement (%s); nothing runs unrecorded",
		 why ? why : "its queue is full");
	return msg;
}

static enum pg_action violation(struct pgconn *c, const char *what)
{
	pg_protocol_violation(c, "the client", what);
	return PG_CLOSE;
}

static enum pg_action oom_close(struct pgconn *c)
{
	pg_fatal_client(c, "53200", "sluice: out of memory");
	return PG_CLOSE;
}

/* Refuse a statement with the server's help: the client's message is
 * replaced by one that must fail upstream (a syntax error, or "current
 * transaction is aborted"), whose error is swapped for ours. So the server
 * stays in step with what the client was told, as after any failed
 * statement: an open transaction is aborted, the extended protocol skips to
 * Sync there too, and ReadyForQuery carries the server's own status. */
static enum pg_action refuse_upstream(struct pgconn *c, const char *msg, bool query)
{
	static const char bad[] = "sluice refused this statement";
	struct pend *e = fifo_push(c, query ? PEND_QUERY : PEND_PARSE);
	struct buf *b = &c->subst;
	int r;

	if (!e)
		return oom_close(c);
	e->subst = true;
	e->local.max = 1024;
	buf_clear(b);
	r = pgw_error(&e->local, 'E', "ERROR", "42501", msg, NULL, NULL);
	if (r == 0)
		r = buf_put_u8(b, query ? 'Q' : 'P');
	if (r == 0)
		r = buf_put_u32(b, 0);
	if (r == 0 && !query) /* a name that is never created: the Parse fails */
		r = buf_put_cstr(b, bad);
	if (r == 0)
		r = buf_put_cstr(b, bad);
	if (r == 0 && !query)
		r = buf_put_u16(b, 0);
	if (r < 0)
		return oom_close(c);
	buf_set_u32(b, 1, (uint32_t)b->len - 1);
	if (!query)
		c->discard_until_sync = true;
	return PG_REPLACE;
}

/* Refuse a whole simple query: the deciding statement is recorded with the
 * decision, every other statement as not executed; the client gets the
 * error and ReadyForQuery, and the session goes on. */
static enum pg_action refuse_query(struct pgconn *c, const char *sql, size_t len,
				   const struct guard_decision *d, const char *decision,
				   const char *rule, const char *msg)
{
	const struct sql_class *k = &d->cls->c;
	char why[128];
	size_t off, l;

	if (d->at == SIZE_MAX || d->n_run <= 1) {
		record_decided(c, sql, len, decision, rule, "42501", msg);
	} else {
		snprintf(why, sizeof(why), "not executed: statement %u of the query %s", d->ordinal,
			 d->kind == VERDICT_BLOCK ? "was blocked" : "needs approval");
		for (size_t i = 0; i < k->n; i++) {
			if (!guard_stmt_runs(k, i))
				continue;
			stmt_bounds(&k->v[i], len, &off, &l, sql);
			if (i == d->at)
				record_decided(c, sql + off, l, decision, rule, "42501", msg);
			else
				record_decided(c, sql + off, l, AUDIT_REFUSED, NULL, "42501", why);
		}
	}
	return refuse_upstream(c, msg, true);
}

static enum pg_action forward_query(struct pgconn *c, const char *sql, size_t len,
				    struct guard_decision *d, char **rule)
{
	uint32_t n_parts = MAX(d->n_run, 1), got = 0;
	size_t hint = AUDIT_ROW_OVERHEAD + len;
	struct pend *e;
	int r;

	if (d->n_prepare > 0 &&
	    c->stmts.n + d->n_prepare > c->agent->pol->p->agent.max_prepared_statements) {
		static const char why[] =
			"sluice: too many prepared statements on this connection (max_prepared_statements); DEALLOCATE some first";
		record_refused(c, sql, len, "54000", why);
		return pg_refuse_local(c, "54000", why, true) < 0 ? PG_CLOSE : PG_DROP;
	}
	/* Every statement must have its record's place before anything runs. */
	for (; got < n_parts; got++)
		if (audit_reserve(c->agent->audit, hint) < 0)
			break;
	if (got < n_parts) {
		for (uint32_t i = 0; i < got; i++)
			audit_unreserve(c->agent->audit, hint);
		r = pg_refuse_local(c, "58000", audit_down_message(c), true);
		return r < 0 ? PG_CLOSE : PG_DROP;
	}
	e = fifo_push(c, PEND_QUERY);
	if (!e || !(e->sql = sqltext_new(sql, len))) {
		for (uint32_t i = 0; i < n_parts; i++)
			audit_unreserve(c->agent->audit, hint);
		return oom_close(c);
	}
	e->cls = d->cls;
	d->cls = NULL;
	e->cur = next_running(e->cls, 0);
	e->n_parts = n_parts;
	e->reserved = n_parts;
	e->hint = hint;
	e->rule = *rule;
	*rule = NULL;
	e->ts_us = now_us();
	e->t0 = mono_us();
	return PG_FORWARD;
}

static enum pg_action on_query(struct pgconn *c, const uint8_t *body, size_t n)
{
	const char *sql = (const char *)body;
	struct guard_decision d = { 0 };
	struct guard_refusal ref;
	char msg[640], *rule = NULL;
	enum pg_action act;
	size_t len;
	int r;

	if (n == 0 || body[n - 1] != '\0' || memchr(body, '\0', n) != body + n - 1)
		return violation(c, "a malformed Query message");
	len = n - 1;
	if (guard_decide_text(c, sql, len, &d) < 0)
		return oom_close(c);
	switch (d.kind) {
	case VERDICT_BLOCK:
		act = refuse_query(c, sql, len, &d, AUDIT_BLOCKED, d.v.rule,
				   verdict_message(&d.v, msg, sizeof(msg)));
		break;
	case VERDICT_APPROVE:
		r = guard_approval(c, sql, len, &d.v, &rule, &ref);
		if (r < 0)
			act = oom_close(c);
		else if (r == GA_HOLD)
			act = PG_HOLD;
		else if (r == GA_REFUSED)
			act = refuse_query(c, sql, len, &d, ref.decision, ref.rule, ref.msg);
		else
			act = forward_query(c, sql, len, &d, &rule);
		break;
	default:
		if (!guard_allow_rule(c, &d.v, &rule)) {
			act = oom_close(c);
			break;
		}
		act = forward_query(c, sql, len, &d, &rule);
		break;
	}
	free(rule);
	guard_decision_clear(&d);
	return act;
}

/* A message naming a statement or portal that was blocked: refused with
 * the same words, the rest of the batch skipped. */
static enum pg_action refuse_named(struct pgconn *c, const struct sqltext *s, bool record_it)
{
	char msg[640];

	verdict_message(s->v, msg, sizeof(msg));
	if (record_it)
		record_decided(c, s->text, s->len, AUDIT_BLOCKED, s->v->rule, "42501", msg);
	return refuse_upstream(c, msg, false);
}

static bool is_blocked(const struct name_ent *e)
{
	return e && e->sql && e->sql->decision == SQLT_BLOCKED && e->sql->v;
}

static enum pg_action on_parse(struct pgconn *c, const uint8_t *body, size_t n)
{
	size_t off = 0;
	const char *name = pgw_get_cstr(body, n, &off);
	const char *sql = name ? pgw_get_cstr(body, n, &off) : NULL;
	struct guard_decision d = { 0 };
	struct name_ent *old;
	struct sqltext *t = NULL;
	struct pend *e;
	enum pg_action act = PG_FORWARD;
	char msg[640];
	bool fresh;
	int r;

	if (!sql || off + 2 > n)
		return violation(c, "a malformed Parse message");
	old = map_find(&c->stmts, name);
	/* A name we only hold as a blocked mark is unknown to the server. */
	fresh = name[0] != '\0' && (!old || !old->server);
	if (fresh && !old && c->stmts.n >= c->agent->pol->p->agent.max_prepared_statements) {
		c->discard_until_sync = true;
		return pg_refuse_local(c, "54000",
				       "sluice: too many prepared statements on this connection (max_prepared_statements); close some first",
				       false) < 0 ? PG_CLOSE : PG_DROP;
	}
	if (guard_decide_text(c, sql, strlen(sql), &d) < 0 || !(t = sqltext_new(sql, strlen(sql))))
		goto oom;
	if (d.kind == VERDICT_BLOCK) {
		/* Never sent: later messages naming it get the same refusal. */
		verdict_message(&d.v, msg, sizeof(msg));
		record_decided(c, t->text, t->len, AUDIT_BLOCKED, d.v.rule, "42501", msg);
		if (sqltext_decide(c, t, SQLT_BLOCKED, &d.v) < 0 ||
		    ((name[0] == '\0' || fresh) && map_set(&c->stmts, name, t, false) < 0))
			goto oom;
		act = refuse_upstream(c, msg, false);
		goto out;
	}
	r = sqltext_decide(c, t, d.kind == VERDICT_APPROVE ? SQLT_APPROVE : SQLT_ALLOWED, &d.v);
	if (r < 0 || !(e = fifo_push(c, PEND_PARSE)))
		goto oom;
	for (size_t i = 0; i < d.cls->c.n; i++)
		if (d.cls->c.v[i].flags & SQLF_EXECUTE)
			t->redecide = true;
	e->sql = sqltext_ref(t);
	e->ts_us = now_us();
	e->t0 = mono_us();
	/* The server replaces the unnamed statement and refuses to redefine a
	 * named one; mirror that so Bind finds the right text. */
	if (name[0] == '\0' || fresh) {
		if (map_set(&c->stmts, name, t, true) < 0)
			goto oom;
		if (fresh && !(e->name = strdup(name)))
			goto oom;
	}
out:
	sqltext_unref(t);
	guard_decision_clear(&d);
	return act;
oom:
	act = oom_close(c);
	goto out;
}

static enum pg_action on_bind(struct pgconn *c, const uint8_t *body, size_t n)
{
	size_t off = 0;
	const char *portal = pgw_get_cstr(body, n, &off);
	const char *stmt = portal ? pgw_get_cstr(body, n, &off) : NULL;
	struct name_ent *s, *p;

	if (!stmt)
		return violation(c, "a malformed Bind message");
	s = map_find(&c->stmts, stmt);
	p = map_find(&c->portals, portal);
	/* Portals live until the transaction ends: as many as statements. */
	if (!p && c->portals.n >= c->agent->pol->p->agent.max_prepared_statements) {
		c->discard_until_sync = true;
		return pg_refuse_local(c, "54000",
				       "sluice: too many open portals on this connection (max_prepared_statements); close some or end the transaction",
				       false) < 0 ? PG_CLOSE : PG_DROP;
	}
	if (is_blocked(s)) {
		/* The portal is marked too, so its Execute in a later batch is
		 * refused in the same words (unless it names a live portal). */
		if ((!p || !p->server) && map_set(&c->portals, portal, s->sql, false) < 0)
			return oom_close(c);
		return refuse_named(c, s->sql, true);
	}
	if (map_set(&c->portals, portal, s ? s->sql : NULL, true) < 0 || !fifo_push(c, PEND_BIND))
		return oom_close(c);
	return PG_FORWARD;
}

static enum pg_action on_describe(struct pgconn *c, const uint8_t *body, size_t n)
{
	size_t off = 1;
	const char *name = n > 1 ? pgw_get_cstr(body, n, &off) : NULL;
	struct name_ent *e;

	if (!name || off != n || (body[0] != 'S' && body[0] != 'P'))
		return violation(c, "a malformed Describe message");
	e = map_find(body[0] == 'S' ? &c->stmts : &c->portals, name);
	if (is_blocked(e))
		return refuse_named(c, e->sql, false);
	if (!fifo_push(c, PEND_DESCRIBE))
		return oom_close(c);
	return PG_FORWARD;
}

static enum pg_action on_execute(struct pgconn *c, const uint8_t *body, size_t n)
{
	size_t off = 0;
	const char *portal = pgw_get_cstr(body, n, &off);
	struct guard_decision d = { 0 };
	const struct verdict *ask = NULL;
	struct guard_refusal ref;
	struct sqltext *s;
	struct name_ent *p;
	struct pend *e;
	enum pg_action act = PG_FORWARD;
	char *rule = NULL, msg[640];
	size_t hint;
	int r = GA_RUN;

	if (!portal || off + 4 != n)
		return violation(c, "a malformed Execute message");
	p = map_find(&c->portals, portal);
	if (is_blocked(p))
		return refuse_named(c, p->sql, true);
	s = p ? p->sql : NULL;
	hint = AUDIT_ROW_OVERHEAD + (s ? s->len : 0);
	if (audit_reserve(c->agent->audit, hint) < 0) {
		c->discard_until_sync = true;
		return pg_refuse_local(c, "58000", audit_down_message(c), false) < 0 ? PG_CLOSE : PG_DROP;
	}
	if (s && s->redecide) {
		/* EXECUTE name: the body is what the name holds now. */
		if (guard_decide_text(c, s->text, s->len, &d) < 0) {
			act = oom_close(c);
			goto unreserve;
		}
		if (d.kind == VERDICT_BLOCK) {
			verdict_message(&d.v, msg, sizeof(msg));
			record_decided(c, s->text, s->len, AUDIT_BLOCKED, d.v.rule, "42501", msg);
			act = refuse_upstream(c, msg, false);
			goto unreserve;
		}
		if (d.kind == VERDICT_APPROVE)
			ask = &d.v;
	} else if (s && s->decision == SQLT_APPROVE && s->v) {
		ask = s->v; /* decided at Parse; each execution needs its own approval */
	}
	if (ask)
		r = guard_approval(c, s->text, s->len, ask, &rule, &ref);
	if (r == GA_HOLD) {
		act = PG_HOLD;
		goto unreserve;
	}
	if (r == GA_REFUSED) {
		record_decided(c, s->text, s->len, ref.decision, ref.rule, "42501", ref.msg);
		act = refuse_upstream(c, ref.msg, false);
		goto unreserve;
	}
	if (r != GA_RUN || !(e = fifo_push(c, PEND_EXECUTE))) {
		act = oom_close(c);
		goto unreserve;
	}
	e->sql = sqltext_ref(s);
	e->reserved = 1;
	e->hint = hint;
	e->rule = rule; /* an approval's: "approval ID by USER" */
	rule = NULL;
	e->ts_us = now_us();
	e->t0 = mono_us();
	goto out;
unreserve:
	audit_unreserve(c->agent->audit, hint);
out:
	free(rule);
	guard_decision_clear(&d);
	return act;
}

static enum pg_action on_close_msg(struct pgconn *c, const uint8_t *body, size_t n)
{
	size_t off = 1;
	const char *name = n > 1 ? pgw_get_cstr(body, n, &off) : NULL;

	if (!name || off != n || (body[0] != 'S' && body[0] != 'P'))
		return violation(c, "a malformed Close message");
	map_del(body[0] == 'S' ? &c->stmts : &c->portals, name);
	if (!fifo_push(c, PEND_CLOSE))
		return oom_close(c);
	return PG_FORWARD;
}

static enum pg_action track_client(struct pgconn *c, char type, const uint8_t *body, size_t n,
				   size_t total)
{
	if (c->discard_until_sync) {
		/* After a refusal in an extended-protocol batch, the rest of the
		 * batch goes nowhere, as the server itself would skip it. */
		if (type != 'S')
			{
			if (type != 'X')
				return PG_DROP;
			c->state = PGS_CLOSING;
			return PG_CLOSE;
		}
		c->discard_until_sync = false;
	}
	switch (type) {
	case 'Q':
		return on_query(c, body, n);
	case 'P':
		return on_parse(c, body, n);
	case 'B':
		return on_bind(c, body, n);
	case 'E':
		return on_execute(c, body, n);
	case 'C':
		return on_close_msg(c, body, n);
	case 'D':
		return on_describe(c, body, n);
	case 'S':
		if (!fifo_push(c, PEND_SYNC))
			return oom_close(c);
		return PG_FORWARD;
	case 'H': /* Flush */
	case 'c': /* CopyDone */
	case 'f': /* CopyFail */
		return PG_FORWARD;
	case 'd': /* CopyData */
		return PG_STREAM;
	case 'F': {
		/* FunctionCall runs a function by OID, around SQL and so around
		 * every rule that reads SQL. */
		static const char why[] =
			"sluice: refused: the FunctionCall protocol message is not allowed through a grant (it bypasses SQL); call the function with SELECT";
		record_refused(c, "(FunctionCall protocol message)", 31, "42501", why);
		return pg_refuse_local(c, "42501", why, true) < 0 ? PG_CLOSE : PG_DROP;
	}
	case 'X':
		c->end_reason = "client terminated the session";
		c->state = PGS_CLOSING;
		return PG_CLOSE;
	default: {
		char what[64];
		snprintf(what, sizeof(what), "an unexpected message type 0x%02x", (unsigned)(uint8_t)type);
		(void)total;
		return violation(c, what);
	}
	}
}

enum pg_action pg_track_client(struct pgconn *c, char type, const uint8_t *body, size_t n,
			       size_t total)
{
	enum pg_action act = track_client(c, type, body, n, total);

	/* A held statement's outcome applies to its own re-examination only. */
	c->hold_done = false;
	return act;
}

enum pg_action pg_track_oversized(struct pgconn *c, char type, size_t total, uint32_t max)
{
	char msg[256];
	static const char *const names[] = { "Query", "Parse", "Bind" };
	const char *name = type == 'Q' ? names[0] : type == 'P' ? names[1] : type == 'B' ? names[2] : NULL;

	/* PostgreSQL itself takes no message over 1 GB: beyond that (or for
	 * a type that is never large) the length is not to be believed. */
	if (!name || total > PG_MESSAGE_MAX) {
		snprintf(msg, sizeof(msg),
			 "a message (type 0x%02x) of %zu bytes, larger than max_message_size (%u bytes)",
			 (unsigned)(uint8_t)type, total, max);
		return violation(c, msg);
	}
	if (c->discard_until_sync)
		return PG_DROP; /* skipped anyway */
	snprintf(msg, sizeof(msg),
		 "sluice: refused: a %s message of %zu bytes exceeds max_message_size (%u bytes); "
		 "send less per message or raise [agent] max_message_size", name, total, max);
	record_refused(c, "(message too large to record)", 29, "54000", msg);
	if (type != 'Q')
		c->discard_until_sync = true;
	return pg_refuse_local(c, "54000", msg, type == 'Q') < 0 ? PG_CLOSE : PG_DROP;
}

/* --- Server messages --------------------------------------------------------- */

static enum pg_action server_violation(struct pgconn *c, char type)
{
	char what[64];

	snprintf(what, sizeof(what), "an unexpected message type 0x%02x", (unsigned)(uint8_t)type);
	pg_protocol_violation(c, "the server", what);
	return PG_CLOSE;
}

static enum pg_action on_server_error(struct pgconn *c, const uint8_t *body, size_t n)
{
	struct pg_error_fields f;
	struct pend *e = fifo_head(c);
	char msg[512];

	if (pgw_parse_error(body, n, &f) < 0)
		return server_violation(c, 'E');
	if (!e)
		return PG_FORWARD; /* e.g. FATAL on an idle session: relayed, then EOF */
	if (e->subst && f.severity && strcmp(f.severity, "ERROR") == 0) {
		/* The failure we sent for a refused message: our words instead. */
		if (buf_append(&c->emit, e->local.data, e->local.len) < 0)
			return oom_close(c);
		if (e->kind == PEND_PARSE) {
			/* The server skips to Sync; so did we. */
			fifo_pop(c);
			while ((e = fifo_head(c)) && e->kind != PEND_SYNC && e->kind != PEND_QUERY) {
				complete_rest(c, e, "not executed: an earlier message of the batch was refused");
				fifo_pop(c);
			}
		}
		/* (A query's entry stays for its ReadyForQuery.) */
		return PG_DROP;
	}
	snprintf(msg, sizeof(msg), "%s", f.message ? f.message : "");
	switch (e->kind) {
	case PEND_QUERY:
		complete_current(c, e, &(struct outcome){
			.sqlstate = f.sqlstate, .error = msg, .rows = -1, .executed = true });
		/* The rest of the string does not run; ReadyForQuery follows. */
		return PG_FORWARD;
	case PEND_SYNC:
		return PG_FORWARD; /* the implicit COMMIT failed */
	default: {
		struct outcome failed = { .sqlstate = f.sqlstate,
					  .error = msg, .rows = -1, .executed = true };
		struct pend *target = e->kind == PEND_EXECUTE ? e : NULL;

		/* What the client tried is the batch's Execute: an error at its
		 * Parse or Bind is that statement's failure, one row. */
		for (size_t i = 1; !target && i < c->fifo_n; i++) {
			struct pend *x = fifo_at(c, i);
			if (x->kind == PEND_SYNC || x->kind == PEND_QUERY)
				break;
			if (x->kind == PEND_EXECUTE)
				target = x;
		}
		if (e->kind == PEND_PARSE && e->name)
			map_del(&c->stmts, e->name);
		if (target) {
			complete_current(c, target, &failed);
		} else if (e->kind == PEND_PARSE) {
			/* A Parse alone (a client preparing ahead) is still an attempt. */
			e->hint = AUDIT_ROW_OVERHEAD + (e->sql ? e->sql->len : 0);
			if (audit_reserve(c->agent->audit, e->hint) == 0)
				e->reserved = 1;
			complete_current(c, e, &failed);
		}
		/* The server now skips everything up to the next Sync. */
		fifo_pop(c);
		while ((e = fifo_head(c)) && e->kind != PEND_SYNC && e->kind != PEND_QUERY) {
			complete_rest(c, e, "not executed: an earlier message of the batch failed");
			fifo_pop(c);
		}
		return PG_FORWARD;
	}
	}
}

static enum pg_action complete_with_tag(struct pgconn *c, struct pend *e, const char *tag,
					size_t taglen)
{
	int64_t rows = pgw_tag_rows(tag, taglen);
	char t[64];

	taglen = MIN(taglen, sizeof(t) - 1);
	memcpy(t, tag, taglen);
	t[taglen] = '\0';
	complete_current(c, e, &(struct outcome){ .tag = t,
		/* The tag's count; else the rows seen (SHOW, EXPLAIN); else none (DDL). */
		.rows = rows >= 0 ? rows : e->rows > 0 ? e->rows : -1, .executed = true });
	if (e->kind == PEND_EXECUTE)
		return pop_and_emit(c) < 0 ? oom_close(c) : PG_FORWARD;
	return PG_FORWARD;
}

enum pg_action pg_track_server(struct pgconn *c, char type, const uint8_t *body, size_t n)
{
	struct pend *e = fifo_head(c);

	switch (type) {
	case 'D': /* DataRow: header only */
		if (e)
			e->rows++;
		return PG_STREAM;
	case 'd':
		return PG_STREAM;
	case 'C': /* CommandComplete */
		if (n == 0 || body[n - 1] != '\0')
			return server_violation(c, type);
		if (e && (e->kind == PEND_QUERY || e->kind == PEND_EXECUTE))
			return complete_with_tag(c, e, (const char *)body, n - 1);
		return PG_FORWARD;
	case 'I': /* EmptyQueryResponse */
		if (e && (e->kind == PEND_QUERY || e->kind == PEND_EXECUTE))
			return complete_with_tag(c, e, "EMPTY", 5);
		return PG_FORWARD;
	case 's': /* PortalSuspended: the Execute's row limit was reached */
		if (e && e->kind == PEND_EXECUTE)
			return complete_with_tag(c, e, "SUSPENDED", 9);
		return PG_FORWARD;
	case 'E':
		return on_server_error(c, body, n);
	case '1': /* ParseComplete */
		if (e && e->kind == PEND_PARSE)
			return pop_and_emit(c) < 0 ? oom_close(c) : PG_FORWARD;
		return PG_FORWARD;
	case '2': /* BindComplete */
		if (e && e->kind == PEND_BIND)
			return pop_and_emit(c) < 0 ? oom_close(c) : PG_FORWARD;
		return PG_FORWARD;
	case '3': /* CloseComplete */
		if (e && e->kind == PEND_CLOSE)
			return pop_and_emit(c) < 0 ? oom_close(c) : PG_FORWARD;
		return PG_FORWARD;
	case 'T': /* RowDescription */
	case 'n': /* NoData */
		if (e && e->kind == PEND_DESCRIBE)
			return pop_and_emit(c) < 0 ? oom_close(c) : PG_FORWARD;
		return PG_FORWARD;
	case 'Z': /* ReadyForQuery */
		if (n != 1)
			return server_violation(c, type);
		c->txn_status = (char)body[0];
		/* Entries still before the Sync/Query this answers did not run. */
		while ((e = fifo_head(c)) && e->kind != PEND_SYNC && e->kind != PEND_QUERY) {
			complete_rest(c, e, "not executed");
			fifo_pop(c);
		}
		if (e) {
			complete_rest(c, e, "not executed: an earlier statement of the query failed");
			if (pop_and_emit(c) < 0)
				return oom_close(c);
		}
		/* Outside a transaction the server has dropped every portal. */
		if (c->txn_status == 'I')
			map_clear(&c->portals, false);
		return PG_FORWARD;
	case 't': /* ParameterDescription */
	case 'G': /* CopyInResponse */
	case 'H': /* CopyOutResponse */
	case 'c': /* CopyDone */
	case 'A': /* NotificationResponse */
	case 'N': /* NoticeResponse */
	case 'S': /* ParameterStatus */
		pg_note_parameter(c, body, n);
		return PG_FORWARD;
	default: /* R, K, v, V, W (CopyBoth: replication only) and the unknown */
		return server_violation(c, type);
	}
}

void pg_track_refused_after_end(struct pgconn *c, char type, const uint8_t *body, size_t n)
{
	struct grant *g = c->gc.grant;
	const char *sql = NULL;
	size_t off = 0;
	char why[128];

	if (type == 'Q')
		sql = pgw_get_cstr(body, n, &off);
	else if (type == 'P' && pgw_get_cstr(body, n, &off))
		sql = pgw_get_cstr(body, n, &off);
	if (!sql)
		return;
	snprintf(why, sizeof(why), "grant %s ended (%s)", g->id, g->end_reason ? g->end_reason : "ended");
	record_refused(c, sql, strlen(sql), "57P01", why);
}

void pg_track_finish(struct pgconn *c, const char *why)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "interrupted: %s", why);
	while (c->fifo_n > 0) {
		complete_rest(c, fifo_head(c), msg);
		fifo_pop(c);
	}
	guard_hold_cancel(c);
	map_clear(&c->stmts, false);
	map_clear(&c->portals, false);
	c->discard_until_sync = false;
}
