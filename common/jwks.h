/* The per-issuer key store behind oidc_verify() (oidc.h): discovery
 * documents and JWKS fetched over HTTPS with libcurl, kept in memory and on
 * disk, refetched on an unknown kid or when old, at most once per refetch
 * interval per issuer; the last good set stays in use while the IdP is
 * unreachable. The fetch rules and the disk format are described in oidc.h.
 * A store is used by one thread at a time. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

struct jose_key;

#define OIDC_RESPONSE_MAX (256 * 1024)
#define OIDC_REFETCH_DEFAULT 60     /* seconds between refetches per issuer */
#define OIDC_MAX_AGE_DEFAULT 3600   /* a set older than this is refreshed */

struct oidc_store;

/* cache_dir: created (0700) if missing; must be owned by this user and not
 * group/other-writable (-EPERM otherwise); NULL = memory only. */
int oidc_store_new(const char *cache_dir, struct oidc_store **out) WUR;
struct oidc_store *oidc_store_free(struct oidc_store *s);
/* Least time between two fetches for one issuer (unknown kid, old set,
 * failed fetch); default OIDC_REFETCH_DEFAULT. */
void oidc_store_set_refetch_interval(struct oidc_store *s, unsigned seconds);
/* Age past which a set is refreshed (rate-limited as above); default
 * OIDC_MAX_AGE_DEFAULT. */
void oidc_store_set_max_age(struct oidc_store *s, unsigned seconds);

/* Put an issuer's discovery document and JWKS into the store as if they had
 * been fetched at fetched_at (seconds since the epoch), with every check a
 * fetch gets (issuer match, jwks_uri rule, at least one usable key), and
 * write the disk cache. For tests, benchmarks and pre-provisioning. Returns
 * 0 or a negative errno with err filled. */
int oidc_store_seed(struct oidc_store *s, const char *issuer, const char *discovery_json,
		    const char *jwks_json, int64_t fetched_at, char *err, size_t err_len) WUR;

struct oidc_store_stats {
	uint64_t fetches;          /* discovery+JWKS fetch attempts */
	uint64_t fetch_failures;   /* of which failed (the old set stayed) */
	uint64_t disk_loads;       /* sets read from the disk cache */
	uint64_t disk_writes;      /* sets written to the disk cache */
	uint64_t disk_failures;    /* disk cache writes that failed (not fatal) */
};
void oidc_store_stats(const struct oidc_store *s, struct oidc_store_stats *out);

/* What the issuer's set currently holds: number of usable keys, when it was
 * fetched (0 when there is none), the last fetch error ("" when none). */
int oidc_store_issuer_info(const struct oidc_store *s, const char *issuer, size_t *n_keys,
			   int64_t *fetched_at, char *last_error, size_t last_error_len) WUR;

/* For oidc.c. The keys of issuer at now: from memory, else the disk cache,
 * else a fetch (rate-limited); an old set is refreshed first when the rate
 * limit allows (a failure keeps it). Returns 0 with *keys and *n_keys (valid
 * until the next call on s), -EAGAIN with err = why there are none, or
 * -ENOMEM. */
int oidc_store_keys(struct oidc_store *s, const char *issuer, const char *ca_file, int64_t now,
		    const struct jose_key **keys, size_t *n_keys, char *err, size_t err_len) WUR;
/* Refetch issuer's set now if the rate limit allows: 1 when fetched, 0 when
 * not allowed yet, -EAGAIN when the fetch failed (err says why; the old set
 * stays), -ENOENT for an issuer the store has never seen. */
int oidc_store_refetch(struct oidc_store *s, const char *issuer, const char *ca_file, int64_t now,
		       char *err, size_t err_len) WUR;

/* For jwks.c and oidc.c: vsnprintf into buf when there is one (reasons and
 * errors are optional out-parameters). */
void oidc_say(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
