#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <string.h>

#include "common/dbusc.h"

int ctl_bus_open(struct dbusc **out)
{
	struct dbusc_error err = { 0 };

	if (dbusc_open_system(0, out, &err) < 0)
		return ctl_bus_failed(&err);
	return 0;
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
