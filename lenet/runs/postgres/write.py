"""Saved runs -> the PostgreSQL history: one transaction per run, each run stored once.

A run's identity is the SHA-256 of its canonical JSON (keys sorted, no spaces), so
the same run published twice, from two runners, or from a copy under
``results/baselines/`` is one row; ``INSERT ... ON CONFLICT DO NOTHING`` makes the
second publisher wait for the first's commit and then find the run there.
Everything about a run (its ``runs`` row and every ``benchmarks`` row, written
with COPY) is one transaction: a publisher killed midway leaves nothing of that
run visible, and publishing again stores it whole.

Each file gets one :class:`Outcome`; a file that is not a saved run is reported and
the others are still published. Database failures raise a StoreError (one line,
password masked) whose ``exit_code`` the command returns.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import orjson
import psycopg
from psycopg.types.json import Jsonb

from lenet.roundtrip import unstorable
from lenet.runs.checks import check_document
from lenet.runs.files import NotARunError, find_run_files, read_run
from lenet.runs.model import Run
from lenet.runs.postgres.connection import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    CredentialsError,
    FailedPartwayError,
    SchemaError,
    StoreError,
    connect,
    libpq_message,
    redact,
    redact_url,
    server_error,
)
from lenet.runs.postgres.schema import FLOAT_STATS, INT_STATS, SCHEMA, TEXT_STATS, ensure_schema
from lenet.terminal import printable

Status = Literal["published", "already there", "bad"]

RUN_KEYS = ("machine_info", "commit_info", "benchmarks")  # the rest of a run's keys go to runs.rest
BENCH_KEYS = ("name", "fullname", "group", "param", "params", "extra_info", "options", "stats")
BENCH_COLUMNS = (
    "run_id",
    "position",
    "name",
    "fullname",
    "group",
    "param",
    "label",
    "variant",
    "device",
    "phase",
    "batch_size",
    "optimizer",
    *FLOAT_STATS,
    *INT_STATS,
    *TEXT_STATS,
    "data",
    "params",
    "extra_info",
    "options",
    "stats_rest",
    "rest",
)
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class Outcome:
    """What became of one input: published, already there, or bad (``detail`` says why)."""

    source: str
    status: Status
    detail: str
    run_id: int | None = None

    def line(self) -> str:
        return f"{self.status:<13}  {printable(self.source)}  ({printable(self.detail)})"


@dataclass
class PublishSummary:
    outcomes: list[Outcome] = field(default_factory=list)
    schema: tuple[int, int] = (0, 0)  # schema version found, and now

    def count(self, status: Status) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def exit_code(self) -> int:
        return EXIT_BAD_INPUT if self.count("bad") else EXIT_OK

    def line(self) -> str:
        return (
            f"published {self.count('published')}, already there {self.count('already there')}, bad {self.count('bad')}"
        )


class BadRunError(ValueError):
    """A parsed run that cannot be stored faithfully; the message is one line."""


def content_sha(document: Mapping[str, Any]) -> str:
    """SHA-256 of the run's canonical JSON: the same run, however its file was formatted, has one identity."""
    try:
        canonical = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # integers beyond 64 bits: json's slower encoder takes them
        canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()


def _timestamp(value: Any) -> datetime | None:
    """An ISO-8601 text as an aware datetime (naive ones are UTC, as the loader reads them), else None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not _INT64[0] <= value <= _INT64[1]:
        return None
    return value


def _batch_size(value: Any) -> int | None:
    """As the loader's pd.to_numeric reads it: an integer, or a text of one."""
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    number = _int(value)
    return number if number is not None and -(2**31) <= number < 2**31 else None


def run_columns(run: Run, name: str) -> dict[str, Any]:
    """The ``runs`` row of a run read from a file (without id): its document as saved, and the filter
    columns as the run was checked when read (the one definition of its machine, label and commit)."""
    document = run.document or {}
    machine_info = document.get("machine_info")
    commit_info = document.get("commit_info")
    return {
        "identity": content_sha(document),
        "name": name,
        "run_time": _timestamp(document.get("datetime")),
        "pytest_benchmark_version": _text(document.get("version")),
        "fingerprint": run.machine.fingerprint,
        "machine_label": run.machine.label,
        "commit_id": run.commit.id,
        "commit_time": _timestamp(run.commit.time),
        "branch": run.commit.branch,
        "dirty": run.commit.dirty,
        "benchmark_count": len(document["benchmarks"]),
        "machine_info": Jsonb(machine_info if isinstance(machine_info, dict) else {}),
        "commit_info": Jsonb(commit_info if isinstance(commit_info, dict) else {}),
        # Everything else as saved (datetime, version, ...), and machine_info or commit_info
        # themselves when they are not objects, so that the document reads back the same.
        "rest": Jsonb({k: v for k, v in document.items() if k not in RUN_KEYS or _kept_whole(k, v)}),
    }


def _kept_whole(key: str, value: Any) -> bool:
    return key != "benchmarks" and not isinstance(value, dict)


def _fits_column(key: str, value: Any) -> bool:
    """Whether a statistic has exactly its column's type: an int in a float column would read back as a float."""
    if key in FLOAT_STATS:
        return type(value) is float
    if key in INT_STATS:
        return _int(value) is not None
    if key in TEXT_STATS:
        return isinstance(value, str)
    return key == "data" and isinstance(value, list) and all(type(v) is float for v in value)


def _split_stats(stats: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Statistics into columns where the type fits exactly, the rest (and misfits) kept as JSON."""
    columns: dict[str, Any] = {}
    rest: dict[str, Any] = {}
    for key, value in stats.items():
        (columns if _fits_column(key, value) else rest)[key] = value
    return columns, rest


def benchmark_rows(document: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """One COPY row per benchmark entry (run_id is filled in later); BadRunError for an entry that is not an object."""
    rows = []
    for position, bench in enumerate(document["benchmarks"]):
        if not isinstance(bench, dict):
            raise BadRunError(f"benchmark #{position} is {type(bench).__name__}, not an object; not a saved run")
        extra = bench.get("extra_info") if isinstance(bench.get("extra_info"), dict) else {}
        stats = bench.get("stats")
        stat_columns, stats_rest = _split_stats(stats) if isinstance(stats, dict) else ({}, {})
        rest = {k: v for k, v in bench.items() if k not in BENCH_KEYS}
        for key in ("name", "fullname", "group", "param"):
            if key in bench and bench[key] is not None and not isinstance(bench[key], str):
                rest[key] = bench[key]  # a value of another type is kept exactly, in rest
        if "stats" in bench and not isinstance(stats, dict):
            rest["stats"] = stats
        if "extra_info" in bench and not isinstance(bench["extra_info"], dict):
            rest["extra_info"] = bench["extra_info"]
        values: dict[str, Any] = {
            "run_id": None,
            "position": position,
            "name": _text(bench.get("name")),
            "fullname": _text(bench.get("fullname")),
            "group": _text(bench.get("group")),
            "param": _text(bench.get("param")),
            "label": _text(extra.get("variant")) or _text(bench.get("name")),
            "variant": _text(extra.get("variant")),
            "device": _text(extra.get("device")),
            "phase": _text(extra.get("phase")),
            "batch_size": _batch_size(extra.get("batch_size")),
            "optimizer": _text(extra.get("optimizer")),
            **stat_columns,
            "params": Jsonb(bench["params"]) if "params" in bench else None,
            "extra_info": Jsonb(extra) if isinstance(bench.get("extra_info"), dict) else None,
            "options": Jsonb(bench["options"]) if "options" in bench else None,
            "stats_rest": Jsonb(stats_rest) if stats_rest else None,
            "rest": Jsonb(rest) if rest else None,
        }
        rows.append(tuple(values.get(column) for column in BENCH_COLUMNS))
    return rows


def publish_run(connection: psycopg.Connection[Any], run: Run, name: str) -> tuple[bool, int]:
    """Store one run, as saved, under the file name ``name`` in one transaction: (True, id) when stored now,
    (False, id) when it already was.

    BadRunError for a run that cannot be stored faithfully (nothing is written).
    """
    document = run.document or {"benchmarks": []}
    fault = unstorable(document)
    if fault is not None:  # refused here, so that the database never holds a row a reader cannot read back
        raise BadRunError(f"{fault}; not stored, since no reader could read it back")
    rows = benchmark_rows(document)
    run = run_columns(run, name)
    columns = ", ".join(run)
    placeholders = ", ".join(["%s"] * len(run))
    try:
        with connection.transaction():
            inserted = connection.execute(
                f"INSERT INTO {SCHEMA}.runs ({columns}) VALUES ({placeholders}) "
                "ON CONFLICT (identity) DO NOTHING RETURNING id",
                list(run.values()),
            ).fetchone()
            if inserted is None:
                existing = connection.execute(
                    f"SELECT id FROM {SCHEMA}.runs WHERE identity = %s", (run["identity"],)
                ).fetchone()
                if existing is None:  # cannot happen under the unique constraint; say so rather than guess
                    raise BadRunError("the database reported the run as present but holds no row of its identity")
                return False, int(existing[0])
            run_id = int(inserted[0])
            _insert_benchmarks(connection, rows, run_id)
    except (psycopg.DataError, psycopg.IntegrityError, orjson.JSONEncodeError) as error:
        # The server (or the JSON encoder) refused a value: NUL characters, integers beyond 64 bits, ...
        raise BadRunError(f"the database refused a value: {libpq_message(str(error))}") from None
    return True, run_id


def _insert_benchmarks(connection: psycopg.Connection[Any], rows: Sequence[tuple[Any, ...]], run_id: int) -> None:
    """COPY the run's benchmark rows (inside the caller's transaction): far faster than INSERTs for 50 arrays."""
    columns = ", ".join(f'"{c}"' for c in BENCH_COLUMNS)
    with connection.cursor().copy(f"COPY {SCHEMA}.benchmarks ({columns}) FROM STDIN") as copy:
        for row in _with_run_id(rows, run_id):
            copy.write_row(row)


def _with_run_id(rows: Sequence[tuple[Any, ...]], run_id: int) -> Iterator[tuple[Any, ...]]:
    for row in rows:
        yield (run_id, *row[1:])


# One run to publish: how it is shown (its path), the name it is stored under (the file
# name), and how to read it (NotARunError when it is not a saved run).
RunToPublish = tuple[str, str, Callable[[], Run]]


def publish_paths(
    url: str,
    paths: Sequence[Path],
    report: Callable[[Outcome], None] | None = None,
    notice: Callable[[str], None] | None = None,
    connection: psycopg.Connection[Any] | None = None,
) -> PublishSummary:
    """Publish every saved run under ``paths`` (files or folders) into the database at ``url``.

    ``report`` is called with each file's outcome as it happens (the command prints it;
    the pytest plugin writes it to the terminal), ``notice`` with a line when the schema
    was created or migrated. Raises StoreError before anything is written when the
    database cannot be used, and FailedPartwayError when it fails partway: the outcomes
    already reported stay true, and publishing again finishes the rest. ``connection``
    reuses an open connection (tests); otherwise one is opened and closed.
    """
    missing = [Outcome(str(p), "bad", "no such file or folder") for p in paths if not p.exists()]
    # A file name that is not UTF-8 (or holds control characters) is stored as it is shown: escaped.
    sources = [(str(p), printable(p.name), functools.partial(read_run, p)) for p in find_run_files(paths)]
    return _publish(url, sources, missing, report, notice, connection)


def publish_documents(
    url: str,
    documents: Sequence[tuple[str, dict[str, Any]]],
    report: Callable[[Outcome], None] | None = None,
    notice: Callable[[str], None] | None = None,
    connection: psycopg.Connection[Any] | None = None,
) -> PublishSummary:
    """Publish parsed runs, each given with the file name it is stored under, as :func:`publish_paths` does.

    For a pytest plugin that holds the run pytest-benchmark is saving (the ``output_json``
    of ``pytest_benchmark_update_json``) rather than its file.
    """
    sources = [(name, name, functools.partial(_as_run, name, document)) for name, document in documents]
    return _publish(url, sources, [], report, notice, connection)


def _as_run(name: str, document: Any) -> Run:
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list):
        raise NotARunError(f"{name}: is not a pytest-benchmark saved run (no 'benchmarks' list)")
    return check_document(document, name, Path(name).stem)


def _publish(
    url: str,
    sources: Sequence[RunToPublish],
    outcomes: Sequence[Outcome],
    report: Callable[[Outcome], None] | None,
    notice: Callable[[str], None] | None,
    connection: psycopg.Connection[Any] | None,
) -> PublishSummary:
    summary = PublishSummary()

    def note(outcome: Outcome) -> None:
        summary.outcomes.append(outcome)
        if report is not None:
            report(outcome)

    for outcome in outcomes:
        note(outcome)
    own = connection is None
    connection = connection if connection is not None else connect(url)
    try:
        summary.schema = _migrate(connection, url)
        found, now = summary.schema
        if found != now and notice is not None:
            verb = "migrated" if found else "created"
            notice(f"{verb} the lenet schema of {redact_url(url)}: version {found} -> {now}")
        for source in sources:
            note(_publish_one(connection, url, source))
    finally:
        if own:
            connection.close()
    return summary


def _migrate(connection: psycopg.Connection[Any], url: str) -> tuple[int, int]:
    try:
        return ensure_schema(connection)
    except psycopg.errors.InsufficientPrivilege as error:
        raise SchemaError(
            f"cannot create or migrate the lenet schema with these credentials: {server_error(error, url)}"
        ) from None
    except psycopg.OperationalError as error:
        raise FailedPartwayError(
            f"the connection failed while checking the schema: {server_error(error, url)}"
        ) from None
    except psycopg.Error as error:  # any other refusal: the migration rolled back whole, nothing was written
        raise SchemaError(
            f"the database refused to create or migrate the lenet schema (nothing was changed): "
            f"{type(error).__name__}: {server_error(error, url)}"
        ) from None


def _publish_one(connection: psycopg.Connection[Any], url: str, source: RunToPublish) -> Outcome:
    shown, name, load = source
    try:
        run = load()
    except NotARunError as error:
        return Outcome(shown, "bad", _reason(str(error), shown))
    try:
        stored, run_id = publish_run(connection, run, name)
    except BadRunError as error:
        return Outcome(shown, "bad", redact(str(error), url))
    except psycopg.errors.InsufficientPrivilege as error:
        raise CredentialsError(
            f"the role of {redact_url(url)} may not publish ({server_error(error, url)}); "
            "grant it INSERT and SELECT on the tables of schema lenet"
        ) from None
    except psycopg.OperationalError as error:
        raise FailedPartwayError(
            f"the connection failed while publishing {shown} (not stored; runs reported before it are): "
            f"{server_error(error, url)}"
        ) from None
    except psycopg.Error as error:
        raise FailedPartwayError(f"the database refused {shown} (not stored): {server_error(error, url)}") from None
    count = len((run.document or {}).get("benchmarks", []))
    if stored:
        return Outcome(shown, "published", f"run {run_id}, {count} benchmarks", run_id)
    return Outcome(shown, "already there", f"run {run_id}", run_id)


def _reason(message: str, shown: str) -> str:
    """The loader's one line without the path it starts with (the outcome names the path)."""
    prefix = f"{shown}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


__all__ = [
    "BadRunError",
    "Outcome",
    "PublishSummary",
    "StoreError",
    "benchmark_rows",
    "content_sha",
    "publish_documents",
    "publish_paths",
    "publish_run",
    "run_columns",
]


def publish_saved_run(url: str, document: dict[str, Any]) -> str:
    """Publish the run a ``pytest bench`` session is saving; one line saying what happened (never raises).

    The saved file stays the record: a database that cannot be reached costs a warning, and
    ``scripts/publish.py`` can publish the file later (it is then recognised, not duplicated).
    """
    name = f"pytest-bench-{document.get('datetime', 'run')}"
    try:
        summary = publish_documents(url, [(name, document)])
    except StoreError as error:
        return f"lenet-bench: not published to {redact_url(url)}: {error}"
    return f"lenet-bench: {summary.line()} to {redact_url(url)}"
