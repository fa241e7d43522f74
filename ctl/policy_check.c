/* policy check [FILE]: parse and validate a configuration the way sluiced
 * will, including the features this version refuses to run with. */
#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <string.h>

#include "policy/host.h"
#include "policy/policy.h"

static const char *plural(size_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static int check_json(const char *file, const struct policy *p, const struct pol_errors *errs)
{
	json_t *o = json_object(), *e = json_array(), *files = json_array();
	int r = (o && e && files) ? 0 : -ENOMEM;

	for (size_t i = 0; i < errs->n && r == 0; i++)
		if (json_array_append_new(e, ctl_json_string(errs->v[i])) < 0)
			r = -ENOMEM;
	for (size_t i = 0; p && i < p->n_files && r == 0; i++)
		if (json_array_append_new(files, ctl_json_string(p->files[i])) < 0)
			r = -ENOMEM;
	if (r == 0 && (json_object_set_new(o, "file", ctl_json_string(file)) < 0 ||
		       json_object_set_new(o, "ok", json_boolean(errs->n == 0)) < 0 ||
		       json_object_set(o, "errors", e) < 0 || json_object_set(o, "files", files) < 0))
		r = -ENOMEM;
	if (r == 0 && p && errs->n == 0 &&
	    (json_object_set_new(o, "connections", json_integer((json_int_t)p->n_connections)) < 0 ||
	     json_object_set_new(o, "access_rules", json_integer((json_int_t)p->n_access)) < 0 ||
	     json_object_set_new(o, "identities", json_integer((json_int_t)p->n_identities)) < 0 ||
	     json_object_set_new(o, "oidc_issuers", json_integer((json_int_t)p->n_oidc)) < 0))
		r = -ENOMEM;
	if (r == 0)
		r = ctl_print_json(o, stdout);
	json_decref(o);
	json_decref(e);
	json_decref(files);
	return r;
}

int cmd_policy(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] = "sluicectl policy check [FILE]";
	const struct ctl_opt opts[] = { { NULL, false, NULL, NULL } };
	struct pol_errors errs = { 0 };
	struct policy *p = NULL;
	char *pos[1];
	size_t n_pos;
	const char *file;
	int r, ret;

	if (argc < 1)
		return ctl_usage_error("'policy' needs a subcommand: check or explain");
	if (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
		printf("Usage: %s\n       sluicectl policy explain --user USER --connection CONNECTION "
		       "--sql TEXT ...\n", usage);
		return CTL_OK;
	}
	if (strcmp(argv[0], "explain") == 0)
		return cmd_policy_explain(ctl, argc - 1, argv + 1);
	if (strcmp(argv[0], "check") != 0)
		return ctl_usage_error("unknown policy subcommand '%s' (expected check or explain)", argv[0]);
	r = ctl_command_args(ctl, usage, argc - 1, argv + 1, opts, pos, 0, 1, &n_pos);
	if (r >= 0)
		return r;
	file = n_pos > 0 ? pos[0] : ctl->config_path;
	if (!*file)
		return ctl_usage_error("the file name is empty");

	r = policy_load(file, &p, &errs);
	if (r == 0) {
		(void)policy_check_host(p, HOST_PASSWD_FILE, HOST_GROUP_FILE, &errs);
	} else if (errs.n == 0)
		/* policy_load always explains; never report success on a failure */
		ctl_err("%s: %s", file, strerror(-r));

	if (ctl->json) {
		if (check_json(file, p, &errs) < 0)
			ctl_err("cannot write JSON");
	} else if (errs.n > 0) {
		for (size_t i = 0; i < errs.n; i++) {
			char *m = ctl_sanitize(errs.v[i], true);
			fprintf(stderr, "%s\n", m ? m : "?");
			free(m);
		}
		ctl_err("%s: %zu %s", file, errs.n, plural(errs.n, "error", "errors"));
	} else if (r == 0) {
		printf("%s: OK\n", file);
		printf("%zu %s, %zu access %s, %zu %s, %zu OIDC %s; %zu %s read\n",
		       p->n_connections, plural(p->n_connections, "connection", "connections"),
		       p->n_access, plural(p->n_access, "rule", "rules"),
		       p->n_identities, plural(p->n_identities, "identity", "identities"),
		       p->n_oidc, plural(p->n_oidc, "issuer", "issuers"),
		       p->n_files, plural(p->n_files, "file", "files"));
	}
	ret = (r == 0 && errs.n == 0) ? CTL_OK : CTL_FAILED;
	pol_errors_clear(&errs);
	p = policy_free(p);
	return ret;
}
