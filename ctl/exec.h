/* sluicectl exec, the parts shared by ctl/exec.c (the grant, the
 * command, its signals) and ctl/exec_session.c (the session: PAM, the
 * rotated token, the close). */
#pragma once
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <security/pam_appl.h>

#include "common/dbusc.h"
#include "ctl/token.h"

#define US 1000000LL
/* How often the token file is read even without a change notification
 * (inotify misses changes on some file systems and behind symlinks into
 * other directories). */
#define CHECK_INTERVAL_US (30 * US)
/* Bound on a call made while the command runs (signals wait meanwhile). */
#define LOOP_CALL_TIMEOUT_MS 10000

struct exec_ctx {
	const char *token_path; /* a file, or "-"; NULL: the session in $SLUICE_SESSION */
	bool rotate;            /* watch the token file */
	char **cmd;
	char user[256];

	char *token;            /* until the PAM stack has used it */
	size_t token_len;
	unsigned char digest[CTL_TOKEN_DIGEST_LEN];

	pam_handle_t *pam;
	int pam_status;         /* the last PAM result, for pam_end */
	bool session_open;
	bool session_ended;     /* sluiced ended it (expiry, rejected refresh) */
	char *session_id;
	int64_t expires_us;     /* wall clock; 0 = unknown */
	int64_t lifetime_us;    /* from the last open/refresh to expires_us */

	char *grant_id;

	sigset_t old_mask;
	struct sigaction old_pipe;
	int sfd;

	int ifd;                /* inotify on the token file's directory */
	int64_t settle_at;      /* mono: read the file then (0 = no change seen) */
	int64_t next_check;     /* mono: periodic read */
	int last_read_error;    /* reported once per kind */
	bool warned_stale, reported_expiry;

	pid_t child;
};

/* Messages and calls (ctl/exec_session.c). */
void exec_print_agent_error(const char *what, struct dbusc_error *err);
/* Call method on the agent on a private connection; err kept for the
 * caller to classify. 0 or a negative errno. */
int exec_agent_call(int timeout_ms, const char *method, DBusMessage **reply,
		    struct dbusc_error *err, int first_arg_type, ...) WUR;
bool exec_agent_error_is(const struct dbusc_error *err, const char *name);

/* The session (ctl/exec_session.c). */
/* auth, account, open_session with the token in x->token; the session id
 * from SLUICE_SESSION in the PAM environment. 0 or CTL_FAILED (printed). */
int exec_pam_begin(struct exec_ctx *x) WUR;
/* pam_close_session (pam_sluice closes the agent session) and pam_end. */
void exec_pam_finish(struct exec_ctx *x);
/* The session's expiry (GetSession), to know when to look at the token. */
void exec_fetch_session_expiry(struct exec_ctx *x);
/* Watch the token file's directory; 0 or a negative errno. */
int exec_watch_token(struct exec_ctx *x) WUR;
/* Read pending change notifications: read the file once things settle. */
void exec_watch_drain(struct exec_ctx *x);
void exec_watch_end(struct exec_ctx *x);
/* Read the token file; refresh the session when it changed. */
void exec_check_token(struct exec_ctx *x);
/* When to read the file next without a notification. */
void exec_schedule_check(struct exec_ctx *x);
/* One turn of a loop for the token file: drain its notifications, read it
 * when they settled or the periodic check is due. */
void exec_token_tick(struct exec_ctx *x);
