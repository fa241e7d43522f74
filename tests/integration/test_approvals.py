"""Approvals end to end, with two real accounts: sluicet-a asks (a grant,
a statement) and sluicet-b, an [agent] approver, decides with `sluicectl
approve` / `deny`, against the real sluiced, D-Bus and PostgreSQL.

What each side sees is checked: exec's and psql's messages and exit
codes, `sluicectl approvals` (table and --json), what approve and deny
print, what runs (or not) in the database, and the audit."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Sequence

import pytest

import sluice_fixtures as sf
from conftest import CONNECTION_NAME, SAMPLE_DB, SERVICE_A, SERVICE_B
from test_exec import (  # noqa: F401  (fixtures used by name)
    Work, _default_signals, ctl_json, pam_dir, pam_module, start_exec, work,
)

APPROVAL_KEYS = ("id", "kind", "state", "grant", "user", "uid", "connection", "sql", "what", "rule",
                 "reason", "created_at", "expires_at", "decided_at", "decided_by", "note",
                 "window_ends_at")
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
APPROVE_CMD = re.compile(r"sluicectl approve ([A-Za-z0-9]+)")


# --- helpers ------------------------------------------------------------------------------

def approvals(a, *args, user: str = SERVICE_B) -> list:
    return ctl_json(a, "approvals", *args, user=user)


def wait_approval(a, pred=lambda ap: True, *, user: str = SERVICE_B, timeout: float = 20,
                  all_: bool = False) -> dict:
    """The first approval user sees (pending, or with all_ every recent one)
    that matches pred, once there is one."""
    found: list = []

    def seen():
        found[:] = [ap for ap in approvals(a, *(["--all"] if all_ else []), user=user) if pred(ap)]
        return bool(found)
    sf.wait_for(seen, timeout, "the approval", interval=0.1)
    return found[0]


def start_exec_in_session(a, cmd: Sequence[str], *args: str, user: str = SERVICE_A) -> subprocess.Popen:
    """sluicectl exec in the session the agent opened for user at start
    (SLUICE_SESSION, no PAM): exec requests the grant, waits, runs cmd."""
    full = [str(a.ctl_binary), "exec", "--connection", CONNECTION_NAME, *args, "--", *cmd]
    return subprocess.Popen(sf.as_user_cmd(user, full),
                            env=sf.clean_env({**a.env(), "SLUICE_SESSION": a.sessions[user]}),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd="/", preexec_fn=_default_signals)


def finish(p: subprocess.Popen, timeout: float = 60) -> sf.Result:
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    return sf.Result(p.returncode, out, err)


def sluicectl_pid(p: subprocess.Popen, timeout: float = 10) -> int:
    """The sluicectl under runuser (p runs `runuser -u USER -- sluicectl ...`)."""
    found: list = []

    def child():
        try:
            kids = Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()
        except FileNotFoundError:
            return False
        for k in kids:
            try:
                if b"sluicectl" in Path(f"/proc/{k}/cmdline").read_bytes():
                    found[:] = [int(k)]
                    return True
            except FileNotFoundError:
                pass
        return False
    sf.wait_for(child, timeout, "sluicectl under runuser")
    return found[0]


def grants_of(a, user: str = SERVICE_A) -> list:
    return ctl_json(a, "grants", user=user)


def audit(a, *filters) -> list:
    return ctl_json(a, "audit", "--database", str(a.database), *filters)


def wait_audit(a, pred, *filters, count: int = 1, timeout: float = 15) -> list:
    """Audited statements matching pred once there are count of them (the
    audit writer batches)."""
    found: list = []

    def seen():
        found[:] = [s for s in audit(a, *filters) if pred(s)]
        return len(found) >= count
    sf.wait_for(seen, timeout, f"{count} matching statement(s) in the audit", interval=0.1)
    return found


def wait_events(a, pred, count: int = 1, timeout: float = 15) -> list:
    found: list = []

    def seen():
        found[:] = [e for e in audit(a, "--events") if pred(e)]
        return len(found) >= count
    sf.wait_for(seen, timeout, f"{count} matching event(s) in the audit", interval=0.1)
    return found


PSQL_SELECT = ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "select 1"]


@pytest.fixture
def grant_agent(agent_factory):
    """[access] approval = grant; sluicet-b approves."""
    return agent_factory(access={"approval": "grant", "approval_timeout": "5m"},
                         agent={"approvers": SERVICE_B})


# --- grant-level approval -------------------------------------------------------------------

def test_exec_waits_for_the_approver_then_runs_the_command(grant_agent):
    a = grant_agent
    p = start_exec_in_session(a, PSQL_SELECT, "--reason", "nightly fix")
    try:
        ap = wait_approval(a, lambda x: x["kind"] == "grant")
        gid, aid = ap["grant"], ap["id"]
        assert (ap["state"], ap["user"], ap["connection"], ap["reason"]) == \
            ("pending", SERVICE_A, CONNECTION_NAME, "nightly fix")
        assert p.poll() is None, "exec did not wait"

        # the requester sees the pending grant and its approval
        [g] = grants_of(a)
        assert (g["id"], g["state"], g["approval"], g["socket_dir"]) == (gid, "pending", aid, "")
        r = a.ctl("grants", user=SERVICE_A)
        assert r.rc == 0 and f"pending (approval {aid})" in r.stdout, r
        r = a.ctl("grant", "show", gid, user=SERVICE_A)
        assert r.rc == 0, r
        assert re.search(rf"^approval: +{aid} \(waiting: an approver runs sluicectl approve {aid}\)$",
                         r.stdout, re.M), r.stdout

        # the approver's table
        r = a.ctl("approvals", user=SERVICE_B)
        assert r.rc == 0, r
        head, *rows = r.stdout.splitlines()
        assert head.split() == ["ID", "KIND", "STATE", "USER", "CONNECTION", "WHAT", "AGE", "EXPIRES", "SQL"]
        [row] = [x for x in rows if x.startswith(aid)]
        assert row.split()[:5] == [aid, "grant", "pending", SERVICE_A, CONNECTION_NAME], row
        assert " in " in row  # EXPIRES: "in 4m59s"

        r = a.ctl("approve", aid, "--note", "ok", user=SERVICE_B)
        assert (r.rc, r.stdout) == (0, f"approved {aid} (grant {gid} on {CONNECTION_NAME} for {SERVICE_A} is active)\n"), r
        res = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert (res.rc, res.stdout) == (0, "1\n"), res
    assert (f"sluicectl: grant {gid} on {CONNECTION_NAME} is waiting for approval {aid} "
            f"(an approver runs: sluicectl approve {aid})\n") in res.stderr, res

    # decided: gone from the pending list, in --all with who and why
    assert [x for x in approvals(a) if x["id"] == aid] == []
    [done] = [x for x in approvals(a, "--all") if x["id"] == aid]
    assert (done["state"], done["decided_by"], done["note"]) == ("approved", SERVICE_B, "ok")
    assert RFC3339.fullmatch(done["decided_at"]), done
    r = a.ctl("approvals", "--all", user=SERVICE_B)
    head, *rows = r.stdout.splitlines()
    assert head.split() == ["ID", "KIND", "STATE", "USER", "CONNECTION", "WHAT", "AGE", "EXPIRES",
                            "DECIDED_BY", "NOTE", "SQL"]
    [row] = [x for x in rows if x.startswith(aid)]
    assert row.split()[:3] == [aid, "grant", "approved"], row
    assert SERVICE_B in row.split() and "ok" in row.split(), row
    # exec revoked the grant when the command exited
    assert grants_of(a) == []
    # every step is in the audit, with the approver
    ev = wait_events(a, lambda e: e["grant_id"] == gid and e["kind"].startswith("approval."), count=2)
    kinds = [e["kind"] for e in ev]
    assert kinds[:2] == ["approval.requested", "approval.approved"], ev
    assert SERVICE_B in ev[1]["detail"], ev


def test_a_denied_grant_never_runs_the_command(grant_agent, sandbox, accounts):
    a = grant_agent
    w = Work(sandbox, accounts[SERVICE_A])
    marker = w.path("ran")
    p = start_exec_in_session(a, ["touch", str(marker)])
    try:
        ap = wait_approval(a)
        r = a.ctl("deny", ap["id"], "--note", "not during the freeze", user=SERVICE_B)
        assert (r.rc, r.stdout) == (0, f"denied {ap['id']} (grant {ap['grant']} on {CONNECTION_NAME} "
                                       f"for {SERVICE_A} has ended)\n"), r
        res = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert (res.rc, res.stdout) == (1, ""), res
    assert (f"sluicectl: grant {ap['grant']} was denied by {SERVICE_B}: not during the freeze\n"
            in res.stderr), res
    assert not marker.exists()
    assert grants_of(a) == []
    [done] = [x for x in approvals(a, "--all") if x["id"] == ap["id"]]
    assert (done["state"], done["decided_by"], done["note"]) == ("denied", SERVICE_B, "not during the freeze")
    # deciding twice: the agent says it is no longer pending
    r = a.ctl("approve", ap["id"], user=SERVICE_B)
    assert (r.rc, r.stdout) == (1, ""), r
    assert r.stderr.startswith("sluicectl: ") and "denied" in r.stderr, r


def test_an_undecided_grant_expires(agent_factory):
    a = agent_factory(access={"approval": "grant", "approval_timeout": "10s"},
                      agent={"approvers": SERVICE_B})
    t0 = time.monotonic()
    p = start_exec_in_session(a, PSQL_SELECT)
    ap = wait_approval(a)
    res = finish(p, timeout=40)
    took = time.monotonic() - t0
    assert (res.rc, res.stdout) == (1, ""), res
    assert f"sluicectl: grant {ap['grant']} was not decided in time: approval expired\n" in res.stderr, res
    assert 8 <= took < 30, took
    [done] = [x for x in approvals(a, "--all") if x["id"] == ap["id"]]
    assert (done["state"], done["decided_by"]) == ("expired", None), done
    r = a.ctl("approve", ap["id"], user=SERVICE_B)
    assert r.rc == 1, r


def test_a_signal_withdraws_the_waiting_exec(grant_agent):
    a = grant_agent
    p = start_exec_in_session(a, PSQL_SELECT)
    try:
        ap = wait_approval(a)
        os.kill(sluicectl_pid(p), signal.SIGTERM)
        res = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert (res.rc, res.stdout) == (128 + signal.SIGTERM, ""), res
    assert f"stopped by SIGTERM while grant {ap['grant']} waited for approval" in res.stderr, res
    assert grants_of(a) == []
    [done] = [x for x in approvals(a, "--all") if x["id"] == ap["id"]]
    assert done["state"] == "withdrawn", done
    # the session opened elsewhere stays
    assert [s["id"] for s in ctl_json(a, "sessions", user=SERVICE_A)] == [a.sessions[SERVICE_A]]


def test_exec_with_a_token_waits_through_pam(agent_factory, pam_dir, work):
    """The whole path: PAM opens the session, the grant waits, the approver
    says yes, the command runs, and the session closes at the end."""
    a = agent_factory(sessions=(), access={"approval": "grant"}, agent={"approvers": SERVICE_B})
    work.write_token(a.idp)
    p = start_exec(a, pam_dir, work, PSQL_SELECT)
    try:
        ap = wait_approval(a)
        r = a.ctl("approve", ap["id"], user=SERVICE_B)
        assert r.rc == 0, r
        res = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert (res.rc, res.stdout) == (0, "1\n"), res
    assert f"is waiting for approval {ap['id']}" in res.stderr, res
    assert ctl_json(a, "sessions", "--all") == [] and ctl_json(a, "grants", "--all") == []


def test_grant_request_prints_the_pending_grant_and_waits_with_wait(grant_agent):
    a = grant_agent
    r = a.ctl("grant", "request", CONNECTION_NAME, user=SERVICE_A)
    assert r.rc == 0, r
    m = re.fullmatch(r"grant ([0-9a-f]+) pending: waiting for approval ([A-Za-z0-9]+) "
                     r"\(an approver runs: sluicectl approve \2\)\n", r.stdout)
    assert m, r.stdout
    gid, aid = m.groups()
    g = ctl_json(a, "grant", "show", gid, user=SERVICE_A)
    assert (g["state"], g["approval"], g["socket_dir"]) == ("pending", aid, "")
    assert a.ctl("deny", aid, user=SERVICE_B).rc == 0

    # --wait: the decision comes from another thread
    box: dict = {}

    def approver():
        ap = wait_approval(a)
        box["ap"] = ap
        box["r"] = a.ctl("approve", ap["id"], "--note", "go", user=SERVICE_B)
    t = threading.Thread(target=approver)
    t.start()
    r = a.ctl("--json", "grant", "request", CONNECTION_NAME, "--wait", user=SERVICE_A, timeout=60)
    t.join()
    assert box["r"].rc == 0, box["r"]
    assert r.rc == 0, r
    g = json.loads(r.stdout)
    assert (g["state"], g["approval"], g["id"]) == ("active", box["ap"]["id"], box["ap"]["grant"])
    assert Path(g["socket"]).exists()
    rr = sf.psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1")
    assert (rr.rc, rr.stdout) == (0, "1\n"), rr
    r = a.ctl("grant", "show", g["id"], user=SERVICE_A)
    assert re.search(rf"^approval: +{box['ap']['id']} approved by {SERVICE_B} at [-0-9: ]+: go$",
                     r.stdout, re.M), r.stdout

    # --wait and a denial: exit 1 with the reason
    def denier():
        ap = wait_approval(a)
        box["r"] = a.ctl("deny", ap["id"], user=SERVICE_B)
    t = threading.Thread(target=denier)
    t.start()
    r = a.ctl("grant", "request", CONNECTION_NAME, "--wait", user=SERVICE_A, timeout=60)
    t.join()
    assert (r.rc, r.stdout) == (1, ""), r
    assert re.search(rf"sluicectl: grant [0-9a-f]+ was denied by {SERVICE_B}\n", r.stderr), r


def test_a_signal_withdraws_grant_request_wait(grant_agent):
    a = grant_agent
    full = [str(a.ctl_binary), "grant", "request", CONNECTION_NAME, "--wait"]
    p = subprocess.Popen(sf.as_user_cmd(SERVICE_A, full), env=sf.clean_env(a.env()),
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, cwd="/", preexec_fn=_default_signals)
    try:
        ap = wait_approval(a)
        os.kill(sluicectl_pid(p), signal.SIGINT)
        res = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert (res.rc, res.stdout) == (128 + signal.SIGINT, ""), res
    assert (f"sluicectl: stopped by SIGINT while grant {ap['grant']} waited for approval: "
            "withdrawing it\n") in res.stderr, res
    assert grants_of(a) == []
    [done] = [x for x in approvals(a, "--all") if x["id"] == ap["id"]]
    assert done["state"] == "withdrawn", done


def test_nobody_approves_their_own_request(agent_factory):
    """sluicet-a is an approver too, and still cannot say yes to itself."""
    a = agent_factory(access={"approval": "grant", "allow": f"{SERVICE_A} {SERVICE_B}"},
                      agent={"approvers": f"{SERVICE_A} {SERVICE_B}"})
    g = a.request_grant(SERVICE_A)
    aid = g["approval"]
    for verb in ("approve", "deny"):
        r = a.ctl(verb, aid, "--note", "me", user=SERVICE_A)
        assert (r.rc, r.stdout) == (1, ""), r
        assert r.stderr.startswith("sluicectl: ") and "own" in r.stderr, r
    assert ctl_json(a, "grant", "show", g["id"], user=SERVICE_A)["state"] == "pending"
    [ap] = approvals(a, user=SERVICE_A)
    assert (ap["id"], ap["state"]) == (aid, "pending")
    # the other approver may
    r = a.ctl("approve", aid, user=SERVICE_B)
    assert r.rc == 0, r
    assert ctl_json(a, "grant", "show", g["id"], user=SERVICE_A)["state"] == "active"


def test_a_non_approver_cannot_decide(agent_factory):
    a = agent_factory(access={"approval": "grant", "allow": f"{SERVICE_A} {SERVICE_B}"},
                      agent={"approvers": SERVICE_A})
    g = a.request_grant(SERVICE_B)
    aid = g["approval"]
    # sluicet-b sees its own request, and may not decide it
    assert [x["id"] for x in approvals(a, user=SERVICE_B)] == [aid]
    r = a.ctl("approve", aid, user=SERVICE_B)
    assert (r.rc, r.stdout) == (1, ""), r
    assert r.stderr.startswith("sluicectl: "), r
    # an account that is neither requester nor approver sees nothing
    r = a.ctl("approvals", user="nobody")
    assert (r.rc, r.stdout) == (0, "No pending approvals.\n"), r
    r = a.ctl("deny", aid, user="nobody")
    assert r.rc == 1, r
    assert ctl_json(a, "grant", "show", g["id"], user=SERVICE_B)["state"] == "pending"
    r = a.ctl("approve", aid, "--note", "fine", user=SERVICE_A)
    assert r.rc == 0, r


def test_usage_errors(grant_agent):
    a = grant_agent
    for args in (["approve"], ["deny"], ["approve", ""], ["approve", "X", "--note", "n" * 1025],
                 ["approvals", "extra"], ["approve", "X", "--bogus"]):
        r = a.ctl(*args, user=SERVICE_B)
        assert (r.rc, r.stdout) == (2, ""), (args, r)
    r = a.ctl("approve", "000000000000", user=SERVICE_B)
    assert (r.rc, r.stdout) == (1, ""), r
    assert r.stderr.startswith("sluicectl: "), r


def test_approvals_json(grant_agent):
    a = grant_agent
    g = a.request_grant(SERVICE_A, reason="ticket 42")
    [ap] = approvals(a)
    for k in APPROVAL_KEYS:
        assert k in ap, (k, ap)
    assert (ap["id"], ap["kind"], ap["state"], ap["grant"], ap["user"], ap["connection"]) == \
        (g["approval"], "grant", "pending", g["id"], SERVICE_A, CONNECTION_NAME)
    assert ap["uid"] == g["uid"] and ap["reason"] == "ticket 42"
    assert ap["sql"] is None and ap["decided_at"] is None and ap["decided_by"] is None
    assert ap["note"] is None and ap["window_ends_at"] is None
    assert RFC3339.fullmatch(ap["created_at"]) and RFC3339.fullmatch(ap["expires_at"]), ap
    assert ap["expires_at"] > ap["created_at"]
    r = a.ctl("--json", "deny", ap["id"], "--note", "no", user=SERVICE_B)
    assert r.rc == 0, r
    d = json.loads(r.stdout)
    assert (d["id"], d["state"], d["decided_by"], d["note"]) == (ap["id"], "denied", SERVICE_B, "no")
    assert approvals(a) == []
    [d] = approvals(a, "--all")
    assert (d["state"], d["decided_by"], d["note"]) == ("denied", SERVICE_B, "no")
    assert RFC3339.fullmatch(d["decided_at"]), d
    # the requester sees its own, decided, too
    assert [x["id"] for x in approvals(a, "--all", user=SERVICE_A)] == [ap["id"]]
    r = a.ctl("approvals", user=SERVICE_B)
    assert (r.rc, r.stdout) == (0, "No pending approvals.\n"), r


# --- statement-level approval ---------------------------------------------------------------

@pytest.fixture
def table(pg):
    """A fresh table in ops owned by the broker: (name, count_rows())."""
    name = f"ops.appr_{uuid.uuid4().hex[:8]}"
    pg.sql(f"CREATE TABLE {name} (id integer, note text); ALTER TABLE {name} OWNER TO {pg.broker_user}")

    def count() -> int:
        return int(pg.sql(f"SELECT count(*) FROM {name}")[0][0])
    yield name, count
    pg.sql(f"DROP TABLE IF EXISTS {name}")


def statement_agent(agent_factory, **access):
    return agent_factory(access={"approval_window": "5m", **access}, agent={"approvers": SERVICE_B},
                         sections=[(f"guardrail {CONNECTION_NAME}", {"approve": "write"})])


def psql(g, sql: str, **kw) -> sf.Result:
    return sf.psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, sql, extra_args=["-v", "VERBOSITY=verbose"], **kw)


def refused_for_approval(r: sf.Result) -> str:
    """The approval id a refused statement names (with the command)."""
    assert r.rc != 0, r
    assert "ERROR:  42501: sluice: " in r.stderr, r
    m = APPROVE_CMD.search(r.stderr)
    assert m, r.stderr
    assert r.stderr.count(m.group(1)) >= 2, r.stderr  # the id, and the command naming it
    return m.group(1)


def test_an_approved_statement_runs_once(agent_factory, table):
    name, count = table
    a = statement_agent(agent_factory)
    g = a.request_grant(SERVICE_A)
    insert = f"INSERT INTO {name} VALUES (1, 'approved once')"

    # reads need nobody
    r = psql(g, f"SELECT count(*) FROM {name}")
    assert (r.rc, r.stdout) == (0, "0\n"), r
    aid = refused_for_approval(psql(g, insert))
    assert count() == 0
    [ap] = approvals(a)
    assert (ap["id"], ap["kind"], ap["state"], ap["grant"], ap["user"], ap["sql"]) == \
        (aid, "statement", "pending", g["id"], SERVICE_A, insert)
    assert "write" in ap["what"] and ap["rule"].startswith("rule at "), ap
    # the approver's table shows the SQL
    r = a.ctl("approvals", user=SERVICE_B)
    [row] = [x for x in r.stdout.splitlines() if x.startswith(aid)]
    assert row.split()[1:3] == ["statement", "pending"] and "INSERT INTO" in row, row
    # asking again before a decision names the same approval
    assert refused_for_approval(psql(g, insert)) == aid

    r = a.ctl("approve", aid, "--note", "one row", user=SERVICE_B)
    assert r.rc == 0, r
    assert re.fullmatch(rf"approved {aid} \(statement on grant {g['id']}: runs once before \d\d:\d\d:\d\d\)\n",
                        r.stdout), r.stdout
    [ap] = approvals(a, "--all")
    assert ap["state"] == "approved" and RFC3339.fullmatch(ap["window_ends_at"]), ap

    # once
    r = psql(g, insert)
    assert r.rc == 0, r
    assert count() == 1
    [ap] = [x for x in approvals(a, "--all") if x["id"] == aid]
    assert ap["state"] == "used", ap
    # the third try needs a new approval
    again = refused_for_approval(psql(g, insert))
    assert again != aid
    assert count() == 1
    # another text needs its own
    other = refused_for_approval(psql(g, f"INSERT INTO {name} VALUES (2, 'other')"))
    assert other not in (aid, again)
    # approving one text does not let a different one through
    assert a.ctl("approve", other, user=SERVICE_B).rc == 0
    assert refused_for_approval(psql(g, f"INSERT INTO {name} VALUES (2, 'other') ")) not in (aid, again, other)
    assert count() == 1
    # and the approved text itself runs
    r = psql(g, f"INSERT INTO {name} VALUES (2, 'other')")
    assert r.rc == 0, r
    assert count() == 2

    # the audit: refused for approval, then allowed once, then refused again
    rows = wait_audit(a, lambda s: s["sql"] == insert, "--grant", g["id"], count=4)
    assert [s["decision"] for s in rows] == ["approval", "approval", "allowed", "approval"], rows
    assert all(s["sqlstate"] == "42501" for s in rows if s["decision"] == "approval"), rows
    assert rows[2]["sqlstate"] in (None, ""), rows[2]
    assert aid in rows[2]["rule"] and SERVICE_B in rows[2]["rule"], rows[2]


def test_a_statement_needs_another_account(agent_factory, table):
    """sluicet-a is an approver too: still not for its own statement."""
    name, count = table
    a = agent_factory(access={"approval_window": "5m"}, agent={"approvers": f"{SERVICE_A} {SERVICE_B}"},
                      sections=[(f"guardrail {CONNECTION_NAME}", {"approve": "write"})])
    g = a.request_grant(SERVICE_A)
    insert = f"INSERT INTO {name} VALUES (7, 'self')"
    aid = refused_for_approval(psql(g, insert))
    r = a.ctl("approve", aid, user=SERVICE_A)
    assert (r.rc, r.stdout) == (1, ""), r
    assert refused_for_approval(psql(g, insert)) == aid
    assert count() == 0


def test_an_approved_statement_not_run_in_its_window_expires(agent_factory, table):
    name, count = table
    a = statement_agent(agent_factory, approval_window="1s")
    g = a.request_grant(SERVICE_A)
    insert = f"INSERT INTO {name} VALUES (3, 'too late')"
    aid = refused_for_approval(psql(g, insert))
    r = a.ctl("approve", aid, user=SERVICE_B)
    assert r.rc == 0, r
    time.sleep(2.5)
    again = refused_for_approval(psql(g, insert))
    assert again != aid
    assert count() == 0
    [ap] = [x for x in approvals(a, "--all") if x["id"] == aid]
    assert ap["state"] == "expired", ap


def test_approval_wait_holds_the_statement_until_approved(agent_factory, table):
    name, count = table
    a = statement_agent(agent_factory, approval_wait="30s")
    g = a.request_grant(SERVICE_A)
    insert = f"INSERT INTO {name} VALUES (4, 'held')"
    box: dict = {}

    def approver():
        ap = wait_approval(a, lambda x: x["kind"] == "statement")
        box["ap"] = ap
        box["t"] = time.monotonic()
        box["r"] = a.ctl("approve", ap["id"], "--note", "held and let go", user=SERVICE_B)
    t = threading.Thread(target=approver)
    t0 = time.monotonic()
    t.start()
    r = psql(g, insert, timeout=60)
    done = time.monotonic()
    t.join()
    assert box["r"].rc == 0, box["r"]
    assert box["ap"]["sql"] == insert
    assert (r.rc, r.stderr) == (0, ""), r
    assert count() == 1
    # it ran on the approval, not after the wait ran out
    assert box["t"] - t0 < done - t0 < 25, (box["t"] - t0, done - t0)
    [ap] = [x for x in approvals(a, "--all") if x["id"] == box["ap"]["id"]]
    assert ap["state"] == "used", ap
    rows = wait_audit(a, lambda s: s["sql"] == insert, "--grant", g["id"])
    assert [s["decision"] for s in rows] == ["allowed"], rows

    # denied while held: the client gets the refusal at once
    other = f"INSERT INTO {name} VALUES (5, 'denied')"

    def denier():
        ap = wait_approval(a, lambda x: x["sql"] == other)
        box["r"] = a.ctl("deny", ap["id"], "--note", "no", user=SERVICE_B)
    t = threading.Thread(target=denier)
    t.start()
    r = psql(g, other, timeout=60)
    t.join()
    assert box["r"].rc == 0, box["r"]
    assert r.rc != 0 and "42501" in r.stderr, r
    assert count() == 1
