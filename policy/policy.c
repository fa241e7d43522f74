/* Loading sluice.conf(5): read the files, hand each section to its loader,
 * check the cross references, and collect every error on the way. Also the
 * pure look-ups the agent asks (which access rule applies, what this version
 * cannot enforce yet). */
#include "config.h"
#include "policy/policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/classes.h"
#include "policy/diag.h"
#include "policy/files.h"
#include "policy/ini.h"
#include "policy/loader.h"
#include "policy/principal.h"

enum name_rule { NAME_NONE, NAME_OPTIONAL, NAME_REQUIRED };

enum kind {
	K_AGENT, K_OIDC, K_IDENTITY, K_CONNECTION, K_ACCESS, K_GUARDRAIL, K_MASK, K_NSS, K__COUNT,
};

static const struct {
	const char *kind;
	enum name_rule name;
	const char *usage;
} kinds[K__COUNT] = {
	[K_AGENT] = { "agent", NAME_NONE, "[agent]" },
	[K_OIDC] = { "oidc", NAME_OPTIONAL, "[oidc] or [oidc NAME]" },
	[K_IDENTITY] = { "identity", NAME_REQUIRED, "[identity ACCOUNT]" },
	[K_CONNECTION] = { "connection", NAME_REQUIRED, "[connection NAME]" },
	[K_ACCESS] = { "access", NAME_REQUIRED, "[access NAME]" },
	[K_GUARDRAIL] = { "guardrail", NAME_REQUIRED, "[guardrail CONNECTION]" },
	[K_MASK] = { "mask", NAME_REQUIRED, "[mask CONNECTION]" },
	[K_NSS] = { "nss", NAME_NONE, "[nss]" },
};

static int kind_of(const char *kind)
{
	for (int i = 0; i < K__COUNT; i++)
		if (strcmp(kinds[i].kind, kind) == 0)
			return i;
	return -1;
}

/* Whether the section's kind and name are acceptable; reports if not. */
static int section_kind(struct diag *d, const struct ini_section *s)
{
	char label[INI_LABEL_MAX];
	int k = kind_of(s->kind);

	if (k < 0) {
		diag_add(d, s->file_idx, s->line, "unknown section %s; expected one of: agent oidc identity "
			 "connection access guardrail mask nss", ini_section_label(s, label, sizeof(label)));
		return -1;
	}
	if (kinds[k].name == NAME_NONE && s->name) {
		diag_add(d, s->file_idx, s->line, "%s takes no name; expected %s",
			 ini_section_label(s, label, sizeof(label)), kinds[k].usage);
		return -1;
	}
	if (kinds[k].name == NAME_REQUIRED && !s->name) {
		diag_add(d, s->file_idx, s->line, "[%s] needs a name; expected %s", s->kind, kinds[k].usage);
		return -1;
	}
	return k;
}

static int build(struct policy *p, const struct ini_doc *doc, struct diag *d)
{
	struct loader L = { .p = p, .doc = doc, .d = d };
	size_t count[K__COUNT] = { 0 };

	for (size_t i = 0; i < doc->n; i++) {
		int k = section_kind(d, &doc->v[i]);
		if (k >= 0)
			count[k]++;
	}
	p->oidc = calloc(count[K_OIDC] + 1, sizeof(*p->oidc));
	p->identities = calloc(count[K_IDENTITY] + 1, sizeof(*p->identities));
	p->connections = calloc(count[K_CONNECTION] + 1, sizeof(*p->connections));
	p->access = calloc(count[K_ACCESS] + 1, sizeof(*p->access));
	p->guardrails = calloc(count[K_GUARDRAIL] + 1, sizeof(*p->guardrails));
	p->masks = calloc(count[K_MASK] + 1, sizeof(*p->masks));
	if (!p->oidc || !p->identities || !p->connections || !p->access || !p->guardrails || !p->masks)
		return -ENOMEM;
	conf_agent_defaults(&L, &p->agent);
	conf_nss_defaults(&L, &p->nss);
	for (size_t i = 0; i < doc->n && !L.oom; i++) {
		const struct ini_section *s = &doc->v[i];

		/* section_kind() reported the bad ones already. */
		switch (kind_of(s->kind)) {
		case K_AGENT:
			if (!s->name)
				conf_agent(&L, s, &p->agent);
			break;
		case K_OIDC:
			conf_oidc(&L, s, &p->oidc[p->n_oidc++]);
			break;
		case K_IDENTITY:
			if (s->name)
				conf_identity(&L, s, &p->identities[p->n_identities++]);
			break;
		case K_CONNECTION:
			if (s->name)
				conf_connection(&L, s, &p->connections[p->n_connections++]);
			break;
		case K_ACCESS:
			if (s->name)
				conf_access(&L, s, &p->access[p->n_access++]);
			break;
		case K_GUARDRAIL:
			if (s->name)
				conf_guardrail(&L, s, &p->guardrails[p->n_guardrails++]);
			break;
		case K_MASK:
			if (s->name)
				conf_mask(&L, s, &p->masks[p->n_masks++]);
			break;
		case K_NSS:
			if (!s->name) {
				conf_nss(&L, s, &p->nss);
				p->has_nss = true;
			}
			break;
		default:
			break;
		}
	}
	if (!L.oom) {
		conf_check_identities(&L);
		conf_check_access(&L);
		conf_check_rules(&L);
	}
	return L.oom ? -ENOMEM : 0;
}

static int add_file_name(struct policy *p, const char *name)
{
	char **v = realloc(p->files, (p->n_files + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	p->files = v;
	p->files[p->n_files] = strdup(name);
	if (!p->files[p->n_files])
		return -ENOMEM;
	p->n_files++;
	return 0;
}

static const char *read_error(int r)
{
	switch (r) {
	case -EFBIG:
		return "file larger than 1 MiB; expected a configuration file";
	case -EINVAL:
		return "not a regular file; expected a configuration file";
	default:
		return NULL;
	}
}

/* Read path and parse it into doc. -ENOMEM, or the read error (reported). */
static int read_one(struct policy *p, struct ini_doc *doc, struct diag *d, const char *path)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0, idx = p->n_files;
	int r;

	r = add_file_name(p, path);
	if (r < 0)
		return r;
	r = conf_read_file(path, INI_MAX_FILE_SIZE, &text, &len);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		const char *why = read_error(r);
		if (why)
			diag_add(d, idx, 0, "cannot read: %s", why);
		else
			diag_add(d, idx, 0, "cannot read: %s", strerror(-r));
		return r;
	}
	return ini_parse(doc, idx, text, len, d);
}

static int read_confd(struct policy *p, struct ini_doc *doc, struct diag *d, const char *path)
{
	_cleanup_free_ char *dir = confd_dir_for(path);
	char **names = NULL;
	size_t n = 0;
	int r, first_err = 0;

	if (!dir)
		return -ENOMEM;
	r = confd_list(dir, CONFD_MAX_FILES, &names, &n);
	if (r == -ENOENT)
		return 0; /* conf.d is optional */
	if (r == -ENOMEM)
		return r;
	if (r == -E2BIG) {
		diag_add_path(d, p->n_files, dir, "more than %d *.conf files; expected fewer", CONFD_MAX_FILES);
		return 0;
	}
	if (r < 0) {
		diag_add_path(d, p->n_files, dir, "cannot read directory: %s", strerror(-r));
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		char *file;

		if (asprintf(&file, "%s/%s", dir, names[i]) < 0) {
			r = -ENOMEM;
			break;
		}
		r = read_one(p, doc, d, file);
		free(file);
		if (r == -ENOMEM)
			break;
		if (r < 0 && first_err == 0)
			first_err = r;
		r = 0;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r < 0 ? r : first_err;
}

/* Shared tail of both loaders: build, hand over errors, decide. */
static int finish(struct policy *p, struct ini_doc *doc, struct diag *d, int read_r,
		  struct policy **out, struct pol_errors *errs)
{
	struct pol_errors discard = { 0 };
	int r = read_r == -ENOMEM ? read_r : build(p, doc, d);
	size_t n = diag_count(d);
	int fr;

	ini_doc_free(doc);
	fr = diag_finish(d, errs ? errs : &discard);
	pol_errors_clear(&discard);
	if (r == -ENOMEM || fr == -ENOMEM || d->oom) {
		policy_free(p);
		return -ENOMEM;
	}
	if (read_r < 0 || n > 0) {
		policy_free(p);
		return read_r < 0 ? read_r : -EINVAL;
	}
	*out = p;
	return 0;
}

int policy_load(const char *path, struct policy **out, struct pol_errors *errs)
{
	struct ini_doc doc = { 0 };
	struct policy *p;
	struct diag d;
	int r;

	if (!path || !out)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	diag_init(&d, p);
	r = read_one(p, &doc, &d, path);
	/* A main file that cannot be read is the answer; conf.d alone is no config. */
	if (r == 0)
		r = read_confd(p, &doc, &d, path);
	return finish(p, &doc, &d, r, out, errs);
}

int policy_load_string(const char *name, const char *text, struct policy **out, struct pol_errors *errs)
{
	struct ini_doc doc = { 0 };
	struct policy *p;
	struct diag d;
	int r;

	if (!name || !text || !out)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	diag_init(&d, p);
	r = add_file_name(p, name);
	if (r == 0)
		r = ini_parse(&doc, 0, text, strlen(text), &d);
	return finish(p, &doc, &d, r, out, errs);
}

struct policy *policy_free(struct policy *p)
{
	if (!p)
		return NULL;
	free(p->agent.runtime_dir);
	free(p->agent.database);
	free(p->agent.user);
	free(p->agent.approval_webhook);
	principal_list_release(&p->agent.admins);
	principal_list_release(&p->agent.approvers);
	for (size_t i = 0; i < p->n_oidc; i++)
		conf_free_oidc(&p->oidc[i]);
	free(p->oidc);
	for (size_t i = 0; i < p->n_identities; i++)
		conf_free_identity(&p->identities[i]);
	free(p->identities);
	for (size_t i = 0; i < p->n_connections; i++)
		conf_free_connection(&p->connections[i]);
	free(p->connections);
	for (size_t i = 0; i < p->n_access; i++)
		conf_free_access(&p->access[i]);
	free(p->access);
	for (size_t i = 0; i < p->n_guardrails; i++) {
		free(p->guardrails[i].connection);
		str_list_release(&p->guardrails[i].functions);
	}
	free(p->guardrails);
	for (size_t i = 0; i < p->n_masks; i++)
		conf_free_mask(&p->masks[i]);
	free(p->masks);
	free(p->nss.group_prefix);
	for (size_t i = 0; i < p->n_files; i++)
		free(p->files[i]);
	free(p->files);
	free(p);
	return NULL;
}

const struct pol_connection *policy_connection(const struct policy *p, const char *name)
{
	for (size_t i = 0; p && name && i < p->n_connections; i++)
		if (p->connections[i].name && strcmp(p->connections[i].name, name) == 0)
			return &p->connections[i];
	return NULL;
}

const struct pol_access *policy_access_for(const struct policy *p, const char *connection,
					   const struct caller_facts *c)
{
	const struct pol_access *best = NULL;

	for (size_t i = 0; p && connection && c && i < p->n_access; i++) {
		const struct pol_access *a = &p->access[i];

		if (!a->connection || strcmp(a->connection, connection) != 0)
			continue;
		if (!principal_list_matches(&a->allow, c))
			continue;
		/* Longest max_ttl first; on a tie the one written first. */
		if (!best || a->max_ttl > best->max_ttl)
			best = a;
	}
	return best;
}
