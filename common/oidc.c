/* OIDC token verification: the RFC 8725 checks on a compact JWS, with keys
 * from the per-issuer store (jwks.c). See oidc.h for the rules. */
#include "config.h"
#include <errno.h>
#include <math.h>  /* isfinite */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include <jansson.h>

#include "common/jose.h"
#include "common/jwks.h"
#include "common/oidc.h"

#define LEEWAY_MAX 86400
/* Year 9999: anything later is not a date. */
#define NUMERICDATE_MAX 253402300799LL


/* A string that came from a token, fit to quote in a reason: printable
 * ASCII kept, everything else as \xNN, cut after 64 input bytes. */
static const char *printable(const char *s, char *buf, size_t n)
{
	size_t o = 0, i = 0;

	for (; s[i] && i < 64 && o + 5 < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			buf[o++] = (char)c;
		else
			o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
	}
	if (s[i] && o + 4 < n) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

int oidc_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void oidc_global_cleanup(void)
{
	curl_global_cleanup();
}

void oidc_identity_clear(struct oidc_identity *id)
{
	if (!id)
		return;
	free(id->subject);
	free(id->issuer);
	for (size_t i = 0; i < id->n_groups; i++)
		free(id->groups[i]);
	free(id->groups);
	*id = (struct oidc_identity){ 0 };
}

enum pick {
	PICK_OK,
	PICK_UNKNOWN_KID,   /* no key with that kid: a refetch may help */
	PICK_NONE_FITS,     /* no kid and no key fits: a refetch may help */
	PICK_KID_MISFIT,    /* the kid's key is for another algorithm */
	PICK_AMBIGUOUS,     /* no kid and several keys fit */
};

static enum pick pick_key(const struct jose_key *keys, size_t n_keys, enum jose_alg alg,
			  const char *kid, const struct jose_key **out, size_t *n_fit)
{
	const struct jose_key *found = NULL;
	bool kid_seen = false;
	size_t fits = 0;

	for (size_t i = 0; i < n_keys; i++) {
		const struct jose_key *k = &keys[i];
		if (kid) {
			if (!k->kid || strcmp(k->kid, kid) != 0)
				continue;
			kid_seen = true;
		}
		if (!jose_alg_fits_key(alg, k))
			continue;
		if (!found)
			found = k;
		fits++;
		if (kid)
			break; /* the first key of that kid that fits */
	}
	*n_fit = fits;
	if (kid) {
		if (found) {
			*out = found;
			return PICK_OK;
		}
		return kid_seen ? PICK_KID_MISFIT : PICK_UNKNOWN_KID;
	}
	if (fits == 1) {
		*out = found;
		return PICK_OK;
	}
	return fits == 0 ? PICK_NONE_FITS : PICK_AMBIGUOUS;
}

static bool alg_allowed(const struct oidc_config *cfg, const char *alg)
{
	for (size_t i = 0; i < cfg->n_algorithms; i++)
		if (cfg->algorithms[i] && strcmp(cfg->algorithms[i], alg) == 0)
			return true;
	return false;
}

/* typ: absent, JWT or at+jwt (RFC 9068), "application/" optional, any case. */
static bool typ_ok(const char *typ)
{
	if (strncasecmp(typ, "application/", 12) == 0)
		typ += 12;
	return strcasecmp(typ, "jwt") == 0 || strcasecmp(typ, "at+jwt") == 0;
}

static int numeric_date(const json_t *v, int64_t *out)
{
	double d;

	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < 0 || i > NUMERICDATE_MAX)
			return -ERANGE;
		*out = (int64_t)i;
		return 0;
	}
	if (!json_is_real(v))
		return -EINVAL;
	d = json_real_value(v);
	if (!isfinite(d) || d < 0 || d > (double)NUMERICDATE_MAX)
		return -ERANGE;
	*out = (int64_t)d; /* d >= 0: truncation is floor */
	return 0;
}

static bool text_ok(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max || strlen(s) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return false;
		/* C1 controls (U+0080..U+009F; jansson has checked the UTF-8) */
		if (c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] <= 0x9f)
			return false;
	}
	return true;
}

static int take_groups(const json_t *v, char ***out, size_t *n_out)
{
	size_t n = json_is_array(v) ? json_array_size(v) : 1, i;
	char **g;

	if (!json_is_array(v) && !json_is_string(v))
		return -EINVAL;
	if (n > OIDC_GROUPS_MAX)
		return -E2BIG;
	g = calloc(n ? n : 1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		const json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
		if (!json_is_string(e) || !text_ok(json_string_value(e), json_string_length(e), OIDC_GROUP_LEN_MAX))
			goto bad;
		g[i] = strdup(json_string_value(e));
		if (!g[i])
			goto bad;
	}
	*out = g;
	*n_out = n;
	return 0;
bad:
	for (size_t k = 0; k < i; k++)
		free(g[k]);
	free(g);
	return -EINVAL;
}

static bool aud_contains(const json_t *aud, const char *audience)
{
	size_t i;
	const json_t *v;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), audience) == 0;
	json_array_foreach(aud, i, v)
		if (json_is_string(v) && strcmp(json_string_value(v), audience) == 0)
			return true;
	return false;
}

/* The claims, after the signature verified. */
static enum oidc_result check_claims(const struct oidc_config *cfg, const uint8_t *payload, size_t len,
				     int64_t now, struct oidc_identity *id, char *reason, size_t reason_len)
{
	int64_t leeway = (int64_t)MIN(cfg->leeway, (uint64_t)LEEWAY_MAX), exp = 0, nbf = 0, iat = 0;
	const json_t *iss, *aud, *sub, *v, *groups = NULL;
	char when[32];
	json_t *c;
	enum oidc_result res = OIDC_REJECTED;
	int r;

	c = json_loadb((const char *)payload, len, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(c)) {
		oidc_say(reason, reason_len, "token payload is not a JSON object");
		goto out;
	}
	iss = json_object_get(c, "iss");
	if (!json_is_string(iss)) {
		oidc_say(reason, reason_len, "token has no issuer (iss)");
		goto out;
	}
	if (strcmp(json_string_value(iss), cfg->issuer) != 0) {
		oidc_say(reason, reason_len, "wrong issuer");
		goto out;
	}
	aud = json_object_get(c, "aud");
	if (!json_is_string(aud) && !json_is_array(aud)) {
		oidc_say(reason, reason_len, "token has no audience (aud)");
		goto out;
	}
	if (!aud_contains(aud, cfg->audience)) {
		oidc_say(reason, reason_len, "wrong audience");
		goto out;
	}
	v = json_object_get(c, "exp");
	if (!v) {
		oidc_say(reason, reason_len, "token has no expiry (exp)");
		goto out;
	}
	if (numeric_date(v, &exp) < 0) {
		oidc_say(reason, reason_len, "token exp is not a valid date");
		goto out;
	}
	if (now >= exp + leeway) {
		format_rfc3339(exp * 1000000, when, sizeof(when));
		oidc_say(reason, reason_len, "token expired at %s", when);
		goto out;
	}
	v = json_object_get(c, "nbf");
	if (v && numeric_date(v, &nbf) < 0) {
		oidc_say(reason, reason_len, "token nbf is not a valid date");
		goto out;
	}
	if (v && nbf > now + leeway) {
		format_rfc3339(nbf * 1000000, when, sizeof(when));
		oidc_say(reason, reason_len, "token not valid before %s", when);
		goto out;
	}
	v = json_object_get(c, "iat");
	if (v && numeric_date(v, &iat) < 0) {
		oidc_say(reason, reason_len, "token iat is not a valid date");
		goto out;
	}
	if (v && iat > now + leeway) {
		format_rfc3339(iat * 1000000, when, sizeof(when));
		oidc_say(reason, reason_len, "token issued in the future (iat %s)", when);
		goto out;
	}
	sub = json_object_get(c, "sub");
	if (!json_is_string(sub) || json_string_length(sub) == 0) {
		oidc_say(reason, reason_len, "token has no subject (sub)");
		goto out;
	}
	if (!text_ok(json_string_value(sub), json_string_length(sub), OIDC_SUBJECT_MAX)) {
		oidc_say(reason, reason_len, "token subject is longer than %d bytes or has control characters",
		    OIDC_SUBJECT_MAX);
		goto out;
	}
	if (cfg->groups_claim) {
		groups = json_object_get(c, cfg->groups_claim);
		if (json_is_null(groups))
			groups = NULL;
	}
	*id = (struct oidc_identity){ .exp = exp, .nbf = nbf, .iat = iat };
	if (groups) {
		r = take_groups(groups, &id->groups, &id->n_groups);
		if (r == -ENOMEM) {
			oidc_say(reason, reason_len, "out of memory");
			res = OIDC_UNAVAILABLE;
			goto out;
		}
		if (r < 0) {
			oidc_say(reason, reason_len,
			    r == -E2BIG ? "groups claim has more than %d entries"
					: "groups claim is not a string or an array of strings of 1 to %d bytes "
					  "without control characters",
			    r == -E2BIG ? OIDC_GROUPS_MAX : OIDC_GROUP_LEN_MAX);
			goto out;
		}
	}
	id->subject = strdup(json_string_value(sub));
	id->issuer = strdup(cfg->issuer);
	if (!id->subject || !id->issuer) {
		oidc_identity_clear(id);
		oidc_say(reason, reason_len, "out of memory");
		res = OIDC_UNAVAILABLE;
		goto out;
	}
	res = OIDC_OK;
out:
	json_decref(c);
	return res;
}

enum oidc_result oidc_verify(struct oidc_store *s, const struct oidc_config *cfg, const char *token,
			     int64_t now_s, struct oidc_identity *out, char *reason, size_t reason_len)
{
	struct jws j = { 0 };
	const struct jose_key *key = NULL, *keys = NULL;
	struct oidc_identity id = { 0 };
	const json_t *h;
	const char *why = NULL, *alg_s, *kid = NULL;
	char q[300], err[300];
	enum jose_alg alg;
	enum oidc_result res = OIDC_REJECTED;
	enum pick pk;
	size_t n_fit = 0, n_keys = 0;
	int r;

	oidc_say(reason, reason_len, "%s", "");
	if (!s || !cfg || !cfg->issuer || !cfg->audience || !out) {
		oidc_say(reason, reason_len, "token verification is not configured");
		return OIDC_UNAVAILABLE;
	}
	/* Size first: nothing else looks at an oversized token. */
	if (!token || strnlen(token, OIDC_TOKEN_MAX + 1) > OIDC_TOKEN_MAX) {
		if (token)
			oidc_say(reason, reason_len, "token larger than %d bytes", OIDC_TOKEN_MAX);
		else
			oidc_say(reason, reason_len, "no token");
		return OIDC_REJECTED;
	}
	if (jws_split(token, &j, &why) < 0) {
		oidc_say(reason, reason_len, "%s", why ? why : "malformed token");
		return OIDC_REJECTED;
	}
	h = json_object_get(j.header, "alg");
	alg_s = json_string_value(h);
	if (!alg_s) {
		oidc_say(reason, reason_len, "token header has no alg");
		goto out;
	}
	if (strcasecmp(alg_s, "none") == 0) {
		oidc_say(reason, reason_len, "algorithm none not allowed");
		goto out;
	}
	if (strncasecmp(alg_s, "HS", 2) == 0) {
		oidc_say(reason, reason_len, "algorithm %s not allowed (symmetric algorithms are never accepted)",
		    printable(alg_s, q, sizeof(q)));
		goto out;
	}
	alg = jose_alg_from_name(alg_s);
	if (!alg) {
		oidc_say(reason, reason_len, "algorithm %s not supported", printable(alg_s, q, sizeof(q)));
		goto out;
	}
	if (!alg_allowed(cfg, alg_s)) {
		oidc_say(reason, reason_len, "algorithm %s not allowed by configuration", alg_s);
		goto out;
	}
	if (j.sig_len == 0) {
		oidc_say(reason, reason_len, "token has no signature");
		goto out;
	}
	if (json_object_get(j.header, "crit")) {
		oidc_say(reason, reason_len, "crit header not supported");
		goto out;
	}
	h = json_object_get(j.header, "typ");
	if (h && (!json_is_string(h) || !typ_ok(json_string_value(h)))) {
		oidc_say(reason, reason_len, "token type %s not accepted (expected JWT or at+jwt)",
		    json_is_string(h) ? printable(json_string_value(h), q, sizeof(q)) : "(not a string)");
		goto out;
	}
	if (json_object_get(j.header, "cty")) {
		oidc_say(reason, reason_len, "cty header not supported (nested tokens are not accepted)");
		goto out;
	}
	h = json_object_get(j.header, "kid");
	if (h) {
		if (!json_is_string(h) || json_string_length(h) > OIDC_KID_MAX ||
		    strlen(json_string_value(h)) != json_string_length(h)) {
			oidc_say(reason, reason_len, "token kid is not a string of at most %d bytes", OIDC_KID_MAX);
			goto out;
		}
		kid = json_string_value(h);
	}
	/* jku, x5u, jwk, x5c and x5t are not looked at: the key comes from the
	 * configured issuer's set only. */

	r = oidc_store_keys(s, cfg->issuer, cfg->ca_file, now_s, &keys, &n_keys, err, sizeof(err));
	if (r < 0) {
		oidc_say(reason, reason_len, "issuer keys unavailable: %s", err);
		res = OIDC_UNAVAILABLE;
		goto out;
	}
	pk = pick_key(keys, n_keys, alg, kid, &key, &n_fit);
	if (pk == PICK_UNKNOWN_KID || pk == PICK_NONE_FITS) {
		/* Maybe the issuer rotated its keys: refetch, rate-limited. */
		r = oidc_store_refetch(s, cfg->issuer, cfg->ca_file, now_s, err, sizeof(err));
		if (r < 0) {
			oidc_say(reason, reason_len, "issuer keys unavailable: %s", err);
			res = OIDC_UNAVAILABLE;
			goto out;
		}
		if (r > 0) {
			r = oidc_store_keys(s, cfg->issuer, cfg->ca_file, now_s, &keys, &n_keys, err, sizeof(err));
			if (r < 0) {
				oidc_say(reason, reason_len, "issuer keys unavailable: %s", err);
				res = OIDC_UNAVAILABLE;
				goto out;
			}
			pk = pick_key(keys, n_keys, alg, kid, &key, &n_fit);
		}
	}
	switch (pk) {
	case PICK_OK:
		break;
	case PICK_UNKNOWN_KID:
		oidc_say(reason, reason_len, "unknown key id \"%s\"", printable(kid, q, sizeof(q)));
		goto out;
	case PICK_KID_MISFIT:
		oidc_say(reason, reason_len, "algorithm %s does not fit key \"%s\"", alg_s,
		    printable(kid, q, sizeof(q)));
		goto out;
	case PICK_NONE_FITS:
		oidc_say(reason, reason_len, "no key of the issuer fits algorithm %s", alg_s);
		goto out;
	case PICK_AMBIGUOUS:
		oidc_say(reason, reason_len, "token has no key id and %zu keys of the issuer fit algorithm %s",
		    n_fit, alg_s);
		goto out;
	}
	switch (jose_verify(alg, key->pkey, j.signing_input, j.signing_input_len, j.sig, j.sig_len)) {
	case 0:
		break;
	case -EBADMSG:
		oidc_say(reason, reason_len, "signature does not verify");
		goto out;
	default:
		oidc_say(reason, reason_len, "signature could not be checked");
		res = OIDC_UNAVAILABLE;
		goto out;
	}
	res = check_claims(cfg, j.payload, j.payload_len, now_s, &id, reason, reason_len);
	if (res != OIDC_OK)
		goto out;
	snprintf(id.alg, sizeof(id.alg), "%s", alg_s);
	snprintf(id.kid, sizeof(id.kid), "%s", kid ? kid : "");
	*out = id;
out:
	jws_clear(&j);
	return res;
}

