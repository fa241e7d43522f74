/* sluicectl exec: run a command inside a sluice session and grant.
 *
 *   PAM "sluice" (auth, account, open_session: pam_sluice opens the agent
 *   session and sets SLUICE_SESSION) -> RequestGrant on that session ->
 *   (a pending grant: wait for an approver's decision) ->
 *   fork + exec CMD with SLUICE_SESSION, SLUICE_GRANT, PGHOST, PGPORT,
 *   PGDATABASE -> forward signals, refresh the session when the token file
 *   is rotated -> CMD exits -> RevokeGrant, pam_close_session (closes the
 *   agent session), pam_end -> exit with CMD's status.
 *
 * Nothing is written to standard output: it belongs to CMD (an MCP server
 * speaks its protocol there). The token is never printed; it is wiped as
 * soon as PAM holds it. */
#include "config.h"
#include "ctl/ctl.h"
#include "ctl/exec.h"
#include "ctl/grant_wait.h"

#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/duration.h"

static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static const char *signal_name(int sig)
{
	const char *s = sigabbrev_np(sig);

	return s ? s : "?";
}

/* Undo whatever was opened: the grant, the PAM session (pam_sluice closes
 * the agent session), the PAM handle. Quiet about what already ended. */
static void finish(struct exec_ctx *x)
{
	if (x->grant_id && !x->session_ended) {
		struct dbusc_error err = { 0 };
		DBusMessage *reply = NULL;
		const char *id = x->grant_id;

		if (exec_agent_call(LOOP_CALL_TIMEOUT_MS, "RevokeGrant", &reply, &err, DBUS_TYPE_STRING, &id,
				    DBUS_TYPE_INVALID) == 0)
			dbus_message_unref(reply);
		else if (!exec_agent_error_is(&err, "NotFound"))
			exec_print_agent_error("cannot revoke the grant", &err);
		dbusc_error_clear(&err);
	}
	free(x->grant_id);
	x->grant_id = NULL;
	exec_pam_finish(x);
	free(x->session_id);
	x->session_id = NULL;
}

/* ---- the grant and CMD's environment ---- */

static int request_grant(struct exec_ctx *x, const char *conn, uint64_t ttl, const char *schema,
			 const char *reason, struct dbusc_dict *g)
{
	DBusMessage *reply = NULL;
	dbus_uint64_t ttl64 = ttl;
	const char *sid = x->session_id, *id;
	int r;

	r = ctl_call("RequestGrant", &reply, DBUS_TYPE_STRING, &conn, DBUS_TYPE_UINT64, &ttl64,
		     DBUS_TYPE_STRING, &schema, DBUS_TYPE_STRING, &reason, DBUS_TYPE_STRING, &sid,
		     DBUS_TYPE_INVALID);
	if (r != 0)
		return r;
	r = dbusc_reply_dict(reply, g);
	dbus_message_unref(reply);
	if (r < 0)
		return ctl_bad_reply("RequestGrant", r);
	id = dbusc_dict_str(g, "id");
	if (!id || !*id || !(x->grant_id = strdup(id)))
		return ctl_bad_reply("RequestGrant", id ? -ENOMEM : -EBADMSG);
	return 0;
}

static bool env_is(const char *entry, const char *name)
{
	size_t n = strlen(name);

	return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* Set by exec, or able to send a libpq client somewhere else than the
 * grant's socket (PGHOSTADDR wins over PGHOST; a service file names its
 * own host). */
static const char *const replaced[] = { "SLUICE_SESSION", "SLUICE_GRANT", "PGHOST", "PGPORT",
					"PGDATABASE", "PGHOSTADDR", "PGSERVICE", NULL };

static bool env_replaced(const char *entry, char **pam_env)
{
	for (const char *const *r = replaced; *r; r++)
		if (env_is(entry, *r))
			return true;
	for (char **p = pam_env; p && *p; p++) {
		const char *eq = strchr(*p, '=');

		if (eq && strncmp(entry, *p, (size_t)(eq - *p) + 1) == 0)
			return true;
	}
	return false;
}

static char *env_pair(const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 2;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s=%s", name, value);
	return s;
}

/* ".../.s.PGSQL.5432" -> "5432" */
static void socket_port(const char *socket, char *buf, size_t n)
{
	const char *p = socket ? strstr(socket, ".s.PGSQL.") : NULL;
	uint64_t port;

	snprintf(buf, n, "5432");
	if (p && parse_u64(p + 9, 1, 65535, &port) == 0)
		snprintf(buf, n, "%u", (unsigned)port);
}

/* environ without what exec sets, then the PAM environment, then ours.
 * ours[] (malloc'd) is filled for the caller to free. */
static char **build_env(const struct exec_ctx *x, const struct dbusc_dict *g, char **pam_env,
			char *ours[6])
{
	size_t n = 0, cap = 6 + 1, k = 0;
	const char *proto = dbusc_dict_str(g, "protocol");
	const char *dir = dbusc_dict_str(g, "socket_dir"), *db = dbusc_dict_str(g, "dbname");
	char port[8];
	char **env;

	for (char **e = environ; *e; e++)
		cap++;
	for (char **p = pam_env; p && *p; p++)
		cap++;
	env = calloc(cap, sizeof(*env));
	if (!env)
		return NULL;
	for (char **e = environ; *e; e++)
		if (!env_replaced(*e, pam_env))
			env[n++] = *e;
	for (char **p = pam_env; p && *p; p++)
		if (!env_replaced(*p, NULL) && strchr(*p, '='))
			env[n++] = *p;
	ours[k++] = env_pair("SLUICE_SESSION", x->session_id);
	ours[k++] = env_pair("SLUICE_GRANT", x->grant_id);
	if ((!proto || strcmp(proto, "postgres") == 0) && dir && *dir) {
		socket_port(dbusc_dict_str(g, "socket"), port, sizeof(port));
		ours[k++] = env_pair("PGHOST", dir);
		ours[k++] = env_pair("PGPORT", port);
		if (db && *db)
			ours[k++] = env_pair("PGDATABASE", db);
	}
	for (size_t i = 0; i < k; i++) {
		if (!ours[i]) {
			free(env);
			return NULL;
		}
		env[n++] = ours[i];
	}
	env[n] = NULL;
	return env;
}

/* ---- signals ---- */

static int signals_block(struct exec_ctx *x)
{
	sigset_t set;

	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(forwarded); i++)
		sigaddset(&set, forwarded[i]);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, &x->old_mask) < 0)
		return -errno;
	/* libdbus may ignore SIGPIPE in this process; CMD gets the
	 * disposition exec was started with. */
	if (sigaction(SIGPIPE, NULL, &x->old_pipe) < 0)
		return -errno;
	x->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return x->sfd < 0 ? -errno : 0;
}

/* A terminating signal that arrived before CMD started: its number, or 0. */
static int pending_termination(struct exec_ctx *x)
{
	struct signalfd_siginfo si;
	int sig = 0;

	while (read(x->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		if (si.ssi_signo != SIGCHLD && !sig)
			sig = (int)si.ssi_signo;
	return sig;
}

/* ---- running CMD ---- */

/* -1: no limit. with_expiry: wake up to report the session's expiry. */
static int poll_timeout_ms(const struct exec_ctx *x, bool with_expiry)
{
	int64_t now = mono_us(), wall = now_us(), until = INT64_MAX;

	if (x->settle_at)
		until = MIN(until, x->settle_at);
	if (x->rotate)
		until = MIN(until, x->next_check);
	if (with_expiry && !x->session_ended && x->expires_us > 0 && !x->reported_expiry)
		until = MIN(until, now + MAX(0, x->expires_us - wall));
	if (until == INT64_MAX)
		return -1;
	if (until <= now)
		return 0;
	return (int)MIN((until - now + 999) / 1000, 3600 * 1000);
}

/* Forward a signal sent to exec. One the terminal sent (SI_KERNEL) went to
 * the whole foreground process group, CMD included: not again. */
static void on_signal(struct exec_ctx *x, const struct signalfd_siginfo *si, bool *exited,
		      int *status)
{
	if (si->ssi_signo == SIGCHLD) {
		pid_t p;

		while ((p = waitpid(x->child, status, WNOHANG)) < 0 && errno == EINTR)
			;
		if (p == x->child)
			*exited = true;
		return;
	}
	if (si->ssi_code == SI_KERNEL)
		return;
	kill(x->child, (int)si->ssi_signo);
}

static int run_child(struct exec_ctx *x, char **envp)
{
	int status = 0;
	bool exited = false;

	fflush(NULL);
	x->child = fork();
	if (x->child < 0) {
		ctl_err("cannot start %s: %s", x->cmd[0], strerror(errno));
		return CTL_FAILED;
	}
	if (x->child == 0) {
		int e;

		sigaction(SIGPIPE, &x->old_pipe, NULL);
		sigprocmask(SIG_SETMASK, &x->old_mask, NULL);
		execvpe(x->cmd[0], x->cmd, envp);
		e = errno;
		dprintf(STDERR_FILENO, "sluicectl: cannot run %s: %s\n", x->cmd[0], strerror(e));
		_exit(e == ENOENT ? 127 : 126);
	}
	if (x->rotate)
		exec_schedule_check(x);
	while (!exited) {
		struct pollfd fds[2] = { { x->sfd, POLLIN, 0 }, { x->ifd, POLLIN, 0 } };
		struct signalfd_siginfo si;

		if (poll(fds, x->ifd >= 0 ? 2 : 1, poll_timeout_ms(x, true)) < 0 && errno != EINTR) {
			ctl_err("poll: %s", strerror(errno));
			break;
		}
		while (read(x->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
			on_signal(x, &si, &exited, &status);
		if (exited)
			break;
		exec_token_tick(x);
		if (!x->session_ended && !x->reported_expiry && x->expires_us > 0 &&
		    now_us() >= x->expires_us) {
			char when[40];

			ctl_format_local_time(x->expires_us, when, sizeof(when));
			ctl_err("the session %s expired at %s: its grant has ended and %s's connections fail",
				x->session_id, when, x->cmd[0]);
			x->reported_expiry = true;
		}
	}
	if (!exited) {
		/* poll broke: wait for CMD all the same */
		while (waitpid(x->child, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WIFEXITED(status) ? WEXITSTATUS(status) : CTL_FAILED;
}

/* ---- a grant that waits for approval ---- */

/* Until an approver decides ([access] approval = grant): the grant's
 * signal and GetGrant, the token file (the session must outlive the
 * wait), and exec's signals, which end the wait (finish() then revokes
 * the pending grant). *g becomes the active grant. */
static int wait_for_approval(struct exec_ctx *x, struct dbusc_dict *g)
{
	struct grant_wait w;
	int sig, r;

	grant_wait_announce(g);
	if ((r = grant_wait_begin(&w, g)) != 0)
		return r;
	if (x->rotate)
		exec_schedule_check(x);
	for (;;) {
		struct pollfd fds[3];
		nfds_t n = 0;
		int t = poll_timeout_ms(x, false), tw = grant_wait_timeout_ms(&w), fd;

		fds[n++] = (struct pollfd){ x->sfd, POLLIN, 0 };
		if (x->ifd >= 0)
			fds[n++] = (struct pollfd){ x->ifd, POLLIN, 0 };
		if ((fd = grant_wait_fd(&w)) >= 0)
			fds[n++] = (struct pollfd){ fd, POLLIN, 0 };
		if (poll(fds, n, t < 0 ? tw : MIN(t, tw)) < 0 && errno != EINTR) {
			ctl_err("poll: %s", strerror(errno));
			r = CTL_FAILED;
			break;
		}
		if ((sig = pending_termination(x))) {
			ctl_err("stopped by SIG%s while grant %s waited for approval", signal_name(sig),
				x->grant_id);
			r = 128 + sig;
			break;
		}
		exec_token_tick(x);
		switch (grant_wait_step(&w, g)) {
		case GRANT_WAIT_PENDING:
			continue;
		case GRANT_WAIT_ACTIVE:
			r = 0;
			break;
		case GRANT_WAIT_ENDED:
		case GRANT_WAIT_FAILED:
			r = CTL_FAILED;
			break;
		}
		break;
	}
	grant_wait_end(&w);
	return r;
}

/* ---- the command ---- */

static const char usage[] =
	"sluicectl exec [--token-file FILE|-] --connection CONNECTION [--ttl DURATION]\n"
	"                      [--schema SCHEMA] [--reason TEXT] -- COMMAND [ARG...]";

static int exec_prepare(struct exec_ctx *x, const char *conn, uint64_t ttl, const char *schema,
			const char *reason)
{
	struct dbusc_dict g = { 0 };
	char *ours[6] = { 0 };
	char **pam_env = NULL, **envp = NULL, err[512];
	int sig, r;

	if (x->token_path) {
		if (ctl_token_read(x->token_path, &x->token, &x->token_len, err, sizeof(err)) < 0) {
			ctl_err("%s", err);
			return CTL_FAILED;
		}
		ctl_token_digest(x->token, x->token_len, x->digest);
		r = exec_pam_begin(x);
		/* only the auth step asks for it (the conversation) */
		secret_free(x->token, x->token_len);
		x->token = NULL;
		if (r != 0)
			goto out;
	}
	if ((sig = pending_termination(x))) {
		ctl_err("stopped by SIG%s before %s started", signal_name(sig), x->cmd[0]);
		r = 128 + sig;
		goto out;
	}
	r = request_grant(x, conn, ttl, schema, reason, &g);
	if (r != 0)
		goto out;
	exec_fetch_session_expiry(x);
	if (x->rotate && (r = exec_watch_token(x)) < 0)
		ctl_err("cannot watch %s for a rotated token (%s): reading it every %llds instead",
			x->token_path, strerror(-r), CHECK_INTERVAL_US / US);
	if (grant_is_pending(&g) && (r = wait_for_approval(x, &g)) != 0)
		goto out;
	pam_env = x->pam ? pam_getenvlist(x->pam) : NULL;
	envp = build_env(x, &g, pam_env, ours);
	if (!envp) {
		ctl_err("out of memory");
		r = CTL_FAILED;
		goto out;
	}
	if ((sig = pending_termination(x))) {
		ctl_err("stopped by SIG%s before %s started", signal_name(sig), x->cmd[0]);
		r = 128 + sig;
		goto out;
	}
	r = run_child(x, envp);
out:
	free(envp);
	for (size_t i = 0; i < ARRAY_SIZE(ours); i++)
		free(ours[i]);
	for (char **p = pam_env; p && *p; p++)
		free(*p);
	free(pam_env);
	dbusc_dict_clear(&g);
	return r;
}

int cmd_exec(struct ctl *ctl, int argc, char **argv)
{
	const char *file = NULL, *conn = NULL, *ttl_s = NULL, *schema = "", *reason = "";
	const struct ctl_opt opts[] = {
		{ "token-file", true, &file, NULL },
		{ "connection", true, &conn, NULL },
		{ "ttl", true, &ttl_s, NULL },
		{ "schema", true, &schema, NULL },
		{ "reason", true, &reason, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct exec_ctx x = { .sfd = -1, .ifd = -1, .child = -1 };
	struct passwd *pw;
	char *pos[1];
	size_t n_pos;
	uint64_t ttl = 0;
	int dashdash, r;

	/* Options end at "--"; everything after it is the command, as is. */
	for (dashdash = 0; dashdash < argc && strcmp(argv[dashdash], "--") != 0; dashdash++)
		;
	r = ctl_command_args(ctl, usage, dashdash, argv, opts, pos, 0, 1, &n_pos);
	if (r >= 0)
		return r;
	if (n_pos > 0 || dashdash + 1 >= argc)
		return ctl_usage_error("put the command after --, as in: sluicectl exec --connection C -- psql");
	if (!conn || !*conn)
		return ctl_usage_error("exec needs --connection CONNECTION");
	if (ttl_s) {
		if (duration_parse(ttl_s, &ttl) < 0)
			return ctl_usage_error("--ttl '%s' is not a duration (like 90s, 15m, 1h30m)", ttl_s);
		if (ttl == 0)
			return ctl_usage_error("--ttl must be at least 1s (leave it out for the policy's default)");
	}
	if (strlen(reason) > 1024)
		return ctl_usage_error("--reason is longer than 1024 bytes");
	x.token_path = ctl_token_path(file);
	if (x.token_path && !*x.token_path)
		return ctl_usage_error("--token-file needs a file name");
	if (x.token_path) {
		x.rotate = strcmp(x.token_path, "-") != 0;
	} else {
		/* No token: a session someone else opened (systemd's PAMName=
		 * puts SLUICE_SESSION into the service's environment). exec
		 * then only requests and revokes the grant; the session is
		 * not its to close. */
		const char *sid = getenv("SLUICE_SESSION");

		if (!sid || !*sid)
			return ctl_usage_error("no token: give --token-file FILE (- for standard input), "
					       "set SLUICE_TOKEN_FILE, or run in a session (SLUICE_SESSION)");
		if (!name_is_safe(sid, 128))
			return ctl_usage_error("SLUICE_SESSION is not a session id");
		x.session_id = strdup(sid);
		if (!x.session_id) {
			ctl_err("out of memory");
			return CTL_FAILED;
		}
	}
	x.cmd = argv + dashdash + 1;

	errno = 0;
	pw = getpwuid(getuid());
	if (!pw || !pw->pw_name || strlen(pw->pw_name) >= sizeof(x.user)) {
		ctl_err("uid %u has no account name: PAM needs one", (unsigned)getuid());
		free(x.session_id);
		return CTL_FAILED;
	}
	snprintf(x.user, sizeof(x.user), "%s", pw->pw_name);

	if ((r = signals_block(&x)) < 0) {
		ctl_err("cannot set up signal handling: %s", strerror(-r));
		if (x.sfd >= 0)
			close(x.sfd);
		free(x.session_id);
		return CTL_FAILED;
	}
	r = exec_prepare(&x, conn, ttl, schema, reason);
	exec_watch_end(&x);
	finish(&x);
	/* The mask stays: a signal still queued must not kill exec now. */
	close(x.sfd);
	return r;
}
