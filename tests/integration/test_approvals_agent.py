"""Approvals in the agent, over D-Bus directly (python3-dbus, as the
accounts themselves): grant-level approval (pending -> approved, denied,
expired, withdrawn), who may decide and who may see, the signals, the
audit events, and the webhook notice.

sluicet-a (SERVICE_A) requests; sluicet-b (SERVICE_B) approves. Statement
approvals need the proxy and are covered by test_approvals.py."""
from __future__ import annotations

import http.server
import json
import os
import socket
import sqlite3
import subprocess
import threading
import time
from datetime import datetime, timezone

import psycopg2
import pytest

import sluice_fixtures as sf
from conftest import CONNECTION_NAME, SAMPLE_DB, SERVICE_A, SERVICE_B
from test_grants import as_uid, ops_group  # noqa: F401  (fixture used by name)

OTHER = sf.PG_USER  # an account that is neither requester, approver nor admin
APPROVAL_KEYS = {"id", "kind", "state", "grant", "user", "uid", "connection", "sql", "what", "rule",
                 "reason", "created_at", "expires_at", "decided_at", "decided_by", "note",
                 "window_ends_at"}

# One or more method calls as the account running it; prints one JSON line
# per call: {"ok": reply} or {"error": name, "message": text}.
_CALL = r'''
import dbus, json, sys

def plain(v):
    if isinstance(v, dbus.Dictionary):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (dbus.Array, dbus.Struct, list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (dbus.String, dbus.ObjectPath, str)):
        return str(v)
    if isinstance(v, int):
        return int(v)
    return v

bus = dbus.bus.BusConnection(sys.argv[1])
agent = dbus.Interface(bus.get_object("org.sluice.Agent1", "/org/sluice/Agent1"), "org.sluice.Agent1")
for method, args in json.loads(sys.argv[2]):
    try:
        r = getattr(agent, method)(*args, timeout=20)
        print(json.dumps({"ok": plain(r)}), flush=True)
    except dbus.DBusException as e:
        print(json.dumps({"error": e.get_dbus_name(), "message": e.get_dbus_message()}), flush=True)
'''

# Every signal of org.sluice.Agent1 as a JSON line [member, args...].
_LISTEN = r'''
import dbus, dbus.mainloop.glib, json, sys
from gi.repository import GLib
dbus.mainloop.glib.DBusGMainLoop(set_as_default=True)
bus = dbus.bus.BusConnection(sys.argv[1])
def on(*args, member=None):
    print(json.dumps([member] + [str(a) for a in args]), flush=True)
bus.add_signal_receiver(on, dbus_interface="org.sluice.Agent1", member_keyword="member")
print(json.dumps(["ready"]), flush=True)
GLib.MainLoop().run()
'''


class DBusError(Exception):
    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name.rsplit(".", 1)[-1]
        self.message = message


def calls(agent, batch, user=None) -> list:
    """Run [(method, [args])] on the agent as user (root when None) in one
    process; a list of replies or DBusError instances."""
    r = sf.run(["/usr/bin/python3", "-c", _CALL, agent.bus.address, json.dumps(batch)],
               user=user, timeout=120)
    assert r.rc == 0, r.stderr
    out = []
    for line in r.stdout.splitlines():
        d = json.loads(line)
        out.append(d["ok"] if "ok" in d else DBusError(d["error"], d["message"]))
    assert len(out) == len(batch), r.stdout + r.stderr
    return out


def call(agent, method, *args, user=None):
    """One method call; its reply, or raises DBusError."""
    (res,) = calls(agent, [(method, list(args))], user=user)
    if isinstance(res, DBusError):
        raise res
    return res


def refused(agent, kind, method, *args, user=None) -> str:
    """The call fails with org.sluice.Agent1.Error.<kind>; its message."""
    with pytest.raises(DBusError) as e:
        call(agent, method, *args, user=user)
    assert e.value.name == kind, str(e.value)
    return e.value.message


def request(agent, user=SERVICE_A, ttl=0, reason="") -> dict:
    return call(agent, "RequestGrant", CONNECTION_NAME, ttl, "", reason, "", user=user)


def approval(agent, apid, user=SERVICE_B) -> dict:
    return call(agent, "GetApproval", apid, user=user)


class Signals:
    """A listener on the test bus (as root) collecting every signal of the
    agent's interface."""

    def __init__(self, bus):
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", _LISTEN, bus.address],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     env=sf.clean_env())
        self.seen: list = []
        self.lock = threading.Lock()
        first = self.proc.stdout.readline()
        assert json.loads(first) == ["ready"], first
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.seen.append(json.loads(line))

    def wait(self, *expected, timeout=10) -> list:
        """The first signal [member, args...] starting with expected."""
        n = len(expected)

        def match():
            with self.lock:
                return [s for s in self.seen if tuple(s[:n]) == expected]
        sf.wait_for(lambda: bool(match()), timeout, f"the signal {expected}")
        return match()[0]

    def of(self, member) -> list:
        with self.lock:
            return [s[1:] for s in self.seen if s[0] == member]

    def close(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def signals(bus):
    s = Signals(bus)
    yield s
    s.close()


def events(agent, kind) -> list:
    db = sqlite3.connect(f"file:{agent.database}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("select * from events where kind = ? order by id", (kind,))]
    finally:
        db.close()


def wait_event(agent, kind, pred=lambda e: True, timeout=10) -> dict:
    """The first event of kind matching pred (audit writes are batched)."""
    found: list = []

    def seen():
        found[:] = [e for e in events(agent, kind) if pred(e)]
        return bool(found)
    sf.wait_for(seen, timeout, f"a {kind} event", interval=0.1)
    return found[0]


def approvals_agent(agent_factory, *, approvers=SERVICE_B, access=None, agent=None, **kw):
    """An agent whose [access test] wants approval = grant (approval_timeout
    10m unless access says otherwise) and whose [agent] approvers are
    approvers."""
    acc = {"approval": "grant", "approval_timeout": "10m"}
    acc.update(access or {})
    ag = {"approvers": approvers}
    ag.update(agent or {})
    return agent_factory(agent=ag, access=acc, **kw)


def now_us() -> int:
    return int(time.time() * 1_000_000)


# --- pending -> approved ---------------------------------------------------------------

def test_pending_grant_approved_becomes_active_with_a_working_socket(agent_factory, signals, accounts):
    a = approvals_agent(agent_factory)
    before = now_us()
    g = request(a, ttl=600, reason="month-end report")
    assert g["state"] == "pending"
    assert g["approval"] and g["approval"] != g["id"]
    assert (g["socket_dir"], g["socket"]) == ("", "")
    assert g["mode"] == "write"
    assert g["end_reason"] == ""
    # Pending until the approval expires (10m).
    assert abs(g["expires_at"] - (g["created_at"] + 600 * 1_000_000)) < 2_000_000
    assert not os.path.exists(a.grant_dir(g["id"]))
    apid = g["approval"]

    # Listed and shown as pending to its owner.
    mine = call(a, "ListGrants", False, user=SERVICE_A)
    assert [(x["id"], x["state"], x["approval"]) for x in mine] == [(g["id"], "pending", apid)]
    assert call(a, "GetGrant", g["id"], user=SERVICE_A)["state"] == "pending"
    assert call(a, "GetStatus")["grants"] == 1

    signals.wait("GrantStateChanged", g["id"], "pending", "")
    assert signals.wait("ApprovalRequested", apid) == \
        ["ApprovalRequested", apid, "grant", SERVICE_A, CONNECTION_NAME, "approval = grant"]

    ap = approval(a, apid)
    assert APPROVAL_KEYS <= set(ap)
    assert (ap["id"], ap["kind"], ap["state"], ap["grant"], ap["user"], ap["uid"], ap["connection"]) == \
        (apid, "grant", "pending", g["id"], SERVICE_A, accounts[SERVICE_A].uid, CONNECTION_NAME)
    assert (ap["sql"], ap["decided_at"], ap["decided_by"], ap["note"], ap["window_ends_at"]) == ("", 0, "", "", 0)
    assert ap["what"] == "approval = grant"
    assert ap["rule"].startswith(f"rule at {a.config_path}:"), ap["rule"]
    assert ap["reason"] == "month-end report"
    assert before <= ap["created_at"] <= now_us()
    assert abs(ap["expires_at"] - ap["created_at"] - 600 * 1_000_000) < 1_000_000

    # The TTL starts when it is approved, not when it was asked for.
    time.sleep(2)
    t0 = now_us()
    assert call(a, "Approve", apid, "ok for the report", user=SERVICE_B) is None
    signals.wait("ApprovalDecided", apid, "approved", SERVICE_B)
    signals.wait("GrantStateChanged", g["id"], "active", "")
    active = call(a, "GetGrant", g["id"], user=SERVICE_A)
    assert active["state"] == "active"
    assert active["approval"] == apid
    assert active["socket_dir"] == str(a.grant_dir(g["id"]))
    assert active["socket"] == os.path.join(active["socket_dir"], ".s.PGSQL.5432")
    assert active["ttl"] == 600
    assert t0 + 600 * 1_000_000 - 1_000_000 <= active["expires_at"] <= now_us() + 600 * 1_000_000
    assert active["created_at"] == g["created_at"]

    with as_uid(SERVICE_A):
        conn = psycopg2.connect(host=active["socket_dir"], dbname=SAMPLE_DB, connect_timeout=10)
    try:
        with conn.cursor() as cur:
            cur.execute("select count(*) from ops.customers")
            assert cur.fetchone()[0] == sf.SAMPLE_CUSTOMERS
    finally:
        conn.close()

    ap = approval(a, apid)
    assert (ap["state"], ap["decided_by"], ap["note"]) == ("approved", SERVICE_B, "ok for the report")
    assert t0 <= ap["decided_at"] <= now_us()
    # Decided once: a second decision finds nothing pending.
    msg = refused(a, "NotFound", "Approve", apid, "", user=SERVICE_B)
    assert f"approval {apid} is already approved by {SERVICE_B}" in msg
    refused(a, "NotFound", "Deny", apid, "", user=SERVICE_B)

    ev = wait_event(a, "approval.requested", lambda e: apid in e["detail"])
    assert (ev["grant_id"], ev["user"], ev["connection"]) == (g["id"], SERVICE_A, CONNECTION_NAME)
    assert "approval = grant" in ev["detail"] and "month-end report" in ev["detail"]
    ev = wait_event(a, "approval.approved", lambda e: apid in e["detail"])
    assert (ev["user"], ev["uid"]) == (SERVICE_B, accounts[SERVICE_B].uid)
    assert "ok for the report" in ev["detail"] and f"requested by {SERVICE_A}" in ev["detail"]
    wait_event(a, "grant.pending", lambda e: e["grant_id"] == g["id"] and apid in e["detail"])
    wait_event(a, "grant.created", lambda e: e["grant_id"] == g["id"] and apid in e["detail"])


def test_a_grant_without_approval_says_so(agent_factory):
    a = agent_factory(access={"mode": "read"})
    g = request(a)
    assert (g["state"], g["approval"], g["mode"]) == ("active", "", "read")
    assert call(a, "ListApprovals", True) == []


# --- denied, expired, withdrawn ---------------------------------------------------------------

def test_deny_ends_the_pending_grant(agent_factory, signals):
    a = approvals_agent(agent_factory)
    g = request(a)
    apid = g["approval"]
    assert call(a, "Deny", apid, "not during the freeze", user=SERVICE_B) is None
    signals.wait("ApprovalDecided", apid, "denied", SERVICE_B)
    signals.wait("GrantStateChanged", g["id"], "ended", "denied")
    refused(a, "NotFound", "GetGrant", g["id"], user=SERVICE_A)
    assert call(a, "ListGrants", False, user=SERVICE_A) == []
    assert not os.path.exists(a.grant_dir(g["id"]))
    ap = approval(a, apid, user=SERVICE_A)  # the requester still sees how it went
    assert (ap["state"], ap["decided_by"], ap["note"]) == ("denied", SERVICE_B, "not during the freeze")
    msg = refused(a, "NotFound", "Approve", apid, "", user=SERVICE_B)
    assert "already denied" in msg
    wait_event(a, "approval.denied", lambda e: apid in e["detail"] and "not during the freeze" in e["detail"])
    wait_event(a, "grant.ended", lambda e: e["grant_id"] == g["id"] and e["detail"] == "denied")
    # The place it held is free again.
    assert call(a, "GetStatus")["grants"] == 0


def test_no_decision_within_approval_timeout_expires(agent_factory, signals):
    a = approvals_agent(agent_factory, access={"approval_timeout": "10s"})
    g = request(a)
    apid = g["approval"]
    assert abs(g["expires_at"] - g["created_at"] - 10_000_000) < 1_000_000
    signals.wait("GrantStateChanged", g["id"], "ended", "approval-expired", timeout=25)
    assert signals.wait("ApprovalDecided", apid) == ["ApprovalDecided", apid, "expired", ""]
    refused(a, "NotFound", "GetGrant", g["id"], user=SERVICE_A)
    ap = approval(a, apid)
    assert (ap["state"], ap["decided_by"]) == ("expired", "")
    assert ap["decided_at"] >= ap["expires_at"]
    # Pending only by default; with all = true the last hour's too.
    assert call(a, "ListApprovals", False, user=SERVICE_B) == []
    assert [x["id"] for x in call(a, "ListApprovals", True, user=SERVICE_B)] == [apid]
    assert "already expired" in refused(a, "NotFound", "Approve", apid, "", user=SERVICE_B)
    wait_event(a, "approval.expired", lambda e: apid in e["detail"])
    wait_event(a, "grant.ended", lambda e: e["grant_id"] == g["id"] and e["detail"] == "approval-expired")


def test_revoke_while_pending_withdraws_the_approval(agent_factory, signals):
    a = approvals_agent(agent_factory)
    g = request(a)
    apid = g["approval"]
    assert call(a, "RevokeGrant", g["id"], user=SERVICE_A) is None
    signals.wait("GrantStateChanged", g["id"], "ended", "revoked")
    assert signals.wait("ApprovalDecided", apid) == ["ApprovalDecided", apid, "withdrawn", ""]
    assert approval(a, apid)["state"] == "withdrawn"
    assert "already withdrawn" in refused(a, "NotFound", "Approve", apid, "", user=SERVICE_B)
    wait_event(a, "approval.withdrawn", lambda e: apid in e["detail"] and e["grant_id"] == g["id"])


def test_session_close_while_pending_withdraws_the_approval(agent_factory, signals):
    a = approvals_agent(agent_factory)
    g = request(a)
    apid = g["approval"]
    r = a.close_session(a.sessions[SERVICE_A])
    assert r.rc == 0, r.stderr
    signals.wait("GrantStateChanged", g["id"], "ended", "session-ended")
    signals.wait("ApprovalDecided", apid, "withdrawn", "")
    assert approval(a, apid)["state"] == "withdrawn"
    assert not os.path.exists(a.grant_dir(g["id"]))


def test_max_grants_per_user_counts_pending_grants(agent_factory):
    a = approvals_agent(agent_factory, agent={"max_grants_per_user": "1"})
    g = request(a)
    assert g["state"] == "pending"
    msg = refused(a, "LimitExceeded", "RequestGrant", CONNECTION_NAME, 0, "", "", "", user=SERVICE_A)
    assert "max_grants_per_user" in msg


def test_approvals_survive_a_reload(agent_factory, signals):
    a = approvals_agent(agent_factory)
    g = request(a)
    a.reload()
    wait_event(a, "config.reloaded")
    assert approval(a, g["approval"])["state"] == "pending"
    call(a, "Approve", g["approval"], "", user=SERVICE_B)
    signals.wait("GrantStateChanged", g["id"], "active", "")


def test_shutdown_withdraws_what_is_pending(agent_factory):
    a = approvals_agent(agent_factory)
    g = request(a)
    assert a.stop() == 0
    db = sqlite3.connect(f"file:{a.database}?mode=ro", uri=True)
    try:
        kinds = [k for (k,) in db.execute("select kind from events where grant_id = ? order by id", (g["id"],))]
    finally:
        db.close()
    assert kinds[-2:] == ["approval.withdrawn", "grant.ended"], kinds


# --- who decides ---------------------------------------------------------------------------

def test_nobody_approves_their_own_request_and_non_approvers_are_refused(agent_factory, accounts):
    # sluicet-a is an approver too: still not for its own request.
    a = approvals_agent(agent_factory, approvers=f"{SERVICE_A} {SERVICE_B}")
    g = request(a)
    apid = g["approval"]
    msg = refused(a, "Denied", "Approve", apid, "", user=SERVICE_A)
    assert "nobody approves their own request" in msg
    assert "nobody approves their own request" in refused(a, "Denied", "Deny", apid, "", user=SERVICE_A)
    # Root is an admin, not an approver; nor is an unrelated account.
    assert "is not an approver" in refused(a, "Denied", "Approve", apid, "", user=None)
    assert f"{OTHER} is not an approver" in refused(a, "Denied", "Approve", apid, "", user=OTHER)
    # The note is one line of text of at most 1 KiB.
    assert "control character" in refused(a, "InvalidArgument", "Approve", apid, "ok\nsluicectl approve x",
                                          user=SERVICE_B)
    assert "control character" in refused(a, "InvalidArgument", "Approve", apid, "ok\x1b[2J", user=SERVICE_B)
    assert "longer than 1024" in refused(a, "InvalidArgument", "Approve", apid, "x" * 1025, user=SERVICE_B)
    assert approval(a, apid)["state"] == "pending"
    assert "no approval nosuchid" in refused(a, "NotFound", "Approve", "nosuchid", "", user=SERVICE_B)
    call(a, "Approve", apid, "x" * 1024, user=SERVICE_B)
    assert approval(a, apid)["note"] == "x" * 1024
    ev = wait_event(a, "approval.refused", lambda e: e["user"] == SERVICE_A)
    assert ev["uid"] == accounts[SERVICE_A].uid and apid in ev["detail"]
    wait_event(a, "approval.refused", lambda e: e["user"] == OTHER)


def test_a_unix_group_approver(agent_factory, ops_group, signals):
    a = approvals_agent(agent_factory, approvers=f"%{ops_group}")
    g = request(a)
    assert "is not an approver" in refused(a, "Denied", "Approve", g["approval"], "", user=OTHER)
    call(a, "Approve", g["approval"], "", user=SERVICE_B)
    signals.wait("GrantStateChanged", g["id"], "active", "")


def test_an_idp_group_approver_needs_a_live_session(agent_factory, signals):
    # data-readers is in both accounts' tokens (idp.TEST_CLIENTS); only a
    # live session carries it.
    a = approvals_agent(agent_factory, approvers="@data-readers")
    g = request(a)
    assert a.close_session(a.sessions[SERVICE_B]).rc == 0
    assert "is not an approver" in refused(a, "Denied", "Approve", g["approval"], "", user=SERVICE_B)
    # ...nor does it see others' requests then.
    assert call(a, "ListApprovals", False, user=SERVICE_B) == []
    a.open_session(SERVICE_B)
    assert [x["id"] for x in call(a, "ListApprovals", False, user=SERVICE_B)] == [g["approval"]]
    call(a, "Approve", g["approval"], "", user=SERVICE_B)
    signals.wait("GrantStateChanged", g["id"], "active", "")


# --- who sees --------------------------------------------------------------------------------

def test_visibility_requester_approver_admin_other(agent_factory):
    a = approvals_agent(agent_factory, access={"allow": f"{SERVICE_A} {SERVICE_B}"})
    ga = request(a, user=SERVICE_A)
    gb = request(a, user=SERVICE_B)
    ida, idb = ga["approval"], gb["approval"]

    def ids(user, all_=False):
        return [x["id"] for x in call(a, "ListApprovals", all_, user=user)]

    assert ids(SERVICE_A) == [ida]              # its own request only
    assert ids(SERVICE_B) == [idb, ida]         # an approver: all, newest first
    assert ids(None) == [idb, ida]              # root: an admin
    assert ids(OTHER) == []
    assert approval(a, ida, user=SERVICE_A)["id"] == ida
    assert "no approval" in refused(a, "NotFound", "GetApproval", idb, user=SERVICE_A)
    assert "no approval" in refused(a, "NotFound", "GetApproval", ida, user=OTHER)
    assert approval(a, ida, user=None)["id"] == ida
    # B cannot decide its own; deciding A's leaves B's pending.
    assert "own request" in refused(a, "Denied", "Approve", idb, "", user=SERVICE_B)
    call(a, "Deny", ida, "", user=SERVICE_B)
    assert ids(SERVICE_B) == [idb]
    assert ids(SERVICE_B, True) == [idb, ida]
    assert ids(SERVICE_A, True) == [ida]
    listed = call(a, "ListApprovals", True, user=SERVICE_A)[0]
    assert APPROVAL_KEYS <= set(listed) and listed["state"] == "denied"


# --- the webhook -----------------------------------------------------------------------------

class Hook:
    """A local HTTP receiver for webhook notices (a thread in the test)."""

    def __init__(self):
        self.posts: list = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                hook.posts.append((self.path, dict(self.headers), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def rfc3339_us(s: str) -> int:
    assert s.endswith("Z"), s
    return int(datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()) * 1_000_000


def test_webhook_gets_a_json_notice(agent_factory):
    hook = Hook()
    try:
        a = approvals_agent(agent_factory, agent={
            "approval_webhook": f"http://127.0.0.1:{hook.port}/hooks/sluice?token=s3cr3t-hook"})
        g = request(a, reason="schema migration")
        sf.wait_for(lambda: hook.posts, 10, "the webhook POST")
        path, headers, body = hook.posts[0]
        assert path == "/hooks/sluice?token=s3cr3t-hook"
        assert headers["Content-Type"] == "application/json"
        n = json.loads(body)
        ap = approval(a, g["approval"])
        assert n["id"] == ap["id"] and n["kind"] == "grant"
        assert (n["user"], n["connection"], n["what"], n["rule"], n["reason"]) == \
            (SERVICE_A, CONNECTION_NAME, ap["what"], ap["rule"], "schema migration")
        assert n["approve"] == f"sluicectl approve {ap['id']}"
        assert n["deny"] == f"sluicectl deny {ap['id']}"
        assert "sql" not in n  # grant approvals carry no statement
        assert abs(rfc3339_us(n["created_at"]) - ap["created_at"]) < 1_000_000
        assert abs(rfc3339_us(n["expires_at"]) - ap["expires_at"]) < 1_000_000
        assert len(hook.posts) == 1
    finally:
        hook.close()
    assert "s3cr3t-hook" not in a.log()


def test_a_dead_or_hung_webhook_never_holds_up_a_decision(agent_factory, signals):
    # Nobody listens on one port; the other accepts connections and never
    # answers (each POST waits out its 5 s).
    dead = sf.free_port()
    hung = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hung.bind(("127.0.0.1", 0))
    hung.listen(128)
    try:
        a = approvals_agent(agent_factory, approvers=f"{SERVICE_A} {SERVICE_B}",
                            access={"allow": f"{SERVICE_A} {SERVICE_B}"},
                            agent={"approval_webhook": f"http://127.0.0.1:{dead}/x?token=d3ad",
                                   "max_grants_per_user": "100"})
        g = request(a)
        call(a, "Approve", g["approval"], "", user=SERVICE_B)
        signals.wait("GrantStateChanged", g["id"], "active", "")
        sf.wait_for(lambda: "approval webhook: POST to http://127.0.0.1:%d" % dead in a.log(), 10,
                    "the failed POST in the log")
        assert "d3ad" not in a.log()

        a.write_config(a.config_path.read_text().replace(
            f"http://127.0.0.1:{dead}/x?token=d3ad", f"http://127.0.0.1:{hung.getsockname()[1]}/h"))
        a.reload()
        wait_event(a, "config.reloaded")
        # One POST hangs and the queue holds 64: the rest are dropped, and
        # neither requests nor decisions wait.
        n = 70
        batch = [("RequestGrant", [CONNECTION_NAME, 0, "", f"r{i}", ""]) for i in range(n)]
        t0 = time.monotonic()
        grants = calls(a, batch, user=SERVICE_B)
        assert all(isinstance(x, dict) and x["state"] == "pending" for x in grants), grants[:3]
        t1 = time.monotonic()
        decided = calls(a, [("Deny", [x["approval"], ""]) for x in grants], user=SERVICE_A)
        t2 = time.monotonic()
        assert all(d is None for d in decided), decided[:3]
        assert t1 - t0 < 5 and t2 - t1 < 5, (t1 - t0, t2 - t1)
        sf.wait_for(lambda: "notice for approval" in a.log() and "dropped" in a.log(), 10,
                    "a dropped notice in the log")
        # Stopping with a POST in flight is prompt and clean.
        t0 = time.monotonic()
        assert a.stop() == 0
        assert time.monotonic() - t0 < 8
    finally:
        hung.close()
