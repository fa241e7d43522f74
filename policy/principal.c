#include "config.h"
#include "policy/principal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "policy/value.h"

int principal_parse(const char *tok, struct principal *out, const char **why)
{
	enum principal_kind kind;
	const char *name = tok;
	char *dup;

	switch (tok[0]) {
	case '@':
		kind = PRINCIPAL_IDP_GROUP, name++;
		/* IdP group names are the IdP's business: any printable word. */
		if (!val_word(name, IDP_GROUP_MAX)) {
			*why = "expected @ followed by an IdP group name (1 to 255 printable bytes)";
			return -EINVAL;
		}
		break;
	case '%':
		kind = PRINCIPAL_UNIX_GROUP, name++;
		if (!val_unix_name(name)) {
			*why = "expected % followed by a local group name ([A-Za-z_][A-Za-z0-9_.-]*, at most 32 bytes)";
			return -EINVAL;
		}
		break;
	default:
		kind = PRINCIPAL_USER;
		if (!val_unix_name(name)) {
			*why = "expected a local account name ([A-Za-z_][A-Za-z0-9_.-]*, at most 32 bytes), "
			       "@idp-group or %unix-group";
			return -EINVAL;
		}
		break;
	}
	dup = strdup(name);
	if (!dup)
		return -ENOMEM;
	*out = (struct principal){ .kind = kind, .name = dup };
	return 0;
}

void principal_list_release(struct principal_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

bool principal_equal(const struct principal *a, const struct principal *b)
{
	return a->kind == b->kind && strcmp(a->name, b->name) == 0;
}

static bool in_set(const char *name, const char *const *set, size_t n)
{
	for (size_t i = 0; set && i < n; i++)
		if (set[i] && strcmp(set[i], name) == 0)
			return true;
	return false;
}

bool principal_list_matches(const struct principal_list *l, const struct caller_facts *c)
{
	if (!l || !c)
		return false;
	for (size_t i = 0; i < l->n; i++) {
		const struct principal *pr = &l->v[i];

		switch (pr->kind) {
		case PRINCIPAL_USER:
			if (c->user && strcmp(c->user, pr->name) == 0)
				return true;
			break;
		case PRINCIPAL_UNIX_GROUP:
			if (in_set(pr->name, c->unix_groups, c->n_unix_groups))
				return true;
			break;
		case PRINCIPAL_IDP_GROUP:
			if (in_set(pr->name, c->idp_groups, c->n_idp_groups))
				return true;
			break;
		}
	}
	return false;
}
