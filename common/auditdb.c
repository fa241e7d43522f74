#include "config.h"
#include "common/auditdb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <openssl/evp.h>

/* The schema. Columns are listed once, in the order they are hashed; id
 * comes first so a row cannot be renumbered without breaking its hash. */
enum { T_GRANTS, T_STATEMENTS, T_EVENTS, T_COUNT };

struct table {
	const char *name;
	const char *const *cols;  /* id first; prev_hash and hash not listed */
	size_t ncols;
	size_t nhashed;           /* columns [0, nhashed) are always hashed; later ones
				   * (added by a later schema) only when not NULL, so
				   * rows written before them keep their hash */
	const char *ts_col;       /* for filter.since_us */
	bool has_decision;
};

static const char *const grant_cols[] = {
	"id", "grant_id", "created_us", "uid", "\"user\"", "connection", "protocol",
	"expires_us", "\"schema\"", "reason", "subject", "issuer", "\"groups\"",
};
static const char *const statement_cols[] = {
	"id", "ts_us", "grant_id", "uid", "\"user\"", "connection", "conn_serial",
	"sql", "decision", "rule", "outcome", "sqlstate", "error", "\"rows\"",
	"duration_us", "subject", "issuer", "\"groups\"",
	"result", /* v3 */
};
static const char *const event_cols[] = {
	"id", "ts_us", "kind", "grant_id", "uid", "\"user\"", "connection", "detail",
};

static const struct table tables[T_COUNT] = {
	[T_GRANTS] = { "grants", grant_cols, ARRAY_SIZE(grant_cols), ARRAY_SIZE(grant_cols),
		       "created_us", false },
	[T_STATEMENTS] = { "statements", statement_cols, ARRAY_SIZE(statement_cols),
			   ARRAY_SIZE(statement_cols) - 1, "ts_us", true },
	[T_EVENTS] = { "events", event_cols, ARRAY_SIZE(event_cols), ARRAY_SIZE(event_cols),
		       "ts_us", false },
};
#define MAX_COLS ARRAY_SIZE(statement_cols)

/* Migrations, applied in order; migrations[i] brings the schema from
 * version i to i + 1. Never edit one that has shipped: append. */
static const char *const migrations[] = {
	/* v1: the three chained tables and the indexes `sluicectl audit` filters use. */
	"CREATE TABLE grants ("
	" id INTEGER PRIMARY KEY, grant_id TEXT, created_us INTEGER, uid INTEGER,"
	" \"user\" TEXT, connection TEXT, protocol TEXT, expires_us INTEGER,"
	" \"schema\" TEXT, reason TEXT, subject TEXT, issuer TEXT, \"groups\" TEXT,"
	" prev_hash BLOB NOT NULL, hash BLOB NOT NULL);"
	"CREATE TABLE statements ("
	" id INTEGER PRIMARY KEY, ts_us INTEGER, grant_id TEXT, uid INTEGER,"
	" \"user\" TEXT, connection TEXT, conn_serial INTEGER, sql TEXT,"
	" decision TEXT, rule TEXT, outcome TEXT, sqlstate TEXT, error TEXT,"
	" \"rows\" INTEGER, duration_us INTEGER, subject TEXT, issuer TEXT, \"groups\" TEXT,"
	" prev_hash BLOB NOT NULL, hash BLOB NOT NULL);"
	"CREATE TABLE events ("
	" id INTEGER PRIMARY KEY, ts_us INTEGER, kind TEXT, grant_id TEXT, uid INTEGER,"
	" \"user\" TEXT, connection TEXT, detail TEXT,"
	" prev_hash BLOB NOT NULL, hash BLOB NOT NULL);"
	"CREATE INDEX grants_created ON grants(created_us);"
	"CREATE INDEX grants_user ON grants(\"user\");"
	"CREATE INDEX grants_grant ON grants(grant_id);"
	"CREATE INDEX statements_ts ON statements(ts_us);"
	"CREATE INDEX statements_grant ON statements(grant_id);"
	"CREATE INDEX events_ts ON events(ts_us);"
	"CREATE INDEX events_user ON events(\"user\");"
	"CREATE INDEX events_grant ON events(grant_id);",
	/* v2: the gids sluiced gives the IdP groups it publishes through NSS
	 * (agent/nss_gids.c). Not chained: a row is not a record of what
	 * happened but a promise kept for good (a name keeps its gid, a gid
	 * never goes to another name), so rows are never updated or deleted. */
	"CREATE TABLE nss_groups ("
	" name TEXT PRIMARY KEY, gid INTEGER UNIQUE NOT NULL, first_seen_us INTEGER NOT NULL);",
	/* v3: what the client was sent back, as far as recorded (agent/pgrecord.h):
	 * hashed with its row when not NULL. */
	"ALTER TABLE statements ADD COLUMN result BLOB;",
};
#define SCHEMA_VERSION ((int)ARRAY_SIZE(migrations))
/* PRAGMA application_id: "slcA", so a foreign SQLite file is not mistaken for ours. */
#define APPLICATION_ID 0x736c6341

/* Column data in the form it is hashed: SQLite's storage classes. */
struct val {
	int type;         /* SQLITE_NULL, SQLITE_INTEGER, SQLITE_TEXT, SQLITE_BLOB, SQLITE_FLOAT */
	int64_t i;        /* INTEGER; FLOAT as its IEEE-754 bits */
	const void *p;    /* TEXT, BLOB */
	size_t n;
};

static struct val v_int(int64_t i) { return (struct val){ .type = SQLITE_INTEGER, .i = i }; }
static struct val v_opt_int(int64_t i) /* -1: unknown, stored as NULL */
{
	return i < 0 ? (struct val){ .type = SQLITE_NULL } : v_int(i);
}
static struct val v_text_n(const char *s, size_t n)
{
	return s ? (struct val){ .type = SQLITE_TEXT, .p = s, .n = n } : (struct val){ .type = SQLITE_NULL };
}
static struct val v_text(const char *s) { return v_text_n(s, s ? strlen(s) : 0); }

static int errno_from_sqlite(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return 0;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_READONLY: return -EROFS;
	case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
	case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_CORRUPT: case SQLITE_NOTADB: return -EBADMSG;
	case SQLITE_CANTOPEN: return -ENOENT;
	case SQLITE_TOOBIG: return -E2BIG;
	case SQLITE_CONSTRAINT: return -EEXIST;
	case SQLITE_MISUSE: case SQLITE_RANGE: return -EINVAL;
	default: return -EIO;
	}
}

static void set_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	free(*err);
	*err = NULL;
	va_start(ap, fmt);
	str_vprintf(err, fmt, ap); /* on failure *err is NULL: no message */
	va_end(ap);
}

/* The canonical encoding: a domain tag and the table name, the previous
 * hash, then every column as tag + length + bytes, so NULL, "" and 0 differ
 * and no two rows encode alike by concatenation. */
static void put_be64(uint8_t *p, uint64_t v)
{
	for (int k = 7; k >= 0; k--, v >>= 8)
		p[k] = (uint8_t)v;
}

/* SHA-256, fetched once: an implicit fetch per row takes OpenSSL locks. */
static EVP_MD *sha256_md;
static void fetch_sha256(void)
{
	sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

static int row_hash(int t, const uint8_t prev[AUDITDB_HASH_LEN], const struct val *v, size_t n,
		    uint8_t out[AUDITDB_HASH_LEN])
{
	static const char domain[] = "sluice-audit-v1";
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	EVP_MD_CTX *ctx;
	uint8_t hdr[9 * 32]; /* column headers gathered between value updates */
	size_t h = 0;
	unsigned int len = 0;
	bool ok;

	pthread_once(&once, fetch_sha256);
	if (!sha256_md)
		return -EIO;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	ok = EVP_DigestInit_ex(ctx, sha256_md, NULL) == 1 &&
	     EVP_DigestUpdate(ctx, prev, AUDITDB_HASH_LEN) == 1 &&
	     EVP_DigestUpdate(ctx, domain, sizeof(domain)) == 1 &&
	     EVP_DigestUpdate(ctx, tables[t].name, strlen(tables[t].name) + 1) == 1;
	/* The same byte stream as one update per header and value, in fewer
	 * calls: headers and integers are gathered, text flushes them first. */
	for (size_t k = 0; ok && k < n; k++) {
		if (k >= tables[t].nhashed && v[k].type == SQLITE_NULL)
			continue;
		if (h + 9 > sizeof(hdr)) {
			ok = EVP_DigestUpdate(ctx, hdr, h) == 1;
			h = 0;
		}
		hdr[h] = (uint8_t)v[k].type;
		switch (v[k].type) {
		case SQLITE_NULL:
			h += 1;
			break;
		case SQLITE_INTEGER:
		case SQLITE_FLOAT:
			put_be64(hdr + h + 1, (uint64_t)v[k].i);
			h += 9;
			break;
		default:
			put_be64(hdr + h + 1, v[k].n);
			h += 9;
			if (v[k].n > 0) {
				ok = ok && EVP_DigestUpdate(ctx, hdr, h) == 1 &&
				     EVP_DigestUpdate(ctx, v[k].p, v[k].n) == 1;
				h = 0;
			}
			break;
		}
	}
	ok = ok && (h == 0 || EVP_DigestUpdate(ctx, hdr, h) == 1);
	ok = ok && EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == AUDITDB_HASH_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

/* A column as stored, whatever its type (a hand edit may change it). */
static struct val column_val(sqlite3_stmt *st, int col)
{
	struct val v = { .type = sqlite3_column_type(st, col) };

	switch (v.type) {
	case SQLITE_INTEGER:
		v.i = sqlite3_column_int64(st, col);
		break;
	case SQLITE_FLOAT: {
		double d = sqlite3_column_double(st, col);
		memcpy(&v.i, &d, sizeof(v.i));
		break;
	}
	case SQLITE_TEXT:
		v.p = sqlite3_column_text(st, col);
		v.n = (size_t)sqlite3_column_bytes(st, col);
		break;
	case SQLITE_BLOB:
		v.p = sqlite3_column_blob(st, col);
		v.n = (size_t)sqlite3_column_bytes(st, col);
		break;
	default:
		break;
	}
	return v;
}

/* Does table t have column col? Columns a later schema added are missing
 * from a database sluicectl reads without migrating it. */
static bool has_column(sqlite3 *db, int t, const char *col)
{
	sqlite3_stmt *st = NULL;
	bool found = false;

	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_bind_text(st, 1, tables[t].name, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_bind_text(st, 2, col, -1, SQLITE_STATIC) == SQLITE_OK)
		found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
}

/* "a, b, c" for table t's columns into buf; a later column the database
 * does not have yet reads as NULL. */
static int column_list(sqlite3 *db, int t, char *buf, size_t n)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < tables[t].ncols; k++) {
		const char *col = tables[t].cols[k];
		bool missing = k >= tables[t].nhashed && !has_column(db, t, col);
		int w = snprintf(buf + len, n - len, "%s%s%s", k ? ", " : "", missing ? "NULL AS " : "", col);
		if (w < 0 || (size_t)w >= n - len)
			return -ENAMETOOLONG;
		len += (size_t)w;
	}
	return 0;
}

static int exec(sqlite3 *db, const char *sql)
{
	return errno_from_sqlite(sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc == SQLITE_OK) {
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(st, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(st);
	return errno_from_sqlite(rc);
}

/* Version checks shared by both modes: 0 with *version set, or an error
 * with the reason in *err. */
static int check_schema(sqlite3 *db, const char *path, int64_t *version, char **err)
{
	int64_t v = 0, app = 0, objects = 0;
	int r;

	r = pragma_int(db, "PRAGMA user_version", &v);
	if (r == 0)
		r = pragma_int(db, "PRAGMA application_id", &app);
	if (r == 0)
		r = pragma_int(db, "SELECT count(*) FROM sqlite_master", &objects);
	if (r < 0) {
		set_err(err, "%s: cannot read the schema version: %s", path, sqlite3_errmsg(db));
		return r;
	}
	if ((v == 0 && objects > 0) || (v > 0 && app != APPLICATION_ID)) {
		set_err(err, "%s: not a sluice audit database", path);
		return -EBADMSG;
	}
	if (v > SCHEMA_VERSION) {
		set_err(err, "%s: audit database schema version %lld is newer than this "
			"build knows (%d); use a newer sluice", path, (long long)v, SCHEMA_VERSION);
		return -EPROTONOSUPPORT;
	}
	*version = v;
	return 0;
}

static int migrate(sqlite3 *db, const char *path, char **err)
{
	char sql[64];
	int64_t v = 0;
	int r;

	/* IMMEDIATE: two writers starting at once must not both migrate. */
	r = exec(db, "BEGIN IMMEDIATE");
	if (r < 0) {
		set_err(err, "%s: %s", path, sqlite3_errmsg(db));
		return r;
	}
	r = check_schema(db, path, &v, err);
	if (r < 0)
		goto out;
	for (int64_t k = v; k < SCHEMA_VERSION; k++) {
		r = exec(db, migrations[k]);
		if (r < 0) {
			set_err(err, "%s: migration to schema version %lld failed: %s", path,
				(long long)k + 1, sqlite3_errmsg(db));
			goto out;
		}
	}
	if (v < SCHEMA_VERSION) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d; PRAGMA application_id = %d",
			 SCHEMA_VERSION, APPLICATION_ID);
		r = exec(db, sql);
		if (r < 0) {
			set_err(err, "%s: %s", path, sqlite3_errmsg(db));
			goto out;
		}
	}
	r = exec(db, "COMMIT");
	if (r < 0)
		set_err(err, "%s: committing the schema failed: %s", path, sqlite3_errmsg(db));
out:
	if (r < 0 && !sqlite3_get_autocommit(db))
		(void)exec(db, "ROLLBACK");
	return r;
}

int auditdb_open(const char *path, bool readonly, sqlite3 **out, char **err)
{
	sqlite3 *db = NULL;
	char mode[16] = "";
	int64_t v = 0;
	int flags, rc, r;

	if (!path || !*path || !out) {
		set_err(err, "no audit database path");
		return -EINVAL;
	}
	if (!readonly) {
		/* Create it ourselves so it is born 0640, never world-readable;
		 * SQLite gives -wal and -shm the database file's mode. */
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
		if (fd < 0) {
			r = -errno;
			set_err(err, "%s: %s", path, strerror(errno));
			return r;
		}
		close(fd);
	}
	/* One thread uses a handle at a time (the agent's writer, or
	 * sluicectl): SQLite's own per-call locking is not needed. */
	flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOFOLLOW |
		SQLITE_OPEN_NOMUTEX;
	rc = sqlite3_open_v2(path, &db, flags, NULL);
	if (rc != SQLITE_OK) {
		r = errno_from_sqlite(rc);
		set_err(err, "%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, 5000);
	/* Defensive: no writable_schema tricks or schema-changing pragmas. */
	(void)sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	(void)sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);

	if (readonly) {
		r = check_schema(db, path, &v, err);
		if (r < 0)
			goto fail;
		if (v == 0) {
			set_err(err, "%s: empty audit database (the agent has not created it yet)", path);
			r = -ENOENT;
			goto fail;
		}
		*out = db;
		return 0;
	}

	/* WAL: readers (sluicectl) never block the writer. synchronous=FULL
	 * makes every commit durable; the writer batches, so that is one
	 * fsync per batch, not per row. */
	{
		sqlite3_stmt *st = NULL;
		rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
		if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			const unsigned char *m = sqlite3_column_text(st, 0);
			snprintf(mode, sizeof(mode), "%s", m ? (const char *)m : "");
			rc = SQLITE_OK;
		}
		sqlite3_finalize(st);
	}
	if (rc != SQLITE_OK) {
		r = errno_from_sqlite(rc);
		set_err(err, "%s: %s", path, sqlite3_errmsg(db));
		goto fail;
	}
	if (strcmp(mode, "wal") != 0) {
		set_err(err, "%s: cannot switch to WAL mode (journal mode is \"%s\")", path, mode);
		r = -EIO;
		goto fail;
	}
	r = exec(db, "PRAGMA synchronous=FULL");
	if (r < 0) {
		set_err(err, "%s: %s", path, sqlite3_errmsg(db));
		goto fail;
	}
	r = migrate(db, path, err);
	if (r < 0)
		goto fail;
	*out = db;
	return 0;
fail:
	sqlite3_close(db);
	return r;
}

/* ---- queries ---- */

static int prepare_select(sqlite3 *db, int t, const struct auditdb_filter *f, sqlite3_stmt **out)
{
	char cols[512], sql[1024];
	size_t len;
	int w, bind = 0, rc, r;
	sqlite3_stmt *st = NULL;
	bool decision = tables[t].has_decision && f && f->decision;

	r = column_list(db, t, cols, sizeof(cols));
	if (r < 0)
		return r;
	/* The text is built only from fixed fragments; every value is bound. */
	w = snprintf(sql, sizeof(sql), "SELECT %s FROM %s WHERE 1", cols, tables[t].name);
	if (w < 0 || (size_t)w >= sizeof(sql))
		return -ENAMETOOLONG;
	len = (size_t)w;
	w = snprintf(sql + len, sizeof(sql) - len, "%s%s%s%s%s%s%s%s",
		     f && f->id > 0 ? " AND id = ?" : "",
		     f && f->since_us > 0 ? " AND " : "", f && f->since_us > 0 ? tables[t].ts_col : "",
		     f && f->since_us > 0 ? " >= ?" : "",
		     f && f->user ? " AND \"user\" = ?" : "",
		     f && f->grant_id ? " AND grant_id = ?" : "",
		     decision ? " AND decision = ?" : "",
		     f && f->limit ? " ORDER BY id DESC LIMIT ?" : " ORDER BY id");
	if (w < 0 || (size_t)w >= sizeof(sql) - len)
		return -ENAMETOOLONG;
	if (f && f->limit) {
		char inner[1024];
		memcpy(inner, sql, sizeof(inner));
		w = snprintf(sql, sizeof(sql), "SELECT * FROM (%s) ORDER BY id", inner);
		if (w < 0 || (size_t)w >= sizeof(sql))
			return -ENAMETOOLONG;
	}
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && f && f->id > 0)
		rc = sqlite3_bind_int64(st, ++bind, f->id);
	if (rc == SQLITE_OK && f && f->since_us > 0)
		rc = sqlite3_bind_int64(st, ++bind, f->since_us);
	if (rc == SQLITE_OK && f && f->user)
		rc = sqlite3_bind_text(st, ++bind, f->user, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && f && f->grant_id)
		rc = sqlite3_bind_text(st, ++bind, f->grant_id, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && decision)
		rc = sqlite3_bind_text(st, ++bind, f->decision, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK && f && f->limit)
		rc = sqlite3_bind_int64(st, ++bind, f->limit > INT64_MAX ? INT64_MAX : (int64_t)f->limit);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(st);
		return errno_from_sqlite(rc);
	}
	*out = st;
	return 0;
}

static const char *col_text(sqlite3_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st, col);
}

static int64_t col_opt_int(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, col);
}

static void read_statement(sqlite3_stmt *st, struct auditdb_statement_row *r)
{
	*r = (struct auditdb_statement_row){
		.id = sqlite3_column_int64(st, 0), .ts_us = sqlite3_column_int64(st, 1),
		.grant_id = col_text(st, 2), .uid = col_opt_int(st, 3), .user = col_text(st, 4),
		.connection = col_text(st, 5), .conn_serial = sqlite3_column_int64(st, 6),
		.sql = col_text(st, 7), .decision = col_text(st, 8), .rule = col_text(st, 9),
		.outcome = col_text(st, 10), .sqlstate = col_text(st, 11), .error = col_text(st, 12),
		.rows = col_opt_int(st, 13), .duration_us = col_opt_int(st, 14),
		.subject = col_text(st, 15), .issuer = col_text(st, 16), .groups = col_text(st, 17),
		.result = sqlite3_column_blob(st, 18),
	};
	r->sql_len = r->sql ? (size_t)sqlite3_column_bytes(st, 7) : 0;
	r->result_len = r->result ? (size_t)sqlite3_column_bytes(st, 18) : 0;
}

static void read_event(sqlite3_stmt *st, struct auditdb_event_row *r)
{
	*r = (struct auditdb_event_row){
		.id = sqlite3_column_int64(st, 0), .ts_us = sqlite3_column_int64(st, 1),
		.kind = col_text(st, 2), .grant_id = col_text(st, 3), .uid = col_opt_int(st, 4),
		.user = col_text(st, 5), .connection = col_text(st, 6), .detail = col_text(st, 7),
	};
}

static void read_grant(sqlite3_stmt *st, struct auditdb_grant_row *r)
{
	*r = (struct auditdb_grant_row){
		.id = sqlite3_column_int64(st, 0), .grant_id = col_text(st, 1),
		.created_us = sqlite3_column_int64(st, 2), .uid = col_opt_int(st, 3), .user = col_text(st, 4),
		.connection = col_text(st, 5), .protocol = col_text(st, 6),
		.expires_us = sqlite3_column_int64(st, 7), .schema = col_text(st, 8),
		.reason = col_text(st, 9), .subject = col_text(st, 10), .issuer = col_text(st, 11),
		.groups = col_text(st, 12),
	};
}

/* One loop for the three tables: table t's row goes to the matching callback. */
union row_cb {
	int (*statement)(const struct auditdb_statement_row *, void *);
	int (*event)(const struct auditdb_event_row *, void *);
	int (*grant)(const struct auditdb_grant_row *, void *);
};

static int each_row(sqlite3 *db, int t, const struct auditdb_filter *f, union row_cb cb, void *ud)
{
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (!db || !cb.statement)
		return -EINVAL;
	r = prepare_select(db, t, f, &st);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (t == T_STATEMENTS) {
			struct auditdb_statement_row row;
			read_statement(st, &row);
			r = cb.statement(&row, ud);
		} else if (t == T_EVENTS) {
			struct auditdb_event_row row;
			read_event(st, &row);
			r = cb.event(&row, ud);
		} else {
			struct auditdb_grant_row row;
			read_grant(st, &row);
			r = cb.grant(&row, ud);
		}
		if (r < 0)
			break;
	}
	if (r >= 0 && rc != SQLITE_DONE)
		r = errno_from_sqlite(rc) ?: -EIO;
	sqlite3_finalize(st);
	return r < 0 ? r : 0;
}

int auditdb_each_statement(sqlite3 *db, const struct auditdb_filter *f,
			   int (*cb)(const struct auditdb_statement_row *, void *), void *ud)
{
	return each_row(db, T_STATEMENTS, f, (union row_cb){ .statement = cb }, ud);
}

int auditdb_each_event(sqlite3 *db, const struct auditdb_filter *f,
		       int (*cb)(const struct auditdb_event_row *, void *), void *ud)
{
	return each_row(db, T_EVENTS, f, (union row_cb){ .event = cb }, ud);
}

int auditdb_each_grant(sqlite3 *db, const struct auditdb_filter *f,
		       int (*cb)(const struct auditdb_grant_row *, void *), void *ud)
{
	return each_row(db, T_GRANTS, f, (union row_cb){ .grant = cb }, ud);
}

/* ---- inserting ---- */

static int chain_load(sqlite3 *db, struct auditdb_chain *c)
{
	struct auditdb_chain n = { .loaded = true };

	memcpy(n.insert, c->insert, sizeof(n.insert));

	for (int t = 0; t < T_COUNT; t++) {
		char sql[96];
		sqlite3_stmt *st = NULL;
		int rc;

		snprintf(sql, sizeof(sql), "SELECT id, hash FROM %s ORDER BY id DESC LIMIT 1",
			 tables[t].name);
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
		if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			/* A tail that is not a hash cannot be extended honestly. */
			if (sqlite3_column_type(st, 1) != SQLITE_BLOB ||
			    sqlite3_column_bytes(st, 1) != AUDITDB_HASH_LEN) {
				sqlite3_finalize(st);
				return -EBADMSG;
			}
			n.last_id[t] = sqlite3_column_int64(st, 0);
			memcpy(n.last[t], sqlite3_column_blob(st, 1), AUDITDB_HASH_LEN);
			rc = SQLITE_DONE;
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return errno_from_sqlite(rc);
	}
	*c = n;
	return 0;
}

void auditdb_chain_release(struct auditdb_chain *c)
{
	if (!c)
		return;
	for (int t = 0; t < T_COUNT; t++)
		sqlite3_finalize(c->insert[t]);
	*c = (struct auditdb_chain){ .loaded = false };
}

/* The INSERT for table t, prepared once per connection. */
static int insert_stmt(sqlite3 *db, struct auditdb_chain *c, int t, sqlite3_stmt **out)
{
	char cols[512], sql[1024];
	size_t len;
	int rc, r, w;

	if (c->insert[t] && sqlite3_db_handle(c->insert[t]) == db) {
		*out = c->insert[t];
		return 0;
	}
	sqlite3_finalize(c->insert[t]);
	c->insert[t] = NULL;
	r = column_list(db, t, cols, sizeof(cols));
	if (r < 0)
		return r;
	w = snprintf(sql, sizeof(sql), "INSERT INTO %s (%s, prev_hash, hash) VALUES (?", tables[t].name, cols);
	if (w < 0 || (size_t)w >= sizeof(sql))
		return -ENAMETOOLONG;
	len = (size_t)w;
	for (size_t k = 1; k < tables[t].ncols + 2; k++) {
		if (len + 4 >= sizeof(sql))
			return -ENAMETOOLONG;
		memcpy(sql + len, ", ?", 3);
		len += 3;
	}
	memcpy(sql + len, ")", 2);
	rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &c->insert[t], NULL);
	if (rc != SQLITE_OK)
		return errno_from_sqlite(rc);
	*out = c->insert[t];
	return 0;
}

static int insert_row(sqlite3 *db, struct auditdb_chain *c, int t, struct val *v)
{
	uint8_t hash[AUDITDB_HASH_LEN];
	sqlite3_stmt *st = NULL;
	int rc, r;

	if (!db || !c)
		return -EINVAL;
	if (!c->loaded) {
		r = chain_load(db, c);
		if (r < 0)
			return r;
	}
	if (c->last_id[t] == INT64_MAX)
		return -EOVERFLOW;
	v[0] = v_int(c->last_id[t] + 1);
	r = row_hash(t, c->last[t], v, tables[t].ncols, hash);
	if (r < 0)
		return r;
	r = insert_stmt(db, c, t, &st);
	if (r < 0)
		return r;

	rc = SQLITE_OK;
	for (size_t k = 0; rc == SQLITE_OK && k < tables[t].ncols; k++) {
		int i = (int)k + 1;
		switch (v[k].type) {
		case SQLITE_INTEGER:
			rc = sqlite3_bind_int64(st, i, v[k].i);
			break;
		case SQLITE_TEXT:
			rc = sqlite3_bind_text64(st, i, v[k].p, v[k].n, SQLITE_STATIC, SQLITE_UTF8);
			break;
		case SQLITE_BLOB:
			rc = sqlite3_bind_blob64(st, i, v[k].p, v[k].n, SQLITE_STATIC);
			break;
		default:
			rc = sqlite3_bind_null(st, i);
			break;
		}
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, (int)tables[t].ncols + 1, c->last[t], AUDITDB_HASH_LEN, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, (int)tables[t].ncols + 2, hash, AUDITDB_HASH_LEN, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	/* Reset (keeping the error in the handle for sqlite3_errmsg) and drop
	 * the bindings: they point into the caller's row. */
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return errno_from_sqlite(rc) ?: -EIO;
	c->last_id[t]++;
	memcpy(c->last[t], hash, AUDITDB_HASH_LEN);
	return 0;
}

int auditdb_insert_statement(sqlite3 *db, struct auditdb_chain *c, const struct auditdb_statement_row *r)
{
	if (!r)
		return -EINVAL;
	struct val v[] = {
		v_int(0), v_int(r->ts_us), v_text(r->grant_id), v_opt_int(r->uid), v_text(r->user),
		v_text(r->connection), v_int(r->conn_serial),
		v_text_n(r->sql, r->sql && r->sql_len ? r->sql_len : r->sql ? strlen(r->sql) : 0),
		v_text(r->decision), v_text(r->rule), v_text(r->outcome), v_text(r->sqlstate),
		v_text(r->error), v_opt_int(r->rows), v_opt_int(r->duration_us), v_text(r->subject),
		v_text(r->issuer), v_text(r->groups),
		r->result ? (struct val){ .type = SQLITE_BLOB, .p = r->result, .n = r->result_len }
			  : (struct val){ .type = SQLITE_NULL },
	};
	_Static_assert(ARRAY_SIZE(v) == ARRAY_SIZE(statement_cols), "statement columns");
	return insert_row(db, c, T_STATEMENTS, v);
}

int auditdb_insert_event(sqlite3 *db, struct auditdb_chain *c, const struct auditdb_event_row *r)
{
	if (!r)
		return -EINVAL;
	struct val v[] = {
		v_int(0), v_int(r->ts_us), v_text(r->kind), v_text(r->grant_id), v_opt_int(r->uid),
		v_text(r->user), v_text(r->connection), v_text(r->detail),
	};
	_Static_assert(ARRAY_SIZE(v) == ARRAY_SIZE(event_cols), "event columns");
	return insert_row(db, c, T_EVENTS, v);
}

int auditdb_insert_grant(sqlite3 *db, struct auditdb_chain *c, const struct auditdb_grant_row *r)
{
	if (!r)
		return -EINVAL;
	struct val v[] = {
		v_int(0), v_text(r->grant_id), v_int(r->created_us), v_opt_int(r->uid), v_text(r->user),
		v_text(r->connection), v_text(r->protocol), v_int(r->expires_us), v_text(r->schema),
		v_text(r->reason), v_text(r->subject), v_text(r->issuer), v_text(r->groups),
	};
	_Static_assert(ARRAY_SIZE(v) == ARRAY_SIZE(grant_cols), "grant columns");
	return insert_row(db, c, T_GRANTS, v);
}

/* ---- verification ---- */

static void hex8(const uint8_t *h, char *out)
{
	hex_encode(h, 8, out); /* 16 hex digits is plenty to tell hashes apart in a message */
}

/* 1 when table t's chain holds, 0 at the first bad row (res filled), or a
 * negative errno. */
static int verify_table(sqlite3 *db, int t, struct auditdb_verify_result *res)
{
	char cols[512], sql[768];
	uint8_t prev[AUDITDB_HASH_LEN] = { 0 }, want[AUDITDB_HASH_LEN];
	struct val v[MAX_COLS];
	int64_t expect_id = 1;
	sqlite3_stmt *st = NULL;
	int ncols = (int)tables[t].ncols, rc, r;

	r = column_list(db, t, cols, sizeof(cols));
	if (r < 0)
		return r;
	snprintf(sql, sizeof(sql), "SELECT %s, prev_hash, hash FROM %s ORDER BY id", cols, tables[t].name);
	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return errno_from_sqlite(rc);

	r = 1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		const void *ph = sqlite3_column_blob(st, ncols), *h = sqlite3_column_blob(st, ncols + 1);
		bool ph_ok = sqlite3_column_type(st, ncols) == SQLITE_BLOB &&
			     sqlite3_column_bytes(st, ncols) == AUDITDB_HASH_LEN;
		bool h_ok = sqlite3_column_type(st, ncols + 1) == SQLITE_BLOB &&
			    sqlite3_column_bytes(st, ncols + 1) == AUDITDB_HASH_LEN;
		char a[17], b[17];

		res->table = tables[t].name;
		res->first_bad_id = id;
		if (id != expect_id) {
			if (expect_id == 1)
				snprintf(res->detail, sizeof(res->detail),
					 "gap: the first row is %lld, rows before it are missing", (long long)id);
			else
				snprintf(res->detail, sizeof(res->detail),
					 "gap: row %lld follows row %lld, rows between are missing",
					 (long long)id, (long long)expect_id - 1);
			r = 0;
			break;
		}
		if (!ph_ok || memcmp(ph, prev, AUDITDB_HASH_LEN) != 0) {
			hex8(prev, a);
			if (ph_ok)
				hex8(ph, b);
			snprintf(res->detail, sizeof(res->detail),
				 "prev_hash does not link to %s (expected %s…, found %s%s)",
				 expect_id == 1 ? "the start of the chain" : "the previous row", a,
				 ph_ok ? b : "no 32-byte hash", ph_ok ? "…" : "");
			r = 0;
			break;
		}
		for (int k = 0; k < ncols; k++)
			v[k] = column_val(st, k);
		r = row_hash(t, prev, v, (size_t)ncols, want);
		if (r < 0)
			break;
		r = 1;
		if (!h_ok || memcmp(h, want, AUDITDB_HASH_LEN) != 0) {
			hex8(want, a);
			if (h_ok)
				hex8(h, b);
			snprintf(res->detail, sizeof(res->detail),
				 "hash mismatch: the row's content was changed (computed %s…, stored %s%s)",
				 a, h_ok ? b : "no 32-byte hash", h_ok ? "…" : "");
			r = 0;
			break;
		}
		memcpy(prev, want, AUDITDB_HASH_LEN);
		expect_id++;
		res->rows_checked++;
	}
	if (r == 1 && rc != SQLITE_DONE)
		r = errno_from_sqlite(rc) ?: -EIO;
	sqlite3_finalize(st);
	return r;
}

int auditdb_verify(sqlite3 *db, struct auditdb_verify_result *res)
{
	struct auditdb_verify_result n = { .ok = true };
	int r = 0;

	if (!db || !res)
		return -EINVAL;
	/* One read transaction: a consistent snapshot while the agent writes on. */
	r = exec(db, "BEGIN");
	if (r < 0)
		return r;
	for (int t = 0; t < T_COUNT; t++) {
		r = verify_table(db, t, &n);
		if (r <= 0)
			break;
	}
	(void)exec(db, "COMMIT");
	if (r < 0)
		return r;
	if (r == 0) {
		n.ok = false;
	} else {
		n.table = NULL;
		n.first_bad_id = 0;
	}
	*res = n;
	return 0;
}
