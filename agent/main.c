/* sluiced: the sluice agent. Runs in the foreground (systemd Type=dbus). */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/approval.h"
#include "agent/audit.h"
#include "agent/bus.h"
#include "agent/grant.h"
#include "agent/guard.h"
#include "agent/nss.h"
#include "agent/resolve.h"
#include "agent/session.h"
#include "agent/verify.h"
#include "common/log.h"
#include "common/oidc.h"
#include "policy/classify.h"

#define DEFAULT_CONFIG SYSCONFDIR "/sluice/sluice.conf"
/* At most one JWKS refetch per issuer this often on an unknown key id: key
 * rotation is picked up within this, and random kids cannot make the agent
 * hammer the IdP. */
#define JWKS_REFETCH_INTERVAL 10

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: sluiced [--config FILE] [--debug]\n"
		"       sluiced --version | --help\n"
		"\n"
		"The sluice agent: grants time-boxed database access on the system bus as\n"
		"org.sluice.Agent1. Runs in the foreground. Started as root it prepares its\n"
		"directories and runs as [agent] user (default: sluice).\n"
		"\n"
		"  -c, --config FILE  configuration (default: $SLUICE_CONFIG or %s)\n"
		"  -d, --debug        log debug messages\n"
		"  -V, --version      print the version\n"
		"  -h, --help         this text\n"
		"\n"
		"SIGHUP reloads the configuration; SIGTERM ends every grant and exits.\n",
		DEFAULT_CONFIG);
}

static int mkdir_owned(const char *path, mode_t mode, uid_t uid, gid_t gid, bool chown_existing)
{
	struct stat st;

	if (mkdir(path, mode) == 0) {
		if (chown(path, uid, gid) < 0 || chmod(path, mode) < 0)
			return -errno;
		return 0;
	}
	if (errno != EEXIST)
		return -errno;
	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (chown_existing && (st.st_uid != uid) && chown(path, uid, gid) < 0)
		return -errno;
	return 0;
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

/* Started as root: make the directories the agent needs, then become
 * [agent] user for good. */
static int drop_privileges(struct agent *a, const struct policy *p)
{
	struct passwd *pw = getpwnam(p->agent.user);
	_cleanup_free_ char *dbdir = NULL;
	int r;

	if (!pw) {
		log_err("[agent] user %s does not exist: create it (e.g. useradd --system %s)", p->agent.user,
			p->agent.user);
		return -ENOENT;
	}
	if (pw->pw_uid == 0) {
		log_err("[agent] user is root: sluiced runs as an unprivileged account");
		return -EPERM;
	}
	a->uid = pw->pw_uid;
	a->gid = pw->pw_gid;
	/* The runtime directory is the agent's (grant sockets live there);
	 * the database directory only when we create it. */
	r = mkdir_owned(p->agent.runtime_dir, 0755, a->uid, a->gid, true);
	if (r < 0) {
		log_err("cannot prepare %s: %s", p->agent.runtime_dir, strerror(-r));
		return r;
	}
	dbdir = dir_of(p->agent.database);
	if (!dbdir)
		return -ENOMEM;
	r = mkdir_owned(dbdir, 0750, a->uid, a->gid, false);
	if (r < 0) {
		log_err("cannot prepare %s: %s", dbdir, strerror(-r));
		return r;
	}
	if (setgroups(0, NULL) < 0 || setgid(a->gid) < 0 || setuid(a->uid) < 0) {
		log_err("cannot switch to %s: %s", p->agent.user, strerror(errno));
		return -errno;
	}
	if (setuid(0) == 0) {
		log_err("could regain root after dropping privileges; refusing to run");
		return -EPERM;
	}
	return 0;
}

struct sigctx {
	struct agent *a;
	int fd;
};

static void on_signal(struct loop_watch *w, uint32_t events, void *ud)
{
	struct sigctx *sc = ud;
	struct agent *a = sc->a;
	struct signalfd_siginfo si;

	while (read(sc->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			struct agent_err err;
			log_info("SIGHUP: reloading %s", a->config_path);
			if (agent_reload(a, &err) < 0)
				log_err("%s", err.msg);
		} else {
			agent_stop(a, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
		}
	}
}

/* The JWKS cache lives next to the session database, in a directory only
 * the agent's account can read. */
static int start_verifier(struct agent *a, char *err, size_t errlen)
{
	_cleanup_free_ char *dir = strdup(a->pol->p->agent.database);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	_cleanup_free_ char *cache = NULL;

	if (!slash)
		return -ENOMEM;
	*slash = 0;
	if (asprintf(&cache, "%s/jwks", *dir ? dir : "") < 0)
		return -ENOMEM;
	if (verifier_start(a, cache, &a->verifier, err, errlen) < 0)
		return -EIO;
	verifier_set_refetch_interval(a->verifier, JWKS_REFETCH_INTERVAL);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "debug", no_argument, NULL, 'd' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct agent agent = { 0 };
	struct agent *a = &agent;
	struct sigctx sc = { .a = a, .fd = -1 };
	struct pol_errors errs = { 0 };
	struct policy *p = NULL;
	struct loop_watch *sigw = NULL;
	const char *config = getenv("SLUICE_CONFIG");
	bool debug = false;
	char err[1024];
	char *auditerr = NULL;
	sigset_t mask;
	int opt, r, status = 1;

	/* Before any account lookup: libnss_sluice answers nothing to us
	 * (nss_sluice(8)); accounts the agent must know come from the host
	 * or from [identity] in policy. */
	if (setenv("SLUICE_NSS_BYPASS", "1", 1) < 0) {
		perror("sluiced: setenv");
		return 1;
	}
	while ((opt = getopt_long(argc, argv, "c:dVh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'd': debug = true; break;
		case 'V': printf("sluiced %s\n", PACKAGE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!config || !*config)
		config = DEFAULT_CONFIG;
	log_init("sluiced", debug);
	/* libcurl's global set-up, before any thread starts. */
	if (oidc_global_init() < 0) {
		log_err("cannot initialise libcurl");
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* Secrets live in this process: no core dumps, no ptrace by peers. */
	prctl(PR_SET_DUMPABLE, 0);
	umask(022);
	list_init(&a->grants);
	list_init(&a->ended);
	list_init(&a->sessions);
	a->config_path = config;
	a->started_us = now_us();
	a->uid = geteuid();
	a->gid = getegid();

	/* First read, to learn who to run as. */
	if (policy_load(config, &p, &errs) < 0) {
		for (size_t i = 0; i < errs.n; i++)
			log_err("%s", errs.v[i]);
		log_err("%s is invalid; not starting", config);
		goto out;
	}
	if (geteuid() == 0) {
		if (drop_privileges(a, p) < 0)
			goto out;
	} else if (strcmp(p->agent.user, "sluice") != 0 || debug) {
		struct passwd *pw = getpwuid(geteuid());
		log_info("running as %s (uid %u), as started", pw ? pw->pw_name : "?", (unsigned)geteuid());
	}
	p = policy_free(p);
	/* The real load, as the account that will hold the credentials. */
	if (agent_load_policy(a, config, &p, &errs) < 0) {
		for (size_t i = 0; i < errs.n; i++)
			log_err("%s", errs.v[i]);
		log_err("%s is not usable; not starting", config);
		goto out;
	}
	a->pol = calloc(1, sizeof(*a->pol));
	if (!a->pol)
		goto out;
	a->pol->p = p;
	a->pol->refs = 1;
	p = NULL;

	r = audit_open(a->pol->p->agent.database, a->pol->p->agent.audit_queue,
		       (size_t)a->pol->p->agent.audit_queue * 1024, &a->audit, &auditerr);
	if (r < 0) {
		log_err("cannot open the session database %s: %s", a->pol->p->agent.database,
			auditerr ? auditerr : strerror(-r));
		goto out;
	}
	if ((r = loop_new(&a->loop)) < 0 || (r = resolver_new(a->loop, &a->resolver)) < 0) {
		log_err("cannot set up the event loop: %s", strerror(-r));
		goto out;
	}
	if ((r = approvals_init(a)) < 0) {
		log_err("cannot set up approvals: %s", strerror(-r));
		goto out;
	}
	if (grants_prepare_runtime(a, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	if (nss_start(a, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (sc.fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    loop_watch_add(a->loop, sc.fd, EPOLLIN, on_signal, &sc, &sigw) < 0) {
		log_err("cannot set up signal handling: %s", strerror(errno));
		goto out;
	}
	/* After the signal mask: the verifier thread inherits it. */
	if (start_verifier(a, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	if (guard_worker_start(a->loop, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	if (bus_open(a, &a->bus, err, sizeof(err)) < 0) {
		log_err("%s", err);
		goto out;
	}
	/* Checked once here, not on the first statement: the check parses a
	 * dozen statements both ways. */
	if (!sql_classify_fast_enabled())
		log_warn("SQL classifier: the fast path disagrees with the JSON path on this "
			 "libpg_query build and is off; every statement takes the slower path");
	log_info("sluiced %s ready: %s, database %s, grants under %s/grants", PACKAGE_VERSION, config,
		 a->pol->p->agent.database, a->pol->p->agent.runtime_dir);
	agent_event(a, "agent.started", NULL, &a->uid, NULL, NULL, "sluiced %s, pid %d, config %s",
		    PACKAGE_VERSION, (int)getpid(), config);
	r = loop_run(a->loop);
	if (r < 0)
		log_err("event loop: %s", strerror(-r));
	else
		status = 0;
	while (!list_empty(&a->grants))
		grant_end(container_of(a->grants.next, struct grant, node), "agent-shutdown");
	sessions_end_all(a, "agent-shutdown");
	grants_close_ended(a);
out:
	pol_errors_clear(&errs);
	free(auditerr);
	/* Grants are gone: what is still pending is withdrawn (recorded and
	 * signalled), and the webhook worker stops. */
	approvals_fini(a);
	/* Before the bus: cancelled verifications still get their answer. */
	a->verifier = verifier_stop(a->verifier);
	guard_worker_stop();
	a->bus = bus_close(a->bus);
	/* The sessions are gone: their groups leave the snapshot. */
	nss_stop(a);
	sigw = loop_watch_del(sigw);
	if (sc.fd >= 0)
		close(sc.fd);
	a->audit = audit_close(a->audit);
	a->resolver = resolver_free(a->resolver);
	a->loop = loop_free(a->loop);
	policy_free(p);
	policy_ref_put(a->pol);
	return status;
}
