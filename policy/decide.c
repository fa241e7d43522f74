/* Decisions: one classified statement against what one grant was given.
 * The order of the checks is decide.h's; each verdict names what decided
 * and the configuration line (or built-in rule) that made it, because the
 * person reading "sluice: blocked: ..." in psql has only that to go on. */
#include "config.h"
#include "policy/decide.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/ident.h"

/* Without a block key: the functions on the list and COPY ... PROGRAM. */
#define DEFAULT_BLOCK (CLASS_BIT(CLASS_FUNCTIONS) | CLASS_BIT(CLASS_COPY_PROGRAM))
/* How much of a parse error an unparsed verdict quotes. */
#define UNPARSED_ERROR_MAX 160
/* How much of a name a schema-scope verdict quotes. */
#define NAME_ECHO_MAX 64

/* snprintf for verdict text, where a cut is expected and fine (the caps
 * above keep the useful part). */
static void say(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, n, fmt, ap);
	va_end(ap);
}

uint32_t decide_write_classes(void)
{
	return CLASS_BIT(CLASS_WRITE) | CLASS_BIT(CLASS_DDL) | CLASS_BIT(CLASS_DROP) |
	       CLASS_BIT(CLASS_TRUNCATE) | CLASS_BIT(CLASS_DELETE_WITHOUT_WHERE) |
	       CLASS_BIT(CLASS_UPDATE_WITHOUT_WHERE) | CLASS_BIT(CLASS_COPY_IN) |
	       CLASS_BIT(CLASS_COPY_PROGRAM) | CLASS_BIT(CLASS_ROLE_CHANGE) | CLASS_BIT(CLASS_ADMIN) |
	       CLASS_BIT(CLASS_OPAQUE);
}

const char *verdict_kind_name(enum verdict_kind k)
{
	switch (k) {
	case VERDICT_ALLOW:
		return "allowed";
	case VERDICT_BLOCK:
		return "blocked";
	case VERDICT_APPROVE:
		return "approval";
	}
	return NULL;
}

const struct pol_guardrail *policy_guardrail_for(const struct policy *p, const char *connection)
{
	for (size_t i = 0; p && connection && i < p->n_guardrails; i++)
		if (p->guardrails[i].connection && strcmp(p->guardrails[i].connection, connection) == 0)
			return &p->guardrails[i];
	return NULL;
}

/* "a, b, c" into buf (cut when long). */
static void join_schemas(const char *const *v, size_t n, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < n && off < len; i++) {
		int w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", v[i]);
		if (w < 0)
			break;
		off += (size_t)w;
	}
}

int decide_scope_init(struct decide_scope *s, const struct policy *p,
		      const struct pol_connection *conn, const struct pol_access *access,
		      const char *schema, const char **schema_buf, char *err, size_t errlen)
{
	struct decide_scope out;
	_cleanup_free_ char *folded = NULL;
	const char *why;
	char list[256];
	int r;

	if (!s || !p || !access || !schema_buf || (errlen && !err))
		return -EINVAL;
	if (errlen)
		err[0] = '\0';
	out = (struct decide_scope){
		.p = p, .conn = conn, .access = access,
		.guardrail = policy_guardrail_for(p, conn ? conn->name : access->connection),
		.schemas = (const char *const *)access->schemas.v, .n_schemas = access->schemas.n,
	};
	if (!schema || !*schema) {
		*s = out;
		return 0;
	}
	/* --schema is written like an identifier in SQL: OPS is ops. */
	r = ident_fold(schema, &folded, &why);
	if (r == -ENOMEM) {
		if (errlen)
			say(err, errlen, "out of memory");
		return r;
	}
	if (r < 0) {
		if (errlen)
			say(err, errlen, "invalid schema \"%.80s\": %s", schema, why);
		return -EINVAL;
	}
	if (access->schemas.n) {
		size_t i;
		for (i = 0; i < access->schemas.n; i++)
			if (strcmp(access->schemas.v[i], folded) == 0)
				break;
		if (i == access->schemas.n) {
			join_schemas((const char *const *)access->schemas.v, access->schemas.n, list,
				     sizeof(list));
			if (errlen)
				say(err, errlen, "schema %.80s is not in [access %s] schemas (%s)", folded,
				    access->name, list);
			return -EPERM;
		}
		*schema_buf = access->schemas.v[i];
	} else if (strcmp(folded, schema) == 0) {
		*schema_buf = schema;
	} else {
		/* The scope points into the request: it must already be the
		 * stored spelling. A quoted mixed-case name has none to ask for. */
		if (errlen)
			say(err, errlen, "schema \"%.80s\" is %.80s as PostgreSQL stores it: request "
			    "it so, or list it in [access %s] schemas", schema, folded, access->name);
		return -EINVAL;
	}
	out.schemas = schema_buf;
	out.n_schemas = 1;
	out.schema_requested = true;
	*s = out;
	return 0;
}

/* ---- verdicts ------------------------------------------------------------ */

/* "rule at FILE:LINE", cut to fit; every allowed statement names its
 * rule, so this is put together by hand rather than through printf. */
static void rule_at(struct verdict *v, const struct pol_origin *o, const char *fallback)
{
	static const char head[] = "rule at ";
	char num[12], *d = v->rule, *end = v->rule + sizeof(v->rule) - 1;
	size_t n, k = sizeof(num);
	unsigned line;

	if (!o || !o->file || !o->line) {
		say(v->rule, sizeof(v->rule), "%s", fallback);
		return;
	}
	for (line = o->line; line; line /= 10)
		num[--k] = (char)('0' + line % 10);
	num[--k] = ':';
	memcpy(d, head, sizeof(head) - 1);
	d += sizeof(head) - 1;
	n = strlen(o->file);
	n = n < (size_t)(end - d) ? n : (size_t)(end - d);
	memcpy(d, o->file, n);
	d += n;
	n = sizeof(num) - k;
	n = n < (size_t)(end - d) ? n : (size_t)(end - d);
	memcpy(d, num + k, n);
	d[n] = '\0';
}

static void verdict(struct verdict *v, enum verdict_kind kind, int klass)
{
	v->kind = kind;
	v->klass = klass;
	v->what[0] = '\0';
	v->rule[0] = '\0';
}

/* The class to name, and "functions: NAME" for the functions class. */
static void what_class(struct verdict *v, int klass, const char *function)
{
	if (klass == CLASS_FUNCTIONS && function)
		say(v->what, sizeof(v->what), "functions: %.200s", function);
	else
		say(v->what, sizeof(v->what), "%s",
		    klass >= 0 ? stmt_class_name((enum stmt_class)klass) : "statement");
}

/* The statement and, for EXECUTE, the prepared body it runs. */
struct facts {
	const struct sql_stmt *part[2];
	size_t n;
	uint32_t classes, flags;
};

static void facts_init(struct facts *f, const struct sql_stmt *st, const struct sql_stmt *extra)
{
	*f = (struct facts){ 0 };
	f->part[f->n++] = st;
	if (extra)
		f->part[f->n++] = extra;
	for (size_t i = 0; i < f->n; i++) {
		f->classes |= f->part[i]->classes;
		f->flags |= f->part[i]->flags;
	}
}

/* ---- functions ------------------------------------------------------------ */

/* pg_catalog.x is x: unqualified calls resolve there first. */
static const char *skip_pg_catalog(const char *fn)
{
	return strncmp(fn, "pg_catalog.", 11) == 0 ? fn + 11 : fn;
}

/* The name without its schema. */
static const char *base_name(const char *fn)
{
	const char *dot = strrchr(fn, '.');

	return dot ? dot + 1 : fn;
}

/* One entry of a functions list: NAME, SCHEMA.NAME, or a prefix ending in
 * * that matches the name in any schema (dblink*: wherever the extension
 * was installed). The proxy cannot see which function a name resolves to,
 * so it errs towards matching: an unqualified call may resolve to a listed
 * SCHEMA.NAME through search_path, and a listed NAME matches the name in
 * any schema. */
static bool function_matches(const char *entry, const char *fn)
{
	const char *e = skip_pg_catalog(entry), *f = skip_pg_catalog(fn);
	size_t el = strlen(e);

	if (el > 0 && e[el - 1] == '*')
		return strncmp(strchr(e, '.') ? f : base_name(f), e, el - 1) == 0;
	if (strcmp(e, f) == 0)
		return true;
	if (!strchr(e, '.') || !strchr(f, '.'))
		return strcmp(base_name(e), base_name(f)) == 0;
	return false;
}

static bool function_listed(const struct pol_guardrail *g, const char *fn)
{
	/* Key absent: the built-in list; "functions =" (written, empty): none. */
	if (!g || (!g->functions_origin.line && g->functions.n == 0))
		return sql_function_is_dangerous_default(fn);
	for (size_t i = 0; i < g->functions.n; i++)
		if (function_matches(g->functions.v[i], fn))
			return true;
	return false;
}

/* The first function called that is on the list, or NULL. */
static const char *listed_function(const struct pol_guardrail *g, const struct facts *f)
{
	for (size_t p = 0; p < f->n; p++)
		for (size_t i = 0; i < f->part[p]->n_functions; i++)
			if (function_listed(g, f->part[p]->functions[i]))
				return f->part[p]->functions[i];
	return NULL;
}

/* ---- schema scope --------------------------------------------------------- */

static bool in_scope(const struct decide_scope *s, const char *schema)
{
	for (size_t i = 0; i < s->n_schemas; i++)
		if (strcmp(s->schemas[i], schema) == 0)
			return true;
	return false;
}

static bool is_catalog(const char *schema)
{
	return strcmp(schema, "pg_catalog") == 0 || strcmp(schema, "information_schema") == 0;
}

static bool rel_allowed(const struct decide_scope *s, const struct sql_rel *r)
{
	/* Unqualified names resolve through the pinned search_path. */
	if (!r->schema)
		return true;
	if (in_scope(s, r->schema) || strcmp(r->schema, "pg_temp") == 0)
		return true;
	/* Clients introspect: reading the catalogs is fine, changing them is not. */
	return !r->written && is_catalog(r->schema);
}

/* A qualified call outside the scope; schema.name as classify.h reports it. */
static bool function_allowed(const struct decide_scope *s, const char *fn)
{
	const char *dot = strchr(fn, '.');
	char schema[IDENT_MAX + 1];
	size_t len;

	if (!dot)
		return true;
	len = (size_t)(dot - fn);
	if (len >= sizeof(schema))
		return false;
	memcpy(schema, fn, len);
	schema[len] = '\0';
	return in_scope(s, schema) || strcmp(schema, "pg_catalog") == 0 || strcmp(schema, "pg_temp") == 0;
}

static bool schema_allowed(const struct decide_scope *s, const char *schema)
{
	return in_scope(s, schema) || strcmp(schema, "pg_temp") == 0;
}

/* [catalog.]schema.name, each part cut at NAME_ECHO_MAX bytes. */
static void rel_name(const struct sql_rel *r, char *buf, size_t n)
{
	say(buf, n, "%.*s%s%.*s.%.*s", NAME_ECHO_MAX, r->catalog ? r->catalog : "",
	    r->catalog ? "." : "", NAME_ECHO_MAX, r->schema, NAME_ECHO_MAX, r->name);
}

static void scope_rule(const struct decide_scope *s, struct verdict *v)
{
	if (s->schema_requested && s->n_schemas == 1) {
		say(v->rule, sizeof(v->rule), "rule: the grant's --schema %.200s", s->schemas[0]);
		return;
	}
	rule_at(v, &s->access->schemas_origin, "rule: the schemas of the [access] rule");
}

/* Step 4: true (and *out filled) when something is outside the scope. */
static bool scope_blocks(const struct decide_scope *s, const struct facts *f, struct verdict *out)
{
	char scope[160], name[3 * (NAME_ECHO_MAX + 1)];

	if (s->n_schemas == 0)
		return false;
	join_schemas(s->schemas, s->n_schemas, scope, sizeof(scope));
	verdict(out, VERDICT_BLOCK, -1);
	if (f->flags & SQLF_SETS_SEARCH_PATH) {
		say(out->what, sizeof(out->what), "schema-scope: search_path is pinned to %s", scope);
		scope_rule(s, out);
		return true;
	}
	for (size_t p = 0; p < f->n; p++) {
		const struct sql_stmt *st = f->part[p];

		for (size_t i = 0; i < st->n_rels; i++) {
			const struct sql_rel *r = &st->rels[i];
			if (rel_allowed(s, r))
				continue;
			rel_name(r, name, sizeof(name));
			say(out->what, sizeof(out->what), "schema-scope: %s is %s%s", name,
			    is_catalog(r->schema) ? "written, and only reads are allowed outside "
						  : "outside ", scope);
			scope_rule(s, out);
			return true;
		}
		for (size_t i = 0; i < st->n_functions; i++) {
			if (function_allowed(s, st->functions[i]))
				continue;
			say(out->what, sizeof(out->what), "schema-scope: function %.*s is outside %s",
			    NAME_ECHO_MAX * 2, st->functions[i], scope);
			scope_rule(s, out);
			return true;
		}
		for (size_t i = 0; i < st->n_schemas; i++) {
			if (schema_allowed(s, st->schemas[i]))
				continue;
			say(out->what, sizeof(out->what), "schema-scope: schema %.*s is outside %s",
			    NAME_ECHO_MAX, st->schemas[i], scope);
			scope_rule(s, out);
			return true;
		}
	}
	return false;
}

/* ---- the decision ----------------------------------------------------------- */

static void no_access(struct verdict *out)
{
	verdict(out, VERDICT_BLOCK, -1);
	say(out->what, sizeof(out->what), "no access rule");
	say(out->rule, sizeof(out->rule), "rule: built-in (nothing runs without a grant)");
}

void decide_statement(const struct decide_scope *s, const struct sql_stmt *st,
		      const struct sql_stmt *extra, struct verdict *out)
{
	const struct pol_guardrail *g;
	const struct pol_access *a;
	const char *fn;
	struct facts f;
	uint32_t bits, hit, block, writes = decide_write_classes();

	if (!s || !s->access || !st) {
		no_access(out);
		return;
	}
	g = s->guardrail;
	a = s->access;
	facts_init(&f, st, extra);

	/* 2. The proxy reads string literals as the server does only with
	 * standard_conforming_strings on. */
	if (f.flags & (SQLF_SETS_SCS | SQLF_DYNAMIC_SETTING)) {
		verdict(out, VERDICT_BLOCK, -1);
		say(out->what, sizeof(out->what), "standard_conforming_strings is pinned on");
		say(out->rule, sizeof(out->rule),
		    "rule: built-in (sluice reads strings as the server does only with it on)");
		return;
	}
	/* 3. A read-only grant. */
	if (a->mode == ACCESS_READ && ((f.classes & writes) || (f.flags & SQLF_READ_WRITE))) {
		hit = f.classes & writes;
		verdict(out, VERDICT_BLOCK, hit ? sql_worst_class(hit) : -1);
		if (hit)
			what_class(out, out->klass, NULL);
		else
			say(out->what, sizeof(out->what), "leaving read-only");
		rule_at(out, &a->mode_origin, "rule: mode = read of the [access] rule");
		return;
	}
	/* 4. Schema scope. */
	if (scope_blocks(s, &f, out))
		return;
	/* 5. The guardrail's block list; the functions class is ours to add. */
	bits = f.classes;
	fn = listed_function(g, &f);
	if (fn)
		bits |= CLASS_BIT(CLASS_FUNCTIONS);
	block = g && g->block_set ? g->block : DEFAULT_BLOCK;
	hit = bits & block;
	if (hit) {
		verdict(out, VERDICT_BLOCK, sql_worst_class(hit));
		what_class(out, out->klass, fn);
		if (g && g->block_set)
			rule_at(out, &g->block_origin, "rule: block of the [guardrail]");
		else
			say(out->rule, sizeof(out->rule),
			    "rule: built-in default (block = functions copy-program)");
		return;
	}
	/* 6. Approvals: the guardrail's classes, then the access's mode. */
	hit = g ? bits & g->approve : 0;
	if (hit) {
		verdict(out, VERDICT_APPROVE, sql_worst_class(hit));
		what_class(out, out->klass, fn);
		rule_at(out, &g->approve_origin, "rule: approve of the [guardrail]");
		return;
	}
	hit = a->approval == APPROVAL_WRITES ? bits & writes
	      : a->approval == APPROVAL_ALL && !(f.flags & SQLF_EMPTY) ? bits | CLASS_BIT(CLASS_READ)
	      : 0;
	if (hit) {
		verdict(out, VERDICT_APPROVE, sql_worst_class(hit));
		what_class(out, out->klass, fn);
		rule_at(out, &a->approval_origin, "rule: approval of the [access] rule");
		return;
	}
	/* 7. */
	verdict(out, VERDICT_ALLOW, -1);
	rule_at(out, &a->origin, "rule: the [access] rule");
}

/* After a cut: drop a UTF-8 sequence left incomplete at the end. */
static void utf8_trim_tail(char *s)
{
	size_t len = strlen(s), i = len, need;
	unsigned char lead;

	while (i > 0 && len - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
		i--;
	if (i == 0)
		return;
	lead = (unsigned char)s[i - 1];
	if (lead < 0xc0)
		return;
	need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
	if (len - (i - 1) < need)
		s[i - 1] = '\0';
}

/* Control characters (from SQL text: quoted names, the parser's "near"
 * token) become '?': the message ends up on terminals and in logs. */
static void no_controls(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

void decide_unparsed(const struct decide_scope *s, const struct sql_class *c, struct verdict *out)
{
	const struct pol_guardrail *g = s ? s->guardrail : NULL;
	char error[UNPARSED_ERROR_MAX + 1];

	if (!s || !s->access) {
		no_access(out);
		return;
	}
	if (g && g->unparsed_allow) {
		verdict(out, VERDICT_ALLOW, -1);
		rule_at(out, &g->unparsed_origin, "rule: unparsed = allow of the [guardrail]");
		return;
	}
	snprintf(error, sizeof(error), "%s", c && c->error ? c->error : "the text did not parse");
	utf8_trim_tail(error);
	no_controls(error);
	verdict(out, VERDICT_BLOCK, -1);
	say(out->what, sizeof(out->what), "unparsed: %s", error);
	if (g && g->unparsed_origin.line)
		rule_at(out, &g->unparsed_origin, "");
	else
		say(out->rule, sizeof(out->rule), "rule: built-in default (unparsed = block)");
}

const char *verdict_message(const struct verdict *v, char *buf, size_t n)
{
	const char *head = v->kind == VERDICT_BLOCK ? "blocked: "
			   : v->kind == VERDICT_APPROVE ? "approval required: " : "allowed";

	if (n == 0)
		return buf;
	if (v->kind == VERDICT_ALLOW)
		say(buf, n, "sluice: %s (%s)", head, v->rule);
	else
		say(buf, n, "sluice: %s%s (%s)", head, v->what, v->rule);
	utf8_trim_tail(buf);
	no_controls(buf);
	return buf;
}
