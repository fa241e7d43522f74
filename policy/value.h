/* Checks for the scalar values of sluice.conf(5) and the list splitter.
 * Pure functions, no allocation except in list_split. Internal to policy/. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

#define LIST_MAX_ITEMS 256     /* items in one list value */
#define VALUE_MAX_PATH 4095
#define UNIX_NAME_MAX 32       /* useradd's limit */
#define SAFE_NAME_MAX 64       /* connection, access and issuer names */
/* sun_path is 108 bytes; the directory must leave room for "/.s.PGSQL.65535". */
#define SOCKET_DIR_MAX (108 - 1 - 15)

/* Split on blanks; a "double quoted" run keeps its blanks (and its quotes,
 * for the identifier folder). Returns 0, -EINVAL (unterminated quote),
 * -E2BIG (more than max items), -ENOMEM. */
int list_split(const char *v, size_t max, char ***items, size_t *n) WUR;
/* (Not list_free: libpg_query exports one, and ours would take its place
 * inside the parser.) */
void list_items_free(char **items, size_t n);

/* Absolute path, no "." or ".." component, at most VALUE_MAX_PATH bytes. */
bool val_abs_path(const char *v);

enum host_kind { HOST_NAME, HOST_IPV4, HOST_IPV6, HOST_SOCKET_DIR };
/* A DNS name, an IPv4/IPv6 address, or an absolute socket directory.
 * Returns 0 or -EINVAL (-ENAMETOOLONG for a socket directory too long
 * for sun_path). */
int val_host(const char *v, enum host_kind *kind) WUR;

/* A local account or group name: [A-Za-z_][A-Za-z0-9_.-]*$?, 1..32 bytes. */
bool val_unix_name(const char *v);
/* One word of printable bytes (no blanks), 1..max bytes. */
bool val_word(const char *v, size_t max);

/* An OIDC issuer: https://host[:port][/path], no user info, query or
 * fragment; http:// only for localhost, 127.0.0.1 and [::1]. Returns 0 or
 * -EINVAL with *why saying what is wrong. */
int val_issuer(const char *v, const char **why) WUR;

/* A byte count: digits with an optional K, KiB, M, MiB, G or GiB suffix
 * (powers of 1024), in [min, max]. 0, -EINVAL or -ERANGE. */
int val_size(const char *v, uint64_t min, uint64_t max, uint64_t *out) WUR;
