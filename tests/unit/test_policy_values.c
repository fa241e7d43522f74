/* The building blocks of sluice.conf(5): identifier folding, list
 * splitting, principals and their matching, issuer URLs, hosts, sizes and
 * the name tables. */
#include "config.h"
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/classes.h"
#include "policy/ident.h"
#include "policy/policy.h"
#include "policy/principal.h"
#include "policy/value.h"

static void ident_folding(void **state)
{
	static const struct { const char *in, *out; } ok[] = {
		{ "ops", "ops" }, { "OPS", "ops" }, { "Ops_2$", "ops_2$" }, { "_x", "_x" },
		{ "\"Ops\"", "Ops" }, { "\"Mixed Case\"", "Mixed Case" }, { "\"we\"\"ird\"", "we\"ird" },
		{ "\"a.b\"", "a.b" }, { "\"1st\"", "1st" }, { "ÄÖü", "ÄÖü" }, /* only ASCII folds */
		{ "\"\"\"\"", "\"" },
	};
	static const char *bad[] = {
		"", "1ops", "ops-x", "ops.x", "\"\"", "\"open", "\"a\"b", "a b", "$x", "\"a\"\"",
	};
	char long_ok[64], long_bad[65];
	const char *why;
	char *out;

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		out = NULL;
		assert_int_equal(ident_fold(ok[i].in, &out, &why), 0);
		assert_string_equal(out, ok[i].out);
		free(out);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		out = (char *)"untouched";
		why = NULL;
		assert_int_equal(ident_fold(bad[i], &out, &why), -EINVAL);
		assert_string_equal(out, "untouched");
		assert_non_null(why);
	}
	/* 63 bytes is PostgreSQL's limit; 64 would be silently truncated there. */
	memset(long_ok, 'A', 63), long_ok[63] = '\0';
	memset(long_bad, 'a', 64), long_bad[64] = '\0';
	assert_int_equal(ident_fold(long_ok, &out, &why), 0);
	assert_int_equal(strlen(out), 63);
	assert_int_equal(out[0], 'a');
	free(out);
	assert_int_equal(ident_fold(long_bad, &out, &why), -EINVAL);
	assert_non_null(strstr(why, "63"));
}

static void ident_three_parts(void **state)
{
	static const struct { const char *in, *s, *t, *c; } ok[] = {
		{ "ops.customers.ssn", "ops", "customers", "ssn" },
		{ "OPS.Customers.SSN", "ops", "customers", "ssn" },
		{ "\"Ops\".\"Cus.tomers\".\"S S N\"", "Ops", "Cus.tomers", "S S N" },
		{ "ops.\"we\"\"ird\".x", "ops", "we\"ird", "x" },
	};
	static const char *bad[] = {
		"ops.customers", "ops", "a.b.c.d", "a..c", ".b.c", "a.b.", "a.\"\".c", "a.b.\"c",
		"a.b.c ", "a-b.c.d",
	};
	const char *why;
	char *parts[3];

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		assert_int_equal(ident_split3(ok[i].in, parts, &why), 0);
		assert_string_equal(parts[0], ok[i].s);
		assert_string_equal(parts[1], ok[i].t);
		assert_string_equal(parts[2], ok[i].c);
		for (int j = 0; j < 3; j++)
			free(parts[j]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		parts[0] = parts[1] = parts[2] = NULL;
		assert_int_equal(ident_split3(bad[i], parts, &why), -EINVAL);
		assert_null(parts[0]);
	}
}

static void lists(void **state)
{
	char **items;
	size_t n;
	char big[LIST_MAX_ITEMS * 2 + 4];

	assert_int_equal(list_split("  a\tb   c ", 10, &items, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(items[0], "a");
	assert_string_equal(items[1], "b");
	assert_string_equal(items[2], "c");
	list_items_free(items, n);

	assert_int_equal(list_split("", 10, &items, &n), 0);
	assert_int_equal(n, 0);
	list_items_free(items, n);

	/* Quotes keep blanks together (and stay, for the identifier folder). */
	assert_int_equal(list_split("ops \"My Schema\" x", 10, &items, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(items[1], "\"My Schema\"");
	list_items_free(items, n);

	items = NULL;
	assert_int_equal(list_split("a \"b c", 10, &items, &n), -EINVAL);
	assert_null(items);
	assert_int_equal(list_split("a b c", 2, &items, &n), -E2BIG);

	/* The cap is LIST_MAX_ITEMS. */
	for (size_t i = 0; i < LIST_MAX_ITEMS; i++)
		big[2 * i] = 'x', big[2 * i + 1] = ' ';
	big[2 * LIST_MAX_ITEMS] = '\0';
	assert_int_equal(list_split(big, LIST_MAX_ITEMS, &items, &n), 0);
	assert_int_equal(n, LIST_MAX_ITEMS);
	list_items_free(items, n);
	strcat(big, "y");
	assert_int_equal(list_split(big, LIST_MAX_ITEMS, &items, &n), -E2BIG);
}

static void principals(void **state)
{
	static const struct { const char *in; enum principal_kind kind; const char *name; } ok[] = {
		{ "root", PRINCIPAL_USER, "root" },
		{ "mcp-orders", PRINCIPAL_USER, "mcp-orders" },
		{ "machine$", PRINCIPAL_USER, "machine$" },
		{ "@data-readers", PRINCIPAL_IDP_GROUP, "data-readers" },
		{ "@acme/platform:admins", PRINCIPAL_IDP_GROUP, "acme/platform:admins" },
		{ "%sluice-admins", PRINCIPAL_UNIX_GROUP, "sluice-admins" },
		{ "%_ssh", PRINCIPAL_UNIX_GROUP, "_ssh" },
	};
	static const char *bad[] = {
		"@", "%", "-x", "1user", "a/b", "%1grp", "%a b", "us$er", "%@x",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 33 */
	};
	struct principal pr;
	const char *why;

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		assert_int_equal(principal_parse(ok[i].in, &pr, &why), 0);
		assert_int_equal(pr.kind, ok[i].kind);
		assert_string_equal(pr.name, ok[i].name);
		free(pr.name);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		pr.name = NULL;
		assert_int_equal(principal_parse(bad[i], &pr, &why), -EINVAL);
		assert_null(pr.name);
	}
}

static void principal_matching(void **state)
{
	struct principal v[] = {
		{ PRINCIPAL_USER, (char *)"mcp-orders" },
		{ PRINCIPAL_UNIX_GROUP, (char *)"wheel" },
		{ PRINCIPAL_IDP_GROUP, (char *)"data-readers" },
	};
	struct principal_list l = { v, ARRAY_SIZE(v) }, empty = { NULL, 0 };
	const char *ug[] = { "users", "wheel" }, *ig[] = { "data-readers" };
	const char *ug_named_like_idp[] = { "data-readers" }, *ig_named_like_unix[] = { "wheel" };
	struct caller_facts c = { .user = "mcp-orders", .uid = 61001 };

	assert_true(principal_list_matches(&l, &c));
	c.user = "mcp-billing";
	assert_false(principal_list_matches(&l, &c));
	c.unix_groups = ug, c.n_unix_groups = 2;
	assert_true(principal_list_matches(&l, &c));
	c.unix_groups = NULL, c.n_unix_groups = 0;
	c.idp_groups = ig, c.n_idp_groups = 1;
	assert_true(principal_list_matches(&l, &c));
	/* Kinds never cross: a Unix group is not an IdP group, nor a user. */
	c.idp_groups = ig_named_like_unix, c.n_idp_groups = 1;
	c.unix_groups = ug_named_like_idp, c.n_unix_groups = 1;
	assert_false(principal_list_matches(&l, &c));
	c.user = "wheel";
	c.idp_groups = NULL, c.n_idp_groups = 0, c.unix_groups = NULL, c.n_unix_groups = 0;
	assert_false(principal_list_matches(&l, &c));
	/* Exact, case-sensitive. */
	c.user = "MCP-orders";
	assert_false(principal_list_matches(&l, &c));
	c.user = "mcp-order";
	assert_false(principal_list_matches(&l, &c));
	/* Nothing matches an empty list, a caller without a name, or NULL. */
	c.user = "mcp-orders";
	assert_false(principal_list_matches(&empty, &c));
	assert_false(principal_list_matches(NULL, &c));
	assert_false(principal_list_matches(&l, NULL));
	c.user = NULL;
	assert_false(principal_list_matches(&l, &c));
}

static void issuers(void **state)
{
	static const char *ok[] = {
		"https://idp.example.com", "https://idp.example.com/", "https://idp.example.com:8443/realms/x",
		"https://10.1.2.3", "https://[2001:db8::1]:443/x", "http://localhost", "http://localhost:8080/x",
		"http://127.0.0.1:5556/dex", "http://[::1]:8080",
		"https://token.actions.githubusercontent.com",
	};
	static const char *bad[] = {
		"", "idp.example.com", "ftp://idp", "http://idp.example.com", "http://127.0.0.2",
		"http://localhost.evil.com", "https://", "https:///x", "https://a@b", "https://idp?x=1",
		"https://idp#frag", "https://idp:0", "https://idp:65536", "https://idp:x",
		"https://[::1", "https://[nope]", "https://idp .com", "HTTPS://idp.example.com",
		"http://[::2]",
	};
	const char *why;

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		why = NULL;
		if (val_issuer(ok[i], &why) != 0)
			fail_msg("%s refused: %s", ok[i], why);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		why = NULL;
		if (val_issuer(bad[i], &why) != -EINVAL || !why)
			fail_msg("%s accepted", bad[i]);
	}
}

static void hosts(void **state)
{
	static const struct { const char *in; enum host_kind kind; } ok[] = {
		{ "db.internal", HOST_NAME }, { "db", HOST_NAME }, { "db-1.x.example", HOST_NAME },
		{ "db_1", HOST_NAME }, { "10.0.0.1", HOST_IPV4 }, { "::1", HOST_IPV6 },
		{ "fd00::5", HOST_IPV6 }, { "/run/postgresql", HOST_SOCKET_DIR }, { "/tmp/", HOST_SOCKET_DIR },
		{ "1a.example", HOST_NAME },
	};
	static const char *bad[] = {
		"", "db internal", "db..internal", ".db", "db.", "-db", "db-", "10.0.0.256", "1.2.3",
		"[::1]", "run/postgresql", "/run/../x", "db:5432", "user@db",
		"/a/./b",
	};
	char longdir[SOCKET_DIR_MAX + 2];
	enum host_kind k;

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		k = (enum host_kind)99;
		if (val_host(ok[i].in, &k) != 0)
			fail_msg("%s refused", ok[i].in);
		assert_int_equal(k, ok[i].kind);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (val_host(bad[i], &k) == 0)
			fail_msg("%s accepted", bad[i]);
	longdir[0] = '/';
	memset(longdir + 1, 'd', SOCKET_DIR_MAX - 1);
	longdir[SOCKET_DIR_MAX] = '\0';
	assert_int_equal(val_host(longdir, &k), 0);
	longdir[SOCKET_DIR_MAX] = 'd', longdir[SOCKET_DIR_MAX + 1] = '\0';
	assert_int_equal(val_host(longdir, &k), -ENAMETOOLONG);
}

static void sizes(void **state)
{
	uint64_t v = 7;

	assert_int_equal(val_size("65536", 0, UINT32_MAX, &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(val_size("16M", 0, UINT32_MAX, &v), 0);
	assert_int_equal(v, 16u << 20);
	assert_int_equal(val_size("16MiB", 0, UINT32_MAX, &v), 0);
	assert_int_equal(v, 16u << 20);
	assert_int_equal(val_size("64K", 0, UINT32_MAX, &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(val_size("1G", 0, UINT32_MAX, &v), 0);
	assert_int_equal(v, 1u << 30);
	v = 7;
	assert_int_equal(val_size("16 M", 0, UINT32_MAX, &v), -EINVAL);
	assert_int_equal(val_size("16m", 0, UINT32_MAX, &v), -EINVAL);
	assert_int_equal(val_size("M", 0, UINT32_MAX, &v), -EINVAL);
	assert_int_equal(val_size("-1", 0, UINT32_MAX, &v), -EINVAL);
	assert_int_equal(val_size("4G", 0, UINT32_MAX, &v), -ERANGE);
	assert_int_equal(val_size("99999999999999999999G", 0, UINT64_MAX, &v), -ERANGE);
	assert_int_equal(val_size("17179869184G", 0, UINT64_MAX, &v), -ERANGE); /* overflows 64 bits */
	assert_int_equal(v, 7);
}

static void paths_and_names(void **state)
{
	assert_true(val_abs_path("/etc/sluice/credentials/orders-pg"));
	assert_true(val_abs_path("/"));
	assert_true(val_abs_path("/var//lib/x.db"));
	assert_true(val_abs_path("/etc/..hidden/x"));
	assert_false(val_abs_path("etc/x"));
	assert_false(val_abs_path(""));
	assert_false(val_abs_path("/etc/../x"));
	assert_false(val_abs_path("/etc/./x"));
	assert_false(val_abs_path("/etc/my file"));

	assert_true(val_unix_name("sluice"));
	assert_true(val_unix_name("_apt"));
	assert_true(val_unix_name("Svc.Orders-1"));
	assert_true(val_unix_name("host$"));
	assert_false(val_unix_name(""));
	assert_false(val_unix_name("1abc"));
	assert_false(val_unix_name("-abc"));
	assert_false(val_unix_name("a$b"));
	assert_false(val_unix_name("a:b"));
	assert_true(val_unix_name("abcdefghijklmnopqrstuvwxyz012345"));
	assert_false(val_unix_name("abcdefghijklmnopqrstuvwxyz0123456"));
}

static void name_tables(void **state)
{
	const char *all = stmt_class_names();
	char *copy = strdup(all), *save = NULL;
	int seen = 0;

	/* The vocabulary string, the enum and the look-ups agree. */
	for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		int c = stmt_class_from_name(w);
		assert_int_equal(c, seen);
		assert_string_equal(stmt_class_name((enum stmt_class)c), w);
		assert_non_null(stmt_class_description((enum stmt_class)c));
		seen++;
	}
	free(copy);
	assert_int_equal(seen, CLASS__COUNT);
	assert_int_equal(stmt_class_from_name("dll"), -1);
	assert_int_equal(stmt_class_from_name("READ"), -1);
	assert_int_equal(stmt_class_from_name(NULL), -1);
	assert_null(stmt_class_name(CLASS__COUNT));

	assert_string_equal(mask_method_name(MASK_LAST4), "last4");
	assert_int_equal(mask_method_from_name("null"), MASK_NULL);
	assert_int_equal(mask_method_from_name("Null"), -1);
	assert_string_equal(detector_name(DETECT_IBAN), "iban");
	assert_null(detector_name(DETECT_IBAN | DETECT_SSN));
	assert_int_equal(detector_from_name("credit-card"), DETECT_CREDIT_CARD);
	assert_string_equal(sslmode_name(SSLMODE_VERIFY_CA), "verify-ca");
	assert_int_equal(sslmode_from_name("verify-full"), SSLMODE_VERIFY_FULL);
	assert_string_equal(approval_mode_name(APPROVAL_WRITES), "writes");
	assert_string_equal(conn_type_name(CONN_POSTGRES), "postgres");
	assert_true(jws_alg_allowed("PS512"));
	assert_false(jws_alg_allowed("HS256"));
	assert_false(jws_alg_allowed("none"));
	assert_false(jws_alg_allowed("EdDSA"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ident_folding),
		cmocka_unit_test(ident_three_parts),
		cmocka_unit_test(lists),
		cmocka_unit_test(principals),
		cmocka_unit_test(principal_matching),
		cmocka_unit_test(issuers),
		cmocka_unit_test(hosts),
		cmocka_unit_test(sizes),
		cmocka_unit_test(paths_and_names),
		cmocka_unit_test(name_tables),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
