/* Recorded results (pgrecord.c): the RowDescription and first DataRows of
 * each statement's answer, as the client received them, for the audit row's
 * result column and `sluicectl replay`. Caps: [agent] record_rows and
 * record_bytes per statement (record_rows = 0: nothing is recorded).
 *
 * Format of a record (statements.result, read by ctl/replay.c):
 *   "SLR1" | client_encoding name, NUL-terminated | flags (1 byte; bit 0:
 *   rows were left out by the caps) | wire messages: at most one 'T', then
 *   'D's, each type byte + 4-byte big-endian length (itself included) +
 *   body. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pgconn;
struct pend;
struct pgrec;

/* A RowDescription answering the entry (a simple query's statement). */
void pg_rec_description(struct pgconn *c, struct pend *e, const uint8_t *body, size_t n);
/* A RowDescription (or NoData: body NULL) answering a Describe of
 * statement of (or of a portal of it): it describes the rows of the next
 * Execute of that statement. Forgotten at a Bind and at ReadyForQuery. */
struct sqltext;
void pg_rec_described(struct pgconn *c, struct sqltext *of, const uint8_t *body, size_t n);
void pg_rec_forget_description(struct pgconn *c);
/* A DataRow of total bytes (header included) for entry e begins: the
 * record to copy its bytes into (pg_rec_tap, then pg_rec_row_done), or
 * NULL when it is not kept. */
struct pgrec *pg_rec_row(struct pgconn *c, struct pend *e, size_t total);
void pg_rec_tap(struct pgrec *r, const uint8_t *p, size_t n);
void pg_rec_row_done(struct pgrec *r);
/* The record to store with the entry's statement (ran: it completed), or
 * NULL (nothing came back: no rows, no description). Valid until
 * pg_rec_free. */
const void *pg_rec_result(struct pgconn *c, struct pend *e, bool ran, size_t *len);
/* A BindComplete: the description kept from an earlier Describe is not
 * this portal's. */
void pg_rec_bound(struct pgconn *c);
/* After the statement is recorded (and when the entry goes). */
void pg_rec_free(struct pgconn *c, struct pend *e);
/* The connection is going: free the record kept for reuse and the
 * description. */
void pg_rec_release(struct pgconn *c);
