/* login, logout, sessions, session close, session show: the caller's OIDC
 * sessions in sluiced (org.sluice.Agent1 OpenSession, CloseSession,
 * ListSessions, GetSession). */
#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/dbusc.h"
#include "ctl/token.h"

#define FIELD_WIDTH 9 /* "subject: " */

static const char *str_or(const struct dbusc_dict *d, const char *key, const char *dflt)
{
	const char *s = dbusc_dict_str(d, key);

	return s && *s ? s : dflt;
}

json_t *ctl_session_json(const struct dbusc_dict *s)
{
	static const char *const optional[] = { "end_reason", NULL };
	static const char *const required[] = {
		"id", "state", "end_reason", "user", "uid", "subject", "issuer", "groups",
		"created_at", "expires_at", "grants",
	};

	return ctl_dict_json_shaped(s, optional, required, ARRAY_SIZE(required));
}


/* "2026-11-23 10:20:39 (in 59m58s)" */
static void format_expiry(int64_t exp, int64_t now, bool with_remaining, char *buf, size_t n)
{
	char when[40], left[64];

	if (exp <= 0) {
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

/* "a,b,c" of an "as" value, or "-". */
static void join_groups(const struct dbusc_dict *s, char *buf, size_t n)
{
	const struct dbusc_value *v = dbusc_dict_get(s, "groups");
	size_t len = 0;

	snprintf(buf, n, "-");
	if (!v || v->type != DBUSC_T_STRV || v->strv.n == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < v->strv.n; i++) {
		int w = snprintf(buf + len, n - len, "%s%s", i ? "," : "", v->strv.v[i]);

		if (w < 0 || (size_t)w >= n - len)
			break; /* the table cuts it anyway */
		len += (size_t)w;
	}
}

static int print_closed(const struct ctl *ctl, const char *id)
{
	if (ctl->json)
		return ctl_emit_json(json_pack("{s:o, s:b}", "id", ctl_json_string(id), "closed", 1));
	{
		char *s = ctl_sanitize(id, true);
		printf("session %s closed\n", s ? s : "?");
		free(s);
	}
	return CTL_OK;
}

static int close_session(const struct ctl *ctl, const char *id)
{
	DBusMessage *reply = NULL;
	int r = ctl_call("CloseSession", &reply, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID);

	if (r != 0)
		return r;
	dbus_message_unref(reply);
	return print_closed(ctl, id);
}

int cmd_login(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] = "sluicectl login [--token-file FILE|-]";
	const char *file = NULL, *user = "", *id = NULL;
	const struct ctl_opt opts[] = {
		{ "token-file", true, &file, NULL },
		{ NULL, false, NULL, NULL },
	};
	size_t n_pos, len = 0;
	char *tok = NULL, err[512];
	DBusMessage *reply = NULL;
	DBusError derr;
	dbus_int64_t exp = 0;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, NULL, 0, 0, &n_pos);
	if (r >= 0)
		return r;
	file = ctl_token_path(file);
	if (!file)
		return ctl_usage_error("no token: give --token-file FILE (- for standard input) or set SLUICE_TOKEN_FILE");
	if (!*file)
		return ctl_usage_error("--token-file needs a file name");
	if (ctl_token_read(file, &tok, &len, err, sizeof(err)) < 0) {
		ctl_err("%s", err);
		return CTL_FAILED;
	}
	r = ctl_call("OpenSession", &reply, DBUS_TYPE_STRING, &user, DBUS_TYPE_STRING, &tok,
		     DBUS_TYPE_INVALID);
	secret_free(tok, len);
	if (r != 0)
		return r;
	dbus_error_init(&derr);
	if (!dbus_message_get_args(reply, &derr, DBUS_TYPE_STRING, &id, DBUS_TYPE_INT64, &exp,
				   DBUS_TYPE_INVALID)) {
		dbus_error_free(&derr);
		dbus_message_unref(reply);
		return ctl_bad_reply("OpenSession", -EBADMSG);
	}
	if (ctl->json) {
		char when[40];
		json_t *j;

		ctl_format_utc(exp, false, when, sizeof(when));
		j = json_pack("{s:o, s:s}", "id", ctl_json_string(id), "expires_at", when);
		r = ctl_emit_json(j);
	} else {
		char until[128];
		char *s = ctl_sanitize(id, true);

		format_expiry(exp, now_us(), true, until, sizeof(until));
		printf("session %s open until %s\n", s ? s : "?", until);
		free(s);
		r = CTL_OK;
	}
	dbus_message_unref(reply);
	return r;
}

/* With no ID and no $SLUICE_SESSION: the caller's only live session. With
 * more than one, which to end is not ours to guess (two jobs of the same
 * account may each hold one): the caller names it. */
static int close_own_session(const struct ctl *ctl)
{
	struct dbusc_dict_list l = { 0 };
	char *id = NULL;
	int r = ctl_list_call("ListSessions", false, &l);

	if (r != 0)
		return r;
	if (l.n == 0) {
		ctl_err("you have no session to close");
		r = CTL_FAILED;
	} else if (l.n > 1) {
		ctl_err("you have %zu sessions: name the one to close (sluicectl logout ID; "
			"sluicectl sessions lists them)", l.n);
		r = CTL_USAGE;
	} else if (!(id = strdup_or_null(dbusc_dict_str(&l.v[0], "id")))) {
		r = ctl_bad_reply("ListSessions", -EBADMSG);
	}
	dbusc_dict_list_clear(&l);
	if (id) {
		r = close_session(ctl, id);
		free(id);
	}
	return r;
}

int cmd_logout(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] = "sluicectl logout [ID]";
	const struct ctl_opt opts[] = { { NULL, false, NULL, NULL } };
	char *pos[1];
	size_t n_pos;
	const char *id;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, pos, 0, 1, &n_pos);
	if (r >= 0)
		return r;
	id = n_pos ? pos[0] : getenv("SLUICE_SESSION");
	if (n_pos && !*id)
		return ctl_usage_error("the session id is empty");
	if (!id || !*id)
		return close_own_session(ctl);
	return close_session(ctl, id);
}

static int sessions_table(const struct ctl *ctl, const struct dbusc_dict_list *l, bool all)
{
	static const char *const headers[] = { "ID", "USER", "SUBJECT", "GROUPS", "EXPIRES", "GRANTS" };
	struct table *t;
	int r = 0;

	if (l->n == 0) {
		printf(all ? "No sessions.\n" : "You have no sessions.\n");
		return CTL_OK;
	}
	t = table_new(ARRAY_SIZE(headers), headers);
	if (!t) {
		ctl_err("out of memory");
		return CTL_FAILED;
	}
	table_set_max_width(t, 2, 48, ctl->ellipsis);
	table_set_max_width(t, 3, 32, ctl->ellipsis);
	for (size_t i = 0; i < l->n && r == 0; i++) {
		const struct dbusc_dict *s = &l->v[i];
		char groups[1024], exp[40], grants[24];
		uint64_t ng;
		int64_t e;

		join_groups(s, groups, sizeof(groups));
		if (dbusc_dict_int(s, "expires_at", &e) < 0)
			e = 0;
		format_expiry(e, 0, false, exp, sizeof(exp));
		if (dbusc_dict_uint(s, "grants", &ng) == 0)
			snprintf(grants, sizeof(grants), "%" PRIu64, ng);
		else
			snprintf(grants, sizeof(grants), "-");
		{
			const char *row[] = { str_or(s, "id", "?"), str_or(s, "user", "?"),
					      str_or(s, "subject", "-"), groups, exp, grants };
			r = table_add_row(t, row);
		}
	}
	return ctl_table_done(t, r, "sessions");
}

int cmd_sessions(struct ctl *ctl, int argc, char **argv)
{
	return ctl_list_command(ctl, argc, argv, "sluicectl sessions [--all]", "ListSessions",
				ctl_session_json, sessions_table);
}

static void print_session_details(const struct dbusc_dict *s)
{
	int64_t now = now_us(), t;
	uint64_t uid, ng;
	char buf[1024], when[40];
	const char *state = str_or(s, "state", "?"), *end = str_or(s, "end_reason", NULL);
	bool active = strcmp(state, "active") == 0;

	ctl_print_field(stdout, "id", str_or(s, "id", "?"), FIELD_WIDTH);
	if (end)
		snprintf(buf, sizeof(buf), "%s (%s)", state, end);
	else
		snprintf(buf, sizeof(buf), "%s", state);
	ctl_print_field(stdout, "state", buf, FIELD_WIDTH);
	if (dbusc_dict_uint(s, "uid", &uid) == 0)
		snprintf(buf, sizeof(buf), "%s (uid %" PRIu64 ")", str_or(s, "user", "?"), uid);
	else
		snprintf(buf, sizeof(buf), "%s", str_or(s, "user", "?"));
	ctl_print_field(stdout, "user", buf, FIELD_WIDTH);
	ctl_print_field(stdout, "subject", str_or(s, "subject", "-"), FIELD_WIDTH);
	if (str_or(s, "oidc", NULL))
		snprintf(buf, sizeof(buf), "%s ([oidc %s])", str_or(s, "issuer", "-"), str_or(s, "oidc", ""));
	else
		snprintf(buf, sizeof(buf), "%s", str_or(s, "issuer", "-"));
	ctl_print_field(stdout, "issuer", buf, FIELD_WIDTH);
	join_groups(s, buf, sizeof(buf));
	ctl_print_field(stdout, "groups", buf, FIELD_WIDTH);
	if (dbusc_dict_int(s, "created_at", &t) == 0 && t > 0) {
		ctl_format_local_time(t, when, sizeof(when));
		ctl_print_field(stdout, "created", when, FIELD_WIDTH);
	}
	if (dbusc_dict_int(s, "expires_at", &t) < 0)
		t = 0;
	format_expiry(t, now, active, buf, sizeof(buf));
	ctl_print_field(stdout, active ? "expires" : "expired", buf, FIELD_WIDTH);
	if (dbusc_dict_uint(s, "grants", &ng) == 0) {
		snprintf(buf, sizeof(buf), "%" PRIu64, ng);
		ctl_print_field(stdout, "grants", buf, FIELD_WIDTH);
	}
}

static int session_show(struct ctl *ctl, int argc, char **argv)
{
	return ctl_show_command(ctl, argc, argv, "sluicectl session show ID", "GetSession",
				ctl_session_json, print_session_details);
}

static int session_close(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] = "sluicectl session close ID";
	const struct ctl_opt opts[] = { { NULL, false, NULL, NULL } };
	char *pos[1];
	size_t n_pos;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, pos, 1, 1, &n_pos);
	if (r >= 0)
		return r;
	if (!*pos[0])
		return ctl_usage_error("the session id is empty");
	return close_session(ctl, pos[0]);
}

int cmd_session(struct ctl *ctl, int argc, char **argv)
{
	if (argc < 1)
		return ctl_usage_error("'session' needs a subcommand: close or show");
	if (strcmp(argv[0], "close") == 0)
		return session_close(ctl, argc - 1, argv + 1);
	if (strcmp(argv[0], "show") == 0)
		return session_show(ctl, argc - 1, argv + 1);
	if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
		printf("Usage: sluicectl session close ID\n"
		       "       sluicectl session show ID\n");
		return CTL_OK;
	}
	return ctl_usage_error("unknown session subcommand '%s' (expected close or show)", argv[0]);
}
