"""Schema scope and read-only grants against real tables.

A scoped grant (`schemas =` in [access], or `--schema` on the request)
starts upstream with search_path set to its schema, so unqualified names
resolve there; statements naming relations elsewhere are refused, except
reads of pg_catalog and information_schema (clients introspect), and
search_path cannot be changed. A grant under `mode = read` starts with
default_transaction_read_only on, and every write, and every way out of
read-only, is refused by sluice before the server sees it.

Two schemas hold a table of the same name: ops.sc_t says 'ops',
other.sc_t says 'other'.
"""
from __future__ import annotations

import json

import pytest

import sluice_fixtures as sf
from sluice_fixtures import CONNECTION_NAME, SAMPLE_DB, SERVICE_A


@pytest.fixture
def schemas(pg):
    """ops.sc_t and other.sc_t, owned by the broker, one row each naming
    its schema."""
    b = pg.broker_user
    pg.sql(f"CREATE SCHEMA IF NOT EXISTS other AUTHORIZATION {b}")
    for s in ("ops", "other"):
        pg.sql(f"DROP TABLE IF EXISTS {s}.sc_t; CREATE TABLE {s}.sc_t (id integer, v text); "
               f"ALTER TABLE {s}.sc_t OWNER TO {b}; INSERT INTO {s}.sc_t VALUES (1, '{s}')")
    yield pg
    pg.sql("DROP TABLE IF EXISTS ops.sc_t; DROP SCHEMA IF EXISTS other CASCADE")


def psql(g: dict, sql: str) -> sf.Result:
    return sf.psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, sql, extra_args=["-v", "VERBOSITY=verbose"])


def ok(g: dict, sql: str) -> str:
    r = psql(g, sql)
    assert r.rc == 0 and r.stderr == "", (sql, r)
    return r.stdout


def refused(g: dict, sql: str) -> str:
    """The message of sluice's refusal of sql (42501)."""
    r = psql(g, sql)
    assert r.rc != 0, (sql, r)
    first = r.stderr.splitlines()[0]
    assert first.startswith("ERROR:  42501: sluice: blocked: "), (sql, r)
    return first.removeprefix("ERROR:  42501: ")


def line_of(path, text: str) -> int:
    return path.read_text().splitlines().index(text) + 1


def audit(agent, grant_id: str, count: int) -> list[dict]:
    rows: list = []

    def enough() -> bool:
        rows[:] = json.loads(agent.ctl("--json", "audit", "--grant", grant_id).stdout)
        return len(rows) >= count
    sf.wait_for(enough, 10, f"{count} audit rows")
    return rows


def check_scoped(g: dict, pg, rule: str) -> None:
    """What a grant scoped to ops may and may not do."""
    # unqualified names resolve in the scope: ops, not other, not public
    assert ok(g, "show search_path") == '"ops"\n'
    assert ok(g, "select v from sc_t") == "ops\n"
    assert ok(g, "select v from ops.sc_t") == "ops\n"
    assert ok(g, "insert into sc_t values (2, 'ops too')") == ""
    # other schemas: refused, however named
    for sql in ("select v from other.sc_t", 'SELECT v FROM "other"."sc_t"',
                "select a.v from sc_t a join other.sc_t b using (id)",
                "with x as (select * from other.sc_t) select 1",
                "select 1; select v from other.sc_t"):
        assert refused(g, sql) == f"sluice: blocked: schema-scope: other.sc_t is outside ops ({rule})", sql
    assert refused(g, "insert into other.sc_t values (9, 'x')").startswith(
        "sluice: blocked: schema-scope: other.sc_t is outside ops"), g
    assert pg.sql("SELECT count(*) FROM other.sc_t") == [("1",)]
    # the catalogs are readable, not writable
    assert ok(g, "select count(*) > 0 from pg_catalog.pg_class")
    assert ok(g, "select count(*) > 0 from information_schema.tables where table_schema = 'ops'") == "t\n"
    assert ok(g, "select count(*) > 0 from pg_tables")  # unqualified: pg_catalog comes first
    assert refused(g, "update pg_catalog.pg_class set relname = relname where false") == \
        f"sluice: blocked: schema-scope: pg_catalog.pg_class is written, and only reads are allowed outside ops ({rule})"
    # search_path stays where it was pinned
    for sql in ("set search_path = other", "SET search_path TO other, ops", "reset search_path",
                "set local search_path = other", "select set_config('search_path', 'other', false)"):
        assert refused(g, sql) == f"sluice: blocked: schema-scope: search_path is pinned to ops ({rule})", sql


def test_scope_from_the_access_rule(agent_factory, schemas):
    a = agent_factory(access={"schemas": "ops"})
    g = a.request_grant(SERVICE_A)
    rule = f"rule at {a.config_path}:{line_of(a.config_path, 'schemas = ops')}"
    check_scoped(g, schemas, rule)
    rows = audit(a, g["id"], 20)
    # alone, and as the second statement of a string
    blocked = [s for s in rows if s["sql"] == "select v from other.sc_t"]
    assert [(s["decision"], s["rule"], s["sqlstate"]) for s in blocked] == [("blocked", rule, "42501")] * 2, blocked


def test_scope_from_the_request(agent_factory, schemas):
    """--schema narrows an access that lists several schemas to one."""
    a = agent_factory(access={"schemas": "ops other"})
    g = a.request_grant(SERVICE_A, schema="ops")
    check_scoped(g, schemas, "rule: the grant's --schema ops")
    # the other grant of the same access, unscoped by the request, has both
    g2 = a.request_grant(SERVICE_A)
    assert ok(g2, "show search_path") == '"ops", "other"\n'
    assert ok(g2, "select v from other.sc_t") == "other\n"
    assert refused(g2, "select count(*) from public.pg_nonexistent").startswith(
        "sluice: blocked: schema-scope: public.pg_nonexistent is outside ops, other")


def test_a_schema_the_access_does_not_list_is_refused(agent_factory, schemas):
    a = agent_factory(access={"schemas": "ops"})
    r = a.ctl("grant", "request", CONNECTION_NAME, "--schema", "other", user=SERVICE_A)
    assert r.rc == 1, r
    assert "other" in r.stderr and "ops" in r.stderr, r
    assert a.grants_dir.is_dir() and list(a.grants_dir.iterdir()) == []


def test_an_unscoped_grant_reaches_every_schema(agent_factory, schemas):
    a = agent_factory()
    g = a.request_grant(SERVICE_A)
    assert ok(g, "select v from other.sc_t") == "other\n"
    assert ok(g, "set search_path = other; select v from sc_t") == "other\n"


# --- mode = read -------------------------------------------------------------------------------

def test_read_mode(agent_factory, schemas):
    a = agent_factory(access={"mode": "read"})
    g = a.request_grant(SERVICE_A)
    rule = f"rule at {a.config_path}:{line_of(a.config_path, 'mode = read')}"
    assert ok(g, "select v from ops.sc_t") == "ops\n"
    assert ok(g, "show default_transaction_read_only") == "on\n"
    assert ok(g, "begin; select count(*) from ops.sc_t; commit") == "1\n"
    assert ok(g, "begin read only; select 1; commit") == "1\n"
    assert refused(g, "insert into ops.sc_t values (5, 'w')") == f"sluice: blocked: write ({rule})"
    assert refused(g, "delete from ops.sc_t where id = 1") == f"sluice: blocked: write ({rule})"
    assert refused(g, "with d as (delete from ops.sc_t where id = 1 returning *) select 1") == \
        f"sluice: blocked: write ({rule})"
    assert refused(g, "create table ops.sc_new (a int)") == f"sluice: blocked: ddl ({rule})"
    for sql in ("begin read write", "BEGIN TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ WRITE",
                "start transaction read write", "set default_transaction_read_only = off",
                "reset default_transaction_read_only", "set transaction read write",
                "set session characteristics as transaction read write",
                "select set_config('default_transaction_read_only', 'off', false)"):
        assert refused(g, sql) == f"sluice: blocked: leaving read-only ({rule})", sql
    assert schemas.sql("SELECT count(*) FROM ops.sc_t") == [("1",)]
    # the server's side of it: every transaction starts read-only
    assert ok(g, "begin; show transaction_read_only; commit") == "on\n"


# --- the pins ------------------------------------------------------------------------------------

def test_the_pinned_settings_beat_the_role_and_the_client(agent_factory, schemas):
    """Upstream starts with the pins as startup parameters, which win over
    the broker role's own settings; the client cannot send its own (PGOPTIONS
    is refused at startup)."""
    b, db = schemas.broker_user, SAMPLE_DB
    schemas.sql(f"ALTER ROLE {b} IN DATABASE {db} SET standard_conforming_strings = off; "
                f"ALTER ROLE {b} IN DATABASE {db} SET search_path = other; "
                f"ALTER ROLE {b} IN DATABASE {db} SET default_transaction_read_only = off")
    try:
        a = agent_factory(access={"schemas": "ops", "mode": "read"})
        g = a.request_grant(SERVICE_A)
        assert ok(g, "show standard_conforming_strings") == "on\n"
        assert ok(g, "show search_path") == '"ops"\n'
        assert ok(g, "show default_transaction_read_only") == "on\n"
        assert ok(g, "select v from sc_t") == "ops\n"
        assert ok(g, r"select 'a\b' = E'a\\b'") == "t\n"
        r = sf.psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1",
                       env={"PGOPTIONS": "-c standard_conforming_strings=off"})
        assert r.rc != 0 and 'startup parameter "options" is not allowed' in r.stderr, r
    finally:
        schemas.sql(f"ALTER ROLE {b} IN DATABASE {db} RESET ALL")
