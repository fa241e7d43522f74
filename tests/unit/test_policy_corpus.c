/* The configuration format as a contract: every file in configs/bad/ must
 * be refused with the message and line its first comment names, every file
 * in configs/good/ must load. Adding a case is adding a file.
 *
 *   # expect: LINE: FRAGMENT   the first error is "FILE:LINE: ..." and
 *                              contains FRAGMENT
 *   # count: N                 (optional) exactly N errors
 */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/policy.h"

static char **list_conf(const char *dir, size_t *n)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	char **v = NULL;

	*n = 0;
	assert_non_null(dp);
	while ((de = readdir(dp))) {
		size_t len = strlen(de->d_name);
		if (len < 6 || strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		v = realloc(v, (*n + 1) * sizeof(*v));
		assert_non_null(v);
		assert_true(asprintf(&v[*n], "%s/%s", dir, de->d_name) > 0);
		(*n)++;
	}
	closedir(dp);
	return v;
}

/* The value of "# NAME: value" among the leading comment lines, or NULL. */
static char *header(const char *path, const char *name)
{
	FILE *f = fopen(path, "re");
	char line[8192], *res = NULL;
	size_t nl = strlen(name);

	assert_non_null(f);
	while (fgets(line, sizeof(line), f) && line[0] == '#') {
		const char *p = line + 1;
		while (*p == ' ')
			p++;
		if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
			p += nl + 1;
			while (*p == ' ')
				p++;
			res = strdup(p);
			res[strcspn(res, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
	return res;
}

static void bad_configs(void **state)
{
	size_t n, failed = 0;
	char **files = list_conf(CONFIG_CORPUS "/bad", &n);

	assert_true(n >= 100); /* the corpus did not go missing */
	for (size_t i = 0; i < n; i++) {
		struct pol_errors errs = { 0 };
		struct policy *p = NULL;
		char *expect = header(files[i], "expect"), *count = header(files[i], "count");
		char *colon, prefix[4200];
		unsigned long line;
		int r;

		if (!expect) {
			print_error("%s: no \"# expect: LINE: fragment\" header\n", files[i]);
			failed++;
			continue;
		}
		line = strtoul(expect, &colon, 10);
		assert_true(line > 0 && colon[0] == ':' && colon[1] == ' ');
		r = policy_load(files[i], &p, &errs);
		snprintf(prefix, sizeof(prefix), "%s:%lu: ", files[i], line);
		if (r != -EINVAL || p != NULL || errs.n == 0) {
			print_error("%s: loaded (r=%d), expected line %lu: %s\n", files[i], r, line, colon + 2);
			failed++;
		} else if (strncmp(errs.v[0], prefix, strlen(prefix)) != 0 || !strstr(errs.v[0], colon + 2)) {
			print_error("%s:\n  expected %s...%s\n  got      %s\n", files[i], prefix, colon + 2, errs.v[0]);
			failed++;
		} else if (count && strtoul(count, NULL, 10) != errs.n) {
			print_error("%s: expected %s errors, got %zu:\n", files[i], count, errs.n);
			for (size_t j = 0; j < errs.n; j++)
				print_error("  %s\n", errs.v[j]);
			failed++;
		} else if (!count && errs.n != 1) {
			/* One mistake, one message: no cascades. */
			print_error("%s: expected exactly one error, got %zu:\n", files[i], errs.n);
			for (size_t j = 0; j < errs.n; j++)
				print_error("  %s\n", errs.v[j]);
			failed++;
		}
		pol_errors_clear(&errs);
		policy_free(p);
		free(expect);
		free(count);
		free(files[i]);
	}
	free(files);
	assert_int_equal(failed, 0);
}

static void check_good(const char *path, size_t *failed)
{
	struct pol_errors errs = { 0 };
	struct policy *p = NULL;
	int r = policy_load(path, &p, &errs);

	if (r != 0 || !p || errs.n != 0) {
		print_error("%s: refused (r=%d):\n", path, r);
		for (size_t j = 0; j < errs.n; j++)
			print_error("  %s\n", errs.v[j]);
		(*failed)++;
	}
	pol_errors_clear(&errs);
	policy_free(p);
}

static void good_configs(void **state)
{
	size_t n, failed = 0;
	char **files = list_conf(CONFIG_CORPUS "/good", &n);

	assert_true(n >= 5);
	for (size_t i = 0; i < n; i++) {
		check_good(files[i], &failed);
		free(files[i]);
	}
	free(files);
	assert_int_equal(failed, 0);
}

/* The example an admin starts from is installed as the configuration when
 * there is none: it must load, and the agent must accept it. Its commented
 * examples ("#key = value", "#[section]") must be valid too once the "#"
 * is removed, as the file tells the admin to do. */
static void shipped_example(void **state)
{
	struct pol_errors errs = { 0 };
	struct policy *p = NULL;
	size_t failed = 0, n = 0, uncommented = 0;
	char *text = NULL, *out, *o;
	FILE *f;

	check_good(DATA_DIR "/sluice.conf", &failed);
	assert_int_equal(failed, 0);

	f = fopen(DATA_DIR "/sluice.conf", "re");
	assert_non_null(f);
	assert_true(getdelim(&text, &n, '\0', f) > 0);
	fclose(f);
	out = o = calloc(1, strlen(text) + 1);
	assert_non_null(out);
	for (char *line = text; *line;) {
		size_t len = strcspn(line, "\n");
		bool example = line[0] == '#' && len > 1 && line[1] != ' ' && line[1] != '#' &&
			       (line[1] == '[' || memchr(line, '=', len));
		if (example) {
			line++, len--;
			uncommented++;
		}
		memcpy(o, line, len);
		o += len;
		*o++ = '\n';
		line += len + (line[len] == '\n');
	}
	assert_true(uncommented > 30);
	if (policy_load_string("sluice.conf (uncommented)", out, &p, &errs) != 0) {
		for (size_t i = 0; i < errs.n; i++)
			print_error("%s\n", errs.v[i]);
		fail();
	}
	/* Everything in it is in use. */
	assert_int_equal(p->n_oidc, 1);
	assert_int_equal(p->n_identities, 1);
	assert_int_equal(p->n_connections, 1);
	assert_int_equal(p->n_access, 1);
	assert_int_equal(p->n_guardrails, 1);
	assert_int_equal(p->n_masks, 1);
	assert_true(p->has_nss);
	policy_free(p);
	pol_errors_clear(&errs);
	free(out);
	free(text);
}

/* The DESIGN.md example parses, [mask] and all. */
static void design_example(void **state)
{
	struct pol_errors errs = { 0 };
	struct policy *p = NULL;
	const char *path = CONFIG_CORPUS "/good/design-example.conf";

	(void)state;
	assert_int_equal(policy_load(path, &p, &errs), 0);
	assert_int_equal(errs.n, 0);
	assert_int_equal(p->n_masks, 1);
	assert_int_equal(p->masks[0].n_rules, 3);
	policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_configs),
		cmocka_unit_test(good_configs),
		cmocka_unit_test(shipped_example),
		cmocka_unit_test(design_example),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
