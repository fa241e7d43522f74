"""Hold another sluice tree's benchmark set-up open for bench/run --baseline.

    python3 bench/baseline.py SRCDIR BUILDDIR [--scale N] [--no-guardrails]

Run by bench.py in a fresh interpreter, so the other tree's bench.py and
test fixtures are the ones loaded (an older tree's sluiced wants its own
configuration: the spine's knows no sessions, for example). It calls that
tree's own set-up with --targets direct,sluice (its own PostgreSQL cluster,
bus and agent, configured as that tree configures them), prints one JSON
line describing its sluice target, and tears everything down when its
standard input closes.

--scale and --no-guardrails are this run's (their defaults are bench.py's):
the other tree is given each one whose value differs from that tree's own
default, and when it cannot take it, this exits with an error rather than
measure a different cluster or configuration. A tree older than
--no-guardrails never writes a [guardrail] section: with guardrails on it
runs without one (the JSON says so); with them off it needs no flag.

The JSON: {"user": account, "env": libpq environment, "pid": sluiced's pid,
"dbname": database, "guardrails": "[guardrail] ..." or "none"}.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
from pathlib import Path


def their_args(bench, src: Path, want: argparse.Namespace) -> argparse.Namespace:
    """The other tree's parsed options for its set-up, with this run's scale
    and guardrail choice, or SystemExit saying why it cannot have them."""
    base = ["--targets", "direct,sluice"]
    defaults = bench.parse_args(base)
    extra = []
    if defaults.scale != want.scale:
        extra += ["--scale", str(want.scale)]
    theirs = getattr(defaults, "guardrails", None)  # None: that tree never writes a [guardrail]
    if theirs is True and not want.guardrails:
        extra.append("--no-guardrails")
    if theirs is False and want.guardrails:
        raise SystemExit(f"baseline: {src}/bench/bench.py runs sluice without a [guardrail] by default and "
                         "has no option to add one; run bench/run with --no-guardrails")
    try:
        args = bench.parse_args(base + extra)
    except SystemExit:
        # argparse has printed its error above.
        raise SystemExit(f"baseline: {src}/bench/bench.py does not accept {' '.join(extra)}, "
                         "so it cannot be set up like this run") from None
    if args.scale != want.scale or getattr(args, "guardrails", False) != (want.guardrails and theirs is not None):
        raise SystemExit(f"baseline: {src}/bench/bench.py did not take {' '.join(extra) or 'its defaults'} "
                         "as this run means them")
    return args


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/baseline.py")
    p.add_argument("src", type=Path)
    p.add_argument("build", type=Path)
    p.add_argument("--scale", type=int, default=10)
    p.add_argument("--no-guardrails", dest="guardrails", action="store_false")
    want = p.parse_args(argv)
    src, build = want.src.resolve(), want.build.resolve()
    os.environ["SLUICE_SRCDIR"] = str(src)
    os.environ["SLUICE_BUILDDIR"] = str(build)
    sys.path.insert(0, str(src / "bench"))
    bench = importlib.import_module("bench")
    args = their_args(bench, src, want)
    sf = bench.sf
    sf.require_root()
    accounts = sf.ensure_accounts((sf.AGENT_USER, sf.PG_USER, bench.BENCH_USER))
    sandbox = sf.new_sandbox("sluice-bench-baseline-")
    b = bench.Bench(args, sandbox, accounts)
    # Its progress lines go to stderr: stdout carries the one JSON line.
    real_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        b.setup()
        t = b.targets["sluice"]
        guard = getattr(bench, "GUARDRAIL_BLOCK", None) if getattr(args, "guardrails", False) else None
        line = json.dumps({"user": t.user, "env": t.env, "pid": b.agent.pid, "dbname": b.pg.dbname,
                           "guardrails": f"[guardrail] block = {guard}" if guard else "none"})
        real_stdout.write(line + "\n")
        real_stdout.flush()
        sys.stdin.read()  # until bench.py closes it
    finally:
        b.teardown()
        shutil.rmtree(sandbox, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
