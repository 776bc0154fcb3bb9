"""The PostgreSQL history -> :class:`~lenet.runs.model.Run`, filtered in SQL.

Every filter of a :class:`~lenet.runs.selection.RunFilter` becomes a WHERE clause, so
only the runs and the benchmark rows selected leave the server (what the filters mean
is in :mod:`lenet.runs.selection`; globs are ``fnmatch.fnmatchcase``'s, translated to
PostgreSQL regular expressions). Columns become a ``Run`` through the same checks a saved
file goes through (:func:`lenet.runs.checks.check_run`), so a run reads the same wherever it
lives. A database run's source is ``postgresql:<run id>``, never a path.
"""

from __future__ import annotations

import contextlib
import functools
import math
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from psycopg import pq
from psycopg.abc import Buffer
from psycopg.adapt import Loader

from lenet.runs.checks import check_run
from lenet.runs.model import Run
from lenet.runs.postgres.connection import (
    CredentialsError,
    FailedPartwayError,
    StoreError,
    connect,
    libpq_message,
    redact_url,
    server_error,
)
from lenet.runs.postgres.schema import FLOAT_STATS, INT_STATS, SCHEMA, TEXT_STATS, require_schema
from lenet.runs.runset import RunSet
from lenet.runs.selection import QueryError, RunFilter, aware

SOURCE_PREFIX = "postgresql:"
_STAT_COLUMNS = (*FLOAT_STATS, *INT_STATS, *TEXT_STATS)


def glob_to_regex(pattern: str) -> str:
    """``fnmatch.fnmatchcase``'s glob as an anchored PostgreSQL (ARE) regular expression."""
    out = ["^"]
    index, size = 0, len(pattern)
    while index < size:
        char = pattern[index]
        index += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            end = index
            if end < size and pattern[end] == "!":
                end += 1
            if end < size and pattern[end] == "]":
                end += 1
            while end < size and pattern[end] != "]":
                end += 1
            if end >= size:  # no closing bracket: fnmatch reads a literal '['
                out.append(r"\[")
                continue
            members = pattern[index:end]
            index = end + 1
            negate = members.startswith("!")
            members = members[1:] if negate else members
            out.append("[" + ("^" if negate else "") + _bracket_members(members) + "]")
        else:
            out.append(_escape(char))
    return "".join(out) + "$"


def _escape(char: str) -> str:
    # In AREs a backslash before a non-alphanumeric character makes it literal; before a letter it is an escape.
    return "\\" + char if char.isascii() and not char.isalnum() else char


def _bracket_members(members: str) -> str:
    """Members of a bracket set, each literal except a '-' between two members (a range)."""
    out = []
    for position, char in enumerate(members):
        is_range = char == "-" and 0 < position < len(members) - 1
        out.append("-" if is_range else _escape(char))
    return "".join(out)


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# --- SQL ----------------------------------------------------------------------------------


# A clause: (filter name, the filter's value as shown, SQL, parameters), in the order an empty result is explained.
Clause = tuple[str, str, str, list[Any]]
# What an empty result lists as the values the database does have, per filter.
_KNOWN = {
    "machine": "r.fingerprint || ' ' || r.machine_label",
    "commit": "r.commit_id",
    "commit range": "r.commit_id",
    "branch": "r.branch",
    "since": "min(r.run_time)::text || ' to ' || max(r.run_time)::text",  # the span of run times
    "until": "min(r.run_time)::text || ' to ' || max(r.run_time)::text",
    "variant": "b.label",
    "phase": "b.phase",
    "batch size": "b.batch_size",
}


def _run_clauses(filters: RunFilter, commit_times: list[str] | None) -> list[Clause]:
    """Run-level clauses, over ``runs r``."""
    clauses: list[Clause] = []
    if filters.machines:
        either = " OR ".join(["r.fingerprint LIKE %s OR r.machine_label ~ %s"] * len(filters.machines))
        params = [p for pattern in filters.machines for p in (_like_prefix(pattern), glob_to_regex(pattern))]
        clauses.append(("machine", ", ".join(filters.machines), f"({either})", params))
    if filters.commits:
        either = " OR ".join(["r.commit_id LIKE %s"] * len(filters.commits))
        clauses.append(
            ("commit", ", ".join(filters.commits), f"({either})", [_like_prefix(c) for c in filters.commits])
        )
    if commit_times is not None and filters.commit_range is not None:
        shown = "..".join(filters.commit_range)
        clauses.append(
            (
                "commit range",
                shown,
                "r.commit_time > %s::timestamptz AND r.commit_time <= %s::timestamptz",
                list(commit_times),
            )
        )
    if filters.branches:
        clauses.append(("branch", ", ".join(filters.branches), "r.branch = ANY(%s)", [list(filters.branches)]))
    if filters.since is not None:
        clauses.append(("since", aware(filters.since).isoformat(), "r.run_time >= %s", [aware(filters.since)]))
    if filters.until is not None:
        clauses.append(("until", aware(filters.until).isoformat(), "r.run_time < %s", [aware(filters.until)]))
    return clauses


def _bench_clauses(filters: RunFilter) -> list[Clause]:
    """Benchmark-level clauses, over ``benchmarks b``."""
    clauses: list[Clause] = []
    if filters.variants:
        either = " OR ".join(["b.label ~ %s"] * len(filters.variants))
        clauses.append(
            ("variant", ", ".join(filters.variants), f"({either})", [glob_to_regex(v) for v in filters.variants])
        )
    if filters.phases:
        clauses.append(("phase", ", ".join(filters.phases), "b.phase = ANY(%s)", [list(filters.phases)]))
    if filters.batch_sizes:
        sizes = [int(b) for b in filters.batch_sizes]
        clauses.append(("batch size", ", ".join(map(str, sizes)), "b.batch_size = ANY(%s)", [sizes]))
    return clauses


def _join(clauses: Sequence[Clause]) -> tuple[str, list[Any]]:
    if not clauses:
        return "TRUE", []
    return " AND ".join(c[2] for c in clauses), [p for c in clauses for p in c[3]]


def _selected_runs_sql(filters: RunFilter, commit_times: list[str] | None) -> tuple[str, list[Any]]:
    """SQL for the ids of the selected runs, and its parameters."""
    run_where, params = _join(_run_clauses(filters, commit_times))
    bench_where, bench_params = _join(_bench_clauses(filters))
    sql = f"SELECT r.id, r.fingerprint, r.commit_id, r.dirty, r.run_time FROM {SCHEMA}.runs r WHERE {run_where}"
    if _bench_clauses(filters):
        sql += f" AND EXISTS (SELECT 1 FROM {SCHEMA}.benchmarks b WHERE b.run_id = r.id AND {bench_where})"
        params += bench_params
    newest_first = "PARTITION BY s.fingerprint ORDER BY s.run_time DESC NULLS LAST, s.id DESC"
    if filters.latest_commit:
        sql = (
            "SELECT id, fingerprint, commit_id, dirty, run_time FROM ("
            f"SELECT s.*, first_value(s.commit_id) OVER w AS last_commit, first_value(s.dirty) OVER w AS last_dirty "
            f"FROM ({sql}) s WINDOW w AS ({newest_first})) x "
            "WHERE x.commit_id = x.last_commit AND x.dirty = x.last_dirty"
        )
    if filters.latest_processes is not None:
        sql = (
            "SELECT id, fingerprint, commit_id, dirty, run_time FROM ("
            f"SELECT s.*, row_number() OVER ({newest_first}) AS newest FROM ({sql}) s) y WHERE y.newest <= %s"
        )
        params.append(filters.latest_processes)
    return sql, params


def _commit_times(connection: psycopg.Connection[Any], filters: RunFilter) -> list[str] | None:
    """The commit times bounding ``commit_range``, looked up in the runs; QueryError for an unknown or ambiguous one."""
    if filters.commit_range is None:
        return None
    times = []
    for commit in filters.commit_range:
        # As text: a time past year 9999 (which older publishers stored) must not fail the read in Python.
        rows = connection.execute(
            f"SELECT commit_id, max(commit_time)::text FROM {SCHEMA}.runs WHERE commit_id LIKE %s "
            "GROUP BY commit_id LIMIT 3",
            (_like_prefix(commit),),
        ).fetchall()
        if not rows:
            raise QueryError(f"commit {commit!r} of the range is in no published run")
        if len(rows) > 1:
            listed = ", ".join(str(r[0]) for r in rows)
            raise QueryError(f"commit {commit!r} of the range is ambiguous ({listed}, ...): give more digits")
        if rows[0][1] is None:
            raise QueryError(
                f"commit {rows[0][0]} has no commit time recorded, so a range cannot be ordered by it; "
                "name the commits one by one instead"
            )
        times.append(rows[0][1])
    return times


_RUN_FIELDS = "id, name, machine_info, commit_info, rest"
# JSONB columns arrive as text and are parsed by orjson here: psycopg's JSON loader costs a
# Python call per value, which for 50,000 rows of four JSON columns is most of a read.
_JSON_FIELDS = ("params", "extra_info", "options", "stats_rest", "rest")
_BENCH_FIELDS = ", ".join(
    ("run_id", "name", "fullname", '"group"', "param", *(f"{c}::text" for c in _JSON_FIELDS), "data", *_STAT_COLUMNS)
)
FLOAT8_ARRAY_OID = 1022


class Float8ArrayLoader(Loader):
    """``double precision[]`` in binary, decoded by one struct call: per-round data is most of what a read moves.

    The binary array format: ndim, has-nulls flag, element type (three int32), then per
    dimension its length and lower bound (int32 each), then per element its byte length
    (int32, -1 for NULL) and its big-endian float8. Several times faster than psycopg's
    element-by-element loader; arrays with NULLs or several dimensions (never written by
    the publisher) are decoded element by element.
    """

    format = pq.Format.BINARY

    def load(self, data: Buffer) -> list[Any]:
        ndim, has_nulls, _ = struct.unpack_from("!iii", data)
        if ndim == 0:
            return []
        if ndim == 1 and not has_nulls:
            length = struct.unpack_from("!i", data, 12)[0]
            return list(_floats(length).unpack_from(data, 20))
        return _load_elements(bytes(data))


@functools.lru_cache(maxsize=256)
def _floats(length: int) -> struct.Struct:
    """``length`` (int32 size, float8) pairs, keeping the floats: one compiled format per round count."""
    return struct.Struct("!" + "4xd" * length)


def _load_elements(data: bytes) -> list[Any]:
    ndim = struct.unpack_from("!i", data)[0]
    dims = [struct.unpack_from("!i", data, 12 + 8 * d)[0] for d in range(ndim)]
    offset, values = 12 + 8 * ndim, []
    for _ in range(math.prod(dims)):
        size = struct.unpack_from("!i", data, offset)[0]
        offset += 4
        values.append(None if size < 0 else struct.unpack_from("!d", data, offset)[0])
        offset += max(size, 0)
    for dim in reversed(dims[1:]):
        values = [values[i : i + dim] for i in range(0, len(values), dim)]
    return values


def query_runs(connection: psycopg.Connection[Any], filters: RunFilter | None = None) -> list[Run]:
    """The selected runs, oldest first, each with only its selected benchmarks."""
    filters = filters or RunFilter()
    selected, params = _selected_runs_sql(filters, _commit_times(connection, filters))
    runs = connection.execute(
        f"SELECT {_RUN_FIELDS} FROM {SCHEMA}.runs WHERE id IN (SELECT id FROM ({selected}) chosen) "
        "ORDER BY run_time NULLS FIRST, id",
        params,
    ).fetchall()
    if not runs:
        return []
    bench_where, bench_params = _join(_bench_clauses(filters))
    by_run: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {int(run[0]): [] for run in runs}
    # Binary transfer: the statistics and per-round data arrive without text parsing.
    with connection.cursor(binary=True) as cursor:
        cursor.adapters.register_loader(FLOAT8_ARRAY_OID, Float8ArrayLoader)
        cursor.execute(
            f"SELECT {_BENCH_FIELDS} FROM {SCHEMA}.benchmarks b WHERE b.run_id = ANY(%s) AND {bench_where} "
            "ORDER BY b.run_id, b.position",
            [list(by_run), *bench_params],
        )
        for row in cursor:
            try:
                by_run[int(row[0])].append(_benchmark_parts(row))
            except (orjson.JSONDecodeError, RecursionError) as error:  # stored by older code, past orjson's limits
                raise StoreError(
                    f"run {SOURCE_PREFIX}{row[0]}, benchmark {str(row[1])[:80]!r}: a stored value cannot be read "
                    f"back ({libpq_message(str(error))}); delete that run and publish its file again"
                ) from None
    return [
        _run(int(id_), str(name), machine_info, commit_info, rest, by_run[int(id_)])
        for id_, name, machine_info, commit_info, rest in runs
    ]


def _run(
    id_: int,
    name: str,
    machine_info: Any,
    commit_info: Any,
    rest: Any,
    benchmarks: list[tuple[dict[str, Any], dict[str, Any]]],
) -> Run:
    """A stored run, checked by the same table a file is (:func:`lenet.runs.checks.check_run`)."""
    head = {**(rest if isinstance(rest, dict) else {}), "machine_info": machine_info, "commit_info": commit_info}
    source = f"{SOURCE_PREFIX}{id_}"
    return check_run(head, benchmarks, source, Path(name).stem, shown_as=f"{source} ({name})")


def _benchmark_parts(row: Sequence[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One benchmark row as (its names and extra_info, its statistics); see ``_BENCH_FIELDS`` for the row."""
    entry: dict[str, Any] = {"name": row[1], "fullname": row[2], "group": row[3], "param": row[4]}
    if row[5] is not None:
        entry["params"] = orjson.loads(row[5])
    if row[6] is not None:
        entry["extra_info"] = orjson.loads(row[6])
    if row[9] is not None:
        entry.update(orjson.loads(row[9]))  # entry keys that did not fit a column, exactly as saved
    stats = {key: value for key, value in zip(_STAT_COLUMNS, row[11:], strict=True) if value is not None}
    if row[10] is not None:
        stats["data"] = row[10]
    if row[8] is not None:
        stats.update(orjson.loads(row[8]))  # statistics that did not fit a column, exactly as saved
    return entry, stats


@dataclass(frozen=True)
class MachineSummary:
    """One machine of the history, for listings (``baseline.py list --db``)."""

    fingerprint: str
    label: str
    runs: int
    commits: int
    first_run: datetime | None
    last_run: datetime | None


def machines(connection: psycopg.Connection[Any]) -> list[MachineSummary]:
    """Every machine in the history with its run and commit counts, most recently active first."""
    rows = connection.execute(
        "SELECT fingerprint, max(machine_label), count(*), count(DISTINCT commit_id), min(run_time)::text, "
        f"max(run_time)::text FROM {SCHEMA}.runs GROUP BY fingerprint "
        "ORDER BY max(run_time) DESC NULLS LAST, fingerprint"
    ).fetchall()
    return [
        MachineSummary(str(f), str(label), int(n), int(c), _time(first), _time(last))
        for f, label, n, c, first, last in rows
    ]


def _time(text: str | None) -> datetime | None:
    """A timestamptz read as text; None for one Python cannot hold (past year 9999, stored by older publishers)."""
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def list_machines(url: str) -> list[MachineSummary]:
    """The machines of the history at ``url`` (:func:`machines`); StoreError in one line otherwise."""
    with connect(url) as connection, reading(url):
        require_schema(connection)
        return machines(connection)


@contextlib.contextmanager
def reading(url: str) -> Iterator[None]:
    """Every failure of a read as a one-line StoreError: lost connection, missing grants, a refused filter, ..."""
    try:
        yield
    except psycopg.OperationalError as error:
        raise FailedPartwayError(f"the connection failed while reading: {server_error(error, url)}") from None
    except psycopg.errors.InsufficientPrivilege as error:
        raise CredentialsError(
            f"the role of {redact_url(url)} may not read the history ({server_error(error, url)}); "
            "grant it USAGE on schema lenet and SELECT on its tables"
        ) from None
    except psycopg.DataError as error:  # e.g. a regular expression the server cannot compile
        raise QueryError(f"the server refused a filter: {server_error(error, url)}") from None
    except psycopg.Error as error:
        raise StoreError(f"the database refused the read: {type(error).__name__}: {server_error(error, url)}") from None


def why_empty(connection: psycopg.Connection[Any], filters: RunFilter) -> str:
    """One line naming the first filter that leaves nothing, and some values the database does have there.

    Filters are added one at a time, in the order of :func:`_run_clauses` then
    :func:`_bench_clauses`, as the report's own filters explain an empty result.
    """
    run_clauses = _run_clauses(filters, _commit_times(connection, filters))
    bench_clauses = _bench_clauses(filters)
    source = f"FROM {SCHEMA}.benchmarks b JOIN {SCHEMA}.runs r ON r.id = b.run_id"
    for index, clause in enumerate([*run_clauses, *bench_clauses]):
        kept = [*run_clauses, *bench_clauses][:index]
        where, params = _join(kept)
        known = connection.execute(
            f"SELECT DISTINCT {_KNOWN[clause[0]]} {source} WHERE {where} ORDER BY 1 LIMIT 12", params
        ).fetchall()
        where, params = _join([*kept, clause])
        if connection.execute(f"SELECT NOT EXISTS (SELECT 1 {source} WHERE {where})", params).fetchone()[0]:
            return _nothing(clause[0], clause[1], [k[0] for k in known])
    return "the filters together match no run in the database"


def _nothing(name: str, value: str, known: Sequence[Any]) -> str:
    shown = "; ".join(k.isoformat() if isinstance(k, datetime) else str(k) for k in known if k is not None)
    shown = shown or "no values"
    return f"{name} filter {value} matches nothing in the database; it has: {shown}"


def read_database(
    url: str, filters: RunFilter | None = None, connection: psycopg.Connection[Any] | None = None
) -> RunSet:
    """The selected runs, as a file source gives them; StoreError or QueryError otherwise.

    An empty selection is not an error here: ``problems`` then holds one line saying
    which filter left nothing. ``connection`` reuses an open one (tests).
    """
    filters = filters or RunFilter()
    own = connection is None
    connection = connection if connection is not None else connect(url)
    try:
        with reading(url):
            require_schema(connection)
            runs = query_runs(connection, filters)
            problems = [] if runs else [why_empty(connection, filters)]
    finally:
        if own:
            connection.close()
    return RunSet(runs=runs, problems=problems + [p for run in runs for p in run.problems])
