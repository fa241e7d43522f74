/* status and reload: sluiced's own state. */
#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/dbusc.h"
#include "common/duration.h"

#define FIELD_WIDTH 13

static const char *str_or(const struct dbusc_dict *d, const char *key, const char *dflt)
{
	const char *s = dbusc_dict_str(d, key);

	return s && *s ? s : dflt;
}

/* The agent says "ok", or why the audit fails (possibly already starting
 * with "failing: "): the reason alone, for our own wording. */
static const char *audit_problem(const char *audit)
{
	if (!audit)
		return "not reported";
	if (strcmp(audit, "ok") == 0)
		return NULL;
	if (strncmp(audit, "failing: ", 9) == 0 && audit[9])
		return audit + 9;
	return *audit ? audit : "not reported";
}

static void print_status(const struct dbusc_dict *s, int64_t now)
{
	uint64_t pid, grants, conns, queued;
	int64_t started;
	char buf[512], up[64], since[40];

	if (dbusc_dict_uint(s, "pid", &pid) == 0)
		snprintf(buf, sizeof(buf), "%s (pid %" PRIu64 ")", str_or(s, "version", "?"), pid);
	else
		snprintf(buf, sizeof(buf), "%s", str_or(s, "version", "?"));
	ctl_print_field(stdout, "sluiced", buf, FIELD_WIDTH);
	if (dbusc_dict_int(s, "started_at", &started) == 0 && started > 0) {
		duration_format(now > started ? (uint64_t)((now - started) / 1000000) : 0, up,
				sizeof(up));
		ctl_format_local_time(started, since, sizeof(since));
		snprintf(buf, sizeof(buf), "%s (since %s)", up, since);
		ctl_print_field(stdout, "uptime", buf, FIELD_WIDTH);
	}
	ctl_print_field(stdout, "config", str_or(s, "config", "-"), FIELD_WIDTH);
	ctl_print_field(stdout, "runtime dir", str_or(s, "runtime_dir", "-"), FIELD_WIDTH);
	ctl_print_field(stdout, "database", str_or(s, "database", "-"), FIELD_WIDTH);
	if (dbusc_dict_uint(s, "grants", &grants) == 0 && dbusc_dict_uint(s, "connections", &conns) == 0) {
		snprintf(buf, sizeof(buf), "%" PRIu64 " active, %" PRIu64 " client connection%s", grants,
			 conns, conns == 1 ? "" : "s");
		ctl_print_field(stdout, "grants", buf, FIELD_WIDTH);
	}
	{
		const char *problem = audit_problem(dbusc_dict_str(s, "audit"));

		if (dbusc_dict_uint(s, "audit_queued", &queued) == 0)
			snprintf(buf, sizeof(buf), "%s%s, %" PRIu64 " record%s queued",
				 problem ? "FAILING: " : "", problem ? problem : "ok", queued,
				 queued == 1 ? "" : "s");
		else
			snprintf(buf, sizeof(buf), "%s%s", problem ? "FAILING: " : "",
				 problem ? problem : "ok");
		ctl_print_field(stdout, "audit", buf, FIELD_WIDTH);
	}
}

int cmd_status(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] = "sluicectl status";
	const struct ctl_opt opts[] = { { NULL, false, NULL, NULL } };
	size_t n_pos;
	struct dbusc_dict s = { 0 };
	DBusMessage *reply = NULL;
	const char *problem;
	int64_t now;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, NULL, 0, 0, &n_pos);
	if (r >= 0)
		return r;
	r = ctl_call("GetStatus", &reply, DBUS_TYPE_INVALID);
	if (r != 0)
		return r;
	r = dbusc_reply_dict(reply, &s);
	dbus_message_unref(reply);
	if (r < 0)
		return ctl_bad_reply("GetStatus", r);

	now = now_us();
	if (ctl->json) {
		json_t *j = ctl_status_json(&s, now);
		r = ctl_print_json(j, stdout);
		json_decref(j);
		if (r < 0) {
			ctl_err("cannot write the status as JSON");
			dbusc_dict_clear(&s);
			return CTL_FAILED;
		}
	} else {
		print_status(&s, now);
	}
	/* A failing audit means sluiced refuses every statement: not healthy. */
	problem = audit_problem(dbusc_dict_str(&s, "audit"));
	r = CTL_OK;
	if (problem) {
		char *why = ctl_sanitize(problem, true);
		ctl_err("the audit database is failing: %s; sluiced refuses new statements",
			why ? why : "?");
		free(why);
		r = CTL_FAILED;
	}
	dbusc_dict_clear(&s);
	return r;
}

int cmd_reload(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] = "sluicectl reload";
	const struct ctl_opt opts[] = { { NULL, false, NULL, NULL } };
	size_t n_pos;
	DBusMessage *reply = NULL;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, NULL, 0, 0, &n_pos);
	if (r >= 0)
		return r;
	r = ctl_call("Reload", &reply, DBUS_TYPE_INVALID);
	if (r != 0)
		return r;
	dbus_message_unref(reply);
	if (ctl->json) {
		json_t *j = json_pack("{s:b}", "reloaded", 1);
		r = ctl_print_json(j, stdout);
		json_decref(j);
		if (r < 0) {
			ctl_err("cannot write JSON");
			return CTL_FAILED;
		}
	} else {
		printf("sluiced reloaded its configuration\n");
	}
	return CTL_OK;
}
