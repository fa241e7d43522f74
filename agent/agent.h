/* The agent's state, shared by its modules: the loop, the current policy,
 * the audit writer, the bus, the live grants. One instance per process,
 * passed explicitly (no globals). */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "agent/loop.h"
#include "common/list.h"
#include "policy/policy.h"

struct approval;
struct approvals;
struct audit;
struct bus;
struct resolver;
struct grant;
struct nss;
struct session;
struct verifier;

/* A policy shared by the agent and by the grants made under it, so a reload
 * never pulls a connection's settings from under a live grant. */
struct policy_ref {
	struct policy *p;
	unsigned refs;
};
struct policy_ref *policy_ref_get(struct policy_ref *r);
struct policy_ref *policy_ref_put(struct policy_ref *r);

struct agent {
	struct loop *loop;
	const char *config_path;
	struct policy_ref *pol;      /* current policy */
	struct audit *audit;
	struct bus *bus;
	struct resolver *resolver;
	struct list_node grants;     /* struct grant.node, active grants */
	struct list_node ended;      /* ended grants whose connections are not all gone */
	struct list_node sessions;   /* struct session.node, live sessions */
	struct verifier *verifier;   /* token verification, off the loop */
	struct approvals *approvals; /* approval.c: pending and recently decided approvals */
	struct nss *nss;             /* nss.c: the snapshot libnss_sluice reads */
	unsigned n_grants;
	unsigned n_sessions;
	unsigned n_conns;            /* live client connections, all grants */
	uid_t uid;                   /* the account the agent runs as */
	gid_t gid;
	int64_t started_us;
	bool stopping;
	/* Told of every grant state change (the bus emits a signal). */
	void (*on_grant_state)(struct agent *a, const struct grant *g);
	void (*on_session_state)(struct agent *a, const struct session *s);
	/* Told of every new approval, and of every approval leaving pending. */
	void (*on_approval_requested)(struct agent *a, const struct approval *ap);
	void (*on_approval_decided)(struct agent *a, const struct approval *ap);
};

/* An error for a caller: the D-Bus error name (suffix after
 * org.sluice.Agent1.Error.) and a message fit to print as is. */
struct agent_err {
	const char *kind; /* "Denied", "NotFound", "InvalidArgument", "LimitExceeded",
			     "AuditUnavailable", "ConfigInvalid", "Failed",
			     "TokenRejected", "Unavailable" */
	char msg[1024];
};
void agent_err_set(struct agent_err *e, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Load and fully check a config (including what the agent itself must
 * verify: password files, enforceability). On failure every problem is in
 * errs. */
int agent_load_policy(struct agent *a, const char *path, struct policy **out,
		      struct pol_errors *errs) WUR;
/* Re-read the config; on success swap it in (live grants keep theirs). */
int agent_reload(struct agent *a, struct agent_err *err) WUR;
/* End every grant and leave the loop. */
void agent_stop(struct agent *a, const char *why);

/* Record an event; logs (and never fails the caller) when the audit refuses
 * it, since events describe what already happened. */
void agent_event(struct agent *a, const char *kind, const char *grant_id, const uid_t *uid,
		 const char *user, const char *connection, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
