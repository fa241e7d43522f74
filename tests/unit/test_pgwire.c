/* Protocol message framing: what the proxy parses from clients and servers
 * and what it writes itself. */
#include "config.h"
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "agent/pgwire.h"

/* A startup packet from name/value pairs (NULL-terminated list). */
static size_t startup_packet(uint8_t *out, uint32_t code, const char *const *kv)
{
	size_t off = 8;

	for (; kv && *kv; kv++) {
		size_t n = strlen(*kv) + 1;
		memcpy(out + off, *kv, n);
		off += n;
	}
	if (kv)
		out[off++] = 0;
	put_u32(out, (uint32_t)off);
	put_u32(out + 4, code);
	return off;
}

static void parses_startup(void **state)
{
	uint8_t p[256];
	const char *kv[] = { "user", "alice", "database", "orders", "application_name", "psql", NULL };
	size_t n = startup_packet(p, PG_PROTO_3_0, kv);
	struct pg_startup s;
	const char *why = NULL;

	assert_int_equal(pgw_parse_startup(p, n, &s, &why), 0);
	assert_int_equal(s.code, PG_PROTO_3_0);
	assert_int_equal(s.n, 3);
	assert_string_equal(pgw_startup_get(&s, "database"), "orders");
	assert_string_equal(pgw_startup_get(&s, "application_name"), "psql");
	assert_null(pgw_startup_get(&s, "options"));
}

static void parses_requests(void **state)
{
	uint8_t p[16];
	struct pg_startup s;
	const char *why;

	put_u32(p, 8);
	put_u32(p + 4, PG_SSL_REQUEST);
	assert_int_equal(pgw_parse_startup(p, 8, &s, &why), 0);
	assert_int_equal(s.code, PG_SSL_REQUEST);
	put_u32(p + 4, PG_GSSENC_REQUEST);
	assert_int_equal(pgw_parse_startup(p, 8, &s, &why), 0);
	assert_int_equal(s.code, PG_GSSENC_REQUEST);
	put_u32(p, 16);
	put_u32(p + 4, PG_CANCEL_REQUEST);
	put_u32(p + 8, 4242);
	put_u32(p + 12, 0xdeadbeef);
	assert_int_equal(pgw_parse_startup(p, 16, &s, &why), 0);
	assert_int_equal(s.cancel_pid, 4242);
	assert_int_equal(s.cancel_key, 0xdeadbeef);
	/* A cancel request of the wrong size is malformed. */
	put_u32(p, 12);
	assert_int_equal(pgw_parse_startup(p, 12, &s, &why), -EPROTO);
}

static void rejects_bad_startup(void **state)
{
	uint8_t p[256];
	struct pg_startup s;
	const char *why = NULL;
	const char *dup[] = { "user", "a", "user", "b", NULL };
	const char *novalue[] = { "user", NULL };
	size_t n;

	/* Length word disagrees with the packet. */
	n = startup_packet(p, PG_PROTO_3_0, (const char *[]){ "user", "a", NULL });
	put_u32(p, (uint32_t)n + 1);
	assert_int_equal(pgw_parse_startup(p, n, &s, &why), -EPROTO);
	/* Too short, too long. */
	assert_int_equal(pgw_parse_startup(p, 4, &s, &why), -EPROTO);
	assert_int_equal(pgw_parse_startup(p, PG_STARTUP_MAX + 1, &s, &why), -EPROTO);
	/* Protocol 2. */
	n = startup_packet(p, 2u << 16, (const char *[]){ NULL });
	assert_int_equal(pgw_parse_startup(p, n, &s, &why), -EPROTO);
	assert_non_null(strstr(why, "3.0"));
	/* Duplicate parameter. */
	n = startup_packet(p, PG_PROTO_3_0, dup);
	assert_int_equal(pgw_parse_startup(p, n, &s, &why), -EPROTO);
	/* A name without a value: the terminator is read as the value, then
	 * nothing ends the list. */
	n = startup_packet(p, PG_PROTO_3_0, novalue);
	assert_int_equal(pgw_parse_startup(p, n, &s, &why), -EPROTO);
	/* Unterminated (no final zero byte). */
	n = startup_packet(p, PG_PROTO_3_0, (const char *[]){ "user", "a", NULL }) - 1;
	put_u32(p, (uint32_t)n);
	assert_int_equal(pgw_parse_startup(p, n, &s, &why), -EPROTO);
	/* Trailing bytes after the terminator. */
	n = startup_packet(p, PG_PROTO_3_0, (const char *[]){ "user", "a", NULL });
	p[n] = 'x';
	put_u32(p, (uint32_t)n + 1);
	assert_int_equal(pgw_parse_startup(p, n + 1, &s, &why), -EPROTO);
}

static void builds_error_response(void **state)
{
	struct buf b = BUF_INIT(0);
	struct pg_error_fields f;

	assert_int_equal(pgw_error(&b, 'E', "FATAL", "57P01", "sluice: grant x ended (expired)", NULL, NULL), 0);
	assert_int_equal(b.data[0], 'E');
	assert_int_equal(get_u32(b.data + 1), b.len - 1);
	assert_int_equal(pgw_parse_error(b.data + PG_HEADER, b.len - PG_HEADER, &f), 0);
	assert_string_equal(f.severity, "FATAL");
	assert_string_equal(f.sqlstate, "57P01");
	assert_string_equal(f.message, "sluice: grant x ended (expired)");
	/* A body without its final zero byte is malformed. */
	assert_int_equal(pgw_parse_error(b.data + PG_HEADER, b.len - PG_HEADER - 1, &f), -EPROTO);
	buf_release(&b, 0);
}

static void builds_small_messages(void **state)
{
	struct buf b = BUF_INIT(0);
	static const uint8_t ready[] = { 'Z', 0, 0, 0, 5, 'T' };
	static const uint8_t authok[] = { 'R', 0, 0, 0, 8, 0, 0, 0, 0 };
	static const uint8_t key[] = { 'K', 0, 0, 0, 12, 0, 0, 0, 7, 0, 0, 1, 0 };
	static const uint8_t ssl[] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	static const uint8_t term[] = { 'X', 0, 0, 0, 4 };

	assert_int_equal(pgw_ready(&b, 'T'), 0);
	assert_memory_equal(b.data, ready, sizeof(ready));
	buf_clear(&b);
	assert_int_equal(pgw_auth_ok(&b), 0);
	assert_memory_equal(b.data, authok, sizeof(authok));
	buf_clear(&b);
	assert_int_equal(pgw_backend_key(&b, 7, 256), 0);
	assert_memory_equal(b.data, key, sizeof(key));
	buf_clear(&b);
	assert_int_equal(pgw_ssl_request(&b), 0);
	assert_memory_equal(b.data, ssl, sizeof(ssl));
	buf_clear(&b);
	assert_int_equal(pgw_terminate(&b), 0);
	assert_memory_equal(b.data, term, sizeof(term));
	buf_clear(&b);
	assert_int_equal(pgw_parameter_status(&b, "TimeZone", "UTC"), 0);
	assert_int_equal(b.len, 1 + 4 + 9 + 4);
	assert_int_equal(get_u32(b.data + 1), b.len - 1);
	buf_release(&b, 0);
}

static void startup_round_trip(void **state)
{
	struct buf b = BUF_INIT(PG_STARTUP_MAX);
	const char *keys[] = { "user", "database" }, *vals[] = { "sluice_broker", "orders" };
	struct pg_startup s;
	const char *why;

	assert_int_equal(pgw_startup(&b, keys, vals, 2), 0);
	assert_int_equal(pgw_parse_startup(b.data, b.len, &s, &why), 0);
	assert_string_equal(pgw_startup_get(&s, "user"), "sluice_broker");
	assert_string_equal(pgw_startup_get(&s, "database"), "orders");
	buf_release(&b, 0);
}

static void negotiate_version(void **state)
{
	struct buf b = BUF_INIT(0);
	const char *opts[] = { "_pq_.compression" };

	assert_int_equal(pgw_negotiate_version(&b, 0, opts, 1), 0);
	assert_int_equal(b.data[0], 'v');
	assert_int_equal(get_u32(b.data + 5), PG_PROTO_3_0);
	assert_int_equal(get_u32(b.data + 9), 1);
	assert_string_equal((const char *)b.data + 13, "_pq_.compression");
	buf_release(&b, 0);
}

static void tag_rows(void **state)
{
	static const struct { const char *tag; int64_t rows; } cases[] = {
		{ "SELECT 5", 5 }, { "INSERT 0 3", 3 }, { "UPDATE 0", 0 }, { "DELETE 12", 12 },
		{ "COPY 200000", 200000 }, { "FETCH 10", 10 }, { "MOVE 2", 2 }, { "MERGE 4", 4 },
		{ "CREATE TABLE", -1 }, { "SHOW", -1 }, { "BEGIN", -1 }, { "SELECT", -1 },
		{ "SELECT x", -1 }, { "SELECT 1234567890123456789", -1 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++)
		assert_int_equal(pgw_tag_rows(cases[i].tag, strlen(cases[i].tag)), cases[i].rows);
}

static void cstr(void **state)
{
	static const uint8_t p[] = { 'a', 'b', 0, 'c', 0, 'd' };
	size_t off = 0;

	assert_string_equal(pgw_get_cstr(p, sizeof(p), &off), "ab");
	assert_string_equal(pgw_get_cstr(p, sizeof(p), &off), "c");
	assert_null(pgw_get_cstr(p, sizeof(p), &off)); /* "d" has no terminator */
	assert_int_equal(off, 5);
}

static void buffer_cap(void **state)
{
	struct buf b = BUF_INIT(16);

	assert_int_equal(buf_append(&b, "0123456789", 10), 0);
	assert_int_equal(buf_append(&b, "0123456789", 10), -EMSGSIZE);
	assert_int_equal(b.len, 10);
	assert_int_equal(buf_append(&b, "012345", 6), 0);
	assert_int_equal(buf_put_u8(&b, 1), -EMSGSIZE);
	buf_release(&b, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parses_startup),
		cmocka_unit_test(parses_requests),
		cmocka_unit_test(rejects_bad_startup),
		cmocka_unit_test(builds_error_response),
		cmocka_unit_test(builds_small_messages),
		cmocka_unit_test(startup_round_trip),
		cmocka_unit_test(negotiate_version),
		cmocka_unit_test(tag_rows),
		cmocka_unit_test(cstr),
		cmocka_unit_test(buffer_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
