/* Approvals: a human says yes once.
 *
 * Two kinds. A grant approval ([access] approval = grant) holds a new grant
 * in state pending until an approver approves (the grant activates),
 * denies (it ends: "denied"), or approval_timeout passes (it ends:
 * "approval-expired"). A statement approval ([guardrail] approve = ...,
 * [access] approval = writes|all) is created when a statement needs one:
 * the statement is refused (or held, approval_wait) and once approved the
 * same text on the same grant runs once, within approval_window.
 *
 * Approvers are [agent] approvers (accounts, %unix-groups, @idp-groups of
 * the approver's live session); nobody decides their own request. Every
 * step is an audit event (approval.requested, .approved, .denied,
 * .expired, .used, .withdrawn) naming the approver, time and note, and the
 * bus signals ApprovalRequested / ApprovalDecided. An optional [agent]
 * approval_webhook gets a JSON POST per request from a worker thread: it
 * never delays or decides anything.
 *
 * Approvals live in memory (an agent restart ends every grant, and so
 * every approval); decided ones are kept for an hour for ListApprovals. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "agent/agent.h"
#include "common/list.h"
#include "policy/decide.h"

#define APPROVAL_ID_LEN 12
#define APPROVALS_MAX_PENDING 1024 /* per agent; more requests are refused (fail closed) */

struct grant;
struct caller;

enum approval_kind { APPROVAL_KIND_GRANT, APPROVAL_KIND_STATEMENT };
enum approval_state {
	APPR_PENDING,
	APPR_APPROVED,  /* statement: may run once until window_end_us; grant: activated */
	APPR_DENIED,
	APPR_EXPIRED,   /* no decision within approval_timeout, or an approved statement's window passed unused */
	APPR_USED,      /* the approved statement ran */
	APPR_WITHDRAWN, /* its grant ended first */
};
const char *approval_kind_name(enum approval_kind k);   /* grant | statement */
const char *approval_state_name(enum approval_state s); /* pending approved denied expired used withdrawn */

struct approval_waiter;

struct approval {
	struct list_node node;          /* agent approvals list (approval.c owns it) */
	struct agent *agent;            /* for its timer */
	char id[APPROVAL_ID_LEN + 1];
	enum approval_kind kind;
	enum approval_state state;
	char grant_id[17];
	uid_t uid;                      /* requester */
	char *user;
	char *connection;
	char *sql;                      /* statement: the exact text, NUL-terminated */
	size_t sql_len;
	char *what, *rule;              /* the verdict that asked for it */
	char *reason;                   /* grant: the request's reason ("" when none) */
	int64_t created_us, expires_us; /* pending until expires_us */
	int64_t decided_us;
	char *decided_by;               /* approver's account name */
	char *note;
	int64_t window_end_us;          /* statement approved: usable until */
	struct loop_timer *timer;
	struct list_node waiters;
};

/* Set up / tear down (agent start and stop). approval_fini withdraws
 * everything still pending and stops the webhook worker. */
int approvals_init(struct agent *a) WUR;
void approvals_fini(struct agent *a);

/* --- For the proxy ------------------------------------------------------- */

enum approval_check {
	APPROVAL_RUN,     /* an approved, unused approval of this text on this grant was
			     within its window: it is now used (recorded); run the statement */
	APPROVAL_PENDING, /* *out is pending (created now, or the one already waiting for this text) */
};
/* The statement sql[0..len) on grant g needs approval (verdict v). Returns
 * an enum approval_check, or a negative errno with err set (too many
 * pending approvals, out of memory): refuse the statement. */
int approval_for_statement(struct agent *a, struct grant *g, const char *sql, size_t len,
			   const struct verdict *v, struct approval **out, struct agent_err *err) WUR;

/* Call done(ud, state) once, on the loop, when ap is decided (approved,
 * denied), expires, is withdrawn, or timeout_us (monotonic microseconds
 * from now) passes first (then state is APPR_PENDING). The waiter is freed
 * after done returns; cancel it before the ud goes away. */
struct approval_waiter *approval_wait(struct agent *a, struct approval *ap, int64_t timeout_us,
				      void (*done)(void *ud, enum approval_state st), void *ud);
void approval_waiter_cancel(struct approval_waiter *w);

/* --- For grants (grant.c) ------------------------------------------------ */

/* A pending grant waits for a decision: creates its approval. */
int approval_for_grant(struct agent *a, struct grant *g, struct approval **out,
		       struct agent_err *err) WUR;
/* The grant ended: its pending (or approved, unused) approvals are withdrawn. */
void approvals_grant_ended(struct agent *a, const char *grant_id);

/* --- For the bus (api) ----------------------------------------------------- */

struct approval *approval_find(struct agent *a, const char *id);
/* Every approval kept (pending, and decided in the last hour), oldest
 * first: a list of struct approval.node; NULL once stopped. */
const struct list_node *approvals_head(struct agent *a);
/* Approve or deny: the caller must be an approver and not the requester;
 * the approval must be pending. note may be "". */
int approval_decide(struct agent *a, const struct caller *c, const char *id, bool approve,
		    const char *note, struct agent_err *err) WUR;
/* May the caller see ap? (its requester, approvers, admins) */
bool approval_visible(struct agent *a, const struct caller *c, const struct approval *ap);
/* Is the caller an approver? */
bool approval_is_approver(struct agent *a, const struct caller *c);
