"""sluicectl without sluiced: usage errors, `policy check`, an agent that is
not there, `audit` / `audit verify` on a database written here, and the
D-Bus client against a stand-in agent that speaks the org.sluice.Agent1
contract (data/org.sluice.Agent1.xml) on a private bus.

Needs no root, no PostgreSQL and no sluiced. Builds nothing: it runs
$SLUICE_BUILDDIR/ctl/sluicectl and skips when SLUICE_BUILDDIR is not set.

    SLUICE_BUILDDIR=/path/to/build /usr/bin/python3 -m pytest tests/integration/test_ctl_offline.py

The scenarios with the real agent (grants, psql, expiry, audit rows written
by sluiced) are in the other test files.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

NO_BUS = "unix:path=/nonexistent/sluice-ctl-test/bus"
UNREACHABLE = "sluicectl: sluiced is not running or not reachable on the system bus ("


@pytest.fixture(scope="module")
def ctl() -> Path:
    builddir = os.environ.get("SLUICE_BUILDDIR")
    if not builddir:
        pytest.skip("SLUICE_BUILDDIR is not set: point it at a build directory holding ctl/sluicectl")
    p = Path(builddir).resolve() / "ctl" / "sluicectl"
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.skip(f"{p} is not built")
    return p


class Run:
    def __init__(self, p: subprocess.CompletedProcess):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def __repr__(self):
        return f"rc={self.rc}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def run(ctl: Path, *args: str, env: dict | None = None, timeout: float = 30) -> Run:
    """sluicectl ARGS with a small, predictable environment: UTF-8, UTC, no
    SLUICE_CONFIG, and a system bus that does not exist unless env says."""
    e = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TZ": "UTC",
         "DBUS_SYSTEM_BUS_ADDRESS": NO_BUS}
    e.update(env or {})
    return Run(subprocess.run([str(ctl), *args], env=e, capture_output=True, text=True,
                              timeout=timeout))


# --- usage -----------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    ([], None),
    (["frobnicate"], "unknown command 'frobnicate'"),
    (["--frob", "status"], "unknown option '--frob'"),
    (["--config"], "option '--config' needs a value"),
    (["status", "extra"], "unexpected argument 'extra'"),
    (["status", "--all"], "unknown option '--all'"),
    (["grant"], "'grant' needs a subcommand"),
    (["grant", "delete", "x"], "unknown grant subcommand 'delete'"),
    (["grant", "request"], "missing argument"),
    (["grant", "request", "orders-pg", "--ttl"], "option '--ttl' needs a value"),
    (["grant", "request", "orders-pg", "--ttl", "ten minutes"], "--ttl 'ten minutes' is not a duration"),
    (["grant", "request", "orders-pg", "--ttl", "0"], "--ttl must be at least 1s"),
    (["grant", "request", "a", "b"], "unexpected argument 'b'"),
    (["grant", "show"], "missing argument"),
    (["grants", "--all=yes"], "option '--all' takes no value"),
    (["revoke"], "missing argument"),
    (["audit", "--since", "last tuesday"], "--since 'last tuesday' is neither a duration"),
    (["audit", "--since", "2026-02-30T00:00:00Z"], "--since '2026-02-30T00:00:00Z'"),
    (["audit", "--limit", "0"], "--limit '0' is not a number"),
    (["audit", "--limit", "-5"], "--limit '-5' is not a number"),
    (["audit", "--events", "--decision", "blocked"], "--decision filters statements"),
    (["audit", "verify", "--since", "1h"], "unknown option '--since'"),
    (["policy"], "'policy' needs a subcommand"),
    (["policy", "frob"], "unknown policy subcommand 'frob' (expected check or explain)"),
    (["policy", "explain", "--user", "root", "--connection", "c"], "policy explain needs --sql TEXT"),
    (["policy", "explain", "--connection", "c", "--sql", "select 1"], "policy explain needs --user USER"),
    (["policy", "explain", "--user", "root", "--sql", "select 1"], "policy explain needs --connection"),
    (["policy", "explain", "--user", "root", "--connection", "c", "--sql", "select 1", "--group"],
     "option '--group' needs a value"),
    (["policy", "explain", "--user", "root", "--connection", "c", "--sql", "select 1", "extra"],
     "unexpected argument 'extra'"),
    (["policy", "check", "a.conf", "b.conf"], "unexpected argument 'b.conf'"),
    (["reload", "now"], "unexpected argument 'now'"),
])
def test_usage_errors_exit_2(ctl, args, message):
    r = run(ctl, *args)
    assert r.rc == 2, r
    assert r.out == "", r
    if message is None:
        assert r.err.startswith("Usage: sluicectl"), r
    else:
        assert r.err.startswith(f"sluicectl: {message}"), r
        assert "Try 'sluicectl --help'" in r.err


def test_help_lists_every_command_of_this_version(ctl):
    for args in (["--help"], ["-h"], ["help"], ["--json", "--help"]):
        r = run(ctl, *args)
        assert r.rc == 0, r
        assert r.err == ""
        for cmd in ("status", "grant request CONNECTION", "grants [--all]", "grant show ID",
                    "revoke ID", "audit [--since", "audit verify", "policy check [FILE]",
                    "policy explain --user USER --connection CONNECTION --sql TEXT", "reload",
                    "replay GRANT_ID|STATEMENT_ID",
                    "--config FILE", "--json", "--version", "SLUICE_CONFIG"):
            assert cmd in r.out, (cmd, r)


def test_command_help(ctl):
    r = run(ctl, "grant", "request", "--help")
    assert r.rc == 0, r
    assert r.out.startswith("Usage: sluicectl grant request CONNECTION [--ttl DURATION]")
    r = run(ctl, "audit", "verify", "-h")
    assert (r.rc, r.out) == (0, "Usage: sluicectl audit verify [--database PATH] [--json]\n"), r


def test_version(ctl):
    r = run(ctl, "--version")
    assert r.rc == 0, r
    assert re.fullmatch(r"sluicectl \d+\.\d+\.\d+\n", r.out), r


# --- policy check ----------------------------------------------------------------

GOOD = """\
# a small, valid configuration
[agent]
runtime_dir = /run/sluice-ctl-test
database = {d}/sluice.db

[connection orders-pg]
type = postgres
host = 127.0.0.1
dbname = orders
user = sluice_broker
sslmode = disable

[connection ledger-pg]
type = postgres
host = /var/run/postgresql
dbname = ledger
user = sluice_broker

[access orders-readers]
connection = orders-pg
allow = mcp-orders %sluice-readers
max_ttl = 15m
"""


@pytest.fixture
def confdir(tmp_path) -> Path:
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_policy_check_good_file(ctl, confdir):
    f = write(confdir / "sluice.conf", GOOD.format(d=confdir))
    r = run(ctl, "policy", "check", str(f))
    assert r.rc == 0, r
    assert r.err == ""
    lines = r.out.splitlines()
    assert lines[0] == f"{f}: OK"
    assert lines[1].startswith("2 connections, 1 access rule, 0 identities, 0 OIDC issuers"), r


def test_policy_check_defaults_to_the_config_in_use(ctl, confdir):
    f = write(confdir / "sluice.conf", GOOD.format(d=confdir))
    bad = write(confdir / "bad.conf", "[agent]\nnonsense = 1\n")
    # $SLUICE_CONFIG, overridden by --config before or after the command
    r = run(ctl, "policy", "check", env={"SLUICE_CONFIG": str(f)})
    assert (r.rc, r.out.splitlines()[0]) == (0, f"{f}: OK"), r
    r = run(ctl, "--config", str(bad), "policy", "check", env={"SLUICE_CONFIG": str(f)})
    assert r.rc == 1 and f"{bad}:2:" in r.err, r
    r = run(ctl, "policy", "check", "--config", str(f), env={"SLUICE_CONFIG": str(bad)})
    assert r.rc == 0, r


def test_policy_check_reports_every_error_with_file_and_line(ctl, confdir):
    f = write(confdir / "bad.conf", textwrap.dedent("""\
        [agent]
        runtime_dir = /run/sluice
        colour = blue

        [connection orders-pg]
        type = mysql
        host = db.internal
        dbname = orders
        user = sluice_broker

        [access readers]
        connection = orders-pg
        allow = mcp-orders
        max_ttl = forever
        """))
    r = run(ctl, "policy", "check", str(f))
    assert r.rc == 1, r
    assert r.out == ""
    errs = r.err.splitlines()
    assert any(e.startswith(f"{f}:3: ") and "colour" in e for e in errs), r
    assert any(e.startswith(f"{f}:6: ") and "mysql" in e for e in errs), r
    assert any(e.startswith(f"{f}:14: ") and "forever" in e for e in errs), r
    assert errs[-1] == f"sluicectl: {f}: {len(errs) - 1} errors", r


def test_policy_check_takes_masks(ctl, confdir):
    text = GOOD.format(d=confdir) + "\n[mask orders-pg]\nops.customers.ssn = last4\nstrict = yes\n"
    f = write(confdir / "mask.conf", text)
    r = run(ctl, "policy", "check", str(f))
    assert r.rc == 0, r
    text = GOOD.format(d=confdir) + "\n[mask orders-pg]\nops.customers.ssn = hash\n"
    f = write(confdir / "mask.conf", text)
    r = run(ctl, "policy", "check", str(f))
    assert r.rc == 1, r
    line = text.splitlines().index("ops.customers.ssn = hash") + 1
    assert f"{f}:{line}: ops.customers.ssn = hash in [mask orders-pg] needs the key" in r.err, r


def test_policy_check_accepts_guardrails_and_approvals(ctl, confdir):
    text = GOOD.format(d=confdir) + textwrap.dedent("""\
        schemas = ops
        mode = read
        approval = writes
        approval_timeout = 5m
        approval_wait = 30s

        [guardrail orders-pg]
        block = ddl drop functions
        approve = write
        functions = default pg_sleep
        unparsed = block
        """)
    f = write(confdir / "guard.conf", text)
    r = run(ctl, "policy", "check", str(f))
    assert (r.rc, r.err) == (0, ""), r
    assert r.out.splitlines()[0] == f"{f}: OK"


def test_policy_check_missing_file(ctl, confdir):
    r = run(ctl, "policy", "check", str(confdir / "nope.conf"))
    assert r.rc == 1, r
    assert str(confdir / "nope.conf") in r.err


def test_policy_check_json(ctl, confdir):
    good = write(confdir / "sluice.conf", GOOD.format(d=confdir))
    r = run(ctl, "--json", "policy", "check", str(good))
    assert r.rc == 0, r
    j = json.loads(r.out)
    assert j["ok"] is True and j["errors"] == [] and j["file"] == str(good)
    assert (j["connections"], j["access_rules"], j["identities"]) == (2, 1, 0)
    assert j["files"] == [str(good)]

    bad = write(confdir / "bad.conf", "[agent]\ncolour = blue\n")
    r = run(ctl, "policy", "check", str(bad), "--json")
    assert r.rc == 1, r
    j = json.loads(r.out)
    assert j["ok"] is False
    assert len(j["errors"]) == 1 and j["errors"][0].startswith(f"{bad}:2: ")


# --- policy explain --------------------------------------------------------------
#
# Offline: the configuration, the caller's account and groups, the SQL; no
# agent, no database. The account is root (present everywhere, member of
# group root) unless a test says otherwise.

EXPLAIN = """\
[connection orders-pg]
type = postgres
host = 127.0.0.1
dbname = orders
user = sluice_broker
sslmode = disable

[access orders-admins]
connection = orders-pg
allow = %root
schemas = ops sales
approval = writes

[guardrail orders-pg]
block = drop truncate delete-without-where functions
approve = ddl
"""


def line_of(text: str, needle: str, after: str | None = None) -> int:
    lines = text.splitlines()
    start = lines.index(after) if after else 0
    return next(i for i in range(start, len(lines)) if lines[i] == needle) + 1


def explain(ctl, conf: Path, sql: str, *args: str, env: dict | None = None) -> Run:
    return run(ctl, "--config", str(conf), "policy", "explain", "--user", "root",
               "--connection", "orders-pg", "--sql", sql, *args, env=env)


def decisions(out: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"^   decision: +(.*)$", out, re.M)]


@pytest.fixture
def explain_conf(confdir) -> Path:
    return write(confdir / "sluice.conf", EXPLAIN)


def test_explain_allowed(ctl, explain_conf):
    r = explain(ctl, explain_conf, "SELECT * FROM ops.orders WHERE id = 7")
    assert (r.rc, r.err) == (0, ""), r
    access = line_of(EXPLAIN, "[access orders-admins]")
    lines = r.out.splitlines()
    assert lines[0] == (f"access:     root may use orders-pg through [access orders-admins] "
                        f"(rule at {explain_conf}:{access})"), r
    assert lines[1] == (f"grant:      mode write; schema scope ops sales (rule at "
                        f"{explain_conf}:{line_of(EXPLAIN, 'schemas = ops sales')}); approval writes "
                        f"(timeout 15m, window 10m, wait 0s)"), r
    assert lines[2] == (f"guardrail:  [guardrail orders-pg] (rule at {explain_conf}:"
                        f"{line_of(EXPLAIN, '[guardrail orders-pg]')})"), r
    assert "1  SELECT * FROM ops.orders WHERE id = 7" in lines, r
    assert re.search(r"^   classes: +read$", r.out, re.M), r
    assert decisions(r.out) == [f"allowed (rule at {explain_conf}:{access})"], r


def test_explain_blocked(ctl, explain_conf):
    block = line_of(EXPLAIN, "block = drop truncate delete-without-where functions")
    r = explain(ctl, explain_conf, "drop table OPS.Orders")
    assert (r.rc, r.err) == (1, ""), r
    assert re.search(r"^   classes: +ddl drop$", r.out, re.M), r
    assert decisions(r.out) == [f"blocked: drop (rule at {explain_conf}:{block})"], r
    # functions: on the default list, named
    r = explain(ctl, explain_conf, "SELECT pg_read_file('/etc/shadow')")
    assert r.rc == 1, r
    assert re.search(r"^   functions: +pg_read_file$", r.out, re.M), r
    assert decisions(r.out) == [f"blocked: functions: pg_read_file (rule at {explain_conf}:{block})"], r
    # schema scope: outside ops and sales; catalog reads are fine
    r = explain(ctl, explain_conf, "SELECT * FROM billing.invoices")
    assert r.rc == 1, r
    assert decisions(r.out) == [f"blocked: schema-scope: billing.invoices is outside ops, sales "
                                f"(rule at {explain_conf}:{line_of(EXPLAIN, 'schemas = ops sales')})"], r
    r = explain(ctl, explain_conf, "SELECT relname FROM pg_catalog.pg_class")
    assert r.rc == 0, r
    # the pinned setting
    r = explain(ctl, explain_conf, "SET standard_conforming_strings = off")
    assert r.rc == 1, r
    assert decisions(r.out) == ["blocked: standard_conforming_strings is pinned on (rule: built-in "
                                "(sluice reads strings as the server does only with it on))"], r


def test_explain_approval(ctl, explain_conf):
    r = explain(ctl, explain_conf, "UPDATE ops.orders SET state = 'shipped' WHERE id = 7")
    assert r.rc == 1, r
    assert decisions(r.out) == [f"approval required: write (rule at {explain_conf}:"
                                f"{line_of(EXPLAIN, 'approval = writes')})"], r
    r = explain(ctl, explain_conf, "CREATE TABLE ops.notes (id int)")
    assert r.rc == 1, r
    assert decisions(r.out) == [f"approval required: ddl (rule at {explain_conf}:"
                                f"{line_of(EXPLAIN, 'approve = ddl')})"], r


def test_explain_unparsed(ctl, explain_conf, confdir):
    r = explain(ctl, explain_conf, "SELEC * FORM ops.orders")
    assert r.rc == 1, r
    assert re.search(r"^   classes: +\(does not parse\)$", r.out, re.M), r
    assert decisions(r.out) == ['blocked: unparsed: syntax error at or near "SELEC" '
                                '(rule: built-in default (unparsed = block))'], r
    text = EXPLAIN + "unparsed = allow\n"
    f = write(confdir / "allow.conf", text)
    r = explain(ctl, f, "SELEC * FORM ops.orders")
    assert r.rc == 0, r
    assert decisions(r.out) == [f"allowed (rule at {f}:{line_of(text, 'unparsed = allow')})"], r


def test_explain_each_statement(ctl, explain_conf):
    sql = ("SELECT 1;\n  DELETE FROM ops.orders; -- every row\n"
           "PREPARE wipe AS DELETE FROM ops.orders; EXECUTE wipe; " + "SELECT 'x'" + ", 'y'" * 40)
    r = explain(ctl, explain_conf, sql)
    assert r.rc == 1, r
    block = line_of(EXPLAIN, "block = drop truncate delete-without-where functions")
    assert decisions(r.out) == [
        f"allowed (rule at {explain_conf}:{line_of(EXPLAIN, '[access orders-admins]')})",
        f"blocked: delete-without-where (rule at {explain_conf}:{block})",
        f"blocked: delete-without-where (rule at {explain_conf}:{block})",
        f"blocked: delete-without-where (rule at {explain_conf}:{block})",
        f"allowed (rule at {explain_conf}:{line_of(EXPLAIN, '[access orders-admins]')})",
    ], r
    heads = re.findall(r"^(\d+) +(.*)$", r.out, re.M)
    assert [h[0] for h in heads] == ["1", "2", "3", "4", "5"], r
    assert heads[1][1] == "DELETE FROM ops.orders", r
    # long statements are cut to 80 characters with an ellipsis
    assert len(heads[4][1]) == 80 and heads[4][1].endswith("\u2026"), r


def test_explain_json(ctl, explain_conf):
    r = explain(ctl, explain_conf, "SELECT 1; DROP TABLE ops.t; INSERT INTO ops.t VALUES (1)", "--json")
    assert (r.rc, r.err) == (1, ""), r
    j = json.loads(r.out)
    assert [s["statement"] for s in j] == ["SELECT 1", "DROP TABLE ops.t", "INSERT INTO ops.t VALUES (1)"]
    assert [s["decision"] for s in j] == ["allowed", "blocked", "approval"]
    assert j[0]["classes"] == ["read"] and j[0]["class"] is None and j[0]["message"] is None
    block = line_of(EXPLAIN, "block = drop truncate delete-without-where functions")
    assert j[1]["classes"] == ["ddl", "drop"] and j[1]["class"] == "drop" and j[1]["what"] == "drop"
    assert j[1]["rule"] == f"rule at {explain_conf}:{block}"
    assert j[1]["message"] == f"sluice: blocked: drop (rule at {explain_conf}:{block})"
    assert j[2]["class"] == "write"
    assert j[2]["message"].startswith("sluice: approval required: write (rule at ")
    for s in j:
        assert set(s) >= {"statement", "classes", "decision", "class", "what", "rule", "message"}
    r = explain(ctl, explain_conf, "SELECT 1", "--json")
    assert r.rc == 0 and json.loads(r.out)[0]["decision"] == "allowed", r


def test_explain_unknown_user(ctl, explain_conf):
    r = run(ctl, "--config", str(explain_conf), "policy", "explain", "--user", "no-such-user-sluice",
            "--connection", "orders-pg", "--sql", "SELECT 1")
    assert (r.rc, r.out) == (1, ""), r
    assert r.err.startswith("sluicectl: no such user no-such-user-sluice"), r


def test_explain_no_access(ctl, confdir):
    text = EXPLAIN.replace("allow = %root", "allow = @data-readers")
    f = write(confdir / "groups.conf", text)
    r = explain(ctl, f, "SELECT 1")
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == "sluicectl: root may not use orders-pg: no [access] rule allows it\n", r
    # an IdP group of a session that would carry it
    r = explain(ctl, f, "SELECT 1", "--group", "other", "--group=data-readers")
    assert r.rc == 0, r
    r = run(ctl, "--config", str(f), "policy", "explain", "--user", "root", "--connection", "nope",
            "--sql", "SELECT 1")
    assert (r.rc, r.err) == (1, f"sluicectl: there is no [connection nope] in {f}\n"), r


def test_explain_schema_and_read_mode(ctl, confdir):
    text = EXPLAIN.replace("approval = writes", "mode = read")
    f = write(confdir / "read.conf", text)
    r = explain(ctl, f, "SELECT * FROM sales.t; INSERT INTO ops.t VALUES (1)", "--schema", "OPS")
    assert r.rc == 1, r
    assert re.search(r"^grant: +mode read; schema scope ops \(the grant's --schema\); approval none$",
                     r.out, re.M), r
    assert decisions(r.out) == [
        "blocked: schema-scope: sales.t is outside ops (rule: the grant's --schema ops)",
        f"blocked: write (rule at {f}:{line_of(text, 'mode = read')})",
    ], r
    r = explain(ctl, f, "SELECT 1", "--schema", "billing")
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == "sluicectl: schema billing is not in [access orders-admins] schemas (ops, sales)\n", r


def test_explain_identity_without_local_account(ctl, confdir):
    text = EXPLAIN.replace("allow = %root", "allow = mcp-sluice-test") + textwrap.dedent("""\
        [oidc]
        issuer = https://idp.example.com
        audience = urn:sluice

        [identity mcp-sluice-test]
        subject = repo:acme/orders
        uid = 61999
        """)
    f = write(confdir / "identity.conf", text)
    r = run(ctl, "--config", str(f), "policy", "explain", "--user", "mcp-sluice-test",
            "--connection", "orders-pg", "--sql", "SELECT 1")
    assert r.rc == 0, r
    assert r.out.startswith("access:     mcp-sluice-test may use orders-pg"), r


def test_explain_bad_config(ctl, confdir):
    f = write(confdir / "bad.conf", EXPLAIN + "block_all = yes\n")
    r = explain(ctl, f, "SELECT 1")
    assert (r.rc, r.out) == (1, ""), r
    assert f'{f}:{len(EXPLAIN.splitlines()) + 1}: unknown key "block_all"' in r.err, r


# --- no agent ----------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["status"], ["grants"], ["grants", "--all"], ["grant", "request", "orders-pg", "--ttl", "5m"],
    ["grant", "show", "abc"], ["revoke", "abc"], ["reload"], ["--json", "status"],
])
def test_no_agent_is_a_failure_that_says_so(ctl, args):
    r = run(ctl, *args)
    assert r.rc == 1, r
    assert r.out == ""
    assert r.err.startswith(UNREACHABLE), r
    assert "/nonexistent/sluice-ctl-test/bus" in r.err


def test_no_agent_with_a_bus_address_that_makes_no_sense(ctl):
    r = run(ctl, "status", env={"DBUS_SYSTEM_BUS_ADDRESS": "nonsense"})
    assert r.rc == 1, r
    assert r.err.startswith(UNREACHABLE), r


# --- audit, on a database written here ----------------------------------------------
#
# The database is written with Python's sqlite3 following common/auditdb.c:
# schema version 1, application_id "slcA", and each table its own chain,
# hash = SHA-256(prev_hash || "sluice-audit-v1\0" || table "\0" || columns),
# a column being its SQLite type code and either a big-endian 64-bit integer
# or a 64-bit length and the bytes (NULL: the code alone). An independent
# implementation of the chain: if the two disagree, `audit verify` fails here.

SCHEMA_V1 = """
CREATE TABLE grants (
 id INTEGER PRIMARY KEY, grant_id TEXT, created_us INTEGER, uid INTEGER,
 "user" TEXT, connection TEXT, protocol TEXT, expires_us INTEGER,
 "schema" TEXT, reason TEXT, subject TEXT, issuer TEXT, "groups" TEXT,
 prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE statements (
 id INTEGER PRIMARY KEY, ts_us INTEGER, grant_id TEXT, uid INTEGER,
 "user" TEXT, connection TEXT, conn_serial INTEGER, sql TEXT,
 decision TEXT, rule TEXT, outcome TEXT, sqlstate TEXT, error TEXT,
 "rows" INTEGER, duration_us INTEGER, subject TEXT, issuer TEXT, "groups" TEXT,
 prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
CREATE TABLE events (
 id INTEGER PRIMARY KEY, ts_us INTEGER, kind TEXT, grant_id TEXT, uid INTEGER,
 "user" TEXT, connection TEXT, detail TEXT,
 prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
PRAGMA user_version = 1;
PRAGMA application_id = 1936483137;
"""
STATEMENT_COLS = ["id", "ts_us", "grant_id", "uid", "user", "connection", "conn_serial", "sql",
                  "decision", "rule", "outcome", "sqlstate", "error", "rows", "duration_us",
                  "subject", "issuer", "groups"]
EVENT_COLS = ["id", "ts_us", "kind", "grant_id", "uid", "user", "connection", "detail"]

T0 = 1795425639_000000  # 2026-11-23T09:20:39Z


def encode(v) -> bytes:
    if v is None:
        return bytes([5])
    if isinstance(v, int):
        return bytes([1]) + struct.pack(">q", v)
    b = v.encode()
    return bytes([3]) + struct.pack(">Q", len(b)) + b


class AuditWriter:
    def __init__(self, path: Path):
        self.db = sqlite3.connect(path)
        self.db.executescript(SCHEMA_V1)
        self.last = {"statements": bytes(32), "events": bytes(32)}
        self.next_id = {"statements": 1, "events": 1}

    def add(self, table: str, cols: list[str], **values) -> int:
        row = [self.next_id[table]] + [values.get(c) for c in cols[1:]]
        h = hashlib.sha256(self.last[table] + b"sluice-audit-v1\0" + table.encode() + b"\0")
        for v in row:
            h.update(encode(v))
        quoted = ", ".join(f'"{c}"' for c in cols)
        self.db.execute(f"INSERT INTO {table} ({quoted}, prev_hash, hash) VALUES "
                        f"({', '.join('?' * (len(cols) + 2))})",
                        [*row, self.last[table], h.digest()])
        self.last[table] = h.digest()
        self.next_id[table] += 1
        return row[0]

    def statement(self, **v) -> int:
        return self.add("statements", STATEMENT_COLS, **v)

    def event(self, **v) -> int:
        return self.add("events", EVENT_COLS, **v)

    def close(self):
        self.db.commit()
        self.db.close()


@pytest.fixture
def auditdb(tmp_path) -> Path:
    path = tmp_path / "sluice.db"
    w = AuditWriter(path)
    base = dict(grant_id="g-7f3c", uid=61001, user="mcp-orders", connection="orders-pg",
                conn_serial=1, subject="repo:acme/orders", issuer="https://idp", groups="")
    w.statement(ts_us=T0, sql="SELECT count(*) FROM ops.customers", decision="allowed",
                outcome="SELECT 1", rows=1, duration_us=1250, **base)
    w.statement(ts_us=T0 + 2_000000,
                sql="SELECT id,\n       name\n  FROM ops.customers\n WHERE id > 0 ORDER BY name, id DESC",
                decision="allowed", outcome="SELECT 3", rows=3, duration_us=2_500000, **base)
    w.statement(ts_us=T0 + 3_600_000000, sql="SELECT 1", decision="refused",
                rule="grant-ended", sqlstate="57P01",
                error="sluice: grant g-7f3c ended (expired)", **{**base, "conn_serial": 2})
    w.statement(ts_us=T0 + 3_700_000000, sql="SELECT '\x1b[31mred\x1b[0m'", decision="allowed",
                outcome="SELECT 1", rows=1, duration_us=300,
                **{**base, "user": "mcp-billing", "grant_id": "g-0001", "uid": 61002})
    w.event(ts_us=T0 - 1_000000, kind="grant-created", grant_id="g-7f3c", uid=61001,
            user="mcp-orders", connection="orders-pg", detail="ttl 10m")
    w.event(ts_us=T0 + 600_000000, kind="grant-ended", grant_id="g-7f3c", uid=61001,
            user="mcp-orders", connection="orders-pg", detail="expired")
    w.close()
    return path


def test_audit_lists_statements(ctl, auditdb):
    r = run(ctl, "audit", "--database", str(auditdb))
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[0].split() == ["TIME", "USER", "GRANT", "CONNECTION", "DECISION", "OUTCOME",
                                "ROWS", "DURATION", "SQL"]
    assert len(lines) == 5, r
    # aligned columns: every row starts its USER column where the header does
    col = lines[0].index("USER")
    assert all(line[col - 2:col] == "  " and line[col] != " " for line in lines[1:]), r.out
    assert lines[1].split()[:5] == ["2026-11-23", "09:20:39", "mcp-orders", "g-7f3c", "orders-pg"]
    assert "allowed" in lines[1] and "SELECT 1" in lines[1] and "1.2ms" in lines[1]
    assert lines[1].endswith("SELECT count(*) FROM ops.customers")
    # long SQL: one line, cut with an ellipsis in the table
    assert "SELECT id, name FROM ops.customers WHERE id > 0 ORDER BY na\u2026" in lines[2]
    assert lines[2].endswith("\u2026") and "2.50s" in lines[2]
    assert "refused (grant-ended)" in lines[3]
    assert "57P01: sluice: grant g-7f3c ended (expired)" in lines[3]
    # nothing from the database reaches the terminal as an escape sequence
    assert "\x1b" not in r.out and "?[31mred?[0m" in lines[4]


def test_audit_filters(ctl, auditdb):
    db = ["--database", str(auditdb)]
    r = run(ctl, "audit", *db, "--user", "mcp-billing")
    assert r.rc == 0 and len(r.out.splitlines()) == 2 and "mcp-billing" in r.out, r
    r = run(ctl, "audit", *db, "--grant", "g-7f3c", "--decision", "refused")
    assert r.rc == 0 and len(r.out.splitlines()) == 2 and "57P01" in r.out, r
    r = run(ctl, "audit", *db, "--since", "2026-11-23T10:00:00Z")
    assert r.rc == 0 and len(r.out.splitlines()) == 3, r
    # local time (TZ=UTC here), as the table prints it
    r = run(ctl, "audit", *db, "--since", "2026-11-23 10:20:39")
    assert r.rc == 0 and len(r.out.splitlines()) == 3, r
    r = run(ctl, "audit", *db, "--since", "2026-11-23 04:20:39", env={"TZ": "EST5"})
    assert r.rc == 0 and len(r.out.splitlines()) == 5, r
    r = run(ctl, "audit", *db, "--limit", "1")
    assert r.rc == 0 and len(r.out.splitlines()) == 2 and "mcp-billing" in r.out, r
    r = run(ctl, "audit", *db, "--user", "nobody")
    assert (r.rc, r.out) == (0, "No statements match.\n"), r
    # relative to now: all the sample rows are from 2026
    r = run(ctl, "audit", *db, "--since", "3000d")
    assert r.rc == 0 and len(r.out.splitlines()) == 5, r


def test_audit_events(ctl, auditdb):
    r = run(ctl, "audit", "--events", "--database", str(auditdb))
    assert r.rc == 0, r
    lines = r.out.splitlines()
    assert lines[0].split() == ["TIME", "EVENT", "USER", "GRANT", "CONNECTION", "DETAIL"]
    assert "grant-created" in lines[1] and lines[1].endswith("ttl 10m")
    assert "grant-ended" in lines[2] and lines[2].endswith("expired")


def test_audit_json(ctl, auditdb):
    r = run(ctl, "audit", "--json", "--database", str(auditdb))
    assert r.rc == 0, r
    rows = json.loads(r.out)
    assert [s["id"] for s in rows] == [1, 2, 3, 4]
    s = rows[0]
    assert s["time"] == "2026-11-23T09:20:39.000000Z"
    assert (s["user"], s["uid"], s["grant_id"], s["decision"], s["rows"], s["duration_us"]) == \
        ("mcp-orders", 61001, "g-7f3c", "allowed", 1, 1250)
    assert rows[1]["sql"].startswith("SELECT id,\n       name\n")  # whole, as recorded
    assert rows[2]["rows"] is None and rows[2]["sqlstate"] == "57P01" and rows[2]["rule"] == "grant-ended"
    assert rows[3]["sql"] == "SELECT '\x1b[31mred\x1b[0m'"

    r = run(ctl, "--json", "audit", "--events", "--database", str(auditdb))
    events = json.loads(r.out)
    assert [e["kind"] for e in events] == ["grant-created", "grant-ended"]
    r = run(ctl, "audit", "--json", "--user", "nobody", "--database", str(auditdb))
    assert (r.rc, json.loads(r.out)) == (0, []), r


def test_audit_database_from_the_config(ctl, auditdb, confdir):
    conf = write(confdir / "sluice.conf", GOOD.format(d=auditdb.parent))
    r = run(ctl, "--config", str(conf), "audit", "verify")
    assert r.rc == 0, r
    r = run(ctl, "audit", env={"SLUICE_CONFIG": str(conf)})
    assert r.rc == 0 and len(r.out.splitlines()) == 5, r
    # a config that cannot be read names the way out
    r = run(ctl, "audit", env={"SLUICE_CONFIG": str(confdir / "missing.conf")})
    assert r.rc == 1 and "--database" in r.err, r


def test_audit_verify_intact(ctl, auditdb):
    r = run(ctl, "audit", "verify", "--database", str(auditdb))
    assert (r.rc, r.out) == (0, "audit chain intact: 6 rows verified\n"), r
    r = run(ctl, "--json", "audit", "verify", "--database", str(auditdb))
    j = json.loads(r.out)
    assert (r.rc, j["ok"], j["rows_verified"]) == (0, True, 6), r


def test_audit_verify_names_the_edited_row(ctl, auditdb):
    with sqlite3.connect(auditdb) as db:
        db.execute("UPDATE statements SET sql = 'SELECT 2' WHERE id = 3")
    r = run(ctl, "audit", "verify", "--database", str(auditdb))
    assert r.rc == 1, r
    assert r.out == ""
    assert r.err.startswith("sluicectl: audit chain broken: statements row 3 no longer matches"), r
    r = run(ctl, "audit", "verify", "--json", "--database", str(auditdb))
    j = json.loads(r.out)
    assert (r.rc, j["ok"], j["table"], j["first_bad_id"]) == (1, False, "statements", 3), r


def test_audit_verify_notices_a_deleted_row(ctl, auditdb):
    with sqlite3.connect(auditdb) as db:
        db.execute("DELETE FROM events WHERE id = 1")
    r = run(ctl, "audit", "verify", "--database", str(auditdb))
    assert r.rc == 1 and "events row" in r.err, r


def test_audit_database_problems(ctl, tmp_path):
    r = run(ctl, "audit", "--database", str(tmp_path / "missing.db"))
    assert r.rc == 1 and "cannot open the audit database" in r.err, r
    junk = write(tmp_path / "junk.db", "this is not sqlite\n" * 100)
    r = run(ctl, "audit", "verify", "--database", str(junk))
    assert r.rc == 1 and "cannot open the audit database" in r.err, r
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    r = run(ctl, "audit", "--database", str(other))
    assert r.rc == 1 and "not a sluice audit database" in r.err, r


def test_audit_opens_the_database_read_only(ctl, auditdb):
    before = auditdb.read_bytes()
    os.chmod(auditdb, 0o444)
    r = run(ctl, "audit", "--database", str(auditdb))
    assert r.rc == 0, r
    r = run(ctl, "audit", "verify", "--database", str(auditdb))
    assert r.rc == 0, r
    assert auditdb.read_bytes() == before


def test_audit_without_permission_says_so(ctl, auditdb):
    runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if os.geteuid() != 0 or not runuser:
        pytest.skip("needs root and runuser to run sluicectl as nobody")
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    if subprocess.run([runuser, "-u", "nobody", "--", "test", "-x", str(ctl)], env=env).returncode:
        pytest.skip(f"nobody cannot run {ctl}")
    top = Path(tempfile.mkdtemp(prefix="sluice-ctl-"))
    try:
        os.chmod(top, 0o755)
        private = top / "private"
        private.mkdir(mode=0o700)
        shutil.copy(auditdb, private / "sluice.db")
        r = Run(subprocess.run([runuser, "-u", "nobody", "--", str(ctl), "audit", "--database",
                                str(private / "sluice.db")],
                               env=env, capture_output=True, text=True, timeout=30))
        assert r.rc == 1, r
        assert r.err == (f"sluicectl: cannot read the audit database {private / 'sluice.db'}: "
                         "permission denied (it is readable by root and the agent's account)\n"), r
    finally:
        shutil.rmtree(top)


# --- against a stand-in agent on a private bus -------------------------------------------

FAKE_AGENT = r'''
import json, os, sys
import dbus, dbus.service, dbus.mainloop.glib
from gi.repository import GLib

state_dir = sys.argv[1]
IFACE = "org.sluice.Agent1"
T0 = 1795425639_000000


class Error(dbus.DBusException):
    def __init__(self, kind, message):
        super().__init__(message)
        self._dbus_error_name = IFACE + ".Error." + kind


def grant(gid, conn, ttl, schema="", reason="", state="active", end=""):
    d = "/run/sluice/grants/" + gid
    return dbus.Dictionary({
        "id": dbus.String(gid), "state": dbus.String(state), "end_reason": dbus.String(end),
        "user": dbus.String("mcp-orders"), "uid": dbus.UInt32(61001),
        "connection": dbus.String(conn), "protocol": dbus.String("postgres"),
        "socket_dir": dbus.String(d), "socket": dbus.String(d + "/.s.PGSQL.5432"),
        "dbname": dbus.String("orders"), "created_at": dbus.Int64(T0),
        "expires_at": dbus.Int64(T0 + ttl * 1000000), "schema": dbus.String(schema),
        "reason": dbus.String(reason), "connections": dbus.UInt32(0),
    }, signature="sv")


def log(method, *args):
    with open(os.path.join(state_dir, "calls"), "a") as f:
        f.write(json.dumps([method, *args]) + "\n")


def flag(name):
    return os.path.exists(os.path.join(state_dir, name))


class Agent(dbus.service.Object):
    @dbus.service.method(IFACE, in_signature="stsss", out_signature="a{sv}")
    def RequestGrant(self, connection, ttl, schema, reason, session):
        log("RequestGrant", str(connection), int(ttl), str(schema), str(reason), str(session))
        if connection == "secret-pg":
            raise Error("Denied", "mcp-orders may not use connection secret-pg")
        return grant("g-new", connection, int(ttl) or 600, schema, reason)

    @dbus.service.method(IFACE, in_signature="b", out_signature="aa{sv}")
    def ListGrants(self, all):
        log("ListGrants", bool(all))
        if flag("no-grants"):
            return dbus.Array([], signature="a{sv}")
        gs = [grant("g-0001", "orders-pg", 552, schema="ops")]
        if all:
            gs.append(grant("g-0002", "ledger-pg", 3600, reason="audit\x1b]0;x\x07"))
        return dbus.Array(gs, signature="a{sv}")

    @dbus.service.method(IFACE, in_signature="s", out_signature="a{sv}")
    def GetGrant(self, gid):
        log("GetGrant", str(gid))
        if gid == "g-0001":
            return grant("g-0001", "orders-pg", 552, schema="ops", reason="nightly report")
        if gid == "g-old":
            return grant("g-old", "orders-pg", 60, state="ended", end="revoked")
        raise Error("NotFound", "no grant " + gid)

    @dbus.service.method(IFACE, in_signature="s", out_signature="")
    def RevokeGrant(self, gid):
        log("RevokeGrant", str(gid))
        if gid != "g-0001":
            raise Error("NotFound", "no grant " + gid)

    @dbus.service.method(IFACE, in_signature="", out_signature="")
    def Reload(self):
        log("Reload")
        if flag("reload-invalid"):
            raise Error("ConfigInvalid", "/etc/sluice/sluice.conf:3: unknown key \"x\" in [agent]\n"
                        "/etc/sluice/sluice.conf:9: [connection a] is missing required key \"dbname\"")

    # no out_signature: dbus-python derives it, so a broken reply can be sent
    @dbus.service.method(IFACE, in_signature="")
    def GetStatus(self):
        log("GetStatus")
        if flag("status-broken"):
            return dbus.String("nonsense")
        return dbus.Dictionary({
            "version": "0.1.0", "pid": dbus.UInt32(4242), "started_at": dbus.Int64(T0),
            "config": "/etc/sluice/sluice.conf", "grants": dbus.UInt32(2),
            "connections": dbus.UInt32(1),
            "audit": "failing: disk full" if flag("audit-failing") else "ok",
            "audit_queued": dbus.UInt32(7), "database": "/var/lib/sluice/sluice.db",
            "runtime_dir": "/run/sluice",
        }, signature="sv")


dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(os.environ["FAKE_BUS"])
name = dbus.service.BusName(IFACE, bus)
Agent(bus, "/org/sluice/Agent1")
open(os.path.join(state_dir, "ready"), "w").close()
GLib.MainLoop().run()
'''

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={sock}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <!-- as Debian's session.conf: anyone may connect, call and own names -->
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class FakeAgent:
    def __init__(self, root: Path):
        self.root = root
        self.state = root / "state"
        self.state.mkdir()
        sock = root / "bus.sock"
        (root / "bus.conf").write_text(BUS_CONFIG.format(sock=sock))
        self.address = f"unix:path={sock}"
        self.procs: list[subprocess.Popen] = []

    def start(self, with_agent: bool = True):
        if not shutil.which("dbus-daemon"):
            pytest.skip("dbus-daemon is not installed")
        try:
            subprocess.run(["/usr/bin/python3", "-c", "import dbus, dbus.mainloop.glib, gi"],
                           check=True, capture_output=True)
        except subprocess.CalledProcessError:
            pytest.skip("the stand-in agent needs python3-dbus and python3-gi")
        daemon = subprocess.Popen(["dbus-daemon", "--nofork", f"--config-file={self.root / 'bus.conf'}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.procs.append(daemon)
        self._wait(lambda: (self.root / "bus.sock").exists(), "the private bus")
        if not with_agent:
            return
        (self.root / "agent.py").write_text(FAKE_AGENT)
        agent = subprocess.Popen(["/usr/bin/python3", str(self.root / "agent.py"), str(self.state)],
                                 env={**os.environ, "FAKE_BUS": self.address},
                                 stdout=subprocess.DEVNULL, stderr=open(self.root / "agent.log", "w"))
        self.procs.append(agent)
        self._wait(lambda: (self.state / "ready").exists(), "the stand-in agent")

    def _wait(self, pred, what):
        deadline = time.monotonic() + 20
        while not pred():
            if any(p.poll() is not None for p in self.procs):
                log = self.root / "agent.log"
                raise RuntimeError(f"{what} exited\n{log.read_text() if log.exists() else ''}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def set(self, name: str, on: bool = True):
        f = self.state / name
        if on:
            f.touch()
        elif f.exists():
            f.unlink()

    def calls(self) -> list:
        f = self.state / "calls"
        return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []

    def env(self) -> dict:
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> FakeAgent:
    a = FakeAgent(tmp_path_factory.mktemp("fake-agent"))
    try:
        a.start()
        yield a
    finally:
        a.stop()


def test_status(ctl, fake):
    r = run(ctl, "status", env=fake.env())
    assert r.rc == 0, r
    assert r.err == ""
    fields = dict(re.match(r"([a-z ]+):\s+(.*)", line).groups() for line in r.out.splitlines())
    assert fields["sluiced"] == "0.1.0 (pid 4242)"
    assert fields["uptime"].endswith("(since 2026-11-23 09:20:39)")
    assert fields["config"] == "/etc/sluice/sluice.conf"
    assert fields["database"] == "/var/lib/sluice/sluice.db"
    assert fields["grants"] == "2 active, 1 client connection"
    assert fields["audit"] == "ok, 7 records queued"

    r = run(ctl, "status", "--json", env=fake.env())
    j = json.loads(r.out)
    assert (r.rc, j["pid"], j["started_at"], j["audit"]) == (0, 4242, "2026-11-23T09:20:39Z", "ok")
    assert j["uptime_seconds"] > 0


def test_status_fails_while_the_audit_fails(ctl, fake):
    fake.set("audit-failing")
    try:
        r = run(ctl, "status", env=fake.env())
        assert r.rc == 1, r
        assert re.search(r"^audit: +FAILING: disk full, 7 records queued$", r.out, re.M), r
        assert r.err == "sluicectl: the audit database is failing: disk full; sluiced refuses new statements\n"
        r = run(ctl, "--json", "status", env=fake.env())
        assert r.rc == 1 and json.loads(r.out)["audit"] == "failing: disk full", r
    finally:
        fake.set("audit-failing", False)


def test_grant_request(ctl, fake):
    r = run(ctl, "grant", "request", "orders-pg", "--ttl", "10m", "--schema", "ops",
            "--reason", "nightly report", env=fake.env())
    assert r.rc == 0, r
    assert fake.calls()[-1] == ["RequestGrant", "orders-pg", 600, "ops", "nightly report", ""]
    lines = r.out.splitlines()
    assert lines[0].startswith("grant g-new active until 2026-11-23 09:30:39 ("), r
    assert lines[1] == "socket:  /run/sluice/grants/g-new/.s.PGSQL.5432"
    assert lines[2] == 'connect: psql "host=/run/sluice/grants/g-new dbname=orders"'

    # no --ttl: 0, the policy's default
    r = run(ctl, "--json", "grant", "request", "orders-pg", env=fake.env())
    assert r.rc == 0, r
    assert fake.calls()[-1] == ["RequestGrant", "orders-pg", 0, "", "", ""]
    g = json.loads(r.out)
    for key in ("id", "state", "user", "uid", "connection", "socket_dir", "socket", "dbname",
                "created_at", "expires_at", "schema", "reason", "connections", "end_reason"):
        assert key in g, key
    assert (g["id"], g["uid"], g["schema"], g["reason"], g["end_reason"]) == ("g-new", 61001, None, None, None)
    assert (g["created_at"], g["expires_at"]) == ("2026-11-23T09:20:39Z", "2026-11-23T09:30:39Z")


def test_grant_request_names_the_session(ctl, fake):
    # --session, else $SLUICE_SESSION (set by `sluicectl exec`), else "" (the newest)
    r = run(ctl, "grant", "request", "orders-pg", "--session", "s-opt", env={**fake.env(), "SLUICE_SESSION": "s-env"})
    assert r.rc == 0 and fake.calls()[-1][-1] == "s-opt", r
    r = run(ctl, "grant", "request", "orders-pg", env={**fake.env(), "SLUICE_SESSION": "s-env"})
    assert r.rc == 0 and fake.calls()[-1][-1] == "s-env", r
    r = run(ctl, "grant", "request", "orders-pg", "--session", "", env=fake.env())
    assert r.rc == 2 and "--session needs a session id" in r.err, r


def test_grant_request_denied(ctl, fake):
    r = run(ctl, "grant", "request", "secret-pg", env=fake.env())
    assert (r.rc, r.out) == (1, ""), r
    assert r.err == "sluicectl: mcp-orders may not use connection secret-pg\n"


def test_grants_table(ctl, fake):
    r = run(ctl, "grants", env=fake.env())
    assert r.rc == 0, r
    assert fake.calls()[-1] == ["ListGrants", False]
    lines = r.out.splitlines()
    assert lines[0].split() == ["ID", "USER", "CONNECTION", "SCHEMA", "STATE", "EXPIRES",
                                "REMAINING", "CONNS"]
    assert lines[1].split()[:5] == ["g-0001", "mcp-orders", "orders-pg", "ops", "active"]
    assert "2026-11-23 09:29:51" in lines[1]
    r = run(ctl, "grants", "--all", env=fake.env())
    assert r.rc == 0 and fake.calls()[-1] == ["ListGrants", True], r
    assert len(r.out.splitlines()) == 3
    assert "\x1b" not in r.out and "\x07" not in r.out

    r = run(ctl, "grants", "--all", "--json", env=fake.env())
    gs = json.loads(r.out)
    assert [g["id"] for g in gs] == ["g-0001", "g-0002"]
    assert gs[1]["reason"] == "audit\x1b]0;x\x07"  # JSON carries the value as it is

    fake.set("no-grants")
    try:
        r = run(ctl, "grants", env=fake.env())
        assert (r.rc, r.out) == (0, "You have no grants.\n"), r
        r = run(ctl, "grants", "--json", env=fake.env())
        assert (r.rc, json.loads(r.out)) == (0, []), r
    finally:
        fake.set("no-grants", False)


def test_grant_show(ctl, fake):
    r = run(ctl, "grant", "show", "g-0001", env=fake.env())
    assert r.rc == 0, r
    fields = dict(re.match(r"([a-z]+):\s+(.*)", line).groups() for line in r.out.splitlines())
    assert fields["id"] == "g-0001"
    assert fields["state"] == "active"
    assert fields["user"] == "mcp-orders (uid 61001)"
    assert fields["connection"] == "orders-pg (postgres)"
    assert fields["schema"] == "ops"
    assert fields["reason"] == "nightly report"
    assert fields["created"] == "2026-11-23 09:20:39"
    assert fields["expires"].startswith("2026-11-23 09:29:51 (")
    assert fields["socket"] == "/run/sluice/grants/g-0001/.s.PGSQL.5432"
    assert fields["connect"] == 'psql "host=/run/sluice/grants/g-0001 dbname=orders"'

    r = run(ctl, "grant", "show", "g-old", env=fake.env())
    assert r.rc == 0 and re.search(r"^state: +ended \(revoked\)$", r.out, re.M), r
    assert "connect:" not in r.out and "socket:" not in r.out, r

    r = run(ctl, "grant", "show", "g-0001", "--json", env=fake.env())
    assert (r.rc, json.loads(r.out)["reason"]) == (0, "nightly report"), r

    r = run(ctl, "grant", "show", "g-nope", env=fake.env())
    assert (r.rc, r.err) == (1, "sluicectl: no grant g-nope\n"), r


def test_revoke(ctl, fake):
    r = run(ctl, "revoke", "g-0001", env=fake.env())
    assert (r.rc, r.out) == (0, "grant g-0001 revoked\n"), r
    assert fake.calls()[-1] == ["RevokeGrant", "g-0001"]
    r = run(ctl, "--json", "revoke", "g-0001", env=fake.env())
    assert (r.rc, json.loads(r.out)) == (0, {"id": "g-0001", "revoked": True}), r
    r = run(ctl, "revoke", "g-nope", env=fake.env())
    assert (r.rc, r.err) == (1, "sluicectl: no grant g-nope\n"), r


def test_reload(ctl, fake):
    r = run(ctl, "reload", env=fake.env())
    assert (r.rc, r.out) == (0, "sluiced reloaded its configuration\n"), r
    fake.set("reload-invalid")
    try:
        r = run(ctl, "reload", env=fake.env())
        assert r.rc == 1, r
        assert r.err == ('sluicectl: /etc/sluice/sluice.conf:3: unknown key "x" in [agent]\n'
                         '/etc/sluice/sluice.conf:9: [connection a] is missing required key "dbname"\n')
    finally:
        fake.set("reload-invalid", False)


def test_arguments_that_are_not_utf8_are_refused_not_fatal(ctl, fake):
    # libdbus aborts the process on a non-UTF-8 string argument; sluicectl
    # must check first and fail with a message.
    r = Run(subprocess.run([str(ctl), "grant", "show", b"g-\xff".decode("utf-8", "surrogateescape")],
                           env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", **fake.env()},
                           capture_output=True, text=True, timeout=30))
    assert r.rc == 1, r
    assert "not valid UTF-8" in r.err, r


def test_a_bus_without_the_agent_is_unreachable(ctl, tmp_path):
    # A live bus on which nobody owns org.sluice.Agent1 (ServiceUnknown).
    bus = FakeAgent(tmp_path)
    try:
        bus.start(with_agent=False)
        r = run(ctl, "status", env=bus.env())
        assert (r.rc, r.out) == (1, ""), r
        assert r.err.startswith(UNREACHABLE), r
        assert "org.sluice.Agent1" in r.err, r
    finally:
        bus.stop()


def test_a_reply_of_the_wrong_shape_is_a_failure(ctl, fake):
    fake.set("status-broken")
    try:
        r = run(ctl, "status", env=fake.env())
        assert (r.rc, r.out) == (1, ""), r
        assert r.err.startswith("sluicectl: unexpected reply from sluiced to GetStatus"), r
    finally:
        fake.set("status-broken", False)
