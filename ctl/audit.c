/* audit and audit verify: read the session database directly, read-only,
 * through common/auditdb.h (the same code the agent writes it with). */
#include "config.h"
#include "ctl/ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "common/auditdb.h"
#include "policy/policy.h"

#define SQL_WIDTH 60
#define OUTCOME_WIDTH 50
#define TABLE_CHUNK 1000

/* The database path: --database, else [agent] database of the config. */
static int db_path(const struct ctl *ctl, const char *opt, char **out)
{
	struct pol_errors errs = { 0 };
	struct policy *p = NULL;
	int r;

	if (opt) {
		*out = strdup(opt);
		if (!*out) {
			ctl_err("out of memory");
			return CTL_FAILED;
		}
		return 0;
	}
	r = policy_load(ctl->config_path, &p, &errs);
	if (r < 0) {
		for (size_t i = 0; i < errs.n; i++) {
			char *m = ctl_sanitize(errs.v[i], true);
			fprintf(stderr, "%s\n", m ? m : "?");
			free(m);
		}
		pol_errors_clear(&errs);
		ctl_err("cannot find the audit database in %s; name it with --database PATH",
			ctl->config_path);
		return CTL_FAILED;
	}
	pol_errors_clear(&errs);
	*out = strdup(p->agent.database);
	p = policy_free(p);
	if (!*out) {
		ctl_err("out of memory");
		return CTL_FAILED;
	}
	return 0;
}

static int db_open_ro(const char *path, sqlite3 **db)
{
	char *err = NULL;
	int r;

	/* SQLite says only "unable to open database file"; say why when we can. */
	if (access(path, R_OK) < 0 && errno == EACCES) {
		ctl_err("cannot read the audit database %s: permission denied (it is readable by "
			"root and the agent's account)", path);
		return CTL_FAILED;
	}
	r = auditdb_open(path, true, db, &err);

	if (r < 0) {
		/* auditdb's messages start with the path */
		char *m = ctl_sanitize(err ? err : strerror(-r), true);
		if (err)
			ctl_err("cannot open the audit database: %s", m ? m : "?");
		else
			ctl_err("cannot open the audit database %s: %s", path, m ? m : "?");
		free(m);
		free(err);
		return CTL_FAILED;
	}
	free(err);
	return 0;
}

int ctl_audit_db_open(const struct ctl *ctl, const char *database, char **path, sqlite3 **db)
{
	int r;

	if (database && !*database)
		return ctl_usage_error("--database needs a path");
	r = db_path(ctl, database, path);
	if (r != 0)
		return r;
	return db_open_ro(*path, db);
}

struct audit_out {
	const struct ctl *ctl;
	struct table *t;
	size_t n;
	bool first_json;
	int64_t now;
};

static json_t *jstr(const char *s)
{
	return ctl_json_string(s);
}

static json_t *jnum(int64_t v)
{
	return v >= 0 ? json_integer(v) : json_null();
}

json_t *ctl_json_time(int64_t us)
{
	char buf[48];

	ctl_format_utc(us, true, buf, sizeof(buf));
	return json_string(buf);
}

int ctl_json_stream_item(bool *first, json_t *j)
{
	int r = 0;

	if (!j)
		return -ENOMEM;
	fputs(*first ? "[\n  " : ",\n  ", stdout);
	*first = false;
	if (json_dumpf(j, stdout, JSON_COMPACT) < 0)
		r = -EIO;
	json_decref(j);
	return r;
}

void ctl_json_stream_end(bool first)
{
	fputs(first ? "[]\n" : "\n]\n", stdout);
}

static int flush_if_full(struct audit_out *o)
{
	if (table_rows(o->t) >= TABLE_CHUNK)
		return table_flush(o->t, stdout);
	return 0;
}

static int statement_row(const struct auditdb_statement_row *s, void *ud)
{
	struct audit_out *o = ud;
	char when[40], decision[128], outcome[512], rows[24], dur[32];

	o->n++;
	if (o->ctl->json) {
		json_t *j = json_pack("{s:I, s:o, s:o, s:I, s:o, s:o, s:I, s:o, s:o, s:o, s:o, s:o, "
				      "s:o, s:o, s:o, s:o, s:o, s:o}",
				      "id", (json_int_t)s->id, "time", ctl_json_time(s->ts_us),
				      "grant_id", jstr(s->grant_id), "uid", (json_int_t)s->uid,
				      "user", jstr(s->user), "connection", jstr(s->connection),
				      "conn_serial", (json_int_t)s->conn_serial, "sql", jstr(s->sql),
				      "decision", jstr(s->decision), "rule", jstr(s->rule),
				      "outcome", jstr(s->outcome), "sqlstate", jstr(s->sqlstate),
				      "error", jstr(s->error), "rows", jnum(s->rows),
				      "duration_us", jnum(s->duration_us), "subject", jstr(s->subject),
				      "issuer", jstr(s->issuer), "groups", jstr(s->groups));
		return ctl_json_stream_item(&o->first_json, j);
	}
	ctl_format_local_time(s->ts_us, when, sizeof(when));
	if (s->rule && *s->rule)
		snprintf(decision, sizeof(decision), "%s (%s)", s->decision ? s->decision : "?", s->rule);
	else
		snprintf(decision, sizeof(decision), "%s", s->decision ? s->decision : "?");
	if (s->error && *s->error)
		snprintf(outcome, sizeof(outcome), "%s%s%s", s->sqlstate ? s->sqlstate : "",
			 s->sqlstate ? ": " : "", s->error);
	else
		snprintf(outcome, sizeof(outcome), "%s", s->outcome ? s->outcome : "-");
	if (s->rows >= 0)
		snprintf(rows, sizeof(rows), "%" PRId64, s->rows);
	else
		snprintf(rows, sizeof(rows), "-");
	ctl_format_elapsed(s->duration_us, dur, sizeof(dur));
	{
		const char *row[] = { when, s->user, s->grant_id, s->connection, decision,
				      outcome, rows, dur, s->sql };
		int r = table_add_row(o->t, row);
		return r < 0 ? r : flush_if_full(o);
	}
}

static int event_row(const struct auditdb_event_row *e, void *ud)
{
	struct audit_out *o = ud;
	char when[40];

	o->n++;
	if (o->ctl->json) {
		json_t *j = json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o}",
				      "id", (json_int_t)e->id, "time", ctl_json_time(e->ts_us),
				      "kind", jstr(e->kind), "grant_id", jstr(e->grant_id),
				      "uid", jnum(e->uid), "user", jstr(e->user),
				      "connection", jstr(e->connection), "detail", jstr(e->detail));
		return ctl_json_stream_item(&o->first_json, j);
	}
	ctl_format_local_time(e->ts_us, when, sizeof(when));
	{
		const char *row[] = { when, e->kind, e->user, e->grant_id, e->connection, e->detail };
		int r = table_add_row(o->t, row);
		return r < 0 ? r : flush_if_full(o);
	}
}

static int audit_list(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] =
		"sluicectl audit [--since WHEN] [--user USER] [--grant ID] [--decision DECISION] "
		"[--events] [--limit N] [--database PATH] [--json]";
	static const char *const stmt_headers[] = { "TIME", "USER", "GRANT", "CONNECTION", "DECISION",
						    "OUTCOME", "ROWS", "DURATION", "SQL" };
	static const char *const event_headers[] = { "TIME", "EVENT", "USER", "GRANT", "CONNECTION",
						     "DETAIL" };
	const char *since = NULL, *user = NULL, *grant = NULL, *decision = NULL, *limit = NULL,
		   *database = NULL;
	bool events = false;
	const struct ctl_opt opts[] = {
		{ "since", true, &since, NULL },     { "user", true, &user, NULL },
		{ "grant", true, &grant, NULL },     { "decision", true, &decision, NULL },
		{ "limit", true, &limit, NULL },     { "database", true, &database, NULL },
		{ "events", false, NULL, &events },  { NULL, false, NULL, NULL },
	};
	struct auditdb_filter f = { 0 };
	struct audit_out o = { .ctl = ctl, .first_json = true };
	_cleanup_free_ char *path = NULL;
	sqlite3 *db = NULL;
	size_t n_pos;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, NULL, 0, 0, &n_pos);
	if (r >= 0)
		return r;
	o.now = now_us();
	if (since && ctl_parse_since(since, o.now, &f.since_us) < 0)
		return ctl_usage_error("--since '%s' is neither a duration (1h, 30m) nor a time "
				       "(2026-11-23T09:00:00Z, 2026-11-23 09:00)", since);
	if (limit) {
		uint64_t l;
		if (parse_u64(limit, 1, 10000000, &l) < 0)
			return ctl_usage_error("--limit '%s' is not a number from 1 to 10000000", limit);
		f.limit = (size_t)l;
	}
	if (events && decision)
		return ctl_usage_error("--decision filters statements; it does not apply to --events");
	if ((user && !*user) || (grant && !*grant) || (decision && !*decision) ||
	    (database && !*database))
		return ctl_usage_error("an empty value was given to --user, --grant, --decision or --database");
	/* A misspelt decision would read as "nothing was blocked". */
	if (decision && strcmp(decision, "allowed") != 0 && strcmp(decision, "blocked") != 0 &&
	    strcmp(decision, "approval") != 0 && strcmp(decision, "refused") != 0)
		return ctl_usage_error("--decision '%s' is not one of: allowed blocked approval refused",
				       decision);
	f.user = user;
	f.grant_id = grant;
	f.decision = decision;

	r = ctl_audit_db_open(ctl, database, &path, &db);
	if (r != 0)
		return r;
	if (!ctl->json) {
		o.t = events ? table_new(ARRAY_SIZE(event_headers), event_headers)
			     : table_new(ARRAY_SIZE(stmt_headers), stmt_headers);
		if (!o.t) {
			sqlite3_close(db);
			ctl_err("out of memory");
			return CTL_FAILED;
		}
		if (events) {
			table_set_max_width(o.t, 5, SQL_WIDTH, ctl->ellipsis);
		} else {
			table_set_max_width(o.t, 5, OUTCOME_WIDTH, ctl->ellipsis);
			table_set_max_width(o.t, 8, SQL_WIDTH, ctl->ellipsis);
		}
	}
	r = events ? auditdb_each_event(db, &f, event_row, &o)
		   : auditdb_each_statement(db, &f, statement_row, &o);
	sqlite3_close(db);
	if (r == 0) {
		if (ctl->json)
			ctl_json_stream_end(o.first_json);
		else if (o.n == 0)
			printf(events ? "No events match.\n" : "No statements match.\n");
		else
			r = table_flush(o.t, stdout);
	}
	o.t = table_free(o.t);
	if (r < 0) {
		ctl_err("cannot read the audit database %s: %s", path, strerror(-r));
		return CTL_FAILED;
	}
	return CTL_OK;
}

static int audit_verify(struct ctl *ctl, int argc, char **argv)
{
	static const char usage[] = "sluicectl audit verify [--database PATH] [--json]";
	const char *database = NULL;
	const struct ctl_opt opts[] = {
		{ "database", true, &database, NULL },
		{ NULL, false, NULL, NULL },
	};
	struct auditdb_verify_result res = { 0 };
	_cleanup_free_ char *path = NULL;
	sqlite3 *db = NULL;
	size_t n_pos;
	int r;

	r = ctl_command_args(ctl, usage, argc, argv, opts, NULL, 0, 0, &n_pos);
	if (r >= 0)
		return r;
	r = ctl_audit_db_open(ctl, database, &path, &db);
	if (r != 0)
		return r;
	r = auditdb_verify(db, &res);
	sqlite3_close(db);
	if (r < 0) {
		ctl_err("cannot verify the audit database %s: %s", path, strerror(-r));
		return CTL_FAILED;
	}
	res.detail[sizeof(res.detail) - 1] = '\0';
	if (ctl->json) {
		json_t *j = res.ok ? json_pack("{s:o, s:b, s:I}", "database", jstr(path), "ok", 1,
					       "rows_verified", (json_int_t)res.rows_checked)
				   : json_pack("{s:o, s:b, s:I, s:o, s:I, s:o}", "database",
					       jstr(path), "ok", 0, "rows_verified",
					       (json_int_t)res.rows_checked, "table", jstr(res.table),
					       "first_bad_id", (json_int_t)res.first_bad_id,
					       "detail", jstr(res.detail));
		r = ctl_print_json(j, stdout);
		json_decref(j);
		if (r < 0) {
			ctl_err("cannot write JSON");
			return CTL_FAILED;
		}
	} else if (res.ok) {
		printf("audit chain intact: %zu rows verified\n", res.rows_checked);
	}
	if (!res.ok) {
		char *d = ctl_sanitize(res.detail, true);
		ctl_err("audit chain broken: %s row %" PRId64 " no longer matches%s%s",
			res.table ? res.table : "?", res.first_bad_id, d && *d ? ": " : "",
			d ? d : "");
		free(d);
		return CTL_FAILED;
	}
	return CTL_OK;
}

int cmd_audit(struct ctl *ctl, int argc, char **argv)
{
	if (argc > 0 && strcmp(argv[0], "verify") == 0)
		return audit_verify(ctl, argc - 1, argv + 1);
	return audit_list(ctl, argc, argv);
}
