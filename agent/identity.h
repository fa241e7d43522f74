/* The identity methods (Authenticate, OpenSession, RefreshSession,
 * CheckAccount): who may act for which account, the [identity] binding,
 * and what a verified token turns into. Verification itself runs on the
 * verifier thread; the answer comes back through a callback on the loop. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "agent/agent.h"
#include "agent/api.h"

/* Tokens longer than this are refused before anything looks at them. */
#define IDENT_TOKEN_MAX 16384

enum ident_op { IDENT_AUTHENTICATE, IDENT_OPEN, IDENT_REFRESH };

struct session;

struct ident_reply {
	bool ok;
	struct agent_err err;          /* when !ok */
	/* when ok: */
	uid_t uid;
	const char *user;
	const char *subject, *issuer, *oidc;
	const char *const *groups;
	size_t n_groups;
	int64_t expires_us;            /* the token's exp, capped by max_session */
	struct session *session;       /* IDENT_OPEN, IDENT_REFRESH */
};

typedef void (*ident_cb)(struct agent *a, const struct ident_reply *r, void *ud);

/* Start op for the caller. target is the account ("" = the caller's own)
 * for IDENT_AUTHENTICATE / IDENT_OPEN, the session id for IDENT_REFRESH.
 * Returns 0 when the verification is under way (cb is called exactly
 * once, later), or a negative errno with err filled (cb is never called). */
int ident_start(struct agent *a, const struct caller *c, enum ident_op op, const char *target,
		const char *token, ident_cb cb, void *ud, struct agent_err *err) WUR;

/* CheckAccount: the account's binding still holds (and, when it has live
 * sessions, they are for the bound subject). */
int ident_check_account(struct agent *a, const struct caller *c, const char *user,
			struct agent_err *err) WUR;
