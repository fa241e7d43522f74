/* Loading as a whole: defaults, parsed values, comments, conf.d includes,
 * size caps, error collection and order, what this version refuses, and the
 * access look-up. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/buf.h"
#include "policy/classify.h"
#include "policy/policy.h"

#define CONN "[connection orders-pg]\ntype = postgres\nhost = db.internal\ndbname = orders\nuser = broker\n"
#define OIDC "[oidc]\nissuer = https://idp.example.com\naudience = urn:sluice\n"

static struct policy *load_ok(const char *text)
{
	struct pol_errors errs = { 0 };
	struct policy *p = NULL;
	int r = policy_load_string("t.conf", text, &p, &errs);

	for (size_t i = 0; i < errs.n; i++)
		print_error("unexpected: %s\n", errs.v[i]);
	assert_int_equal(r, 0);
	assert_int_equal(errs.n, 0);
	assert_non_null(p);
	return p;
}

/* Load text that must fail; returns the errors. */
static struct pol_errors load_bad(const char *text)
{
	struct pol_errors errs = { 0 };
	struct policy *p = (struct policy *)&errs; /* must stay untouched */

	assert_int_equal(policy_load_string("t.conf", text, &p, &errs), -EINVAL);
	assert_ptr_equal(p, (struct policy *)&errs);
	assert_true(errs.n > 0);
	return errs;
}

static bool has_error(const struct pol_errors *e, const char *fragment)
{
	for (size_t i = 0; i < e->n; i++)
		if (strstr(e->v[i], fragment))
			return true;
	return false;
}

static void defaults(void **state)
{
	struct policy *p = load_ok("# nothing but a comment\n");

	assert_string_equal(p->agent.runtime_dir, "/run/sluice");
	assert_string_equal(p->agent.database, "/var/lib/sluice/sluice.db");
	assert_string_equal(p->agent.user, "sluice");
	assert_int_equal(p->agent.admins.n, 1);
	assert_int_equal(p->agent.admins.v[0].kind, PRINCIPAL_USER);
	assert_string_equal(p->agent.admins.v[0].name, "root");
	assert_int_equal(p->agent.approvers.n, 0);
	assert_int_equal(p->agent.max_grants_per_user, 16);
	assert_int_equal(p->agent.max_connections_per_grant, 64);
	assert_int_equal(p->agent.max_message_size, 16u << 20);
	assert_int_equal(p->agent.max_prepared_statements, 1000);
	assert_int_equal(p->agent.audit_queue, 65536);
	assert_int_equal(p->agent.connect_timeout, 10);
	assert_int_equal(p->agent.startup_timeout, 30);
	assert_null(p->agent.origin.file);
	assert_int_equal(p->agent.origin.line, 0);
	assert_false(p->has_nss);
	assert_string_equal(p->nss.group_prefix, "idp-");
	assert_int_equal(p->nss.gid_min, 880000);
	assert_int_equal(p->nss.gid_max, 889999);
	assert_int_equal(p->n_oidc + p->n_identities + p->n_connections + p->n_access +
			 p->n_guardrails + p->n_masks, 0);
	assert_int_equal(p->n_files, 1);
	assert_string_equal(p->files[0], "t.conf");
	policy_free(p);

	/* Section defaults. */
	p = load_ok(OIDC "[identity svc]\nsubject = s\n" CONN
		    "[connection local]\ntype = postgres\nhost = /run/postgresql\ndbname = d\nuser = u\n"
		    "[access a]\nconnection = orders-pg\nallow = svc\n"
		    "[access b]\nconnection = orders-pg\nallow = svc\nmax_ttl = 5m\n");
	assert_int_equal(p->n_oidc, 1);
	assert_null(p->oidc[0].name);
	assert_string_equal(p->oidc[0].ca_file, "/etc/ssl/certs/ca-certificates.crt");
	assert_int_equal(p->oidc[0].algorithms.n, 2);
	assert_string_equal(p->oidc[0].algorithms.v[0], "RS256");
	assert_string_equal(p->oidc[0].algorithms.v[1], "ES256");
	assert_int_equal(p->oidc[0].leeway, 60);
	assert_string_equal(p->oidc[0].groups_claim, "groups");
	assert_int_equal(p->oidc[0].max_session, 8 * 3600);
	assert_string_equal(p->identities[0].name, "svc");
	assert_null(p->identities[0].issuer);
	assert_false(p->identities[0].has_uid);
	assert_string_equal(p->identities[0].home, "/nonexistent");
	assert_int_equal(p->connections[0].port, 5432);
	assert_int_equal(p->connections[0].sslmode, SSLMODE_VERIFY_FULL);
	assert_string_equal(p->connections[0].sslrootcert, "/etc/ssl/certs/ca-certificates.crt");
	assert_null(p->connections[0].password_file);
	assert_int_equal(p->connections[1].sslmode, SSLMODE_DISABLE);
	assert_int_equal(p->access[0].max_ttl, 3600);
	assert_int_equal(p->access[0].default_ttl, 600);
	assert_int_equal(p->access[0].approval, APPROVAL_NONE);
	assert_int_equal(p->access[0].schemas.n, 0);
	assert_int_equal(p->access[0].schemas_origin.line, 0);
	assert_int_equal(p->access[0].approval_origin.line, 0);
	/* default_ttl is min(10m, max_ttl). */
	assert_int_equal(p->access[1].max_ttl, 300);
	assert_int_equal(p->access[1].default_ttl, 300);
	policy_free(p);
}

static void design_values(void **state)
{
	struct pol_errors errs = { 0 };
	struct policy *p = NULL;
	const struct pol_mask *m;
	const struct pol_guardrail *g;

	assert_int_equal(policy_load(CONFIG_CORPUS "/good/design-example.conf", &p, &errs), 0);
	assert_int_equal(p->agent.admins.n, 2);
	assert_int_equal(p->agent.admins.v[1].kind, PRINCIPAL_UNIX_GROUP);
	/* The trailing comment is not part of the list. */
	assert_string_equal(p->agent.admins.v[1].name, "sluice-admins");
	assert_int_equal(p->agent.approvers.n, 2);
	assert_int_equal(p->agent.approvers.v[1].kind, PRINCIPAL_IDP_GROUP);
	assert_string_equal(p->agent.approvers.v[1].name, "data-owners");
	assert_string_equal(p->oidc[0].issuer, "https://idp.example.com");
	assert_string_equal(p->identities[0].subject, "repo:acme/orders:ref:refs/heads/main");
	assert_true(p->identities[0].has_uid);
	assert_int_equal(p->identities[0].uid, 61001);
	assert_int_equal(p->connections[0].type, CONN_POSTGRES);
	assert_string_equal(p->connections[0].password_file, "/etc/sluice/credentials/orders-pg");
	assert_int_equal(p->access[0].max_ttl, 900);
	assert_int_equal(p->access[0].default_ttl, 600);
	assert_int_equal(p->access[0].schemas.n, 1);
	assert_string_equal(p->access[0].schemas.v[0], "ops");
	g = &p->guardrails[0];
	assert_string_equal(g->connection, "orders-pg");
	assert_int_equal(g->block, 1u << CLASS_DDL | 1u << CLASS_DROP | 1u << CLASS_TRUNCATE |
				   1u << CLASS_DELETE_WITHOUT_WHERE | 1u << CLASS_UPDATE_WITHOUT_WHERE |
				   1u << CLASS_COPY_PROGRAM | 1u << CLASS_ROLE_CHANGE);
	assert_int_equal(g->approve, 1u << CLASS_WRITE);
	assert_true(g->block_origin.line > g->origin.line);
	assert_int_equal(g->approve_origin.line, g->block_origin.line + 1);
	m = &p->masks[0];
	assert_int_equal(m->n_rules, 3);
	assert_string_equal(m->rules[2].schema, "ops");
	assert_string_equal(m->rules[2].table, "payments");
	assert_string_equal(m->rules[2].column, "card_number");
	assert_int_equal(m->rules[0].method, MASK_LAST4);
	assert_int_equal(m->rules[1].method, MASK_EMAIL);
	assert_int_equal(m->rules[2].method, MASK_REDACT);
	assert_int_equal(m->detect, DETECT_CREDIT_CARD | DETECT_SSN | DETECT_EMAIL);
	assert_true(p->has_nss);
	assert_string_equal(p->nss.group_prefix, "idp-");
	assert_ptr_equal(policy_connection(p, "orders-pg"), &p->connections[0]);
	assert_null(policy_connection(p, "orders"));
	assert_null(policy_connection(p, NULL));
	policy_free(p);
}

static void values_and_comments(void **state)
{
	struct policy *p = load_ok(
		"[agent]\nadmins =\t%wheel\t@ops # trailing\nconnect_timeout = 90\nstartup_timeout = 1m30s\n"
		"max_message_size = 65536\n"
		OIDC "algorithms = PS256\ngroups_claim = roles#v2   # the # inside a word stays\n"
		"[oidc ci]\nissuer = http://localhost:5556/dex\naudience = aud#1\nleeway = 0s\n"
		"[identity svc]\nsubject = a subject with spaces\nissuer = ci\nuid = 61001\nhome = /srv/svc\n"
		CONN "port = 6432\nsslmode = verify-ca\n"
		"[access a]\nconnection = orders-pg\nallow = svc\nmax_ttl = 1h30m\ndefault_ttl = 90s\n"
		"schemas = ops \"Mixed Case\" OPS2\n"
		"[mask orders-pg]\n\"Ops\".T.\"c\"\"q\" = hash\nhash_key_file = /k\nstrict = yes\ndetect =\n"
		"[guardrail orders-pg]\nblock =\n"
		"[nss]\ngroup_prefix = corp-\ngid_range = 1000-1000\n");

	assert_int_equal(p->agent.admins.n, 2);
	assert_int_equal(p->agent.connect_timeout, 90);
	assert_int_equal(p->agent.startup_timeout, 90);
	assert_int_equal(p->agent.max_message_size, 65536);
	assert_string_equal(p->agent.origin.file, "t.conf");
	assert_int_equal(p->agent.origin.line, 1);
	assert_string_equal(p->oidc[0].groups_claim, "roles#v2");
	assert_int_equal(p->oidc[0].algorithms.n, 1);
	assert_string_equal(p->oidc[1].name, "ci");
	assert_string_equal(p->oidc[1].audience, "aud#1");
	assert_int_equal(p->oidc[1].leeway, 0);
	assert_string_equal(p->identities[0].subject, "a subject with spaces");
	assert_string_equal(p->identities[0].issuer, "ci");
	assert_string_equal(p->identities[0].home, "/srv/svc");
	assert_int_equal(p->connections[0].port, 6432);
	assert_int_equal(p->connections[0].sslmode, SSLMODE_VERIFY_CA);
	assert_int_equal(p->access[0].max_ttl, 5400);
	assert_int_equal(p->access[0].default_ttl, 90);
	assert_int_equal(p->access[0].schemas.n, 3);
	assert_string_equal(p->access[0].schemas.v[0], "ops");
	assert_string_equal(p->access[0].schemas.v[1], "Mixed Case");
	assert_string_equal(p->access[0].schemas.v[2], "ops2");
	assert_string_equal(p->masks[0].rules[0].schema, "Ops");
	assert_string_equal(p->masks[0].rules[0].table, "t");
	assert_string_equal(p->masks[0].rules[0].column, "c\"q");
	assert_int_equal(p->masks[0].rules[0].method, MASK_HASH);
	assert_int_equal(p->masks[0].detect, 0);
	assert_true(p->masks[0].strict);
	assert_string_equal(p->masks[0].hash_key_file, "/k");
	assert_int_equal(p->guardrails[0].block, 0);
	assert_int_equal(p->nss.gid_min, 1000);
	assert_int_equal(p->nss.gid_max, 1000);
	assert_string_equal(p->nss.group_prefix, "corp-");
	policy_free(p);
}

static void collects_all_errors_sorted(void **state)
{
	struct pol_errors e = load_bad(
		"[access readers]\n"            /* 1 */
		"connection = nowhere\n"        /* 2: undefined, found last but sorted here */
		"allow = @\n"                   /* 3 */
		"[agent]\n"                     /* 4 */
		"user = 1x\n"                   /* 5 */
		"bogus = 1\n"                   /* 6 */
		"[nss]\n"                       /* 7 */
		"gid_range = 5-1\n");           /* 8 */

	assert_int_equal(e.n, 5);
	assert_memory_equal(e.v[0], "t.conf:2: connection \"nowhere\"", 30);
	assert_memory_equal(e.v[1], "t.conf:3: invalid principal \"@\"", 31);
	assert_memory_equal(e.v[2], "t.conf:5: invalid user \"1x\"", 27);
	assert_memory_equal(e.v[3], "t.conf:6: unknown key \"bogus\"", 29);
	assert_memory_equal(e.v[4], "t.conf:8: invalid gid_range", 27);
	pol_errors_clear(&e);
	assert_int_equal(e.n, 0);
	assert_null(e.v);
	pol_errors_clear(&e); /* idempotent */
	pol_errors_clear(NULL);
}

static void errors_are_appended(void **state)
{
	struct pol_errors e = { 0 };
	struct policy *p = NULL;

	assert_int_equal(policy_load_string("a.conf", "[x]\n", &p, &e), -EINVAL);
	assert_int_equal(policy_load_string("b.conf", "[y]\n", &p, &e), -EINVAL);
	assert_int_equal(e.n, 2);
	assert_memory_equal(e.v[0], "a.conf:1:", 9);
	assert_memory_equal(e.v[1], "b.conf:1:", 9);
	pol_errors_clear(&e);
	/* errs may be NULL: the return code still says no. */
	assert_int_equal(policy_load_string("c.conf", "[z]\n", &p, NULL), -EINVAL);
	assert_null(p);
}

static void bad_one(const char *text, const char *want)
{
	struct pol_errors e = load_bad(text);

	if (strcmp(e.v[0], want) != 0) {
		print_error("got      %s\nexpected %s\n", e.v[0], want);
		fail();
	}
	pol_errors_clear(&e);
}

static size_t count_words(const char *s)
{
	size_t n = 0;

	for (const char *p = s; *p; p++)
		if (*p != ' ' && (p == s || p[-1] == ' '))
			n++;
	return n;
}

static bool has_function(const struct pol_guardrail *g, const char *name)
{
	for (size_t i = 0; i < g->functions.n; i++)
		if (strcmp(g->functions.v[i], name) == 0)
			return true;
	return false;
}

#define GUARD CONN "[guardrail orders-pg]\n" /* keys from line 7 */

static void guardrail_keys(void **state)
{
	struct policy *p;
	const struct pol_guardrail *g;
	size_t n_default = count_words(sql_dangerous_functions_default());

	/* Defaults: block = functions copy-program (not written), the built-in
	 * functions list (empty here: decide.c asks classify.c), unparsed = block. */
	p = load_ok(GUARD);
	g = &p->guardrails[0];
	assert_int_equal(g->block, 1u << CLASS_FUNCTIONS | 1u << CLASS_COPY_PROGRAM);
	assert_false(g->block_set);
	assert_int_equal(g->approve, 0);
	assert_int_equal(g->functions.n, 0);
	assert_int_equal(g->functions_origin.line, 0);
	assert_false(g->unparsed_allow);
	assert_int_equal(g->unparsed_origin.line, 0);
	assert_int_equal(g->block_origin.line, 0);
	policy_free(p);

	p = load_ok(GUARD "block = drop\napprove = write copy-program\nfunctions = default PG_Sleep "
		    "\"Ops\".\"Danger\" app.f dblink*\nunparsed = allow\n");
	g = &p->guardrails[0];
	assert_true(g->block_set);
	assert_int_equal(g->block, 1u << CLASS_DROP);
	assert_int_equal(g->block_origin.line, 7);
	assert_int_equal(g->approve, 1u << CLASS_WRITE | 1u << CLASS_COPY_PROGRAM);
	assert_int_equal(g->functions_origin.line, 9);
	assert_string_equal(g->functions_origin.file, "t.conf");
	assert_int_equal(g->functions.n, n_default + 4);
	assert_true(has_function(g, "pg_read_file"));
	assert_true(has_function(g, "dblink_exec"));
	assert_true(has_function(g, "pg_sleep"));
	assert_true(has_function(g, "Ops.Danger"));
	assert_true(has_function(g, "app.f"));
	assert_true(has_function(g, "dblink*"));
	assert_true(g->unparsed_allow);
	assert_int_equal(g->unparsed_origin.line, 10);
	policy_free(p);

	/* functions = (empty): none; a name of the default list with default: once. */
	p = load_ok(GUARD "functions =\nunparsed = block\n");
	g = &p->guardrails[0];
	assert_int_equal(g->functions.n, 0);
	assert_int_equal(g->functions_origin.line, 7);
	assert_false(g->unparsed_allow);
	assert_int_equal(g->unparsed_origin.line, 8);
	policy_free(p);
	p = load_ok(GUARD "functions = pg_read_file default\n");
	assert_int_equal(p->guardrails[0].functions.n, n_default);
	policy_free(p);

	bad_one(GUARD "functions = a.b.c\n", "t.conf:7: invalid function \"a.b.c\" in functions of "
		"[guardrail orders-pg]: expected NAME or SCHEMA.NAME");
	bad_one(GUARD "functions = 1f\n", "t.conf:7: invalid function \"1f\" in functions of "
		"[guardrail orders-pg]: an unquoted identifier starts with a letter or _; quote it "
		"(\"...\") otherwise");
	bad_one(GUARD "functions = pg_sleep PG_SLEEP\n", "t.conf:7: function pg_sleep listed twice in "
		"functions of [guardrail orders-pg] (names are folded to lower case unless quoted)");
	bad_one(GUARD "functions = default default\n", "t.conf:7: default listed twice in functions of "
		"[guardrail orders-pg]");
	bad_one(GUARD "functions = \"open\n", "t.conf:7: unterminated \" in functions of "
		"[guardrail orders-pg]; expected a closing \"");
	bad_one(GUARD "unparsed = maybe\n", "t.conf:7: invalid unparsed \"maybe\" in [guardrail "
		"orders-pg]; expected one of: block allow");
	bad_one(GUARD "block = functions\nblock_all = 1\n", "t.conf:8: unknown key \"block_all\" in "
		"[guardrail orders-pg]; expected one of: block approve functions unparsed");
	/* approve of a class blocked by default, and of one blocked by hand. */
	bad_one(GUARD "approve = copy-program\n", "t.conf:7: statement class copy-program in approve of "
		"[guardrail orders-pg] is blocked anyway: without a block key, block = functions "
		"copy-program; expected a block key that leaves copy-program out (block = functions, "
		"for instance)");
	bad_one(GUARD "approve = functions\nblock = functions\n", "t.conf:8: statement class functions "
		"is in both block and approve of [guardrail orders-pg]; expected it in one of them");
	bad_one(GUARD "block = frobnicate\napprove = copy-program\n", "t.conf:7: unknown statement "
		"class \"frobnicate\" in block of [guardrail orders-pg]; expected one of: read write ddl "
		"drop truncate delete-without-where update-without-where copy-out copy-in copy-program "
		"role-change config-change opaque admin functions");
}

#define ACCESS CONN "[access a]\nconnection = orders-pg\nallow = x\n" /* keys from line 9 */

static void access_keys(void **state)
{
	struct policy *p = load_ok(ACCESS);
	const struct pol_access *a = &p->access[0];

	assert_int_equal(a->mode, ACCESS_WRITE);
	assert_int_equal(a->mode_origin.line, 0);
	assert_int_equal(a->approval_timeout, 900);
	assert_int_equal(a->approval_window, 600);
	assert_int_equal(a->approval_wait, 0);
	assert_string_equal(access_mode_name(ACCESS_WRITE), "write");
	assert_string_equal(access_mode_name(ACCESS_READ), "read");
	assert_null(access_mode_name((enum access_mode)7));
	policy_free(p);

	p = load_ok(ACCESS "mode = read\napproval = writes\napproval_timeout = 10s\n"
		    "approval_window = 1h\napproval_wait = 10s\n");
	a = &p->access[0];
	assert_int_equal(a->mode, ACCESS_READ);
	assert_int_equal(a->mode_origin.line, 9);
	assert_string_equal(a->mode_origin.file, "t.conf");
	assert_int_equal(a->approval, APPROVAL_WRITES);
	assert_int_equal(a->approval_origin.line, 10);
	assert_int_equal(a->approval_timeout, 10);
	assert_int_equal(a->approval_window, 3600);
	assert_int_equal(a->approval_wait, 10);
	policy_free(p);
	p = load_ok(ACCESS "mode = write\napproval_wait = 10m\napproval_timeout = 1d\n");
	assert_int_equal(p->access[0].mode_origin.line, 9);
	assert_int_equal(p->access[0].approval_wait, 600);
	policy_free(p);

	bad_one(ACCESS "mode = readonly\n", "t.conf:9: invalid mode \"readonly\" in [access a]; "
		"expected one of: read write");
	bad_one(ACCESS "approval_timeout = 9s\n", "t.conf:9: invalid approval_timeout \"9s\" in "
		"[access a]; expected a duration from 10s to 1d, like 90s, 15m, 1h or 1h30m");
	bad_one(ACCESS "approval_window = 0\n", "t.conf:9: invalid approval_window \"0\" in "
		"[access a]; expected a duration from 1s to 1d, like 90s, 15m, 1h or 1h30m");
	bad_one(ACCESS "approval_wait = 11m\n", "t.conf:9: invalid approval_wait \"11m\" in "
		"[access a]; expected a duration from 0s to 10m, like 90s, 15m, 1h or 1h30m");
	bad_one(ACCESS "approval_wait = soon\n", "t.conf:9: invalid approval_wait \"soon\" in "
		"[access a]; expected a duration from 0s to 10m, like 90s, 15m, 1h or 1h30m");
	bad_one(ACCESS "approval_timeout = 1m\napproval_wait = 2m\n", "t.conf:10: approval_wait 2m in "
		"[access a] is longer than approval_timeout 1m; expected approval_wait <= approval_timeout");
	bad_one(ACCESS "approval_delay = 1m\n", "t.conf:9: unknown key \"approval_delay\" in [access a]; "
		"expected one of: connection allow schemas max_ttl default_ttl approval mode "
		"approval_timeout approval_window approval_wait");
}

static void approval_webhook(void **state)
{
	static const char *ok[] = {
		"https://hooks.example.com/sluice", "https://hooks.example.com:8443/a/b?token=s3cret&x=1",
		"http://localhost:8080/hook", "http://127.0.0.1/h", "http://[::1]:9/h",
	};
	static const struct { const char *url, *why; } bad[] = {
		{ "http://hooks.example.com/h", "http:// is only allowed for localhost, 127.0.0.1 and [::1] "
		  "(tests); expected https://" },
		{ "ftp://hooks.example.com/h", "it is not an http(s):// URL" },
		{ "hooks.example.com", "it is not an http(s):// URL" },
		{ "https://user:s3cret@hooks.example.com/h", "a webhook URL has no user info (\"@\"); put a "
		  "secret in its path or query" },
		{ "https://hooks.example.com/h#frag", "a webhook URL has no fragment (#)" },
		{ "https://hooks.example.com/a b", "it has a blank or a control character, or is longer "
		  "than 2048 bytes" },
		{ "https://:443/h", "expected a host name after the scheme" },
		{ "", "it is empty" },
	};
	struct policy *p = load_ok("# nothing\n");

	assert_null(p->agent.approval_webhook);
	policy_free(p);
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		char text[256];
		snprintf(text, sizeof(text), "[agent]\napproval_webhook = %s\n", ok[i]);
		p = load_ok(text);
		assert_string_equal(p->agent.approval_webhook, ok[i]);
		policy_free(p);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char text[256], want[512];
		struct pol_errors e;

		snprintf(text, sizeof(text), "[agent]\n# a comment\napproval_webhook = %s\n", bad[i].url);
		snprintf(want, sizeof(want), "t.conf:3: invalid approval_webhook in [agent]: %s; expected an "
			 "https:// URL (http:// only for localhost, 127.0.0.1 and [::1])", bad[i].why);
		e = load_bad(text);
		if (strcmp(e.v[0], want) != 0) {
			print_error("%s:\ngot      %s\nexpected %s\n", bad[i].url, e.v[0], want);
			fail();
		}
		/* The URL may carry a secret: never quoted back. */
		assert_null(strstr(e.v[0], "s3cret"));
		pol_errors_clear(&e);
	}
}

static void access_lookup(void **state)
{
	struct policy *p = load_ok(CONN
		"[connection other]\ntype = postgres\nhost = db2\ndbname = d\nuser = u\n"
		"[access short]\nconnection = orders-pg\nallow = alice %ops\nmax_ttl = 15m\n"
		"[access long]\nconnection = orders-pg\nallow = @data-readers\nmax_ttl = 4h\n"
		"[access tie]\nconnection = orders-pg\nallow = @data-readers alice\nmax_ttl = 4h\n"
		"[access elsewhere]\nconnection = other\nallow = bob\nmax_ttl = 30d\n");
	const char *ops[] = { "ops" }, *readers[] = { "data-readers" };
	struct caller_facts alice = { .user = "alice", .uid = 1001 };
	struct caller_facts carol = { .user = "carol", .uid = 1003, .unix_groups = ops, .n_unix_groups = 1 };
	struct caller_facts dave = { .user = "dave", .uid = 1004, .idp_groups = readers, .n_idp_groups = 1 };
	struct caller_facts bob = { .user = "bob", .uid = 1002 };
	const struct pol_access *a;

	/* alice: short (15m) and tie (4h): the longer wins. */
	a = policy_access_for(p, "orders-pg", &alice);
	assert_non_null(a);
	assert_string_equal(a->name, "tie");
	/* carol through %ops: only short. */
	a = policy_access_for(p, "orders-pg", &carol);
	assert_non_null(a);
	assert_string_equal(a->name, "short");
	/* dave through @data-readers: long and tie are equal; the first written wins. */
	a = policy_access_for(p, "orders-pg", &dave);
	assert_non_null(a);
	assert_string_equal(a->name, "long");
	/* bob has access to another connection only. */
	assert_null(policy_access_for(p, "orders-pg", &bob));
	a = policy_access_for(p, "other", &bob);
	assert_non_null(a);
	assert_string_equal(a->name, "elsewhere");
	assert_null(policy_access_for(p, "missing", &alice));
	assert_null(policy_access_for(p, NULL, &alice));
	assert_null(policy_access_for(p, "orders-pg", NULL));
	assert_null(policy_access_for(NULL, "orders-pg", &alice));
	policy_free(p);
}

/* --- files and conf.d --- */

static char tmpdir[64];

static void write_file(const char *rel, const char *text, size_t len)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static void put(const char *rel, const char *text)
{
	write_file(rel, text, strlen(text));
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int make_tmpdir(void **state)
{
	const char *base = getenv("TMPDIR");
	char sub[128];

	snprintf(tmpdir, sizeof(tmpdir), "%s/sluice-policy-XXXXXX", base && strlen(base) < 30 ? base : "/tmp");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(sub, sizeof(sub), "%s/conf.d", tmpdir);
	assert_int_equal(mkdir(sub, 0755), 0);
	return 0;
}

static int remove_tmpdir(void **state)
{
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static char *tmp_path(const char *rel)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	return path;
}

static void confd_includes(void **state)
{
	struct pol_errors e = { 0 };
	struct policy *p = NULL;
	char main_path[256], expect[700];

	put("sluice.conf", CONN);
	put("conf.d/20-access.conf", "[access readers]\nconnection = orders-pg\nallow = alice\n");
	put("conf.d/10-oidc.conf", OIDC);
	put("conf.d/30-identity.conf", "[identity alice]\nsubject = alice@example.com\n");
	/* Skipped: hidden files, other suffixes, editor leftovers. */
	put("conf.d/.hidden.conf", "[bogus]\n");
	put("conf.d/README", "[bogus]\n");
	put("conf.d/40-x.conf.bak", "[bogus]\n");
	put("conf.d/40-x.conf~", "[bogus]\n");
	put("conf.d/.conf", "[bogus]\n");
	snprintf(main_path, sizeof(main_path), "%s", tmp_path("sluice.conf"));

	assert_int_equal(policy_load(main_path, &p, &e), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(p->n_files, 4);
	assert_string_equal(p->files[0], main_path);
	assert_string_equal(p->files[1], tmp_path("conf.d/10-oidc.conf"));
	assert_string_equal(p->files[2], tmp_path("conf.d/20-access.conf"));
	assert_string_equal(p->files[3], tmp_path("conf.d/30-identity.conf"));
	/* Origins point into files[]. */
	assert_ptr_equal(p->access[0].origin.file, p->files[2]);
	assert_int_equal(p->access[0].origin.line, 1);
	assert_ptr_equal(p->connections[0].origin.file, p->files[0]);
	assert_ptr_equal(p->identities[0].origin.file, p->files[3]);
	policy_free(p);
	p = NULL;

	/* A section at most once across files; errors name the include and are
	 * sorted by file in reading order, then line. */
	put("conf.d/50-dup.conf", "# again\n" CONN "port = x\n");
	put("conf.d/05-bad.conf", "[agent]\nuser = 9\n");
	assert_int_equal(policy_load(main_path, &p, &e), -EINVAL);
	assert_null(p);
	assert_int_equal(e.n, 2);
	snprintf(expect, sizeof(expect), "%s:2: invalid user \"9\"", tmp_path("conf.d/05-bad.conf"));
	assert_memory_equal(e.v[0], expect, strlen(expect));
	snprintf(expect, sizeof(expect), "%s:2: [connection orders-pg] defined twice; first defined at %s:1",
		 tmp_path("conf.d/50-dup.conf"), main_path);
	assert_memory_equal(e.v[1], expect, strlen(expect));
	pol_errors_clear(&e);
	remove(tmp_path("conf.d/50-dup.conf"));
	remove(tmp_path("conf.d/05-bad.conf"));

	/* An include that is not a regular file is an error, not skipped. */
	assert_int_equal(mkdir(tmp_path("conf.d/60-dir.conf"), 0755), 0);
	assert_true(policy_load(main_path, &p, &e) < 0);
	assert_null(p);
	assert_true(has_error(&e, "60-dir.conf: cannot read: Is a directory"));
	pol_errors_clear(&e);
	rmdir(tmp_path("conf.d/60-dir.conf"));
	/* Nor is a FIFO, and reading one must not hang. */
	assert_int_equal(mkfifo(tmp_path("conf.d/70-fifo.conf"), 0644), 0);
	assert_int_equal(policy_load(main_path, &p, &e), -EINVAL);
	assert_true(has_error(&e, "70-fifo.conf: cannot read: not a regular file; expected a configuration file"));
	pol_errors_clear(&e);
	remove(tmp_path("conf.d/70-fifo.conf"));

	/* A missing conf.d is fine; a conf.d that is a file is not. */
	assert_int_equal(nftw(tmp_path("conf.d"), rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
	assert_int_equal(policy_load(main_path, &p, &e), 0);
	assert_int_equal(p->n_files, 1);
	p = policy_free(p);
	assert_null(p);
	put("conf.d", "not a directory\n");
	assert_int_equal(policy_load(main_path, &p, &e), -EINVAL);
	assert_true(has_error(&e, "conf.d: cannot read directory: Not a directory"));
	pol_errors_clear(&e);
	remove(tmp_path("conf.d"));
	assert_int_equal(mkdir(tmp_path("conf.d"), 0755), 0);
}

static void unreadable_main(void **state)
{
	struct pol_errors e = { 0 };
	struct policy *p = NULL;
	char expect[300];

	assert_int_equal(policy_load(tmp_path("nope.conf"), &p, &e), -ENOENT);
	assert_null(p);
	assert_int_equal(e.n, 1);
	snprintf(expect, sizeof(expect), "%s: cannot read: No such file or directory", tmp_path("nope.conf"));
	assert_string_equal(e.v[0], expect);
	pol_errors_clear(&e);
	assert_int_equal(policy_load(tmpdir, &p, &e), -EISDIR);
	pol_errors_clear(&e);
	assert_int_equal(policy_load(NULL, &p, &e), -EINVAL);
	assert_int_equal(policy_load_string(NULL, "", &p, &e), -EINVAL);
}

static void caps(void **state)
{
	struct buf b = BUF_INIT(4u << 20);
	struct pol_errors e = { 0 };
	struct policy *p = NULL;
	char line[5000];

	/* 1 MiB per file. */
	assert_int_equal(buf_reserve(&b, (1u << 20) + 1), 0);
	memset(b.data, '#', (1u << 20) + 1);
	for (size_t i = 100; i < (1u << 20); i += 100)
		b.data[i] = '\n';
	write_file("big.conf", (char *)b.data, 1u << 20);
	assert_int_equal(policy_load(tmp_path("big.conf"), &p, &e), 0);
	p = policy_free(p);
	write_file("big.conf", (char *)b.data, (1u << 20) + 1);
	assert_int_equal(policy_load(tmp_path("big.conf"), &p, &e), -EFBIG);
	assert_true(has_error(&e, "big.conf: cannot read: file larger than 1 MiB"));
	pol_errors_clear(&e);
	buf_release(&b, 0);

	/* Line length: 4096 bytes; the line number is reported and loading goes on. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "[agent]\n# ", 10);
	line[8 + 4097] = '\n'; /* line 2: 4097 bytes */
	memcpy(line + 8 + 4098, "user = 1\n", 10);
	e = load_bad(line);
	assert_int_equal(e.n, 2);
	assert_memory_equal(e.v[0], "t.conf:2: line longer than 4096 bytes", 37);
	assert_memory_equal(e.v[1], "t.conf:3: invalid user", 22);
	pol_errors_clear(&e);
	line[8 + 4096] = '\n'; /* exactly 4096: fine */
	line[8 + 4097] = '\0';
	policy_free(load_ok(line));

	/* Sections, keys, list items. */
	assert_int_equal(buf_reserve(&b, 1u << 20), 0);
	for (int i = 0; i < 1025; i++) {
		char s[64];
		int n = snprintf(s, sizeof(s), "[oidc i%d]\n", i);
		assert_int_equal(buf_append(&b, s, (size_t)n), 0);
	}
	assert_int_equal(buf_put_u8(&b, 0), 0);
	e = load_bad((char *)b.data);
	assert_true(has_error(&e, "t.conf:1025: more than 1024 sections in the configuration"));
	pol_errors_clear(&e);
	b.len = 0;
	assert_int_equal(buf_append(&b, CONN "[mask orders-pg]\n", strlen(CONN) + 17), 0);
	for (int i = 0; i < 4097; i++) {
		char s[64];
		int n = snprintf(s, sizeof(s), "s.t.c%d = redact\n", i);
		assert_int_equal(buf_append(&b, s, (size_t)n), 0);
	}
	assert_int_equal(buf_put_u8(&b, 0), 0);
	e = load_bad((char *)b.data);
	assert_true(has_error(&e, "more than 4096 keys in [mask orders-pg]"));
	pol_errors_clear(&e);
	b.len = 0;
	assert_int_equal(buf_append(&b, "[agent]\nadmins =", 16), 0);
	for (int i = 0; i < 257; i++) {
		char s[64];
		int n = snprintf(s, sizeof(s), " u%d", i);
		assert_int_equal(buf_append(&b, s, (size_t)n), 0);
	}
	assert_int_equal(buf_put_u8(&b, 0), 0);
	e = load_bad((char *)b.data);
	assert_string_equal(e.v[0], "t.conf:2: more than 256 items in admins of [agent]");
	pol_errors_clear(&e);

	/* Errors: at most 200, then one line saying so. */
	b.len = 0;
	assert_int_equal(buf_append(&b, "[agent]\n", 8), 0);
	for (int i = 0; i < 300; i++) {
		char s[64];
		int n = snprintf(s, sizeof(s), "k%d = 1\n", i);
		assert_int_equal(buf_append(&b, s, (size_t)n), 0);
	}
	assert_int_equal(buf_put_u8(&b, 0), 0);
	e = load_bad((char *)b.data);
	assert_int_equal(e.n, 201);
	assert_string_equal(e.v[200], "t.conf: too many errors; stopped after the first 200");
	pol_errors_clear(&e);
	buf_release(&b, 0);
}

static void bad_bytes(void **state)
{
	struct pol_errors e = { 0 };
	struct policy *p = NULL;
	static const char nul[] = "[agent]\nuser = a\0b\nbogus = 1\n";
	static const char ctl[] = "[agent]\nuser = a\033[31m\n";

	write_file("nul.conf", nul, sizeof(nul) - 1);
	assert_int_equal(policy_load(tmp_path("nul.conf"), &p, &e), -EINVAL);
	assert_int_equal(e.n, 2);
	assert_non_null(strstr(e.v[0], "nul.conf:2: NUL byte in line"));
	assert_non_null(strstr(e.v[1], "nul.conf:3: unknown key \"bogus\""));
	pol_errors_clear(&e);
	e = load_bad(ctl);
	assert_string_equal(e.v[0], "t.conf:2: control character 0x1b in line; expected printable text");
	pol_errors_clear(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults),
		cmocka_unit_test(design_values),
		cmocka_unit_test(values_and_comments),
		cmocka_unit_test(collects_all_errors_sorted),
		cmocka_unit_test(errors_are_appended),
		cmocka_unit_test(guardrail_keys),
		cmocka_unit_test(access_keys),
		cmocka_unit_test(approval_webhook),
		cmocka_unit_test(access_lookup),
		cmocka_unit_test(confd_includes),
		cmocka_unit_test(unreadable_main),
		cmocka_unit_test(caps),
		cmocka_unit_test(bad_bytes),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
