/* The session database's schema, migrations, hash chain, queries and
 * verification — shared by the agent's writer (agent/audit.c) and by
 * sluicectl (audit, audit verify), so both agree on what a row hashes to.
 *
 * Tables (all append-only; each row carries prev_hash and hash):
 *   grants(id, grant_id, created_us, uid, user, connection, protocol,
 *          expires_us, schema, reason, subject, issuer, groups)
 *   statements(id, ts_us, grant_id, uid, user, connection, conn_serial, sql,
 *          decision, rule, outcome, sqlstate, error, rows, duration_us,
 *          subject, issuer, groups, result)
 *   events(id, ts_us, kind, grant_id, uid, user, connection, detail)
 * and, not chained, nss_groups(name, gid, first_seen_us): the gids of
 * published IdP groups (agent/nss_gids.h).
 * Timestamps are microseconds since the epoch (UTC). Each table is its own
 * chain: hash = SHA-256(prev_hash || canonical encoding of the row's
 * columns), prev_hash of the first row is 32 zero bytes. The schema version
 * is PRAGMA user_version; migrations run in order in one transaction.
 *
 * The canonical encoding (for anyone checking a chain elsewhere):
 *   "sluice-audit-v1\0" || table name || "\0", then every column in the
 *   order listed above, id first, prev_hash and hash excluded, each as one
 *   type byte (SQLite's storage class: 1 INTEGER, 2 FLOAT, 3 TEXT, 4 BLOB,
 *   5 NULL) followed by nothing for NULL, 8 big-endian bytes for INTEGER
 *   (FLOAT: its IEEE-754 bits), or an 8-byte big-endian length and the
 *   bytes for TEXT/BLOB. A column a later schema added (statements.result,
 *   v3) is left out of the encoding when NULL, so rows written before it
 *   keep their hash. Ids run 1, 2, 3, ... without gaps. Unknown values
 *   (rows, duration_us, an event's uid) are stored as NULL. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>
#include "common/util.h"

#define AUDITDB_HASH_LEN 32

/* Open path. readonly=false: create if missing (mode 0640), WAL mode,
 * migrate to the current schema. readonly=true: the file must exist and
 * carry a schema version this build knows. *err on failure (caller frees). */
int auditdb_open(const char *path, bool readonly, sqlite3 **out, char **err) WUR;

struct auditdb_filter {
	int64_t id;              /* > 0: only the row with this id */
	int64_t since_us;        /* 0 = no lower bound */
	const char *user;        /* NULL = any */
	const char *grant_id;    /* NULL = any */
	const char *decision;    /* NULL = any; events and grants have no
				  * decision and ignore it */
	size_t limit;            /* 0 = no limit; newest rows first when set */
};

/* Column values as stored; strings are NULL when the column is NULL.
 * Valid only during the callback. */
struct auditdb_statement_row {
	int64_t id, ts_us;
	const char *grant_id;
	int64_t uid;
	const char *user, *connection;
	int64_t conn_serial;
	const char *sql, *decision, *rule, *outcome, *sqlstate, *error;
	int64_t rows, duration_us;   /* -1 when unknown (stored as NULL) */
	const char *subject, *issuer, *groups;
	size_t sql_len;              /* bytes of sql (added): filled by the
				      * queries; on insert 0 means strlen(sql) */
	const void *result;          /* (v3) what the client was sent back, as
				      * agent/pgrecord.h records it; NULL when
				      * nothing was recorded */
	size_t result_len;
};

struct auditdb_event_row {
	int64_t id, ts_us;
	const char *kind, *grant_id;
	int64_t uid;                 /* -1 when NULL */
	const char *user, *connection, *detail;
};

struct auditdb_grant_row {
	int64_t id, created_us;
	const char *grant_id;
	int64_t uid;
	const char *user, *connection, *protocol;
	int64_t expires_us;
	const char *schema, *reason, *subject, *issuer, *groups;
};

/* Rows matching f in ascending id order (or, with a limit, the newest
 * `limit` rows, still printed oldest first). The callback returns 0 to go on
 * or a negative errno to stop (returned). */
int auditdb_each_statement(sqlite3 *db, const struct auditdb_filter *f,
			   int (*cb)(const struct auditdb_statement_row *, void *), void *ud) WUR;
int auditdb_each_event(sqlite3 *db, const struct auditdb_filter *f,
		       int (*cb)(const struct auditdb_event_row *, void *), void *ud) WUR;
int auditdb_each_grant(sqlite3 *db, const struct auditdb_filter *f,
		       int (*cb)(const struct auditdb_grant_row *, void *), void *ud) WUR;

/* Inserting (the agent's writer): computes prev_hash/hash from the last row
 * of the table (cached in the handle state below). The row's id is assigned
 * here (last id + 1, part of the hash) and r->id is ignored; call inside a
 * transaction the caller commits. On failure *c is untouched; after a
 * rolled-back transaction set c->loaded = false so the tail is read again.
 * Start from a zeroed struct. */
struct auditdb_chain {
	uint8_t last[3][AUDITDB_HASH_LEN]; /* grants, statements, events */
	bool loaded;
	int64_t last_id[3];                /* (added) id of each table's last row */
	sqlite3_stmt *insert[3];           /* (added) prepared once per connection */
};
/* (added) Finalize the cached statements; call before sqlite3_close(). The
 * chain is then like a zeroed one. NULL-safe. */
void auditdb_chain_release(struct auditdb_chain *c);
int auditdb_insert_statement(sqlite3 *db, struct auditdb_chain *c,
			     const struct auditdb_statement_row *r) WUR;
int auditdb_insert_event(sqlite3 *db, struct auditdb_chain *c,
			 const struct auditdb_event_row *r) WUR;
int auditdb_insert_grant(sqlite3 *db, struct auditdb_chain *c,
			 const struct auditdb_grant_row *r) WUR;

struct auditdb_verify_result {
	size_t rows_checked;
	bool ok;
	const char *table;      /* first table with a mismatch (static string) */
	int64_t first_bad_id;   /* its row id */
	char detail[256];       /* what did not match */
};
/* Recompute every chain. Returns 0 when it could read the database (then
 * res->ok says whether everything matched), or a negative errno. */
int auditdb_verify(sqlite3 *db, struct auditdb_verify_result *res) WUR;
