"""Statements and what a realistic [guardrail] must do with each, for
test_guardrails.py.

The policy the expectations are written for (GUARDRAIL below):

    block = ddl drop truncate delete-without-where update-without-where
            copy-program role-change functions admin opaque

with the default functions list and unparsed = block, no schema scope, mode
write. So reads, writes with a WHERE, COPY to the client and from it, and
ordinary settings run; everything else is refused.

Each row: (sql, expected, notes). expected is "allow", or what the refusal
names after "sluice: blocked: " — the most severe matching class, or
"functions: NAME", or a built-in rule ("standard_conforming_strings is
pinned on", "unparsed: ..."). Statements name the tables the test creates in
schema ops: gr_t (id integer, v text) and gr_u (id integer, v text); an
allowed statement must be safe to run more than once (through psql and
through psycopg). Many rows hide the effect: comments, case, quoting,
multi-statement strings, CTEs, PREPARE/EXECUTE, EXPLAIN ANALYZE, functions
called from where nobody looks.
"""
from __future__ import annotations

from typing import NamedTuple

GUARDRAIL = {
    "block": "ddl drop truncate delete-without-where update-without-where copy-program role-change "
             "functions admin opaque",
}

SCS = "standard_conforming_strings is pinned on"


class Row(NamedTuple):
    sql: str
    expected: str          # "allow" or the blocked `what`
    notes: str
    copy: str = ""         # "in" / "out": run with psycopg's copy() (COPY to/from the client)
    multi: bool = False    # more than one statement: the extended protocol cannot carry it


def _r(sql: str, expected: str, notes: str, **kw) -> Row:
    return Row(sql, expected, notes, **kw)


CORPUS: list[Row] = [
    # --- read -----------------------------------------------------------------------------
    _r("select 1", "allow", "the simplest read"),
    _r("SELECT id, v FROM ops.gr_t WHERE id = 1", "allow", "a qualified read"),
    _r("/* a comment */ select count(*) from ops.gr_t", "allow", "a leading block comment"),
    _r("with x as (select 1 as a) select a from x", "allow", "a CTE that only reads"),
    _r("explain select * from ops.gr_t", "allow", "EXPLAIN without ANALYZE does not run it"),
    _r("explain (costs off) delete from ops.gr_t", "allow",
       "EXPLAIN without ANALYZE plans a DELETE without running it"),
    _r("select 'drop table ops.gr_t; delete from ops.gr_t' as text", "allow",
       "DDL inside a string literal is data"),
    _r("select 1 -- ; drop table ops.gr_t", "allow", "a DROP in a line comment is a comment"),
    _r("select $$ ; truncate ops.gr_t $$ as quoted", "allow", "a dollar-quoted string"),
    _r("select E'\\'; drop table ops.gr_t; --' as esc", "allow",
       "an E'' string with an escaped quote stays one string"),
    _r("show search_path", "allow", "SHOW reads a setting"),
    _r("table ops.gr_t", "allow", "TABLE is SELECT *"),
    _r("values (1), (2)", "allow", "VALUES"),
    _r("select relname from pg_catalog.pg_class limit 1", "allow", "catalog reads"),
    _r("select table_name from information_schema.tables limit 1", "allow", "information_schema"),
    _r('SELECT "id" FROM "ops"."gr_t" LIMIT 1', "allow", "quoted identifiers"),
    _r("select 1; select 2", "allow", "two reads in one string", multi=True),
    _r("select 1;;; select 2;", "allow", "empty statements between semicolons", multi=True),
    _r("begin; select * from ops.gr_t for update; commit", "allow",
       "a transaction locking rows it reads", multi=True),
    _r("select pg_sleep(0)", "allow", "a function that is not on the list"),
    _r("select lower('ABC'), length(v) from ops.gr_t", "allow", "ordinary functions"),
    _r("select current_setting('search_path')", "allow", "reading a setting is not setting it"),

    # --- write (allowed with a WHERE) -------------------------------------------------------
    _r("insert into ops.gr_t (id, v) values (100, 'corpus')", "allow", "INSERT"),
    _r("update ops.gr_t set v = v where id = 1", "allow", "UPDATE with a WHERE"),
    _r("delete from ops.gr_t where id = -1", "allow", "DELETE with a WHERE"),
    _r("with d as (delete from ops.gr_t where id = -2 returning *) select count(*) from d", "allow",
       "a CTE with a DELETE that has a WHERE"),
    _r("explain analyze insert into ops.gr_u values (-3, 'explain')", "allow",
       "EXPLAIN ANALYZE runs its INSERT: a write, allowed"),
    _r("insert into ops.gr_u select id, v from ops.gr_t where id = 1", "allow", "INSERT ... SELECT"),
    _r("merge into ops.gr_t t using (select 1 as id) s on t.id = s.id "
       "when matched then update set v = t.v", "allow", "MERGE"),
    _r("select * from ops.gr_t where id = 1 for update", "allow", "SELECT FOR UPDATE"),

    # --- delete-without-where -------------------------------------------------------------------
    _r("delete from ops.gr_t", "delete-without-where", "plain"),
    _r("DeLeTe FrOm \"ops\".\"gr_t\"", "delete-without-where", "case and quoted identifiers"),
    _r("delete from ops.gr_t -- where id = 1", "delete-without-where", "the WHERE is a comment"),
    _r("delete /* where id = 1 */ from ops.gr_t", "delete-without-where", "a block comment"),
    _r("with d as (delete from ops.gr_t returning *) select count(*) from d", "delete-without-where",
       "inside a CTE"),
    _r("explain analyze delete from ops.gr_t", "delete-without-where",
       "EXPLAIN ANALYZE executes the DELETE"),
    _r("EXPLAIN (ANALYZE true, COSTS false) DELETE FROM ops.gr_t", "delete-without-where",
       "ANALYZE as an option list"),
    _r("prepare gr_del as delete from ops.gr_t", "delete-without-where",
       "a PREPARE body is classified at PREPARE"),
    _r("copy (delete from ops.gr_t returning *) to stdout", "delete-without-where",
       "COPY of a DELETE ... RETURNING runs the DELETE"),
    _r("select 1; delete from ops.gr_t", "delete-without-where",
       "behind a harmless statement", multi=True),

    # --- update-without-where -------------------------------------------------------------------
    _r("update ops.gr_t set v = 'gone'", "update-without-where", "plain"),
    _r("UPDATE/**/ops.gr_t/**/SET v = v", "update-without-where", "comments instead of spaces"),
    _r("with u as (update ops.gr_t set v = v returning 1) select count(*) from u",
       "update-without-where", "inside a CTE"),
    _r("explain analyze update ops.gr_t set v = v", "update-without-where", "EXPLAIN ANALYZE"),

    # --- truncate -------------------------------------------------------------------------------
    _r("truncate ops.gr_t", "truncate", "plain"),
    _r("TRUNCATE TABLE ONLY ops.gr_t RESTART IDENTITY", "truncate", "the long form"),
    _r("select 1; truncate ops.gr_t", "truncate", "the second statement of a string", multi=True),

    # --- drop -----------------------------------------------------------------------------------
    _r("drop table ops.gr_t", "drop", "plain"),
    _r('DROP TABLE IF EXISTS "ops"."gr_nonexistent"', "drop", "even of nothing"),
    _r("drop schema ops cascade", "drop", "a schema"),
    _r("drop index if exists ops.gr_idx", "drop", "an index"),
    _r("drop function if exists ops.gr_f()", "drop", "a function"),
    _r("select 1; drop table ops.gr_t", "drop", "second of two", multi=True),
    _r("begin; select 1; drop table ops.gr_t; commit", "drop", "inside a transaction block",
       multi=True),
    _r("alter table ops.gr_t drop column v", "drop", "ALTER TABLE ... DROP COLUMN"),

    # --- ddl ------------------------------------------------------------------------------------
    _r("create table ops.gr_new (a int)", "ddl", "CREATE TABLE"),
    _r("create temp table gr_tmp (a int)", "ddl", "a temporary table is DDL too"),
    _r("alter table ops.gr_t add column z int", "ddl", "ALTER TABLE"),
    _r("create index gr_idx on ops.gr_t (id)", "ddl", "CREATE INDEX"),
    _r("create table ops.gr_copy as select * from ops.gr_t", "ddl", "CREATE TABLE AS"),
    _r("select * into ops.gr_into from ops.gr_t", "ddl", "SELECT INTO creates a table"),
    _r("comment on table ops.gr_t is 'x'", "ddl", "COMMENT"),
    _r("create view ops.gr_v as select 1 as a", "ddl", "CREATE VIEW"),
    _r("alter table ops.gr_t rename to gr_renamed", "ddl", "RENAME"),
    _r('create table ops.gr_c (c text collate "C" not null)', "ddl",
       "a column COLLATE clause: the parser frees a list here, which once reached a list_free "
       "of sluice's own and crashed the agent"),

    # --- copy -----------------------------------------------------------------------------------
    _r("copy ops.gr_t to stdout", "allow", "COPY to the client", copy="out"),
    _r("copy (select id from ops.gr_t where id = 1) to stdout with (format csv)", "allow",
       "COPY of a query to the client", copy="out"),
    _r("copy ops.gr_u from stdin", "allow", "COPY from the client (copy-in is not blocked here)",
       copy="in"),
    _r("copy ops.gr_t to program 'cat > /dev/null'", "copy-program", "COPY TO PROGRAM"),
    _r("COPY ops.gr_t FROM PROGRAM 'id'", "copy-program", "COPY FROM PROGRAM"),
    _r("copy (select 1) to program 'true'", "copy-program", "a query copied to a program"),
    _r("copy ops.gr_t to '/tmp/gr_out'", "copy-program", "a server-side file is copy-program too"),
    _r("copy ops.gr_t from '/etc/hostname'", "copy-program", "reading a server-side file"),

    # --- opaque ---------------------------------------------------------------------------------
    _r("do $$ begin perform 1; end $$", "opaque", "DO runs code whose SQL cannot be seen"),
    _r("DO LANGUAGE plpgsql 'begin null; end'", "opaque", "DO with a quoted body"),
    _r("call ops.gr_proc()", "opaque", "CALL"),
    _r("execute gr_never_prepared", "opaque", "EXECUTE of a name nobody prepared"),
    _r("explain analyze execute gr_never_prepared", "opaque", "EXPLAIN ANALYZE runs the EXECUTE"),
    _r("select 1; do $$ begin perform 1; end $$", "opaque", "DO behind a read", multi=True),

    # --- prepared statements (SQL level) --------------------------------------------------------
    _r("prepare gr_sel as select * from ops.gr_t where id = $1; execute gr_sel(1)", "allow",
       "PREPARE then EXECUTE of a read", multi=True),
    _r("prepare gr_tr as truncate ops.gr_t", "unparsed: syntax error at or near \"truncate\"",
       "TRUNCATE cannot be prepared: the grammar refuses it, so does sluice"),
    _r("prepare gr_ins as insert into ops.gr_u values ($1, 'p'); execute gr_ins(7); deallocate gr_ins",
       "allow", "PREPARE/EXECUTE/DEALLOCATE of an INSERT", multi=True),

    # --- role-change ----------------------------------------------------------------------------
    _r("set role postgres", "role-change", "SET ROLE"),
    _r("SET LOCAL ROLE postgres", "role-change", "SET LOCAL ROLE"),
    _r("reset role", "role-change", "RESET ROLE"),
    _r("set session authorization postgres", "role-change", "SET SESSION AUTHORIZATION"),
    _r('set "role" = postgres', "role-change", "a quoted setting name"),
    _r("select 1; set role postgres", "role-change", "behind a read", multi=True),
    _r("create role gr_role", "role-change", "CREATE ROLE"),
    _r("grant select on ops.gr_t to public", "role-change", "GRANT"),
    _r("revoke select on ops.gr_t from public", "role-change", "REVOKE"),
    _r("alter role current_user set work_mem = '1MB'", "role-change", "ALTER ROLE ... SET"),

    # --- settings -------------------------------------------------------------------------------
    _r("set statement_timeout = '5s'", "allow", "an ordinary setting"),
    _r("set search_path = ops, public", "allow", "search_path without a schema scope"),
    _r("reset search_path", "allow", "RESET of an ordinary setting"),
    _r("set default_transaction_read_only = off", "allow", "allowed in mode = write"),
    _r("set standard_conforming_strings = off", SCS, "pinned: the proxy reads strings with it on"),
    _r("SET standard_conforming_strings TO on", SCS, "any value: the proxy does not read values"),
    _r("reset standard_conforming_strings", SCS, "RESET"),
    _r("set local standard_conforming_strings = off", SCS, "SET LOCAL"),
    _r("reset all", SCS, "RESET ALL resets it too"),
    _r("discard all", SCS, "DISCARD ALL resets it too"),
    _r("select set_config('standard_conforming_strings', 'off', false)", SCS,
       "set_config of it: the pin decides before the functions list"),
    _r("select set_config('work_mem', '64kB', false)", "functions: set_config",
       "set_config is on the default list"),
    _r("select set_config('ro' || 'le', 'postgres', false)", SCS,
       "a setting name that is not a constant could be anything, the pin included"),
    _r("select 1; set standard_conforming_strings = off", SCS, "behind a read", multi=True),

    # --- functions (the default list) -----------------------------------------------------------
    _r("select pg_read_file('/etc/passwd')", "functions: pg_read_file", "file access"),
    _r("select pg_catalog.pg_read_file('/etc/passwd')", "functions: pg_catalog.pg_read_file",
       "schema-qualified (named as written)"),
    _r('SELECT "pg_read_file"(\'/etc/passwd\')', "functions: pg_read_file", "quoted"),
    _r("select PG_READ_FILE('/etc/passwd')", "functions: pg_read_file", "upper case"),
    _r("select pg_ls_dir('.')", "functions: pg_ls_dir", "directory listing"),
    _r("select lo_import('/etc/passwd')", "functions: lo_import", "large objects: import"),
    _r("select lo_export(1, '/tmp/gr')", "functions: lo_export", "large objects: export"),
    _r("select lo_from_bytea(0, 'x')", "functions: lo_from_bytea", "large objects: create"),
    _r("select pg_terminate_backend(pg_backend_pid())", "functions: pg_terminate_backend",
       "backend signalling"),
    _r("select pg_cancel_backend(1)", "functions: pg_cancel_backend", "backend signalling"),
    _r("select pg_reload_conf()", "functions: pg_reload_conf", "server configuration"),
    _r("select dblink('host=x', 'select 1')", "functions: dblink", "dblink"),
    _r("with x as (select pg_read_file('/etc/passwd') as f) select 1", "functions: pg_read_file",
       "hidden in an unused CTE"),
    _r("select (select pg_ls_dir('.') limit 1)", "functions: pg_ls_dir", "in a subquery"),
    _r("select id from ops.gr_t where pg_read_file('/etc/hostname') is not null",
       "functions: pg_read_file", "in a WHERE clause"),

    # --- admin ----------------------------------------------------------------------------------
    _r("vacuum ops.gr_t", "admin", "VACUUM"),
    _r("VACUUM (ANALYZE) ops.gr_t", "admin", "VACUUM ANALYZE"),
    _r("analyze ops.gr_t", "admin", "ANALYZE"),
    _r("checkpoint", "admin", "CHECKPOINT"),
    _r("alter system set work_mem = '1MB'", "admin", "ALTER SYSTEM"),
    _r("begin; lock table ops.gr_t in access exclusive mode; commit", "allow",
       "LOCK is classed write (blocked in mode = read, allowed here)", multi=True),
    _r("listen gr_channel", "allow", "LISTEN reads"),
    _r("notify gr_channel, 'x'", "allow", "NOTIFY is classed write"),
    _r("select pg_notify('gr_channel', 'x')", "allow", "pg_notify is NOTIFY: write"),
    _r("reindex table ops.gr_t", "admin", "REINDEX"),
    _r("cluster ops.gr_t using gr_idx", "admin", "CLUSTER"),
    _r("load 'plpgsql'", "admin", "LOAD"),

    # --- unparsed -------------------------------------------------------------------------------
    _r("selec 1", 'unparsed: syntax error at or near "selec"', "a typo does not parse"),
    _r("select * form ops.gr_t", 'unparsed: syntax error at or near "form"', "a typo in the middle"),
    _r("select 1; drop tabel ops.gr_t", 'unparsed: syntax error at or near "tabel"',
       "one bad statement: nothing of the string runs", multi=True),
]
