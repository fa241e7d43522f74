/* [oidc] / [oidc NAME] (the token issuers sluiced trusts) and
 * [identity ACCOUNT] (which OIDC subject is which local account). */
#include "config.h"
#include "policy/loader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/classes.h"
#include "policy/host.h"
#include "policy/value.h"

#define AUDIENCE_MAX 1024
#define CLAIM_MAX 256
#define SUBJECT_MAX 1024
#define UID_MIN 1000
#define UID_MAX 2147483646u
#define UID_NOBODY 65534
#define HOME_MAX 1024

enum { O_ISSUER, O_AUDIENCE, O_CA_FILE, O_ALGORITHMS, O_LEEWAY, O_GROUPS_CLAIM, O_MAX_SESSION };
static const struct key_def oidc_keys[] = {
	[O_ISSUER] = { "issuer", true, "the issuer URL, e.g. https://idp.example.com" },
	[O_AUDIENCE] = { "audience", true, "the audience tokens must carry, e.g. urn:sluice" },
	[O_CA_FILE] = { "ca_file", false, "an absolute path" },
	[O_ALGORITHMS] = { "algorithms", false, "JWS algorithms" },
	[O_LEEWAY] = { "leeway", false, "a duration" },
	[O_GROUPS_CLAIM] = { "groups_claim", false, "a claim name" },
	[O_MAX_SESSION] = { "max_session", false, "a duration" },
};

static void algorithms(struct loader *L, const struct ini_entry *e, struct str_list *dst)
{
	char **items;
	size_t n;
	bool ok = true;

	if (!ld_list(L, e, false, &items, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(items[i], "none") == 0 || strncmp(items[i], "HS", 2) == 0) {
			ld_err(L, e->line, "algorithm \"%.40s\" is not allowed in %s: sluice verifies "
			       "signatures with the issuer's public keys only; expected one of: %s",
			       items[i], L->label, jws_alg_names());
			ok = false;
		} else if (!jws_alg_allowed(items[i])) {
			ld_err(L, e->line, "unknown algorithm \"%.40s\" in %s; expected one of: %s",
			       items[i], L->label, jws_alg_names());
			ok = false;
		} else {
			for (size_t j = 0; j < i; j++)
				if (strcmp(items[j], items[i]) == 0) {
					ld_err(L, e->line, "algorithm %s listed twice in %s", items[i], L->label);
					ok = false;
				}
		}
	}
	if (!ok) {
		list_items_free(items, n);
		return;
	}
	str_list_release(dst);
	dst->v = items;
	dst->n = n;
}

static void default_algorithms(struct loader *L, struct str_list *dst)
{
	if (dst->v)
		return;
	dst->v = calloc(2, sizeof(*dst->v));
	if (!dst->v) {
		L->oom = true;
		return;
	}
	dst->v[0] = strdup("RS256");
	dst->v[1] = strdup("ES256");
	dst->n = 2;
	if (!dst->v[0] || !dst->v[1])
		L->oom = true;
}

void conf_oidc(struct loader *L, const struct ini_section *s, struct pol_oidc *o)
{
	uint64_t seen = 0;

	ld_begin(L, s, &o->origin);
	if (s->name) {
		if (!name_is_safe(s->name, SAFE_NAME_MAX))
			ld_err(L, s->line, "invalid issuer name in %s; expected [oidc NAME] with NAME of "
			       "1 to 64 bytes of [A-Za-z0-9._-]", L->label);
		ld_default(L, &o->name, s->name);
	}
	o->leeway = 60;
	o->max_session = 8 * 3600;
	for (size_t i = 0; i < s->n; i++) {
		const struct ini_entry *e = &s->v[i];
		int k = ld_key(L, e, oidc_keys, ARRAY_SIZE(oidc_keys));
		const char *why;

		if (k >= 0)
			seen |= UINT64_C(1) << k;
		switch (k) {
		case O_ISSUER:
			if (val_issuer(e->value, &why) < 0) {
				ld_err(L, e->line, "invalid issuer \"%.200s\" in %s: %s", e->value, L->label, why);
				break;
			}
			ld_default(L, &o->issuer, e->value);
			break;
		case O_AUDIENCE:
			(void)ld_word(L, e, "one word (no blanks), e.g. urn:sluice", AUDIENCE_MAX, &o->audience);
			break;
		case O_CA_FILE:
			(void)ld_path(L, e, &o->ca_file);
			break;
		case O_ALGORITHMS:
			algorithms(L, e, &o->algorithms);
			break;
		case O_LEEWAY:
			(void)ld_duration(L, e, 0, 300, &o->leeway);
			break;
		case O_GROUPS_CLAIM:
			(void)ld_word(L, e, "a claim name (one word), e.g. groups", CLAIM_MAX, &o->groups_claim);
			break;
		case O_MAX_SESSION:
			(void)ld_duration(L, e, 60, 7 * 86400, &o->max_session);
			break;
		default:
			break;
		}
	}
	ld_require(L, oidc_keys, ARRAY_SIZE(oidc_keys), seen);
	ld_default(L, &o->ca_file, "/etc/ssl/certs/ca-certificates.crt");
	ld_default(L, &o->groups_claim, "groups");
	default_algorithms(L, &o->algorithms);
}

enum { I_SUBJECT, I_ISSUER, I_UID, I_HOME };
static const struct key_def identity_keys[] = {
	[I_SUBJECT] = { "subject", true, "the OIDC subject (sub claim) of this account's tokens" },
	[I_ISSUER] = { "issuer", false, "an [oidc NAME] name" },
	[I_UID] = { "uid", false, "a number" },
	[I_HOME] = { "home", false, "an absolute path" },
};

void conf_identity(struct loader *L, const struct ini_section *s, struct pol_identity *id)
{
	const struct ini_entry *home = NULL;
	uint64_t seen = 0;

	ld_begin(L, s, &id->origin);
	if (!val_unix_name(s->name))
		ld_err(L, s->line, "invalid account name in %s; expected [identity ACCOUNT] with a local "
		       "account name ([A-Za-z_][A-Za-z0-9_.-]*, at most 32 bytes)", L->label);
	else if (strcmp(s->name, "root") == 0)
		/* A token must never be worth a root session (admin of every grant). */
		ld_err(L, s->line, "%s binds a token to root; expected a service account", L->label);
	ld_default(L, &id->name, s->name);
	for (size_t i = 0; i < s->n; i++) {
		const struct ini_entry *e = &s->v[i];
		int k = ld_key(L, e, identity_keys, ARRAY_SIZE(identity_keys));

		if (k >= 0)
			seen |= UINT64_C(1) << k;
		switch (k) {
		case I_SUBJECT:
			(void)ld_string(L, e, "the OIDC subject, 1 to 1024 bytes", SUBJECT_MAX, &id->subject);
			break;
		case I_ISSUER:
			if (!name_is_safe(e->value, SAFE_NAME_MAX))
				ld_invalid(L, e, "the NAME of an [oidc NAME] section");
			else
				ld_default(L, &id->issuer, e->value);
			break;
		case I_UID:
			if (strcmp(e->value, "65534") == 0) {
				ld_invalid(L, e, "a uid other than 65534 (nobody)");
				break;
			}
			if (ld_u32(L, e, UID_MIN, UID_MAX, &id->uid)) {
				id->has_uid = true;
				id->uid_origin = (struct pol_origin){ id->origin.file, e->line };
			}
			break;
		case I_HOME:
			home = e;
			/* It becomes a field of a passwd line. */
			if (strchr(e->value, ':') || strlen(e->value) > HOME_MAX)
				ld_invalid(L, e, "an absolute path of at most 1024 bytes without a colon");
			else
				(void)ld_path(L, e, &id->home);
			break;
		default:
			break;
		}
	}
	ld_require(L, identity_keys, ARRAY_SIZE(identity_keys), seen);
	if (id->has_uid && val_unix_name(s->name) && !nss_name_valid(s->name))
		ld_err(L, s->line, "%s has uid =, so NSS publishes its name; expected a name of "
		       "[a-z_][a-z0-9_.-]* (lower case)", L->label);
	if (home && !(seen & (UINT64_C(1) << I_UID)))
		ld_err(L, home->line, "home in %s only applies to accounts NSS provides; expected uid = "
		       "as well, or no home", L->label);
	ld_default(L, &id->home, "/nonexistent");
}

static const struct pol_oidc *find_oidc(const struct policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_oidc; i++) {
		const char *n = p->oidc[i].name;
		if ((!n && !name) || (n && name && strcmp(n, name) == 0))
			return &p->oidc[i];
	}
	return NULL;
}

static void oidc_names(const struct policy *p, char *buf, size_t n)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < p->n_oidc && off < n; i++) {
		int w;
		if (!p->oidc[i].name)
			continue;
		w = snprintf(buf + off, n - off, "%s%s", off ? " " : "", p->oidc[i].name);
		if (w < 0)
			break;
		off += (size_t)w;
	}
}

/* Identities refer to issuers; (issuer, subject) and uid are unique. */
void conf_check_identities(struct loader *L)
{
	const struct policy *p = L->p;
	char names[512];

	oidc_names(p, names, sizeof(names));
	for (size_t i = 0; i < p->n_identities; i++) {
		const struct pol_identity *id = &p->identities[i];
		const struct ini_section *s = ld_find_section(L, "identity", id->name);

		if (!s)
			continue;
		ld_begin(L, s, NULL);
		if (id->issuer && !find_oidc(p, id->issuer)) {
			ld_err(L, ld_key_line(s, "issuer"), "issuer \"%s\" of %s is not defined; expected the "
			       "NAME of an [oidc NAME] section%s%s", id->issuer, L->label,
			       names[0] ? ", one of: " : " (there are none)", names);
		} else if (!id->issuer && !find_oidc(p, NULL)) {
			if (names[0])
				ld_err(L, s->line, "%s uses the default issuer but there is no [oidc] section; "
				       "expected issuer = one of: %s", L->label, names);
			else
				ld_err(L, s->line, "%s needs an issuer but there is no [oidc] section; "
				       "expected an [oidc] section with issuer and audience", L->label);
		}
		for (size_t j = 0; j < i; j++) {
			const struct pol_identity *o = &p->identities[j];
			bool same_issuer = (!o->issuer && !id->issuer) ||
					   (o->issuer && id->issuer && strcmp(o->issuer, id->issuer) == 0);
			if (same_issuer && id->subject && o->subject && strcmp(o->subject, id->subject) == 0)
				ld_err(L, ld_key_line(s, "subject"), "subject of %s is already bound to [identity %s] "
				       "at %s:%u; expected each subject of an issuer to name one account",
				       L->label, o->name, o->origin.file, o->origin.line);
			if (id->has_uid && o->has_uid && id->uid == o->uid)
				ld_err(L, ld_key_line(s, "uid"), "uid %u of %s is already used by [identity %s]; "
				       "expected a distinct uid", id->uid, L->label, o->name);
		}
	}
}

void conf_free_oidc(struct pol_oidc *o)
{
	free(o->name);
	free(o->issuer);
	free(o->audience);
	free(o->ca_file);
	str_list_release(&o->algorithms);
	free(o->groups_claim);
}

void conf_free_identity(struct pol_identity *id)
{
	free(id->name);
	free(id->subject);
	free(id->issuer);
	free(id->home);
}
