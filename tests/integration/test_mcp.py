"""An unchanged MCP server under sluice: the real
@modelcontextprotocol/server-postgres, started by `sluicectl exec` and
driven by the real @modelcontextprotocol/sdk client (tests/node/mcp_client.mjs)
over stdio, as an MCP host would:

    node mcp_client.mjs --sql SQL -- sluicectl exec --token-file F --connection orders-pg \\
        -- node .../mcp-server-postgres postgresql:///orders

The server is given a URL with no host: node-postgres then takes PGHOST
(the grant's socket directory), PGPORT and PGDATABASE from the environment
exec sets up."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import idp as idpmod
import sluice_fixtures as sf
from conftest import CONNECTION_NAME, SAMPLE_CUSTOMERS, SAMPLE_DB, SERVICE_A
from test_exec import (Work, exec_cmd, pam_dir, pam_module, statements, wait_gone,  # noqa: F401
                       wait_statements)

SERVER_BIN = Path("node_modules", ".bin", "mcp-server-postgres")
SDK = Path("node_modules", "@modelcontextprotocol", "sdk", "package.json")


@pytest.fixture(scope="session")
def node_dir(sandbox, accounts) -> Path:
    """tests/node (the MCP client script, the SDK, the server) where the
    service account can read it: in place when it can, else a copy in the
    sandbox (a checkout under /root is out of its reach)."""
    node = idpmod.node_binary()
    src = idpmod.NODE_DIR
    if not node:
        pytest.skip("node is not installed (scripts/check installs it)")
    if not (src / SERVER_BIN).exists() or not (src / SDK).exists():
        pytest.skip(f"{src}/node_modules lacks the MCP SDK or server-postgres (scripts/lib/node.sh installs them)")
    if sf.run(["test", "-r", str(src / "mcp_client.mjs"), "-a", "-x", str(src / SERVER_BIN)],
              user=SERVICE_A).rc == 0:
        return src
    dst = sandbox / "node"
    if not dst.exists():
        shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(".cache"))
        sf.run(["chmod", "-R", "a+rX", str(dst)]).check("chmod the node copy")
    return dst


def run_client(agent, pam_dir, work, node_dir, *sqls, timeout=120):
    server = [idpmod.node_binary(), str(node_dir / SERVER_BIN), f"postgresql:///{SAMPLE_DB}"]
    args = [a for sql in sqls for a in ("--sql", sql)]
    cmd = [idpmod.node_binary(), str(node_dir / "mcp_client.mjs"), *args, "--",
           *exec_cmd(agent, pam_dir, ["--token-file", str(work.token), "--connection", CONNECTION_NAME,
                                      "--reason", "mcp test"], server)]
    r = sf.run(cmd, user=SERVICE_A, env=agent.env(), timeout=timeout)
    assert r.rc == 0, r
    return json.loads(r.stdout), r.stderr


def test_the_postgres_mcp_server_runs_unchanged_under_exec(agent_factory, pam_dir, node_dir, sandbox, accounts):
    a = agent_factory(sessions=())
    work = Work(sandbox, accounts[SERVICE_A])
    work.write_token(a.idp)
    out, err = run_client(a, pam_dir, work, node_dir,
                          "select count(*) from ops.customers",
                          "select current_user as who")
    assert out["tools"] == ["query"], (out, err)
    count, who = out["calls"]
    assert not count.get("error") and not count["isError"], (count, err)
    assert json.loads(count["content"][0]["text"]) == [{"count": str(SAMPLE_CUSTOMERS)}]
    assert json.loads(who["content"][0]["text"]) == [{"who": a.pg.broker_user}]

    # the audit has the MCP server's statements, with the OIDC subject
    q = wait_statements(a, lambda s: s["sql"] == "select count(*) from ops.customers", "--user", SERVICE_A)
    assert q[0]["subject"] == SERVICE_A and q[0]["decision"] == "allowed"
    st = statements(a, "--user", SERVICE_A)
    # the server wraps each call in a read-only transaction
    assert any(s["sql"].upper().startswith("BEGIN TRANSACTION READ ONLY") for s in st), st
    grant = q[0]["grant_id"]
    assert a.grant_dir(grant).exists() is False
    # the client closing the server ended the grant and the session
    wait_gone(a)


def test_a_rejected_token_means_the_server_never_starts(agent_factory, pam_dir, node_dir, sandbox, accounts):
    a = agent_factory(sessions=())
    work = Work(sandbox, accounts[SERVICE_A])
    work.write_token(a.idp, token="not-a-token")
    server = [idpmod.node_binary(), str(node_dir / SERVER_BIN), f"postgresql:///{SAMPLE_DB}"]
    cmd = [idpmod.node_binary(), str(node_dir / "mcp_client.mjs"), "--sql", "select 1", "--",
           *exec_cmd(a, pam_dir, ["--token-file", str(work.token), "--connection", CONNECTION_NAME], server)]
    r = sf.run(cmd, user=SERVICE_A, env=a.env(), timeout=60)
    # the client cannot talk to a server that never started
    assert r.rc == 1, r.stderr
    assert 'PAM service "sluice" refused authentication of sluicet-a' in r.stderr, r.stderr
    assert json.loads(r.stdout)["tools"] == []
    wait_gone(a)
