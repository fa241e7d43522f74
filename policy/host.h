/* What only the host can say about a configuration: the local accounts and
 * groups a service identity published through NSS (`uid =`) must never
 * shadow. The passwd and group files are read directly (fgetpwent_r /
 * fgetgrent_r), never through NSS: libnss_sluice answers from what sluiced
 * publishes, so asking NSS would let a published entry vouch for itself.
 * Nothing here logs. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "policy/policy.h"

#define HOST_PASSWD_FILE "/etc/passwd"
#define HOST_GROUP_FILE "/etc/group"

/* The names libnss_sluice publishes: ^[a-z_][a-z0-9_.-]{0,31}$ (what
 * useradd accepts by default, and nothing that needs quoting). */
#define NSS_NAME_MAX 32
bool nss_name_valid(const char *s);

/* The entries of a passwd or group file: names and ids, sorted both ways. */
struct host_entry {
	char *name;
	uint32_t id;
};
struct host_ids {
	struct host_entry *by_name; /* sorted by name (owns the names) */
	struct host_entry *by_id;   /* the same entries sorted by id (names shared) */
	size_t n;
};

/* Read path, a passwd file (group false) or a group file (group true).
 * Returns 0, or -errno (-EFBIG past 64 MiB or a million entries) with *out
 * untouched. */
int host_ids_load(const char *path, bool group, struct host_ids *out) WUR;
void host_ids_release(struct host_ids *h);
/* The entry called name, or NULL. */
const struct host_entry *host_ids_name(const struct host_ids *h, const char *name);
/* The first entry with id, or NULL. */
const struct host_entry *host_ids_id(const struct host_ids *h, uint32_t id);

/* Every [identity] with uid = against the host: its name and uid must not be
 * in passwd_file, its own group (same name, gid = uid) not in group_file.
 * sluiced (at start and on reload) and `sluicectl policy check` both run it
 * with HOST_PASSWD_FILE and HOST_GROUP_FILE. Appends "FILE:LINE: ..." to
 * errs (NULL: count only); a file that cannot be read is an error too.
 * Returns the number of errors found. */
size_t policy_check_host(const struct policy *p, const char *passwd_file, const char *group_file,
			 struct pol_errors *errs);
