#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <string.h>

static const struct ctl_opt *find_opt(const struct ctl_opt *const *opts, size_t n_tables,
				      const char *name, size_t len)
{
	for (size_t t = 0; t < n_tables; t++)
		for (const struct ctl_opt *o = opts[t]; o && o->name; o++)
			if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
				return o;
	return NULL;
}

int ctl_parse_args(int argc, char **argv, const struct ctl_opt *const *opts, size_t n_tables,
		   char **pos, size_t max_pos, size_t *n_pos, char *err, size_t errlen)
{
	bool options_done = false;
	size_t np = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		const struct ctl_opt *o;
		const char *name, *eq;
		size_t len;

		if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
			if (np == max_pos) {
				snprintf(err, errlen, "unexpected argument '%s'", a);
				return -EINVAL;
			}
			pos[np++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			options_done = true;
			continue;
		}
		if (strcmp(a, "-h") == 0) {
			name = "help";
			len = 4;
			eq = NULL;
		} else if (a[1] == '-') {
			name = a + 2;
			eq = strchr(name, '=');
			len = eq ? (size_t)(eq - name) : strlen(name);
		} else {
			snprintf(err, errlen, "unknown option '%s'", a);
			return -EINVAL;
		}
		o = find_opt(opts, n_tables, name, len);
		if (!o) {
			snprintf(err, errlen, "unknown option '--%.*s'", (int)MIN(len, 64), name);
			return -EINVAL;
		}
		if (!o->has_arg) {
			if (eq) {
				snprintf(err, errlen, "option '--%s' takes no value", o->name);
				return -EINVAL;
			}
			*o->flag = true;
			continue;
		}
		if (eq) {
			*o->value = eq + 1;
		} else if (i + 1 < argc) {
			*o->value = argv[++i];
		} else {
			snprintf(err, errlen, "option '--%s' needs a value", o->name);
			return -EINVAL;
		}
	}
	*n_pos = np;
	return 0;
}
