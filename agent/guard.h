/* Guardrails on the PostgreSQL wire: what the proxy decides about each
 * statement before it is forwarded (internal to agent/pg*.c).
 *
 *   - the classification cache: exact statement text -> sql_class
 *     (policy/classify.h), agent-wide, bounded;
 *   - a text's decision against the grant's scope (policy/decide.h),
 *     statement by statement, with SQL-level PREPARE bodies behind EXECUTE;
 *   - prepared statements and portals by name, each with the decision made
 *     when it was prepared (Bind and Execute never decide again, except
 *     for approvals);
 *   - statement approvals: ask, and hold a statement for approval_wait.
 *
 * Everything here runs on the agent's loop thread (the proxy has no other),
 * so the cache needs no lock. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "agent/approval.h"
#include "agent/loop.h"
#include "common/list.h"
#include "policy/classify.h"
#include "policy/decide.h"

struct pgconn;
struct sqltext;

/* The cache's bounds: entries, bytes of keys, and the longest text cached
 * (longer ones are classified each time: they are rare and costly to keep). */
#define GUARD_CACHE_ENTRIES 4096
#define GUARD_CACHE_KEY_BYTES (8u << 20)
#define GUARD_CACHE_TEXT_MAX (8u << 10)

/* A classified text, shared: the cache holds one reference while the entry
 * is cached, each user one more. Statement offsets are into the text it was
 * made from (the key; an uncached one keeps no copy of its text). */
struct guard_class {
	struct list_node lru;      /* cache order, most recently used first */
	struct guard_class *next;  /* hash chain */
	unsigned refs;
	bool cached;
	uint64_t hash;
	uint32_t len;
	struct sql_class c;
	char text[];               /* the key, NUL-terminated (empty when uncached) */
};

/* Classify text[0..len) (text[len] must be NUL), from the cache when the
 * same bytes were classified before. 0 and a new reference in *out, or
 * -ENOMEM. */
int guard_classify(const char *text, size_t len, struct guard_class **out) WUR;
struct guard_class *guard_class_unref(struct guard_class *g);
/* Statistics since start (for the log and the benchmark notes). */
struct guard_cache_stats {
	uint64_t hits, misses, uncacheable, evictions;
	size_t entries, key_bytes;
	uint64_t classify_us;      /* time spent in sql_classify */
};
void guard_cache_stats(struct guard_cache_stats *out);
/* Drop every cached entry (agent exit; tests). */
void guard_cache_clear(void);

/* Is statement i of c a statement that runs (not an empty one)? */
static inline bool guard_stmt_runs(const struct sql_class *c, size_t i)
{
	return !(c->v[i].flags & SQLF_EMPTY);
}

/* --- Decisions ------------------------------------------------------------- */

/* A text's decision: the first statement blocked, else the first that needs
 * approval, else allowed. */
struct guard_decision {
	struct guard_class *cls;   /* reference (release with guard_decision_clear) */
	enum verdict_kind kind;
	size_t at;                 /* BLOCK/APPROVE: the deciding statement (index into cls->c.v);
				      SIZE_MAX when the text did not parse */
	unsigned ordinal;          /* ...its number among the statements that run (1-based) */
	unsigned n_run;            /* statements that run; 0 when none or unparsed (one answer) */
	unsigned n_prepare;        /* PREPARE statements among them */
	struct verdict v;          /* the deciding verdict; for ALLOW the last one's */
};

/* Decide text[0..len) (NUL at text[len]) for connection c. 0, or -ENOMEM.
 * may_hold: a text of GUARD_ASYNC_MIN bytes or more that is not cached is
 * classified off the loop instead: -EINPROGRESS, c->classifying is set, and
 * the caller leaves the message unexamined (PG_HOLD); when the worker is
 * done the connection is pumped and the same call finds the result. */
int guard_decide_text(struct pgconn *c, const char *text, size_t len, bool may_hold,
		      struct guard_decision *out) WUR;

/* --- Classification off the loop ------------------------------------------------
 *
 * Parsing is linear but not cheap (a 1 MiB INSERT takes ~60 ms, 16 MiB about
 * a second): on the loop thread it would stall every connection of every
 * grant. Long texts go to one worker thread; the connection that sent one
 * waits (nothing more is read from it), the others go on. */
#define GUARD_ASYNC_MIN (64u << 10)
#define GUARD_ASYNC_QUEUE 64 /* jobs queued at once; past this, classify in place */
int guard_worker_start(struct loop *l, char *err, size_t errlen) WUR;
void guard_worker_stop(void);
/* The connection goes: its job's result is dropped, a result it did not
 * collect is freed. */
void guard_classify_cancel(struct pgconn *c);
void guard_decision_clear(struct guard_decision *d);
/* An Execute of a portal whose statement sluice never saw prepared (a
 * cursor or statement made by server-side code, e.g. dynamic SQL in a DO
 * block): it may do anything, so it is decided as opaque. */
void guard_decide_unseen(struct pgconn *c, struct verdict *out);

/* The rule text the audit shows for an allowed statement under verdict v:
 * the connection's allow rule (kept once per connection, no allocation) or,
 * when v names another one, a copy in *owned. NULL on memory exhaustion. */
const char *guard_allow_rule(struct pgconn *c, const struct verdict *v, char **owned);

/* A SQL-level PREPARE or DEALLOCATE/DISCARD ALL of statement st (within
 * text) completed: the connection's prepared names follow. */
int guard_sql_prepared(struct pgconn *c, const struct sql_stmt *st, const char *text) WUR;
/* The same for a prepared statement's text (an Execute of PREPARE ...). */
int guard_sql_prepared_text(struct pgconn *c, const struct sqltext *s) WUR;

/* --- Prepared statements and portals by name --------------------------------- */

/* What was decided about a prepared statement's text when it was prepared;
 * portals share their statement's. */
enum sqltext_decision {
	SQLT_ALLOWED,
	SQLT_BLOCKED,   /* never sent upstream: Bind/Describe/Execute naming it are refused */
	SQLT_APPROVE,   /* prepared upstream; each Execute needs an approval */
};

struct sqltext *sqltext_new(const char *p, size_t n);
struct sqltext *sqltext_ref(struct sqltext *s);
struct sqltext *sqltext_unref(struct sqltext *s);
/* Give s a decision (copies v when it is not a plain allow under the
 * connection's allow rule). 0 or -ENOMEM. */
int sqltext_decide(struct pgconn *c, struct sqltext *s, enum sqltext_decision d,
		   const struct verdict *v) WUR;
/* The rule the audit shows for s (NULL when none). */
const char *sqltext_rule(const struct pgconn *c, const struct sqltext *s);

struct name_map;
struct name_ent {
	char *name;
	struct sqltext *sql; /* NULL: a statement we did not see prepared */
	bool server;         /* sent upstream (false: a blocked mark only) */
};
struct name_ent *map_find(struct name_map *m, const char *name);
/* Set name -> sql (taking a new reference). */
int map_set(struct name_map *m, const char *name, struct sqltext *sql, bool server) WUR;
void map_del(struct name_map *m, const char *name);
void map_clear(struct name_map *m, bool keep_unnamed);

/* --- Approvals --------------------------------------------------------------- */

enum guard_approval {
	GA_RUN,      /* approved and now used: run it; *rule says which approval */
	GA_HOLD,     /* held: the message stays unexamined until the decision */
	GA_REFUSED,  /* refuse with msg; decision and rule for the audit */
};
struct guard_refusal {
	const char *decision;      /* AUDIT_* */
	char rule[320];
	char msg[720];             /* the verdict's message (< 400) and what became of the approval (< 300) */
};
/* Statement sql[0..len) needs approval (verdict v). Returns an enum
 * guard_approval, or -ENOMEM. GA_RUN: *rule_owned is "approval ID by USER".
 * GA_REFUSED: ref filled. */
int guard_approval(struct pgconn *c, const char *sql, size_t len, const struct verdict *v,
		   char **rule_owned, struct guard_refusal *ref) WUR;
/* The connection goes: stop waiting. */
void guard_hold_cancel(struct pgconn *c);
