#include "config.h"
#include "tests/unit/nss_testdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what)
{
	perror(what);
	abort();
}

void nss_testdir_create(struct nss_testdir *t)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(t->root, sizeof(t->root), "%s/sluice-nss-XXXXXX", tmp && *tmp == '/' ? tmp : "/tmp");
	if (!mkdtemp(t->root))
		die("mkdtemp");
	/* TMPDIR itself may be world-writable (/tmp): the trust rules look at
	 * the nss directory and its parent only, both made here. */
	snprintf(t->run, sizeof(t->run), "%s/run", t->root);
	snprintf(t->nss, sizeof(t->nss), "%s/nss", t->run);
	if (mkdir(t->run, 0700) < 0 || chmod(t->run, 0755) < 0)
		die("mkdir run");
	if (mkdir(t->nss, 0755) < 0 || chmod(t->nss, 0755) < 0)
		die("mkdir nss");
	if (setenv("SLUICE_NSS_DIR", t->nss, 1) < 0)
		die("setenv");
}

void nss_testdir_path(const struct nss_testdir *t, const char *name, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s", t->nss, name);
}

void nss_testdir_remove(struct nss_testdir *t)
{
	static const char *const names[] = { "passwd", "group", "scratch" };
	char p[512];
	size_t i;

	chmod(t->root, 0700);
	chmod(t->run, 0755);
	chmod(t->nss, 0755);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		nss_testdir_path(t, names[i], p, sizeof(p));
		unlink(p);
		rmdir(p);
	}
	rmdir(t->nss);
	rmdir(t->run);
	rmdir(t->root);
}

int nss_testdir_write(const struct nss_testdir *t, const char *name, const char *data, size_t len,
		      mode_t mode)
{
	char tmp[512], dst[512];
	size_t off = 0;
	int fd, r = 0;

	snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", t->nss, name);
	nss_testdir_path(t, name, dst, sizeof(dst));
	fd = mkstemp(tmp);
	if (fd < 0)
		return -errno;
	while (off < len) {
		ssize_t k = write(fd, data + off, len - off);

		if (k < 0) {
			r = -errno;
			break;
		}
		off += (size_t)k;
	}
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0 && rename(tmp, dst) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int nss_testdir_writes(const struct nss_testdir *t, const char *name, const char *text)
{
	return nss_testdir_write(t, name, text, strlen(text), 0644);
}
