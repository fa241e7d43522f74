/* The agent's audit writer: everything queued reaches the database, the
 * queue is bounded by records and bytes, the event loop side never waits on
 * the disk, and a write failure refuses new statements without losing the
 * queued ones until the disk works again. */
#include "config.h"
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent/audit.h"
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
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_audit.XXXXXX");
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

static struct audit *open_audit(const char *path, size_t records, size_t bytes)
{
	struct audit *a = NULL;
	char *err = NULL;
	int r = audit_open(path, records, bytes, &a, &err);

	if (r < 0)
		fail_msg("audit_open: %d %s", r, err ? err : "");
	free(err);
	return a;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

/* Poll until the queue is empty (and, when healthy is set, no failure). */
static bool wait_drained(struct audit *a, bool healthy, int timeout_ms)
{
	for (int t = 0; t < timeout_ms; t += 10) {
		if (audit_queued(a) == 0 && (!healthy || audit_failure(a) == NULL))
			return true;
		sleep_ms(10);
	}
	return false;
}

static int64_t count_rows(const char *path, const char *table)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char sql[64];
	int64_t n = -1;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", table);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

static void assert_chain_ok(const char *path, size_t rows)
{
	sqlite3 *db = NULL;
	char *err = NULL;
	struct auditdb_verify_result res;

	assert_int_equal(auditdb_open(path, true, &db, &err), 0);
	assert_int_equal(auditdb_verify(db, &res), 0);
	if (!res.ok)
		fail_msg("chain broken: %s %lld: %s", res.table, (long long)res.first_bad_id, res.detail);
	assert_int_equal(res.rows_checked, rows);
	sqlite3_close(db);
}

static struct audit_statement statement(const char *sql, size_t len, int64_t ts)
{
	return (struct audit_statement){
		.ts_us = ts, .grant_id = "g-1", .uid = 61001, .user = "mcp-orders",
		.connection = "orders-pg", .conn_serial = 1, .sql = sql, .sql_len = len,
		.decision = AUDIT_ALLOWED, .outcome = "SELECT 1", .rows = 1, .duration_us = 120,
	};
}

/* Reserve (retrying while the queue is full) and queue one statement. */
static void queue_statement(struct audit *a, const struct audit_statement *s)
{
	int r;

	/* The writer frees room quickly; a queue that stays full is a bug. */
	for (int t = 0; (r = audit_reserve(a, s->sql_len)) == -ENOSPC && t < 30000; t++)
		sleep_ms(1);
	assert_int_equal(r, 0);
	audit_statement(a, s, s->sql_len);
}

struct first_rows {
	int n;
	char sql[64];
	const char *want_sql;
};

static int check_statement(const struct auditdb_statement_row *r, void *ud)
{
	struct first_rows *f = ud;

	if (++f->n != 1)
		return 0;
	assert_int_equal(r->id, 1);
	assert_int_equal(r->ts_us, 1);
	assert_string_equal(r->grant_id, "g-1");
	assert_int_equal(r->uid, 61001);
	assert_string_equal(r->user, "mcp-orders");
	assert_string_equal(r->decision, "allowed");
	assert_null(r->rule);
	assert_null(r->error);
	assert_int_equal(r->sql_len, strlen(f->want_sql));
	assert_memory_equal(r->sql, f->want_sql, r->sql_len);
	return 0;
}

static void writes_everything_queued(void **state)
{
	struct fixture *fx = *state;
	struct audit *a = open_audit(fx->path, 1000, 1 << 20);
	/* A multi-statement string: the record holds only the first part. */
	static const char text[] = "SELECT 1;SELECT 2";
	char sql[64];

	struct audit_statement s = statement(text, 8, 1);
	queue_statement(a, &s);
	for (int k = 2; k <= 500; k++) {
		int n = snprintf(sql, sizeof(sql), "SELECT * FROM t WHERE id = %d", k);
		s = statement(sql, (size_t)n, k);
		queue_statement(a, &s);
	}
	for (int k = 0; k < 5; k++) {
		struct audit_event e = { .ts_us = k, .kind = "grant.created", .grant_id = "g-1",
					 .has_uid = k % 2, .uid = 61001, .user = "mcp-orders",
					 .detail = "ttl 15m" };
		assert_int_equal(audit_event(a, &e), 0);
	}
	for (int k = 0; k < 3; k++) {
		struct audit_grant g = { .created_us = k, .id = "g-1", .uid = 61001, .user = "mcp-orders",
					 .connection = "orders-pg", .protocol = "postgres",
					 .expires_us = k + 900000000 };
		assert_int_equal(audit_grant(a, &g), 0);
	}
	/* The writer gets there on its own, without a close. */
	assert_true(wait_drained(a, true, 10000));
	assert_int_equal(count_rows(fx->path, "statements"), 500);
	assert_int_equal(count_rows(fx->path, "events"), 5);
	assert_int_equal(count_rows(fx->path, "grants"), 3);

	sqlite3 *db = NULL;
	char *err = NULL;
	struct first_rows f = { .want_sql = "SELECT 1" };
	assert_int_equal(auditdb_open(fx->path, true, &db, &err), 0);
	assert_int_equal(auditdb_each_statement(db, NULL, check_statement, &f), 0);
	assert_int_equal(f.n, 500);
	sqlite3_close(db);
	assert_chain_ok(fx->path, 508);
	assert_null(audit_close(a));
}

static void close_flushes(void **state)
{
	struct fixture *fx = *state;
	struct audit *a = open_audit(fx->path, 100000, 64 << 20);

	for (int k = 0; k < 3000; k++) {
		struct audit_statement s = statement("SELECT now()", 12, k);
		queue_statement(a, &s);
	}
	a = audit_close(a);
	assert_int_equal(count_rows(fx->path, "statements"), 3000);
	assert_chain_ok(fx->path, 3000);

	/* Reopening continues the chain. */
	a = open_audit(fx->path, 10, 1 << 20);
	struct audit_statement s = statement("SELECT 2", 8, 1);
	queue_statement(a, &s);
	a = audit_close(a);
	assert_chain_ok(fx->path, 3001);
}

static void reservation_accounting(void **state)
{
	struct fixture *fx = *state;
	/* Bytes allow three 100-byte statements and a little more. */
	struct audit *a = open_audit(fx->path, 100, 3 * (100 + AUDIT_RECORD_OVERHEAD) + 50);
	struct audit_event e = { .ts_us = 1, .kind = "connection.refused", .user = "x" };

	for (int k = 0; k < 3; k++)
		assert_int_equal(audit_reserve(a, 100), 0);
	assert_int_equal(audit_reserve(a, 100), -ENOSPC);
	assert_int_equal(audit_reserve(a, 1), -ENOSPC);
	assert_int_equal(audit_event(a, &e), -ENOSPC);  /* events check too */
	audit_unreserve(a, 100);
	assert_int_equal(audit_event(a, &e), 0);
	assert_true(wait_drained(a, true, 5000));
	assert_int_equal(audit_reserve(a, 100), 0);
	assert_int_equal(audit_reserve(a, 100), -ENOSPC);
	/* A hint larger than the whole queue can never fit. */
	audit_unreserve(a, 100);
	assert_int_equal(audit_reserve(a, (size_t)1 << 30), -ENOSPC);
	assert_int_equal(audit_reserve(a, SIZE_MAX), -ENOSPC);

	/* Consuming the three reservations with bigger records than hinted
	 * still queues them all; the writer then frees the room. */
	assert_int_equal(audit_reserve(a, 100), 0);   /* three outstanding again */
	char *big = malloc(4000);
	assert_non_null(big);
	memset(big, 'x', 4000);
	for (int k = 0; k < 3; k++) {
		struct audit_statement s = statement(big, 4000, k);
		audit_statement(a, &s, 100);
	}
	free(big);
	assert_true(wait_drained(a, true, 5000));
	assert_int_equal(count_rows(fx->path, "statements"), 3);
	assert_int_equal(audit_reserve(a, 100), 0);
	audit_unreserve(a, 100);
	a = audit_close(a);

	/* The record bound, with bytes to spare. */
	a = open_audit(fx->path, 4, 1 << 20);
	for (int k = 0; k < 4; k++)
		assert_int_equal(audit_reserve(a, 10), 0);
	assert_int_equal(audit_reserve(a, 10), -ENOSPC);
	assert_int_equal(audit_event(a, &e), -ENOSPC);
	struct audit_grant g = { .id = "g", .user = "u", .connection = "c", .protocol = "postgres" };
	assert_int_equal(audit_grant(a, &g), -ENOSPC);
	struct audit_statement s = statement("SELECT 1", 8, 1);
	audit_statement(a, &s, 10);
	assert_true(wait_drained(a, true, 5000));
	assert_int_equal(audit_reserve(a, 10), 0);      /* the written one freed its slot */
	assert_int_equal(audit_reserve(a, 10), -ENOSPC);
	for (int k = 0; k < 4; k++)
		audit_unreserve(a, 10);
	assert_int_equal(audit_grant(a, &g), 0);
	a = audit_close(a);
	assert_int_equal(count_rows(fx->path, "grants"), 1);
	assert_chain_ok(fx->path, 4 + 1 + 1);
}

static void event_loop_never_waits_for_disk(void **state)
{
	struct fixture *fx = *state;
	struct audit *a = open_audit(fx->path, 50, 1 << 20);
	sqlite3 *other = NULL;
	int64_t worst = 0, t0;
	int queued = 0, r;

	/* Another connection holds the write lock: the writer is stuck in
	 * SQLite's busy wait. */
	assert_int_equal(sqlite3_open(fx->path, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	t0 = mono_us();
	for (;;) {
		struct audit_statement s = statement("SELECT 1", 8, queued);
		int64_t t = mono_us();
		r = audit_reserve(a, 8);
		if (r == 0)
			audit_statement(a, &s, 8);
		worst = MAX(worst, mono_us() - t);
		if (r < 0)
			break;
		queued++;
	}
	assert_int_equal(r, -ENOSPC);   /* full, not failed */
	assert_int_equal(queued, 50);
	sleep_ms(1000);
	assert_int_equal(audit_reserve(a, 8), -ENOSPC);
	assert_int_equal(audit_queued(a), 50);
	assert_null(audit_failure(a));
	print_message("slowest queue call while the writer was blocked: %lld us\n", (long long)worst);
	assert_true(worst < 100000);
	assert_true(mono_us() - t0 >= 1000000);

	/* The lock goes away: everything arrives. */
	assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(other);
	assert_true(wait_drained(a, true, 10000));
	assert_int_equal(count_rows(fx->path, "statements"), 50);
	a = audit_close(a);
	assert_chain_ok(fx->path, 50);
}

static void set_fsize(rlim_t soft)
{
	struct rlimit rl;

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = soft;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

static void write_failure_refuses_then_recovers(void **state)
{
	struct fixture *fx = *state;
	struct audit *a = open_audit(fx->path, 100, 1 << 20);
	struct audit_event e = { .ts_us = 1, .kind = "grant.ended", .grant_id = "g-1" };
	struct rlimit saved;
	const char *why;
	char why_copy[512] = "";
	int r_reserve, r_event, r_grant, r_reserve2;
	size_t queued_while_failed;
	bool failed = false;

	for (int k = 0; k < 10; k++) {
		struct audit_statement s = statement("SELECT 0", 8, k);
		queue_statement(a, &s);
	}
	assert_true(wait_drained(a, true, 5000));
	/* Two statements were admitted while the audit was healthy. */
	assert_int_equal(audit_reserve(a, 8), 0);
	assert_int_equal(audit_reserve(a, 8), 0);

	/* Now every file write fails with EFBIG (SIGXFSZ ignored). Nothing in
	 * this window may print: stdout may itself be a file. */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
	set_fsize(0);
	struct audit_statement s1 = statement("SELECT 'during 1'", 17, 100);
	audit_statement(a, &s1, 8);
	for (int t = 0; t < 5000 && !failed; t += 10) {
		failed = audit_failure(a) != NULL;
		if (!failed)
			sleep_ms(10);
	}
	why = audit_failure(a);
	if (why)
		snprintf(why_copy, sizeof(why_copy), "%s", why);
	/* The admitted statement still gets its record; nothing new is admitted. */
	struct audit_statement s2 = statement("SELECT 'during 2'", 17, 101);
	audit_statement(a, &s2, 8);
	r_reserve = audit_reserve(a, 8);
	r_event = audit_event(a, &e);
	struct audit_grant g = { .id = "g-2", .user = "u", .connection = "c", .protocol = "postgres" };
	r_grant = audit_grant(a, &g);
	sleep_ms(1500);   /* at least one retry, still failing */
	r_reserve2 = audit_reserve(a, 8);
	queued_while_failed = audit_queued(a);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);

	assert_true(failed);
	print_message("while failed: %s\n", why_copy);
	assert_non_null(strstr(why_copy, fx->path));
	assert_true(strstr(why_copy, "File too large") || strstr(why_copy, "full") ||
		    strstr(why_copy, "file size limit"));
	assert_int_equal(r_reserve, -EIO);
	assert_int_equal(r_event, -EIO);
	assert_int_equal(r_grant, -EIO);
	assert_int_equal(r_reserve2, -EIO);
	assert_int_equal(queued_while_failed, 2);

	/* With the limit lifted, the retry writes the kept records and the
	 * audit is healthy again. */
	assert_true(wait_drained(a, true, 10000));
	assert_null(audit_failure(a));
	assert_int_equal(count_rows(fx->path, "statements"), 12);
	assert_int_equal(audit_reserve(a, 8), 0);
	audit_unreserve(a, 8);
	assert_int_equal(audit_event(a, &e), 0);
	a = audit_close(a);
	assert_int_equal(count_rows(fx->path, "events"), 1);
	assert_chain_ok(fx->path, 13);
}

static void open_errors(void **state)
{
	struct fixture *fx = *state;
	struct audit *a = NULL;
	char *err = NULL;
	char path[160];

	snprintf(path, sizeof(path), "%s/missing/sluice.db", fx->dir);
	assert_true(audit_open(path, 10, 1 << 20, &a, &err) < 0);
	assert_null(a);
	assert_non_null(err);
	assert_non_null(strstr(err, path));
	free(err);
	assert_int_equal(audit_open(fx->path, 0, 1 << 20, &a, NULL), -EINVAL);
	assert_null(audit_close(NULL));
	assert_int_equal(audit_reserve(NULL, 1), -EIO);
}

static void throughput(void **state)
{
	struct fixture *fx = *state;
	struct audit *a = open_audit(fx->path, 65536, 64 << 20);
	const int n = 100000;
	char sql[128];
	int64_t t0, dt;

	t0 = mono_us();
	for (int k = 0; k < n; k++) {
		int len = snprintf(sql, sizeof(sql),
				   "SELECT id, name, email FROM ops.customers WHERE id = %d", k);
		struct audit_statement s = statement(sql, (size_t)len, k);
		queue_statement(a, &s);
	}
	assert_true(wait_drained(a, true, 120000));
	dt = mono_us() - t0;
	print_message("audit writer: %d statements in %.2f s = %.0f rows/s\n", n, dt / 1e6,
		      n / (dt / 1e6));
	/* Generous floor (sanitizer builds, slow disks); typical is far above. */
	assert_true(n / (dt / 1e6) > 5000);
	a = audit_close(a);
	assert_int_equal(count_rows(fx->path, "statements"), n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(writes_everything_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(close_flushes, setup, teardown),
		cmocka_unit_test_setup_teardown(reservation_accounting, setup, teardown),
		cmocka_unit_test_setup_teardown(event_loop_never_waits_for_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(write_failure_refuses_then_recovers, setup, teardown),
		cmocka_unit_test_setup_teardown(open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(throughput, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
