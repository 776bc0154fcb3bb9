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
absolute path), and a copy of a run read already (the same time, machine and commit,
e.g. a run promoted into a baseline) is skipped with a line in :attr:`LoadResult.notes`:
one process is one sample. Files are opened read-only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from lenet.fingerprint import run_fingerprint

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
    if not isinstance(run, dict) or not isinstance(run.get("benchmarks"), list):
        raise NotARunError(f"{path}: is JSON but not a pytest-benchmark saved run (no 'benchmarks' list)")
    return run


def _parse_slowly(path: Path, raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotARunError(f"{path}: not UTF-8 text; expected a pytest-benchmark JSON file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise NotARunError(
            f"{path}: is not valid JSON ({error.msg}: line {error.lineno}, column {error.colno}); truncated or corrupt?"
        ) from None


def _machine_columns(machine_info: dict[str, Any]) -> dict[str, Any]:
    cpu = machine_info.get("cpu") if isinstance(machine_info.get("cpu"), dict) else {}
    cpu_model = machine_info.get("cpu_model") or cpu.get("brand_raw") or machine_info.get("processor") or "unknown CPU"
    cpu_count = machine_info.get("cpu_count") or cpu.get("count")
    gpu = machine_info.get("gpu_name")
    torch_version = machine_info.get("torch_version")
    threads = machine_info.get("torch_threads")
    parts = [gpu] if gpu else []
    parts.append(f"{cpu_model} ({cpu_count} CPUs)" if cpu_count else cpu_model)
    if torch_version:
        parts.append(f"torch {torch_version}")
    if threads:
        parts.append(f"{threads} threads")
    if not torch_version:
        parts.append(f"Python {machine_info.get('python_version', '?')}")
    machine, fields = run_fingerprint(machine_info)
    return {
        "machine": machine,
        "fingerprint_fields": json.dumps(fields, sort_keys=True, default=str),
        "machine_label": ", ".join(parts),
        "cpu_model": cpu_model,
        "gpu_name": gpu,
        "torch_version": torch_version,
        "torch_threads": threads,
    }


def run_rows(run: dict[str, Any], source: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of one parsed run, and a line for each benchmark entry that could not be used."""
    machine_info = run.get("machine_info") if isinstance(run.get("machine_info"), dict) else {}
    commit = run.get("commit_info") if isinstance(run.get("commit_info"), dict) else {}
    common = {
        "source": str(source),
        "run": source.stem,
        "run_time": run.get("datetime"),
        "pytest_benchmark_version": run.get("version"),
        "commit": commit.get("id") or "unknown",
        "commit_time": commit.get("time"),
        "branch": commit.get("branch"),
        "dirty": bool(commit.get("dirty", False)),
        **_machine_columns(machine_info),
    }
    rows, problems = [], []
    for index, bench in enumerate(run["benchmarks"]):
        stats = bench.get("stats") if isinstance(bench, dict) else None
        if not isinstance(stats, dict) or not isinstance(stats.get("median"), int | float):
            name = bench.get("name", f"#{index}") if isinstance(bench, dict) else f"#{index}"
            problems.append(f"{source}: benchmark {name!r} has no statistics; skipped")
            continue
        extra = bench.get("extra_info") if isinstance(bench.get("extra_info"), dict) else {}
        row: dict[str, Any] = dict(common)
        row.update(
            name=bench.get("name"),
            fullname=bench.get("fullname"),
            group=bench.get("group"),
            param=bench.get("param"),
            params=json.dumps(bench.get("params"), sort_keys=True, default=str) if bench.get("params") else None,
        )
        for key, value in extra.items():
            if key not in row:  # a run's own fields win over an extra_info key of the same name
                row[key] = value if not isinstance(value, list | dict) else json.dumps(value, default=str)
        row["label"] = extra.get("variant") or bench.get("name")
        for stat in STAT_FIELDS:
            row[stat] = stats.get(stat)
        data = stats.get("data")
        row["data"] = tuple(data) if isinstance(data, list) and data else None
        rows.append(row)
    return rows, problems


def run_identity(run: dict[str, Any]) -> tuple[str, ...] | None:
    """What makes a saved run one process: its time, machine, commit and benchmarks; None without a time."""
    when = run.get("datetime")
    if not isinstance(when, str) or not when:
        return None
    machine_info = run.get("machine_info") if isinstance(run.get("machine_info"), dict) else {}
    commit = run.get("commit_info") if isinstance(run.get("commit_info"), dict) else {}
    names = (str(b.get("fullname") or b.get("name")) for b in run["benchmarks"] if isinstance(b, dict))
    return (when, run_fingerprint(machine_info)[0], str(commit.get("id")), *sorted(names))


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
            notes.append(f"{path}: the same run as {seen[identity]} (same time, machine and commit); read once")
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
