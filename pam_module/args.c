#include "config.h"
#include "pam_module/args.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static const char *value_of(const char *arg, const char *key)
{
	size_t n = strlen(key);

	return strncmp(arg, key, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

int pam_sluice_args_parse(int argc, const char **argv, struct pam_sluice_args *out,
			  const char **bad)
{
	struct pam_sluice_args a = { .timeout_s = PAM_SLUICE_TIMEOUT_DEFAULT };

	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *v;
		uint64_t t;

		if (!arg) {
			*bad = "(null)";
			return -EINVAL;
		}
		if (strcmp(arg, "use_first_pass") == 0)
			a.use_first_pass = true;
		else if (strcmp(arg, "try_first_pass") == 0)
			a.try_first_pass = true;
		else if (strcmp(arg, "debug") == 0)
			a.debug = true;
		else if ((v = value_of(arg, "token_file"))) {
			char *probe = NULL;

			/* A relative path would depend on the caller's cwd; a
			 * bad % sequence is caught here, not at login. */
			if (v[0] != '/' || a.token_file || pam_sluice_expand_path(v, "u", &probe) < 0) {
				*bad = arg;
				return -EINVAL;
			}
			free(probe);
			a.token_file = v;
		} else if ((v = value_of(arg, "timeout"))) {
			if (parse_u64(v, 1, PAM_SLUICE_TIMEOUT_MAX, &t) < 0) {
				*bad = arg;
				return -EINVAL;
			}
			a.timeout_s = (int)t;
		} else {
			*bad = arg;
			return -EINVAL;
		}
	}
	if (a.use_first_pass)
		a.try_first_pass = false;
	*out = a;
	return 0;
}

static bool user_fits_path(const char *user)
{
	size_t n = strlen(user);

	if (n == 0 || n > PAM_SLUICE_USER_MAX || strcmp(user, ".") == 0 || strcmp(user, "..") == 0)
		return false;
	for (const unsigned char *p = (const unsigned char *)user; *p; p++)
		if (*p == '/' || *p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

int pam_sluice_expand_path(const char *tmpl, const char *user, char **out)
{
	char buf[PAM_SLUICE_PATH_MAX + 1];
	size_t n = 0;
	char *r;

	if (!tmpl || tmpl[0] != '/' || !user)
		return -EINVAL;
	for (const char *p = tmpl; *p; p++) {
		const char *piece;
		size_t len;

		if (*p != '%') {
			piece = p;
			len = 1;
		} else if (p[1] == '%') {
			piece = "%";
			len = 1;
			p++;
		} else if (p[1] == 'u') {
			if (!user_fits_path(user))
				return -EINVAL;
			piece = user;
			len = strlen(user);
			p++;
		} else
			return -EINVAL;
		if (len > PAM_SLUICE_PATH_MAX - n)
			return -ENAMETOOLONG;
		memcpy(buf + n, piece, len);
		n += len;
	}
	buf[n] = '\0';
	r = strdup(buf);
	if (!r)
		return -ENOMEM;
	*out = r;
	return 0;
}
