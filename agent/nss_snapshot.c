/* Rendering and writing the NSS snapshot. See nss_snapshot.h. */
#include "config.h"
#include "agent/nss_snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int nss_group_name(const char *prefix, const char *claim, char out[NSS_NAME_MAX + 1])
{
	size_t pl = strlen(prefix), cl = strlen(claim);

	out[0] = '\0';
	if (cl == 0 || pl + cl > NSS_NAME_MAX)
		return -EINVAL;
	memcpy(out, prefix, pl);
	memcpy(out + pl, claim, cl + 1);
	if (!nss_name_valid(out)) {
		out[0] = '\0';
		return -EINVAL;
	}
	return 0;
}

/* A line being built in a fixed buffer: anything past NSS_LINE_MAX is an
 * overflow, reported once at the end. */
struct line {
	char v[NSS_LINE_MAX];
	size_t len;
	bool over;
};

static void put(struct line *l, const char *s)
{
	size_t n = strlen(s);

	if (l->over || n > sizeof(l->v) - l->len) {
		l->over = true;
		return;
	}
	memcpy(l->v + l->len, s, n);
	l->len += n;
}

static void put_id(struct line *l, uint32_t id)
{
	char num[16];

	snprintf(num, sizeof(num), ":%u", id);
	put(l, num);
}

static int finish(struct buf *out, struct line *l)
{
	put(l, "\n");
	if (l->over)
		return -E2BIG;
	return buf_append(out, l->v, l->len);
}

static bool field_ok(const char *s)
{
	return s && *s && !strpbrk(s, ":,\n");
}

int nss_render_user(struct buf *out, const struct nss_user *u)
{
	struct line l = { .len = 0 };

	if (!nss_name_valid(u->name) || !u->home || u->home[0] != '/' || strpbrk(u->home, ":\n"))
		return -EINVAL;
	put(&l, u->name);
	put(&l, ":x");
	put_id(&l, u->uid);
	put_id(&l, u->uid);
	put(&l, ":" NSS_GECOS ":");
	put(&l, u->home);
	put(&l, ":" NSS_SHELL);
	return finish(out, &l);
}

int nss_render_group(struct buf *out, const struct nss_group *g)
{
	struct line l = { .len = 0 };

	if (!nss_name_valid(g->name))
		return -EINVAL;
	put(&l, g->name);
	put(&l, ":x");
	put_id(&l, g->gid);
	put(&l, ":");
	for (size_t i = 0; i < g->n_members; i++) {
		if (!field_ok(g->members[i]))
			return -EINVAL;
		if (i)
			put(&l, ",");
		put(&l, g->members[i]);
	}
	return finish(out, &l);
}

static int pair_cmp(const void *a, const void *b)
{
	const struct nss_pair *x = a, *y = b;
	int c = strcmp(x->group, y->group);

	return c ? c : strcmp(x->user, y->user);
}

int nss_groups_collect(struct nss_pair *pairs, size_t n, struct nss_groups *out)
{
	struct nss_groups g = { 0 };

	if (n) {
		qsort(pairs, n, sizeof(*pairs), pair_cmp);
		/* At most one group and one member per pair. */
		g.v = calloc(n, sizeof(*g.v));
		g.members = calloc(n, sizeof(*g.members));
		if (!g.v || !g.members) {
			nss_groups_release(&g);
			return -ENOMEM;
		}
	}
	for (size_t i = 0, m = 0; i < n; i++) {
		struct nss_group *cur = g.n ? &g.v[g.n - 1] : NULL;

		if (!cur || strcmp(cur->name, pairs[i].group) != 0) {
			cur = &g.v[g.n++];
			cur->name = pairs[i].group;
			cur->members = &g.members[m];
		} else if (strcmp(cur->members[cur->n_members - 1], pairs[i].user) == 0) {
			continue; /* the same account in two sessions */
		}
		g.members[m++] = pairs[i].user;
		cur->n_members++;
	}
	*out = g;
	return 0;
}

void nss_groups_release(struct nss_groups *g)
{
	free(g->v);
	free(g->members);
	*g = (struct nss_groups){ 0 };
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int nss_write_file(const char *dir, const char *name, const void *data, size_t len, struct stat *st)
{
	_cleanup_free_ char *tmp = NULL, *dst = NULL;
	_cleanup_close_ int fd = -1;
	struct stat sb;
	int r;

	if (len > NSS_FILE_MAX)
		return -EFBIG;
	if (asprintf(&tmp, "%s/.%s.XXXXXX", dir, name) < 0 || asprintf(&dst, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = write_all(fd, data, len);
	if (r == 0 && (fsync(fd) < 0 || fchmod(fd, 0644) < 0 || fstat(fd, &sb) < 0))
		r = -errno;
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0) {
		(void)unlink(tmp);
		return r;
	}
	if (st)
		*st = sb;
	return 0;
}

void nss_clean_temp_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (strncmp(e->d_name, ".passwd.", 8) == 0 || strncmp(e->d_name, ".group.", 7) == 0)
			(void)unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
}
