/* What the agent's D-Bus methods do, apart from marshalling: who the caller
 * is (from the uid the bus reported) and what it may do. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "agent/agent.h"
#include "agent/grant.h"

struct caller {
	uid_t uid;
	char user[256];
	char **unix_groups;
	size_t n_unix_groups;
	bool is_admin;
};

/* Facts about uid from the local account database. Unknown uids get a
 * numeric name and no groups (they match no rule). */
int caller_resolve(struct agent *a, uid_t uid, struct caller *c) WUR;
void caller_clear(struct caller *c);
/* What principal lists match against: the caller's account and Unix
 * groups, and the IdP groups of its newest live session (none without
 * one). f points into c and that session: use it before either changes. */
void caller_facts_live(struct agent *a, const struct caller *c, struct caller_facts *f);

/* session_id "" = the caller's newest live session; there must be one. */
int api_request_grant(struct agent *a, const struct caller *c, const char *connection,
		      uint64_t ttl, const char *schema, const char *reason, const char *session_id,
		      struct grant **out, struct agent_err *err) WUR;
struct session;
/* The session if the caller may see it (owner, root, admins). */
struct session *api_get_session(struct agent *a, const struct caller *c, const char *id,
				struct agent_err *err);
int api_close_session(struct agent *a, const struct caller *c, const char *id,
		      struct agent_err *err) WUR;
int api_revoke_grant(struct agent *a, const struct caller *c, const char *id,
		     struct agent_err *err) WUR;
/* The grant if the caller may see it. */
struct grant *api_get_grant(struct agent *a, const struct caller *c, const char *id,
			    struct agent_err *err);
/* May the caller list every grant? (Otherwise: only its own.) */
int api_check_list_all(struct agent *a, const struct caller *c, struct agent_err *err) WUR;
int api_reload(struct agent *a, const struct caller *c, struct agent_err *err) WUR;
