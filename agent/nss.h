/* The NSS snapshot sluiced publishes for libnss_sluice: <runtime_dir>/nss/
 * passwd (every [identity] with uid =) and group (each such identity's own
 * group, then every IdP group a live session carries, as [nss]
 * group_prefix + the claim, with a gid from gid_range kept in the session
 * database, its members the accounts of those sessions).
 *
 * Published at start, on reload, and whenever a session opens, is
 * refreshed (its groups may change) or ends; a file is rewritten only when
 * its text changed. Everything runs on the loop thread: a publish renders
 * two small files and, only for a group name never seen before, commits
 * its gid to the database first (nss_gids.h says why).
 *
 * Never shadows the host: an identity or group whose name or id
 * /etc/passwd or /etc/group has (read directly, re-read when they change)
 * is left out, as is a claim that is no valid group name; each is recorded
 * as an audit event once per name per run. */
#pragma once
#include "agent/agent.h"

struct nss;

/* Make <runtime_dir>/nss (0755, the agent's), open the gid table and
 * publish. Call as the agent's user, after the audit writer opened (and
 * migrated) the database. */
int nss_start(struct agent *a, char *err, size_t errlen) WUR;
/* Publish what is live now (sessions, the current policy). force: write
 * even when the text is unchanged (start, reload). While the agent stops,
 * only remembers that something changed, for nss_stop. */
void nss_publish(struct agent *a, bool force);
/* Publish once more if needed (the sessions ended), then free. NULL-safe. */
void nss_stop(struct agent *a);
