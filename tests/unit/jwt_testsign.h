/* A small JWS signer and JWK writer for the OIDC unit tests and the
 * benchmark: keys made with OpenSSL, tokens signed with EVP. Test code only;
 * aborts on errors it cannot recover from. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <openssl/evp.h>

/* "RSA" with bits, or "EC" with curve "P-256" / "P-384". */
EVP_PKEY *ts_keygen_rsa(unsigned bits);
EVP_PKEY *ts_keygen_ec(const char *curve);
/* The public JWK of key (new reference); kid and alg may be NULL. */
json_t *ts_jwk(EVP_PKEY *key, const char *kid, const char *alg);
/* Raw JWS signature (ES: r||s) over data with alg ("RS256", "PS384",
 * "ES256", "HS256" with hmac_key, ...). malloc'd; *len set. */
uint8_t *ts_sign_raw(EVP_PKEY *key, const char *alg, const uint8_t *hmac_key, size_t hmac_len,
		     const void *data, size_t data_len, size_t *len);
/* header.payload.signature from JSON texts (malloc'd). alg "none" (or a
 * NULL key) gives an empty signature; "HS*" uses hmac_key. */
char *ts_token(EVP_PKEY *key, const char *alg, const uint8_t *hmac_key, size_t hmac_len,
	       const char *header_json, const char *payload_json);
/* base64url of "header.payload" parts joined with a given signature. */
char *ts_join(const char *header_json, const char *payload_json, const uint8_t *sig, size_t sig_len);
/* PEM of the public key (malloc'd, NUL-terminated). */
char *ts_public_pem(EVP_PKEY *key, size_t *len);
