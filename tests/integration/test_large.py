"""Large data through a grant with bounded agent memory: the proxy streams
DataRow and CopyData instead of buffering them, so a 200 MB result, a
100 MB COPY FROM STDIN or a single 50 MB value cost the agent no more
memory than a small query. The agent's VmRSS is sampled throughout.

What is buffered whole has a cap ([agent] max_message_size, 16 MiB by
default): a Bind carrying a 50 MB parameter exceeds it by design, and the
client must be told so clearly.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

import regress_wire as w
import sluice_fixtures as sf
from sluice_fixtures import SERVICE_A

MIB = 1024 * 1024
RSS_LIMIT_KIB = 64 * 1024      # the agent's whole VmRSS while streaming


class RssSampler:
    """Samples a process's VmRSS every 20 ms in a thread while active."""

    def __init__(self, pid: int):
        self.pid = pid
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(sf.process_rss_kib(self.pid))
            except (FileNotFoundError, RuntimeError):
                return
            self._stop.wait(0.02)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @property
    def peak(self) -> int:
        return max(self.samples)


def asan(pid: int) -> bool:
    return "libasan" in Path(f"/proc/{pid}/maps").read_text()


def assert_bounded(agent, sampler: RssSampler, baseline: int, what: str) -> None:
    assert len(sampler.samples) >= 5, f"too few RSS samples during {what}: {sampler.samples}"
    if asan(agent.pid):
        # ASan's shadow memory and quarantine inflate RSS: hold the growth.
        assert sampler.peak - baseline < RSS_LIMIT_KIB, (what, baseline, sampler.peak)
    else:
        assert sampler.peak < RSS_LIMIT_KIB, (
            f"agent VmRSS reached {sampler.peak} KiB during {what} (baseline {baseline} KiB)")


@pytest.fixture
def big(agent_factory, accounts):
    a = agent_factory()
    g = a.request_grant(SERVICE_A, ttl="30m")
    return a, g, accounts[SERVICE_A]


def statements(agent, grant) -> list[dict]:
    r = agent.ctl("--json", "audit", "--grant", grant["id"])
    assert r.rc == 0, r.stderr
    return json.loads(r.stdout)


def wait_statement(agent, grant, sql_part: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        found = [s for s in statements(agent, grant) if sql_part in s["sql"]]
        if found or time.monotonic() > deadline:
            assert found, f"no audit row for {sql_part!r}"
            return found[-1]
        time.sleep(0.1)


def psql_cmd(grant, *args) -> list[str]:
    return sf.as_user_cmd(SERVICE_A, ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                      "-h", grant["socket_dir"], "-d", "orders", *args])


ROWS = 200_000
WIDE = "SELECT i, repeat(md5(i::text), 31) FROM generate_series(1, %d) i" % ROWS


def expected_copy_digest() -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    for i in range(1, ROWS + 1):
        line = f"{i}\t{hashlib.md5(str(i).encode()).hexdigest() * 31}\n".encode()
        h.update(line)
        n += len(line)
    return h.hexdigest(), n


def test_200mb_select_to_dev_null(big):
    a, g, _ = big
    baseline = a.rss_kib()
    with RssSampler(a.pid) as s:
        p = subprocess.run(psql_cmd(g, "-A", "-t", "-c", "SELECT repeat('x', 1000) FROM generate_series(1, 200000)"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=sf.clean_env(), timeout=300)
    assert p.returncode == 0, p.stderr
    assert_bounded(a, s, baseline, "a 200 MB SELECT")
    row = wait_statement(a, g, "repeat('x', 1000)")
    assert (row["decision"], row["rows"]) == ("allowed", 200000), row


def test_200mb_copy_to_stdout_is_exact(big):
    """COPY TO STDOUT of ~200 MB, every byte checked."""
    a, g, _ = big
    want_digest, want_len = expected_copy_digest()
    baseline = a.rss_kib()
    h = hashlib.sha256()
    n = 0
    with RssSampler(a.pid) as s:
        p = subprocess.Popen(psql_cmd(g, "-c", f"COPY ({WIDE}) TO STDOUT"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=sf.clean_env())
        while chunk := p.stdout.read(1 << 20):
            h.update(chunk)
            n += len(chunk)
        err = p.stderr.read()
        rc = p.wait(timeout=60)
    assert rc == 0, err
    assert (n, h.hexdigest()) == (want_len, want_digest)
    assert n > 190 * MIB
    assert_bounded(a, s, baseline, "a 200 MB COPY TO STDOUT")
    row = wait_statement(a, g, "TO STDOUT")
    assert (row["outcome"], row["rows"]) == (f"COPY {ROWS}", ROWS), row


def test_100mb_copy_from_stdin(big):
    a, g, _ = big
    pg = a.pg
    pg.psql_super("DROP TABLE IF EXISTS ops.big_in; CREATE TABLE ops.big_in (i int, v text); "
                  "ALTER TABLE ops.big_in OWNER TO sluice_broker").check()
    rows = 100_000
    line = lambda i: f"{i}\t{'y' * 1000}\n".encode()  # noqa: E731
    baseline = a.rss_kib()
    with RssSampler(a.pid) as s:
        p = subprocess.Popen(psql_cmd(g, "-c", "COPY ops.big_in FROM STDIN"), stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=sf.clean_env())
        for start in range(1, rows + 1, 1000):
            p.stdin.write(b"".join(line(i) for i in range(start, min(start + 1000, rows + 1))))
        p.stdin.close()
        err = p.stderr.read()
        p.wait(timeout=300)
    try:
        assert p.returncode == 0, err
        assert_bounded(a, s, baseline, "a 100 MB COPY FROM STDIN")
        assert pg.sql("SELECT count(*), sum(i), sum(length(v)) FROM ops.big_in") == [
            (str(rows), str(rows * (rows + 1) // 2), str(rows * 1000))]
        row = wait_statement(a, g, "COPY ops.big_in FROM STDIN")
        assert (row["outcome"], row["rows"]) == (f"COPY {rows}", rows), row
    finally:
        pg.psql_super("DROP TABLE IF EXISTS ops.big_in").check()


WIDE_VALUE = 50 * MIB


def test_single_50mb_value(big):
    """One DataRow of 50 MB (binary, extended protocol through psycopg) and
    of 100 MB (the same bytea as hex text, through psql): each streams."""
    import psycopg
    a, g, acct = big
    baseline = a.rss_kib()
    with RssSampler(a.pid) as s:
        with w.effective_ids(acct):
            conn = psycopg.connect(host=g["socket_dir"], dbname="orders", user=SERVICE_A, autocommit=True)
        try:
            with conn.cursor(binary=True) as cur:
                cur.execute("SELECT convert_to(repeat('z', %s), 'UTF8')", (WIDE_VALUE,))
                (v,) = cur.fetchone()
            assert bytes(v) == b"z" * WIDE_VALUE
            v = None
        finally:
            conn.close()
        p = subprocess.run(psql_cmd(g, "-A", "-t", "-c",
                                    f"SELECT convert_to(repeat('z', {WIDE_VALUE}), 'UTF8')"),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=sf.clean_env(), timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout == b"\\x" + b"7a" * WIDE_VALUE + b"\n"
    assert_bounded(a, s, baseline, "a 50 MB value")


def test_50mb_bind_parameter_exceeds_max_message_size(big):
    """A Bind is examined whole, so its size is capped by max_message_size
    (16 MiB by default): a 50 MB parameter is refused by design. The client
    sees why, named by the setting and its value (SQLSTATE 54000); the
    message is skipped and the session goes on; the refusal is recorded."""
    import psycopg
    a, g, acct = big
    with w.effective_ids(acct):
        conn = psycopg.connect(host=g["socket_dir"], dbname="orders", user=SERVICE_A, autocommit=True)
    try:
        with pytest.raises(psycopg.OperationalError) as e:
            conn.execute("SELECT length(%s::bytea)", (b"q" * WIDE_VALUE,))
        # The refused message is skipped: the same session goes on.
        assert conn.execute("SELECT 2").fetchone() == (2,)
    finally:
        conn.close()
    msg = str(e.value)
    assert "max_message_size" in msg, msg
    assert "16777216" in msg, f"the error should say what the limit is: {msg!r}"
    assert e.value.sqlstate == "54000", e.value.sqlstate
    # The refusal is an audit row.
    deadline = time.monotonic() + 10
    while True:
        r = a.ctl("--json", "audit", "--grant", g["id"], "--decision", "refused")
        rows = json.loads(r.stdout)
        if any("max_message_size" in (row.get("error") or "") for row in rows):
            break
        assert time.monotonic() < deadline, f"no refused statement naming max_message_size: {rows}"
        time.sleep(0.1)
    # The agent still serves the grant.
    p = subprocess.run(psql_cmd(g, "-A", "-t", "-c", "SELECT 1"), capture_output=True, env=sf.clean_env())
    assert (p.returncode, p.stdout.strip()) == (0, b"1"), p.stderr
