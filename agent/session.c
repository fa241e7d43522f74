#include "config.h"
#include "agent/session.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "agent/grant.h"
#include "agent/nss.h"
#include "common/duration.h"
#include "common/log.h"

static const struct pol_oidc *oidc_section(const struct policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_oidc; i++) {
		const char *n = p->oidc[i].name;
		if ((!name && !n) || (name && n && strcmp(name, n) == 0))
			return &p->oidc[i];
	}
	return NULL;
}

int session_binding(const struct policy *p, const char *user, const struct pol_identity **ident,
		    const struct pol_oidc **oidc, char *why, size_t whylen)
{
	for (size_t i = 0; i < p->n_identities; i++) {
		const struct pol_identity *id = &p->identities[i];

		if (strcmp(id->name, user) != 0)
			continue;
		*ident = id;
		*oidc = oidc_section(p, id->issuer);
		if (!*oidc) {
			snprintf(why, whylen, "[identity %s] names issuer %s, which is not configured",
				 user, id->issuer ? id->issuer : "(the bare [oidc])");
			return -EINVAL;
		}
		return 0;
	}
	snprintf(why, whylen, "no [identity %s] binds account %s to an OIDC subject", user, user);
	return -ENOENT;
}

static void groups_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Copy the groups and their JSON form; -ENOMEM leaves s untouched. */
static int set_groups(struct session *s, const char *const *groups, size_t n)
{
	char **v = calloc(n ? n : 1, sizeof(*v));
	json_t *arr = json_array();
	char *js = NULL;
	size_t i;

	if (!v || !arr)
		goto fail;
	for (i = 0; i < n; i++) {
		v[i] = strdup(groups[i]);
		if (!v[i] || json_array_append_new(arr, json_string(groups[i])) < 0)
			goto fail;
	}
	js = json_dumps(arr, JSON_COMPACT);
	if (!js)
		goto fail;
	json_decref(arr);
	groups_free(s->groups, s->n_groups);
	free(s->groups_json);
	s->groups = v;
	s->n_groups = n;
	s->groups_json = js;
	return 0;
fail:
	if (v)
		groups_free(v, n);
	json_decref(arr);
	return -ENOMEM;
}

static void session_free(struct session *s)
{
	loop_timer_del(s->timer);
	free(s->user);
	free(s->subject);
	free(s->issuer);
	free(s->oidc);
	groups_free(s->groups, s->n_groups);
	free(s->groups_json);
	free(s);
}

static void on_expiry(struct loop_timer *t, void *ud)
{
	struct session *s = ud;

	loop_timer_del(t);
	s->timer = NULL;
	log_info("session %s of %s: the token expired", s->id, s->user);
	session_end(s, "expired");
}

static int arm_expiry(struct session *s)
{
	int64_t left = s->expires_us - now_us();

	s->timer = loop_timer_del(s->timer);
	return loop_timer_add(s->agent->loop, mono_us() + (left > 0 ? left : 0), on_expiry, s,
			      &s->timer);
}

static unsigned sessions_of_uid(struct agent *a, uid_t uid)
{
	struct list_node *n, *t;
	unsigned count = 0;

	list_for_each_safe(n, t, &a->sessions) {
		if (container_of(n, struct session, node)->uid == uid)
			count++;
	}
	return count;
}

int session_open(struct agent *a, uid_t uid, const char *user, const struct session_identity *id,
		 struct session **out, struct agent_err *err)
{
	struct session *s;
	uint8_t raw[SESSION_ID_LEN / 2];
	char left[32];
	int r;

	if (a->n_sessions >= SESSIONS_MAX) {
		agent_err_set(err, "LimitExceeded", "sluiced holds %u sessions, its limit", a->n_sessions);
		return -EUSERS;
	}
	if (sessions_of_uid(a, uid) >= SESSIONS_PER_UID_MAX) {
		agent_err_set(err, "LimitExceeded",
			      "%s already has %u live sessions; close one first (sluicectl logout)",
			      user, SESSIONS_PER_UID_MAX);
		return -EUSERS;
	}
	if (id->expires_us <= now_us()) {
		agent_err_set(err, "TokenRejected", "token rejected: it has expired");
		return -EINVAL;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		goto nomem;
	s->agent = a;
	list_init(&s->node);
	s->uid = uid;
	s->created_us = now_us();
	s->expires_us = id->expires_us;
	r = random_bytes(raw, sizeof(raw));
	if (r < 0) {
		free(s);
		agent_err_set(err, "Failed", "cannot make a session id: %s", strerror(-r));
		return r;
	}
	hex_encode(raw, sizeof(raw), s->id);
	s->user = strdup(user);
	s->subject = strdup(id->subject);
	s->issuer = strdup(id->issuer);
	s->oidc = id->oidc ? strdup(id->oidc) : NULL;
	if (!s->user || !s->subject || !s->issuer || (id->oidc && !s->oidc) ||
	    set_groups(s, id->groups, id->n_groups) < 0 || arm_expiry(s) < 0) {
		session_free(s);
		goto nomem;
	}
	list_add_tail(&a->sessions, &s->node);
	a->n_sessions++;
	duration_format((uint64_t)((s->expires_us - s->created_us) / 1000000), left, sizeof(left));
	agent_event(a, "session.opened", NULL, &s->uid, s->user, NULL,
		    "session %s; subject %s; issuer %s; groups %s; expires in %s", s->id, s->subject,
		    s->issuer, s->groups_json, left);
	log_info("session %s: %s (uid %u) as %s, for %s", s->id, s->user, (unsigned)s->uid,
		 s->subject, left);
	/* Its groups are local groups now. */
	nss_publish(a, false);
	if (a->on_session_state)
		a->on_session_state(a, s);
	*out = s;
	return 0;
nomem:
	agent_err_set(err, "Failed", "out of memory");
	return -ENOMEM;
}

int session_refresh(struct session *s, const struct session_identity *id, struct agent_err *err)
{
	char left[32];

	if (strcmp(id->subject, s->subject) != 0 || strcmp(id->issuer, s->issuer) != 0) {
		agent_err_set(err, "TokenRejected",
			      "token rejected: it is for subject %s of %s, the session is for %s of %s",
			      id->subject, id->issuer, s->subject, s->issuer);
		return -EACCES;
	}
	if (set_groups(s, id->groups, id->n_groups) < 0) {
		agent_err_set(err, "Failed", "out of memory");
		return -ENOMEM;
	}
	s->expires_us = id->expires_us;
	if (arm_expiry(s) < 0) {
		agent_err_set(err, "Failed", "out of memory");
		return -ENOMEM;
	}
	{
		struct list_node *n, *t;
		list_for_each_safe(n, t, &s->agent->grants) {
			struct grant *g = container_of(n, struct grant, node);
			if (strcmp(g->session_id, s->id) == 0)
				grant_session_extended(g, s->expires_us);
		}
	}
	duration_format((uint64_t)MAX(0, (s->expires_us - now_us()) / 1000000), left, sizeof(left));
	agent_event(s->agent, "session.refreshed", NULL, &s->uid, s->user, NULL,
		    "session %s; groups %s; expires in %s", s->id, s->groups_json, left);
	/* The new token's groups may differ. */
	nss_publish(s->agent, false);
	return 0;
}

void session_end(struct session *s, const char *reason)
{
	struct agent *a = s->agent;
	struct list_node *n, *t;

	if (s->state != SESSION_ACTIVE)
		return;
	s->state = SESSION_ENDED;
	s->end_reason = reason;
	list_del(&s->node);
	a->n_sessions--;
	s->timer = loop_timer_del(s->timer);
	list_for_each_safe(n, t, &a->grants) {
		struct grant *g = container_of(n, struct grant, node);
		if (strcmp(g->session_id, s->id) == 0)
			grant_end(g, "session-ended");
	}
	agent_event(a, "session.ended", NULL, &s->uid, s->user, NULL, "session %s; %s", s->id, reason);
	log_info("session %s of %s ended: %s", s->id, s->user, reason);
	/* Offboarding in the IdP shows on the host once the session is gone. */
	nss_publish(a, false);
	if (a->on_session_state)
		a->on_session_state(a, s);
	session_free(s);
}

struct session *session_find(struct agent *a, const char *id)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &a->sessions) {
		struct session *s = container_of(n, struct session, node);
		if (strcmp(s->id, id) == 0)
			return s;
	}
	return NULL;
}

struct session *session_newest_for(struct agent *a, uid_t uid)
{
	struct list_node *n, *t;
	struct session *best = NULL;

	list_for_each_safe(n, t, &a->sessions) {
		struct session *s = container_of(n, struct session, node);
		if (s->uid == uid && (!best || s->expires_us >= best->expires_us))
			best = s;
	}
	return best;
}

unsigned session_grant_count(const struct session *s)
{
	struct list_node *n, *t;
	unsigned count = 0;

	list_for_each_safe(n, t, &s->agent->grants) {
		if (strcmp(container_of(n, struct grant, node)->session_id, s->id) == 0)
			count++;
	}
	return count;
}

void sessions_check_bindings(struct agent *a)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &a->sessions) {
		struct session *s = container_of(n, struct session, node);
		const struct pol_identity *ident;
		const struct pol_oidc *oidc;
		char why[256];

		if (session_binding(a->pol->p, s->user, &ident, &oidc, why, sizeof(why)) == 0) {
			if (strcmp(ident->subject, s->subject) == 0 && strcmp(oidc->issuer, s->issuer) == 0)
				continue;
			snprintf(why, sizeof(why), "account %s is now bound to another subject or issuer",
				 s->user);
		}
		log_info("session %s of %s: binding removed on reload: %s", s->id, s->user, why);
		session_end(s, "unbound");
	}
}

void sessions_end_all(struct agent *a, const char *reason)
{
	while (!list_empty(&a->sessions))
		session_end(container_of(a->sessions.next, struct session, node), reason);
}
