/* Waiting for an approver to decide a pending grant ([access] approval =
 * grant): sluicectl exec and grant request --wait. The caller owns the
 * loop (exec also watches its token file and its signals): it polls
 * grant_wait_fd() with grant_wait_timeout_ms() and calls grant_wait_step()
 * after each wake-up. */
#pragma once
#include <stdbool.h>
#include <stdint.h>

#include "common/dbusc.h"

/* GetGrant is asked this often even without a signal: a bus may drop a
 * signal, or refuse the match. */
#define GRANT_WAIT_POLL_US (2 * 1000000LL)
/* Bound on one call while waiting. */
#define GRANT_WAIT_CALL_TIMEOUT_MS 10000

struct grant_wait {
	struct dbusc *bus;   /* GrantStateChanged for the grant, and the calls */
	char *agent_name;    /* the agent's unique bus name: signals from others are ignored */
	char *grant_id;
	char *approval_id;   /* "" when the agent named none */
	char *connection;
	int64_t next_poll;   /* monotonic µs */
	bool heard;          /* a signal named the grant: ask now */
	char end_reason[64]; /* from the signal, when it said ended */
};

enum grant_wait_result {
	GRANT_WAIT_PENDING,
	GRANT_WAIT_ACTIVE, /* *g is the active grant */
	GRANT_WAIT_ENDED,  /* why was printed (denied, approval expired, ...) */
	GRANT_WAIT_FAILED, /* the agent could not be asked: printed */
};

/* Is g (a RequestGrant or GetGrant reply) waiting for approval? */
bool grant_is_pending(const struct dbusc_dict *g);
/* "grant G on C is waiting for approval A (an approver runs: sluicectl
 * approve A)" on stderr. */
void grant_wait_announce(const struct dbusc_dict *g);
/* Start waiting for the pending grant g: a bus connection of our own with
 * a match for its GrantStateChanged. Without the match GetGrant polling
 * still works. 0, or CTL_FAILED (printed). */
int grant_wait_begin(struct grant_wait *w, const struct dbusc_dict *g) WUR;
/* The descriptor to poll for input (-1: none) and how long to sleep. */
int grant_wait_fd(const struct grant_wait *w);
int grant_wait_timeout_ms(const struct grant_wait *w);
/* Read the signals that came, ask GetGrant when one named the grant or
 * the poll interval passed. ACTIVE replaces *g with the active grant. */
enum grant_wait_result grant_wait_step(struct grant_wait *w, struct dbusc_dict *g);
void grant_wait_end(struct grant_wait *w);
