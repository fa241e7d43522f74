/* Reading an OIDC token for login and exec: from a file (a Kubernetes
 * projected token, a CI job's token, a systemd credential) or from
 * standard input. The token is a secret: callers wipe it with
 * secret_free() and never print it. */
#pragma once
#include <stddef.h>
#include "common/util.h"

/* Larger than any JWT an IdP issues; more is refused, not cut. */
#define CTL_TOKEN_MAX 16384
#define CTL_TOKEN_DIGEST_LEN 32

/* Read the token in path ("-": standard input until end of file). A file
 * must be a regular file (symbolic links are followed: Kubernetes swaps
 * one). Surrounding whitespace is stripped; what remains must be 1 to
 * CTL_TOKEN_MAX bytes of visible ASCII (RFC 6750 tokens, JWTs are).
 * Returns 0 with *out (free with secret_free(*out, *len)) and *len, or a
 * negative errno with why (without the token) in err:
 * -ENOENT/-EACCES/... (cannot open or read), -EMEDIUMTYPE (not a regular
 * file), -EINVAL (not a token), -EFBIG (too large), -ENODATA (empty). */
int ctl_token_read(const char *path, char **out, size_t *len, char *err, size_t errlen) WUR;

/* SHA-256 of the token, to notice a rotated file without keeping the old
 * token around. */
void ctl_token_digest(const char *tok, size_t len, unsigned char out[CTL_TOKEN_DIGEST_LEN]);

/* The token file to use: path when given, else $SLUICE_TOKEN_FILE when set
 * and not empty, else NULL. */
const char *ctl_token_path(const char *path);
