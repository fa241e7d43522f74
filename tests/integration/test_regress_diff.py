"""The proxy must be invisible: PostgreSQL 15's own regression scripts, run
with psql directly and through a grant whose policy allows everything,
give the same output.

Each script runs twice at the same time: `psql -X -a -q` (no psqlrc, every
line echoed, as pg_regress runs it) as the broker role straight to one
cluster, and as the service account through the grant's socket to an
identical twin cluster the agent's [connection] points at. Both start from
a fresh database "regression" copied from a template that test_setup.sql
built; after normalising what legitimately differs (regress_support.normalise:
narrow rules, each with its reason), the outputs must be identical.

The corpus (../shared/corpus/pg15-regress, read at test time) lacks the
regression suite's data files and regress.so: the tables test_setup.sql
fills from files are empty and C functions fail to be created, the same way
in both runs. Scripts that cannot be compared are listed with the reason in
regress_support.NOT_RUN. On a difference the two outputs are kept in the
session sandbox (regress-diff/) for a post-mortem (SLUICE_KEEP_TMP=1).
"""
from __future__ import annotations

import concurrent.futures
import json

import pytest

import regress_support as rs
from conftest import AgentFactory
from sluice_fixtures import AGENT_USER, CONNECTION_NAME, PG_USER, SERVICE_A, write_file

pytestmark = pytest.mark.skipif(not rs.CORPUS.is_dir(), reason=f"no regression corpus at {rs.CORPUS}")


@pytest.fixture(scope="module")
def regress(request, sandbox, accounts, bus, installed):
    """The twin clusters with their templates, one agent whose [connection]
    points at the "proxied" cluster's database "regression", and a grant
    for SERVICE_A. Module scope: one agent serves every script (it also
    shows the agent stays healthy through thousands of statements)."""
    direct = rs.RegressCluster(sandbox, "direct", accounts[PG_USER])
    proxied = rs.RegressCluster(sandbox, "proxied", accounts[PG_USER])
    factory = None
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda c: c.start(), (direct, proxied)))
        setup_sql = (rs.CORPUS / "test_setup.sql").read_bytes()
        for c in (direct, proxied):
            r = c.build_template(setup_sql)
            assert r.rc == 0, f"test_setup.sql in {c.name}:\n{r.output[-2000:]}"
        pwfile = sandbox / "regress-credential"
        write_file(pwfile, proxied.pg.broker_password + "\n", 0o600, accounts[AGENT_USER])
        factory = AgentFactory(request, sandbox, accounts, bus, installed)
        agent = factory(connection={"host": proxied.pg.host, "port": str(proxied.pg.port),
                                    "dbname": rs.DBNAME, "user": proxied.pg.broker_user,
                                    "password_file": str(pwfile), "sslmode": "disable"},
                        sections=[(f"guardrail {CONNECTION_NAME}", rs.ALLOW_ALL_GUARDRAIL)])
        grant = agent.request_grant(SERVICE_A, ttl="1h", reason="regression differential")
        outdir = sandbox / "regress-diff"
        outdir.mkdir(exist_ok=True)
        yield Regress(direct, proxied, agent, grant, outdir)
    finally:
        problems = factory.stop_all() if factory else []
        direct.stop()
        proxied.stop()
        if problems:
            pytest.fail("agent teardown:\n" + "\n".join(problems), pytrace=False)


class Regress:
    def __init__(self, direct, proxied, agent, grant, outdir):
        self.direct, self.proxied, self.agent, self.grant, self.outdir = direct, proxied, agent, grant, outdir

    def proxied_env(self) -> dict[str, str]:
        e = self.proxied.env()
        e.update({"PGHOST": self.grant["socket_dir"], "PGDATABASE": rs.DBNAME})
        return e

    def compare(self, name: str, sql: bytes, template: str = rs.TEMPLATE) -> None:
        def direct_run():
            self.direct.reset(template)
            return rs.run_psql(SERVICE_A, self.direct.direct_env(), sql)

        def proxied_run():
            self.proxied.reset(template)
            return rs.run_psql(SERVICE_A, self.proxied_env(), sql)

        with concurrent.futures.ThreadPoolExecutor(2) as ex:
            fd, fp = ex.submit(direct_run), ex.submit(proxied_run)
            d, p = fd.result(), fp.result()
        assert self.agent.running(), f"sluiced died during {name}:\n{self.agent.log()[-3000:]}"
        nd = rs.normalise(d.output, self.direct.builddir)
        np_ = rs.normalise(p.output, self.proxied.builddir)
        if (d.rc, nd) != (p.rc, np_):
            stem = name.removesuffix(".sql")
            (self.outdir / f"{stem}.direct.out").write_text(nd, errors="surrogateescape")
            (self.outdir / f"{stem}.proxied.out").write_text(np_, errors="surrogateescape")
            pytest.fail(f"{name}: output through the grant differs from direct "
                        f"(psql exit {d.rc} direct, {p.rc} through the grant; outputs kept in "
                        f"{self.outdir}):\n{rs.first_difference(nd, np_)}", pytrace=False)


def test_regress_test_setup(regress):
    """test_setup.sql itself, from an empty database."""
    regress.compare("test_setup.sql", rs.script_sql("test_setup.sql"), template="template0")


@pytest.mark.parametrize("script", rs.scripts())
def test_regress_script(regress, script):
    regress.compare(script, rs.script_sql(script))


def test_regress_lo_meta_commands_refused(regress, accounts, sandbox):
    """By design: psql's \\lo_import/\\lo_export/\\lo_unlink use the
    FunctionCall message, which the grant refuses with a message that says
    what to do instead; the same work through SQL passes."""
    f = sandbox / "regress-lo.txt"
    write_file(f, "sluice large object\n", 0o644)
    sql = (f"SELECT lo_from_bytea(4242, 'abc') AS oid \\gset\n"
           f"\\lo_unlink :oid\n"
           f"\\lo_import {f}\n"
           f"\\lo_export :oid /dev/null\n"
           f"SELECT lo_unlink(:oid);\n").encode()
    regress.proxied.reset()
    r = rs.run_psql(SERVICE_A, regress.proxied_env(), sql)
    refusal = ("ERROR:  sluice: refused: the FunctionCall protocol message is not allowed through a "
               "grant (it bypasses SQL); call the function with SELECT")
    assert r.output.count(refusal) == 3, r.output
    assert "lo_unlink \n-----------\n         1\n" in r.output, r.output


def test_regress_pinned_settings_refused(regress):
    """What regress_support takes out of guc, plpgsql, regex and strings
    (and only that): each statement is refused through the grant with the
    pin's message, and the session goes on."""
    removed = []
    for name, count in rs.PINNED_SCRIPTS.items():
        raw = (rs.CORPUS / name).read_bytes()
        found = [m.group(0).decode().strip() for m in rs._PINNED.finditer(raw)]
        assert len(found) == count, (name, found)
        assert len(rs.script_sql(name)) == len(raw) - sum(len(m.group(0)) for m in rs._PINNED.finditer(raw))
        removed += found
    regress.proxied.reset()
    sql = "".join(f"{s}\nSELECT 'after' AS x;\n" for s in removed).encode()
    r = rs.run_psql(SERVICE_A, regress.proxied_env(), sql)
    refusal = ("ERROR:  sluice: blocked: standard_conforming_strings is pinned on "
               "(rule: built-in (sluice reads strings as the server does only with it on))")
    assert r.output.count(refusal) == len(removed), r.output
    assert r.output.count(" after\n") == len(removed), r.output


def test_regress_audit_recorded_every_statement(regress):
    """After all the scripts: the audit chain verifies, and nothing was
    refused except the FunctionCall messages above (the policy allows
    everything; the pinned settings are blocked, not refused)."""
    r = regress.agent.ctl("audit", "verify")
    assert r.rc == 0, r.stdout + r.stderr
    r = regress.agent.ctl("--json", "audit", "--grant", regress.grant["id"], "--decision", "refused")
    assert r.rc == 0, r.stderr
    refused = json.loads(r.stdout)
    assert {s["sql"] for s in refused} <= {"(FunctionCall protocol message)"}, refused[:5]
    r = regress.agent.ctl("--json", "audit", "--grant", regress.grant["id"], "--limit", "1")
    assert r.rc == 0 and len(json.loads(r.stdout)) == 1, r.stdout + r.stderr
