"""The NSS snapshot sluiced publishes for libnss_sluice (<runtime_dir>/nss/
passwd and group): written by the real agent at start, on reload and at
every session open, refresh and close, with real sessions from the real
IdP; gids kept in the session database across restarts; claims that make
no group name, and names or gids the host already has, left out and
recorded; a service identity that shadows /etc/passwd refused as a config
error. When libnss_sluice is built, the same is checked through the module
itself with nss_wrapper and getent."""
from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

import sluice_fixtures as sf
from conftest import AGENT_USER, BUILDDIR, SERVICE_A, SERVICE_B, AgentStartError

HEADER = "# sluice nss snapshot v1"
ISSUER_CLIENT = "sluicet-es"  # the IdP client whose claims forged tokens start from


def free_ids(n: int, start: int = 61100) -> list[int]:
    """n ids that neither /etc/passwd nor /etc/group has (read directly)."""
    used = {e.pw_uid for e in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()}
    out, i = [], start
    while len(out) < n:
        if i not in used:
            out.append(i)
        i += 1
    return out


def nss_dir(a) -> Path:
    return a.runtime_dir / "nss"


def lines(a, name: str) -> list[str]:
    text = (nss_dir(a) / name).read_text()
    assert text.endswith("\n"), text
    out = text.splitlines()
    assert out[0] == HEADER, text
    return out[1:]


def groups(a) -> dict[str, tuple[int, list[str]]]:
    """The group file: name -> (gid, members)."""
    out = {}
    for line in lines(a, "group"):
        name, x, gid, members = line.split(":")
        assert x == "x" and name not in out, line
        out[name] = (int(gid), members.split(",") if members else [])
    return out


def token(a, subject: str, groups_: list[str]) -> str:
    """A token for subject carrying groups_, signed with the IdP's real key."""
    now = int(time.time())
    return a.idp.forge({}, a.idp.claims(ISSUER_CLIENT, sub=subject, groups=groups_, iat=now,
                                        exp=now + 600))


def events(a, kind: str) -> list[str]:
    db = sqlite3.connect(f"file:{a.database}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("select detail from events where kind = ? order by id", (kind,))]
    finally:
        db.close()


def wait_events(a, kind: str, n: int = 1, timeout: float = 10) -> list[str]:
    """The events of kind once there are n (the writer commits in batches)."""
    deadline = time.monotonic() + timeout
    while True:
        ev = events(a, kind)
        if len(ev) >= n or time.monotonic() > deadline:
            return ev
        time.sleep(0.05)


def settled_events(a, kind: str) -> list[str]:
    """The events of kind once the writer has caught up: a reload's
    config.reloaded, queued after them, has arrived."""
    n = len(events(a, "config.reloaded"))
    a.ctl("reload").check()
    assert len(wait_events(a, "config.reloaded", n + 1)) == n + 1
    return events(a, kind)


def nss_gid_rows(a) -> dict[str, int]:
    db = sqlite3.connect(f"file:{a.database}?mode=ro", uri=True)
    try:
        return dict(db.execute("select name, gid from nss_groups"))
    finally:
        db.close()


def identities(ids: list[int], homes=None) -> list[tuple[str, dict]]:
    homes = homes or {}
    return [(f"identity svc-nss{i + 1}", {"subject": f"svc-nss{i + 1}-sub", "uid": str(uid),
                                          "home": homes.get(i)})
            for i, uid in enumerate(ids)]


@pytest.fixture
def ids():
    return free_ids(3)


# --- what is published -----------------------------------------------------------

def test_files_content_and_modes(agent_factory, ids, accounts):
    lo = free_ids(1, 880000)[0]
    assert free_ids(2, lo) == [lo, lo + 1]
    a = agent_factory(sections=identities(ids[:2], {0: "/srv/svc-nss1"}) +
                      [("nss", {"gid_range": f"{lo}-{lo + 99}"})])
    d = nss_dir(a)
    agent_uid = accounts[AGENT_USER].uid
    st = d.stat()
    assert (st.st_mode & 0o7777, st.st_uid) == (0o755, agent_uid)
    for name in ("passwd", "group"):
        st = (d / name).stat()
        assert (st.st_mode & 0o7777, st.st_uid) == (0o644, agent_uid), name
    assert sorted(os.listdir(d)) == ["group", "passwd"]  # no temporary file left

    assert lines(a, "passwd") == [
        f"svc-nss1:x:{ids[0]}:{ids[0]}:sluice service identity:/srv/svc-nss1:/usr/sbin/nologin",
        f"svc-nss2:x:{ids[1]}:{ids[1]}:sluice service identity:/nonexistent:/usr/sbin/nologin",
    ]
    # The identities' own groups first, then the live sessions' IdP groups
    # (sluicet-a: data-readers, orders-team; sluicet-b: data-readers).
    g = lines(a, "group")
    assert g[:2] == [f"svc-nss1:x:{ids[0]}:", f"svc-nss2:x:{ids[1]}:"]
    gs = groups(a)
    assert list(gs)[2:] == ["idp-data-readers", "idp-orders-team"]
    assert gs["idp-data-readers"][1] == [SERVICE_A, SERVICE_B]
    assert gs["idp-orders-team"][1] == [SERVICE_A]
    gids = {gs["idp-data-readers"][0], gs["idp-orders-team"][0]}
    assert gids == {lo, lo + 1}
    assert nss_gid_rows(a) == {"idp-data-readers": gs["idp-data-readers"][0],
                               "idp-orders-team": gs["idp-orders-team"][0]}
    added = wait_events(a, "nss.group_added", 2)
    assert any(f"idp-data-readers is gid {gs['idp-data-readers'][0]}" in e for e in added), added


def test_a_sessions_groups_appear_and_vanish(agent_factory, ids):
    a = agent_factory(sessions=(), sections=identities(ids[:1]))
    assert list(groups(a)) == ["svc-nss1"]
    s1 = a.open_session("svc-nss1", token(a, "svc-nss1-sub", ["ml-team", "data-readers"]))
    # Published before OpenSession answered.
    gs = groups(a)
    assert list(gs) == ["svc-nss1", "idp-data-readers", "idp-ml-team"]
    assert gs["idp-ml-team"][1] == ["svc-nss1"]

    # A second session of the same account: listed once; another account:
    # members sorted.
    s2 = a.open_session("svc-nss1", token(a, "svc-nss1-sub", ["ml-team"]))
    sa = a.open_session(SERVICE_A)
    gs = groups(a)
    assert gs["idp-ml-team"][1] == ["svc-nss1"]
    assert gs["idp-data-readers"][1] == [SERVICE_A, "svc-nss1"]
    ml_gid = gs["idp-ml-team"][0]

    # Closing: a group stays while any session carries it.
    assert a.close_session(s1["id"]).rc == 0
    gs = groups(a)
    assert gs["idp-data-readers"][1] == [SERVICE_A]
    assert gs["idp-ml-team"] == (ml_gid, ["svc-nss1"])
    assert a.close_session(s2["id"]).rc == 0
    assert "idp-ml-team" not in groups(a)

    # A refresh with a token carrying other groups moves the account.
    s3 = a.open_session("svc-nss1", token(a, "svc-nss1-sub", ["ml-team"]))
    r = a.bus.call(sf.BUS_NAME, "/org/sluice/Agent1", "org.sluice.Agent1.RefreshSession",
                   f"string:{s3['id']}", f"string:{token(a, 'svc-nss1-sub', ['ops-team'])}")
    assert r.rc == 0, r.stderr
    gs = groups(a)
    assert "idp-ml-team" not in gs and gs["idp-ops-team"][1] == ["svc-nss1"]

    # The last session gone: only the identity's own group is left.
    assert a.close_session(s3["id"]).rc == 0
    assert a.close_session(sa["id"]).rc == 0
    assert list(groups(a)) == ["svc-nss1"]
    # The passwd entry is not a session's: it stays.
    assert [line.split(":")[0] for line in lines(a, "passwd")] == ["svc-nss1"]


def test_unchanged_text_is_not_rewritten(agent_factory, ids):
    a = agent_factory(sessions=(), sections=identities(ids[:1]))
    ino = {n: (nss_dir(a) / n).stat().st_ino for n in ("passwd", "group")}
    s = a.open_session(SERVICE_B)
    assert (nss_dir(a) / "passwd").stat().st_ino == ino["passwd"]
    assert (nss_dir(a) / "group").stat().st_ino != ino["group"]
    ino["group"] = (nss_dir(a) / "group").stat().st_ino
    # Same groups again (another session of the same account): same text.
    a.open_session(SERVICE_B)
    assert (nss_dir(a) / "group").stat().st_ino == ino["group"]
    assert a.close_session(s["id"]).rc == 0
    assert (nss_dir(a) / "group").stat().st_ino == ino["group"]


def test_gids_stable_across_restart_and_never_reused(agent_factory, ids):
    lo = free_ids(1, 881000)[0]
    a = agent_factory(sections=identities(ids[:1]) + [("nss", {"gid_range": f"{lo}-{lo + 99}"})])
    before = {n: g for n, (g, _) in groups(a).items() if n.startswith("idp-")}
    assert set(before) == {"idp-data-readers", "idp-orders-team"}
    assert a.stop() == 0
    # At shutdown the sessions ended, and their groups left the snapshot.
    assert list(groups(a)) == ["svc-nss1"]

    # The same database, the sessions in the other order: the same gids.
    a.auto_sessions = (SERVICE_B, SERVICE_A)
    a.start()
    after = {n: g for n, (g, _) in groups(a).items() if n.startswith("idp-")}
    assert after == before

    # Groups no longer seen keep their gids: a new name never gets one.
    for sid in a.sessions.values():
        assert a.close_session(sid).rc == 0
    a.open_session("svc-nss1", token(a, "svc-nss1-sub", ["new-team"]))
    new = groups(a)["idp-new-team"][0]
    assert new not in before.values() and lo <= new <= lo + 99
    rows = nss_gid_rows(a)
    assert rows == {**before, "idp-new-team": new}


def test_invalid_names_are_left_out_and_recorded_once(agent_factory, ids):
    a = agent_factory(sessions=(), sections=identities(ids[:1]))
    bad = ["Admins", "a b", "x" * 40, "cn=ops,ou=groups", "caf\u00e9", "a:b"]
    tok = token(a, "svc-nss1-sub", bad + ["ok-team"])
    a.open_session("svc-nss1", tok)
    assert list(groups(a)) == ["svc-nss1", "idp-ok-team"]
    skipped = wait_events(a, "nss.group_skipped", len(bad))
    for claim in bad:
        assert sum(f'IdP group "{claim}" is not published' in e for e in skipped) == 1, (claim, skipped)
    assert all("not a valid group name" in e for e in skipped)
    # Another session with the same claims, a reload: nothing new recorded.
    a.open_session("svc-nss1", token(a, "svc-nss1-sub", bad))
    assert len(settled_events(a, "nss.group_skipped")) == len(bad)
    assert list(groups(a)) == ["svc-nss1", "idp-ok-team"]


def test_reload_rewrites(agent_factory, ids):
    a = agent_factory(sessions=(), sections=identities(ids[:1]))
    (nss_dir(a) / "group").unlink()
    text = a.config_path.read_text()
    text += f"\n[identity svc-nss2]\nsubject = svc-nss2-sub\nuid = {ids[1]}\nhome = /srv/two\n"
    text += "\n[nss]\ngroup_prefix = corp-\n"
    a.write_config(text)
    a.ctl("reload").check()
    assert lines(a, "passwd")[1] == \
        f"svc-nss2:x:{ids[1]}:{ids[1]}:sluice service identity:/srv/two:/usr/sbin/nologin"
    assert list(groups(a)) == ["svc-nss1", "svc-nss2"]  # written again, though deleted
    a.open_session(SERVICE_B)
    assert list(groups(a)) == ["svc-nss1", "svc-nss2", "corp-data-readers"]


# --- the host's accounts and groups ------------------------------------------------

@pytest.fixture
def host():
    """host.group(name, gid) / host.user(name, uid): a local group or
    account (groupadd / useradd) for the test, removed after it."""
    class Host:
        made: list[list[str]] = []

        def group(self, name: str, gid: int) -> None:
            sf.run(["groupadd", "-g", str(gid), name]).check(f"groupadd {name}")
            self.made.append(["groupdel", name])

        def user(self, name: str, uid: int) -> None:
            sf.run(["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", "-u", str(uid), name]).check(
                f"useradd {name}")
            self.made.append(["userdel", name])

    h = Host()
    yield h
    for cmd in reversed(h.made):
        sf.run(cmd)


def test_shadowing_etc_passwd_is_a_config_error(agent_factory, ids, host):
    host.user("sluicet-nss-local", ids[2])
    cases = [
        # a local account's name
        (f"[identity {sf.PG_USER}]\nsubject = x\nuid = {ids[0]}\n",
         rf"sluice\.conf:\d+: \[identity {sf.PG_USER}\] has uid = for NSS, but /etc/passwd already has account"),
        # a local account's uid
        (f"[identity svc-nss9]\nsubject = y\nuid = {ids[2]}\n",
         rf"sluice\.conf:\d+: uid {ids[2]} of \[identity svc-nss9\] belongs to sluicet-nss-local in /etc/passwd"),
    ]
    for raw, want in cases:
        a = agent_factory(raw=raw, start=False)
        with pytest.raises(AgentStartError) as e:
            a.start()
        assert re.search(want, e.value.log), e.value.log
        r = a.ctl("policy", "check")
        assert r.rc != 0 and re.search(want, r.stderr), r

    # On reload it is refused too, and the running configuration stays.
    a = agent_factory(sessions=(), sections=identities(ids[:1]))
    good = a.config_path.read_text()
    a.write_config(good + f"\n[identity {sf.PG_USER}]\nsubject = x\nuid = {ids[1]}\n")
    r = a.ctl("reload")
    assert r.rc != 0 and re.search(cases[0][1], r.stderr), r
    assert [line.split(":")[0] for line in lines(a, "passwd")] == ["svc-nss1"]


def test_names_and_gids_the_host_has_are_left_out(agent_factory, ids, host):
    lo = free_ids(1, 882000)[0]
    gids = free_ids(3, lo)
    assert gids == [lo, lo + 1, lo + 2]
    host.group("sluicet-nss-taken", lo)
    # An IdP group named like a local group; the range's first gid is a
    # local group's.
    a = agent_factory(sessions=(), sections=identities(ids[:1]) +
                      [("nss", {"group_prefix": "sluicet-", "gid_range": f"{lo}-{lo + 9}"})])
    a.open_session("svc-nss1", token(a, "svc-nss1-sub", ["nss-taken", "first", "second"]))
    gs = groups(a)
    assert list(gs) == ["svc-nss1", "sluicet-first", "sluicet-second"]
    assert gs["sluicet-first"][0] == gids[1] and gs["sluicet-second"][0] == gids[2]
    skipped = wait_events(a, "nss.group_skipped")
    assert any("sluicet-nss-taken is not published: /etc/group has group sluicet-nss-taken" in e
               for e in skipped), skipped

    # A local group made later with a gid already given out: that IdP group
    # leaves the snapshot at the next publish (/etc/group is re-read).
    host.group("sluicet-nss-late", gids[2])
    a.open_session("svc-nss1", token(a, "svc-nss1-sub", ["first"]))
    assert list(groups(a)) == ["svc-nss1", "sluicet-first"]
    skipped = wait_events(a, "nss.group_skipped", 2)
    assert any(f"sluicet-second is not published: its gid {gids[2]} belongs to group sluicet-nss-late" in e
               for e in skipped), skipped


def test_gid_range_exhausted(agent_factory, ids):
    lo = free_ids(1, 883000)[0]
    assert free_ids(2, lo) == [lo, lo + 1]
    a = agent_factory(sessions=(), sections=identities(ids[:1]) +
                      [("nss", {"gid_range": f"{lo}-{lo + 1}"})])
    a.open_session("svc-nss1", token(a, "svc-nss1-sub", ["g1", "g2", "g3"]))
    gs = groups(a)
    assert list(gs) == ["svc-nss1", "idp-g1", "idp-g2"]
    assert any("idp-g3 is not published: gid_range" in e and "no free gid left" in e
               for e in wait_events(a, "nss.group_skipped")), events(a, "nss.group_skipped")


# --- through libnss_sluice ---------------------------------------------------------

def nss_module():
    """The built libnss_sluice.so.2, or None."""
    if BUILDDIR is None:
        return None
    for rel in ("nss/.libs/libnss_sluice.so.2", "nss/libnss_sluice.so.2"):
        p = BUILDDIR / rel
        if p.is_file():
            return p
    return None


NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"


def sanitizer_runtime(lib: Path) -> list[str]:
    """The ASan runtime a sanitizer build's module needs loaded first."""
    r = sf.run(["ldd", str(lib)])
    return re.findall(r"=> (\S*libasan\.so\S*)", r.stdout)


def getent(a, tmp: Path, db: str, key: str) -> sf.Result:
    """getent db key through libnss_sluice under nss_wrapper (the host's
    own files copied, so only the module can answer for sluice's names)."""
    shutil.copy("/etc/passwd", tmp / "passwd")
    shutil.copy("/etc/group", tmp / "group")
    preload = ":".join(sanitizer_runtime(nss_module()) + [NSS_WRAPPER])
    env = {"LD_PRELOAD": preload, "ASAN_OPTIONS": "detect_leaks=0", "NSS_WRAPPER_PASSWD": str(tmp / "passwd"),
           "NSS_WRAPPER_GROUP": str(tmp / "group"), "NSS_WRAPPER_MODULE_SO_PATH": str(nss_module()),
           "NSS_WRAPPER_MODULE_FN_PREFIX": "sluice", "SLUICE_NSS_DIR": str(nss_dir(a))}
    return sf.run(["getent", db, key], env=env)


def test_through_the_module(agent_factory, ids, tmp_path):
    if nss_module() is None:
        pytest.skip("libnss_sluice is not built in SLUICE_BUILDDIR")
    if not os.path.exists(NSS_WRAPPER):
        pytest.skip("nss_wrapper is not installed")
    a = agent_factory(sessions=(), sections=identities(ids[:1]))
    r = getent(a, tmp_path, "passwd", "svc-nss1")
    assert r.rc == 0 and r.stdout.startswith(f"svc-nss1:x:{ids[0]}:{ids[0]}:"), r
    assert getent(a, tmp_path, "group", "idp-nss-probe").rc == 2
    s = a.open_session("svc-nss1", token(a, "svc-nss1-sub", ["nss-probe"]))
    r = getent(a, tmp_path, "group", "idp-nss-probe")
    assert r.rc == 0, r
    name, _, gid, members = r.stdout.strip().split(":")
    assert (name, members) == ("idp-nss-probe", "svc-nss1")
    assert getent(a, tmp_path, "group", gid).stdout == r.stdout
    assert a.close_session(s["id"]).rc == 0
    assert getent(a, tmp_path, "group", "idp-nss-probe").rc == 2
    assert getent(a, tmp_path, "group", gid).rc == 2
