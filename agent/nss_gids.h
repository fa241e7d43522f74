/* The gids of the IdP groups sluiced publishes through NSS, kept in the
 * nss_groups table of the session database (common/auditdb.c creates it):
 * a name keeps its gid for good, across restarts and changes of
 * gid_range, and a gid once given is never given to another name, even
 * after its group is no longer seen (files on disk may still carry it).
 *
 * Ordering: a gid must be on disk before any snapshot names it, or a crash
 * could hand it to another name after the restart. The audit writer
 * batches rows on its own thread and commits them later, so this module
 * has its own SQLite connection, used on the loop thread only, and commits
 * every batch of new names (synchronous=FULL: one fsync) before it
 * returns. New names are rare: once per group name for the life of the
 * database. Lookups are in memory. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

struct nss_gids;

/* Open the session database at path (created and migrated as the audit
 * writer does) and read the table. On failure *err says why (caller frees). */
int nss_gids_open(const char *path, struct nss_gids **out, char **err) WUR;
/* NULL-safe; returns NULL. */
struct nss_gids *nss_gids_close(struct nss_gids *g);

/* name's gid, or 0 when it has none. */
uint32_t nss_gids_get(const struct nss_gids *g, const char *name);
size_t nss_gids_count(const struct nss_gids *g);

/* Whether a free gid must still be passed over (a local group has it, an
 * identity's own group, ...). */
typedef bool (*nss_gid_taken_fn)(uint32_t gid, void *ud);

/* Give each of names[0..n) (distinct, none holding a gid) the lowest gid
 * of [min, max] that no name holds and taken() does not refuse, in one
 * transaction committed before returning 0. gids[i] = 0 when the range has
 * no gid left for names[i]. On -errno (the database refused) nothing was
 * assigned and *err may say why (caller frees). */
int nss_gids_assign(struct nss_gids *g, const char *const *names, size_t n, uint32_t min,
		    uint32_t max, nss_gid_taken_fn taken, void *ud, int64_t first_seen_us,
		    uint32_t *gids, char **err) WUR;
