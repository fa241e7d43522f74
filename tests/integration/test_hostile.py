"""Hostile input on a grant socket, spoken with raw sockets: garbage,
impossible lengths, truncated, oversized and unknown messages, too many
SSLRequests, half-closed sockets, a client that never says anything.

For each: the agent closes that connection, with a FATAL ErrorResponse
(SQLSTATE 08P01, protocol violation) whenever the client can still read
one; it records an event (`sluicectl --json audit --events`); and nothing
else notices — a psql session opened on the same grant before the attack
still answers, a new connection still works, `sluicectl status` answers,
and the agent is still running (its teardown also checks for sanitizer
reports).
"""
from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

import regress_wire as w
from sluice_fixtures import SAMPLE_CUSTOMERS, SERVICE_A

MAX_MESSAGE = 64 * 1024     # [agent] max_message_size for these tests (its minimum)
STARTUP_TIMEOUT = 2         # [agent] startup_timeout, seconds


class Hostile:
    """A running agent with a small max_message_size and startup_timeout, a
    grant for SERVICE_A, and a psql session open on it."""

    def __init__(self, agent, grant, account, session):
        self.agent, self.grant, self.account, self.session = agent, grant, account, session
        self.seen_events = len(self.events())

    def connect(self) -> w.Wire:
        return w.Wire.connect(self.grant["socket_dir"], self.account)

    def events(self) -> list[dict]:
        r = self.agent.ctl("--json", "audit", "--events", "--grant", self.grant["id"])
        assert r.rc == 0, r.stderr
        return json.loads(r.stdout)

    def new_events(self, want: Callable[[list[dict]], bool], timeout: float = 5) -> list[dict]:
        """Events recorded since the attack began, once want(events) holds
        (the audit writer commits in batches); the last list seen otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events()[self.seen_events:]
            if want(evs) or time.monotonic() > deadline:
                return evs
            time.sleep(0.1)

    def assert_unaffected(self) -> None:
        assert self.agent.running(), f"sluiced exited:\n{self.agent.log()[-3000:]}"
        self.session.ping()
        s = self.connect()
        try:
            s.handshake()
            s.send(w.query("SELECT count(*) FROM ops.customers"))
            msgs = s.read_until("Z")
            rows = [b for t, b in msgs if t == "D"]
            assert rows == [struct.pack("!HI", 1, len(str(SAMPLE_CUSTOMERS))) + str(SAMPLE_CUSTOMERS).encode()], msgs
            s.send(w.terminate())
            assert s.read_until_eof() == []
        finally:
            s.close()
        r = self.agent.ctl("status")
        assert r.rc == 0, r.stdout + r.stderr


@pytest.fixture
def hostile(agent_factory, accounts):
    a = agent_factory(agent={"max_message_size": "64K", "startup_timeout": f"{STARTUP_TIMEOUT}s"})
    g = a.request_grant(SERVICE_A, ttl="30m")
    session = w.PsqlSession(SERVICE_A, g["socket_dir"])
    try:
        session.ping()
        yield Hostile(a, g, accounts[SERVICE_A], session)
    finally:
        session.close()


def ready(s: w.Wire) -> None:
    s.handshake()


@dataclass
class Case:
    """An attack: what the client sends (act), whether it then reads the
    agent's answer (a FATAL with `message` in it) or just goes away, and the
    event kind and detail fragment the audit must show."""
    act: Callable[[w.Wire], None]
    message: Optional[str]          # None: the client closed, nothing can be read
    event: str = "connection.malformed"
    detail: str | tuple[str, ...] = ""   # one of these must be in the event's detail
    sqlstate: str = "08P01"


def _trunc_startup(s):
    s.send(struct.pack("!I", 100) + struct.pack("!I", w.PROTO_3_0) + b"user\0x")


def _trunc_query(s):
    ready(s)
    s.send(b"Q" + struct.pack("!I", 1000) + b"SELECT ")


CASES = {
    # --- before and during the startup packet
    "garbage-before-startup": Case(lambda s: s.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                                   "invalid startup packet length", detail="invalid startup packet length"),
    "binary-garbage-before-startup": Case(lambda s: s.try_send(bytes(range(256)) * 4),
                                          "invalid startup packet length", detail="invalid startup packet length"),
    "startup-length-below-8": Case(lambda s: s.send(struct.pack("!I", 7) + b"abc"),
                                   "invalid startup packet length", detail="invalid startup packet length"),
    "startup-length-zero": Case(lambda s: s.send(b"\0\0\0\0"),
                                "invalid startup packet length", detail="invalid startup packet length"),
    "startup-length-above-10000": Case(lambda s: s.try_send(struct.pack("!I", 10001) + b"\0" * 10001),
                                       "invalid startup packet length", detail="invalid startup packet length"),
    "startup-unterminated": Case(lambda s: s.send(struct.pack("!II", 17, w.PROTO_3_0) + b"user\0bob\0"),
                                 "not terminated", detail="not terminated"),
    "startup-protocol-2": Case(lambda s: s.send(w.startup(code=2 << 16)),
                               "unsupported frontend protocol", detail="unsupported frontend protocol"),
    "ssl-request-wrong-length": Case(lambda s: s.send(struct.pack("!III", 12, w.SSL_REQUEST, 0)),
                                     "invalid encryption request", detail="invalid encryption request"),
    "truncated-startup-then-close": Case(lambda s: (_trunc_startup(s), s.close()), None,
                                         detail="startup"),
    # --- after startup
    "garbage-after-startup": Case(lambda s: (ready(s), s.send(b"\xde\xad\xbe\xef" * 64)),
                                  "larger than max_message_size", detail="larger than max_message_size"),
    "message-length-below-4": Case(lambda s: (ready(s), s.send(b"Q\0\0\0\x02")),
                                   "invalid length", detail="invalid length"),
    "message-length-zero": Case(lambda s: (ready(s), s.send(b"S\0\0\0\0")),
                                "invalid length", detail="invalid length"),
    "unknown-message-type": Case(lambda s: (ready(s), s.send(w.msg(b"z", b"abc"))),
                                 "unexpected message type 0x7a", detail="0x7a"),
    "backend-message-from-client": Case(lambda s: (ready(s), s.send(w.msg(b"T", b"\0\0"))),
                                        "unexpected message type 0x54", detail="0x54"),
    "password-message-after-startup": Case(lambda s: (ready(s), s.send(w.msg(b"p", b"secret\0"))),
                                           "unexpected message type 0x70", detail="0x70"),
    "oversized-length-field": Case(lambda s: (ready(s), s.send(b"Q\xff\xff\xff\xff" + b"SELECT 1")),
                                   "larger than max_message_size", detail="larger than max_message_size"),
    "query-without-nul": Case(lambda s: (ready(s), s.send(w.msg(b"Q", b"SELECT 1"))),
                              "malformed Query", detail="malformed Query"),
    "query-with-inner-nul": Case(lambda s: (ready(s), s.send(w.msg(b"Q", b"SELECT 1\0; DROP TABLE x\0"))),
                                 "malformed Query", detail="malformed Query"),
    "parse-missing-nul": Case(lambda s: (ready(s), s.send(w.msg(b"P", b"s1\0SELECT 1"))),
                              "malformed Parse", detail="malformed Parse"),
    "parse-missing-parameter-count": Case(lambda s: (ready(s), s.send(w.msg(b"P", b"s1\0SELECT 1\0"))),
                                          "malformed Parse", detail="malformed Parse"),
    "bind-missing-nul": Case(lambda s: (ready(s), s.send(w.msg(b"B", b"portal"))),
                             "malformed Bind", detail="malformed Bind"),
    "execute-short": Case(lambda s: (ready(s), s.send(w.msg(b"E", b"\0\0"))),
                          "malformed Execute", detail="malformed Execute"),
    "close-bad-kind": Case(lambda s: (ready(s), s.send(w.msg(b"C", b"Xname\0"))),
                           "malformed Close", detail="malformed Close"),
    "truncated-query-then-close": Case(lambda s: (_trunc_query(s), s.close()), None,
                                       detail=("incomplete", "truncated")),
}


def _xfail(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


# Cases whose failure is a known agent bug, reported to the agent's owner;
# strict, so a fix makes them pass loudly and the mark must go.
KNOWN: dict = {}


@pytest.mark.parametrize("name", [pytest.param(n, marks=KNOWN[n]) if n in KNOWN else n for n in CASES])
def test_hostile_input(hostile, name):
    case = CASES[name]
    s = hostile.connect()
    try:
        case.act(s)
        if case.message is not None:
            msgs = s.read_until_eof()
            fatal = w.fatal_of(msgs)
            assert fatal["C"] == case.sqlstate, fatal
            assert fatal["M"].startswith("sluice: ") and case.message in fatal["M"], fatal
    finally:
        s.close()
    evs = hostile.new_events(lambda evs: any(e["kind"] == case.event for e in evs))
    details = case.detail if isinstance(case.detail, tuple) else (case.detail,)
    matching = [e for e in evs if e["kind"] == case.event and any(d in (e["detail"] or "") for d in details)]
    assert matching, f"no {case.event} event mentioning {' or '.join(map(repr, details))}; new events: {evs}"
    assert all(e["uid"] == hostile.account.uid for e in matching), matching
    hostile.assert_unaffected()


def test_many_ssl_requests(hostile):
    """SSLRequest is answered 'N' (the grant socket is local); a client that
    keeps asking is cut off after two encryption requests."""
    s = hostile.connect()
    try:
        s.send(w.ssl_request() * 50)
        assert s.read_byte() == b"N"
        assert s.read_byte() == b"N"
        fatal = w.fatal_of(s.read_until_eof())
        assert fatal["C"] == "08P01" and "repeated encryption requests" in fatal["M"], fatal
    finally:
        s.close()
    evs = hostile.new_events(lambda evs: any(e["kind"] == "connection.malformed" for e in evs))
    assert any("repeated encryption requests" in e["detail"] for e in evs), evs
    hostile.assert_unaffected()


def test_ssl_request_then_startup_works(hostile):
    """One SSLRequest (and one GSSENCRequest), refused, then a normal
    session: what libpq does with sslmode=prefer."""
    s = hostile.connect()
    try:
        s.send(w.ssl_request())
        assert s.read_byte() == b"N"
        s.send(struct.pack("!II", 8, w.GSSENC_REQUEST))
        assert s.read_byte() == b"N"
        s.handshake()
        s.send(w.query("SELECT 1"))
        assert [t for t, _ in s.read_until("Z")] == ["T", "D", "C", "Z"]
    finally:
        s.close()
    hostile.assert_unaffected()


def test_oversized_query_refused_session_survives(hostile):
    """A Query over max_message_size (but under PostgreSQL's own 1 GB) is
    not a protocol violation: it is refused with 54000 naming the limit,
    its bytes are skipped, and the session answers the next query."""
    s = hostile.connect()
    try:
        ready(s)
        s.send(w.query("SELECT '" + "x" * (2 * MAX_MESSAGE) + "'"))
        msgs = s.read_until("Z")
        errs = [w.error_fields(body) for t, body in msgs if t == "E"]
        assert errs and errs[0]["C"] == "54000", msgs
        assert "max_message_size" in errs[0]["M"] and str(MAX_MESSAGE) in errs[0]["M"], errs
        s.send(w.query("SELECT 42"))
        msgs = s.read_until("Z")
        assert [t for t, _ in msgs] == ["T", "D", "C", "Z"], msgs
    finally:
        s.close()
    hostile.assert_unaffected()


def test_no_startup_packet(hostile):
    """A client that connects and says nothing is dropped after
    startup_timeout, told why, and the drop is recorded."""
    s = hostile.connect()
    t0 = time.monotonic()
    try:
        msgs = s.read_until_eof(timeout=STARTUP_TIMEOUT + 10)
        elapsed = time.monotonic() - t0
        assert STARTUP_TIMEOUT - 0.5 <= elapsed <= STARTUP_TIMEOUT + 5, elapsed
        fatal = w.fatal_of(msgs)
        assert fatal["C"].startswith("08") and fatal["M"].startswith("sluice: "), fatal
    finally:
        s.close()
    def startup_event(e):
        return e["kind"].startswith("connection.") and "startup" in (e["detail"] or "")
    evs = hostile.new_events(lambda evs: any(startup_event(e) for e in evs))
    assert any(startup_event(e) for e in evs), evs
    hostile.assert_unaffected()


def test_slow_startup_packet_within_timeout(hostile):
    """A startup packet that dribbles in a byte at a time, but within
    startup_timeout, is fine."""
    s = hostile.connect()
    try:
        for b in w.startup():
            s.send(bytes([b]))
            time.sleep(0.01)
        msgs = s.read_until("Z")
        assert msgs[0][0] == "R"
    finally:
        s.close()
    hostile.assert_unaffected()


def test_half_close_before_startup(hostile):
    """shutdown(SHUT_WR) straight after connect: the agent closes too."""
    s = hostile.connect()
    try:
        s.shutdown_write()
        msgs = s.read_until_eof(timeout=STARTUP_TIMEOUT + 10)
        if msgs:
            assert w.fatal_of(msgs)["C"].startswith("08"), msgs
    finally:
        s.close()
    hostile.assert_unaffected()


def test_half_close_after_query(hostile):
    """A client that sends a complete Query and then shuts down its sending
    side still gets the answer, as from PostgreSQL itself (which reads to
    EOF, runs what it read, answers, then exits)."""
    s = hostile.connect()
    try:
        s.handshake()
        s.send(w.query("SELECT 42"))
        s.shutdown_write()
        msgs = s.read_until_eof()
        assert [t for t, _ in msgs] == ["T", "D", "C", "Z"], msgs
    finally:
        s.close()
    hostile.assert_unaffected()


def test_half_close_mid_message(hostile):
    """Half a message, then shutdown(SHUT_WR): closed and recorded; the
    client may read a FATAL, nothing else."""
    s = hostile.connect()
    try:
        _trunc_query(s)
        s.shutdown_write()
        msgs = s.read_until_eof()
        if msgs:
            assert w.fatal_of(msgs)["C"] == "08P01", msgs
    finally:
        s.close()
    evs = hostile.new_events(lambda evs: any(e["kind"] == "connection.malformed" for e in evs))
    assert any(e["kind"] == "connection.malformed" for e in evs), evs
    hostile.assert_unaffected()


def test_data_after_terminate_is_ignored(hostile):
    """Terminate ends the session; bytes after it go nowhere."""
    s = hostile.connect()
    try:
        s.handshake()
        s.send(w.terminate() + b"\xff" * 100 + w.query("SELECT 1"))
        assert s.read_until_eof() == []
    finally:
        s.close()
    evs = hostile.new_events(lambda evs: any(e["kind"] == "connection.closed" for e in evs))
    assert any(e["kind"] == "connection.closed" and "terminated" in e["detail"] for e in evs), evs
    hostile.assert_unaffected()


def test_many_hostile_connections_at_once(hostile):
    """Fifty misbehaving connections open at the same time, some silent,
    some half-sent, some garbage, all dropped; the good session carries on."""
    socks = []
    try:
        for i in range(50):
            s = hostile.connect()
            kind = i % 5
            if kind == 0:
                s.send(b"\x00\x00\x01")                       # half a length word
            elif kind == 1:
                s.send(b"garbage" * 10)
            elif kind == 2:
                s.send(w.startup()[:20])                      # half a startup packet
            elif kind == 3:
                s.send(w.ssl_request())
            socks.append(s)                                   # kind 4: silent
        hostile.session.ping()
        for i, s in enumerate(socks):
            if i % 5 == 3:
                assert s.read_byte() == b"N"
            msgs = s.read_until_eof(timeout=STARTUP_TIMEOUT + 10)
            if msgs:
                assert w.fatal_of(msgs)["C"].startswith("08"), msgs
    finally:
        for s in socks:
            s.close()
    hostile.assert_unaffected()


def test_copy_messages_outside_copy_are_ignored(hostile):
    """CopyData (larger than max_message_size: it streams), CopyDone and
    CopyFail outside COPY, and Flush: PostgreSQL ignores the first three;
    so must the path through the grant, and the next query is answered."""
    s = hostile.connect()
    try:
        s.handshake()
        s.send(w.msg(b"d", b"x" * (2 * MAX_MESSAGE)) + w.msg(b"c") + w.msg(b"f", b"bye\0") + w.msg(b"H")
               + w.query("SELECT 7"))
        msgs = s.read_until("Z")
        assert [t for t, _ in msgs] == ["T", "D", "C", "Z"] and msgs[1][1].endswith(b"7"), msgs
    finally:
        s.close()
    hostile.assert_unaffected()


def test_copydata_with_impossible_length(hostile):
    """A CopyData header claiming 4 GiB streams to the server, which drops
    the connection (as it would without sluice); the client sees the end
    of the connection, nothing else breaks."""
    s = hostile.connect()
    try:
        s.handshake()
        s.send(b"d\xff\xff\xff\xff" + b"x" * 1000)
        msgs = s.read_until_eof()
        assert all(t == "E" for t, _ in msgs), msgs
    finally:
        s.close()
    evs = hostile.new_events(lambda evs: any(e["kind"] == "connection.closed" for e in evs))
    assert any(e["kind"] == "connection.closed" for e in evs), evs
    hostile.assert_unaffected()


def test_huge_function_call_is_refused_without_buffering(hostile):
    """A FunctionCall claiming 256 MiB is refused at once (42501, the
    session stays); its body is discarded as it arrives."""
    s = hostile.connect()
    try:
        s.handshake()
        s.send(b"F\x10\x00\x00\x00" + b"x" * 1000)
        msgs = s.read_until("Z")
        errs = [w.error_fields(b) for t, b in msgs if t == "E"]
        assert len(errs) == 1 and errs[0]["C"] == "42501" and errs[0]["S"] == "ERROR", msgs
        assert "FunctionCall" in errs[0]["M"], errs
    finally:
        s.close()
    hostile.assert_unaffected()
