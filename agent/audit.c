/* The agent's audit writer: a bounded in-memory queue filled by the event
 * loop and drained by one writer thread in batched, hash-chained
 * transactions (common/auditdb.c).
 *
 * The event loop only ever takes the mutex for a few pointer updates: it
 * never waits on SQLite, the disk or the writer. When the writer cannot
 * write, it keeps what it holds, says why, and retries; meanwhile new
 * reservations are refused so no statement runs unrecorded. */
#include "config.h"
#include "agent/audit.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/auditdb.h"
#include "common/log.h"

#define BATCH_MAX_RECORDS 4096
#define BATCH_MAX_BYTES (8u << 20)
#define RETRY_US 1000000          /* retry a failed write every second */
#define CLOSE_WAIT_US 5000000     /* how long audit_close keeps retrying */
/* Group commit: a transaction (one fsync) carries whatever arrived within
 * the window, or GROUP_RECORDS, whichever comes first. One commit per record
 * would cost an fsync per statement; under load that starves the machine. */
#define COMMIT_WINDOW_US 20000
#define GROUP_RECORDS 1024
#define MSG_MAX 512

enum rec_kind { REC_STATEMENT, REC_EVENT, REC_GRANT };

struct rec {
	struct rec *next;
	enum rec_kind kind;
	size_t bytes;             /* what it counts against queue_bytes */
	union {
		struct auditdb_statement_row s;
		struct auditdb_event_row e;
		struct auditdb_grant_row g;
	} u;
	char data[];              /* the copied strings */
};

struct audit {
	char *path;
	sqlite3 *db;                  /* writer thread only (after open) */
	struct auditdb_chain chain;   /* writer thread only */
	pthread_t thread;

	pthread_mutex_t lock;
	pthread_cond_t wake;          /* work queued, or stopping */
	/* Under lock. */
	struct rec *head, **tail;     /* waiting for the writer */
	size_t max_records, max_bytes;
	size_t used_records, used_bytes; /* queued + the writer's batch */
	size_t resv_records, resv_bytes;
	size_t lost;                  /* records that could not even be queued */
	enum { W_BUSY, W_IDLE, W_WINDOW } writer; /* what the writer waits for */
	bool failed;
	char fail_msg[MSG_MAX];
	bool stopping;
	int64_t stop_deadline;        /* mono_us */
	size_t unwritten;             /* left over when the writer gave up */

	char fail_copy[MSG_MAX];      /* event loop side: audit_failure()'s answer */
};

static size_t str_size(const char *s) { return s ? strlen(s) + 1 : 0; }

static char *put_str(char **p, const char *s, size_t n)
{
	char *d = *p;

	if (!s)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	*p += n + 1;
	return d;
}
#define PUT(p, s) put_str(&(p), (s), (s) ? strlen(s) : 0)

static size_t sat_sub(size_t a, size_t b) { return a > b ? a - b : 0; }

static size_t resv_charge(size_t size_hint)
{
	return size_hint > SIZE_MAX - AUDIT_RECORD_OVERHEAD ? SIZE_MAX : size_hint + AUDIT_RECORD_OVERHEAD;
}

/* Under lock: is there room for one more record of `bytes`? */
static int room_for(struct audit *a, size_t bytes)
{
	if (a->failed)
		return -EIO;
	if (a->used_records + a->resv_records >= a->max_records ||
	    bytes > a->max_bytes || a->used_bytes + a->resv_bytes > a->max_bytes - bytes)
		return -ENOSPC;
	return 0;
}

/* Under lock: append r and wake the writer. */
static void push(struct audit *a, struct rec *r)
{
	r->next = NULL;
	*a->tail = r;
	a->tail = &r->next;
	a->used_records++;
	a->used_bytes += r->bytes;
	/* Wake the writer only when that changes something: it sleeps with
	 * nothing to do, or it waits for a group that is now full. */
	if (a->writer == W_IDLE || (a->writer == W_WINDOW && a->used_records >= GROUP_RECORDS))
		pthread_cond_signal(&a->wake);
}

static struct rec *rec_new(enum rec_kind kind, size_t strings)
{
	struct rec *r = malloc(sizeof(*r) + strings);

	if (!r)
		return NULL;
	r->kind = kind;
	r->bytes = sizeof(*r) + strings;
	return r;
}

static void rec_free_list(struct rec *r)
{
	while (r) {
		struct rec *next = r->next;
		free(r);
		r = next;
	}
}

/* ---- the writer thread ---- */

/* SQLite rarely keeps the OS errno of a failed write; say at least which
 * operation failed. */
static const char *io_hint(int ext)
{
	switch (ext) {
	case SQLITE_IOERR_WRITE: return "a write failed: disk full, file size limit or device error";
	case SQLITE_IOERR_FSYNC: case SQLITE_IOERR_DIR_FSYNC: return "fsync failed";
	case SQLITE_IOERR_TRUNCATE: return "truncating a file failed";
	case SQLITE_IOERR_READ: case SQLITE_IOERR_SHORT_READ: return "a read failed";
	case SQLITE_IOERR_SHMOPEN: case SQLITE_IOERR_SHMSIZE: case SQLITE_IOERR_SHMMAP:
		return "the -shm file cannot be mapped";
	case SQLITE_READONLY: case SQLITE_READONLY_DBMOVED: case SQLITE_READONLY_DIRECTORY:
		return "the file or its directory is read-only";
	default: return NULL;
	}
}

static void describe_failure(struct audit *a, int r, char *msg, size_t n)
{
	int ext = sqlite3_extended_errcode(a->db), code = ext & 0xff;
	/* The OS errno is only kept for I/O errors, and is stale otherwise. */
	int sys = code == SQLITE_IOERR || code == SQLITE_FULL || code == SQLITE_CANTOPEN ?
		  sqlite3_system_errno(a->db) : 0;
	const char *hint = sys ? strerror(sys) : io_hint(ext);

	if (r == -EBADMSG)
		snprintf(msg, n, "cannot write the audit database %s: the last row of a table "
			 "has no valid hash (run `sluicectl audit verify`)", a->path);
	else if (r == -ENOMEM || r == -EOVERFLOW)
		snprintf(msg, n, "cannot write the audit database %s: %s", a->path, strerror(-r));
	else
		snprintf(msg, n, "cannot write the audit database %s: %s%s%s%s", a->path,
			 sqlite3_errmsg(a->db), hint ? " (" : "", hint ? hint : "", hint ? ")" : "");
}

static int insert(struct audit *a, const struct rec *r)
{
	switch (r->kind) {
	case REC_STATEMENT: return auditdb_insert_statement(a->db, &a->chain, &r->u.s);
	case REC_EVENT: return auditdb_insert_event(a->db, &a->chain, &r->u.e);
	default: return auditdb_insert_grant(a->db, &a->chain, &r->u.g);
	}
}

/* One transaction for the whole batch (one fsync). */
static int write_batch(struct audit *a, const struct rec *batch, size_t lost, char *msg, size_t n)
{
	int r = sqlite3_exec(a->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;

	if (r == 0 && lost > 0) {
		char detail[128];
		snprintf(detail, sizeof(detail), "%zu audit records were lost: out of memory", lost);
		struct auditdb_event_row e = { .ts_us = now_us(), .kind = "audit.records_lost",
					       .uid = -1, .detail = detail };
		r = auditdb_insert_event(a->db, &a->chain, &e);
	}
	for (const struct rec *p = batch; r == 0 && p; p = p->next)
		r = insert(a, p);
	if (r == 0 && sqlite3_exec(a->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		r = -EIO;
	if (r < 0) {
		describe_failure(a, r, msg, n);
		if (!sqlite3_get_autocommit(a->db))
			(void)sqlite3_exec(a->db, "ROLLBACK", NULL, NULL, NULL);
		/* The cached chain tail may include rows that were rolled back. */
		a->chain.loaded = false;
	}
	return r;
}

static void timed_wait(struct audit *a, int64_t until_mono)
{
	struct timespec ts = { .tv_sec = until_mono / 1000000, .tv_nsec = (until_mono % 1000000) * 1000 };

	pthread_cond_timedwait(&a->wake, &a->lock, &ts);
}

static void *writer_main(void *arg)
{
	struct audit *a = arg;
	struct rec *batch = NULL;
	size_t n = 0, bytes = 0;
	char msg[MSG_MAX];

	pthread_mutex_lock(&a->lock);
	for (;;) {
		size_t lost;
		int r;

		if (!batch) {
			while (!a->head && !a->stopping && a->lost == 0) {
				a->writer = W_IDLE;
				pthread_cond_wait(&a->wake, &a->lock);
			}
			/* Let more records join this transaction. */
			if (a->head && !a->stopping && a->used_records < GROUP_RECORDS) {
				int64_t until = mono_us() + COMMIT_WINDOW_US;
				a->writer = W_WINDOW;
				while (!a->stopping && a->used_records < GROUP_RECORDS && mono_us() < until)
					timed_wait(a, until);
			}
			a->writer = W_BUSY;
			if (!a->head && a->lost == 0)
				break; /* stopping, and everything is written */
			/* Take what is queued, up to a batch. */
			struct rec **end = &batch;
			while (a->head && n < BATCH_MAX_RECORDS && bytes < BATCH_MAX_BYTES) {
				struct rec *p = a->head;
				a->head = p->next;
				if (!a->head)
					a->tail = &a->head;
				p->next = NULL;
				*end = p;
				end = &p->next;
				n++;
				bytes += p->bytes;
			}
		}
		lost = a->lost;
		pthread_mutex_unlock(&a->lock);

		r = write_batch(a, batch, lost, msg, sizeof(msg));

		pthread_mutex_lock(&a->lock);
		if (r == 0) {
			struct rec *done = batch;

			a->used_records = sat_sub(a->used_records, n);
			a->used_bytes = sat_sub(a->used_bytes, bytes);
			a->lost -= lost;
			if (a->failed && a->lost == 0) {
				a->failed = false;
				a->fail_msg[0] = '\0';
			}
			batch = NULL;
			n = bytes = 0;
			pthread_mutex_unlock(&a->lock);
			rec_free_list(done);
			pthread_mutex_lock(&a->lock);
			continue;
		}

		/* Keep the batch; refuse new statements until a retry works. */
		a->failed = true;
		snprintf(a->fail_msg, sizeof(a->fail_msg), "%s", msg);
		if (a->stopping && mono_us() >= a->stop_deadline)
			break;
		bool was_stopping = a->stopping;
		int64_t next = mono_us() + RETRY_US;
		while (!(a->stopping && !was_stopping)) {
			int64_t now = mono_us(), until = a->stopping ? MIN(next, a->stop_deadline) : next;
			if (now >= until)
				break;
			timed_wait(a, until);
		}
	}
	/* Stopping: whatever is left could not be written. */
	a->unwritten = n + a->lost;
	for (struct rec *p = a->head; p; p = p->next)
		a->unwritten++;
	pthread_mutex_unlock(&a->lock);
	rec_free_list(batch);
	return NULL;
}

/* ---- the event loop side ---- */

int audit_open(const char *path, size_t queue_records, size_t queue_bytes,
	       struct audit **out, char **err)
{
	struct audit *a;
	pthread_condattr_t ca;
	sigset_t all, old;
	int r;

	if (!path || !out || queue_records == 0 || queue_bytes == 0)
		return -EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->path = strdup(path);
	a->tail = &a->head;
	a->max_records = queue_records;
	a->max_bytes = queue_bytes;
	if (!a->path) {
		free(a);
		return -ENOMEM;
	}
	r = auditdb_open(path, false, &a->db, err);
	if (r < 0) {
		free(a->path);
		free(a);
		return r;
	}
	pthread_mutex_init(&a->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->wake, &ca);
	pthread_condattr_destroy(&ca);

	/* The writer takes no signals: the event loop handles them, and a
	 * SIGXFSZ from an oversized write must become EFBIG, not a core dump. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&a->thread, NULL, writer_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		if (err && asprintf(err, "cannot start the audit writer: %s", strerror(-r)) < 0)
			*err = NULL;
		pthread_cond_destroy(&a->wake);
		pthread_mutex_destroy(&a->lock);
		sqlite3_close(a->db);
		free(a->path);
		free(a);
		return r;
	}
	pthread_setname_np(a->thread, "sluice-audit");
	*out = a;
	return 0;
}

struct audit *audit_close(struct audit *a)
{
	if (!a)
		return NULL;
	pthread_mutex_lock(&a->lock);
	a->stopping = true;
	a->stop_deadline = mono_us() + CLOSE_WAIT_US;
	pthread_cond_signal(&a->wake);
	pthread_mutex_unlock(&a->lock);
	pthread_join(a->thread, NULL);

	if (a->unwritten > 0)
		log_err("audit: %zu records were not written to %s before shutdown: %s",
			a->unwritten, a->path, a->fail_msg[0] ? a->fail_msg : "writer stopped");
	rec_free_list(a->head);
	auditdb_chain_release(&a->chain);
	if (sqlite3_close(a->db) != SQLITE_OK)
		log_err("audit: closing %s: %s", a->path, sqlite3_errmsg(a->db));
	pthread_cond_destroy(&a->wake);
	pthread_mutex_destroy(&a->lock);
	free(a->path);
	free(a);
	return NULL;
}

int audit_reserve(struct audit *a, size_t size_hint)
{
	size_t charge = resv_charge(size_hint);
	int r;

	if (!a)
		return -EIO;
	pthread_mutex_lock(&a->lock);
	r = room_for(a, charge);
	if (r == 0) {
		a->resv_records++;
		a->resv_bytes += charge;
	}
	pthread_mutex_unlock(&a->lock);
	return r;
}

void audit_unreserve(struct audit *a, size_t size_hint)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->lock);
	a->resv_records = sat_sub(a->resv_records, 1);
	a->resv_bytes = sat_sub(a->resv_bytes, resv_charge(size_hint));
	pthread_mutex_unlock(&a->lock);
}

void audit_statement(struct audit *a, const struct audit_statement *s, size_t size_hint)
{
	size_t sql_len = s->sql ? s->sql_len : 0;
	struct rec *r;
	char *p;

	if (!a)
		return;
	r = rec_new(REC_STATEMENT, str_size(s->grant_id) + str_size(s->user) + str_size(s->connection) +
			   (s->sql ? sql_len + 1 : 0) + str_size(s->decision) + str_size(s->rule) +
			   str_size(s->outcome) + str_size(s->sqlstate) + str_size(s->error) +
			   str_size(s->subject) + str_size(s->issuer) + str_size(s->groups) +
			   (s->result ? s->result_len : 0));
	if (r) {
		p = r->data;
		r->u.s = (struct auditdb_statement_row){
			.ts_us = s->ts_us, .uid = s->uid,
			.conn_serial = s->conn_serial > INT64_MAX ? INT64_MAX : (int64_t)s->conn_serial,
			.rows = s->rows, .duration_us = s->duration_us,
		};
		r->u.s.grant_id = PUT(p, s->grant_id);
		r->u.s.user = PUT(p, s->user);
		r->u.s.connection = PUT(p, s->connection);
		r->u.s.sql = put_str(&p, s->sql, sql_len);
		/* Keep the exact length (0 would mean strlen: an empty text is "" anyway). */
		r->u.s.sql_len = sql_len;
		r->u.s.decision = PUT(p, s->decision);
		r->u.s.rule = PUT(p, s->rule);
		r->u.s.outcome = PUT(p, s->outcome);
		r->u.s.sqlstate = PUT(p, s->sqlstate);
		r->u.s.error = PUT(p, s->error);
		r->u.s.subject = PUT(p, s->subject);
		r->u.s.issuer = PUT(p, s->issuer);
		r->u.s.groups = PUT(p, s->groups);
		if (s->result) {
			memcpy(p, s->result, s->result_len);
			r->u.s.result = p;
			r->u.s.result_len = s->result_len;
			p += s->result_len;
		}
	}

	pthread_mutex_lock(&a->lock);
	a->resv_records = sat_sub(a->resv_records, 1);
	a->resv_bytes = sat_sub(a->resv_bytes, resv_charge(size_hint));
	if (r) {
		push(a, r);
	} else {
		/* Out of memory: the record is gone. Never silently: refuse new
		 * statements until the writer has recorded the loss itself. */
		a->lost++;
		a->failed = true;
		snprintf(a->fail_msg, sizeof(a->fail_msg),
			 "out of memory queueing an audit record; %zu records lost", a->lost);
		pthread_cond_signal(&a->wake);
	}
	pthread_mutex_unlock(&a->lock);
}

static int queue(struct audit *a, struct rec *r)
{
	int ret;

	pthread_mutex_lock(&a->lock);
	ret = room_for(a, r->bytes);
	if (ret == 0)
		push(a, r);
	pthread_mutex_unlock(&a->lock);
	if (ret < 0)
		free(r);
	return ret;
}

int audit_event(struct audit *a, const struct audit_event *e)
{
	struct rec *r;
	char *p;

	if (!a || !e)
		return a ? -EINVAL : -EIO;
	r = rec_new(REC_EVENT, str_size(e->kind) + str_size(e->grant_id) + str_size(e->user) +
			       str_size(e->connection) + str_size(e->detail));
	if (!r)
		return -ENOMEM;
	p = r->data;
	r->u.e = (struct auditdb_event_row){ .ts_us = e->ts_us, .uid = e->has_uid ? (int64_t)e->uid : -1 };
	r->u.e.kind = PUT(p, e->kind);
	r->u.e.grant_id = PUT(p, e->grant_id);
	r->u.e.user = PUT(p, e->user);
	r->u.e.connection = PUT(p, e->connection);
	r->u.e.detail = PUT(p, e->detail);
	return queue(a, r);
}

int audit_grant(struct audit *a, const struct audit_grant *g)
{
	struct rec *r;
	char *p;

	if (!a || !g)
		return a ? -EINVAL : -EIO;
	r = rec_new(REC_GRANT, str_size(g->id) + str_size(g->user) + str_size(g->connection) +
			       str_size(g->protocol) + str_size(g->schema) + str_size(g->reason) +
			       str_size(g->subject) + str_size(g->issuer) + str_size(g->groups));
	if (!r)
		return -ENOMEM;
	p = r->data;
	r->u.g = (struct auditdb_grant_row){ .created_us = g->created_us, .uid = g->uid,
					     .expires_us = g->expires_us };
	r->u.g.grant_id = PUT(p, g->id);
	r->u.g.user = PUT(p, g->user);
	r->u.g.connection = PUT(p, g->connection);
	r->u.g.protocol = PUT(p, g->protocol);
	r->u.g.schema = PUT(p, g->schema);
	r->u.g.reason = PUT(p, g->reason);
	r->u.g.subject = PUT(p, g->subject);
	r->u.g.issuer = PUT(p, g->issuer);
	r->u.g.groups = PUT(p, g->groups);
	return queue(a, r);
}

const char *audit_failure(struct audit *a)
{
	bool failed;

	if (!a)
		return "the audit database is not open";
	pthread_mutex_lock(&a->lock);
	failed = a->failed;
	if (failed)
		snprintf(a->fail_copy, sizeof(a->fail_copy), "%s", a->fail_msg);
	pthread_mutex_unlock(&a->lock);
	return failed ? a->fail_copy : NULL;
}

size_t audit_queued(struct audit *a)
{
	size_t n;

	if (!a)
		return 0;
	pthread_mutex_lock(&a->lock);
	n = a->used_records;
	pthread_mutex_unlock(&a->lock);
	return n;
}
