"""Count test results for scripts/check.

    results.py automake BUILDDIR TEST...   cmocka/automake results of `make check`
    results.py junit FILE                  pytest's --junitxml report

Prints one line "PASSED FAILED SKIPPED" on stdout; names every failed or
skipped test on stderr, so the person reading the log sees what to look at.

Unit tests: each cmocka test case counts (from the "[ RUN ]" / "[ OK ]" lines
in the test's .log); a test binary that produced no cmocka lines counts as one
test with the result automake recorded in its .trs. A binary that crashed or
exited non-zero with no failed case counts one more failure, so a crash after
the last case (a sanitizer report at exit, say) is never lost.
"""
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

# cmocka's standard output: "[ RUN      ] name", "[       OK ] name", ...
CMOCKA_LINE = re.compile(r"^\[\s*(RUN|OK|FAILED|SKIPPED|ERROR)\s*\] (.+?)\s*$")


def note(msg):
    print(msg, file=sys.stderr)


def count_cmocka_log(text):
    """(passed, failed, skipped, failed_names, skipped_names, saw_cmocka)."""
    pending = {}  # name -> how many RUN lines without a result yet
    passed = failed = skipped = 0
    failed_names, skipped_names = [], []
    saw = False
    for line in text.splitlines():
        m = CMOCKA_LINE.match(line)
        if not m:
            continue
        what, name = m.groups()
        if what == "RUN":
            saw = True
            pending[name] = pending.get(name, 0) + 1
            continue
        # Only a result for a test that is running counts: the summary at the
        # end repeats "[  FAILED  ] name" for tests already counted.
        if pending.get(name, 0) == 0:
            continue
        pending[name] -= 1
        if what == "OK":
            passed += 1
        elif what == "SKIPPED":
            skipped += 1
            skipped_names.append(name)
        else:
            failed += 1
            failed_names.append(name)
    for name, n in pending.items():
        # Started, never finished: the binary died inside this test.
        failed += n
        failed_names.extend([name + " (crashed)"] * n)
    return passed, failed, skipped, failed_names, skipped_names, saw


def trs_result(path):
    try:
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(":test-result:"):
                return line.split(":", 2)[2].strip()
    except FileNotFoundError:
        return None
    return None


def automake(builddir, tests):
    builddir = Path(builddir)
    total = [0, 0, 0]
    for test in tests:
        base = builddir / test
        log = Path(str(base) + ".log")
        trs = Path(str(base) + ".trs")
        result = trs_result(trs)
        if result is None:
            note(f"  FAIL {test}: did not run (not built? see make output)")
            total[1] += 1
            continue
        text = log.read_text(errors="replace") if log.exists() else ""
        p, f, s, fnames, snames, saw = count_cmocka_log(text)
        if not saw:
            # Not a cmocka binary (or it never started): one test.
            if result in ("PASS", "XFAIL"):
                p = 1
            elif result == "SKIP":
                s, snames = 1, [test]
            else:
                f, fnames = 1, [f"{test} ({result})"]
        elif result in ("FAIL", "ERROR", "XPASS") and f == 0:
            f, fnames = 1, [f"{test}: exited non-zero after its cases ({result}); see {log}"]
        for n in fnames:
            note(f"  FAIL {test}: {n}" if not n.startswith(test) else f"  FAIL {n}")
        for n in snames:
            note(f"  SKIP {test}: {n}")
        total[0] += p
        total[1] += f
        total[2] += s
    return total


def junit(path):
    tree = ET.parse(path)
    total = [0, 0, 0]
    for case in tree.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            total[1] += 1
            note(f"  FAIL {name}")
        elif case.find("skipped") is not None:
            total[2] += 1
        else:
            total[0] += 1
    return total


def main(argv):
    if len(argv) >= 2 and argv[0] == "automake":
        total = automake(argv[1], argv[2:])
    elif len(argv) == 2 and argv[0] == "junit":
        total = junit(argv[1])
    else:
        note(__doc__)
        return 2
    print(*total)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
