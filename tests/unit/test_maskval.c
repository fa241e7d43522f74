/* Masking one value and detecting sensitive text (policy/maskval.c): each
 * method's exact output for ASCII and multi-byte values, what each type
 * gets, the key file's rules, pseudonyms checked against HMAC-SHA256
 * computed here with OpenSSL's one-shot HMAC() and against RFC 4231, and
 * the detectors' true and false positives. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "policy/maskval.h"

#define CITEXT_LIKE 16385u /* an extension type's OID, assigned at CREATE EXTENSION */
#define JSONB 3802u
#define BYTEA 17u
#define NUMERIC 1700u

static const char KEY_A[] = "0123456789abcdef0123456789abcdef";       /* 32 bytes */
static const char KEY_B[] = "fedcba9876543210fedcba9876543210xyz";    /* 35 bytes */

/* ---- helpers ---- */

/* What mask_value gave, as a string: the value, or <NULL>, <REFUSE>,
 * <err -N>. Checks the output's invariants on the way. */
static char got[MASK_OUT_MAX + 64];

static const char *mvn(enum mask_method m, const struct mask_key *k, uint32_t oid,
		       const char *in, size_t len)
{
	struct mask_out out = { 0 };
	int r = mask_value(m, k, oid, in, len, &out);

	if (r == MASKV_VALUE) {
		assert_non_null(out.buf);
		assert_true(out.len <= MASK_OUT_MAX);
		assert_int_equal(out.buf[out.len], '\0');
		assert_int_equal(strlen(out.buf), out.len);
		snprintf(got, sizeof(got), "%s", out.buf);
	} else if (r == MASKV_NULL) {
		snprintf(got, sizeof(got), "<NULL>");
	} else if (r == MASKV_REFUSE) {
		snprintf(got, sizeof(got), "<REFUSE>");
	} else {
		snprintf(got, sizeof(got), "<err %d>", r);
	}
	mask_out_free(&out);
	assert_null(out.buf);
	return got;
}

static const char *mv(enum mask_method m, const struct mask_key *k, uint32_t oid, const char *in)
{
	return mvn(m, k, oid, in, strlen(in));
}

static size_t u8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

static void set_key(struct mask_key *k, const char *bytes)
{
	assert_int_equal(mask_key_set(k, bytes, strlen(bytes)), 0);
	assert_non_null(k->mac);
}

/* "h:" and the first 32 hex digits of HMAC-SHA256(key, value), computed
 * with OpenSSL's one-shot HMAC(), independently of maskval.c. */
static void expected_hash(const void *key, size_t klen, const void *v, size_t vlen, char out[35])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	assert_non_null(HMAC(EVP_sha256(), key, (int)klen, v, vlen, md, &mdlen));
	assert_int_equal(mdlen, 32);
	out[0] = 'h';
	out[1] = ':';
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 + 2 * i, 3, "%02x", md[i]);
}

static char tmpdir[64];

static char *tpath(const char *name)
{
	static char p[256];

	snprintf(p, sizeof(p), "%s/%s", tmpdir, name);
	return p;
}

static void write_file(const char *name, const void *bytes, size_t len, mode_t mode)
{
	const char *p = tpath(name);
	int fd;

	unlink(p);
	fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_maskval.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* ---- types ---- */

static void text_types(void **state)
{
	(void)state;
	assert_true(mask_type_is_text(25));   /* text */
	assert_true(mask_type_is_text(1043)); /* varchar */
	assert_true(mask_type_is_text(1042)); /* bpchar */
	assert_true(mask_type_is_text(19));   /* name */
	assert_true(mask_type_is_text(705));  /* unknown */
	assert_false(mask_type_is_text(MASK_OID_INT4));
	assert_false(mask_type_is_text(MASK_OID_JSON));
	assert_false(mask_type_is_text(JSONB));
	assert_false(mask_type_is_text(BYTEA));
	assert_false(mask_type_is_text(NUMERIC));
	assert_false(mask_type_is_text(CITEXT_LIKE));
	assert_false(mask_type_is_text(0));
	assert_false(mask_type_is_text(18));   /* "char" */
	assert_false(mask_type_is_text(142));  /* xml */
}

/* ---- redact and null ---- */

static void redact(void **state)
{
	(void)state;
	assert_string_equal(mv(MASK_REDACT, NULL, MASK_OID_TEXT, "alice@example.com"), "[masked]");
	assert_string_equal(mv(MASK_REDACT, NULL, MASK_OID_VARCHAR, "Zürich ☃ 東京"), "[masked]");
	assert_string_equal(mv(MASK_REDACT, NULL, MASK_OID_NAME, "x"), "[masked]");
	assert_string_equal(mv(MASK_REDACT, NULL, MASK_OID_UNKNOWN, ""), "[masked]");
	assert_string_equal(mv(MASK_REDACT, NULL, MASK_OID_BPCHAR, "ab   "), "[masked]");
	/* Invalid UTF-8 does not matter: nothing of the value is kept. */
	assert_string_equal(mvn(MASK_REDACT, NULL, MASK_OID_TEXT, "\xff\x00z", 3), "[masked]");
	/* Not text: no string stands for a value of the type, NULL does. */
	assert_string_equal(mv(MASK_REDACT, NULL, MASK_OID_INT4, "42"), "<NULL>");
	assert_string_equal(mvn(MASK_REDACT, NULL, MASK_OID_INT4, "\0\0\0*", 4), "<NULL>");
	assert_string_equal(mv(MASK_REDACT, NULL, MASK_OID_JSON, "{\"a\":1}"), "<NULL>");
	assert_string_equal(mv(MASK_REDACT, NULL, CITEXT_LIKE, "Alice"), "<NULL>");
	assert_string_equal(mv(MASK_REDACT, NULL, BYTEA, "\\x00"), "<NULL>");
}

static void null_method(void **state)
{
	(void)state;
	assert_string_equal(mv(MASK_NULL, NULL, MASK_OID_TEXT, "secret"), "<NULL>");
	assert_string_equal(mv(MASK_NULL, NULL, MASK_OID_INT4, "42"), "<NULL>");
	assert_string_equal(mv(MASK_NULL, NULL, MASK_OID_JSON, "{}"), "<NULL>");
	assert_string_equal(mv(MASK_NULL, NULL, CITEXT_LIKE, "x"), "<NULL>");
	assert_string_equal(mv((enum mask_method)99, NULL, MASK_OID_TEXT, "x"), "<err -22>");
}

/* ---- last4 ---- */

static void last4_ascii(void **state)
{
	(void)state;
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, "4111111111111111"), "****1111");
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_VARCHAR, "4111 1111 1111 1234"), "****1234");
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, "12345678"), "****5678");
	/* Fewer than 8 characters: nothing of the value. */
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, "1234567"), "****");
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, "1234"), "****");
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, "1"), "****");
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, ""), "****");
	/* bpchar padding is not content. */
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_BPCHAR, "ACCT98765432    "), "****5432");
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_BPCHAR, "1234567         "), "****");
	/* ... but it is in text. */
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, "1234567 "), "****567 ");
}

static void last4_utf8(void **state)
{
	(void)state;
	/* 10 characters, 30 bytes: the last four characters, whole. */
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, "日本語のテキストです"), "****ストです");
	/* 7 characters but 21 bytes: characters count, not bytes. */
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, "日本語のテキス"), "****");
	/* Four-byte characters. */
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, "😀😁😂🤣😃😄😅😆"), "****😃😄😅😆");
	/* Mixed widths. */
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, "Straße 12: ñé€😀"), "****ñé€😀");
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_TEXT, "Zürich-1ü€x"), "****1ü€x");
	/* Not valid UTF-8 (a stray byte, an overlong '/', a surrogate, a cut
	 * character, a NUL): characters cannot be told, nothing is kept. */
	assert_string_equal(mvn(MASK_LAST4, NULL, MASK_OID_TEXT, "1234567\xff" "89", 10), "****");
	assert_string_equal(mvn(MASK_LAST4, NULL, MASK_OID_TEXT, "12345678\xc0\xaf", 10), "****");
	assert_string_equal(mvn(MASK_LAST4, NULL, MASK_OID_TEXT, "12345678\xed\xa0\x80", 11), "****");
	assert_string_equal(mvn(MASK_LAST4, NULL, MASK_OID_TEXT, "12345678\xe2\x82", 10), "****");
	assert_string_equal(mvn(MASK_LAST4, NULL, MASK_OID_TEXT, "12345678\0" "9", 10), "****");
}

static void last4_types(void **state)
{
	(void)state;
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_NAME, "abcdefgh"), "****efgh");
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_UNKNOWN, "abcdefgh"), "****efgh");
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_INT4, "123456789"), "<REFUSE>");
	assert_string_equal(mv(MASK_LAST4, NULL, NUMERIC, "4111111111111111"), "<REFUSE>");
	assert_string_equal(mv(MASK_LAST4, NULL, MASK_OID_JSON, "\"4111111111111111\""), "<REFUSE>");
	assert_string_equal(mv(MASK_LAST4, NULL, CITEXT_LIKE, "4111111111111111"), "<REFUSE>");
}

/* The output's length says nothing about the input's beyond "8 or more
 * characters": 4 or 8 characters, and the last four are the input's. */
static void last4_fixed_length(void **state)
{
	static const char *const units[] = { "a", "é", "€", "😀" };
	char in[1024];

	(void)state;
	for (size_t u = 0; u < 4; u++)
		for (size_t chars = 0; chars <= 200; chars++) {
			size_t ul = strlen(units[u]), n = 0;
			const char *o;

			for (size_t i = 0; i < chars; i++, n += ul)
				memcpy(in + n, units[u], ul);
			in[n] = '\0';
			o = mv(MASK_LAST4, NULL, MASK_OID_TEXT, in);
			assert_int_equal(u8_chars(o), chars < 8 ? 4 : 8);
			assert_memory_equal(o, "****", 4);
			if (chars >= 8)
				assert_string_equal(o + 4, in + n - 4 * ul);
		}
}

/* ---- email ---- */

static void email_shapes(void **state)
{
	(void)state;
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "john.doe@example.com"), "j***@example.com");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_VARCHAR, "J@Example.COM"), "J***@Example.COM");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "x@localhost"), "x***@localhost");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "a.b-c+tag@mail.co.uk"), "a***@mail.co.uk");
	/* Multi-byte first character, and internationalised domains. */
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "élodie@exemple.fr"), "é***@exemple.fr");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "東京太郎@例え.日本"), "東***@例え.日本");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "😀x@münchen.de"), "😀***@münchen.de");
	/* Several '@': the domain is after the last one. */
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "a@b@example.com"), "a***@example.com");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "\"x@y\"@example.org"), "\"***@example.org");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "@@example.org"), "@***@example.org");
	/* bpchar padding. */
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_BPCHAR, "bob@ex.org      "), "b***@ex.org");
}

static void email_no_shape(void **state)
{
	char dom[300], in[320];

	(void)state;
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "john.doe"), "[masked]");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, ""), "[masked]");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "@example.com"), "[masked]");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "john@"), "[masked]");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "a@b@"), "[masked]");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "@"), "[masked]");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "a@.example.com"), "[masked]");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "a@example..com"), "[masked]");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "a@example.com."), "[masked]");
	/* Free text after the '@' would pass through as the "domain". */
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "mail bob@x.org today"), "[masked]");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "bob@x.org;pw=hunter2"), "[masked]");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "bob@x.org\n"), "[masked]");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, "bob@[10.0.0.1]"), "[masked]");
	/* Not valid UTF-8. */
	assert_string_equal(mvn(MASK_EMAIL, NULL, MASK_OID_TEXT, "\xe9lodie@exemple.fr", 17), "[masked]");
	assert_string_equal(mvn(MASK_EMAIL, NULL, MASK_OID_TEXT, "a@exa\xffmple.fr", 13), "[masked]");
	/* A domain of 253 bytes is shown; 254 is not a DNS name. */
	memset(dom, 'a', 253);
	for (size_t i = 63; i < 253; i += 64)
		dom[i] = '.';
	dom[253] = '\0';
	snprintf(in, sizeof(in), "z@%s", dom);
	assert_int_equal(strlen(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, in)), 4 + 253 + 1);
	assert_string_equal(got + 5, dom);
	snprintf(in, sizeof(in), "z@b%s", dom);
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_TEXT, in), "[masked]");
	/* Not text. */
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_JSON, "\"a@example.com\""), "<REFUSE>");
	assert_string_equal(mv(MASK_EMAIL, NULL, CITEXT_LIKE, "a@example.com"), "<REFUSE>");
	assert_string_equal(mv(MASK_EMAIL, NULL, MASK_OID_INT4, "1"), "<REFUSE>");
}

/* ---- hash ---- */

static void hash_stable_and_keyed(void **state)
{
	struct mask_key a = { 0 }, b = { 0 };
	char h1[64], h2[64], want[35];

	(void)state;
	set_key(&a, KEY_A);
	set_key(&b, KEY_B);
	snprintf(h1, sizeof(h1), "%s", mv(MASK_HASH, &a, MASK_OID_TEXT, "alice@example.com"));
	assert_int_equal(strlen(h1), 34);
	assert_memory_equal(h1, "h:", 2);
	assert_int_equal(strspn(h1 + 2, "0123456789abcdef"), 32);
	/* Same key, same value: same pseudonym, whatever the text type. */
	assert_string_equal(mv(MASK_HASH, &a, MASK_OID_TEXT, "alice@example.com"), h1);
	assert_string_equal(mv(MASK_HASH, &a, MASK_OID_VARCHAR, "alice@example.com"), h1);
	assert_string_equal(mv(MASK_HASH, &a, MASK_OID_BPCHAR, "alice@example.com   "), h1);
	/* Another value, another key: another pseudonym. */
	assert_string_not_equal(mv(MASK_HASH, &a, MASK_OID_TEXT, "alice@example.org"), h1);
	assert_string_not_equal(mv(MASK_HASH, &a, MASK_OID_TEXT, "alice@example.com "), h1);
	snprintf(h2, sizeof(h2), "%s", mv(MASK_HASH, &b, MASK_OID_TEXT, "alice@example.com"));
	assert_string_not_equal(h2, h1);
	/* Exactly HMAC-SHA256(key, value), first 128 bits. */
	expected_hash(KEY_A, strlen(KEY_A), "alice@example.com", 17, want);
	assert_string_equal(h1, want);
	expected_hash(KEY_B, strlen(KEY_B), "alice@example.com", 17, want);
	assert_string_equal(h2, want);
	expected_hash(KEY_A, strlen(KEY_A), "", 0, want);
	assert_string_equal(mv(MASK_HASH, &a, MASK_OID_TEXT, ""), want);
	expected_hash(KEY_A, strlen(KEY_A), "東京 😀", strlen("東京 😀"), want);
	assert_string_equal(mv(MASK_HASH, &a, MASK_OID_TEXT, "東京 😀"), want);
	/* Bytes are hashed as they are: invalid UTF-8 and NUL too. */
	expected_hash(KEY_A, strlen(KEY_A), "a\0\xff", 3, want);
	assert_string_equal(mvn(MASK_HASH, &a, MASK_OID_TEXT, "a\0\xff", 3), want);
	/* A key set again replaces the old one. */
	set_key(&a, KEY_B);
	assert_string_equal(mv(MASK_HASH, &a, MASK_OID_TEXT, "alice@example.com"), h2);
	mask_key_wipe(&a);
	mask_key_wipe(&b);
}

static void hash_types_and_no_key(void **state)
{
	struct mask_key k = { 0 };

	(void)state;
	/* No key: an error, whatever the type, so the missing key shows. */
	assert_string_equal(mv(MASK_HASH, NULL, MASK_OID_TEXT, "x"), "<err -22>");
	assert_string_equal(mv(MASK_HASH, &k, MASK_OID_TEXT, "x"), "<err -22>");
	assert_string_equal(mv(MASK_HASH, &k, MASK_OID_INT4, "1"), "<err -22>");
	set_key(&k, KEY_A);
	assert_string_equal(mv(MASK_HASH, &k, MASK_OID_INT4, "1"), "<REFUSE>");
	assert_string_equal(mv(MASK_HASH, &k, MASK_OID_JSON, "{}"), "<REFUSE>");
	assert_string_equal(mv(MASK_HASH, &k, CITEXT_LIKE, "Alice"), "<REFUSE>");
	mask_key_wipe(&k);
	assert_null(k.mac);
	assert_string_equal(mv(MASK_HASH, &k, MASK_OID_TEXT, "x"), "<err -22>");
}

/* RFC 4231 test case 6: a 131-byte key of 0xaa, loaded from a file with no
 * newline (the key file may hold any bytes). */
static void hash_rfc4231(void **state)
{
	static const char data[] = "Test Using Larger Than Block-Size Key - Hash Key First";
	unsigned char key[131];
	struct mask_key k = { 0 };
	char why[256];

	(void)state;
	memset(key, 0xaa, sizeof(key));
	write_file("rfc4231", key, sizeof(key), 0600);
	assert_int_equal(mask_key_load(tpath("rfc4231"), &k, why, sizeof(why)), 0);
	assert_string_equal(mv(MASK_HASH, &k, MASK_OID_TEXT, data), "h:60e431591ee0b67f0d8a26aacbf5b77f");
	mask_key_wipe(&k);
}

static void key_set_lengths(void **state)
{
	char buf[MASK_KEY_MAX + 1];
	struct mask_key k = { 0 };

	(void)state;
	memset(buf, 'k', sizeof(buf));
	assert_int_equal(mask_key_set(&k, buf, MASK_KEY_MIN - 1), -EINVAL);
	assert_null(k.mac);
	assert_int_equal(mask_key_set(&k, buf, MASK_KEY_MAX + 1), -EINVAL);
	assert_null(k.mac);
	assert_int_equal(mask_key_set(&k, buf, MASK_KEY_MIN), 0);
	assert_non_null(k.mac);
	assert_int_equal(mask_key_set(&k, buf, MASK_KEY_MAX), 0);
	/* A failed set leaves the key it had. */
	assert_int_equal(mask_key_set(&k, buf, 3), -EINVAL);
	assert_non_null(k.mac);
	{
		char want[35];

		expected_hash(buf, MASK_KEY_MAX, "v", 1, want);
		assert_string_equal(mv(MASK_HASH, &k, MASK_OID_TEXT, "v"), want);
	}
	mask_key_wipe(&k);
	mask_key_wipe(&k);
	mask_key_wipe(NULL);
	mask_out_free(NULL);
}

/* ---- key files ---- */

static void key_file_good(void **state)
{
	static const char hex64[] = "7f3a9c0e5b1d4f2a8e6c0b9d3f5a7e1c2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a";
	struct mask_key k = { 0 }, direct = { 0 };
	char why[256], h[64], body[80];

	(void)state;
	set_key(&direct, hex64);
	snprintf(h, sizeof(h), "%s", mv(MASK_HASH, &direct, MASK_OID_TEXT, "value"));
	/* One trailing newline is not part of the key; "\r\n" neither. */
	snprintf(body, sizeof(body), "%s\n", hex64);
	write_file("k1", body, strlen(body), 0600);
	assert_int_equal(mask_key_load(tpath("k1"), &k, why, sizeof(why)), 0);
	assert_string_equal(mv(MASK_HASH, &k, MASK_OID_TEXT, "value"), h);
	snprintf(body, sizeof(body), "%s\r\n", hex64);
	write_file("k2", body, strlen(body), 0400);
	assert_int_equal(mask_key_load(tpath("k2"), &k, why, sizeof(why)), 0);
	assert_string_equal(mv(MASK_HASH, &k, MASK_OID_TEXT, "value"), h);
	write_file("k3", hex64, strlen(hex64), 0600);
	assert_int_equal(mask_key_load(tpath("k3"), &k, why, sizeof(why)), 0);
	assert_string_equal(mv(MASK_HASH, &k, MASK_OID_TEXT, "value"), h);
	/* Two newlines: only one is stripped, so this is another key. */
	snprintf(body, sizeof(body), "%s\n\n", hex64);
	write_file("k4", body, strlen(body), 0600);
	assert_int_equal(mask_key_load(tpath("k4"), &k, why, sizeof(why)), 0);
	assert_string_not_equal(mv(MASK_HASH, &k, MASK_OID_TEXT, "value"), h);
	/* Wiped: no key any more. */
	mask_key_wipe(&k);
	assert_null(k.mac);
	assert_string_equal(mv(MASK_HASH, &k, MASK_OID_TEXT, "value"), "<err -22>");
	mask_key_wipe(&direct);
}

/* A key file that fails leaves the key loaded before, and why names the
 * file and the fault but never the key. */
static void expect_refused(const char *name, int err, const char *why_has)
{
	struct mask_key k = { 0 };
	char why[512] = "", h[64];
	void *before;

	set_key(&k, KEY_A);
	before = k.mac;
	snprintf(h, sizeof(h), "%s", mv(MASK_HASH, &k, MASK_OID_TEXT, "v"));
	assert_int_equal(mask_key_load(tpath(name), &k, why, sizeof(why)), err);
	assert_ptr_equal(k.mac, before);
	assert_string_equal(mv(MASK_HASH, &k, MASK_OID_TEXT, "v"), h);
	assert_non_null(strstr(why, tpath(name)));
	if (!strstr(why, why_has))
		fail_msg("why = \"%s\", expected it to say \"%s\"", why, why_has);
	assert_null(strstr(why, "SECRETKEY"));
	mask_key_wipe(&k);
}

static void key_file_refused(void **state)
{
	char big[2048];
	static const char secret40[] = "SECRETKEYSECRETKEYSECRETKEYSECRETKEY1234";

	(void)state;
	write_file("world", secret40, strlen(secret40), 0644);
	expect_refused("world", -EPERM, "mode 0644");
	write_file("group", secret40, strlen(secret40), 0640);
	expect_refused("group", -EPERM, "mode 0640");
	write_file("gw", secret40, strlen(secret40), 0620);
	expect_refused("gw", -EPERM, "mode 0620");
	write_file("ow", secret40, strlen(secret40), 0602);
	expect_refused("ow", -EPERM, "mode 0602");
	/* A symbolic link, even to a good key file. */
	write_file("target", secret40, strlen(secret40), 0600);
	unlink(tpath("link"));
	{
		char target[256];

		snprintf(target, sizeof(target), "%s", tpath("target"));
		assert_int_equal(symlink(target, tpath("link")), 0);
	}
	expect_refused("link", -ELOOP, "symbolic link");
	/* Sizes: 31 bytes (with or without newline), over 1024. */
	write_file("short", "SECRETKEYSECRETKEYSECRETKEY1234", 31, 0600);
	expect_refused("short", -EINVAL, "31 bytes");
	write_file("shortnl", "SECRETKEYSECRETKEYSECRETKEY1234\n", 32, 0600);
	expect_refused("shortnl", -EINVAL, "31 bytes");
	write_file("empty", "", 0, 0600);
	expect_refused("empty", -EINVAL, "0 bytes");
	memset(big, 'S', sizeof(big));
	write_file("1025", big, 1025, 0600);
	expect_refused("1025", -EINVAL, "1025 bytes");
	write_file("2048", big, sizeof(big), 0600);
	expect_refused("2048", -EINVAL, "longer than 1024");
	/* 1024 bytes and a newline is the longest key. */
	big[1024] = '\n';
	write_file("1024nl", big, 1025, 0600);
	{
		struct mask_key k = { 0 };
		char why[256];

		assert_int_equal(mask_key_load(tpath("1024nl"), &k, why, sizeof(why)), 0);
		mask_key_wipe(&k);
	}
	/* Not a regular file; a FIFO must not hang the caller. */
	mkdir(tpath("dir"), 0700);
	expect_refused("dir", -EINVAL, "not a regular file");
	unlink(tpath("fifo"));
	assert_int_equal(mkfifo(tpath("fifo"), 0600), 0);
	expect_refused("fifo", -EINVAL, "not a regular file");
	expect_refused("missing", -ENOENT, "cannot open");
}

static void key_file_owner(void **state)
{
	static const char secret40[] = "SECRETKEYSECRETKEYSECRETKEYSECRETKEY1234";

	(void)state;
	write_file("owned", secret40, strlen(secret40), 0600);
	if (geteuid() != 0) {
		/* Only root can give a file away; the owner's own file is
		 * accepted (key_file_good). */
		skip();
	}
	assert_int_equal(chown(tpath("owned"), 4242, 4242), 0);
	expect_refused("owned", -EPERM, "owned by uid 4242");
	/* Root's file is good for any reader; only root can make one here. */
	assert_int_equal(chown(tpath("owned"), 0, 4242), 0);
	{
		struct mask_key k = { 0 };
		char why[256];

		assert_int_equal(mask_key_load(tpath("owned"), &k, why, sizeof(why)), 0);
		mask_key_wipe(&k);
	}
}

/* One key, many threads at once: every pseudonym is still HMAC-SHA256. */
struct hash_job {
	const struct mask_key *k;
	int id, bad;
};

static void *hash_worker(void *arg)
{
	struct hash_job *j = arg;
	struct mask_out out = { 0 };

	for (int i = 0; i < 2000; i++) {
		char v[64], want[35];
		int n = snprintf(v, sizeof(v), "user-%d-%d@example.com", j->id, i);

		expected_hash(KEY_A, strlen(KEY_A), v, (size_t)n, want);
		if (mask_value(MASK_HASH, j->k, MASK_OID_TEXT, v, (size_t)n, &out) != MASKV_VALUE ||
		    strcmp(out.buf, want) != 0)
			j->bad++;
	}
	mask_out_free(&out);
	return NULL;
}

static void hash_threads(void **state)
{
	struct mask_key k = { 0 };
	struct hash_job jobs[8];
	pthread_t t[8];

	(void)state;
	set_key(&k, KEY_A);
	for (int i = 0; i < 8; i++) {
		jobs[i] = (struct hash_job){ .k = &k, .id = i };
		assert_int_equal(pthread_create(&t[i], NULL, hash_worker, &jobs[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(jobs[i].bad, 0);
	}
	mask_key_wipe(&k);
}

/* The buffer is reused: a long value then a short one. */
static void out_reused(void **state)
{
	struct mask_out out = { 0 };
	char *first;

	(void)state;
	assert_int_equal(mask_value(MASK_EMAIL, NULL, MASK_OID_TEXT, "bob@a-long-domain.example.com", 29, &out),
			 MASKV_VALUE);
	assert_string_equal(out.buf, "b***@a-long-domain.example.com");
	first = out.buf;
	assert_int_equal(mask_value(MASK_LAST4, NULL, MASK_OID_TEXT, "123", 3, &out), MASKV_VALUE);
	assert_ptr_equal(out.buf, first);
	assert_string_equal(out.buf, "****");
	assert_int_equal(out.len, 4);
	mask_out_free(&out);
	assert_null(out.buf);
	assert_int_equal(out.len, 0);
}

/* Any bytes, any method, any type: one of the four answers, within the
 * cap, and the shapes promised. */
static void random_values(void **state)
{
	static const uint32_t oids[] = { MASK_OID_TEXT, MASK_OID_BPCHAR, MASK_OID_INT4, MASK_OID_JSON, CITEXT_LIKE };
	static const char alphabet[] = "a@.-4 \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xff\x00";
	struct mask_key k = { 0 };
	struct mask_out out = { 0 };
	unsigned seed = 12345;
	char in[300];

	(void)state;
	set_key(&k, KEY_A);
	for (int iter = 0; iter < 20000; iter++) {
		size_t n;
		enum mask_method m;
		uint32_t oid;
		int r;

		seed = seed * 1103515245u + 12345u;
		n = (seed >> 8) % sizeof(in);
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
		}
		m = (enum mask_method)(iter % 5);
		oid = oids[(iter / 5) % 5];
		r = mask_value(m, &k, oid, in, n, &out);
		assert_true(r == MASKV_VALUE || r == MASKV_NULL || r == MASKV_REFUSE);
		if (r != MASKV_VALUE)
			continue;
		assert_true(mask_type_is_text(oid));
		assert_true(out.len <= MASK_OUT_MAX);
		assert_int_equal(strlen(out.buf), out.len);
		if (m == MASK_LAST4)
			assert_true(u8_chars(out.buf) == 4 || u8_chars(out.buf) == 8);
		if (m == MASK_EMAIL && strcmp(out.buf, MASK_REDACTED) != 0)
			assert_non_null(strstr(out.buf, "***@"));
		if (m == MASK_HASH)
			assert_int_equal(out.len, 34);
		(void)mask_detect(0xf, in, n);
	}
	mask_out_free(&out);
	mask_key_wipe(&k);
}

/* ---- detectors ---- */

#define ALL (DETECT_CREDIT_CARD | DETECT_SSN | DETECT_EMAIL | DETECT_IBAN)

static uint32_t det(uint32_t which, const char *s)
{
	return mask_detect(which, s, strlen(s));
}

static void detect_cards(void **state)
{
	static const char *const yes[] = {
		"4111 1111 1111 1111",
		"5500-0000-0000-0004",
		"4111111111111111",
		"card 4111111111111111, exp 12/27",
		"paid with 4111-1111-1111-1111.",
		"378282246310005",          /* American Express, 15 */
		"3782 822463 10005",        /* Amex grouping 4-6-5 */
		"3056 930902 5904",         /* Diners 14, 4-6-4 */
		"6011111111111117",         /* Discover */
		"3530111333300000",         /* JCB */
		"4222222222222",            /* Visa, 13 digits */
		"4111111111111111110",      /* 19 digits */
		"2223000048400011",         /* Mastercard 2-series */
		"ref 12 4111 1111 1111 1111", /* a group before it is not the card */
		"x4111111111111111y",
	};
	static const char *const no[] = {
		"4111111111111112",         /* Luhn */
		"4111 1111 1111 1112",
		"5500-0000-0000-0005",
		"41111111111111111111",     /* a 20-digit run holds a card, is not one */
		"1234567890123456789012345",
		"94111111111111111",        /* 17 digits, Luhn-valid tail, not a card start */
		"0000 0000 0000 0000",
		"4111-1111 1111 1111",      /* separators mixed */
		"4111  1111 1111 1111",     /* double space */
		"4111--1111-1111-1111",
		"41111 11111 111111",       /* Luhn-valid, but not how cards are grouped */
		"411 1111 1111 11111",
		"ORD-2024-0115-0000-42",    /* Luhn-valid order id starting with a year */
		"order #100000000000000123", /* Luhn-valid, 18 digits starting with 1 */
		"ts 20240115123045123",
		"+1 (555) 123-4567",
		"+44 20 7946 0958",
		"555-123-4567",
		"411111111116",             /* 12 digits */
		"4111.1111.1111.1111",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (det(ALL, yes[i]) != DETECT_CREDIT_CARD)
			fail_msg("\"%s\": got %#x, expected a card", yes[i], det(ALL, yes[i]));
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (det(DETECT_CREDIT_CARD, no[i]))
			fail_msg("\"%s\" taken for a card", no[i]);
	/* Only enabled detectors answer. */
	assert_int_equal(det(DETECT_SSN | DETECT_EMAIL | DETECT_IBAN, "4111 1111 1111 1111"), 0);
	assert_int_equal(det(0, "4111 1111 1111 1111"), 0);
}

static void detect_ssn(void **state)
{
	static const char *const yes[] = {
		"123-45-6789", "SSN: 078-05-1120 on file", "ssn=219-09-9999;", "123456789",
		"  123456789 ", "899-99-0001", "665-01-0001",
	};
	static const char *const no[] = {
		"000-12-3456", "666-12-3456", "900-12-3456", "999-12-3456", "123-00-4567",
		"123-45-0000", "1123-45-6789", "123-45-67890", "1-555-12-3456", "123-45-6789-0",
		"order 123456789 shipped", "12345678", "1234567890", "000123456", "666123456",
		"123 45 6789", "12-345-6789", "phone 555-123-4567",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!(det(ALL, yes[i]) & DETECT_SSN))
			fail_msg("\"%s\": not taken for an SSN", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (det(DETECT_SSN, no[i]))
			fail_msg("\"%s\" taken for an SSN", no[i]);
	assert_int_equal(det(ALL & ~DETECT_SSN, "123-45-6789"), 0);
}

static void detect_email(void **state)
{
	static const char *const yes[] = {
		"john.doe@example.com", "contact: a+b@mail.co.uk.", "<x_y%z@sub.example.org>",
		"Mail BOB@EXAMPLE.ORG, thanks", "a@b.cd", "https://user:pw@host.example.com/x",
	};
	static const char *const no[] = {
		"user@localhost", "@example.com", "a@b", "a@b.c", "a@b.c0m", "a@.com", "a@b..com",
		"foo @ bar.com", "twitter @handle", "version 1.2@3.4", "a@-", "x@example.",
		"no at sign here.com",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (det(ALL, yes[i]) != DETECT_EMAIL)
			fail_msg("\"%s\": got %#x, expected an email", yes[i], det(ALL, yes[i]));
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (det(DETECT_EMAIL, no[i]))
			fail_msg("\"%s\" taken for an email", no[i]);
}

static void detect_iban(void **state)
{
	static const char *const yes[] = {
		"GB82 WEST 1234 5698 7654 32",
		"DE89370400440532013000",
		"de89370400440532013000",
		"IBAN: DE89 3704 0044 0532 0130 00.",
		"FR1420041010050500013M02606",
		"NL91ABNA0417164300",
		"BE68 5390 0754 7034 and more text",
		"to NO9386011117947 today",
		"XZ3612345678901234",        /* not in the registry: the general rule */
	};
	static const char *const no[] = {
		"GB82 WEST 1234 5698 7654 33",  /* check digits */
		"DE89370400440532013001",
		"DE5137040044053201300",        /* mod-97 holds, but DE is 22 long */
		"GB04WEST123456987654",         /* mod-97 holds, but GB is 22 long */
		"XDE89370400440532013000",      /* inside a longer word */
		"DE89370400440532013000X",
		"DE89370400440532013000123456789012345",
		"GB82-WEST-1234-5698-7654-32",
		"GB82 WEST 12345698 7654 32",
		"GB82  WEST 1234 5698 7654 32",
		"AB12",
		"hello world 1234",
	};

	char v[64];

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (det(ALL, yes[i]) != DETECT_IBAN)
			fail_msg("\"%s\": got %#x, expected an IBAN", yes[i], det(ALL, yes[i]));
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (det(DETECT_IBAN, no[i]))
			fail_msg("\"%s\" taken for an IBAN", no[i]);
	/* mod-97 catches every other pair of check digits, and every digit
	 * changed for another digit, every letter for another letter (a letter
	 * for a digit shifts the positions: not covered by the standard). */
	for (int cd = 0; cd < 100; cd++) {
		snprintf(v, sizeof(v), "DE%02d370400440532013000", cd);
		assert_int_equal(det(DETECT_IBAN, v), cd == 89 ? DETECT_IBAN : 0);
	}
	for (size_t i = 4; i < 22; i++)
		for (char c = '0'; c <= 'Z'; c++) {
			snprintf(v, sizeof(v), "GB82WEST12345698765432");
			if ((c > '9' && c < 'A') || v[i] == c || (v[i] <= '9') != (c <= '9'))
				continue;
			v[i] = c;
			if (det(DETECT_IBAN, v))
				fail_msg("\"%s\" (one character changed) taken for an IBAN", v);
		}
}

static void detect_several_and_none(void **state)
{
	(void)state;
	assert_int_equal(det(ALL, "card 4111111111111111 mail a@example.com ssn 123-45-6789 "
				  "iban GB82WEST12345698765432"),
			 ALL);
	assert_int_equal(det(DETECT_EMAIL | DETECT_IBAN, "card 4111111111111111 mail a@example.com"),
			 DETECT_EMAIL);
	assert_int_equal(det(ALL, "The quick brown fox, order 12345, 2024-01-15 10:30."), 0);
	assert_int_equal(det(ALL, ""), 0);
	assert_int_equal(det(ALL, "Zürich ☃ 東京 €100"), 0);
}

/* Only the first MASK_DETECT_SCAN_MAX bytes are read. */
static void detect_scan_cap(void **state)
{
	size_t n = MASK_DETECT_SCAN_MAX + 4096;
	char *s = malloc(n);

	(void)state;
	assert_non_null(s);
	memset(s, 'x', n);
	memcpy(s + 10, " 4111111111111111 ", 18);
	assert_int_equal(mask_detect(ALL, s, n), DETECT_CREDIT_CARD);
	memset(s, 'x', n);
	memcpy(s + MASK_DETECT_SCAN_MAX - 18, " 4111111111111111 ", 18);
	assert_int_equal(mask_detect(ALL, s, n), DETECT_CREDIT_CARD);
	memset(s, 'x', n);
	memcpy(s + MASK_DETECT_SCAN_MAX + 10, " 4111111111111111 ", 18);
	assert_int_equal(mask_detect(ALL, s, n), 0);
	free(s);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Inputs built to make a naive scanner quadratic: each is 64 KiB of a
 * pattern that keeps every detector's candidate open as long as it can.
 * Linear: well under a second even under the sanitizers (quadratic would
 * be billions of steps). */
static void detect_linear(void **state)
{
	static const char *const pats[] = {
		"1", "1 ", "1-", "4111 ", "4111-", "@", "a@", "a.", "a@b.", "GB82 ", "GB82", "A",
		"AB12 ", "123-", "12-", "1-1-", "a@a.aa@", "x",
	};
	size_t n = MASK_DETECT_SCAN_MAX;
	char *s = malloc(n);

	(void)state;
	assert_non_null(s);
	for (size_t p = 0; p < sizeof(pats) / sizeof(pats[0]); p++) {
		size_t pl = strlen(pats[p]);
		double t0;

		for (size_t i = 0; i < n; i++)
			s[i] = pats[p][i % pl];
		t0 = now();
		(void)mask_detect(ALL, s, n);
		if (now() - t0 > 1.0)
			fail_msg("pattern \"%s\": %.2f s for 64 KiB", pats[p], now() - t0);
	}
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(text_types),
		cmocka_unit_test(redact),
		cmocka_unit_test(null_method),
		cmocka_unit_test(last4_ascii),
		cmocka_unit_test(last4_utf8),
		cmocka_unit_test(last4_types),
		cmocka_unit_test(last4_fixed_length),
		cmocka_unit_test(email_shapes),
		cmocka_unit_test(email_no_shape),
		cmocka_unit_test(hash_stable_and_keyed),
		cmocka_unit_test(hash_types_and_no_key),
		cmocka_unit_test(hash_rfc4231),
		cmocka_unit_test(key_set_lengths),
		cmocka_unit_test(key_file_good),
		cmocka_unit_test(key_file_refused),
		cmocka_unit_test(key_file_owner),
		cmocka_unit_test(hash_threads),
		cmocka_unit_test(out_reused),
		cmocka_unit_test(random_values),
		cmocka_unit_test(detect_cards),
		cmocka_unit_test(detect_ssn),
		cmocka_unit_test(detect_email),
		cmocka_unit_test(detect_iban),
		cmocka_unit_test(detect_several_and_none),
		cmocka_unit_test(detect_scan_cap),
		cmocka_unit_test(detect_linear),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
