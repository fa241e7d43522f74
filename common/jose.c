/* JOSE for verification only: base64url, compact JWS, JWK -> EVP_PKEY,
 * RS/PS/ES signature checks. See jose.h for what is left out and why. */
#include "config.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "common/jose.h"

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "common/jose.c needs OpenSSL 3 (EVP_PKEY_fromdata)"
#endif

/* Largest signature: a 16384-bit RSA modulus. */
#define SIG_MAX 2048
/* A JOSE header is a handful of short members. */
#define HEADER_MAX 8192
#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384

static const char b64url_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int b64url_decode(const char *in, size_t in_len, size_t max, uint8_t **out, size_t *out_len)
{
	size_t rem = in_len % 4, n = in_len / 4 * 3 + (rem ? rem - 1 : 0), o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	uint8_t *p;

	if (rem == 1)
		return -EINVAL; /* one leftover character carries under a byte */
	if (n > max)
		return -EMSGSIZE;
	p = malloc(n + 1);
	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < in_len; i++) {
		int v = b64url_value((unsigned char)in[i]);
		if (v < 0)
			goto bad;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			p[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* The unused low bits of the last character must be zero: otherwise
	 * several encodings decode to the same bytes. */
	if (acc != 0)
		goto bad;
	p[o] = 0;
	*out = p;
	*out_len = o;
	return 0;
bad:
	free(p);
	return -EINVAL;
}

char *b64url_encode(const void *in, size_t len)
{
	const uint8_t *s = in;
	size_t n = len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0), o = 0, i = 0;
	char *p;

	if (len > SIZE_MAX / 2)
		return NULL;
	p = malloc(n + 1);
	if (!p)
		return NULL;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		p[o++] = b64url_alphabet[v >> 18 & 63];
		p[o++] = b64url_alphabet[v >> 12 & 63];
		p[o++] = b64url_alphabet[v >> 6 & 63];
		p[o++] = b64url_alphabet[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)s[i] << 16;
		p[o++] = b64url_alphabet[v >> 18 & 63];
		p[o++] = b64url_alphabet[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		p[o++] = b64url_alphabet[v >> 18 & 63];
		p[o++] = b64url_alphabet[v >> 12 & 63];
		p[o++] = b64url_alphabet[v >> 6 & 63];
	}
	p[o] = '\0';
	return p;
}

static const struct {
	enum jose_alg alg;
	const char *name;
} alg_names[] = {
	{ JOSE_RS256, "RS256" }, { JOSE_RS384, "RS384" }, { JOSE_RS512, "RS512" },
	{ JOSE_PS256, "PS256" }, { JOSE_PS384, "PS384" }, { JOSE_PS512, "PS512" },
	{ JOSE_ES256, "ES256" }, { JOSE_ES384, "ES384" },
};

enum jose_alg jose_alg_from_name(const char *name)
{
	if (!name)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(alg_names); i++)
		if (strcmp(alg_names[i].name, name) == 0)
			return alg_names[i].alg;
	return 0;
}

const char *jose_alg_name(enum jose_alg alg)
{
	for (size_t i = 0; i < ARRAY_SIZE(alg_names); i++)
		if (alg_names[i].alg == alg)
			return alg_names[i].name;
	return NULL;
}

static bool alg_is_rsa(enum jose_alg a)
{
	return a >= JOSE_RS256 && a <= JOSE_PS512;
}

static bool alg_fits_kty(enum jose_alg a, enum jose_kty kty)
{
	switch (kty) {
	case JOSE_KTY_RSA:
		return alg_is_rsa(a);
	case JOSE_KTY_EC_P256:
		return a == JOSE_ES256;
	case JOSE_KTY_EC_P384:
		return a == JOSE_ES384;
	}
	return false;
}

bool jose_alg_fits_key(enum jose_alg alg, const struct jose_key *key)
{
	if (!key || !key->pkey || !alg_fits_kty(alg, key->kty))
		return false;
	return key->alg == 0 || key->alg == alg;
}

void jose_key_clear(struct jose_key *k)
{
	if (!k)
		return;
	free(k->kid);
	EVP_PKEY_free(k->pkey);
	*k = (struct jose_key){ 0 };
}

/* A base64url member of a JWK, decoded. */
static int jwk_bytes(const json_t *jwk, const char *name, size_t max, uint8_t **out, size_t *len)
{
	const json_t *v = json_object_get(jwk, name);

	if (!json_is_string(v))
		return -EINVAL;
	return b64url_decode(json_string_value(v), json_string_length(v), max, out, len);
}

static int rsa_from_jwk(const json_t *jwk, EVP_PKEY **out, unsigned *bits, const char **why)
{
	uint8_t *n = NULL, *e = NULL;
	size_t nlen = 0, elen = 0;
	BIGNUM *bn = NULL, *be = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *pkey = NULL;
	int r = -EINVAL;

	if (jwk_bytes(jwk, "n", RSA_MAX_BITS / 8 + 1, &n, &nlen) < 0) {
		*why = "RSA key without a valid n";
		goto out;
	}
	if (jwk_bytes(jwk, "e", 8, &e, &elen) < 0) {
		*why = "RSA key without a valid e";
		goto out;
	}
	r = -ENOMEM;
	bn = BN_bin2bn(n, (int)nlen, NULL);
	be = BN_bin2bn(e, (int)elen, NULL);
	if (!bn || !be)
		goto out;
	r = -ENOTSUP;
	if (BN_num_bits(bn) < RSA_MIN_BITS) {
		*why = "RSA key shorter than 2048 bits";
		goto out;
	}
	if (BN_num_bits(bn) > RSA_MAX_BITS) {
		*why = "RSA key longer than 16384 bits";
		goto out;
	}
	r = -EINVAL;
	if (!BN_is_odd(bn) || !BN_is_odd(be) || BN_num_bits(be) < 2) {
		*why = "RSA key with an invalid modulus or exponent";
		goto out;
	}
	r = -ENOMEM;
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (!params || !ctx)
		goto out;
	if (EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		*why = "RSA key rejected by OpenSSL";
		r = -EINVAL;
		goto out;
	}
	*bits = (unsigned)BN_num_bits(bn);
	*out = pkey;
	pkey = NULL;
	r = 0;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	free(n);
	free(e);
	if (r < 0)
		ERR_clear_error();
	return r;
}

static int ec_from_jwk(const json_t *jwk, enum jose_kty *kty, EVP_PKEY **out, unsigned *bits,
		       const char **why)
{
	const char *crv = json_string_value(json_object_get(jwk, "crv"));
	const char *group;
	uint8_t *x = NULL, *y = NULL, pub[1 + 2 * 48];
	size_t xlen = 0, ylen = 0, flen;
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *ctx = NULL, *check = NULL;
	EVP_PKEY *pkey = NULL;
	int r = -EINVAL;

	if (!crv) {
		*why = "EC key without crv";
		return -EINVAL;
	}
	if (strcmp(crv, "P-256") == 0) {
		*kty = JOSE_KTY_EC_P256;
		flen = 32;
		group = "prime256v1";
	} else if (strcmp(crv, "P-384") == 0) {
		*kty = JOSE_KTY_EC_P384;
		flen = 48;
		group = "secp384r1";
	} else {
		*why = "unsupported EC curve";
		return -ENOTSUP;
	}
	/* RFC 7518 6.2.1.2: x and y are exactly the field size. */
	if (jwk_bytes(jwk, "x", flen, &x, &xlen) < 0 || xlen != flen ||
	    jwk_bytes(jwk, "y", flen, &y, &ylen) < 0 || ylen != flen) {
		*why = "EC key without valid x and y";
		goto out;
	}
	pub[0] = 0x04; /* uncompressed point */
	memcpy(pub + 1, x, flen);
	memcpy(pub + 1 + flen, y, flen);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, 1 + 2 * flen);
	params[2] = OSSL_PARAM_construct_end();
	r = -ENOMEM;
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	if (!ctx)
		goto out;
	r = -EINVAL;
	if (EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		*why = "EC key is not a point on its curve";
		goto out;
	}
	/* fromdata decodes the point; the explicit check also refuses the
	 * point at infinity and anything outside the group. */
	check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (!check || EVP_PKEY_public_check(check) != 1) {
		*why = "EC key is not a point on its curve";
		goto out;
	}
	*bits = (unsigned)flen * 8;
	*out = pkey;
	pkey = NULL;
	r = 0;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_CTX_free(ctx);
	free(x);
	free(y);
	if (r < 0)
		ERR_clear_error();
	return r;
}

static bool string_array_has(const json_t *a, const char *s)
{
	size_t i;
	const json_t *v;

	json_array_foreach(a, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), s) == 0)
			return true;
	return false;
}

int jose_jwk_to_key(const json_t *jwk, struct jose_key *out, const char **why)
{
	const json_t *kty, *use, *ops, *kid, *alg;
	struct jose_key k = { 0 };
	const char *dummy;
	int r;

	if (!why)
		why = &dummy;
	if (!json_is_object(jwk)) {
		*why = "key is not a JSON object";
		return -EINVAL;
	}
	kty = json_object_get(jwk, "kty");
	use = json_object_get(jwk, "use");
	ops = json_object_get(jwk, "key_ops");
	kid = json_object_get(jwk, "kid");
	alg = json_object_get(jwk, "alg");
	if (!json_is_string(kty)) {
		*why = "key without kty";
		return -EINVAL;
	}
	if (use && !json_is_string(use)) {
		*why = "key with a use that is not a string";
		return -EINVAL;
	}
	if (use && strcmp(json_string_value(use), "sig") != 0) {
		*why = "key not for signatures (use)";
		return -ENOTSUP;
	}
	if (ops && (!json_is_array(ops) || !string_array_has(ops, "verify"))) {
		*why = "key not for verification (key_ops)";
		return -ENOTSUP;
	}
	if (kid && !json_is_string(kid)) {
		*why = "key with a kid that is not a string";
		return -EINVAL;
	}
	if (kid && (json_string_length(kid) > JOSE_KID_MAX ||
		    strlen(json_string_value(kid)) != json_string_length(kid))) {
		*why = "key with an over-long kid";
		return -ENOTSUP;
	}
	if (alg && !json_is_string(alg)) {
		*why = "key with an alg that is not a string";
		return -EINVAL;
	}
	if (alg) {
		k.alg = jose_alg_from_name(json_string_value(alg));
		if (!k.alg) {
			*why = "key for an unsupported algorithm";
			return -ENOTSUP;
		}
	}
	if (strcmp(json_string_value(kty), "RSA") == 0) {
		k.kty = JOSE_KTY_RSA;
		r = rsa_from_jwk(jwk, &k.pkey, &k.bits, why);
	} else if (strcmp(json_string_value(kty), "EC") == 0) {
		r = ec_from_jwk(jwk, &k.kty, &k.pkey, &k.bits, why);
	} else {
		*why = "unsupported key type";
		return -ENOTSUP;
	}
	if (r < 0)
		return r;
	if (k.alg && !alg_fits_kty(k.alg, k.kty)) {
		*why = "key whose alg does not fit its type";
		EVP_PKEY_free(k.pkey);
		return -ENOTSUP;
	}
	if (kid) {
		k.kid = strdup(json_string_value(kid));
		if (!k.kid) {
			EVP_PKEY_free(k.pkey);
			return -ENOMEM;
		}
	}
	*out = k;
	return 0;
}

static const EVP_MD *alg_md(enum jose_alg a)
{
	switch (a) {
	case JOSE_RS256: case JOSE_PS256: case JOSE_ES256:
		return EVP_sha256();
	case JOSE_RS384: case JOSE_PS384: case JOSE_ES384:
		return EVP_sha384();
	case JOSE_RS512: case JOSE_PS512:
		return EVP_sha512();
	}
	return NULL;
}

/* JWS r||s (each exactly the field size) -> DER ECDSA-Sig-Value. */
static int ecdsa_raw_to_der(const uint8_t *sig, size_t half, uint8_t **der, size_t *der_len)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
	unsigned char *p = NULL;
	int n;

	if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
		ECDSA_SIG_free(es);
		BN_free(r);
		BN_free(s);
		return -ENOMEM;
	}
	n = i2d_ECDSA_SIG(es, &p);
	ECDSA_SIG_free(es); /* owns r and s now */
	if (n <= 0)
		return -ENOMEM;
	*der = p;
	*der_len = (size_t)n;
	return 0;
}

int jose_verify(enum jose_alg alg, EVP_PKEY *pkey, const void *data, size_t len,
		const uint8_t *sig, size_t sig_len)
{
	const EVP_MD *md = alg_md(alg);
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *der = NULL;
	const uint8_t *s = sig;
	size_t slen = sig_len;
	int r;

	if (!md || !pkey)
		return -EINVAL;
	if (alg_is_rsa(alg)) {
		/* RFC 7518 3.3: the signature is exactly as long as the modulus
		 * (OpenSSL would quietly accept a shorter one). */
		if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || sig_len != (size_t)EVP_PKEY_get_size(pkey))
			return -EBADMSG;
	} else {
		size_t half = alg == JOSE_ES256 ? 32 : 48;
		if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_EC || sig_len != 2 * half ||
		    (unsigned)EVP_PKEY_get_bits(pkey) != half * 8)
			return -EBADMSG;
		r = ecdsa_raw_to_der(sig, half, &der, &slen);
		if (r < 0)
			return r;
		s = der;
	}
	r = -ENOMEM;
	mctx = EVP_MD_CTX_new();
	if (!mctx)
		goto out;
	r = -EIO;
	if (EVP_DigestVerifyInit(mctx, &pctx, md, NULL, pkey) != 1)
		goto out;
	if (alg >= JOSE_PS256 && alg <= JOSE_PS512 &&
	    (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	     EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
	     EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) != 1))
		goto out;
	r = EVP_DigestVerify(mctx, s, slen, data, len) == 1 ? 0 : -EBADMSG;
out:
	EVP_MD_CTX_free(mctx);
	OPENSSL_free(der);
	/* A failed verification leaves entries on the thread's error queue;
	 * other OpenSSL users in the process (TLS) must not see them. */
	ERR_clear_error();
	return r;
}

void jws_clear(struct jws *j)
{
	if (!j)
		return;
	json_decref(j->header);
	free(j->payload);
	free(j->sig);
	*j = (struct jws){ 0 };
}

int jws_split(const char *token, struct jws *out, const char **why)
{
	const char *dots[5];
	size_t len, ndots = 0;
	struct jws j = { 0 };
	uint8_t *hdr = NULL;
	size_t hdr_len = 0;
	json_error_t jerr;
	int r;

	if (!token) {
		*why = "no token";
		return -EINVAL;
	}
	len = strnlen(token, JOSE_TOKEN_MAX + 1);
	if (len > JOSE_TOKEN_MAX) {
		*why = "token too large";
		return -EMSGSIZE;
	}
	if (len == 0) {
		*why = "empty token";
		return -EINVAL;
	}
	for (size_t i = 0; i < len; i++)
		if (token[i] == '.') {
			if (ndots == ARRAY_SIZE(dots)) {
				*why = "not a compact JWS (expected three parts separated by dots)";
				return -EINVAL;
			}
			dots[ndots++] = token + i;
		}
	if (ndots == 4) {
		*why = "encrypted tokens (JWE) are not supported";
		return -EINVAL;
	}
	if (ndots != 2) {
		*why = "not a compact JWS (expected three parts separated by dots)";
		return -EINVAL;
	}
	if (dots[0] == token) {
		*why = "token has an empty header";
		return -EINVAL;
	}
	r = b64url_decode(token, (size_t)(dots[0] - token), HEADER_MAX, &hdr, &hdr_len);
	if (r < 0) {
		*why = r == -EMSGSIZE ? "token header too large" : "token header is not base64url";
		goto fail;
	}
	j.header = json_loadb((const char *)hdr, hdr_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(j.header)) {
		*why = "token header is not a JSON object";
		r = -EINVAL;
		goto fail;
	}
	r = b64url_decode(dots[0] + 1, (size_t)(dots[1] - dots[0] - 1), JOSE_TOKEN_MAX,
			  &j.payload, &j.payload_len);
	if (r < 0) {
		*why = "token payload is not base64url";
		goto fail;
	}
	r = b64url_decode(dots[1] + 1, (size_t)(token + len - dots[1] - 1), SIG_MAX, &j.sig, &j.sig_len);
	if (r < 0) {
		*why = r == -EMSGSIZE ? "token signature too large" : "token signature is not base64url";
		goto fail;
	}
	j.signing_input = token;
	j.signing_input_len = (size_t)(dots[1] - token);
	free(hdr);
	*out = j;
	return 0;
fail:
	free(hdr);
	jws_clear(&j);
	return r;
}
