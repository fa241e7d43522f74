/* Token verification off the loop: one worker thread owns the JWKS cache
 * (common/oidc) and may block on the network; the loop hands it jobs and
 * gets each result back through an eventfd, so a slow or absent IdP never
 * stalls the data path. */
#pragma once
#include <stdint.h>
#include "agent/agent.h"

/* Jobs waiting or running at once; past this, callers are told to retry. */
#define VERIFY_QUEUE_MAX 64

enum verify_status {
	VERIFY_OK,
	VERIFY_REJECTED,    /* the token does not verify: reason says why */
	VERIFY_UNAVAILABLE, /* the issuer's keys cannot be had */
	VERIFY_CANCELLED,   /* the agent is stopping */
};

struct verify_result {
	enum verify_status status;
	char reason[512];
	char *subject, *issuer;
	char **groups;
	size_t n_groups;
	int64_t exp_s;
};

/* Called on the loop thread, once per job; the result is freed after. */
typedef void (*verify_done_cb)(struct agent *a, const struct verify_result *r, void *ud);

/* cache_dir: the agent-owned 0700 directory for JWKS copies (created). */
int verifier_start(struct agent *a, const char *cache_dir, struct verifier **out, char *err,
		   size_t errlen) WUR;
/* Cancel what is queued (callbacks get VERIFY_CANCELLED), wait for the
 * job in progress, stop the thread. NULL-safe. */
struct verifier *verifier_stop(struct verifier *v);

/* Verify token against the [oidc] section (which must stay alive until the
 * callback: hold a policy_ref). The token is copied and wiped after use.
 * -EAGAIN when VERIFY_QUEUE_MAX jobs are pending. */
int verifier_submit(struct verifier *v, struct policy_ref *pol, const struct pol_oidc *oidc,
		    const char *token, verify_done_cb done, void *ud) WUR;

/* Minimum seconds between refetches of a JWKS on an unknown kid. */
void verifier_set_refetch_interval(struct verifier *v, unsigned seconds);
