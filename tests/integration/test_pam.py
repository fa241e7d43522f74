"""pam_sluice.so through a real PAM stack: pamtester under pam_wrapper (a
service directory of our own, modules by absolute path) against the real
sluiced on the private bus, with real tokens from the test IdP.

What a user of the module sees is what is asserted: pamtester's exit status
and the PAM error text, the session in the agent (GetSession), SLUICE_SESSION
in the PAM environment (pam_exec stacked after pam_sluice exports it to a
script), grants ending with the session, and the module's pam_syslog lines
(pam_wrapper prints them on stderr at PAM_WRAPPER_DEBUGLEVEL=2)."""
from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence

import pytest

import sluice_fixtures as sf
from conftest import BUILDDIR, SERVICE_A, SERVICE_B
import idp as idpmod

AGENT = ("org.sluice.Agent1", "/org/sluice/Agent1")
PAM_WRAPPER = "libpam_wrapper.so"
PAM_SET_ITEMS = Path("/usr/lib/x86_64-linux-gnu/pam_wrapper/pam_set_items.so")
PAM_EXEC = Path("/lib/x86_64-linux-gnu/security/pam_exec.so")
PAM_PERMIT = Path("/lib/x86_64-linux-gnu/security/pam_permit.so")

# pam_strerror's texts, which pamtester prints.
AUTH_ERR = "Authentication failure"
USER_UNKNOWN = "User not known to the underlying authentication module"
AUTHINFO_UNAVAIL = "Authentication service cannot retrieve authentication info"
CRED_INSUFFICIENT = "Insufficient credentials to access authentication data"
SERVICE_ERR = "Error in service module"
SESSION_ERR = "Cannot make/remove an entry for the specified session"
PERM_DENIED = "Permission denied"


# --- helpers -------------------------------------------------------------------------

def module_path() -> Path:
    """The built pam_sluice.so (libtool keeps it in pam_module/.libs)."""
    if BUILDDIR is None:
        pytest.skip("SLUICE_BUILDDIR is not set (scripts/check sets it)")
    p = BUILDDIR / "pam_module" / ".libs" / "pam_sluice.so"
    if not p.is_file():
        pytest.skip(f"pam_module/.libs/pam_sluice.so is not built in {BUILDDIR}")
    return p


def needed_libs(so: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\).*\[(.*)\]", out)


def dyn_symbols(so: Path, which: str) -> list[str]:
    out = subprocess.run(["nm", "-D", which, str(so)], capture_output=True, text=True, check=True).stdout
    return [line.split()[-1] for line in out.splitlines() if line.strip()]


def asan_runtime(so: Path) -> Optional[str]:
    """The ASan runtime a sanitizer build's module needs (libasan.so.N), or None."""
    return next((lib for lib in needed_libs(so) if lib.startswith("libasan")), None)


@pytest.fixture
def module() -> Path:
    """pam_sluice.so to stack: the build's (Pam copies it where every account
    can load it). In the sanitizer build pamtester gets the ASan runtime
    preloaded, since an instrumented module cannot be loaded otherwise, and
    every run is checked for sanitizer reports."""
    so = module_path()
    if subprocess.run(["sh", "-c", "command -v pamtester"], capture_output=True).returncode:
        pytest.skip("pamtester is not installed (Debian package pamtester)")
    return so


SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class Pam:
    """A pam_wrapper service directory and pamtester runs against one agent."""

    def __init__(self, directory: Path, module: Path, bus_address: str):
        self.dir = sf.make_dir(directory)
        self.services = sf.make_dir(self.dir / "services")
        self.module = self.dir / "pam_sluice.so"
        self.module.write_bytes(module.read_bytes())
        os.chmod(self.module, 0o644)
        self.bus_address = bus_address
        self.asan = asan_runtime(module)
        self.trace = self.dir / "trace"
        # pam_wrapper looks for "other" when a service has no file.
        (self.services / "other").write_text("auth required pam_deny.so\naccount required pam_deny.so\n"
                                             "session required pam_deny.so\npassword required pam_deny.so\n")
        os.chmod(self.dir, 0o755)
        os.chmod(self.services, 0o755)

    def service(self, lines: Sequence[str], name: str = "sluice") -> str:
        """Write service name: each line "TYPE CONTROL MODULE args", where
        MODULE "sluice" is our module and "exec" pam_exec running the trace
        script (it records PAM_TYPE and SLUICE_SESSION, and at open_session
        what the agent says about that session)."""
        out = []
        for line in lines:
            kind, control, mod, *args = line.split()
            path = {"sluice": self.module, "exec": PAM_EXEC, "set_items": PAM_SET_ITEMS,
                    "permit": PAM_PERMIT}.get(mod, mod)
            if mod == "exec":
                args = [*args, str(self._trace_script())]
            out.append(" ".join([kind, control, str(path), *args]))
        p = self.services / name
        p.write_text("\n".join(out) + "\n")
        os.chmod(p, 0o644)
        return name

    def _trace_script(self) -> Path:
        script = self.dir / "trace.sh"
        if not script.exists():
            script.write_text(f"""#!/bin/sh
echo "$PAM_TYPE SLUICE_SESSION=${{SLUICE_SESSION-}}" >> {self.trace}
if [ "$PAM_TYPE" = open_session ] && [ -n "${{SLUICE_SESSION-}}" ]; then
  dbus-send --bus={self.bus_address} --print-reply --dest={AGENT[0]} {AGENT[1]} \\
    org.sluice.Agent1.GetSession "string:$SLUICE_SESSION" >> {self.trace} 2>&1
fi
""")
            os.chmod(script, 0o755)
            self.trace.touch()
            os.chmod(self.trace, 0o666)
        return script

    def run(self, user: str, *ops: str, service: str = "sluice", as_user: Optional[str] = None,
            env: Optional[Mapping[str, str]] = None, pam_env: Mapping[str, str] = {},
            input: Optional[str] = None, bus: Optional[str] = None, timeout: float = 60) -> sf.Result:
        """pamtester -v SERVICE USER OPS... (as as_user, root by default),
        PAM environment entries from pam_env (-E). stderr holds pamtester's
        verdicts and the modules' syslog lines."""
        e = {"LD_PRELOAD": PAM_WRAPPER, "PAM_WRAPPER": "1",
             "PAM_WRAPPER_SERVICE_DIR": str(self.services), "PAM_WRAPPER_DEBUGLEVEL": "2",
             "DBUS_SYSTEM_BUS_ADDRESS": bus if bus is not None else self.bus_address}
        if self.asan:
            # pam_wrapper's RTLD_DEEPBIND and ASan do not mix (pam_wrapper(1)).
            e.update({"LD_PRELOAD": f"{self.asan} {PAM_WRAPPER}", "PAM_WRAPPER_DISABLE_DEEPBIND": "1",
                      "ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"})
        e.update(env or {})
        cmd = ["pamtester", "-v"]
        for k, v in pam_env.items():
            cmd += ["-E", f"{k}={v}"]
        cmd += [service, user, *ops]
        if as_user:
            # setpriv, not runuser: runuser runs a PAM stack of its own, which
            # LD_PRELOAD would send to our service directory.
            acct = sf.ensure_account(as_user)
            cmd = ["setpriv", f"--reuid={acct.uid}", f"--regid={acct.gid}", "--clear-groups", "--", *cmd]
        r = sf.run(cmd, env=e, input=input if input is not None else "", timeout=timeout)
        reports = [m for m in SANITIZER_REPORTS if m in r.stderr]
        assert not reports, f"sanitizer report from pamtester {' '.join(ops)}:\n{r.stderr}"
        return r

    def traced(self) -> str:
        return self.trace.read_text() if self.trace.exists() else ""


@pytest.fixture
def pam(module, sandbox, bus, request) -> Pam:
    d = sandbox / ("pam-" + re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60])
    return Pam(d, module, bus.address)


def ok(r: sf.Result) -> sf.Result:
    assert r.rc == 0, f"pamtester failed ({r.rc}):\n{r.stderr}"
    return r


def fails(r: sf.Result, text: str) -> sf.Result:
    assert r.rc != 0, f"pamtester succeeded, expected {text!r}:\n{r.stderr}"
    assert text in r.stderr, f"{text!r} not in:\n{r.stderr}"
    return r


def get_session(agent, sid: str) -> sf.Result:
    return agent.bus.call(*AGENT, "org.sluice.Agent1.GetSession", f"string:{sid}")


def live_sessions(agent) -> str:
    r = agent.bus.call(*AGENT, "org.sluice.Agent1.ListSessions", "boolean:true")
    assert r.rc == 0, r.stderr
    return r.stdout


def session_ids_of(text: str) -> list[str]:
    return re.findall(r"SLUICE_SESSION=([0-9A-Za-z._:-]+)", text)


def token_file(agent, directory: Path, user: str, client: Optional[str] = None, *,
               owner=None, mode: int = 0o600, token: Optional[str] = None) -> Path:
    d = sf.make_dir(directory, 0o755)
    return agent.idp.write_token(d / user, client or user, owner=owner, mode=mode, token=token)


FULL = ("auth required sluice {opts}", "account required sluice {opts}",
        "session required sluice {opts}", "session required exec")


def stack(opts: str = "", extra: Sequence[str] = ()) -> list[str]:
    return [line.format(opts=opts) for line in FULL] + list(extra)


# --- the built module ---------------------------------------------------------------------

def test_exports_only_pam_sm_links_only_pam_and_dbus_and_starts_no_threads():
    so = module_path()
    exported = sorted(dyn_symbols(so, "--defined-only"))
    assert exported == sorted(["pam_sm_authenticate", "pam_sm_setcred", "pam_sm_acct_mgmt",
                               "pam_sm_open_session", "pam_sm_close_session", "pam_sm_chauthtok"])
    imported = dyn_symbols(so, "--undefined-only")
    assert not [s for s in imported if s.split("@")[0] in ("pthread_create", "thrd_create", "clone")]
    assert not [s for s in imported if s.split("@")[0].startswith(("sqlite3_", "curl_", "SSL_", "EVP_"))]
    libs = {re.sub(r"\.so.*", "", lib) for lib in needed_libs(so)}
    assert libs - {"libasan", "libubsan"} == {"libc", "libpam", "libdbus-1"}
    # libpam dlcloses modules; ours stays (and libdbus with it).
    dyn = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"FLAGS_1.*NODELETE", dyn)


def test_installed_to_the_pam_module_directory(installed):
    found = installed.find("pam_sluice.so")
    assert [p for p in found if p.parent.name == "security"], found
    assert not installed.find("pam_sluice.la")


# --- auth, account, session ----------------------------------------------------------------

def test_full_stack_with_token_file_opens_and_closes_an_agent_session(agent_factory, pam, sandbox):
    a = agent_factory(sessions=())
    tf = token_file(a, pam.dir / "tokens", SERVICE_A)
    pam.service(stack(f"token_file={tf.parent}/%u debug"))
    r = ok(pam.run(SERVICE_A, "authenticate", "acct_mgmt", "open_session", "close_session"))
    trace = pam.traced()
    opened = [line for line in trace.splitlines() if line.startswith("open_session")]
    assert len(opened) == 1 and session_ids_of(opened[0]), trace
    sid = session_ids_of(opened[0])[0]
    # While the session was open the agent had it, for the right account and subject.
    assert f'string "{sid}"' in trace and f'string "{SERVICE_A}"' in trace, trace
    # close_session removed SLUICE_SESSION and ended the session.
    closed = [line for line in trace.splitlines() if line.startswith("close_session")]
    assert closed == ["close_session SLUICE_SESSION="], trace
    assert get_session(a, sid).rc != 0
    assert sid not in live_sessions(a)
    assert f"session {sid} opened for user {SERVICE_A}" in r.stderr
    assert f"session {sid} closed for user {SERVICE_A}" in r.stderr


def test_use_first_pass_takes_pam_authtok_and_the_session_reuses_the_verified_token(
        agent_factory, pam):
    a = agent_factory(sessions=())
    # Linux-PAM clears PAM_AUTHTOK when pam_authenticate returns, so the
    # session line (no token_file=) can only use the token auth kept.
    pam.service(["auth required set_items", "auth required sluice use_first_pass",
                 "session required sluice debug", "session required exec"])
    r = ok(pam.run(SERVICE_A, "authenticate", "open_session",
                   env={"PAM_AUTHTOK": a.idp.token(SERVICE_A)}))
    assert f"session token for user {SERVICE_A}: the one auth verified" in r.stderr
    sid = session_ids_of(pam.traced())[0]
    assert f'string "{SERVICE_A}"' in pam.traced()
    # pamtester ended without close_session: the session is still live.
    assert get_session(a, sid).rc == 0
    assert a.close_session(sid).rc == 0


def test_use_first_pass_without_pam_authtok_never_prompts(agent_factory, pam):
    a = agent_factory(sessions=())
    pam.service(["auth required sluice use_first_pass"])
    r = fails(pam.run(SERVICE_A, "authenticate", input=a.idp.token(SERVICE_A) + "\n"),
              CRED_INSUFFICIENT)
    assert "OIDC token" not in r.stdout + r.stderr


def test_try_first_pass_falls_back_to_the_token_file(agent_factory, pam):
    a = agent_factory(sessions=())
    tf = token_file(a, pam.dir / "tokens", SERVICE_A)
    pam.service(["auth required set_items", f"auth required sluice try_first_pass token_file={tf}"])
    ok(pam.run(SERVICE_A, "authenticate"))
    # And PAM_AUTHTOK wins when it is set: a bad one fails though the file is good.
    bad = idpmod.IdP.tamper(a.idp.token(SERVICE_A), sub="someone-else")
    fails(pam.run(SERVICE_A, "authenticate", env={"PAM_AUTHTOK": bad}), AUTH_ERR)


def test_conversation_takes_a_full_jwt(agent_factory, pam):
    a = agent_factory(sessions=())
    tok = a.idp.token(SERVICE_A)
    assert len(tok) > 512  # over PAM_MAX_RESP_SIZE: pamtester's conversation passes it whole
    pam.service(["auth required sluice", "session required sluice", "session required exec"])
    r = ok(pam.run(SERVICE_A, "authenticate", "open_session", "close_session", input=tok + "\n"))
    assert "OIDC token: " in r.stdout + r.stderr
    assert len(session_ids_of(pam.traced())) == 1


def test_bad_token_is_an_auth_error_with_the_agents_reason(agent_factory, pam):
    a = agent_factory(sessions=())
    bad = idpmod.IdP.tamper(a.idp.token(SERVICE_A), aud="urn:other")
    tf = token_file(a, pam.dir / "tokens", SERVICE_A, token=bad)
    pam.service(stack(f"token_file={tf}"))
    r = fails(pam.run(SERVICE_A, "authenticate"), AUTH_ERR)
    assert f"authentication failed for user {SERVICE_A}: token rejected" in r.stderr
    assert bad not in r.stderr and bad.split(".")[2] not in r.stderr


def test_token_of_another_account_is_an_auth_error(agent_factory, pam):
    a = agent_factory(sessions=())
    tf = token_file(a, pam.dir / "tokens", SERVICE_A, client=SERVICE_B)
    pam.service(stack(f"token_file={tf}"))
    fails(pam.run(SERVICE_A, "authenticate"), AUTH_ERR)
    fails(pam.run(SERVICE_A, "open_session"), AUTH_ERR)
    assert SERVICE_A not in live_sessions(a)


def test_unbound_user_is_unknown(agent_factory, pam, accounts):
    a = agent_factory(sessions=())
    user = sf.AGENT_USER  # a real account with no [identity] binding
    tf = token_file(a, pam.dir / "tokens", user, client=SERVICE_A)
    pam.service(stack(f"token_file={tf}"))
    fails(pam.run(user, "authenticate"), USER_UNKNOWN)
    fails(pam.run(user, "acct_mgmt"), USER_UNKNOWN)
    fails(pam.run(user, "open_session"), USER_UNKNOWN)


def test_account_step_follows_the_binding(agent_factory, pam):
    a = agent_factory(sessions=())
    pam.service(["account required sluice"])
    ok(pam.run(SERVICE_A, "acct_mgmt"))
    text = a.config_path.read_text().replace(f"[identity {SERVICE_A}]", "[identity sluicet-gone]")
    a.write_config(text)
    a.ctl("reload").check()
    fails(pam.run(SERVICE_A, "acct_mgmt"), USER_UNKNOWN)
    ok(pam.run(SERVICE_B, "acct_mgmt"))


def test_account_and_session_only_with_token_file_as_under_systemd_pamname(agent_factory, pam):
    """systemd's PAMName= runs account + session with a conversation that
    cannot answer; LoadCredential= puts the token in a root-owned 0400 file
    below /run/credentials/UNIT/."""
    a = agent_factory(sessions=())
    creds = sf.make_dir(pam.dir / "credentials" / f"{SERVICE_A}.service", 0o700)
    a.idp.write_token(creds / "sluice-token", SERVICE_A, mode=0o400)
    pam.service(["account required sluice", "session required sluice "
                 f"token_file={pam.dir}/credentials/%u.service/sluice-token", "session required exec"])
    ok(pam.run(SERVICE_A, "acct_mgmt", "open_session", "close_session"))
    lines = pam.traced().splitlines()
    assert lines[0].startswith("open_session SLUICE_SESSION=") and session_ids_of(lines[0])
    assert lines[-1] == "close_session SLUICE_SESSION="
    assert SERVICE_A not in live_sessions(a)


def test_close_session_takes_the_id_from_the_pam_environment_and_ends_its_grants(
        agent_factory, pam, psql_as):
    a = agent_factory(sessions=())
    s = a.open_session(SERVICE_A)
    g = a.request_grant(SERVICE_A)
    assert Path(g["socket_dir"]).exists()
    pam.service(["session required sluice"])
    r = ok(pam.run(SERVICE_A, "close_session", pam_env={"SLUICE_SESSION": s["id"]}))
    assert f"session {s['id']} closed" in r.stderr
    assert get_session(a, s["id"]).rc != 0
    sf.wait_for(lambda: not Path(g["socket_dir"]).exists(), 10, "the grant's directory to go")
    assert psql_as(SERVICE_A, g["socket_dir"], sf.SAMPLE_DB, "select 1").rc != 0
    # Closing it again: already gone is done, not an error.
    r = ok(pam.run(SERVICE_A, "close_session", pam_env={"SLUICE_SESSION": s["id"]}))
    # Nothing to close is not an error either, and a malformed id is not sent.
    ok(pam.run(SERVICE_A, "close_session"))
    fails(pam.run(SERVICE_A, "close_session", pam_env={"SLUICE_SESSION": "../../x y"}), SESSION_ERR)


def test_password_is_ignored(agent_factory, pam):
    """chauthtok: pam_sluice answers PAM_IGNORE, so the stack's verdict is the
    other module's (pam_permit here); alone, a stack of ignores fails."""
    agent_factory(sessions=())
    pam.service(["password required sluice", "password required permit"])
    ok(pam.run(SERVICE_A, "chauthtok"))
    pam.service(["password required sluice"], name="sluice-alone")
    assert pam.run(SERVICE_A, "chauthtok", service="sluice-alone").rc != 0


# --- failing closed ------------------------------------------------------------------------

def test_agent_absent_denies_every_step(agent_factory, pam, sandbox):
    a = agent_factory(sessions=())
    tf = token_file(a, pam.dir / "tokens", SERVICE_A)
    pam.service(stack(f"token_file={tf}"))
    dead = f"unix:path={pam.dir}/no-bus-here"
    for op in ("authenticate", "acct_mgmt", "open_session"):
        r = fails(pam.run(SERVICE_A, op, bus=dead), AUTHINFO_UNAVAIL)
        assert "not running or not reachable" in r.stderr
    # The bus is up but no agent owns the name.
    a.stop()
    for op in ("authenticate", "acct_mgmt", "open_session"):
        fails(pam.run(SERVICE_A, op), AUTHINFO_UNAVAIL)
    # Closing with the agent gone: its sessions ended with it; success, with a warning.
    r = ok(pam.run(SERVICE_A, "close_session", pam_env={"SLUICE_SESSION": "0123abcd"}))
    assert "closing session 0123abcd" in r.stderr


HUNG_AGENT = """
import dbus, sys, time
b = dbus.bus.BusConnection(sys.argv[1])
assert b.request_name(sys.argv[2], dbus.bus.NAME_FLAG_DO_NOT_QUEUE) == dbus.bus.REQUEST_NAME_REPLY_PRIMARY_OWNER
print("owned", flush=True)
time.sleep(120)   # never reads a message: every call times out
"""


def test_an_agent_that_does_not_answer_is_bounded_by_timeout(agent_factory, pam, bus, accounts):
    a = agent_factory(sessions=())
    tf = token_file(a, pam.dir / "tokens", SERVICE_A)
    a.stop()
    pam.service(stack(f"token_file={tf} timeout=1"))
    # Not through runuser: killing runuser would leave python owning the name.
    acct = accounts[sf.AGENT_USER]
    hung = subprocess.Popen(["/usr/bin/python3", "-c", HUNG_AGENT, bus.address, AGENT[0]],
                            stdout=subprocess.PIPE, text=True, env=sf.clean_env(), cwd="/",
                            user=acct.uid, group=acct.gid, extra_groups=[])
    try:
        assert hung.stdout.readline().strip() == "owned"
        for op in ("authenticate", "acct_mgmt", "open_session"):
            t0 = time.monotonic()
            fails(pam.run(SERVICE_A, op), AUTHINFO_UNAVAIL)
            assert time.monotonic() - t0 < 5
        # A close that got no answer may have left the session open: an error.
        fails(pam.run(SERVICE_A, "close_session", pam_env={"SLUICE_SESSION": "0123abcd"}), SESSION_ERR)
    finally:
        hung.kill()
        hung.wait()
        sf.wait_for(lambda: not bus.name_has_owner(AGENT[0]), 10, "the hung owner to leave the bus")


@pytest.mark.parametrize("kind", ["auth", "account", "session"])
def test_unknown_option_fails_closed(agent_factory, pam, kind):
    a = agent_factory(sessions=())
    tf = token_file(a, pam.dir / "tokens", SERVICE_A)
    pam.service([f"{kind} required sluice token_file={tf} use_authtok"])
    op = {"auth": "authenticate", "account": "acct_mgmt", "session": "open_session"}[kind]
    r = fails(pam.run(SERVICE_A, op), SERVICE_ERR)
    assert 'unknown or malformed option "use_authtok"' in r.stderr
    assert SERVICE_A not in live_sessions(a)


@pytest.mark.parametrize("problem", ["world-writable", "group-writable", "symlink", "other-owner",
                                     "missing", "empty", "too-big"])
def test_unsafe_or_unusable_token_file_is_refused(agent_factory, pam, accounts, problem):
    a = agent_factory(sessions=())
    d = sf.make_dir(pam.dir / "tokens", 0o755)
    good = a.idp.write_token(d / "good", SERVICE_A)
    path = d / SERVICE_A
    if problem == "world-writable":
        a.idp.write_token(path, SERVICE_A, mode=0o602)
    elif problem == "group-writable":
        a.idp.write_token(path, SERVICE_A, mode=0o620)
    elif problem == "symlink":
        path.symlink_to(good)
    elif problem == "other-owner":
        a.idp.write_token(path, SERVICE_A, owner=accounts[SERVICE_B])
    elif problem == "empty":
        sf.write_file(path, "\n", 0o600)
    elif problem == "too-big":
        sf.write_file(path, "A" * 16385, 0o600)
    pam.service([f"auth required sluice token_file={d}/%u", f"session required sluice token_file={d}/%u"])
    r = fails(pam.run(SERVICE_A, "authenticate"), CRED_INSUFFICIENT)
    assert f"token file {path} for user {SERVICE_A} refused" in r.stderr
    fails(pam.run(SERVICE_A, "open_session"), SESSION_ERR)
    assert SERVICE_A not in live_sessions(a)


def test_a_service_account_runs_the_stack_for_itself_only(agent_factory, pam, accounts):
    """Not root: the agent lets a caller act for its own account only."""
    a = agent_factory(sessions=())
    d = sf.make_dir(pam.dir / "tokens", 0o755)
    mine = a.idp.write_token(d / SERVICE_A, SERVICE_A, owner=accounts[SERVICE_A])
    pam.service(stack(f"token_file={d}/%u"))
    ok(pam.run(SERVICE_A, "authenticate", "open_session", "close_session", as_user=SERVICE_A))
    # For another account: its token file is refused by owner, and with a
    # readable, root-owned token for SERVICE_B the agent refuses the caller.
    a.idp.write_token(d / SERVICE_B, SERVICE_B, mode=0o644)
    r = fails(pam.run(SERVICE_B, "authenticate", "open_session", as_user=SERVICE_A), AUTH_ERR)
    assert f"authentication failed for user {SERVICE_B}" in r.stderr
    r = fails(pam.run(SERVICE_B, "open_session", as_user=SERVICE_A), SESSION_ERR)
    assert "may act only for itself" in r.stderr  # the agent's reason, logged
    assert SERVICE_B not in live_sessions(a)
    del mine


def test_the_token_never_reaches_a_log(agent_factory, pam):
    a = agent_factory(sessions=())
    good = a.idp.token(SERVICE_A)
    bad = idpmod.IdP.tamper(a.idp.token(SERVICE_A), exp=1)
    outputs = []
    for tok in (good, bad):
        tf = token_file(a, pam.dir / "tokens", SERVICE_A, token=tok)
        pam.service(stack(f"token_file={tf} debug"))
        outputs.append(pam.run(SERVICE_A, "authenticate", "acct_mgmt", "open_session", "close_session"))
        pam.service(["auth required set_items", "auth required sluice use_first_pass debug",
                     "session required sluice debug"])
        outputs.append(pam.run(SERVICE_A, "authenticate", "open_session", "close_session",
                               env={"PAM_AUTHTOK": tok}))
    assert outputs[0].rc == 0 and outputs[2].rc != 0
    text = "".join(r.stdout + r.stderr for r in outputs) + a.log()
    for tok in (good, bad):
        header, payload, sig = tok.split(".")
        for part in (payload, sig):
            assert part[:24] not in text
    assert "token for user" in text  # the debug lines were there to look at
