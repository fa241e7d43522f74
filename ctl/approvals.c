/* approvals, approve, deny: the approver's side of org.sluice.Agent1
 * (ListApprovals, GetApproval, Approve, Deny). The agent decides who may
 * see and decide what; its refusals are printed as they are. */
#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "common/dbusc.h"
#include "common/duration.h"

#define NOTE_MAX 1024 /* bytes of --note */

static const char *str_or(const struct dbusc_dict *d, const char *key, const char *dflt)
{
	const char *s = dbusc_dict_str(d, key);

	return s && *s ? s : dflt;
}

static int64_t int_or_0(const struct dbusc_dict *d, const char *key)
{
	int64_t v;

	return dbusc_dict_int(d, key, &v) == 0 ? v : 0;
}

static bool is(const struct dbusc_dict *d, const char *key, const char *value)
{
	const char *s = dbusc_dict_str(d, key);

	return s && strcmp(s, value) == 0;
}

/* An approval as JSON: every key of org.sluice.Agent1.xml, times in RFC
 * 3339 (null when 0), empty optional strings null. */
static json_t *approval_json(const struct dbusc_dict *ap)
{
	static const char *const optional[] = { "sql", "rule", "reason", "decided_by", "note", NULL };
	static const char *const required[] = {
		"id", "kind", "state", "grant", "user", "uid", "connection", "sql", "what", "rule",
		"reason", "created_at", "expires_at", "decided_at", "decided_by", "note", "window_ends_at",
	};

	return ctl_dict_json_shaped(ap, optional, required, ARRAY_SIZE(required));
}


/* ---- sluicectl approvals ---- */

/* "3m5s" since created_at */
static void format_age(const struct dbusc_dict *ap, int64_t now, char *buf, size_t n)
{
	int64_t created = int_or_0(ap, "created_at");

	if (created <= 0) {
		snprintf(buf, n, "-");
		return;
	}
	duration_format(now > created ? (uint64_t)((now - created) / 1000000) : 0, buf, n);
}

/* Pending: when the request lapses. Approved statement: until when it may
 * run ("window in 4m"). Otherwise nothing. */
static void format_expires(const struct dbusc_dict *ap, int64_t now, char *buf, size_t n)
{
	int64_t exp = int_or_0(ap, "expires_at"), window = int_or_0(ap, "window_ends_at");
	char left[64];

	if (is(ap, "state", "pending") && exp > 0) {
		ctl_format_remaining(exp, now, buf, n);
	} else if (is(ap, "state", "approved") && window > 0) {
		ctl_format_remaining(window, now, left, sizeof(left));
		snprintf(buf, n, "window %s", left);
	} else {
		snprintf(buf, n, "-");
	}
}

static int approvals_table(const struct ctl *ctl, const struct dbusc_dict_list *l, bool all)
{
	static const char *const pending_headers[] = { "ID", "KIND", "STATE", "USER", "CONNECTION",
						       "WHAT", "AGE", "EXPIRES", "SQL" };
	static const char *const all_headers[] = { "ID", "KIND", "STATE", "USER", "CONNECTION", "WHAT",
						   "AGE", "EXPIRES", "DECIDED_BY", "NOTE", "SQL" };
	const char *const *headers = all ? all_headers : pending_headers;
	size_t n_cols = all ? ARRAY_SIZE(all_headers) : ARRAY_SIZE(pending_headers);
	int64_t now = now_us();
	struct table *t;
	int r = 0;

	if (l->n == 0) {
		printf(all ? "No approvals in the last hour.\n" : "No pending approvals.\n");
		return CTL_OK;
	}
	t = table_new(n_cols, headers);
	if (!t) {
		ctl_err("out of memory");
		return CTL_FAILED;
	}
	table_set_max_width(t, 5, 24, ctl->ellipsis);          /* WHAT */
	table_set_max_width(t, n_cols - 1, 60, ctl->ellipsis); /* SQL */
	if (all)
		table_set_max_width(t, 9, 32, ctl->ellipsis);  /* NOTE */
	for (size_t i = 0; i < l->n && r == 0; i++) {
		const struct dbusc_dict *ap = &l->v[i];
		char age[64], expires[80];
		const char *row[11];
		size_t k = 0;

		format_age(ap, now, age, sizeof(age));
		format_expires(ap, now, expires, sizeof(expires));
		row[k++] = str_or(ap, "id", "?");
		row[k++] = str_or(ap, "kind", "?");
		row[k++] = str_or(ap, "state", "?");
		row[k++] = str_or(ap, "user", "?");
		row[k++] = str_or(ap, "connection", "?");
		row[k++] = str_or(ap, "what", NULL);
		row[k++] = age;
		row[k++] = expires;
		if (all) {
			row[k++] = str_or(ap, "decided_by", NULL);
			row[k++] = str_or(ap, "note", NULL);
		}
		row[k++] = str_or(ap, "sql", NULL);
		r = table_add_row(t, row);
	}
	return ctl_table_done(t, r, "approvals");
}

int cmd_approvals(struct ctl *ctl, int argc, char **argv)
{
	return ctl_list_command(ctl, argc, argv, "sluicectl approvals [--all]", "ListApprovals",
				approval_json, approvals_table);
}

/* ---- sluicectl approve / deny ---- */

/* "HH:MM:SS" of a local time */
static void clock_time(int64_t us, char *buf, size_t n)
{
	char full[40];

	ctl_format_local_time(us, full, sizeof(full));
	snprintf(buf, n, "%s", strlen(full) > 11 ? full + 11 : full);
}

/* One line on what the decision did, from the approval as it is now. */
static void print_decided(const char *verb, const struct dbusc_dict *ap)
{
	char *id = ctl_sanitize(str_or(ap, "id", "?"), true);
	char *grant = ctl_sanitize(str_or(ap, "grant", "?"), true);
	char *conn = ctl_sanitize(str_or(ap, "connection", "?"), true);
	char *user = ctl_sanitize(str_or(ap, "user", "?"), true);
	int64_t window = int_or_0(ap, "window_ends_at");
	char until[40];

	if (!id || !grant || !conn || !user) {
		printf("%s\n", verb);
	} else if (is(ap, "kind", "statement")) {
		if (is(ap, "state", "approved") && window > 0) {
			clock_time(window, until, sizeof(until));
			printf("%s %s (statement on grant %s: runs once before %s)\n", verb, id, grant, until);
		} else {
			printf("%s %s (statement on grant %s of %s on %s)\n", verb, id, grant, user, conn);
		}
	} else if (is(ap, "state", "approved")) {
		printf("%s %s (grant %s on %s for %s is active)\n", verb, id, grant, conn, user);
	} else {
		printf("%s %s (grant %s on %s for %s has ended)\n", verb, id, grant, conn, user);
	}
	free(id);
	free(grant);
	free(conn);
	free(user);
}

static int decide(struct ctl *ctl, int argc, char **argv, bool approve)
{
	const char *usage = approve ? "sluicectl approve ID [--note TEXT]" : "sluicectl deny ID [--note TEXT]";
	const char *method = approve ? "Approve" : "Deny", *verb = approve ? "approved" : "denied";
	const char *note = "";
	const struct ctl_opt opts[] = {
		{ "note", true, &note, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct dbusc_dict ap = { 0 };
	struct dbusc_error err = { 0 };
	struct dbusc *bus = NULL;
	DBusMessage *reply = NULL;
	const char *id;
	char *pos[1];
	size_t n_pos;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, pos, 1, 1, &n_pos);
	if (r >= 0)
		return r;
	id = pos[0];
	if (!*id)
		return ctl_usage_error("the approval id is empty");
	if (strlen(note) > NOTE_MAX)
		return ctl_usage_error("--note is longer than %d bytes", NOTE_MAX);
	if ((r = ctl_bus_open(&bus)) != 0)
		return r;
	if (dbusc_call(bus, method, &reply, &err, DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &note,
		       DBUS_TYPE_INVALID) < 0) {
		dbusc_close(bus);
		return ctl_bus_failed(&err);
	}
	dbus_message_unref(reply);
	/* What it did, for the line we print: the decision stands even when
	 * this look-up fails. */
	if (dbusc_call(bus, "GetApproval", &reply, &err, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID) == 0) {
		if (dbusc_reply_dict(reply, &ap) < 0)
			ap = (struct dbusc_dict){ 0 };
		dbus_message_unref(reply);
	}
	dbusc_error_clear(&err);
	dbusc_close(bus);
	if (ctl->json) {
		json_t *j = ap.n ? approval_json(&ap)
				 : json_pack("{s:s, s:s}", "id", id, "state", approve ? "approved" : "denied");
		r = ctl_emit_json(j);
	} else if (ap.n) {
		print_decided(verb, &ap);
		r = CTL_OK;
	} else {
		char *s = ctl_sanitize(id, true);

		printf("%s %s\n", verb, s ? s : "?");
		free(s);
		r = CTL_OK;
	}
	dbusc_dict_clear(&ap);
	return r;
}

int cmd_approve(struct ctl *ctl, int argc, char **argv)
{
	return decide(ctl, argc, argv, true);
}

int cmd_deny(struct ctl *ctl, int argc, char **argv)
{
	return decide(ctl, argc, argv, false);
}
