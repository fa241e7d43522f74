/* Grants: a time-boxed path for one uid to one [connection]. An active
 * grant is a directory <runtime_dir>/grants/<id>/ holding the protocol's
 * socket; every accepted connection is checked with SO_PEERCRED against the
 * grant's uid. When the grant ends (TTL, revoke, shutdown) the listener is
 * closed, the directory removed, live connections told, and the event
 * recorded. The grant object lives on until its last connection is gone. */
#pragma once
#include <stdint.h>
#include <sys/types.h>
#include "agent/agent.h"
#include "agent/approval.h"
#include "agent/proto.h"
#include "policy/decide.h"

#define GRANT_ID_LEN 16

/* A grant under [access] approval = grant starts pending: listed and
 * counted, but without a directory or socket until an approver approves
 * (approval.h). */
enum grant_state { GRANT_ACTIVE, GRANT_ENDED, GRANT_PENDING };

struct grant {
	struct agent *agent;
	struct list_node node;       /* in agent->grants while pending or active */
	unsigned refs;               /* 1 while active + 1 per connection */
	char id[GRANT_ID_LEN + 1];
	uid_t uid;
	char *user;
	struct policy_ref *pol;
	const struct pol_connection *conn; /* inside pol */
	const struct pol_access *access;   /* the rule that allowed it, inside pol */
	char *schema;                /* NULL = none: the requested schema */
	/* What the grant was given, for every statement's decision (decide.h):
	 * points into pol and into schema / scope_schema, which the grant keeps. */
	struct decide_scope scope;
	const char *scope_schema;    /* storage decide_scope_init needs */
	char approval[APPROVAL_ID_LEN + 1]; /* its grant approval; "" when it needed none */
	uint64_t ttl_policy;         /* seconds: the request capped by max_ttl */
	uint64_t ttl;                /* seconds given: ttl_policy capped by the session when it started */
	char *reason;                /* NULL = none */
	/* The session it belongs to, and what its token said (kept after the
	 * session ends, for the audit rows of lingering connections). */
	char session_id[GRANT_ID_LEN + 1];
	char *subject, *issuer, *groups_json;
	/* Wall clock. Pending: expires_us is when the approval expires (the
	 * grant ends then unless decided). Active: when the grant ends. */
	int64_t created_us, expires_us;
	int64_t started_us;          /* when it became active (created_us unless it waited) */
	int64_t ttl_end_us;          /* started + the TTL policy allowed, before the session's cap */
	char *dir, *socket_path;     /* named at creation; exist once opened */
	bool opened;                 /* the directory and socket were made */
	int listen_fd;
	struct loop_watch *listen_watch;
	struct loop_timer *timer;       /* expiry */
	struct loop_timer *pause_timer; /* accept paused: out of descriptors */
	const struct proto_ops *proto;
	void *proto_data;
	struct list_node conns;      /* struct grant_conn.node */
	unsigned n_conns;            /* counted ones */
	uint64_t conn_serial;        /* last connection number handed out */
	enum grant_state state;
	const char *end_reason;      /* static string once ended */
};

struct grant_request {
	uid_t uid;
	const char *user;
	const char *connection;
	uint64_t ttl;                /* seconds; 0 = policy default */
	const char *schema;          /* "" or NULL = none */
	const char *reason;          /* "" or NULL = none */
	const struct pol_access *access; /* the rule that allows it */
	const struct session *session;   /* live; the TTL never outlives it */
};

/* Remove leftover grant directories (grants never survive a restart) and
 * make sure <runtime_dir>/grants exists. */
int grants_prepare_runtime(struct agent *a, char *err, size_t errlen) WUR;

/* A new grant: active, or pending when its [access] wants approval = grant. */
int grant_create(struct agent *a, const struct grant_request *req, struct grant **out,
		 struct agent_err *err) WUR;
/* A pending grant was approved: open its socket; its TTL starts now (capped
 * by its session). On failure the grant ends ("agent-error") and err says
 * why. */
int grant_activate(struct grant *g, struct agent_err *err) WUR;
/* Pending or active grant by id. */
struct grant *grant_find(struct agent *a, const char *id);
/* Its session now lasts until session_expires_us: a grant cut short by
 * the session's old expiry runs on, up to the TTL it was granted. */
void grant_session_extended(struct grant *g, int64_t session_expires_us);
/* End a pending or active grant (no-op when already ended). reason is static. */
void grant_end(struct grant *g, const char *reason);
/* At exit: close every connection still open on an ended grant. */
void grants_close_ended(struct agent *a);
/* Reference counting for connections that outlive the grant's activity. */
struct grant *grant_ref(struct grant *g);
struct grant *grant_unref(struct grant *g);
/* Link/unlink a protocol connection. */
void grant_conn_attach(struct grant *g, struct grant_conn *c, bool counted);
void grant_conn_detach(struct grant_conn *c);
