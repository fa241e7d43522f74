/* SQL classification: what a statement can do, read off PostgreSQL's own
 * parse tree (libpg_query, PostgreSQL 15 grammar, standard_conforming_strings
 * on — the proxy pins it on upstream).
 *
 * Pure: no I/O, no logging, no policy. The result is a summary per
 * statement: every effect class found anywhere inside it (CTEs, EXPLAIN
 * ANALYZE, CREATE ... AS, PREPARE bodies, subqueries, COPY's query form),
 * flags for the settings the proxy itself depends on, the relations named,
 * and the functions called. policy/decide.h turns a summary into a verdict
 * for one grant.
 *
 * Nothing here reads the value of a constant, except the string constants
 * naming a setting (set_config('role', ...)) and COPY's target, so two
 * texts that differ only in numeric constants classify alike; the agent's
 * cache still keys on the whole text. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "policy/policy.h"

#define CLASS_BIT(c) (1u << (c))

/* Flags: effects the proxy enforces beyond the classes. */
enum sql_flag {
	/* SET/RESET/SET LOCAL/set_config/ALTER ROLE|DATABASE ... SET of
	 * standard_conforming_strings (or RESET ALL / DISCARD ALL, which reset
	 * it): the proxy's reading of string literals depends on it. */
	SQLF_SETS_SCS = 1u << 0,
	/* ... of search_path (schema scope depends on it; RESET ALL too). */
	SQLF_SETS_SEARCH_PATH = 1u << 1,
	/* Leaves read-only: default_transaction_read_only or
	 * transaction_read_only changed (any value: values are not read),
	 * BEGIN/START TRANSACTION/SET TRANSACTION/SET SESSION CHARACTERISTICS
	 * ... READ WRITE, RESET ALL. */
	SQLF_READ_WRITE = 1u << 2,
	/* PREPARE name AS body: name in sql_stmt.name; classes and relations
	 * are the body's. */
	SQLF_PREPARE = 1u << 3,
	/* EXECUTE name: name in sql_stmt.name; the classes are only what the
	 * arguments do (the caller adds the prepared body's summary). */
	SQLF_EXECUTE = 1u << 4,
	/* DEALLOCATE name (name set) or DEALLOCATE ALL / DISCARD ALL (name NULL). */
	SQLF_DEALLOCATE = 1u << 5,
	/* Calls set_config() (or another function that changes settings) with
	 * a setting name that is not a string constant: treat as changing
	 * every setting. SETS_SCS, SETS_SEARCH_PATH and READ_WRITE are set
	 * with it. */
	SQLF_DYNAMIC_SETTING = 1u << 6,
	/* The statement is empty (only comments/blanks): nothing runs. */
	SQLF_EMPTY = 1u << 7,
};

/* A relation (table, view, sequence, ...) named by the statement. */
struct sql_rel {
	char *schema;  /* as PostgreSQL folds it; NULL = unqualified (search_path) */
	char *name;
	char *catalog; /* database qualifier (a.b.c); NULL when absent */
	bool written;  /* target of INSERT/UPDATE/DELETE/MERGE/COPY FROM/TRUNCATE/DDL */
};

struct sql_stmt {
	uint32_t off, len;      /* the statement's bytes within the text (split points of a multi-statement string) */
	uint32_t classes;       /* CLASS_BIT() of every effect; never 0 for a parsed statement (at least read) */
	uint32_t flags;         /* enum sql_flag */
	char *name;             /* PREPARE/EXECUTE/DEALLOCATE name, NULL otherwise */
	struct sql_rel *rels;   /* deduplicated */
	size_t n_rels;
	char **functions;       /* every function called, "schema.name" if qualified, else "name"; folded; deduplicated */
	size_t n_functions;
	/* Object schemas created/altered/dropped that are not relations
	 * (CREATE SCHEMA x, CREATE FUNCTION s.f, ...), for schema scope:
	 * NULL-terminated-free list like functions. */
	char **schemas;
	size_t n_schemas;
};

struct sql_class {
	/* Parse failure: error set ("syntax error at or near ..."), n == 0,
	 * error_pos the 1-based character position (0 = unknown). */
	char *error;
	int error_pos;
	struct sql_stmt *v;
	size_t n;
};

/* Classify text (NUL-terminated, at most SQL_CLASSIFY_MAX bytes; longer
 * text is a parse failure with a clear error). Returns 0 with *out filled
 * (check out->error), or -ENOMEM. Always call sql_class_free(). */
#define SQL_CLASSIFY_MAX (16u << 20)
int sql_classify(const char *text, struct sql_class *out) WUR;
void sql_class_free(struct sql_class *c);
/* Whether the fast path (the parse tree read in place, not as JSON) is on:
 * it turns itself off when, on first use, it disagrees with the JSON path
 * (libpg_query built from other PostgreSQL headers). For the agent's log. */
bool sql_classify_fast_enabled(void);

/* The class to name for a set of classes: the most severe one in bits
 * (order in sluice.conf(5)); -1 when bits is 0. */
int sql_worst_class(uint32_t bits);

/* True when fn (as in sql_stmt.functions) is one of the dangerous
 * built-ins of the default [guardrail] functions list; the caller compares
 * configured lists itself. Schema-qualified pg_catalog.x matches x. */
bool sql_function_is_dangerous_default(const char *fn);
/* The default list, space-separated (sluice.conf(5), policy explain). */
const char *sql_dangerous_functions_default(void);
