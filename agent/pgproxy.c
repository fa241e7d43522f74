/* The PostgreSQL proxy: client side, relaying, grant end and cancel.
 * See pgconn.h for how the pieces fit. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/audit.h"
#include "agent/maskwire.h"
#include "agent/pgconn.h"
#include "agent/pgrecord.h"
#include "agent/pgwire.h"
#include "common/log.h"

#define READ_CHUNK (16 * 1024)   /* a pipe buffer's usual size */
#define HIGH_WATER (64 * 1024)   /* unsent bytes at which we stop reading the source */
#define POOL_MAX 256             /* idle READ_CHUNK buffers kept for reuse */
#define LINGER_US (10LL * 60 * 1000000)
#define PASSWORD_MAX 1024

/* Idle connections hold no buffers: a pipe takes one from this pool when
 * bytes arrive and gives it back once everything is written. */
static uint8_t *pool[POOL_MAX];
static size_t pool_n;

static void pipe_release(struct pg_pipe *p)
{
	if (p->secret && p->b.data)
		explicit_bzero(p->b.data, p->b.cap);
	p->secret = false;
	if (p->b.data && p->b.cap == READ_CHUNK && pool_n < POOL_MAX)
		pool[pool_n++] = p->b.data;
	else
		free(p->b.data);
	p->b.data = NULL;
	p->b.cap = p->b.len = 0;
	p->off = p->scan = 0;
}

/* Room for at least `need` bytes after len (need <= the pipe's max). */
static int pipe_room(struct pg_pipe *p, size_t need)
{
	if (!p->b.data) {
		if (pool_n > 0) {
			p->b.data = pool[--pool_n];
		} else {
			p->b.data = malloc(READ_CHUNK);
			if (!p->b.data)
				return -ENOMEM;
		}
		p->b.cap = READ_CHUNK;
	}
	if (p->b.cap - p->b.len >= need)
		return 0;
	/* Move what is still needed to the front before growing. */
	if (p->off > 0) {
		memmove(p->b.data, p->b.data + p->off, p->b.len - p->off);
		p->b.len -= p->off;
		p->scan -= p->off;
		p->off = 0;
		if (p->b.cap - p->b.len >= need)
			return 0;
	}
	return buf_reserve(&p->b, need);
}

/* Remove n bytes at position at (a dropped message). */
static void pipe_cut(struct pg_pipe *p, size_t at, size_t n)
{
	memmove(p->b.data + at, p->b.data + at + n, p->b.len - at - n);
	p->b.len -= n;
}

/* Insert bytes at scan, as if they had been examined already: what the
 * proxy says itself goes out in order with what it relays. */
int pg_pipe_insert(struct pg_pipe *p, const void *data, size_t n)
{
	int r = pipe_room(p, n);

	if (r < 0)
		return r;
	memmove(p->b.data + p->scan + n, p->b.data + p->scan, p->b.len - p->scan);
	memcpy(p->b.data + p->scan, data, n);
	p->b.len += n;
	p->scan += n;
	return 0;
}

static size_t pipe_unsent(const struct pg_pipe *p)
{
	return p->scan - p->off;
}

static void conn_free(struct pgconn *c)
{
	c->timer = loop_timer_del(c->timer);
	pipe_release(&c->c2s);
	pipe_release(&c->s2c);
	buf_release(&c->params, 1);
	buf_release(&c->hello, 0);
	buf_release(&c->emit, 0);
	buf_release(&c->subst, 0);
	buf_release(&c->desc, 0);
	pg_rec_release(c);
	pg_fifo_release(c);
	pg_mask_free(c);
	free(c->refuse_why);
	free(c->app_name);
	if (c->enc != (iconv_t)-1)
		iconv_close(c->enc);
	free(c);
}

void pg_close(struct pgconn *c, const char *why)
{
	struct grant *g = c->gc.grant;

	pg_track_finish(c, why);
	pg_upstream_close(c);
	if (log_debug_enabled()) {
		struct guard_cache_stats st;

		guard_cache_stats(&st);
		log_debug("classification cache: %llu hits, %llu misses, %llu over %u bytes, %llu evicted; "
			  "%zu entries, %zu bytes of text; %.1f us per classification",
			  (unsigned long long)st.hits, (unsigned long long)st.misses,
			  (unsigned long long)st.uncacheable, GUARD_CACHE_TEXT_MAX,
			  (unsigned long long)st.evictions, st.entries, st.key_bytes,
			  st.misses + st.uncacheable ?
			  (double)st.classify_us / (double)(st.misses + st.uncacheable) : 0.0);
	}
	c->cw = loop_watch_del(c->cw);
	if (c->cfd >= 0)
		close(c->cfd);
	c->cfd = -1;
	if (g && !c->refused && c->serial > 0)
		agent_event(c->agent, "connection.closed", g->id, &c->peer.uid, g->user, g->conn->name,
			    "connection %llu (pid %d): %s; %llu statements",
			    (unsigned long long)c->serial, (int)c->peer.pid, why,
			    (unsigned long long)c->n_statements);
	else if (g && !c->refused && !c->cancel)
		/* Gone before a complete startup packet: worth a line too. */
		agent_event(c->agent, "connection.closed", g->id, &c->peer.uid, g->user, g->conn->name,
			    "pid %d: %s before completing start-up", (int)c->peer.pid, why);
	grant_conn_detach(&c->gc);
	conn_free(c);
}

/* Queue an ErrorResponse for the client (in order with relayed bytes). */
static int client_error(struct pgconn *c, const char *severity, const char *sqlstate,
			const char *msg)
{
	struct buf m = BUF_INIT(0);
	int r = pgw_error(&m, 'E', severity, sqlstate, msg, NULL, NULL);

	if (r == 0)
		r = pg_pipe_insert(&c->s2c, m.data, m.len);
	buf_release(&m, 0);
	return r;
}

/* Tell the client FATAL and close once it is written. */
void pg_fatal_client(struct pgconn *c, const char *sqlstate, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Bytes of a half-relayed server message cannot be followed by ours. */
	if (c->s2c.stream_left > 0) {
		c->end_reason = "closed mid-message";
		c->state = PGS_CLOSING;
		c->s2c.off = c->s2c.scan = c->s2c.b.len = 0;
		return;
	}
	c->s2c.b.len = c->s2c.scan; /* unexamined server bytes are not relayed */
	if (client_error(c, "FATAL", sqlstate, msg) < 0)
		c->s2c.off = c->s2c.scan = c->s2c.b.len = 0;
	pg_upstream_close(c);
	c->state = PGS_CLOSING;
}

void pg_protocol_violation(struct pgconn *c, const char *from, const char *what)
{
	struct grant *g = c->gc.grant;

	log_warn("grant %s connection %llu: malformed input from %s: %s", g->id,
		 (unsigned long long)c->serial, from, what);
	agent_event(c->agent, "connection.malformed", g->id, &c->peer.uid, g->user, g->conn->name,
		    "connection %llu: %s sent %s", (unsigned long long)c->serial, from, what);
	pg_fatal_client(c, "08P01", "sluice: protocol violation: %s", what);
}

/* --- Startup ------------------------------------------------------------ */

/* Startup parameters passed upstream. user and database come from the
 * [connection]; anything not listed here is refused (fail closed: a GUC
 * given at startup could change what the session may do). */
static const char *const forwarded_params[] = {
	"application_name", "client_encoding", "DateStyle", "TimeZone", "IntervalStyle",
	"extra_float_digits", "lc_messages", "lc_monetary", "lc_numeric", "lc_time",
	"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
	"bytea_output",
};

static bool false_value(const char *v)
{
	return strcasecmp(v, "false") == 0 || strcasecmp(v, "off") == 0 || strcasecmp(v, "no") == 0 ||
	       strcmp(v, "0") == 0;
}

static int add_param(struct pgconn *c, const char *k, const char *v)
{
	int r = buf_put_cstr(&c->params, k);

	if (r == 0)
		r = buf_put_cstr(&c->params, v);
	if (r == 0)
		c->n_params++;
	return r;
}

/* search_path for a schema-scoped grant: each schema quoted as an
 * identifier (they are folded already), comma-separated. */
static int scope_search_path(const struct decide_scope *sc, struct buf *b)
{
	int r = 0;

	for (size_t i = 0; i < sc->n_schemas && r == 0; i++) {
		if (i > 0)
			r = buf_append(b, ", ", 2);
		if (r == 0)
			r = buf_put_u8(b, '"');
		for (const char *p = sc->schemas[i]; r == 0 && *p; p++)
			r = *p == '"' ? buf_append(b, "\"\"", 2) : buf_put_u8(b, (uint8_t)*p);
		if (r == 0)
			r = buf_put_u8(b, '"');
	}
	return r == 0 ? buf_put_u8(b, '\0') : r;
}

/* Settings upstream starts with whatever the client asks: the proxy reads
 * string literals with standard_conforming_strings on (as libpg_query
 * does), a scoped grant resolves unqualified names in its schemas, and
 * mode = read makes every transaction read-only by default. They come
 * first, and the client can send none of them (the allowlist above). */
static int pin_settings(struct pgconn *c)
{
	const struct grant *g = c->gc.grant;
	struct buf path = BUF_INIT(PG_STARTUP_MAX);
	int r = add_param(c, "standard_conforming_strings", "on");

	if (r == 0 && g->scope.n_schemas > 0) {
		r = scope_search_path(&g->scope, &path);
		if (r == 0)
			r = add_param(c, "search_path", (const char *)path.data);
		buf_release(&path, 0);
	}
	if (r == 0 && g->access->mode == ACCESS_READ)
		r = add_param(c, "default_transaction_read_only", "on");
	return r;
}

static int client_startup(struct pgconn *c, const struct pg_startup *s)
{
	struct grant *g = c->gc.grant;
	const struct pol_connection *conn = g->conn;
	const char *unknown_pq[64];
	size_t n_pq = 0;
	const char *v;
	int r;

	if (c->refused) {
		pg_fatal_client(c, "28000", "sluice: %s", c->refuse_why);
		return 0;
	}
	if ((v = pgw_startup_get(s, "replication")) && !false_value(v)) {
		agent_event(c->agent, "connection.refused", g->id, &c->peer.uid, g->user, conn->name,
			    "replication connection refused");
		pg_fatal_client(c, "42501", "sluice: replication connections are not allowed through a grant");
		return 0;
	}
	if ((r = add_param(c, "user", conn->user)) < 0 || (r = add_param(c, "database", conn->dbname)) < 0 ||
	    (r = pin_settings(c)) < 0)
		return r;
	for (size_t i = 0; i < s->n; i++) {
		const char *k = s->keys[i];
		bool ok = false;

		if (strcmp(k, "user") == 0 || strcmp(k, "database") == 0 || strcmp(k, "replication") == 0)
			continue; /* the grant is the authorisation; these come from policy */
		if (strncmp(k, "_pq_.", 5) == 0) {
			unknown_pq[n_pq++] = k; /* protocol options: none supported */
			continue;
		}
		for (size_t j = 0; j < ARRAY_SIZE(forwarded_params); j++)
			if (strcasecmp(k, forwarded_params[j]) == 0)
				ok = true;
		if (!ok) {
			agent_event(c->agent, "connection.refused", g->id, &c->peer.uid, g->user, conn->name,
				    "startup parameter \"%.64s\" refused", k);
			pg_fatal_client(c, "0A000",
					"sluice: startup parameter \"%.64s\" is not allowed through a grant", k);
			return 0;
		}
		if ((r = add_param(c, k, s->vals[i])) < 0)
			return r;
		if (strcasecmp(k, "application_name") == 0 && !c->app_name)
			c->app_name = strndup(s->vals[i], 64);
	}
	/* A newer minor version or protocol options: say what we speak. */
	if ((s->code & 0xffff) != 0 || n_pq > 0) {
		if ((r = pgw_negotiate_version(&c->hello, 0, unknown_pq, n_pq)) < 0)
			return r;
	}
	c->state = PGS_UPSTREAM;
	return pg_upstream_start(c);
}

static void handle_cancel(struct pgconn *c, const struct pg_startup *s)
{
	struct grant *g = c->gc.grant;
	struct list_node *n, *t;

	/* Only a connection the grant would accept may cancel, and only one of
	 * the same grant's sessions. */
	if (c->refused)
		return;
	list_for_each_safe(n, t, &g->conns) {
		struct pgconn *o = container_of(n, struct pgconn, gc);
		if (o != c && o->state == PGS_READY && o->proxy_pid == s->cancel_pid &&
		    o->proxy_key == s->cancel_key && o->have_up_key) {
			if (pg_send_cancel(o) < 0)
				log_warn("grant %s: cannot send cancel upstream", g->id);
			agent_event(c->agent, "connection.cancel", g->id, &c->peer.uid, g->user,
				    g->conn->name, "cancel request for connection %llu (pid %d)",
				    (unsigned long long)o->serial, (int)c->peer.pid);
			return;
		}
	}
	log_debug("grant %s: cancel request for an unknown key ignored", g->id);
}

/* Examine c2s in PGS_STARTUP. */
static int scan_startup(struct pgconn *c)
{
	struct pg_pipe *p = &c->c2s;

	while (c->state == PGS_STARTUP && p->b.len - p->scan >= 4) {
		const uint8_t *m = p->b.data + p->scan;
		uint32_t len = get_u32(m);
		struct pg_startup s;
		const char *why;
		int r;

		if (len < 8 || len > PG_STARTUP_MAX) {
			pg_protocol_violation(c, "the client", "an invalid startup packet length");
			return 0;
		}
		if (p->b.len - p->scan < len)
			return pipe_room(p, len - (p->b.len - p->scan));
		if (pgw_parse_startup(m, len, &s, &why) < 0) {
			pg_protocol_violation(c, "the client", why);
			return 0;
		}
		if (s.code == PG_SSL_REQUEST || s.code == PG_GSSENC_REQUEST) {
			/* The grant socket is local: no TLS, no GSS. */
			p->scan += len;
			p->off = p->scan;
			if (++c->enc_requests > 2) {
				pg_protocol_violation(c, "the client", "repeated encryption requests");
				return 0;
			}
			if ((r = pg_pipe_insert(&c->s2c, "N", 1)) < 0)
				return r;
			continue;
		}
		if (s.code == PG_CANCEL_REQUEST) {
			c->cancel = true;
			handle_cancel(c, &s);
			c->end_reason = "cancel request";
			c->state = PGS_CLOSING;
			return 0;
		}
		/* Take the packet out of the pipe (which carries our own setup
		 * messages upstream from now on) and work from a copy. */
		{
			uint8_t *copy = malloc(len);
			if (!copy)
				return -ENOMEM;
			memcpy(copy, m, len);
			pipe_cut(p, p->scan, len);
			if (pgw_parse_startup(copy, len, &s, &why) == 0) {
				c->serial = ++c->gc.grant->conn_serial;
				r = client_startup(c, &s);
			} else {
				r = -EPROTO;
			}
			free(copy);
		}
		return r;
	}
	return 0;
}

/* --- Relaying ----------------------------------------------------------- */

static uint32_t max_message(const struct pgconn *c)
{
	return c->agent->pol->p->agent.max_message_size;
}

/* Pass what streams (p->stream_left), then find the next message header at
 * p->scan. 1: *type and *total (header included) are set; 0: stop for now
 * (more bytes needed, or a bad length already reported); <0: an error. */
static int pipe_next(struct pgconn *c, struct pg_pipe *p, const char *from, char *type,
		     size_t *total)
{
	uint32_t len;

	while (p->stream_left > 0 && p->scan < p->b.len) {
		size_t take = (size_t)MIN(p->stream_left, (uint64_t)(p->b.len - p->scan));
		if (p->tap)
			pg_rec_tap(p->tap, p->b.data + p->scan, take);
		if (p->stream_drop)
			pipe_cut(p, p->scan, take);
		else
			p->scan += take;
		p->stream_left -= take;
		if (p->stream_left == 0 && p->tap) {
			pg_rec_row_done(p->tap);
			p->tap = NULL;
		}
	}
	if (p->stream_left > 0)
		return 0;
	if (p->b.len - p->scan < PG_HEADER)
		return MIN(pipe_room(p, PG_HEADER), 0);
	len = get_u32(p->b.data + p->scan + 1);
	if (len < 4) {
		pg_protocol_violation(c, from, "a message with an invalid length");
		return 0;
	}
	*type = (char)p->b.data[p->scan];
	*total = (size_t)len + 1;
	return 1;
}

/* Examine client bytes in PGS_READY / PGS_LINGER. */
static int scan_client(struct pgconn *c)
{
	struct pg_pipe *p = &c->c2s;

	while (p->scan < p->b.len && (c->state == PGS_READY || c->state == PGS_LINGER)) {
		size_t avail, total;
		const uint8_t *m;
		uint32_t len;
		char type;
		enum pg_action act;
		int r;

		/* A statement waiting for its approval, or for its
		 * classification off the loop, stays unexamined. */
		if (c->hold || c->job)
			return 0;
		if ((r = pipe_next(c, p, "the client", &type, &total)) <= 0)
			return r;
		/* Masking may read the catalog again first (after DDL). */
		if (c->state == PGS_READY && c->mask) {
			r = pg_mask_client(c, type);
			if (r < 0)
				return r;
			if (r == 1)
				continue;
		}
		avail = p->b.len - p->scan;
		m = p->b.data + p->scan;
		len = (uint32_t)(total - 1);
		if (c->state == PGS_LINGER) {
			if (avail < total && total <= max_message(c))
				return pipe_room(p, total - avail);
			pg_track_refused_after_end(c, type, m + PG_HEADER,
						   MIN(avail, total) - PG_HEADER);
			c->state = PGS_CLOSING;
			return 0;
		}
		if (type == 'd' || type == 'F') {
			/* CopyData streams; a FunctionCall is refused, whatever its size. */
			act = pg_track_client(c, type, NULL, 0, total);
			if (act == PG_CLOSE)
				return 0;
			p->stream_drop = act == PG_DROP;
			p->stream_left = total;
			continue;
		}
		if (total > max_message(c)) {
			/* Too big to examine: refuse it, skip its bytes, keep the session. */
			act = pg_track_oversized(c, type, total, max_message(c));
			if (act == PG_CLOSE)
				return 0;
			p->stream_drop = true;
			p->stream_left = total;
			continue;
		}
		if (avail < total)
			return pipe_room(p, total - avail);
		act = pg_track_client(c, type, m + PG_HEADER, len - 4, total);
		switch (act) {
		case PG_FORWARD:
		case PG_STREAM:
			p->scan += total;
			break;
		case PG_DROP:
			pipe_cut(p, p->scan, total);
			break;
		case PG_REPLACE:
			pipe_cut(p, p->scan, total);
			r = pg_pipe_insert(p, c->subst.data, c->subst.len);
			buf_release(&c->subst, 0);
			if (r < 0)
				return r;
			break;
		case PG_HOLD:
		case PG_CLOSE:
			return 0;
		}
	}
	return 0;
}

/* Put c's masking replacement where the message at p->scan (total bytes)
 * was. */
static int replace_message(struct pgconn *c, struct pg_pipe *p, size_t total)
{
	struct buf *rb = pg_mask_replacement(c);

	pipe_cut(p, p->scan, total);
	return pg_pipe_insert(p, rb->data, rb->len);
}

/* An answer to masking's own catalog query: read, never forwarded. 1:
 * handled, 0: stop for now (more bytes, or the connection failed). */
static int catalog_answer(struct pgconn *c, struct pg_pipe *p, char type, size_t total)
{
	size_t avail = p->b.len - p->scan;

	if (total > max_message(c)) {
		pg_protocol_violation(c, "the server", "a catalog row larger than max_message_size");
		return 0;
	}
	if (avail < total)
		return MIN(pipe_room(p, total - avail), 0);
	if (pg_mask_refresh_message(c, type, p->b.data + p->scan + PG_HEADER, total - PG_HEADER) < 0) {
		pg_fatal_client(c, "08006", "sluice: cannot read the catalog again after DDL to mask this connection's columns; reconnect");
		return 0;
	}
	pipe_cut(p, p->scan, total);
	return 1;
}

/* A DataRow on a masked connection. 1: handled, 0: stop for now, <0 error. */
static int masked_row(struct pgconn *c, struct pg_pipe *p, size_t total)
{
	enum mask_action a;
	size_t avail = p->b.len - p->scan;
	enum pg_action act;
	struct pgrec *tap;
	int r;

	if (pg_mask_refreshing(c))
		return catalog_answer(c, p, 'D', total);
	a = pg_mask_row_begin(c);
	if (a == MA_PASS && !pg_mask_rows_whole(c)) {
		if (pg_track_server(c, 'D', NULL, total) == PG_CLOSE)
			return 0;
		p->stream_left = total;
		p->stream_drop = false;
		return 1;
	}
	if (a == MA_PASS && total > max_message(c))
		a = pg_mask_row_too_big(c, total);
	if (a != MA_PASS) {
		/* Refused (the error goes first) or withheld: the row is dropped as it streams. */
		if (a == MA_REPLACE) {
			struct buf *rb = pg_mask_replacement(c);
			if ((r = pg_pipe_insert(p, rb->data, rb->len)) < 0)
				return r;
		}
		if (pg_track_server(c, 'D', NULL, total) == PG_CLOSE)
			return 0;
		c->s2c.tap = NULL;
		p->stream_left = total;
		p->stream_drop = true;
		return 1;
	}
	if (avail < total)
		return MIN(pipe_room(p, total - avail), 0);
	/* Every complete row already read is rewritten in this pass into one
	 * buffer, and the pipe changes once: replacing rows one by one would
	 * move the rest of the buffer for each. */
	{
		struct buf *out = pg_mask_batch(c);
		size_t at = p->scan, used = 0, mtotal = total;

		buf_clear(out);
		for (;;) {
			const uint8_t *msg = p->b.data + at;

			act = pg_track_server(c, 'D', NULL, mtotal);
			if (act == PG_CLOSE)
				return 0;
			tap = c->s2c.tap;
			c->s2c.tap = NULL;
			size_t before = out->len;

			a = pg_mask_row(c, msg + PG_HEADER, mtotal - PG_HEADER, out);
			r = 0;
			if (a == MA_PASS)
				r = buf_append(out, msg, mtotal);
			else if (a == MA_WITHHOLD) /* refused: the error takes its place */
				r = buf_append(out, pg_mask_replacement(c)->data, pg_mask_replacement(c)->len);
			if (tap && a != MA_WITHHOLD) {
				pg_rec_tap(tap, out->data + before, out->len - before);
				pg_rec_row_done(tap);
			}
			if (r < 0)
				return r;
			at += mtotal;
			used += mtotal;
			if (pg_mask_withholding(c) || p->b.len - at < PG_HEADER || p->b.data[at] != 'D')
				break;
			mtotal = (size_t)get_u32(p->b.data + at + 1) + 1;
			if (mtotal < PG_HEADER || mtotal > max_message(c) || p->b.len - at < mtotal ||
			    out->len + 2 * mtotal + 64 > out->max)
				break;
		}
		pipe_cut(p, p->scan, used);
		return pg_pipe_insert(p, out->data, out->len) < 0 ? -ENOMEM : 1;
	}
}

/* Any other server message on a masked connection (READY). */
static int masked_message(struct pgconn *c, struct pg_pipe *p, char type, size_t total)
{
	const uint8_t *m = p->b.data + p->scan;
	enum mask_action a;
	struct buf *rb = pg_mask_replacement(c);
	enum pg_action act;

	if (pg_mask_refreshing(c))
		return catalog_answer(c, p, type, total);
	a = pg_mask_server(c, type, m + PG_HEADER, total - PG_HEADER);

	/* The tracker sees the server's message, or its scrubbed copy when it
	 * is one (an error or notice), never our refusal in its place. */
	if (a == MA_REPLACE && rb->len > PG_HEADER && rb->data[0] == (uint8_t)type)
		act = pg_track_server(c, type, rb->data + PG_HEADER, rb->len - PG_HEADER);
	else
		act = pg_track_server(c, type, m + PG_HEADER, total - PG_HEADER);
	if (act == PG_CLOSE)
		return 0;
	/* The tracker's own answer in its place (a refused message's error) wins. */
	if (a == MA_REPLACE && act != PG_DROP)
		return replace_message(c, p, total) < 0 ? -ENOMEM : 1;
	if (a != MA_PASS || act == PG_DROP)
		pipe_cut(p, p->scan, total);
	else
		p->scan += total;
	return 1;
}

/* Examine server bytes in PGS_READY (and the setup states). */
static int scan_server(struct pgconn *c)
{
	struct pg_pipe *p = &c->s2c;

	while (p->scan < p->b.len) {
		size_t avail, total;
		const uint8_t *m;
		uint32_t len;
		char type;
		enum pg_action act;
		int r;

		if (c->state != PGS_READY && c->state != PGS_UPSTREAM)
			return 0;
		if ((r = pipe_next(c, p, "the server", &type, &total)) <= 0)
			return r;
		avail = p->b.len - p->scan;
		m = p->b.data + p->scan;
		len = (uint32_t)(total - 1);
		if (c->state == PGS_READY && type == 'D' && c->mask) {
			r = masked_row(c, p, total);
			if (r < 0)
				return r;
			if (r == 0)
				return 0; /* more bytes needed, or closing */
			continue;
		}
		if (c->state == PGS_READY && (type == 'D' || type == 'd')) {
			act = pg_track_server(c, type, NULL, total);
			if (act == PG_CLOSE)
				return 0;
			p->stream_left = total;
			p->stream_drop = type == 'd' && pg_mask_withholding(c);
			continue;
		}
		if (total > max_message(c)) {
			char what[160];
			snprintf(what, sizeof(what),
				 "a message (type 0x%02x) of %zu bytes, larger than max_message_size (%u bytes)",
				 (unsigned)(uint8_t)type, total, max_message(c));
			pg_protocol_violation(c, "the server", what);
			return 0;
		}
		if (avail < total)
			return pipe_room(p, total - avail);
		if (c->state == PGS_UPSTREAM) {
			/* Setup messages are consumed; the client gets our hello,
			 * inserted before this message when it completes. */
			r = pg_upstream_message(c, type, m + PG_HEADER, len - 4);
			if (r < 0)
				return r;
			if (c->state == PGS_CLOSING)
				return 0;
			pipe_cut(p, p->scan, total);
			continue;
		}
		/* DDL done, a transaction ended: masking's catalog may be stale. */
		if (c->state == PGS_READY && (type == 'C' || type == 'Z') && !pg_mask_refreshing(c))
			pg_mask_settle(c, type, m + PG_HEADER, len - 4);
		if (c->state == PGS_READY && c->mask) {
			r = masked_message(c, p, type, total);
			if (r < 0)
				return r;
			if (r == 0)
				return 0;
			if ((r = pg_flush_emit(c)) < 0)
				return r;
			continue;
		}
		act = pg_track_server(c, type, m + PG_HEADER, len - 4);
		if (act == PG_CLOSE)
			return 0;
		if (act == PG_DROP)
			pipe_cut(p, p->scan, total);
		else
			p->scan += total;
		/* Replies the proxy made itself that were waiting for this one. */
		if ((r = pg_flush_emit(c)) < 0)
			return r;
	}
	return pg_flush_emit(c);
}

/* Replies the proxy made itself (refusals) go out once the responses
 * before them have, and never inside a half-relayed message. */
int pg_flush_emit(struct pgconn *c)
{
	int r;

	if (c->emit.len == 0 || c->s2c.stream_left > 0)
		return 0;
	r = pg_pipe_insert(&c->s2c, c->emit.data, c->emit.len);
	buf_release(&c->emit, 0);
	return r;
}

static ssize_t client_read(struct pgconn *c, void *buf, size_t n)
{
	ssize_t r = recv(c->cfd, buf, n, 0);
	return r < 0 ? -errno : r;
}

static ssize_t client_write(struct pgconn *c, const void *buf, size_t n)
{
	ssize_t r = send(c->cfd, buf, n, MSG_NOSIGNAL);
	return r < 0 ? -errno : r;
}

/* Write what is examined in p to its destination. 0, or negative errno. */
static int pipe_flush(struct pgconn *c, struct pg_pipe *p, bool to_upstream)
{
	while (pipe_unsent(p) > 0) {
		ssize_t w = to_upstream ? pg_up_write(c, p->b.data + p->off, pipe_unsent(p))
					: client_write(c, p->b.data + p->off, pipe_unsent(p));
		if (w == -EAGAIN || w == -EINTR) {
			p->blocked = w == -EAGAIN;
			return 0;
		}
		if (w < 0)
			return (int)w;
		p->off += (size_t)w;
	}
	p->blocked = false;
	if (p->off == p->b.len && p->stream_left == 0)
		pipe_release(p);
	return 0;
}

/* Read from a pipe's source. >0 bytes, 0 at EOF, -EAGAIN, -errno. */
static ssize_t pipe_fill(struct pgconn *c, struct pg_pipe *p, bool from_upstream)
{
	ssize_t n;
	int r = pipe_room(p, 1);

	if (r < 0)
		return r;
	if (p->b.cap - p->b.len < READ_CHUNK / 4 && p->b.cap < READ_CHUNK) {
		if ((r = pipe_room(p, READ_CHUNK / 4)) < 0)
			return r;
	}
	n = from_upstream ? pg_up_read(c, p->b.data + p->b.len, p->b.cap - p->b.len)
			  : client_read(c, p->b.data + p->b.len, p->b.cap - p->b.len);
	if (n > 0)
		p->b.len += (size_t)n;
	else if (n == 0)
		p->eof = true;
	return n;
}

static bool client_readable_state(const struct pgconn *c)
{
	if (c->c2s.eof)
		return false; /* level-triggered: EOF would be reported forever */
	switch (c->state) {
	case PGS_STARTUP:
	case PGS_LINGER:
		return true;
	case PGS_READY:
		/* Holding a statement for approval: nothing more is read meanwhile. */
		return pipe_unsent(&c->c2s) < HIGH_WATER && c->fifo_n < 4096 && !c->hold && !c->job;
	default:
		return false;
	}
}

static bool upstream_readable_state(const struct pgconn *c)
{
	if (c->ufd < 0)
		return false;
	if (c->state == PGS_UPSTREAM)
		return c->up >= UP_AUTH;
	return c->state == PGS_READY && pipe_unsent(&c->s2c) < HIGH_WATER;
}

void pg_update_events(struct pgconn *c)
{
	uint32_t ce = 0, ue = 0;

	if (c->cfd >= 0 && c->cw) {
		if (client_readable_state(c))
			ce |= EPOLLIN;
		if (c->s2c.blocked)
			ce |= EPOLLOUT;
		if (loop_watch_set(c->cw, ce) < 0)
			log_warn("epoll: %s", strerror(errno));
	}
	if (c->ufd >= 0 && c->uw) {
		if (c->state == PGS_UPSTREAM && c->up == UP_CONNECTING)
			ue = EPOLLOUT;
		else if (c->state == PGS_UPSTREAM && c->up == UP_SSL_ANSWER)
			ue = EPOLLIN;
		else if (c->state == PGS_UPSTREAM && c->up == UP_TLS)
			ue = c->tls_want == TLS_WANT_WRITE ? EPOLLOUT : EPOLLIN;
		else if (c->state != PGS_UPSTREAM || c->up >= UP_AUTH) {
			if (upstream_readable_state(c))
				ue |= c->tls_rd_want == TLS_WANT_WRITE ? EPOLLOUT : EPOLLIN;
			if (c->c2s.blocked)
				ue |= c->tls_wr_want == TLS_WANT_READ ? EPOLLIN : EPOLLOUT;
		}
		if (loop_watch_set(c->uw, ue) < 0)
			log_warn("epoll: %s", strerror(errno));
	}
}

/* The client closed its side (or the whole socket). A message cut short
 * is malformed input; answers still owed to a half-closed client are sent,
 * as PostgreSQL does. Returns true when the connection should close now. */
static bool client_eof(struct pgconn *c)
{
	struct pg_pipe *p = &c->c2s;
	struct grant *g = c->gc.grant;

	p->eof = true;
	c->end_reason = "client disconnected";
	if (p->stream_left > 0 || p->scan < p->b.len) {
		agent_event(c->agent, "connection.malformed", g->id, &c->peer.uid, g->user, g->conn->name,
			    "connection %llu (pid %d): incomplete%s message: the client closed in the middle of it",
			    (unsigned long long)c->serial, (int)c->peer.pid,
			    c->state == PGS_STARTUP ? " startup" : "");
		c->end_reason = "client closed mid-message";
		return true;
	}
	return c->state != PGS_READY || (c->fifo_n == 0 && pipe_unsent(&c->s2c) == 0);
}

/* Read what the upstream has and examine it. TLS may hold decrypted bytes
 * the socket no longer shows: keep going while it has some. */
static int read_upstream(struct pgconn *c)
{
	while (upstream_readable_state(c) && !c->s2c.eof) {
		ssize_t n = pipe_fill(c, &c->s2c, true);
		int r;

		if (n > 0) {
			if ((r = scan_server(c)) < 0)
				return r;
			if (c->tls && tls_pending(c->tls))
				continue;
		} else if (n == 0 || (n != -EAGAIN && n != -EINTR)) {
			if (c->state == PGS_UPSTREAM) {
				pg_fatal_client(c, "08006", "sluice: the upstream server closed the connection during start-up");
			} else if (c->state == PGS_READY) {
				/* The server went away (it usually said why, relayed
				 * already): deliver what we have, then close. */
				c->end_reason = "server closed the connection";
				c->state = PGS_CLOSING;
				pg_upstream_close(c);
			}
		}
		break;
	}
	return 0;
}

/* Move bytes after an event: cev/uev are what epoll reported for the
 * client and the upstream socket (0: none, e.g. a state change). Sources
 * are read only when epoll says so — it is level-triggered and says again —
 * so an idle side costs no system call. Closes the connection (and
 * returns) when it is finished. */
void pg_pump(struct pgconn *c, uint32_t cev, uint32_t uev)
{
	const uint32_t in = EPOLLIN | EPOLLHUP | EPOLLERR;
	int r = 0;
	ssize_t n;

	if ((cev & in) && c->cfd >= 0 && client_readable_state(c) && !c->c2s.eof) {
		n = pipe_fill(c, &c->c2s, false);
		if (n > 0) {
			r = c->state == PGS_STARTUP ? scan_startup(c) : scan_client(c);
			if (r < 0)
				goto fail;
		} else if (n == 0) {
			if (client_eof(c))
				goto close;
		} else if (n != -EAGAIN && n != -EINTR) {
			c->end_reason = "client connection error";
			goto close;
		}
	}
	if (c->ufd >= 0 && (c->tls ? uev != 0 : (uev & in) != 0) && (r = read_upstream(c)) < 0)
		goto fail;
	/* Client bytes that arrived while upstream was being set up. */
	if (c->state == PGS_READY && c->c2s.scan < c->c2s.b.len && (r = scan_client(c)) < 0)
		goto fail;
	if (c->ufd >= 0 && pipe_unsent(&c->c2s) > 0 && (!c->c2s.blocked || uev) &&
	    (c->state == PGS_READY || (c->state == PGS_UPSTREAM && c->up >= UP_AUTH))) {
		if ((r = pipe_flush(c, &c->c2s, true)) < 0) {
			c->end_reason = "upstream write failed";
			pg_fatal_client(c, "08006", "sluice: lost the upstream connection: %s", strerror(-r));
		}
	}
	if (c->cfd >= 0 && pipe_unsent(&c->s2c) > 0 && (!c->s2c.blocked || cev)) {
		if ((r = pipe_flush(c, &c->s2c, false)) < 0) {
			c->end_reason = "client connection error";
			goto close;
		}
		/* Room again: TLS may hold bytes epoll will not report. */
		if (c->tls && tls_pending(c->tls) && (r = read_upstream(c)) < 0)
			goto fail;
		if (pipe_unsent(&c->s2c) > 0 && !c->s2c.blocked &&
		    (r = pipe_flush(c, &c->s2c, false)) < 0) {
			c->end_reason = "client connection error";
			goto close;
		}
	}
	/* The client stopped sending: close once its last answers are out. */
	if (c->c2s.eof && c->state == PGS_READY && c->fifo_n == 0) {
		c->end_reason = "client disconnected";
		c->state = PGS_CLOSING;
	}
	if (c->state == PGS_CLOSING && pipe_unsent(&c->s2c) == 0)
		goto close;
	pg_update_events(c);
	return;
fail:
	log_warn("grant %s connection %llu: %s", c->gc.grant->id, (unsigned long long)c->serial,
		 strerror(-r));
	c->end_reason = r == -ENOMEM ? "out of memory" : "internal error";
close:
	pg_close(c, c->end_reason ? c->end_reason : "closed");
}

static void on_client(struct loop_watch *w, uint32_t events, void *ud)
{
	struct pgconn *c = ud;

	if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN) && c->state != PGS_CLOSING) {
		/* Nothing left to read: the client is gone. */
		c->end_reason = "client disconnected";
		pg_close(c, c->end_reason);
		return;
	}
	pg_pump(c, events, 0);
}

void pg_on_upstream(struct loop_watch *w, uint32_t events, void *ud)
{
	struct pgconn *c = ud;

	if (c->state == PGS_UPSTREAM && c->up < UP_AUTH) {
		pg_upstream_event(c, events);
		pg_pump(c, 0, 0);
		return;
	}
	pg_pump(c, 0, events);
}

/* Upstream is ready: the client gets the hello (AuthenticationOk,
 * ParameterStatus, our BackendKeyData, ReadyForQuery). */
void pg_ready_for_client(struct pgconn *c)
{
	struct grant *g = c->gc.grant;

	c->timer = loop_timer_del(c->timer);
	c->state = PGS_READY;
	c->txn_status = 'I';
	c->connected_us = now_us();
	if (pg_pipe_insert(&c->s2c, c->hello.data, c->hello.len) < 0) {
		pg_fatal_client(c, "53200", "sluice: out of memory");
		return;
	}
	buf_clear(&c->hello);
	buf_release(&c->params, 1);
	agent_event(c->agent, "connection.opened", g->id, &c->peer.uid, g->user, g->conn->name,
		    "connection %llu (pid %d%s%s)", (unsigned long long)c->serial, (int)c->peer.pid,
		    c->app_name ? ", application " : "", c->app_name ? c->app_name : "");
}

/* --- Timers, grant end, accept ------------------------------------------ */

static void on_timeout(struct loop_timer *t, void *ud)
{
	struct pgconn *c = ud;

	c->timer = loop_timer_del(c->timer);
	switch (c->state) {
	case PGS_STARTUP:
		c->end_reason = "no startup packet within startup_timeout";
		pg_fatal_client(c, "08P01", "sluice: no startup packet within startup_timeout");
		pg_pump(c, 0, 0);
		return;
	case PGS_UPSTREAM:
		log_warn("grant %s: upstream %s did not answer within connect_timeout",
			 c->gc.grant->id, c->gc.grant->conn->name);
		pg_fatal_client(c, "08001", "sluice: the upstream server did not answer in time");
		pg_pump(c, 0, 0);
		return;
	default:
		pg_close(c, c->state == PGS_LINGER ? "grant ended" : "timeout");
		return;
	}
}

static void conn_end(struct grant_conn *gc, const char *reason)
{
	struct pgconn *c = container_of(gc, struct pgconn, gc);
	char msg[160];
	bool busy;

	snprintf(msg, sizeof(msg), "sluice: grant %s ended (%s)", gc->grant->id, reason);
	switch (c->state) {
	case PGS_STARTUP:
	case PGS_CLOSING:
	case PGS_LINGER:
		if (c->state != PGS_LINGER)
			c->state = PGS_CLOSING;
		c->end_reason = "grant ended";
		break;
	case PGS_UPSTREAM:
		c->end_reason = "grant ended";
		pg_fatal_client(c, "57P01", "%s", msg);
		break;
	case PGS_READY:
		/* Stop what runs upstream, then tell the client. A client waiting
		 * for results reads the FATAL and then EOF; an idle one keeps its
		 * socket until its next message, recorded as refused. */
		busy = c->fifo_n > 0;
		if (busy && c->have_up_key && pg_send_cancel(c) < 0)
			log_warn("grant %s: cannot cancel the running statement", gc->grant->id);
		pg_track_finish(c, "the grant ended");
		c->end_reason = "grant ended";
		if (c->s2c.stream_left > 0) {
			c->state = PGS_CLOSING; /* mid-message: nothing sane can follow */
			c->s2c.off = c->s2c.scan = c->s2c.b.len = 0;
			break;
		}
		pg_upstream_close(c);
		c->s2c.b.len = c->s2c.scan;
		c->c2s.off = c->c2s.scan; /* not forwarded any more */
		c->c2s.stream_left = 0;
		if (client_error(c, "FATAL", "57P01", msg) < 0 || busy) {
			c->state = PGS_CLOSING;
			break;
		}
		c->state = PGS_LINGER;
		c->c2s.scan = c->c2s.off;
		loop_timer_del(c->timer);
		c->timer = NULL;
		if (loop_timer_add(c->agent->loop, mono_us() + LINGER_US, on_timeout, c, &c->timer) < 0)
			c->state = PGS_CLOSING;
		break;
	}
	/* The grant iterates with a safe iterator and holds a reference, so
	 * this connection may close itself right here. */
	pg_pump(c, 0, 0);
}

static void conn_close_now(struct grant_conn *gc)
{
	pg_close(container_of(gc, struct pgconn, gc), "agent stopped");
}

static void pg_accept(struct grant *g, int fd, const struct ucred *peer, bool allowed,
		      const char *why)
{
	struct agent *a = g->agent;
	struct pgconn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return;
	}
	c->agent = a;
	c->cfd = fd;
	c->ufd = -1;
	c->peer = *peer;
	c->gc.end = conn_end;
	c->gc.close = conn_close_now;
	c->enc = (iconv_t)-1;
	c->refused = !allowed;
	c->c2s.b.max = a->pol->p->agent.max_message_size + 64;
	c->s2c.b.max = a->pol->p->agent.max_message_size + 64 + HIGH_WATER;
	c->params.max = PG_STARTUP_MAX;
	c->hello.max = 64 * 1024;
	c->subst.max = 256;
	if (why && !(c->refuse_why = strdup(why))) {
		close(fd);
		free(c);
		return;
	}
	grant_conn_attach(g, &c->gc, allowed);
	if (loop_watch_add(a->loop, fd, EPOLLIN, on_client, c, &c->cw) < 0 ||
	    loop_timer_add(a->loop, mono_us() + (int64_t)a->pol->p->agent.startup_timeout * 1000000,
			   on_timeout, c, &c->timer) < 0) {
		pg_close(c, "out of resources");
		return;
	}
}

/* --- Per-grant set-up: the upstream password and TLS context ------------ */

static int read_password(const struct pol_connection *conn, uid_t owner, char **out, size_t *outlen,
			 char *err, size_t errlen)
{
	struct stat st;
	char *pw;
	ssize_t n;
	int fd = open(conn->password_file, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open password_file %s: %s", conn->password_file,
			 strerror(errno));
		return -errno;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "password_file %s is not a regular file", conn->password_file);
		close(fd);
		return -EINVAL;
	}
	if (st.st_uid != owner || (st.st_mode & 0177) != 0) {
		snprintf(err, errlen,
			 "password_file %s must be owned by the agent's account (uid %u) with mode 0600 (it is uid %u, mode %04o)",
			 conn->password_file, (unsigned)owner, (unsigned)st.st_uid,
			 (unsigned)(st.st_mode & 07777));
		close(fd);
		return -EPERM;
	}
	pw = calloc(1, PASSWORD_MAX + 1);
	if (!pw) {
		close(fd);
		return -ENOMEM;
	}
	n = read(fd, pw, PASSWORD_MAX + 1);
	close(fd);
	if (n < 0 || n > PASSWORD_MAX) {
		snprintf(err, errlen, "password_file %s: %s", conn->password_file,
			 n < 0 ? strerror(errno) : "longer than 1024 bytes");
		secret_free(pw, PASSWORD_MAX + 1);
		return -EINVAL;
	}
	/* One trailing newline is the file's, not the password's. */
	if (n > 0 && pw[n - 1] == '\n')
		pw[--n] = '\0';
	if (n > 0 && pw[n - 1] == '\r')
		pw[--n] = '\0';
	if (n == 0 || memchr(pw, '\0', (size_t)n)) {
		snprintf(err, errlen, "password_file %s is empty or holds a NUL byte", conn->password_file);
		secret_free(pw, PASSWORD_MAX + 1);
		return -EINVAL;
	}
	*out = pw;
	*outlen = PASSWORD_MAX + 1;
	return 0;
}

/* Used by the agent at load time too: a broken password file stops a
 * (re)load instead of surfacing at the first grant. */
int pg_check_password_file(const struct pol_connection *conn, uid_t owner, char *err, size_t errlen);
int pg_check_password_file(const struct pol_connection *conn, uid_t owner, char *err, size_t errlen)
{
	char *pw = NULL;
	size_t len = 0;
	int r;

	if (!conn->password_file)
		return 0;
	r = read_password(conn, owner, &pw, &len, err, errlen);
	secret_free(pw, len);
	return r;
}

static int pg_grant_init(struct grant *g, char *err, size_t errlen)
{
	struct pg_grant *pg = calloc(1, sizeof(*pg));
	int r;

	if (!pg)
		return -ENOMEM;
	if (g->conn->password_file) {
		r = read_password(g->conn, g->agent->uid, &pg->password, &pg->password_len, err, errlen);
		if (r < 0) {
			free(pg);
			return r;
		}
	}
	if (g->conn->sslmode != SSLMODE_DISABLE) {
		r = tls_ctx_new(g->conn->sslmode, g->conn->sslrootcert, &pg->tls, err, errlen);
		if (r < 0) {
			secret_free(pg->password, pg->password_len);
			free(pg);
			return r;
		}
	}
	g->proto_data = pg;
	return 0;
}

static void pg_grant_fini(struct grant *g)
{
	struct pg_grant *pg = g->proto_data;

	if (!pg)
		return;
	secret_free(pg->password, pg->password_len);
	tls_ctx_free(pg->tls);
	free(pg);
	g->proto_data = NULL;
}

const struct proto_ops pg_proto = {
	.name = "postgres",
	.socket_name = ".s.PGSQL.5432",
	.grant_init = pg_grant_init,
	.grant_fini = pg_grant_fini,
	.accept = pg_accept,
};

const struct proto_ops *proto_for(enum conn_type type)
{
	switch (type) {
	case CONN_POSTGRES:
		return &pg_proto;
	}
	return &pg_proto;
}
