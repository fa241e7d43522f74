/* What the client sends, in READY state: each message examined before it
 * goes upstream. Statements are decided here (guard.h) and refused in the
 * client's protocol; everything forwarded gets its place in the pending
 * FIFO (pgtrack.c) so its answer finds it. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/audit.h"
#include "agent/guard.h"
#include "agent/pgconn.h"
#include "agent/pgwire.h"
#include "common/log.h"

static void record_refused(struct pgconn *c, const char *sql, size_t len, const char *sqlstate,
			   const char *why)
{
	pg_record_decided(c, sql, len, AUDIT_REFUSED, NULL, sqlstate, why);
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

/* Refuse a statement with the server's help: the client's message is
 * replaced by one that must fail upstream (a syntax error, or "current
 * transaction is aborted"), whose error is swapped for ours. So the server
 * stays in step with what the client was told, as after any failed
 * statement: an open transaction is aborted, the extended protocol skips to
 * Sync there too, and ReadyForQuery carries the server's own status. */
static enum pg_action refuse_upstream(struct pgconn *c, const char *msg, bool query)
{
	static const char bad[] = "sluice refused this statement";
	struct pend *e = pg_fifo_push(c, query ? PEND_QUERY : PEND_PARSE);
	struct buf *b = &c->subst;
	int r;

	if (!e)
		return pg_oom_close(c);
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
		return pg_oom_close(c);
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
		pg_record_decided(c, sql, len, decision, rule, "42501", msg);
	} else {
		snprintf(why, sizeof(why), "not executed: statement %u of the query %s", d->ordinal,
			 d->kind == VERDICT_BLOCK ? "was blocked" : "needs approval");
		for (size_t i = 0; i < k->n; i++) {
			if (!guard_stmt_runs(k, i))
				continue;
			pg_stmt_bounds(&k->v[i], len, &off, &l, sql);
			if (i == d->at)
				pg_record_decided(c, sql + off, l, decision, rule, "42501", msg);
			else
				pg_record_decided(c, sql + off, l, AUDIT_REFUSED, NULL, "42501", why);
		}
	}
	return refuse_upstream(c, msg, true);
}

static enum pg_action forward_query(struct pgconn *c, const char *sql, size_t len,
				    struct guard_decision *d, char **rule)
{
	uint32_t n_parts = MAX(d->n_run, 1), got = 0;
	size_t hint = PG_AUDIT_ROW_OVERHEAD + len;
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
	e = pg_fifo_push(c, PEND_QUERY);
	if (!e || !(e->sql = sqltext_new(sql, len))) {
		for (uint32_t i = 0; i < n_parts; i++)
			audit_unreserve(c->agent->audit, hint);
		return pg_oom_close(c);
	}
	e->cls = d->cls;
	d->cls = NULL;
	e->cur = pg_next_running(e->cls, 0);
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
	r = guard_decide_text(c, sql, len, true, &d);
	if (r == -EINPROGRESS)
		return PG_HOLD;
	if (r < 0)
		return pg_oom_close(c);
	switch (d.kind) {
	case VERDICT_BLOCK:
		act = refuse_query(c, sql, len, &d, AUDIT_BLOCKED, d.v.rule,
				   verdict_message(&d.v, msg, sizeof(msg)));
		break;
	case VERDICT_APPROVE:
		r = guard_approval(c, sql, len, &d.v, &rule, &ref);
		if (r < 0)
			act = pg_oom_close(c);
		else if (r == GA_HOLD)
			act = PG_HOLD;
		else if (r == GA_REFUSED)
			act = refuse_query(c, sql, len, &d, ref.decision, ref.rule, ref.msg);
		else
			act = forward_query(c, sql, len, &d, &rule);
		break;
	default:
		if (!guard_allow_rule(c, &d.v, &rule)) {
			act = pg_oom_close(c);
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
		pg_record_decided(c, s->text, s->len, AUDIT_BLOCKED, s->v->rule, "42501", msg);
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
	r = guard_decide_text(c, sql, strlen(sql), true, &d);
	if (r == -EINPROGRESS)
		return PG_HOLD;
	if (r < 0 || !(t = sqltext_new(sql, strlen(sql))))
		goto oom;
	if (d.kind == VERDICT_BLOCK) {
		/* Never sent: later messages naming it get the same refusal. */
		verdict_message(&d.v, msg, sizeof(msg));
		pg_record_decided(c, t->text, t->len, AUDIT_BLOCKED, d.v.rule, "42501", msg);
		if (sqltext_decide(c, t, SQLT_BLOCKED, &d.v) < 0 ||
		    ((name[0] == '\0' || fresh) && map_set(&c->stmts, name, t, false) < 0))
			goto oom;
		act = refuse_upstream(c, msg, false);
		goto out;
	}
	r = sqltext_decide(c, t, d.kind == VERDICT_APPROVE ? SQLT_APPROVE : SQLT_ALLOWED, &d.v);
	if (r < 0 || !(e = pg_fifo_push(c, PEND_PARSE)))
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
	act = pg_oom_close(c);
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
			return pg_oom_close(c);
		return refuse_named(c, s->sql, true);
	}
	if (map_set(&c->portals, portal, s ? s->sql : NULL, true) < 0 || !pg_fifo_push(c, PEND_BIND))
		return pg_oom_close(c);
	return PG_FORWARD;
}

static enum pg_action on_describe(struct pgconn *c, const uint8_t *body, size_t n)
{
	size_t off = 1;
	const char *name = n > 1 ? pgw_get_cstr(body, n, &off) : NULL;
	struct name_ent *e;

	if (!name || off != n || (body[0] != 'S' && body[0] != 'P'))
		return violation(c, "a malformed Describe message");
	struct pend *d;

	e = map_find(body[0] == 'S' ? &c->stmts : &c->portals, name);
	if (is_blocked(e))
		return refuse_named(c, e->sql, false);
	if (!(d = pg_fifo_push(c, PEND_DESCRIBE)))
		return pg_oom_close(c);
	/* Masking reads a portal's description for its Execute, the recorded
	 * result a description for the Execute of the same statement. */
	if (e && e->sql) {
		d->sql = sqltext_ref(e->sql);
		d->describe_portal = body[0] == 'P';
	}
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
	hint = PG_AUDIT_ROW_OVERHEAD + (s ? s->len : 0);
	if (audit_reserve(c->agent->audit, hint) < 0) {
		c->discard_until_sync = true;
		return pg_refuse_local(c, "58000", audit_down_message(c), false) < 0 ? PG_CLOSE : PG_DROP;
	}
	if (s && s->redecide) {
		/* EXECUTE name: the body is what the name holds now. */
		if (guard_decide_text(c, s->text, s->len, false, &d) < 0) {
			act = pg_oom_close(c);
			goto unreserve;
		}
		if (d.kind == VERDICT_BLOCK) {
			verdict_message(&d.v, msg, sizeof(msg));
			pg_record_decided(c, s->text, s->len, AUDIT_BLOCKED, d.v.rule, "42501", msg);
			act = refuse_upstream(c, msg, false);
			goto unreserve;
		}
		if (d.kind == VERDICT_APPROVE)
			ask = &d.v;
	} else if (s && s->decision == SQLT_APPROVE && s->v) {
		ask = s->v; /* decided at Parse; each execution needs its own approval */
	} else if (!s) {
		/* Nothing to show an approver either: anything but allow refuses. */
		static const char unseen[] = "(a portal or prepared statement sluice did not see prepared)";
		guard_decide_unseen(c, &d.v);
		if (d.v.kind != VERDICT_ALLOW) {
			d.v.kind = VERDICT_BLOCK;
			verdict_message(&d.v, msg, sizeof(msg));
			pg_record_decided(c, unseen, sizeof(unseen) - 1, AUDIT_BLOCKED, d.v.rule, "42501", msg);
			act = refuse_upstream(c, msg, false);
			goto unreserve;
		}
	}
	if (ask)
		r = guard_approval(c, s->text, s->len, ask, &rule, &ref);
	if (r == GA_HOLD) {
		act = PG_HOLD;
		goto unreserve;
	}
	if (r == GA_REFUSED) {
		pg_record_decided(c, s->text, s->len, ref.decision, ref.rule, "42501", ref.msg);
		act = refuse_upstream(c, ref.msg, false);
		goto unreserve;
	}
	if (r != GA_RUN || !(e = pg_fifo_push(c, PEND_EXECUTE))) {
		act = pg_oom_close(c);
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
	if (!pg_fifo_push(c, PEND_CLOSE))
		return pg_oom_close(c);
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
		if (!pg_fifo_push(c, PEND_SYNC))
			return pg_oom_close(c);
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
