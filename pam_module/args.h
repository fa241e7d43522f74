/* pam_sluice's module arguments and the token_file= path template. Pure
 * functions (no PAM, no I/O) so the unit tests can drive every branch. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "common/util.h"

#define PAM_SLUICE_TIMEOUT_DEFAULT 10 /* seconds per D-Bus call */
#define PAM_SLUICE_TIMEOUT_MAX 300
/* A user name put into a path by %u: longer is refused. */
#define PAM_SLUICE_USER_MAX 256
/* An expanded token_file= path (PATH_MAX without dragging limits.h in). */
#define PAM_SLUICE_PATH_MAX 4096

struct pam_sluice_args {
	bool use_first_pass;
	bool try_first_pass;
	bool debug;
	const char *token_file; /* the template, pointing into argv; NULL = none */
	int timeout_s;
};

/* Parse the module arguments. Every argument must be known and well formed:
 * on the first one that is not, returns -EINVAL and points *bad at it (the
 * module then fails closed). use_first_pass wins over try_first_pass.
 * *out is untouched on failure. */
int pam_sluice_args_parse(int argc, const char **argv, struct pam_sluice_args *out,
			  const char **bad) WUR;

/* Expand a token_file= template: %u is the user, %% a per cent sign; any
 * other % sequence is -EINVAL. The user must be a name that cannot walk the
 * path (-EINVAL: empty, ".", "..", a '/', a control character, longer than
 * PAM_SLUICE_USER_MAX). The result must be absolute and at most
 * PAM_SLUICE_PATH_MAX bytes (-ENAMETOOLONG). Returns 0 and a malloc'd *out,
 * or a negative errno (*out untouched). */
int pam_sluice_expand_path(const char *tmpl, const char *user, char **out) WUR;
