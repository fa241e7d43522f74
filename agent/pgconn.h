/* Internal to the PostgreSQL proxy (agent/pg*.c): one client connection on
 * a grant socket, its upstream connection, and what is in flight between
 * them.
 *
 *   pgproxy.c     accept, client startup, relaying, grant end, cancel
 *   pgupstream.c  connect upstream: resolve, TCP/Unix, TLS, auth, hello
 *   pgclient.c    client messages: each examined, decided (guard.c) and
 *                 forwarded, refused or held
 *   pgtrack.c     which response belongs to which request: the pending
 *                 FIFO, statement records for the audit, server messages
 *   guard.c       what is decided about each statement before it is
 *                 forwarded: classification cache, verdicts, prepared
 *                 names with their decisions, approvals
 *
 * Bytes flow through two pipes. Each pipe's buffer holds what was read from
 * its source; [off, scan) is examined and ready to write to the
 * destination, [scan, len) not yet examined. Messages the proxy only needs
 * the header of (DataRow, CopyData) stream through without being buffered
 * whole; every other message is examined whole, with max_message_size as
 * the cap. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <netdb.h>
#include <iconv.h>
#include "agent/grant.h"
#include "agent/guard.h"
#include "agent/proto.h"
#include "agent/tls.h"
#include "common/buf.h"

enum pg_state {
	PGS_STARTUP,   /* reading the client's startup packet */
	PGS_UPSTREAM,  /* connecting and authenticating upstream */
	PGS_READY,     /* relaying */
	PGS_LINGER,    /* grant ended: upstream gone, the client was told; its
			  next message is recorded as refused, then we close */
	PGS_CLOSING,   /* flush what is queued for the client, then close */
};

enum up_state {
	UP_RESOLVING,
	UP_CONNECTING,
	UP_SSL_ANSWER, /* SSLRequest sent, waiting for 'S' or 'N' */
	UP_TLS,        /* TLS handshake */
	UP_AUTH,       /* startup sent, authentication exchange */
	UP_PARAMS,     /* authenticated: ParameterStatus, BackendKeyData, ... */
	UP_CATALOG,    /* ready: reading the masked columns from the catalog (maskwire.h) */
};

struct pg_pipe {
	struct buf b;
	size_t off;            /* first byte not yet written */
	size_t scan;           /* first byte not yet examined */
	uint64_t stream_left;  /* rest of a message passing through unbuffered */
	bool stream_drop;      /* ...which is dropped instead of forwarded */
	bool blocked;          /* the destination would block: wait for writable */
	bool eof;              /* the source closed */
	bool secret;           /* carried auth messages: wipe when released */
	struct pgrec *tap;     /* s2c: the streaming DataRow is also copied here (pgrecord.h) */
};

/* An SQL text shared by a prepared statement, the portals bound to it and
 * the executions recorded from them, with what was decided about it when
 * it was prepared (agent/guard.h). */
struct sqltext {
	unsigned refs;
	uint32_t len;
	uint8_t decision;        /* enum sqltext_decision */
	bool redecide;           /* holds an EXECUTE: its body is whatever the name holds
				    when it runs, so each Execute decides again */
	struct verdict *v;       /* NULL for a plain allow under the connection's allow rule */
	char text[];
};

enum pend_kind {
	PEND_QUERY, PEND_PARSE, PEND_BIND, PEND_DESCRIBE, PEND_EXECUTE,
	PEND_CLOSE, PEND_SYNC, PEND_LOCAL,
	PEND_MASKCAT, /* masking's own catalog query (maskwire.h): its answers are not the client's */
};

/* A request forwarded upstream (or refused locally) whose response has not
 * fully come back, in the order the client sent them. */
struct pend {
	enum pend_kind kind;
	struct sqltext *sql;     /* QUERY, PARSE, EXECUTE */
	struct guard_class *cls; /* QUERY: its statements (NULL: the text is one piece) */
	uint32_t n_parts, done;  /* QUERY: answers expected (statements that run), received */
	uint32_t cur;            /* QUERY: the current statement, an index into cls->c.v */
	char *rule;              /* the audit's rule when not the statement's own (an approval's) */
	uint32_t reserved;       /* audit reservations held */
	size_t hint;             /* ...each of this size */
	int64_t ts_us;           /* wall clock when the current statement began */
	int64_t t0;              /* mono time the current statement began */
	int64_t rows;            /* DataRows of the current statement */
	char *name;              /* PARSE of a new named statement: forget it on error */
	struct buf local;        /* LOCAL, or subst: bytes for the client */
	bool local_rfq;          /* LOCAL: then ReadyForQuery with the current status */
	bool subst;              /* QUERY/PARSE sent in a refused message's place: the
				    server's error is replaced by ours (local) */
	struct pgrec *rec;       /* QUERY/EXECUTE: the current statement's result, recorded */
	bool describe_portal;    /* DESCRIBE: of a portal (sql: the statement described, or the portal's) */
};

/* Name -> sqltext, for prepared statements and portals. */
struct name_map {
	struct name_ent *v;
	size_t n, cap;
};

struct pg_grant {
	char *password;          /* from password_file; wiped when the grant ends */
	size_t password_len;
	struct tls_ctx *tls;     /* NULL when sslmode = disable */
};

struct pgconn {
	struct grant_conn gc;
	struct agent *agent;
	enum pg_state state;
	uint64_t serial;         /* connection number within the grant */
	struct ucred peer;
	bool refused;            /* wrong uid or limit: refuse after the startup packet */
	char *refuse_why;

	int cfd, ufd;
	struct loop_watch *cw, *uw;
	struct pg_pipe c2s, s2c;
	struct loop_timer *timer;

	/* Upstream setup. */
	enum up_state up;
	struct resolve_req *rq;
	struct addrinfo *ai, *ai_next;
	struct sockaddr_storage up_addr;
	socklen_t up_addrlen;
	struct tls_conn *tls;
	enum tls_want tls_want;  /* what the TLS handshake waits for */
	enum tls_want tls_rd_want, tls_wr_want; /* what TLS reads/writes wait for */
	bool tls_plain_retry;    /* sslmode=allow: plaintext failed, retry with TLS */
	bool use_tls;
	struct scram *scram;
	struct buf hello;        /* what the client gets once upstream is ready */
	struct buf emit;         /* our own replies waiting for their turn */
	unsigned enc_requests;   /* SSLRequest/GSSENCRequest answered */
	bool cancel;             /* a CancelRequest connection */
	struct buf params;       /* startup parameters to send upstream (key\0value\0...) */
	unsigned n_params;
	char *app_name;

	/* Cancel keys: what the client was given, what upstream gave us. */
	uint32_t proxy_pid, proxy_key;
	uint32_t up_pid, up_key;
	bool have_up_key;

	/* Tracking (pgtrack.c). */
	struct pend *fifo;
	size_t fifo_head, fifo_n, fifo_cap;
	struct name_map stmts, portals;
	bool discard_until_sync;
	struct buf subst;        /* PG_REPLACE: what goes upstream instead of the client's message */
	/* Guardrails (guard.c). */
	char allow_rule[320];    /* the rule allowed statements are recorded with */
	bool allow_rule_set;     /* ...computed (it may be empty: nothing is allowed plainly) */
	struct approval_waiter *hold; /* a statement waits unexamined in c2s for its approval */
	bool hold_done;          /* ...was decided: the next decision of it uses hold_state */
	enum approval_state hold_state;
	char hold_id[APPROVAL_ID_LEN + 1];
	struct guard_job *job;   /* a long text being classified off the loop: its message waits in c2s */
	struct guard_class *pre; /* ...its result, taken by the next decision of that exact text */
	char *pre_text;
	size_t pre_len;
	char txn_status;         /* from the last ReadyForQuery: I, T or E */
	iconv_t enc;             /* client_encoding -> UTF-8 for the audit, or (iconv_t)-1 */
	char client_enc[32];     /* its name, as the server reported it ("" = not yet) */
	struct buf desc;         /* the RowDescription answering the last Describe (pgrecord.h) */
	struct sqltext *desc_of; /* ...of the statement it describes, or the portal's (a reference) */
	struct pgrec *rec_spare; /* a finished record, kept for the next statement (pgrecord.c) */
	struct maskconn *mask;   /* masking, when the connection has a [mask] (maskwire.h) */
	bool mask_ddl;           /* DDL ran since the last ReadyForQuery outside a transaction
				    (maskwire.h: every connection, masked or not) */
	uint64_t n_statements;
	int64_t connected_us;
	const char *end_reason;
};

/* pgtrack.c: the oldest request still waiting for its answer (NULL: none). */
struct pend *pg_fifo_head(struct pgconn *c);
/* Pop the head, then hand out the proxy's own replies waiting for it. */
int pg_fifo_pop_emit(struct pgconn *c) WUR;

/* pgproxy.c */
void pg_close(struct pgconn *c, const char *why);
void pg_pump(struct pgconn *c, uint32_t cev, uint32_t uev);
void pg_on_upstream(struct loop_watch *w, uint32_t events, void *ud);
void pg_protocol_violation(struct pgconn *c, const char *from, const char *what);
void pg_update_events(struct pgconn *c);
void pg_fatal_client(struct pgconn *c, const char *sqlstate, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int pg_pipe_insert(struct pg_pipe *p, const void *data, size_t n) WUR;
void pg_ready_for_client(struct pgconn *c);
int pg_flush_emit(struct pgconn *c) WUR;

/* pgupstream.c */
int pg_upstream_start(struct pgconn *c) WUR;
void pg_upstream_event(struct pgconn *c, uint32_t events);
/* Handle one complete server message during setup (s2c pipe, UP_AUTH /
 * UP_PARAMS). Returns 0 or a negative errno (then the connection closes). */
int pg_upstream_message(struct pgconn *c, char type, const uint8_t *body, size_t n) WUR;
ssize_t pg_up_read(struct pgconn *c, void *p, size_t n) WUR;
ssize_t pg_up_write(struct pgconn *c, const void *p, size_t n) WUR;
void pg_upstream_close(struct pgconn *c);
int pg_send_cancel(struct pgconn *c) WUR;

/* pgclient.c */
/* A client message in READY state. Returns the action for its bytes. */
/* PG_REPLACE: send c->subst upstream instead; PG_HOLD: leave the message
 * unexamined (it waits for an approval). */
enum pg_action { PG_FORWARD, PG_DROP, PG_STREAM, PG_CLOSE, PG_HOLD, PG_REPLACE };
enum pg_action pg_track_client(struct pgconn *c, char type, const uint8_t *body, size_t n,
			       size_t total);
/* A server message in READY state (for DataRow/CopyData only the header). */
/* A client message over max_message_size: refused, its bytes dropped. */
enum pg_action pg_track_oversized(struct pgconn *c, char type, size_t total, uint32_t max);
/* The client's statement arrived after the grant ended: record it refused. */
void pg_track_refused_after_end(struct pgconn *c, char type, const uint8_t *body, size_t n);

/* pgtrack.c */
enum pg_action pg_track_server(struct pgconn *c, char type, const uint8_t *body, size_t n);
/* Refuse a statement with an error the client sees, in order. */
int pg_refuse_local(struct pgconn *c, const char *sqlstate, const char *msg, bool rfq) WUR;
/* Record what is still pending as not executed and free all tracking. */
void pg_track_finish(struct pgconn *c, const char *why);
/* A ParameterStatus from the server (the client's encoding matters). */
void pg_note_parameter(struct pgconn *c, const uint8_t *body, size_t n);
/* For pgclient.c: a new entry at the FIFO's tail (NULL: out of memory). */
struct pend *pg_fifo_push(struct pgconn *c, enum pend_kind kind);
/* Free the (empty) FIFO's memory: the connection is going. */
void pg_fifo_release(struct pgconn *c);
/* Record a statement decided here and never sent upstream (best effort:
 * when the audit cannot take it, the refusal itself protects). */
void pg_record_decided(struct pgconn *c, const char *sql, size_t len, const char *decision,
		       const char *rule, const char *sqlstate, const char *why);
/* A classified statement as the audit shows it, within text[0..textlen). */
void pg_stmt_bounds(const struct sql_stmt *st, size_t textlen, size_t *off, size_t *len,
		    const char *text);
/* The first statement of cls from i on that runs (cls->c.n when none). */
uint32_t pg_next_running(const struct guard_class *cls, uint32_t i);
/* FATAL "out of memory" to the client. */
enum pg_action pg_oom_close(struct pgconn *c);
/* An audit reservation's size: the row's fixed part plus its SQL. */
#define PG_AUDIT_ROW_OVERHEAD 256
