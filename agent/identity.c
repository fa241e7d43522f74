#include "config.h"
#include "agent/identity.h"

#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent/session.h"
#include "agent/verify.h"
#include "common/log.h"

static const char *const op_names[] = {
	[IDENT_AUTHENTICATE] = "authenticate",
	[IDENT_OPEN] = "open-session",
	[IDENT_REFRESH] = "refresh-session",
};

struct ident_ctx {
	enum ident_op op;
	uid_t uid;
	char user[256];
	char session_id[SESSION_ID_LEN + 1];
	uid_t caller_uid;
	char caller[256];
	ident_cb cb;
	void *ud;
};

static int deny(struct agent *a, const struct ident_ctx *x, struct agent_err *err, const char *kind,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int deny(struct agent *a, const struct ident_ctx *x, struct agent_err *err, const char *kind,
		const char *fmt, ...)
{
	va_list ap;

	err->kind = kind;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	agent_event(a, "auth.denied", NULL, &x->uid, x->user, NULL, "%s by %s (uid %u): %s",
		    op_names[x->op], x->caller, (unsigned)x->caller_uid, err->msg);
	log_info("%s for %s denied: %s", op_names[x->op], x->user, err->msg);
	return -EACCES;
}

/* Which account the caller acts for: its own, or (root only) another. */
static int resolve_target(struct agent *a, const struct caller *c, const char *user,
			  struct ident_ctx *x, struct agent_err *err)
{
	struct passwd pw, *pwp = NULL;
	char buf[4096];

	if (!*user || strcmp(user, c->user) == 0) {
		x->uid = c->uid;
		snprintf(x->user, sizeof(x->user), "%s", c->user);
		return 0;
	}
	if (strlen(user) >= sizeof(x->user)) {
		agent_err_set(err, "InvalidArgument", "the account name is too long");
		return -EINVAL;
	}
	snprintf(x->user, sizeof(x->user), "%s", user);
	if (c->uid != 0) {
		x->uid = c->uid;
		return deny(a, x, err, "Denied", "%s (uid %u) may act only for itself, not for %s",
			    c->user, (unsigned)c->uid, user);
	}
	/* A service identity declared in policy (what libnss_sluice serves to
	 * others: the agent itself never resolves through it). */
	for (size_t i = 0; i < a->pol->p->n_identities; i++) {
		const struct pol_identity *id = &a->pol->p->identities[i];
		if (id->has_uid && strcmp(id->name, user) == 0) {
			x->uid = id->uid;
			return 0;
		}
	}
	if (getpwnam_r(user, &pw, buf, sizeof(buf), &pwp) == 0 && pwp) {
		x->uid = pw.pw_uid;
		return 0;
	}
	agent_err_set(err, "NotFound", "no account %s", user);
	return -ENOENT;
}

/* A subject the token carries that is bound elsewhere says so. */
static void describe_mismatch(const struct policy *p, const char *user, const char *subject,
			      const char *issuer, char *out, size_t n)
{
	for (size_t i = 0; i < p->n_identities; i++) {
		const struct pol_identity *id = &p->identities[i];
		if (strcmp(id->subject, subject) == 0 && strcmp(id->name, user) != 0) {
			snprintf(out, n, "token rejected: subject %s is bound to account %s, not %s",
				 subject, id->name, user);
			return;
		}
	}
	snprintf(out, n, "token rejected: subject %s of %s is not bound to account %s", subject,
		 issuer, user);
}

static void on_verified(struct agent *a, const struct verify_result *r, void *ud)
{
	struct ident_ctx *x = ud;
	struct ident_reply rep = { .uid = x->uid, .user = x->user };
	const struct pol_identity *ident;
	const struct pol_oidc *oidc;
	struct session *s = NULL;
	char why[512];
	int64_t cap;

	if (x->op == IDENT_REFRESH) {
		s = session_find(a, x->session_id);
		if (!s) {
			agent_err_set(&rep.err, "NotFound", "session %s has ended", x->session_id);
			goto out;
		}
	}
	switch (r->status) {
	case VERIFY_OK:
		break;
	case VERIFY_CANCELLED:
		agent_err_set(&rep.err, "Failed", "sluiced is stopping");
		goto out;
	case VERIFY_UNAVAILABLE:
		deny(a, x, &rep.err, "Unavailable", "cannot verify the token: %s", r->reason);
		goto out;
	case VERIFY_REJECTED:
		deny(a, x, &rep.err, "TokenRejected", "token rejected: %s", r->reason);
		goto refresh_failed;
	}
	/* The binding as it is now: the config may have been reloaded. */
	if (session_binding(a->pol->p, x->user, &ident, &oidc, why, sizeof(why)) < 0) {
		deny(a, x, &rep.err, "NotFound", "%s", why);
		goto refresh_failed;
	}
	if (strcmp(r->issuer, oidc->issuer) != 0 || strcmp(r->subject, ident->subject) != 0) {
		describe_mismatch(a->pol->p, x->user, r->subject, r->issuer, why, sizeof(why));
		deny(a, x, &rep.err, "TokenRejected", "%s", why);
		goto refresh_failed;
	}
	cap = now_us() + (int64_t)oidc->max_session * 1000000;
	rep.expires_us = MIN(r->exp_s * 1000000, cap);
	rep.subject = r->subject;
	rep.issuer = r->issuer;
	rep.oidc = oidc->name;
	rep.groups = (const char *const *)r->groups;
	rep.n_groups = r->n_groups;
	{
		struct session_identity sid = {
			.subject = r->subject, .issuer = r->issuer, .oidc = oidc->name,
			.groups = rep.groups, .n_groups = r->n_groups, .expires_us = rep.expires_us,
		};
		switch (x->op) {
		case IDENT_AUTHENTICATE:
			agent_event(a, "auth.verified", NULL, &x->uid, x->user, NULL,
				    "subject %s of %s, for %s (uid %u)", r->subject, r->issuer,
				    x->caller, (unsigned)x->caller_uid);
			rep.ok = true;
			break;
		case IDENT_OPEN:
			rep.ok = session_open(a, x->uid, x->user, &sid, &rep.session, &rep.err) == 0;
			break;
		case IDENT_REFRESH:
			rep.ok = session_refresh(s, &sid, &rep.err) == 0;
			rep.session = s;
			break;
		}
	}
	goto out;
refresh_failed:
	/* A token that does not verify ends the session it was to extend. */
	if (s)
		session_end(s, "refresh-failed");
out:
	x->cb(a, &rep, x->ud);
	free(x);
}

int ident_start(struct agent *a, const struct caller *c, enum ident_op op, const char *target,
		const char *token, ident_cb cb, void *ud, struct agent_err *err)
{
	struct ident_ctx *x = calloc(1, sizeof(*x));
	const struct pol_identity *ident;
	const struct pol_oidc *oidc;
	char why[512];
	size_t len = strnlen(token, IDENT_TOKEN_MAX + 1);
	int r;

	if (!x) {
		agent_err_set(err, "Failed", "out of memory");
		return -ENOMEM;
	}
	x->op = op;
	x->cb = cb;
	x->ud = ud;
	x->caller_uid = c->uid;
	snprintf(x->caller, sizeof(x->caller), "%s", c->user);
	if (op == IDENT_REFRESH) {
		struct session *s = session_find(a, target);

		/* Someone else's session looks the same as none. */
		if (!s || (s->uid != c->uid && c->uid != 0)) {
			agent_err_set(err, "NotFound", "no live session %s", target);
			free(x);
			return -ENOENT;
		}
		x->uid = s->uid;
		snprintf(x->user, sizeof(x->user), "%s", s->user);
		snprintf(x->session_id, sizeof(x->session_id), "%s", s->id);
	} else if ((r = resolve_target(a, c, target, x, err)) < 0) {
		free(x);
		return r;
	}
	if (len == 0 || len > IDENT_TOKEN_MAX) {
		r = deny(a, x, err, "TokenRejected", len ? "token rejected: longer than %d bytes" :
			 "token rejected: no token given", IDENT_TOKEN_MAX);
		free(x);
		return r;
	}
	r = session_binding(a->pol->p, x->user, &ident, &oidc, why, sizeof(why));
	if (r < 0) {
		r = deny(a, x, err, r == -ENOENT ? "NotFound" : "Failed", "%s", why);
		free(x);
		return r;
	}
	r = verifier_submit(a->verifier, a->pol, oidc, token, on_verified, x);
	if (r < 0) {
		if (r == -EAGAIN)
			agent_err_set(err, "LimitExceeded",
				      "%d token verifications are already under way; try again", VERIFY_QUEUE_MAX);
		else
			agent_err_set(err, "Failed", "cannot verify the token: %s", strerror(-r));
		free(x);
		return r;
	}
	return 0;
}

int ident_check_account(struct agent *a, const struct caller *c, const char *user,
			struct agent_err *err)
{
	struct ident_ctx x = { .op = IDENT_AUTHENTICATE, .caller_uid = c->uid };
	const struct pol_identity *ident;
	const struct pol_oidc *oidc;
	struct list_node *n, *t;
	char why[512];
	int r;

	snprintf(x.caller, sizeof(x.caller), "%s", c->user);
	r = resolve_target(a, c, user, &x, err);
	if (r < 0)
		return r;
	r = session_binding(a->pol->p, x.user, &ident, &oidc, why, sizeof(why));
	if (r < 0)
		return deny(a, &x, err, r == -ENOENT ? "NotFound" : "Failed", "%s", why);
	list_for_each_safe(n, t, &a->sessions) {
		const struct session *s = container_of(n, struct session, node);
		if (s->uid == x.uid && (strcmp(s->subject, ident->subject) != 0 ||
					strcmp(s->issuer, oidc->issuer) != 0))
			return deny(a, &x, err, "Denied", "session %s of %s is for %s, no longer bound",
				    s->id, x.user, s->subject);
	}
	return 0;
}
