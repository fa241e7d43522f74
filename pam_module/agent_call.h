/* pam_sluice's calls to sluiced: one private system-bus connection per call,
 * closed right after, and the PAM code each failure maps to. No PAM calls
 * and no logging here, so the mapping is unit-tested as it is. */
#pragma once
#include <stdbool.h>
#include "common/dbusc.h"

enum pam_sluice_step {
	PAM_SLUICE_AUTH,    /* Authenticate */
	PAM_SLUICE_ACCOUNT, /* CheckAccount */
	PAM_SLUICE_OPEN,    /* OpenSession */
	PAM_SLUICE_CLOSE,   /* CloseSession */
};

/* Longest session id taken from the agent or from the PAM environment. */
#define PAM_SLUICE_SESSION_ID_MAX 128

/* Open a private connection to the system bus (DBUS_SYSTEM_BUS_ADDRESS
 * honoured unless the process is setuid: libdbus ignores it then), call
 * method on org.sluice.Agent1 with a timeout of timeout_s seconds, close.
 * Returns 0 and *reply, or a negative errno and err filled in. */
int pam_sluice_agent_call(int timeout_s, const char *method, DBusMessage **reply,
			  struct dbusc_error *err, int first_arg_type, ...) WUR;

/* The PAM return code for a failed call at step (see pam_sluice(8)):
 * fail closed, PAM_SUCCESS only for a close whose session is already gone. */
int pam_sluice_pam_code(enum pam_sluice_step step, const struct dbusc_error *err);

/* True when the failure says the agent is not running (no bus, no owner
 * for the name), as opposed to one that did not answer in time. */
bool pam_sluice_agent_gone(const struct dbusc_error *err);

/* A session id we are willing to put in the PAM environment and pass
 * back: 1..PAM_SLUICE_SESSION_ID_MAX of [A-Za-z0-9._:-]. */
bool pam_sluice_session_id_ok(const char *id);

/* True when s holds a control character: C0, DEL, or C1 (as UTF-8). */
bool pam_sluice_has_control(const char *s);

/* in, fit for a log line, into buf (size bytes, NUL-terminated): control
 * characters (C1 too: a terminal showing the log obeys them) become '?',
 * and a cut falls on a character boundary. An agent's reason may quote a
 * claim the token's issuer chose. */
void pam_sluice_log_text(const char *in, char *buf, size_t size);
