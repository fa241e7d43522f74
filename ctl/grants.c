/* grant request, grant show, grants, revoke: calls to org.sluice.Agent1. */
#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/dbusc.h"
#include "common/duration.h"

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
	json_t *j = ctl_grant_json(g);
	int r = ctl_print_json(j, stdout);

	json_decref(j);
	if (r < 0) {
		ctl_err("cannot write the grant as JSON");
		return CTL_FAILED;
	}
	return CTL_OK;
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
	if (dbusc_dict_int(g, "created_at", &created) == 0 && created > 0) {
		ctl_format_local_time(created, when, sizeof(when));
		ctl_print_field(stdout, "created", when, FIELD_WIDTH);
	}
	format_expiry(g, now, active, buf, sizeof(buf));
	ctl_print_field(stdout, active ? "expires" : "expired", buf, FIELD_WIDTH);
	if (active) {
		ctl_print_field(stdout, "socket", str_or(g, "socket", "-"), FIELD_WIDTH);
		if (dbusc_dict_uint(g, "connections", &conns) == 0) {
			snprintf(buf, sizeof(buf), "%" PRIu64, conns);
			ctl_print_field(stdout, "connections", buf, FIELD_WIDTH);
		}
		print_psql(g, "connect", FIELD_WIDTH);
	}
}

static int grant_request(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] =
		"sluicectl grant request CONNECTION [--ttl DURATION] [--schema SCHEMA] [--reason TEXT]\n"
		"                               [--session ID]";
	const char *ttl_s = NULL, *schema = "", *reason = "", *session = NULL;
	const struct ctl_opt opts[] = {
		{ "ttl", true, &ttl_s, NULL },
		{ "schema", true, &schema, NULL },
		{ "reason", true, &reason, NULL },
		{ "session", true, &session, NULL },
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

	if (ctl->json) {
		r = print_grant_json(&g);
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
	static const char usage[] = "sluicectl grant show ID";
	const struct ctl_opt opts[] = { { NULL, false, NULL, NULL } };
	char *pos[1];
	size_t n_pos;
	struct dbusc_dict g = { 0 };
	DBusMessage *reply = NULL;
	const char *id;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, pos, 1, 1, &n_pos);
	if (r >= 0)
		return r;
	id = pos[0];
	r = ctl_call("GetGrant", &reply, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID);
	if (r != 0)
		return r;
	r = dbusc_reply_dict(reply, &g);
	dbus_message_unref(reply);
	if (r < 0)
		return ctl_bad_reply("GetGrant", r);
	if (ctl->json) {
		r = print_grant_json(&g);
	} else {
		print_grant_details(&g);
		r = CTL_OK;
	}
	dbusc_dict_clear(&g);
	return r;
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
		       "                               [--session ID]\n"
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
	if (r == 0)
		r = table_flush(t, stdout);
	t = table_free(t);
	if (r < 0) {
		ctl_err("cannot print the grants: %s", strerror(-r));
		return CTL_FAILED;
	}
	return CTL_OK;
}

int cmd_grants(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] = "sluicectl grants [--all]";
	bool all = false;
	const struct ctl_opt opts[] = {
		{ "all", false, NULL, &all },
		{ NULL, false, NULL, NULL },
	};
	size_t n_pos;
	struct dbusc_dict_list l = { 0 };
	DBusMessage *reply = NULL;
	dbus_bool_t all_arg;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, NULL, 0, 0, &n_pos);
	if (r >= 0)
		return r;
	all_arg = all;
	r = ctl_call("ListGrants", &reply, DBUS_TYPE_BOOLEAN, &all_arg,
		     DBUS_TYPE_INVALID);
	if (r != 0)
		return r;
	r = dbusc_reply_dict_list(reply, &l);
	dbus_message_unref(reply);
	if (r < 0)
		return ctl_bad_reply("ListGrants", r);
	if (ctl->json) {
		json_t *a = json_array();

		r = a ? 0 : -ENOMEM;
		for (size_t i = 0; i < l.n && r == 0; i++)
			if (json_array_append_new(a, ctl_grant_json(&l.v[i])) < 0)
				r = -ENOMEM;
		if (r == 0)
			r = ctl_print_json(a, stdout);
		json_decref(a);
		if (r < 0) {
			ctl_err("cannot write the grants as JSON");
			r = CTL_FAILED;
		} else {
			r = CTL_OK;
		}
	} else {
		r = grants_table(ctl, &l, all);
	}
	dbusc_dict_list_clear(&l);
	return r;
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
