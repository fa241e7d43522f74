/* Name tables of the enumerations in sluice.conf(5): the statement class
 * vocabulary, mask methods, value detectors, sslmode, approval modes and
 * JWS algorithms. Internal to policy/; the *_name() look-ups are public in
 * policy.h. */
#pragma once
#include "policy/policy.h"

/* -1 when name is not one of them. */
int mask_method_from_name(const char *name);
int detector_from_name(const char *name); /* the enum detector bit */
int sslmode_from_name(const char *name);
int approval_mode_from_name(const char *name);
/* "RS256 RS384 ...": the space separated names, for "expected one of". */
const char *stmt_class_names(void);
const char *mask_method_names(void);
const char *detector_names(void);
const char *sslmode_names(void);
const char *approval_mode_names(void);
/* JWS algorithms sluice verifies: asymmetric only. */
bool jws_alg_allowed(const char *name);
const char *jws_alg_names(void);
