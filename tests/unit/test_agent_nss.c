/* The agent's side of libnss_sluice without a running agent: group names
 * from claims, the snapshot's lines, memberships collected from sessions,
 * the atomic file replacement, stable gids in the session database, and
 * the config check that service identities do not shadow the host's
 * accounts and groups. Prints what rendering and gid assignment cost with
 * 1,000 identities and groups. */
#include "config.h"
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "agent/nss_gids.h"
#include "agent/nss_snapshot.h"
#include "common/auditdb.h"
#include "policy/host.h"

struct fixture {
	char dir[64];
	char db[96];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_agent_nss.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->db, sizeof(fx->db), "%s/sluice.db", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *s = calloc(1, 1 << 20);
	size_t n;

	assert_non_null(f);
	assert_non_null(s);
	n = fread(s, 1, (1 << 20) - 1, f);
	s[n] = '\0';
	fclose(f);
	return s;
}

static void buf_equal(const struct buf *b, const char *want)
{
	if (b->len != strlen(want) || memcmp(b->data, want, b->len) != 0)
		fail_msg("got \"%.*s\", want \"%s\"", (int)b->len, (const char *)b->data, want);
}

static double elapsed_us(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e6 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e3;
}

/* ---- names and lines ---- */

static void group_names(void **state)
{
	static const struct { const char *prefix, *claim, *want; } ok[] = {
		{ "idp-", "data-readers", "idp-data-readers" },
		{ "idp-", "a", "idp-a" },
		{ "idp-", "x.y_z-0", "idp-x.y_z-0" },
		{ "g", "_", "g_" },
		/* 32 bytes in all is the most */
		{ "idp-", "abcdefghijklmnopqrstuvwxyz01", "idp-abcdefghijklmnopqrstuvwxyz01" },
	};
	static const struct { const char *prefix, *claim; } bad[] = {
		{ "idp-", "" },
		{ "idp-", "Data-Readers" },                    /* upper case */
		{ "idp-", "abcdefghijklmnopqrstuvwxyz012" },   /* 33 bytes */
		{ "idp-", "a b" }, { "idp-", "a:b" }, { "idp-", "a,b" }, { "idp-", "a/b" },
		{ "idp-", "a$" }, { "idp-", "caf\xc3\xa9" }, { "idp-", "a\nb" },
		{ "idp-", "cn=admins,ou=groups" },
	};
	char out[NSS_NAME_MAX + 1];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		assert_int_equal(nss_group_name(ok[i].prefix, ok[i].claim, out), 0);
		assert_string_equal(out, ok[i].want);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (nss_group_name(bad[i].prefix, bad[i].claim, out) != -EINVAL)
			fail_msg("claim \"%s\" was accepted as \"%s\"", bad[i].claim, out);
		assert_string_equal(out, "");
	}
	/* The name rule itself: a letter or _ first, no upper case. */
	assert_true(nss_name_valid("_svc"));
	assert_false(nss_name_valid("1svc"));
	assert_false(nss_name_valid("-svc"));
	assert_false(nss_name_valid(""));
	assert_false(nss_name_valid(NULL));
}

static void user_and_group_lines(void **state)
{
	struct buf b = BUF_INIT(NSS_FILE_MAX);
	const char *members[] = { "alice", "sluicet-a" };
	struct nss_user u = { .name = "mcp-orders", .uid = 61001, .home = "/nonexistent" };
	struct nss_group g = { .name = "idp-data", .gid = 880000, .members = members, .n_members = 2 };
	struct nss_group own = { .name = "mcp-orders", .gid = 61001 };

	(void)state;
	assert_int_equal(nss_render_user(&b, &u), 0);
	assert_int_equal(nss_render_group(&b, &own), 0);
	assert_int_equal(nss_render_group(&b, &g), 0);
	buf_equal(&b, "mcp-orders:x:61001:61001:sluice service identity:/nonexistent:/usr/sbin/nologin\n"
		      "mcp-orders:x:61001:\n"
		      "idp-data:x:880000:alice,sluicet-a\n");

	/* What the format cannot carry is refused, and nothing is appended. */
	buf_clear(&b);
	u.home = "/srv/a:b";
	assert_int_equal(nss_render_user(&b, &u), -EINVAL);
	u.home = "relative";
	assert_int_equal(nss_render_user(&b, &u), -EINVAL);
	u.home = "/nonexistent";
	u.name = "Upper";
	assert_int_equal(nss_render_user(&b, &u), -EINVAL);
	members[1] = "a,b";
	assert_int_equal(nss_render_group(&b, &g), -EINVAL);
	members[1] = "";
	assert_int_equal(nss_render_group(&b, &g), -EINVAL);
	assert_int_equal(b.len, 0);
	buf_release(&b, 0);
}

/* A line of exactly NSS_LINE_MAX bytes (newline included) is written; one
 * byte more and the reader would skip it, so it is refused. */
static void line_limit(void **state)
{
	struct buf b = BUF_INIT(NSS_FILE_MAX);
	static char names[200][NSS_NAME_MAX + 1];
	const char *members[200];
	struct nss_group g = { .name = "idp-big", .gid = 880001, .members = members };
	size_t len = strlen("idp-big:x:880001:") + 1; /* + the newline */

	(void)state;
	/* 20-byte members plus commas until the line is just under the cap. */
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(names[i], sizeof(names[i]), "member%014zu", i);
		members[i] = names[i];
	}
	while (len + (g.n_members ? 1 : 0) + 20 <= NSS_LINE_MAX)
		len += (g.n_members++ ? 1 : 0) + 20;
	/* Pad the last member so the line is exactly NSS_LINE_MAX. */
	size_t pad = NSS_LINE_MAX - len;
	assert_true(pad < 12);
	char last[NSS_NAME_MAX + 1];
	snprintf(last, sizeof(last), "%s%.*s", names[g.n_members - 1], (int)pad, "zzzzzzzzzzzz");
	members[g.n_members - 1] = last;
	assert_int_equal(nss_render_group(&b, &g), 0);
	assert_int_equal(b.len, NSS_LINE_MAX);
	assert_int_equal(b.data[b.len - 1], '\n');
	/* One byte more. */
	char longer[NSS_NAME_MAX + 2];
	snprintf(longer, sizeof(longer), "%sz", last);
	members[g.n_members - 1] = longer;
	assert_int_equal(nss_render_group(&b, &g), -E2BIG);
	assert_int_equal(b.len, NSS_LINE_MAX);

	/* The file cap: a buffer that is full refuses the next line. */
	struct buf small = BUF_INIT(40);
	struct nss_group tiny = { .name = "idp-t", .gid = 880002 };
	assert_int_equal(nss_render_group(&small, &tiny), 0);
	assert_int_equal(nss_render_group(&small, &tiny), 0);
	assert_int_equal(nss_render_group(&small, &tiny), -EMSGSIZE);
	assert_int_equal(small.len, 2 * strlen("idp-t:x:880002:\n"));
	buf_release(&small, 0);
	buf_release(&b, 0);
}

static void memberships(void **state)
{
	/* Two sessions of sluicet-a and one of sluicet-b, in no order. */
	struct nss_pair pairs[] = {
		{ "idp-orders", "sluicet-a" }, { "idp-data", "sluicet-b" }, { "idp-data", "sluicet-a" },
		{ "idp-data", "sluicet-a" }, { "idp-orders", "sluicet-a" }, { "idp-admins", "zed" },
	};
	struct nss_groups gs = { 0 };

	(void)state;
	assert_int_equal(nss_groups_collect(pairs, ARRAY_SIZE(pairs), &gs), 0);
	assert_int_equal(gs.n, 3);
	assert_string_equal(gs.v[0].name, "idp-admins");
	assert_int_equal(gs.v[0].n_members, 1);
	assert_string_equal(gs.v[0].members[0], "zed");
	assert_string_equal(gs.v[1].name, "idp-data");
	assert_int_equal(gs.v[1].n_members, 2);
	assert_string_equal(gs.v[1].members[0], "sluicet-a");
	assert_string_equal(gs.v[1].members[1], "sluicet-b");
	assert_string_equal(gs.v[2].name, "idp-orders");
	assert_int_equal(gs.v[2].n_members, 1);
	nss_groups_release(&gs);

	assert_int_equal(nss_groups_collect(NULL, 0, &gs), 0);
	assert_int_equal(gs.n, 0);
	nss_groups_release(&gs);
}

/* ---- files ---- */

static void atomic_files(void **state)
{
	struct fixture *fx = *state;
	char path[128], stale[128];
	struct stat st, st2, now;
	char *text;

	snprintf(path, sizeof(path), "%s/group", fx->dir);
	umask(077); /* the mode must not depend on the umask */
	assert_int_equal(nss_write_file(fx->dir, "group", "one\n", 4, &st), 0);
	assert_int_equal(stat(path, &now), 0);
	assert_int_equal(now.st_mode & 07777, 0644);
	assert_int_equal(now.st_ino, st.st_ino);
	text = read_text(path);
	assert_string_equal(text, "one\n");
	free(text);

	/* Replaced by rename: a reader holding the old file keeps it whole. */
	int old = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(old >= 0);
	assert_int_equal(nss_write_file(fx->dir, "group", "two\n", 4, &st2), 0);
	assert_int_not_equal(st2.st_ino, st.st_ino);
	char back[8] = { 0 };
	assert_int_equal(read(old, back, sizeof(back) - 1), 4);
	assert_string_equal(back, "one\n");
	close(old);
	text = read_text(path);
	assert_string_equal(text, "two\n");
	free(text);

	/* No temporary file stays, and a crash's leftovers are cleaned. */
	snprintf(stale, sizeof(stale), "%s/.passwd.abc123", fx->dir);
	write_text(stale, "half");
	nss_clean_temp_files(fx->dir);
	assert_int_equal(access(stale, F_OK), -1);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "test \"$(ls -A '%s')\" = group", fx->dir);
	assert_int_equal(system(cmd), 0);

	/* A directory that cannot be written: an error, the old file stays. */
	assert_int_equal(nss_write_file("/nonexistent-dir", "group", "x\n", 2, NULL), -ENOENT);
	assert_int_equal(nss_write_file(fx->dir, "group", "x", NSS_FILE_MAX + 1u, NULL), -EFBIG);
	text = read_text(path);
	assert_string_equal(text, "two\n");
	free(text);
	umask(022);
}

/* ---- gids ---- */

static struct nss_gids *gids_open(const char *path)
{
	struct nss_gids *g = NULL;
	char *err = NULL;
	int r = nss_gids_open(path, &g, &err);

	if (r < 0)
		fail_msg("nss_gids_open: %d %s", r, err ? err : "");
	return g;
}

static bool taken_set(uint32_t gid, void *ud)
{
	const uint32_t *v = ud;

	for (; *v; v++)
		if (*v == gid)
			return true;
	return false;
}

static void gids_stable_and_never_reused(void **state)
{
	struct fixture *fx = *state;
	struct nss_gids *g = gids_open(fx->db);
	const char *first[] = { "idp-a", "idp-b", "idp-c" };
	const char *later[] = { "idp-d", "idp-e" };
	uint32_t taken[] = { 100, 102, 0 }; /* e.g. in /etc/group */
	uint32_t gids[3];
	char *err = NULL;

	assert_int_equal(nss_gids_count(g), 0);
	assert_int_equal(nss_gids_assign(g, first, 3, 100, 105, taken_set, taken, 1, gids, &err), 0);
	/* Lowest free first, passing over what is taken. */
	assert_int_equal(gids[0], 101);
	assert_int_equal(gids[1], 103);
	assert_int_equal(gids[2], 104);
	assert_int_equal(nss_gids_get(g, "idp-b"), 103);
	assert_int_equal(nss_gids_get(g, "idp-x"), 0);
	g = nss_gids_close(g);

	/* Another run on the same database: the same gids. idp-a and idp-b
	 * are not seen any more; their gids stay theirs. The range moved:
	 * old names keep their gid, new ones come from the new range. */
	g = gids_open(fx->db);
	assert_int_equal(nss_gids_count(g), 3);
	assert_int_equal(nss_gids_get(g, "idp-a"), 101);
	assert_int_equal(nss_gids_get(g, "idp-c"), 104);
	assert_int_equal(nss_gids_assign(g, later, 2, 100, 106, NULL, NULL, 2, gids, &err), 0);
	assert_int_equal(gids[0], 100); /* free now that nothing takes it */
	assert_int_equal(gids[1], 102);
	/* The range is used up: no gid, nothing recorded. */
	const char *more[] = { "idp-f", "idp-g", "idp-h" };
	assert_int_equal(nss_gids_assign(g, more, 3, 100, 106, NULL, NULL, 3, gids, &err), 0);
	assert_int_equal(gids[0], 105);
	assert_int_equal(gids[1], 106);
	assert_int_equal(gids[2], 0);
	assert_int_equal(nss_gids_get(g, "idp-h"), 0);
	g = nss_gids_close(g);

	/* What is on disk: every name once, every gid once. */
	sqlite3 *db;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_open_v2(fx->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), count(DISTINCT gid), min(gid), max(gid), "
					    "min(first_seen_us) FROM nss_groups", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 7);
	assert_int_equal(sqlite3_column_int(st, 1), 7);
	assert_int_equal(sqlite3_column_int(st, 2), 100);
	assert_int_equal(sqlite3_column_int(st, 3), 106);
	assert_int_equal(sqlite3_column_int(st, 4), 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
	free(err);
}

/* The top of the gid space does not wrap around. */
static void gids_at_the_top(void **state)
{
	struct fixture *fx = *state;
	struct nss_gids *g = gids_open(fx->db);
	const char *names[] = { "idp-a", "idp-b" };
	uint32_t gids[2];

	assert_int_equal(nss_gids_assign(g, names, 2, UINT32_MAX - 1, UINT32_MAX - 1, NULL, NULL, 1, gids,
					 NULL), 0);
	assert_int_equal(gids[0], UINT32_MAX - 1);
	assert_int_equal(gids[1], 0);
	g = nss_gids_close(g);
	g = gids_open(fx->db);
	assert_int_equal(nss_gids_get(g, "idp-a"), UINT32_MAX - 1);
	nss_gids_close(g);
}

/* Nothing is published before it is on disk: when the database refuses
 * the transaction, no gid is handed out, in memory or on disk. */
static void gids_not_given_when_the_database_refuses(void **state)
{
	struct fixture *fx = *state;
	struct nss_gids *g = gids_open(fx->db);
	const char *names[] = { "idp-a" };
	uint32_t gids[1] = { 7 };
	char *err = NULL;
	sqlite3 *other;

	/* Another connection holds the write lock longer than the busy timeout. */
	assert_int_equal(sqlite3_open(fx->db, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(nss_gids_assign(g, names, 1, 1000, 2000, NULL, NULL, 1, gids, &err), -EBUSY);
	assert_non_null(err);
	assert_int_equal(gids[0], 0);
	assert_int_equal(nss_gids_get(g, "idp-a"), 0);
	free(err);
	err = NULL;
	assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	/* Once the lock is gone it works. */
	assert_int_equal(nss_gids_assign(g, names, 1, 1000, 2000, NULL, NULL, 1, gids, &err), 0);
	assert_int_equal(gids[0], 1000);
	nss_gids_close(g);
}

/* A database made before the table existed (schema v1, as the first
 * release wrote it) gains it. */
static void gids_migrate_from_v1(void **state)
{
	struct fixture *fx = *state;
	sqlite3 *db = NULL;

	assert_int_equal(sqlite3_open(fx->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"CREATE TABLE grants (id INTEGER PRIMARY KEY, grant_id TEXT, created_us INTEGER, uid INTEGER,"
		" \"user\" TEXT, connection TEXT, protocol TEXT, expires_us INTEGER, \"schema\" TEXT,"
		" reason TEXT, subject TEXT, issuer TEXT, \"groups\" TEXT, prev_hash BLOB NOT NULL,"
		" hash BLOB NOT NULL);"
		"CREATE TABLE statements (id INTEGER PRIMARY KEY, ts_us INTEGER, grant_id TEXT, uid INTEGER,"
		" \"user\" TEXT, connection TEXT, conn_serial INTEGER, sql TEXT, decision TEXT, rule TEXT,"
		" outcome TEXT, sqlstate TEXT, error TEXT, \"rows\" INTEGER, duration_us INTEGER,"
		" subject TEXT, issuer TEXT, \"groups\" TEXT, prev_hash BLOB NOT NULL, hash BLOB NOT NULL);"
		"CREATE TABLE events (id INTEGER PRIMARY KEY, ts_us INTEGER, kind TEXT, grant_id TEXT,"
		" uid INTEGER, \"user\" TEXT, connection TEXT, detail TEXT, prev_hash BLOB NOT NULL,"
		" hash BLOB NOT NULL);"
		"PRAGMA user_version = 1; PRAGMA application_id = 1936483137;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct nss_gids *g = gids_open(fx->db);
	const char *names[] = { "idp-a" };
	uint32_t gids[1];
	assert_int_equal(nss_gids_assign(g, names, 1, 5000, 5001, NULL, NULL, 1, gids, NULL), 0);
	assert_int_equal(gids[0], 5000);
	nss_gids_close(g);
}

/* ---- the host check ---- */

static const char passwd_text[] =
	"root:x:0:0:root:/root:/bin/bash\n"
	"alice:x:1000:1000::/home/alice:/bin/bash\n"
	"postgres:x:105:110::/var/lib/postgresql:/bin/bash\n";
static const char group_text[] =
	"root:x:0:\n"
	"alice:x:1000:\n"
	"ops:x:61005:alice\n";

static struct policy *load_config(const char *identities)
{
	struct pol_errors errs = { 0 };
	struct policy *p = NULL;
	char *text;

	assert_true(asprintf(&text, "[oidc]\nissuer = https://idp.example.com\naudience = urn:sluice\n\n%s",
			     identities) > 0);
	if (policy_load_string("sluice.conf", text, &p, &errs) < 0)
		fail_msg("config refused: %s", errs.n ? errs.v[0] : "?");
	free(text);
	return p;
}

static void expect_errors(struct policy *p, const char *pw, const char *gr, const char *const *want, size_t n)
{
	struct pol_errors errs = { 0 };
	size_t found = policy_check_host(p, pw, gr, &errs);

	if (found != n || errs.n != n) {
		for (size_t i = 0; i < errs.n; i++)
			print_error("  %s\n", errs.v[i]);
		fail_msg("%zu errors, expected %zu", found, n);
	}
	for (size_t i = 0; i < n; i++)
		if (!strstr(errs.v[i], want[i]))
			fail_msg("error %zu: \"%s\" does not say \"%s\"", i, errs.v[i], want[i]);
	pol_errors_clear(&errs);
}

static void host_check(void **state)
{
	struct fixture *fx = *state;
	char pw[128], gr[128];

	snprintf(pw, sizeof(pw), "%s/passwd", fx->dir);
	snprintf(gr, sizeof(gr), "%s/group", fx->dir);
	write_text(pw, passwd_text);
	write_text(gr, group_text);

	/* A service identity of its own: fine. Without uid = a local account
	 * is what it binds, and that is no clash. */
	struct policy *p = load_config("[identity mcp-orders]\nsubject = s1\nuid = 61001\n\n"
				       "[identity alice]\nsubject = s2\n");
	expect_errors(p, pw, gr, NULL, 0);
	policy_free(p);

	/* Lines: section 5, uid 7; 9/11; 13/15. */
	p = load_config("[identity alice2]\nsubject = s1\nuid = 1000\n\n"  /* uid 1000 is alice's, gid 1000 too */
			"[identity postgres]\nsubject = s2\nuid = 61002\n\n"  /* name in passwd */
			"[identity ops]\nsubject = s3\nuid = 61005\n");       /* own group's name and gid in group */
	static const char *const want[] = {
		"sluice.conf:7: uid 1000 of [identity alice2] belongs to alice in",
		"sluice.conf:7: uid 1000 of [identity alice2] is also its own group's gid, which belongs to group alice",
		"sluice.conf:9: [identity postgres] has uid = for NSS, but",
		"sluice.conf:13: [identity ops] has uid = for NSS, and its own group ops would shadow group ops (gid 61005)",
		"sluice.conf:15: uid 61005 of [identity ops] is also its own group's gid, which belongs to group ops",
	};
	expect_errors(p, pw, gr, want, ARRAY_SIZE(want));

	/* An unreadable host file is an error, not a pass. */
	static const char *const unreadable[] = { "cannot read it" };
	expect_errors(p, "/nonexistent/passwd", gr, unreadable, 1);
	expect_errors(p, pw, "/nonexistent/group", unreadable, 1);
	policy_free(p);

	/* Without any uid = the host is not even read. */
	p = load_config("[identity alice]\nsubject = s2\n");
	expect_errors(p, "/nonexistent/passwd", "/nonexistent/group", NULL, 0);
	policy_free(p);
}

static void identity_names_for_nss(void **state)
{
	struct pol_errors errs = { 0 };
	struct policy *p = NULL;
	static const char *const bad[] = {
		"[identity Svc]\nsubject = s\nuid = 61001\n",                        /* upper case */
		"[identity svc]\nsubject = s\nuid = 61001\nhome = /srv/a:b\n",        /* colon in home */
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *text;
		assert_true(asprintf(&text, "[oidc]\nissuer = https://idp.example.com\naudience = urn:sluice\n%s",
				     bad[i]) > 0);
		assert_int_equal(policy_load_string("sluice.conf", text, &p, &errs), -EINVAL);
		assert_int_equal(errs.n, 1);
		pol_errors_clear(&errs);
		free(text);
	}
	/* The same name without uid = binds a local account: allowed. */
	p = load_config("[identity Svc]\nsubject = s\n");
	policy_free(p);
}

static void host_ids(void **state)
{
	struct fixture *fx = *state;
	struct host_ids h = { 0 };
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/group", fx->dir);
	/* A group with many members needs more than the first buffer. */
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "zeta:x:5:\nbig:x:7:");
	for (int i = 0; i < 2000; i++)
		fprintf(f, "%smember%d", i ? "," : "", i);
	fprintf(f, "\nalpha:x:5:\n");
	fclose(f);
	assert_int_equal(host_ids_load(path, true, &h), 0);
	assert_int_equal(h.n, 3);
	assert_int_equal(host_ids_name(&h, "big")->id, 7);
	assert_null(host_ids_name(&h, "member1"));
	assert_string_equal(host_ids_id(&h, 5)->name, host_ids_id(&h, 5)->name);
	assert_non_null(host_ids_id(&h, 7));
	assert_null(host_ids_id(&h, 6));
	host_ids_release(&h);
	assert_int_equal(host_ids_load("/nonexistent", true, &h), -ENOENT);
	assert_int_equal(h.n, 0);
}

/* ---- cost ---- */

/* What a publish costs in rendering and gid assignment with 1,000
 * identities and 1,000 groups (printed; the writes are measured by the
 * integration test with a real agent). */
static void cost_with_a_thousand(void **state)
{
	struct fixture *fx = *state;
	static char names[1000][NSS_NAME_MAX + 1], users[1000][NSS_NAME_MAX + 1];
	const char *gnames[1000];
	struct nss_pair pairs[3000];
	struct buf pw = BUF_INIT(NSS_FILE_MAX), gr = BUF_INIT(NSS_FILE_MAX);
	struct nss_groups gs = { 0 };
	struct timespec t0;
	uint32_t gids[1000];
	double us;

	for (int i = 0; i < 1000; i++) {
		snprintf(names[i], sizeof(names[i]), "idp-group-%04d", i);
		snprintf(users[i], sizeof(users[i]), "svc-%04d", i);
		gnames[i] = names[i];
	}
	/* Each group carried by three of the accounts. */
	for (int i = 0; i < 3000; i++)
		pairs[i] = (struct nss_pair){ names[i % 1000], users[(i * 7) % 1000] };

	struct nss_gids *g = gids_open(fx->db);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(nss_gids_assign(g, gnames, 1000, 880000, 889999, NULL, NULL, 1, gids, NULL), 0);
	us = elapsed_us(&t0);
	print_message("gid assignment: 1,000 new groups in one transaction: %.0f us\n", us);
	assert_int_equal(gids[999], 880999);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < 1000; i++) {
		struct nss_user u = { .name = users[i], .uid = 70000u + (uint32_t)i, .home = "/nonexistent" };
		struct nss_group own = { .name = users[i], .gid = u.uid };
		assert_int_equal(nss_render_user(&pw, &u), 0);
		assert_int_equal(nss_render_group(&gr, &own), 0);
	}
	assert_int_equal(nss_groups_collect(pairs, ARRAY_SIZE(pairs), &gs), 0);
	assert_int_equal(gs.n, 1000);
	for (size_t i = 0; i < gs.n; i++) {
		gs.v[i].gid = nss_gids_get(g, gs.v[i].name);
		assert_int_equal(nss_render_group(&gr, &gs.v[i]), 0);
	}
	us = elapsed_us(&t0);
	print_message("rendering: 1,000 identities and 1,000 groups of 3 members (%zu + %zu bytes): %.0f us\n",
		      pw.len, gr.len, us);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(nss_write_file(fx->dir, "passwd", pw.data, pw.len, NULL), 0);
	assert_int_equal(nss_write_file(fx->dir, "group", gr.data, gr.len, NULL), 0);
	us = elapsed_us(&t0);
	print_message("writing both files (fsync each) in %s: %.0f us\n", fx->dir, us);

	nss_groups_release(&gs);
	nss_gids_close(g);
	buf_release(&pw, 0);
	buf_release(&gr, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(group_names),
		cmocka_unit_test(user_and_group_lines),
		cmocka_unit_test(line_limit),
		cmocka_unit_test(memberships),
		cmocka_unit_test_setup_teardown(atomic_files, setup, teardown),
		cmocka_unit_test_setup_teardown(gids_stable_and_never_reused, setup, teardown),
		cmocka_unit_test_setup_teardown(gids_at_the_top, setup, teardown),
		cmocka_unit_test_setup_teardown(gids_not_given_when_the_database_refuses, setup, teardown),
		cmocka_unit_test_setup_teardown(gids_migrate_from_v1, setup, teardown),
		cmocka_unit_test_setup_teardown(host_check, setup, teardown),
		cmocka_unit_test(identity_names_for_nss),
		cmocka_unit_test_setup_teardown(host_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(cost_with_a_thousand, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
