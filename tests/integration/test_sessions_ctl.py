"""sluicectl login, logout, sessions, session show and session close against
the real sluiced with tokens from the real IdP: what a service account and
an admin see, the --json shapes, and who may close what."""
from __future__ import annotations

import json
import re
import time

import pytest

import idp as idpmod
import sluice_fixtures as sf
from conftest import CONNECTION_NAME, SERVICE_A, SERVICE_B
from test_exec import Work, ctl_json


@pytest.fixture
def a(agent_factory):
    """An agent where no session is open yet."""
    return agent_factory(sessions=(), access={"allow": f"{SERVICE_A} {SERVICE_B}"})


@pytest.fixture
def work_a(sandbox, accounts):
    return Work(sandbox, accounts[SERVICE_A])


@pytest.fixture
def work_b(sandbox, accounts):
    return Work(sandbox, accounts[SERVICE_B])


def login(agent, work, *extra, user=None):
    """sluicectl --json login --token-file work.token as the work's account: {id, expires_at}."""
    return ctl_json(agent, "login", "--token-file", str(work.token), *extra, user=user or work.account.name)


SESSION_KEYS = ("id", "state", "end_reason", "user", "uid", "subject", "issuer", "groups",
                "created_at", "expires_at", "grants")


def test_login_sessions_show_logout(a, work_a):
    tok = work_a.write_token(a.idp)
    r = a.ctl("login", "--token-file", str(work_a.token), user=SERVICE_A)
    assert r.rc == 0, r
    m = re.fullmatch(r"session ([0-9a-f]+) open until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \(in [0-9hms]+\)\n",
                     r.stdout)
    assert m, r.stdout
    sid = m.group(1)
    assert tok not in r.stdout + r.stderr

    # the table
    r = a.ctl("sessions", user=SERVICE_A)
    assert r.rc == 0, r
    head, row = r.stdout.splitlines()
    assert head.split() == ["ID", "USER", "SUBJECT", "GROUPS", "EXPIRES", "GRANTS"]
    assert row.split()[:4] == [sid, SERVICE_A, SERVICE_A, "data-readers,orders-team"]
    assert row.split()[-1] == "0"

    # JSON: every key, times in RFC 3339
    [s] = ctl_json(a, "sessions", user=SERVICE_A)
    for k in SESSION_KEYS:
        assert k in s, (k, s)
    assert (s["id"], s["state"], s["end_reason"], s["user"], s["subject"]) == \
        (sid, "active", None, SERVICE_A, SERVICE_A)
    assert s["groups"] == ["data-readers", "orders-team"]
    assert s["issuer"] == a.idp.issuer
    # the session lasts as long as the token
    exp = idpmod.decode(tok)[1]["exp"]
    assert s["expires_at"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp))

    # a grant requested now hangs off it
    g = a.request_grant(SERVICE_A)
    assert g["session"] == sid
    r = a.ctl("session", "show", sid, user=SERVICE_A)
    assert r.rc == 0, r
    fields = dict(re.match(r"([a-z]+):\s+(.*)", line).groups() for line in r.stdout.splitlines())
    assert fields["id"] == sid and fields["state"] == "active"
    assert fields["subject"] == SERVICE_A and fields["grants"] == "1"
    assert fields["user"].startswith(f"{SERVICE_A} (uid ")
    assert ctl_json(a, "session", "show", sid, user=SERVICE_A)["grants"] == 1

    r = a.ctl("logout", sid, user=SERVICE_A)
    assert (r.rc, r.stdout) == (0, f"session {sid} closed\n"), r
    # its grant went with it
    assert ctl_json(a, "grants", "--all") == []
    r = a.ctl("sessions", user=SERVICE_A)
    assert (r.rc, r.stdout) == (0, "You have no sessions.\n"), r
    assert ctl_json(a, "sessions", user=SERVICE_A) == []
    r = a.ctl("session", "show", sid, user=SERVICE_A)
    assert r.rc == 1 and r.stdout == "", r


def test_login_json_and_token_sources(a, work_a):
    tok = work_a.write_token(a.idp)
    j = login(a, work_a)
    assert sorted(j) == ["expires_at", "id"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", j["expires_at"])
    # standard input, and $SLUICE_TOKEN_FILE
    r = a.ctl("--json", "login", "--token-file", "-", user=SERVICE_A, input=tok + "\n")
    assert r.rc == 0, r
    r = sf.sluicectl(a.ctl_binary, "--json", "login", user=SERVICE_A,
                     env={**a.env(), "SLUICE_TOKEN_FILE": str(work_a.token)})
    assert r.rc == 0, r
    assert len({s["id"] for s in ctl_json(a, "sessions", user=SERVICE_A)}) == 3
    # no token at all is a usage error
    r = a.ctl("login", user=SERVICE_A)
    assert r.rc == 2 and "no token" in r.stderr, r


def test_login_with_a_bad_token_says_why(a, work_a):
    now = int(time.time())
    for tok, why in ((a.idp.forge({}, a.idp.claims(SERVICE_A, iat=now - 600, exp=now - 300)), "expired"),
                     (a.idp.token(SERVICE_B), SERVICE_B)):
        work_a.write_token(a.idp, token=tok)
        r = a.ctl("login", "--token-file", str(work_a.token), user=SERVICE_A)
        assert (r.rc, r.stdout) == (1, ""), r
        assert r.stderr.startswith("sluicectl: ") and why in r.stderr, r
        assert tok not in r.stderr
    assert ctl_json(a, "sessions", "--all") == []


def test_logout_without_an_id(a, work_a):
    work_a.write_token(a.idp)
    r = a.ctl("logout", user=SERVICE_A)
    assert r.rc == 1 and "you have no session to close" in r.stderr, r
    one = login(a, work_a)["id"]
    r = a.ctl("logout", user=SERVICE_A)  # the only one
    assert (r.rc, r.stdout) == (0, f"session {one} closed\n"), r
    s1, s2 = login(a, work_a)["id"], login(a, work_a)["id"]
    r = a.ctl("logout", user=SERVICE_A)  # which one? not guessed
    assert r.rc == 2 and "you have 2 sessions: name the one to close" in r.stderr, r
    r = sf.sluicectl(a.ctl_binary, "--json", "logout", user=SERVICE_A, env={**a.env(), "SLUICE_SESSION": s2})
    assert (r.rc, json.loads(r.stdout)) == (0, {"id": s2, "closed": True}), r
    assert [s["id"] for s in ctl_json(a, "sessions", user=SERVICE_A)] == [s1]


def test_only_the_owner_or_an_admin_closes_a_session(a, work_a, work_b):
    work_a.write_token(a.idp)
    work_b.write_token(a.idp)
    sa, sb = login(a, work_a)["id"], login(a, work_b)["id"]
    # each account sees its own; --all is for admins
    assert [s["id"] for s in ctl_json(a, "sessions", user=SERVICE_B)] == [sb]
    r = a.ctl("sessions", "--all", user=SERVICE_B)
    assert (r.rc, r.stdout) == (1, ""), r
    # another account's session can neither be closed nor looked at
    r = a.ctl("session", "close", sa, user=SERVICE_B)
    assert (r.rc, r.stdout) == (1, ""), r
    r = a.ctl("logout", sa, user=SERVICE_B)
    assert r.rc == 1, r
    r = a.ctl("session", "show", sa, user=SERVICE_B)
    assert r.rc == 1, r
    assert {s["id"] for s in ctl_json(a, "sessions", "--all")} == {sa, sb}
    # root (an admin) sees all in a table, and closes any
    r = a.ctl("sessions", "--all")
    assert r.rc == 0 and sa in r.stdout and sb in r.stdout and SERVICE_B in r.stdout, r
    g = a.request_grant(SERVICE_A)
    r = a.ctl("session", "close", sa)
    assert (r.rc, r.stdout) == (0, f"session {sa} closed\n"), r
    assert [s["id"] for s in ctl_json(a, "sessions", "--all")] == [sb]
    assert g["id"] not in [x["id"] for x in ctl_json(a, "grants", "--all")]
    r = a.ctl("--json", "session", "close", sb, user=SERVICE_B)
    assert (r.rc, json.loads(r.stdout)) == (0, {"id": sb, "closed": True}), r
    r = a.ctl("sessions", "--all")
    assert (r.rc, r.stdout) == (0, "No sessions.\n"), r


def test_grant_request_in_a_named_session(a, work_a):
    work_a.write_token(a.idp)
    s1, s2 = login(a, work_a)["id"], login(a, work_a)["id"]
    g = ctl_json(a, "grant", "request", CONNECTION_NAME, "--session", s1, user=SERVICE_A)
    assert g["session"] == s1
    r = sf.sluicectl(a.ctl_binary, "--json", "grant", "request", CONNECTION_NAME, user=SERVICE_A,
                     env={**a.env(), "SLUICE_SESSION": s2})
    assert r.rc == 0 and json.loads(r.stdout)["session"] == s2, r
    r = a.ctl("grant", "request", CONNECTION_NAME, "--session", "0123456789abcdef", user=SERVICE_A)
    assert (r.rc, r.stdout) == (1, ""), r
    # closing s1 ends only s1's grant
    assert a.ctl("session", "close", s1, user=SERVICE_A).rc == 0
    assert [x["session"] for x in ctl_json(a, "grants", user=SERVICE_A)] == [s2]
