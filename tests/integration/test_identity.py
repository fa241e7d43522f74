"""Identity in the agent: tokens from a real OIDC provider (oidc-provider on
loopback HTTPS) verified by sluiced, sessions, and grants hanging off them.

The attack tokens are forged with the IdP's real private keys (idp.forge)
so that each one fails for the reason it is about, not for another."""
from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time

import pytest

from conftest import CONNECTION_NAME, SAMPLE_DB, SERVICE_A, SERVICE_B
import idp as idpmod

AGENT = ("org.sluice.Agent1", "/org/sluice/Agent1")


def call(agent, method, *args, user=None, timeout=20):
    """dbus-send to the agent: Result (rc, stdout, stderr)."""
    return agent.bus.call(*AGENT, f"org.sluice.Agent1.{method}", *args, user=user, timeout=timeout)


def open_session(agent, user, token, caller=None):
    return call(agent, "OpenSession", f"string:{user}", f"string:{token}", user=caller)


def denied(r, kind, *words):
    """The call failed with org.sluice.Agent1.Error.<kind> and a message
    holding every word."""
    assert r.rc != 0, f"expected {kind}, got success: {r.stdout}"
    assert f"org.sluice.Agent1.Error.{kind}" in r.stderr, r.stderr
    for w in words:
        assert w in r.stderr, f"{w!r} not in {r.stderr!r}"
    return r.stderr


def events(agent, kind):
    db = sqlite3.connect(f"file:{agent.database}?mode=ro", uri=True)
    try:
        return [row[0] for row in db.execute("select detail from events where kind = ? order by id", (kind,))]
    finally:
        db.close()


def wait_events(agent, kind, n=1, timeout=10):
    deadline = time.monotonic() + timeout
    while True:
        ev = events(agent, kind)
        if len(ev) >= n or time.monotonic() > deadline:
            return ev
        time.sleep(0.1)


def short_token(idp, user, seconds):
    """A token for user that expires in seconds, signed with the IdP's real
    key (the provider issues one lifetime per client; the subject must be
    the account's)."""
    now = int(time.time())
    return idp.forge({}, idp.claims(user, iat=now, exp=now + seconds))


# --- the happy path -------------------------------------------------------------

def test_session_grant_psql_and_audit_names_subject_and_groups(agent_factory, psql_as):
    a = agent_factory(sessions=())
    s = a.open_session(SERVICE_A)
    assert len(s["id"]) == 16
    tok_exp = idpmod.decode(a.idp.token(SERVICE_A))[1]["exp"]
    assert s["expires_at"] <= tok_exp * 1_000_000 + 5_000_000
    g = a.request_grant(SERVICE_A)
    assert g["session"] == s["id"]
    assert g["subject"] == SERVICE_A
    assert sorted(g["groups"]) == ["data-readers", "orders-team"]
    r = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 7 * 6")
    assert r.rc == 0 and r.stdout.strip() == "42", r
    a.ctl("revoke", g["id"]).check()
    db = sqlite3.connect(f"file:{a.database}?mode=ro", uri=True)
    q = "select subject, issuer, \"groups\" from statements where sql = 'select 7 * 6'"
    deadline = time.monotonic() + 10
    while db.execute(q).fetchone() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    subj, iss, groups = db.execute(q).fetchone()
    assert subj == SERVICE_A and iss == a.idp.issuer
    assert json.loads(groups) == ["data-readers", "orders-team"]
    row = db.execute("select subject, issuer, \"groups\" from grants where grant_id = ?", (g["id"],)).fetchone()
    assert row[0] == SERVICE_A and row[1] == a.idp.issuer
    db.close()
    assert any(s["id"] in e and SERVICE_A in e for e in events(a, "session.opened"))
    assert any(s["id"] in e for e in events(a, "grant.created") if g["id"])


def test_es256_token_opens_a_session(agent_factory):
    a = agent_factory(sessions=())
    tok = a.idp.token(SERVICE_B)
    assert idpmod.decode(tok)[0]["alg"] == "ES256"
    a.open_session(SERVICE_B, tok)


def test_authenticate_returns_identity_without_a_session(agent_factory):
    a = agent_factory(sessions=())
    r = call(a, "Authenticate", f"string:{SERVICE_A}", f"string:{a.idp.token(SERVICE_A)}")
    assert r.rc == 0, r.stderr
    assert f'"{SERVICE_A}"' in r.stdout and "data-readers" in r.stdout
    assert call(a, "ListSessions", "boolean:true").stdout.count("variant") == 0


def test_grant_needs_a_live_session(agent_factory):
    a = agent_factory(sessions=())
    r = a.ctl("grant", "request", CONNECTION_NAME, user=SERVICE_A)
    assert r.rc == 1 and "no live session" in r.stderr, r
    assert wait_events(a, "grant.denied")


def test_grant_ttl_never_outlives_the_session(agent_factory):
    a = agent_factory(sessions=(), access={"max_ttl": "1h"})
    s = a.open_session(SERVICE_A, short_token(a.idp, SERVICE_A, 8))
    g = a.request_grant(SERVICE_A, ttl="30m")
    assert g["session"] == s["id"]
    assert 1 <= g["ttl"] <= 8


def test_closing_the_session_ends_its_grants(agent_factory, psql_as):
    a = agent_factory(sessions=())
    s = a.open_session(SERVICE_A)
    g = a.request_grant(SERVICE_A)
    assert a.close_session(s["id"], caller=SERVICE_A).rc == 0
    r = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1")
    assert r.rc != 0
    ended = wait_events(a, "grant.ended")
    assert any("session-ended" in e for e in ended)


def test_token_expiry_ends_the_session_and_kills_the_live_connection(agent_factory, accounts):
    a = agent_factory(sessions=())
    s = a.open_session(SERVICE_A, short_token(a.idp, SERVICE_A, 6))
    g = a.request_grant(SERVICE_A)
    # A connection that is open when the token expires: psql as SERVICE_A
    # keeps a transaction idle, then tries again after the expiry.
    script = ("import psycopg, sys, time\n"
              "c = psycopg.connect(host=sys.argv[1], dbname=sys.argv[2], user='x', autocommit=True)\n"
              "c.execute('select 1')\n"
              "print('first ok', flush=True)\n"
              "time.sleep(float(sys.argv[3]))\n"
              "try:\n"
              "    c.execute('select 2')\n"
              "    print('second ok')\n"
              "except Exception as e:\n"
              "    print('second failed:', e)\n")
    left = max(0.0, s["expires_at"] / 1e6 - time.time()) + 3
    from sluice_fixtures import run_as
    r = run_as(SERVICE_A, ["/usr/bin/python3", "-c", script, g["socket_dir"], SAMPLE_DB, str(left)],
               timeout=left + 30)
    assert "first ok" in r.stdout, r
    assert "second failed" in r.stdout and ("57P01" in r.stdout or "grant" in r.stdout), r
    assert any(s["id"] in e and "expired" in e for e in wait_events(a, "session.ended"))
    assert not (a.grants_dir / g["id"]).exists()


def test_refresh_moves_the_expiry_and_a_bad_refresh_ends_the_session(agent_factory):
    a = agent_factory(sessions=())
    s = a.open_session(SERVICE_A, short_token(a.idp, SERVICE_A, 30))
    time.sleep(1.1)
    newer = a.idp.token(SERVICE_A)
    r = call(a, "RefreshSession", f"string:{s['id']}", f"string:{newer}", user=SERVICE_A)
    assert r.rc == 0, r.stderr
    exp = int(r.stdout.split("int64")[1].split()[0])
    assert exp > s["expires_at"]
    g = a.request_grant(SERVICE_A)
    bad = a.idp.tamper(newer, sub="sluicet-b")
    denied(call(a, "RefreshSession", f"string:{s['id']}", f"string:{bad}", user=SERVICE_A),
           "TokenRejected", "signature")
    assert call(a, "GetSession", f"string:{s['id']}").rc != 0
    assert any("session-ended" in e for e in wait_events(a, "grant.ended"))
    assert not (a.grants_dir / g["id"]).exists()
    assert any("refresh-failed" in e for e in wait_events(a, "session.ended"))


# --- who may open a session for whom ----------------------------------------------

def test_root_may_open_a_session_for_another_account(agent_factory):
    a = agent_factory(sessions=())
    s = a.open_session(SERVICE_A, caller=None)
    r = call(a, "GetSession", f"string:{s['id']}", user=SERVICE_A)
    assert r.rc == 0 and SERVICE_A in r.stdout


def test_a_user_may_not_open_a_session_for_another(agent_factory):
    a = agent_factory(sessions=())
    tok = a.idp.token(SERVICE_A)
    msg = denied(open_session(a, SERVICE_A, tok, caller=SERVICE_B), "Denied", "may act only for itself")
    assert tok not in msg
    assert wait_events(a, "auth.denied")
    # Its own account with someone else's token: the subject is bound elsewhere.
    denied(open_session(a, "", tok, caller=SERVICE_B), "TokenRejected",
           f"bound to account {SERVICE_A}, not {SERVICE_B}")
    # Its own, with its own token: fine.
    assert open_session(a, "", a.idp.token(SERVICE_B), caller=SERVICE_B).rc == 0


def test_a_user_sees_and_closes_only_its_own_sessions(agent_factory):
    a = agent_factory()
    sa, sb = a.sessions[SERVICE_A], a.sessions[SERVICE_B]
    denied(a.close_session(sa, caller=SERVICE_B), "NotFound")
    denied(call(a, "GetSession", f"string:{sa}", user=SERVICE_B), "NotFound")
    denied(call(a, "ListSessions", "boolean:true", user=SERVICE_B), "Denied")
    mine = call(a, "ListSessions", "boolean:false", user=SERVICE_B)
    assert sb in mine.stdout and sa not in mine.stdout
    assert a.close_session(sb, caller=SERVICE_B).rc == 0


def test_unbound_account_is_not_found(agent_factory, accounts):
    a = agent_factory(sessions=(), identity=True)
    denied(open_session(a, "sluice", a.idp.token(SERVICE_A)), "NotFound", "no [identity sluice]")
    denied(call(a, "CheckAccount", "string:sluice"), "NotFound")
    assert call(a, "CheckAccount", f"string:{SERVICE_A}", user=SERVICE_A).rc == 0
    denied(call(a, "CheckAccount", f"string:{SERVICE_A}", user=SERVICE_B), "Denied")


def test_reload_removing_the_binding_ends_the_session_and_grants(agent_factory, psql_as):
    a = agent_factory()
    g = a.request_grant(SERVICE_A)
    text = a.config_path.read_text().replace(f"[identity {SERVICE_A}]", "[identity sluicet-gone]")
    a.write_config(text)
    a.ctl("reload").check()
    assert any("unbound" in e for e in wait_events(a, "session.ended"))
    assert psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1").rc != 0
    # SERVICE_B's binding is untouched.
    assert call(a, "GetSession", f"string:{a.sessions[SERVICE_B]}").rc == 0


# --- keys: rotation, cache, IdP down ------------------------------------------------

def test_key_rotation_without_restart(agent_factory, idp):
    a = agent_factory(sessions=())
    a.open_session(SERVICE_A)
    idp.rotate_keys(keep_old=False)
    tok = idp.token(SERVICE_A)
    # The unknown kid makes the agent refetch, at most once per 10 s.
    deadline = time.monotonic() + 25
    while True:
        r = open_session(a, SERVICE_A, tok)
        if r.rc == 0 or time.monotonic() > deadline:
            break
        assert "unknown key" in r.stderr or "kid" in r.stderr, r.stderr
        time.sleep(1)
    assert r.rc == 0, r.stderr
    # A token signed by the retired key no longer verifies.
    old = idp.forge({}, idp.claims(SERVICE_A), key=[k for k in idp.retired if k["kty"] == "RSA"][-1])
    denied(open_session(a, SERVICE_A, old), "TokenRejected")


def test_idp_down_uses_the_cached_keys_even_after_restart(agent_factory, idp):
    a = agent_factory(sessions=())
    a.open_session(SERVICE_A)          # warms the cache (memory and disk)
    tok = idp.token(SERVICE_A)
    jwks_dir = a.database.parent / "jwks"
    assert any(p.name.startswith("jwks-") for p in jwks_dir.iterdir())
    assert (jwks_dir.stat().st_mode & 0o777) == 0o700
    with idp.down():
        a.open_session(SERVICE_A, tok)
        a.stop()
        a.start()                      # memory empty: the disk copy serves
        a.open_session(SERVICE_A, tok)


def test_idp_down_and_nothing_cached_fails_closed(agent_factory, idp):
    a = agent_factory(sessions=(), start=False)
    tok = idp.token(SERVICE_A)
    with idp.down():
        a.start()
        denied(open_session(a, SERVICE_A, tok), "Unavailable", "cannot verify")
        assert a.ctl("grant", "request", CONNECTION_NAME, user=SERVICE_A).rc == 1


# --- attack tokens ------------------------------------------------------------------

def _attacks(idp):
    now = int(time.time())
    c = idp.claims(SERVICE_A)
    good = idp.forge({}, c)
    h, p, s = good.split(".")
    return {
        "alg none": (idp.forge({"alg": "none"}, c, key=None), "none"),
        "HS256 with the RSA public key": (idp.forge({"alg": "HS256"}, c, key=idp.public_pem()), "HS256"),
        "expired": (idp.forge({}, idp.claims(SERVICE_A, iat=now - 600, exp=now - 300)), "expired"),
        "future nbf": (idp.forge({}, idp.claims(SERVICE_A, nbf=now + 3600)), "not valid before"),
        "wrong iss": (idp.forge({}, idp.claims(SERVICE_A, iss="https://evil.example")), "issuer"),
        "wrong aud": (idp.forge({}, idp.claims(SERVICE_A, aud="urn:other")), "audience"),
        "no sub": (idp.forge({}, idp.claims(SERVICE_A, sub=None)), "sub"),
        "unknown kid": (idp.forge({"kid": "no-such-kid"}, c, key=idpmod.generate_jwk("RS256")), "key"),
        "tampered payload": (idp.tamper(good, sub=SERVICE_B), "signature"),
        "truncated signature": (f"{h}.{p}.{s[:len(s) // 2]}", "signature"),
        "empty signature": (f"{h}.{p}.", "signature"),
        "oversized": (idp.forge({}, idp.claims(SERVICE_A, pad="x" * 20000)), "longer than"),
        "crit header": (idp.forge({"crit": ["exp"], "exp": now}, c), "crit"),
        "subject bound to another account": (idp.forge({}, idp.claims(SERVICE_B)), "bound to account"),
    }


def test_attack_tokens_are_each_denied_with_their_reason(agent_factory, idp):
    a = agent_factory(sessions=())
    a.open_session(SERVICE_A)  # warm: an unknown kid now means a (rate-limited) refetch
    failures = []
    for name, (tok, why) in _attacks(idp).items():
        r = open_session(a, SERVICE_A, tok)
        if r.rc == 0:
            failures.append(f"{name}: accepted")
        elif "TokenRejected" not in r.stderr or why.lower() not in r.stderr.lower():
            failures.append(f"{name}: {r.stderr.strip()} (wanted TokenRejected naming {why!r})")
        elif tok[:40] in r.stderr and len(tok) > 40:
            failures.append(f"{name}: the token is echoed in the error")
    assert not failures, "\n".join(failures)
    # Every refusal is an event (the writer commits them in batches).
    assert len(wait_events(a, "auth.denied", len(_attacks(idp)))) >= len(_attacks(idp))
    assert call(a, "ListSessions", "boolean:true").stdout.count('"id"') == 1


def test_a_jku_header_is_never_fetched(agent_factory, idp):
    """A token naming its own key set (jku/x5u) signed by that key: the agent
    must not contact the URL, and must refuse the token."""
    hits = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            hits.append(1)
            conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        a = agent_factory(sessions=())
        evil = idpmod.generate_jwk("RS256")
        tok = idp.forge({"jku": f"https://127.0.0.1:{port}/jwks", "x5u": f"https://127.0.0.1:{port}/x5u",
                         "jwk": idpmod.public_jwk(evil)}, idp.claims(SERVICE_A), key=evil)
        denied(open_session(a, SERVICE_A, tok), "TokenRejected")
        time.sleep(0.5)
        assert hits == [], "the agent fetched a URL the token named"
    finally:
        stop.set()
        t.join(2)
        srv.close()


def test_tokens_never_reach_the_log(agent_factory, idp):
    a = agent_factory(sessions=())
    good = idp.token(SERVICE_A)
    a.open_session(SERVICE_A, good)
    bad = idp.tamper(good, sub=SERVICE_B)
    open_session(a, SERVICE_A, bad)
    sig = good.split(".")[2]
    assert sig not in a.log()
    db = a.database.read_bytes()
    assert sig.encode() not in db
