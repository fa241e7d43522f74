/* Decisions (policy/decide.c): hand-built statement summaries against
 * configurations loaded from text, so every rule of decide.h's order is
 * checked without depending on the classifier. Each case names the exact
 * what and rule a client would read in "sluice: blocked: WHAT (RULE)". */
#include "config.h"
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy/classify.h"
#include "policy/decide.h"
#include "policy/policy.h"

/* Lines 1-8; a case's configuration starts at line 9. */
#define BASE "[connection c]\ntype = postgres\nhost = db\ndbname = d\nuser = u\n" \
	     "[access a]\nconnection = c\nallow = alice\n"
#define ACCESS_RULE "rule at t.conf:6"
#define BUILTIN_BLOCK "rule: built-in default (block = functions copy-program)"
#define SCS_RULE "rule: built-in (sluice reads strings as the server does only with it on)"

#define B(c) CLASS_BIT(CLASS_##c)
#define READ B(READ)
#define WRITE B(WRITE)
#define DDL B(DDL)
#define DROP (B(DROP) | B(DDL))
#define TRUNCATE (B(TRUNCATE) | B(DDL) | B(WRITE))
#define DELETE_ALL (B(DELETE_WITHOUT_WHERE) | B(WRITE))
#define UPDATE_ALL (B(UPDATE_WITHOUT_WHERE) | B(WRITE))

struct rel_spec {
	const char *schema, *name;
	bool written;
};

struct stmt_spec {
	uint32_t classes, flags;
	struct rel_spec rels[3];
	const char *functions[3];
	const char *schemas[2];
};

struct built {
	struct sql_stmt st;
	struct sql_rel rels[3];
	char *functions[3];
	char *schemas[2];
};

static void build(const struct stmt_spec *s, struct built *b)
{
	memset(b, 0, sizeof(*b));
	b->st.classes = s->classes;
	b->st.flags = s->flags;
	b->st.rels = b->rels;
	b->st.functions = b->functions;
	b->st.schemas = b->schemas;
	for (size_t i = 0; i < 3 && s->rels[i].name; i++) {
		b->rels[i] = (struct sql_rel){ .schema = (char *)s->rels[i].schema,
					       .name = (char *)s->rels[i].name,
					       .written = s->rels[i].written };
		b->st.n_rels++;
	}
	for (size_t i = 0; i < 3 && s->functions[i]; i++)
		b->functions[b->st.n_functions++] = (char *)s->functions[i];
	for (size_t i = 0; i < 2 && s->schemas[i]; i++)
		b->schemas[b->st.n_schemas++] = (char *)s->schemas[i];
}

static struct policy *load(const char *extra)
{
	struct pol_errors errs = { 0 };
	struct policy *p = NULL;
	char *text;

	assert_true(asprintf(&text, BASE "%s", extra) > 0);
	if (policy_load_string("t.conf", text, &p, &errs) != 0) {
		for (size_t i = 0; i < errs.n; i++)
			print_error("%s\n", errs.v[i]);
		fail();
	}
	free(text);
	pol_errors_clear(&errs);
	return p;
}

struct scoped {
	struct policy *p;
	struct decide_scope s;
	const char *schema_buf;
};

static void scope_for(struct scoped *sc, const char *conf, const char *schema)
{
	char err[256];

	sc->p = load(conf);
	assert_int_equal(decide_scope_init(&sc->s, sc->p, policy_connection(sc->p, "c"), &sc->p->access[0],
					   schema, &sc->schema_buf, err, sizeof(err)), 0);
}

struct dcase {
	const char *name;
	const char *conf;   /* after BASE, from line 9 */
	const char *schema; /* the grant's --schema */
	struct stmt_spec st;
	bool has_extra;
	struct stmt_spec extra;
	enum verdict_kind kind;
	int klass;
	const char *what;
	const char *rule;
};

static const struct dcase cases[] = {
	/* 7. allow, and the rule that allowed */
	{ "plain read", "", NULL, { .classes = READ }, false, { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "empty", "", NULL, { .classes = 0, .flags = SQLF_EMPTY }, false, { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "write without guardrail", "", NULL, { .classes = DELETE_ALL }, false, { .classes = 0 }, VERDICT_ALLOW, -1, "",
	  ACCESS_RULE },

	/* 5. no [guardrail]: block = functions copy-program */
	{ "default copy-program", "", NULL, { .classes = B(COPY_PROGRAM) | B(WRITE) }, false, { .classes = 0 }, VERDICT_BLOCK,
	  CLASS_COPY_PROGRAM, "copy-program", BUILTIN_BLOCK },
	{ "default functions", "", NULL, { .classes = READ, .functions = { "lower", "pg_read_file" } }, false, { .classes = 0 },
	  VERDICT_BLOCK, CLASS_FUNCTIONS, "functions: pg_read_file", BUILTIN_BLOCK },
	{ "default functions, pg_catalog", "", NULL, { .classes = READ, .functions = { "pg_catalog.pg_read_file" } },
	  false, { .classes = 0 }, VERDICT_BLOCK, CLASS_FUNCTIONS, "functions: pg_catalog.pg_read_file", BUILTIN_BLOCK },
	{ "default functions, other schema", "", NULL, { .classes = READ, .functions = { "app.pg_read_file" } },
	  false, { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "empty section is the default", "[guardrail c]\n", NULL, { .classes = B(COPY_PROGRAM) }, false, { .classes = 0 },
	  VERDICT_BLOCK, CLASS_COPY_PROGRAM, "copy-program", BUILTIN_BLOCK },
	{ "other connection's guardrail",
	  "[connection o]\ntype = postgres\nhost = db\ndbname = d\nuser = u\n[guardrail o]\nblock = read\n",
	  NULL, { .classes = READ }, false, { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },

	/* 5. block, and the class named: the worst one in the block list */
	{ "block write names write", "[guardrail c]\nblock = write\n", NULL, { .classes = DELETE_ALL }, false, { .classes = 0 },
	  VERDICT_BLOCK, CLASS_WRITE, "write", "rule at t.conf:10" },
	{ "block names the worst listed", "[guardrail c]\nblock = delete-without-where write\n", NULL,
	  { .classes = DELETE_ALL }, false, { .classes = 0 }, VERDICT_BLOCK, CLASS_DELETE_WITHOUT_WHERE, "delete-without-where",
	  "rule at t.conf:10" },
	{ "drop implies ddl", "[guardrail c]\nblock = ddl\n", NULL, { .classes = DROP }, false, { .classes = 0 }, VERDICT_BLOCK,
	  CLASS_DDL, "ddl", "rule at t.conf:10" },
	{ "truncate is write", "[guardrail c]\nblock = write\n", NULL, { .classes = TRUNCATE }, false, { .classes = 0 },
	  VERDICT_BLOCK, CLASS_WRITE, "write", "rule at t.conf:10" },
	{ "update without where", "[guardrail c]\nblock = update-without-where\n", NULL, { .classes = UPDATE_ALL },
	  false, { .classes = 0 }, VERDICT_BLOCK, CLASS_UPDATE_WITHOUT_WHERE, "update-without-where",
	  "rule at t.conf:10" },
	{ "update with where passes", "[guardrail c]\nblock = update-without-where\n", NULL, { .classes = WRITE },
	  false, { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "block written replaces the default", "[guardrail c]\nblock = drop\n", NULL,
	  { .classes = B(COPY_PROGRAM), .functions = { "pg_read_file" } }, false, { .classes = 0 }, VERDICT_ALLOW, -1, "",
	  ACCESS_RULE },
	{ "block = (empty)", "[guardrail c]\nblock =\n", NULL, { .classes = B(COPY_PROGRAM) }, false, { .classes = 0 },
	  VERDICT_ALLOW, -1, "", ACCESS_RULE },

	/* 5 before 6: block beats approve */
	{ "block beats approve", "[guardrail c]\nblock = drop\napprove = ddl\n", NULL, { .classes = DROP }, false,
	  { .classes = 0 }, VERDICT_BLOCK, CLASS_DROP, "drop", "rule at t.conf:10" },
	{ "approve", "[guardrail c]\nblock = drop\napprove = ddl write\n", NULL, { .classes = DDL }, false, { .classes = 0 },
	  VERDICT_APPROVE, CLASS_DDL, "ddl", "rule at t.conf:11" },
	{ "approve with default block", "[guardrail c]\napprove = write\n", NULL, { .classes = DELETE_ALL }, false,
	  { .classes = 0 }, VERDICT_APPROVE, CLASS_WRITE, "write", "rule at t.conf:10" },
	{ "approve functions", "[guardrail c]\nblock = drop\napprove = functions\n", NULL,
	  { .classes = READ, .functions = { "pg_terminate_backend" } }, false, { .classes = 0 }, VERDICT_APPROVE, CLASS_FUNCTIONS,
	  "functions: pg_terminate_backend", "rule at t.conf:11" },

	/* functions lists */
	{ "custom list", "[guardrail c]\nfunctions = pg_sleep\n", NULL,
	  { .classes = READ, .functions = { "pg_read_file" } }, false, { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "custom list hit", "[guardrail c]\nfunctions = PG_SLEEP\n", NULL,
	  { .classes = READ, .functions = { "pg_catalog.pg_sleep" } }, false, { .classes = 0 }, VERDICT_BLOCK, CLASS_FUNCTIONS,
	  "functions: pg_catalog.pg_sleep", BUILTIN_BLOCK },
	{ "default word", "[guardrail c]\nfunctions = default pg_sleep\n", NULL,
	  { .classes = READ, .functions = { "pg_read_file" } }, false, { .classes = 0 }, VERDICT_BLOCK, CLASS_FUNCTIONS,
	  "functions: pg_read_file", BUILTIN_BLOCK },
	{ "default word and more", "[guardrail c]\nfunctions = default pg_sleep\n", NULL,
	  { .classes = READ, .functions = { "pg_sleep" } }, false, { .classes = 0 }, VERDICT_BLOCK, CLASS_FUNCTIONS,
	  "functions: pg_sleep", BUILTIN_BLOCK },
	{ "empty list", "[guardrail c]\nfunctions =\n", NULL,
	  { .classes = READ, .functions = { "pg_read_file", "pg_catalog.pg_terminate_backend" } }, false, { .classes = 0 },
	  VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "qualified entry", "[guardrail c]\nfunctions = app.danger\n", NULL,
	  { .classes = READ, .functions = { "other.danger", "app.danger" } }, false, { .classes = 0 }, VERDICT_BLOCK, CLASS_FUNCTIONS,
	  "functions: app.danger", BUILTIN_BLOCK },
	/* search_path may resolve an unqualified call to the listed app.danger */
	{ "qualified entry, unqualified call", "[guardrail c]\nfunctions = app.danger\n", NULL,
	  { .classes = READ, .functions = { "danger" } }, false, { .classes = 0 }, VERDICT_BLOCK, CLASS_FUNCTIONS,
	  "functions: danger", BUILTIN_BLOCK },
	{ "unqualified entry, any schema", "[guardrail c]\nfunctions = danger\n", NULL,
	  { .classes = READ, .functions = { "app.danger" } }, false, { .classes = 0 }, VERDICT_BLOCK, CLASS_FUNCTIONS,
	  "functions: app.danger", BUILTIN_BLOCK },
	{ "qualified entry, other schema", "[guardrail c]\nfunctions = app.danger\n", NULL,
	  { .classes = READ, .functions = { "other.danger" } }, false, { .classes = 0 }, VERDICT_ALLOW, -1,
	  "", ACCESS_RULE },
	{ "prefix entry, any schema", "[guardrail c]\nfunctions = dblink*\n", NULL,
	  { .classes = READ, .functions = { "ext.dblink_exec" } }, false, { .classes = 0 }, VERDICT_BLOCK, CLASS_FUNCTIONS,
	  "functions: ext.dblink_exec", BUILTIN_BLOCK },
	{ "functions listed, class not blocked", "[guardrail c]\nblock = drop\nfunctions = pg_sleep\n",
	  NULL, { .classes = READ, .functions = { "pg_sleep" } }, false, { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },

	/* 3. mode = read */
	{ "read mode write", "mode = read\n", NULL, { .classes = WRITE }, false, { .classes = 0 }, VERDICT_BLOCK, CLASS_WRITE,
	  "write", "rule at t.conf:9" },
	{ "read mode worst write class", "mode = read\n", NULL, { .classes = DROP }, false, { .classes = 0 }, VERDICT_BLOCK,
	  CLASS_DROP, "drop", "rule at t.conf:9" },
	{ "read mode copy-in", "mode = read\n", NULL, { .classes = B(COPY_IN) }, false, { .classes = 0 }, VERDICT_BLOCK,
	  CLASS_COPY_IN, "copy-in", "rule at t.conf:9" },
	{ "read mode opaque", "mode = read\n", NULL, { .classes = B(OPAQUE) }, false, { .classes = 0 }, VERDICT_BLOCK,
	  CLASS_OPAQUE, "opaque", "rule at t.conf:9" },
	{ "read mode role-change", "mode = read\n", NULL, { .classes = B(ROLE_CHANGE) }, false, { .classes = 0 }, VERDICT_BLOCK,
	  CLASS_ROLE_CHANGE, "role-change", "rule at t.conf:9" },
	{ "read mode admin", "mode = read\n", NULL, { .classes = B(ADMIN) }, false, { .classes = 0 }, VERDICT_BLOCK, CLASS_ADMIN,
	  "admin", "rule at t.conf:9" },
	{ "read mode leaving read-only", "mode = read\n", NULL, { .classes = B(CONFIG_CHANGE), .flags = SQLF_READ_WRITE }, false,
	  { .classes = 0 }, VERDICT_BLOCK, -1, "leaving read-only", "rule at t.conf:9" },
	{ "read mode copy-out", "mode = read\n", NULL, { .classes = B(COPY_OUT) | READ }, false, { .classes = 0 }, VERDICT_ALLOW,
	  -1, "", ACCESS_RULE },
	{ "read mode set", "mode = read\n", NULL, { .classes = B(CONFIG_CHANGE) }, false, { .classes = 0 }, VERDICT_ALLOW, -1, "",
	  ACCESS_RULE },
	{ "write mode leaving read-only", "mode = write\n", NULL, { .classes = READ, .flags = SQLF_READ_WRITE }, false, { .classes = 0 },
	  VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "read mode before block", "mode = read\n[guardrail c]\nblock = write\n", NULL, { .classes = WRITE }, false,
	  { .classes = 0 }, VERDICT_BLOCK, CLASS_WRITE, "write", "rule at t.conf:9" },

	/* 4. schema scope */
	{ "scope: in", "schemas = ops\n", NULL, { .classes = READ, .rels = { { "ops", "t" } } }, false, { .classes = 0 },
	  VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "scope: unqualified", "schemas = ops\n", NULL, { .classes = WRITE, .rels = { { NULL, "t", true } } }, false,
	  { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "scope: other", "schemas = ops\n", NULL, { .classes = READ, .rels = { { "ops", "t" }, { "other", "t" } } },
	  false, { .classes = 0 }, VERDICT_BLOCK, -1, "schema-scope: other.t is outside ops", "rule at t.conf:9" },
	{ "scope: pg_catalog read", "schemas = ops\n", NULL,
	  { .classes = READ, .rels = { { "pg_catalog", "pg_class" }, { "information_schema", "tables" } } }, false,
	  { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "scope: pg_catalog written", "schemas = ops\n", NULL,
	  { .classes = WRITE, .rels = { { "pg_catalog", "pg_class", true } } }, false, { .classes = 0 }, VERDICT_BLOCK, -1,
	  "schema-scope: pg_catalog.pg_class is written, and only reads are allowed outside ops",
	  "rule at t.conf:9" },
	{ "scope: information_schema written", "schemas = ops\n", NULL,
	  { .classes = WRITE, .rels = { { "information_schema", "x", true } } }, false, { .classes = 0 }, VERDICT_BLOCK, -1,
	  "schema-scope: information_schema.x is written, and only reads are allowed outside ops",
	  "rule at t.conf:9" },
	{ "scope: pg_temp", "schemas = ops\n", NULL, { .classes = WRITE, .rels = { { "pg_temp", "scratch", true } } },
	  false, { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "scope: search_path", "schemas = ops sales\n", NULL, { .classes = B(CONFIG_CHANGE), .flags = SQLF_SETS_SEARCH_PATH },
	  false, { .classes = 0 }, VERDICT_BLOCK, -1, "schema-scope: search_path is pinned to ops, sales",
	  "rule at t.conf:9" },
	{ "no scope: search_path", "", NULL, { .classes = B(CONFIG_CHANGE), .flags = SQLF_SETS_SEARCH_PATH }, false, { .classes = 0 },
	  VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "scope: function outside", "schemas = ops\n", NULL, { .classes = READ, .functions = { "other.f" } }, false,
	  { .classes = 0 }, VERDICT_BLOCK, -1, "schema-scope: function other.f is outside ops", "rule at t.conf:9" },
	{ "scope: functions inside", "schemas = ops\n", NULL,
	  { .classes = READ, .functions = { "ops.f", "pg_catalog.now", "lower" } }, false, { .classes = 0 }, VERDICT_ALLOW, -1,
	  "", ACCESS_RULE },
	{ "scope: schema object outside", "schemas = ops\n", NULL, { .classes = DDL, .schemas = { "other" } }, false,
	  { .classes = 0 }, VERDICT_BLOCK, -1, "schema-scope: schema other is outside ops", "rule at t.conf:9" },
	{ "scope: schema object inside", "schemas = ops\n", NULL, { .classes = DDL, .schemas = { "ops" } }, false,
	  { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "scope: schema pg_catalog", "schemas = ops\n", NULL, { .classes = DDL, .schemas = { "pg_catalog" } }, false,
	  { .classes = 0 }, VERDICT_BLOCK, -1, "schema-scope: schema pg_catalog is outside ops", "rule at t.conf:9" },
	{ "scope: requested", "schemas = ops sales\n", "ops", { .classes = READ, .rels = { { "sales", "t" } } }, false,
	  { .classes = 0 }, VERDICT_BLOCK, -1, "schema-scope: sales.t is outside ops", "rule: the grant's --schema ops" },
	{ "scope: requested, folded", "schemas = ops sales\n", "SALES", { .classes = READ, .rels = { { "sales", "t" } } },
	  false, { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "scope: requested, no list", "", "ops", { .classes = READ, .rels = { { "other", "t" } } }, false, { .classes = 0 },
	  VERDICT_BLOCK, -1, "schema-scope: other.t is outside ops", "rule: the grant's --schema ops" },
	{ "scope before block", "schemas = ops\n[guardrail c]\nblock = read\n", NULL,
	  { .classes = READ, .rels = { { "x", "t" } } }, false, { .classes = 0 }, VERDICT_BLOCK, -1,
	  "schema-scope: x.t is outside ops", "rule at t.conf:9" },
	{ "read mode before scope", "schemas = ops\nmode = read\n", NULL,
	  { .classes = WRITE, .rels = { { "x", "t", true } } }, false, { .classes = 0 }, VERDICT_BLOCK, CLASS_WRITE, "write",
	  "rule at t.conf:10" },

	/* 2. standard_conforming_strings */
	{ "scs", "", NULL, { .classes = B(CONFIG_CHANGE), .flags = SQLF_SETS_SCS }, false, { .classes = 0 }, VERDICT_BLOCK, -1,
	  "standard_conforming_strings is pinned on", SCS_RULE },
	{ "dynamic setting", "", NULL,
	  { .classes = READ, .flags = SQLF_DYNAMIC_SETTING | SQLF_SETS_SCS | SQLF_SETS_SEARCH_PATH | SQLF_READ_WRITE }, false,
	  { .classes = 0 }, VERDICT_BLOCK, -1, "standard_conforming_strings is pinned on", SCS_RULE },
	{ "scs before read mode and scope", "mode = read\nschemas = ops\n[guardrail c]\nunparsed = allow\n",
	  NULL, { .classes = WRITE, .flags = SQLF_SETS_SCS | SQLF_SETS_SEARCH_PATH }, false, { .classes = 0 }, VERDICT_BLOCK, -1,
	  "standard_conforming_strings is pinned on", SCS_RULE },

	/* 6. [access] approval */
	{ "approval writes", "approval = writes\n", NULL, { .classes = DELETE_ALL }, false, { .classes = 0 }, VERDICT_APPROVE,
	  CLASS_DELETE_WITHOUT_WHERE, "delete-without-where", "rule at t.conf:9" },
	{ "approval writes: read", "approval = writes\n", NULL, { .classes = READ }, false, { .classes = 0 }, VERDICT_ALLOW, -1, "",
	  ACCESS_RULE },
	{ "approval writes: copy-out, set", "approval = writes\n", NULL,
	  { .classes = READ | B(COPY_OUT) | B(CONFIG_CHANGE) }, false, { .classes = 0 }, VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "approval writes: opaque", "approval = writes\n", NULL, { .classes = B(OPAQUE) }, false, { .classes = 0 },
	  VERDICT_APPROVE, CLASS_OPAQUE, "opaque", "rule at t.conf:9" },
	{ "approval all", "approval = all\n", NULL, { .classes = READ }, false, { .classes = 0 }, VERDICT_APPROVE, CLASS_READ,
	  "read", "rule at t.conf:9" },
	{ "approval all: empty", "approval = all\n", NULL, { .classes = 0, .flags = SQLF_EMPTY }, false, { .classes = 0 }, VERDICT_ALLOW,
	  -1, "", ACCESS_RULE },
	{ "approval grant: statements run", "approval = grant\n", NULL, { .classes = WRITE }, false, { .classes = 0 },
	  VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "guardrail approve before access approval", "approval = all\n[guardrail c]\napprove = ddl\n", NULL,
	  { .classes = DDL }, false, { .classes = 0 }, VERDICT_APPROVE, CLASS_DDL, "ddl", "rule at t.conf:11" },
	{ "block before access approval", "approval = all\n[guardrail c]\nblock = ddl\n", NULL, { .classes = DDL },
	  false, { .classes = 0 }, VERDICT_BLOCK, CLASS_DDL, "ddl", "rule at t.conf:11" },

	/* extra: EXECUTE adds the prepared body */
	{ "execute: body blocked", "[guardrail c]\nblock = drop\n", NULL, { .classes = 0, .flags = SQLF_EXECUTE }, true,
	  { .classes = DROP, .flags = SQLF_PREPARE }, VERDICT_BLOCK, CLASS_DROP, "drop", "rule at t.conf:10" },
	{ "execute: body outside scope", "schemas = ops\n", NULL, { .classes = 0, .flags = SQLF_EXECUTE }, true,
	  { .classes = READ, .flags = SQLF_PREPARE, .rels = { { "other", "t" } } }, VERDICT_BLOCK, -1,
	  "schema-scope: other.t is outside ops", "rule at t.conf:9" },
	{ "execute: body function", "", NULL, { .classes = 0, .flags = SQLF_EXECUTE }, true,
	  { .classes = READ, .flags = SQLF_PREPARE, .functions = { "pg_read_file" } }, VERDICT_BLOCK, CLASS_FUNCTIONS,
	  "functions: pg_read_file", BUILTIN_BLOCK },
	{ "execute: body flags", "", NULL, { .classes = 0, .flags = SQLF_EXECUTE }, true, { .classes = READ, .flags = SQLF_SETS_SCS },
	  VERDICT_BLOCK, -1, "standard_conforming_strings is pinned on", SCS_RULE },
	{ "execute: body read", "mode = read\n", NULL, { .classes = 0, .flags = SQLF_EXECUTE }, true, { .classes = READ, .flags = SQLF_PREPARE },
	  VERDICT_ALLOW, -1, "", ACCESS_RULE },
	{ "execute: arguments write", "mode = read\n", NULL, { .classes = WRITE, .flags = SQLF_EXECUTE }, true,
	  { .classes = READ, .flags = SQLF_PREPARE }, VERDICT_BLOCK, CLASS_WRITE, "write", "rule at t.conf:9" },
};

static void decision_table(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct dcase *c = &cases[i];
		struct built st, extra;
		struct scoped sc;
		struct verdict v;

		scope_for(&sc, c->conf, c->schema);
		build(&c->st, &st);
		build(&c->extra, &extra);
		memset(&v, 0x5a, sizeof(v));
		decide_statement(&sc.s, &st.st, c->has_extra ? &extra.st : NULL, &v);
		if (v.kind != c->kind || v.klass != c->klass || strcmp(v.what, c->what) != 0 ||
		    strcmp(v.rule, c->rule) != 0) {
			print_error("case \"%s\": got %s %d \"%s\" (%s), expected %s %d \"%s\" (%s)\n", c->name,
				    verdict_kind_name(v.kind), v.klass, v.what, v.rule,
				    verdict_kind_name(c->kind), c->klass, c->what, c->rule);
			fail();
		}
		policy_free(sc.p);
	}
}

static void write_classes(void **state)
{
	uint32_t w = decide_write_classes();

	assert_int_equal(w, B(WRITE) | B(DDL) | B(DROP) | B(TRUNCATE) | B(DELETE_WITHOUT_WHERE) |
			    B(UPDATE_WITHOUT_WHERE) | B(COPY_IN) | B(COPY_PROGRAM) | B(ROLE_CHANGE) |
			    B(ADMIN) | B(OPAQUE));
	assert_false(w & (B(READ) | B(COPY_OUT) | B(CONFIG_CHANGE) | B(FUNCTIONS)));
	assert_string_equal(verdict_kind_name(VERDICT_ALLOW), "allowed");
	assert_string_equal(verdict_kind_name(VERDICT_BLOCK), "blocked");
	assert_string_equal(verdict_kind_name(VERDICT_APPROVE), "approval");
}

static void scope_init(void **state)
{
	struct policy *p = load("schemas = ops \"Sales\"\n"
				"[access b]\nconnection = c\nallow = bob\n");
	const struct pol_connection *conn = policy_connection(p, "c");
	struct decide_scope s;
	const char *buf = NULL;
	char err[256];

	/* No request: the access's list, from [access]. */
	assert_int_equal(decide_scope_init(&s, p, conn, &p->access[0], NULL, &buf, err, sizeof(err)), 0);
	assert_int_equal(s.n_schemas, 2);
	assert_string_equal(s.schemas[0], "ops");
	assert_string_equal(s.schemas[1], "Sales");
	assert_false(s.schema_requested);
	assert_null(s.guardrail);
	assert_ptr_equal(s.access, &p->access[0]);
	assert_int_equal(decide_scope_init(&s, p, conn, &p->access[0], "", &buf, err, sizeof(err)), 0);
	assert_int_equal(s.n_schemas, 2);

	/* A request names one of them, folded like an identifier. */
	assert_int_equal(decide_scope_init(&s, p, conn, &p->access[0], "OPS", &buf, err, sizeof(err)), 0);
	assert_int_equal(s.n_schemas, 1);
	assert_true(s.schema_requested);
	assert_ptr_equal(s.schemas, &buf);
	assert_ptr_equal(buf, p->access[0].schemas.v[0]);
	assert_int_equal(decide_scope_init(&s, p, conn, &p->access[0], "\"Sales\"", &buf, err, sizeof(err)), 0);
	assert_string_equal(s.schemas[0], "Sales");

	/* Not in the list: refused, saying which are, s untouched. */
	memset(&s, 0x5a, sizeof(s));
	assert_int_equal(decide_scope_init(&s, p, conn, &p->access[0], "sales", &buf, err, sizeof(err)),
			 -EPERM);
	assert_string_equal(err, "schema sales is not in [access a] schemas (ops, Sales)");
	assert_int_equal(((unsigned char *)&s)[0], 0x5a);
	assert_int_equal(decide_scope_init(&s, p, conn, &p->access[0], "1x", &buf, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "invalid schema \"1x\""));

	/* No list: no scope, or the request as PostgreSQL stores it. */
	assert_int_equal(decide_scope_init(&s, p, conn, &p->access[1], NULL, &buf, err, sizeof(err)), 0);
	assert_int_equal(s.n_schemas, 0);
	assert_int_equal(decide_scope_init(&s, p, conn, &p->access[1], "ops", &buf, err, sizeof(err)), 0);
	assert_int_equal(s.n_schemas, 1);
	assert_string_equal(s.schemas[0], "ops");
	assert_int_equal(decide_scope_init(&s, p, conn, &p->access[1], "Ops", &buf, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "schema \"Ops\" is ops as PostgreSQL stores it: request it so, or list "
			    "it in [access b] schemas");
	assert_int_equal(decide_scope_init(NULL, p, conn, &p->access[1], NULL, &buf, err, sizeof(err)), -EINVAL);
	policy_free(p);

	/* The guardrail is the connection's; without conn, the access's connection. */
	p = load("[guardrail c]\nblock = drop\n");
	assert_int_equal(decide_scope_init(&s, p, NULL, &p->access[0], NULL, &buf, NULL, 0), 0);
	assert_ptr_equal(s.guardrail, &p->guardrails[0]);
	assert_ptr_equal(policy_guardrail_for(p, "c"), &p->guardrails[0]);
	assert_null(policy_guardrail_for(p, "other"));
	assert_null(policy_guardrail_for(p, NULL));
	policy_free(p);
}

static void unparsed(void **state)
{
	struct sql_class c = { .error = (char *)"syntax error at or near \"FORM\"", .error_pos = 10 };
	struct scoped sc;
	struct verdict v;
	char msg[512], long_err[400];

	scope_for(&sc, "", NULL);
	decide_unparsed(&sc.s, &c, &v);
	assert_int_equal(v.kind, VERDICT_BLOCK);
	assert_int_equal(v.klass, -1);
	assert_string_equal(v.what, "unparsed: syntax error at or near \"FORM\"");
	assert_string_equal(v.rule, "rule: built-in default (unparsed = block)");
	assert_string_equal(verdict_message(&v, msg, sizeof(msg)),
			    "sluice: blocked: unparsed: syntax error at or near \"FORM\" "
			    "(rule: built-in default (unparsed = block))");
	/* A long error is cut; control characters from the text are not passed on. */
	memset(long_err, 'x', sizeof(long_err) - 1);
	long_err[sizeof(long_err) - 1] = '\0';
	memcpy(long_err, "near \"\x1b[2J\"", 11);
	c.error = long_err;
	decide_unparsed(&sc.s, &c, &v);
	assert_true(strlen(v.what) < 200);
	assert_null(strchr(v.what, '\x1b'));
	assert_memory_equal(v.what, "unparsed: near \"?[2J\"xxx", 24);
	c.error = NULL;
	decide_unparsed(&sc.s, &c, &v);
	assert_string_equal(v.what, "unparsed: the text did not parse");
	policy_free(sc.p);

	c.error = (char *)"syntax error at end of input";
	scope_for(&sc, "[guardrail c]\nunparsed = block\n", NULL);
	decide_unparsed(&sc.s, &c, &v);
	assert_int_equal(v.kind, VERDICT_BLOCK);
	assert_string_equal(v.rule, "rule at t.conf:10");
	policy_free(sc.p);

	scope_for(&sc, "[guardrail c]\nblock = read\nunparsed = allow\n", NULL);
	decide_unparsed(&sc.s, &c, &v);
	assert_int_equal(v.kind, VERDICT_ALLOW);
	assert_string_equal(v.what, "");
	assert_string_equal(v.rule, "rule at t.conf:11");
	policy_free(sc.p);
}

static void messages(void **state)
{
	struct verdict v = { .kind = VERDICT_BLOCK, .klass = CLASS_DROP, .what = "drop",
			     .rule = "rule at /etc/sluice/sluice.conf:14" };
	char buf[512], small[40];

	assert_string_equal(verdict_message(&v, buf, sizeof(buf)),
			    "sluice: blocked: drop (rule at /etc/sluice/sluice.conf:14)");
	v.kind = VERDICT_APPROVE;
	snprintf(v.what, sizeof(v.what), "write");
	assert_string_equal(verdict_message(&v, buf, sizeof(buf)),
			    "sluice: approval required: write (rule at /etc/sluice/sluice.conf:14)");
	v.kind = VERDICT_ALLOW;
	v.what[0] = '\0';
	assert_string_equal(verdict_message(&v, buf, sizeof(buf)),
			    "sluice: allowed (rule at /etc/sluice/sluice.conf:14)");
	/* Cut to fit, never inside a UTF-8 character. */
	v.kind = VERDICT_BLOCK;
	snprintf(v.what, sizeof(v.what), "schema-scope: \xc3\xa4\xc3\xa4\xc3\xa4\xc3\xa4.t is outside ops");
	assert_ptr_equal(verdict_message(&v, small, 24), small);
	assert_string_equal(small, "sluice: blocked: schema");
	assert_string_equal(verdict_message(&v, small, 32), "sluice: blocked: schema-scope: ");
	assert_string_equal(verdict_message(&v, small, 33), "sluice: blocked: schema-scope: ");
	assert_string_equal(verdict_message(&v, small, 34), "sluice: blocked: schema-scope: \xc3\xa4");
	assert_ptr_equal(verdict_message(&v, small, 0), small);
}

/* Without an access there is nothing to decide against: fail closed. */
static void no_access(void **state)
{
	struct decide_scope s = { 0 };
	struct sql_stmt st = { .classes = READ };
	struct sql_class c = { .error = (char *)"x" };
	struct verdict v;

	decide_statement(&s, &st, NULL, &v);
	assert_int_equal(v.kind, VERDICT_BLOCK);
	decide_unparsed(&s, &c, &v);
	assert_int_equal(v.kind, VERDICT_BLOCK);
	decide_statement(NULL, &st, NULL, &v);
	assert_int_equal(v.kind, VERDICT_BLOCK);
}

/* The classifier and the decision together, on real text. */
static void classified(void **state)
{
	static const struct {
		const char *conf, *sql;
		enum verdict_kind kind[3];
		const char *what[3];
	} texts[] = {
		{ "[guardrail c]\nblock = drop truncate\n", "SELECT 1; DROP TABLE t; TRUNCATE t",
		  { VERDICT_ALLOW, VERDICT_BLOCK, VERDICT_BLOCK }, { "", "drop", "truncate" } },
		{ "schemas = ops\n", "SELECT * FROM ops.t; SELECT * FROM other.t; SELECT relname FROM pg_class",
		  { VERDICT_ALLOW, VERDICT_BLOCK, VERDICT_ALLOW },
		  { "", "schema-scope: other.t is outside ops", "" } },
		{ "", "SELECT pg_read_file('/etc/passwd'); SET standard_conforming_strings = off",
		  { VERDICT_BLOCK, VERDICT_BLOCK },
		  { "functions: pg_read_file", "standard_conforming_strings is pinned on" } },
		{ "mode = read\n", "DELETE FROM t; SELECT 1", { VERDICT_BLOCK, VERDICT_ALLOW },
		  { "delete-without-where", "" } },
	};

	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		struct sql_class c = { 0 };
		struct scoped sc;

		scope_for(&sc, texts[i].conf, NULL);
		assert_int_equal(sql_classify(texts[i].sql, &c), 0);
		assert_null(c.error);
		for (size_t k = 0; k < c.n; k++) {
			struct verdict v;

			decide_statement(&sc.s, &c.v[k], NULL, &v);
			if (v.kind != texts[i].kind[k] || strcmp(v.what, texts[i].what[k]) != 0) {
				print_error("%s [%zu]: got %s \"%s\"\n", texts[i].sql, k,
					    verdict_kind_name(v.kind), v.what);
				fail();
			}
		}
		sql_class_free(&c);
		policy_free(sc.p);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(decision_table),
		cmocka_unit_test(write_classes),
		cmocka_unit_test(scope_init),
		cmocka_unit_test(unparsed),
		cmocka_unit_test(messages),
		cmocka_unit_test(no_access),
		cmocka_unit_test(classified),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
