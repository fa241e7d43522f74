#include "config.h"
#include "pam_module/agent_call.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <security/_pam_types.h>

int pam_sluice_agent_call(int timeout_s, const char *method, DBusMessage **reply,
			  struct dbusc_error *err, int first_arg_type, ...)
{
	struct dbusc *c = NULL;
	va_list ap;
	int r;

	/* A fresh private connection each time: nothing of libdbus's shared
	 * connection state is touched, nothing survives into a fork() of
	 * the calling program, and no thread is ever started. */
	r = dbusc_open_system(timeout_s * 1000, &c, err);
	if (r < 0)
		return r;
	va_start(ap, first_arg_type);
	r = dbusc_call_valist(c, method, reply, err, first_arg_type, ap);
	va_end(ap);
	dbusc_close(c);
	return r;
}

bool pam_sluice_agent_gone(const struct dbusc_error *err)
{
	static const char *const gone[] = {
		DBUS_ERROR_SERVICE_UNKNOWN, DBUS_ERROR_NAME_HAS_NO_OWNER, DBUS_ERROR_DISCONNECTED,
		DBUS_ERROR_NO_SERVER,       DBUS_ERROR_FILE_NOT_FOUND,    DBUS_ERROR_BAD_ADDRESS,
	};

	if (!err || err->kind != DBUSC_ERR_UNREACHABLE)
		return false;
	/* dbusc reports a failed connect to the bus itself with no name. */
	if (!err->name || !*err->name)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(gone); i++)
		if (strcmp(err->name, gone[i]) == 0)
			return true;
	return strncmp(err->name, "org.freedesktop.DBus.Error.Spawn.", 33) == 0;
}

int pam_sluice_pam_code(enum pam_sluice_step step, const struct dbusc_error *err)
{
	const char *name = dbusc_error_agent_name(err);

	if (!name) {
		/* No answer from the agent, the bus refused the call, or a
		 * reply we cannot read. At close, an agent that is not running
		 * has ended its sessions already (end_reason agent-shutdown);
		 * one that did not answer may still hold the session open. */
		if (step == PAM_SLUICE_CLOSE)
			return pam_sluice_agent_gone(err) ? PAM_SUCCESS : PAM_SESSION_ERR;
		return PAM_AUTHINFO_UNAVAIL;
	}
	switch (step) {
	case PAM_SLUICE_AUTH:
		if (strcmp(name, "TokenRejected") == 0 || strcmp(name, "Denied") == 0 ||
		    strcmp(name, "InvalidArgument") == 0)
			return PAM_AUTH_ERR;
		if (strcmp(name, "NotFound") == 0)
			return PAM_USER_UNKNOWN;
		return PAM_AUTHINFO_UNAVAIL;
	case PAM_SLUICE_ACCOUNT:
		if (strcmp(name, "Denied") == 0 || strcmp(name, "InvalidArgument") == 0)
			return PAM_PERM_DENIED;
		if (strcmp(name, "NotFound") == 0)
			return PAM_USER_UNKNOWN;
		return PAM_AUTHINFO_UNAVAIL;
	case PAM_SLUICE_OPEN:
		if (strcmp(name, "TokenRejected") == 0)
			return PAM_AUTH_ERR;
		if (strcmp(name, "NotFound") == 0)
			return PAM_USER_UNKNOWN;
		if (strcmp(name, "Unavailable") == 0 || strcmp(name, "AuditUnavailable") == 0 ||
		    strcmp(name, "Failed") == 0)
			return PAM_AUTHINFO_UNAVAIL;
		return PAM_SESSION_ERR;
	case PAM_SLUICE_CLOSE:
		/* Already ended (expired, closed by an admin, unbound). */
		if (strcmp(name, "NotFound") == 0)
			return PAM_SUCCESS;
		return PAM_SESSION_ERR;
	}
	return PAM_SERVICE_ERR;
}

bool pam_sluice_session_id_ok(const char *id)
{
	size_t n;

	if (!id)
		return false;
	n = strlen(id);
	if (n == 0 || n > PAM_SLUICE_SESSION_ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == ':' || c == '-'))
			return false;
	}
	return true;
}

/* Length of the control character at p (C0, DEL, or C1 as UTF-8), or 0. */
static size_t control_at(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;

	if (u[0] < 0x20 || u[0] == 0x7f)
		return 1;
	if (u[0] == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f)
		return 2;
	return 0;
}

bool pam_sluice_has_control(const char *s)
{
	for (; *s; s++)
		if (control_at(s))
			return true;
	return false;
}

void pam_sluice_log_text(const char *in, char *buf, size_t size)
{
	const char *m = in;
	size_t n = 0;

	if (size == 0)
		return;
	while (*m && n + 1 < size) {
		size_t c = control_at(m);

		buf[n++] = c ? '?' : *m;
		m += c ? c : 1;
	}
	/* Cut in the middle of a character: drop its first bytes too. */
	if (((unsigned char)*m & 0xc0) == 0x80) {
		while (n > 0 && ((unsigned char)buf[n - 1] & 0xc0) == 0x80)
			n--;
		if (n > 0)
			n--;
	}
	buf[n] = '\0';
}
