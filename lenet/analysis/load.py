"""Saved runs (any pytest-benchmark 3.x-5.x file, ours or not) -> one tidy DataFrame.

One row per benchmark per run. Columns:

* run: ``source`` (file), ``run`` (file name without .json), ``run_time`` (UTC),
  ``pytest_benchmark_version``, ``commit``, ``commit_time``, ``branch``, ``dirty``;
* machine: ``machine`` (the fingerprint; derived from pytest-benchmark's own
  machine_info for runs made without lenet-bench), ``fingerprint_fields`` (JSON text
  of what the fingerprint hashes), ``machine_label`` (readable),
  ``cpu_model``, ``gpu_name``, ``torch_version``, ``torch_threads``;
* benchmark: ``name``, ``fullname``, ``group``, ``param``, ``params`` (JSON text),
  ``label`` (the variant id, or the benchmark name for runs without one);
* lenet-bench's ``extra_info`` fields (``variant``, ``device``, ``phase``, ``batch_size``,
  ``optimizer``, ``samples_per_s``, ``compile_seconds``, ...), and any other
  ``extra_info`` key a run carries, each as its own column: new metrics need no change here;
* every statistic pytest-benchmark saved (``min``, ``median``, ``iqr``, ``q1``, ...,
  in seconds) and ``data``: the per-round times as a tuple, or None.

Bad files never stop a load: each yields one line in :attr:`LoadResult.problems`
naming the file and what was expected, and the other files are still read.
A file is read once however it is named (``a/run.json``, ``a/../a/run.json``, an
absolute path), and a copy of a run read already (the same time, machine, commit and
results, e.g. a run promoted into a baseline) is skipped with a line in
:attr:`LoadResult.notes`: one process is one sample. Files are opened read-only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from lenet.analysis.formatting import brief
from lenet.fingerprint import run_fingerprint
from lenet.paths import SAFE_NAME_RULE, is_safe_name
from lenet.record import Record, is_record
from lenet.roundtrip import escape_surrogates, is_time_in_range
from lenet.terminal import printable

# Folders under results/ that hold saved runs (traces/ and studies/ hold other JSON).
DEFAULT_ROOTS = ("benchmarks", "reference", "baselines")

STAT_FIELDS = (
    "min",
    "max",
    "mean",
    "stddev",
    "rounds",
    "median",
    "iqr",
    "q1",
    "q3",
    "iqr_outliers",
    "stddev_outliers",
    "outliers",
    "ld15iqr",
    "hd15iqr",
    "ops",
    "total",
    "iterations",
)
RUN_COLUMNS = (
    "source",
    "run",
    "run_time",
    "pytest_benchmark_version",
    "commit",
    "commit_time",
    "branch",
    "dirty",
    "machine",
    "fingerprint_fields",
    "machine_label",
    "cpu_model",
    "gpu_name",
    "torch_version",
    "torch_threads",
)
BENCH_COLUMNS = ("name", "fullname", "group", "param", "params", "label")
VARIANT_COLUMNS = ("variant", "device", "memory_format", "precision", "compile", "phase", "batch_size", "optimizer")


class NotARunError(ValueError):
    """A file that is not a pytest-benchmark saved run; the message says what is wrong with it."""


@dataclass
class LoadResult:
    frame: pd.DataFrame
    problems: list[str] = field(default_factory=list)
    files_read: int = 0
    notes: list[str] = field(default_factory=list)  # copies of runs read already, skipped


def find_run_files(paths: Iterable[Path]) -> list[Path]:
    """JSON files under the given files and folders, in a stable order, each file once; traces are not runs."""
    found: dict[Path, Path] = {}  # real path -> the path it was first named by
    for path in paths:
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*.json") if p.is_file())
            for candidate in candidates:
                if not _is_not_a_run(candidate, path):
                    found.setdefault(candidate.resolve(), candidate)
        elif path.exists():
            found.setdefault(path.resolve(), path)
    return list(found.values())


def _is_not_a_run(path: Path, root: Path) -> bool:
    """Traces and a baseline's noise.json live beside runs but are not runs."""
    if path.name == "noise.json" or path.name.endswith(".pt.trace.json"):
        return True
    return "traces" in path.relative_to(root).parts[:-1]


def default_paths(results_dir: Path) -> list[Path]:
    return [results_dir / name for name in DEFAULT_ROOTS if (results_dir / name).is_dir()]


_LONG_INTEGER = re.compile(rb"(?<![\d.eE])-?\d{20,}(?![\d.eE])")


def read_run(path: Path) -> dict[str, Any]:
    """Parse one saved run, or raise NotARunError with a one-line reason."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise NotARunError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not raw.strip():
        raise NotARunError(f"{path}: is empty; expected a pytest-benchmark JSON file")
    try:
        run = orjson.loads(raw)  # several times faster than json on large runs
    except orjson.JSONDecodeError:
        run = _parse_slowly(path, raw)  # for json's precise message
    else:
        if _LONG_INTEGER.search(raw):  # orjson reads an integer past 64 bits as a float: json keeps it exact
            run = _parse_slowly(path, raw)
    if not isinstance(run, dict) or not isinstance(run.get("benchmarks"), list):
        raise NotARunError(f"{path}: is JSON but not a pytest-benchmark saved run (no 'benchmarks' list)")
    return run


def _parse_slowly(path: Path, raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotARunError(f"{path}: not UTF-8 text; expected a pytest-benchmark JSON file") from None
    try:
        # orjson refused it: json may read it, but lone surrogates ("\ud800") are then escaped for every reader.
        return escape_surrogates(json.loads(text))
    except json.JSONDecodeError as error:
        raise NotARunError(
            f"{path}: is not valid JSON ({error.msg}: line {error.lineno}, column {error.colno}); truncated or corrupt?"
        ) from None
    except RecursionError:
        raise NotARunError(f"{path}: is JSON nested too deeply to be a saved run (orjson's limit is 1024)") from None


# What each field read from a file must be; any other value is dropped (or its benchmark skipped) with a line.
TIME_STATS = ("min", "max", "mean", "median", "q1", "q3", "ld15iqr", "hd15iqr", "total", "stddev", "iqr", "ops")
COUNT_STATS = ("rounds", "iterations", "iqr_outliers", "stddev_outliers")
# Where a lenet-bench row goes in the tables (and what its plot files are named by): a bad one skips the benchmark.
PLACING_FIELDS = ("device", "phase")
TEXT_FIELDS = ("variant", "memory_format", "precision", "compile", "optimizer")
NUMBER_FIELDS = ("samples_per_s", "instructions", "instructions_spread")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_time(value: object) -> bool:
    return _is_number(value) and value > 0  # type: ignore[operator]


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_text(value: object) -> bool:
    return isinstance(value, str)


def _is_iso_time(text: str) -> bool:
    return is_time_in_range(text) and not pd.isna(pd.to_datetime(text, errors="coerce", format="ISO8601"))


@dataclass
class _FileIssues:
    """What was wrong in one file, grouped so that the whole file makes one line however much is wrong."""

    source: Path
    found: dict[tuple[str, str], list[tuple[str | None, object]]] = field(default_factory=dict)

    def add(self, what: str, value: object, action: str, benchmark: str | None = None) -> None:
        """``what``: the field and what it should be, e.g. ``stats.median is not a positive time``."""
        self.found.setdefault((what, action), []).append((benchmark, value))

    def line(self) -> str | None:
        parts = []
        for (what, action), cases in self.found.items():
            benchmark, value = cases[0]
            if what == "no statistics":
                names = ", ".join(brief(b, 60) for b, _ in cases[:3]) + (
                    f" and {len(cases) - 3} more" * (len(cases) > 3)
                )
                parts.append(
                    f"benchmark {names} has no statistics; {action}"
                    if len(cases) == 1
                    else f"{len(cases)} benchmarks have no statistics ({names}); {action}"
                )
            elif benchmark is None:
                parts.append(f"{what} ({brief(value)}); {action}")
            elif len(cases) == 1:
                parts.append(f"benchmark {brief(benchmark, 60)}: {what} ({brief(value)}); {action}")
            else:
                parts.append(
                    f"{len(cases)} benchmarks: {what} (first {brief(value)} in {brief(benchmark, 60)}); {action}"
                )
        return f"{printable(self.source)}: {'; '.join(parts)}" if parts else None


def _text_or_none(info: dict[str, Any], key: str, where: str, issues: _FileIssues) -> str | None:
    value = info.get(key)
    if value is None or _is_text(value):
        return value
    issues.add(f"{where}.{key} is not text", value, "ignored")
    return None


def _machine_columns(machine_info: dict[str, Any], issues: _FileIssues) -> dict[str, Any]:
    cpu = machine_info.get("cpu") if isinstance(machine_info.get("cpu"), dict) else {}
    cpu_model = (
        _text_or_none(machine_info, "cpu_model", "machine_info", issues)
        or (cpu.get("brand_raw") if _is_text(cpu.get("brand_raw")) else None)
        or (machine_info.get("processor") if _is_text(machine_info.get("processor")) else None)
        or "unknown CPU"
    )
    count = machine_info.get("cpu_count") or cpu.get("count")
    cpu_count = count if _is_count(count) else None
    gpu = _text_or_none(machine_info, "gpu_name", "machine_info", issues)
    torch_version = _text_or_none(machine_info, "torch_version", "machine_info", issues)
    threads = machine_info.get("torch_threads") if _is_count(machine_info.get("torch_threads")) else None
    parts = [gpu] if gpu else []
    parts.append(f"{cpu_model} ({cpu_count} CPUs)" if cpu_count else cpu_model)
    if torch_version:
        parts.append(f"torch {torch_version}")
    if threads:
        parts.append(f"{threads} threads")
    if not torch_version:
        parts.append(f"Python {machine_info.get('python_version', '?')}")
    machine, fields, refused = run_fingerprint(machine_info)
    if refused:
        what = f"machine_info.fingerprint is not a name ({SAFE_NAME_RULE})"
        issues.add(what, machine_info.get("fingerprint"), f"using {machine}, the hash of its fingerprint fields")
    return {
        "machine": machine,
        "fingerprint_fields": json.dumps(fields, sort_keys=True, default=str),
        "machine_label": ", ".join(parts),
        "cpu_model": cpu_model,
        "gpu_name": gpu,
        "torch_version": torch_version,
        "torch_threads": threads,
    }


def _object_or_empty(run: dict[str, Any], key: str, issues: _FileIssues) -> dict[str, Any]:
    value = run.get(key)
    if value is not None and not isinstance(value, dict):
        issues.add(f"{key} is not an object", value, "ignored")
    return value if isinstance(value, dict) else {}


def _run_columns(run: dict[str, Any], source: Path, issues: _FileIssues) -> dict[str, Any]:
    """The columns every row of a run shares: the file, its time, commit and machine."""
    machine_info, commit = (_object_or_empty(run, key, issues) for key in ("machine_info", "commit_info"))
    when = run.get("datetime")
    if when is not None and (not _is_text(when) or not _is_iso_time(when)):
        issues.add("datetime is not an ISO time", when, "the run's time is unknown")
        when = None
    return {
        "source": printable(source),  # a file name may hold line breaks or bytes that are not UTF-8
        "run": printable(source.stem),
        "run_time": when,
        "pytest_benchmark_version": _text_or_none(run, "version", "run", issues),
        "commit": _text_or_none(commit, "id", "commit_info", issues) or "unknown",
        "commit_time": _text_or_none(commit, "time", "commit_info", issues),
        "branch": _text_or_none(commit, "branch", "commit_info", issues),
        "dirty": bool(commit.get("dirty", False)),
        **_machine_columns(machine_info, issues),
    }


def _benchmark_row(bench: object, index: int, common: dict[str, Any], issues: _FileIssues) -> dict[str, Any] | None:
    """One benchmark's row, or None (with an issue) when it cannot be used."""
    if not isinstance(bench, dict):
        issues.add("a benchmark entry is not an object", bench, "skipped", f"#{index}")
        return None
    name = bench.get("name")
    if not _is_text(name) or not name:
        issues.add("name is missing or not text", name, "skipped", f"#{index}")
        return None
    stats = bench.get("stats")
    if not isinstance(stats, dict) or "median" not in stats:
        issues.add("no statistics", None, "skipped", name)
        return None
    if not _is_time(stats["median"]):
        issues.add("stats.median is not a positive time", stats["median"], "skipped", name)
        return None
    extra = bench.get("extra_info") if bench.get("extra_info") is not None else {}
    if not isinstance(extra, dict):
        issues.add("extra_info is not an object", extra, "ignored", name)
        extra = {}
    if is_record(extra) and extra.get("phase") is not None:  # ours, placed: read through the record
        record, problems = Record.read(extra)
        for problem in problems:
            what = f"extra_info.{problem.key} is not {problem.expected}"
            issues.add(what, problem.value, "skipped" if record is None else "ignored", name)
        if record is None:
            return None
        # What was dropped, or absent where the record needs a value ("?"), reads as absent.
        absent = {problem.key for problem in problems} | {key for key in Record.REQUIRED if extra.get(key) is None}
        extra = {key: None if key in absent else value for key, value in record.to_extra_info().items()}
    for key in PLACING_FIELDS:
        if extra.get(key) is not None and not is_safe_name(extra[key]):
            issues.add(f"extra_info.{key} is not a name ({SAFE_NAME_RULE})", extra[key], "skipped", name)
            return None
    batch = extra.get("batch_size")
    if batch is not None and not (_is_count(batch) and 0 < batch < 2**31):  # the database's integer column
        issues.add("extra_info.batch_size is not a positive integer", batch, "skipped", name)
        return None
    if extra.get("phase") is not None and (extra.get("device") is None or batch is None):
        # A lenet-bench row is placed by device, phase and batch size: without one it would vanish from the tables.
        issues.add("extra_info has a phase but no device or batch_size", extra.get("phase"), "skipped", name)
        return None
    row: dict[str, Any] = dict(common)
    group = bench.get("group")
    if group is not None and not _is_text(group):
        issues.add("group is not text", group, "ignored", name)
        group = None
    row.update(
        name=name,
        fullname=bench.get("fullname") if _is_text(bench.get("fullname")) else None,
        group=group,
        param=None if bench.get("param") is None else str(bench.get("param")),
        params=json.dumps(bench.get("params"), sort_keys=True, default=str) if bench.get("params") else None,
    )
    for key, value in extra.items():
        if key in row:  # a run's own fields win over an extra_info key of the same name
            continue
        if key in TEXT_FIELDS and value is not None and not _is_text(value):
            issues.add(f"extra_info.{key} is not text", value, "ignored", name)
            value = None
        elif key in NUMBER_FIELDS and value is not None and not (_is_number(value) and value >= 0):
            issues.add(f"extra_info.{key} is not a number", value, "ignored", name)
            value = None
        row[key] = value if not isinstance(value, list | dict) else json.dumps(value, default=str)
    row["label"] = row.get("variant") or name
    for stat in STAT_FIELDS:
        value = stats.get(stat)
        if value is not None and stat in TIME_STATS and not (_is_number(value) and value >= 0):
            issues.add(f"stats.{stat} is not a time", value, "ignored", name)
            value = None
        elif value is not None and stat in COUNT_STATS and not _is_count(value):
            issues.add(f"stats.{stat} is not a count", value, "ignored", name)
            value = None
        row[stat] = value
    data = stats.get("data")
    if isinstance(data, list) and data and all(_is_time(x) for x in data):
        row["data"] = tuple(data)
    else:
        if data is not None and data != []:
            issues.add("stats.data is not a list of positive times", data, "ignored", name)
        row["data"] = None
    return row


def common_columns(run: dict[str, Any], source: Path) -> dict[str, Any]:
    """The columns every row of a run shares (file, time, commit, machine), as the rows carry them."""
    return _run_columns(run, source, _FileIssues(source))


def run_rows(run: dict[str, Any], source: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of one parsed run, and (at most) one line saying what in it could not be used."""
    issues = _FileIssues(source)
    common = _run_columns(run, source, issues)
    rows = [row for i, bench in enumerate(run["benchmarks"]) if (row := _benchmark_row(bench, i, common, issues))]
    line = issues.line()
    return rows, [line] if line else []


def run_identity(run: dict[str, Any]) -> tuple[str, ...] | None:
    """What makes two files one process: the same time, machine, commit and results (each benchmark's
    median), as in a copy of a run; None for a run without a time."""
    when = run.get("datetime")
    if not isinstance(when, str) or not when:
        return None
    machine_info = run.get("machine_info") if isinstance(run.get("machine_info"), dict) else {}
    commit = run.get("commit_info") if isinstance(run.get("commit_info"), dict) else {}
    results = sorted(
        f"{b.get('fullname') or b.get('name')}={b['stats'].get('median')!r}"
        for b in run["benchmarks"]
        if isinstance(b, dict) and isinstance(b.get("stats"), dict)
    )
    return (when, run_fingerprint(machine_info)[0], str(commit.get("id")), *results)


def load_runs(
    paths: Sequence[Path],
    progress: Callable[[Iterable[Path]], Iterable[Path]] | None = None,
) -> LoadResult:
    """Read every saved run under ``paths`` into one DataFrame (see the module docstring)."""
    files = find_run_files(paths)
    problems: list[str] = [f"{p}: no such file or folder" for p in paths if not p.exists()]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    seen: dict[tuple[str, ...], Path] = {}
    read = 0
    for path in progress(files) if progress else files:
        try:
            run = read_run(path)
        except NotARunError as error:
            problems.append(str(error))
            continue
        identity = run_identity(run)
        if identity is not None and identity in seen:
            notes.append(f"{path}: a copy of {seen[identity]} (same time, machine, commit and results); read once")
            continue
        if identity is not None:
            seen[identity] = path
        file_rows, file_problems = run_rows(run, path)
        rows.extend(file_rows)
        problems.extend(file_problems)
        read += 1
    return LoadResult(frame=to_frame(rows), problems=problems, files_read=read, notes=notes)


def to_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in (*RUN_COLUMNS, *BENCH_COLUMNS, *VARIANT_COLUMNS, *STAT_FIELDS, "data"):
        if column not in frame.columns:
            frame[column] = None
    frame["run_time"] = pd.to_datetime(frame["run_time"], utc=True, errors="coerce", format="ISO8601")
    frame["batch_size"] = pd.to_numeric(frame["batch_size"], errors="coerce").astype("Int64")
    return frame
