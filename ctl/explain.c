/* policy explain --user U --connection C --sql TEXT: what sluiced would do
 * with each statement of TEXT on a grant U could get on C, decided by the
 * same code the proxy runs (policy/classify.c, policy/decide.c), offline:
 * no agent, no database. */
#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>

#include "common/duration.h"
#include "common/util.h"
#include "policy/classify.h"
#include "policy/decide.h"
#include "policy/policy.h"

#define MAX_GROUPS 256      /* local groups looked at, as sluiced does */
#define MAX_IDP_GROUPS 64   /* --group options */
#define STATEMENT_WIDTH 80  /* characters of a statement shown in the listing */
#define HEAD_WIDTH 12       /* "guardrail:  " */
#define FIELD_WIDTH 15      /* "   functions: " under each statement */

static const char usage[] =
	"sluicectl policy explain --user USER --connection CONNECTION --sql TEXT\n"
	"       [--schema SCHEMA] [--group IDP-GROUP]... [--config FILE] [--json]";

/* Who asks: the account, its local groups, and the IdP groups given. */
struct who {
	char user[256];
	uid_t uid;
	char **groups;
	size_t n_groups;
	const char *idp[MAX_IDP_GROUPS];
	size_t n_idp;
};

static void who_clear(struct who *w)
{
	for (size_t i = 0; i < w->n_groups; i++)
		free(w->groups[i]);
	free(w->groups);
	w->groups = NULL;
	w->n_groups = 0;
}

/* Local groups of pw, as sluiced resolves a caller (agent/api.c). */
static int local_groups(const struct passwd *pw, struct who *w)
{
	gid_t gids[MAX_GROUPS];
	int ngids = MAX_GROUPS;

	if (getgrouplist(pw->pw_name, pw->pw_gid, gids, &ngids) < 0)
		ngids = MAX_GROUPS;
	w->groups = calloc((size_t)ngids + 1, sizeof(*w->groups));
	if (!w->groups)
		return -ENOMEM;
	for (int i = 0; i < ngids; i++) {
		struct group gr, *grp = NULL;
		char buf[8192];

		if (getgrgid_r(gids[i], &gr, buf, sizeof(buf), &grp) != 0 || !grp)
			continue;
		w->groups[w->n_groups] = strdup(gr.gr_name);
		if (!w->groups[w->n_groups])
			return -ENOMEM;
		w->n_groups++;
	}
	return 0;
}

/* The account: a local one (name or uid), else an [identity NAME] that
 * libnss_sluice would provide (its uid, no local groups). -ENOENT when
 * neither. */
static int resolve_user(const struct policy *p, const char *name, struct who *w)
{
	struct passwd pw, *pwp = NULL;
	char buf[4096];
	uint64_t uid;

	if (getpwnam_r(name, &pw, buf, sizeof(buf), &pwp) != 0)
		pwp = NULL;
	if (!pwp && parse_u64(name, 0, UINT32_MAX - 1, &uid) == 0 &&
	    getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &pwp) != 0)
		pwp = NULL;
	if (pwp) {
		snprintf(w->user, sizeof(w->user), "%s", pw.pw_name);
		w->uid = pw.pw_uid;
		return local_groups(&pw, w);
	}
	for (size_t i = 0; i < p->n_identities; i++) {
		const struct pol_identity *id = &p->identities[i];
		if (id->name && id->has_uid && strcmp(id->name, name) == 0) {
			snprintf(w->user, sizeof(w->user), "%s", id->name);
			w->uid = id->uid;
			return 0;
		}
	}
	return -ENOENT;
}

/* --group may be given many times; ctl_parse_args keeps one value per
 * option, so the --group options are taken out of argv first. Values of
 * the other options are skipped, so --sql '--group' stays SQL. */
static int take_groups(int argc, char **argv, char **rest, int *n_rest, struct who *w)
{
	static const char *const with_value[] = { "--user", "--connection", "--sql", "--schema",
						  "--config" };
	int n = 0;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *v = NULL;

		if (strcmp(a, "--") == 0) {
			while (i < argc)
				rest[n++] = argv[i++];
			break;
		}
		if (strcmp(a, "--group") == 0) {
			if (i + 1 >= argc)
				return ctl_usage_error("option '--group' needs a value");
			v = argv[++i];
		} else if (strncmp(a, "--group=", 8) == 0) {
			v = a + 8;
		}
		if (v) {
			if (!*v)
				return ctl_usage_error("--group needs a group name");
			if (w->n_idp == MAX_IDP_GROUPS)
				return ctl_usage_error("more than %d --group options", MAX_IDP_GROUPS);
			w->idp[w->n_idp++] = v;
			continue;
		}
		rest[n++] = argv[i];
		for (size_t k = 0; k < ARRAY_SIZE(with_value); k++)
			if (strcmp(a, with_value[k]) == 0 && i + 1 < argc) {
				rest[n++] = argv[++i];
				break;
			}
	}
	*n_rest = n;
	return -1;
}

/* "read write ddl" */
static void class_names(uint32_t bits, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int c = 0; c < CLASS__COUNT && off < n; c++) {
		int w;
		if (!(bits & CLASS_BIT(c)))
			continue;
		w = snprintf(buf + off, n - off, "%s%s", off ? " " : "", stmt_class_name((enum stmt_class)c));
		if (w < 0)
			break;
		off += (size_t)w;
	}
}

/* The statement's text, trimmed; NULL on ENOMEM. */
static char *statement_text(const char *sql, const struct sql_stmt *st)
{
	size_t off = st->off, len = st->len, total = strlen(sql);

	if (off > total)
		off = total;
	if (len > total - off)
		len = total - off;
	while (len > 0 && strchr(" \t\r\n\f\v", sql[off]))
		off++, len--;
	while (len > 0 && strchr(" \t\r\n\f\v", sql[off + len - 1]))
		len--;
	return strndup(sql + off, len);
}

/* s (valid UTF-8 after ctl_sanitize) cut to width characters. */
static void cut_to_width(char *s, size_t width, const char *ellipsis, char *buf, size_t n)
{
	size_t chars = 0, i = 0, cut = 0;

	for (; s[i]; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80) {
			if (chars == width - 1)
				cut = i;
			chars++;
		}
	if (chars <= width)
		snprintf(buf, n, "%s", s);
	else
		snprintf(buf, n, "%.*s%s", (int)cut, s, ellipsis);
}

struct explained {
	char *text;          /* trimmed statement */
	const struct sql_stmt *st; /* NULL when the text did not parse */
	uint32_t classes;    /* classify's, with the prepared body's for EXECUTE */
	bool parsed;
	const char *note;    /* a remark for the listing, or NULL */
	struct verdict v;
};

/* The prepared statement an EXECUTE runs, when this text prepared it. */
static const struct sql_stmt *prepared(const struct sql_class *c, size_t before, const char *name)
{
	for (size_t i = before; i-- > 0;)
		if ((c->v[i].flags & SQLF_PREPARE) && c->v[i].name && name && strcmp(c->v[i].name, name) == 0)
			return &c->v[i];
	return NULL;
}

static int explain_all(const struct decide_scope *scope, const char *sql, const struct sql_class *c,
		       struct explained *out, size_t *n_out)
{
	if (c->error) {
		out[0] = (struct explained){ .text = strdup(sql) };
		if (!out[0].text)
			return -ENOMEM;
		decide_unparsed(scope, c, &out[0].v);
		*n_out = 1;
		return 0;
	}
	for (size_t i = 0; i < c->n; i++) {
		const struct sql_stmt *st = &c->v[i], *body = NULL;
		struct explained *e = &out[i];

		*e = (struct explained){ .parsed = true, .classes = st->classes, .st = st };
		e->text = statement_text(sql, st);
		if (!e->text)
			return -ENOMEM;
		*n_out = i + 1;
		if (st->flags & SQLF_EXECUTE) {
			body = prepared(c, i, st->name);
			if (body)
				e->classes |= body->classes;
			else
				e->note = "its PREPARE is not in this text: decided on the arguments alone";
		}
		decide_statement(scope, st, body, &e->v);
	}
	return 0;
}

static const char *scope_origin(const struct decide_scope *s, char *buf, size_t n)
{
	const struct pol_origin *o = &s->access->schemas_origin;

	if (s->schema_requested)
		snprintf(buf, n, "the grant's --schema");
	else if (o->line)
		snprintf(buf, n, "rule at %s:%u", o->file, o->line);
	else
		snprintf(buf, n, "the [access] rule");
	return buf;
}

static void print_header(const struct decide_scope *s, const struct who *w, const char *connection)
{
	const struct pol_access *a = s->access;
	char schemas[512], origin[512], line[2048], t[3][32];
	size_t off = 0;

	schemas[0] = '\0';
	for (size_t i = 0; i < s->n_schemas && off < sizeof(schemas); i++) {
		int k = snprintf(schemas + off, sizeof(schemas) - off, "%s%s", i ? " " : "", s->schemas[i]);
		if (k < 0)
			break;
		off += (size_t)k;
	}
	snprintf(line, sizeof(line), "%s may use %s through [access %s] (rule at %s:%u)", w->user,
		 connection, a->name, a->origin.file ? a->origin.file : "?", a->origin.line);
	ctl_print_field(stdout, "access", line, HEAD_WIDTH);
	if (s->n_schemas)
		snprintf(line, sizeof(line), "mode %s; schema scope %s (%s); approval %s",
			 access_mode_name(a->mode), schemas, scope_origin(s, origin, sizeof(origin)),
			 approval_mode_name(a->approval));
	else
		snprintf(line, sizeof(line), "mode %s; no schema scope; approval %s",
			 access_mode_name(a->mode), approval_mode_name(a->approval));
	if (a->approval != APPROVAL_NONE) {
		duration_format(a->approval_timeout, t[0], sizeof(t[0]));
		duration_format(a->approval_window, t[1], sizeof(t[1]));
		duration_format(a->approval_wait, t[2], sizeof(t[2]));
		off = strlen(line);
		snprintf(line + off, sizeof(line) - off, " (timeout %s, window %s, wait %s)", t[0], t[1], t[2]);
	}
	ctl_print_field(stdout, "grant", line, HEAD_WIDTH);
	if (s->guardrail)
		snprintf(line, sizeof(line), "[guardrail %s] (rule at %s:%u)", s->guardrail->connection,
			 s->guardrail->origin.file ? s->guardrail->origin.file : "?",
			 s->guardrail->origin.line);
	else
		snprintf(line, sizeof(line), "none for %s: built-in defaults (block = functions "
			 "copy-program, unparsed = block)", connection);
	ctl_print_field(stdout, "guardrail", line, HEAD_WIDTH);
}

/* "blocked: drop (rule at ...)": the client's message without "sluice: ". */
static const char *decision_text(const struct verdict *v, char *buf, size_t n)
{
	if (v->kind == VERDICT_ALLOW) {
		snprintf(buf, n, "allowed (%s)", v->rule);
		return buf;
	}
	verdict_message(v, buf, n);
	return strncmp(buf, "sluice: ", 8) == 0 ? buf + 8 : buf;
}

/* "lower pg_read_file" */
static void function_names(const struct sql_stmt *st, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; st && i < st->n_functions && off < n; i++) {
		int w = snprintf(buf + off, n - off, "%s%s", off ? " " : "", st->functions[i]);
		if (w < 0)
			break;
		off += (size_t)w;
	}
}

static void print_human(const struct ctl *ctl, const struct explained *e, size_t n)
{
	char classes[256], shown[STATEMENT_WIDTH * 4 + 8], msg[1024], fns[512];

	for (size_t i = 0; i < n; i++) {
		char *text = ctl_sanitize(e[i].text, true);

		cut_to_width(text ? text : "?", STATEMENT_WIDTH, ctl->ellipsis, shown, sizeof(shown));
		free(text);
		printf("\n%-3zu%s\n", i + 1, shown[0] ? shown : "(empty)");
		if (e[i].parsed)
			class_names(e[i].classes, classes, sizeof(classes));
		else
			snprintf(classes, sizeof(classes), "(does not parse)");
		ctl_print_field(stdout, "   classes", classes[0] ? classes : "(none: nothing runs)",
				FIELD_WIDTH);
		function_names(e[i].st, fns, sizeof(fns));
		if (fns[0])
			ctl_print_field(stdout, "   functions", fns, FIELD_WIDTH);
		ctl_print_field(stdout, "   decision", decision_text(&e[i].v, msg, sizeof(msg)), FIELD_WIDTH);
		if (e[i].note)
			ctl_print_field(stdout, "   note", e[i].note, FIELD_WIDTH);
	}
}

static json_t *one_json(const struct explained *e)
{
	json_t *o = json_object(), *classes = json_array(), *fns = json_array();
	char msg[1024];
	int bad = !o || !classes || !fns;

	for (int c = 0; !bad && c < CLASS__COUNT; c++)
		if (e->classes & CLASS_BIT(c))
			bad |= json_array_append_new(classes, json_string(stmt_class_name((enum stmt_class)c))) < 0;
	for (size_t i = 0; !bad && e->st && i < e->st->n_functions; i++)
		bad |= json_array_append_new(fns, ctl_json_string(e->st->functions[i])) < 0;
	if (!bad) {
		verdict_message(&e->v, msg, sizeof(msg));
		bad |= json_object_set_new(o, "statement", ctl_json_string(e->text)) < 0;
		bad |= json_object_set(o, "classes", classes) < 0;
		bad |= json_object_set(o, "functions", fns) < 0;
		bad |= json_object_set_new(o, "parsed", json_boolean(e->parsed)) < 0;
		bad |= json_object_set_new(o, "decision", json_string(verdict_kind_name(e->v.kind))) < 0;
		bad |= json_object_set_new(o, "class", e->v.klass >= 0 ? json_string(stmt_class_name(
						    (enum stmt_class)e->v.klass)) : json_null()) < 0;
		bad |= json_object_set_new(o, "what", e->v.what[0] ? ctl_json_string(e->v.what)
								     : json_null()) < 0;
		bad |= json_object_set_new(o, "rule", ctl_json_string(e->v.rule)) < 0;
		bad |= json_object_set_new(o, "message", e->v.kind == VERDICT_ALLOW ? json_null()
								  : ctl_json_string(msg)) < 0;
	}
	json_decref(classes);
	json_decref(fns);
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int print_json(const struct explained *e, size_t n)
{
	json_t *a = json_array();
	int r = a ? 0 : -ENOMEM;

	for (size_t i = 0; i < n && r == 0; i++)
		if (json_array_append_new(a, one_json(&e[i])) < 0)
			r = -ENOMEM;
	if (r == 0)
		r = ctl_print_json(a, stdout);
	json_decref(a);
	return r;
}

static int load(const char *file, struct policy **p)
{
	struct pol_errors errs = { 0 };
	int r = policy_load(file, p, &errs);

	if (r < 0) {
		for (size_t i = 0; i < errs.n; i++) {
			char *m = ctl_sanitize(errs.v[i], true);
			fprintf(stderr, "%s\n", m ? m : "?");
			free(m);
		}
		if (errs.n == 0)
			ctl_err("%s: %s", file, strerror(-r));
		else
			ctl_err("%s: %zu %s; run sluicectl policy check", file, errs.n,
				errs.n == 1 ? "error" : "errors");
	}
	pol_errors_clear(&errs);
	return r;
}

static int explain(struct ctl *ctl, struct who *w, const char *user, const char *connection,
		   const char *sql, const char *schema)
{
	struct policy *p = NULL;
	struct sql_class c = { 0 };
	struct decide_scope scope;
	struct caller_facts facts;
	const struct pol_connection *conn;
	const struct pol_access *a;
	const char *schema_buf = NULL;
	struct explained *e = NULL;
	size_t n = 0;
	char err[512];
	int ret = CTL_FAILED, r;

	if (load(ctl->config_path, &p) < 0)
		return CTL_FAILED;
	r = resolve_user(p, user, w);
	if (r == -ENOENT) {
		ctl_err("no such user %s (neither a local account nor an [identity] with a uid)", user);
		goto out;
	}
	if (r < 0)
		goto oom;
	conn = policy_connection(p, connection);
	if (!conn) {
		ctl_err("there is no [connection %s] in %s", connection, ctl->config_path);
		goto out;
	}
	facts = (struct caller_facts){
		.user = w->user, .uid = (uint32_t)w->uid,
		.unix_groups = (const char *const *)w->groups, .n_unix_groups = w->n_groups,
		.idp_groups = w->idp, .n_idp_groups = w->n_idp,
	};
	a = policy_access_for(p, connection, &facts);
	if (!a) {
		ctl_err("%s may not use %s: no [access] rule allows it", w->user, connection);
		goto out;
	}
	r = decide_scope_init(&scope, p, conn, a, schema, &schema_buf, err, sizeof(err));
	if (r == -ENOMEM)
		goto oom;
	if (r < 0) {
		ctl_err("%s", err);
		goto out;
	}
	r = sql_classify(sql, &c);
	if (r < 0)
		goto oom;
	e = calloc(c.n ? c.n : 1, sizeof(*e));
	if (!e || explain_all(&scope, sql, &c, e, &n) < 0)
		goto oom;
	if (ctl->json) {
		if (print_json(e, n) < 0)
			goto oom;
	} else {
		print_header(&scope, w, connection);
		if (n == 0)
			printf("\n(no statement: nothing runs)\n");
		print_human(ctl, e, n);
	}
	ret = CTL_OK;
	for (size_t i = 0; i < n; i++)
		if (e[i].v.kind != VERDICT_ALLOW)
			ret = CTL_FAILED;
	goto out;
oom:
	ctl_err("out of memory");
	ret = CTL_FAILED;
out:
	for (size_t i = 0; e && i < n; i++)
		free(e[i].text);
	free(e);
	sql_class_free(&c);
	policy_free(p);
	return ret;
}

int cmd_policy_explain(struct ctl *ctl, int argc, char **argv)
{
	const char *user = NULL, *connection = NULL, *sql = NULL, *schema = NULL, *group = NULL;
	const struct ctl_opt opts[] = {
		{ "user", true, &user, NULL },
		{ "connection", true, &connection, NULL },
		{ "sql", true, &sql, NULL },
		{ "schema", true, &schema, NULL },
		{ "group", true, &group, NULL }, /* take_groups() has them all */
		{ NULL, false, NULL, NULL },
	};
	struct who w = { 0 };
	char **rest, *pos[1];
	int n_rest = 0, r;
	size_t n_pos;

	rest = calloc((size_t)argc + 1, sizeof(*rest));
	if (!rest) {
		ctl_err("out of memory");
		return CTL_FAILED;
	}
	r = take_groups(argc, argv, rest, &n_rest, &w);
	if (r < 0)
		r = ctl_command_args(ctl, usage, n_rest, rest, opts, pos, 0, 0, &n_pos);
	free(rest);
	if (r >= 0)
		return r;
	if (!user || !*user)
		return ctl_usage_error("policy explain needs --user USER\nUsage: %s", usage);
	if (!connection || !*connection)
		return ctl_usage_error("policy explain needs --connection CONNECTION\nUsage: %s", usage);
	if (!sql)
		return ctl_usage_error("policy explain needs --sql TEXT\nUsage: %s", usage);
	if (!*ctl->config_path)
		return ctl_usage_error("--config needs a file name");
	r = explain(ctl, &w, user, connection, sql, schema);
	who_clear(&w);
	return r;
}
