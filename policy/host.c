/* The host's own accounts and groups, and the check that a service identity
 * published through NSS does not shadow them. See host.h. */
#include "config.h"
#include "policy/host.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "policy/diag.h"

#define HOST_FILE_MAX (64u << 20)
#define HOST_ENTRIES_MAX 1000000
#define HOST_LINE_START 4096
#define HOST_LINE_MAX (4u << 20) /* one entry (a group with many members) */

bool nss_name_valid(const char *s)
{
	size_t len = s ? strlen(s) : 0;

	if (len == 0 || len > NSS_NAME_MAX || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct host_entry *)a)->name, ((const struct host_entry *)b)->name);
}

static int by_id(const void *a, const void *b)
{
	uint32_t x = ((const struct host_entry *)a)->id, y = ((const struct host_entry *)b)->id;

	return x < y ? -1 : x > y;
}

void host_ids_release(struct host_ids *h)
{
	for (size_t i = 0; h && i < h->n; i++)
		free(h->by_name[i].name);
	if (h) {
		free(h->by_name);
		free(h->by_id);
		*h = (struct host_ids){ 0 };
	}
}

/* The next entry of f: 0 with *name and *id, 1 at the end, or -errno. The
 * buffer grows on ERANGE (glibc re-reads the same line then). */
static int next_entry(FILE *f, bool group, char **buf, size_t *len, const char **name, uint32_t *id)
{
	for (;;) {
		struct passwd pw, *pwp = NULL;
		struct group gr, *grp = NULL;
		int r = group ? fgetgrent_r(f, &gr, *buf, *len, &grp) : fgetpwent_r(f, &pw, *buf, *len, &pwp);

		if (r == 0) {
			*name = group ? gr.gr_name : pw.pw_name;
			*id = group ? gr.gr_gid : pw.pw_uid;
			return 0;
		}
		if (r == ENOENT)
			return 1;
		if (r != ERANGE)
			return -r;
		if (*len >= HOST_LINE_MAX)
			return -EFBIG;
		char *nb = realloc(*buf, *len * 2);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*len *= 2;
	}
}

int host_ids_load(const char *path, bool group, struct host_ids *out)
{
	struct host_ids h = { 0 };
	size_t cap = 0, len = HOST_LINE_START;
	char *buf = malloc(len);
	FILE *f = fopen(path, "re");
	struct stat st;
	int r = 0;

	if (!f || !buf) {
		r = f ? -ENOMEM : -errno;
		goto out;
	}
	if (fstat(fileno(f), &st) < 0) {
		r = -errno;
		goto out;
	}
	if (st.st_size > HOST_FILE_MAX) {
		r = -EFBIG;
		goto out;
	}
	for (;;) {
		const char *name;
		uint32_t id;

		r = next_entry(f, group, &buf, &len, &name, &id);
		if (r != 0)
			break;
		if (h.n == cap) {
			struct host_entry *v;
			if (cap >= HOST_ENTRIES_MAX) {
				r = -EFBIG;
				break;
			}
			cap = cap ? cap * 2 : 64;
			v = realloc(h.by_name, cap * sizeof(*v));
			if (!v) {
				r = -ENOMEM;
				break;
			}
			h.by_name = v;
		}
		h.by_name[h.n].name = strdup(name);
		if (!h.by_name[h.n].name) {
			r = -ENOMEM;
			break;
		}
		h.by_name[h.n++].id = id;
	}
	if (r < 0)
		goto out;
	r = 0;
	h.by_id = malloc((h.n ? h.n : 1) * sizeof(*h.by_id));
	if (!h.by_id) {
		r = -ENOMEM;
		goto out;
	}
	if (h.n) {
		qsort(h.by_name, h.n, sizeof(*h.by_name), by_name);
		memcpy(h.by_id, h.by_name, h.n * sizeof(*h.by_id));
		qsort(h.by_id, h.n, sizeof(*h.by_id), by_id);
	}
	*out = h;
	h = (struct host_ids){ 0 };
out:
	host_ids_release(&h);
	free(buf);
	if (f)
		fclose(f);
	return r;
}

const struct host_entry *host_ids_name(const struct host_ids *h, const char *name)
{
	struct host_entry key = { .name = (char *)name };

	if (!h->n)
		return NULL;
	return bsearch(&key, h->by_name, h->n, sizeof(key), by_name);
}

const struct host_entry *host_ids_id(const struct host_ids *h, uint32_t id)
{
	size_t lo = 0, hi = h->n;

	/* Lower bound: the first of equal ids, so the answer does not depend on
	 * how qsort ordered duplicates. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (h->by_id[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < h->n && h->by_id[lo].id == id ? &h->by_id[lo] : NULL;
}

static void check_identity(struct diag *d, const struct pol_identity *id, const struct host_ids *pw,
			   const char *pw_file, const struct host_ids *gr, const char *gr_file)
{
	size_t fi = diag_file_index(d->p, id->origin.file);
	unsigned uid_line = id->uid_origin.line ? id->uid_origin.line : id->origin.line;
	const struct host_entry *e;

	if ((e = host_ids_name(pw, id->name)))
		diag_add(d, fi, id->origin.line, "[identity %s] has uid = for NSS, but %s already has account "
			 "%s (uid %u); expected no uid = for a local account, or a name %s does not have",
			 id->name, pw_file, e->name, e->id, pw_file);
	if ((e = host_ids_id(pw, id->uid)))
		diag_add(d, fi, uid_line, "uid %u of [identity %s] belongs to %s in %s; expected a uid "
			 "no local account has", id->uid, id->name, e->name, pw_file);
	if ((e = host_ids_name(gr, id->name)))
		diag_add(d, fi, id->origin.line, "[identity %s] has uid = for NSS, and its own group %s "
			 "would shadow group %s (gid %u) in %s; expected a name %s does not have",
			 id->name, id->name, e->name, e->id, gr_file, gr_file);
	if ((e = host_ids_id(gr, id->uid)))
		diag_add(d, fi, uid_line, "uid %u of [identity %s] is also its own group's gid, which "
			 "belongs to group %s in %s; expected an id no local group has", id->uid, id->name,
			 e->name, gr_file);
}

size_t policy_check_host(const struct policy *p, const char *passwd_file, const char *group_file,
			 struct pol_errors *errs)
{
	struct pol_errors discard = { 0 };
	struct host_ids pw = { 0 }, gr = { 0 };
	bool any = false;
	struct diag d;
	size_t found;
	int r;

	if (!p)
		return 0;
	for (size_t i = 0; i < p->n_identities; i++)
		any |= p->identities[i].has_uid;
	if (!any)
		return 0;
	diag_init(&d, p);
	r = host_ids_load(passwd_file, false, &pw);
	if (r < 0)
		diag_add_path(&d, 0, passwd_file, "cannot read it to check the identities with uid =: %s",
			      strerror(-r));
	if (r == 0) {
		r = host_ids_load(group_file, true, &gr);
		if (r < 0)
			diag_add_path(&d, 0, group_file, "cannot read it to check the identities with uid =: %s",
				      strerror(-r));
	}
	for (size_t i = 0; r == 0 && i < p->n_identities; i++)
		if (p->identities[i].has_uid)
			check_identity(&d, &p->identities[i], &pw, passwd_file, &gr, group_file);
	host_ids_release(&pw);
	host_ids_release(&gr);
	found = diag_count(&d) + d.oom;
	/* On memory exhaustion errs holds fewer messages; found still says "refuse". */
	r = diag_finish(&d, errs ? errs : &discard);
	(void)r;
	pol_errors_clear(&discard);
	return found;
}
