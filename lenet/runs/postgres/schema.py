"""The tables of the PostgreSQL history, and their ordered migrations.

Everything lives in the PostgreSQL schema ``lenet`` so that a shared database can
hold other projects' tables too. ``lenet.schema_version`` has one row per applied
migration. :func:`ensure_schema` (the publisher) applies the missing migrations in
one transaction under an advisory lock, so that publishers starting together on an
empty or older database migrate it exactly once and the others wait, then find it
done. A database whose version is newer than this code's is refused in one line:
older code must not write rows whose meaning it does not know. :func:`require_schema`
(the readers) never migrates: readers may hold read-only credentials.

Layout (one saved run file = one ``runs`` row + one ``benchmarks`` row per entry):

* ``runs``: ``identity`` (SHA-256 of the run's canonical JSON, unique: a run
  published twice is stored once), the file ``name``, the columns every filter
  reads (``fingerprint``, ``machine_label``, ``commit_id``, ``commit_time``,
  ``branch``, ``run_time``), and the run as saved: ``machine_info``,
  ``commit_info`` and ``rest`` (its other keys: ``datetime``, ``version``) as JSONB.
* ``benchmarks``: the entry's ``name``, ``fullname``, ``group``, ``param``, the
  filter columns taken from ``extra_info`` (``label``, ``variant``, ``device``,
  ``phase``, ``batch_size``, ``optimizer``), each statistic in its own column,
  ``data`` (per-round seconds) as ``double precision[]``, and ``params``,
  ``extra_info``, ``options``, ``stats_rest`` and ``rest`` as JSONB: whatever did not
  fit a column is kept there, so the document read back has every value it was saved with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from lenet.runs.postgres.connection import SchemaError

SCHEMA = "lenet"
# pg_advisory_xact_lock key: any constant shared by every publisher; these are the bytes of "lenetsch".
LOCK_KEY = int.from_bytes(b"lenetsch", "big") & 0x7FFF_FFFF_FFFF_FFFF

FLOAT_STATS = ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "ld15iqr", "hd15iqr", "ops", "total")
INT_STATS = ("rounds", "iterations", "iqr_outliers", "stddev_outliers")
TEXT_STATS = ("outliers",)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


_STAT_COLUMNS = ",\n    ".join(
    [f"{name} double precision" for name in FLOAT_STATS]
    + [f"{name} bigint" for name in INT_STATS]
    + [f"{name} text" for name in TEXT_STATS]
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "runs and their benchmarks",
        (
            f"""CREATE TABLE {SCHEMA}.runs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    identity text NOT NULL UNIQUE,
    name text NOT NULL,
    run_time timestamptz,
    pytest_benchmark_version text,
    fingerprint text NOT NULL,
    machine_label text NOT NULL,
    commit_id text NOT NULL,
    commit_time timestamptz,
    branch text,
    dirty boolean NOT NULL,
    benchmark_count integer NOT NULL,
    machine_info jsonb NOT NULL,
    commit_info jsonb NOT NULL,
    rest jsonb NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now()
)""",
            f"""CREATE TABLE {SCHEMA}.benchmarks (
    run_id bigint NOT NULL REFERENCES {SCHEMA}.runs (id) ON DELETE CASCADE,
    position integer NOT NULL,
    name text,
    fullname text,
    "group" text,
    param text,
    label text,
    variant text,
    device text,
    phase text,
    batch_size integer,
    optimizer text,
    {_STAT_COLUMNS},
    data double precision[],
    params jsonb,
    extra_info jsonb,
    options jsonb,
    stats_rest jsonb,
    rest jsonb,
    PRIMARY KEY (run_id, position)
)""",
        ),
    ),
    Migration(
        2,
        "indexes for the filters: machine, commit, time, branch, variant, phase, batch size",
        (
            # text_pattern_ops: fingerprint and commit filters are prefixes (LIKE 'abc%'), which a
            # default-collation btree cannot serve outside the C locale.
            f"CREATE INDEX runs_fingerprint_time ON {SCHEMA}.runs (fingerprint text_pattern_ops, run_time DESC)",
            f"CREATE INDEX runs_commit ON {SCHEMA}.runs (commit_id text_pattern_ops)",
            f"CREATE INDEX runs_commit_time ON {SCHEMA}.runs (commit_time)",
            f"CREATE INDEX runs_time ON {SCHEMA}.runs (run_time)",
            f"CREATE INDEX runs_branch_time ON {SCHEMA}.runs (branch, run_time DESC)",
            # ad hoc questions of machine_info ('every H100 runner'): machine_info @> '{"gpu_name": ...}'
            f"CREATE INDEX runs_machine_info ON {SCHEMA}.runs USING gin (machine_info jsonb_path_ops)",
            f"CREATE INDEX benchmarks_phase_batch ON {SCHEMA}.benchmarks (phase, batch_size)",
            f"CREATE INDEX benchmarks_batch ON {SCHEMA}.benchmarks (batch_size)",
            f"CREATE INDEX benchmarks_label ON {SCHEMA}.benchmarks (label text_pattern_ops)",
            f"CREATE INDEX benchmarks_variant ON {SCHEMA}.benchmarks (variant)",
        ),
    ),
)
LATEST = MIGRATIONS[-1].version


def schema_version(connection: psycopg.Connection[Any]) -> int:
    """The highest applied migration, 0 for a database that has none of our tables."""
    table = connection.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.schema_version",)).fetchone()
    if table is None or table[0] is None:
        return 0
    row = connection.execute(f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_version").fetchone()
    return int(row[0]) if row else 0


def _refuse_newer(found: int, latest: int) -> SchemaError:
    return SchemaError(
        f"the database has schema version {found}, newer than this code's {latest}: "
        "update lenet-bench here (git pull; pip install -e .) before publishing or reading"
    )


def ensure_schema(connection: psycopg.Connection[Any], migrations: Sequence[Migration] = MIGRATIONS) -> tuple[int, int]:
    """Create or migrate the schema to the last of ``migrations``; (version found, version now).

    The connection must be in autocommit mode (no transaction open): the migrations run
    in a transaction of their own, all or nothing.
    """
    latest = migrations[-1].version
    found = schema_version(connection)
    if found > latest:
        raise _refuse_newer(found, latest)
    if found == latest:
        return found, found
    with connection.transaction():
        # Publishers that start together wait here; the version is read again under the lock.
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        connection.execute(
            f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                applied_by text NOT NULL DEFAULT current_user
            )"""
        )
        current = schema_version(connection)
        if current > latest:
            raise _refuse_newer(current, latest)
        found = current  # what this publisher migrates from: another may have migrated while it waited for the lock
        for migration in migrations:
            if migration.version <= current:
                continue
            for statement in migration.statements:
                connection.execute(statement)
            connection.execute(
                f"INSERT INTO {SCHEMA}.schema_version (version, description) VALUES (%s, %s)",
                (migration.version, migration.description),
            )
    return found, latest


def require_schema(connection: psycopg.Connection[Any], latest: int = LATEST) -> int:
    """For readers: the schema must be exactly this code's version; SchemaError otherwise."""
    found = schema_version(connection)
    if found == latest:
        return found
    if found > latest:
        raise _refuse_newer(found, latest)
    if found == 0:
        raise SchemaError("the database holds no lenet-bench runs yet (no lenet schema): publish runs into it first")
    raise SchemaError(
        f"the database has schema version {found}, older than this code's {latest}: migrate it with "
        "`python scripts/publish.py --migrate --db URL` (needs a role that may alter the tables)"
    )
