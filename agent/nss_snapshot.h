/* The NSS snapshot's text and files (notes: the contract shared with
 * libnss_sluice): `passwd` and `group` under <runtime_dir>/nss, in the
 * /etc/passwd and /etc/group line formats, each starting with a comment
 * line. Pure rendering plus the atomic file replacement; no agent state, so
 * it is unit-tested on its own (tests/unit/test_agent_nss.c). */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include "common/buf.h"
#include "policy/host.h"

#define NSS_SNAPSHOT_HEADER "# sluice nss snapshot v1\n"
/* The reader skips longer lines (counting the newline here), and does not
 * read a larger file. */
#define NSS_LINE_MAX 4096
#define NSS_FILE_MAX (16u << 20)
#define NSS_GECOS "sluice service identity"
#define NSS_SHELL "/usr/sbin/nologin"

struct nss_user {
	const char *name;
	uint32_t uid;  /* also its own group's gid */
	const char *home;
};

struct nss_group {
	const char *name;
	uint32_t gid;
	const char *const *members; /* sorted, distinct */
	size_t n_members;
};

/* prefix + claim into out when that is a name the snapshot may hold
 * (nss_name_valid); -EINVAL otherwise (out then holds ""). */
int nss_group_name(const char *prefix, const char *claim, char out[NSS_NAME_MAX + 1]) WUR;

/* Append one line to out. -E2BIG when it would be longer than
 * NSS_LINE_MAX (out unchanged), -EINVAL for a field the format cannot
 * carry (a name that is not nss_name_valid, a home with ':' or a newline, a
 * member with ':', ',' or a newline), -EMSGSIZE past out's max. */
int nss_render_user(struct buf *out, const struct nss_user *u) WUR;
int nss_render_group(struct buf *out, const struct nss_group *g) WUR;

/* IdP group memberships as (group, user) pairs, collected into groups:
 * sorted by name, each with its members sorted and deduplicated. The pairs
 * are reordered; the groups point into them (and into out->members), so
 * keep the pairs until nss_groups_release. */
struct nss_pair {
	const char *group;
	const char *user;
};
struct nss_groups {
	struct nss_group *v;
	size_t n;
	const char **members; /* storage for every group's members */
};
int nss_groups_collect(struct nss_pair *pairs, size_t n, struct nss_groups *out) WUR;
void nss_groups_release(struct nss_groups *g);

/* Replace dir/name with data: a temporary file .NAME.XXXXXX in dir,
 * written, fsync'd, mode 0644, renamed over dir/name. *st (if not NULL)
 * gets the new file's identity. On failure the temporary file is gone and
 * dir/name is as it was. */
int nss_write_file(const char *dir, const char *name, const void *data, size_t len,
		   struct stat *st) WUR;
/* Remove .passwd.* and .group.* temporary files a crash left in dir. */
void nss_clean_temp_files(const char *dir);
