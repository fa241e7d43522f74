#include "config.h"
#include "agent/agent.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent/audit.h"
#include "agent/grant.h"
#include "agent/nss.h"
#include "agent/session.h"
#include "common/log.h"
#include "policy/host.h"
#include "policy/maskval.h"

#define STOP_GRACE_US 300000 /* time for FATALs to reach clients at shutdown */

int pg_check_password_file(const struct pol_connection *conn, uid_t owner, char *err, size_t errlen);

void agent_err_set(struct agent_err *e, const char *kind, const char *fmt, ...)
{
	va_list ap;

	e->kind = kind;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

struct policy_ref *policy_ref_get(struct policy_ref *r)
{
	r->refs++;
	return r;
}

struct policy_ref *policy_ref_put(struct policy_ref *r)
{
	if (r && --r->refs == 0) {
		policy_free(r->p);
		free(r);
	}
	return NULL;
}

static int add_error(struct pol_errors *errs, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_error(struct pol_errors *errs, const char *fmt, ...)
{
	char **v = realloc(errs->v, (errs->n + 1) * sizeof(*v));
	va_list ap;
	int r;

	if (!v)
		return -ENOMEM;
	errs->v = v;
	va_start(ap, fmt);
	r = str_vprintf(&v[errs->n], fmt, ap);
	va_end(ap);
	if (r < 0)
		return r;
	errs->n++;
	return 0;
}

int agent_load_policy(struct agent *a, const char *path, struct policy **out, struct pol_errors *errs)
{
	struct policy *p = NULL;
	int r = policy_load(path, &p, errs);

	if (r < 0)
		return r;
	/* Service identities published through NSS must not shadow the host's. */
	if (policy_check_host(p, HOST_PASSWD_FILE, HOST_GROUP_FILE, errs) > 0)
		r = -EINVAL;
	/* The keys of hash masks: read now, so a key that cannot be read is a
	 * configuration error, not a refused statement later. */
	for (size_t i = 0; i < p->n_masks; i++) {
		struct pol_mask *m = &p->masks[i];
		char why[256];
		int k;

		if (!m->hash_key_file)
			continue;
		m->key = calloc(1, sizeof(*m->key));
		if (!m->key) {
			r = -ENOMEM;
			break;
		}
		k = mask_key_load(m->hash_key_file, m->key, why, sizeof(why));
		if (k < 0) {
			free(m->key);
			m->key = NULL;
			if (add_error(errs, "%s:%u: [mask %s] hash_key_file %s: %s", m->origin.file,
				      m->origin.line, m->connection, m->hash_key_file, why) < 0)
				r = -ENOMEM;
			r = r < 0 ? r : -EINVAL;
		}
	}
	/* What only the agent can check: the credentials it will hold. */
	for (size_t i = 0; i < p->n_connections; i++) {
		const struct pol_connection *c = &p->connections[i];
		char msg[512];

		if (pg_check_password_file(c, a->uid, msg, sizeof(msg)) < 0) {
			if (add_error(errs, "%s:%u: [connection %s] %s", c->origin.file, c->origin.line,
				      c->name, msg) < 0)
				r = -ENOMEM;
			r = r < 0 ? r : -EINVAL;
		}
	}
	/* Live state hangs off these; moving them needs a restart. */
	if (a->pol) {
		const struct pol_agent *o = &a->pol->p->agent, *n = &p->agent;
		if (strcmp(o->runtime_dir, n->runtime_dir) != 0 || strcmp(o->database, n->database) != 0 ||
		    strcmp(o->user, n->user) != 0) {
			(void)add_error(errs, "%s:%u: [agent] runtime_dir, database and user cannot change on reload; restart sluiced",
					n->origin.file ? n->origin.file : path, n->origin.line);
			r = -EINVAL;
		}
	}
	if (r < 0) {
		policy_free(p);
		return r;
	}
	*out = p;
	return 0;
}

int agent_reload(struct agent *a, struct agent_err *err)
{
	struct pol_errors errs = { 0 };
	struct policy *p;
	struct policy_ref *ref;
	int r = agent_load_policy(a, a->config_path, &p, &errs);

	if (r < 0) {
		size_t off = 0;

		err->kind = "ConfigInvalid";
		off = (size_t)snprintf(err->msg, sizeof(err->msg), "%s is invalid; the running configuration stays:",
				       a->config_path);
		for (size_t i = 0; i < errs.n && off < sizeof(err->msg); i++)
			off += (size_t)snprintf(err->msg + off, sizeof(err->msg) - off, "\n%s", errs.v[i]);
		log_err("reload refused: %s", err->msg);
		agent_event(a, "config.rejected", NULL, NULL, NULL, NULL, "%zu error(s), first: %s",
			    errs.n, errs.n ? errs.v[0] : "?");
		pol_errors_clear(&errs);
		return r;
	}
	pol_errors_clear(&errs);
	ref = calloc(1, sizeof(*ref));
	if (!ref) {
		policy_free(p);
		agent_err_set(err, "Failed", "out of memory");
		return -ENOMEM;
	}
	ref->p = p;
	ref->refs = 1;
	policy_ref_put(a->pol);
	a->pol = ref;
	log_info("configuration reloaded from %s", a->config_path);
	agent_event(a, "config.reloaded", NULL, NULL, NULL, NULL, "%s", a->config_path);
	/* A session whose binding went ends, with its grants. */
	sessions_check_bindings(a);
	/* Identities, the prefix or gid_range may have changed. */
	nss_publish(a, true);
	return 0;
}

void agent_event(struct agent *a, const char *kind, const char *grant_id, const uid_t *uid,
		 const char *user, const char *connection, const char *fmt, ...)
{
	char detail[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	log_debug("event %s%s%s: %s", kind, grant_id ? " grant " : "", grant_id ? grant_id : "", detail);
	if (!a->audit)
		return;
	if (audit_event(a->audit, &(struct audit_event){ .ts_us = now_us(), .kind = kind,
			.grant_id = grant_id, .has_uid = uid != NULL, .uid = uid ? *uid : 0,
			.user = user, .connection = connection, .detail = detail }) < 0) {
		const char *why = audit_failure(a->audit);
		log_warn("audit: cannot record event %s (%s): %s", kind, detail, why ? why : "queue full");
	}
}

static void quit_now(struct loop_timer *t, void *ud)
{
	struct agent *a = ud;

	loop_timer_del(t);
	loop_quit(a->loop);
}

void agent_stop(struct agent *a, const char *why)
{
	struct loop_timer *t;

	if (a->stopping) {
		loop_quit(a->loop);
		return;
	}
	a->stopping = true;
	log_info("stopping (%s): ending %u grant(s)", why, a->n_grants);
	while (!list_empty(&a->grants))
		grant_end(container_of(a->grants.next, struct grant, node), "agent-shutdown");
	sessions_end_all(a, "agent-shutdown");
	agent_event(a, "agent.stopped", NULL, NULL, NULL, NULL, "%s", why);
	if (loop_timer_add(a->loop, mono_us() + STOP_GRACE_US, quit_now, a, &t) < 0)
		loop_quit(a->loop);
}
