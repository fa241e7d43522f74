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
#include "agent/proto.h"

#define GRANT_ID_LEN 16

enum grant_state { GRANT_ACTIVE, GRANT_ENDED };

struct grant {
	struct agent *agent;
	struct list_node node;       /* in agent->grants while active */
	unsigned refs;               /* 1 while active + 1 per connection */
	char id[GRANT_ID_LEN + 1];
	uid_t uid;
	char *user;
	struct policy_ref *pol;
	const struct pol_connection *conn; /* inside pol */
	const struct pol_access *access;   /* the rule that allowed it, inside pol */
	char *schema;                /* NULL = none */
	char *reason;                /* NULL = none */
	/* The session it belongs to, and what its token said (kept after the
	 * session ends, for the audit rows of lingering connections). */
	char session_id[GRANT_ID_LEN + 1];
	char *subject, *issuer, *groups_json;
	int64_t created_us, expires_us; /* wall clock */
	int64_t ttl_end_us;          /* created + the TTL policy allowed, before the session's cap */
	char *dir, *socket_path;
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

int grant_create(struct agent *a, const struct grant_request *req, struct grant **out,
		 struct agent_err *err) WUR;
struct grant *grant_find(struct agent *a, const char *id);
/* Its session now lasts until session_expires_us: a grant cut short by
 * the session's old expiry runs on, up to the TTL it was granted. */
void grant_session_extended(struct grant *g, int64_t session_expires_us);
/* End an active grant (no-op when already ended). reason is static. */
void grant_end(struct grant *g, const char *reason);
/* At exit: close every connection still open on an ended grant. */
void grants_close_ended(struct agent *a);
/* Reference counting for connections that outlive the grant's activity. */
struct grant *grant_ref(struct grant *g);
struct grant *grant_unref(struct grant *g);
/* Link/unlink a protocol connection. */
void grant_conn_attach(struct grant *g, struct grant_conn *c, bool counted);
void grant_conn_detach(struct grant_conn *c);
