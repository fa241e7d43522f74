"""Masking: a column that [mask] marks sensitive never reaches the client -
or the audit database, or the agent's log - in the clear, whatever query
shape asks for it; a shape whose value cannot be masked is refused (42501);
plain queries of other columns are untouched.

Each query of the corpus runs through psql (simple protocol, text),
psycopg 3 (extended protocol, text) and psycopg 3 with binary results; the
whole of what the client received (rows, errors, notices; psql's in its
verbose form) is searched for the raw sensitive values."""
from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

import sluice_fixtures as sf
from sluice_fixtures import SAMPLE_DB, SERVICE_A
from test_grants import connect, ctl_json, statements

# The raw values that must never appear: ops.customers in sf.SAMPLE_SQL
# (sluice_fixtures names no list of them, so they are written out here and
# checked against it), and ops.mask_cards made below.
SSNS = ["123-45-6789", "987-65-4321", "555-12-3456"]
EMAILS = ["ada@example.com", "grace@example.com", "edsger@example.com"]
assert len(SSNS) == len(EMAILS) == sf.SAMPLE_CUSTOMERS
assert all(f"'{v}'" in sf.SAMPLE_SQL for v in SSNS + EMAILS), "SSNS/EMAILS differ from sf.SAMPLE_SQL"
CARDS = ["4111111111111111", "5500000000000004"]
SECRETS = SSNS + EMAILS + CARDS
# The card as a person types it, in ops.mask_cards.note and in the text of
# one query of the corpus: the detector must catch it in results. The audit
# keeps statement texts as sent, so the audit database is not searched for
# it byte by byte; what the client received and the recorded results are.
SPACED_CARD = "4111 1111 1111 1111"

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


def start_masked(agent_factory, raw=MASK, **kw):
    """An agent with the [mask] in raw (and agent_factory's kw), started
    once SETUP has made ops.mask_cards, the view and the function."""
    a = agent_factory(raw=raw, start=False, **kw)
    a.pg.psql_super(SETUP, SAMPLE_DB).check("mask set-up")
    a.start()
    return a


@pytest.fixture
def masked(agent_factory):
    return start_masked(agent_factory)


def leaks(text: str, spaced: bool = True) -> list[str]:
    """The raw values in text; with spaced, SPACED_CARD too."""
    return [s for s in SECRETS + ([SPACED_CARD] if spaced else []) if s in text]


def via_psql(grant, sql):
    """(rc, stdout and stderr), errors in psql's verbose form
    ("ERROR:  SQLSTATE: message", then detail, hint, context)."""
    r = sf.psql_as(SERVICE_A, grant["socket_dir"], SAMPLE_DB, sql, extra_args=("-v", "VERBOSITY=verbose"))
    return r.rc, r.stdout + r.stderr


def via_psycopg(grant, sql, binary=False):
    """(None, or the error's SQLSTATE; everything the client saw as text:
    notices, rows, the error's fields)."""
    seen = []
    with connect(SERVICE_A, grant) as conn:
        conn.add_notice_handler(lambda d: seen.append(str(d.message_primary) + str(d.message_detail)))
        try:
            with conn.cursor(binary=binary) as cur:
                cur.execute(sql)
                if cur.description:
                    seen.append(repr(cur.fetchall()))
            return None, "\n".join(seen)
        except psycopg.Error as e:
            d = e.diag
            seen.append(f"{d.sqlstate}: {d.message_primary} {d.message_detail} {d.message_hint} {d.context}")
            return d.sqlstate or "(none)", "\n".join(seen)


# (sql, expected): "ok" = runs and shows no secret; "refused" = SQLSTATE 42501
# with a message from sluice ("sluice: ..."), under psql and psycopg alike.
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
    ("select ssn::int from ops.customers", "refused"),  # the cast's error would quote the value
]


@pytest.mark.parametrize("sql,expected", CORPUS, ids=[f"q{i}" for i in range(len(CORPUS))])
def test_no_secret_reaches_the_client(masked, sql, expected):
    assert expected in ("ok", "refused")
    g = masked.request_grant(SERVICE_A)
    rc, out = via_psql(g, sql)
    assert not leaks(out), (sql, out)
    if expected == "ok":
        assert rc == 0, (sql, out)
    else:
        assert rc != 0 and "ERROR:  42501: sluice:" in out, (sql, out)
    if sql.startswith(("copy", "do")):
        return
    for binary in (False, True):
        sqlstate, out = via_psycopg(g, sql, binary)
        assert not leaks(out), (sql, binary, out)
        if expected == "ok":
            assert sqlstate is None, (sql, binary, out)
        else:
            assert sqlstate == "42501" and "42501: sluice:" in out, (sql, binary, out)


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
        assert conn.execute("select count(*) from ops.orders").fetchone() == (sf.SAMPLE_ORDERS,)


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
    a = start_masked(agent_factory, MASK + "strict = yes\n")
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
    # Every statement of the corpus has its audit row (written in batches)
    # before anything is searched.
    want = {sql for sql, _ in CORPUS}
    sf.wait_for(lambda: want <= {s["sql"] for s in statements(masked, "--grant", g["id"])},
                10, "an audit row for every statement of the corpus")
    # The results were recorded, masked, as replay shows them...
    recorded = ctl_json(masked, "replay", g["id"], "--database", str(masked.database))
    results = {s["sql"]: s["result"] for s in recorded}
    ssn = results["select ssn from ops.customers"]
    assert ssn and ssn["rows"] == [["****6789"], ["****4321"], ["****3456"]], ssn
    assert not leaks(repr(list(results.values()))), results
    # ...and byte for byte in the database file (and its WAL), where the
    # masked values are and the raw ones are not; then the log.
    blob = b""
    for p in Path(masked.database).parent.iterdir():
        if p.name.startswith(Path(masked.database).name):
            blob += p.read_bytes()
    text = blob.decode("latin-1")
    assert "****6789" in text and "a***@example.com" in text, "no recorded result in the audit database"
    assert not leaks(text, spaced=False), leaks(text, spaced=False)
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
    a = start_masked(agent_factory, MASK.replace("detect = credit-card ssn email\n", ""),
                     agent={"max_message_size": "64K"})
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
