"""pytest fixtures for sluice's integration tests: real PostgreSQL, a real
(private) D-Bus, the real sluiced and sluicectl, real accounts.

Run as root, with Debian's python:

    SLUICE_BUILDDIR=_build/default SLUICE_SRCDIR=$PWD \\
        /usr/bin/python3 -m pytest tests/integration

(scripts/check does exactly that.) SLUICE_KEEP_TMP=1 keeps the temporary
directories (/tmp/sluice-it-*) for a post-mortem: cluster and agent logs,
configs, the audit database.

Fixtures, from the bottom up (details in each docstring):

    accounts        the test accounts (sluice, sluicet-a, sluicet-b, sluicet-pg)
    sandbox         the session's temporary directory
    pg, pg_tls      throwaway PostgreSQL 15 clusters (plain TCP / TLS only)
    test_ca, idp    a throwaway CA; a real OIDC provider (oidc-provider, HTTPS)
    installed       `make install DESTDIR=...` of the build
    bus             a private system-like dbus-daemon with sluice's policy
    agent_factory   write a sluice.conf and start sluiced (function scope)
    agent           agent_factory() with the defaults, started
    run_as, psql_as, sluicectl   helpers

The constants tests name come from sluice_fixtures: SERVICE_A (allowed by
the default policy), SERVICE_B (not allowed), AGENT_USER, CONNECTION_NAME
("orders-pg"), SAMPLE_DB ("orders"), SAMPLE_CUSTOMERS, SAMPLE_ORDERS.
"""
from __future__ import annotations

import itertools
import os
import shutil
import sys
from pathlib import Path
from typing import Mapping, Optional, Sequence

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sluice_fixtures as sf  # noqa: E402
import idp as idp_mod  # noqa: E402
from sluice_fixtures import (  # noqa: E402,F401  (re-exported for tests)
    AGENT_USER, BUS_NAME, CONNECTION_NAME, PG_USER, SAMPLE_CUSTOMERS, SAMPLE_DB, SAMPLE_ORDERS,
    SERVICE_A, SERVICE_B, Agent, AgentStartError, Result,
)

SRCDIR = Path(os.environ.get("SLUICE_SRCDIR") or Path(__file__).resolve().parents[2])
_builddir = os.environ.get("SLUICE_BUILDDIR")
BUILDDIR: Optional[Path] = Path(_builddir).resolve() if _builddir else None
KEEP_TMP = os.environ.get("SLUICE_KEEP_TMP", "0") not in ("", "0")


def built(relpath: str) -> Optional[Path]:
    """$SLUICE_BUILDDIR/relpath when it exists and is executable, else None."""
    if BUILDDIR is None:
        return None
    p = BUILDDIR / relpath
    return p if p.is_file() and os.access(p, os.X_OK) else None


def need_build(relpath: str) -> Path:
    """The built program relpath, or skip the test saying what is missing."""
    if BUILDDIR is None:
        pytest.skip("SLUICE_BUILDDIR is not set (scripts/check sets it)")
    p = built(relpath)
    if p is None:
        pytest.skip(f"{relpath} is not built in {BUILDDIR}")
    return p


def _cleanup(path: Path) -> None:
    if KEEP_TMP:
        print(f"\nkept {path} (SLUICE_KEEP_TMP)", file=sys.stderr)
    else:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def accounts() -> dict[str, sf.Account]:
    """The accounts the tests use, created (useradd --system) when missing,
    by name: AGENT_USER "sluice" (sluiced drops to it), SERVICE_A
    "sluicet-a" and SERVICE_B "sluicet-b" (service accounts), PG_USER
    "sluicet-pg" (runs PostgreSQL; initdb refuses root). Skips the test when
    not running as root."""
    if os.geteuid() != 0:
        pytest.skip("integration tests need root (accounts, runuser, sluiced)")
    return sf.ensure_accounts()


@pytest.fixture(scope="session")
def sandbox(accounts) -> Path:
    """The session's temporary directory, /tmp/sluice-it-XXXX, mode 0755 so
    the service accounts can reach sockets below it. Removed at the end
    unless SLUICE_KEEP_TMP=1."""
    d = sf.new_sandbox()
    yield d
    _cleanup(d)


@pytest.fixture(scope="session")
def pg(sandbox, accounts) -> sf.PgCluster:
    """A PostgreSQL 15 cluster for the whole session (initdb as sluicet-pg).

    pg.host / pg.port      TCP 127.0.0.1, scram-sha-256 required
    pg.socket_dir          Unix socket directory (pass as host= to libpq)
    pg.broker_user         "sluice_broker", password pg.broker_password
                           (random, SCRAM), owns database pg.dbname "orders"
                           holding schema ops: ops.customers (id, name,
                           email, ssn; SAMPLE_CUSTOMERS rows) and ops.orders
                           (id, customer_id, total, created_at; SAMPLE_ORDERS)
    pg.sql(q, db)          rows of q run as superuser: [tuple of str]
    pg.psql_super(q, db)   Result of psql as superuser (q on stdin)
    pg.connect_super(db)   a psycopg 3 superuser connection (autocommit)
    pg.connection_keys(pwfile)   the keys of a sluice.conf [connection]
    pg.backends(user)      how many client backends are connected
    pg.log_path            the server log

    Tests share it: create what you need under your own names and leave
    the sample data as it is."""
    cluster = sf.PgCluster(sandbox / "pg", accounts[PG_USER])
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def test_ca(sandbox) -> sf.TestCA:
    """A throwaway CA (openssl CLI): test_ca.cert is the file to trust;
    test_ca.issue_server(name, dns=..., ips=...) returns (cert, key)."""
    return sf.TestCA(sandbox / "ca")


@pytest.fixture(scope="session")
def idp(sandbox, test_ca) -> idp_mod.IdP:
    """A real OIDC provider (tests/node/idp.mjs: oidc-provider 8.x) for the
    session at idp.issuer = https://localhost:PORT, TLS from test_ca, with
    the clients of idp.TEST_CLIENTS: "sluicet-a" (groups data-readers,
    orders-team; RS256), "sluicet-b" (data-readers; ES256), "sluicet-short"
    (RS256, tokens live 8 s), "sluicet-es" (ES256); tokens live 300 s.

    idp.token("sluicet-a")   a real access token: typ at+jwt, sub = the
                             client_id, aud idp.audience ("urn:sluice"),
                             iss, groups, iat, exp, jti, client_id
    idp.oidc_keys()          the keys of a sluice.conf [oidc] section
    idp.rotate_keys(keep_old=True|False)   new signing keys, no downtime
    with idp.down(): ...     the IdP stopped for the block (same issuer after)
    idp.claims(), idp.forge(), idp.tamper(), idp.public_pem()   attack tokens
    (all in tests/integration/idp.py). Skips when Node or tests/node's
    node_modules is missing (scripts/check installs both)."""
    why = idp_mod.unavailable()
    if why:
        pytest.skip(why)
    p = idp_mod.IdP(sandbox / "idp", test_ca, clients=idp_mod.TEST_CLIENTS)
    try:
        p.start()
    except Exception:
        p.stop()
        raise
    yield p
    p.stop()


@pytest.fixture(scope="session")
def pg_tls(sandbox, accounts, test_ca) -> sf.PgCluster:
    """Like pg, a second cluster with ssl=on and a server certificate for
    localhost / 127.0.0.1 signed by test_ca; pg_hba takes TCP only over TLS
    (hostssl; hostnossl is rejected). Connect with host=pg_tls.tls_host
    ("localhost"), sslmode=verify-full, sslrootcert=pg_tls.ca_file.
    pg_tls.connection_keys() says the same in sluice.conf terms."""
    cluster = sf.PgCluster(sandbox / "pg-tls", accounts[PG_USER], tls_ca=test_ca)
    try:
        cluster.start()
    except Exception:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def installed(sandbox) -> sf.InstallTree:
    """`make install DESTDIR=<sandbox>/install` of $SLUICE_BUILDDIR (skips
    when it is not set). installed.dbus_policy is the installed D-Bus
    policy; installed.from_source is True when the install lacks it and
    data/org.sluice.Agent1.conf from the source tree stands in."""
    if BUILDDIR is None:
        pytest.skip("SLUICE_BUILDDIR is not set (scripts/check sets it)")
    return sf.install_tree(BUILDDIR, SRCDIR, sandbox / "install")


@pytest.fixture(scope="session")
def bus(sandbox, installed) -> sf.Bus:
    """A private dbus-daemon for the session, configured like the system
    bus (<type>system</type>, EXTERNAL auth, deny own by default) with the
    installed D-Bus policy of sluice included, so only "sluice" may own
    org.sluice.Agent1.

    bus.address            for DBUS_SYSTEM_BUS_ADDRESS (bus.env() gives the dict)
    bus.name_has_owner(n)  is n owned now
    bus.call(dest, path, "iface.Method", "string:x", user=U)   dbus-send
    bus.try_own(name, user)   ask for a name as user (policy checks)"""
    b = sf.Bus(sandbox / "bus", installed.dbus_policy)
    b.start()
    yield b
    b.stop()


_agent_serial = itertools.count(1)


class AgentFactory:
    """Callable that writes a sluice.conf and starts sluiced; see agent_factory."""

    def __init__(self, request, sandbox: Path, accounts, bus: sf.Bus, installed: sf.InstallTree):
        self._request = request
        self._sandbox = sandbox
        self._accounts = accounts
        self._bus = bus
        self._installed = installed
        self.agents: list[Agent] = []

    def __call__(self, *, agent: Optional[Mapping[str, Optional[str]]] = None,
                 connection: Optional[Mapping[str, Optional[str]]] = None,
                 access: Optional[Mapping[str, Optional[str]]] | bool = True,
                 sections: Sequence[tuple[str, Mapping[str, Optional[str]]]] = (),
                 raw: str = "", tls: bool = False, start: bool = True,
                 env: Optional[Mapping[str, str]] = None, timeout: float = 20,
                 identity: bool = True, sessions: Sequence[str] = (SERVICE_A, SERVICE_B)) -> Agent:
        sluiced = self._installed.program("sluiced") or need_build("agent/sluiced")
        ctl = self._installed.program("sluicectl") or built("ctl/sluicectl") or (BUILDDIR / "ctl" / "sluicectl")
        cluster: sf.PgCluster = self._request.getfixturevalue("pg_tls" if tls else "pg")
        # Short paths: grant sockets live below runtime_dir and a Unix socket
        # address holds 107 bytes, so sluiced takes runtime_dir of 48 at most.
        dirs = sf.AgentDirs(self._sandbox / f"a{next(_agent_serial)}", self._accounts[AGENT_USER])
        (dirs.root / "test").write_text(self._request.node.nodeid + "\n")
        pwfile = cluster.write_password_file(dirs.credentials / CONNECTION_NAME, self._accounts[AGENT_USER])
        idp = self._request.getfixturevalue("idp") if identity else None
        secs = sf.default_sections(cluster, dirs, pwfile, idp=idp, identities=(SERVICE_A, SERVICE_B))
        secs[0][1].update(agent or {})
        secs[1][1].update(connection or {})
        if access is not False and access is not None:
            keys = {"connection": CONNECTION_NAME, "allow": SERVICE_A, "max_ttl": "1h"}
            if isinstance(access, Mapping):
                keys.update(access)
            secs.append(("access test", keys))
        secs.extend((h, dict(k)) for h, k in sections)
        sf.write_file(dirs.config, sf.render_config(secs, raw), 0o644)
        a = Agent(sluiced, ctl, dirs, self._bus, env=env)
        a.pg = cluster
        a.idp = idp
        a.auto_sessions = tuple(sessions) if identity else ()
        self.agents.append(a)
        if start:
            a.start(timeout=timeout)
        return a

    def stop_all(self) -> list[str]:
        """Stop every agent still running; describe the ones that did not
        stop cleanly on SIGTERM."""
        problems = []
        for a in self.agents:
            if not a.running():
                continue
            rc = a.stop()
            if a.killed:
                problems.append(f"{a.config_path}: sluiced ignored SIGTERM and was killed")
            elif rc != 0:
                problems.append(f"{a.config_path}: sluiced exited with status {rc} on SIGTERM")
            if "Sanitizer" in a.log():
                problems.append(f"{a.log_path}: sanitizer report in the agent's log")
        return problems


@pytest.fixture
def agent_factory(request, sandbox, accounts, bus, installed) -> AgentFactory:
    """Start sluiced with a config written for the test:

        a = agent_factory()                        # defaults, started
        a = agent_factory(access={"max_ttl": "5s"})
        a = agent_factory(access=False, sections=[("access x", {...})])
        a = agent_factory(agent={"max_connections_per_grant": "2"})
        a = agent_factory(tls=True)                # upstream is pg_tls, verify-full
        a = agent_factory(raw="[mask orders-pg]\\n...", start=False)
        with pytest.raises(AgentStartError) as e: a.start()   # refused config

    Each agent lives in <sandbox>/aN/ (its test's id in aN/test); the
    config (a.config_path, 0644) has
      [agent] runtime_dir = <dir>/run (0755, owned by sluice), database =
              <dir>/lib/sluice.db, plus `agent` keys;
      [connection orders-pg] pointing at pg (or pg_tls when tls=True) as
              sluice_broker with password_file <dir>/etc/credentials/orders-pg
              (0600, owned by sluice), plus `connection` keys;
      [access test] connection = orders-pg, allow = sluicet-a, max_ttl = 1h,
              updated with `access` (a dict), or left out (access=False);
      [oidc] trusting the test IdP (idp.oidc_keys()) and [identity
              sluicet-a] / [identity sluicet-b] binding each account to the
              IdP client of the same name (identity=False leaves all three
              out, and then no session can open);
      then `sections` ((header, {key: value}) pairs; None values dropped)
      and `raw` text as it is.
    Every start() opens a session (OpenSession as root, with a fresh token
    from the IdP) for each account in `sessions` (default SERVICE_A and
    SERVICE_B; a.sessions maps account -> session id); pass sessions=()
    for a test that opens its own (a.open_session(user, token=None,
    client=None, caller=None), a.close_session(id)).
    Each call makes a new directory and agent; only one can run at a time
    (they share the bus name). Runs the installed sluiced and sluicectl
    (`installed`), else the build tree's; skips when sluiced is not built.

    The Agent: a.ctl(*args, user=None) runs sluicectl against it,
    a.log() its stderr so far, a.grant_dir(id), a.runtime_dir, a.database,
    a.pid, a.rss_kib(), a.reload() (SIGHUP), a.stop(), a.start(),
    a.write_config(text), a.pg (the cluster it uses).

    At teardown every agent still running gets SIGTERM (SIGKILL after 10 s);
    an agent that needed SIGKILL, exited non-zero, or logged a sanitizer
    report makes the test error."""
    factory = AgentFactory(request, sandbox, accounts, bus, installed)
    yield factory
    problems = factory.stop_all()
    if problems:
        pytest.fail("agent teardown:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def agent(agent_factory) -> Agent:
    """sluiced started with agent_factory's defaults: SERVICE_A may request
    grants on "orders-pg" (max_ttl 1h), SERVICE_B may not."""
    return agent_factory()


@pytest.fixture
def run_as():
    """run_as(user, [cmd...], env={...}, input=None, timeout=60) -> Result
    (rc, stdout, stderr): the command as that account (runuser -u), with a
    clean environment plus env. user=None runs as root."""
    return sf.run_as


@pytest.fixture
def psql_as():
    """psql_as(user, host_dir, dbname, sql, port=5432, env=None, timeout=60,
    extra_args=()) -> Result: psql as user (unaligned, tuples only, '|'
    between fields, ON_ERROR_STOP), e.g.
        rc, out, err = psql_as(SERVICE_A, grant["socket_dir"], "orders", "select 1")"""
    return sf.psql_as


@pytest.fixture
def sluicectl(agent_factory):
    """sluicectl(*args, user=None, input=None, timeout=30, agent=None) ->
    Result (rc, stdout, stderr): $SLUICE_BUILDDIR/ctl/sluicectl as user, with
    SLUICE_CONFIG and DBUS_SYSTEM_BUS_ADDRESS of the agent (default: the
    test's most recently started one). Skips when sluicectl is not built."""
    need_build("ctl/sluicectl")

    def call(*args: str, user: Optional[str] = None, input: Optional[str] = None,
             timeout: float = 30, agent: Optional[Agent] = None) -> Result:
        target = agent or (agent_factory.agents[-1] if agent_factory.agents else None)
        if target is None:
            raise RuntimeError("sluicectl fixture: no agent started in this test")
        return sf.sluicectl(target.ctl_binary, *args, user=user, env=target.env(), input=input,
                            timeout=timeout)

    return call
