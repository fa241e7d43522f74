/* Reading a token from token_file=. No PAM, no logging: the caller says why
 * from *why. */
#pragma once
#include <sys/types.h>
#include "common/util.h"

/* Larger than any JWT an IdP issues (a few KiB with many groups). */
#define PAM_SLUICE_TOKEN_MAX 16384

/* Read the token at path. The last component must not be a symlink
 * (O_NOFOLLOW), the file must be a regular file, writable by its owner only,
 * owned by root, by the reading process's euid or by owner_uid (the PAM
 * user), at most PAM_SLUICE_TOKEN_MAX bytes, with no NUL byte and not empty
 * once trailing CR/LF are stripped. Returns 0 and *out (wipe with
 * secret_free_str), or a negative errno and *why, a short static reason
 * fit for a log line (never any file content). */
int pam_sluice_token_file_read(const char *path, uid_t owner_uid, char **out,
			       const char **why) WUR;
