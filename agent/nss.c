/* Publishing the NSS snapshot. See nss.h. */
#include "config.h"
#include "agent/nss.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/nss_gids.h"
#include "agent/nss_snapshot.h"
#include "agent/session.h"
#include "common/log.h"

/* Names recorded as left out, remembered so each is recorded once per run;
 * past this many the rest are not recorded (the IdP decides the names). */
#define RECORDED_MAX 1024
/* After a failure that may pass (a database lock, an unreadable
 * /etc/group, a full disk), publish again this much later. */
#define RETRY_US 5000000

struct host_file {
	const char *path;
	bool group;
	bool loaded;
	struct stat st;
	struct host_ids ids;
};

/* What is on disk under one name, so an unchanged text is not rewritten. */
struct snap_file {
	const char *name;
	struct buf text;
	bool written;
	dev_t dev;
	ino_t ino;
};

enum { F_PASSWD, F_GROUP };

struct nss {
	char *dir;
	struct nss_gids *gids;
	struct host_file passwd, group;
	struct snap_file files[2];
	char **recorded;      /* sorted */
	size_t n_recorded;
	bool recorded_full;
	struct loop_timer *retry;
	bool dirty;           /* changed while the agent was stopping */
};

/* One publish: what it builds and what it left out. */
struct build {
	struct agent *a;
	struct nss *n;
	const struct policy *p;
	uint32_t *uids;       /* the uids of the identities with uid =, sorted */
	const char **id_names; /* their names, sorted */
	size_t n_uids;
	struct buf pw, gr;
	struct nss_pair *pairs;
	size_t n_pairs;
	char **names;         /* the pairs' group names */
	bool retry;
};

/* ---- recording what is left out, once per name ---- */

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* True the first time key is seen this run (and there is room to remember it). */
static bool first_time(struct agent *a, struct nss *n, const char *key)
{
	size_t lo = 0, hi = n->n_recorded;
	char **v, *k;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(n->recorded[mid], key);
		if (c == 0)
			return false;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (n->n_recorded >= RECORDED_MAX) {
		if (!n->recorded_full)
			agent_event(a, "nss.group_skipped", NULL, NULL, NULL, NULL,
				    "%d names were left out of the NSS snapshot; further ones are not recorded "
				    "until sluiced restarts", RECORDED_MAX);
		n->recorded_full = true;
		return false;
	}
	v = realloc(n->recorded, (n->n_recorded + 1) * sizeof(*v));
	if (!v)
		return false;
	n->recorded = v;
	k = strdup(key);
	if (!k)
		return false;
	memmove(&v[lo + 1], &v[lo], (n->n_recorded - lo) * sizeof(*v));
	v[lo] = k;
	n->n_recorded++;
	return true;
}

static bool not_recorded(struct build *b, const char *kind, const char *key)
{
	char k[320];

	snprintf(k, sizeof(k), "%s:%s", kind, key);
	return first_time(b->a, b->n, k);
}

static void vrecord(struct build *b, const char *kind, const struct session *s, const char *fmt, va_list ap)
{
	char detail[768];

	vsnprintf(detail, sizeof(detail), fmt, ap);
	log_info("nss: %s", detail);
	if (s)
		agent_event(b->a, kind, NULL, &s->uid, s->user, NULL, "%s (session %s)", detail, s->id);
	else
		agent_event(b->a, kind, NULL, NULL, NULL, NULL, "%s", detail);
}

/* Record that key was left out, unless it already was this run. */
static void left_out(struct build *b, const char *kind, const char *key, const struct session *s,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void left_out(struct build *b, const char *kind, const char *key, const struct session *s,
		     const char *fmt, ...)
{
	va_list ap;

	if (!not_recorded(b, kind, key))
		return;
	va_start(ap, fmt);
	vrecord(b, kind, s, fmt, ap);
	va_end(ap);
}

static const struct session *carrier(struct agent *a, const char *prefix, const char *name);

/* The same for IdP group name, naming a session that carries it. */
static void group_left_out(struct build *b, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void group_left_out(struct build *b, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (!not_recorded(b, "nss.group_skipped", name))
		return;
	va_start(ap, fmt);
	vrecord(b, "nss.group_skipped", carrier(b->a, b->p->nss.group_prefix, name), fmt, ap);
	va_end(ap);
}

/* ---- the host's files ---- */

static bool same_file(const struct stat *x, const struct stat *y)
{
	return x->st_dev == y->st_dev && x->st_ino == y->st_ino && x->st_size == y->st_size &&
	       x->st_mtim.tv_sec == y->st_mtim.tv_sec && x->st_mtim.tv_nsec == y->st_mtim.tv_nsec &&
	       x->st_ctim.tv_sec == y->st_ctim.tv_sec && x->st_ctim.tv_nsec == y->st_ctim.tv_nsec;
}

/* Re-read f when it changed since the last read (a stat per publish). */
static int host_refresh(struct host_file *f)
{
	struct host_ids ids;
	struct stat st;
	int r;

	if (stat(f->path, &st) < 0)
		return -errno;
	if (f->loaded && same_file(&st, &f->st))
		return 0;
	r = host_ids_load(f->path, f->group, &ids);
	if (r < 0)
		return r;
	host_ids_release(&f->ids);
	f->ids = ids;
	f->st = st;
	f->loaded = true;
	return 0;
}

/* ---- building the snapshot ---- */

static int uid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static bool is_identity_uid(const struct build *b, uint32_t id)
{
	return b->n_uids && bsearch(&id, b->uids, b->n_uids, sizeof(id), uid_cmp);
}

/* Whether an identity with uid = is called name (its own group is). */
static bool is_identity_name(const struct build *b, const char *name)
{
	return b->n_uids && bsearch(&name, b->id_names, b->n_uids, sizeof(name), str_cmp);
}

static const struct pol_identity *identity_with_uid(const struct policy *p, uint32_t uid)
{
	for (size_t i = 0; i < p->n_identities; i++)
		if (p->identities[i].has_uid && p->identities[i].uid == uid)
			return &p->identities[i];
	return NULL;
}

/* Why identity id cannot be published now, or NULL. The config check
 * refused these at load; /etc may have changed since. */
static const char *identity_clash(struct build *b, const struct pol_identity *id, char *why, size_t n)
{
	const struct host_entry *e;

	if ((e = host_ids_name(&b->n->passwd.ids, id->name)))
		snprintf(why, n, "%s has account %s (uid %u)", HOST_PASSWD_FILE, e->name, e->id);
	else if ((e = host_ids_id(&b->n->passwd.ids, id->uid)))
		snprintf(why, n, "uid %u belongs to %s in %s", id->uid, e->name, HOST_PASSWD_FILE);
	else if ((e = host_ids_name(&b->n->group.ids, id->name)))
		snprintf(why, n, "%s has group %s (gid %u)", HOST_GROUP_FILE, e->name, e->id);
	else if ((e = host_ids_id(&b->n->group.ids, id->uid)))
		snprintf(why, n, "gid %u belongs to group %s in %s", id->uid, e->name, HOST_GROUP_FILE);
	else
		return NULL;
	return why;
}

static int add_identities(struct build *b)
{
	const struct policy *p = b->p;
	char why[512];
	int r = 0;

	b->uids = calloc(p->n_identities ? p->n_identities : 1, sizeof(*b->uids));
	b->id_names = calloc(p->n_identities ? p->n_identities : 1, sizeof(*b->id_names));
	if (!b->uids || !b->id_names)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_identities && r != -ENOMEM; i++) {
		const struct pol_identity *id = &p->identities[i];
		struct nss_user u = { .name = id->name, .uid = id->uid, .home = id->home };
		struct nss_group g = { .name = id->name, .gid = id->uid };
		size_t pw_len = b->pw.len;

		if (!id->has_uid)
			continue;
		/* Its name and ids stay reserved even when it is left out. */
		b->id_names[b->n_uids] = id->name;
		b->uids[b->n_uids++] = id->uid;
		if (identity_clash(b, id, why, sizeof(why))) {
			left_out(b, "nss.identity_skipped", id->name, NULL,
				 "[identity %s] (uid %u) is not published: %s", id->name, id->uid, why);
			continue;
		}
		r = nss_render_user(&b->pw, &u);
		if (r == 0) {
			r = nss_render_group(&b->gr, &g);
			if (r < 0)
				b->pw.len = pw_len;
		}
		if (r == -EINVAL || r == -E2BIG || r == -EMSGSIZE)
			left_out(b, "nss.identity_skipped", id->name, NULL,
				 "[identity %s] (uid %u) is not published: %s", id->name, id->uid,
				 r == -EMSGSIZE ? "the snapshot would be larger than 16 MiB" :
				 "its entry cannot be written");
	}
	qsort(b->uids, b->n_uids, sizeof(*b->uids), uid_cmp);
	qsort(b->id_names, b->n_uids, sizeof(*b->id_names), str_cmp);
	return r == -ENOMEM ? r : 0;
}

/* Every (group, account) of the live sessions whose claim makes a valid name. */
static int collect_pairs(struct build *b)
{
	const char *prefix = b->p->nss.group_prefix;
	struct list_node *ln, *t;
	size_t total = 0, k = 0;

	list_for_each_safe(ln, t, &b->a->sessions)
		total += container_of(ln, struct session, node)->n_groups;
	if (!total)
		return 0;
	b->pairs = calloc(total, sizeof(*b->pairs));
	b->names = calloc(total, sizeof(*b->names));
	if (!b->pairs || !b->names)
		return -ENOMEM;
	list_for_each_safe(ln, t, &b->a->sessions) {
		const struct session *s = container_of(ln, struct session, node);

		for (size_t i = 0; i < s->n_groups; i++) {
			char name[NSS_NAME_MAX + 1];

			if (nss_group_name(prefix, s->groups[i], name) < 0) {
				/* Keyed by the claim: it has no name. */
				left_out(b, "nss.group_skipped", s->groups[i], s,
					 "IdP group \"%s\" is not published: \"%s%s\" is not a valid group name "
					 "(expected [a-z_][a-z0-9_.-]*, at most %d bytes with the prefix)",
					 s->groups[i], prefix, s->groups[i], NSS_NAME_MAX);
				continue;
			}
			b->names[k] = strdup(name);
			if (!b->names[k])
				return -ENOMEM;
			b->pairs[k].group = b->names[k];
			b->pairs[k].user = s->user;
			k++;
		}
	}
	b->n_pairs = k;
	return 0;
}

/* A session carrying group name, for the record. */
static const struct session *carrier(struct agent *a, const char *prefix, const char *name)
{
	struct list_node *ln, *t;
	size_t pl = strlen(prefix);

	list_for_each_safe(ln, t, &a->sessions) {
		const struct session *s = container_of(ln, struct session, node);
		for (size_t i = 0; i < s->n_groups; i++)
			if (strncmp(name, prefix, pl) == 0 && strcmp(s->groups[i], name + pl) == 0)
				return s;
	}
	return NULL;
}

/* Why IdP group name (gid, or 0 before it has one) cannot be published, or NULL. */
static const char *group_clash(struct build *b, const char *name, uint32_t gid, char *why, size_t n)
{
	const struct host_entry *e;

	if ((e = host_ids_name(&b->n->group.ids, name)))
		snprintf(why, n, "%s has group %s (gid %u)", HOST_GROUP_FILE, e->name, e->id);
	else if (is_identity_name(b, name))
		snprintf(why, n, "it is the own group of [identity %s]", name);
	else if (gid && (e = host_ids_id(&b->n->group.ids, gid)))
		snprintf(why, n, "its gid %u belongs to group %s in %s", gid, e->name, HOST_GROUP_FILE);
	else if (gid && is_identity_uid(b, gid))
		snprintf(why, n, "its gid %u is the uid of [identity %s]", gid,
			 identity_with_uid(b->p, gid)->name);
	else
		return NULL;
	return why;
}

static bool gid_taken(uint32_t gid, void *ud)
{
	struct build *b = ud;

	return host_ids_id(&b->n->group.ids, gid) || is_identity_uid(b, gid);
}

/* Gids for the groups that have none yet, on disk before they are used. */
static void assign_new(struct build *b, const struct nss_groups *gs)
{
	const struct pol_nss *cfg = &b->p->nss;
	_cleanup_free_ const char **names = calloc(gs->n ? gs->n : 1, sizeof(*names));
	_cleanup_free_ uint32_t *gids = calloc(gs->n ? gs->n : 1, sizeof(*gids));
	_cleanup_free_ char *err = NULL;
	size_t k = 0;
	char why[512];
	int r;

	if (!names || !gids) {
		b->retry = true;
		return;
	}
	for (size_t i = 0; i < gs->n; i++)
		if (!nss_gids_get(b->n->gids, gs->v[i].name) && !group_clash(b, gs->v[i].name, 0, why, sizeof(why)))
			names[k++] = gs->v[i].name;
	if (!k)
		return;
	r = nss_gids_assign(b->n->gids, names, k, cfg->gid_min, cfg->gid_max, gid_taken, b, now_us(), gids,
			    &err);
	if (r < 0) {
		log_warn("nss: cannot give %zu new group(s) a gid; they are left out for now: %s", k,
			 err ? err : strerror(-r));
		b->retry = true;
		return;
	}
	for (size_t i = 0; i < k; i++) {
		const struct session *s;

		if (!gids[i]) {
			group_left_out(b, names[i], "IdP group %s is not published: gid_range %u-%u has no "
				       "free gid left", names[i], cfg->gid_min, cfg->gid_max);
			continue;
		}
		s = carrier(b->a, cfg->group_prefix, names[i]);
		log_info("nss: group %s is gid %u", names[i], gids[i]);
		agent_event(b->a, "nss.group_added", NULL, s ? &s->uid : NULL, s ? s->user : NULL, NULL,
			    "group %s is gid %u", names[i], gids[i]);
	}
}

static int add_groups(struct build *b)
{
	struct nss_groups gs = { 0 };
	char why[512];
	int r = collect_pairs(b);

	if (r == 0)
		r = nss_groups_collect(b->pairs, b->n_pairs, &gs);
	if (r < 0)
		return r;
	assign_new(b, &gs);
	for (size_t i = 0; i < gs.n && r == 0; i++) {
		struct nss_group *g = &gs.v[i];

		g->gid = nss_gids_get(b->n->gids, g->name);
		if (group_clash(b, g->name, g->gid, why, sizeof(why))) {
			group_left_out(b, g->name, "IdP group %s is not published: %s", g->name, why);
			continue;
		}
		if (!g->gid)
			continue; /* no gid (yet): recorded above, or retried */
		r = nss_render_group(&b->gr, g);
		if (r == -E2BIG || r == -EINVAL)
			group_left_out(b, g->name, "IdP group %s is not published: its line would be longer "
				       "than %d bytes (%zu members) or a member name cannot be written", g->name,
				       NSS_LINE_MAX, g->n_members);
		else if (r == -EMSGSIZE)
			group_left_out(b, g->name, "IdP group %s is not published: the snapshot would be "
				       "larger than 16 MiB", g->name);
		if (r != -ENOMEM)
			r = 0;
	}
	nss_groups_release(&gs);
	return r;
}

/* ---- writing ---- */

static int publish_file(struct nss *n, struct snap_file *f, const struct buf *text, bool force)
{
	struct stat st;
	int r;

	if (!force && f->written && f->text.len == text->len && memcmp(f->text.data, text->data, text->len) == 0) {
		char path[4096];
		/* Unchanged, and still the file we wrote. */
		snprintf(path, sizeof(path), "%s/%s", n->dir, f->name);
		if (lstat(path, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino)
			return 0;
	}
	r = nss_write_file(n->dir, f->name, text->data, text->len, &st);
	if (r < 0)
		return r;
	buf_clear(&f->text);
	if (buf_append(&f->text, text->data, text->len) < 0) {
		f->written = false; /* compare nothing: the next publish writes again */
		return 0;
	}
	f->written = true;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	return 0;
}

static void build_release(struct build *b)
{
	for (size_t i = 0; b->names && i < b->n_pairs; i++)
		free(b->names[i]);
	free(b->names);
	free(b->pairs);
	free(b->uids);
	free(b->id_names);
	buf_release(&b->pw, 0);
	buf_release(&b->gr, 0);
}

static void on_retry(struct loop_timer *t, void *ud)
{
	struct agent *a = ud;

	loop_timer_del(t);
	a->nss->retry = NULL;
	nss_publish(a, false);
}

static int publish(struct agent *a, struct nss *n, bool force)
{
	struct build b = { .a = a, .n = n, .p = a->pol->p, .pw = BUF_INIT(NSS_FILE_MAX),
			   .gr = BUF_INIT(NSS_FILE_MAX) };
	const char *what = "reading";
	int r;

	/* Without the host's files nothing can be shown not to shadow them. */
	if ((r = host_refresh(&n->passwd)) < 0 || (r = host_refresh(&n->group)) < 0) {
		log_warn("nss: cannot read %s: %s; the snapshot stays as it was", n->passwd.loaded ?
			 HOST_GROUP_FILE : HOST_PASSWD_FILE, strerror(-r));
		b.retry = true;
		goto out;
	}
	what = "building";
	if ((r = buf_append(&b.pw, NSS_SNAPSHOT_HEADER, strlen(NSS_SNAPSHOT_HEADER))) < 0 ||
	    (r = buf_append(&b.gr, NSS_SNAPSHOT_HEADER, strlen(NSS_SNAPSHOT_HEADER))) < 0 ||
	    (r = add_identities(&b)) < 0 || (r = add_groups(&b)) < 0)
		goto fail;
	what = "writing";
	if ((r = publish_file(n, &n->files[F_PASSWD], &b.pw, force)) < 0 ||
	    (r = publish_file(n, &n->files[F_GROUP], &b.gr, force)) < 0)
		goto fail;
	goto out;
fail:
	log_warn("nss: %s the snapshot in %s failed: %s; it stays as it was", what, n->dir, strerror(-r));
	b.retry = true;
out:
	if (b.retry && !n->retry && loop_timer_add(a->loop, mono_us() + RETRY_US, on_retry, a, &n->retry) < 0)
		n->retry = NULL;
	build_release(&b);
	return r;
}

void nss_publish(struct agent *a, bool force)
{
	struct nss *n = a->nss;
	int64_t t0;

	if (!n)
		return;
	if (a->stopping) {
		n->dirty = true;
		return;
	}
	t0 = mono_us();
	(void)publish(a, n, force);
	log_debug("nss: published in %lld us (%u sessions)", (long long)(mono_us() - t0), a->n_sessions);
}

/* ---- start and stop ---- */

static int prepare_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	int r;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		snprintf(err, errlen, "cannot create %s: %s", dir, strerror(-r));
		return r;
	}
	if (lstat(dir, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(-r));
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory; remove it", dir);
		return -ENOTDIR;
	}
	/* libnss_sluice trusts it only when it is ours and not writable by others. */
	if (st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s is owned by uid %u, not by the agent's account (uid %u); remove it",
			 dir, (unsigned)st.st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if ((st.st_mode & 07777) != 0755 && chmod(dir, 0755) < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot make %s mode 0755: %s", dir, strerror(-r));
		return r;
	}
	return 0;
}

static void nss_free(struct nss *n)
{
	if (!n)
		return;
	n->retry = loop_timer_del(n->retry);
	n->gids = nss_gids_close(n->gids);
	host_ids_release(&n->passwd.ids);
	host_ids_release(&n->group.ids);
	for (size_t i = 0; i < ARRAY_SIZE(n->files); i++)
		buf_release(&n->files[i].text, 0);
	for (size_t i = 0; i < n->n_recorded; i++)
		free(n->recorded[i]);
	free(n->recorded);
	free(n->dir);
	free(n);
}

int nss_start(struct agent *a, char *err, size_t errlen)
{
	struct nss *n = calloc(1, sizeof(*n));
	char *dberr = NULL;
	int r;

	if (!n || asprintf(&n->dir, "%s/nss", a->pol->p->agent.runtime_dir) < 0) {
		free(n);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	n->passwd = (struct host_file){ .path = HOST_PASSWD_FILE, .group = false };
	n->group = (struct host_file){ .path = HOST_GROUP_FILE, .group = true };
	n->files[F_PASSWD] = (struct snap_file){ .name = "passwd", .text = BUF_INIT(NSS_FILE_MAX) };
	n->files[F_GROUP] = (struct snap_file){ .name = "group", .text = BUF_INIT(NSS_FILE_MAX) };
	r = prepare_dir(n->dir, err, errlen);
	if (r < 0)
		goto fail;
	nss_clean_temp_files(n->dir);
	r = nss_gids_open(a->pol->p->agent.database, &n->gids, &dberr);
	if (r < 0) {
		snprintf(err, errlen, "cannot open the group ids in %s: %s", a->pol->p->agent.database,
			 dberr ? dberr : strerror(-r));
		free(dberr);
		goto fail;
	}
	a->nss = n;
	r = publish(a, n, true);
	if (r < 0) {
		snprintf(err, errlen, "cannot publish the NSS snapshot in %s: %s", n->dir, strerror(-r));
		a->nss = NULL;
		goto fail;
	}
	return 0;
fail:
	nss_free(n);
	return r;
}

void nss_stop(struct agent *a)
{
	struct nss *n = a->nss;

	if (!n)
		return;
	if (n->dirty)
		(void)publish(a, n, false);
	a->nss = NULL;
	nss_free(n);
}
