/* sluicectl: shared options and the command table. Exit codes: 0 ok,
 * 1 denied or failed, 2 usage. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include <dbus/dbus.h>
#include "common/util.h"

enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

struct ctl {
	const char *config_path; /* --config, $SLUICE_CONFIG, or the default */
	bool json;               /* --json */
	const char *ellipsis;    /* "…" on a UTF-8 terminal, "..." otherwise */
};

/* The installed default; SYSCONFDIR comes from the build. */
#define CTL_DEFAULT_CONFIG SYSCONFDIR "/sluice/sluice.conf"

/* ---- messages (ctl/main.c) ---- */
/* "sluicectl: ..." on stderr. */
void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: the message, a pointer to --help; returns CTL_USAGE. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- argument parsing (ctl/args.c) ---- */
struct ctl_opt {
	const char *name;   /* long name without "--"; NULL ends a table */
	bool has_arg;
	const char **value; /* has_arg: where the argument goes */
	bool *flag;         /* !has_arg: set to true */
};

/* Parse argv[0..argc): "--name VALUE", "--name=VALUE", "--flag", "--" ends
 * options; everything else is a positional argument (at most max_pos, into
 * pos[]). The options of every table in opts[0..n_tables) are accepted;
 * a table ends with an entry whose name is NULL.
 * Returns 0, or -EINVAL with a message in err (usage error). */
int ctl_parse_args(int argc, char **argv, const struct ctl_opt *const *opts, size_t n_tables,
		   char **pos, size_t max_pos, size_t *n_pos, char *err, size_t errlen) WUR;

/* ---- times and durations (ctl/timefmt.c) ---- */
/* --since: a duration back from now ("90s", "1h30m", "2d"), RFC 3339
 * ("2026-11-23T09:20:39Z", "...+02:00", fractions allowed), or local time
 * as the tables print it ("2026-11-23 09:20:39", "2026-11-23 09:20",
 * "2026-11-23"). Returns 0 and microseconds since the epoch, or -EINVAL /
 * -ERANGE; *out untouched on failure. */
int ctl_parse_since(const char *s, int64_t now, int64_t *out) WUR;
/* Local "YYYY-MM-DD HH:MM:SS". */
void ctl_format_local_time(int64_t us, char *buf, size_t n);
/* RFC 3339 UTC; with_us adds ".ffffff". */
void ctl_format_utc(int64_t us, bool with_us, char *buf, size_t n);
/* "in 9m12s", "now", "3m5s ago" (whole seconds). */
void ctl_format_remaining(int64_t until_us, int64_t now, char *buf, size_t n);
/* A statement's duration: "0.3ms", "12ms", "1.25s", "2m3s". */
void ctl_format_elapsed(int64_t us, char *buf, size_t n);

/* ---- text for terminals (ctl/table.c) ---- */
/* Copy s into a new string safe to print on a terminal: control characters
 * (C0, DEL, C1) and invalid UTF-8 become '?', and when one_line is set, runs
 * of whitespace (newlines, tabs) become one space. NULL on ENOMEM. */
char *ctl_sanitize(const char *s, bool one_line);
/* Copy s with every byte that is not part of valid UTF-8 replaced by
 * U+FFFD. NULL on ENOMEM. */
char *ctl_utf8_fix(const char *s);
/* Display width in characters of valid UTF-8 (one per code point). */
size_t ctl_text_width(const char *s);

/* A table: aligned columns separated by two spaces, a header line, no
 * trailing blanks. Cells are sanitised (one line each) when added. */
struct table;
struct table *table_new(size_t n_cols, const char *const *headers);
struct table *table_free(struct table *t);
/* Cells of column col longer than width characters end in ellipsis. */
void table_set_max_width(struct table *t, size_t col, size_t width, const char *ellipsis);
/* cells[0..n_cols); NULL prints as "-". */
int table_add_row(struct table *t, const char *const *cells) WUR;
size_t table_rows(const struct table *t);
/* Print the header (first time only) and the rows so far, then forget the
 * rows, keeping the column widths: long listings print in chunks. */
int table_flush(struct table *t, FILE *out) WUR;

/* ---- JSON and human forms of agent replies (ctl/render.c) ---- */
struct dbusc_dict;
/* Every entry of d as JSON: integers under keys ending in "_at" become
 * RFC 3339 strings, the strings listed in null_if_empty become null when
 * empty. NULL on ENOMEM. */
json_t *ctl_dict_json(const struct dbusc_dict *d, const char *const *null_if_empty);
/* The same with a stable shape for scripts: every key in required is there
 * (null when the agent did not send it). */
json_t *ctl_dict_json_shaped(const struct dbusc_dict *d, const char *const *null_if_empty,
			     const char *const *required, size_t n_required);
/* A grant as JSON (the keys of org.sluice.Agent1.xml, snake_case; schema,
 * reason and end_reason are null when empty). */
json_t *ctl_grant_json(const struct dbusc_dict *g);
/* A session as JSON (id, state, end_reason, user, uid, subject, issuer,
 * groups, created_at, expires_at, grants always present; end_reason null
 * when empty). (ctl/session.c) */
json_t *ctl_session_json(const struct dbusc_dict *s);
/* GetStatus as JSON, plus uptime_seconds. */
json_t *ctl_status_json(const struct dbusc_dict *s, int64_t now);
/* A JSON string for s (null for NULL); bytes that are not UTF-8 become
 * U+FFFD. NULL on ENOMEM. */
json_t *ctl_json_string(const char *s);
/* A JSON array printed one element at a time, so any number of rows takes
 * bounded memory (ctl/audit.c): each item (released; NULL: -ENOMEM), then
 * the end. *first starts true. */
int ctl_json_stream_item(bool *first, json_t *j) WUR;
void ctl_json_stream_end(bool first);
/* An RFC 3339 UTC time with microseconds (ctl/audit.c). */
json_t *ctl_json_time(int64_t us);
/* Print j (pretty, newline-terminated) on out. */
int ctl_print_json(json_t *j, FILE *out) WUR;
/* Print j on stdout and release it: CTL_OK, or CTL_FAILED after saying so (ctl/main.c)
 * (j NULL: out of memory). */
int ctl_emit_json(json_t *j);

/* The psql command line for a grant: psql "host=DIR dbname=DB", quoted for
 * libpq and for a POSIX shell when the values need it. Returns 0 or
 * -ENAMETOOLONG. */
int ctl_psql_command(const char *socket_dir, const char *dbname, char *buf, size_t n) WUR;

/* Aligned "key:   value" lines, the value starting at column key_width
 * (at least one blank after the colon); the value is sanitised to one line.
 * _raw prints value as it is (only for text built from checked parts). */
void ctl_print_field(FILE *out, const char *key, const char *value, size_t key_width);
void ctl_print_field_raw(FILE *out, const char *key, const char *value, size_t key_width);

/* ---- talking to sluiced (ctl/bus.c) ---- */
struct dbusc;
struct dbusc_error;
/* Connect to the system bus; on failure print why and return CTL_FAILED. */
int ctl_bus_open(struct dbusc **out) WUR;
/* Open the bus, call method with the given arguments (as dbusc_call),
 * close: 0 with *reply, or CTL_FAILED after printing why. */
int ctl_call(const char *method, DBusMessage **reply, int first_arg_type, ...) WUR;
/* Print a failed call's message ("sluicectl: ..."), clear err, CTL_FAILED. */
int ctl_bus_failed(struct dbusc_error *err);
/* A reply we could not read: print it and return CTL_FAILED. */
int ctl_bad_reply(const char *method, int r);
/* Call a listing method that takes one boolean (all) and answers an array
 * of dicts (ListGrants, ListSessions, ListApprovals): 0 with *l filled, or
 * CTL_FAILED after printing why. */
struct dbusc_dict_list;
int ctl_list_call(const char *method, bool all, struct dbusc_dict_list *l) WUR;

/* ---- listing commands (ctl/main.c) ---- */
/* The whole of "sluicectl NAME [--all]": parse the arguments (usage), call
 * method (ctl_list_call), then print a JSON array of to_json(each entry)
 * with --json, else what table(ctl, list, all) prints. Returns the exit
 * code. */
int ctl_list_command(struct ctl *ctl, int argc, char **argv, const char *usage,
		     const char *method, json_t *(*to_json)(const struct dbusc_dict *d),
		     int (*table)(const struct ctl *ctl, const struct dbusc_dict_list *l, bool all));
/* The whole of "sluicectl NOUN show ID": call method with the ID, then
 * print to_json(the reply) with --json, else details(the reply). */
int ctl_show_command(struct ctl *ctl, int argc, char **argv, const char *usage,
		     const char *method, json_t *(*to_json)(const struct dbusc_dict *d),
		     void (*details)(const struct dbusc_dict *d));
/* The end of a listing's table: when r is 0 (every row added), flush t on
 * stdout; free t. CTL_OK, or CTL_FAILED after "cannot print the WHAT: ...". */
int ctl_table_done(struct table *t, int r, const char *what);

/* ---- the commands ---- */
/* The session database (ctl/audit.c): its path into *path (database, the
 * --database option, else [agent] database of the configuration; the
 * caller frees it, also on failure) and a read-only handle. 0, CTL_USAGE
 * when --database was given empty, or CTL_FAILED after saying why. */
typedef struct sqlite3 sqlite3;
int ctl_audit_db_open(const struct ctl *ctl, const char *database, char **path, sqlite3 **db) WUR;
int cmd_status(struct ctl *ctl, int argc, char **argv);
int cmd_reload(struct ctl *ctl, int argc, char **argv);
int cmd_grant(struct ctl *ctl, int argc, char **argv);   /* grant request | grant show */
int cmd_grants(struct ctl *ctl, int argc, char **argv);
int cmd_revoke(struct ctl *ctl, int argc, char **argv);
int cmd_audit(struct ctl *ctl, int argc, char **argv);   /* audit | audit verify */
int cmd_replay(struct ctl *ctl, int argc, char **argv);  /* ctl/replay.c */
int cmd_policy(struct ctl *ctl, int argc, char **argv);  /* policy check | policy explain */
int cmd_policy_explain(struct ctl *ctl, int argc, char **argv); /* ctl/explain.c */
int cmd_login(struct ctl *ctl, int argc, char **argv);
int cmd_logout(struct ctl *ctl, int argc, char **argv);
int cmd_sessions(struct ctl *ctl, int argc, char **argv);
int cmd_session(struct ctl *ctl, int argc, char **argv); /* session close | session show */
int cmd_exec(struct ctl *ctl, int argc, char **argv);
int cmd_approvals(struct ctl *ctl, int argc, char **argv); /* ctl/approvals.c */
int cmd_approve(struct ctl *ctl, int argc, char **argv);
int cmd_deny(struct ctl *ctl, int argc, char **argv);

/* Parse a command's arguments: its options (a table ending in { NULL }),
 * plus --json, --config FILE and --help, which every command accepts and
 * which update ctl. min_pos..max_pos positional arguments go to pos[].
 * Returns -1 to go on, or the exit code to return now (--help printed the
 * usage: CTL_OK; a usage error was printed: CTL_USAGE). */
int ctl_command_args(struct ctl *ctl, const char *usage, int argc, char **argv,
		     const struct ctl_opt *opts, char **pos, size_t min_pos, size_t max_pos,
		     size_t *n_pos);
