"""sluice benchmark: pgbench -S against direct PostgreSQL, pgbouncer (session
mode) and a sluice grant, in one run, on one throwaway cluster.

Run through bench/run (it installs what is missing and builds first); see
bench/README.md. Everything lives in /tmp/sluice-bench-XXXX and is removed
at the end (--keep keeps it).

Paths measured (all on this machine, loopback only):
  direct         pgbench -> TCP 127.0.0.1 -> postgres            (SCRAM, no TLS)
  pgbouncer      pgbench -> Unix socket -> pgbouncer -> TCP -> postgres
  sluice         pgbench (as the grant's account) -> grant socket -> sluiced -> TCP -> postgres
  sluice-masked  (--masking) as sluice, through a second grant on a connection
                 with a [mask]; measured against sluice on the same queries
  baseline       (--baseline) as sluice, through another tree's sluiced, set up
                 by that tree's own bench.py on a cluster of its own
The proxies get their clients over a Unix socket and reach the server the
same way, so the two proxies are compared like for like.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

SRCDIR = Path(os.environ.get("SLUICE_SRCDIR") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(SRCDIR / "tests" / "integration"))
sys.path.insert(0, str(SRCDIR / "scripts" / "lib"))
import sluice_fixtures as sf  # noqa: E402
import idp_run  # noqa: E402  (the local OIDC provider scripts/demo uses too)

BENCH_USER = "mcp-bench"          # the service account that holds the grant
BENCH_SUBJECT = "bench-workload"  # the OIDC subject bound to it
BENCH_CONNECTION = "bench-pg"
GRANT_TTL = "4h"
GUARDRAIL_BLOCK = ("ddl drop truncate delete-without-where update-without-where copy-program "
                   "role-change admin opaque functions")
TOKEN_TTL = 5 * 3600              # the session (token) outlives the 4 h grant
MODES = ("simple", "extended", "prepared")
TARGETS = ("direct", "pgbouncer", "sluice")
IDLE_CONNECTIONS = 100

# The masked-column workload (--masking, issue 5): the same queries on a
# connection with a [mask] and on one without, through the same agent.
MASKED_CONNECTION = "bench-pg-masked"
MASK_ROWS = 10000
MASK_WORKLOADS = {
    # one row, three columns, one of them masked
    "1 row": f"\\set id random(1, {MASK_ROWS})\nSELECT id, name, ssn FROM bench_people WHERE id = :id;\n",
    # 100 rows: masking rewrites every one
    "100 rows": f"\\set id random(1, {MASK_ROWS - 100})\n"
                "SELECT id, name, ssn FROM bench_people WHERE id BETWEEN :id AND :id + 99;\n",
}
TARGET_MASK_LOSS = 0.10           # masked tps >= 0.90 x unmasked

# The targets this benchmark holds sluice to (issue 2, section 8).
TARGET_VS_PGBOUNCER = 1.0         # sluice tps / pgbouncer tps, every mode
TARGET_VS_DIRECT_SIMPLE = 0.75    # sluice tps / direct tps, simple protocol
TARGET_KIB_PER_IDLE = 64          # agent RSS growth per idle connection


def say(msg: str = "") -> None:
    print(msg, flush=True)


# --- pgbouncer ---------------------------------------------------------------------

class Pgbouncer:
    """pgbouncer (Debian's) in session mode in directory, run by owner. Clients
    authenticate with SCRAM against the broker's stored secret (auth_file);
    pgbouncer reuses the client's SCRAM keys to log in to the server."""

    def __init__(self, directory: Path, owner: sf.Account, pg: sf.PgCluster, pool_size: int):
        self.dir = sf.make_dir(directory, 0o755, owner)
        self.owner = owner
        self.pg = pg
        self.pool_size = pool_size
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None

    @property
    def socket_dir(self) -> Path:
        return self.dir

    def start(self) -> "Pgbouncer":
        self.port = sf.free_port()
        userlist = self.dir / "userlist.txt"
        sf.write_file(userlist, f'"{self.pg.broker_user}" "{self.pg.broker_scram_secret()}"\n', 0o600, self.owner)
        ini = self.dir / "pgbouncer.ini"
        ini.write_text(f"""[databases]
{self.pg.dbname} = host={self.pg.host} port={self.pg.port} dbname={self.pg.dbname}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir = {self.dir}
auth_type = scram-sha-256
auth_file = {userlist}
pool_mode = session
max_client_conn = {IDLE_CONNECTIONS + 100}
default_pool_size = {self.pool_size}
server_tls_sslmode = disable
logfile = {self.dir}/pgbouncer.log
pidfile = {self.dir}/pgbouncer.pid
log_connections = 0
log_disconnections = 0
""")
        os.chmod(ini, 0o644)
        self.proc = subprocess.Popen(sf.as_user_cmd(self.owner.name, ["pgbouncer", str(ini)]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=sf.clean_env(), cwd=str(self.dir))
        sock = self.dir / f".s.PGSQL.{self.port}"
        try:
            sf.wait_for(lambda: sock.is_socket() or self.proc.poll() is not None, 20, "pgbouncer's socket")
        except TimeoutError:
            pass
        if not sock.is_socket():
            log = (self.dir / "pgbouncer.log")
            raise RuntimeError("pgbouncer did not start: " + (log.read_text() if log.exists() else ""))
        return self

    @property
    def pid(self) -> int:
        """pgbouncer's own pid (runuser is its parent)."""
        return int((self.dir / "pgbouncer.pid").read_text().split()[0])

    def stop(self) -> None:
        if self.proc:
            try:
                os.kill(self.pid, 15)
            except (OSError, ValueError):
                pass
            sf.stop_process(self.proc, 10)
            self.proc = None


# --- running pgbench -------------------------------------------------------------------

@dataclass
class Run:
    target: str
    mode: str
    clients: int
    tps: float
    latency_ms: float
    failed: int
    cpu_us: Optional[float] = None  # the proxy's CPU time (all threads) per transaction


@dataclass
class Target:
    """How to point pgbench at one path: as which account, with which
    libpq environment."""
    name: str
    user: Optional[str]
    env: dict
    pid: Optional[int] = None       # the proxy process, whose CPU time is measured
    dbname: Optional[str] = None    # when not the bench cluster's


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, all its threads, in clock ticks."""
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])


def pgbench(target: Target, mode: str, clients: int, seconds: int, dbname: str,
            script: Optional[Path] = None) -> Run:
    threads = min(clients, 2)
    cmd = [str(sf.PG_BIN / "pgbench"), "-n", *(["-f", str(script)] if script else ["-S"]), "-M", mode,
           "-c", str(clients), "-j", str(threads), "-T", str(seconds), target.dbname or dbname]
    ticks = cpu_ticks(target.pid) if target.pid else None
    r = sf.run(cmd, user=target.user, env=target.env, timeout=seconds + 120)
    if ticks is not None:
        ticks = cpu_ticks(target.pid) - ticks
    if r.rc != 0:
        raise RuntimeError(f"pgbench {target.name} {mode} c={clients} failed ({r.rc}):\n{r.stdout}\n{r.stderr}")
    tps = re.search(r"^tps = ([0-9.]+)", r.stdout, re.M)
    lat = re.search(r"^latency average = ([0-9.]+) ms", r.stdout, re.M)
    failed = re.search(r"^number of failed transactions: (\d+)", r.stdout, re.M)
    done = re.search(r"^number of transactions actually processed: (\d+)", r.stdout, re.M)
    if not tps or not lat:
        raise RuntimeError(f"cannot read pgbench output:\n{r.stdout}")
    cpu = (ticks / os.sysconf("SC_CLK_TCK") * 1e6 / int(done.group(1))
           if ticks is not None and done and int(done.group(1)) else None)
    return Run(target.name, mode, clients, float(tps.group(1)), float(lat.group(1)),
               int(failed.group(1)) if failed else 0, cpu)


# --- idle connections and memory ---------------------------------------------------------

HOLD_CONNECTIONS = r"""
import sys, psycopg2
conns = [psycopg2.connect(sys.argv[1]) for _ in range(int(sys.argv[2]))]
for c in conns:
    cur = c.cursor(); cur.execute("select 1"); cur.fetchall(); c.rollback()
print("ready", flush=True)
sys.stdin.readline()
"""


def rss_with_idle_connections(pid_of, user: Optional[str], conninfo: str, env: dict, n: int,
                              pg: sf.PgCluster) -> tuple[int, int]:
    """(RSS KiB before, RSS KiB with n idle connections open) of the process
    pid_of() names; the connections are opened by one psycopg2 process as
    user, each runs one query, and the server must see n more backends (so
    the figure is known to be about connections that went through)."""
    time.sleep(0.5)
    backends = pg.backends()
    before = sf.process_rss_kib(pid_of())
    p = subprocess.Popen(sf.as_user_cmd(user, ["/usr/bin/python3", "-c", HOLD_CONNECTIONS, conninfo, str(n)]),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=sf.clean_env(env), cwd="/")
    try:
        line = p.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"could not open {n} connections: {p.stderr.read()}")
        time.sleep(0.5)
        after = sf.process_rss_kib(pid_of())
        now = pg.backends()
        if now < backends + n:
            raise RuntimeError(f"{n} connections reported open, but the server has {now - backends} more backends")
    finally:
        if p.poll() is None:
            p.stdin.write("\n")
            p.stdin.flush()
        p.wait(timeout=30)
    return before, after


# --- the run -----------------------------------------------------------------------------

@dataclass
class Bench:
    args: argparse.Namespace
    sandbox: Path
    accounts: dict
    pg: Optional[sf.PgCluster] = None
    bouncer: Optional[Pgbouncer] = None
    bus: Optional[sf.Bus] = None
    idp: Optional[object] = None      # idp.IdP, while the session is being opened
    agent: Optional[sf.Agent] = None
    grant: Optional[dict] = None
    targets: dict = field(default_factory=dict)
    runs: list = field(default_factory=list)
    mask_runs: list = field(default_factory=list)
    memory: dict = field(default_factory=dict)
    baseline_proc: Optional[subprocess.Popen] = None
    baseline_info: dict = field(default_factory=dict)

    def setup(self) -> None:
        a = self.args
        # --masking-only reads bench_people alone: no pgbench tables, no pgbouncer.
        say(f"==> PostgreSQL 15 cluster in {self.sandbox}/pg"
            + ("" if a.masking_only else f", pgbench -i -s {a.scale}"))
        self.pg = sf.PgCluster(self.sandbox / "pg", self.accounts[sf.PG_USER], sample_sql=None,
                               settings={"shared_buffers": "256MB", "max_connections": "300"}).start()
        broker = self.pg.broker_env()
        if not a.masking_only:
            sf.run([sf.PG_BIN / "pgbench", "-i", "-q", "-s", str(a.scale), self.pg.dbname], env=broker,
                   timeout=900).check("pgbench -i")
        if a.masking:
            sf.run([sf.PG_BIN / "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", self.pg.dbname, "-c",
                    "CREATE TABLE bench_people (id int PRIMARY KEY, name text NOT NULL, ssn text NOT NULL); "
                    f"INSERT INTO bench_people SELECT i, 'person ' || i, "
                    f"lpad((i % 900 + 100)::text, 3, '0') || '-' || lpad((i % 90 + 10)::text, 2, '0') || '-' "
                    f"|| lpad((i % 9000 + 1000)::text, 4, '0') FROM generate_series(1, {MASK_ROWS}) i; "
                    "ANALYZE bench_people"], env=broker).check("bench_people")
        self.targets["direct"] = Target("direct", None, broker)

        if "pgbouncer" in a.targets and not a.masking_only:
            say("==> pgbouncer (session mode, SCRAM auth_file)")
            # Session mode: every client holds a server connection, the idle
            # ones of the memory measurement included.
            self.bouncer = Pgbouncer(self.sandbox / "pgbouncer", self.accounts[sf.PG_USER], self.pg,
                                     pool_size=max(a.clients, IDLE_CONNECTIONS) + 10).start()
            env = dict(broker, PGHOST=str(self.bouncer.socket_dir), PGPORT=str(self.bouncer.port))
            env.pop("PGSSLMODE", None)
            self.targets["pgbouncer"] = Target("pgbouncer", None, env, pid=self.bouncer.pid)

        if "sluice" in a.targets:
            self.setup_sluice()
        if a.baseline:
            self.setup_baseline()

    def setup_baseline(self) -> None:
        """Another tree's agent, set up by that tree's own bench.py in a
        process of its own (bench/baseline.py), on its own cluster, with
        this run's scale and guardrail choice (baseline.py fails when that
        tree cannot take them)."""
        a = self.args
        src, build = a.baseline
        say(f"==> baseline: {src} (build {build}), set up by its own bench.py")
        cmd = ["/usr/bin/python3", str(SRCDIR / "bench" / "baseline.py"), str(src), str(build),
               "--scale", str(a.scale), *([] if a.guardrails else ["--no-guardrails"])]
        with open(self.sandbox / "baseline.log", "wb") as log:
            self.baseline_proc = subprocess.Popen(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                text=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"), cwd="/")
        line = self.baseline_proc.stdout.readline()
        if not line:
            log = (self.sandbox / "baseline.log").read_text(errors="replace")
            raise RuntimeError(f"the baseline's set-up failed:\n{log[-3000:]}")
        info = json.loads(line)
        self.baseline_info = info
        self.targets["baseline"] = Target("baseline", info["user"], info["env"], pid=info["pid"],
                                          dbname=info["dbname"])
        say(f"    baseline sluiced pid {info['pid']}, guardrails: {info['guardrails']}")

    def setup_sluice(self) -> None:
        builddir = Path(os.environ["SLUICE_BUILDDIR"])
        for p in (builddir / "agent" / "sluiced", builddir / "ctl" / "sluicectl"):
            if not os.access(p, os.X_OK):
                raise SystemExit(f"bench: {p} is not built; run without sluice: --targets direct,pgbouncer")
        say(f"==> sluice: install tree, OIDC provider, private bus, sluiced, a session and a grant for {BENCH_USER}")
        installed = sf.install_tree(builddir, SRCDIR, self.sandbox / "install")
        # The installed copies: the bench account may not reach the build tree.
        sluiced = installed.program("sluiced") or builddir / "agent" / "sluiced"
        ctl = installed.program("sluicectl") or builddir / "ctl" / "sluicectl"
        self.bus = sf.Bus(self.sandbox / "bus", installed.dbus_policy).start()
        agent_acct = self.accounts[sf.AGENT_USER]
        dirs = sf.AgentDirs(self.sandbox / "agent", agent_acct)
        pwfile = self.pg.write_password_file(dirs.credentials / BENCH_CONNECTION, agent_acct)
        # Every grant hangs off a live OIDC session: a local provider (the
        # one scripts/demo runs) issues the bench account's token.
        _, self.idp = idp_run.start(self.sandbox / "idp", [
            {"client_id": BENCH_SUBJECT, "groups": ["bench"], "alg": "RS256", "ttl": TOKEN_TTL}])
        sections = sf.default_sections(self.pg, dirs, pwfile, connection_name=BENCH_CONNECTION)
        sections[0][1]["max_connections_per_grant"] = str(IDLE_CONNECTIONS + 50)
        sections.append(("oidc", dict(self.idp.oidc_keys(leeway="30s"))))
        sections.append((f"identity {BENCH_USER}", {"subject": BENCH_SUBJECT}))
        sections.append(("access bench", {"connection": BENCH_CONNECTION, "allow": BENCH_USER,
                                          "max_ttl": GRANT_TTL}))
        if self.args.masking:
            # The same database again, with its ssn column masked.
            conn = dict(next(kv for h, kv in sections if h == f"connection {BENCH_CONNECTION}"))
            sections.append((f"connection {MASKED_CONNECTION}", conn))
            sections.append(("access bench-masked", {"connection": MASKED_CONNECTION, "allow": BENCH_USER,
                                                     "max_ttl": GRANT_TTL}))
            sections.append((f"mask {MASKED_CONNECTION}", {"public.bench_people.ssn": "last4"}))
            if self.args.guardrails:
                sections.append((f"guardrail {MASKED_CONNECTION}", {"block": GUARDRAIL_BLOCK}))
        if self.args.guardrails:
            # What an operator would write for an agent that may read and
            # write rows: every statement is parsed and decided.
            sections.append((f"guardrail {BENCH_CONNECTION}", {"block": GUARDRAIL_BLOCK}))
        sf.write_file(dirs.config, sf.render_config(sections), 0o644)
        self.agent = sf.Agent(sluiced, ctl, dirs, self.bus).start()
        bench_acct = self.accounts[BENCH_USER]
        home = sf.make_dir(self.sandbox / BENCH_USER, 0o700, bench_acct)
        token_file = self.idp.write_token(home / "token", BENCH_SUBJECT, owner=bench_acct)
        r = self.agent.ctl("--json", "login", "--token-file", str(token_file), user=BENCH_USER)
        r.check(f"sluicectl login as {BENCH_USER}")
        session = json.loads(r.stdout)
        token_file.unlink()
        self.grant = self.agent.request_grant(BENCH_USER, BENCH_CONNECTION, ttl=GRANT_TTL, reason="benchmark")
        # The session was the IdP's whole part: nothing on the data path asks
        # it anything, so it does not take CPU from the runs.
        self.idp.stop()
        self.idp = None
        say(f"    session {session.get('id')} (subject {BENCH_SUBJECT}), "
            f"grant {self.grant.get('id')} at {self.grant['socket_dir']}")
        env = {"PGHOST": self.grant["socket_dir"], "PGPORT": "5432", "PGDATABASE": self.pg.dbname}
        self.targets["sluice"] = Target("sluice", BENCH_USER, env, pid=self.agent.pid)
        if self.args.masking:
            g = self.agent.request_grant(BENCH_USER, MASKED_CONNECTION, ttl=GRANT_TTL, reason="benchmark")
            env = {"PGHOST": g["socket_dir"], "PGPORT": "5432", "PGDATABASE": self.pg.dbname}
            self.targets["sluice-masked"] = Target("sluice-masked", BENCH_USER, env, pid=self.agent.pid)

    def measure_throughput(self) -> None:
        a = self.args
        plan = [(mode, c) for c in (a.clients, 1) for mode in MODES]
        total = len(plan) * len(a.targets) * a.rounds
        say(f"==> pgbench -S: {len(plan)} mode/client sets x {len(a.targets)} targets x {a.rounds} round(s), "
            f"{a.duration}s each (about {total * (a.duration + 1) // 60 + 1} min)")
        n = 0
        for rnd in range(a.rounds):
            for i, (mode, clients) in enumerate(plan):
                # Interleave: every target runs each set back to back, starting
                # with a different one each time, so drift hits all alike.
                order = list(a.targets)
                k = (i + rnd) % len(order)
                for name in order[k:] + order[:k]:
                    n += 1
                    try:
                        run = pgbench(self.targets[name], mode, clients, a.duration, self.pg.dbname)
                    except RuntimeError as e:
                        if name == "sluice" and self.agent:
                            tail = "\n".join(self.agent.log().splitlines()[-15:])
                            raise RuntimeError(f"{e}\n--- sluiced log (last lines) ---\n{tail}") from None
                        raise
                    self.runs.append(run)
                    say(f"    [{n:2}/{total}] {name:9} {mode:8} c={clients:<2} {run.tps:10.0f} tps "
                        f"{run.latency_ms:7.3f} ms" + (f" {run.cpu_us:6.1f} µs CPU/txn" if run.cpu_us else "")
                        + (f"  {run.failed} failed" if run.failed else ""))

    def measure_masking(self) -> None:
        """The masked-column workloads, masked and unmasked interleaved."""
        a = self.args
        scripts = {}
        for name, text in MASK_WORKLOADS.items():
            p = self.sandbox / f"mask-{name.replace(' ', '-')}.sql"
            sf.write_file(p, text, 0o644)
            scripts[name] = p
        plan = [(w, mode) for w in MASK_WORKLOADS for mode in ("simple", "extended")]
        total = len(plan) * 2 * a.rounds
        say(f"==> masking: {len(plan)} workload/mode sets x masked/unmasked x {a.rounds} round(s), "
            f"{a.clients} clients, {a.duration}s each")
        n = 0
        for rnd in range(a.rounds):
            for i, (w, mode) in enumerate(plan):
                order = ["sluice", "sluice-masked"]
                if (i + rnd) % 2:
                    order.reverse()
                for name in order:
                    n += 1
                    run = pgbench(self.targets[name], mode, a.clients, a.duration, self.pg.dbname,
                                  script=scripts[w])
                    run.mode = f"{w}/{mode}"
                    self.mask_runs.append(run)
                    say(f"    [{n:2}/{total}] {name:13} {w:8} {mode:8} {run.tps:10.0f} tps "
                        f"{run.latency_ms:7.3f} ms" + (f" {run.cpu_us:6.1f} µs CPU/txn" if run.cpu_us else "")
                        + (f"  {run.failed} failed" if run.failed else ""))

    def measure_memory(self) -> None:
        say(f"==> RSS with {IDLE_CONNECTIONS} idle connections")
        if self.agent:
            conninfo = f"host={self.grant['socket_dir']} port=5432 dbname={self.pg.dbname}"
            before, after = rss_with_idle_connections(lambda: self.agent.pid, BENCH_USER, conninfo, {},
                                                      IDLE_CONNECTIONS, self.pg)
            self.memory["sluice"] = (before, after)
        if self.bouncer:
            conninfo = f"host={self.bouncer.socket_dir} port={self.bouncer.port} dbname={self.pg.dbname}"
            env = {"PGUSER": self.pg.broker_user, "PGPASSWORD": self.pg.broker_password}
            before, after = rss_with_idle_connections(lambda: self.bouncer.pid, None, conninfo, env,
                                                      IDLE_CONNECTIONS, self.pg)
            self.memory["pgbouncer"] = (before, after)

    def teardown(self) -> None:
        if self.agent:
            was_running = self.agent.running()
            rc = self.agent.stop()
            if not was_running:
                say(f"warning: sluiced had already exited (status {rc}); its log: {self.agent.log_path}")
            elif self.agent.killed or rc != 0:
                say(f"warning: sluiced did not stop cleanly on SIGTERM (status {rc}, "
                    f"{'killed' if self.agent.killed else 'exited'}); its log: {self.agent.log_path}")
        if self.baseline_proc:
            self.baseline_proc.stdin.close()
            try:
                self.baseline_proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.baseline_proc.kill()
        if self.bus:
            self.bus.stop()
        if self.idp:
            self.idp.stop()
        if self.bouncer:
            self.bouncer.stop()
        if self.pg:
            self.pg.stop()


# --- the report ----------------------------------------------------------------------------

def median(runs: list[Run], target: str, mode: str, clients: int, attr: str) -> Optional[float]:
    vals = [getattr(r, attr) for r in runs if (r.target, r.mode, r.clients) == (target, mode, clients)]
    return statistics.median(vals) if vals else None


def verdict(value: Optional[float], ok: bool) -> str:
    return "" if value is None else ("ok" if ok else "MISSED")


def report(b: Bench) -> tuple[str, bool]:
    a = b.args
    lines = []
    all_ok = True
    if "sluice" in a.targets:
        lines += ["sluice guardrails: " + (f"[guardrail] block = {GUARDRAIL_BLOCK}" if a.guardrails
                                          else "none (built-in defaults)"), ""]
    if not a.masking_only:
        table, ok = throughput_table(b)
        lines += table
        all_ok &= ok
    if b.mask_runs:
        table, ok = masking_table(b)
        lines += ([""] if not a.masking_only else []) + table
        all_ok &= ok
    failed = sum(r.failed for r in b.runs + b.mask_runs)
    if failed:
        lines.append(f"pgbench reported {failed} failed transactions in total")
        all_ok = False
    return "\n".join(lines), all_ok


def throughput_table(b: Bench) -> tuple[list[str], bool]:
    """pgbench -S on every path, the ratios against the targets, the CPU
    table, the baseline's and the memory lines."""
    a = b.args
    lines = []
    all_ok = True
    have = [t for t in TARGETS if t in a.targets]
    head = "| mode | clients | " + " | ".join(f"{t} tps (ms)" for t in have)
    if "sluice" in have:
        head += " | sluice/pgbouncer (target ≥ 1.00) | sluice/direct"
    ncols = 2 + len(have) + (2 if "sluice" in have else 0)
    lines += [head + " |", "|" + "---|" * ncols]
    for clients in (a.clients, 1):
        for mode in MODES:
            cells = []
            tps = {}
            for t in have:
                v = median(b.runs, t, mode, clients, "tps")
                lat = median(b.runs, t, mode, clients, "latency_ms")
                tps[t] = v
                cells.append("-" if v is None else f"{v:,.0f} ({lat:.3f})")
            if "sluice" in have:
                s, p, d = tps.get("sluice"), tps.get("pgbouncer"), tps.get("direct")
                rp = s / p if s and p else None
                rd = s / d if s and d else None
                ok_p = rp is not None and rp >= TARGET_VS_PGBOUNCER
                cells.append("-" if rp is None else f"{rp:.2f}× {verdict(rp, ok_p)}")
                dtxt = "-" if rd is None else f"{rd:.2f}×"
                if mode == "simple" and rd is not None:
                    ok_d = rd >= TARGET_VS_DIRECT_SIMPLE
                    dtxt += f" (target ≥ {TARGET_VS_DIRECT_SIMPLE:.2f}) {verdict(rd, ok_d)}"
                    all_ok &= ok_d
                cells.append(dtxt)
                if rp is not None:
                    all_ok &= ok_p
            lines.append(f"| {mode} | {clients} | " + " | ".join(cells) + " |")
    lines += [""] + cpu_table(b)
    if "baseline" in a.targets:
        lines += [""] + baseline_table(b)
    lines.append("")
    for name, (before, after) in b.memory.items():
        per = (after - before) / IDLE_CONNECTIONS
        line = (f"{name}: RSS {before} KiB idle, {after} KiB with {IDLE_CONNECTIONS} idle connections "
                f"-> {per:.1f} KiB per connection")
        if name == "sluice":
            ok = per <= TARGET_KIB_PER_IDLE
            all_ok &= ok
            line += f" (target ≤ {TARGET_KIB_PER_IDLE} KiB) {verdict(per, ok)}"
        lines.append(line)
    return lines, all_ok


def masking_table(b: Bench) -> tuple[list[str], bool]:
    """Masked against unmasked, tps and the agent's CPU per transaction."""
    a = b.args
    all_ok = True
    lines = ["Masked-column workload: public.bench_people.ssn = last4 on one connection, none on the "
             "other; the same agent, queries and guardrail. CPU: sluiced's, µs per transaction "
             "(user + system, all threads; median).", "",
             f"| workload | mode | unmasked tps (ms) | masked tps (ms) | masked/unmasked (target ≥ "
             f"{1 - TARGET_MASK_LOSS:.2f}) | unmasked CPU | masked CPU |", "|---|---|---|---|---|---|---|"]
    for w in MASK_WORKLOADS:
        for mode in ("simple", "extended"):
            key = f"{w}/{mode}"
            u = median(b.mask_runs, "sluice", key, a.clients, "tps")
            m = median(b.mask_runs, "sluice-masked", key, a.clients, "tps")
            ul = median(b.mask_runs, "sluice", key, a.clients, "latency_ms")
            ml = median(b.mask_runs, "sluice-masked", key, a.clients, "latency_ms")
            cpu = [median([r for r in b.mask_runs if r.cpu_us is not None], t, key, a.clients, "cpu_us")
                   for t in ("sluice", "sluice-masked")]
            r = m / u if m and u else None
            ok = r is not None and r >= 1 - TARGET_MASK_LOSS
            all_ok &= ok
            lines.append(f"| {w} | {mode} | {u:,.0f} ({ul:.3f}) | {m:,.0f} ({ml:.3f}) | "
                         f"{'-' if r is None else f'{r:.2f}×'} {verdict(r, ok)} | "
                         + " | ".join("-" if c is None else f"{c:.1f}" for c in cpu) + " |")
    return lines, all_ok


def cpu_table(b: Bench) -> list[str]:
    """The proxies' own CPU time per transaction (all threads: for sluiced
    the proxy thread and the audit writer), steadier than tps on a noisy
    machine; what it does not show is the kernel time of the processes it
    wakes."""
    names = [t for t in ("pgbouncer", "sluice", "baseline") if t in b.args.targets]
    if not names:
        return []
    lines = ["Proxy CPU time per transaction, µs (user + system, all threads; median):", "",
             "| mode | clients | " + " | ".join(names) + " |", "|" + "---|" * (2 + len(names))]
    for clients in (b.args.clients, 1):
        for mode in MODES:
            cells = []
            for t in names:
                v = median([r for r in b.runs if r.cpu_us is not None], t, mode, clients, "cpu_us")
                cells.append("-" if v is None else f"{v:.1f}")
            lines.append(f"| {mode} | {clients} | " + " | ".join(cells) + " |")
    return lines


def baseline_table(b: Bench) -> list[str]:
    """This tree against the baseline tree, each against the same pgbouncer."""
    src, build = b.args.baseline
    lines = [f"Baseline: {src} (build {build}); its guardrails: {b.baseline_info.get('guardrails', '?')}", "",
             "| mode | clients | baseline tps (ms) | baseline/pgbouncer | sluice/pgbouncer | sluice/baseline |",
             "|---|---|---|---|---|---|"]
    for clients in (b.args.clients, 1):
        for mode in MODES:
            v = {t: median(b.runs, t, mode, clients, "tps") for t in ("baseline", "sluice", "pgbouncer")}
            lat = median(b.runs, "baseline", mode, clients, "latency_ms")

            def ratio(x: str, y: str) -> str:
                return f"{v[x] / v[y]:.2f}×" if v.get(x) and v.get(y) else "-"
            base = "-" if v["baseline"] is None else f"{v['baseline']:,.0f} ({lat:.3f})"
            lines.append(f"| {mode} | {clients} | {base} | {ratio('baseline', 'pgbouncer')} | "
                         f"{ratio('sluice', 'pgbouncer')} | {ratio('sluice', 'baseline')} |")
    return lines


def machine_line() -> str:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    pgv = sf.run([sf.PG_BIN / "postgres", "--version"]).stdout.strip()
    bv = sf.run(["pgbouncer", "--version"]).stdout.splitlines()
    return f"{os.cpu_count()} CPUs ({cpu}); {pgv}; {bv[0] if bv else 'pgbouncer ?'}"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="5 s per run instead of 15 s")
    p.add_argument("--duration", type=int, help="seconds per pgbench run (default 15, --quick 5)")
    p.add_argument("--rounds", type=int, default=1, help="repeat every run this often; the table shows medians")
    p.add_argument("--clients", type=int, default=8, help="clients of the throughput runs (which also run with 1) and of the masking runs (default 8)")
    p.add_argument("--scale", type=int, default=10, help="pgbench -i scale (default 10; the baseline's too)")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help="comma-separated subset of direct,pgbouncer,sluice (default all)")
    p.add_argument("--json", type=Path, help="also write every run's figures to this file")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--masking", action="store_true",
                   help="also run the masked-column workload (sluice with and without a [mask]); needs sluice")
    p.add_argument("--masking-only", action="store_true",
                   help="only the masked-column workload (implies --masking)")
    p.add_argument("--baseline", metavar="SRC[:BUILD]",
                   help="also measure another tree's sluice (say, an older commit's worktree), set up by that "
                        "tree's own bench.py, interleaved with the rest; BUILD defaults to SRC/_build/default")
    p.add_argument("--no-guardrails", dest="guardrails", action="store_false",
                   help="run sluice without a [guardrail] section (the built-in defaults still parse every statement); "
                        "the baseline too")
    a = p.parse_args(argv)
    a.duration = a.duration or (5 if a.quick else 15)
    a.targets = [t for t in a.targets.split(",") if t]
    bad = [t for t in a.targets if t not in TARGETS]
    if bad or "direct" not in a.targets:
        p.error("--targets: a subset of direct,pgbouncer,sluice that includes direct")
    a.targets = [t for t in TARGETS if t in a.targets]
    if a.baseline:
        src, _, build = a.baseline.partition(":")
        src = Path(src).resolve()
        build = Path(build).resolve() if build else src / "_build" / "default"
        if not (src / "bench" / "bench.py").is_file() or not os.access(build / "agent" / "sluiced", os.X_OK):
            p.error(f"--baseline: need {src}/bench/bench.py and a built {build}/agent/sluiced")
        if "sluice" not in a.targets or a.masking_only:
            p.error("--baseline compares with sluice: keep sluice among --targets, without --masking-only")
        a.baseline = (src, build)
        a.targets.append("baseline")
    a.masking = a.masking or a.masking_only
    if a.masking and "sluice" not in a.targets:
        p.error("--masking needs sluice among --targets")
    if a.duration < 1 or a.rounds < 1 or a.clients < 1 or a.scale < 1:
        p.error("--duration, --rounds, --clients and --scale must be positive")
    return a


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sf.require_root()
    if "sluice" in args.targets:
        builddir = Path(os.environ.get("SLUICE_BUILDDIR", SRCDIR / "_build" / "default"))
        os.environ["SLUICE_BUILDDIR"] = str(builddir)
        if not os.access(builddir / "agent" / "sluiced", os.X_OK):
            raise SystemExit(f"bench: {builddir}/agent/sluiced is not built; "
                             "to measure without sluice: --targets direct,pgbouncer")
        why = idp_run.idp_mod.unavailable()
        if why:
            raise SystemExit(f"bench: sluice grants need a session, and so the local OIDC provider: {why}; "
                             "to measure without sluice: --targets direct,pgbouncer")
    accounts = sf.ensure_accounts((sf.AGENT_USER, sf.PG_USER, BENCH_USER))
    sandbox = sf.new_sandbox("sluice-bench-")
    b = Bench(args, sandbox, accounts)
    started = time.time()
    try:
        b.setup()
        # Memory first, on fresh processes: after the throughput runs the
        # allocator keeps what 8 busy clients used, which would hide the cost
        # of an idle connection.
        if not args.masking_only:
            b.measure_memory()
            b.measure_throughput()
        if args.masking:
            b.measure_masking()
    finally:
        b.teardown()
        if args.keep:
            say(f"kept {sandbox}")
        else:
            shutil.rmtree(sandbox, ignore_errors=True)
    table, ok = report(b)
    say("")
    say(f"## sluice benchmark, {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}")
    what = "masked-column workload only" if args.masking_only else f"pgbench -S, scale {args.scale}"
    say(f"{machine_line()}; {what}, {args.duration} s per run, "
        f"{args.rounds} round(s), -j 2 for {args.clients} clients")
    say("")
    say(table)
    if "sluice" not in args.targets:
        say("\nsluice not measured (--targets); targets not judged.")
    else:
        say("\nall targets met" if ok else "\nsome targets MISSED: profile and say where the time goes (bench/README.md)")
    if args.json:
        args.json.write_text(json.dumps({"started": started, "args": {k: (str(v) if isinstance(v, (Path, tuple)) else v)
                                                                    for k, v in vars(args).items()},
                                         "runs": [vars(r) for r in b.runs],
                                         "masking_runs": [vars(r) for r in b.mask_runs],
                                         "memory_kib": b.memory}, indent=2))
        say(f"figures written to {args.json}")
    return 0 if ok or "sluice" not in args.targets else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
