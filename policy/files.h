/* The only I/O in policy/: reading sluice.conf and listing conf.d/.
 * Internal to policy/. */
#pragma once
#include <stddef.h>
#include "common/util.h"

#define CONFD_MAX_FILES 256

/* Read a whole regular file of at most max bytes into *text (malloc'ed,
 * NUL-terminated; may hold other NULs). Returns 0, -EFBIG when larger,
 * -EINVAL when not a regular file, or -errno. */
int conf_read_file(const char *path, size_t max, char **text, size_t *len) WUR;
/* The names of the *.conf entries of dir (hidden ones skipped), sorted
 * bytewise. Returns 0, -ENOENT when dir does not exist, -E2BIG past max
 * entries, or -errno. */
int confd_list(const char *dir, size_t max, char ***names, size_t *n) WUR;
/* The conf.d directory next to path ("/etc/sluice/conf.d" for
 * "/etc/sluice/sluice.conf", "conf.d" for "sluice.conf"); malloc'ed. */
char *confd_dir_for(const char *path);
