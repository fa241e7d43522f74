/* PostgreSQL identifier rules for [mask] keys and [access] schemas:
 * unquoted names are folded to lower case (ASCII only, as PostgreSQL does
 * for UTF-8), "Quoted" names are kept as written with "" standing for one
 * quote. A name longer than 63 bytes is an error (PostgreSQL would silently
 * truncate it, and the rule would then name something else). Internal to
 * policy/. */
#pragma once
#include "common/util.h"

#define IDENT_MAX 63 /* NAMEDATALEN - 1 */

/* Exactly one identifier. *out is malloc'ed. Returns 0, -EINVAL with *why
 * set, -ENOMEM. */
int ident_fold(const char *s, char **out, const char **why) WUR;
/* "schema.table.column": exactly three identifiers separated by dots
 * (dots inside quotes do not separate). Returns 0, -EINVAL with *why,
 * -ENOMEM; out[] untouched on failure. */
int ident_split3(const char *s, char *out[3], const char **why) WUR;
