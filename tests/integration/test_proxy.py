"""The PostgreSQL proxy of a grant with real clients: psql, psycopg 3
(extended protocol, binary, pipeline, prepared statements, COPY), psycopg2
(simple protocol), pgbench, cancel requests, a raw protocol client for what
libpq will not send (FunctionCall, SSLRequest by hand), startup parameters,
and TLS to the upstream server.

The tests assert what a client sees (rows, errors, SQLSTATEs) and what
happened upstream (pg_stat_activity, the rows in the table)."""
from __future__ import annotations

import hashlib
import os
import select
import signal
import socket
import struct
import subprocess
import threading
import uuid

import psycopg
import psycopg2
import psycopg2.extensions
import pytest

import sluice_fixtures as sf
from sluice_fixtures import SAMPLE_CUSTOMERS, SAMPLE_DB, SERVICE_A
from test_grants import as_uid, connect, socket_of, wait_event, wait_statement


def table_name(prefix: str) -> str:
    """A table name of the test's own (the cluster is shared)."""
    return f"public.{prefix}_{uuid.uuid4().hex[:8]}"


def psql_env(grant: dict) -> dict:
    return {"PGHOST": grant["socket_dir"], "PGDATABASE": SAMPLE_DB, "PGCONNECT_TIMEOUT": "10"}


def psql(run_as, user, grant, sql, *, input=None, args=(), env=None, timeout=120):
    """psql -X -A -t -v ON_ERROR_STOP=1 [-c SQL] as user through grant."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1", *args]
    if sql is not None:
        cmd += ["-c", sql]
    return run_as(user, cmd, env=psql_env(grant) | (env or {}), input=input, timeout=timeout)


# --- a raw protocol 3.0 client ---------------------------------------------------------

class RawPg:
    """Just enough of the frontend protocol to send what libpq never does.
    Connects as user (SO_PEERCRED sees that account)."""

    def __init__(self, path: str, user: str):
        with as_uid(user):
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(15)
            self.s.connect(path)

    def close(self):
        self.s.close()

    def send(self, data: bytes):
        self.s.sendall(data)

    def recv_exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise EOFError(f"connection closed after {len(out)} of {n} bytes")
            out += chunk
        return out

    def message(self) -> tuple[str, bytes]:
        head = self.recv_exact(5)
        kind, length = head[:1].decode(), struct.unpack("!I", head[1:])[0]
        return kind, self.recv_exact(length - 4)

    def startup(self, **params: str) -> list[tuple[str, bytes]]:
        body = struct.pack("!I", 196608)
        for k, v in params.items():
            body += k.encode() + b"\0" + v.encode() + b"\0"
        body += b"\0"
        self.send(struct.pack("!I", len(body) + 4) + body)
        return self.until_ready()

    def until_ready(self) -> list[tuple[str, bytes]]:
        """Messages up to and including ReadyForQuery (or a FATAL)."""
        got = []
        while True:
            kind, body = self.message()
            got.append((kind, body))
            if kind == "Z":
                return got
            if kind == "E" and error_fields(body).get("S") == "FATAL":
                return got

    def query(self, sql: str) -> list[tuple[str, bytes]]:
        payload = sql.encode() + b"\0"
        self.send(b"Q" + struct.pack("!I", len(payload) + 4) + payload)
        return self.until_ready()


def error_fields(body: bytes) -> dict[str, str]:
    """An ErrorResponse/NoticeResponse body as {field code: value}."""
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[part[:1].decode()] = part[1:].decode()
    return out


def data_rows(msgs) -> list[list[str]]:
    rows = []
    for kind, body in msgs:
        if kind != "D":
            continue
        n = struct.unpack("!H", body[:2])[0]
        off, row = 2, []
        for _ in range(n):
            ln = struct.unpack("!i", body[off:off + 4])[0]
            off += 4
            row.append(None if ln < 0 else body[off:off + ln].decode())
            off += max(ln, 0)
        rows.append(row)
    return rows


# --- COPY ------------------------------------------------------------------------------

def test_copy_in_with_psql_and_psycopg(agent, run_as):
    pg = agent.pg
    g = agent.request_grant(SERVICE_A)
    t = table_name("scen_copyin")
    psql(run_as, SERVICE_A, g, f"create table {t} (id int primary key, label text, note text)").check()
    notes = ['', 'a "quoted" note', 'comma, semicolon; tab-free', 'x' * 1000, 'back\\\\slash']
    lines = [f"{i}\tlabel {i}\t{notes[i % 5]}" for i in range(1, 5001)]
    lines.append("5001\tunicode ✓ é\t\\N")
    r = psql(run_as, SERVICE_A, g, None, args=["-c", f"\\copy {t} from stdin"],
             input="\n".join(lines) + "\n\\.\n")
    assert r.rc == 0, r.stderr
    assert pg.sql(f"select count(*), sum(id) from {t}") == [("5001", str(5001 * 5002 // 2))]
    assert pg.sql(f"select label, note is null from {t} where id = 5001") == [("unicode ✓ é", "t")]
    assert pg.sql(f"select note from {t} where id in (1, 2, 4) order by id") == \
        [('a "quoted" note',), ("comma, semicolon; tab-free",), ("back\\slash",)]

    # psycopg's copy: rows written from Python, then read back.
    with connect(SERVICE_A, g) as conn:
        with conn.cursor() as cur:
            with cur.copy(f"copy {t} (id, label) from stdin") as copy:
                for i in range(10001, 12001):
                    copy.write_row((i, f"psycopg {i}"))
        assert conn.execute(f"select count(*) from {t} where id > 10000").fetchone() == (2000,)
    assert pg.sql(f"select count(*) from {t}") == [("7001",)]

    # A COPY that fails halfway lands nothing, and the session goes on.
    with connect(SERVICE_A, g) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.cursor().copy(f"copy {t} (id, label) from stdin") as copy:
                copy.write_row((20000, "new"))
                copy.write_row((1, "duplicate"))
        assert conn.execute("select 'still here'").fetchone() == ("still here",)
    assert pg.sql(f"select count(*) from {t} where id = 20000") == [("0",)]


def test_copy_out_round_trips(agent, run_as):
    pg = agent.pg
    g = agent.request_grant(SERVICE_A)
    t = table_name("scen_copyout")
    pg.psql_super(f"create table {t} as select i as id, md5(i::text) as h, repeat('x', i % 300) as pad "
                  f"from generate_series(1, 200000) i; alter table {t} owner to {pg.broker_user}").check()
    query = f"copy (select * from {t} order by id) to stdout"
    r = psql(run_as, SERVICE_A, g, query)
    assert r.rc == 0, r.stderr
    direct = pg.psql_super(query).check().stdout
    assert len(r.stdout) > 20_000_000
    assert hashlib.sha256(r.stdout.encode()).hexdigest() == hashlib.sha256(direct.encode()).hexdigest()

    # The same with psycopg, in binary.
    with connect(SERVICE_A, g) as conn:
        n, total = 0, 0
        with conn.cursor().copy(f"copy (select id from {t}) to stdout (format binary)") as copy:
            copy.set_types(["int4"])
            for (i,) in copy.rows():
                n += 1
                total += i
        assert (n, total) == (200000, 200000 * 200001 // 2)
        assert conn.execute("select 1").fetchone() == (1,)


# --- extended protocol -------------------------------------------------------------------

def test_psycopg3_parameters_and_binary_results(agent):
    g = agent.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        row = conn.execute("select %s::int + 1, %s::text || '!', %s::numeric * 2, %s::bytea",
                           (41, "hi", "1.25", b"\x00\xff")).fetchone()
        assert row == (42, "hi!", __import__("decimal").Decimal("2.50"), b"\x00\xff")
        cur = conn.cursor(binary=True)
        cur.execute("select id, name, email from ops.customers where id = any(%s) order by id", ([1, 3],))
        assert cur.fetchall() == [(1, "Ada Lovelace", "ada@example.com"),
                                  (3, "Edsger Dijkstra", "edsger@example.com")]
        assert cur.pgresult.fformat(0) == 1  # binary on the wire
        # NULL, arrays, timestamps, binary both ways.
        cur.execute("select %s::int[], %s::text, created_at from ops.orders where id = %s",
                    ([1, None, 3], None, 1))
        arr, nothing, ts = cur.fetchone()
        assert arr == [1, None, 3] and nothing is None and ts.year == 2026
        # executemany (extended protocol, one Parse, many Bind/Execute).
        t = table_name("scen_many")
        conn.execute(f"create table {t} (a int, b text)")
        cur.executemany(f"insert into {t} values (%s, %s)", [(i, str(i)) for i in range(100)])
        assert conn.execute(f"select count(*), sum(a) from {t}").fetchone() == (100, 4950)


def test_psycopg3_prepared_statements(agent):
    g = agent.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        names = [conn.execute("select name from ops.customers where id = %s", (i,), prepare=True).fetchone()[0]
                 for i in (1, 2, 3)]
        assert names == ["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra"]
        # The named statement lives upstream, as it would without sluice.
        assert conn.execute("select statement from pg_prepared_statements").fetchall() == \
            [("select name from ops.customers where id = $1",)]
        # Automatic preparation after prepare_threshold uses.
        conn.prepare_threshold = 2
        for i in range(10):
            assert conn.execute("select %s::int * 2", (i,)).fetchone() == (i * 2,)
        assert conn.execute("select count(*) from pg_prepared_statements").fetchone() == (2,)
        # A statement prepared by name with SQL PREPARE/EXECUTE works too.
        conn.execute("prepare scen_named (int) as select total from ops.orders where id = $1")
        assert conn.execute("execute scen_named (4)").fetchone()[0] == __import__("decimal").Decimal("42.00")
        conn.execute("deallocate scen_named")


def test_psycopg3_pipeline_with_an_error_then_recovery(agent):
    g = agent.request_grant(SERVICE_A)
    t = table_name("scen_pipe")
    with connect(SERVICE_A, g) as conn:
        conn.execute(f"create table {t} (id int primary key)")
        with conn.pipeline():
            curs = [conn.execute(f"insert into {t} values (%s) returning id", (i,)) for i in range(50)]
            sel = conn.execute(f"select count(*) from {t}")
        assert [c.fetchone()[0] for c in curs] == list(range(50))
        assert sel.fetchone() == (50,)

        # An error in the middle of a pipeline: the statements up to the Sync
        # form one implicit transaction, so the one before the error is
        # rolled back and the one after is skipped; the client gets the
        # error and the connection recovers.
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.pipeline():
                conn.execute(f"insert into {t} values (%s)", (100,))
                conn.execute(f"insert into {t} values (%s)", (1,))  # duplicate
                conn.execute(f"insert into {t} values (%s)", (101,))
        assert conn.execute(f"select count(*) from {t}").fetchone() == (50,)
        # With a Sync between them (pipeline.sync()), the first one stays.
        with pytest.raises(psycopg.errors.UniqueViolation):
            with conn.pipeline() as p:
                conn.execute(f"insert into {t} values (%s)", (100,))
                p.sync()
                conn.execute(f"insert into {t} values (%s)", (1,))  # duplicate
                conn.execute(f"insert into {t} values (%s)", (101,))
        assert conn.execute(f"select array_agg(id order by id) from {t} where id >= 100").fetchone() == ([100],)
        with conn.pipeline():
            c = conn.execute("select %s::text", ("recovered",))
        assert c.fetchone() == ("recovered",)

    # Transactions in a pipeline (not autocommit): an error aborts the lot.
    with connect(SERVICE_A, g, autocommit=False) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            with conn.pipeline():
                conn.execute(f"insert into {t} values (200)")
                conn.execute("select 1/0")
        conn.rollback()
        assert conn.execute(f"select count(*) from {t} where id = 200").fetchone() == (0,)


def test_psycopg2_simple_protocol(agent):
    g = agent.request_grant(SERVICE_A)
    with as_uid(SERVICE_A):
        conn = psycopg2.connect(host=g["socket_dir"], dbname=SAMPLE_DB, connect_timeout=10)
    try:
        cur = conn.cursor()
        cur.execute("select id, name from ops.customers where name like %s order by id", ("%a%",))
        assert [r[0] for r in cur.fetchall()] == [1, 2, 3]
        with pytest.raises(psycopg2.errors.DivisionByZero):
            cur.execute("select 1/0")
        assert conn.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR
        conn.rollback()
        cur.execute("select %s || %s", ("a", "b"))
        assert cur.fetchone() == ("ab",)
        # A transaction across statements.
        t = table_name("scen_pg2")
        cur.execute(f"create table {t} (v text)")
        cur.execute(f"insert into {t} values ('one')")
        conn.rollback()
        cur.execute(f"select to_regclass('{t}') is null")
        assert cur.fetchone() == (True,)
        # Notices and notifications pass through.
        cur.execute("do $$ begin raise notice 'hello from upstream'; end $$")
        assert any("hello from upstream" in n for n in conn.notices)
        conn.rollback()
        conn.autocommit = True
        cur.execute("listen scen_chan")
        cur.execute("notify scen_chan, 'payload'")
        conn.poll()
        assert [(n.channel, n.payload) for n in conn.notifies] == [("scen_chan", "payload")]
    finally:
        conn.close()


def test_notifications_and_parameter_changes_reach_an_idle_client(agent):
    g = agent.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        conn.execute("listen scen_async")
        # Another session (the superuser, directly) notifies while we are idle.
        with agent.pg.connect_super() as other:
            other.execute("notify scen_async, 'from elsewhere'")
        # The proxy forwards it at once: our socket becomes readable with no
        # query of ours in flight.
        readable, _, _ = select.select([conn.fileno()], [], [], 10)
        assert readable, "the notification did not reach the idle client"
        conn.pgconn.consume_input()
        n = conn.pgconn.notifies()
        assert n is not None
        assert (n.relname, n.extra) == (b"scen_async", b"from elsewhere")
        # ParameterStatus after SET is relayed: the client library sees it.
        conn.execute("set timezone = 'Asia/Tokyo'")
        assert conn.info.parameter_status("TimeZone") == "Asia/Tokyo"
        conn.execute("set application_name = 'renamed'")
        assert conn.info.parameter_status("application_name") == "renamed"
        # Notices while executing.
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("do $$ begin raise warning 'careful'; end $$")
        assert notices == ["careful"]


@pytest.fixture
def pgbench_grant(agent, run_as):
    g = agent.request_grant(SERVICE_A)
    r = run_as(SERVICE_A, ["pgbench", "-i", "-s", "1", "-q"], env=psql_env(g), timeout=300)
    assert r.rc == 0, r.stderr
    return g


@pytest.mark.parametrize("mode", ["simple", "extended", "prepared"])
def test_pgbench(pgbench_grant, run_as, mode):
    r = run_as(SERVICE_A, ["pgbench", "-n", "-M", mode, "-c", "2", "-t", "200"], env=psql_env(pgbench_grant),
               timeout=300)
    assert r.rc == 0, r.stdout + r.stderr
    assert "number of transactions actually processed: 400/400" in r.stdout, r.stdout
    assert "number of failed transactions: 0 " in r.stdout, r.stdout


# --- cancel ------------------------------------------------------------------------------

def test_cancel_with_psycopg2(agent):
    g = agent.request_grant(SERVICE_A)
    with as_uid(SERVICE_A):
        conn = psycopg2.connect(host=g["socket_dir"], dbname=SAMPLE_DB, connect_timeout=10)
    conn.autocommit = True
    marker = "sluice-cancel-pg2"
    try:
        def cancel_when_running():
            sf.wait_for(lambda: agent.pg.sql(
                f"select count(*) from pg_stat_activity where state = 'active' "
                f"and query like '%{marker[:-1]}' || '{marker[-1]}%'", "postgres") == [("1",)],
                10, "pg_sleep to run")
            # The cancel request is a new connection to the grant socket: as the owner.
            with as_uid(SERVICE_A):
                conn.cancel()

        t = threading.Thread(target=cancel_when_running, daemon=True)
        t.start()
        cur = conn.cursor()
        with pytest.raises(psycopg2.errors.QueryCanceled, match="canceling statement due to user request"):
            cur.execute(f"select pg_sleep(10) /* {marker} */")
        t.join(10)
        cur.execute("select 'usable'")
        assert cur.fetchone() == ("usable",)
    finally:
        conn.close()


def test_cancel_with_psql_sigint(agent):
    g = agent.request_grant(SERVICE_A)
    marker = "sluice-cancel-psql"
    p = subprocess.Popen(sf.as_user_cmd(SERVICE_A, ["psql", "-X", "-A", "-t", "-h", g["socket_dir"], "-d",
                                                    SAMPLE_DB]),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=sf.clean_env(), cwd="/", start_new_session=True)
    try:
        p.stdin.write(f"select pg_sleep(10) /* {marker} */;\n")
        p.stdin.flush()
        sf.wait_for(lambda: agent.pg.sql(
            f"select count(*) from pg_stat_activity where state = 'active' "
            f"and query like '%{marker[:-1]}' || '{marker[-1]}%'", "postgres") == [("1",)], 10, "pg_sleep to run")
        # ^C at the terminal: the foreground process group gets SIGINT.
        os.killpg(p.pid, signal.SIGINT)
        # (psql reading a script stops after a cancelled statement: its rule.)
        out, err = p.communicate(timeout=8)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    assert "canceling statement due to user request" in err, err
    # The grant serves the next session as usual, and nothing still runs upstream.
    r = sf.run(["psql", "-X", "-A", "-t", "-h", g["socket_dir"], "-d", SAMPLE_DB, "-c", "select 'next'"],
               user=SERVICE_A)
    assert (r.rc, r.stdout.strip()) == (0, "next"), r.stderr
    assert agent.pg.sql(f"select count(*) from pg_stat_activity where state = 'active' "
                        f"and query like '%{marker[:-1]}' || '{marker[-1]}%'", "postgres") == [("0",)]


def test_cancel_request_from_another_uid_is_ignored(agent, accounts):
    """A CancelRequest carries a key, but only the grant's owner may send
    one: the same key from another account cancels nothing."""
    g = agent.request_grant(SERVICE_A)
    raw = RawPg(socket_of(g), SERVICE_A)
    try:
        msgs = raw.startup(user="x", database=SAMPLE_DB)
        pid, key = next(struct.unpack("!ii", b) for k, b in msgs if k == "K")
        payload = "select pg_sleep(2)::text || 'not cancelled'".encode() + b"\0"
        raw.send(b"Q" + struct.pack("!I", len(payload) + 4) + payload)
        sf.wait_for(lambda: agent.pg.sql("select count(*) from pg_stat_activity where state = 'active' "
                                         "and query like '%not cancell' || 'ed%'", "postgres") == [("1",)],
                    10, "the statement to run")
        for user in (sf.SERVICE_B, None):
            if user is None:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(socket_of(g))
            else:
                with as_uid(user):
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.connect(socket_of(g))
            s.sendall(struct.pack("!IIii", 16, 80877102, pid, key))
            s.close()
        msgs = raw.until_ready()
        assert [r for r in data_rows(msgs)] == [["not cancelled"]], msgs
    finally:
        raw.close()


# --- what libpq never sends: FunctionCall, SSLRequest by hand ------------------------------

def test_function_call_is_refused_and_the_session_goes_on(agent):
    g = agent.request_grant(SERVICE_A)
    raw = RawPg(socket_of(g), SERVICE_A)
    try:
        msgs = raw.startup(user="someone", database=SAMPLE_DB)
        assert msgs[-1][0] == "Z"
        assert any(k == "K" for k, _ in msgs), "no BackendKeyData"
        # FunctionCall: pg_backend_pid() is oid 2026; no arguments, text result.
        body = struct.pack("!IHHH", 2026, 0, 0, 0)
        raw.send(b"F" + struct.pack("!I", len(body) + 4) + body)
        msgs = raw.until_ready()
        kinds = [k for k, _ in msgs]
        assert kinds == ["E", "Z"], msgs
        err = error_fields(msgs[0][1])
        assert err["C"] == "42501"
        assert err["S"] == "ERROR"
        assert "FunctionCall" in err["M"] and err["M"].startswith("sluice:")
        # Still usable.
        msgs = raw.query("select 'after F'")
        assert data_rows(msgs) == [["after F"]]
    finally:
        raw.close()
    row = wait_statement(agent, lambda s: s["decision"] == "refused", filters=("--grant", g["id"]))
    assert row["sqlstate"] == "42501"
    assert "FunctionCall" in row["sql"] and "FunctionCall" in row["error"]
    wait_statement(agent, lambda s: s["sql"] == "select 'after F'" and s["decision"] == "allowed",
                   filters=("--grant", g["id"]))


def test_ssl_request_is_answered_n(agent):
    g = agent.request_grant(SERVICE_A)
    raw = RawPg(socket_of(g), SERVICE_A)
    try:
        raw.send(struct.pack("!II", 8, 80877103))  # SSLRequest
        assert raw.recv_exact(1) == b"N"
        raw.send(struct.pack("!II", 8, 80877104))  # GSSENCRequest
        assert raw.recv_exact(1) == b"N"
        msgs = raw.startup(user="x", database="y")
        assert msgs[-1][0] == "Z"
        assert data_rows(raw.query("select current_database()")) == [[SAMPLE_DB]]
    finally:
        raw.close()


def test_parameter_status_comes_from_upstream(agent):
    g = agent.request_grant(SERVICE_A)
    raw = RawPg(socket_of(g), SERVICE_A)
    try:
        msgs = raw.startup(user="x", database="y", application_name="scen-app", TimeZone="Europe/Paris")
    finally:
        raw.close()
    params = dict(tuple(b.rstrip(b"\0").decode().split("\0")) for k, b in msgs if k == "S")
    assert params["server_version"].startswith("15")
    assert params["session_authorization"] == agent.pg.broker_user
    assert params["application_name"] == "scen-app"
    assert params["TimeZone"] == "Europe/Paris"


# --- startup --------------------------------------------------------------------------------

def test_replication_startup_is_refused(agent, run_as):
    g = agent.request_grant(SERVICE_A)
    r = run_as(SERVICE_A, ["psql", "-X", "-c", "IDENTIFY_SYSTEM",
                           f"host={g['socket_dir']} dbname={SAMPLE_DB} replication=database"])
    assert r.rc != 0
    assert "FATAL" in r.stderr and "replication connections are not allowed" in r.stderr, r.stderr
    wait_event(agent, "connection.refused", lambda e: e["grant_id"] == g["id"] and "replication" in e["detail"])
    r = run_as(SERVICE_A, ["psql", "-X", "-c", "select 1",
                           f"host={g['socket_dir']} dbname={SAMPLE_DB} replication=true"])
    assert r.rc != 0 and "replication" in r.stderr
    # replication=false is ordinary.
    r = run_as(SERVICE_A, ["psql", "-X", "-A", "-t", "-c", "select 1",
                           f"host={g['socket_dir']} dbname={SAMPLE_DB} replication=false"])
    assert (r.rc, r.stdout.strip()) == (0, "1"), r.stderr


def test_unknown_startup_parameter_is_refused_by_name(agent, run_as):
    g = agent.request_grant(SERVICE_A)
    r = psql(run_as, SERVICE_A, g, "show work_mem", env={"PGOPTIONS": "-c work_mem=1MB"})
    assert r.rc != 0
    assert "FATAL" in r.stderr and '"options"' in r.stderr, r.stderr
    wait_event(agent, "connection.refused", lambda e: e["grant_id"] == g["id"] and '"options"' in e["detail"])
    assert agent.pg.sql("select count(*) from pg_stat_activity where query = 'show work_mem'", "postgres") == [("0",)]
    # An allowed one passes through.
    r = psql(run_as, SERVICE_A, g, "show application_name", env={"PGAPPNAME": "scen-report"})
    assert (r.rc, r.stdout.strip()) == (0, "scen-report"), r.stderr


def test_client_user_and_password_are_ignored(agent, run_as):
    g = agent.request_grant(SERVICE_A)
    r = run_as(SERVICE_A, ["psql", "-X", "-A", "-t", "-c", "select current_user, session_user, current_database()",
                           f"host={g['socket_dir']} user=postgres password=x dbname=template1"])
    assert r.rc == 0, r.stderr
    broker = agent.pg.broker_user
    assert r.stdout.strip() == f"{broker}|{broker}|{SAMPLE_DB}"


# --- TLS upstream ------------------------------------------------------------------------------

def test_tls_upstream_verify_full(agent_factory, run_as):
    agent = agent_factory(tls=True)
    g = agent.request_grant(SERVICE_A)
    r = psql(run_as, SERVICE_A, g, "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()")
    assert r.rc == 0, r.stderr + agent.log()
    ssl, version = r.stdout.strip().split("|")
    assert ssl == "t" and version.startswith("TLSv1.")
    r = psql(run_as, SERVICE_A, g, "select count(*) from ops.customers")
    assert (r.rc, r.stdout.strip()) == (0, str(SAMPLE_CUSTOMERS)), r.stderr


def test_tls_upstream_with_the_wrong_ca(agent_factory, sandbox, run_as):
    other = sf.TestCA(sandbox / f"other-ca-{uuid.uuid4().hex[:6]}", "someone else's CA")
    agent = agent_factory(tls=True, connection={"sslrootcert": str(other.cert)})
    g = agent.request_grant(SERVICE_A)
    r = psql(run_as, SERVICE_A, g, "select 1")
    assert r.rc != 0
    assert "FATAL" in r.stderr
    assert "certificate" in r.stderr and "verif" in r.stderr, r.stderr
    assert r.stdout == ""


def _another_name_for_localhost() -> str:
    """A host name that resolves to 127.0.0.1 but is not in the test
    server's certificate (which names localhost and 127.0.0.1)."""
    name = socket.gethostname()
    try:
        addrs = {a[4][0] for a in socket.getaddrinfo(name, None, socket.AF_INET)}
    except socket.gaierror:
        addrs = set()
    if name in ("localhost", "") or addrs != {"127.0.0.1"}:
        pytest.skip(f"no host name other than localhost resolves to 127.0.0.1 here ({name}: {addrs})")
    return name


def test_tls_upstream_with_the_wrong_host_name(agent_factory, run_as):
    name = _another_name_for_localhost()
    agent = agent_factory(tls=True, connection={"host": name})
    g = agent.request_grant(SERVICE_A)
    r = psql(run_as, SERVICE_A, g, "select 1")
    assert r.rc != 0
    assert "FATAL" in r.stderr
    assert "TLS" in r.stderr and "hostname mismatch" in r.stderr, r.stderr


def test_tls_required_upstream_refuses_plaintext(agent_factory, run_as):
    """sslmode=disable against a server that takes TLS only: the server's
    refusal reaches the client, named."""
    agent = agent_factory(tls=True, connection={"sslmode": "disable", "sslrootcert": None})
    g = agent.request_grant(SERVICE_A)
    r = psql(run_as, SERVICE_A, g, "select 1")
    assert r.rc != 0
    assert "FATAL" in r.stderr and "no encryption" in r.stderr, r.stderr
