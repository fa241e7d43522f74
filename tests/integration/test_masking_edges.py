"""Masking's edges: protocol sequences and server texts where a masked value
could slip past the masking of results (test_masking.py covers the query
shapes). No detectors are configured here, so what a detector would have
caught by luck does not hide a leak; the secret values are chosen so no
detector would catch them anyway.

  - A Describe of one portal, then an Execute of another (extended
    protocol, raw messages): the rows must be masked by their own portal's
    description or plan, never by the other's.
  - FETCH from a cursor whose columns have no table origin, in a Query
    whose text begins with an empty statement or a comment.
  - Server errors whose DETAIL, CONTEXT or message quotes row values: a
    NOT NULL or CHECK violation's "Failing row contains (...)", a unique
    violation's key, a failed cast's quoted value with '"' in it.
"""
from __future__ import annotations

import struct

import psycopg
import pytest

import regress_wire as w
import sluice_fixtures as sf
from sluice_fixtures import SAMPLE_DB, SERVICE_A
from test_grants import connect

SSNS = ["123-45-6789", "987-65-4321", "555-12-3456"]
assert all(f"'{v}'" in sf.SAMPLE_SQL for v in SSNS)
# Values no detector recognises, with the characters that end a quoted
# value in a server message ('"' and ')').
SECRET = "TOPSECRET"
EDGE_ROWS = [(1, "one", "TOPSECRET-one"), (2, "two", 'a"TOPSECRET-two"b'),
             (3, "three", "x)TOPSECRET-three)y")]

MASK = """
[mask orders-pg]
ops.customers.ssn = last4
ops.mask_edge.secret = redact
"""

SETUP = """
DROP TABLE IF EXISTS ops.mask_edge CASCADE;
CREATE TABLE ops.mask_edge (id int PRIMARY KEY, name text NOT NULL CHECK (length(name) < 20),
                            secret text UNIQUE);
INSERT INTO ops.mask_edge VALUES (1, 'one', 'TOPSECRET-one'), (2, 'two', 'a"TOPSECRET-two"b'),
                                 (3, 'three', 'x)TOPSECRET-three)y');
ALTER TABLE ops.mask_edge OWNER TO sluice_broker;
"""


def leaks(data) -> list[str]:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return [s for s in SSNS + [SECRET] if s in text]


@pytest.fixture
def masked(agent_factory):
    a = agent_factory(raw=MASK, start=False)
    a.pg.psql_super(SETUP, SAMPLE_DB).check("mask set-up")
    a.start()
    return a


# --- raw extended protocol ---------------------------------------------------------

def parse(name: str, sql: str) -> bytes:
    return w.msg(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))


def bind(portal: str, stmt: str, binary: bool = False) -> bytes:
    formats = struct.pack("!HH", 1, 1) if binary else struct.pack("!H", 0)
    return w.msg(b"B", portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!HH", 0, 0) + formats)


def describe_portal(portal: str) -> bytes:
    return w.msg(b"D", b"P" + portal.encode() + b"\0")


def execute(portal: str, max_rows: int = 0) -> bytes:
    return w.msg(b"E", portal.encode() + b"\0" + struct.pack("!I", max_rows))


def sync() -> bytes:
    return w.msg(b"S")


def values(body: bytes) -> list:
    """The values of a DataRow (bytes, or None for NULL)."""
    (n,), off, out = struct.unpack("!H", body[:2]), 2, []
    for _ in range(n):
        (ln,) = struct.unpack("!i", body[off:off + 4])
        off += 4
        out.append(None if ln < 0 else body[off:off + ln])
        off += max(ln, 0)
    return out


class Raw:
    def __init__(self, grant, account):
        self.s = w.Wire.connect(grant["socket_dir"], account)
        self.s.handshake()

    def run(self, data: bytes) -> list[tuple[str, bytes]]:
        """Send data (ending with a Sync or a Query); the answers to ReadyForQuery."""
        self.s.send(data)
        return self.s.read_until("Z")

    def close(self):
        self.s.send(w.terminate())
        self.s.close()


def rows_of(msgs) -> list[list]:
    return [values(b) for t, b in msgs if t == "D"]


def errors_of(msgs) -> list[dict]:
    return [w.error_fields(b) for t, b in msgs if t == "E"]


@pytest.fixture
def raw(masked, accounts):
    g = masked.request_grant(SERVICE_A)
    r = Raw(g, accounts[SERVICE_A])
    yield r
    r.close()


CLEAN = "select name from ops.customers order by id"
SSN = "select ssn from ops.customers order by id"


def test_execute_of_another_portal_than_the_described_one(raw):
    # P1's description (a column nothing masks) must not stand for P2's
    # rows (the masked column).
    msgs = raw.run(parse("s1", CLEAN) + parse("s2", SSN) + bind("p1", "s1") + bind("p2", "s2") +
                   describe_portal("p1") + execute("p2") + sync())
    assert not leaks(b"".join(b for _, b in msgs)), msgs
    rows, errs = rows_of(msgs), errors_of(msgs)
    # Either masked by P2's own plan, or refused; never raw.
    assert rows == [[b"****6789"], [b"****4321"], [b"****3456"]] or \
        (errs and errs[0]["C"] == "42501" and "sluice" in errs[0]["M"]), msgs
    # The reverse: P2's mask (last4) must not be laid over P1's names.
    msgs = raw.run(parse("s3", CLEAN) + parse("s4", SSN) + bind("p3", "s3") + bind("p4", "s4") +
                   describe_portal("p4") + execute("p3") + sync())
    assert rows_of(msgs) == [[b"Ada Lovelace"], [b"Grace Hopper"], [b"Edsger Dijkstra"]], msgs
    # The same statement bound twice: the description of one portal is
    # the other's too (masked alike).
    msgs = raw.run(parse("s5", SSN) + bind("p5", "s5") + bind("p6", "s5") +
                   describe_portal("p5") + execute("p6") + sync())
    assert rows_of(msgs) == [[b"****6789"], [b"****4321"], [b"****3456"]], msgs


def test_a_described_portal_executed_in_parts(raw):
    # An Execute with a row limit, then another of the same portal: both
    # parts are masked by the one description.
    msgs = raw.run(parse("", SSN) + bind("", "") + describe_portal("") + execute("", 1) +
                   execute("", 0) + sync())
    assert not leaks(b"".join(b for _, b in msgs)), msgs
    assert [t for t, _ in msgs if t in "sCE"] == ["s", "C"], msgs
    assert rows_of(msgs) == [[b"****6789"], [b"****4321"], [b"****3456"]], msgs


def test_a_description_in_an_earlier_batch(raw):
    # Inside a transaction portals outlive a Sync: a portal described in
    # one batch must not lend its description to another portal's Execute
    # in the next.
    msgs = raw.run(w.query("BEGIN"))
    msgs = raw.run(parse("c1", CLEAN) + parse("c2", SSN) + bind("q1", "c1") + bind("q2", "c2") +
                   describe_portal("q1") + sync())
    assert [t for t, _ in msgs] == ["1", "1", "2", "2", "T", "Z"], msgs
    msgs = raw.run(execute("q2") + sync())
    assert not leaks(b"".join(b for _, b in msgs)), msgs
    rows, errs = rows_of(msgs), errors_of(msgs)
    assert rows == [[b"****6789"], [b"****4321"], [b"****3456"]] or \
        (errs and errs[0]["C"] == "42501"), msgs
    # The described one itself, in a later batch, still runs.
    msgs = raw.run(execute("q1") + sync())
    assert rows_of(msgs) == [[b"Ada Lovelace"], [b"Grace Hopper"], [b"Edsger Dijkstra"]], msgs
    raw.run(w.query("ROLLBACK"))


# --- FETCH in texts that do not begin with it ---------------------------------------

FETCHES = [";FETCH ALL FROM c", " ; ;FETCH ALL FROM c", "/* x */ FETCH ALL FROM c",
           "-- x\nFETCH ALL FROM c", ";MOVE ABSOLUTE 0 IN c; FETCH ALL FROM c"]


@pytest.mark.parametrize("fetch", FETCHES, ids=[f"f{i}" for i in range(len(FETCHES))])
def test_fetch_after_an_empty_statement_or_comment(raw, fetch):
    for decl in ["DECLARE c CURSOR FOR SELECT ssn || 'x' FROM ops.customers ORDER BY id",
                 "DECLARE c CURSOR FOR SELECT secret || '' FROM ops.mask_edge ORDER BY id"]:
        msgs = raw.run(w.query("BEGIN") + w.query(decl) + w.query(fetch) + w.query("ROLLBACK"))
        msgs += raw.s.read_until("Z") + raw.s.read_until("Z") + raw.s.read_until("Z")
        assert not leaks(b"".join(b for _, b in msgs)), (decl, fetch, msgs)
        rows, errs = rows_of(msgs), errors_of(msgs)
        assert len(rows) == 3 or (errs and errs[0]["C"] == "42501"), (decl, fetch, msgs)


@pytest.mark.parametrize("fetch", FETCHES[:4], ids=[f"f{i}" for i in range(4)])
def test_fetch_after_an_empty_statement_extended(raw, fetch):
    raw.run(w.query("BEGIN"))
    raw.run(w.query("DECLARE c CURSOR FOR SELECT secret || '' FROM ops.mask_edge ORDER BY id"))
    for describe in (True, False):
        msgs = raw.run(parse("", fetch) + bind("", "") + (describe_portal("") if describe else b"") +
                       execute("") + sync())
        assert not leaks(b"".join(b for _, b in msgs)), (fetch, msgs)
        rows, errs = rows_of(msgs), errors_of(msgs)
        assert rows == [[b"[masked]"]] * 3 or (errs and errs[0]["C"] == "42501"), (fetch, msgs)
        raw.run(w.query("MOVE ABSOLUTE 0 IN c"))
    raw.run(w.query("ROLLBACK"))


def test_fetch_after_an_empty_statement_psycopg(masked):
    g = masked.request_grant(SERVICE_A)
    with connect(SERVICE_A, g, autocommit=False) as conn:
        conn.execute("declare c cursor for select ssn || 'x' from ops.customers order by id")
        for fetch in (";fetch 1 from c", "/* x */ fetch 1 from c"):
            row = conn.execute(fetch).fetchone()
            assert not leaks(repr(row)) and row[0].startswith("****"), (fetch, row)
        conn.rollback()


# --- server texts -------------------------------------------------------------------

ERRORS = [
    # NOT NULL and CHECK violations show the whole row in their DETAIL.
    "update ops.mask_edge set name = null where id = 1",
    "update ops.mask_edge set name = repeat('n', 30) where id = 1",
    "update ops.customers set name = null where id = 1",
    # A unique violation shows the key; the value has a ')' in it.
    "update ops.mask_edge set secret = (select secret from ops.mask_edge where id = 3) where id = 1",
    # A failed cast quotes the value, which has '"' in it.
    "select id from ops.mask_edge where id = 2 and secret::int > 0",
    # json's CONTEXT shows the text it could not read.
    "select id from ops.mask_edge where id = 1 and secret::json is not null",
]


@pytest.mark.parametrize("sql", ERRORS, ids=[f"e{i}" for i in range(len(ERRORS))])
def test_server_errors_do_not_quote_masked_values(masked, sql):
    g = masked.request_grant(SERVICE_A)
    r = sf.psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, sql, extra_args=("-v", "VERBOSITY=verbose"))
    out = r.stdout + r.stderr
    assert r.rc != 0 and "ERROR:" in out, (sql, out)
    assert not leaks(out), (sql, out)
    with connect(SERVICE_A, g) as conn:
        with pytest.raises(psycopg.Error) as ei:
            conn.execute(sql)
        d = ei.value.diag
        seen = " ".join(str(x) for x in (d.message_primary, d.message_detail, d.message_hint,
                                          d.context, d.internal_query))
        assert d.sqlstate and d.message_primary, (sql, seen)
        assert not leaks(seen), (sql, seen)
        # The connection goes on.
        assert conn.execute("select secret from ops.mask_edge where id = 1").fetchone() == ("[masked]",)


def test_errors_keep_what_carries_no_value(masked):
    g = masked.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        with pytest.raises(psycopg.errors.NotNullViolation) as ei:
            conn.execute("update ops.mask_edge set name = null where id = 1")
        d = ei.value.diag
        assert d.sqlstate == "23502" and "not-null constraint" in d.message_primary, d.message_primary
        assert d.table_name == "mask_edge" and d.column_name == "name"
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from ops.no_such_table")


# --- the catalog after DDL ------------------------------------------------------------

# A view whose column is an expression over a masked one (upper() keeps the
# SSN as it is): only the catalog knows it carries ops.customers.ssn.
UPPER_VIEW = "create or replace view ops.mask_up as select id, upper(ssn) as u from ops.customers"
CLEAN_VIEW = "create or replace view ops.mask_up as select id, upper(name) as u from ops.customers"


@pytest.fixture
def upper_view(masked):
    masked.pg.psql_super(f"{UPPER_VIEW}; ALTER VIEW ops.mask_up OWNER TO sluice_broker;",
                         SAMPLE_DB).check("view set-up")
    return masked


def check_masked_or_refused(conn, sql):
    try:
        rows = conn.execute(sql).fetchall()
    except psycopg.Error as e:
        assert e.sqlstate == "42501" and not leaks(str(e)), str(e)
        return
    assert not leaks(repr(rows)), rows
    assert rows and all(r[-1].startswith("****") for r in rows), rows


@pytest.mark.parametrize("ddl", ["drop view ops.mask_up", CLEAN_VIEW], ids=["drop", "replace"])
def test_ddl_rolled_back_reads_the_catalog_again(upper_view, ddl):
    # The catalog is read again inside the transaction (the view gone or
    # clean); ROLLBACK brings the old view back, so it is read once more.
    g = upper_view.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        check_masked_or_refused(conn, "select * from ops.mask_up order by id")
        conn.execute("begin")
        conn.execute(ddl)
        conn.execute("select 1")  # the catalog is read again before this
        conn.execute("rollback")
        check_masked_or_refused(conn, "select * from ops.mask_up order by id")
        check_masked_or_refused(conn, "select u from ops.mask_up order by id")


def test_ddl_then_a_read_in_one_batch(upper_view, raw):
    # The view is made over the masked column and read in the same batch:
    # the catalog cannot be read between them, so the read is refused.
    for view in (UPPER_VIEW.replace("mask_up", "mask_b1"), UPPER_VIEW):
        name = "ops.mask_b1" if "mask_b1" in view else "ops.mask_up"
        msgs = raw.run(w.query(CLEAN_VIEW))  # mask_up clean first
        for sel in (f"select * from {name} order by id",):
            msgs = raw.run(parse("", view) + bind("", "") + execute("") +
                           parse("", sel) + bind("", "") + describe_portal("") + execute("") + sync())
            assert not leaks(b"".join(b for _, b in msgs)), msgs
            errs = errors_of(msgs)
            assert errs and errs[0]["C"] == "42501" and "Sync" in errs[0]["M"], msgs
            # The next batch sees the catalog read again: masked.
            msgs = raw.run(parse("", sel) + bind("", "") + describe_portal("") + execute("") + sync())
            assert [v[-1] for v in rows_of(msgs)] == [b"****6789", b"****4321", b"****3456"], msgs
        raw.run(w.query("drop view if exists ops.mask_b1"))


def test_ddl_then_a_prepared_read_in_one_batch(upper_view, raw):
    # A statement prepared while the view was clean, executed in the batch
    # that makes it carry the masked column.
    raw.run(w.query(CLEAN_VIEW))
    msgs = raw.run(parse("sel", "select * from ops.mask_up order by id") + sync())
    msgs = raw.run(parse("", UPPER_VIEW) + bind("", "") + execute("") +
                   bind("p", "sel") + describe_portal("p") + execute("p") + sync())
    assert not leaks(b"".join(b for _, b in msgs)), msgs
    errs = errors_of(msgs)
    assert errs and errs[0]["C"] == "42501", msgs


def test_simple_query_ddl_then_read(upper_view):
    # One Query text: the planner sees the view made earlier in the text.
    g = upper_view.request_grant(SERVICE_A)
    r = sf.psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB,
                   "create view ops.mask_s as select id, upper(ssn) as u from ops.customers; "
                   "select * from ops.mask_s order by id")
    out = r.stdout + r.stderr
    assert not leaks(out), out
    assert "****6789" in out or "42501" in out or "refused" in out, out


def test_ddl_on_another_connection(upper_view):
    # Connection B is open before A changes the view: B reads the catalog
    # again before its next request.
    g = upper_view.request_grant(SERVICE_A)
    upper_view.pg.psql_super(CLEAN_VIEW, SAMPLE_DB).check("clean view")
    with connect(SERVICE_A, g) as b, connect(SERVICE_A, g) as a:
        assert b.execute("select u from ops.mask_up order by id").fetchall()[0] == ("ADA LOVELACE",)
        a.execute(UPPER_VIEW)
        check_masked_or_refused(b, "select * from ops.mask_up order by id")
        a.execute("create view ops.mask_c as select id, upper(ssn) as u from ops.customers")
        check_masked_or_refused(b, "select * from ops.mask_c order by id")
        # Made in a transaction: seen once it commits.
        a.execute("begin")
        a.execute("create view ops.mask_d as select id, upper(ssn) as u from ops.customers")
        b.execute("select 1")
        a.execute("commit")
        check_masked_or_refused(b, "select * from ops.mask_d order by id")


def test_a_catalog_too_large_refuses_the_connection(upper_view):
    # Views' definitions are kept while the catalog is read: past 32 MiB
    # of it the connection is refused, not masked from part of it.
    pad = "x" * (1 << 20)
    sql = "".join(f"create view ops.mask_big{i} as select id, ssn, '{pad}'::text as pad "
                  f"from ops.customers;" for i in range(34))
    upper_view.pg.psql_super(sql, SAMPLE_DB).check("big views")
    try:
        g = upper_view.request_grant(SERVICE_A)
        r = sf.psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select ssn from ops.customers")
        out = r.stdout + r.stderr
        assert r.rc != 0 and "cannot read the catalog" in out and not leaks(out), out[:500]
        assert "too large" in upper_view.log()
    finally:
        upper_view.pg.psql_super("".join(f"drop view if exists ops.mask_big{i};" for i in range(34)),
                                 SAMPLE_DB).check("drop big views")
    r = sf.psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select ssn from ops.customers order by id")
    assert r.rc == 0 and "****6789" in r.stdout, r.stdout + r.stderr


def test_prepared_ddl_executed_in_a_later_batch(upper_view, raw):
    # A CREATE MATERIALIZED VIEW is decided when parsed and runs when
    # executed, a batch later; its tag ("SELECT 3") does not say DDL.
    try:
        msgs = raw.run(parse("mv", "create materialized view ops.mask_mv as "
                                   "select id, upper(ssn) as u from ops.customers") + sync())
        assert not errors_of(msgs), msgs
        sel = parse("", "select * from ops.mask_mv order by id") + bind("", "") + describe_portal("") + execute("")
        msgs = raw.run(bind("", "mv") + execute("") + sel + sync())
        assert not leaks(b"".join(b for _, b in msgs)), msgs
        errs = errors_of(msgs)
        assert errs and errs[0]["C"] == "42501", msgs
        msgs = raw.run(sel + sync())
        assert [v[-1] for v in rows_of(msgs)] == [b"****6789", b"****4321", b"****3456"], msgs
    finally:
        raw.run(w.query("drop materialized view if exists ops.mask_mv"))


def test_prepared_select_into_remakes_a_masked_table(masked, raw):
    # SELECT INTO, prepared before the masked table is dropped, makes it
    # again (a new OID) a batch later; its tag is "SELECT 1".
    msgs = raw.run(parse("si", "select 9 as id, 'TOPSECRET-nine'::text as secret into ops.mask_edge") + sync())
    assert not errors_of(msgs), msgs
    assert not errors_of(raw.run(w.query("drop table ops.mask_edge"))), "drop"
    msgs = raw.run(bind("", "si") + execute("") + sync())
    assert not errors_of(msgs), msgs
    msgs = raw.run(w.query("select secret from ops.mask_edge"))
    assert not leaks(b"".join(b for _, b in msgs)), msgs
    assert rows_of(msgs) == [[b"[masked]"]], msgs
