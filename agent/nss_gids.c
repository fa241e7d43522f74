/* Stable gids for published IdP groups. See nss_gids.h. */
#include "config.h"
#include "agent/nss_gids.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "common/auditdb.h"

/* The loop waits this long at most for the audit writer's transaction. */
#define BUSY_TIMEOUT_MS 1000

struct gid_entry {
	char *name;
	uint32_t gid;
};

struct nss_gids {
	sqlite3 *db;
	struct gid_entry *v; /* sorted by name */
	size_t n;
	uint32_t *used;      /* every gid in v, sorted */
};

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct gid_entry *)a)->name, ((const struct gid_entry *)b)->name);
}

static int gid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void set_err(char **err, const char *what, sqlite3 *db)
{
	if (err && asprintf(err, "%s: %s", what, sqlite3_errmsg(db)) < 0)
		*err = NULL;
}

static void entries_free(struct nss_gids *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->v[i].name);
	free(g->v);
	free(g->used);
	g->v = NULL;
	g->used = NULL;
	g->n = 0;
}

/* Append (name, gid) to the unsorted tail; the caller sorts. */
static int push(struct nss_gids *g, const char *name, uint32_t gid, size_t *cap)
{
	if (g->n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct gid_entry *v = realloc(g->v, c * sizeof(*v));
		uint32_t *u;

		if (!v)
			return -ENOMEM;
		g->v = v;
		u = realloc(g->used, c * sizeof(*u));
		if (!u)
			return -ENOMEM;
		g->used = u;
		*cap = c;
	}
	g->v[g->n].name = strdup(name);
	if (!g->v[g->n].name)
		return -ENOMEM;
	g->v[g->n].gid = gid;
	g->used[g->n++] = gid;
	return 0;
}

static void sort_entries(struct nss_gids *g)
{
	if (!g->n)
		return;
	qsort(g->v, g->n, sizeof(*g->v), entry_cmp);
	qsort(g->used, g->n, sizeof(*g->used), gid_cmp);
}

static int load(struct nss_gids *g, char **err)
{
	sqlite3_stmt *st = NULL;
	size_t cap = 0;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(g->db, "SELECT name, gid FROM nss_groups", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		set_err(err, "reading nss_groups", g->db);
		return -EIO;
	}
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		sqlite3_int64 gid = sqlite3_column_int64(st, 1);

		/* Only the agent writes the table; anything else is not a gid. */
		if (!name || gid <= 0 || gid >= UINT32_MAX)
			continue;
		r = push(g, name, (uint32_t)gid, &cap);
	}
	if (r == 0 && rc != SQLITE_DONE) {
		set_err(err, "reading nss_groups", g->db);
		r = -EIO;
	}
	sqlite3_finalize(st);
	if (r < 0) {
		entries_free(g);
		return r;
	}
	sort_entries(g);
	return 0;
}

int nss_gids_open(const char *path, struct nss_gids **out, char **err)
{
	struct nss_gids *g = calloc(1, sizeof(*g));
	int r;

	if (!g)
		return -ENOMEM;
	r = auditdb_open(path, false, &g->db, err);
	if (r < 0) {
		free(g);
		return r;
	}
	sqlite3_busy_timeout(g->db, BUSY_TIMEOUT_MS);
	r = load(g, err);
	if (r < 0) {
		nss_gids_close(g);
		return r;
	}
	*out = g;
	return 0;
}

struct nss_gids *nss_gids_close(struct nss_gids *g)
{
	if (!g)
		return NULL;
	entries_free(g);
	sqlite3_close(g->db);
	free(g);
	return NULL;
}

uint32_t nss_gids_get(const struct nss_gids *g, const char *name)
{
	struct gid_entry key = { .name = (char *)name };
	const struct gid_entry *e;

	if (!g->n)
		return 0;
	e = bsearch(&key, g->v, g->n, sizeof(key), entry_cmp);
	return e ? e->gid : 0;
}

size_t nss_gids_count(const struct nss_gids *g)
{
	return g->n;
}

/* The lowest gid >= *next and <= max that is free, or 0; moves *next past it. */
static uint32_t next_free(const struct nss_gids *g, uint64_t *next, uint32_t max, nss_gid_taken_fn taken,
			  void *ud, size_t *j)
{
	for (uint64_t c = *next; c <= max; c++) {
		while (*j < g->n && g->used[*j] < c)
			(*j)++;
		if (*j < g->n && g->used[*j] == c)
			continue;
		if (taken && taken((uint32_t)c, ud))
			continue;
		*next = c + 1;
		return (uint32_t)c;
	}
	*next = (uint64_t)max + 1;
	return 0;
}

static int insert_all(struct nss_gids *g, const char *const *names, size_t n, const uint32_t *gids,
		      int64_t first_seen_us, char **err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_exec(g->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(g->db, "INSERT INTO nss_groups (name, gid, first_seen_us) VALUES (?, ?, ?)",
					-1, &st, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < n; i++) {
		if (!gids[i])
			continue;
		sqlite3_reset(st);
		if ((rc = sqlite3_bind_text(st, 1, names[i], -1, SQLITE_STATIC)) == SQLITE_OK &&
		    (rc = sqlite3_bind_int64(st, 2, gids[i])) == SQLITE_OK &&
		    (rc = sqlite3_bind_int64(st, 3, first_seen_us)) == SQLITE_OK)
			rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(g->db);
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(g->db, "COMMIT", NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		return 0;
	set_err(err, "recording new group ids in nss_groups", g->db);
	if (!sqlite3_get_autocommit(g->db))
		(void)sqlite3_exec(g->db, "ROLLBACK", NULL, NULL, NULL);
	return rc == SQLITE_BUSY ? -EBUSY : -EIO;
}

int nss_gids_assign(struct nss_gids *g, const char *const *names, size_t n, uint32_t min,
		    uint32_t max, nss_gid_taken_fn taken, void *ud, int64_t first_seen_us,
		    uint32_t *gids, char **err)
{
	uint64_t next = min;
	size_t j = 0, k = 0, cap;
	int r;

	for (size_t i = 0; i < n; i++) {
		gids[i] = min <= max ? next_free(g, &next, max, taken, ud, &j) : 0;
		k += gids[i] != 0;
	}
	if (k == 0)
		return 0;
	r = insert_all(g, names, n, gids, first_seen_us, err);
	if (r < 0) {
		memset(gids, 0, n * sizeof(*gids));
		return r;
	}
	/* On disk; now in memory. If that fails, read the table again. */
	cap = g->n;
	for (size_t i = 0; r == 0 && i < n; i++)
		if (gids[i])
			r = push(g, names[i], gids[i], &cap);
	if (r < 0) {
		entries_free(g);
		r = load(g, err);
		for (size_t i = 0; i < n; i++)
			gids[i] = nss_gids_get(g, names[i]);
		return r;
	}
	sort_entries(g);
	return 0;
}
