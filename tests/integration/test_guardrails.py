"""Guardrails on the wire: the statement corpus (guardrail_corpus.py) through
a real grant under a realistic [guardrail], with psql (the simple protocol)
and psycopg 3 (the extended protocol: every statement prepared by name);
both must give the same answer, the exact error text, and the audit row.

A refusal is `ERROR 42501 sluice: blocked: WHAT (RULE)` followed by
ReadyForQuery: the session goes on. A multi-statement string with one
refused statement runs none of it. In the extended protocol a refused Parse
is answered with the error, the batch is skipped to Sync, and any later
Bind/Describe/Execute naming the refused statement gets the same error.
"""
from __future__ import annotations

import json
import struct
import time

import psycopg
import pytest

import guardrail_corpus as gc
import regress_wire as rw
import sluice_fixtures as sf
from conftest import AgentFactory
from test_grants import as_uid  # a client library inside it is that account (SO_PEERCRED)
from sluice_fixtures import CONNECTION_NAME, SAMPLE_DB, SERVICE_A

SCS_RULE = "rule: built-in (sluice reads strings as the server does only with it on)"
UNPARSED_RULE = "rule: built-in default (unparsed = block)"
TABLES = ("ops.gr_t", "ops.gr_u")


def connect(grant: dict, **kw) -> psycopg.Connection:
    kw.setdefault("autocommit", True)
    with as_uid(SERVICE_A):
        return psycopg.connect(host=grant["socket_dir"], dbname=SAMPLE_DB, connect_timeout=10, **kw)


def config_line(path, section: str, key: str) -> int:
    """The line number of key in [section] of the config file."""
    inside = False
    for n, line in enumerate(open(path).read().splitlines(), 1):
        s = line.strip()
        if s.startswith("["):
            inside = s == f"[{section}]"
        elif inside and s.split("=")[0].strip() == key:
            return n
    raise AssertionError(f"no {key} in [{section}] of {path}")


def psql(grant: dict, sql: str, *, stdin: str = "", extra=()) -> sf.Result:
    """psql -c SQL as SERVICE_A through the grant (one simple Query), errors
    in verbose form ("ERROR:  42501: ..."), stdin given (COPY FROM STDIN)."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose",
           "-h", grant["socket_dir"], "-d", SAMPLE_DB, *extra, "-c", sql]
    return sf.run(cmd, user=SERVICE_A, env={"PGCONNECT_TIMEOUT": "10"}, input=stdin)


def snapshot(pg) -> list:
    """What the corpus tables hold, to show a refused string changed nothing."""
    return [pg.sql(f"SELECT count(*), coalesce(sum(id), 0), md5(coalesce(string_agg(v, ',' ORDER BY id, v), '')) "
                   f"FROM {t}") for t in TABLES]


def reset_tables(pg) -> None:
    for t in TABLES:
        pg.sql(f"DROP TABLE IF EXISTS {t} CASCADE")
        pg.sql(f"CREATE TABLE {t} (id integer, v text); ALTER TABLE {t} OWNER TO {pg.broker_user}")
    pg.sql("INSERT INTO ops.gr_t VALUES (1, 'one'), (2, 'two')")


class Guarded:
    def __init__(self, agent, grant, pg):
        self.agent, self.grant, self.pg = agent, grant, pg
        cfg = agent.config_path
        self.block_rule = f"rule at {cfg}:{config_line(cfg, f'guardrail {CONNECTION_NAME}', 'block')}"
        r = agent.ctl("--json", "policy", "explain", "--user", SERVICE_A, "--connection", CONNECTION_NAME,
                      "--sql", "select 1")
        assert r.rc == 0, r
        self.allow_rule = json.loads(r.stdout)[0]["rule"]
        assert self.allow_rule.startswith(f"rule at {cfg}:"), self.allow_rule
        self.conn = None

    def rule_for(self, what: str) -> str:
        if what == gc.SCS:
            return SCS_RULE
        if what.startswith("unparsed: "):
            return UNPARSED_RULE
        return self.block_rule

    def message(self, what: str) -> str:
        return f"sluice: blocked: {what} ({self.rule_for(what)})"

    def audit(self) -> list[dict]:
        r = self.agent.ctl("--json", "audit", "--grant", self.grant["id"], "--limit", "100000",
                           "--database", str(self.agent.database))
        assert r.rc == 0, r
        return json.loads(r.stdout)

    def audit_settled(self) -> list[dict]:
        """The audit once the writer has caught up: it commits in batches
        (every 20 ms), so read until two reads 200 ms apart agree."""
        rows = self.audit()
        for _ in range(50):
            time.sleep(0.2)
            again = self.audit()
            if len(again) == len(rows):
                return again
            rows = again
        return rows


# --- unparsed (agents of their own, before the module's agent starts) -------------------------

def test_unparsed_allow_forwards_what_does_not_parse(agent_factory):
    """unparsed = allow: the text goes to the server, which answers for
    itself; the audit names the rule that let it through."""
    a = agent_factory(sections=[(f"guardrail {CONNECTION_NAME}", {**gc.GUARDRAIL, "unparsed": "allow"})])
    g = a.request_grant(SERVICE_A)
    r = psql(g, "selec 1")
    assert r.rc != 0 and r.stderr.startswith('ERROR:  42601: syntax error at or near "selec"'), r
    line = config_line(a.config_path, f"guardrail {CONNECTION_NAME}", "unparsed")
    rows: list = []

    def recorded() -> bool:
        rows[:] = json.loads(a.ctl("--json", "audit", "--grant", g["id"]).stdout)
        return bool(rows)
    sf.wait_for(recorded, 10, "the audit row")
    assert [(s["sql"], s["decision"], s["rule"], s["sqlstate"]) for s in rows] == \
        [("selec 1", "allowed", f"rule at {a.config_path}:{line}", "42601")], rows
    # still a guardrail: the rest is decided as before
    r = psql(g, "truncate ops.customers")
    assert r.rc != 0 and "ERROR:  42501: sluice: blocked: truncate" in r.stderr, r


def test_unparsed_blocks_by_default(agent_factory):
    a = agent_factory()
    g = a.request_grant(SERVICE_A)
    r = psql(g, "selec 1")
    assert r.rc != 0 and r.stderr.startswith(
        f'ERROR:  42501: sluice: blocked: unparsed: syntax error at or near "selec" ({UNPARSED_RULE})'), r
    r = psql(g, "select count(*) from ops.customers")
    assert (r.rc, r.stdout) == (0, f"{sf.SAMPLE_CUSTOMERS}\n"), r


def test_prepared_names_and_portals_are_capped(agent_factory, accounts):
    """max_prepared_statements bounds what the proxy remembers per
    connection: protocol statements, SQL-level PREPAREs and open portals."""
    a = agent_factory(agent={"max_prepared_statements": "3"})
    g = a.request_grant(SERVICE_A)
    conn = connect(g)
    pq = conn.pgconn
    try:
        for i in range(3):
            assert pq.prepare(f"s{i}".encode(), b"select 1").status == psycopg.pq.ExecStatus.COMMAND_OK
        res = pq.prepare(b"s3", b"select 1")
        assert res.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"54000", res.error_message
        with pytest.raises(psycopg.errors.ProgramLimitExceeded):
            conn.execute("prepare p4 as select 1")
        conn.execute("deallocate s0")
        conn.execute("prepare p4 as select 4")
        assert conn.execute("execute p4").fetchone() == (4,)
    finally:
        conn.close()
    # portals, inside a transaction where they stay open
    w = rw.Wire.connect(g["socket_dir"], accounts[SERVICE_A])
    try:
        w.handshake({"user": SERVICE_A, "database": SAMPLE_DB})
        w.send(rw.query("begin"))
        w.read_until("Z")
        w.send(rw.msg(b"P", b"\0select 1\0\0\0") + b"".join(_bind(f"p{i}".encode(), b"") for i in range(4)) +
               rw.msg(b"S"))
        msgs = w.read_until("Z")
        assert [m[0] for m in msgs] == ["1", "2", "2", "2", "E", "Z"], msgs
        assert rw.error_fields(msgs[4][1])["C"] == "54000"
    finally:
        w.close()


@pytest.fixture(scope="module")
def guarded(request, sandbox, accounts, bus, installed, pg):
    """One agent with a realistic [guardrail], a grant for SERVICE_A, and the
    corpus tables ops.gr_t (two rows) and ops.gr_u."""
    reset_tables(pg)
    factory = AgentFactory(request, sandbox, accounts, bus, installed)
    try:
        agent = factory(sections=[(f"guardrail {CONNECTION_NAME}", gc.GUARDRAIL)])
        g = Guarded(agent, agent.request_grant(SERVICE_A, ttl="1h"), pg)
        yield g
        if g.conn is not None:
            g.conn.close()
    finally:
        problems = factory.stop_all()
        for t in TABLES:
            pg.sql(f"DROP TABLE IF EXISTS {t} CASCADE")
        if problems:
            pytest.fail("agent teardown:\n" + "\n".join(problems), pytrace=False)


def test_corpus_size():
    """At least 80 statements, every class of the vocabulary that a
    realistic policy blocks among them."""
    assert len(gc.CORPUS) >= 80
    seen = {r.expected.split(":")[0] for r in gc.CORPUS}
    for cls in ("allow", "ddl", "drop", "truncate", "delete-without-where", "update-without-where",
                "copy-program", "role-change", "functions", "admin", "opaque", "unparsed", gc.SCS):
        assert cls in seen, cls


IDS = [f"{i:03d}" for i in range(len(gc.CORPUS))]


@pytest.mark.parametrize("row", gc.CORPUS, ids=IDS)
def test_corpus_simple_protocol(guarded, row):
    before = snapshot(guarded.pg)
    r = psql(guarded.grant, row.sql)
    if row.expected == "allow":
        assert r.rc == 0 and "sluice" not in r.stderr, (row, r)
        return
    want = f"ERROR:  42501: {guarded.message(row.expected)}\n"
    assert r.rc != 0 and r.stderr.startswith(want), (row, r)
    # Nothing of the string ran.
    assert snapshot(guarded.pg) == before, row


def _extended(conn: psycopg.Connection, row: gc.Row):
    with conn.cursor() as cur:
        if row.copy and row.expected == "allow":
            # COPY to/from the client goes through psycopg's copy(); the
            # refused forms are prepared below like everything else.
            with cur.copy(row.sql) as cp:
                if row.copy == "in":
                    cp.write_row((200, "copied"))
                else:
                    for _ in cp:
                        pass
            return
        cur.execute(row.sql.encode(), prepare=True)
        if cur.description:
            cur.fetchall()


@pytest.mark.parametrize("row", gc.CORPUS, ids=IDS)
def test_corpus_extended_protocol(guarded, row):
    """The same statements through one psycopg connection (prepared by name:
    Parse/Bind/Describe/Execute/Sync); it survives every refusal."""
    if guarded.conn is None or guarded.conn.closed:
        guarded.conn = connect(guarded.grant)
    conn = guarded.conn
    before = snapshot(guarded.pg)
    if row.expected == "allow" and row.multi:
        # Allowed through, then refused by the server itself: a prepared
        # statement holds one command.
        with pytest.raises(psycopg.errors.SyntaxError, match="cannot insert multiple commands"):
            _extended(conn, row)
    elif row.expected == "allow":
        _extended(conn, row)
    else:
        with pytest.raises(psycopg.Error) as e:
            _extended(conn, row)
        assert e.value.sqlstate == "42501", (row, e.value)
        assert e.value.diag.message_primary == guarded.message(row.expected), row
        assert snapshot(guarded.pg) == before, row
    # The session goes on.
    assert conn.execute("select 41 + 1").fetchone() == (42,)


def _split(sql: str) -> list[str]:
    """The statements of a corpus multi-statement row: split at ';' outside
    quotes and $$ bodies (enough for the corpus)."""
    out, cur, i, quote = [], "", 0, None
    while i < len(sql):
        if quote is None and sql.startswith("$$", i):
            quote, cur, i = "$$", cur + "$$", i + 2
            continue
        if quote == "$$" and sql.startswith("$$", i):
            quote, cur, i = None, cur + "$$", i + 2
            continue
        ch = sql[i]
        if quote is None and ch == "'":
            quote = "'"
        elif quote == "'" and ch == "'":
            quote = None
        if quote is None and ch == ";":
            out.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    out.append(cur)
    return [s.strip() for s in out if s.strip()]


def test_corpus_audit(guarded):
    """Every refused statement has its row (blocked, the rule, 42501, the
    message); in a refused string the others are recorded as not executed;
    allowed ones ran and carry the [access] rule."""
    rows = guarded.audit_settled()
    by_sql: dict[str, list[dict]] = {}
    for s in rows:
        by_sql.setdefault(s["sql"], []).append(s)
    for row in gc.CORPUS:
        if row.expected == "allow":
            if row.multi:
                continue
            # (the same text may also be a not-executed part of a refused string)
            got = [s for s in by_sql.get(row.sql, []) if s["decision"] == "allowed"]
            assert got, f"no audit row for {row.sql!r}: {by_sql.get(row.sql)}"
            assert all(s["rule"] == guarded.allow_rule for s in got), got
            if not row.copy:
                assert any(s["outcome"] for s in got), got
            continue
        msg = guarded.message(row.expected)
        if row.multi and not row.expected.startswith("unparsed"):
            parts = _split(row.sql)
            blocked = [s for p in parts for s in by_sql.get(p, []) if s["decision"] == "blocked"
                       and s["error"] == msg]
            assert blocked, f"no blocked row for a statement of {row.sql!r}"
            decider = blocked[0]["sql"]
            n = parts.index(decider) + 1
            for p in parts:
                if p == decider:
                    continue
                assert any(s["decision"] == "refused" and s["sqlstate"] == "42501" and
                           s["error"] == f"not executed: statement {n} of the query was blocked"
                           for s in by_sql.get(p, [])), (row.sql, p, by_sql.get(p))
            continue
        got = [s for s in by_sql.get(row.sql, []) if s["decision"] == "blocked"]
        # psql once and psycopg once.
        assert len(got) >= 2, (row.sql, by_sql.get(row.sql))
        for s in got:
            assert (s["rule"], s["sqlstate"], s["error"], s["rows"]) == \
                (guarded.rule_for(row.expected), "42501", msg, None), s


# --- the session and the string --------------------------------------------------------------

def test_a_refused_statement_leaves_the_session_usable(guarded):
    """In one psql session: the refusal, then the next statement works."""
    script = "delete from ops.gr_t;\nselect 'still here', count(*) from ops.gr_t;\n"
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "VERBOSITY=verbose", "-h", guarded.grant["socket_dir"],
           "-d", SAMPLE_DB]
    r = sf.run(cmd, user=SERVICE_A, env={"PGCONNECT_TIMEOUT": "10"}, input=script)
    assert r.rc == 0, r
    assert f"ERROR:  42501: {guarded.message('delete-without-where')}" in r.stderr, r
    n = guarded.pg.sql("SELECT count(*) FROM ops.gr_t")[0][0]
    assert r.stdout == f"still here|{n}\n", r


def test_a_refused_statement_aborts_the_transaction_it_is_in(guarded):
    """As any error would: the COMMIT that follows rolls back, and the
    client is told the transaction failed (ReadyForQuery 'E')."""
    script = ("begin;\n"
              "insert into ops.gr_t values (777, 'in a failed transaction');\n"
              "truncate ops.gr_t;\n"
              "select 'unreachable';\n"
              "commit;\n"
              "select 'after', count(*) from ops.gr_t where id = 777;\n")
    cmd = ["psql", "-X", "-A", "-t", "-v", "VERBOSITY=verbose", "-h", guarded.grant["socket_dir"],
           "-d", SAMPLE_DB]
    r = sf.run(cmd, user=SERVICE_A, env={"PGCONNECT_TIMEOUT": "10"}, input=script)
    assert f"ERROR:  42501: {guarded.message('truncate')}" in r.stderr, r
    assert "ERROR:  25P02: current transaction is aborted" in r.stderr, r
    assert r.stdout.splitlines()[-2:] == ["ROLLBACK", "after|0"], r
    assert guarded.pg.sql("SELECT count(*) FROM ops.gr_t WHERE id = 777") == [("0",)]


def test_a_string_with_one_refused_statement_runs_none_of_it(guarded):
    before = guarded.pg.sql("SELECT count(*) FROM ops.gr_t WHERE id = 555")
    r = psql(guarded.grant, "insert into ops.gr_t values (555, 'never'); select 1; truncate ops.gr_t")
    assert r.rc != 0 and f"ERROR:  42501: {guarded.message('truncate')}" in r.stderr, r
    assert guarded.pg.sql("SELECT count(*) FROM ops.gr_t WHERE id = 555") == before == [("0",)]
    rows = guarded.audit_settled()
    ins = [s for s in rows if s["sql"] == "insert into ops.gr_t values (555, 'never')"]
    assert [(s["decision"], s["error"]) for s in ins] == \
        [("refused", "not executed: statement 3 of the query was blocked")], ins


# --- the extended protocol ---------------------------------------------------------------------

def test_a_refused_parse_in_a_pipeline_then_the_next_batch_runs(guarded):
    conn = connect(guarded.grant)
    try:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            with conn.pipeline():
                conn.execute("select %s::int", (1,))
                conn.execute("truncate ops.gr_t")
                conn.execute("select %s::int", (3,))
        assert e.value.diag.message_primary == guarded.message("truncate")
        # After the Sync: a new batch runs.
        assert conn.execute("select %s::int + 1", (41,)).fetchone() == (42,)
        with conn.pipeline():
            c = conn.execute("select count(*) from ops.gr_t where id = %s", (1,))
        assert c.fetchone() == (1,)
    finally:
        conn.close()


def test_bind_describe_execute_naming_a_refused_statement(guarded):
    """libpq's own calls: PQprepare of a refused statement, then
    PQdescribePrepared / PQexecPrepared naming it get the same refusal (not
    the server's "does not exist"); a new Parse under the name replaces it."""
    conn = connect(guarded.grant)
    pq = conn.pgconn
    msg = guarded.message("drop").encode()

    def refused(res):
        assert res.status == psycopg.pq.ExecStatus.FATAL_ERROR, res.status
        assert res.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"42501"
        assert res.error_field(psycopg.pq.DiagnosticField.MESSAGE_PRIMARY) == msg
    try:
        refused(pq.prepare(b"gr_blocked", b"drop table ops.gr_t"))
        refused(pq.describe_prepared(b"gr_blocked"))
        refused(pq.exec_prepared(b"gr_blocked", None))
        # the session is fine and the name can be used again
        res = pq.prepare(b"gr_blocked", b"select count(*) from ops.gr_t")
        assert res.status == psycopg.pq.ExecStatus.COMMAND_OK, res.error_message
        res = pq.exec_prepared(b"gr_blocked", None)
        assert res.status == psycopg.pq.ExecStatus.TUPLES_OK, res.error_message
    finally:
        conn.close()
    assert guarded.pg.sql("SELECT to_regclass('ops.gr_t') IS NOT NULL") == [("t",)]


def _bind(portal: bytes, stmt: bytes) -> bytes:
    return rw.msg(b"B", portal + b"\0" + stmt + b"\0" + struct.pack("!HHH", 0, 0, 0))


def test_a_portal_bound_from_a_refused_statement_is_refused(guarded, accounts):
    """Raw protocol, inside a transaction (where portals outlive a Sync):
    Parse (refused), Bind, Execute, Sync; then Bind in a batch of its own,
    then Execute of that portal alone: the same refusal each time, and
    ReadyForQuery after each Sync."""
    w = rw.Wire.connect(guarded.grant["socket_dir"], accounts[SERVICE_A])
    try:
        w.handshake({"user": SERVICE_A, "database": SAMPLE_DB})
        w.send(rw.query("begin"))
        assert [m[0] for m in w.read_until("Z")] == ["C", "Z"]
        w.send(rw.msg(b"P", b"s1\0update ops.gr_t set v = 'x'\0\0\0") + _bind(b"p1", b"s1") +
               rw.msg(b"E", b"p1\0" + struct.pack("!I", 0)) + rw.msg(b"S"))
        msgs = w.read_until("Z")
        errors = [rw.error_fields(b) for t, b in msgs if t == "E"]
        assert [m[0] for m in msgs] == ["E", "Z"], msgs
        assert (errors[0]["C"], errors[0]["M"]) == ("42501", guarded.message("update-without-where"))
        # as after any error, the transaction is aborted (upstream too)
        assert msgs[-1] == ("Z", b"E"), msgs
        # the portal, in a batch of its own
        w.send(_bind(b"p1", b"s1") + rw.msg(b"S"))
        msgs = w.read_until("Z")
        assert [m[0] for m in msgs] == ["E", "Z"], msgs
        w.send(rw.msg(b"E", b"p1\0" + struct.pack("!I", 0)) + rw.msg(b"S"))
        msgs = w.read_until("Z")
        assert [m[0] for m in msgs] == ["E", "Z"], msgs
        assert rw.error_fields(msgs[0][1])["M"] == guarded.message("update-without-where")
        # and after the rollback, an allowed statement
        w.send(rw.query("rollback; select 7"))
        msgs = w.read_until("Z")
        assert [m[0] for m in msgs] == ["C", "T", "D", "C", "Z"], msgs
        assert msgs[-1] == ("Z", b"I"), msgs
    finally:
        w.close()


def test_execute_of_a_portal_sluice_never_saw_prepared_is_opaque(guarded, accounts):
    """A cursor made by SQL (DECLARE) is a portal the proxy never saw bound:
    Execute naming it through the protocol could run what server-side code
    prepared, so it is decided as opaque (blocked here), while FETCH, which
    names it in SQL, still works."""
    w = rw.Wire.connect(guarded.grant["socket_dir"], accounts[SERVICE_A])
    try:
        w.handshake({"user": SERVICE_A, "database": SAMPLE_DB})
        w.send(rw.query("begin; declare gr_cur cursor for select v from ops.gr_t"))
        assert [m[0] for m in w.read_until("Z")] == ["C", "C", "Z"]
        w.send(rw.msg(b"E", b"gr_cur\0" + struct.pack("!I", 0)) + rw.msg(b"S"))
        msgs = w.read_until("Z")
        assert [m[0] for m in msgs] == ["E", "Z"], msgs
        err = rw.error_fields(msgs[0][1])
        assert (err["C"], err["M"]) == ("42501", guarded.message("opaque")), err
        w.send(rw.query("rollback; begin; declare gr_cur cursor for select v from ops.gr_t; "
                        "fetch 1 from gr_cur; rollback"))
        msgs = w.read_until("Z")
        assert "D" in [m[0] for m in msgs], msgs
        assert msgs[-1] == ("Z", b"I"), msgs
    finally:
        w.close()

    def recorded() -> bool:
        return any(r["sql"].startswith("(a portal or prepared statement sluice did not see")
                   and r["decision"] == "blocked" for r in guarded.audit())
    sf.wait_for(recorded, 10, "the unseen portal's audit row")


def test_long_texts_are_decided_like_short_ones(guarded):
    """Texts of 64 KiB and more are classified off the agent's loop (one
    worker thread; the sending connection waits, the others go on): the
    decision is the same — a DROP after 300 KB of harmless text is refused,
    the long harmless text runs, in simple and extended protocol."""
    pad = "x" * 300_000
    long_read = f"select count(*) from ops.gr_t where v is distinct from '{pad}'"
    rows = int(guarded.pg.sql("SELECT count(*) FROM ops.gr_t")[0][0])
    conn = connect(guarded.grant)
    try:
        # one simple Query (PQexec) holding both statements
        res = conn.pgconn.exec_(f"{long_read}; drop table ops.gr_t".encode())
        assert res.status == psycopg.pq.ExecStatus.FATAL_ERROR, res.status
        assert res.error_field(psycopg.pq.DiagnosticField.SQLSTATE) == b"42501"
        assert res.error_field(psycopg.pq.DiagnosticField.MESSAGE_PRIMARY) == guarded.message("drop").encode()
        assert guarded.pg.sql("SELECT to_regclass('ops.gr_t') IS NOT NULL") == [("t",)]
        with conn.cursor() as cur:
            cur.execute(long_read)          # no parameters
            assert cur.fetchone() == (rows,)
            cur.execute(long_read + " and %s = 1", (1,), prepare=True)  # Parse/Bind/Execute
            assert cur.fetchone() == (rows,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
                cur.execute(f"update ops.gr_t set v = '{pad}' || %s", ("y",), prepare=True)
            assert e.value.diag.message_primary == guarded.message("update-without-where")
        # the connection is still usable after the refusal
        with conn.cursor() as cur:
            cur.execute("select 1")
            assert cur.fetchone() == (1,)
    finally:
        conn.close()


# --- SQL-level prepared statements ------------------------------------------------------------

def test_execute_follows_what_was_prepared(guarded):
    """EXECUTE is decided with the body PREPARE gave the name: a known read
    runs; a name nobody prepared (or one deallocated since) is opaque."""
    script = ("prepare gr_known as select count(*) from ops.gr_t where id = $1;\n"
              "execute gr_known(1);\n"
              "execute gr_unknown;\n"
              "deallocate gr_known;\n"
              "execute gr_known(1);\n"
              "prepare gr_again as select 5;\n"
              "execute gr_again;\n")
    cmd = ["psql", "-X", "-q", "-A", "-t", "-v", "VERBOSITY=verbose", "-h", guarded.grant["socket_dir"],
           "-d", SAMPLE_DB]
    r = sf.run(cmd, user=SERVICE_A, env={"PGCONNECT_TIMEOUT": "10"}, input=script)
    assert r.stdout == "1\n5\n", r
    assert r.stderr.count(f"ERROR:  42501: {guarded.message('opaque')}") == 2, r


def test_execute_follows_prepare_sent_through_the_extended_protocol(guarded):
    conn = connect(guarded.grant)
    try:
        conn.execute(b"prepare gr_xp as select 11", prepare=True)
        assert conn.execute(b"execute gr_xp", prepare=True).fetchone() == (11,)
        assert conn.execute(b"execute gr_xp").fetchone() == (11,)
        conn.execute(b"deallocate gr_xp", prepare=True)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as e:
            conn.execute(b"execute gr_xp")
        assert e.value.diag.message_primary == guarded.message("opaque")
    finally:
        conn.close()
