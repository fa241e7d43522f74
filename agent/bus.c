#include "config.h"
#include "agent/bus.h"

#include <dbus/dbus.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent/api.h"
#include "agent/approval.h"
#include "agent/audit.h"
#include "agent/busmsg.h"
#include "agent/grant.h"
#include "agent/identity.h"
#include "agent/session.h"
#include "common/log.h"

#define BUS_NAME "org.sluice.Agent1"
#define BUS_PATH "/org/sluice/Agent1"
#define BUS_IFACE "org.sluice.Agent1"
#define ERR_PREFIX "org.sluice.Agent1.Error."
#define CALLER_LOOKUP_TIMEOUT_MS 5000
/* ListApprovals shows this much of each statement (GetApproval all of it):
 * thousands of long statements must not outgrow a bus message. */
#define LIST_SQL_MAX 2048

extern const char agent_introspection_xml[];

struct bus {
	struct agent *a;
	DBusConnection *conn;
	bool dispatch_queued;
	bool closing;
};

struct bwatch {
	struct bus *b;
	DBusWatch *w;
	int fd; /* a dup: libdbus may watch one socket for reading and writing separately */
	struct loop_watch *lw;
};

struct btimeout {
	struct bus *b;
	DBusTimeout *t;
	struct loop_timer *lt;
};

/* --- Loop integration ---------------------------------------------------- */

static void dispatch(void *ud)
{
	struct bus *b = ud;

	b->dispatch_queued = false;
	while (dbus_connection_dispatch(b->conn) == DBUS_DISPATCH_DATA_REMAINS)
		;
	if (!dbus_connection_get_is_connected(b->conn) && !b->closing) {
		b->closing = true;
		log_err("lost the connection to the system bus; stopping");
		agent_stop(b->a, "bus-lost");
	}
}

static void queue_dispatch(struct bus *b)
{
	if (b->dispatch_queued)
		return;
	if (loop_defer(b->a->loop, dispatch, b) == 0)
		b->dispatch_queued = true;
}

static void on_dispatch_status(DBusConnection *conn, DBusDispatchStatus st, void *data)
{
	if (st == DBUS_DISPATCH_DATA_REMAINS)
		queue_dispatch(data);
}

static uint32_t watch_events(DBusWatch *w)
{
	unsigned flags = dbus_watch_get_flags(w);
	uint32_t ev = 0;

	if (!dbus_watch_get_enabled(w))
		return 0;
	if (flags & DBUS_WATCH_READABLE)
		ev |= EPOLLIN;
	if (flags & DBUS_WATCH_WRITABLE)
		ev |= EPOLLOUT;
	return ev;
}

static void on_watch(struct loop_watch *lw, uint32_t events, void *ud)
{
	struct bwatch *bw = ud;
	struct bus *b = bw->b;
	unsigned flags = 0;

	if (events & EPOLLIN)
		flags |= DBUS_WATCH_READABLE;
	if (events & EPOLLOUT)
		flags |= DBUS_WATCH_WRITABLE;
	if (events & EPOLLHUP)
		flags |= DBUS_WATCH_HANGUP;
	if (events & EPOLLERR)
		flags |= DBUS_WATCH_ERROR;
	/* May remove (and free) bw. */
	dbus_watch_handle(bw->w, flags);
	queue_dispatch(b);
}

static dbus_bool_t add_watch(DBusWatch *w, void *data)
{
	struct bus *b = data;
	struct bwatch *bw = calloc(1, sizeof(*bw));

	if (!bw)
		return FALSE;
	bw->b = b;
	bw->w = w;
	bw->fd = fcntl(dbus_watch_get_unix_fd(w), F_DUPFD_CLOEXEC, 3);
	if (bw->fd < 0 || loop_watch_add(b->a->loop, bw->fd, watch_events(w), on_watch, bw, &bw->lw) < 0) {
		if (bw->fd >= 0)
			close(bw->fd);
		free(bw);
		return FALSE;
	}
	dbus_watch_set_data(w, bw, NULL);
	return TRUE;
}

static void remove_watch(DBusWatch *w, void *data)
{
	struct bwatch *bw = dbus_watch_get_data(w);

	if (!bw)
		return;
	dbus_watch_set_data(w, NULL, NULL);
	bw->lw = loop_watch_del(bw->lw);
	close(bw->fd);
	free(bw);
}

static void toggle_watch(DBusWatch *w, void *data)
{
	struct bwatch *bw = dbus_watch_get_data(w);

	if (bw && loop_watch_set(bw->lw, watch_events(w)) < 0)
		log_warn("bus: cannot update a watch: %s", strerror(errno));
}

static void on_timeout(struct loop_timer *lt, void *ud)
{
	struct btimeout *bt = ud;
	struct bus *b = bt->b;

	/* libdbus timeouts repeat until removed: re-arm first, since handling
	 * may remove (and free) this one. */
	loop_timer_move(lt, mono_us() + (int64_t)dbus_timeout_get_interval(bt->t) * 1000);
	dbus_timeout_handle(bt->t);
	queue_dispatch(b);
}

static dbus_bool_t arm_timeout(struct btimeout *bt)
{
	int64_t when = mono_us() + (int64_t)dbus_timeout_get_interval(bt->t) * 1000;

	bt->lt = loop_timer_del(bt->lt);
	if (!dbus_timeout_get_enabled(bt->t))
		return TRUE;
	return loop_timer_add(bt->b->a->loop, when, on_timeout, bt, &bt->lt) == 0;
}

static dbus_bool_t add_timeout(DBusTimeout *t, void *data)
{
	struct btimeout *bt = calloc(1, sizeof(*bt));

	if (!bt)
		return FALSE;
	bt->b = data;
	bt->t = t;
	if (!arm_timeout(bt)) {
		free(bt);
		return FALSE;
	}
	dbus_timeout_set_data(t, bt, NULL);
	return TRUE;
}

static void remove_timeout(DBusTimeout *t, void *data)
{
	struct btimeout *bt = dbus_timeout_get_data(t);

	if (!bt)
		return;
	dbus_timeout_set_data(t, NULL, NULL);
	loop_timer_del(bt->lt);
	free(bt);
}

static void toggle_timeout(DBusTimeout *t, void *data)
{
	struct btimeout *bt = dbus_timeout_get_data(t);

	if (bt && !arm_timeout(bt))
		log_warn("bus: cannot arm a timeout");
}

/* --- Signals --------------------------------------------------------------- */

/* A string fit for a signal argument (libdbus refuses invalid UTF-8). */
static const char *sig_str(const char *s)
{
	return !s ? "" : dbus_validate_utf8(s, NULL) ? s : "?";
}

static void emit(struct bus *b, const char *name, const char *const *args, size_t n)
{
	DBusMessage *sig;
	DBusMessageIter it;
	bool ok = true;

	if (!b || !dbus_connection_get_is_connected(b->conn))
		return;
	sig = dbus_message_new_signal(BUS_PATH, BUS_IFACE, name);
	if (!sig)
		return;
	dbus_message_iter_init_append(sig, &it);
	for (size_t i = 0; ok && i < n; i++) {
		const char *s = sig_str(args[i]);
		ok = dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &s);
	}
	/* Queued, not written here: sending never blocks the loop. */
	if (ok)
		dbus_connection_send(b->conn, sig, NULL);
	dbus_message_unref(sig);
}

static void on_approval_requested(struct agent *a, const struct approval *ap)
{
	const char *args[] = { ap->id, approval_kind_name(ap->kind), ap->user, ap->connection, ap->what };

	emit(a->bus, "ApprovalRequested", args, ARRAY_SIZE(args));
}

static void on_approval_decided(struct agent *a, const struct approval *ap)
{
	const char *args[] = { ap->id, approval_state_name(ap->state), ap->decided_by };

	emit(a->bus, "ApprovalDecided", args, ARRAY_SIZE(args));
}

static void on_grant_state(struct agent *a, const struct grant *g)
{
	const char *args[] = { g->id, grant_state_name(g), g->end_reason };

	emit(a->bus, "GrantStateChanged", args, ARRAY_SIZE(args));
}

static void on_session_state(struct agent *a, const struct session *s)
{
	const char *args[] = { s->id, s->state == SESSION_ACTIVE ? "active" : "ended", s->end_reason };

	emit(a->bus, "SessionStateChanged", args, ARRAY_SIZE(args));
}

/* --- Methods ------------------------------------------------------------------ */

/* A method that answers later (token verification) returns this. */
static char reply_later;
#define REPLY_LATER ((DBusMessage *)(void *)&reply_later)

static DBusMessage *error_reply(DBusMessage *msg, const struct agent_err *err)
{
	char name[128];

	snprintf(name, sizeof(name), ERR_PREFIX "%s", err->kind ? err->kind : "Failed");
	return dbus_message_new_error(msg, name, dbus_validate_utf8(err->msg, NULL) ? err->msg : "error");
}

static DBusMessage *bad_args(DBusMessage *msg, DBusError *e)
{
	struct agent_err err;

	agent_err_set(&err, "InvalidArgument", "%s", e->message ? e->message : "invalid arguments");
	dbus_error_free(e);
	return error_reply(msg, &err);
}

static DBusMessage *m_request_grant(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	const char *connection, *schema, *reason, *session;
	dbus_uint64_t ttl;
	DBusError e = DBUS_ERROR_INIT;
	struct agent_err err;
	struct grant *g;
	DBusMessage *reply;
	DBusMessageIter it;

	if (!dbus_message_get_args(msg, &e, DBUS_TYPE_STRING, &connection, DBUS_TYPE_UINT64, &ttl,
				   DBUS_TYPE_STRING, &schema, DBUS_TYPE_STRING, &reason,
				   DBUS_TYPE_STRING, &session, DBUS_TYPE_INVALID))
		return bad_args(msg, &e);
	if (api_request_grant(b->a, c, connection, ttl, schema, reason, session, &g, &err) < 0)
		return error_reply(msg, &err);
	if (g->state == GRANT_PENDING)
		log_info("grant %s: %s (uid %u) on %s, pending approval %s", g->id, c->user,
			 (unsigned)c->uid, connection, g->approval);
	else
		log_info("grant %s: %s (uid %u) on %s until +%llus", g->id, c->user, (unsigned)c->uid,
			 connection, (unsigned long long)g->ttl);
	reply = dbus_message_new_method_return(msg);
	if (reply) {
		dbus_message_iter_init_append(reply, &it);
		if (!append_grant(&it, g)) {
			dbus_message_unref(reply);
			reply = NULL;
		}
	}
	return reply;
}

static DBusMessage *m_revoke_grant(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	const char *id;
	DBusError e = DBUS_ERROR_INIT;
	struct agent_err err;

	if (!dbus_message_get_args(msg, &e, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID))
		return bad_args(msg, &e);
	if (api_revoke_grant(b->a, c, id, &err) < 0)
		return error_reply(msg, &err);
	return dbus_message_new_method_return(msg);
}

static DBusMessage *m_get_grant(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	const char *id;
	DBusError e = DBUS_ERROR_INIT;
	struct agent_err err;
	struct grant *g;
	DBusMessage *reply;
	DBusMessageIter it;

	if (!dbus_message_get_args(msg, &e, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID))
		return bad_args(msg, &e);
	g = api_get_grant(b->a, c, id, &err);
	if (!g)
		return error_reply(msg, &err);
	reply = dbus_message_new_method_return(msg);
	if (reply) {
		dbus_message_iter_init_append(reply, &it);
		if (!append_grant(&it, g)) {
			dbus_message_unref(reply);
			reply = NULL;
		}
	}
	return reply;
}

/* ListGrants / ListSessions: every item of the list (all, admins only) or
 * the caller's. owner() gives an item's uid, append() marshals it. */
static DBusMessage *list_reply(struct bus *b, DBusMessage *msg, const struct caller *c,
			       struct list_node *head, uid_t (*owner)(struct list_node *),
			       bool (*append)(DBusMessageIter *, struct list_node *))
{
	dbus_bool_t all;
	DBusError e = DBUS_ERROR_INIT;
	struct agent_err err;
	DBusMessage *reply;
	DBusMessageIter it, arr;
	struct list_node *n, *t;
	bool ok;

	if (!dbus_message_get_args(msg, &e, DBUS_TYPE_BOOLEAN, &all, DBUS_TYPE_INVALID))
		return bad_args(msg, &e);
	if (all && api_check_list_all(b->a, c, &err) < 0)
		return error_reply(msg, &err);
	reply = dbus_message_new_method_return(msg);
	if (!reply)
		return NULL;
	dbus_message_iter_init_append(reply, &it);
	ok = dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "a{sv}", &arr);
	list_for_each_safe(n, t, head) {
		if (ok && (all || owner(n) == c->uid))
			ok = append(&arr, n);
	}
	if (!ok || !dbus_message_iter_close_container(&it, &arr)) {
		dbus_message_unref(reply);
		return NULL;
	}
	return reply;
}

static uid_t grant_owner(struct list_node *n)
{
	return container_of(n, struct grant, node)->uid;
}

static bool grant_append(DBusMessageIter *it, struct list_node *n)
{
	return append_grant(it, container_of(n, struct grant, node));
}

static DBusMessage *m_list_grants(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	return list_reply(b, msg, c, &b->a->grants, grant_owner, grant_append);
}

static DBusMessage *m_reload(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	struct agent_err err;

	if (api_reload(b->a, c, &err) < 0)
		return error_reply(msg, &err);
	return dbus_message_new_method_return(msg);
}

static DBusMessage *m_get_status(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	struct agent *a = b->a;
	const char *why = audit_failure(a->audit);
	char audit[512];
	DBusMessage *reply = dbus_message_new_method_return(msg);
	DBusMessageIter it, d;

	if (!reply)
		return NULL;
	snprintf(audit, sizeof(audit), "%s%s", why ? "failing: " : "ok", why ? why : "");
	dbus_message_iter_init_append(reply, &it);
	if (!dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &d) ||
	    !dict_str(&d, "version", PACKAGE_VERSION) ||
	    !dict_u32(&d, "pid", (uint32_t)getpid()) ||
	    !dict_i64(&d, "started_at", a->started_us) ||
	    !dict_str(&d, "config", a->config_path) ||
	    !dict_u32(&d, "grants", a->n_grants) ||
	    !dict_u32(&d, "connections", a->n_conns) ||
	    !dict_u32(&d, "sessions", a->n_sessions) ||
	    !dict_str(&d, "audit", audit) ||
	    !dict_u32(&d, "audit_queued", (uint32_t)audit_queued(a->audit)) ||
	    !dict_str(&d, "database", a->pol->p->agent.database) ||
	    !dict_str(&d, "runtime_dir", a->pol->p->agent.runtime_dir) ||
	    !dbus_message_iter_close_container(&it, &d)) {
		dbus_message_unref(reply);
		return NULL;
	}
	return reply;
}

/* --- Identity and sessions ------------------------------------------------------ */

struct token_call {
	struct bus *b;
	DBusMessage *msg;
};

static DBusMessage *reply_with_dict(DBusMessage *msg, bool (*fill)(DBusMessageIter *, const void *),
				    const void *obj)
{
	DBusMessage *reply = dbus_message_new_method_return(msg);
	DBusMessageIter it;

	if (reply) {
		dbus_message_iter_init_append(reply, &it);
		if (!fill(&it, obj)) {
			dbus_message_unref(reply);
			reply = NULL;
		}
	}
	return reply;
}

static bool fill_identity(DBusMessageIter *it, const void *p)
{
	const struct ident_reply *r = p;
	DBusMessageIter d;

	return dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "{sv}", &d) &&
	       dict_str(&d, "user", r->user) &&
	       dict_u32(&d, "uid", r->uid) &&
	       dict_str(&d, "subject", r->subject) &&
	       dict_str(&d, "issuer", r->issuer) &&
	       dict_str(&d, "oidc", r->oidc) &&
	       dict_strv(&d, "groups", r->groups, r->n_groups) &&
	       dict_i64(&d, "expires_at", r->expires_us) &&
	       dbus_message_iter_close_container(it, &d);
}

static bool fill_session(DBusMessageIter *it, const void *p)
{
	return append_session(it, p);
}

static void send_reply(struct bus *b, DBusMessage *msg, DBusMessage *reply);

static void on_token_checked(struct agent *a, const struct ident_reply *r, void *ud)
{
	struct token_call *tc = ud;
	const char *member = dbus_message_get_member(tc->msg);
	DBusMessage *reply;

	if (!r->ok) {
		reply = error_reply(tc->msg, &r->err);
	} else if (strcmp(member, "Authenticate") == 0) {
		reply = reply_with_dict(tc->msg, fill_identity, r);
	} else {
		dbus_int64_t exp = r->session->expires_us;
		const char *id = r->session->id;

		reply = dbus_message_new_method_return(tc->msg);
		if (reply && !(strcmp(member, "OpenSession") == 0 ?
			       dbus_message_append_args(reply, DBUS_TYPE_STRING, &id, DBUS_TYPE_INT64, &exp,
							DBUS_TYPE_INVALID) :
			       dbus_message_append_args(reply, DBUS_TYPE_INT64, &exp, DBUS_TYPE_INVALID))) {
			dbus_message_unref(reply);
			reply = NULL;
		}
	}
	send_reply(tc->b, tc->msg, reply);
	dbus_message_unref(tc->msg);
	free(tc);
}

static DBusMessage *token_method(struct bus *b, DBusMessage *msg, const struct caller *c,
				 enum ident_op op)
{
	const char *target, *token;
	DBusError e = DBUS_ERROR_INIT;
	struct agent_err err;
	struct token_call *tc;

	if (!dbus_message_get_args(msg, &e, DBUS_TYPE_STRING, &target, DBUS_TYPE_STRING, &token,
				   DBUS_TYPE_INVALID))
		return bad_args(msg, &e);
	tc = calloc(1, sizeof(*tc));
	if (!tc)
		return NULL;
	tc->b = b;
	tc->msg = dbus_message_ref(msg);
	if (ident_start(b->a, c, op, target, token, on_token_checked, tc, &err) < 0) {
		dbus_message_unref(tc->msg);
		free(tc);
		return error_reply(msg, &err);
	}
	return REPLY_LATER;
}

static DBusMessage *m_authenticate(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	return token_method(b, msg, c, IDENT_AUTHENTICATE);
}

static DBusMessage *m_open_session(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	return token_method(b, msg, c, IDENT_OPEN);
}

static DBusMessage *m_refresh_session(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	return token_method(b, msg, c, IDENT_REFRESH);
}

static DBusMessage *m_check_account(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	const char *user;
	DBusError e = DBUS_ERROR_INIT;
	struct agent_err err;

	if (!dbus_message_get_args(msg, &e, DBUS_TYPE_STRING, &user, DBUS_TYPE_INVALID))
		return bad_args(msg, &e);
	if (ident_check_account(b->a, c, user, &err) < 0)
		return error_reply(msg, &err);
	return dbus_message_new_method_return(msg);
}

static DBusMessage *m_close_session(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	const char *id;
	DBusError e = DBUS_ERROR_INIT;
	struct agent_err err;

	if (!dbus_message_get_args(msg, &e, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID))
		return bad_args(msg, &e);
	if (api_close_session(b->a, c, id, &err) < 0)
		return error_reply(msg, &err);
	return dbus_message_new_method_return(msg);
}

static DBusMessage *m_get_session(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	const char *id;
	DBusError e = DBUS_ERROR_INIT;
	struct agent_err err;
	struct session *s;

	if (!dbus_message_get_args(msg, &e, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID))
		return bad_args(msg, &e);
	s = api_get_session(b->a, c, id, &err);
	if (!s)
		return error_reply(msg, &err);
	return reply_with_dict(msg, fill_session, s);
}

static uid_t session_owner(struct list_node *n)
{
	return container_of(n, struct session, node)->uid;
}

static bool session_append(DBusMessageIter *it, struct list_node *n)
{
	return append_session(it, container_of(n, struct session, node));
}

static DBusMessage *m_list_sessions(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	return list_reply(b, msg, c, &b->a->sessions, session_owner, session_append);
}

/* --- Approvals ------------------------------------------------------------------ */

/* Approvers and admins see every approval, others their own requests;
 * all = false: pending only. Newest first. */
static DBusMessage *m_list_approvals(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	const struct list_node *head = approvals_head(b->a), *n;
	bool everyone = c->is_admin || approval_is_approver(b->a, c);
	dbus_bool_t all;
	DBusError e = DBUS_ERROR_INIT;
	DBusMessage *reply;
	DBusMessageIter it, arr;
	bool ok;

	if (!dbus_message_get_args(msg, &e, DBUS_TYPE_BOOLEAN, &all, DBUS_TYPE_INVALID))
		return bad_args(msg, &e);
	reply = dbus_message_new_method_return(msg);
	if (!reply)
		return NULL;
	dbus_message_iter_init_append(reply, &it);
	ok = dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "a{sv}", &arr);
	for (n = head ? head->prev : NULL; ok && n && n != head; n = n->prev) {
		const struct approval *ap = container_of(n, struct approval, node);

		if ((all || ap->state == APPR_PENDING) && (everyone || ap->uid == c->uid))
			ok = append_approval(&arr, ap, LIST_SQL_MAX);
	}
	if (!ok || !dbus_message_iter_close_container(&it, &arr)) {
		dbus_message_unref(reply);
		return NULL;
	}
	return reply;
}

static DBusMessage *m_get_approval(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	const char *id;
	DBusError e = DBUS_ERROR_INIT;
	struct agent_err err;
	struct approval *ap;
	DBusMessage *reply;
	DBusMessageIter it;

	if (!dbus_message_get_args(msg, &e, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID))
		return bad_args(msg, &e);
	ap = approval_find(b->a, id);
	/* Someone else's request looks the same as none. */
	if (!ap || !approval_visible(b->a, c, ap)) {
		agent_err_set(&err, "NotFound", "no approval %s", id);
		return error_reply(msg, &err);
	}
	reply = dbus_message_new_method_return(msg);
	if (reply) {
		dbus_message_iter_init_append(reply, &it);
		if (!append_approval(&it, ap, SIZE_MAX)) {
			dbus_message_unref(reply);
			reply = NULL;
		}
	}
	return reply;
}

static DBusMessage *decide(struct bus *b, DBusMessage *msg, const struct caller *c, bool approve)
{
	const char *id, *note;
	DBusError e = DBUS_ERROR_INIT;
	struct agent_err err;

	if (!dbus_message_get_args(msg, &e, DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &note,
				   DBUS_TYPE_INVALID))
		return bad_args(msg, &e);
	if (approval_decide(b->a, c, id, approve, note, &err) < 0)
		return error_reply(msg, &err);
	return dbus_message_new_method_return(msg);
}

static DBusMessage *m_approve(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	return decide(b, msg, c, true);
}

static DBusMessage *m_deny(struct bus *b, DBusMessage *msg, const struct caller *c)
{
	return decide(b, msg, c, false);
}

static const struct {
	const char *name;
	DBusMessage *(*fn)(struct bus *, DBusMessage *, const struct caller *);
} methods[] = {
	{ "RequestGrant", m_request_grant },
	{ "RevokeGrant", m_revoke_grant },
	{ "ListGrants", m_list_grants },
	{ "GetGrant", m_get_grant },
	{ "Reload", m_reload },
	{ "GetStatus", m_get_status },
	{ "Authenticate", m_authenticate },
	{ "CheckAccount", m_check_account },
	{ "OpenSession", m_open_session },
	{ "RefreshSession", m_refresh_session },
	{ "CloseSession", m_close_session },
	{ "ListSessions", m_list_sessions },
	{ "GetSession", m_get_session },
	{ "ListApprovals", m_list_approvals },
	{ "GetApproval", m_get_approval },
	{ "Approve", m_approve },
	{ "Deny", m_deny },
};

static void send_reply(struct bus *b, DBusMessage *msg, DBusMessage *reply)
{
	if (reply == REPLY_LATER)
		return;
	if (!reply) {
		reply = dbus_message_new_error(msg, DBUS_ERROR_NO_MEMORY, "out of memory");
		if (!reply)
			return;
	}
	if (!dbus_message_get_no_reply(msg))
		dbus_connection_send(b->conn, reply, NULL);
	dbus_message_unref(reply);
}

struct pending_call {
	struct bus *b;
	DBusMessage *msg;
};

static void pending_call_free(void *p)
{
	struct pending_call *pc = p;

	dbus_message_unref(pc->msg);
	free(pc);
}

/* The bus told us who called: now run the method. */
static void on_caller_uid(DBusPendingCall *pending, void *data)
{
	struct pending_call *pc = data;
	DBusMessage *r = dbus_pending_call_steal_reply(pending);
	const char *member = dbus_message_get_member(pc->msg);
	dbus_uint32_t uid;
	struct caller c;
	DBusMessage *reply = NULL;

	dbus_pending_call_unref(pending);
	if (!r || dbus_message_get_type(r) != DBUS_MESSAGE_TYPE_METHOD_RETURN ||
	    !dbus_message_get_args(r, NULL, DBUS_TYPE_UINT32, &uid, DBUS_TYPE_INVALID)) {
		/* Fail closed: no identity, no answer but an error. */
		reply = dbus_message_new_error(pc->msg, ERR_PREFIX "Denied",
					       "sluiced could not identify the caller");
		goto out;
	}
	if (caller_resolve(pc->b->a, (uid_t)uid, &c) < 0) {
		reply = dbus_message_new_error(pc->msg, DBUS_ERROR_NO_MEMORY, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
		if (strcmp(member, methods[i].name) == 0) {
			reply = methods[i].fn(pc->b, pc->msg, &c);
			break;
		}
	}
	caller_clear(&c);
out:
	if (r)
		dbus_message_unref(r);
	send_reply(pc->b, pc->msg, reply);
}

static DBusHandlerResult on_message(DBusConnection *conn, DBusMessage *msg, void *data)
{
	struct bus *b = data;
	const char *iface = dbus_message_get_interface(msg);
	const char *member = dbus_message_get_member(msg);
	const char *sender = dbus_message_get_sender(msg);
	DBusMessage *q;
	DBusPendingCall *pending = NULL;
	struct pending_call *pc;
	bool known = false;

	if (dbus_message_get_type(msg) != DBUS_MESSAGE_TYPE_METHOD_CALL)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	if (dbus_message_is_method_call(msg, DBUS_INTERFACE_INTROSPECTABLE, "Introspect")) {
		DBusMessage *reply = dbus_message_new_method_return(msg);
		const char *xml = agent_introspection_xml;
		if (reply && !dbus_message_append_args(reply, DBUS_TYPE_STRING, &xml, DBUS_TYPE_INVALID)) {
			dbus_message_unref(reply);
			reply = NULL;
		}
		send_reply(b, msg, reply);
		return DBUS_HANDLER_RESULT_HANDLED;
	}
	if (iface && strcmp(iface, BUS_IFACE) != 0)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	for (size_t i = 0; member && i < ARRAY_SIZE(methods); i++)
		known |= strcmp(member, methods[i].name) == 0;
	if (!known || !sender)
		return DBUS_HANDLER_RESULT_NOT_YET_HANDLED;
	/* Who is calling, asked of the bus without blocking the loop. */
	q = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS,
					 "GetConnectionUnixUser");
	pc = calloc(1, sizeof(*pc));
	if (!q || !pc || !dbus_message_append_args(q, DBUS_TYPE_STRING, &sender, DBUS_TYPE_INVALID) ||
	    !dbus_connection_send_with_reply(conn, q, &pending, CALLER_LOOKUP_TIMEOUT_MS) || !pending) {
		if (q)
			dbus_message_unref(q);
		free(pc);
		return DBUS_HANDLER_RESULT_NEED_MEMORY;
	}
	dbus_message_unref(q);
	pc->b = b;
	pc->msg = dbus_message_ref(msg);
	if (!dbus_pending_call_set_notify(pending, on_caller_uid, pc, pending_call_free)) {
		dbus_pending_call_cancel(pending);
		dbus_pending_call_unref(pending);
		pending_call_free(pc);
		return DBUS_HANDLER_RESULT_NEED_MEMORY;
	}
	return DBUS_HANDLER_RESULT_HANDLED;
}

static const DBusObjectPathVTable vtable = { .message_function = on_message };

int bus_open(struct agent *a, struct bus **out, char *err, size_t errlen)
{
	struct bus *b = calloc(1, sizeof(*b));
	DBusError e = DBUS_ERROR_INIT;
	int r;

	if (!b)
		return -ENOMEM;
	b->a = a;
	b->conn = dbus_bus_get_private(DBUS_BUS_SYSTEM, &e);
	if (!b->conn) {
		snprintf(err, errlen, "cannot connect to the system bus: %s", e.message);
		goto fail;
	}
	dbus_connection_set_exit_on_disconnect(b->conn, FALSE);
	if (!dbus_connection_set_watch_functions(b->conn, add_watch, remove_watch, toggle_watch, b, NULL) ||
	    !dbus_connection_set_timeout_functions(b->conn, add_timeout, remove_timeout, toggle_timeout, b, NULL) ||
	    !dbus_connection_register_object_path(b->conn, BUS_PATH, &vtable, b)) {
		snprintf(err, errlen, "cannot set up the bus connection: out of memory");
		goto fail;
	}
	dbus_connection_set_dispatch_status_function(b->conn, on_dispatch_status, b, NULL);
	/* Start-up may block on the bus; the data path is not running yet. */
	r = dbus_bus_request_name(b->conn, BUS_NAME, DBUS_NAME_FLAG_DO_NOT_QUEUE, &e);
	if (r != DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER) {
		snprintf(err, errlen,
			 "cannot own %s on the system bus: %s (is another sluiced running, and does the D-Bus policy let this account own the name?)",
			 BUS_NAME, dbus_error_is_set(&e) ? e.message : "the name is taken");
		goto fail;
	}
	a->bus = b;
	a->on_grant_state = on_grant_state;
	a->on_session_state = on_session_state;
	a->on_approval_requested = on_approval_requested;
	a->on_approval_decided = on_approval_decided;
	queue_dispatch(b);
	*out = b;
	return 0;
fail:
	dbus_error_free(&e);
	bus_close(b);
	return -EIO;
}

struct bus *bus_close(struct bus *b)
{
	if (!b)
		return NULL;
	b->closing = true;
	if (b->a->bus == b) {
		b->a->bus = NULL;
		b->a->on_grant_state = NULL;
		b->a->on_session_state = NULL;
		b->a->on_approval_requested = NULL;
		b->a->on_approval_decided = NULL;
	}
	if (b->conn) {
		dbus_connection_flush(b->conn);
		dbus_connection_close(b->conn);
		dbus_connection_unref(b->conn);
	}
	free(b);
	return NULL;
}
