#include "config.h"
#include "agent/grant.h"
#include "agent/session.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/audit.h"
#include "common/duration.h"
#include "common/log.h"

#define LISTEN_BACKLOG 128
#define ACCEPT_BURST 32

static char *grants_dir(const struct agent *a)
{
	char *p = NULL;

	if (asprintf(&p, "%s/grants", a->pol->p->agent.runtime_dir) < 0)
		return NULL;
	return p;
}

/* Remove <dir>/<name> and what a grant directory can hold (its sockets). */
static int remove_grant_dir(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d;
	struct dirent *e;
	int r = 0;

	if (fd < 0)
		return unlinkat(dirfd, name, 0) < 0 ? -errno : 0;
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return r;
	}
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(fd, e->d_name, 0) < 0 && r == 0)
			r = -errno;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && r == 0)
		r = -errno;
	return r;
}

int grants_prepare_runtime(struct agent *a, char *err, size_t errlen)
{
	_cleanup_free_ char *dir = grants_dir(a);
	DIR *d;
	struct dirent *e;
	int fd, removed = 0;

	if (!dir)
		return -ENOMEM;
	/* 0711: grant owners reach their socket by path, nobody lists grants. */
	if (mkdir(dir, 0711) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
		return -errno;
	}
	if (chmod(dir, 0711) < 0) {
		snprintf(err, errlen, "cannot chmod %s: %s", dir, strerror(errno));
		return -errno;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (remove_grant_dir(dirfd(d), e->d_name) < 0)
			log_warn("cannot remove leftover grant %s/%s: %s", dir, e->d_name, strerror(errno));
		else
			removed++;
	}
	closedir(d);
	if (removed)
		log_info("removed %d leftover grant director%s from %s (grants never survive a restart)",
			 removed, removed == 1 ? "y" : "ies", dir);
	return 0;
}

struct grant *grant_find(struct agent *a, const char *id)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &a->grants) {
		struct grant *g = container_of(n, struct grant, node);
		if (strcmp(g->id, id) == 0)
			return g;
	}
	return NULL;
}

struct grant *grant_ref(struct grant *g)
{
	g->refs++;
	return g;
}

struct grant *grant_unref(struct grant *g)
{
	if (!g || --g->refs > 0)
		return NULL;
	list_del(&g->node);
	free(g->user);
	free(g->schema);
	free(g->reason);
	free(g->subject);
	free(g->issuer);
	free(g->groups_json);
	free(g->dir);
	free(g->socket_path);
	policy_ref_put(g->pol);
	free(g);
	return NULL;
}

void grant_conn_attach(struct grant *g, struct grant_conn *c, bool counted)
{
	c->grant = grant_ref(g);
	c->counted = counted;
	list_add_tail(&g->conns, &c->node);
	if (counted) {
		g->n_conns++;
		g->agent->n_conns++;
	}
}

void grant_conn_detach(struct grant_conn *c)
{
	struct grant *g = c->grant;

	if (!g)
		return;
	list_del(&c->node);
	if (c->counted) {
		g->n_conns--;
		g->agent->n_conns--;
	}
	c->grant = NULL;
	grant_unref(g);
}

static void on_accept(struct loop_watch *w, uint32_t events, void *ud);

static void resume_accept(struct loop_timer *t, void *ud)
{
	struct grant *g = ud;

	g->pause_timer = loop_timer_del(g->pause_timer);
	if (g->state == GRANT_ACTIVE && loop_watch_set(g->listen_watch, EPOLLIN) < 0)
		grant_end(g, "agent-error");
}

static void on_expire(struct loop_timer *t, void *ud)
{
	grant_end(ud, "expired");
}

static int arm_expiry(struct grant *g)
{
	int64_t left = g->expires_us - now_us();

	g->timer = loop_timer_del(g->timer);
	return loop_timer_add(g->agent->loop, mono_us() + MAX(left, 0), on_expire, g, &g->timer);
}

static void on_accept(struct loop_watch *w, uint32_t events, void *ud)
{
	struct grant *g = ud;
	const struct pol_agent *cfg = &g->pol->p->agent;

	for (int i = 0; i < ACCEPT_BURST && g->state == GRANT_ACTIVE; i++) {
		struct ucred peer;
		socklen_t len = sizeof(peer);
		bool allowed = true;
		const char *why = NULL;
		char whybuf[160];
		int fd = accept4(g->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: stop accepting for a moment
				 * rather than spin on a listener we cannot serve. */
				log_warn("grant %s: cannot accept: %s; pausing 100ms", g->id, strerror(errno));
				if (loop_watch_set(g->listen_watch, 0) < 0 ||
				    (!g->pause_timer &&
				    loop_timer_add(g->agent->loop, mono_us() + 100000, resume_accept, g,
						   &g->pause_timer) < 0))
					grant_end(g, "agent-error");
			}
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) < 0) {
			log_warn("grant %s: SO_PEERCRED: %s", g->id, strerror(errno));
			close(fd);
			continue;
		}
		if (peer.uid != g->uid) {
			allowed = false;
			snprintf(whybuf, sizeof(whybuf),
				 "uid %u may not use grant %s: it belongs to another account",
				 (unsigned)peer.uid, g->id);
			why = whybuf;
			agent_event(g->agent, "connection.refused", g->id, &peer.uid, NULL,
				    g->conn->name, "uid %u (pid %d) is not the grant's owner (uid %u)",
				    (unsigned)peer.uid, (int)peer.pid, (unsigned)g->uid);
		} else if (g->n_conns >= cfg->max_connections_per_grant) {
			allowed = false;
			snprintf(whybuf, sizeof(whybuf),
				 "grant %s already has %u connections (max_connections_per_grant)",
				 g->id, g->n_conns);
			why = whybuf;
			agent_event(g->agent, "connection.refused", g->id, &peer.uid, g->user,
				    g->conn->name, "connection limit %u reached",
				    cfg->max_connections_per_grant);
		}
		g->proto->accept(g, fd, &peer, allowed, why);
	}
}

static int make_listener(struct grant *g, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(g->socket_path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path %s is too long for a Unix socket", g->socket_path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, g->socket_path, strlen(g->socket_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		goto fail;
	/* Anyone may connect; SO_PEERCRED decides who gets in. (The agent cannot
	 * chown the socket to the grant's uid when it runs unprivileged.) */
	if (chmod(g->socket_path, 0666) < 0 || listen(fd, LISTEN_BACKLOG) < 0)
		goto fail;
	g->listen_fd = fd;
	return 0;
fail:
	snprintf(err, errlen, "cannot listen on %s: %s", g->socket_path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -EIO;
}

static unsigned grants_of_uid(struct agent *a, uid_t uid)
{
	struct list_node *n, *t;
	unsigned count = 0;

	/* Pending grants count: waiting for approval is holding a place. */
	list_for_each_safe(n, t, &a->grants) {
		if (container_of(n, struct grant, node)->uid == uid)
			count++;
	}
	return count;
}

/* The TTL starts now, never past the session (the grant dies with it). */
static int set_lifetime(struct grant *g, const struct session *s, struct agent_err *err)
{
	int64_t now = now_us();
	int64_t left = (s->expires_us - now) / 1000000;

	if (left < 1) {
		agent_err_set(err, "Denied", "session %s has expired", s->id);
		return -EACCES;
	}
	g->ttl = MIN(g->ttl_policy, (uint64_t)left);
	g->started_us = now;
	g->expires_us = now + (int64_t)g->ttl * 1000000;
	g->ttl_end_us = now + (int64_t)g->ttl_policy * 1000000;
	return 0;
}

/* Give the grant its path: credentials, the audit row, the directory and
 * the listening socket, the expiry timer. On failure everything done here
 * is undone and err says why. */
static int grant_open(struct grant *g, const struct session *s, struct agent_err *err)
{
	struct agent *a = g->agent;
	const struct pol_connection *conn = g->conn;
	char msg[512];
	int r = set_lifetime(g, s, err);

	if (r < 0)
		return r;
	r = g->proto->grant_init(g, msg, sizeof(msg));
	if (r < 0) {
		agent_err_set(err, "Failed", "cannot prepare connection %s: %s", conn->name, msg);
		return r;
	}
	/* The grant row goes to the audit before the path exists: a grant that
	 * cannot be recorded is not given. */
	r = audit_grant(a->audit, &(struct audit_grant){
		.created_us = g->created_us, .id = g->id, .uid = g->uid, .user = g->user,
		.connection = conn->name, .protocol = g->proto->name, .expires_us = g->expires_us,
		.schema = g->schema, .reason = g->reason, .subject = g->subject,
		.issuer = g->issuer, .groups = g->groups_json });
	if (r < 0) {
		const char *why = audit_failure(a->audit);
		agent_err_set(err, "AuditUnavailable",
			      "the audit database cannot record the grant (%s); no grant is given",
			      why ? why : "queue full");
		goto fail_proto;
	}
	if (mkdir(g->dir, 0711) < 0) {
		agent_err_set(err, "Failed", "cannot create %s: %s", g->dir, strerror(errno));
		r = -errno;
		goto fail_proto;
	}
	if (chmod(g->dir, 0711) < 0) {
		agent_err_set(err, "Failed", "cannot chmod %s: %s", g->dir, strerror(errno));
		r = -errno;
		rmdir(g->dir);
		goto fail_proto;
	}
	r = make_listener(g, msg, sizeof(msg));
	if (r == 0)
		r = loop_watch_add(a->loop, g->listen_fd, EPOLLIN, on_accept, g, &g->listen_watch);
	if (r == 0)
		r = arm_expiry(g);
	if (r < 0) {
		agent_err_set(err, "Failed", "cannot open the grant socket: %s",
			      g->listen_fd < 0 ? msg : strerror(-r));
		g->listen_watch = loop_watch_del(g->listen_watch);
		if (g->listen_fd >= 0)
			close(g->listen_fd);
		g->listen_fd = -1;
		unlink(g->socket_path);
		rmdir(g->dir);
		goto fail_proto;
	}
	g->opened = true;
	{
		char ttlbuf[32];
		duration_format(g->ttl, ttlbuf, sizeof(ttlbuf));
		agent_event(a, "grant.created", g->id, &g->uid, g->user, conn->name,
			    "session %s, ttl %s, socket %s%s%s%s%s", g->session_id, ttlbuf, g->socket_path,
			    g->approval[0] ? ", approval " : "", g->approval,
			    g->reason ? ", reason: " : "", g->reason ? g->reason : "");
	}
	return 0;
fail_proto:
	g->proto->grant_fini(g);
	return r < 0 ? r : -EIO;
}

static struct grant *grant_new(struct agent *a, const struct grant_request *req,
			       const struct pol_connection *conn, struct agent_err *err)
{
	const struct pol_access *acc = req->access;
	struct grant *g = calloc(1, sizeof(*g));
	uint8_t raw[GRANT_ID_LEN / 2];
	char msg[512];
	_cleanup_free_ char *gdir = NULL;
	int r;

	if (!g) {
		agent_err_set(err, "Failed", "out of memory");
		return NULL;
	}
	g->agent = a;
	g->refs = 1;
	g->listen_fd = -1;
	list_init(&g->node);
	list_init(&g->conns);
	g->uid = req->uid;
	g->pol = policy_ref_get(a->pol);
	g->conn = conn;
	g->access = acc;
	g->proto = proto_for(conn->type);
	g->created_us = now_us();
	r = random_bytes(raw, sizeof(raw));
	if (r < 0) {
		agent_err_set(err, "Failed", "cannot create the grant: %s", strerror(-r));
		return grant_unref(g);
	}
	hex_encode(raw, sizeof(raw), g->id);
	g->user = strdup(req->user);
	g->schema = req->schema && *req->schema ? strdup(req->schema) : NULL;
	g->reason = req->reason && *req->reason ? strdup(req->reason) : NULL;
	snprintf(g->session_id, sizeof(g->session_id), "%s", req->session->id);
	g->subject = strdup(req->session->subject);
	g->issuer = strdup(req->session->issuer);
	g->groups_json = strdup(req->session->groups_json);
	gdir = grants_dir(a);
	if (!g->user || (req->reason && *req->reason && !g->reason) ||
	    (req->schema && *req->schema && !g->schema) || !gdir ||
	    !g->subject || !g->issuer || !g->groups_json ||
	    asprintf(&g->dir, "%s/%s", gdir, g->id) < 0 ||
	    asprintf(&g->socket_path, "%s/%s", g->dir, g->proto->socket_name) < 0) {
		agent_err_set(err, "Failed", "out of memory");
		return grant_unref(g);
	}
	/* What every statement is decided against; a --schema the [access]
	 * does not list is refused here. */
	r = decide_scope_init(&g->scope, g->pol->p, conn, acc, g->schema, &g->scope_schema, msg,
			      sizeof(msg));
	if (r < 0) {
		agent_err_set(err, "InvalidArgument", "%s", msg);
		return grant_unref(g);
	}
	return g;
}

/* Approval = grant: the grant waits, listed, for an approver. */
static int grant_hold(struct agent *a, struct grant *g, struct agent_err *err)
{
	struct approval *ap;
	char ttlbuf[32];
	int r;

	g->state = GRANT_PENDING;
	g->ttl = g->ttl_policy;
	list_add_tail(&a->grants, &g->node);
	a->n_grants++;
	r = approval_for_grant(a, g, &ap, err);
	if (r < 0) {
		list_del(&g->node);
		a->n_grants--;
		return r;
	}
	snprintf(g->approval, sizeof(g->approval), "%s", ap->id);
	g->expires_us = ap->expires_us;
	duration_format(g->ttl_policy, ttlbuf, sizeof(ttlbuf));
	agent_event(a, "grant.pending", g->id, &g->uid, g->user, g->conn->name,
		    "session %s, ttl %s once approved, waiting for approval %s%s%s", g->session_id, ttlbuf,
		    g->approval, g->reason ? ", reason: " : "", g->reason ? g->reason : "");
	if (a->on_grant_state)
		a->on_grant_state(a, g);
	return 0;
}

int grant_create(struct agent *a, const struct grant_request *req, struct grant **out,
		 struct agent_err *err)
{
	const struct policy *p = a->pol->p;
	const struct pol_access *acc = req->access;
	const struct pol_connection *conn = policy_connection(p, acc->connection);
	struct grant *g;
	uint64_t ttl = req->ttl ? req->ttl : acc->default_ttl;
	int r;

	if (!conn) {
		agent_err_set(err, "Failed", "connection %s is not configured", acc->connection);
		return -ENOENT;
	}
	if (grants_of_uid(a, req->uid) >= p->agent.max_grants_per_user) {
		agent_err_set(err, "LimitExceeded",
			      "%s already holds %u grants, active or pending (max_grants_per_user); revoke one first",
			      req->user, p->agent.max_grants_per_user);
		return -EUSERS;
	}
	if (req->session->expires_us - now_us() < 1000000) {
		agent_err_set(err, "Denied", "session %s has expired", req->session->id);
		return -EACCES;
	}
	ttl = MIN(ttl, acc->max_ttl);
	if (ttl == 0) {
		agent_err_set(err, "InvalidArgument", "a grant needs a TTL of at least 1s");
		return -EINVAL;
	}
	g = grant_new(a, req, conn, err);
	if (!g)
		return -EINVAL;
	g->ttl_policy = ttl;
	if (acc->approval == APPROVAL_GRANT)
		r = grant_hold(a, g, err);
	else
		r = grant_open(g, req->session, err);
	if (r < 0) {
		grant_unref(g);
		return r;
	}
	if (g->state == GRANT_ACTIVE) {
		list_add_tail(&a->grants, &g->node);
		a->n_grants++;
		if (a->on_grant_state)
			a->on_grant_state(a, g);
	}
	*out = g;
	return 0;
}

int grant_activate(struct grant *g, struct agent_err *err)
{
	struct agent *a = g->agent;
	const struct session *s;
	int r;

	if (g->state != GRANT_PENDING) {
		agent_err_set(err, "Failed", "grant %s is not pending", g->id);
		return -EINVAL;
	}
	s = session_find(a, g->session_id);
	if (!s) {
		agent_err_set(err, "Failed", "grant %s has no live session", g->id);
		r = -ENOENT;
	} else {
		r = grant_open(g, s, err);
	}
	if (r < 0) {
		log_warn("grant %s: approved, but it cannot start: %s", g->id, err->msg);
		grant_end(g, "agent-error");
		return r;
	}
	g->state = GRANT_ACTIVE;
	if (a->on_grant_state)
		a->on_grant_state(a, g);
	return 0;
}

void grant_session_extended(struct grant *g, int64_t session_expires_us)
{
	int64_t until = MIN(g->ttl_end_us, session_expires_us);

	if (g->state != GRANT_ACTIVE || until <= g->expires_us)
		return;
	g->expires_us = until;
	if (arm_expiry(g) < 0) {
		grant_end(g, "agent-error");
		return;
	}
	agent_event(g->agent, "grant.extended", g->id, &g->uid, g->user, g->conn->name,
		    "session %s refreshed; the grant now ends %llds from now", g->session_id,
		    (long long)((g->expires_us - now_us()) / 1000000));
}

void grant_end(struct grant *g, const char *reason)
{
	struct agent *a = g->agent;
	struct list_node *n, *t;

	if (g->state == GRANT_ENDED)
		return;
	g->state = GRANT_ENDED;
	g->end_reason = reason;
	list_del(&g->node);
	list_add_tail(&a->ended, &g->node);
	a->n_grants--;
	g->timer = loop_timer_del(g->timer);
	g->pause_timer = loop_timer_del(g->pause_timer);
	g->listen_watch = loop_watch_del(g->listen_watch);
	if (g->listen_fd >= 0)
		close(g->listen_fd);
	g->listen_fd = -1;
	if (g->opened && unlink(g->socket_path) < 0 && errno != ENOENT)
		log_warn("grant %s: cannot remove %s: %s", g->id, g->socket_path, strerror(errno));
	if (g->opened && rmdir(g->dir) < 0 && errno != ENOENT)
		log_warn("grant %s: cannot remove %s: %s", g->id, g->dir, strerror(errno));
	/* Each connection detaches itself, possibly right away. */
	grant_ref(g);
	list_for_each_safe(n, t, &g->conns)
		container_of(n, struct grant_conn, node)->end(container_of(n, struct grant_conn, node),
							      reason);
	/* Credentials go now, not when the last lingering client leaves. */
	g->proto->grant_fini(g);
	/* Its approvals go with it (a pending grant's, or statements'). */
	approvals_grant_ended(a, g->id);
	agent_event(a, "grant.ended", g->id, &g->uid, g->user, g->conn->name, "%s", reason);
	if (a->on_grant_state)
		a->on_grant_state(a, g);
	grant_unref(g);
	grant_unref(g); /* the active reference */
}

void grants_close_ended(struct agent *a)
{
	while (!list_empty(&a->ended)) {
		struct grant *g = grant_ref(container_of(a->ended.next, struct grant, node));

		while (!list_empty(&g->conns))
			container_of(g->conns.next, struct grant_conn, node)
				->close(container_of(g->conns.next, struct grant_conn, node));
		grant_unref(g); /* the last reference: off the list and freed */
	}
}
