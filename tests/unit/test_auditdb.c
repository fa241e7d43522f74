/* The session database: schema and migrations, the hash chain, queries
 * with filters, and verification catching hand edits. */
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
#include <unistd.h>
#include <cmocka.h>

#include "common/auditdb.h"

struct fixture {
	char dir[64];
	char path[96];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_auditdb.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/sluice.db", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char p[128];
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };

	for (size_t k = 0; k < ARRAY_SIZE(sfx); k++) {
		snprintf(p, sizeof(p), "%s%s", fx->path, sfx[k]);
		unlink(p);
	}
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static sqlite3 *open_rw(const char *path)
{
	sqlite3 *db = NULL;
	char *err = NULL;
	int r = auditdb_open(path, false, &db, &err);

	if (r < 0)
		fail_msg("auditdb_open: %d %s", r, err ? err : "");
	free(err);
	return db;
}

static void close_rw(sqlite3 *db, struct auditdb_chain *c)
{
	auditdb_chain_release(c);
	assert_int_equal(sqlite3_close(db), SQLITE_OK); /* nothing left prepared */
}

/* A raw connection, as a person with sqlite3(1) would edit the file. */
static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg ? msg : "?");
	sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -12345;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static struct auditdb_statement_row stmt(int64_t ts, const char *user, const char *grant,
					 const char *decision, const char *sql)
{
	return (struct auditdb_statement_row){
		.ts_us = ts, .grant_id = grant, .uid = 1000, .user = user, .connection = "orders-pg",
		.conn_serial = 1, .sql = sql, .decision = decision, .rule = NULL, .outcome = "SELECT 1",
		.sqlstate = NULL, .error = NULL, .rows = 1, .duration_us = 250,
	};
}

/* Ten statements, three events, two grants. */
static void populate(sqlite3 *db, struct auditdb_chain *c)
{
	static const char *const users[] = { "alice", "bob" };
	static const char *const grants[] = { "g1", "g2", "g3" };
	char sql[64];

	for (int k = 1; k <= 10; k++) {
		snprintf(sql, sizeof(sql), "SELECT %d", k);
		struct auditdb_statement_row r = stmt(1000 * k, users[k % 2], grants[k % 3],
						      k % 4 == 0 ? "blocked" : "allowed", sql);
		assert_int_equal(auditdb_insert_statement(db, c, &r), 0);
	}
	for (int k = 1; k <= 3; k++) {
		struct auditdb_event_row e = { .ts_us = 500 * k, .kind = "grant.created",
					       .grant_id = grants[k - 1], .uid = k == 2 ? -1 : 1000,
					       .user = users[k % 2], .connection = "orders-pg",
					       .detail = k == 3 ? "" : NULL };
		assert_int_equal(auditdb_insert_event(db, c, &e), 0);
	}
	for (int k = 1; k <= 2; k++) {
		struct auditdb_grant_row g = { .created_us = 100 * k, .grant_id = grants[k - 1],
					       .uid = 1000 + k, .user = users[k % 2],
					       .connection = "orders-pg", .protocol = "postgres",
					       .expires_us = 100 * k + 900, .schema = k == 1 ? "ops" : NULL,
					       .reason = "ticket 42", .groups = "data-readers" };
		assert_int_equal(auditdb_insert_grant(db, c, &g), 0);
	}
}

static void verify_expect(const char *path, bool ok, const char *table, int64_t bad_id, const char *word)
{
	sqlite3 *db = NULL;
	char *err = NULL;
	struct auditdb_verify_result res;

	assert_int_equal(auditdb_open(path, true, &db, &err), 0);
	assert_int_equal(auditdb_verify(db, &res), 0);
	if (res.ok != ok)
		fail_msg("verify ok=%d, expected %d (%s %lld: %s)", res.ok, ok,
			 res.table ? res.table : "-", (long long)res.first_bad_id, res.detail);
	if (!ok) {
		assert_non_null(res.table);
		assert_string_equal(res.table, table);
		assert_int_equal(res.first_bad_id, bad_id);
		if (!strstr(res.detail, word))
			fail_msg("detail \"%s\" does not say \"%s\"", res.detail, word);
	}
	sqlite3_close(db);
}

struct collected {
	int64_t ids[64];
	size_t n;
	struct auditdb_statement_row first;
	char first_sql[64];
	bool first_rule_null, first_error_null;
	int stop_after;
};

static int collect_stmt(const struct auditdb_statement_row *r, void *ud)
{
	struct collected *c = ud;

	if (c->n == 0) {
		c->first = *r;
		snprintf(c->first_sql, sizeof(c->first_sql), "%.*s", (int)r->sql_len, r->sql);
		c->first_rule_null = r->rule == NULL;
		c->first_error_null = r->error == NULL;
	}
	c->ids[c->n++] = r->id;
	if (c->stop_after && (int)c->n == c->stop_after)
		return -ECANCELED;
	return 0;
}

static int collect_event(const struct auditdb_event_row *r, void *ud)
{
	struct collected *c = ud;
	c->ids[c->n++] = r->id;
	return 0;
}

static int collect_grant(const struct auditdb_grant_row *r, void *ud)
{
	struct collected *c = ud;
	c->ids[c->n++] = r->id;
	return 0;
}

static int check_grant(const struct auditdb_grant_row *r, void *ud)
{
	int *n = ud;

	++*n;
	assert_int_equal(r->id, *n);
	assert_int_equal(r->created_us, 100 * *n);
	assert_string_equal(r->grant_id, *n == 1 ? "g1" : "g2");
	assert_int_equal(r->uid, 1000 + *n);
	assert_string_equal(r->user, *n == 1 ? "bob" : "alice");
	assert_string_equal(r->connection, "orders-pg");
	assert_string_equal(r->protocol, "postgres");
	assert_int_equal(r->expires_us, 100 * *n + 900);
	if (*n == 1)
		assert_string_equal(r->schema, "ops");
	else
		assert_null(r->schema);
	assert_string_equal(r->reason, "ticket 42");
	assert_null(r->subject);
	assert_null(r->issuer);
	assert_string_equal(r->groups, "data-readers");
	return 0;
}

static int check_event(const struct auditdb_event_row *r, void *ud)
{
	int *n = ud;

	++*n;
	assert_int_equal(r->id, *n);
	assert_int_equal(r->ts_us, 500 * *n);
	assert_string_equal(r->kind, "grant.created");
	assert_string_equal(r->grant_id, *n == 1 ? "g1" : *n == 2 ? "g2" : "g3");
	assert_int_equal(r->uid, *n == 2 ? -1 : 1000);
	assert_string_equal(r->user, *n == 2 ? "alice" : "bob");
	assert_string_equal(r->connection, "orders-pg");
	if (*n == 3)
		assert_string_equal(r->detail, "");
	else
		assert_null(r->detail);
	return 0;
}

static void assert_ids(const struct collected *c, const int64_t *want, size_t n)
{
	if (c->n != n)
		fail_msg("got %zu rows, want %zu", c->n, n);
	for (size_t k = 0; k < n; k++)
		assert_int_equal(c->ids[k], want[k]);
}

static void chain_round_trip(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	assert_int_equal(c.last_id[1], 10);

	/* Values come back as stored, NULL distinct from "" and -1 from 0. */
	struct collected got = { 0 };
	assert_int_equal(auditdb_each_statement(db, NULL, collect_stmt, &got), 0);
	assert_int_equal(got.n, 10);
	assert_int_equal(got.first.id, 1);
	assert_int_equal(got.first.ts_us, 1000);
	assert_string_equal(got.first_sql, "SELECT 1");
	assert_true(got.first_rule_null);
	assert_true(got.first_error_null);
	assert_int_equal(got.first.rows, 1);
	assert_int_equal(got.first.duration_us, 250);
	assert_int_equal(got.first.uid, 1000);
	assert_int_equal(got.first.conn_serial, 1);
	int ng = 0, ne = 0;
	assert_int_equal(auditdb_each_grant(db, NULL, check_grant, &ng), 0);
	assert_int_equal(ng, 2);
	assert_int_equal(auditdb_each_event(db, NULL, check_event, &ne), 0);
	assert_int_equal(ne, 3);
	close_rw(db, &c);
	verify_expect(fx->path, true, NULL, 0, NULL);

	/* A fresh handle continues the chains from the file. */
	struct auditdb_chain c2 = { 0 };
	db = open_rw(fx->path);
	struct auditdb_statement_row r = stmt(99000, "carol", "g9", "refused", "DROP TABLE x");
	r.rows = -1;
	r.duration_us = -1;
	r.sql_len = 4; /* only "DROP" */
	assert_int_equal(auditdb_insert_statement(db, &c2, &r), 0);
	assert_int_equal(c2.last_id[1], 11);
	assert_int_equal(c2.last_id[2], 3);
	close_rw(db, &c2);
	assert_int_equal(raw_int(fx->path, "SELECT \"rows\" IS NULL AND duration_us IS NULL "
				 "AND sql = 'DROP' FROM statements WHERE id = 11"), 1);

	sqlite3 *ro = NULL;
	char *err = NULL;
	struct auditdb_verify_result res;
	assert_int_equal(auditdb_open(fx->path, true, &ro, &err), 0);
	assert_int_equal(auditdb_verify(ro, &res), 0);
	assert_true(res.ok);
	assert_int_equal(res.rows_checked, 11 + 3 + 2);
	sqlite3_close(ro);
}

static void verify_catches_edited_column(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	close_rw(db, &c);
	raw_exec(fx->path, "UPDATE statements SET sql = 'SELECT 99' WHERE id = 7");
	verify_expect(fx->path, false, "statements", 7, "hash mismatch");
}

static void verify_catches_null_to_empty(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	close_rw(db, &c);
	/* NULL -> "" and a number's type are both part of the hash. */
	raw_exec(fx->path, "UPDATE events SET detail = '' WHERE id = 2");
	verify_expect(fx->path, false, "events", 2, "hash mismatch");
}

static void verify_catches_type_change(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	close_rw(db, &c);
	raw_exec(fx->path, "UPDATE grants SET uid = '1002' WHERE id = 2");
	/* uid is INTEGER affinity, so SQLite converts '1002' back: unchanged. */
	verify_expect(fx->path, true, NULL, 0, NULL);
	raw_exec(fx->path, "UPDATE grants SET uid = 1002.5 WHERE id = 2");
	verify_expect(fx->path, false, "grants", 2, "hash mismatch");
}

static void verify_catches_deleted_row(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	close_rw(db, &c);
	raw_exec(fx->path, "DELETE FROM statements WHERE id = 5");
	verify_expect(fx->path, false, "statements", 6, "gap");
}

static void verify_catches_deleted_first_row(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	close_rw(db, &c);
	raw_exec(fx->path, "DELETE FROM events WHERE id = 1");
	verify_expect(fx->path, false, "events", 2, "gap");
}

static void verify_catches_renumbered_rows(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	close_rw(db, &c);
	/* Delete row 5 and renumber the rest down: no gap, but ids are hashed. */
	raw_exec(fx->path, "DELETE FROM statements WHERE id = 5;"
		 "UPDATE statements SET id = id - 1 WHERE id > 5");
	verify_expect(fx->path, false, "statements", 5, "prev_hash does not link");
}

static void verify_catches_swapped_rows(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	close_rw(db, &c);
	/* Swap rows 3 and 4 whole (hashes included), keeping ids in order. */
	raw_exec(fx->path, "UPDATE statements SET id = -3 WHERE id = 3;"
		 "UPDATE statements SET id = 3 WHERE id = 4;"
		 "UPDATE statements SET id = 4 WHERE id = -3");
	verify_expect(fx->path, false, "statements", 3, "prev_hash does not link");
}

static void verify_catches_swapped_content(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	close_rw(db, &c);
	/* Exchange two rows' SQL text: each row's own hash no longer matches. */
	raw_exec(fx->path, "UPDATE statements SET sql = CASE id WHEN 8 THEN 'SELECT 9' "
		 "ELSE 'SELECT 8' END WHERE id IN (8, 9)");
	verify_expect(fx->path, false, "statements", 8, "hash mismatch");
}

static void verify_catches_replaced_hash(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	close_rw(db, &c);
	raw_exec(fx->path, "UPDATE grants SET hash = zeroblob(32) WHERE id = 1");
	verify_expect(fx->path, false, "grants", 1, "hash mismatch");
}

static void migrations_and_reopen(void **state)
{
	struct fixture *fx = *state;
	struct stat sb;
	int fd;

	/* An empty file (e.g. made by tmpfiles.d) is migrated like a new one. */
	umask(022);
	fd = open(fx->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	sqlite3 *db = open_rw(fx->path);
	sqlite3_close(db);
	assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), 3);
	/* grants, statements, events, nss_groups (whose keys add two indexes) */
	assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"), 4);
	assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"), 10);
	assert_int_equal(stat(fx->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600); /* an existing file keeps its mode */

	/* A missing file is created 0640 and put in WAL mode. */
	unlink(fx->path);
	db = open_rw(fx->path);
	assert_int_equal(stat(fx->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0640);
	struct auditdb_chain c = { 0 };
	populate(db, &c);
	close_rw(db, &c);
	assert_int_equal(raw_int(fx->path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);

	/* Reopening keeps the data and the version. */
	db = open_rw(fx->path);
	sqlite3_close(db);
	assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), 3);
	assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM statements"), 10);
	verify_expect(fx->path, true, NULL, 0, NULL);
}

struct got {
	const uint8_t *want;
	size_t n, len;
	int64_t id;
	bool same;
};

static int got_result(const struct auditdb_statement_row *row, void *ud)
{
	struct got *g = ud;

	g->n++;
	g->id = row->id;
	g->len = row->result_len;
	g->same = row->result && memcmp(row->result, g->want, row->result_len) == 0;
	return 0;
}

static sqlite3 *open_ro(const char *path)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	assert_int_equal(auditdb_open(path, true, &db, &err), 0);
	assert_null(err);
	return db;
}

/* statements.result (v3): hashed with its row when recorded; rows from
 * before the column existed keep their hash. */
static void recorded_results(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	static const uint8_t blob[] = { 'S', 'L', 'R', '1', 'U', 'T', 'F', '8', 0, 0, 'T', 0, 0, 0, 6, 0, 0 };
	struct auditdb_statement_row r = stmt(99000, "alice", "g1", "allowed", "SELECT 1");
	struct auditdb_filter f = { .id = 11 };
	struct got got = { .want = blob };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	close_rw(db, &c);
	/* The same rows as a v2 database wrote them: no result column. */
	raw_exec(fx->path, "ALTER TABLE statements DROP COLUMN result; PRAGMA user_version = 2");
	/* sluicectl reads it as it is: no result column, every result NULL. */
	db = open_ro(fx->path);
	{
		struct auditdb_filter all = { 0 };
		struct got none = { .want = blob };

		assert_int_equal(auditdb_each_statement(db, &all, got_result, &none), 0);
		assert_int_equal(none.n, 10);
		assert_int_equal(none.len, 0);
	}
	sqlite3_close(db);
	verify_expect(fx->path, true, NULL, 0, NULL);
	db = open_rw(fx->path); /* migrates to v3 again */
	sqlite3_close(db);
	assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), 3);
	verify_expect(fx->path, true, NULL, 0, NULL);

	db = open_rw(fx->path);
	r.result = blob;
	r.result_len = sizeof(blob);
	assert_int_equal(auditdb_insert_statement(db, &c, &r), 0);
	close_rw(db, &c);
	verify_expect(fx->path, true, NULL, 0, NULL);
	db = open_ro(fx->path);
	assert_int_equal(auditdb_each_statement(db, &f, got_result, &got), 0);
	sqlite3_close(db);
	assert_int_equal(got.n, 1);
	assert_int_equal(got.id, 11);
	assert_int_equal(got.len, sizeof(blob));
	assert_true(got.same);

	/* An edited result breaks the row's hash, and so does removing it. */
	raw_exec(fx->path, "UPDATE statements SET result = x'00' WHERE id = 11");
	verify_expect(fx->path, false, "statements", 11, "hash mismatch");
	raw_exec(fx->path, "UPDATE statements SET result = NULL WHERE id = 11");
	verify_expect(fx->path, false, "statements", 11, "hash mismatch");
}

static void refuses_unknown_versions(void **state)
{
	struct fixture *fx = *state;
	sqlite3 *db = NULL;
	char *err = NULL;

	/* Read-only: the file must exist. */
	assert_true(auditdb_open(fx->path, true, &db, &err) < 0);
	assert_null(db);
	assert_non_null(err);
	free(err);
	err = NULL;

	db = open_rw(fx->path);
	sqlite3_close(db);
	db = NULL;
	raw_exec(fx->path, "PRAGMA user_version = 99");
	assert_int_equal(auditdb_open(fx->path, true, &db, &err), -EPROTONOSUPPORT);
	assert_null(db);
	assert_non_null(err);
	if (!strstr(err, "version 99") || !strstr(err, "newer"))
		fail_msg("unclear message: %s", err);
	free(err);
	err = NULL;
	/* Nor does the writer touch it. */
	assert_int_equal(auditdb_open(fx->path, false, &db, &err), -EPROTONOSUPPORT);
	assert_null(db);
	free(err);
	err = NULL;

	/* Some other program's database is not ours to migrate. */
	unlink(fx->path);
	raw_exec(fx->path, "CREATE TABLE t(x)");
	assert_int_equal(auditdb_open(fx->path, false, &db, &err), -EBADMSG);
	assert_non_null(strstr(err, "not a sluice audit database"));
	free(err);
	err = NULL;
	assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sqlite_master"), 1);
}

static void filters(void **state)
{
	struct fixture *fx = *state;
	struct auditdb_chain c = { 0 };
	sqlite3 *db = open_rw(fx->path);

	populate(db, &c);
	/* Statements k = 1..10: user alice for even k, bob for odd; grant
	 * g(k%3+1); blocked when k%4 == 0; ts 1000k. */
	struct {
		struct auditdb_filter f;
		int64_t want[10];
		size_t n;
	} cases[] = {
		{ { 0 }, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 }, 10 },
		{ { .since_us = 7000 }, { 7, 8, 9, 10 }, 4 },
		{ { .user = "alice" }, { 2, 4, 6, 8, 10 }, 5 },
		{ { .grant_id = "g1" }, { 3, 6, 9 }, 3 },
		{ { .decision = "blocked" }, { 4, 8 }, 2 },
		{ { .user = "alice", .decision = "allowed" }, { 2, 6, 10 }, 3 },
		{ { .limit = 3 }, { 8, 9, 10 }, 3 },
		{ { .user = "bob", .limit = 2 }, { 7, 9 }, 2 },
		{ { .since_us = 2000, .user = "bob", .grant_id = "g2", .limit = 10 }, { 7 }, 1 },
		{ { .user = "nobody" }, { 0 }, 0 },
		{ { .user = "alice' OR '1'='1" }, { 0 }, 0 },
	};
	for (size_t k = 0; k < ARRAY_SIZE(cases); k++) {
		struct collected got = { 0 };
		assert_int_equal(auditdb_each_statement(db, &cases[k].f, collect_stmt, &got), 0);
		assert_ids(&got, cases[k].want, cases[k].n);
	}

	/* Events: decision does not apply; user/grant/since do. */
	struct collected ev = { 0 };
	struct auditdb_filter f = { .decision = "blocked", .user = "bob" };
	assert_int_equal(auditdb_each_event(db, &f, collect_event, &ev), 0);
	assert_ids(&ev, (int64_t[]){ 1, 3 }, 2);
	ev = (struct collected){ 0 };
	f = (struct auditdb_filter){ .since_us = 1000, .grant_id = "g3" };
	assert_int_equal(auditdb_each_event(db, &f, collect_event, &ev), 0);
	assert_ids(&ev, (int64_t[]){ 3 }, 1);

	struct collected gr = { 0 };
	f = (struct auditdb_filter){ .limit = 1 };
	assert_int_equal(auditdb_each_grant(db, &f, collect_grant, &gr), 0);
	assert_ids(&gr, (int64_t[]){ 2 }, 1);
	gr = (struct collected){ 0 };
	f = (struct auditdb_filter){ .user = "alice" };
	assert_int_equal(auditdb_each_grant(db, &f, collect_grant, &gr), 0);
	assert_ids(&gr, (int64_t[]){ 2 }, 1);

	/* A callback's error stops the walk and is returned. */
	struct collected stop = { .stop_after = 2 };
	assert_int_equal(auditdb_each_statement(db, NULL, collect_stmt, &stop), -ECANCELED);
	assert_int_equal(stop.n, 2);
	close_rw(db, &c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(chain_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_catches_edited_column, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_catches_null_to_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_catches_type_change, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_catches_deleted_row, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_catches_deleted_first_row, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_catches_renumbered_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_catches_swapped_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_catches_swapped_content, setup, teardown),
		cmocka_unit_test_setup_teardown(verify_catches_replaced_hash, setup, teardown),
		cmocka_unit_test_setup_teardown(migrations_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(recorded_results, setup, teardown),
		cmocka_unit_test_setup_teardown(refuses_unknown_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(filters, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
