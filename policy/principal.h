/* Principals in lists (admins, approvers, allow): a bare name is a local
 * account, @name an IdP group carried by the caller's live session, %name a
 * local Unix group. Internal to policy/; matching is declared in policy.h. */
#pragma once
#include "policy/policy.h"

#define IDP_GROUP_MAX 255

/* Parse one list item into out (name malloc'ed). Returns 0, -EINVAL with
 * *why saying what was expected, -ENOMEM. */
int principal_parse(const char *tok, struct principal *out, const char **why) WUR;
void principal_list_release(struct principal_list *l);
/* Same kind and name. */
bool principal_equal(const struct principal *a, const struct principal *b);
