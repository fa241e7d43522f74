/* Shared by the section loaders (conf_*.c): the state of one load and the
 * helpers that turn an INI entry into a typed value or a reported error.
 * Every helper returns true when the value was accepted; otherwise it has
 * reported "FILE:LINE: invalid KEY ... in [SECTION]; expected ..." and left
 * the destination alone. Internal to policy/. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "policy/diag.h"
#include "policy/ini.h"
#include "policy/policy.h"

struct loader {
	struct policy *p;
	const struct ini_doc *doc;
	struct diag *d;
	const struct ini_section *s; /* the section being loaded */
	char label[INI_LABEL_MAX];   /* "[connection orders-pg]" */
	bool oom;
};

/* A key of a section: its name, whether it must be present, and what its
 * value is (used in "missing" and "invalid" messages). Tables list keys in
 * the order sluice.conf(5) documents them. */
struct key_def {
	const char *name;
	bool required;
	const char *expect;
};

/* Begin a section: sets L->s, L->label and fills *origin (unless NULL). */
void ld_begin(struct loader *L, const struct ini_section *s, struct pol_origin *origin);
/* The section [kind name] of the document (for cross-reference checks). */
const struct ini_section *ld_find_section(const struct loader *L, const char *kind, const char *name);
/* The line key was written on in s, or the section's line. */
unsigned ld_key_line(const struct ini_section *s, const char *key);
void ld_err(struct loader *L, unsigned line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Index of e->key in keys, or -1 after reporting it as unknown. */
int ld_key(struct loader *L, const struct ini_entry *e, const struct key_def *keys, size_t n);
/* Report each required key whose bit is not in seen. */
void ld_require(struct loader *L, const struct key_def *keys, size_t n, uint64_t seen);
/* "invalid KEY "VALUE" in [SECTION]; expected EXPECT" */
void ld_invalid(struct loader *L, const struct ini_entry *e, const char *expect);

bool ld_string(struct loader *L, const struct ini_entry *e, const char *expect, size_t max, char **dst);
bool ld_word(struct loader *L, const struct ini_entry *e, const char *expect, size_t max, char **dst);
bool ld_path(struct loader *L, const struct ini_entry *e, char **dst);
bool ld_unix_name(struct loader *L, const struct ini_entry *e, char **dst);
bool ld_u32(struct loader *L, const struct ini_entry *e, uint32_t min, uint32_t max, uint32_t *dst);
bool ld_size(struct loader *L, const struct ini_entry *e, uint64_t min, uint64_t max, uint32_t *dst);
bool ld_duration(struct loader *L, const struct ini_entry *e, uint64_t min, uint64_t max, uint64_t *dst);
/* names: space separated list for the message; from: name -> value or -1. */
bool ld_enum(struct loader *L, const struct ini_entry *e, const char *names,
	     int (*from)(const char *), int *dst);
/* Split the value into words (see list_split); reports unterminated quotes
 * and too many items. allow_empty: an empty value is an empty list. */
bool ld_list(struct loader *L, const struct ini_entry *e, bool allow_empty, char ***items, size_t *n);
bool ld_principals(struct loader *L, const struct ini_entry *e, bool allow_empty, struct principal_list *dst);

/* String defaults; record oom on failure. */
void ld_default(struct loader *L, char **dst, const char *value);

/* Section loaders, one per kind; each fills the element given. */
void conf_agent_defaults(struct loader *L, struct pol_agent *a);
void conf_agent(struct loader *L, const struct ini_section *s, struct pol_agent *a);
void conf_nss_defaults(struct loader *L, struct pol_nss *n);
void conf_nss(struct loader *L, const struct ini_section *s, struct pol_nss *n);
void conf_oidc(struct loader *L, const struct ini_section *s, struct pol_oidc *o);
void conf_identity(struct loader *L, const struct ini_section *s, struct pol_identity *id);
void conf_connection(struct loader *L, const struct ini_section *s, struct pol_connection *c);
void conf_access(struct loader *L, const struct ini_section *s, struct pol_access *a);
void conf_guardrail(struct loader *L, const struct ini_section *s, struct pol_guardrail *g);
void conf_mask(struct loader *L, const struct ini_section *s, struct pol_mask *m);

/* "a b c": the names of the connections, for "expected one of". */
void conn_names(const struct policy *p, char *buf, size_t n);

/* Cross references, once every section is loaded. */
void conf_check_identities(struct loader *L);
void conf_check_access(struct loader *L);
void conf_check_rules(struct loader *L);

/* Releasing what the loaders filled (policy_free). */
void conf_free_oidc(struct pol_oidc *o);
void conf_free_identity(struct pol_identity *id);
void conf_free_connection(struct pol_connection *c);
void conf_free_access(struct pol_access *a);
void conf_free_mask(struct pol_mask *m);
void str_list_release(struct str_list *l);
