/* The session database: SQLite in WAL mode at [agent] database.
 *
 * The data path never touches SQLite. It hands records to a bounded queue;
 * one writer thread drains it in batched transactions and hash-chains every
 * row (common/auditdb.h). A statement is only forwarded after
 * audit_reserve() succeeded, which guarantees its record a place in the
 * queue; if the writer has failed (disk full, I/O error, read-only file) or
 * the queue is full, audit_reserve() fails and the statement is refused.
 *
 * Threads: every function here is called from the agent's event loop thread
 * except what the writer thread does internally. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

struct audit;

/* Bytes a reservation counts on top of size_hint: the record itself and
 * its short fields (grant id, user, outcome, ...). */
#define AUDIT_RECORD_OVERHEAD 512

/* Decisions recorded for a statement. */
#define AUDIT_ALLOWED "allowed"   /* forwarded upstream */
#define AUDIT_BLOCKED "blocked"   /* refused by policy: a guardrail, the access's mode or schema scope */
#define AUDIT_APPROVAL "approval" /* refused until an approver approves it (the error names the approval);
				     once approved it runs as "allowed", its rule naming the approval */
#define AUDIT_REFUSED "refused"   /* refused by the agent: audit down, grant ended, FunctionCall, limits */

struct audit_statement {
	int64_t ts_us;           /* when the statement arrived */
	const char *grant_id;
	uint32_t uid;
	const char *user;
	const char *connection;  /* [connection] name */
	uint64_t conn_serial;    /* which client connection of the grant (1, 2, ...) */
	const char *sql;         /* exact text (not NUL-terminated necessarily) */
	size_t sql_len;
	const char *decision;    /* AUDIT_* */
	const char *rule;        /* "FILE:LINE" of the deciding rule, or NULL */
	const char *outcome;     /* command tag ("SELECT 3") or NULL on error */
	const char *sqlstate;    /* NULL on success */
	const char *error;       /* error message, NULL on success */
	int64_t rows;            /* -1 when not known */
	int64_t duration_us;     /* -1 when not executed */
	/* Identity (filled once sessions exist; NULL before). */
	const char *subject, *issuer, *groups;
	/* What the client was sent back (agent/pgrecord.h), NULL when nothing
	 * was recorded. Copied. */
	const void *result;
	size_t result_len;
};

struct audit_event {
	int64_t ts_us;
	const char *kind;        /* "grant.created", "grant.ended", "connection.refused", ... */
	const char *grant_id;    /* NULL when not about a grant */
	bool has_uid;
	uint32_t uid;
	const char *user;
	const char *connection;
	const char *detail;      /* human text; never a secret */
};

struct audit_grant {
	int64_t created_us;
	const char *id;
	uint32_t uid;
	const char *user;
	const char *connection;
	const char *protocol;    /* "postgres" */
	int64_t expires_us;
	const char *schema;      /* NULL when unscoped */
	const char *reason;      /* NULL when none given */
	const char *subject, *issuer, *groups; /* NULL before sessions exist */
};

/* Open (creating and migrating) the database at path and start the writer.
 * queue_records / queue_bytes bound what may wait in memory. On failure
 * *err gets a message to show (caller frees). */
int audit_open(const char *path, size_t queue_records, size_t queue_bytes,
	       struct audit **out, char **err) WUR;
/* Flush what is queued, stop the writer, close the database; NULL-safe.
 * While the database cannot be written it keeps retrying for a few seconds,
 * then logs how many records were not written and gives up. */
struct audit *audit_close(struct audit *a);

/* Reserve a place for one statement record of about size_hint bytes.
 * 0, or -EIO when the writer has failed, -ENOSPC when the queue is full.
 * A reservation counts size_hint + AUDIT_RECORD_OVERHEAD bytes against
 * queue_bytes; pass the SQL length as size_hint. When the record turns out
 * bigger (a long error message) it is still queued and counted at its real
 * size, so later reservations wait until the writer catches up. */
int audit_reserve(struct audit *a, size_t size_hint) WUR;
/* Give back a reservation that will not be used. */
void audit_unreserve(struct audit *a, size_t size_hint);
/* Queue a statement record; consumes one reservation (never fails: the
 * reservation guaranteed the room). Strings are copied. */
void audit_statement(struct audit *a, const struct audit_statement *s, size_t size_hint);

/* Queue an event or a grant row. -EIO / -ENOSPC as for audit_reserve. */
int audit_event(struct audit *a, const struct audit_event *e) WUR;
int audit_grant(struct audit *a, const struct audit_grant *g) WUR;

/* Health for `sluicectl status`: NULL when fine, else why writing failed
 * (static or owned by a; valid until the next call). */
const char *audit_failure(struct audit *a);
/* Records waiting in the queue. */
size_t audit_queued(struct audit *a);
