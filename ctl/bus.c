#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "common/dbusc.h"

int ctl_bus_open(struct dbusc **out)
{
	struct dbusc_error err = { 0 };

	if (dbusc_open_system(0, out, &err) < 0)
		return ctl_bus_failed(&err);
	return 0;
}

int ctl_call(const char *method, DBusMessage **reply, int first_arg_type, ...)
{
	struct dbusc *bus = NULL;
	struct dbusc_error err = { 0 };
	va_list args;
	int r = ctl_bus_open(&bus);

	if (r != 0)
		return r;
	va_start(args, first_arg_type);
	r = dbusc_call_valist(bus, method, reply, &err, first_arg_type, args);
	va_end(args);
	dbusc_close(bus);
	return r < 0 ? ctl_bus_failed(&err) : 0;
}

int ctl_bus_failed(struct dbusc_error *err)
{
	/* The agent's messages are written to be printed as they are; they
	 * still pass through the sanitiser because they may quote config text. */
	char *m = ctl_sanitize(err->message ? err->message : "D-Bus call failed", false);

	ctl_err("%s", m ? m : "D-Bus call failed");
	free(m);
	dbusc_error_clear(err);
	return CTL_FAILED;
}

int ctl_bad_reply(const char *method, int r)
{
	if (r == -ENOMEM)
		ctl_err("out of memory reading the reply to %s", method);
	else
		ctl_err("unexpected reply from sluiced to %s (%s)", method, strerror(-r));
	return CTL_FAILED;
}

int ctl_list_call(const char *method, bool all, struct dbusc_dict_list *l)
{
	DBusMessage *reply = NULL;
	dbus_bool_t all_arg = all;
	int r = ctl_call(method, &reply, DBUS_TYPE_BOOLEAN, &all_arg, DBUS_TYPE_INVALID);

	if (r != 0)
		return r;
	r = dbusc_reply_dict_list(reply, l);
	dbus_message_unref(reply);
	if (r < 0)
		return ctl_bad_reply(method, r);
	return 0;
}
