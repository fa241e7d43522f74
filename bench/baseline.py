"""Hold another sluice tree's benchmark set-up open for bench/run --baseline.

    python3 bench/baseline.py SRCDIR BUILDDIR

Run by bench.py in a fresh interpreter, so the other tree's bench.py and
test fixtures are the ones loaded (an older tree's sluiced wants its own
configuration: the spine's knows no sessions, for example). It calls that
tree's own set-up with --targets direct,sluice (its own PostgreSQL cluster,
bus and agent, configured as that tree configures them), prints one JSON
line describing its sluice target, and tears everything down when its
standard input closes.

The JSON: {"user": account, "env": libpq environment, "pid": sluiced's pid,
"dbname": database, "guardrails": "[guardrail] ..." or "none"}.
"""
from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: baseline.py SRCDIR BUILDDIR", file=sys.stderr)
        return 2
    src, build = Path(argv[0]).resolve(), Path(argv[1]).resolve()
    os.environ["SLUICE_SRCDIR"] = str(src)
    os.environ["SLUICE_BUILDDIR"] = str(build)
    sys.path.insert(0, str(src / "bench"))
    bench = importlib.import_module("bench")
    args = bench.parse_args(["--targets", "direct,sluice"])
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
