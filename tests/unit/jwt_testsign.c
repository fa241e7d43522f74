/* Test signer: see jwt_testsign.h. */
#include "config.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "common/jose.h"
#include "tests/unit/jwt_testsign.h"

static void die(const char *what)
{
	fprintf(stderr, "jwt_testsign: %s failed\n", what);
	abort();
}

EVP_PKEY *ts_keygen_rsa(unsigned bits)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	if (!k)
		die("RSA keygen");
	return k;
}

EVP_PKEY *ts_keygen_ec(const char *curve)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", strcmp(curve, "P-256") == 0 ? "prime256v1" :
							       strcmp(curve, "P-384") == 0 ? "secp384r1" : curve);
	if (!k)
		die("EC keygen");
	return k;
}

static char *bn_b64(const BIGNUM *bn, int pad)
{
	int n = pad ? pad : BN_num_bytes(bn);
	uint8_t *p = malloc((size_t)n + 1);
	char *s;
	if (!p || BN_bn2binpad(bn, p, n) != n)
		die("BN_bn2binpad");
	s = b64url_encode(p, (size_t)n);
	free(p);
	return s;
}

json_t *ts_jwk(EVP_PKEY *key, const char *kid, const char *alg)
{
	json_t *j = json_object();
	BIGNUM *a = NULL, *b = NULL;
	char *sa, *sb;

	if (EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) {
		if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &a) ||
		    !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_E, &b))
			die("RSA params");
		sa = bn_b64(a, 0);
		sb = bn_b64(b, 0);
		json_object_set_new(j, "kty", json_string("RSA"));
		json_object_set_new(j, "n", json_string(sa));
		json_object_set_new(j, "e", json_string(sb));
	} else {
		int bits = EVP_PKEY_get_bits(key);
		int half = (bits + 7) / 8;
		if (!EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &a) ||
		    !EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &b))
			die("EC params");
		sa = bn_b64(a, half);
		sb = bn_b64(b, half);
		json_object_set_new(j, "kty", json_string("EC"));
		json_object_set_new(j, "crv", json_string(bits == 256 ? "P-256" : bits == 384 ? "P-384" : "P-521"));
		json_object_set_new(j, "x", json_string(sa));
		json_object_set_new(j, "y", json_string(sb));
	}
	free(sa);
	free(sb);
	BN_free(a);
	BN_free(b);
	if (kid)
		json_object_set_new(j, "kid", json_string(kid));
	if (alg)
		json_object_set_new(j, "alg", json_string(alg));
	return j;
}

static const EVP_MD *md_for(const char *alg)
{
	const char *bits = alg + 2;
	if (strcmp(bits, "256") == 0)
		return EVP_sha256();
	if (strcmp(bits, "384") == 0)
		return EVP_sha384();
	if (strcmp(bits, "512") == 0)
		return EVP_sha512();
	die("unknown hash");
	return NULL;
}

uint8_t *ts_sign_raw(EVP_PKEY *key, const char *alg, const uint8_t *hmac_key, size_t hmac_len,
		     const void *data, size_t data_len, size_t *len)
{
	const EVP_MD *md = md_for(alg);
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *sig;
	size_t n = 0;

	if (alg[0] == 'H') {
		unsigned int hl = 0;
		sig = malloc(EVP_MAX_MD_SIZE);
		if (!sig || !HMAC(md, hmac_key, (int)hmac_len, data, data_len, sig, &hl))
			die("HMAC");
		EVP_MD_CTX_free(m);
		*len = hl;
		return sig;
	}
	if (!m || EVP_DigestSignInit(m, &pctx, md, NULL, key) != 1)
		die("DigestSignInit");
	if (alg[0] == 'P' && (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
			      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
			      EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1))
		die("PSS setup");
	if (EVP_DigestSign(m, NULL, &n, data, data_len) != 1)
		die("DigestSign size");
	sig = malloc(n);
	if (!sig || EVP_DigestSign(m, sig, &n, data, data_len) != 1)
		die("DigestSign");
	EVP_MD_CTX_free(m);
	if (alg[0] == 'E') {
		/* DER -> r||s */
		int half = (EVP_PKEY_get_bits(key) + 7) / 8;
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
		uint8_t *raw = malloc((size_t)half * 2);
		if (!es || !raw || BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, half) != half ||
		    BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + half, half) != half)
			die("ECDSA conversion");
		ECDSA_SIG_free(es);
		free(sig);
		sig = raw;
		n = (size_t)half * 2;
	}
	*len = n;
	return sig;
}

char *ts_join(const char *header_json, const char *payload_json, const uint8_t *sig, size_t sig_len)
{
	char *h = b64url_encode(header_json, strlen(header_json));
	char *p = b64url_encode(payload_json, strlen(payload_json));
	char *s = b64url_encode(sig, sig_len);
	size_t n = strlen(h) + strlen(p) + strlen(s) + 3;
	char *t = malloc(n);
	if (!h || !p || !s || !t)
		die("join");
	snprintf(t, n, "%s.%s.%s", h, p, s);
	free(h);
	free(p);
	free(s);
	return t;
}

char *ts_token(EVP_PKEY *key, const char *alg, const uint8_t *hmac_key, size_t hmac_len,
	       const char *header_json, const char *payload_json)
{
	char *h = b64url_encode(header_json, strlen(header_json));
	char *p = b64url_encode(payload_json, strlen(payload_json));
	size_t n = strlen(h) + strlen(p) + 2, slen = 0;
	char *input = malloc(n), *s, *t;
	uint8_t *sig = NULL;

	if (!h || !p || !input)
		die("token");
	snprintf(input, n, "%s.%s", h, p);
	if (strcmp(alg, "none") != 0 && (key || alg[0] == 'H'))
		sig = ts_sign_raw(key, alg, hmac_key, hmac_len, input, strlen(input), &slen);
	s = b64url_encode(sig ? sig : (const uint8_t *)"", slen);
	t = malloc(n + strlen(s) + 1);
	if (!s || !t)
		die("token");
	snprintf(t, n + strlen(s) + 1, "%s.%s", input, s);
	free(h);
	free(p);
	free(s);
	free(sig);
	free(input);
	return t;
}

char *ts_public_pem(EVP_PKEY *key, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	if (!b || PEM_write_bio_PUBKEY(b, key) != 1)
		die("PEM");
	n = BIO_get_mem_data(b, &data);
	out = malloc((size_t)n + 1);
	if (!out)
		die("PEM");
	memcpy(out, data, (size_t)n);
	out[n] = '\0';
	*len = (size_t)n;
	BIO_free(b);
	return out;
}
