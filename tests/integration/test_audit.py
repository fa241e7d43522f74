"""The audit as a user reads it: `sluicectl audit` rows for every statement
(each part of a multi-statement query, extended-protocol executes with
their prepared SQL, errors and what they left unexecuted), its filters,
`sluicectl audit verify` on a fresh and on a hand-edited database, and an
audit database that cannot be written (a full file system): statements are
refused, nothing runs upstream unrecorded, and the agent says so."""
from __future__ import annotations

import os
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

import sluice_fixtures as sf
from sluice_fixtures import AGENT_USER, SAMPLE_DB, SERVICE_A, SERVICE_B
from test_grants import connect, ctl_json, rfc3339, statements


def audit_rows(agent, grant_id, count, timeout=10):
    """The grant's statements once there are at least count of them."""
    rows = []

    def enough():
        rows[:] = statements(agent, "--grant", grant_id)
        return len(rows) >= count

    sf.wait_for(enough, timeout, f"{count} audit rows for grant {grant_id}")
    return rows


def psql(agent, user, grant, sql, env=None):
    return sf.psql_as(user, grant["socket_dir"], SAMPLE_DB, sql, env=env)


# --- what each statement leaves ------------------------------------------------------

def test_each_statement_of_a_multi_statement_query_is_a_row(agent):
    g = agent.request_grant(SERVICE_A)
    r = psql(agent, SERVICE_A, g, "select 1; select 2 union all select 3; select * from ops.customers")
    assert r.rc == 0, r.stderr
    rows = audit_rows(agent, g["id"], 3)
    assert [(s["sql"].strip(), s["decision"], s["outcome"], s["rows"]) for s in rows] == [
        ("select 1", "allowed", "SELECT 1", 1),
        ("select 2 union all select 3", "allowed", "SELECT 2", 2),
        ("select * from ops.customers", "allowed", "SELECT 3", 3),
    ]
    for s in rows:
        assert s["user"] == SERVICE_A
        assert s["grant_id"] == g["id"]
        assert s["connection"] == sf.CONNECTION_NAME
        assert s["sqlstate"] is None and s["error"] is None
        assert isinstance(s["duration_us"], int) and s["duration_us"] >= 0
    # Writes carry their command tags and row counts too.
    t = f"public.scen_audit_{uuid.uuid4().hex[:8]}"
    r = psql(agent, SERVICE_A, g, f"create table {t} (a int); insert into {t} select generate_series(1, 7); "
                                  f"update {t} set a = a + 1 where a > 4; delete from {t} where a = 1")
    assert r.rc == 0, r.stderr
    rows = audit_rows(agent, g["id"], 7)[3:]
    # A command whose tag carries no count has no row count (not 0).
    assert [(s["outcome"], s["rows"]) for s in rows] == [
        ("CREATE TABLE", None), ("INSERT 0 7", 7), ("UPDATE 3", 3), ("DELETE 1", 1)]
    # SHOW's tag has no count, but it returns a row.
    r = psql(agent, SERVICE_A, g, "show client_encoding")
    assert r.rc == 0, r.stderr
    row = audit_rows(agent, g["id"], 8)[7]
    assert (row["outcome"], row["rows"]) == ("SHOW", 1)


def test_an_error_row_and_the_statements_it_stopped(agent):
    g = agent.request_grant(SERVICE_A)
    r = psql(agent, SERVICE_A, g, "select 'one'; select 1/0; select 'three'; select 'four'")
    assert r.rc != 0
    assert "division by zero" in r.stderr
    rows = audit_rows(agent, g["id"], 4)
    assert [s["sql"].strip() for s in rows] == ["select 'one'", "select 1/0", "select 'three'", "select 'four'"]
    assert (rows[0]["outcome"], rows[0]["rows"]) == ("SELECT 1", 1)
    assert rows[1]["sqlstate"] == "22012"
    assert rows[1]["error"] == "division by zero"
    assert rows[1]["decision"] == "allowed"
    for s in rows[2:]:
        assert s["outcome"] is None or "not executed" in (s["outcome"] or ""), s
        assert "not executed" in ((s["outcome"] or "") + (s["error"] or "")), s
        assert s["rows"] is None
    # The table says so too.
    table = agent.ctl("audit", "--grant", g["id"], "--database", str(agent.database))
    assert table.rc == 0
    lines = table.stdout.splitlines()
    assert "22012" in lines[2] and "division by zero" in lines[2], table.stdout
    assert "not executed" in lines[3], table.stdout


def test_extended_executes_are_recorded_with_their_sql(agent):
    g = agent.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        for i in (1, 2, 3):
            conn.execute("select name from ops.customers where id = %s", (i,), prepare=True).fetchone()
        with conn.pipeline():
            conn.execute("select %s::text as piped", ("a",))
            conn.execute("select %s::int as piped", (2,))
        # An error while executing (count(*) is 0 only at run time).
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("select 10 / count(*) from ops.customers where id = %s", (99,), prepare=True)
    rows = audit_rows(agent, g["id"], 6)
    assert [(s["sql"], s["outcome"], s["rows"]) for s in rows] == \
        [("select name from ops.customers where id = $1", "SELECT 1", 1)] * 3 + [
            ("select $1::text as piped", "SELECT 1", 1), ("select $1::int as piped", "SELECT 1", 1),
            ("select 10 / count(*) from ops.customers where id = $1", None, None)]
    assert (rows[5]["sqlstate"], rows[5]["error"]) == ("22012", "division by zero")
    # The parameters' values are not part of the SQL text.
    assert all("Grace" not in s["sql"] for s in rows)


def test_a_statement_that_fails_to_parse_is_one_row(agent):
    """Parse/Bind/Execute/Sync of a statement naming a missing table: the
    client tried it once and got one error, so the audit has one row with
    that error (not the error plus a 'not executed' twin)."""
    g = agent.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from ops.nothing_here where id = %s", (1,))
        conn.execute("select 'next'")
    rows = audit_rows(agent, g["id"], 2)
    assert [(s["sql"], s["sqlstate"]) for s in rows] == [
        ("select * from ops.nothing_here where id = $1", "42P01"), ("select 'next'", None)]
    assert 'relation "ops.nothing_here" does not exist' in rows[0]["error"]


def test_an_error_at_bind_is_recorded_with_its_sqlstate(agent):
    """An error the server raises at Bind (a parameter that is not valid for
    its type; a constant expression folded while planning with the value)
    fails the statement: its row carries the SQLSTATE and message. It is not
    "not executed", which would say the client never got that far."""
    g = agent.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            conn.execute("select %s::text::int", ("x",))  # noqa: the cast is done server-side
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("select 10 / %s::int", (0,))
        conn.execute("select 'next'")
    rows = audit_rows(agent, g["id"], 3)
    assert [(s["sql"], s["sqlstate"]) for s in rows] == [
        ("select $1::text::int", "22P02"), ("select 10 / $1::int", "22012"), ("select 'next'", None)], rows
    assert 'invalid input syntax for type integer: "x"' in rows[0]["error"]
    assert rows[1]["error"] == "division by zero"


def test_sql_of_a_latin1_client_is_recorded_as_text(agent, run_as):
    """A client whose client_encoding is LATIN1 sends 'café' as 63 61 66 e9;
    PostgreSQL converts it, and the audit must show the same text (the
    database's UTF-8), not the raw byte as an invalid character."""
    g = agent.request_grant(SERVICE_A)
    r = run_as(SERVICE_A, ["sh", "-c", "printf \"select 'caf\\351'\" | psql -X -A -t | iconv -f latin1 -t utf-8"],
               env={"PGHOST": g["socket_dir"], "PGDATABASE": SAMPLE_DB, "PGCLIENTENCODING": "LATIN1"})
    assert (r.rc, r.stdout.strip()) == (0, "café"), r.stderr
    rows = audit_rows(agent, g["id"], 1)
    assert rows[0]["sql"] == "select 'café'"


def test_parts_of_a_multi_statement_query_are_recorded_without_surrounding_blanks(agent):
    """PostgreSQL reports each part of "select 1; select 2" as "select 2"
    (pg_stat_statements, the server log), not " select 2"; the audit table
    shows the SQL column from its first character."""
    g = agent.request_grant(SERVICE_A)
    assert psql(agent, SERVICE_A, g, "select 1;   select 2;\n\tselect 3").rc == 0
    rows = audit_rows(agent, g["id"], 3)
    assert [s["sql"] for s in rows] == ["select 1", "select 2", "select 3"]


def test_copy_is_recorded(agent, run_as):
    g = agent.request_grant(SERVICE_A)
    t = f"public.scen_auditcopy_{uuid.uuid4().hex[:8]}"
    r = psql(agent, SERVICE_A, g, f"create table {t} (a int)")
    assert r.rc == 0, r.stderr
    r = run_as(SERVICE_A, ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", g["socket_dir"], "-d", SAMPLE_DB,
                           "-c", f"\\copy {t} from stdin"], input="1\n2\n3\n\\.\n")
    assert r.rc == 0, r.stderr
    r = psql(agent, SERVICE_A, g, f"copy {t} to stdout")
    assert r.rc == 0 and r.stdout.split() == ["1", "2", "3"]
    rows = audit_rows(agent, g["id"], 3)
    assert (rows[1]["outcome"], rows[1]["rows"]) == ("COPY 3", 3)
    # (psql's \copy sends its own spelling of the statement)
    assert " ".join(rows[1]["sql"].lower().split()) == f"copy {t} from stdin".lower()
    assert (rows[2]["outcome"], rows[2]["rows"]) == ("COPY 3", 3)


# --- filters and formats ------------------------------------------------------------------

def test_audit_filters(agent_factory):
    agent = agent_factory(access={"allow": f"{SERVICE_A} {SERVICE_B}"})
    ga = agent.request_grant(SERVICE_A)
    gb = agent.request_grant(SERVICE_B)
    assert psql(agent, SERVICE_A, ga, "select 'a1'; select 'a2'").rc == 0
    assert psql(agent, SERVICE_B, gb, "select 'b1'").rc == 0
    audit_rows(agent, ga["id"], 2)
    audit_rows(agent, gb["id"], 1)
    agent.ctl("revoke", ga["id"]).check()

    def sqls(*filters):
        return [s["sql"].strip() for s in statements(agent, *filters)]

    assert sqls("--user", SERVICE_A) == ["select 'a1'", "select 'a2'"]
    assert sqls("--user", SERVICE_B) == ["select 'b1'"]
    assert sqls("--grant", gb["id"]) == ["select 'b1'"]
    assert sqls("--user", SERVICE_A, "--grant", gb["id"]) == []
    assert sqls("--decision", "allowed") == ["select 'a1'", "select 'a2'", "select 'b1'"]
    assert sqls("--decision", "refused") == []
    assert sqls("--limit", "1") == ["select 'b1'"]
    assert sqls("--since", "1h") == ["select 'a1'", "select 'a2'", "select 'b1'"]
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sqls("--since", future) == []
    first = rfc3339(statements(agent)[0]["time"])
    assert sqls("--since", (first - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))[:1] == ["select 'a1'"]
    # Local time as the table prints it is accepted back.
    table = agent.ctl("audit", "--database", str(agent.database)).stdout.splitlines()
    first_local = " ".join(table[1].split()[:2])
    assert sqls("--since", first_local)[:1] == ["select 'a1'"], first_local
    # A bad filter is a usage error.
    r = agent.ctl("audit", "--since", "yesterday-ish", "--database", str(agent.database))
    assert r.rc == 2, r

    # The table has the same rows; --json has every column.
    table = agent.ctl("audit", "--user", SERVICE_B, "--database", str(agent.database))
    assert table.rc == 0
    body = table.stdout.splitlines()
    assert body[0].split()[:5] == ["TIME", "USER", "GRANT", "CONNECTION", "DECISION"]
    assert len(body) == 2 and SERVICE_B in body[1] and gb["id"] in body[1] and "select 'b1'" in body[1]
    js = statements(agent, "--user", SERVICE_B)[0]
    for key in ("id", "time", "grant_id", "uid", "user", "connection", "conn_serial", "sql", "decision",
                "rule", "outcome", "sqlstate", "error", "rows", "duration_us"):
        assert key in js, key

    # Events filter the same way.
    ev = ctl_json(agent, "audit", "--events", "--grant", ga["id"], "--database", str(agent.database))
    kinds = [e["kind"] for e in ev]
    assert kinds[0] == "grant.created" and "grant.revoked" in kinds and kinds[-1] == "grant.ended"
    assert all(e["grant_id"] == ga["id"] for e in ev)


def test_an_unknown_decision_is_a_usage_error(agent):
    """`--decision block` (for blocked) must not answer "No statements
    match.": a typo would read as "nothing was blocked"."""
    for word in ("block", "maybe", "ALLOWED "):
        r = agent.ctl("audit", "--decision", word, "--database", str(agent.database))
        assert r.rc == 2, r
        assert "--decision" in r.stderr and "allowed" in r.stderr, r.stderr
        assert r.stdout == ""


def test_refused_decision_filter(agent_factory, psql_as):
    agent = agent_factory()
    g = agent.request_grant(SERVICE_A, ttl="2s")
    c = connect(SERVICE_A, g)
    c.execute("select 'in time'")
    sf.wait_for(lambda: not os.path.exists(g["socket_dir"]), 10, "expiry")
    with pytest.raises(psycopg.OperationalError):
        c.execute("select 'too late'")
    c.close()
    sf.wait_for(lambda: [s["sql"] for s in statements(agent, "--decision", "refused")] == ["select 'too late'"],
                10, "the refused statement")
    assert [s["sql"] for s in statements(agent, "--decision", "allowed")] == ["select 'in time'"]


# --- audit verify -----------------------------------------------------------------------------

def test_audit_verify_passes_then_catches_a_hand_edited_row(agent):
    g = agent.request_grant(SERVICE_A)
    assert psql(agent, SERVICE_A, g, "select 'kept'; select 'to be edited'; select 'after'").rc == 0
    rows = audit_rows(agent, g["id"], 3)
    r = agent.ctl("audit", "verify", "--database", str(agent.database))
    assert r.rc == 0, r.stdout + r.stderr
    assert "audit chain intact" in r.stdout

    assert agent.stop() == 0
    r = agent.ctl("audit", "verify", "--database", str(agent.database))
    assert r.rc == 0, r.stdout + r.stderr
    edited = rows[1]["id"]
    db = sqlite3.connect(agent.database)
    try:
        cols = [c[1] for c in db.execute("pragma table_info(statements)")]
        assert "sql" in cols, cols
        n = db.execute("update statements set sql = 'select ''nothing to see''' where id = ?", (edited,)).rowcount
        db.commit()
    finally:
        db.close()
    assert n == 1
    r = agent.ctl("audit", "verify", "--database", str(agent.database))
    assert r.rc == 1, r.stdout + r.stderr
    out = r.stdout + r.stderr
    assert "statement" in out and str(edited) in out, out
    # The edited text is what audit now shows: verify is how one knows.
    assert [s["sql"] for s in statements(agent, "--grant", g["id"])][1] == "select 'nothing to see'"


def test_audit_verify_catches_a_deleted_row(agent):
    g = agent.request_grant(SERVICE_A)
    assert psql(agent, SERVICE_A, g, "select 1; select 2; select 3").rc == 0
    rows = audit_rows(agent, g["id"], 3)
    assert agent.stop() == 0
    db = sqlite3.connect(agent.database)
    try:
        db.execute("delete from statements where id = ?", (rows[1]["id"],))
        db.commit()
    finally:
        db.close()
    r = agent.ctl("audit", "verify", "--database", str(agent.database))
    assert r.rc == 1, r.stdout + r.stderr
    assert str(rows[2]["id"]) in r.stdout + r.stderr


def test_audit_needs_read_access_to_the_database(agent):
    r = agent.ctl("audit", "--database", str(agent.database), user=SERVICE_A)
    assert r.rc == 1
    assert "permission denied" in r.stderr.lower(), r.stderr


# --- an audit that cannot be written ---------------------------------------------------------

@pytest.fixture
def small_fs(sandbox, accounts):
    """A 1 MiB tmpfs owned by the agent's account, for its database; unmounted
    after the test (requested before agent_factory, so after the agent stops)."""
    d = sandbox / f"smallfs-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    acct = accounts[AGENT_USER]
    r = sf.run(["mount", "-t", "tmpfs", "-o", f"size=1M,mode=0750,uid={acct.uid},gid={acct.gid}", "tmpfs", str(d)])
    if r.rc != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    yield d
    sf.run(["umount", "-l", str(d)])
    d.rmdir()


def fill(directory: Path) -> Path:
    """Fill the file system holding directory; the filler file."""
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    # tmpfs may still take a page or two of metadata; take those too.
    i = 0
    while True:
        try:
            with open(directory / f"filler-{i}", "wb") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
        except OSError:
            break
        i += 1
    return filler


def test_unwritable_audit_refuses_statements(small_fs, agent_factory, run_as):
    db = small_fs / "sluice.db"
    agent = agent_factory(agent={"database": str(db)})
    pg = agent.pg
    t = f"public.scen_full_{uuid.uuid4().hex[:8]}"
    pg.psql_super(f"create table {t} (v text); alter table {t} owner to {pg.broker_user}").check()
    g = agent.request_grant(SERVICE_A)
    conn = connect(SERVICE_A, g)
    assert conn.execute("select 'before'").fetchone() == ("before",)
    assert agent.ctl("status").rc == 0

    fill(small_fs)
    # Statements keep coming; as soon as the writer finds it cannot write,
    # the agent refuses new ones. (Those already queued are kept, not lost.)
    refused, ran = [], ["select 'before'"]

    def audit_failing():
        r = agent.ctl("status")
        if r.rc != 0:
            return True
        sql = f"select 'probe {len(ran)}'"
        try:
            conn.execute(sql)
        except psycopg.Error as e:
            refused.append(e)
            return True
        ran.append(sql)
        return False

    sf.wait_for(audit_failing, 30, "the agent to notice the audit cannot be written", interval=0.02)
    if refused:
        assert "audit" in str(refused[0])
    status = agent.ctl("status")
    assert status.rc == 1, status
    assert "audit" in status.stdout + status.stderr
    assert "fail" in (status.stdout + status.stderr).lower(), status

    # An INSERT now is refused with a message about the audit, and never runs.
    r = psql(agent, SERVICE_A, g, f"insert into {t} values ('unrecorded')")
    assert r.rc != 0
    assert "audit" in r.stderr, r.stderr
    assert "sluice:" in r.stderr
    with pytest.raises(psycopg.Error, match="audit"):
        conn.execute(f"insert into {t} values ('unrecorded either')")
    assert pg.sql(f"select count(*) from {t}") == [("0",)]
    # A new grant is not given either: it could not be recorded.
    r = agent.ctl("grant", "request", sf.CONNECTION_NAME, user=SERVICE_A)
    assert r.rc == 1 and "audit" in r.stderr, r

    # Space again: the agent recovers by itself and the queued records land.
    for f in small_fs.glob("filler*"):
        f.unlink()
    sf.wait_for(lambda: agent.ctl("status").rc == 0, 30, "the audit to recover")
    r = psql(agent, SERVICE_A, g, f"insert into {t} values ('recorded')")
    assert r.rc == 0, r.stderr
    conn.close()
    rows = []

    def landed():
        rows[:] = ctl_json(agent, "audit", "--database", str(db), "--grant", g["id"])
        return any("'recorded'" in s["sql"] for s in rows)

    sf.wait_for(landed, 15, "the insert in the audit")
    # Everything that ran upstream is in the audit, the ones queued while
    # the disk was full included; nothing refused shows as allowed.
    allowed = [s["sql"] for s in rows if s["decision"] == "allowed"]
    assert allowed == ran + [f"insert into {t} values ('recorded')"], rows
    assert agent.ctl("audit", "verify", "--database", str(db)).rc == 0
