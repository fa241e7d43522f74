"""Support for test_regress_diff.py: PostgreSQL 15's regression scripts run
with psql directly against one cluster and through a sluice grant against a
twin cluster, then compared.

Why two clusters: the scripts create roles, tablespaces, prepared
transactions and database-wide settings, and they name the database
("regression") in their output. Two identically initialised clusters let
both runs use the same database name and the same starting state, run at
the same time (two cores), and keep whatever a script leaves behind out of
the cluster the other integration tests share.

Nothing here copies the corpus: scripts are read from
../shared/corpus/pg15-regress at test time (SLUICE_REGRESS_CORPUS
overrides the path).
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import sluice_fixtures as sf

CORPUS = Path(os.environ.get("SLUICE_REGRESS_CORPUS")
              or Path(__file__).resolve().parents[3] / "shared" / "corpus" / "pg15-regress")
DBNAME = "regression"
TEMPLATE = "regress_template"
SCRIPT_TIMEOUT = 300

# What pg_regress gives a temporary instance and its clients, so the scripts
# behave as they were written to (see pg_regress.c): a fixed time zone and
# date style, two prepared-transaction slots; autovacuum off so a background
# ANALYZE cannot change a plan in one run and not the other.
CLUSTER_SETTINGS = {
    "autovacuum": "off",
    "max_prepared_transactions": "2",
    "timezone": "'PST8PDT'",
    "datestyle": "'Postgres, MDY'",
    "log_connections": "off",
}
CLIENT_ENV = {
    "PGTZ": "PST8PDT",                 # libpq sends these as startup parameters,
    "PGDATESTYLE": "Postgres, MDY",    # as they are under pg_regress
    "PGCONNECT_TIMEOUT": "10",
    # test_setup.sql and others \getenv these. The data files and regress.so
    # are not in the corpus: the paths do not exist, on purpose, the same
    # way in both runs.
    "PG_ABS_SRCDIR": "/nonexistent/pg15-regress-src",
    "PG_LIBDIR": "/nonexistent/pg15-regress-lib",
    "PG_DLSUFFIX": ".so",
}
PSQL_ARGS = ["psql", "-X", "-a", "-q", "-v", "HIDE_TABLEAM=on", "-v", "HIDE_TOAST_COMPRESSION=on"]

# The grant's [guardrail]: nothing blocked, no function listed, and text the
# classifier cannot parse forwarded (the server answers it, as it does
# directly). What stays is built in: standard_conforming_strings is pinned
# on (see NOT_RUN).
ALLOW_ALL_GUARDRAIL = {"block": "", "functions": "", "unparsed": "allow"}

# --- which scripts ---------------------------------------------------------------

# Scripts that cannot be compared, and why. Everything else in the corpus runs.
# Many scripts also lean on objects test_setup.sql would make from the
# regression suite's data files and regress.so, which the corpus does not
# hold: they run all the same (the affected statements fail identically in
# both runs) and are listed in DEGRADED, for the record.
NOT_RUN: dict[str, str] = {
    "test_setup.sql": "it builds the template every other script starts from; compared on its own "
                      "by test_regress_test_setup",
}

DEGRADED = {
    # needs regress.so (C functions)
    "alter_generic.sql", "conversion.sql", "create_function_c.sql", "create_type.sql",
    "create_view.sql", "foreign_data.sql", "indirect_toast.sql", "lock.sql", "misc.sql",
    "misc_functions.sql", "triggers.sql",
}


# psql's \lo_import, \lo_export and \lo_unlink call libpq's large-object
# functions, which use the FunctionCall protocol message; the agent refuses
# it by design (it runs a function by OID, around SQL and every rule that
# reads SQL). Those three meta-commands are taken out of largeobject.sql
# (in memory) for both runs; test_regress_lo_meta_commands_refused checks
# the refusal itself. Everything else in the script, including the SQL-level
# lo_* functions and \lo_list, is compared as it is.
_FASTPATH_META = re.compile(rb"^\\lo_(import|export|unlink)\b.*\n?", re.M)


def _without_fastpath_meta(sql: bytes) -> bytes:
    return _FASTPATH_META.sub(b"", sql)


# standard_conforming_strings is pinned on through a grant (the proxy reads
# string literals as libpg_query does, with it on): SET/RESET of it, and
# DISCARD ALL (which resets it), are refused by design, and everything a
# script does after turning it off would differ. Those statements — exactly
# the single-line ones listed here, nothing else — are taken out of the
# four scripts that have them, for both runs, so the rest of each script is
# still compared; test_regress_pinned_settings_refused checks the refusal.
_PINNED = re.compile(rb"^(?:(?:set|reset)\s+standard_conforming_strings\b[^;\n]*|discard\s+all);[ \t]*\n?",
                     re.M | re.I)
PINNED_SCRIPTS = {  # script: how many statements come out
    "guc.sql": 1, "plpgsql.sql": 2, "regex.sql": 1, "strings.sql": 9,
}


def _without_pinned_settings(sql: bytes) -> bytes:
    return _PINNED.sub(b"", sql)


PREPROCESS = {"largeobject.sql": _without_fastpath_meta,
              **{name: _without_pinned_settings for name in PINNED_SCRIPTS}}


def script_sql(name: str) -> bytes:
    """The script's text as both runs get it (see PREPROCESS)."""
    sql = (CORPUS / name).read_bytes()
    fix = PREPROCESS.get(name)
    return fix(sql) if fix else sql


def scripts() -> list[str]:
    """Every .sql script of the corpus that is compared, sorted; [] when the
    corpus is not there."""
    if not CORPUS.is_dir():
        return []
    return sorted(p.name for p in CORPUS.glob("*.sql") if p.name not in NOT_RUN)


# --- clusters ----------------------------------------------------------------------

class RegressCluster:
    """A PgCluster for one side of the comparison. The broker role is a
    superuser here (the regression suite runs as one; this cluster is ours
    alone), and regress_template holds what test_setup.sql makes."""

    def __init__(self, sandbox: Path, name: str, owner: sf.Account):
        self.name = name
        self.pg = sf.PgCluster(sandbox / f"regress-{name}", owner, settings=CLUSTER_SETTINGS,
                               dbname=TEMPLATE, sample_sql=None)
        # Server-side COPY TO/FROM files and lo_export write below
        # PG_ABS_BUILDDIR/results as the cluster's owner.
        self.builddir = sf.make_dir(sandbox / f"regress-{name}-build", 0o755, owner)
        sf.make_dir(self.builddir / "results", 0o777, owner)
        self.base_roles: set[str] = set()
        self.base_tablespaces: set[str] = set()
        self._super = None

    def start(self) -> "RegressCluster":
        self.pg.start()
        self.pg.psql_super(f"ALTER ROLE {self.pg.broker_user} SUPERUSER", "postgres").check("superuser")
        self._super = self.pg.connect_super("postgres")
        self.base_roles = self._names("SELECT rolname FROM pg_roles")
        self.base_tablespaces = self._names("SELECT spcname FROM pg_tablespace")
        return self

    def stop(self) -> None:
        if self._super is not None:
            self._super.close()
            self._super = None
        self.pg.stop()

    def _names(self, q: str) -> set[str]:
        return {r[0] for r in self._super.execute(q).fetchall()}

    def env(self) -> dict[str, str]:
        return dict(CLIENT_ENV, PG_ABS_BUILDDIR=str(self.builddir))

    def direct_env(self) -> dict[str, str]:
        """libpq variables for psql straight to this cluster as the broker."""
        e = self.env()
        e.update(self.pg.broker_env())
        e["PGDATABASE"] = DBNAME
        return e

    def build_template(self, setup_sql: bytes) -> "Result":
        """Run test_setup.sql in regress_template, directly (both clusters
        the same way: what is compared is what comes after)."""
        env = self.direct_env()
        env["PGDATABASE"] = TEMPLATE
        return run_psql(None, env, setup_sql)

    def reset(self, template: str = TEMPLATE) -> None:
        """A fresh "regression" from template, and nothing left of the
        previous script: its prepared transactions, database, roles,
        tablespaces and the broker's per-role settings."""
        s = self._super
        if self._names(f"SELECT datname FROM pg_database WHERE datname = '{DBNAME}'"):
            gids = [r[0] for r in s.execute(
                "SELECT gid FROM pg_prepared_xacts WHERE database = %s", (DBNAME,)).fetchall()]
            subs = [r[0] for r in s.execute(
                "SELECT subname FROM pg_subscription s JOIN pg_database d ON d.oid = s.subdbid "
                "WHERE d.datname = %s", (DBNAME,)).fetchall()]
            if gids or subs:
                with self.pg.connect_super(DBNAME) as c:
                    for g in gids:
                        c.execute(f"ROLLBACK PREPARED '{g}'")
                    for sub in subs:
                        c.execute(f'ALTER SUBSCRIPTION "{sub}" DISABLE')
                        c.execute(f'ALTER SUBSCRIPTION "{sub}" SET (slot_name = NONE)')
                        c.execute(f'DROP SUBSCRIPTION "{sub}"')
            s.execute(f"DROP DATABASE {DBNAME} WITH (FORCE)")
        for ts in self._names("SELECT spcname FROM pg_tablespace") - self.base_tablespaces:
            s.execute(f'DROP TABLESPACE "{ts}"')
        extra = self._names("SELECT rolname FROM pg_roles") - self.base_roles
        if extra:
            roles = ", ".join(f'"{r}"' for r in sorted(extra))
            for db in ("postgres", TEMPLATE):
                with self.pg.connect_super(db) as c:
                    c.execute(f"DROP OWNED BY {roles} CASCADE")
            s.execute(f"DROP ROLE {roles}")
        s.execute(f"ALTER ROLE {self.pg.broker_user} RESET ALL")
        s.execute(f"CREATE DATABASE {DBNAME} TEMPLATE {template} OWNER {self.pg.broker_user}")


# --- running psql --------------------------------------------------------------------

@dataclass
class Result:
    rc: int
    output: str      # stdout and stderr as psql interleaved them
    seconds: float


def run_psql(user: Optional[str], env: dict[str, str], sql: bytes, timeout: float = SCRIPT_TIMEOUT) -> Result:
    """psql -X -a -q with sql on stdin (as pg_regress runs it: no file name
    in error messages), stdout and stderr into one stream, as user."""
    t0 = time.monotonic()
    p = subprocess.run(sf.as_user_cmd(user, PSQL_ARGS), input=sql, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=sf.clean_env(env), timeout=timeout, cwd="/")
    return Result(p.returncode, p.stdout.decode("utf-8", "surrogateescape"), time.monotonic() - t0)


# --- normalising ------------------------------------------------------------------------

def normalise(text: str, builddir: Path) -> str:
    """What may legitimately differ between the two runs, made equal.
    Each rule is narrow and says why; nothing here hides a whole line."""
    # Each cluster has its own PG_ABS_BUILDDIR (server-side COPY and
    # lo_export files); error messages name it.
    text = text.replace(str(builddir), "@abs_builddir@")
    return text


def first_difference(a: str, b: str, context: int = 3, limit: int = 60) -> str:
    """A unified diff of a and b, cut to limit lines."""
    import difflib
    d = list(difflib.unified_diff(a.splitlines(), b.splitlines(), "direct", "through the grant",
                                  n=context, lineterm=""))
    if len(d) > limit:
        d = d[:limit] + [f"... ({len(d) - limit} more diff lines)"]
    return "\n".join(d)
