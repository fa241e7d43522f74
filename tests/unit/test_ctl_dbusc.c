/* common/dbusc.c without a bus: a{sv} / aa{sv} parsing, look-ups, error
 * classification, and a connection to a bus that is not there. */
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

#include "common/dbusc.h"

static DBusMessage *new_message(void)
{
	DBusMessage *m = dbus_message_new_method_call("a.b", "/a", "a.b", "M");
	assert_non_null(m);
	return m;
}

static void add_entry(DBusMessageIter *dict, const char *key, int type, const void *value)
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

static void add_strv(DBusMessageIter *dict, const char *key, const char *const *v, size_t n)
{
	DBusMessageIter entry, var, arr;

	assert_true(dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &entry));
	assert_true(dbus_message_iter_append_basic(&entry, DBUS_TYPE_STRING, &key));
	assert_true(dbus_message_iter_open_container(&entry, DBUS_TYPE_VARIANT, "as", &var));
	assert_true(dbus_message_iter_open_container(&var, DBUS_TYPE_ARRAY, "s", &arr));
	for (size_t i = 0; i < n; i++)
		assert_true(dbus_message_iter_append_basic(&arr, DBUS_TYPE_STRING, &v[i]));
	assert_true(dbus_message_iter_close_container(&var, &arr));
	assert_true(dbus_message_iter_close_container(&entry, &var));
	assert_true(dbus_message_iter_close_container(dict, &entry));
}

/* A variant of a shape the client does not show: a{ss}. */
static void add_other(DBusMessageIter *dict, const char *key)
{
	DBusMessageIter entry, var, arr;

	assert_true(dbus_message_iter_open_container(dict, DBUS_TYPE_DICT_ENTRY, NULL, &entry));
	assert_true(dbus_message_iter_append_basic(&entry, DBUS_TYPE_STRING, &key));
	assert_true(dbus_message_iter_open_container(&entry, DBUS_TYPE_VARIANT, "a{ss}", &var));
	assert_true(dbus_message_iter_open_container(&var, DBUS_TYPE_ARRAY, "{ss}", &arr));
	assert_true(dbus_message_iter_close_container(&var, &arr));
	assert_true(dbus_message_iter_close_container(&entry, &var));
	assert_true(dbus_message_iter_close_container(dict, &entry));
}

static void fill_all_types(DBusMessageIter *dict)
{
	const char *s = "hello", *path = "/org/x";
	dbus_bool_t b = TRUE;
	unsigned char y = 200;
	dbus_int16_t n = -5;
	dbus_uint16_t q = 65000;
	dbus_int32_t i = -70000;
	dbus_uint32_t u = 4000000000u;
	dbus_int64_t x = -(INT64_C(1) << 40);
	dbus_uint64_t t = UINT64_MAX;
	double d = 2.5;
	const char *groups[] = { "data-readers", "ops" };

	add_entry(dict, "s", DBUS_TYPE_STRING, &s);
	add_entry(dict, "o", DBUS_TYPE_OBJECT_PATH, &path);
	add_entry(dict, "b", DBUS_TYPE_BOOLEAN, &b);
	add_entry(dict, "y", DBUS_TYPE_BYTE, &y);
	add_entry(dict, "n", DBUS_TYPE_INT16, &n);
	add_entry(dict, "q", DBUS_TYPE_UINT16, &q);
	add_entry(dict, "i", DBUS_TYPE_INT32, &i);
	add_entry(dict, "u", DBUS_TYPE_UINT32, &u);
	add_entry(dict, "x", DBUS_TYPE_INT64, &x);
	add_entry(dict, "t", DBUS_TYPE_UINT64, &t);
	add_entry(dict, "d", DBUS_TYPE_DOUBLE, &d);
	add_strv(dict, "groups", groups, 2);
	add_other(dict, "future");
}

static void parse_dict_types(void **state)
{
	DBusMessage *m = new_message();
	DBusMessageIter it, dict;
	struct dbusc_dict d = { 0 };
	int64_t iv;
	uint64_t uv;
	bool bv;

	dbus_message_iter_init_append(m, &it);
	assert_true(dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict));
	fill_all_types(&dict);
	assert_true(dbus_message_iter_close_container(&it, &dict));

	assert_int_equal(dbusc_reply_dict(m, &d), 0);
	assert_int_equal(d.n, 13);
	assert_string_equal(dbusc_dict_str(&d, "s"), "hello");
	assert_string_equal(dbusc_dict_str(&d, "o"), "/org/x");
	assert_null(dbusc_dict_str(&d, "u"));
	assert_null(dbusc_dict_str(&d, "missing"));
	assert_int_equal(dbusc_dict_bool(&d, "b", &bv), 0);
	assert_true(bv);
	assert_int_equal(dbusc_dict_uint(&d, "y", &uv), 0);
	assert_int_equal(uv, 200);
	assert_int_equal(dbusc_dict_int(&d, "n", &iv), 0);
	assert_int_equal(iv, -5);
	assert_int_equal(dbusc_dict_int(&d, "q", &iv), 0);
	assert_int_equal(iv, 65000);
	assert_int_equal(dbusc_dict_int(&d, "i", &iv), 0);
	assert_int_equal(iv, -70000);
	assert_int_equal(dbusc_dict_uint(&d, "u", &uv), 0);
	assert_int_equal(uv, 4000000000u);
	assert_int_equal(dbusc_dict_int(&d, "x", &iv), 0);
	assert_true(iv == -(INT64_C(1) << 40));
	assert_int_equal(dbusc_dict_uint(&d, "t", &uv), 0);
	assert_true(uv == UINT64_MAX);
	assert_int_equal(dbusc_dict_get(&d, "d")->type, DBUSC_T_DOUBLE);
	assert_true(dbusc_dict_get(&d, "d")->d == 2.5);
	assert_int_equal(dbusc_dict_get(&d, "groups")->type, DBUSC_T_STRV);
	assert_int_equal(dbusc_dict_get(&d, "groups")->strv.n, 2);
	assert_string_equal(dbusc_dict_get(&d, "groups")->strv.v[1], "ops");
	assert_int_equal(dbusc_dict_get(&d, "future")->type, DBUSC_T_OTHER);
	assert_string_equal(dbusc_dict_get(&d, "future")->signature, "a{ss}");

	/* type and range checks; outputs untouched on failure */
	iv = 7;
	uv = 7;
	assert_int_equal(dbusc_dict_int(&d, "t", &iv), -ERANGE);
	assert_int_equal(dbusc_dict_uint(&d, "x", &uv), -ERANGE);
	assert_int_equal(dbusc_dict_int(&d, "s", &iv), -EINVAL);
	assert_int_equal(dbusc_dict_int(&d, "missing", &iv), -ENOENT);
	assert_int_equal(dbusc_dict_bool(&d, "u", &bv), -EINVAL);
	assert_int_equal(iv, 7);
	assert_int_equal(uv, 7);

	dbusc_dict_clear(&d);
	assert_int_equal(d.n, 0);
	assert_null(d.v);
	dbusc_dict_clear(NULL);
	dbus_message_unref(m);
}

static void parse_dict_list(void **state)
{
	DBusMessage *m = new_message();
	DBusMessageIter it, outer, dict;
	struct dbusc_dict_list l = { 0 };
	const char *ids[] = { "g1", "g2", "g3" };

	dbus_message_iter_init_append(m, &it);
	assert_true(dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "a{sv}", &outer));
	for (size_t i = 0; i < 3; i++) {
		assert_true(dbus_message_iter_open_container(&outer, DBUS_TYPE_ARRAY, "{sv}", &dict));
		add_entry(&dict, "id", DBUS_TYPE_STRING, &ids[i]);
		assert_true(dbus_message_iter_close_container(&outer, &dict));
	}
	assert_true(dbus_message_iter_close_container(&it, &outer));
	assert_int_equal(dbusc_reply_dict_list(m, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(dbusc_dict_str(&l.v[2], "id"), "g3");
	dbusc_dict_list_clear(&l);
	assert_int_equal(l.n, 0);

	/* an empty list */
	dbus_message_unref(m);
	m = new_message();
	dbus_message_iter_init_append(m, &it);
	assert_true(dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "a{sv}", &outer));
	assert_true(dbus_message_iter_close_container(&it, &outer));
	assert_int_equal(dbusc_reply_dict_list(m, &l), 0);
	assert_int_equal(l.n, 0);
	dbusc_dict_list_clear(&l);
	dbus_message_unref(m);
}

static void parse_rejects(void **state)
{
	DBusMessage *m = new_message();
	DBusMessageIter it, dict;
	struct dbusc_dict d = { .n = 99 };
	struct dbusc_dict_list l = { .n = 99 };
	const char *a = "a", *b = "b";

	/* a duplicate key: which one would we believe? */
	dbus_message_iter_init_append(m, &it);
	assert_true(dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict));
	add_entry(&dict, "id", DBUS_TYPE_STRING, &a);
	add_entry(&dict, "id", DBUS_TYPE_STRING, &b);
	assert_true(dbus_message_iter_close_container(&it, &dict));
	assert_int_equal(dbusc_reply_dict(m, &d), -EBADMSG);
	assert_int_equal(d.n, 99);
	/* the wrong shape */
	assert_int_equal(dbusc_reply_dict_list(m, &l), -EBADMSG);
	assert_int_equal(l.n, 99);
	dbus_message_unref(m);

	m = new_message();
	assert_true(dbus_message_append_args(m, DBUS_TYPE_STRING, &a, DBUS_TYPE_INVALID));
	assert_int_equal(dbusc_reply_dict(m, &d), -EBADMSG);
	dbus_message_unref(m);

	m = new_message(); /* no arguments at all */
	assert_int_equal(dbusc_reply_dict(m, &d), -EBADMSG);
	assert_int_equal(dbusc_reply_dict(NULL, &d), -EBADMSG);
	dbus_message_unref(m);

	/* more entries than the cap */
	m = new_message();
	dbus_message_iter_init_append(m, &it);
	assert_true(dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &dict));
	for (int i = 0; i <= DBUSC_MAX_DICT_ENTRIES; i++) {
		char key[16];
		snprintf(key, sizeof(key), "k%d", i);
		add_entry(&dict, key, DBUS_TYPE_STRING, &a);
	}
	assert_true(dbus_message_iter_close_container(&it, &dict));
	assert_int_equal(dbusc_reply_dict(m, &d), -EBADMSG);
	assert_int_equal(d.n, 99);
	dbus_message_unref(m);
}

static void errors(void **state)
{
	struct dbusc_error e = { 0 };

	assert_int_equal(dbusc_error_set(&e, "org.sluice.Agent1.Error.Denied",
					 "mcp-orders may not use connection orders-pg"),
			 -EACCES);
	assert_int_equal(e.kind, DBUSC_ERR_AGENT);
	assert_string_equal(e.message, "mcp-orders may not use connection orders-pg");
	assert_string_equal(dbusc_error_agent_name(&e), "Denied");

	assert_int_equal(dbusc_error_set(&e, "org.sluice.Agent1.Error.NotFound", "no grant g1"), -ENOENT);
	assert_string_equal(e.message, "no grant g1");
	assert_int_equal(dbusc_error_set(&e, "org.sluice.Agent1.Error.ConfigInvalid",
					 "a.conf:1: x\na.conf:2: y"),
			 -EINVAL);
	assert_string_equal(e.message, "a.conf:1: x\na.conf:2: y");
	assert_int_equal(dbusc_error_set(&e, "org.sluice.Agent1.Error.LimitExceeded", "too many"), -ENOSPC);
	assert_int_equal(dbusc_error_set(&e, "org.sluice.Agent1.Error.AuditUnavailable", "disk full"), -EIO);
	assert_int_equal(dbusc_error_set(&e, "org.sluice.Agent1.Error.SomethingNew", ""), -EIO);
	assert_int_equal(e.kind, DBUSC_ERR_AGENT);
	assert_string_equal(e.message, "sluiced refused the request (SomethingNew)");

	assert_int_equal(dbusc_error_set(&e, DBUS_ERROR_SERVICE_UNKNOWN,
					 "The name org.sluice.Agent1 was not provided by any .service files"),
			 -EHOSTUNREACH);
	assert_int_equal(e.kind, DBUSC_ERR_UNREACHABLE);
	assert_string_equal(e.message, "sluiced is not running or not reachable on the system bus "
				       "(The name org.sluice.Agent1 was not provided by any .service files)");
	assert_null(dbusc_error_agent_name(&e));
	assert_int_equal(dbusc_error_set(&e, DBUS_ERROR_NO_REPLY, NULL), -EHOSTUNREACH);
	assert_string_equal(e.message, "sluiced is not running or not reachable on the system bus "
				       "(org.freedesktop.DBus.Error.NoReply)");
	assert_int_equal(dbusc_error_set(&e, "org.freedesktop.DBus.Error.Spawn.ChildExited", "x"),
			 -EHOSTUNREACH);

	assert_int_equal(dbusc_error_set(&e, DBUS_ERROR_ACCESS_DENIED, "policy"), -EACCES);
	assert_int_equal(e.kind, DBUSC_ERR_BUS_DENIED);
	assert_string_equal(e.message, "the system bus refused the call to sluiced (policy)");

	assert_int_equal(dbusc_error_set(&e, DBUS_ERROR_UNKNOWN_METHOD, "no Foo"), -EOPNOTSUPP);
	assert_int_equal(dbusc_error_set(&e, "com.example.Weird", "odd"), -EIO);
	assert_int_equal(e.kind, DBUSC_ERR_OTHER);
	assert_string_equal(e.message, "com.example.Weird: odd");
	assert_string_equal(e.name, "com.example.Weird");

	dbusc_error_clear(&e);
	assert_int_equal(e.kind, DBUSC_ERR_NONE);
	assert_null(e.message);
	dbusc_error_clear(NULL);

	/* a huge message is capped, on a character boundary */
	{
		size_t n = DBUSC_MAX_MESSAGE + 100;
		char *big = malloc(n + 1);
		for (size_t i = 0; i < n; i += 2)
			memcpy(big + i, "\xc3\xa9", 2);
		big[n] = '\0';
		assert_int_equal(dbusc_error_set(&e, "org.sluice.Agent1.Error.Failed", big), -EIO);
		assert_true(strlen(e.message) <= DBUSC_MAX_MESSAGE);
		assert_int_equal(strlen(e.message) % 2, 0);
		free(big);
		dbusc_error_clear(&e);
	}
}

static void no_bus(void **state)
{
	struct dbusc *c = NULL;
	struct dbusc_error e = { 0 };

	assert_int_equal(dbusc_open_address("unix:path=/nonexistent/sluice-test-bus", 1000, &c, &e),
			 -EHOSTUNREACH);
	assert_null(c);
	assert_int_equal(e.kind, DBUSC_ERR_UNREACHABLE);
	assert_non_null(strstr(e.message, "sluiced is not running or not reachable on the system bus ("));
	dbusc_error_clear(&e);

	setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/sluice-test-bus", 1);
	assert_int_equal(dbusc_open_system(0, &c, &e), -EHOSTUNREACH);
	assert_null(c);
	assert_int_equal(e.kind, DBUSC_ERR_UNREACHABLE);
	assert_non_null(strstr(e.message, "/nonexistent/sluice-test-bus"));
	dbusc_error_clear(&e);
	assert_null(dbusc_close(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_dict_types),
		cmocka_unit_test(parse_dict_list),
		cmocka_unit_test(parse_rejects),
		cmocka_unit_test(errors),
		cmocka_unit_test(no_bus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
