/* sluicectl's pure helpers: argument parsing, --since, time formats,
 * terminal-safe text, tables, JSON of a grant, the psql line. */
#include "config.h"
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "common/dbusc.h"
#include "ctl/ctl.h"

#define S(x) ((int64_t)(x) * 1000000)

static void set_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

/* ---- arguments ---- */

static void args_parse(void **state)
{
	const char *ttl = NULL, *reason = NULL;
	bool all = false, json = false;
	const struct ctl_opt a[] = {
		{ "ttl", true, &ttl, NULL }, { "all", false, NULL, &all }, { NULL, false, NULL, NULL },
	};
	const struct ctl_opt b[] = {
		{ "reason", true, &reason, NULL }, { "json", false, NULL, &json },
		{ NULL, false, NULL, NULL },
	};
	const struct ctl_opt *tables[] = { a, b };
	char *argv[] = { "orders-pg", "--ttl", "10m", "--reason=why --not", "--json", "--all",
			 "--", "--ttl" };
	char *pos[3];
	size_t n = 99;
	char err[128] = "";

	assert_int_equal(ctl_parse_args(8, argv, tables, 2, pos, 3, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 2);
	assert_string_equal(pos[0], "orders-pg");
	assert_string_equal(pos[1], "--ttl"); /* after "--" */
	assert_string_equal(ttl, "10m");
	assert_string_equal(reason, "why --not");
	assert_true(all);
	assert_true(json);

	/* a value that looks like an option is still the value */
	char *argv2[] = { "--reason", "--all" };
	all = false;
	assert_int_equal(ctl_parse_args(2, argv2, tables, 2, pos, 3, &n, err, sizeof(err)), 0);
	assert_string_equal(reason, "--all");
	assert_false(all);
	assert_int_equal(n, 0);
}

static void args_errors(void **state)
{
	const char *ttl = NULL;
	bool all = false, help = false;
	const struct ctl_opt a[] = {
		{ "ttl", true, &ttl, NULL }, { "all", false, NULL, &all },
		{ "help", false, NULL, &help }, { NULL, false, NULL, NULL },
	};
	const struct ctl_opt *tables[] = { a };
	char *pos[1];
	size_t n = 42;
	char err[128];

	char *unknown[] = { "--tt", "5" };
	assert_int_equal(ctl_parse_args(2, unknown, tables, 1, pos, 1, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unknown option '--tt'");
	assert_int_equal(n, 42);

	char *missing[] = { "--ttl" };
	assert_int_equal(ctl_parse_args(1, missing, tables, 1, pos, 1, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "option '--ttl' needs a value");

	char *flag_value[] = { "--all=yes" };
	assert_int_equal(ctl_parse_args(1, flag_value, tables, 1, pos, 1, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "option '--all' takes no value");

	char *too_many[] = { "a", "b" };
	assert_int_equal(ctl_parse_args(2, too_many, tables, 1, pos, 1, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unexpected argument 'b'");

	char *short_opt[] = { "-x" };
	assert_int_equal(ctl_parse_args(1, short_opt, tables, 1, pos, 1, &n, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "unknown option '-x'");

	char *h[] = { "-h" };
	assert_int_equal(ctl_parse_args(1, h, tables, 1, pos, 1, &n, err, sizeof(err)), 0);
	assert_true(help);
}

/* ---- --since ---- */

static void since_durations(void **state)
{
	int64_t now = S(1800000000) + 123, out = 0;

	assert_int_equal(ctl_parse_since("1h", now, &out), 0);
	assert_int_equal(out, now - S(3600));
	assert_int_equal(ctl_parse_since("90s", now, &out), 0);
	assert_int_equal(out, now - S(90));
	assert_int_equal(ctl_parse_since("1d2h", now, &out), 0);
	assert_int_equal(out, now - S(93600));
	/* further back than the epoch clamps to it */
	assert_int_equal(ctl_parse_since("3000d", S(100), &out), 0);
	assert_int_equal(out, 0);
}

static void since_timestamps(void **state)
{
	int64_t out = 0;

	set_tz("EST5");
	/* 2026-11-23T09:20:39Z = 1795425639 */
	assert_int_equal(ctl_parse_since("2026-11-23T09:20:39Z", 0, &out), 0);
	assert_int_equal(out, S(1795425639));
	assert_int_equal(ctl_parse_since("2026-11-23t09:20:39z", 0, &out), 0);
	assert_int_equal(out, S(1795425639));
	assert_int_equal(ctl_parse_since("2026-11-23T11:20:39+02:00", 0, &out), 0);
	assert_int_equal(out, S(1795425639));
	assert_int_equal(ctl_parse_since("2026-11-23T04:50:39-04:30", 0, &out), 0);
	assert_int_equal(out, S(1795425639));
	assert_int_equal(ctl_parse_since("2026-11-23T09:20:39.5Z", 0, &out), 0);
	assert_int_equal(out, S(1795425639) + 500000);
	assert_int_equal(ctl_parse_since("2026-11-23T09:20:39.123456789Z", 0, &out), 0);
	assert_int_equal(out, S(1795425639) + 123456);
	assert_int_equal(ctl_parse_since("2026-11-23T09:20Z", 0, &out), 0);
	assert_int_equal(out, S(1795425600));
	/* without a zone: local time, as the tables print it (EST5 = UTC-5) */
	assert_int_equal(ctl_parse_since("2026-11-23 04:20:39", 0, &out), 0);
	assert_int_equal(out, S(1795425639));
	assert_int_equal(ctl_parse_since("2026-11-23 04:20", 0, &out), 0);
	assert_int_equal(out, S(1795425600));
	assert_int_equal(ctl_parse_since("2026-11-23", 0, &out), 0);
	assert_int_equal(out, S(1795410000)); /* 2026-11-23T05:00:00Z */
	/* leap day */
	assert_int_equal(ctl_parse_since("2028-02-29T00:00:00Z", 0, &out), 0);
	assert_int_equal(out, S(1835395200));
}

static void since_rejects(void **state)
{
	static const char *bad[] = {
		"", "yesterday", "1h ago", "-1h", "2026-13-01", "2026-02-29", "2026-04-31",
		"2026-00-10", "2026-11-23T24:00:00Z", "2026-11-23T09:60Z", "2026-11-23T09:20:39+2",
		"2026-11-23T09:20:39+02:00x", "2026-11-23T09:20:39.Z", "26-11-23", "2026-11-23T",
		"2026/11/23", "1969-12-31T00:00:00Z", "2026-11-23 9:20",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int64_t out = 777;
		assert_true(ctl_parse_since(bad[i], S(1800000000), &out) < 0);
		assert_int_equal(out, 777);
	}
	int64_t out;
	assert_true(ctl_parse_since(NULL, 0, &out) < 0);
}

/* ---- formats ---- */

static void time_formats(void **state)
{
	char buf[64];

	set_tz("UTC0");
	ctl_format_local_time(S(1795425639) + 999999, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-23 09:20:39");
	set_tz("EST5");
	ctl_format_local_time(S(1795425639), buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-23 04:20:39");
	ctl_format_utc(S(1795425639) + 42, false, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-23T09:20:39Z");
	ctl_format_utc(S(1795425639) + 42, true, buf, sizeof(buf));
	assert_string_equal(buf, "2026-11-23T09:20:39.000042Z");
	/* round trip through --since */
	int64_t back = 0;
	assert_int_equal(ctl_parse_since(buf, 0, &back), 0);
	assert_int_equal(back, S(1795425639) + 42);
}

static void remaining(void **state)
{
	char buf[64];
	int64_t now = S(1000);

	ctl_format_remaining(now + S(552) + 900000, now, buf, sizeof(buf));
	assert_string_equal(buf, "in 9m12s");
	ctl_format_remaining(now + S(3600), now, buf, sizeof(buf));
	assert_string_equal(buf, "in 1h");
	ctl_format_remaining(now + 500000, now, buf, sizeof(buf));
	assert_string_equal(buf, "now");
	ctl_format_remaining(now - 500000, now, buf, sizeof(buf));
	assert_string_equal(buf, "now");
	ctl_format_remaining(now - S(185), now, buf, sizeof(buf));
	assert_string_equal(buf, "3m5s ago");
}

static void elapsed(void **state)
{
	static const struct { int64_t us; const char *s; } cases[] = {
		{ -1, "-" }, { 0, "0.0ms" }, { 340, "0.3ms" }, { 9999, "9.9ms" }, { 12345, "12ms" },
		{ 999999, "999ms" }, { 1250000, "1.25s" }, { 59990000, "59.99s" }, { S(123), "2m3s" },
	};
	char buf[32];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		ctl_format_elapsed(cases[i].us, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].s);
	}
}

/* ---- terminal-safe text ---- */

static void sanitize(void **state)
{
	static const struct { const char *in; bool one_line; const char *out; } cases[] = {
		{ "SELECT 1", true, "SELECT 1" },
		{ "\n  SELECT *\n\tFROM t  \n", true, "SELECT * FROM t" },
		{ "a\nb\tc", false, "a\nb\tc" },
		{ "\x1b[2Jgone", true, "?[2Jgone" },
		{ "bell\a", false, "bell?" },
		{ "del\x7f", true, "del?" },
		{ "caf\xc3\xa9", true, "caf\xc3\xa9" },
		{ "bad\xff\xfe.", true, "bad??." },
		{ "cut\xc3", true, "cut?" },
		{ "overlong\xc0\xaf", true, "overlong??" },
		{ "c1\xc2\x9b" "31m", true, "c1?31m" },
		{ "rtl\xe2\x80\xae" "evil", true, "rtl?evil" },
		{ "", true, "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *s = ctl_sanitize(cases[i].in, cases[i].one_line);
		assert_non_null(s);
		assert_string_equal(s, cases[i].out);
		free(s);
	}
	char *s = ctl_sanitize(NULL, true);
	assert_string_equal(s, "");
	free(s);

	assert_int_equal(ctl_text_width("abc"), 3);
	assert_int_equal(ctl_text_width("caf\xc3\xa9"), 4);
	assert_int_equal(ctl_text_width("\xe2\x80\xa6"), 1);

	s = ctl_utf8_fix("ok\xff\xc3\xa9");
	assert_string_equal(s, "ok\xef\xbf\xbd\xc3\xa9");
	free(s);
}

/* ---- tables ---- */

static char *render(struct table *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(table_flush(t, f), 0);
	fclose(f);
	return buf;
}

static void table_layout(void **state)
{
	static const char *const headers[] = { "ID", "USER", "SQL" };
	struct table *t = table_new(3, headers);
	char *out;

	assert_non_null(t);
	table_set_max_width(t, 2, 10, "\xe2\x80\xa6");
	assert_int_equal(table_add_row(t, (const char *const[]){ "g1", "mcp-orders", "SELECT 1" }), 0);
	assert_int_equal(table_add_row(t, (const char *const[]){ "grant-22", NULL,
								 "SELECT *\n  FROM ops.customers" }), 0);
	assert_int_equal(table_add_row(t, (const char *const[]){ "g3", "caf\xc3\xa9", "" }), 0);
	assert_int_equal(table_rows(t), 3);
	out = render(t);
	assert_string_equal(out,
			    "ID        USER        SQL\n"
			    "g1        mcp-orders  SELECT 1\n"
			    "grant-22  -           SELECT *\xe2\x80\xa6\n"
			    "g3        caf\xc3\xa9\n");
	free(out);
	assert_int_equal(table_rows(t), 0);

	/* a second chunk keeps the widths and prints no second header */
	assert_int_equal(table_add_row(t, (const char *const[]){ "g4", "x", "\x1b]0;pwned\a" }), 0);
	out = render(t);
	assert_string_equal(out, "g4        x           ?]0;pwned?\n");
	free(out);
	t = table_free(t);
	assert_null(t);
	assert_null(table_free(NULL));
}

static void table_truncation_ascii(void **state)
{
	static const char *const headers[] = { "A", "B" };
	struct table *t = table_new(2, headers);
	char *out;

	table_set_max_width(t, 0, 6, "...");
	assert_int_equal(table_add_row(t, (const char *const[]){ "abcdefgh", "x" }), 0);
	assert_int_equal(table_add_row(t, (const char *const[]){ "abcdef", "y" }), 0);
	assert_int_equal(table_add_row(t, (const char *const[]){ "ab  cdefgh", "z" }), 0);
	out = render(t);
	assert_string_equal(out,
			    "A       B\n"
			    "abc...  x\n"
			    "abcdef  y\n"
			    "ab...   z\n");
	free(out);
	table_free(t);
}

/* ---- JSON of a grant ---- */

static void append_sv(DBusMessageIter *dict, const char *key, int type, const void *value)
{
	DBusMessageIter entry, var;
	char sig[2] = { (char)type, '\0' };

	assert_true(dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &entry));
	assert_true(dbus_message_iter_append_basic(&entry, DBUS_TYPE_STRING, &key));
	assert_true(dbus_message_iter_open_container(&entry, DBUS_TYPE_VARIANT, sig, &var));
	assert_true(dbus_message_iter_append_basic(&var, type, value));
	assert_true(dbus_message_iter_close_container(&entry, &var));
	assert_true(dbus_message_iter_close_container(dict, &entry));
}

static DBusMessage *grant_message(bool with_schema)
{
	DBusMessage *m = dbus_message_new_method_call("a.b", "/a", "a.b", "M");
	DBusMessageIter it, dict;
	const char *id = "3f9a1c", *state = "active", *empty = "", *user = "mcp-orders",
		   *conn = "orders-pg", *proto = "postgres", *dir = "/run/sluice/grants/3f9a1c",
		   *sock = "/run/sluice/grants/3f9a1c/.s.PGSQL.5432", *db = "orders", *schema = "ops",
		   *reason = "nightly report";
	dbus_uint32_t uid = 61001, conns = 2;
	dbus_int64_t created = S(1795425639) + 5, expires = S(1795426239);

	assert_non_null(m);
	dbus_message_iter_init_append(m, &it);
	assert_true(dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict));
	append_sv(&dict, "id", DBUS_TYPE_STRING, &id);
	append_sv(&dict, "state", DBUS_TYPE_STRING, &state);
	append_sv(&dict, "end_reason", DBUS_TYPE_STRING, &empty);
	append_sv(&dict, "user", DBUS_TYPE_STRING, &user);
	append_sv(&dict, "uid", DBUS_TYPE_UINT32, &uid);
	append_sv(&dict, "connection", DBUS_TYPE_STRING, &conn);
	append_sv(&dict, "protocol", DBUS_TYPE_STRING, &proto);
	append_sv(&dict, "socket_dir", DBUS_TYPE_STRING, &dir);
	append_sv(&dict, "socket", DBUS_TYPE_STRING, &sock);
	append_sv(&dict, "dbname", DBUS_TYPE_STRING, &db);
	append_sv(&dict, "created_at", DBUS_TYPE_INT64, &created);
	append_sv(&dict, "expires_at", DBUS_TYPE_INT64, &expires);
	append_sv(&dict, "schema", DBUS_TYPE_STRING, with_schema ? &schema : &empty);
	append_sv(&dict, "reason", DBUS_TYPE_STRING, &reason);
	if (with_schema)
		append_sv(&dict, "connections", DBUS_TYPE_UINT32, &conns);
	assert_true(dbus_message_iter_close_container(&it, &dict));
	return m;
}

static void grant_json(void **state)
{
	DBusMessage *m = grant_message(true);
	struct dbusc_dict g = { 0 };
	json_t *j;
	char *text;

	assert_int_equal(dbusc_reply_dict(m, &g), 0);
	j = ctl_grant_json(&g);
	assert_non_null(j);
	text = json_dumps(j, JSON_COMPACT);
	assert_string_equal(text,
			    "{\"id\":\"3f9a1c\",\"state\":\"active\",\"end_reason\":null,"
			    "\"user\":\"mcp-orders\",\"uid\":61001,\"connection\":\"orders-pg\","
			    "\"protocol\":\"postgres\",\"socket_dir\":\"/run/sluice/grants/3f9a1c\","
			    "\"socket\":\"/run/sluice/grants/3f9a1c/.s.PGSQL.5432\","
			    "\"dbname\":\"orders\",\"created_at\":\"2026-11-23T09:20:39Z\","
			    "\"expires_at\":\"2026-11-23T09:30:39Z\",\"schema\":\"ops\","
			    "\"reason\":\"nightly report\",\"connections\":2}");
	free(text);
	json_decref(j);
	dbusc_dict_clear(&g);
	dbus_message_unref(m);

	/* schema "" is null; a key the agent left out is still there, null */
	m = grant_message(false);
	assert_int_equal(dbusc_reply_dict(m, &g), 0);
	j = ctl_grant_json(&g);
	assert_true(json_is_null(json_object_get(j, "schema")));
	assert_true(json_is_null(json_object_get(j, "connections")));
	assert_string_equal(json_string_value(json_object_get(j, "reason")), "nightly report");
	json_decref(j);
	dbusc_dict_clear(&g);
	dbus_message_unref(m);
}

static void status_json(void **state)
{
	DBusMessage *m = dbus_message_new_method_call("a.b", "/a", "a.b", "M");
	DBusMessageIter it, dict;
	const char *version = "0.1.0", *audit = "ok";
	dbus_int64_t started = S(1000);
	dbus_uint32_t pid = 42;
	struct dbusc_dict s = { 0 };
	json_t *j;

	dbus_message_iter_init_append(m, &it);
	assert_true(dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict));
	append_sv(&dict, "version", DBUS_TYPE_STRING, &version);
	append_sv(&dict, "pid", DBUS_TYPE_UINT32, &pid);
	append_sv(&dict, "started_at", DBUS_TYPE_INT64, &started);
	append_sv(&dict, "audit", DBUS_TYPE_STRING, &audit);
	assert_true(dbus_message_iter_close_container(&it, &dict));
	assert_int_equal(dbusc_reply_dict(m, &s), 0);
	j = ctl_status_json(&s, S(4723));
	assert_string_equal(json_string_value(json_object_get(j, "started_at")), "1970-01-01T00:16:40Z");
	assert_int_equal(json_integer_value(json_object_get(j, "uptime_seconds")), 3723);
	assert_int_equal(json_integer_value(json_object_get(j, "pid")), 42);
	json_decref(j);
	dbusc_dict_clear(&s);
	dbus_message_unref(m);
}

static void json_strings(void **state)
{
	json_t *j = ctl_json_string("caf\xc3\xa9\xff");

	assert_string_equal(json_string_value(j), "caf\xc3\xa9\xef\xbf\xbd");
	json_decref(j);
	j = ctl_json_string(NULL);
	assert_true(json_is_null(j));
	json_decref(j);
}

/* ---- psql line ---- */

static void psql_line(void **state)
{
	char buf[256];

	assert_int_equal(ctl_psql_command("/run/sluice/grants/3f9a", "orders", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "psql \"host=/run/sluice/grants/3f9a dbname=orders\"");
	assert_int_equal(ctl_psql_command("/tmp/my dir", "orders", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "psql \"host='/tmp/my dir' dbname=orders\"");
	assert_int_equal(ctl_psql_command("/run/g", "it's", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "psql 'host=/run/g dbname='\\''it\\'\\''s'\\'''");
	assert_int_equal(ctl_psql_command("/run/g", "a$b", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "psql 'host=/run/g dbname='\\''a$b'\\'''");
	assert_int_equal(ctl_psql_command("/run/g", "", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "psql \"host=/run/g dbname=''\"");

	snprintf(buf, sizeof(buf), "untouched");
	assert_int_equal(ctl_psql_command("/run/g", "x\ny", buf, sizeof(buf)), -EINVAL);
	assert_string_equal(buf, "untouched");
	assert_int_equal(ctl_psql_command("/run/sluice/grants/3f9a", "orders", buf, 20), -ENAMETOOLONG);
	assert_string_equal(buf, "untouched");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(args_parse),
		cmocka_unit_test(args_errors),
		cmocka_unit_test(since_durations),
		cmocka_unit_test(since_timestamps),
		cmocka_unit_test(since_rejects),
		cmocka_unit_test(time_formats),
		cmocka_unit_test(remaining),
		cmocka_unit_test(elapsed),
		cmocka_unit_test(sanitize),
		cmocka_unit_test(table_layout),
		cmocka_unit_test(table_truncation_ascii),
		cmocka_unit_test(grant_json),
		cmocka_unit_test(status_json),
		cmocka_unit_test(json_strings),
		cmocka_unit_test(psql_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
