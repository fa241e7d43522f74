/* OIDC token verification for the agent: discovery and JWKS fetched over
 * HTTPS (libcurl), cached in memory and on disk, and the RFC 8725 checks.
 *
 * What a token may and may not do:
 * - Only a compact JWS of at most 16 KiB (OIDC_TOKEN_MAX) is read; JWE and
 *   anything else are refused before any other parsing.
 * - The key comes from the configured issuer's JWKS only. Headers that name
 *   keys (jku, x5u, jwk, x5c, x5t) are ignored: never fetched, never used.
 * - The header alg must be in the configured allowlist, fit the key (RS/PS:
 *   RSA of at least 2048 bits, ES256: P-256, ES384: P-384) and equal the
 *   JWK's alg when it has one. "none" and HS* are always refused.
 * - With a kid, only keys with that kid are tried. Without one, the token is
 *   tried only when the issuer's set holds exactly one key that fits the
 *   alg (otherwise it is refused: guessing among keys is not done).
 * - crit, cty and a typ other than JWT / at+jwt (with or without the
 *   "application/" prefix, any case) are refused.
 * - The signature is verified before the payload is parsed. Then: iss equals
 *   the configured issuer exactly; aud (string or array) contains the
 *   audience; exp is required and now < exp + leeway; nbf (optional) <=
 *   now + leeway; iat (optional) <= now + leeway; sub is a non-empty string
 *   of at most 1024 bytes without control characters (C0, DEL, C1); the
 *   groups claim, when configured and present (JSON null counts as absent),
 *   is a string or an array of at most 256 strings of 1..255 bytes without
 *   control characters. Group names are otherwise not restricted: whoever
 *   turns them into Unix group names (NSS) filters further.
 *
 * Fetching: https only (http only for localhost, 127.0.0.1 and [::1], as
 * policy allows for tests), certificates checked against ca_file, redirects
 * followed only to https (at most 3; none from http), 5 s to connect and
 * 10 s in all, 256 KiB at most per response, enforced while receiving. The
 * discovery document's issuer must equal the configured issuer exactly, and
 * its jwks_uri obeys the same URL rule. A set is refetched on an unknown
 * kid and when it is older than an hour, at most once per refetch interval
 * per issuer (also after a failure: a down IdP is not asked on every
 * token); when a fetch fails the last good set stays in use, however old.
 *
 * Disk cache: cache_dir/jwks-<sha256(issuer), 32 hex>.json, mode 0600,
 * written to a temporary file and renamed; read when the store has nothing
 * in memory for the issuer, so a restarted agent verifies while the IdP is
 * down. The directory must be owned by the process's user and not writable
 * by group or others (its files decide which keys are trusted).
 *
 * Threads: a store is used by one thread at a time. Call oidc_global_init()
 * once before any thread starts (it initialises libcurl); it is also fine
 * to call curl_global_init() yourself instead.
 *
 * Nothing here logs. Reasons are short texts fit for a user; they never
 * contain the token (a kid is quoted with anything unprintable escaped). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"
#include "common/jwks.h"

#define OIDC_TOKEN_MAX 16384
#define OIDC_KID_MAX 255
#define OIDC_SUBJECT_MAX 1024
#define OIDC_GROUPS_MAX 256
#define OIDC_GROUP_LEN_MAX 255

struct oidc_config {                 /* one [oidc] section (policy/policy.h struct pol_oidc) */
	const char *issuer;              /* exact iss; discovery at issuer + "/.well-known/openid-configuration" */
	const char *audience;            /* aud (string or array) must contain it */
	const char *ca_file;             /* CA bundle for the HTTPS fetches; NULL = libcurl's default */
	const char *const *algorithms;   /* allowlist, e.g. RS256 ES256 */
	size_t n_algorithms;
	uint64_t leeway;                 /* seconds, for exp/nbf/iat (at most a day is used) */
	const char *groups_claim;        /* e.g. "groups"; NULL = no groups */
};

/* Initialise libcurl (curl_global_init) once per process, before threads. */
int oidc_global_init(void) WUR;
void oidc_global_cleanup(void);

struct oidc_identity {
	char *subject;
	char *issuer;
	char **groups;
	size_t n_groups;
	int64_t exp, iat, nbf;           /* iat, nbf: 0 when absent */
	char alg[8];
	char kid[OIDC_KID_MAX + 1];      /* "" when the token had none */
};
void oidc_identity_clear(struct oidc_identity *id);

enum oidc_result { OIDC_OK = 0, OIDC_REJECTED, OIDC_UNAVAILABLE };

/* Verify token for cfg at time now_s (seconds since the epoch; also the
 * store's clock for cache age and rate limits). Blocking: may fetch on a
 * cold cache, an unknown kid or an old set, bounded by the timeouts above.
 * OIDC_OK fills *out (release with oidc_identity_clear); otherwise *out is
 * untouched and reason (if given) says why, e.g. "token expired at
 * 2026-11-23T14:00:00Z", "wrong audience", "signature does not verify",
 * "algorithm none not allowed", "unknown key id \"x\"", "crit header not
 * supported", "issuer keys unavailable: <curl error>". OIDC_UNAVAILABLE
 * means the issuer's keys could not be had (nothing cached and the fetch
 * failed, or an unknown kid whose refetch failed): not the token's fault. */
enum oidc_result oidc_verify(struct oidc_store *s, const struct oidc_config *cfg, const char *token,
			     int64_t now_s, struct oidc_identity *out, char *reason, size_t reason_len);
