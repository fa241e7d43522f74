/* sluicectl: the admin and service CLI for sluiced. This file reads the
 * global options, picks the command and owns the messages; each command
 * lives in its own file. */
#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <stdarg.h>
#include <string.h>

#include "common/dbusc.h"

static const char usage_text[] =
	"Usage: sluicectl [--config FILE] [--json] COMMAND [ARGS...]\n"
	"\n"
	"Sessions (a verified OIDC token for your account):\n"
	"  exec [--token-file FILE|-] --connection CONNECTION [--ttl DURATION]\n"
	"       [--schema SCHEMA] [--reason TEXT] -- COMMAND [ARG...]\n"
	"                        run COMMAND in a session and a grant (PGHOST, PGPORT,\n"
	"                        PGDATABASE, SLUICE_SESSION, SLUICE_GRANT set); both end\n"
	"                        when it exits\n"
	"  login [--token-file FILE|-]\n"
	"                        open a session (token file: $SLUICE_TOKEN_FILE by default)\n"
	"  logout [ID]           close a session (default: $SLUICE_SESSION, else your only one)\n"
	"  sessions [--all]      list your sessions (--all: every session; admins only)\n"
	"  session show ID       show one session\n"
	"  session close ID      end a session and its grants\n"
	"\n"
	"Grants:\n"
	"  grant request CONNECTION [--ttl DURATION] [--schema SCHEMA] [--reason TEXT]\n"
	"                [--session ID] [--wait]\n"
	"                        ask sluiced for a time-boxed grant on CONNECTION in a\n"
	"                        session ($SLUICE_SESSION, else your newest); --wait: for\n"
	"                        an approver's decision when the grant needs one\n"
	"  grants [--all]        list your grants (--all: every grant; admins only)\n"
	"  grant show ID         show one grant\n"
	"  revoke ID             end a grant now\n"
	"\n"
	"Approvals:\n"
	"  approvals [--all]     pending approvals you may see (--all: also those decided\n"
	"                        in the last hour)\n"
	"  approve ID [--note TEXT]\n"
	"                        let a pending grant start, or a held statement run once\n"
	"  deny ID [--note TEXT] refuse it\n"
	"\n"
	"Agent:\n"
	"  status                sluiced's version, uptime, grants and audit health\n"
	"  reload                make sluiced re-read its configuration (admins only)\n"
	"\n"
	"Audit (reads the session database directly):\n"
	"  audit [--since WHEN] [--user USER] [--grant ID] [--decision DECISION]\n"
	"        [--events] [--limit N] [--database PATH]\n"
	"                        list recorded statements, or grant events with --events\n"
	"  audit verify [--database PATH]\n"
	"                        check that no audit row was changed or removed\n"
	"  replay GRANT_ID|STATEMENT_ID [--database PATH]\n"
	"                        a grant's statements as they happened, with what each\n"
	"                        sent back as far as it was recorded\n"
	"\n"
	"Policy:\n"
	"  policy check [FILE]   validate a configuration (default: the one in use)\n"
	"  policy explain --user USER --connection CONNECTION --sql TEXT\n"
	"         [--schema SCHEMA] [--group IDP-GROUP]...\n"
	"                        what sluiced would do with each statement, and why\n"
	"\n"
	"Options:\n"
	"  --config FILE         configuration file (default: $SLUICE_CONFIG, else\n"
	"                        " CTL_DEFAULT_CONFIG ")\n"
	"  --json                machine-readable output (every listing and show)\n"
	"  -h, --help            show this help\n"
	"  --version             show the version\n"
	"\n"
	"Exit status: 0 ok, 1 denied or failed, 2 usage error. See sluicectl(1).\n";

void ctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("sluicectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int ctl_emit_json(json_t *j)
{
	int r = ctl_print_json(j, stdout);

	json_decref(j);
	if (r < 0) {
		ctl_err("cannot write JSON");
		return CTL_FAILED;
	}
	return CTL_OK;
}

int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("sluicectl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'sluicectl --help' for more information.\n", stderr);
	return CTL_USAGE;
}

int ctl_command_args(struct ctl *ctl, const char *usage, int argc, char **argv,
		     const struct ctl_opt *opts, char **pos, size_t min_pos, size_t max_pos,
		     size_t *n_pos)
{
	const char *config = NULL;
	bool json = false, help = false;
	const struct ctl_opt globals[] = {
		{ "config", true, &config, NULL },
		{ "json", false, NULL, &json },
		{ "help", false, NULL, &help },
		{ NULL, false, NULL, NULL },
	};
	const struct ctl_opt *tables[] = { opts, globals };
	char err[256];

	if (ctl_parse_args(argc, argv, tables, ARRAY_SIZE(tables), pos, max_pos, n_pos, err,
			   sizeof(err)) < 0)
		return ctl_usage_error("%s", err);
	if (help) {
		printf("Usage: %s\n", usage);
		return CTL_OK;
	}
	if (*n_pos < min_pos)
		return ctl_usage_error("missing argument\nUsage: %s", usage);
	if (config) {
		if (!*config)
			return ctl_usage_error("--config needs a file name");
		ctl->config_path = config;
	}
	if (json)
		ctl->json = true;
	return -1;
}

int ctl_list_command(struct ctl *ctl, int argc, char **argv, const char *usage,
		     const char *method, json_t *(*to_json)(const struct dbusc_dict *d),
		     int (*table)(const struct ctl *ctl, const struct dbusc_dict_list *l, bool all))
{
	bool all = false;
	const struct ctl_opt opts[] = {
		{ "all", false, NULL, &all },
		{ NULL, false, NULL, NULL },
	};
	struct dbusc_dict_list l = { 0 };
	size_t n_pos;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, NULL, 0, 0, &n_pos);
	if (r >= 0)
		return r;
	r = ctl_list_call(method, all, &l);
	if (r != 0)
		return r;
	if (ctl->json) {
		json_t *a = json_array();

		r = a ? 0 : -ENOMEM;
		for (size_t i = 0; i < l.n && r == 0; i++)
			if (json_array_append_new(a, to_json(&l.v[i])) < 0)
				r = -ENOMEM;
		if (r == 0) {
			r = ctl_emit_json(a);
		} else {
			json_decref(a);
			ctl_err("out of memory");
			r = CTL_FAILED;
		}
	} else {
		r = table(ctl, &l, all);
	}
	dbusc_dict_list_clear(&l);
	return r;
}

int ctl_show_command(struct ctl *ctl, int argc, char **argv, const char *usage,
		     const char *method, json_t *(*to_json)(const struct dbusc_dict *d),
		     void (*details)(const struct dbusc_dict *d))
{
	const struct ctl_opt opts[] = { { NULL, false, NULL, NULL } };
	struct dbusc_dict d = { 0 };
	DBusMessage *reply = NULL;
	char *pos[1];
	size_t n_pos;
	const char *id;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, pos, 1, 1, &n_pos);
	if (r >= 0)
		return r;
	id = pos[0];
	r = ctl_call(method, &reply, DBUS_TYPE_STRING, &id, DBUS_TYPE_INVALID);
	if (r != 0)
		return r;
	r = dbusc_reply_dict(reply, &d);
	dbus_message_unref(reply);
	if (r < 0)
		return ctl_bad_reply(method, r);
	if (ctl->json) {
		r = ctl_emit_json(to_json(&d));
	} else {
		details(&d);
		r = CTL_OK;
	}
	dbusc_dict_clear(&d);
	return r;
}

int ctl_table_done(struct table *t, int r, const char *what)
{
	if (r == 0)
		r = table_flush(t, stdout);
	table_free(t);
	if (r < 0) {
		ctl_err("cannot print the %s: %s", what, strerror(-r));
		return CTL_FAILED;
	}
	return CTL_OK;
}

static int cmd_help(struct ctl *ctl, int argc, char **argv)
{
	fputs(usage_text, stdout);
	return CTL_OK;
}

static const struct {
	const char *name;
	int (*run)(struct ctl *ctl, int argc, char **argv);
} commands[] = {
	{ "status", cmd_status },
	{ "exec", cmd_exec },
	{ "login", cmd_login },
	{ "logout", cmd_logout },
	{ "sessions", cmd_sessions },
	{ "session", cmd_session },
	{ "grant", cmd_grant },
	{ "grants", cmd_grants },
	{ "revoke", cmd_revoke },
	{ "approvals", cmd_approvals },
	{ "approve", cmd_approve },
	{ "deny", cmd_deny },
	{ "audit", cmd_audit },
	{ "replay", cmd_replay },
	{ "policy", cmd_policy },
	{ "reload", cmd_reload },
	{ "help", cmd_help },
};

static int run(int argc, char **argv)
{
	struct ctl ctl = { .ellipsis = "..." };
	const char *env = getenv("SLUICE_CONFIG");
	bool help = false;
	int i;

	setlocale(LC_CTYPE, "");
	if (strcmp(nl_langinfo(CODESET), "UTF-8") == 0)
		ctl.ellipsis = "\u2026";
	ctl.config_path = env && *env ? env : CTL_DEFAULT_CONFIG;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--json") == 0) {
			ctl.json = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			help = true;
		} else if (strcmp(a, "--version") == 0) {
			printf("sluicectl %s\n", PACKAGE_VERSION);
			return CTL_OK;
		} else if (strcmp(a, "--config") == 0 || strncmp(a, "--config=", 9) == 0) {
			const char *v = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
			if (!v)
				return ctl_usage_error("option '--config' needs a value");
			if (!*v)
				return ctl_usage_error("--config needs a file name");
			ctl.config_path = v;
		} else {
			return ctl_usage_error("unknown option '%s'", a);
		}
	}
	if (i == argc) {
		if (help)
			return cmd_help(&ctl, 0, NULL);
		fputs(usage_text, stderr);
		return CTL_USAGE;
	}
	if (help)
		return cmd_help(&ctl, 0, NULL);
	for (size_t c = 0; c < ARRAY_SIZE(commands); c++)
		if (strcmp(argv[i], commands[c].name) == 0)
			return commands[c].run(&ctl, argc - i - 1, argv + i + 1);
	return ctl_usage_error("unknown command '%s'", argv[i]);
}

int main(int argc, char **argv)
{
	int r = run(argc, argv);

	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_err("cannot write the output: %s", strerror(errno ? errno : EIO));
		return CTL_FAILED;
	}
	return r;
}
