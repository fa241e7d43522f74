/* Recorded results: what the client was sent back for each statement, as
 * far as [agent] record_rows and record_bytes allow, kept with the
 * statement's audit row for `sluicectl replay`.
 *
 * What is kept are the messages exactly as they went to the client — the
 * statement's RowDescription and its first DataRows — so a replay shows
 * what the client saw (when columns are masked, the masked values), and
 * the loop only copies bytes: decoding is sluicectl's. The format of
 * statements.result (pgrecord.h):
 *
 *   "SLR1" | client_encoding, NUL-terminated | flags (1 byte: bit 0 = rows
 *   were left out) | messages: at most one RowDescription ('T'), then
 *   DataRows ('D'), each as on the wire (type, 4-byte length, body).
 *
 * A DataRow is kept whole or not at all; rows stream through the proxy, so
 * one being kept is copied as its bytes pass (the s2c pipe's tap). */
#include "config.h"
#include "agent/pgrecord.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "agent/maskwire.h"
#include "agent/pgconn.h"

#define REC_MAGIC "SLR1"

struct pgrec {
	struct buf b;
	size_t flags_at;     /* offset of the flags byte */
	uint32_t rows;       /* DataRows kept */
	size_t row_at;       /* where the row being copied starts */
	bool open_row;       /* ...which has not all passed yet */
	bool has_desc;
	bool cut;            /* rows left out */
};

static bool recording(const struct pgconn *c)
{
	const struct pol_agent *a = &c->agent->pol->p->agent;

	return a->record_rows > 0 && a->record_bytes > 0;
}

/* The entry's record, made on first use; NULL when recording is off or
 * there is no memory (a record is not worth failing a statement for). */
static struct pgrec *rec_of(struct pgconn *c, struct pend *e)
{
	const char *enc = c->client_enc[0] ? c->client_enc : "UTF8";
	size_t enc_len = strlen(enc);
	struct pgrec *r;

	if (pg_mask_withholding(c))
		return NULL; /* what the client is not sent is not kept either */
	if (e->rec)
		return e->rec;
	if (!recording(c) || (e->kind != PEND_QUERY && e->kind != PEND_EXECUTE))
		return NULL;
	if ((r = c->rec_spare)) {
		c->rec_spare = NULL;
	} else if (!(r = calloc(1, sizeof(*r)))) {
		return NULL;
	}
	r->b.max = c->agent->pol->p->agent.record_bytes + 64;
	if (buf_append(&r->b, REC_MAGIC, 4) < 0 || buf_append(&r->b, enc, enc_len + 1) < 0 ||
	    buf_put_u8(&r->b, 0) < 0) {
		buf_release(&r->b, 0);
		free(r);
		return NULL;
	}
	r->flags_at = r->b.len - 1;
	e->rec = r;
	return r;
}

/* Room for n more bytes of the record's own budget. */
static bool fits(const struct pgconn *c, const struct pgrec *r, size_t n)
{
	return r->b.len - r->flags_at - 1 + n <= c->agent->pol->p->agent.record_bytes;
}

static void add_message(struct pgconn *c, struct pgrec *r, char type, const uint8_t *body, size_t n)
{
	if (!fits(c, r, n + 5) || buf_put_u8(&r->b, (uint8_t)type) < 0 ||
	    buf_put_u32(&r->b, (uint32_t)n + 4) < 0 || buf_append(&r->b, body, n) < 0) {
		r->cut = true;
		return;
	}
	r->has_desc = true;
}

void pg_rec_description(struct pgconn *c, struct pend *e, const uint8_t *body, size_t n)
{
	struct pgrec *r = rec_of(c, e);

	if (r && !r->has_desc && r->rows == 0)
		add_message(c, r, 'T', body, n);
}

void pg_rec_bound(struct pgconn *c)
{
	buf_clear(&c->desc);
	c->desc_of = sqltext_unref(c->desc_of);
}

void pg_rec_forget_description(struct pgconn *c)
{
	buf_release(&c->desc, 0);
	c->desc_of = sqltext_unref(c->desc_of);
}

/* A Describe's answer, kept for an Execute of the same statement (of is
 * NULL for a statement or portal sluice did not see made: kept for none). */
void pg_rec_described(struct pgconn *c, struct sqltext *of, const uint8_t *body, size_t n)
{
	pg_rec_bound(c);
	if (!body || !of || !recording(c))
		return;
	c->desc.max = c->agent->pol->p->agent.record_bytes;
	if (buf_put_u32(&c->desc, (uint32_t)n + 4) < 0 || buf_append(&c->desc, body, n) < 0) {
		buf_clear(&c->desc);
		return;
	}
	c->desc_of = sqltext_ref(of);
}

/* An Execute's rows are described by the Describe before it (Bind,
 * Describe, Execute) when it runs the statement described: taken once,
 * and forgotten at the next Bind. A description of another statement's
 * portal (Bind P1, Bind P2, Describe P1, Execute P2) waits for its own. */
static void take_description(struct pgconn *c, struct pend *e, struct pgrec *r)
{
	if (e->kind != PEND_EXECUTE || !e->sql || e->sql != c->desc_of)
		return;
	if (!r->has_desc && r->rows == 0 && c->desc.len >= 4)
		add_message(c, r, 'T', c->desc.data + 4, c->desc.len - 4);
	pg_rec_bound(c);
}

struct pgrec *pg_rec_row(struct pgconn *c, struct pend *e, size_t total)
{
	struct pgrec *r = e ? rec_of(c, e) : NULL;

	if (!r)
		return NULL;
	if (e->kind == PEND_EXECUTE && c->desc.len)
		take_description(c, e, r);
	if (r->rows >= c->agent->pol->p->agent.record_rows || !fits(c, r, total) ||
	    buf_reserve(&r->b, total) < 0) {
		r->cut = true;
		return NULL;
	}
	r->rows++;
	r->row_at = r->b.len;
	r->open_row = true;
	return r;
}

void pg_rec_tap(struct pgrec *r, const uint8_t *p, size_t n)
{
	/* pg_rec_row reserved the whole row: this cannot grow the buffer. */
	if (buf_append(&r->b, p, n) < 0)
		r->cut = true;
}

void pg_rec_row_done(struct pgrec *r)
{
	r->open_row = false;
}

const void *pg_rec_result(struct pgconn *c, struct pend *e, bool ran, size_t *len)
{
	struct pgrec *r = e->rec;

	*len = 0;
	/* An Execute that returned no rows still has its columns. */
	if (ran && e->kind == PEND_EXECUTE && c->desc.len && (r = rec_of(c, e)))
		take_description(c, e, r);
	if (r && r->open_row) { /* the connection ended in the middle of a row */
		r->b.len = r->row_at;
		r->rows--;
		r->open_row = false;
		r->cut = true;
	}
	if (!r || (!r->has_desc && r->rows == 0))
		return NULL;
	r->b.data[r->flags_at] = r->cut ? 1 : 0;
	*len = r->b.len;
	return r->b.data;
}

/* A record of at most this capacity is kept for the connection's next
 * statement (most results are a few rows), so recording does not cost
 * allocations per statement; a bigger one is given back. */
#define REC_KEEP 1024

void pg_rec_free(struct pgconn *c, struct pend *e)
{
	struct pgrec *r = e->rec;

	if (!r)
		return;
	e->rec = NULL;
	if (c->s2c.tap == r)
		c->s2c.tap = NULL;
	if (c->rec_spare || r->b.cap > REC_KEEP) {
		buf_release(&r->b, 0);
		free(r);
		return;
	}
	*r = (struct pgrec){ .b = r->b };
	buf_clear(&r->b);
	c->rec_spare = r;
}

void pg_rec_release(struct pgconn *c)
{
	pg_rec_forget_description(c);
	if (!c->rec_spare)
		return;
	buf_release(&c->rec_spare->b, 0);
	free(c->rec_spare);
	c->rec_spare = NULL;
}
