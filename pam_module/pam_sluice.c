/* pam_sluice.so: hands a service account's OIDC token to sluiced and opens
 * and closes the agent session. Thin on purpose: the agent verifies tokens
 * and decides; the module finds the token, makes one D-Bus call per step on
 * a private connection, maps the answer to a PAM code and fails closed.
 *
 * Module data kept in the PAM handle between steps:
 *   pam_sluice_token   the token auth verified, for open_session (Linux-PAM
 *                      clears PAM_AUTHTOK when pam_authenticate returns);
 *                      wiped when replaced, after the session opens, and at
 *                      pam_end.
 *   pam_sluice_session the id of the session open_session opened, for
 *                      close_session (which falls back to SLUICE_SESSION in
 *                      the PAM environment).
 * Nothing here logs a token: only pam_syslog lines naming the user, the
 * session id and the agent's reason. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>

#include "pam_module/agent_call.h"
#include "pam_module/args.h"
#include "pam_module/token_file.h"

#define PUBLIC __attribute__((visibility("default")))

#define DATA_TOKEN "pam_sluice_token"
#define DATA_SESSION "pam_sluice_session"
#define ENV_SESSION "SLUICE_SESSION"
#define TOKEN_PROMPT "OIDC token: "
/* Bytes of an agent message put in a log line. */
#define REASON_MAX 400

struct ctx {
	pam_handle_t *pamh;
	struct pam_sluice_args args;
	const char *user;
};

/* The log line for the agent's reason (see pam_sluice_log_text). */
static void reason_of(const struct dbusc_error *err, char *buf, size_t size)
{
	pam_sluice_log_text(err && err->message ? err->message : "unknown error", buf, size);
}

static bool user_ok(const char *user)
{
	size_t n = user ? strlen(user) : 0;

	if (n == 0 || n > PAM_SLUICE_USER_MAX || !dbus_validate_utf8(user, NULL))
		return false;
	return !pam_sluice_has_control(user);
}

/* Parse the arguments and find PAM_USER. Returns PAM_SUCCESS or the code
 * the step returns as it is. */
static int setup(pam_handle_t *pamh, int argc, const char **argv, bool may_prompt,
		 struct ctx *c)
{
	const char *bad = NULL, *user = NULL;
	int r;

	c->pamh = pamh;
	if (pam_sluice_args_parse(argc, argv, &c->args, &bad) < 0) {
		pam_syslog(pamh, LOG_ERR, "unknown or malformed option \"%s\": failing closed", bad);
		return PAM_SERVICE_ERR;
	}
	if (may_prompt)
		r = pam_get_user(pamh, &user, NULL);
	else
		r = pam_get_item(pamh, PAM_USER, (const void **)&user);
	if (r != PAM_SUCCESS) {
		pam_syslog(pamh, LOG_ERR, "cannot determine the user: %s", pam_strerror(pamh, r));
		return r == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_USER_UNKNOWN;
	}
	if (!user_ok(user)) {
		pam_syslog(pamh, LOG_NOTICE, "refusing an empty, over-long or malformed user name");
		return PAM_USER_UNKNOWN;
	}
	c->user = user;
	return PAM_SUCCESS;
}

static void cleanup_secret(pam_handle_t *pamh, void *data, int error_status)
{
	secret_free_str(data);
}

static void cleanup_free(pam_handle_t *pamh, void *data, int error_status)
{
	free(data);
}

/* Copy a token we were handed (PAM_AUTHTOK, the stash); over the cap is
 * refused before it goes anywhere. Returns 0, -EFBIG or -ENOMEM. */
static int token_copy(const char *src, char **out)
{
	size_t n = strnlen(src, PAM_SLUICE_TOKEN_MAX + 1);
	char *t;

	if (n > PAM_SLUICE_TOKEN_MAX)
		return -EFBIG;
	t = malloc(n + 1);
	if (!t)
		return -ENOMEM;
	memcpy(t, src, n);
	t[n] = '\0';
	*out = t;
	return 0;
}

/* The token from token_file=. Returns 0 and *out, or -errno (logged). */
static int token_from_file(struct ctx *c, char **out)
{
	const struct passwd *pw = pam_modutil_getpwnam(c->pamh, c->user);
	_cleanup_free_ char *path = NULL;
	const char *why = NULL;
	int r;

	r = pam_sluice_expand_path(c->args.token_file, c->user, &path);
	if (r < 0) {
		pam_syslog(c->pamh, LOG_ERR, "token_file=%s: cannot expand for user %s: %s",
			   c->args.token_file, c->user, strerror(-r));
		return r;
	}
	/* A user NSS does not know matches no owner but root and ourselves. */
	r = pam_sluice_token_file_read(path, pw ? pw->pw_uid : (uid_t)-1, out, &why);
	if (r < 0) {
		pam_syslog(c->pamh, LOG_ERR, "token file %s for user %s refused: %s", path, c->user,
			   why);
		return r;
	}
	if (c->args.debug)
		pam_syslog(c->pamh, LOG_DEBUG, "token for user %s read from %s", c->user, path);
	return 0;
}

/* PAM_AUTHTOK when set: 1 and *out, 0 when unset, -errno when unusable. */
static int token_from_authtok(struct ctx *c, char **out)
{
	const void *item = NULL;
	int r;

	if (pam_get_item(c->pamh, PAM_AUTHTOK, &item) != PAM_SUCCESS || !item ||
	    !*(const char *)item)
		return 0;
	r = token_copy(item, out);
	if (r < 0) {
		pam_syslog(c->pamh, LOG_ERR, "PAM_AUTHTOK for user %s refused: %s", c->user,
			   r == -EFBIG ? "larger than 16 KiB" : strerror(-r));
		return r;
	}
	if (c->args.debug)
		pam_syslog(c->pamh, LOG_DEBUG, "token for user %s taken from PAM_AUTHTOK", c->user);
	return 1;
}

/* The conversation: the last resort, since many applications cap an answer
 * at PAM_MAX_RESP_SIZE (512) bytes and most JWTs are longer. The answer
 * becomes PAM_AUTHTOK for the modules stacked after us. */
static int token_from_conversation(struct ctx *c, char **out)
{
	char *resp = NULL;
	int r;

	r = pam_prompt(c->pamh, PAM_PROMPT_ECHO_OFF, &resp, "%s", TOKEN_PROMPT);
	if (r != PAM_SUCCESS) {
		secret_free_str(resp);
		pam_syslog(c->pamh, LOG_ERR, "no token for user %s: conversation failed: %s",
			   c->user, pam_strerror(c->pamh, r));
		return r == PAM_CONV_AGAIN ? PAM_INCOMPLETE : PAM_CONV_ERR;
	}
	if (!resp || !*resp) {
		secret_free_str(resp);
		pam_syslog(c->pamh, LOG_NOTICE, "no token for user %s: empty answer", c->user);
		return PAM_CRED_INSUFFICIENT;
	}
	if (strnlen(resp, PAM_SLUICE_TOKEN_MAX + 1) > PAM_SLUICE_TOKEN_MAX) {
		secret_free_str(resp);
		pam_syslog(c->pamh, LOG_NOTICE, "token for user %s refused: larger than 16 KiB",
			   c->user);
		return PAM_AUTH_ERR;
	}
	r = pam_set_item(c->pamh, PAM_AUTHTOK, resp);
	if (r != PAM_SUCCESS) {
		secret_free_str(resp);
		pam_syslog(c->pamh, LOG_ERR, "cannot set PAM_AUTHTOK: %s", pam_strerror(c->pamh, r));
		return PAM_SYSTEM_ERR;
	}
	if (c->args.debug)
		pam_syslog(c->pamh, LOG_DEBUG, "token for user %s read from the conversation", c->user);
	*out = resp;
	return PAM_SUCCESS;
}

/* The auth step's token, by the order pam_sluice(8) gives. */
static int auth_token(struct ctx *c, char **out)
{
	int r;

	if (c->args.use_first_pass || c->args.try_first_pass) {
		r = token_from_authtok(c, out);
		if (r > 0)
			return PAM_SUCCESS;
		if (r < 0)
			return PAM_AUTH_ERR;
		if (c->args.use_first_pass) {
			pam_syslog(c->pamh, LOG_NOTICE,
				   "no token for user %s: use_first_pass and PAM_AUTHTOK is not set",
				   c->user);
			return PAM_CRED_INSUFFICIENT;
		}
	}
	if (c->args.token_file)
		return token_from_file(c, out) < 0 ? PAM_CRED_INSUFFICIENT : PAM_SUCCESS;
	return token_from_conversation(c, out);
}

/* Log a failed call and return its PAM code. */
static int call_failed(struct ctx *c, enum pam_sluice_step step, const char *what,
		       const struct dbusc_error *err)
{
	char reason[REASON_MAX];
	int code = pam_sluice_pam_code(step, err);

	reason_of(err, reason, sizeof(reason));
	if (code == PAM_SUCCESS)
		pam_syslog(c->pamh, LOG_WARNING, "%s for user %s: %s", what, c->user, reason);
	else
		pam_syslog(c->pamh, dbusc_error_agent_name(err) ? LOG_NOTICE : LOG_ERR,
			   "%s for user %s: %s", what, c->user, reason);
	return code;
}

PUBLIC int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct ctx c = { 0 };
	struct dbusc_error err = { 0 };
	struct dbusc_dict identity = { 0 };
	DBusMessage *reply = NULL;
	char *token = NULL;
	const char *who;
	int r;

	r = setup(pamh, argc, argv, true, &c);
	if (r != PAM_SUCCESS)
		return r;
	r = auth_token(&c, &token);
	if (r != PAM_SUCCESS)
		goto out;
	if (!dbus_validate_utf8(token, NULL)) {
		pam_syslog(pamh, LOG_NOTICE, "token for user %s refused: not UTF-8 text", c.user);
		r = PAM_AUTH_ERR;
		goto out;
	}
	if (pam_sluice_agent_call(c.args.timeout_s, "Authenticate", &reply, &err, DBUS_TYPE_STRING,
				  &c.user, DBUS_TYPE_STRING, &token, DBUS_TYPE_INVALID) < 0) {
		r = call_failed(&c, PAM_SLUICE_AUTH, "authentication failed", &err);
		goto out;
	}
	/* The agent answers for the user we named; anything else is a reply
	 * we do not understand, and that is no success. */
	if (dbusc_reply_dict(reply, &identity) < 0 || !(who = dbusc_dict_str(&identity, "user")) ||
	    strcmp(who, c.user) != 0) {
		pam_syslog(pamh, LOG_ERR,
			   "authentication failed for user %s: unexpected reply from sluiced",
			   c.user);
		r = PAM_AUTHINFO_UNAVAIL;
		goto out;
	}
	if (c.args.debug) {
		const char *sub = dbusc_dict_str(&identity, "subject");
		const char *iss = dbusc_dict_str(&identity, "issuer");

		pam_syslog(pamh, LOG_DEBUG, "user %s authenticated as subject %s of %s", c.user,
			   sub ? sub : "?", iss ? iss : "?");
	}
	/* Keep the verified token for open_session; the handle owns it now
	 * and wipes it. */
	r = pam_set_data(pamh, DATA_TOKEN, token, cleanup_secret);
	if (r != PAM_SUCCESS) {
		pam_syslog(pamh, LOG_ERR, "cannot keep the token for the session: %s",
			   pam_strerror(pamh, r));
		r = PAM_SYSTEM_ERR;
		goto out;
	}
	token = NULL;
	r = PAM_SUCCESS;
out:
	secret_free_str(token);
	if (reply)
		dbus_message_unref(reply);
	dbusc_dict_clear(&identity);
	dbusc_error_clear(&err);
	return r;
}

PUBLIC int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	/* The session is the credential, and open_session makes it. */
	return PAM_SUCCESS;
}

PUBLIC int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct ctx c = { 0 };
	struct dbusc_error err = { 0 };
	DBusMessage *reply = NULL;
	int r;

	r = setup(pamh, argc, argv, false, &c);
	if (r != PAM_SUCCESS)
		return r;
	if (pam_sluice_agent_call(c.args.timeout_s, "CheckAccount", &reply, &err, DBUS_TYPE_STRING,
				  &c.user, DBUS_TYPE_INVALID) < 0) {
		r = call_failed(&c, PAM_SLUICE_ACCOUNT, "account refused", &err);
		dbusc_error_clear(&err);
		return r;
	}
	dbus_message_unref(reply);
	if (c.args.debug)
		pam_syslog(pamh, LOG_DEBUG, "account %s: binding holds", c.user);
	return PAM_SUCCESS;
}

/* CloseSession(id), logged. Returns the PAM code of the close. */
static int close_session_id(struct ctx *c, const char *id)
{
	struct dbusc_error err = { 0 };
	DBusMessage *reply = NULL;
	char what[64 + PAM_SLUICE_SESSION_ID_MAX];
	int r;

	if (pam_sluice_agent_call(c->args.timeout_s, "CloseSession", &reply, &err,
				  DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID) < 0) {
		snprintf(what, sizeof(what), "closing session %s", id);
		r = call_failed(c, PAM_SLUICE_CLOSE, what, &err);
		dbusc_error_clear(&err);
		return r;
	}
	dbus_message_unref(reply);
	pam_syslog(c->pamh, LOG_INFO, "session %s closed for user %s", id, c->user);
	return PAM_SUCCESS;
}

/* The open_session token: the one auth verified, else PAM_AUTHTOK, else
 * token_file=. Never the conversation: a session step must not prompt. */
static int session_token(struct ctx *c, char **out)
{
	const void *stash = NULL;
	int r;

	if (pam_get_data(c->pamh, DATA_TOKEN, &stash) == PAM_SUCCESS && stash) {
		if (token_copy(stash, out) < 0)
			return -ENOMEM;
		if (c->args.debug)
			pam_syslog(c->pamh, LOG_DEBUG, "session token for user %s: the one auth verified",
				   c->user);
		return 0;
	}
	r = token_from_authtok(c, out);
	if (r != 0)
		return r > 0 ? 0 : r;
	if (c->args.token_file)
		return token_from_file(c, out);
	pam_syslog(c->pamh, LOG_ERR,
		   "no token for the session of user %s: no auth step of pam_sluice ran in this "
		   "handle, PAM_AUTHTOK is not set and there is no token_file=",
		   c->user);
	return -ENOENT;
}

PUBLIC int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct ctx c = { 0 };
	struct dbusc_error err = { 0 };
	DBusMessage *reply = NULL;
	DBusError de;
	const void *previous = NULL;
	const char *id = NULL;
	dbus_int64_t expires_at = 0;
	char *token = NULL, *env = NULL, *kept = NULL;
	char when[32];
	int r;

	r = setup(pamh, argc, argv, false, &c);
	if (r != PAM_SUCCESS)
		return r;
	if (session_token(&c, &token) < 0)
		return PAM_SESSION_ERR;
	if (!dbus_validate_utf8(token, NULL)) {
		secret_free_str(token);
		pam_syslog(pamh, LOG_NOTICE, "token for user %s refused: not UTF-8 text", c.user);
		return PAM_AUTH_ERR;
	}
	r = pam_sluice_agent_call(c.args.timeout_s, "OpenSession", &reply, &err, DBUS_TYPE_STRING,
				  &c.user, DBUS_TYPE_STRING, &token, DBUS_TYPE_INVALID);
	secret_free_str(token);
	if (r < 0) {
		r = call_failed(&c, PAM_SLUICE_OPEN, "session refused", &err);
		dbusc_error_clear(&err);
		return r;
	}
	dbus_error_init(&de);
	if (!dbus_message_get_args(reply, &de, DBUS_TYPE_STRING, &id, DBUS_TYPE_INT64, &expires_at,
				   DBUS_TYPE_INVALID) ||
	    !pam_sluice_session_id_ok(id)) {
		dbus_error_free(&de);
		dbus_message_unref(reply);
		pam_syslog(pamh, LOG_ERR, "session for user %s: unexpected reply from sluiced",
			   c.user);
		return PAM_SESSION_ERR;
	}
	/* A second open_session in one handle: the first session would be
	 * left to its expiry with whatever grants hang off it. */
	if (pam_get_data(pamh, DATA_SESSION, &previous) == PAM_SUCCESS && previous)
		(void)close_session_id(&c, previous);
	if (asprintf(&env, ENV_SESSION "=%s", id) < 0)
		env = NULL;
	kept = strdup(id);
	r = env && kept ? pam_putenv(pamh, env) : PAM_BUF_ERR;
	if (r == PAM_SUCCESS) {
		r = pam_set_data(pamh, DATA_SESSION, kept, cleanup_free);
		if (r == PAM_SUCCESS)
			kept = NULL;
	}
	if (r != PAM_SUCCESS) {
		pam_syslog(pamh, LOG_ERR, "session %s for user %s: cannot record it (%s); closing it",
			   id, c.user, pam_strerror(pamh, r));
		(void)close_session_id(&c, id);
		(void)pam_putenv(pamh, ENV_SESSION);
		r = PAM_SESSION_ERR;
	} else {
		format_rfc3339(expires_at, when, sizeof(when));
		pam_syslog(pamh, LOG_INFO, "session %s opened for user %s, until %s", id, c.user,
			   when);
		/* The token has done its work: do not keep it for the life of
		 * the handle (the old data's cleanup wipes it). */
		(void)pam_set_data(pamh, DATA_TOKEN, NULL, NULL);
	}
	free(env);
	free(kept);
	dbus_message_unref(reply);
	return r;
}

PUBLIC int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct ctx c = { 0 };
	const void *data = NULL;
	const char *id = NULL;
	int r;

	r = setup(pamh, argc, argv, false, &c);
	if (r != PAM_SUCCESS)
		return r;
	if (pam_get_data(pamh, DATA_SESSION, &data) == PAM_SUCCESS && data)
		id = data;
	else
		id = pam_getenv(pamh, ENV_SESSION);
	if (!id || !*id) {
		if (c.args.debug)
			pam_syslog(pamh, LOG_DEBUG, "no sluice session to close for user %s", c.user);
		return PAM_SUCCESS;
	}
	if (!pam_sluice_session_id_ok(id)) {
		pam_syslog(pamh, LOG_ERR, "malformed " ENV_SESSION " for user %s: not closing",
			   c.user);
		return PAM_SESSION_ERR;
	}
	r = close_session_id(&c, id);
	if (r == PAM_SUCCESS) {
		/* Order: the env entry may be the only copy of the id; the
		 * data's cleanup frees the other. */
		(void)pam_putenv(pamh, ENV_SESSION);
		(void)pam_set_data(pamh, DATA_SESSION, NULL, NULL);
	}
	return r;
}

PUBLIC int pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	/* Tokens come from the IdP; there is nothing to change here. */
	return PAM_IGNORE;
}
