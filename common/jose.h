/* JOSE pieces for verifying OIDC tokens (RFC 7515, 7517, 7518, 8725):
 * base64url, the compact JWS split, JWK -> EVP_PKEY for RSA and EC
 * P-256/P-384 public keys, and signature verification with OpenSSL's EVP for
 * RS256/384/512, PS256/384/512 and ES256/384.
 *
 * Deliberately absent: "none", HS* (a verifier holding only public keys has
 * no business with MACs), JWE, the JSON serialisations, unencoded payloads
 * (b64=false), and every header that names a key (jku, x5u, jwk, x5c): the
 * key always comes from the issuer's JWKS, chosen by the caller.
 *
 * Nothing here logs, fetches or keeps state; "why" strings are static text. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>
#include "common/util.h"

/* Largest compact token accepted anywhere (checked before any parsing). */
#define JOSE_TOKEN_MAX 16384
/* Largest kid kept; longer ones are refused in tokens and skipped in sets. */
#define JOSE_KID_MAX 255

/* Strict base64url without padding: only [A-Za-z0-9_-], no '=', no
 * whitespace, unused trailing bits must be zero (so each token has exactly
 * one encoding). *out is malloc'd with one extra NUL byte after *out_len
 * bytes; -EMSGSIZE when the decoded size would exceed max, -EINVAL on bad
 * input, -ENOMEM. */
int b64url_decode(const char *in, size_t in_len, size_t max, uint8_t **out, size_t *out_len) WUR;
/* base64url without padding, NUL-terminated, malloc'd; NULL on ENOMEM. */
char *b64url_encode(const void *in, size_t len);

enum jose_alg {
	JOSE_RS256 = 1, JOSE_RS384, JOSE_RS512,
	JOSE_PS256, JOSE_PS384, JOSE_PS512,
	JOSE_ES256, JOSE_ES384,
};
/* The algorithm for an exact (case-sensitive) JWA name; 0 when it is not
 * one of the supported asymmetric algorithms ("none" and HS* included). */
enum jose_alg jose_alg_from_name(const char *name);
/* "RS256", ...; NULL for anything else. */
const char *jose_alg_name(enum jose_alg alg);

enum jose_kty { JOSE_KTY_RSA = 1, JOSE_KTY_EC_P256, JOSE_KTY_EC_P384 };

struct jose_key {
	char *kid;            /* NULL when the JWK has none */
	enum jose_kty kty;
	enum jose_alg alg;    /* 0 when the JWK has no "alg" */
	unsigned bits;        /* RSA modulus bits, EC field bits */
	EVP_PKEY *pkey;
};
void jose_key_clear(struct jose_key *k);

/* One JWK (a JSON object) into *out. Returns 0, or -ENOTSUP for a key that
 * is well-formed but not usable here and is to be skipped (use != "sig",
 * key_ops without "verify", an unsupported kty, crv or alg, RSA below 2048
 * or above 16384 bits), or -EINVAL for a malformed one; *why says which. */
int jose_jwk_to_key(const json_t *jwk, struct jose_key *out, const char **why) WUR;

/* Whether a key may verify alg: RS and PS need RSA, ES256 P-256, ES384
 * P-384, and a key that names its alg allows only that one. */
bool jose_alg_fits_key(enum jose_alg alg, const struct jose_key *key);

/* Verify sig over data with key and alg (the caller checked
 * jose_alg_fits_key). ES signatures are the JWS r||s form (RFC 7518 3.4)
 * and are converted to DER for EVP; PS uses MGF1 with the same hash and a
 * salt as long as the hash. Returns 0 when it verifies, -EBADMSG when it
 * does not (including a signature of the wrong length), -ENOMEM/-EIO. */
int jose_verify(enum jose_alg alg, EVP_PKEY *pkey, const void *data, size_t len,
		const uint8_t *sig, size_t sig_len) WUR;

/* A compact JWS split into its parts. The header is parsed (it is needed to
 * choose the key); the payload is only decoded: parse it after the
 * signature verifies. */
struct jws {
	json_t *header;              /* a JSON object */
	const char *signing_input;   /* points into the caller's token */
	size_t signing_input_len;    /* "header.payload" */
	uint8_t *payload;            /* decoded, NUL-terminated */
	size_t payload_len;
	uint8_t *sig;
	size_t sig_len;
};
/* Split token (at most JOSE_TOKEN_MAX bytes, NUL-terminated) into *out.
 * Refuses anything but exactly three base64url parts with a non-empty
 * header (a five-part JWE gets its own message), a header that is not a
 * JSON object, and duplicate member names. An empty signature splits
 * (sig_len 0), so that the caller can name what is wrong with the header
 * first ("alg": "none" tokens have one). -EINVAL/-EMSGSIZE with *why,
 * -ENOMEM. */
int jws_split(const char *token, struct jws *out, const char **why) WUR;
void jws_clear(struct jws *j);
