"""Raw PostgreSQL protocol 3.0 over a grant socket, for tests that must send
what no well-behaved client would (test_hostile.py, test_large.py).

A grant's socket lets in only the grant's uid (SO_PEERCRED, which Linux
takes from the effective uid at connect time), so connect() switches the
test process's effective uid/gid to the service account for the duration
of the connect call only.

    s = Wire.connect(grant_dir, account)   # a connected socket, as account
    s.send(startup())                      # bytes built by the helpers below
    s.handshake()                          # startup -> ReadyForQuery
    msgs = s.read_until_eof()              # [(type, body)], '' type for 'N'
    fatal = error_fields(body)             # {'S': 'FATAL', 'C': '08P01', ...}
"""
from __future__ import annotations

import os
import select
import socket
import struct
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import sluice_fixtures as sf

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
PROTO_3_0 = 196608


# --- building messages -------------------------------------------------------------

def startup(params: Optional[dict[str, str]] = None, code: int = PROTO_3_0) -> bytes:
    body = struct.pack("!I", code)
    for k, v in (params if params is not None else {"user": "x", "database": "x"}).items():
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request() -> bytes:
    return struct.pack("!II", 8, SSL_REQUEST)


def msg(type_: bytes, body: bytes = b"") -> bytes:
    return type_ + struct.pack("!I", len(body) + 4) + body


def query(sql: str | bytes) -> bytes:
    if isinstance(sql, str):
        sql = sql.encode()
    return msg(b"Q", sql + b"\0")


def terminate() -> bytes:
    return msg(b"X")


def error_fields(body: bytes) -> dict[str, str]:
    """The fields of an ErrorResponse/NoticeResponse body by code letter."""
    out = {}
    for part in body.split(b"\0"):
        if part:
            out[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return out


# --- the socket --------------------------------------------------------------------

@contextmanager
def effective_ids(account: sf.Account):
    """Run the block with the effective uid/gid of account (root again after)."""
    os.setegid(account.gid)
    os.seteuid(account.uid)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


class Wire:
    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""
        self.eof = False
        self.error: Optional[OSError] = None   # how the read side ended, when not by EOF

    @classmethod
    def connect(cls, socket_dir: str | Path, account: sf.Account, timeout: float = 10) -> "Wire":
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        with effective_ids(account):
            s.connect(str(Path(socket_dir) / ".s.PGSQL.5432"))
        return cls(s)

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def try_send(self, data: bytes) -> int:
        """Send what the peer takes; stop quietly when it stops taking (it
        closed, or its buffers stay full for the socket timeout). Returns the
        bytes sent."""
        sent = 0
        try:
            while sent < len(data):
                sent += self.sock.send(data[sent:sent + 65536])
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            pass
        return sent

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def _fill(self, deadline: float) -> bool:
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            return False
        try:
            data = self.sock.recv(1 << 20)
        except OSError as e:  # ECONNRESET: the peer closed with our bytes unread
            self.error = e
            self.eof = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_byte(self, timeout: float = 10) -> Optional[bytes]:
        """One byte (the answer to SSLRequest), None on EOF or timeout."""
        deadline = time.monotonic() + timeout
        while not self.buf:
            if not self._fill(deadline):
                return None
        b, self.buf = self.buf[:1], self.buf[1:]
        return b

    def read_message(self, timeout: float = 10) -> Optional[tuple[str, bytes]]:
        """(type, body) of the next backend message; None on EOF or timeout
        (self.eof tells which)."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 5:
                (n,) = struct.unpack("!I", self.buf[1:5])
                if len(self.buf) >= n + 1:
                    t, body = chr(self.buf[0]), self.buf[5:n + 1]
                    self.buf = self.buf[n + 1:]
                    return t, body
            if not self._fill(deadline):
                return None

    def read_until(self, type_: str, timeout: float = 30) -> list[tuple[str, bytes]]:
        """Messages up to and including the first of type_ (AssertionError
        when the stream ends or times out first)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            m = self.read_message(max(0.0, deadline - time.monotonic()))
            assert m is not None, f"no {type_!r} before {'EOF' if self.eof else 'timeout'}; got {out!r}"
            out.append(m)
            if m[0] == type_:
                return out

    def read_until_eof(self, timeout: float = 15) -> list[tuple[str, bytes]]:
        """Every message until the agent closes (AssertionError on timeout)."""
        out = []
        deadline = time.monotonic() + timeout
        while True:
            m = self.read_message(max(0.0, deadline - time.monotonic()))
            if m is None:
                assert self.eof, f"the connection stayed open for {timeout}s; got {out!r}"
                assert self.buf == b"", f"the connection ended inside a message: {self.buf[:64]!r}"
                return out
            out.append(m)

    def handshake(self, params: Optional[dict[str, str]] = None) -> list[tuple[str, bytes]]:
        """Startup through ReadyForQuery."""
        self.send(startup(params))
        msgs = self.read_until("Z")
        assert msgs[0] == ("R", struct.pack("!I", 0)), msgs[:1]
        return msgs


def fatal_of(msgs: list[tuple[str, bytes]]) -> dict[str, str]:
    """The fields of the one ErrorResponse in msgs, which must be the last
    message and FATAL."""
    errors = [error_fields(b) for t, b in msgs if t == "E"]
    assert errors, f"no ErrorResponse, got {msgs!r}"
    assert msgs[-1][0] == "E", f"messages after the error: {msgs!r}"
    assert errors[-1].get("S") == "FATAL" and errors[-1].get("V") == "FATAL", errors[-1]
    return errors[-1]


# --- a psql session kept open alongside -------------------------------------------------

class PsqlSession:
    """An interactive psql (line-buffered through stdbuf) as account on the
    grant, kept open while other connections misbehave. ping() runs a query
    and waits for its answer."""

    def __init__(self, account: str, socket_dir: str, dbname: str = "orders"):
        cmd = sf.as_user_cmd(account, ["stdbuf", "-oL", "-eL", "psql", "-X", "-q", "-A", "-t",
                                       "-h", socket_dir, "-d", dbname])
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, env=sf.clean_env(), bufsize=0)
        self.n = 0
        self.out = b""

    def ping(self, timeout: float = 15) -> None:
        self.n += 1
        tag = f"ping-{self.n}-{os.getpid()}".encode()
        self.proc.stdin.write(b"SELECT '" + tag + b"' || count(*) FROM ops.customers;\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while tag not in self.out:
            left = deadline - time.monotonic()
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            chunk = os.read(self.proc.stdout.fileno(), 65536) if r else b""
            if not chunk:
                raise AssertionError(f"psql session did not answer ping {self.n} "
                                     f"({'exited ' + str(self.proc.poll()) if self.proc.poll() is not None else 'timeout'}): "
                                     f"{self.out[-500:]!r}")
            self.out += chunk
        line = self.out[self.out.index(tag):].split(b"\n", 1)[0]
        assert line == tag + str(sf.SAMPLE_CUSTOMERS).encode(), f"unexpected answer {line!r} in {self.out[-500:]!r}"

    def close(self) -> int:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
