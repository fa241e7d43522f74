"""libnss_sluice.so.2 as programs load it, against snapshot files the test
writes the way sluiced does (a temporary file renamed into place, 0644, in
a 0755 directory below a runtime directory):

- under nss_wrapper (LD_PRELOAD libnss_wrapper.so, the module as
  NSS_WRAPPER_MODULE_SO_PATH with prefix "sluice", small passwd/group files
  of the test as the "files" part): getent passwd|group by name, by id and
  enumerated, `id NAME`, big entries that need glibc's buffer retry, and
  files that are missing, untrusted or bad;
- through glibc itself: in a private mount namespace the shipped
  data/nsswitch.conf is bind-mounted over /etc/nsswitch.conf and the
  module is found through LD_LIBRARY_PATH, so getent, `id NAME`
  (getgrouplist -> initgroups_dyn) and `setpriv --init-groups id`
  (initgroups -> initgroups_dyn -> the kernel's group list) use the real
  NSS path; and one long-lived process sees the files replaced and
  removed under it.

initgroups is tested through glibc and not through nss_wrapper: nss_wrapper
answers initgroups() from its files backend whenever that succeeds, and
calls a module's initgroups_dyn with uninitialised arguments.

The helpers (Snapshot, NssWrapper, GlibcNss) are meant for other tests too
(test_nss_agent.py points them at a real agent's runtime directory)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Mapping, Optional, Sequence

import pytest

import sluice_fixtures as sf
from conftest import SRCDIR, need_build

MODULE = "nss/.libs/libnss_sluice.so.2"
NSS_WRAPPER = "libnss_wrapper.so"
SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")

HDR = "# sluice nss snapshot v1\n"
PASSWD = HDR + (
    "mcp-orders:x:61001:61001:sluice service identity:/nonexistent:/usr/sbin/nologin\n"
    "mcp-billing:x:61002:61002:sluice service identity:/var/lib/mcp-billing:/usr/sbin/nologin\n"
)
GROUP = HDR + (
    "mcp-orders:x:61001:\n"
    "mcp-billing:x:61002:\n"
    "idp-data-readers:x:880001:mcp-billing,mcp-orders,nobody\n"
    "idp-orders-team:x:880002:mcp-orders\n"
)
# The "files" part under nss_wrapper: a local account and group that must
# win over the module's.
FILES_PASSWD = "localuser:x:5000:5000:local:/home/localuser:/bin/sh\n"
FILES_GROUP = "localgroup:x:5000:localuser\n"


# --- helpers ----------------------------------------------------------------------------

def needed_libs(so: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\).*\[(.*)\]", out)


def asan_runtime(so: Path) -> Optional[str]:
    """libasan.so.N when so is a sanitizer build's, else None."""
    return next((lib for lib in needed_libs(so) if lib.startswith("libasan")), None)


def check_sanitizers(r: sf.Result, what: str) -> sf.Result:
    reports = [m for m in SANITIZER_REPORTS if m in r.stderr]
    assert not reports, f"sanitizer report from {what}:\n{r.stderr}"
    return r


class Snapshot:
    """<root>/run (the runtime directory, 0755) and <root>/run/nss (0755),
    owned by root; write() publishes a file as sluiced does."""

    def __init__(self, root: Path):
        self.root = sf.make_dir(root)
        self.run = sf.make_dir(root / "run")
        self.dir = sf.make_dir(self.run / "nss")

    def path(self, name: str) -> Path:
        return self.dir / name

    def write(self, name: str, text: str, mode: int = 0o644) -> None:
        tmp = self.dir / f".{name}.tmp"
        sf.write_file(tmp, text, mode)
        os.replace(tmp, self.dir / name)

    def publish(self, passwd: str = PASSWD, group: str = GROUP) -> "Snapshot":
        self.write("passwd", passwd)
        self.write("group", group)
        return self


class NssWrapper:
    """Programs run with nss_wrapper: FILES_PASSWD/FILES_GROUP as "files",
    then the module reading nss_dir. The module is copied next to them, so
    any account can load it."""

    def __init__(self, directory: Path, module: Path, nss_dir: Path):
        self.dir = sf.make_dir(directory)
        self.module = self.dir / "libnss_sluice.so.2"
        shutil.copyfile(module, self.module)
        os.chmod(self.module, 0o755)
        self.asan = asan_runtime(module)
        self.nss_dir = nss_dir
        sf.write_file(self.dir / "passwd", FILES_PASSWD)
        sf.write_file(self.dir / "group", FILES_GROUP)

    def env(self) -> dict[str, str]:
        e = {"LD_PRELOAD": NSS_WRAPPER, "NSS_WRAPPER_PASSWD": str(self.dir / "passwd"),
             "NSS_WRAPPER_GROUP": str(self.dir / "group"),
             "NSS_WRAPPER_MODULE_SO_PATH": str(self.module), "NSS_WRAPPER_MODULE_FN_PREFIX": "sluice",
             "SLUICE_NSS_DIR": str(self.nss_dir)}
        if self.asan:
            # An instrumented module needs the ASan runtime first, and
            # nss_wrapper's RTLD_DEEPBIND does not mix with ASan.
            e.update({"LD_PRELOAD": f"{self.asan} {NSS_WRAPPER}", "NSS_WRAPPER_DISABLE_DEEPBIND": "1",
                      "ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"})
        return e

    def run(self, *cmd: str, env: Optional[Mapping[str, str]] = None, timeout: float = 30) -> sf.Result:
        e = self.env()
        e.update(env or {})
        return check_sanitizers(sf.run(cmd, env=e, timeout=timeout), " ".join(cmd))

    def getent(self, db: str, *keys: str) -> sf.Result:
        return self.run("getent", db, *keys)


class GlibcNss:
    """Programs run by glibc's own NSS with `passwd: files sluice` and
    `group: files sluice`: a private mount namespace (unshare -m) with
    data/nsswitch.conf over /etc/nsswitch.conf, the module found by
    LD_LIBRARY_PATH (glibc dlopens libnss_sluice.so.2 by name)."""

    def __init__(self, directory: Path, module: Path, nss_dir: Path):
        self.dir = sf.make_dir(directory)
        self.libdir = sf.make_dir(self.dir / "lib")
        shutil.copyfile(module, self.libdir / "libnss_sluice.so.2")
        os.chmod(self.libdir / "libnss_sluice.so.2", 0o755)
        self.asan = asan_runtime(module)
        self.nss_dir = nss_dir
        self.nsswitch = SRCDIR / "data" / "nsswitch.conf"

    def env(self) -> dict[str, str]:
        e = {"LD_LIBRARY_PATH": str(self.libdir), "SLUICE_NSS_DIR": str(self.nss_dir)}
        if self.asan:
            e.update({"LD_PRELOAD": self.asan, "ASAN_OPTIONS": "detect_leaks=1",
                      "UBSAN_OPTIONS": "print_stacktrace=1"})
        return e

    def wrap(self, cmd: Sequence[str], env: Optional[Mapping[str, str]] = None) -> list[str]:
        # mount runs before the environment that loads the module is set,
        # so an ASan preload does not reach it.
        script = 'mount --bind "$1" /etc/nsswitch.conf && shift && exec env "$@"'
        envs = [f"{k}={v}" for k, v in {**self.env(), **(env or {})}.items()]
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
                str(self.nsswitch), *envs, *cmd]

    def run(self, *cmd: str, env: Optional[Mapping[str, str]] = None, timeout: float = 30) -> sf.Result:
        return check_sanitizers(sf.run(self.wrap(cmd, env), timeout=timeout), " ".join(cmd))

    def getent(self, db: str, *keys: str) -> sf.Result:
        return self.run("getent", db, *keys)


def lines(r: sf.Result) -> list[str]:
    return r.stdout.splitlines()


# --- fixtures -----------------------------------------------------------------------------

@pytest.fixture
def module(accounts) -> Path:
    """The built module (skips when not built); accounts makes the test
    root-only, like the others."""
    return need_build(MODULE)


@pytest.fixture
def snap(sandbox, request) -> Snapshot:
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:50]
    return Snapshot(sandbox / f"nss-{name}").publish()


@pytest.fixture
def wrap(module, snap) -> NssWrapper:
    if subprocess.run(["sh", "-c", f"ldconfig -p | grep -q {NSS_WRAPPER}"]).returncode:
        pytest.skip("nss_wrapper is not installed (Debian package libnss-wrapper)")
    return NssWrapper(snap.root / "wrapper", module, snap.dir)


@pytest.fixture
def glibc(module, snap) -> GlibcNss:
    if Path("/var/run/nscd/socket").exists():
        pytest.skip("nscd is running: it would answer instead of the module")
    g = GlibcNss(snap.root / "glibc", module, snap.dir)
    probe = sf.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                    f"mount --bind {g.nsswitch} /etc/nsswitch.conf"])
    if probe.rc != 0:
        pytest.skip(f"cannot bind-mount /etc/nsswitch.conf in a mount namespace: {probe.stderr.strip()}")
    return g


# --- nss_wrapper ----------------------------------------------------------------------------

def test_module_links_libc_only(module):
    libs = {re.sub(r"\.so.*", "", lib) for lib in needed_libs(module)}
    assert libs - {"libasan", "libubsan"} == {"libc"}
    out = subprocess.run(["nm", "-D", "--defined-only", str(module)], capture_output=True, text=True,
                         check=True).stdout
    exported = sorted(line.split()[-1] for line in out.splitlines() if line.split()[1] in "TDBRVWi")
    assert exported and all(s.startswith("_nss_sluice_") for s in exported), exported


def test_getent_passwd_by_name_and_uid(wrap):
    want = "mcp-orders:x:61001:61001:sluice service identity:/nonexistent:/usr/sbin/nologin"
    assert lines(wrap.getent("passwd", "mcp-orders").check()) == [want]
    assert lines(wrap.getent("passwd", "61001").check()) == [want]
    assert lines(wrap.getent("passwd", "mcp-billing", "61001").check()) == [
        "mcp-billing:x:61002:61002:sluice service identity:/var/lib/mcp-billing:/usr/sbin/nologin", want]
    # Local accounts still come from "files".
    assert lines(wrap.getent("passwd", "localuser").check()) == [FILES_PASSWD.strip()]
    r = wrap.getent("passwd", "mcp-nobody")
    assert (r.rc, r.stdout) == (2, "")
    assert wrap.getent("passwd", "61009").rc == 2


def test_bypass_turns_the_module_off(wrap, glibc):
    # sluiced sets SLUICE_NSS_BYPASS for itself: it never resolves accounts
    # through what it publishes. Local accounts still resolve.
    r = wrap.run("getent", "passwd", "mcp-orders", env={"SLUICE_NSS_BYPASS": "1"})
    assert (r.rc, r.stdout) == (2, "")
    assert wrap.run("getent", "group", "idp-data-readers", env={"SLUICE_NSS_BYPASS": "1"}).rc == 2
    assert lines(wrap.run("getent", "passwd", "localuser", env={"SLUICE_NSS_BYPASS": "1"}).check()) == [
        FILES_PASSWD.strip()]
    r = glibc.run("getent", "passwd", "mcp-orders", env={"SLUICE_NSS_BYPASS": "1"})
    assert (r.rc, r.stdout) == (2, "")
    assert glibc.run("getent", "passwd", "mcp-orders").rc == 0


def test_getent_group_by_name_and_gid(wrap):
    assert lines(wrap.getent("group", "idp-data-readers").check()) == [
        "idp-data-readers:x:880001:mcp-billing,mcp-orders,nobody"]
    assert lines(wrap.getent("group", "880002").check()) == ["idp-orders-team:x:880002:mcp-orders"]
    assert lines(wrap.getent("group", "61001").check()) == ["mcp-orders:x:61001:"]
    assert lines(wrap.getent("group", "localgroup").check()) == [FILES_GROUP.strip()]
    assert wrap.getent("group", "data-readers").rc == 2
    assert wrap.getent("group", "880009").rc == 2


def test_getent_enumeration(wrap):
    # files first, then the module in file order.
    assert lines(wrap.getent("passwd").check()) == [FILES_PASSWD.strip()] + PASSWD.splitlines()[1:]
    assert lines(wrap.getent("group").check()) == [FILES_GROUP.strip()] + GROUP.splitlines()[1:]


def test_id_of_a_service_identity(wrap):
    r = wrap.run("id", "mcp-orders").check()
    assert r.stdout.strip() == ("uid=61001(mcp-orders) gid=61001(mcp-orders) "
                                "groups=61001(mcp-orders),880001(idp-data-readers),880002(idp-orders-team)")
    assert wrap.run("id", "-Gn", "mcp-billing").check().stdout.split() == ["mcp-billing", "idp-data-readers"]


def test_big_group_takes_a_retry(wrap, snap):
    """A group bigger than the caller's first buffer: TRYAGAIN/ERANGE, the
    caller retries with a bigger one (nss_wrapper starts at 1000 bytes for
    groups; for passwd it has a fixed buffer and no retry, so big passwd
    entries are tested through glibc below)."""
    members = [f"member{i:03d}" for i in range(350)]          # a line of about 3.8 KB
    snap.publish(group=GROUP + f"idp-big:x:880050:{','.join(members)}\n")
    assert lines(wrap.getent("group", "idp-big").check()) == [f"idp-big:x:880050:{','.join(members)}"]
    assert wrap.getent("group").check().stdout.endswith(f"idp-big:x:880050:{','.join(members)}\n")


def test_missing_snapshot(wrap, snap):
    snap.path("passwd").unlink()
    snap.path("group").unlink()
    assert wrap.getent("passwd", "mcp-orders").rc == 2
    assert wrap.getent("group", "idp-data-readers").rc == 2
    # The local part is untouched and enumeration still ends.
    assert lines(wrap.getent("passwd").check()) == [FILES_PASSWD.strip()]
    assert lines(wrap.getent("group").check()) == [FILES_GROUP.strip()]
    snap.dir.rmdir()
    assert wrap.getent("passwd", "mcp-orders").rc == 2


def test_untrusted_snapshot_ignored(wrap, snap):
    os.chmod(snap.path("passwd"), 0o666)
    os.chmod(snap.path("group"), 0o664)
    assert wrap.getent("passwd", "mcp-orders").rc == 2
    assert wrap.getent("group", "idp-data-readers").rc == 2
    assert lines(wrap.getent("passwd").check()) == [FILES_PASSWD.strip()]
    snap.publish()
    assert wrap.getent("passwd", "mcp-orders").rc == 0
    # A directory anyone may write to.
    os.chmod(snap.dir, 0o777)
    assert wrap.getent("passwd", "mcp-orders").rc == 2
    os.chmod(snap.dir, 0o755)
    # A file of a user who is neither root nor the runtime dir's owner.
    nobody = sf.ensure_account("nobody")
    os.chown(snap.path("passwd"), nobody.uid, nobody.gid)
    assert wrap.getent("passwd", "mcp-orders").rc == 2
    # ... which is fine once that user owns the runtime directory.
    os.chown(snap.run, nobody.uid, nobody.gid)
    assert wrap.getent("passwd", "mcp-orders").rc == 0


def test_bad_lines_skipped(wrap, snap):
    snap.publish(passwd=HDR + "Bad:x:61100:61100::/h:/bin/sh\n"
                 "rootalias:x:0:0::/root:/bin/sh\n"
                 "nopw:secret:61101:61101::/h:/bin/sh\n"
                 "mcp-orders:x:61001:61001:sluice service identity:/nonexistent:/usr/sbin/nologin\n"
                 "cut:x:61102:61102::/nonex",
                 group=HDR + "idp-x:x:880100:ok,+nis\nidp-y:x:880101:ok,Local.User\n")
    assert lines(wrap.getent("passwd").check())[1:] == [
        "mcp-orders:x:61001:61001:sluice service identity:/nonexistent:/usr/sbin/nologin"]
    for name in ("Bad", "rootalias", "nopw", "cut"):
        assert wrap.getent("passwd", name).rc == 2, name
    assert lines(wrap.getent("group").check())[1:] == ["idp-y:x:880101:ok,Local.User"]


# --- glibc's own NSS ----------------------------------------------------------------------

def test_glibc_getent(glibc):
    assert lines(glibc.getent("passwd", "mcp-orders").check()) == [PASSWD.splitlines()[1]]
    assert lines(glibc.getent("passwd", "61002").check()) == [PASSWD.splitlines()[2]]
    assert lines(glibc.getent("group", "880001").check()) == [
        "idp-data-readers:x:880001:mcp-billing,mcp-orders,nobody"]
    # Enumeration: /etc/passwd first (root is there), then the snapshot.
    out = lines(glibc.getent("passwd").check())
    assert out[0].startswith("root:x:0:0:")
    assert out[-2:] == PASSWD.splitlines()[1:]
    assert glibc.getent("passwd", "mcp-nobody").rc == 2
    # "files" wins: a local name is never answered by the module.
    assert lines(glibc.getent("passwd", "root").check())[0].startswith("root:x:0:0:")


def test_glibc_id_uses_initgroups_dyn(glibc):
    """`id NAME` asks getgrouplist, which glibc answers with each module's
    initgroups_dyn: the local account nobody gains the IdP group whose
    member list names it."""
    r = glibc.run("id", "mcp-orders").check()
    assert r.stdout.strip() == ("uid=61001(mcp-orders) gid=61001(mcp-orders) "
                                "groups=61001(mcp-orders),880001(idp-data-readers),880002(idp-orders-team)")
    assert "880001(idp-data-readers)" in glibc.run("id", "nobody").check().stdout


def test_glibc_initgroups_sets_the_kernel_groups(glibc):
    """setpriv --init-groups calls initgroups(3) before exec: the process
    then really holds the groups (id without a name prints getgroups())."""
    r = glibc.run("setpriv", "--reuid=61001", "--regid=61001", "--init-groups", "id").check()
    assert r.stdout.strip() == ("uid=61001(mcp-orders) gid=61001(mcp-orders) "
                                "groups=61001(mcp-orders),880001(idp-data-readers),880002(idp-orders-team)")


def test_glibc_big_entries_take_a_retry(glibc, snap):
    """glibc starts with a 1 KiB buffer and doubles it on ERANGE."""
    members = [f"member{i:03d}" for i in range(350)]
    gecos = "g" * 3000
    snap.publish(passwd=PASSWD + f"bigpw:x:61050:61050:{gecos}:/nonexistent:/usr/sbin/nologin\n",
                 group=GROUP + f"idp-big:x:880050:{','.join(members)}\n")
    assert lines(glibc.getent("group", "idp-big").check()) == [f"idp-big:x:880050:{','.join(members)}"]
    assert glibc.getent("passwd", "bigpw").check().stdout.split(":")[4] == gecos
    assert glibc.getent("passwd", "61050").check().stdout.split(":")[4] == gecos
    assert glibc.getent("passwd").check().stdout.endswith(f":{gecos}:/nonexistent:/usr/sbin/nologin\n")


LOOKER = r"""
import grp, os, pwd, sys
for line in sys.stdin:
    kind, key = line.split()
    try:
        if kind == "pw":
            e = pwd.getpwnam(key)
            print(f"{e.pw_name}:{e.pw_uid}:{e.pw_gecos}")
        elif kind == "gr":
            e = grp.getgrnam(key)
            print(f"{e.gr_name}:{e.gr_gid}:{','.join(e.gr_mem)}")
        else:
            print(",".join(str(g) for g in os.getgrouplist(key, 61001)))
    except KeyError:
        print("-")
    sys.stdout.flush()
"""


def test_glibc_long_lived_process_sees_changes(glibc, snap):
    """One process, the files replaced and removed under it: each answer
    is the current file's (a daemon never needs a restart, and a group a
    session carried is gone as soon as the file says so)."""
    # Python frees little at exit: LeakSanitizer would report the
    # interpreter, not the module (whose leaks the C tests look for).
    cmd = glibc.wrap(["/usr/bin/python3", "-c", LOOKER], env={"ASAN_OPTIONS": "detect_leaks=0"})
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=sf.clean_env())

    def ask(kind: str, key: str) -> str:
        assert p.stdin and p.stdout
        p.stdin.write(f"{kind} {key}\n")
        p.stdin.flush()
        return p.stdout.readline().strip()

    try:
        assert ask("pw", "mcp-orders") == "mcp-orders:61001:sluice service identity"
        assert ask("gl", "mcp-orders") == "61001,880001,880002"
        snap.publish(passwd=PASSWD.replace("sluice service identity", "renamed", 1),
                     group=GROUP.replace("idp-orders-team:x:880002:mcp-orders",
                                         "idp-orders-team:x:880002:"))
        assert ask("pw", "mcp-orders") == "mcp-orders:61001:renamed"
        assert ask("gr", "idp-orders-team") == "idp-orders-team:880002:"
        assert ask("gl", "mcp-orders") == "61001,880001"
        snap.path("group").unlink()
        assert ask("gr", "idp-data-readers") == "-"
        assert ask("gl", "mcp-orders") == "61001"
        snap.publish()
        assert ask("gr", "idp-data-readers") == "idp-data-readers:880001:mcp-billing,mcp-orders,nobody"
    finally:
        assert p.stdin
        p.stdin.close()
        rc = p.wait(timeout=30)
        err = p.stderr.read() if p.stderr else ""
    assert rc == 0, err
    check_sanitizers(sf.Result(rc, "", err), "python3")
