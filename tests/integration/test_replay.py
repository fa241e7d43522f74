"""Recorded results and `sluicectl replay`: each statement's audit row keeps
what the client was sent back (its RowDescription and first DataRows, as
[agent] record_rows and record_bytes allow), and replay shows a grant's
session, or one statement, as it happened: time, statement, decision and
rule, the result table, row count, duration. Through psql (simple
protocol) and psycopg 3 (extended protocol, text and binary results)."""
from __future__ import annotations

import json
import os

import pytest

import sluice_fixtures as sf
from sluice_fixtures import SAMPLE_DB, SERVICE_A
from test_grants import connect, ctl_json, statements


def psql(grant, sql, env=None):
    return sf.psql_as(SERVICE_A, grant["socket_dir"], SAMPLE_DB, sql, env=env)


def replay_json(agent, what):
    return ctl_json(agent, "replay", what, "--database", str(agent.database))


def replay_text(agent, what):
    r = agent.ctl("replay", what, "--database", str(agent.database))
    assert r.rc == 0, r.stderr
    return r.stdout


def wait_rows(agent, grant_id, count):
    rows = []

    def enough():
        rows[:] = replay_json(agent, grant_id)
        return len(rows) >= count

    sf.wait_for(enough, 10, f"{count} statements of grant {grant_id}")
    return rows


def test_replay_shows_each_statement_with_what_it_sent_back(agent):
    g = agent.request_grant(SERVICE_A)
    r = psql(g, "select id, name, email from ops.customers order by id; "
                "select null::text as nothing, 42 as answer; "
                "select 1 where false; select 1/0")
    assert r.rc != 0 and "division by zero" in r.stderr
    rows = wait_rows(agent, g["id"], 4)
    first, second, empty, failed = rows[:4]

    assert first["sql"] == "select id, name, email from ops.customers order by id"
    assert (first["decision"], first["outcome"], first["rows"]) == ("allowed", "SELECT 3", 3)
    res = first["result"]
    assert [c["name"] for c in res["columns"]] == ["id", "name", "email"]
    assert [c["type_oid"] for c in res["columns"]] == [23, 25, 25]
    assert all(c["format"] == "text" for c in res["columns"])
    assert res["rows"] == [["1", "Ada Lovelace", "ada@example.com"],
                           ["2", "Grace Hopper", "grace@example.com"],
                           ["3", "Edsger Dijkstra", "edsger@example.com"]]
    assert res["truncated"] is False and res["unreadable"] is False
    # NULL stays null; a result with no rows still shows its columns.
    assert second["result"]["rows"] == [[None, "42"]]
    assert empty["result"]["columns"][0]["name"] == "?column?"
    assert empty["result"]["rows"] == [] and empty["rows"] == 0
    # An error: no result, the error kept.
    assert failed["result"] is None
    assert failed["sqlstate"] == "22012" and "division by zero" in failed["error"]

    text = replay_text(agent, g["id"])
    assert "select id, name, email from ops.customers order by id" in text
    assert "Grace Hopper" in text and "grace@example.com" in text
    assert "allowed" in text and "3 rows" in text
    assert "22012: division by zero" in text
    # The header line of the first result, and NULL shown as such.
    assert any(line.split() == ["id", "name", "email"] for line in text.splitlines())
    assert any(line.split() == ["NULL", "42"] for line in text.splitlines())

    # One statement by its id; the chain still verifies with results in it.
    one = replay_json(agent, str(first["id"]))
    assert len(one) == 1 and one[0]["result"] == res
    r = agent.ctl("audit", "verify", "--database", str(agent.database))
    assert r.rc == 0, r.stderr


def test_extended_protocol_text_and_binary(agent):
    g = agent.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        conn.execute("select %s::int + 1 as x, %s::text as s", (41, "héllo")).fetchall()
        with conn.cursor(binary=True) as cur:
            cur.execute("select %s::int as b, %s::text as t", (7, "bin")).fetchall()
        conn.execute("select 1 where %s", (False,)).fetchall()
    rows = wait_rows(agent, g["id"], 3)
    text_row, bin_row, none_row = rows[-3:]
    assert [c["name"] for c in text_row["result"]["columns"]] == ["x", "s"]
    assert text_row["result"]["rows"] == [["42", "héllo"]]
    cols = bin_row["result"]["columns"]
    assert [(c["name"], c["format"]) for c in cols] == [("b", "binary"), ("t", "binary")]
    # Binary values are shown as hex: int4 7, and text's bytes.
    assert bin_row["result"]["rows"] == [["\\x00000007", "\\x" + b"bin".hex()]]
    assert none_row["result"]["rows"] == [] and none_row["rows"] == 0


def test_a_description_belongs_to_its_own_statement(agent, accounts):
    """Raw extended protocol: Bind P1, Bind P2, Describe P1, Execute P2,
    Execute P1. P2's rows are not shown under P1's columns; P1's Execute,
    later, still gets its description."""
    import struct
    import regress_wire as w

    def parse(name, sql):
        return w.msg(b"P", name.encode() + b"\0" + sql.encode() + b"\0" + struct.pack("!H", 0))

    def bind(portal, stmt):
        return w.msg(b"B", portal.encode() + b"\0" + stmt.encode() + b"\0" + struct.pack("!HHH", 0, 0, 0))

    g = agent.request_grant(SERVICE_A)
    s = w.Wire.connect(g["socket_dir"], accounts[SERVICE_A])
    s.handshake()
    s.send(parse("s1", "select 1 as one") + parse("s2", "select 'x'::text as two, 2 as three") +
           bind("p1", "s1") + bind("p2", "s2") + w.msg(b"D", b"Pp1\0") +
           w.msg(b"E", b"p2\0" + struct.pack("!I", 0)) + w.msg(b"E", b"p1\0" + struct.pack("!I", 0)) +
           w.msg(b"S"))
    msgs = s.read_until("Z")
    s.send(w.terminate())
    s.close()
    assert [t for t, _ in msgs if t in "TDCE"] == ["T", "D", "C", "D", "C"], msgs
    rows = wait_rows(agent, g["id"], 2)
    p2, p1 = rows[-2:]
    assert p2["sql"].startswith("select 'x'") and p1["sql"] == "select 1 as one"
    assert p2["result"]["rows"] == [["x", "2"]]
    assert [c["name"] for c in p2["result"]["columns"]] in ([None, None], ["two", "three"])
    assert [c["name"] for c in p1["result"]["columns"]] == ["one"]
    assert p1["result"]["rows"] == [["1"]]


def test_caps_cut_what_is_kept_and_say_so(agent_factory):
    agent = agent_factory(agent={"record_rows": "2"})
    g = agent.request_grant(SERVICE_A)
    assert psql(g, "select n from generate_series(1, 10) n").rc == 0
    row = wait_rows(agent, g["id"], 1)[0]
    assert row["result"]["rows"] == [["1"], ["2"]]
    assert row["result"]["truncated"] is True and row["rows"] == 10
    assert "(2 of 10 rows recorded)" in replay_text(agent, g["id"])
    agent.stop()

    # record_bytes keeps whole rows only, within its budget.
    agent = agent_factory(agent={"record_bytes": "100"})
    g = agent.request_grant(SERVICE_A)
    assert psql(g, "select repeat('x', 30) as v from generate_series(1, 10)").rc == 0
    row = wait_rows(agent, g["id"], 1)[0]
    kept = row["result"]["rows"]
    assert 0 < len(kept) < 10 and all(v == ["x" * 30] for v in kept)
    assert row["result"]["truncated"] is True


def test_record_rows_zero_records_nothing(agent_factory):
    agent = agent_factory(agent={"record_rows": "0"})
    g = agent.request_grant(SERVICE_A)
    assert psql(g, "select name from ops.customers").rc == 0
    row = wait_rows(agent, g["id"], 1)[0]
    assert row["result"] is None and row["rows"] == 3
    assert "Ada Lovelace" not in replay_text(agent, g["id"])


def test_client_encoding_is_converted_for_replay(agent):
    g = agent.request_grant(SERVICE_A)
    with connect(SERVICE_A, g) as conn:
        conn.execute("set client_encoding to 'LATIN1'")
        assert conn.execute("select 'caf' || chr(233) as word").fetchone() == ("café",)
    row = wait_rows(agent, g["id"], 2)[1]
    assert row["result"]["rows"] == [["café"]]


def test_replay_of_nothing_fails_clearly(agent):
    r = agent.ctl("replay", "no-such-grant", "--database", str(agent.database))
    assert r.rc == 1 and "no statements recorded for grant no-such-grant" in r.stderr
    r = agent.ctl("replay", "999999", "--database", str(agent.database))
    assert r.rc == 1 and "no statement 999999" in r.stderr
    r = agent.ctl("replay")
    assert r.rc == 2
