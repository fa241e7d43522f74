"""Real components for sluice's integration tests and benchmark.

Plain Python (no pytest here): conftest.py turns these into fixtures and
bench/bench.py uses them directly. Everything runs as root, because it
creates system accounts, runs commands as other users and starts sluiced,
which drops to its own account.

    ensure_accounts()          the accounts tests use (created when missing)
    TestCA                     a throwaway CA and server certificates (openssl CLI)
    PgCluster                  a throwaway PostgreSQL 15 cluster
    install_tree()             `make install DESTDIR=...` of the build
    Bus                        a private system-like dbus-daemon
    AgentConfig / Agent        a sluice.conf and a running sluiced
    run / run_as / sluicectl / psql_as   commands, as root or as an account

Nothing here prints a secret: the broker password lives in PgCluster and in
files of mode 0600.
"""
from __future__ import annotations

import os
import pwd
import secrets
import select
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, NamedTuple, Optional, Sequence

PG_BIN = Path(os.environ.get("SLUICE_PG_BIN", "/usr/lib/postgresql/15/bin"))

# Accounts. The agent's account is fixed by the D-Bus policy ("sluice").
AGENT_USER = "sluice"
SERVICE_A = "sluicet-a"   # a service account the default test policy allows
SERVICE_B = "sluicet-b"   # a service account the default test policy does not
PG_USER = "sluicet-pg"    # runs the throwaway PostgreSQL clusters and pgbouncer
TEST_ACCOUNTS = (AGENT_USER, SERVICE_A, SERVICE_B, PG_USER)

BUS_NAME = "org.sluice.Agent1"
BROKER_ROLE = "sluice_broker"
SAMPLE_DB = "orders"
CONNECTION_NAME = "orders-pg"

# A little data the scenario tests can count on: schema ops, owned by the
# broker role.
SAMPLE_SQL = """
CREATE SCHEMA ops;
CREATE TABLE ops.customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email text,
    ssn text
);
CREATE TABLE ops.orders (
    id integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES ops.customers,
    total numeric(10,2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT '2026-01-02 03:04:05+00'
);
INSERT INTO ops.customers VALUES
    (1, 'Ada Lovelace', 'ada@example.com', '123-45-6789'),
    (2, 'Grace Hopper', 'grace@example.com', '987-65-4321'),
    (3, 'Edsger Dijkstra', 'edsger@example.com', '555-12-3456');
INSERT INTO ops.orders (id, customer_id, total) VALUES
    (1, 1, 10.50), (2, 1, 99.99), (3, 2, 5.00), (4, 3, 42.00), (5, 3, 7.25);
"""
SAMPLE_CUSTOMERS = 3
SAMPLE_ORDERS = 5


class Result(NamedTuple):
    """What a command did: unpacks as (rc, stdout, stderr)."""
    rc: int
    stdout: str
    stderr: str

    def check(self, what: str = "command") -> "Result":
        """Raise CommandFailed unless rc == 0; returns self for chaining."""
        if self.rc != 0:
            raise CommandFailed(f"{what} exited {self.rc}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}")
        return self


class CommandFailed(RuntimeError):
    pass


class AgentStartError(RuntimeError):
    """sluiced exited (or never took its bus name) during start. .log holds its stderr."""

    def __init__(self, message: str, log: str, returncode: Optional[int]):
        super().__init__(f"{message}\n--- sluiced log ---\n{log}")
        self.log = log
        self.returncode = returncode


def require_root() -> None:
    if os.geteuid() != 0:
        raise PermissionError("sluice integration tests run as root (they create accounts and start sluiced)")


# --- accounts ----------------------------------------------------------------

@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int


def ensure_account(name: str) -> Account:
    """The system account name, created (useradd --system, own group, no home,
    nologin shell) when missing."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name],
                       check=True, capture_output=True)
        pw = pwd.getpwnam(name)
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid)


def ensure_accounts(names: Iterable[str] = TEST_ACCOUNTS) -> dict[str, Account]:
    """Every account in names, by name."""
    return {n: ensure_account(n) for n in names}


# --- commands ------------------------------------------------------------------

BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
}


def clean_env(extra: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """A small, predictable environment (no PG*, no DBUS_*, no proxies) plus extra."""
    env = dict(BASE_ENV)
    if extra:
        env.update({k: v for k, v in extra.items() if v is not None})
    return env


def as_user_cmd(user: Optional[str], cmd: Sequence[str]) -> list[str]:
    """cmd run as user (runuser -u USER --), or unchanged when user is None."""
    cmd = [str(c) for c in cmd]
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def run(cmd: Sequence[str], *, user: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
        input: Optional[str] = None, timeout: float = 60, cwd: str = "/") -> Result:
    """Run cmd (as user when given) with a clean environment plus env; wait at
    most timeout seconds (then raise subprocess.TimeoutExpired)."""
    p = subprocess.run(as_user_cmd(user, cmd), env=clean_env(env), input=input,
                       capture_output=True, text=True, timeout=timeout, cwd=cwd)
    return Result(p.returncode, p.stdout, p.stderr)


def run_as(user: str, cmd: Sequence[str], **kw) -> Result:
    """run(cmd, user=user, ...)."""
    return run(cmd, user=user, **kw)


def psql_as(user: Optional[str], host: str, dbname: str, sql: str, *, port: int = 5432,
            env: Optional[Mapping[str, str]] = None, timeout: float = 60,
            extra_args: Sequence[str] = ()) -> Result:
    """psql as user against host (a directory: a grant's socket_dir, or a TCP
    host), unaligned, tuples only, fields separated by '|', stopping at the
    first error. For a grant: psql_as(SERVICE_A, grant['socket_dir'], 'orders', 'select 1')."""
    cmd = ["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
           "-h", host, "-p", str(port), "-d", dbname, *extra_args, "-c", sql]
    e = {"PGCONNECT_TIMEOUT": "10"}
    if env:
        e.update(env)
    return run(cmd, user=user, env=e, timeout=timeout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll predicate until true; TimeoutError naming what after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def make_dir(path: Path, mode: int = 0o755, owner: Optional[Account] = None) -> Path:
    """mkdir -p path with exactly mode (and owner when given)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if owner:
        os.chown(path, owner.uid, owner.gid)
    return path


def write_file(path: Path, text: str, mode: int = 0o644, owner: Optional[Account] = None) -> Path:
    """Write text to path with mode (and owner), created with that mode from
    the start so a secret is never readable by others, not even briefly."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        os.fchmod(fd, mode)
        if owner:
            os.fchown(fd, owner.uid, owner.gid)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    return path


def new_sandbox(prefix: str = "sluice-it-") -> Path:
    """A fresh directory under /tmp, mode 0755 so service accounts can reach
    sockets below it (pytest's own tmp_path is 0700, root only)."""
    d = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(d, 0o755)
    return d


def process_rss_kib(pid: int) -> int:
    """VmRSS of pid in KiB, from /proc/PID/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def stop_process(proc: subprocess.Popen, timeout: float = 10) -> tuple[Optional[int], bool]:
    """SIGTERM, then SIGKILL after timeout. Returns (returncode, needed_kill)."""
    if proc.poll() is not None:
        return proc.returncode, False
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=timeout), False
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10), True


# --- TLS -----------------------------------------------------------------------

class TestCA:
    """A throwaway certificate authority made with the openssl CLI.

    ca.cert is the file clients trust (sslrootcert); issue_server() makes a
    certificate for a server name (and IP addresses) signed by it."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "sluice test CA"):
        self.dir = make_dir(directory)
        self.cert = self.dir / "ca.crt"
        self.key = self.dir / "ca.key"
        self._openssl("req", "-x509", "-new", "-nodes", "-newkey", "ec",
                      "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-keyout", self.key, "-out", self.cert, "-days", "3", "-subj", f"/CN={name}",
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        os.chmod(self.key, 0o600)
        os.chmod(self.cert, 0o644)

    def _openssl(self, *args) -> None:
        run(["openssl", *args], cwd=str(self.dir)).check("openssl " + str(args[0]))

    def issue_server(self, name: str = "localhost", dns: Sequence[str] = ("localhost",),
                     ips: Sequence[str] = ("127.0.0.1",), owner: Optional[Account] = None) -> tuple[Path, Path]:
        """(cert, key) for a server called name with those subjectAltNames; the
        key is mode 0600, owned by owner when given (PostgreSQL insists)."""
        key = self.dir / f"{name}.key"
        csr = self.dir / f"{name}.csr"
        cert = self.dir / f"{name}.crt"
        ext = self.dir / f"{name}.ext"
        sans = [f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]
        ext.write_text("basicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n"
                       "extendedKeyUsage=serverAuth\n"
                       f"subjectAltName={','.join(sans)}\n")
        self._openssl("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
        self._openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                      "-CAcreateserial", "-out", cert, "-days", "2", "-extfile", ext)
        os.chmod(key, 0o600)
        os.chmod(cert, 0o644)
        if owner:
            os.chown(key, owner.uid, owner.gid)
        return cert, key


# --- PostgreSQL ------------------------------------------------------------------

class PgCluster:
    """A throwaway PostgreSQL 15 cluster in directory, run by the account owner.

    After start():
      host / port          TCP 127.0.0.1:port (scram-sha-256; with tls, TLS only)
      socket_dir           the Unix socket directory (.s.PGSQL.<port>)
      broker_user / broker_password / dbname
                           sluice_broker, a random password, and the database
                           "orders" it owns, with SAMPLE_SQL loaded
      log_path             the server log
    Superuser access (for test set-up and inspection) is peer authentication
    over the Unix socket as role "postgres": root and owner map to it.

    With tls_ca, the server has ssl=on with a certificate for localhost and
    127.0.0.1 signed by that CA, and pg_hba accepts TCP only over TLS
    (hostssl); tls_host is "localhost" (what verify-full checks against).
    """

    def __init__(self, directory: Path, owner: Account, *, tls_ca: Optional[TestCA] = None,
                 settings: Optional[Mapping[str, str]] = None, dbname: str = SAMPLE_DB,
                 sample_sql: Optional[str] = SAMPLE_SQL):
        self.dir = make_dir(directory, 0o755, owner)
        self.owner = owner
        self.tls_ca = tls_ca
        self.extra_settings = dict(settings or {})
        self.datadir = self.dir / "data"
        self.socket_dir = self.dir / "socket"
        self.log_path = self.dir / "postgresql.log"
        self.host = "127.0.0.1"
        self.tls_host = "localhost"
        self.port = 0
        self.dbname = dbname
        self.sample_sql = sample_sql
        self.broker_user = BROKER_ROLE
        self.broker_password = secrets.token_urlsafe(24)
        self.started = False

    @property
    def tls(self) -> bool:
        return self.tls_ca is not None

    @property
    def ca_file(self) -> Optional[Path]:
        return self.tls_ca.cert if self.tls_ca else None

    def _as_owner(self, cmd: Sequence[str], timeout: float = 120) -> Result:
        return run(cmd, user=self.owner.name, timeout=timeout, cwd=str(self.dir))

    def start(self) -> "PgCluster":
        make_dir(self.datadir, 0o700, self.owner)
        make_dir(self.socket_dir, 0o755, self.owner)
        self._as_owner([PG_BIN / "initdb", "-D", self.datadir, "-U", "postgres", "--no-sync",
                        "--no-instructions", "-E", "UTF8", "--locale=C", "--auth-local=peer",
                        "--auth-host=scram-sha-256"]).check("initdb")
        self.port = free_port()
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "unix_socket_permissions": "0777",
            "password_encryption": "'scram-sha-256'",
            "max_connections": "200",
            "shared_buffers": "64MB",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_connections": "on",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        if self.tls_ca:
            cert, key = self.tls_ca.issue_server("localhost", owner=self.owner)
            conf.update({"ssl": "on", "ssl_cert_file": f"'{cert}'", "ssl_key_file": f"'{key}'",
                         "ssl_ca_file": f"'{self.tls_ca.cert}'", "ssl_min_protocol_version": "'TLSv1.2'"})
        conf.update(self.extra_settings)
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# sluice test cluster\n")
            for k, v in conf.items():
                f.write(f"{k} = {v}\n")
        tcp = "hostssl" if self.tls_ca else "host"
        hba = [
            "# TYPE  DATABASE USER     ADDRESS        METHOD",
            "local   all      postgres                peer map=superuser",
            "local   all      all                     scram-sha-256",
            f"{tcp:7} all      all      127.0.0.1/32   scram-sha-256",
            f"{tcp:7} all      all      ::1/128        scram-sha-256",
        ]
        if self.tls_ca:
            hba += ["hostnossl all    all      0.0.0.0/0      reject",
                    "hostnossl all    all      ::/0           reject"]
        write_file(self.datadir / "pg_hba.conf", "\n".join(hba) + "\n", 0o600, self.owner)
        write_file(self.datadir / "pg_ident.conf",
                   f"superuser root postgres\nsuperuser {self.owner.name} postgres\n", 0o600, self.owner)
        self._as_owner([PG_BIN / "pg_ctl", "-D", self.datadir, "-l", self.log_path, "-w", "-t", "60",
                        "start"]).check("pg_ctl start")
        self.started = True
        self._create_broker()
        return self

    def _create_broker(self) -> None:
        # The password is a URL-safe token: nothing in it needs quoting.
        assert all(c.isalnum() or c in "-_" for c in self.broker_password)
        self.psql_super(f"CREATE ROLE {self.broker_user} LOGIN PASSWORD '{self.broker_password}'",
                        dbname="postgres", echo_safe=False).check("create broker role")
        self.psql_super(f"CREATE DATABASE {self.dbname} OWNER {self.broker_user}",
                        dbname="postgres").check("create database")
        if self.sample_sql:
            self.psql_super(f"SET ROLE {self.broker_user};\n{self.sample_sql}").check("sample data")

    def psql_super(self, sql: str, dbname: Optional[str] = None, *, echo_safe: bool = True,
                   timeout: float = 120) -> Result:
        """Run sql as the superuser with psql (unaligned, tuples only, '|'
        between fields, stop at the first error). The SQL goes on stdin, so it
        never shows in `ps`."""
        r = run(["psql", "-X", "-q", "-A", "-t", "-F", "|", "-v", "ON_ERROR_STOP=1",
                 "-h", self.socket_dir, "-p", str(self.port), "-U", "postgres", "-d", dbname or self.dbname],
                input=sql, timeout=timeout)
        if not echo_safe and r.rc != 0:
            # The statement carried a secret: keep psql's message, not the SQL.
            return Result(r.rc, "", "statement with a secret failed: " + r.stderr.replace(self.broker_password, "***"))
        return r

    def sql(self, query: str, dbname: Optional[str] = None) -> list[tuple[str, ...]]:
        """Rows of query run as superuser, each a tuple of strings (NULL as '').
        Raises CommandFailed on an SQL error."""
        out = self.psql_super(query, dbname).check("SQL").stdout
        return [tuple(line.split("|")) for line in out.splitlines() if line != ""]

    def connect_super(self, dbname: Optional[str] = None):
        """A psycopg (3) connection as superuser over the Unix socket, autocommit."""
        import psycopg
        return psycopg.connect(host=str(self.socket_dir), port=self.port, user="postgres",
                               dbname=dbname or self.dbname, autocommit=True)

    def broker_env(self) -> dict[str, str]:
        """libpq variables to connect as the broker over TCP (tests of the
        cluster itself, pgbench direct); never give these to a service account."""
        env = {"PGHOST": self.tls_host if self.tls else self.host, "PGPORT": str(self.port),
               "PGUSER": self.broker_user, "PGPASSWORD": self.broker_password, "PGDATABASE": self.dbname}
        if self.tls:
            env.update({"PGSSLMODE": "verify-full", "PGSSLROOTCERT": str(self.ca_file)})
        else:
            env["PGSSLMODE"] = "disable"
        return env

    def broker_scram_secret(self) -> str:
        """The broker's stored SCRAM-SHA-256 verifier (for pgbouncer's auth_file)."""
        rows = self.sql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{self.broker_user}'", "postgres")
        secret = rows[0][0]
        if not secret.startswith("SCRAM-SHA-256$"):
            raise RuntimeError("broker password is not stored as SCRAM-SHA-256")
        return secret

    def write_password_file(self, path: Path, owner: Account) -> Path:
        """The broker password in path, mode 0600, owned by owner (the agent)."""
        return write_file(path, self.broker_password + "\n", 0o600, owner)

    def connection_keys(self, password_file: Optional[Path] = None) -> dict[str, str]:
        """Keys of a sluice.conf [connection] section for this cluster."""
        keys = {"type": "postgres",
                "host": self.tls_host if self.tls else self.host,
                "port": str(self.port),
                "dbname": self.dbname,
                "user": self.broker_user}
        if password_file:
            keys["password_file"] = str(password_file)
        if self.tls:
            keys.update({"sslmode": "verify-full", "sslrootcert": str(self.ca_file)})
        else:
            keys["sslmode"] = "disable"
        return keys

    def backends(self, usename: Optional[str] = None) -> int:
        """Client backends now connected (for one role when given)."""
        where = "backend_type = 'client backend' AND pid <> pg_backend_pid()"
        if usename:
            where += f" AND usename = '{usename}'"
        return int(self.sql(f"SELECT count(*) FROM pg_stat_activity WHERE {where}", "postgres")[0][0])

    def stop(self) -> None:
        if not self.started:
            return
        self._as_owner([PG_BIN / "pg_ctl", "-D", self.datadir, "-m", "fast", "-w", "-t", "60", "stop"])
        self.started = False


# --- the installed tree ------------------------------------------------------------

DBUS_POLICY_NAME = "org.sluice.Agent1.conf"


@dataclass
class InstallTree:
    """`make install DESTDIR=root` of a build. dbus_policy is the installed
    D-Bus system policy; from_source is True when the install did not provide
    it and the copy in the source tree (data/) was used instead."""
    root: Path
    dbus_policy: Path
    from_source: bool
    log: str = ""

    def find(self, name: str) -> list[Path]:
        """Installed files called name."""
        return sorted(p for p in self.root.rglob(name))

    def program(self, name: str) -> Optional[Path]:
        """The installed program name (from a bin/ or sbin/ directory), or None.
        Tests run these rather than the build tree's copies: a service account
        can always reach /tmp/sluice-it-*/install, not always the build tree
        (a clone under /root, say)."""
        for p in self.find(name):
            if p.parent.name in ("bin", "sbin") and p.is_file() and os.access(p, os.X_OK):
                return p
        return None


def install_tree(builddir: Path, srcdir: Path, destdir: Path, timeout: float = 600) -> InstallTree:
    """make install DESTDIR=destdir from builddir (raises CommandFailed when
    make fails). Falls back to srcdir/data for the D-Bus policy when the
    install does not include it."""
    r = run(["make", "-C", builddir, "--no-print-directory", "install", f"DESTDIR={destdir}"],
            env={"MAKEFLAGS": "-j2"}, timeout=timeout, cwd=str(builddir))
    r.check("make install")
    found = sorted(destdir.rglob(f"dbus-1/system.d/{DBUS_POLICY_NAME}"))
    if found:
        return InstallTree(destdir, found[0], False, r.stdout + r.stderr)
    return InstallTree(destdir, srcdir / "data" / DBUS_POLICY_NAME, True, r.stdout + r.stderr)


# --- D-Bus ------------------------------------------------------------------------

# The private bus's configuration, shared with scripts/demo.
BUS_CONFIG_TEMPLATE = Path(__file__).resolve().parents[1] / "dbus-system-test.conf.in"


class Bus:
    """A private dbus-daemon configured as a system bus, listening on
    directory/system_bus_socket, with policy (sluice's D-Bus policy file)
    included. address is what DBUS_SYSTEM_BUS_ADDRESS gets."""

    def __init__(self, directory: Path, policy: Path):
        self.dir = make_dir(directory)
        self.policy = policy
        self.socket = self.dir / "system_bus_socket"
        self.config = self.dir / "bus.conf"
        self.log_path = self.dir / "dbus-daemon.log"
        self.address = ""
        self.proc: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 20) -> "Bus":
        self.config.write_text(BUS_CONFIG_TEMPLATE.read_text().replace("@SOCKET@", str(self.socket))
                               .replace("@POLICY@", str(self.policy)))
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["dbus-daemon", "--config-file", str(self.config), "--nofork",
                                      "--nopidfile", "--print-address=1"],
                                     stdout=subprocess.PIPE, stderr=log, env=clean_env(), cwd="/")
        log.close()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline().decode().strip() if ready else ""
        if not line:
            self.stop()
            raise RuntimeError(f"dbus-daemon did not start: {self.log_path.read_text()}")
        # The daemon prints its address with a guid; clients need only the path.
        self.address = f"unix:path={self.socket}"
        return self

    def env(self) -> dict[str, str]:
        return {"DBUS_SYSTEM_BUS_ADDRESS": self.address}

    def call(self, dest: str, path: str, method: str, *args: str, user: Optional[str] = None,
             timeout: float = 20) -> Result:
        """dbus-send --print-reply: method is "interface.Member", args in
        dbus-send syntax ("string:x", "boolean:true")."""
        return run(["dbus-send", f"--bus={self.address}", "--print-reply", f"--reply-timeout={int(timeout * 1000)}",
                    f"--dest={dest}", path, method, *args], user=user, timeout=timeout + 5)

    def name_has_owner(self, name: str) -> bool:
        r = self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
                      f"string:{name}")
        return r.rc == 0 and "boolean true" in r.stdout

    def try_own(self, name: str, user: str) -> Result:
        """As user, ask the bus for name (python3-dbus); stdout 'owned' when
        granted, else the D-Bus error on stderr. Tests the installed policy."""
        prog = ("import dbus, sys\n"
                "b = dbus.bus.BusConnection(sys.argv[1])\n"
                "r = b.request_name(sys.argv[2], dbus.bus.NAME_FLAG_DO_NOT_QUEUE)\n"
                "print('owned' if r == dbus.bus.REQUEST_NAME_REPLY_PRIMARY_OWNER else 'reply %d' % r)\n")
        return run(["/usr/bin/python3", "-c", prog, self.address, name], user=user, timeout=30)

    def stop(self) -> None:
        if self.proc:
            stop_process(self.proc, 5)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None


# --- the agent ----------------------------------------------------------------------

def render_config(sections: Sequence[tuple[str, Mapping[str, Optional[str]]]], raw: str = "") -> str:
    """sluice.conf text from (header, keys) pairs; a key whose value is None
    is left out. raw is appended as it is."""
    out = ["# written by the sluice integration harness"]
    for header, keys in sections:
        out.append(f"\n[{header}]")
        for k, v in keys.items():
            if v is not None:
                out.append(f"{k} = {v}")
    text = "\n".join(out) + "\n"
    if raw:
        text += "\n" + raw.rstrip("\n") + "\n"
    return text


@dataclass
class AgentDirs:
    """Where one agent instance keeps its files (all under root):
      etc/sluice.conf         0644 root
      etc/credentials/        0700 sluice (password files, 0600 sluice)
      run/                    runtime_dir, 0755 sluice (grants/<id>/ below)
      lib/sluice.db           database, in a 0750 sluice directory
      sluiced.log             the agent's stdout and stderr
    """
    root: Path
    agent_account: Account

    def __post_init__(self):
        make_dir(self.root)
        make_dir(self.etc)
        make_dir(self.credentials, 0o700, self.agent_account)
        make_dir(self.runtime_dir, 0o755, self.agent_account)
        make_dir(self.state_dir, 0o750, self.agent_account)

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def config(self) -> Path:
        return self.etc / "sluice.conf"

    @property
    def credentials(self) -> Path:
        return self.etc / "credentials"

    @property
    def runtime_dir(self) -> Path:
        return self.root / "run"

    @property
    def state_dir(self) -> Path:
        return self.root / "lib"

    @property
    def database(self) -> Path:
        return self.state_dir / "sluice.db"

    @property
    def log(self) -> Path:
        return self.root / "sluiced.log"


class Agent:
    """One sluiced: its config, process, log and helpers.

    start() runs `sluiced --config FILE` as root with DBUS_SYSTEM_BUS_ADDRESS
    set (the agent drops to its account itself) and waits until it owns
    org.sluice.Agent1 on the bus; AgentStartError (with the log) when it
    exits first or takes longer than timeout. stop() sends SIGTERM, then
    SIGKILL after a timeout, and returns the exit status."""

    def __init__(self, binary: Path, ctl_binary: Path, dirs: AgentDirs, bus: Bus,
                 env: Optional[Mapping[str, str]] = None):
        self.binary = binary
        self.ctl_binary = ctl_binary
        self.dirs = dirs
        self.bus = bus
        self.extra_env = dict(env or {})
        self.proc: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None
        self.killed = False
        self.pg: Optional[PgCluster] = None  # the cluster its [connection] points at
        self.idp = None                      # the IdP its [oidc] trusts (tests/integration/idp.py)
        self.auto_sessions: Sequence[str] = ()  # accounts given a session at each start()
        self.sessions: dict[str, str] = {}   # account -> id of the session start() opened

    # paths tests use
    @property
    def config_path(self) -> Path:
        return self.dirs.config

    @property
    def runtime_dir(self) -> Path:
        return self.dirs.runtime_dir

    @property
    def grants_dir(self) -> Path:
        return self.dirs.runtime_dir / "grants"

    @property
    def database(self) -> Path:
        return self.dirs.database

    @property
    def log_path(self) -> Path:
        return self.dirs.log

    @property
    def pid(self) -> int:
        assert self.proc is not None, "agent not started"
        return self.proc.pid

    def grant_dir(self, grant_id: str) -> Path:
        return self.grants_dir / grant_id

    def log(self) -> str:
        """Everything the agent wrote to stdout/stderr so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def env(self) -> dict[str, str]:
        e = {"SLUICE_CONFIG": str(self.config_path)}
        e.update(self.bus.env())
        return e

    def start(self, timeout: float = 20) -> "Agent":
        if self.running():
            raise RuntimeError("agent already running")
        if self.bus.name_has_owner(BUS_NAME):
            raise RuntimeError(f"{BUS_NAME} is already owned on the test bus: another agent is still running")
        env = self.bus.env()
        env.update(self.extra_env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([str(self.binary), "--config", str(self.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=clean_env(env), cwd="/")
        self.returncode, self.killed = None, False
        deadline = time.monotonic() + timeout
        while not self.bus.name_has_owner(BUS_NAME):
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise AgentStartError(f"sluiced exited with status {self.returncode} before taking {BUS_NAME}",
                                      self.log(), self.returncode)
            if time.monotonic() > deadline:
                self.stop()
                raise AgentStartError(f"sluiced did not take {BUS_NAME} within {timeout}s", self.log(), None)
            time.sleep(0.05)
        self.sessions = {}
        for user in self.auto_sessions:
            self.sessions[user] = self.open_session(user)["id"]
        return self

    def open_session(self, user: str, token: Optional[str] = None, *, client: Optional[str] = None,
                     caller: Optional[str] = None) -> dict:
        """OpenSession(user, token) over the bus as caller (root when None):
        {"id", "expires_at"}. The token defaults to a fresh one from the IdP
        for client (default: the client named like the account).
        CommandFailed with the agent's error when refused."""
        if token is None:
            token = self.idp.token(client or user)
        r = self.bus.call(BUS_NAME, "/org/sluice/Agent1", "org.sluice.Agent1.OpenSession",
                          f"string:{user}", f"string:{token}", user=caller)
        if r.rc != 0:
            raise CommandFailed(f"OpenSession({user}) as {caller or 'root'}: {r.stderr.strip()}")
        import re
        m = re.search(r'string "([0-9a-f]+)"\s+int64 (-?\d+)', r.stdout)
        if not m:
            raise CommandFailed(f"OpenSession({user}): cannot read the reply {r.stdout!r}")
        return {"id": m.group(1), "expires_at": int(m.group(2))}

    def close_session(self, session_id: str, *, caller: Optional[str] = None) -> Result:
        return self.bus.call(BUS_NAME, "/org/sluice/Agent1", "org.sluice.Agent1.CloseSession",
                             f"string:{session_id}", user=caller)

    def run_to_exit(self, timeout: float = 20) -> Result:
        """Run sluiced in the foreground until it exits by itself (for a
        config it must refuse): (rc, log, '')."""
        env = self.bus.env()
        env.update(self.extra_env)
        r = run([self.binary, "--config", self.config_path], env=env, timeout=timeout)
        return Result(r.rc, r.stdout + r.stderr, "")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def reload(self) -> None:
        """SIGHUP: re-read the configuration."""
        self.signal(signal.SIGHUP)

    def stop(self, timeout: float = 10) -> Optional[int]:
        """SIGTERM, SIGKILL after timeout; the exit status (negative: signal)."""
        if self.proc is None:
            return self.returncode
        self.returncode, self.killed = stop_process(self.proc, timeout)
        return self.returncode

    def rss_kib(self) -> int:
        return process_rss_kib(self.pid)

    def request_grant(self, user: str, connection: str = CONNECTION_NAME, *, ttl: Optional[str] = None,
                      schema: Optional[str] = None, reason: Optional[str] = None) -> dict:
        """`sluicectl --json grant request` as user; the grant (dict with at
        least id, state, socket_dir, expires_at). CommandFailed when refused."""
        import json
        args = ["--json", "grant", "request", connection]
        for opt, val in (("--ttl", ttl), ("--schema", schema), ("--reason", reason)):
            if val is not None:
                args += [opt, val]
        r = self.ctl(*args, user=user).check(f"sluicectl grant request {connection} as {user}")
        grant = json.loads(r.stdout)
        if not isinstance(grant, dict) or "socket_dir" not in grant:
            raise CommandFailed(f"sluicectl grant request: no socket_dir in {r.stdout!r}")
        return grant

    def write_config(self, text: str) -> None:
        """Replace sluice.conf (then reload() or ctl('reload'))."""
        write_file(self.config_path, text, 0o644)

    def ctl(self, *args: str, user: Optional[str] = None, input: Optional[str] = None,
            timeout: float = 30) -> Result:
        """sluicectl ARGS as user (root when None), pointed at this agent's
        config and bus: (rc, stdout, stderr)."""
        return sluicectl(self.ctl_binary, *args, user=user, env=self.env(), input=input, timeout=timeout)


def sluicectl(binary: Path, *args: str, user: Optional[str] = None, env: Optional[Mapping[str, str]] = None,
              input: Optional[str] = None, timeout: float = 30) -> Result:
    """Run sluicectl ARGS as user with env (give it SLUICE_CONFIG and
    DBUS_SYSTEM_BUS_ADDRESS): (rc, stdout, stderr)."""
    return run([binary, *args], user=user, env=env, input=input, timeout=timeout)


def default_sections(pg: PgCluster, dirs: AgentDirs, password_file: Path, *,
                     connection_name: str = CONNECTION_NAME, idp=None,
                     identities: Sequence[str] = ()) -> list[tuple[str, dict[str, Optional[str]]]]:
    """[agent] and [connection] for an agent in dirs talking to pg; with an
    idp, [oidc] trusting it and an [identity NAME] binding each account in
    identities to the IdP client of the same name (its token's sub)."""
    secs: list[tuple[str, dict[str, Optional[str]]]] = [
        ("agent", {"runtime_dir": str(dirs.runtime_dir), "database": str(dirs.database)}),
        (f"connection {connection_name}", dict(pg.connection_keys(password_file))),
    ]
    if idp is not None:
        secs.append(("oidc", dict(idp.oidc_keys())))
        secs.extend((f"identity {name}", {"subject": name}) for name in identities)
    return secs
