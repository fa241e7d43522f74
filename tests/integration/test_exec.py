"""`sluicectl exec`: the sluice PAM stack (pam_sluice.so through
pam_wrapper), a session and a grant around a command, against the real
sluiced, IdP, D-Bus and PostgreSQL.

What a user sees is checked: the command's output and exit status, what it
finds in its environment, what `sluicectl sessions/grants --all` and the
audit say during and after, and exec's messages on stderr.

pam_wrapper: LD_PRELOAD=libpam_wrapper.so PAM_WRAPPER=1
PAM_WRAPPER_SERVICE_DIR=DIR makes libpam read DIR/sluice instead of
/etc/pam.d/sluice. It is put in front of sluicectl with env(1) *inside*
runuser, so runuser's own PAM stack is the system's.

The helpers and fixtures here are shared with test_mcp.py."""
from __future__ import annotations

import ctypes.util
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Optional, Sequence

import pytest

import sluice_fixtures as sf
from conftest import CONNECTION_NAME, SAMPLE_CUSTOMERS, SAMPLE_DB, SERVICE_A, SERVICE_B, need_build

PAM_WRAPPER = "libpam_wrapper.so"


# --- fixtures and helpers (test_mcp.py imports them) -------------------------------

@pytest.fixture(scope="session")
def pam_module(installed) -> Path:
    """pam_sluice.so as `make install` put it (else the build tree's)."""
    for p in installed.find("pam_sluice.so"):
        if p.parent.name == "security" and p.is_file():
            return p
    return need_build("pam_module/.libs/pam_sluice.so")


def _have_pam_wrapper() -> bool:
    return bool(ctypes.util.find_library("pam_wrapper")) or any(
        Path(d, PAM_WRAPPER).exists() for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"))


def write_service(directory: Path, lines: str) -> Path:
    """directory/sluice, a PAM service file, readable by the service accounts
    (and an "other" that denies, which libpam looks for too)."""
    sf.make_dir(directory, 0o755)
    sf.write_file(directory / "sluice", lines, 0o644)
    deny = "/usr/lib/x86_64-linux-gnu/security/pam_deny.so"
    sf.write_file(directory / "other", "".join(f"{t} required {deny}\n" for t in
                                              ("auth", "account", "password", "session")), 0o644)
    return directory


@pytest.fixture(scope="session")
def pam_dir(sandbox, pam_module) -> Path:
    """A PAM service directory whose "sluice" runs pam_sluice.so for auth
    (the token from exec's conversation), account and session."""
    if not _have_pam_wrapper():
        pytest.skip("pam_wrapper is not installed (Debian package libpam-wrapper)")
    return write_service(sandbox / "pam.d", f"auth     required {pam_module} try_first_pass\n"
                                            f"account  required {pam_module}\n"
                                            f"session  required {pam_module}\n")


PAM_WRAPPER_ENV = ("LD_PRELOAD", "PAM_WRAPPER", "PAM_WRAPPER_SERVICE_DIR", "PAM_WRAPPER_RUNTIME_DIR",
                   "UID_WRAPPER_DISABLE_DEEPBIND", "ASAN_OPTIONS")


def exec_cmd(agent, pam_dir: Path, args: Sequence[str], cmd: Sequence[str], *, raw: bool = False) -> list[str]:
    """sluicectl exec ARGS -- CMD under pam_wrapper with pam_dir's "sluice".
    CMD runs without the pam_wrapper variables (env -u; it execs, so CMD's
    parent is still sluicectl): it does no PAM, and every process that
    loads pam_wrapper takes one of its few /tmp/pam.? directories. raw:
    CMD as it is."""
    strip = [] if raw else ["env", *(a for v in PAM_WRAPPER_ENV for a in ("-u", v))]
    return [*pam_wrapper_env(pam_dir), str(agent.ctl_binary), "exec", *args, "--", *strip, *cmd]


def pam_wrapper_env(pam_dir: Path) -> list[str]:
    """env(1) with the pam_wrapper variables. For a sanitizer build: the
    sanitizer runtime is then not first in the library list, which it
    accepts when told, and pam_wrapper must not dlopen libpam with
    RTLD_DEEPBIND (its switch for that is spelt UID_WRAPPER_...).

    pam_wrapper copies the service files into /tmp/pam.<one character>,
    picked with lstat-then-mkdir and used even when mkdir fails: two
    processes starting at once (another test run on the same machine) can
    share one and read each other's "sluice"."""
    asan = ":".join(o for o in (os.environ.get("ASAN_OPTIONS", ""), "verify_asan_link_order=0") if o)
    return ["env", f"LD_PRELOAD={PAM_WRAPPER}", "PAM_WRAPPER=1", f"PAM_WRAPPER_SERVICE_DIR={pam_dir}",
            "UID_WRAPPER_DISABLE_DEEPBIND=1", f"ASAN_OPTIONS={asan}"]


class Work:
    """A directory owned by a service account (0700), holding its token file
    and the files a test's command writes."""

    def __init__(self, sandbox: Path, account: sf.Account):
        self.account = account
        self.dir = sf.make_dir(sandbox / f"w-{uuid.uuid4().hex[:8]}", 0o700, account)
        self.token = self.dir / "token"

    def path(self, name: str) -> Path:
        return self.dir / name

    def write_token(self, idp, token: Optional[str] = None, client: Optional[str] = None,
                    in_place: bool = False) -> str:
        """A fresh token for the account (or token) into the token file:
        replaced atomically (rename), or rewritten in place."""
        tok = token if token is not None else idp.token(client or self.account.name)
        if in_place:
            with open(self.token, "w") as f:
                f.write(tok + "\n")
        else:
            idp.write_token(self.token, self.account.name, owner=self.account, token=tok)
        return tok

    def wait_file(self, name: str, timeout: float = 30, proc: Optional[subprocess.Popen] = None) -> str:
        p = self.path(name)

        def ready():
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"exec exited {proc.returncode} before {name} appeared:\n"
                                     f"{proc.stderr.read() if proc.stderr else ''}")
            return p.exists() and p.stat().st_size > 0
        sf.wait_for(ready, timeout, f"{p}")
        time.sleep(0.05)
        return p.read_text()


@pytest.fixture
def work(sandbox, accounts) -> Work:
    return Work(sandbox, accounts[SERVICE_A])


def run_exec(agent, pam_dir, work: Work, cmd: Sequence[str], *args: str, user: str = SERVICE_A,
             env: Optional[dict] = None, input: Optional[str] = None, timeout: float = 90,
             raw: bool = False) -> sf.Result:
    """exec --token-file work.token --connection orders-pg ARGS -- CMD as user."""
    full = exec_cmd(agent, pam_dir, ["--token-file", str(work.token), "--connection", CONNECTION_NAME, *args],
                    cmd, raw=raw)
    return sf.run(full, user=user, env={**agent.env(), **(env or {})}, input=input, timeout=timeout)


def start_exec(agent, pam_dir, work: Work, cmd: Sequence[str], *args: str, user: str = SERVICE_A,
               env: Optional[dict] = None) -> subprocess.Popen:
    full = exec_cmd(agent, pam_dir, ["--token-file", str(work.token), "--connection", CONNECTION_NAME, *args],
                    cmd)
    return subprocess.Popen(sf.as_user_cmd(user, full), env=sf.clean_env({**agent.env(), **(env or {})}),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd="/", preexec_fn=_default_signals)


def _default_signals() -> None:
    """A run under nohup ignores SIGHUP, and an ignored signal stays ignored
    through exec (a shell cannot even trap it): start from the defaults."""
    for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def finish(p: subprocess.Popen, timeout: float = 60) -> sf.Result:
    out, err = p.communicate(timeout=timeout)
    return sf.Result(p.returncode, out, err)


def ctl_json(agent, *args, user=None):
    r = agent.ctl("--json", *args, user=user)
    assert r.rc == 0, f"sluicectl {' '.join(args)}: rc {r.rc}\n{r.stderr}"
    return json.loads(r.stdout)


def live(agent) -> tuple[list, list]:
    """(sessions, grants) the agent holds now, as root sees them."""
    return ctl_json(agent, "sessions", "--all"), ctl_json(agent, "grants", "--all")


def wait_gone(agent, timeout: float = 10) -> None:
    """No session and no grant left (the cleanup after CMD is synchronous,
    so this is a check more than a wait)."""
    last = []

    def empty():
        last[:] = live(agent)
        return last == [[], []]
    try:
        sf.wait_for(empty, timeout, "no session and no grant")
    except TimeoutError:
        raise AssertionError(f"left behind: {last}") from None


def statements(agent, *filters):
    return ctl_json(agent, "audit", "--database", str(agent.database), *filters)


def wait_statements(agent, pred, *filters, timeout: float = 10) -> list:
    """The audited statements matching pred, once there is one (the audit
    writer is asynchronous)."""
    found = []

    def seen():
        found[:] = [s for s in statements(agent, *filters) if pred(s)]
        return bool(found)
    sf.wait_for(seen, timeout, "the statement in the audit")
    return found


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


@pytest.fixture
def exec_agent(agent_factory):
    """An agent with no session opened for the tests' accounts: only exec's."""
    return agent_factory(sessions=())


# --- usage, and failing closed -----------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--connection", "orders-pg", "true"], "put the command after --"),
    (["--connection", "orders-pg", "--"], "put the command after --"),
    (["--", "true"], "exec needs --connection"),
    (["--connection", "orders-pg", "--", "true"], "no token: give --token-file FILE"),
    (["--token-file", "", "--connection", "orders-pg", "--", "true"], "--token-file needs a file name"),
    (["--token-file", "/x", "--connection", "orders-pg", "--ttl", "soon", "--", "true"], "--ttl 'soon' is not a duration"),
    (["--token-file", "/x", "--connection", "orders-pg", "--reason", "r" * 1025, "--", "true"], "--reason is longer"),
])
def test_usage_errors(args, message):
    ctl = need_build("ctl/sluicectl")
    r = sf.run([ctl, "exec", *args], env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent"})
    assert r.rc == 2, r
    assert message in r.stderr, r
    assert r.stdout == ""


def test_a_pam_stack_without_pam_sluice_fails_closed(sandbox, work, idp, accounts):
    """pam_permit everywhere: PAM succeeds but opens no sluice session; exec
    must not run the command on that."""
    if not _have_pam_wrapper():
        pytest.skip("pam_wrapper is not installed (Debian package libpam-wrapper)")
    ctl = need_build("ctl/sluicectl")
    permit = "/usr/lib/x86_64-linux-gnu/security/pam_permit.so"
    if not os.path.exists(permit):
        pytest.skip("pam_permit.so not found")
    d = write_service(sandbox / "pam-permit", "".join(f"{t} required {permit}\n"
                                                      for t in ("auth", "account", "session")))
    work.write_token(idp)
    marker = work.path("ran")
    r = sf.run([*pam_wrapper_env(d), ctl, "exec", "--token-file", work.token, "--connection", "orders-pg", "--",
                "touch", marker], user=SERVICE_A, env={"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent"})
    assert r.rc == 1, r
    assert ("sluicectl: the sluice PAM stack opened no session "
            "(is pam_sluice.so in /etc/pam.d/sluice?)") in r.stderr, r
    assert not marker.exists()


def test_a_token_file_that_is_not_a_token_is_refused_before_pam(exec_agent, pam_dir, work):
    sf.write_file(work.token, "line one\nline two\n", 0o600, work.account)
    marker = work.path("ran")
    r = run_exec(exec_agent, pam_dir, work, ["touch", str(marker)])
    assert r.rc == 1, r
    assert f"the token file {work.token} does not hold a token" in r.stderr, r
    sf.write_file(work.token, "x" * 20000, 0o600, work.account)
    r = run_exec(exec_agent, pam_dir, work, ["touch", str(marker)])
    assert r.rc == 1 and "larger than 16384 bytes" in r.stderr, r
    r = run_exec(exec_agent, pam_dir, work, ["touch", str(marker)], "--token-file", str(work.dir))
    assert r.rc == 1 and "is not a regular file" in r.stderr, r
    assert not marker.exists()
    wait_gone(exec_agent)


@pytest.mark.parametrize("which", ["garbage", "other-account", "expired"])
def test_a_bad_token_never_runs_the_command(exec_agent, pam_dir, work, which):
    idp = exec_agent.idp
    now = int(time.time())
    tok = {"garbage": "not-a-jwt",
           "other-account": idp.token(SERVICE_B),
           "expired": idp.forge({}, idp.claims(SERVICE_A, iat=now - 600, exp=now - 300))}[which]
    work.write_token(idp, token=tok)
    marker = work.path("ran")
    r = run_exec(exec_agent, pam_dir, work, ["touch", str(marker)])
    assert r.rc == 1, r
    assert not marker.exists()
    assert 'PAM service "sluice" refused authentication of sluicet-a' in r.stderr, r
    # the agent's reason, asked for after PAM said no
    assert "sluicectl: sluiced: " in r.stderr, r
    assert tok not in r.stderr and tok not in r.stdout
    wait_gone(exec_agent)


# --- running a command ----------------------------------------------------------------------

def test_exec_runs_psql_in_a_session_and_grant(exec_agent, pam_dir, work):
    a = exec_agent
    work.write_token(a.idp)
    script = ('printf "%s|%s|%s|%s|%s|%s|%s\\n" "$SLUICE_SESSION" "$SLUICE_GRANT" "$PGHOST" "$PGPORT" '
              '"$PGDATABASE" "${PGHOSTADDR-unset}" "$KEEP_ME"; '
              f'{a.ctl_binary} --json sessions > {work.path("sessions.json")}; '
              f'{a.ctl_binary} --json grants > {work.path("grants.json")}; '
              'psql -X -A -t -v ON_ERROR_STOP=1 -c "select current_user" '
              '-c "select count(*) from ops.customers"')
    r = run_exec(a, pam_dir, work, sh(script), "--reason", "exec test",
                 env={"KEEP_ME": "kept", "PGHOSTADDR": "192.0.2.1", "PGPORT": "1"})
    assert r.rc == 0, r
    first, *rows = r.stdout.splitlines()
    sid, gid, host, port, db, hostaddr, keep = first.split("|")
    assert host == str(a.grant_dir(gid))
    assert (port, db, hostaddr, keep) == ("5432", SAMPLE_DB, "unset", "kept")
    assert rows == [a.pg.broker_user, str(SAMPLE_CUSTOMERS)]
    # while it ran: its session, with the IdP's subject, and a grant in it
    sessions = json.loads(work.path("sessions.json").read_text())
    assert [s["id"] for s in sessions] == [sid]
    assert (sessions[0]["user"], sessions[0]["subject"]) == (SERVICE_A, SERVICE_A)
    grants = json.loads(work.path("grants.json").read_text())
    assert [(g["id"], g["session"], g["reason"]) for g in grants] == [(gid, sid, "exec test")]
    # the statements are recorded with the OIDC subject
    mine = wait_statements(a, lambda s: s["grant_id"] == gid and "ops.customers" in s["sql"],
                           "--user", SERVICE_A)
    assert [s["subject"] for s in mine] == [SERVICE_A]
    # and when it exited, both ended
    wait_gone(a)
    assert not a.grant_dir(gid).exists()
    assert "PGPASSWORD" not in r.stderr and a.pg.broker_password not in r.stdout + r.stderr


def test_exec_reads_the_token_from_stdin_or_sluice_token_file(exec_agent, pam_dir, work):
    a = exec_agent
    tok = work.write_token(a.idp)
    cmd = ["psql", "-X", "-A", "-t", "-c", "select 1"]
    r = sf.run(exec_cmd(a, pam_dir, ["--token-file", "-", "--connection", CONNECTION_NAME], cmd),
               user=SERVICE_A, env=a.env(), input=tok + "\n")
    assert (r.rc, r.stdout) == (0, "1\n"), r
    r = sf.run(exec_cmd(a, pam_dir, ["--connection", CONNECTION_NAME], cmd),
               user=SERVICE_A, env={**a.env(), "SLUICE_TOKEN_FILE": str(work.token)})
    assert (r.rc, r.stdout) == (0, "1\n"), r
    wait_gone(a)


def test_exec_in_a_session_opened_elsewhere(exec_agent, work):
    """No token but $SLUICE_SESSION (as systemd's PAMName= leaves it): exec
    runs no PAM, requests the grant in that session, revokes it at the end
    and leaves the session open."""
    a = exec_agent
    work.write_token(a.idp)
    sid = ctl_json(a, "login", "--token-file", str(work.token), user=SERVICE_A)["id"]
    cmd = [str(a.ctl_binary), "exec", "--connection", CONNECTION_NAME, "--",
           "sh", "-c", 'echo "$SLUICE_SESSION"; psql -X -A -t -c "select 1"']
    r = sf.run(cmd, user=SERVICE_A, env={**a.env(), "SLUICE_SESSION": sid})
    assert (r.rc, r.stdout) == (0, f"{sid}\n1\n"), r
    sessions, grants = live(a)
    assert ([s["id"] for s in sessions], grants) == ([sid], [])
    # a session that is not the caller's (or not live): no grant, no command
    marker = work.path("ran")
    r = sf.run([str(a.ctl_binary), "exec", "--connection", CONNECTION_NAME, "--", "touch", str(marker)],
               user=SERVICE_A, env={**a.env(), "SLUICE_SESSION": "0123456789abcdef"})
    assert (r.rc, r.stdout) == (1, ""), r
    assert not marker.exists()
    assert a.ctl("session", "close", sid).rc == 0


@pytest.mark.parametrize("cmd, rc, message", [
    (sh("exit 3"), 3, None),
    (sh("kill -KILL $$"), 128 + signal.SIGKILL, None),
    (sh("kill -TERM $$"), 128 + signal.SIGTERM, None),
    (["/nonexistent/mcp-server"], 127, "sluicectl: cannot run /nonexistent/mcp-server: No such file or directory"),
])
def test_exec_exits_with_the_status_of_the_command(exec_agent, pam_dir, work, cmd, rc, message):
    work.write_token(exec_agent.idp)
    r = run_exec(exec_agent, pam_dir, work, cmd, raw=True)
    assert r.rc == rc, r
    if message:
        assert message in r.stderr, r
    wait_gone(exec_agent)


def test_exec_forwards_signals_to_the_command(exec_agent, pam_dir, work):
    work.write_token(exec_agent.idp)
    log = work.path("signals")
    script = (f'trap "echo USR1 >> {log}" USR1; trap "echo HUP >> {log}" HUP; '
              f'trap "echo TERM >> {log}; exit 7" TERM; '
              f'echo $PPID > {work.path("ppid")}; while :; do sleep 0.1; done')
    p = start_exec(exec_agent, pam_dir, work, sh(script))
    try:
        ppid = int(work.wait_file("ppid", proc=p))
        # the command's parent is sluicectl itself (no shell in between)
        assert b"sluicectl" in Path(f"/proc/{ppid}/cmdline").read_bytes()
        sessions, grants = live(exec_agent)
        assert len(sessions) == 1 and len(grants) == 1
        for sig, word in ((signal.SIGUSR1, "USR1"), (signal.SIGHUP, "HUP")):
            os.kill(ppid, sig)
            sf.wait_for(lambda: log.exists() and word in log.read_text(), 10, f"{word} in the command")
        os.kill(ppid, signal.SIGTERM)
        r = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert r.rc == 7, r
    assert log.read_text().split() == ["USR1", "HUP", "TERM"]
    wait_gone(exec_agent)


# --- the token file rotated -----------------------------------------------------------------

def _session_expiry(agent) -> str:
    sessions = ctl_json(agent, "sessions", "--all")
    assert len(sessions) == 1, sessions
    return sessions[0]["expires_at"]


def test_a_rotated_token_file_refreshes_the_session(exec_agent, pam_dir, work, sandbox):
    """The three ways a token file changes: replaced by rename (most
    writers), rewritten in place (a CI job), and Kubernetes' projected
    volume (token -> ..data/token, ..data a symlink swapped by rename)."""
    a = exec_agent
    # Kubernetes layout
    v1 = sf.make_dir(work.dir / "..v1", 0o755, work.account)
    sf.write_file(v1 / "token", a.idp.token(SERVICE_A) + "\n", 0o644, work.account)
    os.symlink("..v1", work.dir / "..data")
    os.symlink("..data/token", work.token)
    script = (f'echo $SLUICE_GRANT > {work.path("ready")}; '
              f'while [ ! -e {work.path("stop")} ]; do sleep 0.1; done; '
              'psql -X -A -t -c "select 1"')
    p = start_exec(a, pam_dir, work, sh(script))
    try:
        work.wait_file("ready", proc=p)
        before = _session_expiry(a)

        def rotated(prev):
            def moved():
                return _session_expiry(a) > prev
            sf.wait_for(moved, 15, "the session's expires_at to move")
            return _session_expiry(a)

        # 1. Kubernetes: a new ..vN directory, ..data swapped by rename
        time.sleep(1.1)  # a later iat/exp than the first token
        v2 = sf.make_dir(work.dir / "..v2", 0o755, work.account)
        sf.write_file(v2 / "token", a.idp.token(SERVICE_A) + "\n", 0o644, work.account)
        os.symlink("..v2", work.dir / "..data_tmp")
        os.rename(work.dir / "..data_tmp", work.dir / "..data")
        after_k8s = rotated(before)
        # 2. replaced by rename (a plain file from now on)
        os.unlink(work.token)
        time.sleep(1.1)
        work.write_token(a.idp)
        after_rename = rotated(after_k8s)
        # 3. rewritten in place
        time.sleep(1.1)
        work.write_token(a.idp, in_place=True)
        rotated(after_rename)

        work.path("stop").touch()
        r = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    assert (r.rc, r.stdout) == (0, "1\n"), r
    assert "did not refresh" not in r.stderr, r
    wait_gone(a)


@pytest.mark.parametrize("content, message", [
    ("not-a-valid-token", "did not refresh the session: "),
    ("two words", "does not hold a token"),
])
def test_a_rejected_rotation_ends_the_session_and_the_grant(exec_agent, pam_dir, work, content, message):
    a = exec_agent
    work.write_token(a.idp)
    script = (f'echo $SLUICE_GRANT > {work.path("ready")}; '
              f'while [ ! -e {work.path("stop")} ]; do sleep 0.1; done; '
              'psql -X -A -t -c "select 1"')
    p = start_exec(a, pam_dir, work, sh(script))
    try:
        gid = work.wait_file("ready", proc=p).strip()
        assert a.grant_dir(gid).exists()
        work.write_token(a.idp, token=content, in_place=True)
        # the session and its grant end while the command still runs
        wait_gone(a)
        assert p.poll() is None
        assert not a.grant_dir(gid).exists()
        work.path("stop").touch()
        r = finish(p)
    finally:
        if p.poll() is None:
            p.kill()
    # exec waited for the command, whose connection then failed (psql: 2)
    assert r.rc == 2, r
    assert message in r.stderr, r
    assert "its connections fail" in r.stderr, r
    assert content not in r.stderr, r


def test_rotation_keeps_the_command_connected_past_the_first_token(exec_agent, pam_dir, work):
    """An 8-second token rotated every 2 s: the command still has its grant
    after 12 s (without rotation it would end at 8 s)."""
    a = exec_agent
    idp = a.idp

    def short():
        now = int(time.time())
        return idp.forge({}, idp.claims(SERVICE_A, iat=now, exp=now + 8))

    work.write_token(idp, token=short())
    stop = threading.Event()

    def rotate():
        while not stop.wait(2):
            work.write_token(idp, token=short())

    t = threading.Thread(target=rotate, daemon=True)
    p = start_exec(a, pam_dir, work, sh('sleep 12; psql -X -A -t -c "select 1"'))
    t.start()
    try:
        r = finish(p, timeout=60)
    finally:
        stop.set()
        t.join()
        if p.poll() is None:
            p.kill()
    assert (r.rc, r.stdout) == (0, "1\n"), r.stderr
    assert "expired" not in r.stderr, r.stderr
    wait_gone(a)


def test_without_rotation_exec_reports_the_session_expiry(exec_agent, pam_dir, work):
    a = exec_agent
    idp = a.idp
    now = int(time.time())
    work.write_token(idp, token=idp.forge({}, idp.claims(SERVICE_A, iat=now, exp=now + 5)))
    r = run_exec(a, pam_dir, work, sh('sleep 9; psql -X -A -t -c "select 1"'))
    assert r.rc == 2, r  # the grant ended with the session
    assert "has not been rotated: the session ends at" in r.stderr, r
    assert "expired at" in r.stderr and "its grant has ended" in r.stderr, r
    wait_gone(a)
