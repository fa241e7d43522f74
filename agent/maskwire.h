/* Masking on the wire (maskwire.c): for a grant whose connection has a
 * [mask] section, the values of masked columns never reach the client in
 * the clear (internal to agent/pg*.c).
 *
 *  - At connection start, before the client is told it is ready, the agent
 *    asks the upstream catalog which (table OID, column number) pairs the
 *    rules name, which views depend on them (transitively), and which
 *    functions live outside pg_catalog; a connection whose catalog cannot
 *    be read is refused.
 *  - Before a statement runs, its mask plan (policy/maskplan.h) may refuse
 *    it (COPY of masked data, strict, DO/CALL): pg_mask_verdict.
 *  - When a result is described, each column gets an action: masked by its
 *    origin (a masked column or a tainted view), tainted by the plan (OID-0
 *    columns), scanned by the detectors, or passed. A method that cannot
 *    stand for the column's type refuses the statement (mask-else-refuse).
 *  - Rows of a result with anything to mask are taken whole (max_message_size
 *    caps them: a bigger one refuses the statement) and rewritten.
 *  - Error and notice texts are scrubbed of quoted values.
 * A refused result is replaced by an ErrorResponse (42501) and everything the
 * server sends until ReadyForQuery is withheld from the client. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/buf.h"
#include "policy/decide.h"

struct pgconn;
struct pend;
struct sql_stmt;
struct maskconn;

/* Upstream is ready: send the catalog query (1: sent, the connection now
 * waits for its answer; 0: nothing to mask), or a negative errno. */
int pg_mask_catalog_start(struct pgconn *c) WUR;
/* A server message answering it. 1: the catalog is read (the client may be
 * told the connection is ready), 0: go on, <0: fail the connection (it was
 * reported). */
int pg_mask_catalog_message(struct pgconn *c, char type, const uint8_t *body, size_t n) WUR;

/* A client message of type is about to be examined (READY). After DDL on
 * this connection, the catalog is read again first: 1 when the query was
 * put in front of the message (examine it again), 0, or a negative errno. */
int pg_mask_client(struct pgconn *c, char type) WUR;
/* Server messages now answer that query (the head of the FIFO is it). */
bool pg_mask_refreshing(struct pgconn *c);
/* One of them (consumed, never forwarded). 0, or <0: fail the connection. */
int pg_mask_refresh_message(struct pgconn *c, char type, const uint8_t *body, size_t n) WUR;

/* A CommandComplete or ReadyForQuery from the server (READY, any
 * connection, masked or not; not an answer to the catalog query): DDL
 * that completed makes this connection read its catalog again, and, once
 * its transaction ends, every masked connection of the agent; rows later
 * in the same request are refused. */
void pg_mask_settle(struct pgconn *c, char type, const uint8_t *body, size_t n);

/* Statement st of text (text is the whole string; st may be NULL for a text
 * of one statement) is about to be decided allowed: a mask plan that refuses
 * it turns v into a block naming the [mask] section. */
void pg_mask_verdict(struct pgconn *c, const char *text, size_t len, const struct sql_stmt *st,
		     struct verdict *v);

/* What to do with one server message (READY state). */
enum mask_action {
	MA_PASS,     /* track and forward as usual */
	MA_REPLACE,  /* track it, then send c's replacement (pg_mask_replacement) instead */
	MA_WITHHOLD, /* track it, but do not forward it */
};
/* A complete message (body without header), not a DataRow: those go
 * through pg_mask_row_begin and pg_mask_row. */
enum mask_action pg_mask_server(struct pgconn *c, char type, const uint8_t *body, size_t n);
/* The bytes to send instead (a whole message, header included) after
 * MA_REPLACE; after MA_WITHHOLD it is empty. */
struct buf *pg_mask_replacement(struct pgconn *c);
/* One whole DataRow (body, n): MA_PASS (send it as it is), MA_REPLACE (its
 * masked copy was appended to dst), MA_WITHHOLD (refused: send the
 * replacement, the error, instead; the rest is withheld). */
enum mask_action pg_mask_row(struct pgconn *c, const uint8_t *body, size_t n, struct buf *dst);
/* A buffer for the rows of one pass (the proxy rewrites every complete row
 * it has read at once, and changes its pipe once). */
struct buf *pg_mask_batch(struct pgconn *c);
/* Rows of the current result must be taken whole (something in them is
 * masked or scanned). */
bool pg_mask_rows_whole(const struct pgconn *c);
/* A DataRow is about to be relayed: its result's mask may need deciding
 * first (MA_REPLACE: refused, the replacement is the error; MA_WITHHOLD:
 * withheld). */
enum mask_action pg_mask_row_begin(struct pgconn *c);
/* A row too big to take whole while it needs masking: refuse the result
 * (the row is withheld). MA_REPLACE: the replacement is the error to send
 * first; MA_WITHHOLD: nothing is (no memory for it). */
enum mask_action pg_mask_row_too_big(struct pgconn *c, size_t total);
/* Results are being withheld until ReadyForQuery. */
bool pg_mask_withholding(const struct pgconn *c);
/* The audit's outcome for a statement completing while withheld: the error
 * to record instead of the server's tag (NULL: as the server said). */
const char *pg_mask_withheld_error(struct pgconn *c);

void pg_mask_free(struct pgconn *c);
