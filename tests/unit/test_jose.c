/* common/jose.c: base64url, JWK import, signature checks, compact JWS split. */
#include "config.h"
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/rand.h>

#include "common/jose.h"
#include "tests/unit/jwt_testsign.h"

static EVP_PKEY *rsa, *rsa1024, *ec256, *ec384, *ec521;

static int setup(void **state)
{
	rsa = ts_keygen_rsa(2048);
	rsa1024 = ts_keygen_rsa(1024);
	ec256 = ts_keygen_ec("P-256");
	ec384 = ts_keygen_ec("P-384");
	ec521 = ts_keygen_ec("secp521r1");
	return 0;
}

static int teardown(void **state)
{
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(ec256);
	EVP_PKEY_free(ec384);
	EVP_PKEY_free(ec521);
	return 0;
}

static void b64url_vectors(void **state)
{
	static const struct { const char *raw; size_t n; const char *enc; } v[] = {
		{ "", 0, "" }, { "f", 1, "Zg" }, { "fo", 2, "Zm8" }, { "foo", 3, "Zm9v" },
		{ "foob", 4, "Zm9vYg" }, { "\xfb\xff", 2, "-_8" }, { "\xff\xfe\xfd", 3, "__79" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *e = b64url_encode(v[i].raw, v[i].n);
		uint8_t *d = NULL;
		size_t dn = 99;
		assert_string_equal(e, v[i].enc);
		assert_int_equal(b64url_decode(e, strlen(e), 64, &d, &dn), 0);
		assert_int_equal(dn, v[i].n);
		assert_memory_equal(d, v[i].raw, dn);
		assert_int_equal(d[dn], 0);
		free(e);
		free(d);
	}
}

static void b64url_round_trip(void **state)
{
	uint8_t buf[300];
	assert_int_equal(RAND_bytes(buf, sizeof(buf)), 1);
	for (size_t n = 0; n <= sizeof(buf); n += 7) {
		char *e = b64url_encode(buf, n);
		uint8_t *d = NULL;
		size_t dn = 0;
		assert_non_null(e);
		assert_null(strpbrk(e, "=+/"));
		assert_int_equal(b64url_decode(e, strlen(e), sizeof(buf), &d, &dn), 0);
		assert_int_equal(dn, n);
		assert_memory_equal(d, buf, n);
		free(e);
		free(d);
	}
}

static void b64url_rejects(void **state)
{
	/* padding, the standard alphabet, whitespace, a lone trailing
	 * character, non-zero unused bits, NUL inside */
	static const char *bad[] = { "Zg==", "Zm8=", "ab+c", "ab/c", "Zm 9v", "Zm9v\n", "Zm9vY",
				     "Zh", "Zm9", "Zm-", "\x80\x81" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint8_t *d = (uint8_t *)"untouched";
		size_t dn = 7;
		assert_int_equal(b64url_decode(bad[i], strlen(bad[i]), 64, &d, &dn), -EINVAL);
		assert_string_equal((char *)d, "untouched");
		assert_int_equal(dn, 7);
	}
	uint8_t *d;
	size_t dn;
	assert_int_equal(b64url_decode("Zm\0v", 4, 64, &d, &dn), -EINVAL);
	/* The cap is on decoded bytes. */
	assert_int_equal(b64url_decode("Zm9vYmFy", 8, 5, &d, &dn), -EMSGSIZE);
	assert_int_equal(b64url_decode("Zm9vYmFy", 8, 6, &d, &dn), 0);
	free(d);
}

static void alg_names(void **state)
{
	assert_int_equal(jose_alg_from_name("RS256"), JOSE_RS256);
	assert_int_equal(jose_alg_from_name("PS512"), JOSE_PS512);
	assert_int_equal(jose_alg_from_name("ES384"), JOSE_ES384);
	static const char *no[] = { "none", "None", "HS256", "HS384", "HS512", "rs256", "ES512", "EdDSA",
				    "RS256 ", "", "RSA-OAEP" };
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_int_equal(jose_alg_from_name(no[i]), 0);
	assert_int_equal(jose_alg_from_name(NULL), 0);
	assert_string_equal(jose_alg_name(JOSE_PS384), "PS384");
	assert_null(jose_alg_name(0));
}

static int import(json_t *jwk, struct jose_key *k, const char **why)
{
	int r = jose_jwk_to_key(jwk, k, why);
	json_decref(jwk);
	return r;
}

static void jwk_import_good(void **state)
{
	struct jose_key k = { 0 };
	const char *why = NULL;

	assert_int_equal(import(ts_jwk(rsa, "r1", "RS256"), &k, &why), 0);
	assert_int_equal(k.kty, JOSE_KTY_RSA);
	assert_int_equal(k.alg, JOSE_RS256);
	assert_int_equal(k.bits, 2048);
	assert_string_equal(k.kid, "r1");
	assert_true(EVP_PKEY_eq(k.pkey, rsa) == 1);
	jose_key_clear(&k);

	assert_int_equal(import(ts_jwk(ec256, NULL, NULL), &k, &why), 0);
	assert_int_equal(k.kty, JOSE_KTY_EC_P256);
	assert_int_equal(k.alg, 0);
	assert_null(k.kid);
	assert_true(EVP_PKEY_eq(k.pkey, ec256) == 1);
	jose_key_clear(&k);

	json_t *j = ts_jwk(ec384, "e2", NULL);
	json_object_set_new(j, "use", json_string("sig"));
	json_object_set_new(j, "key_ops", json_pack("[s]", "verify"));
	assert_int_equal(import(j, &k, &why), 0);
	assert_int_equal(k.kty, JOSE_KTY_EC_P384);
	assert_int_equal(k.bits, 384);
	jose_key_clear(&k);
}

static void jwk_import_skips_and_rejects(void **state)
{
	struct jose_key k = { .kid = (char *)"untouched" };
	const char *why = NULL;
	json_t *j;

	/* Usable elsewhere, not here: skipped with -ENOTSUP. */
	assert_int_equal(import(ts_jwk(rsa1024, "small", NULL), &k, &why), -ENOTSUP);
	assert_string_equal(why, "RSA key shorter than 2048 bits");
	assert_int_equal(import(ts_jwk(ec521, "p521", NULL), &k, &why), -ENOTSUP);
	j = ts_jwk(rsa, "enc", NULL);
	json_object_set_new(j, "use", json_string("enc"));
	assert_int_equal(import(j, &k, &why), -ENOTSUP);
	j = ts_jwk(rsa, "ops", NULL);
	json_object_set_new(j, "key_ops", json_pack("[s]", "encrypt"));
	assert_int_equal(import(j, &k, &why), -ENOTSUP);
	assert_int_equal(import(json_pack("{s:s, s:s}", "kty", "oct", "k", "c2VjcmV0"), &k, &why), -ENOTSUP);
	assert_int_equal(import(json_pack("{s:s, s:s, s:s}", "kty", "OKP", "crv", "Ed25519", "x", "AAAA"), &k,
				&why), -ENOTSUP);
	assert_int_equal(import(ts_jwk(rsa, "hs", "HS256"), &k, &why), -ENOTSUP);
	assert_int_equal(import(ts_jwk(rsa, "mismatch", "ES256"), &k, &why), -ENOTSUP);
	assert_int_equal(import(ts_jwk(ec256, "mismatch", "ES384"), &k, &why), -ENOTSUP);

	/* Malformed: -EINVAL. */
	assert_int_equal(import(json_pack("[]"), &k, &why), -EINVAL);
	assert_int_equal(import(json_pack("{s:s}", "kty", "RSA"), &k, &why), -EINVAL);
	j = ts_jwk(rsa, NULL, NULL);
	json_object_set_new(j, "n", json_string("not base64url!"));
	assert_int_equal(import(j, &k, &why), -EINVAL);
	j = ts_jwk(rsa, NULL, NULL);
	json_object_set_new(j, "e", json_integer(65537));
	assert_int_equal(import(j, &k, &why), -EINVAL);
	j = ts_jwk(rsa, NULL, NULL);
	json_object_set_new(j, "e", json_string("AAAAAAAAAAAAAAAAAAAA")); /* more than 8 bytes */
	assert_int_equal(import(j, &k, &why), -EINVAL);
	j = ts_jwk(rsa, NULL, NULL);
	json_object_set_new(j, "kid", json_integer(1));
	assert_int_equal(import(j, &k, &why), -EINVAL);
	/* An EC point moved off the curve. */
	j = ts_jwk(ec256, NULL, NULL);
	{
		uint8_t *y;
		size_t n;
		const char *ys = json_string_value(json_object_get(j, "y"));
		assert_int_equal(b64url_decode(ys, strlen(ys), 64, &y, &n), 0);
		y[n - 1] ^= 1;
		char *e = b64url_encode(y, n);
		json_object_set_new(j, "y", json_string(e));
		free(e);
		free(y);
	}
	assert_int_equal(import(j, &k, &why), -EINVAL);
	assert_string_equal(why, "EC key is not a point on its curve");
	/* x shorter than the field. */
	j = ts_jwk(ec256, NULL, NULL);
	json_object_set_new(j, "x", json_string("AAAA"));
	assert_int_equal(import(j, &k, &why), -EINVAL);
	/* Output untouched throughout. */
	assert_string_equal(k.kid, "untouched");
}

static void fits(void **state)
{
	struct jose_key kr = { 0 }, kr_alg = { 0 }, k256 = { 0 }, k384 = { 0 };
	const char *why;

	assert_int_equal(import(ts_jwk(rsa, NULL, NULL), &kr, &why), 0);
	assert_int_equal(import(ts_jwk(rsa, NULL, "PS256"), &kr_alg, &why), 0);
	assert_int_equal(import(ts_jwk(ec256, NULL, NULL), &k256, &why), 0);
	assert_int_equal(import(ts_jwk(ec384, NULL, NULL), &k384, &why), 0);
	for (enum jose_alg a = JOSE_RS256; a <= JOSE_ES384; a++) {
		bool rsa_alg = a <= JOSE_PS512;
		assert_int_equal(jose_alg_fits_key(a, &kr), rsa_alg);
		assert_int_equal(jose_alg_fits_key(a, &kr_alg), a == JOSE_PS256);
		assert_int_equal(jose_alg_fits_key(a, &k256), a == JOSE_ES256);
		assert_int_equal(jose_alg_fits_key(a, &k384), a == JOSE_ES384);
	}
	assert_false(jose_alg_fits_key(JOSE_RS256, NULL));
	jose_key_clear(&kr);
	jose_key_clear(&kr_alg);
	jose_key_clear(&k256);
	jose_key_clear(&k384);
}

static void verify_each_alg(void **state)
{
	static const struct { const char *name; EVP_PKEY **key; } v[] = {
		{ "RS256", &rsa }, { "RS384", &rsa }, { "RS512", &rsa }, { "PS256", &rsa },
		{ "PS384", &rsa }, { "PS512", &rsa }, { "ES256", &ec256 }, { "ES384", &ec384 },
	};
	static const char data[] = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0";

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		enum jose_alg a = jose_alg_from_name(v[i].name);
		size_t n;
		uint8_t *sig = ts_sign_raw(*v[i].key, v[i].name, NULL, 0, data, strlen(data), &n);

		assert_int_equal(jose_verify(a, *v[i].key, data, strlen(data), sig, n), 0);
		/* other data */
		assert_int_equal(jose_verify(a, *v[i].key, data, strlen(data) - 1, sig, n), -EBADMSG);
		/* a flipped bit anywhere */
		sig[n / 2] ^= 0x10;
		assert_int_equal(jose_verify(a, *v[i].key, data, strlen(data), sig, n), -EBADMSG);
		sig[n / 2] ^= 0x10;
		/* truncated, empty */
		assert_int_equal(jose_verify(a, *v[i].key, data, strlen(data), sig, n - 1), -EBADMSG);
		assert_int_equal(jose_verify(a, *v[i].key, data, strlen(data), sig, 0), -EBADMSG);
		free(sig);
	}
}

static void verify_cross(void **state)
{
	static const char data[] = "a.b";
	size_t n;
	uint8_t *sig;

	/* PKCS#1 v1.5 signature presented as PSS, and the reverse. */
	sig = ts_sign_raw(rsa, "RS256", NULL, 0, data, 3, &n);
	assert_int_equal(jose_verify(JOSE_PS256, rsa, data, 3, sig, n), -EBADMSG);
	assert_int_equal(jose_verify(JOSE_RS384, rsa, data, 3, sig, n), -EBADMSG);
	free(sig);
	sig = ts_sign_raw(rsa, "PS256", NULL, 0, data, 3, &n);
	assert_int_equal(jose_verify(JOSE_RS256, rsa, data, 3, sig, n), -EBADMSG);
	free(sig);
	/* A P-256 signature against the P-384 key, and ES against RSA. */
	sig = ts_sign_raw(ec256, "ES256", NULL, 0, data, 3, &n);
	assert_int_equal(jose_verify(JOSE_ES256, ec384, data, 3, sig, n), -EBADMSG);
	assert_int_equal(jose_verify(JOSE_ES256, rsa, data, 3, sig, n), -EBADMSG);
	/* All-zero r||s. */
	memset(sig, 0, n);
	assert_int_equal(jose_verify(JOSE_ES256, ec256, data, 3, sig, n), -EBADMSG);
	free(sig);
	/* RS against an EC key. */
	sig = ts_sign_raw(rsa, "RS256", NULL, 0, data, 3, &n);
	assert_int_equal(jose_verify(JOSE_RS256, ec256, data, 3, sig, n), -EBADMSG);
	free(sig);
}

static void split_good(void **state)
{
	char *t = ts_token(ec256, "ES256", NULL, 0, "{\"alg\":\"ES256\",\"kid\":\"k\"}", "{\"sub\":\"s\"}");
	struct jws j = { 0 };
	const char *why = NULL;

	assert_int_equal(jws_split(t, &j, &why), 0);
	assert_string_equal(json_string_value(json_object_get(j.header, "kid")), "k");
	assert_int_equal(j.payload_len, strlen("{\"sub\":\"s\"}"));
	assert_string_equal((char *)j.payload, "{\"sub\":\"s\"}");
	assert_int_equal(j.sig_len, 64);
	assert_int_equal(j.signing_input_len, (size_t)(strrchr(t, '.') - t));
	assert_ptr_equal(j.signing_input, t);
	jws_clear(&j);
	free(t);
	/* An empty signature splits: the caller says what is wrong. */
	assert_int_equal(jws_split("e30.e30.", &j, &why), 0);
	assert_int_equal(j.sig_len, 0);
	assert_int_equal(j.payload_len, 2);
	jws_clear(&j);
}

static void split_rejects(void **state)
{
	static const struct { const char *tok; const char *why; } v[] = {
		{ "", "empty token" },
		{ "abc", "not a compact JWS (expected three parts separated by dots)" },
		{ "a.b", "not a compact JWS (expected three parts separated by dots)" },
		{ "a.b.c.d", "not a compact JWS (expected three parts separated by dots)" },
		{ "a.b.c.d.e", "encrypted tokens (JWE) are not supported" },
		{ "a.b.c.d.e.f", "not a compact JWS (expected three parts separated by dots)" },
		{ ".e30.AAAA", "token has an empty header" },
		{ "e30.e30..", "not a compact JWS (expected three parts separated by dots)" },
		{ "e=0.e30.AAAA", "token header is not base64url" },
		{ "bm90IGpzb24.e30.AAAA", "token header is not a JSON object" },   /* "not json" */
		{ "W10.e30.AAAA", "token header is not a JSON object" },           /* [] */
		{ "IngiIDo.e30.AAAA", "token header is not a JSON object" },       /* "x" : */
		/* {"alg":"RS256","alg":"none"}: duplicate members are refused */
		{ "eyJhbGciOiJSUzI1NiIsImFsZyI6Im5vbmUifQ.e30.AAAA", "token header is not a JSON object" },
		{ "e30.e3=0.AAAA", "token payload is not base64url" },
		{ "e30.e30.AA+A", "token signature is not base64url" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct jws j = { 0 };
		const char *why = NULL;
		assert_true(jws_split(v[i].tok, &j, &why) < 0);
		assert_non_null(why);
		if (strcmp(why, v[i].why) != 0)
			fail_msg("%s: got \"%s\", expected \"%s\"", v[i].tok, why, v[i].why);
		assert_null(j.header);
	}
	/* Over the cap, and exactly at it. */
	char *big = malloc(JOSE_TOKEN_MAX + 2);
	struct jws j = { 0 };
	const char *why;
	memset(big, 'A', JOSE_TOKEN_MAX + 1);
	big[JOSE_TOKEN_MAX + 1] = '\0';
	memcpy(big, "e30.e30.", 8);
	assert_int_equal(jws_split(big, &j, &why), -EMSGSIZE);
	assert_string_equal(why, "token too large");
	big[JOSE_TOKEN_MAX] = '\0';
	assert_int_equal(jws_split(big, &j, &why), -EMSGSIZE); /* signature past SIG_MAX */
	assert_string_equal(why, "token signature too large");
	free(big);
	assert_int_equal(jws_split(NULL, &j, &why), -EINVAL);
}

/* Random bytes and random mutations of a real token: never a crash, and
 * never a split that claims success on a string without exactly 2 dots. */
static void split_garbage(void **state)
{
	char *t = ts_token(rsa, "RS256", NULL, 0, "{\"alg\":\"RS256\"}", "{\"sub\":\"s\",\"exp\":1}");
	size_t tl = strlen(t);
	char *m = malloc(tl + 1);
	uint8_t rnd[4096];

	assert_int_equal(RAND_bytes(rnd, sizeof(rnd)), 1);
	for (int round = 0; round < 3000; round++) {
		struct jws j = { 0 };
		const char *why = NULL;
		size_t dots = 0;
		memcpy(m, t, tl + 1);
		if (round < 1000) {
			/* a few random bytes replaced */
			for (int k = 0; k < 1 + round % 4; k++) {
				size_t pos = (size_t)rnd[(round * 7 + k) % sizeof(rnd)] * 131 % tl;
				m[pos] = (char)(rnd[(round * 13 + k * 5) % sizeof(rnd)] | 1);
			}
		} else if (round < 2000) {
			m[(size_t)round * 37 % tl] = '\0'; /* truncated */
		} else {
			size_t n = (size_t)round % 200;
			for (size_t k = 0; k < n; k++)
				m[k] = (char)(rnd[(round + k * 3) % sizeof(rnd)] % 3 == 0 ? '.' :
					      (rnd[(round * 5 + k) % sizeof(rnd)] | 1));
			m[n] = '\0';
		}
		for (const char *p = m; *p; p++)
			dots += *p == '.';
		if (jws_split(m, &j, &why) == 0) {
			assert_int_equal(dots, 2);
			assert_true(json_is_object(j.header));
			jws_clear(&j);
		} else {
			assert_non_null(why);
		}
	}
	free(m);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(b64url_vectors),
		cmocka_unit_test(b64url_round_trip),
		cmocka_unit_test(b64url_rejects),
		cmocka_unit_test(alg_names),
		cmocka_unit_test(jwk_import_good),
		cmocka_unit_test(jwk_import_skips_and_rejects),
		cmocka_unit_test(fits),
		cmocka_unit_test(verify_each_alg),
		cmocka_unit_test(verify_cross),
		cmocka_unit_test(split_good),
		cmocka_unit_test(split_rejects),
		cmocka_unit_test(split_garbage),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
