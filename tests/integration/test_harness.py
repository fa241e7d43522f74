"""Tests of the harness itself: the accounts, the clusters, TLS, the bus with
the installed policy, the agent fixture's mechanics (with a stand-in agent)
and scripts/check's result counting. If one of these fails, the scenario
tests built on the fixture are not to be trusted."""
from __future__ import annotations

import os
import pwd
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

import sluice_fixtures as sf
from conftest import SRCDIR
from sluice_fixtures import AGENT_USER, BUS_NAME, PG_USER, SERVICE_A, SERVICE_B


# --- accounts and helpers -----------------------------------------------------

def test_accounts_are_unprivileged_system_accounts(accounts):
    for name in (AGENT_USER, SERVICE_A, SERVICE_B, PG_USER):
        pw = pwd.getpwnam(name)
        assert accounts[name].uid == pw.pw_uid
        assert 0 < pw.pw_uid < 1000, f"{name} should be a system account"
        assert pw.pw_shell in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false"), name


def test_run_as_runs_as_that_account(accounts, run_as):
    rc, out, err = run_as(SERVICE_A, ["id", "-un"])
    assert (rc, out.strip()) == (0, SERVICE_A), err
    # The environment is clean plus what was given: nothing of ours leaks.
    rc, out, _ = run_as(SERVICE_B, ["env"], env={"SLUICE_X": "1"})
    assert rc == 0
    names = {line.split("=", 1)[0] for line in out.splitlines()}
    assert "SLUICE_X" in names
    assert not any(n.startswith(("PG", "DBUS_")) for n in names), names


# --- PostgreSQL -------------------------------------------------------------------

def test_pg_broker_logs_in_with_scram_over_tcp(pg):
    r = sf.run(["psql", "-X", "-A", "-t", "-c",
                "select current_user, current_setting('password_encryption')"],
               env=pg.broker_env())
    assert r.rc == 0, r.stderr
    assert r.stdout.strip() == "sluice_broker|scram-sha-256"
    assert pg.broker_scram_secret().startswith("SCRAM-SHA-256$4096:")
    # The server log shows the connection authenticated with SCRAM.
    assert "method=scram-sha-256" in pg.log_path.read_text()


def test_pg_wrong_password_is_refused(pg):
    env = pg.broker_env() | {"PGPASSWORD": "not-" + pg.broker_password}
    r = sf.run(["psql", "-X", "-c", "select 1"], env=env)
    assert r.rc != 0
    assert 'password authentication failed for user "sluice_broker"' in r.stderr


def test_pg_service_account_has_no_way_in(pg, psql_as):
    # The socket is reachable, but without the broker's password nobody gets in.
    assert (pg.socket_dir / f".s.PGSQL.{pg.port}").is_socket()
    rc, _, err = psql_as(SERVICE_A, str(pg.socket_dir), "orders", "select 1", port=pg.port,
                         extra_args=["-U", "sluice_broker", "-w"])
    assert rc != 0
    assert "no password supplied" in err


def test_pg_sample_data_is_owned_by_the_broker(pg):
    assert pg.sql("select count(*) from ops.customers") == [(str(sf.SAMPLE_CUSTOMERS),)]
    assert pg.sql("select count(*) from ops.orders") == [(str(sf.SAMPLE_ORDERS),)]
    owners = pg.sql("select distinct tableowner from pg_tables where schemaname = 'ops'")
    assert owners == [("sluice_broker",)]
    assert pg.sql("select pg_get_userbyid(datdba) from pg_database where datname = 'orders'",
                  "postgres") == [("sluice_broker",)]


def test_pg_superuser_helpers(pg):
    with pg.connect_super() as conn:
        assert conn.execute("select current_user, current_database()").fetchone() == ("postgres", "orders")
    r = pg.psql_super("select 1/0")
    assert r.rc != 0 and "division by zero" in r.stderr
    with pytest.raises(sf.CommandFailed):
        pg.sql("select nonsense_column")


# --- TLS ------------------------------------------------------------------------------

def test_pg_tls_verify_full(pg_tls):
    r = sf.run(["psql", "-X", "-A", "-t", "-c",
                "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()"],
               env=pg_tls.broker_env())
    assert r.rc == 0, r.stderr
    ssl, version = r.stdout.strip().split("|")
    assert ssl == "t" and version.startswith("TLSv1.")
    # The certificate also names 127.0.0.1, so verify-full holds by address.
    r = sf.run(["psql", "-X", "-A", "-t", "-c", "select 1"],
               env=pg_tls.broker_env() | {"PGHOST": "127.0.0.1"})
    assert (r.rc, r.stdout.strip()) == (0, "1"), r.stderr


def test_pg_tls_refuses_plaintext(pg_tls):
    r = sf.run(["psql", "-X", "-c", "select 1"], env=pg_tls.broker_env() | {"PGSSLMODE": "disable"})
    assert r.rc != 0
    assert "no encryption" in r.stderr or "rejects connection" in r.stderr, r.stderr


def test_pg_tls_other_ca_fails_verification(pg_tls, sandbox):
    other = sf.TestCA(sandbox / "other-ca", "someone else's CA")
    r = sf.run(["psql", "-X", "-c", "select 1"], env=pg_tls.broker_env() | {"PGSSLROOTCERT": str(other.cert)})
    assert r.rc != 0
    assert "certificate verify failed" in r.stderr, r.stderr


def test_pg_tls_wrong_host_name_fails_verification(pg_tls):
    env = pg_tls.broker_env() | {"PGHOST": "db.example", "PGHOSTADDR": "127.0.0.1"}
    r = sf.run(["psql", "-X", "-c", "select 1"], env=env)
    assert r.rc != 0
    assert 'does not match host name "db.example"' in r.stderr, r.stderr


def test_pg_tls_connection_keys(pg_tls):
    keys = pg_tls.connection_keys(Path("/x"))
    assert keys["sslmode"] == "verify-full"
    assert keys["host"] == "localhost"
    assert Path(keys["sslrootcert"]).read_text().startswith("-----BEGIN CERTIFICATE-----")


# --- install tree and bus -----------------------------------------------------------------

def test_install_tree_has_the_dbus_policy(installed):
    assert not installed.from_source, (
        "`make install` does not install org.sluice.Agent1.conf (dbuspolicydir); "
        "the bus used data/ from the source tree instead")
    assert installed.dbus_policy.read_bytes() == (SRCDIR / "data" / sf.DBUS_POLICY_NAME).read_bytes()


def test_bus_uses_that_policy_and_answers(bus, installed):
    assert f"<include>{installed.dbus_policy}</include>" in bus.config.read_text()
    r = bus.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.GetId")
    assert r.rc == 0 and "string" in r.stdout, r.stderr
    # Reachable by a service account too (the bus is their way to sluiced).
    r = bus.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.GetId", user=SERVICE_A)
    assert r.rc == 0, r.stderr


def test_bus_lets_only_the_agent_account_own_the_name(bus):
    r = bus.try_own(BUS_NAME, AGENT_USER)
    assert (r.rc, r.stdout.strip()) == (0, "owned"), r.stderr
    for user in (SERVICE_A, "root"):
        r = bus.try_own(BUS_NAME, user)
        assert r.rc != 0 and "AccessDenied" in r.stderr, (user, r)
    # Default deny own: the agent account gets nothing else.
    r = bus.try_own("org.example.NotSluice", AGENT_USER)
    assert r.rc != 0 and "AccessDenied" in r.stderr, r


# --- the agent fixture, with a stand-in for sluiced ------------------------------------------

FAKE_AGENT = """#!/bin/sh
# Stand-in for sluiced: drops to the agent account like the real one, takes
# the bus name, logs to stderr and exits 0 on SIGTERM.
exec setpriv --reuid={user} --regid={user} --init-groups -- /usr/bin/python3 -c '
import dbus, signal, sys, time
print("fake agent: config", sys.argv[2], file=sys.stderr, flush=True)
if "{mode}" == "refuse":
    print("fake agent: refusing to start", file=sys.stderr)
    sys.exit(1)
b = dbus.bus.BusConnection(__import__("os").environ["DBUS_SYSTEM_BUS_ADDRESS"])
b.request_name("{name}", dbus.bus.NAME_FLAG_DO_NOT_QUEUE)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    time.sleep(1)
' "$@"
"""


def _fake_agent(sandbox, accounts, bus, tag, mode="run"):
    d = sandbox / f"fake-{tag}"
    d.mkdir()
    binary = d / "fake-sluiced"
    binary.write_text(FAKE_AGENT.format(user=AGENT_USER, name=BUS_NAME, mode=mode))
    binary.chmod(0o755)
    dirs = sf.AgentDirs(d / "agent", accounts[AGENT_USER])
    sf.write_file(dirs.config, "[agent]\n", 0o644)
    return sf.Agent(binary, Path("/bin/false"), dirs, bus)


def test_agent_start_waits_for_the_name_and_stops_on_sigterm(sandbox, accounts, bus):
    a = _fake_agent(sandbox, accounts, bus, "ok")
    a.start(timeout=20)
    try:
        assert bus.name_has_owner(BUS_NAME)
        assert pwd.getpwuid(os.stat(f"/proc/{a.pid}").st_uid).pw_name == AGENT_USER
        assert f"fake agent: config {a.config_path}" in a.log()
        assert a.rss_kib() > 0
        assert a.env()["SLUICE_CONFIG"] == str(a.config_path)
    finally:
        rc = a.stop()
    assert (rc, a.killed) == (0, False)
    sf.wait_for(lambda: not bus.name_has_owner(BUS_NAME), 5, "the name to be released")


def test_agent_start_reports_an_early_exit_with_its_log(sandbox, accounts, bus):
    a = _fake_agent(sandbox, accounts, bus, "refuse", mode="refuse")
    with pytest.raises(sf.AgentStartError) as e:
        a.start(timeout=20)
    assert e.value.returncode == 1
    assert "refusing to start" in e.value.log


def test_agent_dirs_keep_the_password_from_service_accounts(sandbox, accounts, pg, run_as):
    dirs = sf.AgentDirs(sandbox / "dirs-check", accounts[AGENT_USER])
    pwfile = pg.write_password_file(dirs.credentials / "orders-pg", accounts[AGENT_USER])
    st = os.stat(pwfile)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == accounts[AGENT_USER].uid
    assert pwfile.read_text().strip() == pg.broker_password
    rc, out, err = run_as(SERVICE_A, ["cat", str(pwfile)])
    assert rc != 0 and "Permission denied" in err and pg.broker_password not in out
    # The agent's account can read it; service accounts can reach runtime_dir.
    assert run_as(AGENT_USER, ["cat", str(pwfile)]).stdout.strip() == pg.broker_password
    assert run_as(SERVICE_A, ["ls", str(dirs.runtime_dir)]).rc == 0
    assert stat.S_IMODE(os.stat(dirs.runtime_dir).st_mode) == 0o755


def test_render_config():
    text = sf.render_config([("agent", {"runtime_dir": "/r", "database": None}),
                             ("access a", {"allow": "x y"})], raw="[nss]\ngid_range = 1-2")
    assert text.splitlines()[1:] == ["", "[agent]", "runtime_dir = /r", "", "[access a]", "allow = x y",
                                     "", "[nss]", "gid_range = 1-2"]


def test_agent_factory_with_the_real_agent(agent, bus, run_as):
    """The real sluiced under the fixture: it owns the name, runs as sluice,
    answers `sluicectl status`, and stops cleanly (checked at teardown)."""
    assert bus.name_has_owner(BUS_NAME)
    # The process is sluiced itself, dropped to the agent account.
    assert pwd.getpwuid(os.stat(f"/proc/{agent.pid}").st_uid).pw_name == AGENT_USER
    rc, out, err = agent.ctl("status")
    assert rc == 0, err + agent.log()


# --- scripts/check's counting ------------------------------------------------------------------

CMOCKA_LOG = """[==========] Running 4 test(s).
[ RUN      ] parses
[       OK ] parses
[ RUN      ] rejects
[  ERROR   ] --- 0x1 != 0x2
[   LINE   ] --- x.c:7: error: Failure!
[  FAILED  ] rejects
[ RUN      ] later
[  SKIPPED ] later
[ RUN      ] crashes
==1==ERROR: AddressSanitizer: heap-use-after-free
"""


def _results(*args):
    r = subprocess.run(["/usr/bin/python3", str(SRCDIR / "scripts/lib/results.py"), *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return tuple(int(x) for x in r.stdout.split()), r.stderr


def test_results_counts_cmocka_cases_and_crashes(tmp_path):
    (tmp_path / "t1.log").write_text(CMOCKA_LOG + "[  FAILED  ] 1 test(s), listed below:\n[  FAILED  ] rejects\n")
    (tmp_path / "t1.trs").write_text(":test-result: FAIL\n")
    # Passed its cases, then failed at exit (a leak report, say).
    (tmp_path / "t2.log").write_text("[ RUN      ] a\n[       OK ] a\n[  PASSED  ] 1 test(s).\n")
    (tmp_path / "t2.trs").write_text(":test-result: FAIL\n")
    # Not cmocka: one test, its automake result.
    (tmp_path / "t3.log").write_text("hello\n")
    (tmp_path / "t3.trs").write_text(":test-result: SKIP\n")
    counts, err = _results("automake", str(tmp_path), "t1", "t2", "t3", "t4")
    # t1: 1 ok, rejects + crashes failed, 1 skipped; t2: 1 ok + exit failure;
    # t3: skipped; t4: never ran.
    assert counts == (2, 4, 2)
    assert "crashes (crashed)" in err and "t4: did not run" in err


def test_results_counts_junit(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text(textwrap.dedent("""\
        <testsuites><testsuite name="pytest" tests="4">
          <testcase classname="a" name="ok"/>
          <testcase classname="a" name="bad"><failure message="x"/></testcase>
          <testcase classname="a" name="err"><error message="x"/></testcase>
          <testcase classname="a" name="skip"><skipped message="x"/></testcase>
        </testsuite></testsuites>"""))
    counts, err = _results("junit", str(xml))
    assert counts == (1, 2, 1)
    assert "a::bad" in err
