/* Which response belongs to which request. Every client message that the
 * server answers is queued in order (the pending FIFO, pushed by
 * pgclient.c); server messages pop it. That gives each statement its outcome for the audit, and lets the
 * proxy answer a refused message itself at exactly the place in the stream
 * where the server's answer would have been. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "agent/audit.h"
#include "agent/guard.h"
#include "agent/pgconn.h"
#include "common/pgenc.h"
#include "agent/maskwire.h"
#include "agent/pgrecord.h"
#include "agent/pgwire.h"
#include "common/log.h"

/* --- The pending FIFO ----------------------------------------------------- */

#define FIFO_KEEP 4 /* entries allocated first, and kept while the connection lives */

static struct pend *fifo_at(struct pgconn *c, size_t i)
{
	return &c->fifo[(c->fifo_head + i) % c->fifo_cap];
}

struct pend *pg_fifo_head(struct pgconn *c)
{
	return c->fifo_n ? fifo_at(c, 0) : NULL;
}

struct pend *pg_fifo_push(struct pgconn *c, enum pend_kind kind)
{
	struct pend *e;

	if (c->fifo_n == c->fifo_cap) {
		size_t cap = c->fifo_cap ? c->fifo_cap * 2 : FIFO_KEEP;
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
	pg_rec_free(c, e);
	free(e->rule);
	free(e->name);
	buf_release(&e->local, 0);
	memset(e, 0, sizeof(*e));
}

static void fifo_pop(struct pgconn *c)
{
	pend_clear(c, pg_fifo_head(c));
	c->fifo_head = (c->fifo_head + 1) % c->fifo_cap;
	if (--c->fifo_n == 0) {
		/* Empty: a first-size FIFO is kept for the next request (one
		 * allocation per connection, not per statement); one grown by
		 * deep pipelining goes, so idle connections hold little. */
		c->fifo_head = 0;
		if (c->fifo_cap > FIFO_KEEP) {
			free(c->fifo);
			c->fifo = NULL;
			c->fifo_cap = 0;
		}
	}
}

void pg_fifo_release(struct pgconn *c)
{
	free(c->fifo);
	c->fifo = NULL;
	c->fifo_cap = c->fifo_head = c->fifo_n = 0;
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
	snprintf(c->client_enc, sizeof(c->client_enc), "%s", value);
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
	const void *result;
	size_t result_len;
	const char *withheld;
	struct outcome masked;

	if (e->reserved == 0)
		return; /* more answers than we counted statements: nothing to do */
	/* A result masking refused: the client got our error, not the server's answer. */
	if ((withheld = pg_mask_withheld_error(c))) {
		masked = (struct outcome){ .decision = AUDIT_REFUSED, .sqlstate = "42501",
					   .error = withheld, .rows = -1, .executed = o->executed };
		o = &masked;
	}
	result = pg_rec_result(c, e, o->executed && o->tag, &result_len);
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
		.subject = g->subject, .issuer = g->issuer, .groups = g->groups_json,
		.result = result, .result_len = result_len }, e->hint);
	free(utf8);
	pg_rec_free(c, e);
	e->reserved--;
	c->n_statements++;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

/* Statement i of a classified text, as the audit shows it: without the
 * blanks between it and the previous ';'. */
void pg_stmt_bounds(const struct sql_stmt *st, size_t textlen, size_t *off, size_t *len,
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
uint32_t pg_next_running(const struct guard_class *cls, uint32_t i)
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
			pg_stmt_bounds(st, len, &off, &len, sql);
		record(c, e, sql + off, len, o);
		/* The server now knows (or forgot) a prepared statement. */
		if (st && o->tag && (st->flags & (SQLF_PREPARE | SQLF_DEALLOCATE))) {
			int r = guard_sql_prepared(c, st, sql);
			if (r < 0)
				log_warn("grant %s connection %llu: cannot track a prepared statement: %s",
					 c->gc.grant->id, (unsigned long long)c->serial, strerror(-r));
		}
		e->done++;
		e->cur = pg_next_running(e->cls, e->cur + 1);
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
int pg_fifo_pop_emit(struct pgconn *c)
{
	struct pend *e;
	int r;

	fifo_pop(c);
	while ((e = pg_fifo_head(c)) && e->kind == PEND_LOCAL) {
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
	e = pg_fifo_push(c, PEND_LOCAL);
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
void pg_record_decided(struct pgconn *c, const char *sql, size_t len, const char *decision,
			   const char *rule, const char *sqlstate, const char *why)
{
	struct pend tmp = { .ts_us = now_us(), .t0 = mono_us(), .hint = PG_AUDIT_ROW_OVERHEAD + len };

	if (audit_reserve(c->agent->audit, tmp.hint) < 0)
		return;
	tmp.reserved = 1;
	record(c, &tmp, sql, len, &(struct outcome){ .decision = decision, .rule = rule,
		.sqlstate = sqlstate, .error = why, .rows = -1 });
}


enum pg_action pg_oom_close(struct pgconn *c)
{
	pg_fatal_client(c, "53200", "sluice: out of memory");
	return PG_CLOSE;
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
	struct pend *e = pg_fifo_head(c);
	char msg[512];

	if (pgw_parse_error(body, n, &f) < 0)
		return server_violation(c, 'E');
	if (!e)
		return PG_FORWARD; /* e.g. FATAL on an idle session: relayed, then EOF */
	if (e->subst && f.severity && strcmp(f.severity, "ERROR") == 0) {
		/* The failure we sent for a refused message: our words instead. */
		if (buf_append(&c->emit, e->local.data, e->local.len) < 0)
			return pg_oom_close(c);
		if (e->kind == PEND_PARSE) {
			/* The server skips to Sync; so did we. */
			fifo_pop(c);
			while ((e = pg_fifo_head(c)) && e->kind != PEND_SYNC && e->kind != PEND_QUERY) {
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
			e->hint = PG_AUDIT_ROW_OVERHEAD + (e->sql ? e->sql->len : 0);
			if (audit_reserve(c->agent->audit, e->hint) == 0)
				e->reserved = 1;
			complete_current(c, e, &failed);
		}
		/* The server now skips everything up to the next Sync. */
		fifo_pop(c);
		while ((e = pg_fifo_head(c)) && e->kind != PEND_SYNC && e->kind != PEND_QUERY) {
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
		return pg_fifo_pop_emit(c) < 0 ? pg_oom_close(c) : PG_FORWARD;
	return PG_FORWARD;
}

enum pg_action pg_track_server(struct pgconn *c, char type, const uint8_t *body, size_t n)
{
	struct pend *e = pg_fifo_head(c);

	switch (type) {
	case 'D': /* DataRow: header only (n is its size); it streams */
		if (e) {
			e->rows++;
			c->s2c.tap = pg_rec_row(c, e, n);
		}
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
			return pg_fifo_pop_emit(c) < 0 ? pg_oom_close(c) : PG_FORWARD;
		return PG_FORWARD;
	case '2': /* BindComplete */
		pg_rec_bound(c);
		if (e && e->kind == PEND_BIND)
			return pg_fifo_pop_emit(c) < 0 ? pg_oom_close(c) : PG_FORWARD;
		return PG_FORWARD;
	case '3': /* CloseComplete */
		if (e && e->kind == PEND_CLOSE)
			return pg_fifo_pop_emit(c) < 0 ? pg_oom_close(c) : PG_FORWARD;
		return PG_FORWARD;
	case 'T': /* RowDescription */
	case 'n': /* NoData */
		if (e && e->kind == PEND_DESCRIBE) {
			pg_rec_described(c, e->sql, type == 'T' ? body : NULL, n);
			return pg_fifo_pop_emit(c) < 0 ? pg_oom_close(c) : PG_FORWARD;
		}
		if (e && type == 'T' && (e->kind == PEND_QUERY || e->kind == PEND_EXECUTE))
			pg_rec_description(c, e, body, n);
		return PG_FORWARD;
	case 'Z': /* ReadyForQuery */
		if (n != 1)
			return server_violation(c, type);
		c->txn_status = (char)body[0];
		pg_rec_forget_description(c);
		/* Entries still before the Sync/Query this answers did not run. */
		while ((e = pg_fifo_head(c)) && e->kind != PEND_SYNC && e->kind != PEND_QUERY) {
			complete_rest(c, e, "not executed");
			fifo_pop(c);
		}
		if (e) {
			complete_rest(c, e, "not executed: an earlier statement of the query failed");
			if (pg_fifo_pop_emit(c) < 0)
				return pg_oom_close(c);
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

void pg_track_finish(struct pgconn *c, const char *why)
{
	char msg[160];

	snprintf(msg, sizeof(msg), "interrupted: %s", why);
	while (c->fifo_n > 0) {
		complete_rest(c, pg_fifo_head(c), msg);
		fifo_pop(c);
	}
	guard_hold_cancel(c);
	guard_classify_cancel(c);
	map_clear(&c->stmts, false);
	map_clear(&c->portals, false);
	c->discard_until_sync = false;
}
