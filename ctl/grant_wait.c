/* Waiting for an approver to decide a pending grant: GrantStateChanged on
 * a bus connection of our own, GetGrant every GRANT_WAIT_POLL_US all the
 * same. Only GetGrant decides the outcome; a signal just makes us ask
 * sooner and, for an ended grant, says why. */
#include "config.h"
#include "ctl/ctl.h"
#include "ctl/grant_wait.h"

#include <errno.h>
#include <string.h>

static const char *str_or(const struct dbusc_dict *d, const char *key, const char *dflt)
{
	const char *s = dbusc_dict_str(d, key);

	return s && *s ? s : dflt;
}

bool grant_is_pending(const struct dbusc_dict *g)
{
	const char *state = dbusc_dict_str(g, "state");

	return state && strcmp(state, "pending") == 0;
}

void grant_wait_announce(const struct dbusc_dict *g)
{
	char *id = ctl_sanitize(str_or(g, "id", "?"), true);
	char *conn = ctl_sanitize(str_or(g, "connection", "?"), true);
	char *ap = ctl_sanitize(str_or(g, "approval", "?"), true);

	if (id && conn && ap)
		ctl_err("grant %s on %s is waiting for approval %s (an approver runs: sluicectl approve %s)",
			id, conn, ap, ap);
	else
		ctl_err("the grant is waiting for approval");
	free(id);
	free(conn);
	free(ap);
}

/* ---- the bus ---- */

/* A call to the bus daemon itself, bounded (dbus_bus_add_match would wait
 * libdbus's 25 s default). */
static DBusMessage *bus_daemon_call(DBusConnection *c, const char *method, const char *arg)
{
	DBusMessage *m, *reply = NULL;
	DBusError de;

	m = dbus_message_new_method_call(DBUS_SERVICE_DBUS, DBUS_PATH_DBUS, DBUS_INTERFACE_DBUS, method);
	if (!m)
		return NULL;
	dbus_error_init(&de);
	if (dbus_message_append_args(m, DBUS_TYPE_STRING, &arg, DBUS_TYPE_INVALID))
		reply = dbus_connection_send_with_reply_and_block(c, m, GRANT_WAIT_CALL_TIMEOUT_MS, &de);
	dbus_error_free(&de);
	dbus_message_unref(m);
	return reply;
}

/* The match for this grant's GrantStateChanged, and the agent's unique
 * name (a signal from anyone else is not the agent's). Best effort: the
 * periodic GetGrant does without both. */
static void subscribe(struct grant_wait *w)
{
	DBusConnection *c = dbusc_connection(w->bus);
	DBusMessage *reply;
	const char *owner = NULL;
	char rule[512];

	/* ids are hex; anything else could not be quoted in a match rule */
	if (!name_is_safe(w->grant_id, 128))
		return;
	reply = bus_daemon_call(c, "GetNameOwner", SLUICE_BUS_NAME);
	if (!reply)
		return;
	if (dbus_message_get_args(reply, NULL, DBUS_TYPE_STRING, &owner, DBUS_TYPE_INVALID))
		w->agent_name = strdup(owner);
	dbus_message_unref(reply);
	if (!w->agent_name)
		return;
	snprintf(rule, sizeof(rule),
		 "type='signal',sender='%s',path='%s',interface='%s',member='GrantStateChanged',arg0='%s'",
		 SLUICE_BUS_NAME, SLUICE_OBJECT_PATH, SLUICE_INTERFACE, w->grant_id);
	reply = bus_daemon_call(c, "AddMatch", rule);
	if (reply)
		dbus_message_unref(reply);
}

int grant_wait_begin(struct grant_wait *w, const struct dbusc_dict *g)
{
	struct dbusc_error err = { 0 };

	*w = (struct grant_wait){ 0 };
	w->grant_id = strdup(str_or(g, "id", ""));
	w->approval_id = strdup(str_or(g, "approval", ""));
	w->connection = strdup(str_or(g, "connection", "?"));
	if (!w->grant_id || !w->approval_id || !w->connection) {
		grant_wait_end(w);
		ctl_err("out of memory");
		return CTL_FAILED;
	}
	if (dbusc_open_system(GRANT_WAIT_CALL_TIMEOUT_MS, &w->bus, &err) < 0) {
		grant_wait_end(w);
		return ctl_bus_failed(&err);
	}
	subscribe(w);
	/* ask at once: the decision may have come before the match was in */
	w->next_poll = mono_us();
	return 0;
}

int grant_wait_fd(const struct grant_wait *w)
{
	int fd = -1;

	if (!w->bus || !dbus_connection_get_unix_fd(dbusc_connection(w->bus), &fd))
		return -1;
	return fd;
}

int grant_wait_timeout_ms(const struct grant_wait *w)
{
	int64_t left = w->next_poll - mono_us();

	/* a call may have left signals read but not handled */
	if (w->heard || (w->bus && dbus_connection_get_dispatch_status(dbusc_connection(w->bus)) ==
					   DBUS_DISPATCH_DATA_REMAINS))
		return 0;
	return left <= 0 ? 0 : (int)MIN((left + 999) / 1000, GRANT_WAIT_POLL_US / 1000);
}

static void on_message(struct grant_wait *w, DBusMessage *m)
{
	const char *id = NULL, *state = NULL, *reason = NULL, *sender;

	if (!dbus_message_is_signal(m, SLUICE_INTERFACE, "GrantStateChanged"))
		return;
	sender = dbus_message_get_sender(m);
	if (!w->agent_name || !sender || strcmp(sender, w->agent_name) != 0)
		return;
	if (!dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &id, DBUS_TYPE_STRING, &state,
				   DBUS_TYPE_STRING, &reason, DBUS_TYPE_INVALID) ||
	    strcmp(id, w->grant_id) != 0)
		return;
	w->heard = true;
	if (strcmp(state, "ended") == 0)
		snprintf(w->end_reason, sizeof(w->end_reason), "%s", reason);
}

/* Handle what has arrived; false when the bus went away. */
static bool drain(struct grant_wait *w)
{
	DBusConnection *c = dbusc_connection(w->bus);
	DBusMessage *m;

	dbus_connection_read_write(c, 0);
	while ((m = dbus_connection_pop_message(c))) {
		on_message(w, m);
		dbus_message_unref(m);
	}
	return dbus_connection_get_is_connected(c);
}

/* ---- the outcome ---- */

/* Why the grant ended: the approval's decision when there is one. */
static void report_end(struct grant_wait *w)
{
	struct dbusc_error err = { 0 };
	struct dbusc_dict ap = { 0 };
	DBusMessage *reply = NULL;
	const char *aid = w->approval_id, *astate = "", *reason = w->end_reason;
	char *gid = ctl_sanitize(w->grant_id, true), *by = NULL, *note = NULL;

	if (*aid && dbusc_call(w->bus, "GetApproval", &reply, &err, DBUS_TYPE_STRING, &aid,
			       DBUS_TYPE_INVALID) == 0) {
		if (dbusc_reply_dict(reply, &ap) == 0) {
			astate = str_or(&ap, "state", "");
			by = ctl_sanitize(str_or(&ap, "decided_by", ""), true);
			note = ctl_sanitize(str_or(&ap, "note", ""), true);
		}
		dbus_message_unref(reply);
	}
	dbusc_error_clear(&err);
	if (!gid) {
		ctl_err("the grant ended while it waited for approval");
	} else if (strcmp(reason, "denied") == 0 || strcmp(astate, "denied") == 0) {
		ctl_err("grant %s was denied%s%s%s%s", gid, by && *by ? " by " : "", by ? by : "",
			note && *note ? ": " : "", note ? note : "");
	} else if (strcmp(reason, "approval-expired") == 0 || strcmp(astate, "expired") == 0) {
		ctl_err("grant %s was not decided in time: approval expired", gid);
	} else if (strcmp(reason, "revoked") == 0) {
		ctl_err("grant %s was revoked while it waited for approval", gid);
	} else if (strcmp(reason, "session-ended") == 0) {
		ctl_err("grant %s ended with its session while it waited for approval", gid);
	} else if (*reason) {
		char *r = ctl_sanitize(reason, true);

		ctl_err("grant %s ended (%s) while it waited for approval", gid, r ? r : "?");
		free(r);
	} else {
		ctl_err("grant %s ended while it waited for approval", gid);
	}
	free(gid);
	free(by);
	free(note);
	dbusc_dict_clear(&ap);
}

enum grant_wait_result grant_wait_step(struct grant_wait *w, struct dbusc_dict *g)
{
	struct dbusc_error err = { 0 };
	struct dbusc_dict now = { 0 };
	DBusMessage *reply = NULL;
	const char *id = w->grant_id, *state;
	int r;

	if (!drain(w)) {
		ctl_err("lost the connection to the system bus while grant %s waited for approval",
			w->grant_id);
		return GRANT_WAIT_FAILED;
	}
	if (!w->heard && mono_us() < w->next_poll)
		return GRANT_WAIT_PENDING;
	w->heard = false;
	if (dbusc_call(w->bus, "GetGrant", &reply, &err, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID) < 0) {
		const char *name = dbusc_error_agent_name(&err);

		if (name && strcmp(name, "NotFound") == 0) {
			/* ended: GetGrant does not answer for ended grants */
			dbusc_error_clear(&err);
			report_end(w);
			return GRANT_WAIT_ENDED;
		}
		ctl_bus_failed(&err);
		return GRANT_WAIT_FAILED;
	}
	r = dbusc_reply_dict(reply, &now);
	dbus_message_unref(reply);
	if (r < 0) {
		ctl_bad_reply("GetGrant", r);
		return GRANT_WAIT_FAILED;
	}
	w->next_poll = mono_us() + GRANT_WAIT_POLL_US;
	state = str_or(&now, "state", "");
	if (strcmp(state, "active") == 0) {
		dbusc_dict_clear(g);
		*g = now;
		return GRANT_WAIT_ACTIVE;
	}
	if (strcmp(state, "pending") == 0) {
		dbusc_dict_clear(&now);
		w->end_reason[0] = '\0'; /* a stale or forged "ended" */
		return GRANT_WAIT_PENDING;
	}
	snprintf(w->end_reason, sizeof(w->end_reason), "%s", str_or(&now, "end_reason", ""));
	dbusc_dict_clear(&now);
	report_end(w);
	return GRANT_WAIT_ENDED;
}

void grant_wait_end(struct grant_wait *w)
{
	w->bus = dbusc_close(w->bus);
	free(w->grant_id);
	free(w->approval_id);
	free(w->connection);
	w->grant_id = w->approval_id = w->connection = NULL;
	free(w->agent_name);
	w->agent_name = NULL;
}
