"""Grant life cycle against the real sluiced, sluicectl, D-Bus and PostgreSQL:
request, list, show, revoke, who may connect, TTL (default, cap, expiry),
limits, reload (a broken config refused, a guardrail and a mask taking
effect), a config refused at start (a hash mask without its key), an
upstream that is not there, the upstream credential, restart.

Everything is observed the way a user would: sluicectl's output and exit
status, psql's and psycopg's errors, the grant directory on disk, the audit
(statements and events), pg_stat_activity upstream."""
from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import threading
from datetime import datetime

import psycopg
import pytest

import sluice_fixtures as sf
from sluice_fixtures import AgentStartError, CONNECTION_NAME, SAMPLE_CUSTOMERS, SAMPLE_DB, SERVICE_A, SERVICE_B


# --- helpers (shared with test_proxy.py and test_audit.py) ----------------------

@contextlib.contextmanager
def as_uid(user: str):
    """Run the block with the effective uid/gid of user. The kernel records
    the effective ids of the process that connect()s a Unix socket (what the
    agent reads with SO_PEERCRED), so a client library connecting inside this
    block is that account for the grant; the connected socket then works after
    the block, back as root."""
    pw = pwd.getpwnam(user)
    os.setegid(pw.pw_gid)
    os.seteuid(pw.pw_uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def connect(user: str, grant: dict, **kw) -> psycopg.Connection:
    """A psycopg 3 connection through the grant, as user (autocommit unless
    told otherwise). The user/password sent are whatever libpq picks: the
    agent ignores them."""
    kw.setdefault("autocommit", True)
    with as_uid(user):
        return psycopg.connect(host=grant["socket_dir"], dbname=SAMPLE_DB, connect_timeout=10, **kw)


def ctl_json(agent, *args, user=None):
    """sluicectl --json ARGS; the parsed output (fails the test on rc != 0)."""
    r = agent.ctl("--json", *args, user=user)
    assert r.rc == 0, f"sluicectl {' '.join(args)}: rc {r.rc}\n{r.stderr}"
    return json.loads(r.stdout)


def events(agent, kind=None):
    """The agent's events (sluicectl audit --events --json, as root)."""
    rows = ctl_json(agent, "audit", "--events", "--database", str(agent.database))
    return [e for e in rows if kind is None or e["kind"] == kind]


def statements(agent, *filters):
    """Audited statements (sluicectl audit --json FILTERS, as root)."""
    return ctl_json(agent, "audit", "--database", str(agent.database), *filters)


def wait_event(agent, kind, pred=lambda e: True, timeout=10):
    """The first event of kind that satisfies pred, waiting for the audit
    writer to get it to the database."""
    found = []

    def seen():
        found[:] = [e for e in events(agent, kind) if pred(e)]
        return bool(found)

    sf.wait_for(seen, timeout, f"a {kind} event in the audit")
    return found[0]


def wait_statement(agent, pred, timeout=10, filters=()):
    found = []

    def seen():
        found[:] = [s for s in statements(agent, *filters) if pred(s)]
        return bool(found)

    sf.wait_for(seen, timeout, "the statement in the audit")
    return found[0]


def rfc3339(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def ttl_of(grant: dict) -> float:
    return (rfc3339(grant["expires_at"]) - rfc3339(grant["created_at"])).total_seconds()


def socket_of(grant: dict) -> str:
    return os.path.join(grant["socket_dir"], ".s.PGSQL.5432")


# --- request, list, show ------------------------------------------------------------

def test_grant_request_json_and_psql_returns_rows(agent, psql_as):
    r = agent.ctl("--json", "grant", "request", CONNECTION_NAME, "--reason", "nightly report", user=SERVICE_A)
    assert r.rc == 0, r.stderr
    g = json.loads(r.stdout)
    for key in ("id", "state", "user", "connection", "socket_dir", "expires_at"):
        assert key in g, f"grant JSON lacks {key}: {g}"
    assert g["state"] == "active"
    assert g["user"] == SERVICE_A
    assert g["connection"] == CONNECTION_NAME
    assert g["reason"] == "nightly report"
    assert g["socket_dir"] == str(agent.grant_dir(g["id"]))
    assert os.path.exists(socket_of(g))
    assert rfc3339(g["expires_at"]) > rfc3339(g["created_at"])

    rc, out, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB,
                           "select id, name from ops.customers order by id")
    assert rc == 0, err
    assert out.splitlines() == ["1|Ada Lovelace", "2|Grace Hopper", "3|Edsger Dijkstra"]
    # The agent authenticated upstream as the broker; the service never had the password.
    rc, out, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select current_user")
    assert (rc, out.strip()) == (0, agent.pg.broker_user), err

    # The human form names the grant, the socket and a psql line ready to paste.
    r = agent.ctl("grant", "request", CONNECTION_NAME, user=SERVICE_A)
    assert r.rc == 0, r.stderr
    gid = r.stdout.split()[1]
    assert r.stdout.startswith(f"grant {gid} active until ")
    assert f"{agent.grant_dir(gid)}/.s.PGSQL.5432" in r.stdout
    assert f'psql "host={agent.grant_dir(gid)} dbname={SAMPLE_DB}"' in r.stdout


def test_grants_list_show_and_all(agent):
    ga = agent.request_grant(SERVICE_A)
    mine = ctl_json(agent, "grants", user=SERVICE_A)
    assert [g["id"] for g in mine] == [ga["id"]]
    shown = ctl_json(agent, "grant", "show", ga["id"], user=SERVICE_A)
    assert (shown["id"], shown["state"], shown["user"], shown["socket_dir"]) == \
        (ga["id"], "active", SERVICE_A, ga["socket_dir"])

    table = agent.ctl("grants", user=SERVICE_A)
    assert table.rc == 0 and ga["id"] in table.stdout and "active" in table.stdout

    # Root is an admin: it sees every grant with --all.
    every = ctl_json(agent, "grants", "--all")
    assert ga["id"] in [g["id"] for g in every]
    # Someone who is not an admin may not list every grant...
    r = agent.ctl("grants", "--all", user=SERVICE_B)
    assert r.rc == 1
    assert "admin" in r.stderr
    # ...does not see A's grants in its own list, and cannot look one up.
    assert ctl_json(agent, "grants", user=SERVICE_B) == []
    r = agent.ctl("grant", "show", ga["id"], user=SERVICE_B)
    assert r.rc == 1 and ga["id"] in r.stderr


def test_revoke_of_someone_elses_grant(agent, psql_as):
    ga = agent.request_grant(SERVICE_A)
    # A non-admin cannot tell that someone else's grant exists.
    r = agent.ctl("revoke", ga["id"], user=SERVICE_B)
    assert r.rc == 1
    assert f"no active grant {ga['id']}" in r.stderr
    assert os.path.exists(socket_of(ga))
    rc, _, err = psql_as(SERVICE_A, ga["socket_dir"], SAMPLE_DB, "select 1")
    assert rc == 0, err

    # Root (an admin) may.
    r = agent.ctl("revoke", ga["id"])
    assert r.rc == 0, r.stderr
    assert f"grant {ga['id']} revoked" in r.stdout
    assert not os.path.exists(ga["socket_dir"])
    assert ctl_json(agent, "grants", user=SERVICE_A) == []
    ev = wait_event(agent, "grant.revoked", lambda e: e["grant_id"] == ga["id"])
    assert ev["user"] == "root"
    wait_event(agent, "grant.ended", lambda e: e["grant_id"] == ga["id"] and "revoked" in e["detail"])
    # Revoking it twice says it is gone.
    r = agent.ctl("revoke", ga["id"])
    assert r.rc == 1 and f"no active grant {ga['id']}" in r.stderr


def test_owner_may_revoke_own_grant(agent):
    ga = agent.request_grant(SERVICE_A)
    r = agent.ctl("revoke", ga["id"], user=SERVICE_A)
    assert r.rc == 0, r.stderr
    assert not os.path.exists(ga["socket_dir"])


# --- who may connect, who may ask -------------------------------------------------------

def test_second_uid_is_refused_on_the_socket(agent, accounts, psql_as):
    ga = agent.request_grant(SERVICE_A)
    rc, out, err = psql_as(SERVICE_B, ga["socket_dir"], SAMPLE_DB, "select 1")
    assert rc != 0
    assert "FATAL" in err
    assert f"may not use grant {ga['id']}" in err, err
    assert out == ""
    uid_b = accounts[SERVICE_B].uid
    ev = wait_event(agent, "connection.refused", lambda e: e["grant_id"] == ga["id"])
    assert ev["uid"] == uid_b
    assert str(uid_b) in ev["detail"]
    # Root is no exception: only the grant's uid gets in.
    rc, _, err = psql_as(None, ga["socket_dir"], SAMPLE_DB, "select 1")
    assert rc != 0 and f"may not use grant {ga['id']}" in err
    # The owner still gets in.
    rc, out, err = psql_as(SERVICE_A, ga["socket_dir"], SAMPLE_DB, "select 1")
    assert (rc, out.strip()) == (0, "1"), err


def test_grant_denied_for_a_connection_not_allowed(agent, accounts):
    r = agent.ctl("grant", "request", CONNECTION_NAME, user=SERVICE_B)
    assert r.rc == 1
    assert f"{SERVICE_B} may not use connection {CONNECTION_NAME}" in r.stderr, r.stderr
    assert r.stdout == ""
    ev = wait_event(agent, "grant.denied", lambda e: e["user"] == SERVICE_B)
    assert ev["connection"] == CONNECTION_NAME
    assert ev["uid"] == accounts[SERVICE_B].uid
    assert ev["grant_id"] is None
    assert os.listdir(agent.grants_dir) == []
    # An unknown connection is refused too (and never creates a directory).
    r = agent.ctl("grant", "request", "no-such-connection", user=SERVICE_A)
    assert r.rc == 1 and "no-such-connection" in r.stderr
    assert os.listdir(agent.grants_dir) == []


@pytest.fixture(scope="module")
def ops_group(accounts):
    """A local group "sluicet-ops" with SERVICE_B as its only member (created
    when missing, like the accounts)."""
    import grp
    name = "sluicet-ops"
    try:
        grp.getgrnam(name)
    except KeyError:
        sf.run(["groupadd", "--system", name]).check("groupadd")
    sf.run(["gpasswd", "-M", SERVICE_B, name]).check("gpasswd")
    assert grp.getgrnam(name).gr_mem == [SERVICE_B]
    return name


def test_unix_group_principals_for_access_and_admins(agent_factory, ops_group, psql_as):
    agent = agent_factory(agent={"admins": f"root %{ops_group}"}, access={"allow": f"%{ops_group}"})
    # Access through the group: B is a member, A is not.
    gb = agent.request_grant(SERVICE_B)
    rc, out, err = psql_as(SERVICE_B, gb["socket_dir"], SAMPLE_DB, "select 1")
    assert (rc, out.strip()) == (0, "1"), err
    r = agent.ctl("grant", "request", CONNECTION_NAME, user=SERVICE_A)
    assert r.rc == 1 and f"{SERVICE_A} may not use connection {CONNECTION_NAME}" in r.stderr, r.stderr
    # Admins through the group: B lists and revokes every grant; A may not.
    agent.write_config(agent.config_path.read_text().replace(f"allow = %{ops_group}",
                                                             f"allow = %{ops_group} {SERVICE_A}"))
    agent.ctl("reload").check()
    ga = agent.request_grant(SERVICE_A)
    assert {g["id"] for g in ctl_json(agent, "grants", "--all", user=SERVICE_B)} == {ga["id"], gb["id"]}
    assert agent.ctl("grants", "--all", user=SERVICE_A).rc == 1
    assert agent.ctl("revoke", gb["id"], user=SERVICE_A).rc == 1
    r = agent.ctl("revoke", ga["id"], user=SERVICE_B)
    assert r.rc == 0, r.stderr
    assert not os.path.exists(ga["socket_dir"])


# --- TTL ------------------------------------------------------------------------------

def test_ttl_expiry_ends_a_live_psql_session(agent_factory, psql_as):
    agent = agent_factory()
    g = agent.request_grant(SERVICE_A, ttl="3s")
    # psql reading its statements from a pipe we hold open: a live session.
    psql = subprocess.Popen(sf.as_user_cmd(SERVICE_A, ["psql", "-X", "-A", "-t", "-h", g["socket_dir"],
                                                       "-d", SAMPLE_DB]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=sf.clean_env(), cwd="/")
    try:
        psql.stdin.write("select 'before expiry';\n")
        psql.stdin.flush()
        assert psql.stdout.readline().strip() == "before expiry"

        sf.wait_for(lambda: not os.path.exists(g["socket_dir"]), 15, "the grant directory to go at expiry")
        wait_event(agent, "grant.ended", lambda e: e["grant_id"] == g["id"] and "expired" in e["detail"])
        psql.stdin.write("select 'after expiry';\n")
        psql.stdin.flush()
        out, err = psql.communicate(timeout=30)
    finally:
        if psql.poll() is None:
            psql.kill()
            psql.wait()
    assert "after expiry" not in out
    assert f"FATAL:  sluice: grant {g['id']} ended (expired)" in err, err
    assert psql.returncode != 0

    # A new connection finds no socket.
    rc, _, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1")
    assert rc != 0
    assert "No such file or directory" in err, err
    assert ctl_json(agent, "grants", user=SERVICE_A) == []

    # The refused statement is in the audit.
    row = wait_statement(agent, lambda s: "after expiry" in s["sql"], filters=("--grant", g["id"]))
    assert row["decision"] == "refused"
    assert row["sqlstate"] == "57P01"
    assert "expired" in row["error"]
    before = [s for s in statements(agent, "--grant", g["id"]) if "before expiry" in s["sql"]]
    assert [(s["decision"], s["outcome"]) for s in before] == [("allowed", "SELECT 1")]


def test_revoke_ends_an_idle_session(agent):
    g = agent.request_grant(SERVICE_A)
    idle = connect(SERVICE_A, g)
    assert idle.execute("select 'alive'").fetchone() == ("alive",)
    r = agent.ctl("revoke", g["id"])
    assert r.rc == 0, r.stderr
    assert not os.path.exists(g["socket_dir"])
    # The open connection learns it on its next query...
    with pytest.raises(psycopg.OperationalError, match=f"sluice: grant {g['id']} ended \\(revoked\\)"):
        idle.execute("select 'after revoke'")
    idle.close()
    # ...which is recorded as refused.
    row = wait_statement(agent, lambda s: "after revoke" in s["sql"], filters=("--grant", g["id"]))
    assert (row["decision"], row["sqlstate"]) == ("refused", "57P01")
    assert "revoked" in row["error"]


def test_revoke_rolls_back_an_open_transaction(agent):
    pg = agent.pg
    t = f"public.scen_tx_{os.getpid()}_{threading.get_ident() % 100000}"
    pg.psql_super(f"drop table if exists {t}; create table {t} (v text); "
                  f"alter table {t} owner to {pg.broker_user}").check()
    g = agent.request_grant(SERVICE_A)
    conn = connect(SERVICE_A, g, autocommit=False)
    conn.execute(f"insert into {t} values ('uncommitted')")
    agent.ctl("revoke", g["id"]).check()
    with pytest.raises(psycopg.OperationalError, match="ended"):
        conn.commit()
    conn.close()
    sf.wait_for(lambda: pg.backends(pg.broker_user) == 0, 10, "the broker's backends to go")
    assert pg.sql(f"select count(*) from {t}") == [("0",)]


def _running_upstream(pg, marker):
    q = (f"select count(*) from pg_stat_activity where state = 'active' "
         f"and query like '%{marker[:-1]}' || '{marker[-1]}%'")
    return int(pg.sql(q, "postgres")[0][0])


def _upstream_sessions(pg, marker):
    q = f"select count(*) from pg_stat_activity where query like '%{marker[:-1]}' || '{marker[-1]}%'"
    return int(pg.sql(q, "postgres")[0][0])


def test_revoke_cancels_a_running_statement_upstream(agent):
    pg = agent.pg
    g = agent.request_grant(SERVICE_A)
    busy = connect(SERVICE_A, g)
    marker = "sluice-revoke-cancel"
    t = threading.Thread(target=lambda: _swallow(busy.execute, f"select pg_sleep(30) /* {marker} */"),
                         daemon=True)
    t.start()
    sf.wait_for(lambda: _running_upstream(pg, marker) == 1, 10, "pg_sleep to run upstream")
    r = agent.ctl("revoke", g["id"])
    assert r.rc == 0, r.stderr
    # Upstream, the statement stops and its session goes, well before 30 s.
    sf.wait_for(lambda: _upstream_sessions(pg, marker) == 0, 10, "the upstream backend to go")


def test_a_statement_cut_by_the_grant_end_is_recorded_as_interrupted(agent):
    pg = agent.pg
    g = agent.request_grant(SERVICE_A)
    busy = connect(SERVICE_A, g)
    marker = "sluice-interrupted"
    t = threading.Thread(target=lambda: _swallow(busy.execute, f"select pg_sleep(30) /* {marker} */"),
                         daemon=True)
    t.start()
    sf.wait_for(lambda: _running_upstream(pg, marker) == 1, 10, "pg_sleep to run upstream")
    agent.ctl("revoke", g["id"]).check()
    row = wait_statement(agent, lambda s: marker in s["sql"], filters=("--grant", g["id"]))
    assert row["decision"] == "allowed"  # it was forwarded and ran, until the end
    assert row["outcome"] is None
    assert row["error"] == "interrupted: the grant ended", row


def _swallow(fn, *args):
    try:
        fn(*args)
    except psycopg.Error:
        pass


def _psql_bg(user, grant, sql):
    """psql -c SQL as user through grant, in the background (own process
    group, so the test can kill psql itself and not only runuser)."""
    return subprocess.Popen(sf.as_user_cmd(user, ["psql", "-X", "-A", "-t", "-h", grant["socket_dir"],
                                                  "-d", SAMPLE_DB, "-c", sql]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=sf.clean_env(), cwd="/", start_new_session=True)


def _finish(p, timeout):
    """(rc, out, err) of p, or None when it is still running after timeout
    (then it is killed, with its process group)."""
    try:
        out, err = p.communicate(timeout=timeout)
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return None


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_grant_end_releases_a_client_waiting_for_its_result(agent, how):
    """A client blocked on a long statement when the grant ends is told so
    (FATAL 57P01 naming the grant) and disconnected: psql returns at once,
    it does not wait for the statement or for anything else."""
    pg = agent.pg
    g = agent.request_grant(SERVICE_A, ttl="4s" if how == "expired" else None)
    marker = f"sluice-end-{how}"
    p = _psql_bg(SERVICE_A, g, f"select pg_sleep(60) /* {marker} */")
    try:
        sf.wait_for(lambda: _running_upstream(pg, marker) == 1, 10, "pg_sleep to run upstream")
        if how == "revoked":
            agent.ctl("revoke", g["id"]).check()
        else:
            sf.wait_for(lambda: not os.path.exists(g["socket_dir"]), 15, "the grant to expire")
        res = _finish(p, 15)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
    assert res is not None, "psql still waits 15 s after the grant ended"
    rc, out, err = res
    assert rc != 0
    assert f"FATAL:  sluice: grant {g['id']} ended ({how})" in err, err
    sf.wait_for(lambda: _upstream_sessions(pg, marker) == 0, 10, "the upstream backend to go")


def test_ttl_is_capped_by_max_ttl(agent_factory):
    agent = agent_factory(access={"max_ttl": "30m"})
    g = agent.request_grant(SERVICE_A, ttl="2h")
    assert ttl_of(g) == 1800
    g = agent.request_grant(SERVICE_A, ttl="90s")
    assert ttl_of(g) == 90


def test_default_ttl_applies_without_ttl(agent_factory):
    agent = agent_factory(access={"max_ttl": "1h", "default_ttl": "5m"})
    assert ttl_of(agent.request_grant(SERVICE_A)) == 300


def test_default_ttl_is_ten_minutes_or_max_ttl(agent_factory):
    agent = agent_factory(access={"max_ttl": "1h"})
    assert ttl_of(agent.request_grant(SERVICE_A)) == 600
    agent.stop()
    agent = agent_factory(access={"max_ttl": "2m"})
    assert ttl_of(agent.request_grant(SERVICE_A)) == 120


def test_a_schema_outside_the_access_list_is_refused(agent_factory):
    agent = agent_factory(access={"schemas": "ops"})
    r = agent.ctl("grant", "request", CONNECTION_NAME, "--schema", "other", user=SERVICE_A)
    assert r.rc == 1
    assert "schema other is not in [access" in r.stderr, r.stderr
    assert os.listdir(agent.grants_dir) == []
    g = agent.request_grant(SERVICE_A, schema="ops")
    assert g["schema"] == "ops"


def test_reason_is_capped(agent):
    r = agent.ctl("grant", "request", CONNECTION_NAME, "--reason", "x" * 5000, user=SERVICE_A)
    assert r.rc in (1, 2), r
    assert "reason" in r.stderr, r.stderr
    assert os.listdir(agent.grants_dir) == []
    g = agent.request_grant(SERVICE_A, reason="y" * 1024)
    assert g["reason"] == "y" * 1024


def test_status_counts_grants_and_connections(agent):
    g = agent.request_grant(SERVICE_A)
    agent.request_grant(SERVICE_A)
    c = connect(SERVICE_A, g)
    try:
        st = ctl_json(agent, "status")
        assert (st["grants"], st["connections"]) == (2, 1), st
        r = agent.ctl("status")
        assert r.rc == 0
        assert "2 active, 1 client connection" in r.stdout, r.stdout
    finally:
        c.close()


def test_bad_ttl_is_a_usage_error(agent):
    r = agent.ctl("grant", "request", CONNECTION_NAME, "--ttl", "soon", user=SERVICE_A)
    assert r.rc == 2
    assert "soon" in r.stderr
    assert os.listdir(agent.grants_dir) == []


# --- limits ---------------------------------------------------------------------------

def test_max_grants_per_user(agent_factory):
    agent = agent_factory(agent={"max_grants_per_user": "2"})
    g1 = agent.request_grant(SERVICE_A)
    agent.request_grant(SERVICE_A)
    r = agent.ctl("grant", "request", CONNECTION_NAME, user=SERVICE_A)
    assert r.rc == 1
    assert "max_grants_per_user" in r.stderr, r.stderr
    assert len(os.listdir(agent.grants_dir)) == 2
    # Ending one makes room again.
    agent.ctl("revoke", g1["id"], user=SERVICE_A).check()
    agent.request_grant(SERVICE_A)


def test_max_connections_per_grant(agent_factory, psql_as):
    agent = agent_factory(agent={"max_connections_per_grant": "2"})
    g = agent.request_grant(SERVICE_A)
    c1 = connect(SERVICE_A, g)
    c2 = connect(SERVICE_A, g)
    try:
        rc, _, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1")
        assert rc != 0
        assert "FATAL" in err and "max_connections_per_grant" in err, err
        assert g["id"] in err
        wait_event(agent, "connection.refused",
                   lambda e: e["grant_id"] == g["id"] and "limit" in e["detail"])
        # The ones inside still work.
        assert c1.execute("select 1").fetchone() == (1,)
        assert c2.execute("select 2").fetchone() == (2,)
    finally:
        c1.close()
    # A closed connection frees its place.
    sf.wait_for(lambda: ctl_json(agent, "grant", "show", g["id"])["connections"] == 1, 10,
                "the closed connection to be counted out")
    rc, out, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 3")
    c2.close()
    assert (rc, out.strip()) == (0, "3"), err


# --- reload ---------------------------------------------------------------------------

def test_reload_refuses_a_broken_config_and_keeps_the_old(agent, psql_as):
    g = agent.request_grant(SERVICE_A)
    good = agent.config_path.read_text()
    agent.write_config(good + "\n[access broken]\nconnection = orders-pg\nallow = sluicet-b\nmax_ttl = forever\n"
                       "colour = blue\n")
    r = agent.ctl("reload")
    assert r.rc == 1
    errs = r.stderr
    assert f"{agent.config_path}:" in errs
    assert "forever" in errs or "max_ttl" in errs, errs
    assert "colour" in errs, errs
    wait_event(agent, "config.rejected")
    # The old configuration still rules: B is still refused, A still served.
    assert agent.ctl("grant", "request", CONNECTION_NAME, user=SERVICE_B).rc == 1
    rc, out, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1")
    assert (rc, out.strip()) == (0, "1"), err
    agent.request_grant(SERVICE_A)


def test_reload_applies_a_valid_change_and_keeps_live_grants(agent, psql_as):
    g = agent.request_grant(SERVICE_A)
    agent.write_config(agent.config_path.read_text() +
                       "\n[access b]\nconnection = orders-pg\nallow = sluicet-b\nmax_ttl = 5m\n")
    r = agent.ctl("reload")
    assert r.rc == 0, r.stderr
    wait_event(agent, "config.reloaded")
    gb = agent.request_grant(SERVICE_B)
    assert ttl_of(gb) == 300
    rc, out, err = psql_as(SERVICE_B, gb["socket_dir"], SAMPLE_DB, "select current_user")
    assert (rc, out.strip()) == (0, agent.pg.broker_user), err
    # A's grant lived through the reload.
    rc, out, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 2")
    assert (rc, out.strip()) == (0, "2"), err
    # Only admins reload.
    r = agent.ctl("reload", user=SERVICE_A)
    assert r.rc == 1 and "admin" in r.stderr, r.stderr


def test_sighup_reloads(agent):
    assert agent.ctl("grant", "request", CONNECTION_NAME, user=SERVICE_B).rc == 1
    good = agent.config_path.read_text()
    # A broken file on SIGHUP: refused, recorded, the agent keeps running.
    agent.write_config(good + "\n[nonsense\n")
    agent.reload()
    wait_event(agent, "config.rejected")
    assert agent.running()
    assert agent.ctl("grant", "request", CONNECTION_NAME, user=SERVICE_B).rc == 1
    # A good one takes effect.
    agent.write_config(good + "\n[access b]\nconnection = orders-pg\nallow = sluicet-b\n")
    agent.reload()
    wait_event(agent, "config.reloaded")
    agent.request_grant(SERVICE_B)


def test_agent_refuses_a_hash_mask_whose_key_it_cannot_read(agent_factory):
    a = agent_factory(raw="[mask orders-pg]\nops.customers.ssn = hash\nhash_key_file = /nonexistent/key\n",
                      start=False)
    with pytest.raises(AgentStartError) as e:
        a.start()
    assert e.value.returncode not in (None, 0)
    lines = a.config_path.read_text().splitlines()
    lineno = lines.index("[mask orders-pg]") + 1
    assert f"{a.config_path}:{lineno}: [mask orders-pg] hash_key_file /nonexistent/key" in e.value.log, e.value.log


@pytest.mark.parametrize("key,value", [("approval", "grant"), ("schemas", "ops"), ("mode", "read")])
def test_agent_starts_with_enforced_access_keys(agent_factory, key, value):
    a = agent_factory(access={key: value})
    assert a.ctl("status").rc == 0


def test_reload_takes_a_guardrail_and_a_mask(agent, psql_as):
    # sluicectl reload answers once the new configuration rules.
    ssn_of_1 = "select ssn from ops.customers where id = 1"
    good = agent.config_path.read_text()
    agent.write_config(good + "\n[guardrail orders-pg]\nblock = ddl\n")
    r = agent.ctl("reload")
    assert r.rc == 0, r.stderr
    g = agent.request_grant(SERVICE_A)
    rc, out, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "create table ops.reload_guarded (i int)")
    assert rc != 0 and "sluice: blocked: ddl" in err, (out, err)
    # A hash mask without its key is refused whole; the guardrail still rules
    # and nothing is masked.
    agent.write_config(good + "\n[mask orders-pg]\nops.customers.ssn = hash\n")
    r = agent.ctl("reload")
    assert r.rc == 1
    assert "hash_key_file" in r.stderr, r.stderr
    g = agent.request_grant(SERVICE_A)
    rc, out, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "create table ops.reload_guarded (i int)")
    assert rc != 0 and "sluice: blocked: ddl" in err, (out, err)
    rc, out, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, ssn_of_1)
    assert (rc, out.strip()) == (0, "123-45-6789"), err
    # A mask that can be applied is, on the next connection.
    agent.write_config(good + "\n[mask orders-pg]\nops.customers.ssn = last4\n")
    r = agent.ctl("reload")
    assert r.rc == 0, r.stderr
    g = agent.request_grant(SERVICE_A)
    rc, out, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, ssn_of_1)
    assert (rc, out.strip()) == (0, "****6789"), err


def test_an_expired_grant_frees_its_place(agent_factory):
    agent = agent_factory(agent={"max_grants_per_user": "1"})
    g = agent.request_grant(SERVICE_A, ttl="2s")
    assert agent.ctl("grant", "request", CONNECTION_NAME, user=SERVICE_A).rc == 1
    sf.wait_for(lambda: not os.path.exists(g["socket_dir"]), 10, "expiry")
    agent.request_grant(SERVICE_A)


# --- an upstream that is not there -------------------------------------------------------------

def test_upstream_refusing_connections_is_reported(agent_factory, psql_as):
    agent = agent_factory(connection={"port": str(sf.free_port())})
    g = agent.request_grant(SERVICE_A)
    rc, _, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1")
    assert rc != 0
    assert f"FATAL:  sluice: cannot connect to {CONNECTION_NAME}" in err, err
    assert "refused" in err.lower(), err


def test_upstream_that_never_answers_times_out(agent_factory, psql_as):
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # completes TCP handshakes, never says a word
    try:
        agent = agent_factory(agent={"connect_timeout": "2s"},
                              connection={"port": str(silent.getsockname()[1])})
        g = agent.request_grant(SERVICE_A)
        rc, _, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1", timeout=30)
        assert rc != 0
        assert "FATAL:  sluice: the upstream server did not answer in time" in err, err
        # The agent still serves: status answers.
        assert agent.ctl("status").rc == 0
    finally:
        silent.close()


# --- the upstream credential -------------------------------------------------------------

def _second_connection(agent, name, password_file):
    pg = agent.pg
    return (f"\n[connection {name}]\ntype = postgres\nhost = {pg.host}\nport = {pg.port}\ndbname = {pg.dbname}\n"
            f"user = {pg.broker_user}\npassword_file = {password_file}\nsslmode = disable\n"
            f"\n[access {name}]\nconnection = {name}\nallow = {SERVICE_A}\n")


def test_wrong_broker_password_is_reported_to_the_client(agent_factory, accounts, psql_as):
    a = agent_factory(start=False)
    bad = sf.write_file(a.dirs.credentials / "bad", "not-the-password\n", 0o600, accounts[sf.AGENT_USER])
    a.write_config(a.config_path.read_text() + _second_connection(a, "bad-pg", bad))
    a.start()
    g = a.request_grant(SERVICE_A, "bad-pg")
    rc, _, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1")
    assert rc != 0
    assert "FATAL:  sluice: cannot connect to bad-pg" in err, err
    assert 'password authentication failed for user "sluice_broker"' in err, err
    # The good connection is unaffected.
    g = a.request_grant(SERVICE_A)
    rc, out, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1")
    assert (rc, out.strip()) == (0, "1"), err


def test_password_file_must_be_private(agent_factory, accounts):
    a = agent_factory(start=False)
    loose = sf.write_file(a.dirs.credentials / "loose", a.pg.broker_password + "\n", 0o644,
                          accounts[sf.AGENT_USER])
    a.write_config(a.config_path.read_text() + _second_connection(a, "loose-pg", loose))
    r = a.run_to_exit()
    assert r.rc not in (0, None)
    assert "password_file" in r.stdout and "0600" in r.stdout and str(loose) in r.stdout, r.stdout
    assert a.pg.broker_password not in r.stdout
    # Made private, the agent starts; made public again, new grants are refused.
    os.chmod(loose, 0o600)
    a.start()
    a.request_grant(SERVICE_A, "loose-pg")
    os.chmod(loose, 0o640)
    r = a.ctl("grant", "request", "loose-pg", user=SERVICE_A)
    assert r.rc == 1
    assert "password_file" in r.stderr and "0600" in r.stderr, r.stderr


def test_the_password_is_nowhere_a_user_can_see(agent, psql_as):
    """After a session, the broker password is in no output, no audit row,
    not in the database file and not in the agent's log."""
    g = agent.request_grant(SERVICE_A, reason="look for the password")
    rc, out, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB,
                           "select current_setting('application_name'); show all")
    assert rc == 0, err
    secret = agent.pg.broker_password
    grant_json = agent.ctl("--json", "grant", "show", g["id"]).stdout
    audit = agent.ctl("--json", "audit", "--database", str(agent.database)).stdout
    evts = agent.ctl("--json", "audit", "--events", "--database", str(agent.database)).stdout
    for where, text in (("psql", out + err), ("grant show", grant_json), ("audit", audit), ("events", evts)):
        assert secret not in text, where
    assert agent.stop() == 0
    for f in agent.database.parent.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f
    assert secret not in agent.log()


# --- restart ----------------------------------------------------------------------------

def test_restart_removes_leftover_grant_directories(agent, bus, accounts, psql_as):
    g = agent.request_grant(SERVICE_A)
    # A crash leaves the grant's directory and socket behind.
    agent.signal(signal.SIGKILL)
    agent.proc.wait(10)
    assert os.path.exists(socket_of(g))
    # (and one from an older run, as the agent's account would have left it)
    stray = agent.grants_dir / "0123456789abcdef"
    stray.mkdir()
    (stray / ".s.PGSQL.5432").write_text("")
    for p in (stray, stray / ".s.PGSQL.5432"):
        os.chown(p, accounts[sf.AGENT_USER].uid, accounts[sf.AGENT_USER].gid)
    sf.wait_for(lambda: not bus.name_has_owner(sf.BUS_NAME), 10, "the bus name to be released")
    agent.start()
    assert os.listdir(agent.grants_dir) == []
    rc, _, err = psql_as(SERVICE_A, g["socket_dir"], SAMPLE_DB, "select 1")
    assert rc != 0
    assert ctl_json(agent, "grants", "--all") == []
    g2 = agent.request_grant(SERVICE_A)
    rc, out, err = psql_as(SERVICE_A, g2["socket_dir"], SAMPLE_DB, "select count(*) from ops.customers")
    assert (rc, out.strip()) == (0, str(SAMPLE_CUSTOMERS)), err


def test_shutdown_ends_grants(agent, psql_as):
    g = agent.request_grant(SERVICE_A)
    c = connect(SERVICE_A, g)
    assert agent.stop() == 0
    assert not os.path.exists(g["socket_dir"])
    with pytest.raises(psycopg.OperationalError, match=f"grant {g['id']} ended"):
        c.execute("select 1")
    c.close()
