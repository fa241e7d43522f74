"""Masking: a column that [mask] marks sensitive never reaches the client -
or the audit database, or the agent's log - in the clear, whatever query
shape asks for it; a shape whose value cannot be masked is refused (42501);
plain queries of other columns are untouched.

Each query of the corpus runs through psql (simple protocol, text),
psycopg 3 (extended protocol, text) and psycopg 3 with binary results; the
whole of what the client received (rows, errors, notices) is searched for
the raw sensitive values."""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import psycopg
import pytest

import sluice_fixtures as sf
from sluice_fixtures import AGENT_USER, SAMPLE_DB, SERVICE_A
from test_grants import as_uid, connect

# The raw values that must never appear (ops.customers in SAMPLE_SQL, and
# ops.mask_cards made below).
SSNS = ["123-45-6789", "987-65-4321", "555-12-3456"]
EMAILS = ["ada@example.com", "grace@example.com", "edsger@example.com"]
CARDS = ["4111111111111111", "5500000000000004"]
SECRETS = SSNS + EMAILS + CARDS

MASK = """
[mask orders-pg]
ops.customers.ssn = last4
ops.customers.email = email
ops.mask_cards.card = redact
detect = credit-card ssn email
"""

SETUP = """
DROP TABLE IF EXISTS ops.mask_cards CASCADE;
CREATE TABLE ops.mask_cards (id int PRIMARY KEY, holder text, card text, note text);
INSERT INTO ops.mask_cards VALUES
  (1, 'Ada', '4111111111111111', 'paid with 4111 1111 1111 1111'),
  (2, 'Grace', '5500000000000004', 'no card here');
CREATE OR REPLACE VIEW ops.mask_customer_view AS SELECT id, name, ssn FROM ops.customers;
CREATE OR REPLACE FUNCTION ops.mask_leak(i int) RETURNS text LANGUAGE sql AS
  'SELECT ssn FROM ops.customers WHERE id = i';
ALTER TABLE ops.mask_cards OWNER TO sluice_broker;
ALTER VIEW ops.mask_customer_view OWNER TO sluice_broker;
ALTER FUNCTION ops.mask_leak(int) OWNER TO sluice_broker;
"""


@pytest.fixture
def masked(agent_factory):
    a = agent_factory(raw=MASK, start=False)
    a.pg.psql_super(SETUP, SAMPLE_DB).check("mask set-up")
    a.start()
    return a


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def via_psql(grant, sql):
    r = sf.psql_as(SERVICE_A, grant["socket_dir"], SAMPLE_DB, sql)
    return r.rc, r.stdout + r.stderr


def via_psycopg(grant, sql, binary=False):
    """(ok, everything the client saw as text)."""
    seen = []
    with connect(SERVICE_A, grant) as conn:
        conn.add_notice_handler(lambda d: seen.append(str(d.message_primary) + str(d.message_detail)))
        try:
            with conn.cursor(binary=binary) as cur:
                cur.execute(sql)
                if cur.description:
                    seen.append(repr(cur.fetchall()))
            return True, "\n".join(seen)
        except psycopg.Error as e:
            d = e.diag
            seen.append(f"{d.sqlstate} {d.message_primary} {d.message_detail} {d.message_hint} {d.context}")
            return False, "\n".join(seen)


# (sql, expected): "ok" = runs and shows no secret; "refused" = 42501 from sluice.
CORPUS = [
    ("select * from ops.customers order by id", "ok"),
    ("select ssn from ops.customers", "ok"),
    ("select c.ssn, c.email from ops.customers c", "ok"),
    ("select \"ssn\" from ops.\"customers\"", "ok"),
    ("select upper(ssn) from ops.customers", "ok"),
    ("select ssn || '' as x from ops.customers", "ok"),
    ("select substr(ssn, 1, 11) from ops.customers", "ok"),
    ("select lower(email) from ops.customers", "ok"),
    ("select (select ssn from ops.customers order by id limit 1)", "ok"),
    ("select s from (select ssn as s from ops.customers) q", "ok"),
    ("select upper(s) from (select ssn as s from ops.customers) q", "ok"),
    ("with x as (select ssn, email from ops.customers) select * from x", "ok"),
    ("select ssn from ops.customers union all select 'x'", "ok"),
    ("select 'x' union all select ssn from ops.customers", "ok"),
    ("select case when id > 0 then ssn end from ops.customers", "ok"),
    ("select coalesce(ssn, 'none') from ops.customers", "ok"),
    ("select string_agg(ssn, ',') from ops.customers", "ok"),
    ("select row_to_json(c) from ops.customers c", "ok"),
    ("select to_jsonb(c.*) from ops.customers c", "ok"),
    ("select c from ops.customers c", "ok"),
    ("select json_agg(c) from ops.customers c", "ok"),
    ("select (c.*)::text from ops.customers c", "ok"),
    ("select * from ops.mask_customer_view", "ok"),
    ("select v from ops.mask_customer_view v", "refused"),  # a whole row carrying ssn: last4 cannot stand for it
    ("select upper(ssn) from ops.mask_customer_view", "ok"),
    ("select ops.mask_leak(1)", "ok"),
    ("select card, holder from ops.mask_cards", "ok"),
    ("select note || '' from ops.mask_cards", "ok"),
    ("select '4111 1111 1111 1111'::text as pasted", "ok"),
    ("select length(ssn) from ops.customers", "refused"),
    ("select array_agg(ssn) from ops.customers", "refused"),
    ("copy ops.customers to stdout", "refused"),
    ("copy (select ssn from ops.customers) to stdout", "refused"),
    ("do $$ begin raise notice '%', (select ssn from ops.customers limit 1); end $$", "refused"),
    ("select ssn::int from ops.customers", "error"),
]


@pytest.mark.parametrize("sql,expected", CORPUS, ids=[f"q{i}" for i in range(len(CORPUS))])
def test_no_secret_reaches_the_client(masked, sql, expected):
    g = masked.request_grant(SERVICE_A)
    rc, out = via_psql(g, sql)
    assert not leaks(out), (sql, out)
    if expected == "ok":
        assert rc == 0, (sql, out)
    elif expected == "refused":
        assert rc != 0 and "sluice:" in out, (sql, out)
    else:
        assert rc != 0, (sql, out)
    if sql.startswith(("copy", "do")):
        return
    for binary in (False, True):
        ok, out = via_psycopg(g, sql, binary)
        assert not leaks(out), (sql, binary, out)
        if expected == "ok":
            assert ok, (sql, binary, out)
        elif expected == "refused":
            assert not ok and "sluice:" in out, (sql, binary, out)


def test_methods_show_what_they_should(masked):
    g = masked.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        rows = conn.execute("select id, name, email, ssn from ops.customers order by id").fetchall()
        assert rows[0] == (1, "Ada Lovelace", "a***@example.com", "****6789")
        assert rows[1][2:] == ("g***@example.com", "****4321")
        with conn.cursor(binary=True) as cur:
            cur.execute("select ssn, card from ops.customers, ops.mask_cards where ops.mask_cards.id = 1 order by 1")
            assert cur.fetchall()[0] == ("****6789", "[masked]")
        # Prepared, parameters, and a cursor.
        assert conn.execute("select ssn from ops.customers where id = %s", (2,)).fetchone() == ("****4321",)
        conn.autocommit = False
        conn.execute("declare cur cursor for select ssn from ops.customers order by id")
        assert conn.execute("fetch 2 from cur").fetchall() == [("****6789",), ("****4321",)]
        conn.rollback()
        conn.autocommit = True
        # RETURNING is a way out too.
        r = conn.execute("update ops.customers set name = name where id = 3 returning ssn, name").fetchone()
        assert r == ("****3456", "Edsger Dijkstra")
        # Columns nobody masked are untouched.
        assert conn.execute("select name from ops.customers where id = 1").fetchone() == ("Ada Lovelace",)
        assert conn.execute("select count(*) from ops.orders").fetchone() == (5,)


def test_errors_are_scrubbed(masked):
    g = masked.request_grant(SERVICE_A)
    # The failed cast quotes the value it could not read.
    rc, out = via_psql(g, "select id from ops.customers where ssn::int > 0")
    assert rc != 0 and 'invalid input syntax for type integer: "***"' in out, out
    assert not leaks(out)
    # A result that cannot be masked is refused, and the server's own error
    # about it (it would quote the value) is withheld.
    rc, out = via_psql(g, "select ssn::int from ops.customers")
    assert rc != 0 and "sluice: refused: masking: result column 1 (ssn) carries ops.customers.ssn" in out, out
    assert not leaks(out)


def test_strict_refuses_inference(agent_factory):
    a = agent_factory(raw=MASK + "strict = yes\n", start=False)
    a.pg.psql_super(SETUP, SAMPLE_DB).check("mask set-up")
    a.start()
    g = a.request_grant(SERVICE_A)
    for sql in ["select id from ops.customers where ssn like '1%'",
                "select id from ops.customers order by ssn",
                "select count(*) from ops.customers group by email"]:
        rc, out = via_psql(g, sql)
        assert rc != 0 and "strict" in out, (sql, out)
    rc, out = via_psql(g, "select id from ops.customers where id = 1")
    assert rc == 0, out


def test_nothing_raw_in_audit_or_log(masked):
    g = masked.request_grant(SERVICE_A)
    for sql, _ in CORPUS:
        via_psql(g, sql)
    sf.wait_for(lambda: len(masked.ctl("--json", "audit", "--database", str(masked.database)).stdout) > 100,
                10, "audit rows")
    # Everything recorded: the database file (and its WAL) byte for byte, and the log.
    blob = b""
    for p in Path(masked.database).parent.iterdir():
        if p.name.startswith(Path(masked.database).name):
            blob += p.read_bytes()
    text = blob.decode("latin-1")
    assert not leaks(text), leaks(text)
    assert not leaks(masked.log())


def test_ddl_on_the_connection_reads_the_catalog_again(masked):
    # A masked table dropped and made again has a new OID: the connection
    # that did it reads the catalog again before its next request.
    g = masked.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        assert conn.execute("select card from ops.mask_cards where id = 1").fetchone() == ("[masked]",)
        conn.execute("drop table ops.mask_cards")
        conn.execute("create table ops.mask_cards (id int, card text)")
        conn.execute("insert into ops.mask_cards values (1, '4111111111111111')")
        assert conn.execute("select card from ops.mask_cards").fetchone() == ("[masked]",)
        # Inside a transaction, and after an error in one.
        conn.autocommit = False
        conn.execute("drop table ops.mask_cards")
        conn.execute("create table ops.mask_cards (id int, card text)")
        conn.execute("insert into ops.mask_cards values (2, '5500000000000004')")
        assert conn.execute("select card from ops.mask_cards").fetchone() == ("[masked]",)
        conn.rollback()
        with pytest.raises(psycopg.Error):
            conn.execute("create table ops.mask_cards (x int)")  # exists: the transaction aborts
        conn.rollback()
        conn.autocommit = True
        assert conn.execute("select card from ops.mask_cards").fetchone() == ("[masked]",)
    # The simple protocol, in one string: the DDL, then the query.
    rc, out = via_psql(g, "drop table ops.mask_cards; create table ops.mask_cards (id int, card text); "
                          "insert into ops.mask_cards values (3, '4111111111111111')")
    assert rc == 0, out
    rc, out = via_psql(g, "select card from ops.mask_cards")
    assert rc == 0 and "[masked]" in out and not leaks(out), out
    # Renaming a masked table away is refused, not followed.
    rc, out = via_psql(g, "alter table ops.mask_cards rename to mask_cards_old")
    assert rc != 0 and "sluice: blocked: masking" in out, out


def test_a_row_too_big_to_mask_refuses_the_statement(agent_factory):
    # Rows with a masked value are taken whole, up to max_message_size; a
    # bigger one that needs masking refuses the statement rather than pass.
    a = agent_factory(raw=MASK.replace("detect = credit-card ssn email\n", ""),
                      agent={"max_message_size": "64K"}, start=False)
    a.pg.psql_super(SETUP, SAMPLE_DB).check("mask set-up")
    a.start()
    g = a.request_grant(SERVICE_A)
    rc, out = via_psql(g, "select repeat('x', 70000) || ssn as big from ops.customers")
    assert rc != 0 and "larger than max_message_size" in out, out[:300]
    assert not leaks(out)
    # A big row with nothing to mask (or scan: no detectors here) streams as before.
    rc, out = via_psql(g, "select repeat('x', 70000) || name as big from ops.customers")
    assert rc == 0 and out.count("x" * 1000) >= 3, out[:300]
    # The connection goes on.
    rc, out = via_psql(g, "select ssn from ops.customers where id = 1")
    assert rc == 0 and "****6789" in out, out
