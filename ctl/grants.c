/* grant request, grant show, grants, revoke: calls to org.sluice.Agent1. */
#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/dbusc.h"
#include "common/duration.h"
#include "ctl/grant_wait.h"

#define FIELD_WIDTH 13 /* "connections: " */

static const char *str_or(const struct dbusc_dict *g, const char *key, const char *dflt)
{
	const char *s = dbusc_dict_str(g, key);

	return s && *s ? s : dflt;
}

static bool grant_active(const struct dbusc_dict *g)
{
	const char *state = dbusc_dict_str(g, "state");

	return state && strcmp(state, "active") == 0;
}

/* "2026-11-23 09:30:39 (in 9m12s)" */
static void format_expiry(const struct dbusc_dict *g, int64_t now, bool with_remaining,
			  char *buf, size_t n)
{
	int64_t exp;
	char when[40], left[64];

	if (dbusc_dict_int(g, "expires_at", &exp) < 0 || exp <= 0) {
		snprintf(buf, n, "-");
		return;
	}
	ctl_format_local_time(exp, when, sizeof(when));
	if (!with_remaining) {
		snprintf(buf, n, "%s", when);
		return;
	}
	ctl_format_remaining(exp, now, left, sizeof(left));
	snprintf(buf, n, "%s (%s)", when, left);
}

static void print_psql(const struct dbusc_dict *g, const char *key, size_t width)
{
	const char *dir = dbusc_dict_str(g, "socket_dir"), *db = dbusc_dict_str(g, "dbname");
	const char *proto = dbusc_dict_str(g, "protocol");
	char cmd[2048];

	if (!dir || !*dir || !db || !*db || (proto && *proto && strcmp(proto, "postgres") != 0))
		return;
	/* not sanitised: that would fold blanks inside a quoted path; the
	 * command refuses control characters itself */
	if (ctl_psql_command(dir, db, cmd, sizeof(cmd)) == 0)
		ctl_print_field_raw(stdout, key, cmd, width);
}

static int print_grant_json(const struct dbusc_dict *g)
{
	return ctl_emit_json(ctl_grant_json(g));
}

/* "A1B2C3D4E5F6 approved by sluicet-b at 2026-11-23 09:20:39: looks fine";
 * the id alone when the approval cannot be read (decided an hour ago). */
static void print_approval(const struct dbusc_dict *g, size_t width)
{
	const char *id = str_or(g, "approval", NULL);
	struct dbusc_error err = { 0 };
	struct dbusc_dict ap = { 0 };
	struct dbusc *bus = NULL;
	DBusMessage *reply = NULL;
	char buf[1536], when[40];
	int64_t at;

	if (!id)
		return;
	if (grant_is_pending(g)) {
		snprintf(buf, sizeof(buf), "%s (waiting: an approver runs sluicectl approve %s)", id, id);
		ctl_print_field(stdout, "approval", buf, width);
		return;
	}
	snprintf(buf, sizeof(buf), "%s", id);
	if (dbusc_open_system(0, &bus, &err) == 0 &&
	    dbusc_call(bus, "GetApproval", &reply, &err, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID) == 0) {
		if (dbusc_reply_dict(reply, &ap) == 0 && str_or(&ap, "decided_by", NULL)) {
			if (dbusc_dict_int(&ap, "decided_at", &at) < 0 || at <= 0)
				at = 0;
			ctl_format_local_time(at, when, sizeof(when));
			snprintf(buf, sizeof(buf), "%s %s by %s%s%s%s%s", id, str_or(&ap, "state", "?"),
				 str_or(&ap, "decided_by", "?"), at ? " at " : "", at ? when : "",
				 str_or(&ap, "note", NULL) ? ": " : "", str_or(&ap, "note", ""));
		}
		dbus_message_unref(reply);
	}
	dbusc_error_clear(&err);
	dbusc_close(bus);
	dbusc_dict_clear(&ap);
	ctl_print_field(stdout, "approval", buf, width);
}

static void print_grant_details(const struct dbusc_dict *g)
{
	int64_t now = now_us(), created;
	uint64_t uid, conns;
	char buf[256], when[40];
	const char *state = str_or(g, "state", "?"), *end = str_or(g, "end_reason", NULL);
	bool active = grant_active(g);

	ctl_print_field(stdout, "id", str_or(g, "id", "?"), FIELD_WIDTH);
	if (end)
		snprintf(buf, sizeof(buf), "%s (%s)", state, end);
	else
		snprintf(buf, sizeof(buf), "%s", state);
	ctl_print_field(stdout, "state", buf, FIELD_WIDTH);
	if (dbusc_dict_uint(g, "uid", &uid) == 0)
		snprintf(buf, sizeof(buf), "%s (uid %" PRIu64 ")", str_or(g, "user", "?"), uid);
	else
		snprintf(buf, sizeof(buf), "%s", str_or(g, "user", "?"));
	ctl_print_field(stdout, "user", buf, FIELD_WIDTH);
	snprintf(buf, sizeof(buf), "%s (%s)", str_or(g, "connection", "?"),
		 str_or(g, "protocol", "?"));
	ctl_print_field(stdout, "connection", buf, FIELD_WIDTH);
	ctl_print_field(stdout, "database", str_or(g, "dbname", "-"), FIELD_WIDTH);
	ctl_print_field(stdout, "schema", str_or(g, "schema", "(any)"), FIELD_WIDTH);
	ctl_print_field(stdout, "reason", str_or(g, "reason", "-"), FIELD_WIDTH);
	print_approval(g, FIELD_WIDTH);
	if (dbusc_dict_int(g, "created_at", &created) == 0 && created > 0) {
		ctl_format_local_time(created, when, sizeof(when));
		ctl_print_field(stdout, "created", when, FIELD_WIDTH);
	}
	format_expiry(g, now, active || grant_is_pending(g), buf, sizeof(buf));
	ctl_print_field(stdout, active || grant_is_pending(g) ? "expires" : "expired", buf, FIELD_WIDTH);
	if (active) {
		ctl_print_field(stdout, "socket", str_or(g, "socket", "-"), FIELD_WIDTH);
		if (dbusc_dict_uint(g, "connections", &conns) == 0) {
			snprintf(buf, sizeof(buf), "%" PRIu64, conns);
			ctl_print_field(stdout, "connections", buf, FIELD_WIDTH);
		}
		print_psql(g, "connect", FIELD_WIDTH);
	}
}

/* grant request --wait: until an approver decides. SIGINT, SIGTERM,
 * SIGHUP or SIGQUIT withdraw the request (the pending grant is revoked). */
static int wait_decision(struct dbusc_dict *g)
{
	static const int stops[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
	struct grant_wait w;
	sigset_t set;
	int sfd, r;

	sigemptyset(&set);
	for (size_t i = 0; i < ARRAY_SIZE(stops); i++)
		sigaddset(&set, stops[i]);
	/* blocked for good: the process ends soon after, and a late signal
	 * must not kill it halfway through printing the grant */
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
	    (sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
		ctl_err("cannot set up signal handling: %s", strerror(errno));
		return CTL_FAILED;
	}
	grant_wait_announce(g);
	if ((r = grant_wait_begin(&w, g)) != 0) {
		close(sfd);
		return r;
	}
	for (;;) {
		struct pollfd fds[2] = { { sfd, POLLIN, 0 }, { grant_wait_fd(&w), POLLIN, 0 } };
		struct signalfd_siginfo si;

		if (poll(fds, fds[1].fd >= 0 ? 2 : 1, grant_wait_timeout_ms(&w)) < 0 && errno != EINTR) {
			ctl_err("poll: %s", strerror(errno));
			r = CTL_FAILED;
			break;
		}
		if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			DBusMessage *reply = NULL;
			const char *id = w.grant_id, *name = sigabbrev_np((int)si.ssi_signo);

			ctl_err("stopped by SIG%s while grant %s waited for approval: withdrawing it",
				name ? name : "?", id);
			if (ctl_call("RevokeGrant", &reply, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID) == 0)
				dbus_message_unref(reply);
			r = 128 + (int)si.ssi_signo;
			break;
		}
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
	close(sfd);
	return r;
}

static int grant_request(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] =
		"sluicectl grant request CONNECTION [--ttl DURATION] [--schema SCHEMA] [--reason TEXT]\n"
		"                               [--session ID] [--wait]";
	const char *ttl_s = NULL, *schema = "", *reason = "", *session = NULL;
	bool wait = false;
	const struct ctl_opt opts[] = {
		{ "ttl", true, &ttl_s, NULL },
		{ "schema", true, &schema, NULL },
		{ "reason", true, &reason, NULL },
		{ "session", true, &session, NULL },
		{ "wait", false, NULL, &wait },
		{ NULL, false, NULL, NULL },
	};
	char *pos[1];
	size_t n_pos;
	uint64_t ttl = 0;
	dbus_uint64_t ttl64;
	struct dbusc_dict g = { 0 };
	DBusMessage *reply = NULL;
	const char *conn;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, pos, 1, 1, &n_pos);
	if (r >= 0)
		return r;
	conn = pos[0];
	if (!*conn)
		return ctl_usage_error("the connection name is empty");
	if (ttl_s) {
		if (duration_parse(ttl_s, &ttl) < 0)
			return ctl_usage_error("--ttl '%s' is not a duration (like 90s, 15m, 1h30m)", ttl_s);
		if (ttl == 0)
			return ctl_usage_error("--ttl must be at least 1s (leave it out for the policy's default)");
	}
	if (strlen(reason) > 1024)
		return ctl_usage_error("--reason is longer than 1024 bytes");
	/* The session the grant hangs off: --session, else the one `exec`
	 * or the caller exported, else "" (the agent takes the caller's
	 * newest live session). */
	if (session && !*session)
		return ctl_usage_error("--session needs a session id");
	if (!session)
		session = getenv("SLUICE_SESSION");
	if (!session)
		session = "";

	ttl64 = ttl;
	r = ctl_call("RequestGrant", &reply, DBUS_TYPE_STRING, &conn, DBUS_TYPE_UINT64,
		     &ttl64, DBUS_TYPE_STRING, &schema, DBUS_TYPE_STRING, &reason,
		     DBUS_TYPE_STRING, &session, DBUS_TYPE_INVALID);
	if (r != 0)
		return r;
	r = dbusc_reply_dict(reply, &g);
	dbus_message_unref(reply);
	if (r < 0)
		return ctl_bad_reply("RequestGrant", r);
	if (wait && grant_is_pending(&g) && (r = wait_decision(&g)) != 0) {
		dbusc_dict_clear(&g);
		return r;
	}

	if (ctl->json) {
		r = print_grant_json(&g);
	} else if (grant_is_pending(&g)) {
		char *id = ctl_sanitize(str_or(&g, "id", "?"), true);
		char *ap = ctl_sanitize(str_or(&g, "approval", "?"), true);

		printf("grant %s pending: waiting for approval %s (an approver runs: sluicectl approve %s)\n",
		       id ? id : "?", ap ? ap : "?", ap ? ap : "?");
		free(id);
		free(ap);
		r = CTL_OK;
	} else {
		char exp[128];
		char *id = ctl_sanitize(str_or(&g, "id", "?"), true);
		char *state = ctl_sanitize(str_or(&g, "state", "?"), true);

		format_expiry(&g, now_us(), true, exp, sizeof(exp));
		printf("grant %s %s until %s\n", id ? id : "?", state ? state : "?", exp);
		free(id);
		free(state);
		ctl_print_field(stdout, "socket", str_or(&g, "socket", "-"), 9);
		print_psql(&g, "connect", 9);
		r = CTL_OK;
	}
	dbusc_dict_clear(&g);
	return r;
}

static int grant_show(struct ctl *ctl, int argc, char **argv)
{
	return ctl_show_command(ctl, argc, argv, "sluicectl grant show ID", "GetGrant",
				ctl_grant_json, print_grant_details);
}

int cmd_grant(struct ctl *ctl, int argc, char **argv)
{
	if (argc < 1)
		return ctl_usage_error("'grant' needs a subcommand: request or show");
	if (strcmp(argv[0], "request") == 0)
		return grant_request(ctl, argc - 1, argv + 1);
	if (strcmp(argv[0], "show") == 0)
		return grant_show(ctl, argc - 1, argv + 1);
	if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
		printf("Usage: sluicectl grant request CONNECTION [--ttl DURATION] [--schema SCHEMA] [--reason TEXT]\n"
		       "                               [--session ID] [--wait]\n"
		       "       sluicectl grant show ID\n");
		return CTL_OK;
	}
	return ctl_usage_error("unknown grant subcommand '%s' (expected request or show)", argv[0]);
}

static int grants_table(const struct ctl *ctl, const struct dbusc_dict_list *l, bool all)
{
	static const char *const headers[] = { "ID", "USER", "CONNECTION", "SCHEMA", "STATE",
					       "EXPIRES", "REMAINING", "CONNS" };
	struct table *t;
	int64_t now = now_us();
	int r = 0;

	if (l->n == 0) {
		printf(all ? "No grants.\n" : "You have no grants.\n");
		return CTL_OK;
	}
	t = table_new(ARRAY_SIZE(headers), headers);
	if (!t) {
		ctl_err("out of memory");
		return CTL_FAILED;
	}
	table_set_max_width(t, 3, 24, ctl->ellipsis);
	for (size_t i = 0; i < l->n && r == 0; i++) {
		const struct dbusc_dict *g = &l->v[i];
		char state[64], exp[40], left[64], conns[24];
		const char *end = str_or(g, "end_reason", NULL);
		uint64_t nconn;
		int64_t e;

		if (end)
			snprintf(state, sizeof(state), "%s (%s)", str_or(g, "state", "?"), end);
		else if (grant_is_pending(g))
			snprintf(state, sizeof(state), "pending (approval %s)", str_or(g, "approval", "?"));
		else
			snprintf(state, sizeof(state), "%s", str_or(g, "state", "?"));
		format_expiry(g, now, false, exp, sizeof(exp));
		if (grant_active(g) && dbusc_dict_int(g, "expires_at", &e) == 0)
			ctl_format_remaining(e, now, left, sizeof(left));
		else
			snprintf(left, sizeof(left), "-");
		if (dbusc_dict_uint(g, "connections", &nconn) == 0)
			snprintf(conns, sizeof(conns), "%" PRIu64, nconn);
		else
			snprintf(conns, sizeof(conns), "-");
		{
			const char *row[] = { str_or(g, "id", "?"),      str_or(g, "user", "?"),
					      str_or(g, "connection", "?"), str_or(g, "schema", "-"),
					      state, exp, left, conns };
			r = table_add_row(t, row);
		}
	}
	return ctl_table_done(t, r, "grants");
}

int cmd_grants(struct ctl *ctl, int argc, char **argv)
{
	return ctl_list_command(ctl, argc, argv, "sluicectl grants [--all]", "ListGrants",
				ctl_grant_json, grants_table);
}

int cmd_revoke(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] = "sluicectl revoke ID";
	const struct ctl_opt opts[] = { { NULL, false, NULL, NULL } };
	char *pos[1];
	size_t n_pos;
	DBusMessage *reply = NULL;
	const char *id;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, pos, 1, 1, &n_pos);
	if (r >= 0)
		return r;
	id = pos[0];
	r = ctl_call("RevokeGrant", &reply, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID);
	if (r != 0)
		return r;
	dbus_message_unref(reply);
	if (ctl->json) {
		json_t *j = json_pack("{s:s, s:b}", "id", id, "revoked", 1);
		r = ctl_print_json(j, stdout);
		json_decref(j);
		if (r < 0) {
			ctl_err("cannot write JSON");
			return CTL_FAILED;
		}
	} else {
		char *s = ctl_sanitize(id, true);
		printf("grant %s revoked\n", s ? s : "?");
		free(s);
	}
	return CTL_OK;
}
