#include "config.h"
#include "agent/approval.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "agent/api.h"
#include "agent/grant.h"
#include "agent/webhook.h"
#include "common/duration.h"
#include "common/log.h"

#define KEEP_US (3600LL * 1000000)        /* decided approvals stay listed this long */
/* Statement text held by live approvals (pending, or approved and not yet
 * used): APPROVALS_MAX_PENDING statements of max_message_size each would
 * be far too much. */
#define LIVE_SQL_MAX ((size_t)64 << 20)
/* Decided approvals kept for ListApprovals: beyond these the oldest go
 * before their hour is up. */
#define KEEP_MAX 4096
#define KEEP_SQL_MAX ((size_t)16 << 20)
/* Statements of one grant waiting at once: one busy client does not use
 * up APPROVALS_MAX_PENDING for everyone. */
#define PENDING_PER_GRANT_MAX 64
#define NOTE_MAX 1024
#define WEBHOOK_SQL_MAX (64 * 1024)       /* statement text in a webhook notice */

struct approvals {
	struct list_node list;   /* struct approval.node, oldest first */
	unsigned n_pending;
	unsigned n_kept;         /* decided for good: no longer pending or usable */
	size_t live_sql, kept_sql;
	bool trim_queued;
	struct webhook *webhook; /* started with the first notice */
};

struct approval_waiter {
	struct list_node node;   /* in ap->waiters */
	struct approval *ap;
	struct loop_timer *timer;
	void (*done)(void *ud, enum approval_state st);
	void *ud;
};

const char *approval_kind_name(enum approval_kind k)
{
	return k == APPROVAL_KIND_GRANT ? "grant" : "statement";
}

const char *approval_state_name(enum approval_state s)
{
	switch (s) {
	case APPR_PENDING: return "pending";
	case APPR_APPROVED: return "approved";
	case APPR_DENIED: return "denied";
	case APPR_EXPIRED: return "expired";
	case APPR_USED: return "used";
	case APPR_WITHDRAWN: return "withdrawn";
	}
	return "?";
}

/* --- Book-keeping ------------------------------------------------------------ */

/* Pending, or an approved statement that may still run once. */
static bool is_live(const struct approval *ap)
{
	return ap->state == APPR_PENDING ||
	       (ap->state == APPR_APPROVED && ap->kind == APPROVAL_KIND_STATEMENT);
}

/* Add (sign 1) or remove (-1) what ap counts for in its current state. */
static void account(struct approvals *as, const struct approval *ap, int sign)
{
	if (ap->state == APPR_PENDING)
		as->n_pending += (unsigned)sign;
	if (is_live(ap)) {
		as->live_sql += (size_t)sign * ap->sql_len;
	} else {
		as->n_kept += (unsigned)sign;
		as->kept_sql += (size_t)sign * ap->sql_len;
	}
}

static void trim(void *ud);

static void set_state(struct agent *a, struct approval *ap, enum approval_state st)
{
	struct approvals *as = a->approvals;

	account(as, ap, -1);
	ap->state = st;
	account(as, ap, 1);
	if ((as->n_kept > KEEP_MAX || as->kept_sql > KEEP_SQL_MAX) && !as->trim_queued &&
	    loop_defer(a->loop, trim, a) == 0)
		as->trim_queued = true;
}

static void on_timer(struct loop_timer *t, void *ud);

/* ap's timer fires at wall-clock time when_us (now when that has passed). */
static int arm(struct approval *ap, int64_t when_us)
{
	int64_t left = when_us - now_us();

	ap->timer = loop_timer_del(ap->timer);
	return loop_timer_add(ap->agent->loop, mono_us() + MAX(left, 0), on_timer, ap, &ap->timer);
}

/* Decided for good (or used): listed for an hour, then freed. */
static void keep(struct approval *ap)
{
	if (arm(ap, now_us() + KEEP_US) < 0)
		log_warn("approval %s: cannot arm its clean-up; it stays until the limit pushes it out",
			 ap->id);
}

/* Tell every waiter ap's state. A done() may call back into this module
 * (even wait again on ap): each waiter is unlinked before its call. */
static void notify(struct approval *ap)
{
	while (!list_empty(&ap->waiters)) {
		struct approval_waiter *w = container_of(ap->waiters.next, struct approval_waiter, node);

		list_del(&w->node);
		w->timer = loop_timer_del(w->timer);
		w->done(w->ud, ap->state);
		free(w);
	}
}

static void approval_free(struct approval *ap)
{
	loop_timer_del(ap->timer);
	free(ap->user);
	free(ap->connection);
	free(ap->sql);
	free(ap->what);
	free(ap->rule);
	free(ap->reason);
	free(ap->decided_by);
	free(ap->note);
	free(ap);
}

/* Forget ap: off the list first, so nothing a waiter does can find it. */
static void purge(struct agent *a, struct approval *ap)
{
	account(a->approvals, ap, -1);
	list_del(&ap->node);
	notify(ap);
	approval_free(ap);
}

/* Too many decided approvals kept: the oldest go early (none with a
 * waiter, whose callback is still due). Runs deferred, outside every
 * caller's iteration. */
static void trim(void *ud)
{
	struct agent *a = ud;
	struct approvals *as = a->approvals;
	struct list_node *n, *t;

	if (!as)
		return;
	as->trim_queued = false;
	list_for_each_safe(n, t, &as->list) {
		struct approval *ap = container_of(n, struct approval, node);

		if (as->n_kept <= KEEP_MAX && as->kept_sql <= KEEP_SQL_MAX)
			break;
		if (!is_live(ap) && list_empty(&ap->waiters))
			purge(a, ap);
	}
}

/* --- Events and notices --------------------------------------------------------- */

static void webhook_notice(struct agent *a, const struct approval *ap)
{
	struct approvals *as = a->approvals;
	const char *url = a->pol->p->agent.approval_webhook;
	char created[32], expires[32], cmd[64], err[256];
	json_t *o;
	char *body;

	if (!url || !*url)
		return;
	if (!as->webhook && webhook_start(&as->webhook, err, sizeof(err)) < 0) {
		log_warn("approval webhook: %s; notice for approval %s not sent", err, ap->id);
		return;
	}
	format_rfc3339(ap->created_us, created, sizeof(created));
	format_rfc3339(ap->expires_us, expires, sizeof(expires));
	o = json_object();
	if (!o)
		goto nomem;
	if (json_object_set_new(o, "id", json_string(ap->id)) < 0 ||
	    json_object_set_new(o, "kind", json_string(approval_kind_name(ap->kind))) < 0 ||
	    json_object_set_new(o, "grant", json_string(ap->grant_id)) < 0 ||
	    json_object_set_new(o, "user", json_string(ap->user)) < 0 ||
	    json_object_set_new(o, "connection", json_string(ap->connection)) < 0 ||
	    json_object_set_new(o, "what", json_string(ap->what)) < 0 ||
	    json_object_set_new(o, "rule", json_string(ap->rule)) < 0 ||
	    json_object_set_new(o, "reason", json_string(ap->reason)) < 0 ||
	    json_object_set_new(o, "created_at", json_string(created)) < 0 ||
	    json_object_set_new(o, "expires_at", json_string(expires)) < 0)
		goto nomem;
	snprintf(cmd, sizeof(cmd), "sluicectl approve %s", ap->id);
	if (json_object_set_new(o, "approve", json_string(cmd)) < 0)
		goto nomem;
	snprintf(cmd, sizeof(cmd), "sluicectl deny %s", ap->id);
	if (json_object_set_new(o, "deny", json_string(cmd)) < 0)
		goto nomem;
	if (ap->kind == APPROVAL_KIND_STATEMENT) {
		/* At most WEBHOOK_SQL_MAX, cut on a character boundary; text
		 * that is not UTF-8 goes with its other bytes as '?'. */
		size_t len = MIN(ap->sql_len, (size_t)WEBHOOK_SQL_MAX);
		json_t *s;

		while (len < ap->sql_len && len > 0 && ((unsigned char)ap->sql[len] & 0xc0) == 0x80)
			len--;
		s = json_stringn(ap->sql, len);
		if (!s) {
			_cleanup_free_ char *copy = malloc(len + 1);
			if (!copy)
				goto nomem;
			for (size_t i = 0; i < len; i++)
				copy[i] = (unsigned char)ap->sql[i] < 0x80 && ap->sql[i] ? ap->sql[i] : '?';
			s = json_stringn(copy, len);
		}
		if (json_object_set_new(o, "sql", s) < 0 ||
		    json_object_set_new(o, "sql_truncated", json_boolean(len < ap->sql_len)) < 0)
			goto nomem;
	}
	body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!body) {
		log_warn("approval webhook: out of memory; notice for approval %s not sent", ap->id);
		return;
	}
	(void)webhook_post(as->webhook, url, body, ap->id);
	free(body);
	return;
nomem:
	json_decref(o);
	log_warn("approval webhook: out of memory; notice for approval %s not sent", ap->id);
}

/* Left pending: recorded, signalled, and its waiters told. */
static void settled(struct agent *a, struct approval *ap, const char *kind, const uid_t *uid,
		    const char *user, const char *detail)
{
	agent_event(a, kind, ap->grant_id, uid, user, ap->connection, "approval %s (%s, requested by %s): %s",
		    ap->id, approval_kind_name(ap->kind), ap->user, detail);
	if (a->on_approval_decided)
		a->on_approval_decided(a, ap);
}

/* --- Creating ------------------------------------------------------------------- */

static int approval_new(struct agent *a, enum approval_kind kind, struct grant *g,
			const char *what, const char *rule, const char *sql, size_t len,
			struct approval **out, struct agent_err *err)
{
	struct approvals *as = a->approvals;
	struct approval *ap;
	uint8_t raw[APPROVAL_ID_LEN / 2];
	char timeout[32];
	int r;

	if (!as) {
		agent_err_set(err, "Failed", "sluiced is stopping; no approval can be asked for");
		return -ESHUTDOWN;
	}
	if (as->n_pending >= APPROVALS_MAX_PENDING) {
		agent_err_set(err, "LimitExceeded",
			      "too many approvals are pending (%u); ask an approver to decide some",
			      as->n_pending);
		return -EAGAIN;
	}
	if (sql && len > g->pol->p->agent.max_message_size) {
		agent_err_set(err, "LimitExceeded", "the statement is longer than max_message_size");
		return -EMSGSIZE;
	}
	if (sql && as->live_sql + len > LIVE_SQL_MAX) {
		agent_err_set(err, "LimitExceeded",
			      "pending approvals already hold %zu KiB of statement text; ask an approver to decide some",
			      as->live_sql / 1024);
		return -EAGAIN;
	}
	ap = calloc(1, sizeof(*ap));
	if (!ap)
		goto nomem;
	ap->agent = a;
	list_init(&ap->node);
	list_init(&ap->waiters);
	do {
		r = random_bytes(raw, sizeof(raw));
		if (r < 0) {
			free(ap);
			agent_err_set(err, "Failed", "cannot make an approval id: %s", strerror(-r));
			return r;
		}
		hex_encode(raw, sizeof(raw), ap->id);
	} while (approval_find(a, ap->id));
	ap->kind = kind;
	ap->state = APPR_PENDING;
	snprintf(ap->grant_id, sizeof(ap->grant_id), "%s", g->id);
	ap->uid = g->uid;
	ap->created_us = now_us();
	ap->expires_us = ap->created_us + (int64_t)g->access->approval_timeout * 1000000;
	ap->user = strdup(g->user);
	ap->connection = strdup(g->conn->name);
	ap->what = strdup(what);
	ap->rule = strdup(rule);
	ap->reason = strdup(g->reason ? g->reason : "");
	if (sql) {
		ap->sql = malloc(len + 1);
		if (ap->sql) {
			memcpy(ap->sql, sql, len);
			ap->sql[len] = '\0';
			ap->sql_len = len;
		}
	}
	if (!ap->user || !ap->connection || !ap->what || !ap->rule || !ap->reason ||
	    (sql && !ap->sql) || arm(ap, ap->expires_us) < 0) {
		approval_free(ap);
		goto nomem;
	}
	list_add_tail(&as->list, &ap->node);
	account(as, ap, 1);
	duration_format(g->access->approval_timeout, timeout, sizeof(timeout));
	agent_event(a, "approval.requested", g->id, &ap->uid, ap->user, ap->connection,
		    "approval %s (%s): %s (%s); expires in %s%s%s%s%.*s", ap->id,
		    approval_kind_name(kind), ap->what, ap->rule, timeout,
		    *ap->reason ? "; reason: " : "", ap->reason, sql ? "; sql: " : "",
		    (int)MIN(len, 900), sql ? sql : "");
	log_info("approval %s: %s approval for %s on grant %s (%s)", ap->id, approval_kind_name(kind),
		 ap->user, ap->grant_id, ap->what);
	if (a->on_approval_requested)
		a->on_approval_requested(a, ap);
	webhook_notice(a, ap);
	*out = ap;
	return 0;
nomem:
	agent_err_set(err, "Failed", "out of memory");
	return -ENOMEM;
}

int approval_for_grant(struct agent *a, struct grant *g, struct approval **out,
		       struct agent_err *err)
{
	const struct pol_access *acc = g->access;
	const struct pol_origin *o = acc->approval_origin.line ? &acc->approval_origin : &acc->origin;
	char rule[320];

	snprintf(rule, sizeof(rule), "rule at %s:%u", o->file ? o->file : "?", o->line);
	return approval_new(a, APPROVAL_KIND_GRANT, g, "approval = grant", rule, NULL, 0, out, err);
}

/* The approved statement runs now: its one use. */
static void use(struct agent *a, struct approval *ap)
{
	set_state(a, ap, APPR_USED);
	agent_event(a, "approval.used", ap->grant_id, &ap->uid, ap->user, ap->connection,
		    "approval %s: the statement approved by %s ran", ap->id,
		    ap->decided_by ? ap->decided_by : "?");
	keep(ap);
}

static unsigned pending_of_grant(struct approvals *as, const char *grant_id)
{
	struct list_node *n, *t;
	unsigned count = 0;

	list_for_each_safe(n, t, &as->list) {
		struct approval *ap = container_of(n, struct approval, node);
		if (ap->state == APPR_PENDING && strcmp(ap->grant_id, grant_id) == 0)
			count++;
	}
	return count;
}

int approval_for_statement(struct agent *a, struct grant *g, const char *sql, size_t len,
			   const struct verdict *v, struct approval **out, struct agent_err *err)
{
	struct approvals *as = a->approvals;
	struct list_node *n, *t;
	int64_t now = now_us();
	int r;

	if (g->state != GRANT_ACTIVE) {
		agent_err_set(err, "Failed", "grant %s has ended", g->id);
		return -ENOENT;
	}
	if (!as) {
		agent_err_set(err, "Failed", "sluiced is stopping; no approval can be asked for");
		return -ESHUTDOWN;
	}
	/* The same bytes on the same grant: approved and in its window runs;
	 * pending is the one already asked for. Anything else is history. */
	list_for_each_safe(n, t, &as->list) {
		struct approval *ap = container_of(n, struct approval, node);

		if (ap->kind != APPROVAL_KIND_STATEMENT || ap->sql_len != len ||
		    strcmp(ap->grant_id, g->id) != 0 || memcmp(ap->sql, sql, len) != 0)
			continue;
		if (ap->state == APPR_APPROVED && now < ap->window_end_us) {
			use(a, ap);
			*out = ap;
			return APPROVAL_RUN;
		}
		if (ap->state == APPR_PENDING) {
			*out = ap;
			return APPROVAL_PENDING;
		}
	}
	if (pending_of_grant(as, g->id) >= PENDING_PER_GRANT_MAX) {
		agent_err_set(err, "LimitExceeded",
			      "grant %s already has %d statements waiting for approval; ask an approver to decide some",
			      g->id, PENDING_PER_GRANT_MAX);
		return -EAGAIN;
	}
	r = approval_new(a, APPROVAL_KIND_STATEMENT, g, v->what[0] ? v->what : "approval required",
			 v->rule, sql, len, out, err);
	return r < 0 ? r : APPROVAL_PENDING;
}

/* --- Time ------------------------------------------------------------------------ */

static void expire_pending(struct agent *a, struct approval *ap)
{
	char detail[128], timeout[32];
	struct grant *g = grant_find(a, ap->grant_id);

	set_state(a, ap, APPR_EXPIRED);
	ap->decided_us = now_us();
	duration_format((uint64_t)((ap->expires_us - ap->created_us) / 1000000), timeout, sizeof(timeout));
	snprintf(detail, sizeof(detail), "expired: no decision within %s", timeout);
	log_info("approval %s of %s expired undecided", ap->id, ap->user);
	settled(a, ap, "approval.expired", &ap->uid, ap->user, detail);
	keep(ap);
	if (ap->kind == APPROVAL_KIND_GRANT && g && g->state == GRANT_PENDING)
		grant_end(g, "approval-expired");
	notify(ap);
}

static void on_timer(struct loop_timer *t, void *ud)
{
	struct approval *ap = ud;
	struct agent *a = ap->agent;

	ap->timer = loop_timer_del(ap->timer);
	if (ap->state == APPR_PENDING) {
		expire_pending(a, ap);
	} else if (is_live(ap)) {
		/* Approved, and its window passed unused. */
		set_state(a, ap, APPR_EXPIRED);
		agent_event(a, "approval.expired", ap->grant_id, &ap->uid, ap->user, ap->connection,
			    "approval %s: approved by %s but not used within its window", ap->id,
			    ap->decided_by ? ap->decided_by : "?");
		keep(ap);
	} else {
		purge(a, ap);
	}
}

static void on_waiter_timer(struct loop_timer *t, void *ud)
{
	struct approval_waiter *w = ud;

	list_del(&w->node);
	w->timer = loop_timer_del(w->timer);
	w->done(w->ud, w->ap->state);
	free(w);
}

struct approval_waiter *approval_wait(struct agent *a, struct approval *ap, int64_t timeout_us,
				      void (*done)(void *ud, enum approval_state st), void *ud)
{
	struct approval_waiter *w = calloc(1, sizeof(*w));
	/* Already decided: the answer comes on the loop, as promised. */
	int64_t when = mono_us() + (ap->state == APPR_PENDING ? MAX(timeout_us, 0) : 0);

	if (!w)
		return NULL;
	w->ap = ap;
	w->done = done;
	w->ud = ud;
	if (loop_timer_add(a->loop, when, on_waiter_timer, w, &w->timer) < 0) {
		free(w);
		return NULL;
	}
	list_add_tail(&ap->waiters, &w->node);
	return w;
}

void approval_waiter_cancel(struct approval_waiter *w)
{
	if (!w)
		return;
	list_del(&w->node);
	loop_timer_del(w->timer);
	free(w);
}

/* --- Grants ending ----------------------------------------------------------------- */

static void withdraw(struct agent *a, struct approval *ap)
{
	bool was_pending = ap->state == APPR_PENDING;

	set_state(a, ap, APPR_WITHDRAWN);
	if (was_pending) {
		ap->decided_us = now_us();
		settled(a, ap, "approval.withdrawn", &ap->uid, ap->user,
			"withdrawn: its grant ended before a decision");
	} else {
		agent_event(a, "approval.withdrawn", ap->grant_id, &ap->uid, ap->user, ap->connection,
			    "approval %s: approved by %s, unused when its grant ended", ap->id,
			    ap->decided_by ? ap->decided_by : "?");
	}
	keep(ap);
}

/* Withdraw every live approval of grant_id (NULL: of every grant). */
static void withdraw_live(struct agent *a, const char *grant_id)
{
	struct list_node *n, *t;

again:
	list_for_each_safe(n, t, &a->approvals->list) {
		struct approval *ap = container_of(n, struct approval, node);

		if (!is_live(ap) || (grant_id && strcmp(ap->grant_id, grant_id) != 0))
			continue;
		withdraw(a, ap);
		if (!list_empty(&ap->waiters)) {
			/* A waiter's callback may change the list: start over
			 * (ap is no longer live, so it is not met again). */
			notify(ap);
			goto again;
		}
	}
}

void approvals_grant_ended(struct agent *a, const char *grant_id)
{
	if (a->approvals)
		withdraw_live(a, grant_id);
}

/* --- Deciding ------------------------------------------------------------------------ */

struct approval *approval_find(struct agent *a, const char *id)
{
	struct list_node *n, *t;

	if (!a->approvals)
		return NULL;
	list_for_each_safe(n, t, &a->approvals->list) {
		struct approval *ap = container_of(n, struct approval, node);
		if (strcmp(ap->id, id) == 0)
			return ap;
	}
	return NULL;
}

const struct list_node *approvals_head(struct agent *a)
{
	return a->approvals ? &a->approvals->list : NULL;
}

bool approval_is_approver(struct agent *a, const struct caller *c)
{
	struct caller_facts f;

	caller_facts_live(a, c, &f);
	return principal_list_matches(&a->pol->p->agent.approvers, &f);
}

bool approval_visible(struct agent *a, const struct caller *c, const struct approval *ap)
{
	return c->uid == ap->uid || c->is_admin || approval_is_approver(a, c);
}

/* A note is one line of printable text: it lands in the audit and in
 * every approver's terminal. */
static const char *note_problem(const char *note)
{
	const unsigned char *p = (const unsigned char *)note;

	if (strlen(note) > NOTE_MAX)
		return "the note is longer than 1024 bytes";
	for (; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			return "the note holds a control character; write it on one line of plain text";
	}
	return NULL;
}

static int approve_grant(struct agent *a, struct approval *ap, struct agent_err *err)
{
	struct grant *g = grant_find(a, ap->grant_id);
	struct agent_err gerr;

	if (!g || g->state != GRANT_PENDING) {
		/* Its end withdraws it first; this is a broken invariant. */
		agent_err_set(err, "Failed", "approval %s: grant %s is no longer pending", ap->id,
			      ap->grant_id);
		return -ENOENT;
	}
	if (grant_activate(g, &gerr) < 0) {
		agent_err_set(err, gerr.kind ? gerr.kind : "Failed",
			      "approval %s is recorded, but grant %s could not start: %s", ap->id, g->id,
			      gerr.msg);
		return -EIO;
	}
	return 0;
}

int approval_decide(struct agent *a, const struct caller *c, const char *id, bool approve,
		    const char *note, struct agent_err *err)
{
	struct approval *ap = approval_find(a, id);
	const char *why;
	char detail[NOTE_MAX + 256];
	char *by, *copy;
	struct grant *g;

	if (!ap) {
		agent_err_set(err, "NotFound", "no approval %s", id);
		return -ENOENT;
	}
	if (ap->state != APPR_PENDING) {
		agent_err_set(err, "NotFound", "approval %s is already %s%s%s; nothing to decide", id,
			      approval_state_name(ap->state), ap->decided_by ? " by " : "",
			      ap->decided_by ? ap->decided_by : "");
		return -ENOENT;
	}
	if (c->uid == ap->uid) {
		agent_err_set(err, "Denied", "nobody approves their own request: approval %s is %s's",
			      id, ap->user);
		agent_event(a, "approval.refused", ap->grant_id, &c->uid, c->user, ap->connection,
			    "approval %s: %s may not decide their own request", id, c->user);
		return -EACCES;
	}
	if (!approval_is_approver(a, c)) {
		agent_err_set(err, "Denied", "%s is not an approver ([agent] approvers)", c->user);
		agent_event(a, "approval.refused", ap->grant_id, &c->uid, c->user, ap->connection,
			    "approval %s: %s is not an approver", id, c->user);
		return -EACCES;
	}
	why = note_problem(note);
	if (why) {
		agent_err_set(err, "InvalidArgument", "%s", why);
		return -EINVAL;
	}
	/* A grant's end withdraws its approvals: this holds unless a bug. */
	g = grant_find(a, ap->grant_id);
	if (!g || g->state != (ap->kind == APPROVAL_KIND_GRANT ? GRANT_PENDING : GRANT_ACTIVE)) {
		agent_err_set(err, "Failed", "approval %s: grant %s is no longer %s", id, ap->grant_id,
			      ap->kind == APPROVAL_KIND_GRANT ? "pending" : "active");
		return -ENOENT;
	}
	by = strdup(c->user);
	copy = strdup(note);
	if (!by || !copy) {
		free(by);
		free(copy);
		agent_err_set(err, "Failed", "out of memory");
		return -ENOMEM;
	}
	ap->decided_by = by;
	ap->note = copy;
	ap->decided_us = now_us();
	if (approve && ap->kind == APPROVAL_KIND_STATEMENT)
		ap->window_end_us = ap->decided_us + (int64_t)g->access->approval_window * 1000000;
	set_state(a, ap, approve ? APPR_APPROVED : APPR_DENIED);
	snprintf(detail, sizeof(detail), "%s by %s%s%s", approve ? "approved" : "denied", c->user,
		 *note ? "; note: " : "", note);
	log_info("approval %s of %s %s by %s (uid %u)", id, ap->user, approve ? "approved" : "denied",
		 c->user, (unsigned)c->uid);
	settled(a, ap, approve ? "approval.approved" : "approval.denied", &c->uid, c->user, detail);
	if (ap->state == APPR_APPROVED && ap->kind == APPROVAL_KIND_STATEMENT) {
		/* Usable once until the window ends. */
		if (arm(ap, ap->window_end_us) < 0)
			log_warn("approval %s: cannot arm its window; it lapses when next looked at", id);
	} else {
		keep(ap);
	}
	notify(ap);
	if (ap->kind == APPROVAL_KIND_GRANT) {
		if (approve)
			return approve_grant(a, ap, err);
		g = grant_find(a, ap->grant_id); /* a waiter may have ended it */
		if (g)
			grant_end(g, "denied");
	}
	return 0;
}

/* --- Start and stop -------------------------------------------------------------------- */

int approvals_init(struct agent *a)
{
	struct approvals *as = calloc(1, sizeof(*as));

	if (!as)
		return -ENOMEM;
	list_init(&as->list);
	a->approvals = as;
	return 0;
}

void approvals_fini(struct agent *a)
{
	struct approvals *as = a->approvals;

	if (!as)
		return;
	/* Grants end before this; whatever is still live goes now. */
	withdraw_live(a, NULL);
	while (!list_empty(&as->list))
		purge(a, container_of(as->list.next, struct approval, node));
	as->webhook = webhook_stop(as->webhook);
	a->approvals = NULL;
	free(as);
}
