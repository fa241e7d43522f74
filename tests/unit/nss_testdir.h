/* A private snapshot directory for the libnss_sluice unit tests:
 * <tmp>/run (0700, the "runtime dir") and <tmp>/run/nss (0755), with
 * SLUICE_NSS_DIR pointing at the latter. Files are written the way sluiced
 * writes them: a temporary file in the same directory, renamed into place. */
#ifndef SLUICE_TESTS_NSS_TESTDIR_H
#define SLUICE_TESTS_NSS_TESTDIR_H

#include <stddef.h>
#include <sys/types.h>

struct nss_testdir {
	char root[256];		/* mkdtemp'd; removed by nss_testdir_remove */
	char run[300];		/* root/run: the parent, whose owner is "the agent's user" */
	char nss[320];		/* root/run/nss = SLUICE_NSS_DIR */
};

/* Creates the tree and sets SLUICE_NSS_DIR; aborts on failure. */
void nss_testdir_create(struct nss_testdir *t);
void nss_testdir_remove(struct nss_testdir *t);

/* path of name inside t->nss, in a static buffer of the caller's. */
void nss_testdir_path(const struct nss_testdir *t, const char *name, char *out, size_t outlen);

/* Writes len bytes as t->nss/name with mode (a new inode: tmp + rename).
 * Returns 0 or -errno. */
int nss_testdir_write(const struct nss_testdir *t, const char *name, const char *data, size_t len,
		      mode_t mode);
int nss_testdir_writes(const struct nss_testdir *t, const char *name, const char *text);

#endif
