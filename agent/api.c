#include "config.h"
#include "agent/api.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "agent/session.h"
#include "common/log.h"

#define MAX_GROUPS 256

void caller_clear(struct caller *c)
{
	for (size_t i = 0; i < c->n_unix_groups; i++)
		free(c->unix_groups[i]);
	free(c->unix_groups);
	c->unix_groups = NULL;
	c->n_unix_groups = 0;
}

static void facts_of(const struct caller *c, struct caller_facts *f)
{
	*f = (struct caller_facts){
		.user = c->user, .uid = c->uid,
		.unix_groups = (const char *const *)c->unix_groups, .n_unix_groups = c->n_unix_groups,
	};
}

void caller_facts_live(struct agent *a, const struct caller *c, struct caller_facts *f)
{
	const struct session *s = session_newest_for(a, c->uid);

	facts_of(c, f);
	if (s) {
		f->idp_groups = (const char *const *)s->groups;
		f->n_idp_groups = s->n_groups;
	}
}

int caller_resolve(struct agent *a, uid_t uid, struct caller *c)
{
	struct passwd pw, *pwp = NULL;
	char buf[4096];
	gid_t gids[MAX_GROUPS];
	int ngids = MAX_GROUPS;
	struct caller_facts f;

	memset(c, 0, sizeof(*c));
	c->uid = uid;
	/* A service identity declared in policy: its name, and its own group,
	 * from policy (the agent never resolves through libnss_sluice). */
	for (size_t i = 0; i < a->pol->p->n_identities; i++) {
		const struct pol_identity *id = &a->pol->p->identities[i];

		if (!id->has_uid || id->uid != uid)
			continue;
		snprintf(c->user, sizeof(c->user), "%s", id->name);
		c->unix_groups = calloc(1, sizeof(char *));
		if (!c->unix_groups || !(c->unix_groups[0] = strdup(id->name))) {
			caller_clear(c);
			return -ENOMEM;
		}
		c->n_unix_groups = 1;
		facts_of(c, &f);
		c->is_admin = principal_list_matches(&a->pol->p->agent.admins, &f);
		return 0;
	}
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp) != 0 || !pwp) {
		/* No account name: it can match no rule that names accounts. */
		snprintf(c->user, sizeof(c->user), "#%u", (unsigned)uid);
		return 0;
	}
	snprintf(c->user, sizeof(c->user), "%s", pw.pw_name);
	if (getgrouplist(pw.pw_name, pw.pw_gid, gids, &ngids) < 0)
		ngids = MAX_GROUPS; /* more than we look at: the first ones count */
	c->unix_groups = calloc((size_t)ngids, sizeof(char *));
	if (!c->unix_groups)
		return -ENOMEM;
	for (int i = 0; i < ngids; i++) {
		struct group gr, *grp = NULL;
		char gbuf[8192];

		if (getgrgid_r(gids[i], &gr, gbuf, sizeof(gbuf), &grp) != 0 || !grp)
			continue;
		c->unix_groups[c->n_unix_groups] = strdup(gr.gr_name);
		if (!c->unix_groups[c->n_unix_groups]) {
			caller_clear(c);
			return -ENOMEM;
		}
		c->n_unix_groups++;
	}
	facts_of(c, &f);
	c->is_admin = principal_list_matches(&a->pol->p->agent.admins, &f);
	return 0;
}

int api_request_grant(struct agent *a, const struct caller *c, const char *connection,
		      uint64_t ttl, const char *schema, const char *reason, const char *session_id,
		      struct grant **out, struct agent_err *err)
{
	struct caller_facts f;
	const struct pol_access *acc;
	const struct session *s;

	if (session_id && *session_id) {
		s = session_find(a, session_id);
		if (!s || s->uid != c->uid) {
			agent_err_set(err, "Denied", "%s has no live session %s", c->user, session_id);
			agent_event(a, "grant.denied", NULL, &c->uid, c->user, connection,
				    "no live session %s", session_id);
			return -EACCES;
		}
	} else if (!(s = session_newest_for(a, c->uid))) {
		agent_err_set(err, "Denied",
			      "%s has no live session: authenticate first (sluicectl login, or run under sluicectl exec)",
			      c->user);
		agent_event(a, "grant.denied", NULL, &c->uid, c->user, connection, "no live session");
		return -EACCES;
	}
	facts_of(c, &f);
	/* @group principals match the groups the session's token carried. */
	f.idp_groups = (const char *const *)s->groups;
	f.n_idp_groups = s->n_groups;
	acc = policy_access_for(a->pol->p, connection, &f);
	if (!acc) {
		/* The same answer whether or not the connection exists: callers
		 * learn nothing about connections they may not use. */
		agent_err_set(err, "Denied", "%s may not use connection %s: no [access] rule allows it",
			      c->user, connection);
		agent_event(a, "grant.denied", NULL, &c->uid, c->user, connection,
			    "no [access] rule allows it");
		return -EACCES;
	}
	if (reason && strlen(reason) > 1024) {
		agent_err_set(err, "InvalidArgument", "the reason is longer than 1024 bytes");
		return -EINVAL;
	}
	return grant_create(a, &(struct grant_request){ .uid = c->uid, .user = c->user,
		.connection = connection, .ttl = ttl, .schema = schema, .reason = reason,
		.access = acc, .session = s }, out, err);
}

struct session *api_get_session(struct agent *a, const struct caller *c, const char *id,
				struct agent_err *err)
{
	struct session *s = session_find(a, id);

	if (!s || (s->uid != c->uid && c->uid != 0 && !c->is_admin)) {
		agent_err_set(err, "NotFound", "no live session %s", id);
		return NULL;
	}
	return s;
}

int api_close_session(struct agent *a, const struct caller *c, const char *id,
		      struct agent_err *err)
{
	struct session *s = api_get_session(a, c, id, err);

	if (!s)
		return -ENOENT;
	log_info("session %s closed by %s (uid %u)", s->id, c->user, (unsigned)c->uid);
	session_end(s, "closed");
	return 0;
}

struct grant *api_get_grant(struct agent *a, const struct caller *c, const char *id,
			    struct agent_err *err)
{
	struct grant *g = grant_find(a, id);

	/* Someone else's grant looks the same as no grant. */
	if (!g || (g->uid != c->uid && !c->is_admin)) {
		agent_err_set(err, "NotFound", "no active grant %s", id);
		return NULL;
	}
	return g;
}

int api_revoke_grant(struct agent *a, const struct caller *c, const char *id,
		     struct agent_err *err)
{
	struct grant *g = api_get_grant(a, c, id, err);

	if (!g)
		return -ENOENT;
	log_info("grant %s revoked by %s (uid %u)", g->id, c->user, (unsigned)c->uid);
	agent_event(a, "grant.revoked", g->id, &c->uid, c->user, g->conn->name,
		    "revoked by %s (uid %u)", c->user, (unsigned)c->uid);
	grant_end(g, "revoked");
	return 0;
}

int api_check_list_all(struct agent *a, const struct caller *c, struct agent_err *err)
{
	if (!c->is_admin) {
		agent_err_set(err, "Denied", "only admins ([agent] admins) may list everyone's grants and sessions");
		return -EACCES;
	}
	return 0;
}

int api_reload(struct agent *a, const struct caller *c, struct agent_err *err)
{
	if (!c->is_admin) {
		agent_err_set(err, "Denied", "only admins ([agent] admins) may reload the configuration");
		return -EACCES;
	}
	log_info("reload requested by %s (uid %u)", c->user, (unsigned)c->uid);
	if (agent_reload(a, err) < 0)
		return -EINVAL;
	return 0;
}
