/* libnss_sluice.so.2: passwd, group and initgroups from the snapshot files
 * sluiced publishes in <runtime_dir>/nss/ (see nss_sluice(8)).
 *
 * Loaded into every program that resolves a user, so: no threads, no
 * network, no D-Bus (dbus-daemon itself resolves users through NSS), no
 * library beyond libc, and nothing that can block but a short lock. Each
 * file is parsed once and kept in memory; a lookup costs one lstat(2) to
 * see whether the file was replaced, then a binary search under a read
 * lock. A file is read only when it and the directories above it are
 * owned and writable as the contract says (trusted_open); anything else
 * makes the module answer UNAVAIL, so "files" entries are never affected.
 *
 * glibc's rules: a buffer too small gives TRYAGAIN with ERANGE (glibc
 * retries with a larger one; the enumeration cursor does not move), a
 * file that cannot be used gives UNAVAIL with ENOENT at once ("no such
 * entry" to callers of getpwnam_r), a name or id not in the file NOTFOUND. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <nss.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nss/nss_sluice.h"
#include "nss/snapshot.h"

#ifndef SLUICE_NSS_DIR
#error "SLUICE_NSS_DIR (configure --with-nss-dir) must be defined"
#endif

#define NSS_EXPORT __attribute__((visibility("default")))

/* A parsed file and the identity of the inode it came from. Shared by the
 * cache and an enumeration in progress, freed by whoever drops it last. */
struct snapref {
	unsigned long refs;
	struct stat id;
	struct snap snap;
};

struct db {
	const char *file;
	enum snap_kind kind;
	pthread_rwlock_t lock;		/* guards cur */
	struct snapref *cur;
	pthread_mutex_t ent_lock;	/* guards ent and pos; taken before lock */
	struct snapref *ent;		/* pinned by set*ent */
	uint32_t pos;
};

static struct db pw_db = {
	.file = "passwd", .kind = SNAP_PASSWD,
	.lock = PTHREAD_RWLOCK_INITIALIZER, .ent_lock = PTHREAD_MUTEX_INITIALIZER,
};
static struct db gr_db = {
	.file = "group", .kind = SNAP_GROUP,
	.lock = PTHREAD_RWLOCK_INITIALIZER, .ent_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* Paths, fixed at the first call. */
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static bool paths_ok;
static char nss_dir[PATH_MAX];		/* e.g. /run/sluice/nss */
static char parent_dir[PATH_MAX];	/* /run/sluice: its owner is the agent's user */
static const char *nss_base;		/* "nss", inside nss_dir */
static char pw_path[PATH_MAX], gr_path[PATH_MAX];

static const char *db_path(const struct db *db)
{
	return db == &pw_db ? pw_path : gr_path;
}

/* A thread forking while another holds a lock would leave the child's
 * copy locked for ever, and a child that resolves a user before exec
 * (initgroups in a server's fork) would hang: every lock is taken around
 * fork. The parent releases them; the child, whose only thread is not the
 * one glibc recorded as the rwlocks' writer (unlocking would count it as a
 * reader leaving), starts them afresh. */
static void atfork_prepare(void)
{
	pthread_mutex_lock(&pw_db.ent_lock);
	pthread_mutex_lock(&gr_db.ent_lock);
	pthread_rwlock_wrlock(&pw_db.lock);
	pthread_rwlock_wrlock(&gr_db.lock);
}

static void atfork_parent(void)
{
	pthread_rwlock_unlock(&gr_db.lock);
	pthread_rwlock_unlock(&pw_db.lock);
	pthread_mutex_unlock(&gr_db.ent_lock);
	pthread_mutex_unlock(&pw_db.ent_lock);
}

static void atfork_child(void)
{
	pthread_rwlock_init(&gr_db.lock, NULL);
	pthread_rwlock_init(&pw_db.lock, NULL);
	pthread_mutex_init(&gr_db.ent_lock, NULL);
	pthread_mutex_init(&pw_db.ent_lock, NULL);
}

/* SLUICE_NSS_DIR in the environment is for tests: secure_getenv ignores it
 * in setuid and setgid programs. It must be absolute, like the built-in
 * directory; a relative one disables the module rather than resolving
 * against whatever the working directory is. */
static void init_paths(void)
{
	const char *dir = secure_getenv("SLUICE_NSS_DIR");
	size_t len;
	char *slash;

	/* sluiced sets SLUICE_NSS_BYPASS for itself: the agent never resolves
	 * accounts through what it publishes (an IdP group would otherwise
	 * become a Unix group of whoever asks it). Set elsewhere, it only
	 * turns the module off for that process. */
	if (getenv("SLUICE_NSS_BYPASS"))
		return;
	if (!dir || !*dir)
		dir = SLUICE_NSS_DIR;
	len = strlen(dir);
	while (len > 1 && dir[len - 1] == '/')
		len--;
	if (dir[0] != '/' || len < 2 || len + sizeof("/passwd") > sizeof(nss_dir))
		return;
	memcpy(nss_dir, dir, len);
	nss_dir[len] = '\0';
	memcpy(parent_dir, nss_dir, len + 1);
	slash = strrchr(parent_dir, '/');
	nss_base = nss_dir + (slash - parent_dir) + 1;
	if (slash == parent_dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (strcmp(nss_base, ".") == 0 || strcmp(nss_base, "..") == 0)
		return;
	memcpy(pw_path, nss_dir, len);
	memcpy(pw_path + len, "/passwd", sizeof("/passwd"));
	memcpy(gr_path, nss_dir, len);
	memcpy(gr_path + len, "/group", sizeof("/group"));
	if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0)
		return;
	paths_ok = true;
}

static bool not_shared_writable(const struct stat *st)
{
	return (st->st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

static bool owned_by(const struct stat *st, uid_t agent)
{
	return st->st_uid == 0 || st->st_uid == agent;
}

/* Opens db's file under the trust rules: the runtime directory (nss_dir's
 * parent) is not group- or world-writable and its owner is the agent's
 * user; nss_dir and the file belong to root or that user and are not
 * group- or world-writable; the file is a regular file of at most
 * SNAP_FILE_MAX bytes. Each step is opened relative to the last, without
 * following a symbolic link at the last component, so what is checked is
 * what is read. Returns the descriptor (and its fstat in *st) or -errno:
 * -ENOENT missing, -EPERM untrusted, -EFBIG too large. */
static int trusted_open(const struct db *db, struct stat *st)
{
	int pfd = -1, dfd = -1, fd = -1, r;
	uid_t agent;

	pfd = open(parent_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (pfd < 0 || fstat(pfd, st) < 0) {
		r = -errno;
		goto out;
	}
	r = -EPERM;
	if (!S_ISDIR(st->st_mode) || !not_shared_writable(st))
		goto out;
	agent = st->st_uid;
	dfd = openat(pfd, nss_base, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0 || fstat(dfd, st) < 0) {
		r = -errno;
		goto out;
	}
	r = -EPERM;
	if (!S_ISDIR(st->st_mode) || !owned_by(st, agent) || !not_shared_writable(st))
		goto out;
	/* O_NONBLOCK: a FIFO in the file's place must not hang the caller;
	 * the S_ISREG check refuses it right after. */
	fd = openat(dfd, db->file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || fstat(fd, st) < 0) {
		r = -errno;
		goto out;
	}
	r = -EPERM;
	if (!S_ISREG(st->st_mode) || !owned_by(st, agent) || !not_shared_writable(st))
		goto out;
	r = -EFBIG;
	if (st->st_size < 0 || (uint64_t)st->st_size > SNAP_FILE_MAX)
		goto out;
	r = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (pfd >= 0)
		close(pfd);
	return r;
}

static int read_all(int fd, size_t size, char **out, size_t *outlen)
{
	char *buf = malloc(size ? size : 1);
	size_t n = 0;

	if (!buf)
		return -ENOMEM;
	/* The fstat size bounds the read: a file that grew since is seen as
	 * changed by the next lookup's lstat and read again. */
	while (n < size) {
		ssize_t k = read(fd, buf + n, size - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int r = -errno;

			free(buf);
			return r;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	*out = buf;
	*outlen = n;
	return 0;
}

static void snapref_put(struct snapref *ref)
{
	if (ref && __atomic_sub_fetch(&ref->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		snap_clear(&ref->snap);
		free(ref);
	}
}

static struct snapref *snapref_get(struct snapref *ref)
{
	__atomic_add_fetch(&ref->refs, 1, __ATOMIC_RELAXED);
	return ref;
}

static struct snapref *snapref_load(const struct db *db, int *err)
{
	struct snapref *ref = calloc(1, sizeof(*ref));
	char *buf = NULL;
	size_t len = 0;
	int fd = -1, r;

	if (!ref) {
		*err = -ENOMEM;
		return NULL;
	}
	fd = trusted_open(db, &ref->id);
	if (fd < 0) {
		*err = fd;
		goto fail;
	}
	r = read_all(fd, (size_t)ref->id.st_size, &buf, &len);
	if (r < 0) {
		*err = r;
		goto fail;
	}
	r = snap_parse(&ref->snap, db->kind, buf, len);
	if (r < 0) {
		*err = r;
		goto fail;
	}
	close(fd);
	ref->refs = 1;
	return ref;
fail:
	if (fd >= 0)
		close(fd);
	free(ref);
	return NULL;
}

/* Same inode, same content: a rename gives a new inode, an edit in place
 * a new mtime/size, a chmod or chown a new ctime. */
static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mode == b->st_mode && a->st_uid == b->st_uid &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static enum nss_status unavailable(int *errnop)
{
	*errnop = ENOENT;
	return NSS_STATUS_UNAVAIL;
}

/* Makes db->cur the current file's content and returns with db->lock held
 * (read or write) and *out = db->cur, or returns a failure status with
 * no lock held. */
static enum nss_status db_acquire(struct db *db, struct snapref **out, int *errnop)
{
	struct stat st;
	int err = 0;

	pthread_once(&init_once, init_paths);
	if (!paths_ok)
		return unavailable(errnop);
	if (lstat(db_path(db), &st) < 0)
		return unavailable(errnop);
	pthread_rwlock_rdlock(&db->lock);
	if (db->cur && same_file(&db->cur->id, &st)) {
		*out = db->cur;
		return NSS_STATUS_SUCCESS;
	}
	pthread_rwlock_unlock(&db->lock);

	pthread_rwlock_wrlock(&db->lock);
	if (!db->cur || !same_file(&db->cur->id, &st)) {
		struct snapref *ref = snapref_load(db, &err);

		/* What was trusted before is dropped too: the file in its
		 * place now is missing, untrusted or unreadable. */
		snapref_put(db->cur);
		db->cur = ref;
	}
	if (!db->cur) {
		pthread_rwlock_unlock(&db->lock);
		if (err == -ENOMEM) {
			*errnop = ENOMEM;
			return NSS_STATUS_TRYAGAIN;
		}
		return unavailable(errnop);
	}
	*out = db->cur;
	return NSS_STATUS_SUCCESS;
}

static void db_release(struct db *db)
{
	pthread_rwlock_unlock(&db->lock);
}

/* --- copying an entry into the caller's buffer ---------------------------------- */

struct bufp {
	char *p;
	size_t left;
};

static char *buf_str(struct bufp *b, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d;

	if (n > b->left)
		return NULL;
	d = memcpy(b->p, s, n);
	b->p += n;
	b->left -= n;
	return d;
}

static int pw_fill(const struct snap_pw *e, struct passwd *pw, char *buffer, size_t buflen)
{
	struct bufp b = { buffer, buflen };

	pw->pw_name = buf_str(&b, e->name);
	pw->pw_passwd = buf_str(&b, "x");
	pw->pw_gecos = buf_str(&b, e->gecos);
	pw->pw_dir = buf_str(&b, e->dir);
	pw->pw_shell = buf_str(&b, e->shell);
	if (!pw->pw_name || !pw->pw_passwd || !pw->pw_gecos || !pw->pw_dir || !pw->pw_shell)
		return -ERANGE;
	pw->pw_uid = e->uid;
	pw->pw_gid = e->gid;
	return 0;
}

/* gr_mem's pointer array first (aligned), then the strings. */
static int gr_fill(const struct snap_gr *e, struct group *gr, char *buffer, size_t buflen)
{
	size_t align = __alignof__(char *);
	size_t pad = (align - (uintptr_t)buffer % align) % align;
	size_t ptrs = ((size_t)e->nmem + 1) * sizeof(char *);
	struct bufp b;
	const char *m = e->mem;
	char **mem;
	uint32_t i;

	if (buflen < pad || buflen - pad < ptrs)
		return -ERANGE;
	mem = (char **)(void *)(buffer + pad);
	b.p = buffer + pad + ptrs;
	b.left = buflen - pad - ptrs;
	gr->gr_name = buf_str(&b, e->name);
	gr->gr_passwd = buf_str(&b, "x");
	if (!gr->gr_name || !gr->gr_passwd)
		return -ERANGE;
	for (i = 0; i < e->nmem; i++) {
		mem[i] = buf_str(&b, m);
		if (!mem[i])
			return -ERANGE;
		m += strlen(m) + 1;
	}
	mem[e->nmem] = NULL;
	gr->gr_mem = mem;
	gr->gr_gid = e->gid;
	return 0;
}

static enum nss_status filled(int r, int *errnop)
{
	if (r == 0)
		return NSS_STATUS_SUCCESS;
	*errnop = ERANGE;
	return NSS_STATUS_TRYAGAIN;
}

/* --- lookups --------------------------------------------------------------------- */

/* glibc ignores errno with NOTFOUND; callers that do not (nss_wrapper
 * turns a non-zero errno into the error it returns) get ENOENT, not
 * whatever an unrelated call left there. */
static enum nss_status not_found(int *errnop)
{
	*errnop = ENOENT;
	return NSS_STATUS_NOTFOUND;
}

static enum nss_status pw_lookup(const char *name, uid_t uid, struct passwd *pw, char *buffer,
				 size_t buflen, int *errnop)
{
	const struct snap_pw *e;
	struct snapref *ref;
	enum nss_status st = db_acquire(&pw_db, &ref, errnop);

	if (st != NSS_STATUS_SUCCESS)
		return st;
	e = name ? snap_pw_by_name(&ref->snap, name) : snap_pw_by_uid(&ref->snap, uid);
	st = e ? filled(pw_fill(e, pw, buffer, buflen), errnop) : not_found(errnop);
	db_release(&pw_db);
	return st;
}

static enum nss_status gr_lookup(const char *name, gid_t gid, struct group *gr, char *buffer,
				 size_t buflen, int *errnop)
{
	const struct snap_gr *e;
	struct snapref *ref;
	enum nss_status st = db_acquire(&gr_db, &ref, errnop);

	if (st != NSS_STATUS_SUCCESS)
		return st;
	e = name ? snap_gr_by_name(&ref->snap, name) : snap_gr_by_gid(&ref->snap, gid);
	st = e ? filled(gr_fill(e, gr, buffer, buflen), errnop) : not_found(errnop);
	db_release(&gr_db);
	return st;
}

NSS_EXPORT enum nss_status _nss_sluice_getpwnam_r(const char *name, struct passwd *pw, char *buffer,
						  size_t buflen, int *errnop)
{
	if (!name)
		return NSS_STATUS_NOTFOUND;
	return pw_lookup(name, 0, pw, buffer, buflen, errnop);
}

NSS_EXPORT enum nss_status _nss_sluice_getpwuid_r(uid_t uid, struct passwd *pw, char *buffer,
						  size_t buflen, int *errnop)
{
	return pw_lookup(NULL, uid, pw, buffer, buflen, errnop);
}

NSS_EXPORT enum nss_status _nss_sluice_getgrnam_r(const char *name, struct group *gr, char *buffer,
						  size_t buflen, int *errnop)
{
	if (!name)
		return NSS_STATUS_NOTFOUND;
	return gr_lookup(name, 0, gr, buffer, buflen, errnop);
}

NSS_EXPORT enum nss_status _nss_sluice_getgrgid_r(gid_t gid, struct group *gr, char *buffer,
						  size_t buflen, int *errnop)
{
	return gr_lookup(NULL, gid, gr, buffer, buflen, errnop);
}

/* --- enumeration ------------------------------------------------------------------ */

/* With db->ent_lock held: pins the file's current content for the
 * enumeration, so a file replaced meanwhile neither repeats nor skips
 * entries; the next set*ent sees the new one. */
static enum nss_status ent_start(struct db *db, int *errnop)
{
	struct snapref *ref;
	enum nss_status st;

	snapref_put(db->ent);
	db->ent = NULL;
	db->pos = 0;
	st = db_acquire(db, &ref, errnop);
	if (st != NSS_STATUS_SUCCESS)
		return st;
	db->ent = snapref_get(ref);
	db_release(db);
	return NSS_STATUS_SUCCESS;
}

static enum nss_status ent_set(struct db *db)
{
	enum nss_status st;
	int err;

	pthread_mutex_lock(&db->ent_lock);
	st = ent_start(db, &err);
	pthread_mutex_unlock(&db->ent_lock);
	return st;
}

static enum nss_status ent_end(struct db *db)
{
	pthread_mutex_lock(&db->ent_lock);
	snapref_put(db->ent);
	db->ent = NULL;
	db->pos = 0;
	pthread_mutex_unlock(&db->ent_lock);
	return NSS_STATUS_SUCCESS;
}

/* The next entry; on ERANGE the cursor stays where it is, so the retry
 * with a larger buffer gets the same entry. */
static enum nss_status ent_next(struct db *db, void *result, char *buffer, size_t buflen, int *errnop)
{
	enum nss_status st = NSS_STATUS_SUCCESS;
	const struct snap *s;
	int r;

	pthread_mutex_lock(&db->ent_lock);
	if (!db->ent)
		st = ent_start(db, errnop);
	if (st != NSS_STATUS_SUCCESS)
		goto out;
	s = &db->ent->snap;
	if (db->pos >= s->n) {
		st = NSS_STATUS_NOTFOUND;
		goto out;
	}
	if (db->kind == SNAP_PASSWD)
		r = pw_fill(&s->pw[db->pos], result, buffer, buflen);
	else
		r = gr_fill(&s->gr[db->pos], result, buffer, buflen);
	st = filled(r, errnop);
	if (st == NSS_STATUS_SUCCESS)
		db->pos++;
out:
	pthread_mutex_unlock(&db->ent_lock);
	return st;
}

NSS_EXPORT enum nss_status _nss_sluice_setpwent(void)
{
	return ent_set(&pw_db);
}

NSS_EXPORT enum nss_status _nss_sluice_getpwent_r(struct passwd *pw, char *buffer, size_t buflen,
						  int *errnop)
{
	return ent_next(&pw_db, pw, buffer, buflen, errnop);
}

NSS_EXPORT enum nss_status _nss_sluice_endpwent(void)
{
	return ent_end(&pw_db);
}

NSS_EXPORT enum nss_status _nss_sluice_setgrent(void)
{
	return ent_set(&gr_db);
}

NSS_EXPORT enum nss_status _nss_sluice_getgrent_r(struct group *gr, char *buffer, size_t buflen,
						  int *errnop)
{
	return ent_next(&gr_db, gr, buffer, buflen, errnop);
}

NSS_EXPORT enum nss_status _nss_sluice_endgrent(void)
{
	return ent_end(&gr_db);
}

/* --- initgroups ------------------------------------------------------------------- */

static bool has_gid(const gid_t *groups, long n, gid_t gid)
{
	long i;

	for (i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/* Appends gid to (*groupsp)[*start], growing the array as glibc's files
 * module does (double, at most limit when limit > 0). 1 added, 0 at the
 * limit, -ENOMEM. */
static int add_gid(gid_t gid, long *start, long *size, gid_t **groupsp, long limit)
{
	if (*start >= *size) {
		long nsize;
		gid_t *g;

		if (limit > 0 && *size >= limit)
			return 0;
		nsize = *size > 0 ? *size * 2 : 16;
		if (limit > 0 && nsize > limit)
			nsize = limit;
		g = reallocarray(*groupsp, (size_t)nsize, sizeof(**groupsp));
		if (!g)
			return -ENOMEM;
		*groupsp = g;
		*size = nsize;
	}
	(*groupsp)[(*start)++] = gid;
	return 1;
}

/* Adds the gid of every group listing user as a member, except group (the
 * primary gid, which glibc has already put first) and gids already there.
 * NOTFOUND when the user is in none of them, as the files module says. */
NSS_EXPORT enum nss_status _nss_sluice_initgroups_dyn(const char *user, gid_t group, long *start,
						      long *size, gid_t **groupsp, long limit,
						      int *errnop)
{
	struct snapref *ref;
	const struct snap *s;
	size_t first, n, i;
	bool any = false;
	enum nss_status st;

	if (!user || !start || !size || !groupsp)
		return NSS_STATUS_NOTFOUND;
	st = db_acquire(&gr_db, &ref, errnop);
	if (st != NSS_STATUS_SUCCESS)
		return st;
	s = &ref->snap;
	n = snap_groups_of(s, user, &first);
	for (i = 0; i < n; i++) {
		gid_t gid = s->gr[s->members[first + i].idx].gid;
		int r;

		if (gid == group || has_gid(*groupsp, *start, gid))
			continue;
		r = add_gid(gid, start, size, groupsp, limit);
		if (r < 0) {
			*errnop = ENOMEM;
			st = NSS_STATUS_TRYAGAIN;
			break;
		}
		if (r == 0)
			break;
		any = true;
	}
	db_release(&gr_db);
	if (st == NSS_STATUS_SUCCESS && !any)
		return NSS_STATUS_NOTFOUND;
	return st;
}
