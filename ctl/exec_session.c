/* sluicectl exec: the session. Opened by the "sluice" PAM stack
 * (pam_sluice verifies the token through the agent and opens the agent
 * session), kept alive by refreshing it when the token file is rotated,
 * closed by pam_close_session. */
#include "config.h"
#include "ctl/ctl.h"
#include "ctl/exec.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

/* Closer to the session's end the file is read more often. */
#define CHECK_MIN_US (1 * US)
/* Changes are read once the directory has been quiet this long, so a
 * writer that creates, then writes, is read after it is done. */
#define SETTLE_US (200 * 1000LL)

/* ---- messages ---- */

void exec_print_agent_error(const char *what, struct dbusc_error *err)
{
	char *m = ctl_sanitize(err->message ? err->message : "D-Bus call failed", false);

	if (what)
		ctl_err("%s: %s", what, m ? m : "D-Bus call failed");
	else
		ctl_err("%s", m ? m : "D-Bus call failed");
	free(m);
}

/* ---- calls to sluiced, keeping the error for the caller to classify ---- */

int exec_agent_call(int timeout_ms, const char *method, DBusMessage **reply,
		    struct dbusc_error *err, int first_arg_type, ...)
{
	struct dbusc *bus = NULL;
	va_list args;
	int r = dbusc_open_system(timeout_ms, &bus, err);

	if (r < 0)
		return r;
	va_start(args, first_arg_type);
	r = dbusc_call_valist(bus, method, reply, err, first_arg_type, args);
	va_end(args);
	dbusc_close(bus);
	return r;
}

bool exec_agent_error_is(const struct dbusc_error *err, const char *name)
{
	const char *n = dbusc_error_agent_name(err);

	return n && strcmp(n, name) == 0;
}

/* ---- PAM ---- */

/* Non-interactive: a hidden prompt (a module asking for the token) gets the
 * token, a visible one cannot be answered, messages go to stderr. */
static int conversation(int n, const struct pam_message **msg, struct pam_response **resp,
			void *data)
{
	struct exec_ctx *x = data;
	struct pam_response *out;

	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	out = calloc((size_t)n, sizeof(*out));
	if (!out)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			if (!x->token || !(out[i].resp = strdup(x->token)))
				goto fail;
			break;
		case PAM_ERROR_MSG:
		case PAM_TEXT_INFO: {
			char *m = ctl_sanitize(msg[i]->msg ? msg[i]->msg : "", false);

			ctl_err("%s", m ? m : "(a PAM message)");
			free(m);
			break;
		}
		default: /* PAM_PROMPT_ECHO_ON and anything else: nobody to ask */
			goto fail;
		}
	}
	*resp = out;
	return PAM_SUCCESS;
fail:
	for (int i = 0; i < n; i++)
		secret_free_str(out[i].resp);
	free(out);
	return PAM_CONV_ERR;
}

static int pam_failed(struct exec_ctx *x, const char *step, int r)
{
	x->pam_status = r;
	ctl_err("PAM service \"" SLUICE_PAM_SERVICE "\" %s %s: %s", step, x->user, pam_strerror(x->pam, r));
	return CTL_FAILED;
}

/* pam_sluice tells syslog why, not us: ask the agent what it thinks of
 * the token, to print its reason ("token rejected: expired at ..."). */
static void explain_rejection(struct exec_ctx *x)
{
	struct dbusc_error err = { 0 };
	DBusMessage *reply = NULL;
	const char *user = "", *tok = x->token;

	if (!tok)
		return;
	if (exec_agent_call(LOOP_CALL_TIMEOUT_MS, "Authenticate", &reply, &err, DBUS_TYPE_STRING, &user,
			    DBUS_TYPE_STRING, &tok, DBUS_TYPE_INVALID) == 0)
		dbus_message_unref(reply); /* the token is fine: PAM refused for its own reasons */
	else
		exec_print_agent_error("sluiced", &err);
	dbusc_error_clear(&err);
}

/* auth, account, open_session; SLUICE_SESSION from the PAM environment. */
int exec_pam_begin(struct exec_ctx *x)
{
	struct pam_conv conv = { conversation, x };
	const char *sid;
	int r;

	r = pam_start(SLUICE_PAM_SERVICE, x->user, &conv, &x->pam);
	if (r != PAM_SUCCESS) {
		ctl_err("cannot start PAM for service \"" SLUICE_PAM_SERVICE "\": %s", pam_strerror(x->pam, r));
		x->pam = NULL;
		return CTL_FAILED;
	}
	x->pam_status = PAM_SUCCESS;
	/* Linux-PAM keeps PAM_AUTHTOK for modules (PAM_BAD_ITEM from an
	 * application); there pam_sluice asks through the conversation, which
	 * answers with the whole token (no 512-byte cap here). Other PAM
	 * implementations take it, for use_first_pass. */
	r = pam_set_item(x->pam, PAM_AUTHTOK, x->token);
	if (r != PAM_SUCCESS && r != PAM_BAD_ITEM)
		return pam_failed(x, "could not take the token for", r);
	r = pam_authenticate(x->pam, PAM_DISALLOW_NULL_AUTHTOK);
	if (r != PAM_SUCCESS) {
		pam_failed(x, "refused authentication of", r);
		explain_rejection(x);
		return CTL_FAILED;
	}
	r = pam_acct_mgmt(x->pam, PAM_DISALLOW_NULL_AUTHTOK);
	if (r != PAM_SUCCESS)
		return pam_failed(x, "refused the account", r);
	r = pam_open_session(x->pam, 0);
	if (r != PAM_SUCCESS)
		return pam_failed(x, "could not open a session for", r);
	x->session_open = true;
	sid = pam_getenv(x->pam, "SLUICE_SESSION");
	if (!sid || !*sid) {
		ctl_err("the sluice PAM stack opened no session (is pam_sluice.so in /etc/pam.d/" SLUICE_PAM_SERVICE "?)");
		return CTL_FAILED;
	}
	if (!name_is_safe(sid, 128)) {
		ctl_err("the sluice PAM stack set SLUICE_SESSION to something that is not a session id");
		return CTL_FAILED;
	}
	x->session_id = strdup(sid);
	if (!x->session_id) {
		ctl_err("out of memory");
		return CTL_FAILED;
	}
	return 0;
}

/* pam_close_session (pam_sluice closes the agent session) and pam_end;
 * quiet about a session the agent already ended. */
void exec_pam_finish(struct exec_ctx *x)
{
	if (x->pam) {
		if (x->session_open) {
			int r = pam_close_session(x->pam, 0);

			if (r != PAM_SUCCESS && !x->session_ended)
				ctl_err("PAM service \"" SLUICE_PAM_SERVICE "\" could not close the session of %s: %s",
					x->user, pam_strerror(x->pam, r));
			x->session_open = false;
		}
		pam_end(x->pam, x->pam_status);
		x->pam = NULL;
	}
}

/* The session's expiry, to know when to look for a rotated token. */
void exec_fetch_session_expiry(struct exec_ctx *x)
{
	struct dbusc_error err = { 0 };
	struct dbusc_dict s = { 0 };
	DBusMessage *reply = NULL;
	const char *sid = x->session_id;
	int64_t exp;

	if (exec_agent_call(LOOP_CALL_TIMEOUT_MS, "GetSession", &reply, &err, DBUS_TYPE_STRING, &sid,
			    DBUS_TYPE_INVALID) < 0) {
		dbusc_error_clear(&err); /* the periodic check still runs */
		return;
	}
	if (dbusc_reply_dict(reply, &s) == 0 && dbusc_dict_int(&s, "expires_at", &exp) == 0 && exp > 0) {
		x->expires_us = exp;
		x->lifetime_us = exp - now_us();
	}
	dbusc_dict_clear(&s);
	dbus_message_unref(reply);
}

/* ---- the token file ---- */

int exec_watch_token(struct exec_ctx *x)
{
	char dir[4096];
	const char *slash = strrchr(x->token_path, '/');

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == x->token_path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - x->token_path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - x->token_path), x->token_path);
	else
		return -ENAMETOOLONG;
	x->ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (x->ifd < 0)
		return -errno;
	/* Kubernetes swaps a ..data symlink (IN_MOVED_TO), CI jobs rewrite the
	 * file (IN_CLOSE_WRITE) or replace it (IN_CREATE, IN_MOVED_TO). */
	if (inotify_add_watch(x->ifd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
		int r = -errno;

		close(x->ifd);
		x->ifd = -1;
		return r;
	}
	return 0;
}

void exec_watch_drain(struct exec_ctx *x)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool any = false;

	while (read(x->ifd, buf, sizeof(buf)) > 0)
		any = true; /* any name: the file, or a ..data link above it */
	if (any)
		x->settle_at = mono_us() + SETTLE_US;
}

void exec_watch_end(struct exec_ctx *x)
{
	if (x->ifd >= 0)
		close(x->ifd);
	x->ifd = -1;
	x->rotate = false;
	x->settle_at = 0;
}

/* The file holds something that is not a token: the rotation failed. A
 * token that does not verify ends the session in the agent; this one never
 * reaches it, so exec ends the session the same way. */
static void rotation_garbage(struct exec_ctx *x, const char *why)
{
	struct dbusc_error err = { 0 };
	DBusMessage *reply = NULL;
	const char *sid = x->session_id;

	if (exec_agent_call(LOOP_CALL_TIMEOUT_MS, "CloseSession", &reply, &err, DBUS_TYPE_STRING, &sid,
			    DBUS_TYPE_INVALID) == 0)
		dbus_message_unref(reply);
	dbusc_error_clear(&err);
	ctl_err("%s: the session %s is closed and the grant has ended; %s keeps running but its "
		"connections fail", why, x->session_id, x->cmd[0]);
	x->session_ended = true;
	exec_watch_end(x);
}

static void refresh_session(struct exec_ctx *x, const char *tok, const unsigned char *digest)
{
	struct dbusc_error err = { 0 };
	DBusMessage *reply = NULL;
	DBusError derr;
	const char *sid = x->session_id;
	dbus_int64_t exp = 0;

	if (exec_agent_call(LOOP_CALL_TIMEOUT_MS, "RefreshSession", &reply, &err, DBUS_TYPE_STRING, &sid,
			    DBUS_TYPE_STRING, &tok, DBUS_TYPE_INVALID) < 0) {
		if (exec_agent_error_is(&err, "TokenRejected") || exec_agent_error_is(&err, "NotFound")) {
			char *m = ctl_sanitize(err.message ? err.message : "rejected", false);

			ctl_err("the rotated token in %s did not refresh the session: %s; sluiced ended the "
				"session %s and its grant: %s keeps running but its connections fail",
				x->token_path, m ? m : "rejected", x->session_id, x->cmd[0]);
			free(m);
			x->session_ended = true;
			exec_watch_end(x);
		} else {
			/* The agent may be restarting or the IdP unreachable: keep the
			 * old digest so the next check tries again. */
			exec_print_agent_error("cannot refresh the session with the rotated token (will retry)", &err);
		}
		dbusc_error_clear(&err);
		return;
	}
	dbus_error_init(&derr);
	if (dbus_message_get_args(reply, &derr, DBUS_TYPE_INT64, &exp, DBUS_TYPE_INVALID) && exp > 0) {
		x->expires_us = exp;
		x->lifetime_us = exp - now_us();
	}
	dbus_error_free(&derr);
	dbus_message_unref(reply);
	memcpy(x->digest, digest, CTL_TOKEN_DIGEST_LEN);
	x->warned_stale = false;
	x->reported_expiry = false;
}

void exec_check_token(struct exec_ctx *x)
{
	unsigned char digest[CTL_TOKEN_DIGEST_LEN];
	char *tok = NULL, err[512];
	size_t len = 0;
	int64_t now = now_us();
	int r = ctl_token_read(x->token_path, &tok, &len, err, sizeof(err));

	if (r == -EINVAL || r == -EFBIG) {
		rotation_garbage(x, err);
		return;
	}
	if (r == -ENODATA)
		return; /* a writer between truncating and writing: read again later */
	if (r < 0) {
		if (r != x->last_read_error)
			ctl_err("%s (the session ends when its token expires unless the file comes back)", err);
		x->last_read_error = r;
		return;
	}
	x->last_read_error = 0;
	ctl_token_digest(tok, len, digest);
	if (memcmp(digest, x->digest, sizeof(digest)) != 0) {
		refresh_session(x, tok, digest);
	} else if (x->expires_us > 0 && !x->warned_stale &&
		   x->expires_us - now <= MIN(60 * US, x->lifetime_us / 4)) {
		char when[40];

		ctl_format_local_time(x->expires_us, when, sizeof(when));
		ctl_err("the token in %s has not been rotated: the session ends at %s", x->token_path, when);
		x->warned_stale = true;
	}
	secret_free(tok, len);
}

void exec_token_tick(struct exec_ctx *x)
{
	int64_t now;

	if (x->ifd >= 0)
		exec_watch_drain(x);
	now = mono_us();
	if (x->rotate && ((x->settle_at && now >= x->settle_at) || now >= x->next_check)) {
		x->settle_at = 0;
		exec_check_token(x);
		exec_schedule_check(x);
	}
}

void exec_schedule_check(struct exec_ctx *x)
{
	int64_t left = x->expires_us > 0 ? x->expires_us - now_us() : CHECK_INTERVAL_US * 4;

	x->next_check = mono_us() + MAX(CHECK_MIN_US, MIN(CHECK_INTERVAL_US, left / 4));
}
