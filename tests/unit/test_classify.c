/* The SQL classifier (policy/classify.h) and its JSON reader
 * (policy/sqljson.h): every class and the spellings that could hide one,
 * statement splitting, parse failures, caps, random mutations of the corpus
 * (never a crash), and the time one statement costs (printed only). */
#include "config.h"
#include <dirent.h>
#include <errno.h>
#include <pg_query.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "common/util.h"
#include "policy/classes.h"
#include "policy/classify.h"
#include "policy/classify_walk.h"
#include "policy/sqljson.h"

/* The table leaves out what is empty (NULL, 0): that is what it expects. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define R B(READ)
#define W B(WRITE)
#define DDL B(DDL)
#define DROP B(DROP)
#define TRUNC B(TRUNCATE)
#define DWW B(DELETE_WITHOUT_WHERE)
#define UWW B(UPDATE_WITHOUT_WHERE)
#define COUT B(COPY_OUT)
#define CIN B(COPY_IN)
#define CPROG B(COPY_PROGRAM)
#define ROLE B(ROLE_CHANGE)
#define CONF B(CONFIG_CHANGE)
#define OPQ B(OPAQUE)
#define ADM B(ADMIN)

#define SCS SQLF_SETS_SCS
#define SP SQLF_SETS_SEARCH_PATH
#define RW SQLF_READ_WRITE
#define ALLSET (SCS | SP | RW)
#define DYN (SQLF_DYNAMIC_SETTING | ALLSET)

/* One statement. rels: "[catalog.][schema.]name" with "+" when written;
 * fns, schemas: names; all space-separated, any order; NULL = none. name:
 * PREPARE/EXECUTE/DEALLOCATE name, NULL = none. */
struct ccase {
	const char *sql;
	uint32_t classes;
	uint32_t flags;
	const char *rels, *fns, *schemas, *name;
};

static const struct ccase cases[] = {
	/* read */
	{ "SELECT abalance FROM pgbench_accounts WHERE aid = 123456;", R, .rels = "pgbench_accounts" },
	{ "select 1", R },
	{ "VALUES (1), (2)", R },
	{ "TABLE t", R, .rels = "t" },
	{ "SELECT * FROM (SELECT * FROM t) s WHERE a IN (SELECT b FROM u)", R, .rels = "t u" },
	{ "WITH x AS (SELECT 1) SELECT * FROM x", R, .rels = "x" },
	{ "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
	  R, .rels = "r" },
	{ "SHOW search_path", R },
	{ "SHOW ALL", R },
	{ "SELECT * FROM db.s.t JOIN \"S\".\"T\" USING (a)", R, .rels = "db.s.t S.T" },
	{ "SELECT a + b, a || b FROM t", R, .rels = "t" },
	{ "SELECT 1 /* ; DROP TABLE t; */", R },
	{ "SELECT ';DROP TABLE t;', $$; DELETE FROM t; $$", R },
	{ "SET CONSTRAINTS ALL DEFERRED", R },
	/* EXPLAIN: without ANALYZE nothing runs; with it, the statement's classes */
	{ "EXPLAIN SELECT * FROM t", R, .rels = "t" },
	{ "EXPLAIN DELETE FROM t", R, .rels = "t" },
	{ "explain verbose update t set a = 1", R, .rels = "t" },
	{ "EXPLAIN ANALYZE DELETE FROM t", R | W | DWW, .rels = "t+" },
	{ "EXPLAIN (ANALYZE) DELETE FROM t WHERE a = 1", R | W, .rels = "t+" },
	{ "EXPLAIN (ANALYZE true, BUFFERS) UPDATE t SET a = 1", R | W | UWW, .rels = "t+" },
	{ "EXPLAIN (ANALYZE false, VERBOSE) DELETE FROM t", R, .rels = "t" },
	{ "EXPLAIN (ANALYZE OFF) UPDATE t SET a = 1", R, .rels = "t" },
	{ "EXPLAIN (ANALYZE 0) UPDATE t SET a = 1", R | W | UWW, .rels = "t+" },
	{ "EXPLAIN (ANALYZE, ANALYZE false) DELETE FROM t", R | W | DWW, .rels = "t+" },
	{ "EXPLAIN ANALYZE EXECUTE p(1)", R, SQLF_EXECUTE, .name = "p" },
	{ "EXPLAIN EXECUTE p", R },
	{ "EXPLAIN SELECT pg_terminate_backend(1)", R, .fns = "pg_terminate_backend" },
	{ "EXPLAIN SELECT set_config('search_path', 'x', false)", R, .fns = "set_config" },
	{ "EXPLAIN ANALYZE SELECT set_config('search_path', 'x', false)", R | CONF, SP,
	  .fns = "set_config" },
	{ "EXPLAIN ANALYZE CREATE TABLE x AS SELECT 1", R | DDL | W, .rels = "x+" },
	/* transaction control */
	{ "BEGIN", R }, { "START TRANSACTION", R }, { "COMMIT", R }, { "END", R },
	{ "ROLLBACK", R }, { "ABORT", R }, { "SAVEPOINT s", R }, { "RELEASE SAVEPOINT s", R },
	{ "ROLLBACK TO SAVEPOINT s", R }, { "COMMIT AND CHAIN", R },
	{ "BEGIN READ WRITE", R, RW },
	{ "BEGIN READ ONLY", R },
	{ "BEGIN ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE", R },
	{ "START TRANSACTION ISOLATION LEVEL REPEATABLE READ READ WRITE", R, RW },
	{ "PREPARE TRANSACTION 'x'", ADM }, { "COMMIT PREPARED 'x'", ADM },
	{ "ROLLBACK PREPARED 'x'", ADM },
	{ "SET TRANSACTION READ WRITE", CONF, RW },
	{ "SET TRANSACTION READ ONLY", CONF },
	{ "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", CONF },
	{ "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE", CONF, RW },
	{ "SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", CONF },
	/* cursors, notifications, prepared statements */
	{ "DECLARE c CURSOR FOR SELECT * FROM t", R, .rels = "t" },
	{ "DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t FOR UPDATE", R | W, .rels = "t" },
	{ "FETCH 10 FROM c", R }, { "MOVE c", R }, { "CLOSE c", R }, { "CLOSE ALL", R },
	{ "LISTEN c", R }, { "UNLISTEN *", R },
	{ "NOTIFY c, 'x'", W },
	{ "SELECT pg_notify('c', 'x')", R | W, .fns = "pg_notify" },
	{ "PREPARE p AS DELETE FROM t", R | W | DWW, SQLF_PREPARE, .rels = "t+", .name = "p" },
	{ "PREPARE q(int) AS SELECT * FROM t WHERE a = $1", R, SQLF_PREPARE, .rels = "t", .name = "q" },
	{ "PREPARE s AS SELECT set_config('search_path', $1, false)", R | CONF, SQLF_PREPARE | SP,
	  .fns = "set_config", .name = "s" },
	{ "EXECUTE p", R, SQLF_EXECUTE, .name = "p" },
	{ "EXECUTE p(nextval('s'), 2)", R | W, SQLF_EXECUTE, .fns = "nextval", .name = "p" },
	{ "DEALLOCATE p", R, SQLF_DEALLOCATE, .name = "p" },
	{ "DEALLOCATE PREPARE \"P\"", R, SQLF_DEALLOCATE, .name = "P" },
	{ "DEALLOCATE ALL", R, SQLF_DEALLOCATE },
	{ "DISCARD ALL", R | CONF, ALLSET | SQLF_DEALLOCATE },
	{ "DISCARD PLANS", R }, { "DISCARD TEMP", R },
	/* write */
	{ "INSERT INTO t VALUES (1)", R | W, .rels = "t+" },
	{ "INSERT INTO s.t (a) VALUES (1) RETURNING g(a)", R | W, .rels = "s.t+", .fns = "g" },
	{ "INSERT INTO t SELECT * FROM u", R | W, .rels = "t+ u" },
	{ "INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = 2", R | W, .rels = "t+" },
	{ "UPDATE t SET a = 1 WHERE b = 2", R | W, .rels = "t+" },
	{ "UPDATE t SET a = u.a FROM u WHERE t.id = u.id", R | W, .rels = "t+ u" },
	{ "DELETE FROM t WHERE a = 1", R | W, .rels = "t+" },
	{ "DELETE FROM t WHERE CURRENT OF c", R | W, .rels = "t+" },
	{ "UPDATE t SET a = 1 WHERE CURRENT OF c", R | W, .rels = "t+" },
	{ "DELETE FROM t USING u WHERE t.a = u.a", R | W, .rels = "t+ u" },
	{ "MERGE INTO t USING s ON t.a = s.a WHEN MATCHED THEN DELETE", R | W, .rels = "s t+" },
	{ "SELECT * INTO s.n FROM t", R | DDL | W, .rels = "s.n+ t" },
	{ "SELECT 1 INTO x UNION SELECT 2", R | DDL | W, .rels = "x+" },
	{ "CREATE TABLE x AS SELECT * FROM t", R | DDL | W, .rels = "t x+" },
	{ "CREATE MATERIALIZED VIEW mv AS SELECT 1 WITH NO DATA", R | DDL | W, .rels = "mv+" },
	{ "SELECT * FROM t FOR UPDATE", R | W, .rels = "t" },
	{ "SELECT * FROM t FOR SHARE SKIP LOCKED", R | W, .rels = "t" },
	{ "SELECT * FROM t WHERE a IN (SELECT b FROM u FOR KEY SHARE)", R | W, .rels = "t u" },
	{ "SELECT nextval('s')", R | W, .fns = "nextval" },
	{ "SELECT pg_catalog.setval('s', 1)", R | W, .fns = "pg_catalog.setval" },
	{ "SELECT lo_create(0), lo_creat(-1)", R | W, .fns = "lo_creat lo_create" },
	{ "SELECT lo_unlink(1)", R | W, .fns = "lo_unlink" },
	{ "SELECT lo_import('/etc/passwd')", R | W, .fns = "lo_import" },
	{ "SELECT lowrite(0, 'x'), lo_put(1, 0, 'x')", R | W, .fns = "lo_put lowrite" },
	{ "SELECT lo_from_bytea(0, 'x'), lo_truncate(0, 1), lo_truncate64(0, 1)", R | W,
	  .fns = "lo_from_bytea lo_truncate lo_truncate64" },
	{ "SELECT loread(lo_open(1, 262144), 10)", R, .fns = "lo_open loread" },
	{ "LOCK TABLE t, s.u IN ACCESS EXCLUSIVE MODE", W, .rels = "t+ s.u+" },
	{ "LOCK t", W, .rels = "t+" },
	{ "REFRESH MATERIALIZED VIEW CONCURRENTLY mv", W, .rels = "mv+" },
	/* DML hidden in CTEs and subqueries */
	{ "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", R | W | DWW, .rels = "d t+" },
	{ "WITH u AS (UPDATE t SET a = 1 RETURNING a) INSERT INTO x SELECT * FROM u",
	  R | W | UWW, .rels = "t+ u x+" },
	{ "WITH a AS (WITH b AS (UPDATE t SET x = 1 WHERE y = 2 RETURNING *) SELECT * FROM b) SELECT * FROM a",
	  R | W, .rels = "a b t+" },
	{ "SELECT (SELECT max(a) FROM (WITH d AS (DELETE FROM t RETURNING a) SELECT a FROM d) s)",
	  R | W | DWW, .rels = "d t+", .fns = "max" },
	{ "WITH d AS (DELETE FROM t WHERE a = 1 RETURNING *) SELECT * FROM d", R | W, .rels = "d t+" },
	/* delete/update without where */
	{ "DELETE FROM t", R | W | DWW, .rels = "t+" },
	{ "delete from ONLY s.t", R | W | DWW, .rels = "s.t+" },
	{ "UPDATE t SET a = 1", R | W | UWW, .rels = "t+" },
	{ "UPDATE t SET a = (SELECT max(b) FROM u WHERE u.c = t.c)", R | W | UWW, .rels = "t+ u",
	  .fns = "max" },
	/* ddl */
	{ "CREATE TABLE t (a int)", DDL, .rels = "t+" },
	{ "CREATE TEMP TABLE t (a int) ON COMMIT DROP", DDL, .rels = "t+" },
	{ "CREATE UNLOGGED TABLE t (LIKE s.u)", DDL, .rels = "s.u t+" },
	{ "CREATE TABLE s.t (a int DEFAULT nextval('q') CHECK (f(a) > 0), b int REFERENCES o.p(id))",
	  DDL, .rels = "o.p s.t+", .fns = "f nextval" },
	{ "CREATE TABLE p1 PARTITION OF p FOR VALUES IN (1)", DDL, .rels = "p p1+" },
	{ "CREATE FOREIGN TABLE ft (a int) SERVER s", DDL, .rels = "ft+" },
	{ "ALTER TABLE t ADD COLUMN b int DEFAULT f()", DDL, .rels = "t+", .fns = "f" },
	{ "ALTER TABLE t ALTER COLUMN a TYPE int USING f(a)", DDL, .rels = "t+", .fns = "f" },
	{ "ALTER TABLE t ENABLE ROW LEVEL SECURITY", DDL, .rels = "t+" },
	{ "ALTER TABLE t DROP COLUMN c", DDL | DROP, .rels = "t+" },
	{ "ALTER TABLE s.t RENAME TO u", DDL, .rels = "s.t+" },
	{ "ALTER TABLE t RENAME COLUMN a TO b", DDL, .rels = "t+" },
	{ "ALTER VIEW v RENAME TO w", DDL, .rels = "v+" },
	{ "ALTER INDEX i SET TABLESPACE x", DDL, .rels = "i+" },
	{ "ALTER SEQUENCE s RESTART", DDL, .rels = "s+" },
	{ "ALTER SCHEMA a RENAME TO b", DDL, .schemas = "a b" },
	{ "ALTER TABLE t SET SCHEMA s2", DDL, .rels = "t+", .schemas = "s2" },
	{ "ALTER FUNCTION s.f(int) SET SCHEMA s2", DDL, .schemas = "s s2" },
	{ "COMMENT ON TABLE s.t IS 'x'", DDL, .rels = "s.t+" },
	{ "COMMENT ON COLUMN s.t.c IS 'x'", DDL, .rels = "s.t+" },
	{ "COMMENT ON FUNCTION s.f(int) IS 'x'", DDL, .schemas = "s" },
	{ "COMMENT ON CONSTRAINT c ON DOMAIN s.d IS 'x'", DDL, .schemas = "s" },
	{ "COMMENT ON SCHEMA s IS 'x'", DDL, .schemas = "s" },
	{ "COMMENT ON EXTENSION e IS 'x'", DDL },
	{ "SECURITY LABEL ON TABLE t IS 'x'", DDL, .rels = "t+" },
	{ "CREATE INDEX ON s.t (lower(a))", DDL, .rels = "s.t+", .fns = "lower" },
	{ "CREATE UNIQUE INDEX CONCURRENTLY i ON t (a) WHERE b > 0", DDL, .rels = "t+" },
	{ "CREATE VIEW v AS SELECT f(a) FROM t", DDL, .rels = "t v+", .fns = "f" },
	{ "CREATE OR REPLACE VIEW s.v AS SELECT 1", DDL, .rels = "s.v+" },
	{ "CREATE VIEW v AS SELECT nextval('q')", DDL, .rels = "v+", .fns = "nextval" },
	{ "CREATE SEQUENCE s.q", DDL, .rels = "s.q+" },
	{ "CREATE SCHEMA s", DDL, .schemas = "s" },
	{ "CREATE SCHEMA s CREATE TABLE t (a int) CREATE VIEW v AS SELECT 1", DDL,
	  .rels = "t+ v+", .schemas = "s" },
	{ "CREATE TYPE s.ty AS ENUM ('a')", DDL, .schemas = "s" },
	{ "CREATE TYPE s.c AS (a int)", DDL, .rels = "s.c+" },
	{ "CREATE DOMAIN s.d AS int CHECK (VALUE > 0)", DDL, .schemas = "s" },
	{ "CREATE AGGREGATE s.agg (int) (sfunc = int4pl, stype = int)", DDL, .schemas = "s" },
	{ "CREATE STATISTICS s.st ON a, b FROM t", DDL, .rels = "t", .schemas = "s" },
	{ "CREATE POLICY p ON s.t USING (f(a))", DDL, .rels = "s.t+", .fns = "f" },
	{ "CREATE PUBLICATION p FOR ALL TABLES", DDL },
	{ "IMPORT FOREIGN SCHEMA r FROM SERVER s INTO l", DDL, .schemas = "l" },
	{ "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw", DDL },
	{ "CREATE USER MAPPING FOR bob SERVER s", DDL },
	{ "CREATE CAST (int AS text) WITH INOUT", DDL },
	/* opaque: code that cannot be read from the text */
	{ "CREATE FUNCTION s.f() RETURNS int LANGUAGE sql AS 'select 1'", DDL | OPQ, .schemas = "s" },
	{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY INVOKER AS 'select 1'", DDL | OPQ },
	{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; DELETE FROM t; END",
	  DDL | OPQ, .rels = "t" },
	{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = x AS 'select 1'", DDL | OPQ },
	{ "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN DELETE FROM t; END $$", DDL | OPQ },
	{ "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", DDL | OPQ,
	  .rels = "t+" },
	{ "CREATE RULE r AS ON INSERT TO t DO INSTEAD DELETE FROM u", DDL | OPQ, .rels = "t+ u" },
	{ "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()", DDL | OPQ },
	{ "CREATE EXTENSION hstore SCHEMA s", DDL | OPQ, .schemas = "s" },
	{ "ALTER EXTENSION hstore UPDATE", DDL | OPQ },
	{ "CREATE LANGUAGE plperlu", DDL | OPQ },
	{ "DO $$ BEGIN DROP TABLE t; END $$", OPQ },
	{ "DO LANGUAGE plpgsql 'begin end'", OPQ },
	{ "CALL s.p(1)", OPQ, .fns = "s.p" },
	{ "CALL p(f(1))", OPQ, .fns = "f p" },
	{ "SELECT query_to_xml('delete from t', true, true, '')", R | OPQ, .fns = "query_to_xml" },
	{ "SELECT table_to_xml('secret.t', true, true, '')", R | OPQ, .fns = "table_to_xml" },
	{ "SELECT * FROM ts_stat('select v from t')", R | OPQ, .fns = "ts_stat" },
	{ "SELECT ts_rewrite('a'::tsquery, 'select 1')", R | OPQ, .fns = "ts_rewrite" },
	{ "SELECT ts_rewrite('a'::tsquery, 'a'::tsquery, 'b'::tsquery)", R, .fns = "ts_rewrite" },
	/* drop */
	{ "DROP TABLE s.t, u", DROP | DDL, .rels = "s.t+ u+" },
	{ "DROP VIEW IF EXISTS v", DROP | DDL, .rels = "v+" },
	{ "DROP INDEX CONCURRENTLY i", DROP | DDL, .rels = "i+" },
	{ "DROP MATERIALIZED VIEW s.mv", DROP | DDL, .rels = "s.mv+" },
	{ "DROP SEQUENCE s.q CASCADE", DROP | DDL, .rels = "s.q+" },
	{ "DROP SCHEMA a, b CASCADE", DROP | DDL, .schemas = "a b" },
	{ "DROP FUNCTION s.f(int), g", DROP | DDL, .schemas = "s" },
	{ "DROP TRIGGER tr ON s.t", DROP | DDL, .rels = "s.t+" },
	{ "DROP POLICY p ON t", DROP | DDL, .rels = "t+" },
	{ "DROP TYPE s.ty", DROP | DDL, .schemas = "s" },
	{ "DROP OPERATOR CLASS s.c USING btree", DROP | DDL, .schemas = "s" },
	{ "DROP OPERATOR CLASS c USING btree", DROP | DDL },
	{ "DROP EXTENSION e", DROP | DDL },
	{ "DROP SERVER s", DROP | DDL },
	{ "DROP USER MAPPING FOR bob SERVER s", DROP | DDL },
	/* truncate */
	{ "TRUNCATE t, s.u", TRUNC | DDL | W, .rels = "t+ s.u+" },
	{ "TRUNCATE TABLE ONLY t RESTART IDENTITY CASCADE", TRUNC | DDL | W, .rels = "t+" },
	/* copy */
	{ "COPY t TO STDOUT", COUT | R, .rels = "t" },
	{ "COPY t (a, b) TO STDOUT WITH (FORMAT csv, HEADER)", COUT | R, .rels = "t" },
	{ "COPY s.t (a) FROM STDIN", CIN | W, .rels = "s.t+" },
	{ "COPY t FROM STDIN WHERE a > f(1)", CIN | W, .rels = "t+", .fns = "f" },
	{ "COPY t TO '/tmp/f'", COUT | R | CPROG, .rels = "t" },
	{ "COPY t FROM '/tmp/f'", CIN | W | CPROG, .rels = "t+" },
	{ "COPY t FROM PROGRAM 'x'", CIN | W | CPROG, .rels = "t+" },
	{ "COPY t TO PROGRAM 'gzip > /tmp/x'", COUT | R | CPROG, .rels = "t" },
	{ "COPY (SELECT * FROM t) TO STDOUT", COUT | R, .rels = "t" },
	{ "COPY (SELECT 1) TO '/tmp/x' WITH (FORMAT csv)", COUT | R | CPROG },
	{ "COPY (DELETE FROM t RETURNING *) TO STDOUT", COUT | R | W | DWW, .rels = "t+" },
	/* role-change */
	{ "SET ROLE bob", ROLE }, { "SET role TO bob", ROLE }, { "SET LOCAL ROLE bob", ROLE },
	{ "RESET ROLE", ROLE }, { "SET ROLE NONE", ROLE },
	{ "SET SESSION AUTHORIZATION bob", ROLE },
	{ "SET SESSION AUTHORIZATION DEFAULT", ROLE },
	{ "RESET SESSION AUTHORIZATION", ROLE },
	{ "SELECT set_config('role', 'admin', false)", R | ROLE, .fns = "set_config" },
	{ "SELECT pg_catalog.set_config('session_authorization'::text, 'x', false)", R | ROLE,
	  .fns = "pg_catalog.set_config" },
	{ "SELECT set_config('ROLE', 'admin', false)", R | ROLE, .fns = "set_config" },
	{ "CREATE ROLE r LOGIN", DDL | ROLE },
	{ "CREATE USER u WITH PASSWORD 'x'", DDL | ROLE },
	{ "CREATE GROUP g", DDL | ROLE },
	{ "ALTER ROLE r SUPERUSER", DDL | ROLE },
	{ "ALTER GROUP g ADD USER u", DDL | ROLE },
	{ "ALTER USER u RENAME TO v", DDL | ROLE },
	{ "DROP ROLE r", DDL | ROLE | DROP },
	{ "DROP USER IF EXISTS u", DDL | ROLE | DROP },
	{ "GRANT SELECT ON TABLE s.t TO bob", ROLE, .rels = "s.t" },
	{ "GRANT USAGE ON SCHEMA s TO bob", ROLE, .schemas = "s" },
	{ "GRANT SELECT ON ALL TABLES IN SCHEMA s, u TO bob", ROLE, .schemas = "s u" },
	{ "GRANT EXECUTE ON FUNCTION s.f(int) TO bob", ROLE, .schemas = "s" },
	{ "GRANT USAGE ON TYPE s.t TO bob", ROLE, .schemas = "s" },
	{ "REVOKE ALL ON t FROM PUBLIC", ROLE, .rels = "t" },
	{ "GRANT bob TO alice", ROLE },
	{ "REVOKE bob FROM alice", ROLE },
	{ "ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO bob", ROLE, .schemas = "s" },
	{ "ALTER DEFAULT PRIVILEGES FOR ROLE a REVOKE ALL ON FUNCTIONS FROM PUBLIC", ROLE },
	{ "REASSIGN OWNED BY a TO b", ROLE | DDL },
	{ "DROP OWNED BY a", ROLE | DDL | DROP },
	{ "ALTER TABLE t OWNER TO bob", DDL | ROLE, .rels = "t+" },
	{ "ALTER FUNCTION s.f() OWNER TO bob", DDL | ROLE, .schemas = "s" },
	{ "ALTER SCHEMA s OWNER TO bob", DDL | ROLE, .schemas = "s" },
	{ "CREATE SCHEMA s AUTHORIZATION bob CREATE TABLE t (a int)", DDL | ROLE, .rels = "t+",
	  .schemas = "s" },
	{ "CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'select 1'",
	  DDL | OPQ | ROLE },
	{ "ALTER FUNCTION s.f() SECURITY DEFINER", DDL | ROLE, .schemas = "s" },
	{ "ALTER FUNCTION f() SECURITY INVOKER", DDL },
	/* config-change */
	{ "SET search_path = a, b", CONF, SP },
	{ "SET LOCAL search_path TO DEFAULT", CONF, SP },
	{ "SET \"Search_Path\" TO x", CONF, SP },
	{ "RESET search_path", CONF, SP },
	{ "SET SCHEMA 'x'", CONF, SP },
	{ "SET standard_conforming_strings = off", CONF, SCS },
	{ "set STANDARD_CONFORMING_STRINGS to on", CONF, SCS },
	{ "RESET ALL", CONF, ALLSET },
	{ "SET default_transaction_read_only = off", CONF, RW },
	{ "SET transaction_read_only TO 0", CONF, RW },
	{ "SET SESSION default_transaction_read_only TO 1", CONF, RW },
	{ "SET work_mem = '64MB'", CONF },
	{ "SET TIME ZONE 'UTC'", CONF },
	{ "SET NAMES 'utf8'", CONF },
	{ "SET statement_timeout TO 0", CONF },
	{ "SELECT set_config('work_mem', '1GB', false)", R | CONF, .fns = "set_config" },
	{ "SELECT set_config('search_path', 'x', true)", R | CONF, SP, .fns = "set_config" },
	{ "SELECT set_config('Standard_Conforming_Strings', 'off', false)", R | CONF, SCS,
	  .fns = "set_config" },
	{ "SELECT set_config('default_transaction_read_only', 'off', false)", R | CONF, RW,
	  .fns = "set_config" },
	{ "SELECT set_config(current_setting('x'), 'y', false)", R | CONF | ROLE, DYN,
	  .fns = "current_setting set_config" },
	{ "SELECT set_config(setting_name => 'role', new_value => 'x', is_local => false)",
	  R | CONF | ROLE, DYN, .fns = "set_config" },
	{ "SELECT set_config(n, 'x', false) FROM (VALUES ('role')) v(n)", R | CONF | ROLE, DYN,
	  .fns = "set_config" },
	{ "ALTER SYSTEM SET work_mem = '1MB'", ADM | CONF },
	{ "ALTER SYSTEM SET search_path = x", ADM | CONF, SP },
	{ "ALTER SYSTEM RESET ALL", ADM | CONF, ALLSET },
	{ "ALTER ROLE bob SET search_path = x", DDL | ROLE | CONF, SP },
	{ "ALTER ROLE bob IN DATABASE d RESET ALL", DDL | ROLE | CONF, ALLSET },
	{ "ALTER DATABASE d SET standard_conforming_strings = off", DDL | ADM | CONF, SCS },
	{ "ALTER FUNCTION f() SET search_path = x", DDL },
	{ "LOAD 'auto_explain'", ADM | CONF },
	/* admin */
	{ "VACUUM", ADM },
	{ "VACUUM (ANALYZE) t", ADM, .rels = "t" },
	{ "VACUUM FULL s.t", ADM, .rels = "s.t" },
	{ "ANALYZE t", ADM, .rels = "t" },
	{ "CLUSTER t USING i", ADM, .rels = "t" },
	{ "REINDEX TABLE t", ADM, .rels = "t" },
	{ "REINDEX SCHEMA s", ADM, .schemas = "s" },
	{ "CHECKPOINT", ADM },
	{ "CREATE DATABASE d", DDL | ADM },
	{ "DROP DATABASE d", DDL | ADM | DROP },
	{ "ALTER DATABASE d CONNECTION LIMIT 1", DDL | ADM },
	{ "ALTER DATABASE d RENAME TO e", DDL | ADM },
	{ "CREATE TABLESPACE ts LOCATION '/x'", DDL | ADM },
	{ "DROP TABLESPACE ts", DDL | ADM | DROP },
	{ "CREATE SUBSCRIPTION s CONNECTION 'x' PUBLICATION p", DDL | ADM },
	/* functions: every call, qualified as written, operators excluded */
	{ "SELECT pg_terminate_backend(123)", R, .fns = "pg_terminate_backend" },
	{ "SELECT lower(a), pg_catalog.upper(b), lower(c) FROM t", R, .rels = "t",
	  .fns = "lower pg_catalog.upper" },
	{ "SELECT extract(year FROM now())", R, .fns = "now pg_catalog.extract" },
	{ "SELECT \"Weird\"(1), mydb.s.f(2)", R, .fns = "Weird s.f" },
	{ "SELECT count(*) FROM t GROUP BY a ORDER BY max(b)", R, .rels = "t", .fns = "count max" },
	{ "SELECT * FROM generate_series(1, 10) g JOIN LATERAL unnest(array[g]) u ON true", R,
	  .fns = "generate_series unnest" },
	{ "SELECT a FROM t WHERE a = ANY (SELECT f(b) FROM u) ORDER BY g(a) LIMIT h()", R,
	  .rels = "t u", .fns = "f g h" },
	{ "SELECT dblink_exec('db', 'DELETE FROM t')", R, .fns = "dblink_exec" },
	{ "SELECT pg_read_file('/etc/passwd')", R, .fns = "pg_read_file" },
	/* hiding spellings */
	{ "/* drop */ select 1", R },
	{ "-- x\n DROP TABLE t", DROP | DDL, .rels = "t+" },
	{ "dRoP tAbLe T", DROP | DDL, .rels = "t+" },
	{ "DROP TABLE \"public\".\"T\"", DROP | DDL, .rels = "public.T+" },
	{ "DeLeTe FrOm \"T\"", R | W | DWW, .rels = "T+" },
	{ "  \n\t SELECT 1  \n", R },
	{ "SELECT 1;", R },
	{ "WITH x AS MATERIALIZED (SELECT 1) DELETE FROM t WHERE a IN (SELECT * FROM x)", R | W,
	  .rels = "t+ x" },
	{ "INSERT INTO t WITH u AS (UPDATE v SET a = 1 RETURNING a) SELECT * FROM u",
	  R | W | UWW, .rels = "t+ u v+" },
};

static char *join_sorted(char **v, size_t n)
{
	size_t len = 1;
	char *s;

	for (size_t i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	s = calloc(1, len);
	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(s, " ");
		strcat(s, v[i]);
	}
	return s;
}

/* The expectation, sorted: "a c b" -> "a b c"; NULL -> "". */
static char *sorted_words(const char *s)
{
	char *copy = strdup(s ? s : ""), *v[64], *save = NULL, *out;
	size_t n = 0;

	assert_non_null(copy);
	for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
		assert_true(n < ARRAY_SIZE(v));
		v[n++] = t;
	}
	out = join_sorted(v, n);
	free(copy);
	return out;
}

static char *render_rels(const struct sql_stmt *st)
{
	char **v = calloc(st->n_rels + 1, sizeof(*v)), *out;

	assert_non_null(v);
	for (size_t i = 0; i < st->n_rels; i++) {
		const struct sql_rel *r = &st->rels[i];

		assert_non_null(r->name);
		assert_true(asprintf(&v[i], "%s%s%s%s%s%s", r->catalog ? r->catalog : "",
				     r->catalog ? "." : "", r->schema ? r->schema : "",
				     r->schema ? "." : "", r->name, r->written ? "+" : "") > 0);
	}
	out = join_sorted(v, st->n_rels);
	for (size_t i = 0; i < st->n_rels; i++)
		free(v[i]);
	free(v);
	return out;
}

static char *render_list(char **list, size_t n)
{
	char **v = calloc(n + 1, sizeof(*v)), *out;

	assert_non_null(v);
	if (n)
		memcpy(v, list, n * sizeof(*v));
	out = join_sorted(v, n);
	free(v);
	return out;
}

static void classes_text(uint32_t bits, char *buf, size_t n)
{
	buf[0] = '\0';
	for (int c = 0; c < CLASS__COUNT; c++)
		if (bits & CLASS_BIT(c)) {
			strncat(buf, stmt_class_name(c), n - strlen(buf) - 1);
			strncat(buf, " ", n - strlen(buf) - 1);
		}
}

static bool check_list(const char *sql, const char *what, const char *want, char *got)
{
	char *w = sorted_words(want);
	bool ok = strcmp(w, got) == 0;

	if (!ok)
		print_error("%s\n  %s: got \"%s\", want \"%s\"\n", sql, what, got, w);
	free(w);
	free(got);
	return ok;
}

static bool check_case(const struct ccase *c)
{
	struct sql_class out;
	const struct sql_stmt *st;
	char got[400], want[400];
	bool ok = true;

	assert_int_equal(sql_classify(c->sql, &out), 0);
	if (out.error || out.n != 1) {
		print_error("%s\n  error %s, %zu statements\n", c->sql, out.error ? out.error : "-", out.n);
		sql_class_free(&out);
		return false;
	}
	st = &out.v[0];
	if (st->classes != c->classes) {
		classes_text(st->classes, got, sizeof(got));
		classes_text(c->classes, want, sizeof(want));
		print_error("%s\n  classes: got %s, want %s\n", c->sql, got, want);
		ok = false;
	}
	if (st->flags != c->flags) {
		print_error("%s\n  flags: got %#x, want %#x\n", c->sql, st->flags, c->flags);
		ok = false;
	}
	if ((st->name || c->name) && !(st->name && c->name && strcmp(st->name, c->name) == 0)) {
		print_error("%s\n  name: got %s, want %s\n", c->sql, st->name ? st->name : "-",
			    c->name ? c->name : "-");
		ok = false;
	}
	ok &= check_list(c->sql, "rels", c->rels, render_rels(st));
	ok &= check_list(c->sql, "functions", c->fns, render_list(st->functions, st->n_functions));
	ok &= check_list(c->sql, "schemas", c->schemas, render_list(st->schemas, st->n_schemas));
	sql_class_free(&out);
	return ok;
}

static void table(void **state)
{
	size_t bad = 0;
	uint32_t seen = 0;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		if (!check_case(&cases[i]))
			bad++;
		seen |= cases[i].classes;
	}
	print_message("%zu statements classified, %zu wrong\n", ARRAY_SIZE(cases), bad);
	assert_int_equal(bad, 0);
	/* Every class the classifier sets is in the table (functions is decide.c's). */
	assert_int_equal(seen, (CLASS_BIT(CLASS__COUNT) - 1) & ~CLASS_BIT(CLASS_FUNCTIONS));
	assert_true(ARRAY_SIZE(cases) >= 120);
}

/* ---- several statements, spans, nothing at all ------------------------------ */

struct span {
	const char *text; /* the statement as it must be cut out */
	uint32_t classes;
};

static void check_split(const char *sql, const struct span *want, size_t n)
{
	struct sql_class out;

	assert_int_equal(sql_classify(sql, &out), 0);
	assert_null(out.error);
	assert_int_equal(out.n, n);
	for (size_t i = 0; i < n; i++) {
		const struct sql_stmt *st = &out.v[i];

		assert_true(st->off + st->len <= strlen(sql));
		if (strlen(want[i].text) != st->len || memcmp(sql + st->off, want[i].text, st->len) != 0)
			fail_msg("%s: statement %zu is \"%.*s\", want \"%s\"", sql, i, (int)st->len,
				 sql + st->off, want[i].text);
		assert_int_equal(st->classes, want[i].classes);
	}
	sql_class_free(&out);
}

static void multi_statement(void **state)
{
	(void)state;
	check_split("SELECT 1; DELETE FROM t; ",
		    (const struct span[]){ { "SELECT 1", R }, { "DELETE FROM t", R | W | DWW } }, 2);
	check_split("  SELECT 1 ;  -- c\n  DROP TABLE t ; /* x */ ",
		    (const struct span[]){ { "SELECT 1", R }, { "-- c\n  DROP TABLE t", DROP | DDL } }, 2);
	check_split("select 1; select 2",
		    (const struct span[]){ { "select 1", R }, { "select 2", R } }, 2);
	check_split("BEGIN;SET ROLE x;COMMIT",
		    (const struct span[]){ { "BEGIN", R }, { "SET ROLE x", ROLE }, { "COMMIT", R } }, 3);
	check_split("SELECT ';'; SELECT $$;$$",
		    (const struct span[]){ { "SELECT ';'", R }, { "SELECT $$;$$", R } }, 2);
	/* One statement: its span without the blanks and the semicolon. */
	check_split("\n\tSELECT 1;\n", (const struct span[]){ { "SELECT 1", R } }, 1);
	check_split("SELECT 1;;;SELECT 2",
		    (const struct span[]){ { "SELECT 1", R }, { "SELECT 2", R } }, 2);
	/* A rule's actions are one statement with its parenthesised list. */
	check_split("CREATE RULE r AS ON INSERT TO t DO ALSO (DELETE FROM u; NOTIFY c); SELECT 1",
		    (const struct span[]){
			    { "CREATE RULE r AS ON INSERT TO t DO ALSO (DELETE FROM u; NOTIFY c)", DDL | OPQ },
			    { "SELECT 1", R } }, 2);
	/* Nothing runs: no statement, no error. */
	check_split("", NULL, 0);
	check_split("   \n", NULL, 0);
	check_split("-- only a comment", NULL, 0);
	check_split("/* x */ ; ;", NULL, 0);
}

static void parse_errors(void **state)
{
	struct sql_class out;
	char *big;

	(void)state;
	assert_int_equal(sql_classify("SELECT * FORM t", &out), 0);
	assert_string_equal(out.error, "syntax error at or near \"FORM\"");
	assert_int_equal(out.error_pos, 10);
	assert_int_equal(out.n, 0);
	assert_null(out.v);
	sql_class_free(&out);

	/* One bad statement fails the whole text (the server parses it whole). */
	assert_int_equal(sql_classify("SELECT 1; DELETE t", &out), 0);
	assert_non_null(out.error);
	assert_int_equal(out.n, 0);
	sql_class_free(&out);

	assert_int_equal(sql_classify("SELECT 'unterminated", &out), 0);
	assert_non_null(out.error);
	sql_class_free(&out);

	/* Over SQL_CLASSIFY_MAX: refused before parsing. */
	big = malloc(SQL_CLASSIFY_MAX + 2);
	assert_non_null(big);
	memset(big, ' ', SQL_CLASSIFY_MAX + 1);
	memcpy(big, "SELECT 1", 8);
	big[SQL_CLASSIFY_MAX + 1] = '\0';
	assert_int_equal(sql_classify(big, &out), 0);
	assert_string_equal(out.error, "statement too long to classify (16777217 bytes)");
	assert_int_equal(out.n, 0);
	sql_class_free(&out);
	/* Exactly at the limit it is classified. */
	big[SQL_CLASSIFY_MAX] = '\0';
	assert_int_equal(sql_classify(big, &out), 0);
	assert_null(out.error);
	assert_int_equal(out.n, 1);
	assert_int_equal(out.v[0].classes, R);
	assert_int_equal(out.v[0].len, 8);
	sql_class_free(&out);
	free(big);

	/* Freeing twice, or a zeroed result, is fine. */
	sql_class_free(&out);
	sql_class_free(NULL);
}

static char *nested(const char *head, const char *open, const char *mid, const char *close, int n)
{
	size_t lo = strlen(open), lc = strlen(close), lh = strlen(head), lm = strlen(mid);
	char *s = malloc(lh + (size_t)n * (lo + lc) + lm + 1), *p = s;

	assert_non_null(s);
	memcpy(p, head, lh), p += lh;
	for (int i = 0; i < n; i++)
		memcpy(p, open, lo), p += lo;
	memcpy(p, mid, lm), p += lm;
	for (int i = 0; i < n; i++)
		memcpy(p, close, lc), p += lc;
	*p = '\0';
	return s;
}

static void deep_nesting(void **state)
{
	struct sql_class out;
	char *s;

	(void)state;
	/* Parentheses do not nest in the tree. */
	s = nested("SELECT ", "(", "1", ")", 5000);
	assert_int_equal(sql_classify(s, &out), 0);
	assert_null(out.error);
	assert_int_equal(out.v[0].classes, R);
	sql_class_free(&out);
	free(s);

	/* Nested calls do (three levels each): 3300 are within the walk's
	 * reach, and the function is named once. */
	s = nested("SELECT ", "f(", "1", ")", 3300);
	assert_int_equal(sql_classify(s, &out), 0);
	assert_null(out.error);
	assert_int_equal(out.v[0].n_functions, 1);
	sql_class_free(&out);
	free(s);

	/* 4000 nest deeper than the walk goes: refused, not a crash. */
	s = nested("SELECT ", "f(", "1", ")", 4000);
	assert_int_equal(sql_classify(s, &out), 0);
	assert_string_equal(out.error, "statement too complex to classify");
	assert_int_equal(out.n, 0);
	sql_class_free(&out);
	free(s);

	/* Deeper still, the parser itself gives up: a parse error. */
	s = nested("SELECT ", "(SELECT ", "1", ")", 5000);
	assert_int_equal(sql_classify(s, &out), 0);
	assert_non_null(out.error);
	assert_int_equal(out.n, 0);
	sql_class_free(&out);
	free(s);

	s = nested("SELECT ", "-", "1", "", 200000);
	assert_int_equal(sql_classify(s, &out), 0);
	assert_true(out.error || (out.n == 1 && out.v[0].classes == R));
	sql_class_free(&out);
	free(s);
}

/* ---- trees no SQL text produces (fail closed) ------------------------------- */

static int classify_tree_text(const char *json, struct sql_class *out)
{
	char *copy = strdup(json);
	int r;

	assert_non_null(copy);
	*out = (struct sql_class){ 0 };
	r = classify_json(copy, "x", 1, out);
	free(copy);
	return r;
}

static void unknown_nodes(void **state)
{
	struct sql_class out;

	(void)state;
	assert_true(cw_kinds_check());

	/* A statement type not in the table: opaque, never read. */
	assert_int_equal(classify_tree_text("{\"stmts\":[{\"stmt\":{\"FutureStmt\":{}}}]}", &out), 0);
	assert_int_equal(out.n, 1);
	assert_int_equal(out.v[0].classes, OPQ);
	sql_class_free(&out);
	/* ... also when nested in one we know. */
	assert_int_equal(classify_tree_text("{\"stmts\":[{\"stmt\":{\"SelectStmt\":{\"x\":[{\"PLAssignStmt\":{}}]}}}]}",
					     &out), 0);
	assert_int_equal(out.v[0].classes, R | OPQ);
	sql_class_free(&out);
	/* A known node type that is not a statement at the top: opaque. */
	assert_int_equal(classify_tree_text("{\"stmts\":[{\"stmt\":{\"FuncCall\":{\"funcname\":[{\"String\":{\"sval\":\"f\"}}]}}}]}",
					     &out), 0);
	assert_int_equal(out.v[0].classes, OPQ);
	sql_class_free(&out);
	/* No statement node at all, or an odd function name. */
	assert_int_equal(classify_tree_text("{\"stmts\":[{}]}", &out), 0);
	assert_int_equal(out.v[0].classes, OPQ);
	sql_class_free(&out);
	assert_int_equal(classify_tree_text("{\"stmts\":[{\"stmt\":{\"SelectStmt\":{\"x\":{\"FuncCall\":{\"funcname\":[{\"Integer\":{}}]}}}}}]}",
					     &out), 0);
	assert_int_equal(out.v[0].classes, R | OPQ);
	sql_class_free(&out);
	/* A SET without a kind or a name: every setting. */
	assert_int_equal(classify_tree_text("{\"stmts\":[{\"stmt\":{\"VariableSetStmt\":{}}}]}", &out), 0);
	assert_int_equal(out.v[0].classes, CONF | ROLE);
	assert_int_equal(out.v[0].flags, DYN);
	sql_class_free(&out);
	/* Not the shape expected: errors, nothing classified. */
	assert_int_equal(classify_tree_text("{\"stmts\":1}", &out), -EINVAL);
	sql_class_free(&out);
	assert_int_equal(classify_tree_text("{\"version\":1}", &out), -EINVAL);
	sql_class_free(&out);
	assert_int_equal(classify_tree_text("{\"stmts\":[{\"stmt\":{\"SelectStmt\":{}},\"stmt_len\":-1}]}",
					     &out), -EINVAL);
	sql_class_free(&out);
	assert_int_equal(classify_tree_text("{\"stmts\":[{\"stmt\":{\"SelectStmt\":{}},\"stmt_location\":\"0\"}]}",
					     &out), -EINVAL);
	sql_class_free(&out);
	assert_int_equal(classify_tree_text("{\"stmts\":[", &out), -EINVAL);
	sql_class_free(&out);
	/* Spans beyond the text are clamped to it. */
	assert_int_equal(classify_tree_text("{\"stmts\":[{\"stmt\":{\"SelectStmt\":{}},\"stmt_location\":7,\"stmt_len\":99}]}",
					     &out), 0);
	assert_int_equal(out.v[0].off, 1);
	assert_int_equal(out.v[0].len, 0);
	sql_class_free(&out);
}

/* ---- sqljson alone ------------------------------------------------------------ */

static int parse(struct sj_doc *d, const char *json, char **buf)
{
	*buf = strdup(json);
	assert_non_null(*buf);
	return sj_parse(d, *buf, strlen(*buf), SJ_MAX_BYTES, SJ_MAX_DEPTH);
}

static void json_reader(void **state)
{
	static const char *bad[] = {
		"", " ", "{", "}", "[", "[1,]", "[,1]", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{a:1}",
		"{\"a\":1,}", "[1 2]", "01", "1.", ".5", "-", "1e", "+1", "tru", "nul", "True",
		"\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\\ud800\"", "\"\\udc00\"",
		"\"\\ud800\\u0041\"", "\"\\u0000\"", "\"a\nb\"", "\"a\tb\"", "[1] [2]", "{} x",
		"[\"a\"]]", "'a'", "[1,2", "{\"a\":1 \"b\":2}", "\"\\",
	};
	static const char *good[] = {
		"0", "-0", "1.5e-3", "-12E+2", "true", "false", "null", "\"\"", "[]", "{}",
		" [ 1 , { \"a\" : [ ] } ] ", "[[[[[]]]]]", "{\"a\":{\"b\":{\"c\":null}}}",
	};
	struct sj_doc d = { 0 };
	const struct sj_node *root, *m;
	char *buf;
	uint32_t u;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r = parse(&d, bad[i], &buf);

		if (r != -EINVAL)
			fail_msg("accepted %s (%d)", bad[i], r);
		free(buf);
	}
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		if (parse(&d, good[i], &buf) != 0)
			fail_msg("refused %s", good[i]);
		free(buf);
	}

	/* Escapes, decoded in place. */
	assert_int_equal(parse(&d, "{\"k\\\"ey\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\","
				   "\"u\":\"\\u0041\\u00e9\\u20ac\\ud83d\\ude00\\u003e\", \"raw\":\"\xc3\xa9\"}",
			       &buf), 0);
	root = sj_root(&d);
	assert_int_equal(root->type, SJ_OBJECT);
	assert_int_equal(root->len, 3);
	m = sj_first(&d, root);
	assert_string_equal(m->key, "k\"ey");
	assert_string_equal(m->s, "a\"b\\c/d\b\f\n\r\t");
	assert_int_equal(m->len, 12);
	assert_string_equal(sj_get_str(&d, root, "u"), "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80>");
	assert_string_equal(sj_get_str(&d, root, "raw"), "\xc3\xa9");
	assert_null(sj_get(&d, root, "missing"));
	assert_null(sj_get_str(&d, m, "x"));
	free(buf);

	/* Numbers keep their text; only plain non-negative integers convert. */
	assert_int_equal(parse(&d, "[0, 4294967295, 4294967296, -1, 1.5, 1e3, \"7\"]", &buf), 0);
	m = sj_first(&d, sj_root(&d));
	assert_true(sj_uint32(m, &u) && u == 0);
	m = sj_next(&d, m);
	assert_true(sj_uint32(m, &u) && u == UINT32_MAX);
	for (int i = 0; i < 5; i++) {
		m = sj_next(&d, m);
		assert_false(sj_uint32(m, &u));
	}
	assert_null(sj_next(&d, m));
	free(buf);

	/* Caps: nesting, and the node array. */
	buf = nested("", "[", "", "]", 100);
	assert_int_equal(sj_parse(&d, buf, strlen(buf), SJ_MAX_BYTES, 100), 0);
	free(buf);
	buf = nested("", "[", "", "]", 101);
	assert_int_equal(sj_parse(&d, buf, strlen(buf), SJ_MAX_BYTES, 100), -E2BIG);
	free(buf);
	buf = nested("", "{\"a\":", "1", "}", 20000);
	assert_int_equal(sj_parse(&d, buf, strlen(buf), SJ_MAX_BYTES, SJ_MAX_DEPTH), -E2BIG);
	free(buf);
	buf = strdup("[1,2,3,4,5,6,7,8,9]");
	assert_int_equal(sj_parse(&d, buf, strlen(buf), 11 * sizeof(struct sj_node), 10), 0);
	assert_int_equal(sj_parse(&d, buf, strlen(buf), 10 * sizeof(struct sj_node), 10), -E2BIG);
	free(buf);
	/* A document is reused across parses; a failed parse leaves it reusable. */
	assert_int_equal(parse(&d, "{\"a\":[true]}", &buf), 0);
	assert_int_equal(sj_first(&d, sj_get(&d, sj_root(&d), "a"))->type, SJ_TRUE);
	free(buf);
	sj_doc_clear(&d);
	sj_doc_clear(&d);
}

/* ---- class order, the default functions list ---------------------------------- */

static void worst_and_functions(void **state)
{
	static const char *order[] = {
		"copy-program", "role-change", "drop", "truncate", "delete-without-where",
		"update-without-where", "admin", "ddl", "opaque", "functions", "copy-in", "write",
		"config-change", "copy-out", "read",
	};
	uint32_t all = CLASS_BIT(CLASS__COUNT) - 1;
	char *list, *save = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(sql_worst_class(0), -1);
	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		int c = stmt_class_from_name(order[i]);

		assert_true(c >= 0);
		assert_int_equal(sql_worst_class(all), c);
		assert_int_equal(sql_worst_class(CLASS_BIT(c)), c);
		all &= ~CLASS_BIT(c);
	}
	assert_int_equal(all, 0);
	assert_int_equal(sql_worst_class(R | W | DWW), CLASS_DELETE_WITHOUT_WHERE);

	assert_true(sql_function_is_dangerous_default("pg_read_file"));
	assert_true(sql_function_is_dangerous_default("pg_catalog.pg_terminate_backend"));
	assert_true(sql_function_is_dangerous_default("set_config"));
	assert_true(sql_function_is_dangerous_default("public.dblink_exec"));
	assert_true(sql_function_is_dangerous_default("ext.dblink"));
	assert_false(sql_function_is_dangerous_default("public.pg_read_file"));
	assert_false(sql_function_is_dangerous_default("pg_catalogx.pg_read_file"));
	assert_false(sql_function_is_dangerous_default("public.dblink_x"));
	assert_false(sql_function_is_dangerous_default("pg_read"));
	assert_false(sql_function_is_dangerous_default("lower"));
	assert_false(sql_function_is_dangerous_default("PG_READ_FILE"));
	assert_false(sql_function_is_dangerous_default("pg_advisory_lock"));
	assert_false(sql_function_is_dangerous_default(""));
	assert_false(sql_function_is_dangerous_default(NULL));
	/* Every word of the documented list matches, bare and in pg_catalog. */
	list = strdup(sql_dangerous_functions_default());
	assert_non_null(list);
	for (char *t = strtok_r(list, " ", &save); t; t = strtok_r(NULL, " ", &save), n++) {
		char q[128];

		assert_true(sql_function_is_dangerous_default(t));
		snprintf(q, sizeof(q), "pg_catalog.%s", t);
		assert_true(sql_function_is_dangerous_default(q));
	}
	assert_true(n > 50);
	free(list);
}

/* ---- random mutations of the corpus: never a crash ------------------------------ */

static void mutations(void **state)
{
	unsigned seed = (unsigned)time(NULL);
	size_t errors = 0, parsed = 0;
	char buf[1024];

	(void)state;
	print_message("mutation seed %u\n", seed);
	srand(seed);
	for (int i = 0; i < 2000; i++) {
		const char *a = cases[(size_t)rand() % ARRAY_SIZE(cases)].sql;
		const char *b = cases[(size_t)rand() % ARRAY_SIZE(cases)].sql;
		size_t n = strlen(a), edits = 1 + (size_t)rand() % 3;
		struct sql_class out;

		memcpy(buf, a, n + 1);
		for (size_t e = 0; e < edits; e++) {
			size_t at = n ? (size_t)rand() % n : 0, k;

			switch (rand() % 5) {
			case 0: /* any byte but NUL */
				if (n)
					buf[at] = (char)(1 + rand() % 255);
				break;
			case 1: /* delete a run */
				k = (size_t)rand() % 8;
				k = MIN(n - at, k);
				memmove(buf + at, buf + at + k, n - at - k + 1);
				n -= k;
				break;
			case 2: /* splice in part of another statement */
				k = MIN(strlen(b), sizeof(buf) - n - 1);
				k = k ? (size_t)rand() % (k + 1) : 0;
				memmove(buf + at + k, buf + at, n - at + 1);
				memcpy(buf + at, b, k);
				n += k;
				break;
			case 3: /* a token that matters */
			{
				static const char *toks[] = { ";", "(", ")", "'", "\"", "$$", "--", "/*",
							      "*/", "\\", " WITH ", " DELETE ", "E'\\" };
				const char *t = toks[(size_t)rand() % ARRAY_SIZE(toks)];

				k = strlen(t);
				if (n + k < sizeof(buf)) {
					memmove(buf + at + k, buf + at, n - at + 1);
					memcpy(buf + at, t, k);
					n += k;
				}
				break;
			}
			default: /* truncate */
				n = at;
				buf[n] = '\0';
			}
		}
		assert_int_equal(sql_classify(buf, &out), 0);
		assert_int_not_equal(classify_raw_compare(buf), -EPROTO);
		if (out.error) {
			assert_int_equal(out.n, 0);
			errors++;
		}
		for (size_t j = 0; j < out.n; j++) {
			assert_true(out.v[j].classes != 0);
			assert_true((size_t)out.v[j].off + out.v[j].len <= n);
			for (size_t k = 0; k < out.v[j].n_rels; k++)
				assert_non_null(out.v[j].rels[k].name);
		}
		parsed += out.n;
		sql_class_free(&out);
	}
	print_message("2000 mutations: %zu parse errors, %zu statements classified\n", errors, parsed);
}

/* The walk over trees the parser never writes: libpg_query's output for
 * the corpus, with bytes changed. The reader must refuse or the walk must
 * finish; nothing may crash or read outside the tree. */
static void tree_mutations(void **state)
{
	unsigned seed = (unsigned)time(NULL) ^ 0x5eed;
	size_t refused = 0, walked = 0;

	(void)state;
	print_message("tree mutation seed %u\n", seed);
	srand(seed);
	for (int i = 0; i < 2000; i++) {
		PgQueryParseResult res = pg_query_parse(cases[(size_t)rand() % ARRAY_SIZE(cases)].sql);
		size_t n;
		struct sql_class out = { 0 };
		int r;

		if (res.error) {
			pg_query_free_parse_result(res);
			continue;
		}
		n = strlen(res.parse_tree);
		for (int e = 0; e < 1 + rand() % 3; e++) {
			static const char bytes[] = "{}[]\":,\\u0 aZ1-.";
			size_t at = (size_t)rand() % n;

			res.parse_tree[at] = rand() % 2 ? bytes[(size_t)rand() % (sizeof(bytes) - 1)]
							: (char)(1 + rand() % 255);
		}
		r = classify_json(res.parse_tree, "SELECT 1", 8, &out);
		assert_true(r == 0 || r == -EINVAL || r == -E2BIG);
		if (r == 0) {
			walked++;
			for (size_t j = 0; j < out.n; j++) {
				assert_true(out.v[j].classes != 0);
				assert_true((size_t)out.v[j].off + out.v[j].len <= 8);
			}
		} else {
			refused++;
		}
		sql_class_free(&out);
		pg_query_free_parse_result(res);
	}
	print_message("2000 tree mutations: %zu refused, %zu walked\n", refused, walked);
}


/* ---- the fast path (classify_raw.c) agrees with the JSON path ----------------------- */

static void fast_path_table(void **state)
{
	size_t taken = 0;

	(void)state;
	assert_true(sql_classify_fast_enabled());
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int r = classify_raw_compare(cases[i].sql);

		if (r == -EPROTO)
			fail_msg("the fast path and the JSON path differ on: %s", cases[i].sql);
		assert_true(r >= 0);
		taken += (size_t)r;
	}
	print_message("fast path took %zu of %zu table statements\n", taken, ARRAY_SIZE(cases));
	/* Reads, writes, CTEs and transactions are a good part of the table. */
	assert_true(taken >= 60);
	/* What it must leave to the JSON path. */
	assert_int_equal(classify_raw_compare("select set_config('role', 'x', false)"), 0);
	assert_int_equal(classify_raw_compare("select * into t2 from t"), 0);
	assert_int_equal(classify_raw_compare("select 1; drop table t"), 0);
	assert_int_equal(classify_raw_compare("begin read write"), 0);
	assert_int_equal(classify_raw_compare("explain analyze delete from t"), 0);
	assert_int_equal(classify_raw_compare("select * from f() as (a int)"), 0);
	assert_int_equal(classify_raw_compare("select 1 +"), 0); /* parse errors are worded there */
	assert_int_equal(classify_raw_compare("-- nothing"), 0);
}

/* Every statement of PostgreSQL 15's regression SQL (psql's backslash lines
 * left out) through both paths. The corpus is read where it lives, next to
 * the project (SLUICE_REGRESS_DIR overrides); without it the test says so
 * and is skipped. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t cap = 0, n = 0;
	char line[65536];

	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		size_t l = strlen(line);

		if (line[0] == '\\')
			continue;
		if (n + l + 1 > cap) {
			cap = (n + l + 1) * 2;
			buf = realloc(buf, cap);
			assert_non_null(buf);
		}
		memcpy(buf + n, line, l + 1);
		n += l;
	}
	fclose(f);
	return buf;
}

static void fast_path_regress_corpus(void **state)
{
	const char *dir = getenv("SLUICE_REGRESS_DIR");
	size_t files = 0, stmts = 0, taken = 0, differ = 0;
	struct dirent *de;
	DIR *d;

	(void)state;
	if (!dir)
		dir = SLUICE_REGRESS_DEFAULT;
	d = opendir(dir);
	if (!d) {
		print_message("no regression corpus at %s\n", dir);
		skip();
	}
	while ((de = readdir(d))) {
		char path[4096];
		PgQuerySplitResult sp;
		char *sql;
		size_t len = strlen(de->d_name);

		if (len < 5 || strcmp(de->d_name + len - 4, ".sql") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		sql = slurp(path);
		if (!sql)
			continue;
		files++;
		sp = pg_query_split_with_parser(sql);
		for (int i = 0; !sp.error && i < sp.n_stmts; i++) {
			const PgQuerySplitStmt *ps = sp.stmts[i];
			char *one = strndup(sql + ps->stmt_location, (size_t)ps->stmt_len);
			int r;

			assert_non_null(one);
			r = classify_raw_compare(one);
			stmts++;
			if (r == -EPROTO) {
				print_message("differ: %s\n", one);
				differ++;
			} else {
				assert_true(r >= 0);
				taken += (size_t)r;
			}
			free(one);
		}
		pg_query_free_split_result(sp);
		free(sql);
	}
	closedir(d);
	print_message("regression corpus: %zu files, %zu statements, fast path took %zu\n", files,
		      stmts, taken);
	assert_int_equal(differ, 0);
	assert_true(files >= 100 && taken >= 5000);
}

/* ---- cost (information only) ------------------------------------------------------ */

/* The best of ten batches: the machine is shared, the minimum is the cost. */
static double per_call_us(const char *sql, bool parse_only, int n)
{
	double best = 0;

	for (int b = 0; b < 10; b++) {
		struct timespec t0, t1;
		struct sql_class out;
		double us;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (int i = 0; i < n / 10; i++) {
			if (parse_only) {
				PgQueryParseResult res = pg_query_parse(sql);

				pg_query_free_parse_result(res);
			} else {
				assert_int_equal(sql_classify(sql, &out), 0);
				sql_class_free(&out);
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e3) /
		     (n / 10);
		if (b == 0 || us < best)
			best = us;
	}
	return best;
}

static void timing(void **state)
{
	static const char pgbench[] = "SELECT abalance FROM pgbench_accounts WHERE aid = 123456;";
	static const char report[] =
		"WITH recent AS (\n"
		"    SELECT o.customer_id, o.id AS order_id, o.total, o.created_at\n"
		"      FROM sales.orders o\n"
		"     WHERE o.created_at >= now() - interval '30 days'\n"
		"       AND o.status IN ('paid', 'shipped')\n"
		"), ranked AS (\n"
		"    SELECT r.*, row_number() OVER (PARTITION BY r.customer_id\n"
		"                                    ORDER BY r.created_at DESC) AS rn\n"
		"      FROM recent r\n"
		")\n"
		"SELECT c.id, c.name, lower(c.email) AS email,\n"
		"       count(*) AS orders, sum(rk.total) AS spent,\n"
		"       max(rk.created_at) AS last_order,\n"
		"       coalesce(a.city, 'unknown') AS city\n"
		"  FROM sales.customers c\n"
		"  JOIN ranked rk ON rk.customer_id = c.id AND rk.rn <= 10\n"
		"  LEFT JOIN sales.addresses a ON a.customer_id = c.id AND a.is_primary\n"
		" WHERE c.deleted_at IS NULL\n"
		" GROUP BY c.id, c.name, c.email, a.city\n"
		"HAVING sum(rk.total) > 100\n"
		" ORDER BY spent DESC\n"
		" LIMIT 50;";
	int n = 20000;

	(void)state;
	(void)per_call_us(pgbench, false, 100); /* warm up */
	print_message("pgbench SELECT: pg_query_parse %.2f us, sql_classify %.2f us\n",
		      per_call_us(pgbench, true, n), per_call_us(pgbench, false, n));
	print_message("22-line report query: pg_query_parse %.2f us, sql_classify %.2f us\n",
		      per_call_us(report, true, n / 4), per_call_us(report, false, n / 4));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table),
		cmocka_unit_test(multi_statement),
		cmocka_unit_test(parse_errors),
		cmocka_unit_test(deep_nesting),
		cmocka_unit_test(unknown_nodes),
		cmocka_unit_test(json_reader),
		cmocka_unit_test(worst_and_functions),
		cmocka_unit_test(mutations),
		cmocka_unit_test(tree_mutations),
		cmocka_unit_test(fast_path_table),
		cmocka_unit_test(fast_path_regress_corpus),
		cmocka_unit_test(timing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
