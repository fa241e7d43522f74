/* Sessions: a verified OIDC identity for one local account. A session
 * opens from a token the agent verified against the account's [identity]
 * binding, and ends at the token's expiry (each token keeps it alive for at
 * most [oidc] max_session), on close, when the binding goes on reload, or
 * when the agent stops. Every grant belongs to a session and ends with it. */
#pragma once
#include <stdint.h>
#include <sys/types.h>
#include "agent/agent.h"

#define SESSION_ID_LEN 16
#define SESSIONS_PER_UID_MAX 64
#define SESSIONS_MAX 4096

enum session_state { SESSION_ACTIVE, SESSION_ENDED };

struct session {
	struct agent *agent;
	struct list_node node;          /* in agent->sessions */
	char id[SESSION_ID_LEN + 1];
	uid_t uid;
	char *user;
	char *subject;
	char *issuer;                   /* the issuer URL */
	char *oidc;                     /* [oidc NAME] section name, NULL = the bare [oidc] */
	char **groups;                  /* from groups_claim */
	size_t n_groups;
	char *groups_json;              /* the same as a JSON array, for audit rows */
	int64_t created_us, expires_us; /* wall clock */
	struct loop_timer *timer;
	enum session_state state;
	const char *end_reason;         /* static once ended */
};

/* What a verified token says, as the session needs it. */
struct session_identity {
	const char *subject;
	const char *issuer;
	const char *oidc;               /* section name or NULL */
	const char *const *groups;
	size_t n_groups;
	int64_t expires_us;             /* the token's exp, already capped by max_session */
};

int session_open(struct agent *a, uid_t uid, const char *user, const struct session_identity *id,
		 struct session **out, struct agent_err *err) WUR;
/* A newer token for the same subject and issuer: move the expiry (and take
 * its groups). */
int session_refresh(struct session *s, const struct session_identity *id,
		    struct agent_err *err) WUR;
/* End the session and every grant in it, then free it. reason is static. */
void session_end(struct session *s, const char *reason);
struct session *session_find(struct agent *a, const char *id);
/* The caller's live session that expires last, or NULL. */
struct session *session_newest_for(struct agent *a, uid_t uid);
unsigned session_grant_count(const struct session *s);
/* After a reload: end the sessions whose binding is gone or changed. */
void sessions_check_bindings(struct agent *a);
/* At shutdown. */
void sessions_end_all(struct agent *a, const char *reason);

/* The [identity] binding of a local account in p, and its issuer section.
 * Returns 0, or -ENOENT / -EINVAL with why filled. */
int session_binding(const struct policy *p, const char *user, const struct pol_identity **ident,
		    const struct pol_oidc **oidc, char *why, size_t whylen) WUR;
