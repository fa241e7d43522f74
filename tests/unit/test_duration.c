#include "config.h"
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/duration.h"

static void accepts(void **state)
{
	static const struct { const char *in; uint64_t out; } ok[] = {
		{ "0", 0 }, { "90", 90 }, { "90s", 90 }, { "15m", 900 }, { "1h", 3600 },
		{ "2d", 172800 }, { "1h30m", 5400 }, { "1d2h3m4s", 93784 }, { "0s", 0 },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 12345;
		assert_int_equal(duration_parse(ok[i].in, &v), 0);
		assert_int_equal(v, ok[i].out);
	}
}

static void rejects(void **state)
{
	static const char *bad[] = { "", "s", "1x", "1h1h", "30m1h", "1.5h", "-1s",
				     " 1s", "1s ", "1h30", "h1", "99999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 777;
		assert_true(duration_parse(bad[i], &v) < 0);
		assert_int_equal(v, 777); /* untouched on failure */
	}
	uint64_t v;
	assert_int_equal(duration_parse("3600d", &v), 0);
	assert_int_equal(duration_parse("3700000d", &v), -ERANGE);
	assert_int_equal(duration_parse(NULL, &v), -EINVAL);
}

static void formats(void **state)
{
	char b[32];
	duration_format(0, b, sizeof(b));
	assert_string_equal(b, "0s");
	duration_format(5400, b, sizeof(b));
	assert_string_equal(b, "1h30m");
	duration_format(93784, b, sizeof(b));
	assert_string_equal(b, "1d2h3m4s");
	duration_format(600, b, sizeof(b));
	assert_string_equal(b, "10m");
	/* Round trip. */
	for (uint64_t s = 0; s < 200000; s += 997) {
		uint64_t back;
		duration_format(s, b, sizeof(b));
		assert_int_equal(duration_parse(b, &back), 0);
		assert_int_equal(back, s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts),
		cmocka_unit_test(rejects),
		cmocka_unit_test(formats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
