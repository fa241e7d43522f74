#!/usr/bin/python3
"""A local OIDC provider for scripts/demo and bench/: the test IdP
(tests/node/idp.mjs, the npm package oidc-provider, driven by
tests/integration/idp.py) over HTTPS on 127.0.0.1 with a throwaway CA.

From the shell (scripts/lib/idp.sh runs it as a coprocess):

    idp_run.py DIR --client NAME[:GROUP,GROUP...] ... [--ttl SECONDS]

makes a CA in DIR/ca, starts the provider in DIR/idp with one
client-credentials client per --client (its tokens' sub is NAME, their
groups claim the GROUPs), then prints shell assignments, one a line, each
value quoted for the shell:

    IDP_ISSUER=https://localhost:PORT   IDP_PORT=PORT   IDP_PID=<node's pid>
    IDP_CA_FILE=DIR/ca/ca.crt   IDP_AUDIENCE=urn:sluice   IDP_GROUPS_CLAIM=groups
    IDP_READY=1

and then serves requests, one a line on standard input, fields separated
by tabs, answering one line each:

    token<TAB>CLIENT<TAB>PATH[<TAB>ACCOUNT]
        a fresh token for CLIENT into PATH (0600, owned by ACCOUNT when
        given, replaced atomically)  ->  "ok" or "error: why"
    quit

At end of input, "quit", SIGTERM or SIGINT it stops the provider and exits,
so the provider never outlives the script that started it, even one killed
with SIGKILL (its end of the pipe closes). Nothing here prints a token or a
client secret.

From Python (bench/bench.py): start(directory, clients, ttl) -> (ca, idp).
"""
from __future__ import annotations

import argparse
import os
import pwd
import shlex
import signal
import sys
from pathlib import Path

SRCDIR = Path(os.environ.get("SLUICE_SRCDIR") or Path(__file__).resolve().parents[2])
sys.path.insert(0, str(SRCDIR / "tests" / "integration"))
import idp as idp_mod  # noqa: E402
import sluice_fixtures as sf  # noqa: E402

# The longest a token may live: one bench run (a few minutes) with room to
# spare; the agent caps a session at [oidc] max_session anyway.
MAX_TTL = 24 * 3600


def parse_client(spec: str, ttl: int) -> dict:
    """NAME[:GROUP,GROUP...] -> a client for idp.IdP."""
    name, _, groups = spec.partition(":")
    if not name or any(c.isspace() for c in spec):
        raise ValueError(f"--client {spec!r}: NAME[:GROUP,GROUP...] without blanks")
    return {"client_id": name, "groups": [g for g in groups.split(",") if g], "alg": "RS256", "ttl": ttl}


def start(directory: Path, clients: list[dict]) -> tuple[sf.TestCA, idp_mod.IdP]:
    """A CA in directory/ca and the provider in directory/idp, started; the
    caller stops it (idp.stop())."""
    why = idp_mod.unavailable()
    if why:
        raise idp_mod.IdPError(why)
    directory = Path(directory)
    sf.make_dir(directory, 0o755)
    ca = sf.TestCA(directory / "ca", name="sluice demo IdP CA")
    idp = idp_mod.IdP(directory / "idp", ca, clients=clients)
    try:
        idp.start()
    except BaseException:
        idp.stop()
        raise
    return ca, idp


def _account(name: str) -> sf.Account:
    pw = pwd.getpwnam(name)
    return sf.Account(pw.pw_name, pw.pw_uid, pw.pw_gid)


def serve(idp: idp_mod.IdP) -> None:
    """Answer token requests on stdin until end of input or quit."""
    for line in sys.stdin:
        fields = line.rstrip("\n").split("\t")
        if fields == ["quit"]:
            return
        try:
            if fields[0] != "token" or len(fields) not in (3, 4):
                raise ValueError("expected token<TAB>CLIENT<TAB>PATH[<TAB>ACCOUNT] or quit")
            client, path = fields[1], Path(fields[2])
            if client not in idp.clients:
                raise ValueError(f"no client {client!r}")
            if not path.is_absolute():
                raise ValueError(f"{path} is not an absolute path")
            owner = _account(fields[3]) if len(fields) == 4 else None
            idp.write_token(path, client, owner=owner)
            answer = "ok"
        except (KeyError, OSError, ValueError, idp_mod.IdPError) as e:
            # KeyError: no such account. Messages name no token or secret.
            answer = f"error: {e}".replace("\n", " ")
        print(answer, flush=True)


def _stop_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="idp_run.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", type=Path)
    p.add_argument("--client", action="append", required=True, metavar="NAME[:GROUP,...]")
    p.add_argument("--ttl", type=int, default=idp_mod.DEFAULT_TTL,
                   help=f"seconds a token lives (default {idp_mod.DEFAULT_TTL})")
    a = p.parse_args(argv)
    if not 10 <= a.ttl <= MAX_TTL:
        p.error(f"--ttl must be 10 to {MAX_TTL} seconds")
    try:
        clients = [parse_client(c, a.ttl) for c in a.client]
    except ValueError as e:
        p.error(str(e))
    signal.signal(signal.SIGTERM, _stop_on_signal)
    idp = None
    try:
        try:
            _, idp = start(a.directory, clients)
        except (idp_mod.IdPError, sf.CommandFailed, OSError) as e:
            print(f"idp_run.py: the OIDC provider did not start: {e}", file=sys.stderr)
            return 1
        out = {"IDP_ISSUER": idp.issuer, "IDP_PORT": idp.port, "IDP_PID": idp.pid,
               "IDP_CA_FILE": idp.ca_file, "IDP_AUDIENCE": idp.audience,
               "IDP_GROUPS_CLAIM": idp.groups_claim, "IDP_LOG": idp.log_path, "IDP_READY": 1}
        for k, v in out.items():
            print(f"{k}={shlex.quote(str(v))}")
        sys.stdout.flush()
        serve(idp)
        return 0
    except KeyboardInterrupt:
        return 130
    finally:
        if idp is not None:
            idp.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
