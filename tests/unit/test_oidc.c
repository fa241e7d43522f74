/* common/oidc.c: token verification against a seeded or fetched key set,
 * every RFC 8725 attack, the disk cache, the refetch rate limit, and
 * fetching from a plain-http loopback server (http is allowed only for
 * loopback; TLS fetches are covered by the integration tests). No test
 * reaches anything but 127.0.0.1: the seeded issuer is https://127.0.0.1:1,
 * where every fetch fails at once. */
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <poll.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/rand.h>

#include "common/jose.h"
#include "common/oidc.h"
#include "tests/unit/jwt_testsign.h"

#define ISS "https://127.0.0.1:1"
#define AUD "urn:sluice"
#define NOW ((int64_t)1800000000)

static EVP_PKEY *r1, *r2, *e1, *e2, *evil;
static char *jwks_text;       /* r1, e1, e2, rs-only (r2, alg RS256) */
static char *discovery_text;

static const char *const algs[] = { "RS256", "PS256", "ES256", "ES384" };
static struct oidc_config cfg = {
	.issuer = ISS, .audience = AUD, .ca_file = NULL, .algorithms = algs, .n_algorithms = 4,
	.leeway = 60, .groups_claim = "groups",
};

static char *dumps(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	assert_non_null(s);
	return s;
}

static char *make_jwks(int n, ...)
{
	json_t *keys = json_array();
	va_list ap;

	va_start(ap, n);
	for (int i = 0; i < n; i++)
		json_array_append_new(keys, va_arg(ap, json_t *));
	va_end(ap);
	return dumps(json_pack("{s:o}", "keys", keys));
}

static char *make_discovery(const char *issuer, const char *jwks_uri)
{
	return dumps(json_pack("{s:s, s:s, s:[s]}", "issuer", issuer, "jwks_uri", jwks_uri,
			       "id_token_signing_alg_values_supported", "RS256"));
}

static int setup(void **state)
{
	r1 = ts_keygen_rsa(2048);
	r2 = ts_keygen_rsa(2048);
	evil = ts_keygen_rsa(2048);
	e1 = ts_keygen_ec("P-256");
	e2 = ts_keygen_ec("P-384");
	jwks_text = make_jwks(5, ts_jwk(r1, "r1", NULL), ts_jwk(e1, "e1", "ES256"), ts_jwk(e2, "e2", NULL),
			      ts_jwk(r2, "rs-only", "RS256"),
			      json_pack("{s:s, s:s, s:s}", "kty", "oct", "kid", "hmac", "k", "c2VjcmV0"));
	discovery_text = make_discovery(ISS, ISS "/jwks");
	return 0;
}

static int teardown(void **state)
{
	EVP_PKEY_free(r1);
	EVP_PKEY_free(r2);
	EVP_PKEY_free(evil);
	EVP_PKEY_free(e1);
	EVP_PKEY_free(e2);
	free(jwks_text);
	free(discovery_text);
	return 0;
}

/* A memory store seeded at NOW. */
static struct oidc_store *seeded(void)
{
	struct oidc_store *s;
	char err[256] = "";

	assert_int_equal(oidc_store_new(NULL, &s), 0);
	if (oidc_store_seed(s, ISS, discovery_text, jwks_text, NOW, err, sizeof(err)) != 0)
		fail_msg("seed: %s", err);
	return s;
}

static json_t *hdr(const char *alg, const char *kid)
{
	json_t *h = json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");
	if (kid)
		json_object_set_new(h, "kid", json_string(kid));
	return h;
}

static json_t *claims(void)
{
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:[s,s]}", "iss", ISS, "aud", AUD, "sub",
			 "repo:acme/orders:ref:refs/heads/main", "exp", (json_int_t)(NOW + 600), "iat",
			 (json_int_t)(NOW - 10), "nbf", (json_int_t)(NOW - 10), "groups", "data-readers", "ops");
}

static json_t *claims_with(const char *key, json_t *value)
{
	json_t *c = claims();
	if (value)
		json_object_set_new(c, key, value);
	else
		json_object_del(c, key);
	return c;
}

/* Sign header h and claims c (both consumed) with key k. */
static char *tok(EVP_PKEY *k, json_t *h, json_t *c)
{
	char *hs = json_dumps(h, JSON_COMPACT), *cs = json_dumps(c, JSON_COMPACT), *t;
	t = ts_token(k, json_string_value(json_object_get(h, "alg")), NULL, 0, hs, cs);
	free(hs);
	free(cs);
	json_decref(h);
	json_decref(c);
	return t;
}

static enum oidc_result run(struct oidc_store *s, const struct oidc_config *c, const char *t, int64_t now,
			    char *reason, size_t n, struct oidc_identity *id)
{
	struct oidc_identity local = { 0 };
	enum oidc_result r = oidc_verify(s, c, t, now, id ? id : &local, reason, n);
	oidc_identity_clear(&local);
	return r;
}

/* Header h and claims c (consumed) with a 4-byte dummy signature. */
static char *unsigned_tok(json_t *h, json_t *c)
{
	static const uint8_t sig[4] = { 1, 2, 3, 4 };
	char *hs = json_dumps(h, JSON_COMPACT), *cs = json_dumps(c, JSON_COMPACT), *t;
	t = ts_join(hs, cs, sig, sizeof(sig));
	free(hs);
	free(cs);
	json_decref(h);
	json_decref(c);
	return t;
}

/* Cut the signature part of t to chars characters (a multiple of 4, so it
 * stays valid base64url). */
static char *cut_sig(char *t, size_t chars)
{
	char *d = strrchr(t, '.');
	assert_true(chars % 4 == 0 && strlen(d + 1) > chars);
	d[1 + chars] = '\0';
	return t;
}

/* Verify t (freed) and check the result and the reason's start. */
static void expect_at(struct oidc_store *s, const struct oidc_config *c, char *t, int64_t now,
		      enum oidc_result want, const char *reason_start)
{
	char reason[512] = "";
	enum oidc_result r = run(s, c, t, now, reason, sizeof(reason), NULL);

	if (r != want || strncmp(reason, reason_start, strlen(reason_start)) != 0)
		fail_msg("got %d \"%s\", want %d \"%s...\"", r, reason, want, reason_start);
	if (want == OIDC_OK)
		assert_string_equal(reason, "");
	/* A reason never repeats the token. */
	if (strlen(t) > 20)
		assert_null(strstr(reason, t + strlen(t) - 20));
	free(t);
}

static void expect(struct oidc_store *s, char *t, enum oidc_result want, const char *reason_start)
{
	expect_at(s, &cfg, t, NOW, want, reason_start);
}

static uint64_t fetches(struct oidc_store *s)
{
	struct oidc_store_stats st;
	oidc_store_stats(s, &st);
	return st.fetches;
}

static void valid_tokens(void **state)
{
	struct oidc_store *s = seeded();
	static const struct { const char *alg, *kid; EVP_PKEY **k; } v[] = {
		{ "RS256", "r1", &r1 }, { "PS256", "r1", &r1 }, { "ES256", "e1", &e1 },
		{ "ES384", "e2", &e2 }, { "RS256", "rs-only", &r2 },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct oidc_identity id = { 0 };
		char reason[256] = "x";
		char *t = tok(*v[i].k, hdr(v[i].alg, v[i].kid), claims());
		enum oidc_result r = oidc_verify(s, &cfg, t, NOW, &id, reason, sizeof(reason));
		if (r != OIDC_OK)
			fail_msg("%s/%s: %s", v[i].alg, v[i].kid, reason);
		assert_string_equal(reason, "");
		assert_string_equal(id.subject, "repo:acme/orders:ref:refs/heads/main");
		assert_string_equal(id.issuer, ISS);
		assert_int_equal(id.n_groups, 2);
		assert_string_equal(id.groups[0], "data-readers");
		assert_string_equal(id.groups[1], "ops");
		assert_int_equal(id.exp, NOW + 600);
		assert_int_equal(id.iat, NOW - 10);
		assert_int_equal(id.nbf, NOW - 10);
		assert_string_equal(id.alg, v[i].alg);
		assert_string_equal(id.kid, v[i].kid);
		oidc_identity_clear(&id);
		assert_null(id.subject);
		free(t);
	}
	assert_int_equal(fetches(s), 0);
	oidc_store_free(s);
}

static void alg_none_and_hs(void **state)
{
	struct oidc_store *s = seeded();
	size_t pem_len;
	char *pem = ts_public_pem(r1, &pem_len), *h, *c;
	const char *const with_hs[] = { "RS256", "HS256" };
	struct oidc_config hs_cfg = cfg;

	hs_cfg.algorithms = with_hs;
	hs_cfg.n_algorithms = 2;

	/* alg none, with and without a signature */
	h = dumps(hdr("none", "r1"));
	c = dumps(claims());
	expect(s, ts_token(NULL, "none", NULL, 0, h, c), OIDC_REJECTED, "algorithm none not allowed");
	{
		uint8_t sig[4] = { 1, 2, 3, 4 };
		expect(s, ts_join(h, c, sig, 4), OIDC_REJECTED, "algorithm none not allowed");
		free(h);
		h = dumps(json_pack("{s:s}", "alg", "None"));
		expect(s, ts_join(h, c, sig, 4), OIDC_REJECTED, "algorithm none not allowed");
	}
	free(h);
	/* HS256 keyed with the RSA public key (PEM, as libjwt would take it),
	 * even when the configuration lists HS256 */
	h = dumps(hdr("HS256", "r1"));
	expect(s, ts_token(NULL, "HS256", (const uint8_t *)pem, pem_len, h, c), OIDC_REJECTED,
	       "algorithm HS256 not allowed (symmetric algorithms are never accepted)");
	expect_at(s, &hs_cfg, ts_token(NULL, "HS256", (const uint8_t *)pem, pem_len, h, c), NOW,
		  OIDC_REJECTED, "algorithm HS256 not allowed");
	free(h);
	h = dumps(hdr("HS512", "hmac"));
	expect(s, ts_token(NULL, "HS512", (const uint8_t *)"secret", 6, h, c), OIDC_REJECTED,
	       "algorithm HS512 not allowed");
	free(h);
	free(c);
	free(pem);
	oidc_store_free(s);
}

static void alg_allowlist_and_key_fit(void **state)
{
	struct oidc_store *s = seeded();
	const char *const only_es[] = { "ES256" };
	struct oidc_config es_cfg = cfg;

	es_cfg.algorithms = only_es;
	es_cfg.n_algorithms = 1;
	expect(s, tok(r1, hdr("RS384", "r1"), claims()), OIDC_REJECTED,
	       "algorithm RS384 not allowed by configuration");
	expect_at(s, &es_cfg, tok(r1, hdr("RS256", "r1"), claims()), NOW, OIDC_REJECTED,
		  "algorithm RS256 not allowed by configuration");
	expect(s, unsigned_tok(hdr("EdDSA", "r1"), claims()), OIDC_REJECTED, "algorithm EdDSA not supported");
	expect(s, unsigned_tok(hdr("rs256", "r1"), claims()), OIDC_REJECTED, "algorithm rs256 not supported");
	{
		json_t *h = hdr("RS256", "r1");
		json_object_set_new(h, "alg", json_integer(1));
		expect(s, unsigned_tok(h, claims()), OIDC_REJECTED, "token header has no alg");
	}
	/* ES256 header naming an RSA key (signed with an EC key) */
	expect(s, tok(e1, hdr("ES256", "r1"), claims()), OIDC_REJECTED,
	       "algorithm ES256 does not fit key \"r1\"");
	/* ES384 naming the P-256 key, ES256 naming the P-384 key */
	expect(s, tok(e2, hdr("ES384", "e1"), claims()), OIDC_REJECTED,
	       "algorithm ES384 does not fit key \"e1\"");
	expect(s, tok(e1, hdr("ES256", "e2"), claims()), OIDC_REJECTED,
	       "algorithm ES256 does not fit key \"e2\"");
	/* RS256 naming an EC key */
	expect(s, tok(r1, hdr("RS256", "e1"), claims()), OIDC_REJECTED,
	       "algorithm RS256 does not fit key \"e1\"");
	/* the JWK says RS256: PS256 with it is refused */
	expect(s, tok(r2, hdr("PS256", "rs-only"), claims()), OIDC_REJECTED,
	       "algorithm PS256 does not fit key \"rs-only\"");
	/* right kid, other key's signature */
	expect(s, tok(r2, hdr("RS256", "r1"), claims()), OIDC_REJECTED, "signature does not verify");
	assert_int_equal(fetches(s), 0);
	oidc_store_free(s);
}

static void times(void **state)
{
	struct oidc_store *s = seeded();
	struct oidc_config strict = cfg;

	strict.leeway = 0;
	/* 2027-01-15T08:00:00Z = NOW; exp 61 s ago, past the 60 s leeway */
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_integer(NOW - 61))), OIDC_REJECTED,
	       "token expired at 2027-01-15T07:58:59Z");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_integer(NOW - 60))), OIDC_REJECTED,
	       "token expired at 2027-01-15T07:59:00Z");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_integer(NOW - 59))), OIDC_OK, "");
	expect_at(s, &strict, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_integer(NOW - 59))), NOW,
		  OIDC_REJECTED, "token expired at");
	expect_at(s, &strict, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_integer(NOW))), NOW,
		  OIDC_REJECTED, "token expired at 2027-01-15T08:00:00Z");
	expect_at(s, &strict, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_integer(NOW + 1))), NOW,
		  OIDC_OK, "");
	/* the same token, later */
	expect_at(s, &cfg, tok(r1, hdr("RS256", "r1"), claims()), NOW + 600 + 60, OIDC_REJECTED,
		  "token expired at");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_real((double)NOW + 100.5))), OIDC_OK,
	       "");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("exp", NULL)), OIDC_REJECTED,
	       "token has no expiry (exp)");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_string("tomorrow"))), OIDC_REJECTED,
	       "token exp is not a valid date");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_integer(-5))), OIDC_REJECTED,
	       "token exp is not a valid date");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_true())), OIDC_REJECTED,
	       "token exp is not a valid date");
	/* nbf */
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("nbf", json_integer(NOW + 61))), OIDC_REJECTED,
	       "token not valid before 2027-01-15T08:01:01Z");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("nbf", json_integer(NOW + 60))), OIDC_OK, "");
	expect_at(s, &strict, tok(r1, hdr("RS256", "r1"), claims_with("nbf", json_integer(NOW + 1))), NOW,
		  OIDC_REJECTED, "token not valid before");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("nbf", NULL)), OIDC_OK, "");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("nbf", json_string("x"))), OIDC_REJECTED,
	       "token nbf is not a valid date");
	/* iat */
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("iat", json_integer(NOW + 61))), OIDC_REJECTED,
	       "token issued in the future (iat 2027-01-15T08:01:01Z)");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("iat", json_integer(NOW + 60))), OIDC_OK, "");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("iat", NULL)), OIDC_OK, "");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("iat", json_real(1e300))), OIDC_REJECTED,
	       "token iat is not a valid date");
	oidc_store_free(s);
}

static void iss_aud_sub(void **state)
{
	struct oidc_store *s = seeded();

	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("iss", json_string("https://evil.example"))),
	       OIDC_REJECTED, "wrong issuer");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("iss", json_string(ISS "/"))), OIDC_REJECTED,
	       "wrong issuer");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("iss", NULL)), OIDC_REJECTED,
	       "token has no issuer (iss)");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("aud", json_string("urn:other"))), OIDC_REJECTED,
	       "wrong audience");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("aud", json_pack("[s,s]", "a", "urn:sluicex"))),
	       OIDC_REJECTED, "wrong audience");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("aud", json_pack("[]"))), OIDC_REJECTED,
	       "wrong audience");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("aud", json_pack("[i,s]", 1, AUD))), OIDC_OK, "");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("aud", json_pack("[s,s]", "other", AUD))), OIDC_OK,
	       "");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("aud", NULL)), OIDC_REJECTED,
	       "token has no audience (aud)");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("aud", json_integer(3))), OIDC_REJECTED,
	       "token has no audience (aud)");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("sub", NULL)), OIDC_REJECTED,
	       "token has no subject (sub)");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("sub", json_string(""))), OIDC_REJECTED,
	       "token has no subject (sub)");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("sub", json_integer(42))), OIDC_REJECTED,
	       "token has no subject (sub)");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("sub", json_string("a\nb"))), OIDC_REJECTED,
	       "token subject is longer than 1024 bytes or has control characters");
	{
		char longsub[1100];
		memset(longsub, 's', sizeof(longsub) - 1);
		longsub[sizeof(longsub) - 1] = '\0';
		expect(s, tok(r1, hdr("RS256", "r1"), claims_with("sub", json_string(longsub))), OIDC_REJECTED,
		       "token subject is longer than 1024 bytes");
		longsub[1024] = '\0';
		expect(s, tok(r1, hdr("RS256", "r1"), claims_with("sub", json_string(longsub))), OIDC_OK, "");
	}
	/* payload that is not an object, or has duplicate claims */
	{
		char *h = dumps(hdr("RS256", "r1"));
		expect(s, ts_token(r1, "RS256", NULL, 0, h, "[1,2]"), OIDC_REJECTED,
		       "token payload is not a JSON object");
		expect(s, ts_token(r1, "RS256", NULL, 0, h, "{\"sub\":\"a\",\"sub\":\"b\"}"), OIDC_REJECTED,
		       "token payload is not a JSON object");
		free(h);
	}
	oidc_store_free(s);
}

static void kids(void **state)
{
	struct oidc_store *s = seeded();

	/* unknown kid; the set was fetched (seeded) just now, so no refetch */
	expect(s, tok(evil, hdr("RS256", "nope"), claims()), OIDC_REJECTED, "unknown key id \"nope\"");
	expect(s, tok(evil, hdr("RS256", "a\"b\n"), claims()), OIDC_REJECTED, "unknown key id \"a\\x22b\\x0a\"");
	{
		json_t *h = hdr("RS256", "r1");
		json_object_set_new(h, "kid", json_integer(7));
		expect(s, tok(r1, h, claims()), OIDC_REJECTED, "token kid is not a string");
		char longkid[300];
		memset(longkid, 'k', sizeof(longkid) - 1);
		longkid[sizeof(longkid) - 1] = '\0';
		expect(s, tok(r1, hdr("RS256", longkid), claims()), OIDC_REJECTED, "token kid is not a string");
	}
	/* no kid: one P-384 key and one P-256 key fit -> used */
	expect(s, tok(e2, hdr("ES384", NULL), claims()), OIDC_OK, "");
	expect(s, tok(e1, hdr("ES256", NULL), claims()), OIDC_OK, "");
	/* no kid: two RSA keys fit RS256 -> refused, whichever signed */
	expect(s, tok(r1, hdr("RS256", NULL), claims()), OIDC_REJECTED,
	       "token has no key id and 2 keys of the issuer fit algorithm RS256");
	/* PS256: only r1 fits (rs-only is RS256-only) */
	expect(s, tok(r1, hdr("PS256", NULL), claims()), OIDC_OK, "");
	assert_int_equal(fetches(s), 0);
	oidc_store_free(s);
}

static void tampering(void **state)
{
	struct oidc_store *s = seeded();
	char *good = tok(r1, hdr("RS256", "r1"), claims());
	char *other = tok(r1, hdr("RS256", "r1"), claims_with("sub", json_string("root")));
	char *t, *d1 = strchr(good, '.'), *d2 = strrchr(good, '.'), *o1 = strchr(other, '.'),
		 *o2 = strrchr(other, '.');
	size_t n;

	/* good's header and signature around other's payload */
	n = strlen(good) + strlen(other);
	t = malloc(n);
	snprintf(t, n, "%.*s%.*s%s", (int)(d1 - good), good, (int)(o2 - o1), o1, d2);
	expect(s, t, OIDC_REJECTED, "signature does not verify");
	/* a flipped payload character */
	t = strdup(good);
	t[d1 - good + 5] = t[d1 - good + 5] == 'A' ? 'B' : 'A';
	expect(s, t, OIDC_REJECTED, "");
	/* truncated signature (by 4 characters: still base64url), and empty */
	t = cut_sig(strdup(good), 340); /* of 342 */
	expect(s, t, OIDC_REJECTED, "signature does not verify");
	t = strdup(good);
	t[d2 - good + 1] = '\0';
	expect(s, t, OIDC_REJECTED, "token has no signature");
	t = strdup(good);
	t[strlen(t) - 1] = '\0';
	expect(s, t, OIDC_REJECTED, "");
	/* the signature doubled */
	n = strlen(good) * 2;
	t = malloc(n);
	snprintf(t, n, "%s%s", good, d2 + 1);
	expect(s, t, OIDC_REJECTED, "");
	/* an ES256 signature cut in half */
	{
		char *es = tok(e1, hdr("ES256", "e1"), claims());
		expect(s, cut_sig(es, 40), OIDC_REJECTED, "signature does not verify");
	}
	expect(s, good, OIDC_OK, "");
	free(other);
	oidc_store_free(s);
}

static void shapes(void **state)
{
	struct oidc_store *s = seeded();
	char *t, *big;
	size_t pad = OIDC_TOKEN_MAX;

	/* oversized: raw, and a signed token made large by a claim */
	big = malloc(pad + 2);
	memset(big, 'A', pad + 1);
	big[pad + 1] = '\0';
	expect(s, big, OIDC_REJECTED, "token larger than 16384 bytes");
	big = malloc(pad);
	memset(big, 'x', pad - 1);
	big[pad - 1] = '\0';
	t = tok(r1, hdr("RS256", "r1"), claims_with("padding", json_string(big)));
	free(big);
	assert_true(strlen(t) > OIDC_TOKEN_MAX);
	expect(s, t, OIDC_REJECTED, "token larger than 16384 bytes");
	/* JWE: five parts */
	expect(s, strdup("eyJhbGciOiJSU0EtT0FFUCJ9.AAAA.AAAA.AAAA.AAAA"), OIDC_REJECTED,
	       "encrypted tokens (JWE) are not supported");
	expect(s, strdup(""), OIDC_REJECTED, "empty token");
	expect(s, strdup("Bearer abc"), OIDC_REJECTED, "not a compact JWS");
	{
		char reason[64] = "x";
		assert_int_equal(oidc_verify(s, &cfg, NULL, NOW, &(struct oidc_identity){ 0 }, reason,
					     sizeof(reason)),
				 OIDC_REJECTED);
		assert_string_equal(reason, "no token");
	}
	oidc_store_free(s);
}

static void header_rules(void **state)
{
	struct oidc_store *s = seeded();
	json_t *h;

	h = hdr("RS256", "r1");
	json_object_set_new(h, "crit", json_pack("[s]", "exp"));
	expect(s, tok(r1, h, claims()), OIDC_REJECTED, "crit header not supported");
	h = hdr("RS256", "r1");
	json_object_set_new(h, "crit", json_pack("[]"));
	expect(s, tok(r1, h, claims()), OIDC_REJECTED, "crit header not supported");
	h = hdr("RS256", "r1");
	json_object_set_new(h, "cty", json_string("JWT"));
	expect(s, tok(r1, h, claims()), OIDC_REJECTED, "cty header not supported");

	static const char *typ_ok[] = { "JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt",
					"application/jwt", "Application/At+Jwt" };
	for (size_t i = 0; i < sizeof(typ_ok) / sizeof(typ_ok[0]); i++) {
		h = hdr("RS256", "r1");
		json_object_set_new(h, "typ", json_string(typ_ok[i]));
		expect(s, tok(r1, h, claims()), OIDC_OK, "");
	}
	h = hdr("RS256", "r1");
	json_object_del(h, "typ");
	expect(s, tok(r1, h, claims()), OIDC_OK, "");
	static const char *typ_bad[] = { "foo", "JWS", "at+jwt2", "application/foo", "secevent+jwt", "" };
	for (size_t i = 0; i < sizeof(typ_bad) / sizeof(typ_bad[0]); i++) {
		h = hdr("RS256", "r1");
		json_object_set_new(h, "typ", json_string(typ_bad[i]));
		expect(s, tok(r1, h, claims()), OIDC_REJECTED, "token type");
	}
	h = hdr("RS256", "r1");
	json_object_set_new(h, "typ", json_integer(1));
	expect(s, tok(r1, h, claims()), OIDC_REJECTED, "token type (not a string) not accepted");
	oidc_store_free(s);
}

static void key_naming_headers(void **state)
{
	struct oidc_store *s = seeded();
	json_t *h, *evil_jwk = ts_jwk(evil, "r1", NULL);

	/* The issuer's own key with jku/x5u/jwk/x5c pointing elsewhere:
	 * verifies against the JWKS, nothing fetched. */
	h = hdr("RS256", "r1");
	json_object_set_new(h, "jku", json_string("https://127.0.0.2/jwks"));
	json_object_set_new(h, "x5u", json_string("https://127.0.0.2/cert.pem"));
	json_object_set_new(h, "jwk", json_deep_copy(evil_jwk));
	json_object_set_new(h, "x5c", json_pack("[s]", "MIIB"));
	expect(s, tok(r1, h, claims()), OIDC_OK, "");
	/* The attacker's key, embedded, under the issuer's kid: refused. */
	h = hdr("RS256", "r1");
	json_object_set_new(h, "jwk", json_deep_copy(evil_jwk));
	expect(s, tok(evil, h, claims()), OIDC_REJECTED, "signature does not verify");
	/* ... with its own kid and a jku: an unknown kid, still no fetch
	 * (the set is fresh and within the refetch interval). */
	h = hdr("RS256", "evil");
	json_object_set_new(h, "jku", json_string("https://127.0.0.2/jwks"));
	expect(s, tok(evil, h, claims()), OIDC_REJECTED, "unknown key id \"evil\"");
	/* ... without a kid: the issuer has several RSA keys, none is guessed. */
	h = hdr("RS256", NULL);
	json_object_set_new(h, "jwk", json_deep_copy(evil_jwk));
	expect(s, tok(evil, h, claims()), OIDC_REJECTED, "token has no key id");
	json_decref(evil_jwk);
	assert_int_equal(fetches(s), 0);
	oidc_store_free(s);
}

static void groups(void **state)
{
	struct oidc_store *s = seeded();
	struct oidc_identity id = { 0 };
	struct oidc_config no_groups = cfg, roles = cfg;
	char reason[256], *t;
	json_t *many;

	no_groups.groups_claim = NULL;
	roles.groups_claim = "roles";

	t = tok(r1, hdr("RS256", "r1"), claims_with("groups", json_string("solo")));
	assert_int_equal(run(s, &cfg, t, NOW, reason, sizeof(reason), &id), OIDC_OK);
	assert_int_equal(id.n_groups, 1);
	assert_string_equal(id.groups[0], "solo");
	oidc_identity_clear(&id);
	free(t);
	t = tok(r1, hdr("RS256", "r1"), claims_with("groups", NULL));
	assert_int_equal(run(s, &cfg, t, NOW, reason, sizeof(reason), &id), OIDC_OK);
	assert_int_equal(id.n_groups, 0);
	oidc_identity_clear(&id);
	free(t);
	t = tok(r1, hdr("RS256", "r1"), claims_with("groups", json_null()));
	assert_int_equal(run(s, &cfg, t, NOW, reason, sizeof(reason), &id), OIDC_OK);
	assert_int_equal(id.n_groups, 0);
	oidc_identity_clear(&id);
	free(t);
	t = tok(r1, hdr("RS256", "r1"), claims_with("groups", json_pack("[]")));
	assert_int_equal(run(s, &cfg, t, NOW, reason, sizeof(reason), &id), OIDC_OK);
	assert_int_equal(id.n_groups, 0);
	oidc_identity_clear(&id);
	free(t);
	/* not asked for: ignored, even when malformed */
	t = tok(r1, hdr("RS256", "r1"), claims_with("groups", json_integer(5)));
	assert_int_equal(run(s, &no_groups, t, NOW, reason, sizeof(reason), &id), OIDC_OK);
	assert_int_equal(id.n_groups, 0);
	oidc_identity_clear(&id);
	free(t);
	/* another claim name */
	t = tok(r1, hdr("RS256", "r1"), claims_with("roles", json_pack("[s]", "admin")));
	assert_int_equal(run(s, &roles, t, NOW, reason, sizeof(reason), &id), OIDC_OK);
	assert_int_equal(id.n_groups, 1);
	assert_string_equal(id.groups[0], "admin");
	oidc_identity_clear(&id);
	free(t);

	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("groups", json_integer(5))), OIDC_REJECTED,
	       "groups claim is not a string or an array of strings");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("groups", json_pack("{s:s}", "a", "b"))),
	       OIDC_REJECTED, "groups claim is not a string or an array of strings");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("groups", json_pack("[s,i]", "a", 1))),
	       OIDC_REJECTED, "groups claim is not a string or an array of strings");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("groups", json_pack("[s]", ""))), OIDC_REJECTED,
	       "groups claim is not");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("groups", json_pack("[s]", "a\tb"))),
	       OIDC_REJECTED, "groups claim is not");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("groups", json_pack("[s]", "a\xc2\x85" "b"))),
	       OIDC_REJECTED, "groups claim is not");
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("groups", json_pack("[s]", "caf\xc3\xa9 \xc2\xa0x"))),
	       OIDC_OK, "");
	{
		char g[257];
		memset(g, 'g', 256);
		g[256] = '\0';
		expect(s, tok(r1, hdr("RS256", "r1"), claims_with("groups", json_pack("[s]", g))),
		       OIDC_REJECTED, "groups claim is not");
		g[255] = '\0';
		expect(s, tok(r1, hdr("RS256", "r1"), claims_with("groups", json_pack("[s]", g))), OIDC_OK, "");
	}
	many = json_array();
	for (int i = 0; i < OIDC_GROUPS_MAX; i++) {
		char g[16];
		snprintf(g, sizeof(g), "g%d", i);
		json_array_append_new(many, json_string(g));
	}
	t = tok(r1, hdr("RS256", "r1"), claims_with("groups", json_deep_copy(many)));
	assert_int_equal(run(s, &cfg, t, NOW, reason, sizeof(reason), &id), OIDC_OK);
	assert_int_equal(id.n_groups, OIDC_GROUPS_MAX);
	assert_string_equal(id.groups[255], "g255");
	oidc_identity_clear(&id);
	free(t);
	json_array_append_new(many, json_string("one-too-many"));
	expect(s, tok(r1, hdr("RS256", "r1"), claims_with("groups", many)), OIDC_REJECTED,
	       "groups claim has more than 256 entries");
	oidc_store_free(s);
}

/* Random tokens and mutations of a good one: never a crash, never OK
 * unless the token is byte-for-byte the good one. */
static void garbage(void **state)
{
	struct oidc_store *s = seeded();
	char *good = tok(e1, hdr("ES256", "e1"), claims()), reason[256];
	size_t n = strlen(good);
	uint8_t rnd[8192];

	assert_int_equal(RAND_bytes(rnd, sizeof(rnd)), 1);
	for (int round = 0; round < 2000; round++) {
		char *t = strdup(good);
		if (round < 1500) {
			size_t pos = ((size_t)rnd[round % sizeof(rnd)] << 8 | rnd[(round * 3 + 1) % sizeof(rnd)]) % n;
			char c = (char)(rnd[(round * 7 + 2) % sizeof(rnd)] | 1);
			if (c == t[pos])
				c = c == 'A' ? 'B' : 'A';
			t[pos] = c;
		} else {
			size_t len = (size_t)(round - 1500) % 300;
			for (size_t k = 0; k < len && k < n; k++)
				t[k] = (char)(rnd[(round * 11 + k) % sizeof(rnd)] % 5 == 0 ? '.' :
					      (rnd[(round + k * 13) % sizeof(rnd)] | 1));
			t[len < n ? len : n] = '\0';
		}
		enum oidc_result r = run(s, &cfg, t, NOW, reason, sizeof(reason), NULL);
		assert_int_not_equal(r, OIDC_OK);
		assert_true(reason[0] != '\0');
		free(t);
	}
	free(good);
	oidc_store_free(s);
}

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/test_oidc.XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void rm_rf(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void disk_cache_round_trip(void **state)
{
	char *top = tmpdir(), dir[256], path[700], err[256] = "", reason[256];
	struct oidc_store *a, *b;
	struct oidc_store_stats st;
	struct stat sb;
	size_t n_keys = 0;
	int64_t at = 0;

	snprintf(dir, sizeof(dir), "%s/jwks", top);
	assert_int_equal(oidc_store_new(dir, &a), 0);
	assert_int_equal(stat(dir, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	assert_int_equal(oidc_store_seed(a, ISS, discovery_text, jwks_text, NOW, err, sizeof(err)), 0);
	oidc_store_stats(a, &st);
	assert_int_equal(st.disk_writes, 1);
	assert_int_equal(st.disk_failures, 0);
	oidc_store_free(a);
	/* one file, 0600, no temporary left */
	{
		char cmd[300], name[300];
		FILE *f;
		snprintf(cmd, sizeof(cmd), "ls '%s'", dir);
		f = popen(cmd, "r");
		assert_non_null(f);
		assert_non_null(fgets(name, sizeof(name), f));
		assert_null(fgets(cmd, sizeof(cmd), f));
		pclose(f);
		name[strcspn(name, "\n")] = '\0';
		assert_int_equal(strncmp(name, "jwks-", 5), 0);
		assert_int_equal(strlen(name), strlen("jwks-.json") + 32);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		assert_int_equal(stat(path, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
	}

	/* A new store (an agent restart) verifies from disk, fetching nothing
	 * (any fetch of https://127.0.0.1:1 would fail). */
	assert_int_equal(oidc_store_new(dir, &b), 0);
	expect(b, tok(e1, hdr("ES256", "e1"), claims()), OIDC_OK, "");
	expect(b, tok(r1, hdr("RS256", "r1"), claims()), OIDC_OK, "");
	oidc_store_stats(b, &st);
	assert_int_equal(st.disk_loads, 1);
	assert_int_equal(st.fetches, 0);
	assert_int_equal(oidc_store_issuer_info(b, ISS, &n_keys, &at, reason, sizeof(reason)), 0);
	assert_int_equal(n_keys, 4);
	assert_int_equal(at, NOW);

	/* Two hours later the set is old: one refresh is tried, fails, and the
	 * last good set is still used; no second try within the interval. */
	expect_at(b, &cfg, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_integer(NOW + 9000))),
		  NOW + 7200, OIDC_OK, "");
	oidc_store_stats(b, &st);
	assert_int_equal(st.fetches, 1);
	assert_int_equal(st.fetch_failures, 1);
	assert_int_equal(oidc_store_issuer_info(b, ISS, &n_keys, &at, reason, sizeof(reason)), 0);
	assert_int_equal(at, NOW);
	assert_non_null(strstr(reason, "https://127.0.0.1:1/.well-known/openid-configuration"));
	expect_at(b, &cfg, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_integer(NOW + 9000))),
		  NOW + 7230, OIDC_OK, "");
	assert_int_equal(fetches(b), 1);
	expect_at(b, &cfg, tok(r1, hdr("RS256", "r1"), claims_with("exp", json_integer(NOW + 9000))),
		  NOW + 7260, OIDC_OK, "");
	assert_int_equal(fetches(b), 2);
	oidc_store_free(b);

	/* A damaged file is not used: cold, the fetch fails, unavailable. */
	{
		int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
		assert_true(fd >= 0);
		assert_int_equal(write(fd, "{\"issuer\":", 10), 10);
		close(fd);
	}
	assert_int_equal(oidc_store_new(dir, &b), 0);
	expect(b, tok(r1, hdr("RS256", "r1"), claims()), OIDC_UNAVAILABLE, "issuer keys unavailable: ");
	oidc_store_stats(b, &st);
	assert_int_equal(st.disk_loads, 0);
	oidc_store_free(b);
	/* A file others may write is not trusted either. */
	assert_int_equal(oidc_store_new(dir, &a), 0);
	assert_int_equal(oidc_store_seed(a, ISS, discovery_text, jwks_text, NOW, err, sizeof(err)), 0);
	oidc_store_free(a);
	assert_int_equal(chmod(path, 0666), 0);
	assert_int_equal(oidc_store_new(dir, &b), 0);
	expect(b, tok(r1, hdr("RS256", "r1"), claims()), OIDC_UNAVAILABLE, "issuer keys unavailable: ");
	oidc_store_free(b);
	rm_rf(top);
	free(top);
}

static void cache_dir_rules(void **state)
{
	char *top = tmpdir(), p[300];
	struct oidc_store *s = NULL;
	int fd;

	snprintf(p, sizeof(p), "%s/open", top);
	assert_int_equal(mkdir(p, 0700), 0);
	assert_int_equal(chmod(p, 0777), 0);
	assert_int_equal(oidc_store_new(p, &s), -EPERM);
	assert_null(s);
	assert_int_equal(chmod(p, 0755), 0); /* readable by others is fine */
	assert_int_equal(oidc_store_new(p, &s), 0);
	s = oidc_store_free(s);
	assert_null(s);
	snprintf(p, sizeof(p), "%s/file", top);
	fd = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(oidc_store_new(p, &s), -ENOTDIR);
	snprintf(p, sizeof(p), "%s/missing/deeper", top);
	assert_int_equal(oidc_store_new(p, &s), -ENOENT);
	assert_int_equal(oidc_store_new(NULL, NULL), -EINVAL);
	rm_rf(top);
	free(top);
}

static void refetch_rate_limit(void **state)
{
	struct oidc_store *s = seeded();
	struct oidc_store_stats st;

	oidc_store_set_refetch_interval(s, 30);
	/* seeded at NOW: within the interval an unknown kid is just unknown */
	expect_at(s, &cfg, tok(evil, hdr("RS256", "new"), claims()), NOW + 10, OIDC_REJECTED,
		  "unknown key id \"new\"");
	assert_int_equal(fetches(s), 0);
	/* after it, the unknown kid triggers a refetch, which fails here */
	expect_at(s, &cfg, tok(evil, hdr("RS256", "new"), claims()), NOW + 30, OIDC_UNAVAILABLE,
		  "issuer keys unavailable: https://127.0.0.1:1/.well-known/openid-configuration: ");
	assert_int_equal(fetches(s), 1);
	/* a flood of unknown kids right after: no more fetches */
	for (int i = 0; i < 20; i++)
		expect_at(s, &cfg, tok(evil, hdr("RS256", "new"), claims()), NOW + 31 + i, OIDC_REJECTED,
			  "unknown key id");
	assert_int_equal(fetches(s), 1);
	/* known keys go on working meanwhile */
	expect_at(s, &cfg, tok(r1, hdr("RS256", "r1"), claims()), NOW + 40, OIDC_OK, "");
	expect_at(s, &cfg, tok(evil, hdr("RS256", "new"), claims()), NOW + 60, OIDC_UNAVAILABLE,
		  "issuer keys unavailable");
	oidc_store_stats(s, &st);
	assert_int_equal(st.fetches, 2);
	assert_int_equal(st.fetch_failures, 2);
	oidc_store_free(s);
}

static void cold_unreachable(void **state)
{
	struct oidc_store *s;

	assert_int_equal(oidc_store_new(NULL, &s), 0);
	expect(s, tok(r1, hdr("RS256", "r1"), claims()), OIDC_UNAVAILABLE,
	       "issuer keys unavailable: https://127.0.0.1:1/.well-known/openid-configuration: ");
	assert_int_equal(fetches(s), 1);
	/* a down IdP is not asked again on every token */
	expect_at(s, &cfg, tok(r1, hdr("RS256", "r1"), claims()), NOW + 5, OIDC_UNAVAILABLE,
		  "issuer keys unavailable: https://127.0.0.1:1/");
	assert_int_equal(fetches(s), 1);
	/* a malformed token is refused without a fetch */
	expect_at(s, &cfg, strdup("a.b"), NOW + 100, OIDC_REJECTED, "not a compact JWS");
	expect_at(s, &cfg, tok(r1, hdr("none", "r1"), claims()), NOW + 100, OIDC_REJECTED, "");
	assert_int_equal(fetches(s), 1);
	oidc_store_free(s);
}

static void seed_checks(void **state)
{
	struct oidc_store *s;
	char err[256], *d, *j;

	assert_int_equal(oidc_store_new(NULL, &s), 0);
	d = make_discovery("https://other.example", ISS "/jwks");
	assert_true(oidc_store_seed(s, ISS, d, jwks_text, NOW, err, sizeof(err)) < 0);
	assert_string_equal(err, "discovery document names another issuer");
	free(d);
	d = make_discovery(ISS, "http://idp.example.com/jwks");
	assert_true(oidc_store_seed(s, ISS, d, jwks_text, NOW, err, sizeof(err)) < 0);
	assert_string_equal(err, "http://idp.example.com/jwks: only https is allowed (http only for localhost)");
	free(d);
	/* http only to loopback, as policy allows it */
	static const char *const loopback[] = { "http://localhost:5/jwks", "http://LOCALHOST/jwks",
						"http://127.0.0.1/jwks", "http://[::1]:5/jwks", "HTTPS://idp.example/j" };
	for (size_t i = 0; i < sizeof(loopback) / sizeof(loopback[0]); i++) {
		d = make_discovery(ISS, loopback[i]);
		if (oidc_store_seed(s, ISS, d, jwks_text, NOW, err, sizeof(err)) < 0)
			fail_msg("%s: %s", loopback[i], err);
		free(d);
	}
	static const char *const remote[] = { "http://127.0.0.2/jwks", "http://localhost.evil.example/",
					      "http://127.0.0.1.evil.example/", "http://127.0.0.1@evil.example/",
					      "http://[::2]/jwks", "ftp://127.0.0.1/jwks", "jwks", "" };
	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
		d = make_discovery(ISS, remote[i]);
		if (oidc_store_seed(s, ISS, d, jwks_text, NOW, err, sizeof(err)) == 0)
			fail_msg("%s accepted", remote[i]);
		free(d);
	}
	oidc_store_free(s);
	assert_int_equal(oidc_store_new(NULL, &s), 0);
	d = make_discovery(ISS, "file:///etc/passwd");
	assert_true(oidc_store_seed(s, ISS, d, jwks_text, NOW, err, sizeof(err)) < 0);
	free(d);
	assert_true(oidc_store_seed(s, ISS, "{\"issuer\":\"" ISS "\"}", jwks_text, NOW, err, sizeof(err)) < 0);
	assert_string_equal(err, "discovery document has no jwks_uri");
	assert_true(oidc_store_seed(s, ISS, "not json", jwks_text, NOW, err, sizeof(err)) < 0);
	assert_int_equal(strncmp(err, "discovery document is not JSON", 30), 0);
	EVP_PKEY *small = ts_keygen_rsa(1024);
	j = make_jwks(2, ts_jwk(small, "small", NULL), json_pack("{s:s, s:s}", "kty", "oct", "k", "AAAA"));
	EVP_PKEY_free(small);
	assert_true(oidc_store_seed(s, ISS, discovery_text, j, NOW, err, sizeof(err)) < 0);
	assert_string_equal(err, "JWKS has no usable signing key");
	free(j);
	assert_true(oidc_store_seed(s, ISS, discovery_text, "{\"keys\":{}}", NOW, err, sizeof(err)) < 0);
	assert_string_equal(err, "JWKS has no keys array");
	assert_true(oidc_store_seed(s, ISS, discovery_text, "[]", NOW, err, sizeof(err)) < 0);
	assert_string_equal(err, "JWKS is not a JSON object");
	/* nothing was installed by the failures */
	expect(s, tok(r1, hdr("RS256", "r1"), claims()), OIDC_UNAVAILABLE, "issuer keys unavailable");
	oidc_store_free(s);
}

/* ---- a plain-http loopback IdP ------------------------------------------ */

struct idp {
	int fd;
	int port;
	pthread_t th;
	pthread_mutex_t mu;
	char issuer[64];
	char *disc;        /* served at /.well-known/openid-configuration */
	char *jwks;        /* served at /jwks */
	int status;        /* 0: 200 */
	size_t big;        /* >0: serve this many bytes instead */
	bool big_no_length;
	unsigned requests;
	bool stop;
};

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return; /* the client gave up (size cap): fine */
		p += w;
		n -= (size_t)w;
	}
}

static void *idp_main(void *arg)
{
	struct idp *p = arg;

	for (;;) {
		char req[4096], head[256], *body = NULL, path[128] = "";
		size_t got = 0, blen = 0;
		int status = 200, c = accept4(p->fd, NULL, NULL, SOCK_CLOEXEC);
		bool no_length = false;

		if (c < 0)
			break; /* shut down */
		while (got < sizeof(req) - 1) {
			ssize_t k = recv(c, req + got, sizeof(req) - 1 - got, 0);
			if (k <= 0)
				break;
			got += (size_t)k;
			req[got] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		req[got] = '\0';
		sscanf(req, "GET %127s ", path);
		pthread_mutex_lock(&p->mu);
		p->requests++;
		if (p->big) {
			blen = p->big;
			body = malloc(blen);
			memset(body, ' ', blen);
			no_length = p->big_no_length;
		} else if (p->status) {
			status = p->status;
			body = strdup("{}");
		} else if (strcmp(path, "/.well-known/openid-configuration") == 0) {
			body = strdup(p->disc);
		} else if (strcmp(path, "/jwks") == 0) {
			body = strdup(p->jwks);
		} else {
			status = 404;
			body = strdup("{}");
		}
		pthread_mutex_unlock(&p->mu);
		if (!blen)
			blen = strlen(body);
		if (no_length)
			snprintf(head, sizeof(head), "HTTP/1.1 %d X\r\nConnection: close\r\n\r\n", status);
		else
			snprintf(head, sizeof(head),
				 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
				 "Location: https://127.0.0.1:1/elsewhere\r\nConnection: close\r\n\r\n",
				 status, blen);
		send_all(c, head, strlen(head));
		send_all(c, body, blen);
		free(body);
		close(c);
	}
	return NULL;
}

static struct idp *idp_start(void)
{
	struct idp *p = calloc(1, sizeof(*p));
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);

	p->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->fd >= 0);
	assert_int_equal(bind(p->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(p->fd, 8), 0);
	assert_int_equal(getsockname(p->fd, (struct sockaddr *)&a, &al), 0);
	p->port = ntohs(a.sin_port);
	snprintf(p->issuer, sizeof(p->issuer), "http://127.0.0.1:%d", p->port);
	{
		char uri[96];
		snprintf(uri, sizeof(uri), "%s/jwks", p->issuer);
		p->disc = make_discovery(p->issuer, uri);
	}
	p->jwks = make_jwks(1, ts_jwk(r1, "r1", NULL));
	pthread_mutex_init(&p->mu, NULL);
	assert_int_equal(pthread_create(&p->th, NULL, idp_main, p), 0);
	return p;
}

static void idp_stop(struct idp *p)
{
	shutdown(p->fd, SHUT_RDWR);
	pthread_join(p->th, NULL);
	close(p->fd);
	pthread_mutex_destroy(&p->mu);
	free(p->disc);
	free(p->jwks);
	free(p);
}

static void idp_set(struct idp *p, char **field, char *value)
{
	pthread_mutex_lock(&p->mu);
	free(*field);
	*field = value;
	pthread_mutex_unlock(&p->mu);
}

static unsigned idp_requests(struct idp *p)
{
	unsigned n;
	pthread_mutex_lock(&p->mu);
	n = p->requests;
	pthread_mutex_unlock(&p->mu);
	return n;
}

static json_t *claims_for(const char *iss)
{
	json_t *c = claims();
	json_object_set_new(c, "iss", json_string(iss));
	return c;
}

static void fetch_and_rotate(void **state)
{
	struct idp *p = idp_start();
	struct oidc_store *s;
	struct oidc_config c = cfg;
	char *top = tmpdir();

	c.issuer = p->issuer;
	assert_int_equal(oidc_store_new(top, &s), 0);
	oidc_store_set_refetch_interval(s, 10);
	/* cold: discovery + JWKS */
	expect_at(s, &c, tok(r1, hdr("RS256", "r1"), claims_for(p->issuer)), NOW, OIDC_OK, "");
	assert_int_equal(idp_requests(p), 2);
	assert_int_equal(fetches(s), 1);
	/* warm: nothing fetched */
	expect_at(s, &c, tok(r1, hdr("RS256", "r1"), claims_for(p->issuer)), NOW + 1, OIDC_OK, "");
	assert_int_equal(idp_requests(p), 2);

	/* the IdP rotates to r2 (kid "r2"); a token with the new kid makes
	 * the store refetch once the interval has passed */
	idp_set(p, &p->jwks, make_jwks(1, ts_jwk(r2, "r2", "RS256")));
	expect_at(s, &c, tok(r2, hdr("RS256", "r2"), claims_for(p->issuer)), NOW + 2, OIDC_REJECTED,
		  "unknown key id \"r2\"");
	assert_int_equal(idp_requests(p), 2);
	expect_at(s, &c, tok(r2, hdr("RS256", "r2"), claims_for(p->issuer)), NOW + 10, OIDC_OK, "");
	assert_int_equal(idp_requests(p), 4);
	/* the old key is gone */
	expect_at(s, &c, tok(r1, hdr("RS256", "r1"), claims_for(p->issuer)), NOW + 11, OIDC_REJECTED,
		  "unknown key id \"r1\"");
	assert_int_equal(idp_requests(p), 4);
	/* a kid the IdP does not have either: refetched, still unknown */
	expect_at(s, &c, tok(r1, hdr("RS256", "zzz"), claims_for(p->issuer)), NOW + 20, OIDC_REJECTED,
		  "unknown key id \"zzz\"");
	assert_int_equal(idp_requests(p), 6);
	oidc_store_free(s);

	/* the IdP goes away; a restarted agent still has the new set on disk */
	assert_int_equal(oidc_store_new(top, &s), 0);
	pthread_mutex_lock(&p->mu);
	p->status = 503;
	pthread_mutex_unlock(&p->mu);
	expect_at(s, &c, tok(r2, hdr("RS256", "r2"), claims_for(p->issuer)), NOW + 21, OIDC_OK, "");
	assert_int_equal(fetches(s), 0);
	/* an unknown kid now: the refetch fails with the HTTP status */
	expect_at(s, &c, tok(r1, hdr("RS256", "r3"), claims_for(p->issuer)), NOW + 22, OIDC_UNAVAILABLE,
		  "issuer keys unavailable: ");
	{
		char reason[256];
		assert_int_equal(oidc_store_issuer_info(s, p->issuer, NULL, NULL, reason, sizeof(reason)), 0);
		assert_non_null(strstr(reason, "HTTP status 503"));
	}
	oidc_store_free(s);
	idp_stop(p);
	rm_rf(top);
	free(top);
}

static void fetch_failures(void **state)
{
	struct idp *p = idp_start();
	struct oidc_store *s;
	struct oidc_config c = cfg;
	char reason[512];

	c.issuer = p->issuer;
#define COLD(want)                                                                                   \
	do {                                                                                         \
		assert_int_equal(oidc_store_new(NULL, &s), 0);                                       \
		char *t_ = tok(r1, hdr("RS256", "r1"), claims_for(p->issuer));                      \
		assert_int_equal(run(s, &c, t_, NOW, reason, sizeof(reason), NULL), OIDC_UNAVAILABLE); \
		free(t_);                                                                            \
		if (!strstr(reason, want))                                                           \
			fail_msg("reason \"%s\" lacks \"%s\"", reason, want);                        \
		oidc_store_free(s);                                                                  \
	} while (0)

	/* the discovery document names another issuer */
	idp_set(p, &p->disc, make_discovery("http://127.0.0.1:9", "http://127.0.0.1:9/jwks"));
	COLD("discovery document names another issuer");
	/* a jwks_uri that is plain http to a non-loopback host */
	idp_set(p, &p->disc, make_discovery(p->issuer, "http://example.com/jwks"));
	COLD("http://example.com/jwks: only https is allowed");
	/* a JWKS without usable keys */
	{
		char uri[96];
		snprintf(uri, sizeof(uri), "%s/jwks", p->issuer);
		idp_set(p, &p->disc, make_discovery(p->issuer, uri));
	}
	idp_set(p, &p->jwks, strdup("{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}"));
	COLD("JWKS has no usable signing key");
	/* over the size cap, announced and not announced */
	pthread_mutex_lock(&p->mu);
	p->big = OIDC_RESPONSE_MAX + 1;
	pthread_mutex_unlock(&p->mu);
	COLD("response larger than 262144 bytes");
	pthread_mutex_lock(&p->mu);
	p->big_no_length = true;
	p->big = 3 * OIDC_RESPONSE_MAX;
	pthread_mutex_unlock(&p->mu);
	COLD("response larger than 262144 bytes");
	/* a redirect is not followed from plain http */
	pthread_mutex_lock(&p->mu);
	p->big = 0;
	p->status = 302;
	pthread_mutex_unlock(&p->mu);
	COLD("HTTP status 302");
	pthread_mutex_lock(&p->mu);
	p->status = 404;
	pthread_mutex_unlock(&p->mu);
	COLD("HTTP status 404");
	/* the same issuer with a trailing slash: no double slash in the URL */
	pthread_mutex_lock(&p->mu);
	p->status = 0;
	pthread_mutex_unlock(&p->mu);
	{
		char slash[80], uri[96];
		snprintf(slash, sizeof(slash), "%s/", p->issuer);
		snprintf(uri, sizeof(uri), "%s/jwks", p->issuer);
		idp_set(p, &p->disc, make_discovery(slash, uri));
		idp_set(p, &p->jwks, make_jwks(1, ts_jwk(r1, "r1", NULL)));
		c.issuer = slash;
		assert_int_equal(oidc_store_new(NULL, &s), 0);
		expect_at(s, &c, tok(r1, hdr("RS256", "r1"), claims_for(slash)), NOW, OIDC_OK, "");
		oidc_store_free(s);
	}
#undef COLD
	idp_stop(p);
}


/* ---- HTTPS, with openssl s_server -WWW as the IdP ------------------------ */

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool port_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static void write_file(const char *dir, const char *name, const char *text)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void https_fetch(void **state)
{
	char *top = tmpdir(), cmd[2048], www[300], ca[300], other_ca[300], cert[300], key[300], issuer[64],
	     uri[96], reason[512];
	struct oidc_store *s;
	struct oidc_config c = cfg;
	pid_t pid;
	int port, i;

	if (system("openssl version >/dev/null 2>&1") != 0)
		skip();
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && mkdir -p www/.well-known && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem "
		 "-subj /CN=test-ca -days 2 && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout other.key "
		 "-out other.pem -subj /CN=other-ca -days 2 && "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr "
		 "-subj /CN=127.0.0.1 && printf 'subjectAltName=IP:127.0.0.1\\n' > ext && "
		 "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 "
		 "-extfile ext >/dev/null 2>&1",
		 top);
	assert_int_equal(system(cmd), 0);
	snprintf(www, sizeof(www), "%s/www", top);
	snprintf(ca, sizeof(ca), "%s/ca.pem", top);
	snprintf(other_ca, sizeof(other_ca), "%s/other.pem", top);
	snprintf(cert, sizeof(cert), "%s/srv.pem", top);
	snprintf(key, sizeof(key), "%s/srv.key", top);
	port = free_port();
	snprintf(issuer, sizeof(issuer), "https://127.0.0.1:%d", port);
	snprintf(uri, sizeof(uri), "%s/jwks", issuer);
	{
		char *d = make_discovery(issuer, uri), *j = make_jwks(1, ts_jwk(e1, "e1", NULL));
		write_file(www, ".well-known/openid-configuration", d);
		write_file(www, "jwks", j);
		free(d);
		free(j);
	}
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char acc[32];
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		snprintf(acc, sizeof(acc), "127.0.0.1:%d", port);
		if (chdir(www) < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
			_exit(127);
		execlp("openssl", "openssl", "s_server", "-quiet", "-WWW", "-accept", acc, "-cert", cert, "-key",
		       key, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200 && !port_open(port); i++)
		poll(NULL, 0, 25);
	assert_true(i < 200);

	c.issuer = issuer;
	c.ca_file = ca;
	assert_int_equal(oidc_store_new(NULL, &s), 0);
	expect_at(s, &c, tok(e1, hdr("ES256", "e1"), claims_for(issuer)), NOW, OIDC_OK, "");
	assert_int_equal(fetches(s), 1);
	oidc_store_free(s);
	/* a certificate from a CA the configuration does not trust */
	c.ca_file = other_ca;
	assert_int_equal(oidc_store_new(NULL, &s), 0);
	{
		char *t = tok(e1, hdr("ES256", "e1"), claims_for(issuer));
		assert_int_equal(run(s, &c, t, NOW, reason, sizeof(reason), NULL), OIDC_UNAVAILABLE);
		free(t);
		if (!strstr(reason, "issuer keys unavailable: ") || !strstr(reason, "certificate"))
			fail_msg("reason: %s", reason);
	}
	oidc_store_free(s);
	/* an issuer named by a host the certificate does not cover */
	snprintf(issuer, sizeof(issuer), "https://localhost:%d", port);
	c.issuer = issuer;
	c.ca_file = ca;
	assert_int_equal(oidc_store_new(NULL, &s), 0);
	{
		char *t = tok(e1, hdr("ES256", "e1"), claims_for(issuer));
		assert_int_equal(run(s, &c, t, NOW, reason, sizeof(reason), NULL), OIDC_UNAVAILABLE);
		free(t);
		assert_non_null(strstr(reason, "issuer keys unavailable: https://localhost:"));
	}
	oidc_store_free(s);

	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, NULL, 0), pid);
	rm_rf(top);
	free(top);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_tokens),
		cmocka_unit_test(alg_none_and_hs),
		cmocka_unit_test(alg_allowlist_and_key_fit),
		cmocka_unit_test(times),
		cmocka_unit_test(iss_aud_sub),
		cmocka_unit_test(kids),
		cmocka_unit_test(tampering),
		cmocka_unit_test(shapes),
		cmocka_unit_test(header_rules),
		cmocka_unit_test(key_naming_headers),
		cmocka_unit_test(groups),
		cmocka_unit_test(garbage),
		cmocka_unit_test(disk_cache_round_trip),
		cmocka_unit_test(cache_dir_rules),
		cmocka_unit_test(refetch_rate_limit),
		cmocka_unit_test(cold_unreachable),
		cmocka_unit_test(seed_checks),
		cmocka_unit_test(fetch_and_rotate),
		cmocka_unit_test(fetch_failures),
		cmocka_unit_test(https_fetch),
	};
	if (oidc_global_init() < 0)
		return 1;
	int r = cmocka_run_group_tests(tests, setup, teardown);
	oidc_global_cleanup();
	return r;
}
