"""Recorded traces (``results/traces/<run>/<case>/``) -> :class:`Trace` objects, read from files.

A case folder, as ``lenet.profiling`` writes it, holds ``profile.json`` (what was
recorded), ``operators.json`` (the profiler's per-operator totals over ``steps``
steps) and the Chrome trace ``<variant>.<ns>.pt.trace.json[.gz]``. Here every time
and count is turned into a value **per step**; ``lenet.analysis.operators`` summarizes them.

Bad input never stops a load: an empty folder, a truncated or foreign JSON file, a
trace from another torch version each yield one line in :attr:`TraceSet.problems`
naming the file and what was expected, and the other traces are still loaded.
Files are only read.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from lenet.analysis.formatting import one_line
from lenet.paths import is_safe_name
from lenet.runs.record import short
from lenet.trace_files import (
    OPERATOR_PER_STEP,
    OPERATORS_FILE,
    OPERATORS_SCHEMA,
    OUR_FILES,
    PROFILE_FILE,
    PROFILE_SCHEMA,
    is_trace_file,
)

PER_STEP = OPERATOR_PER_STEP  # totals over the recorded steps, divided by them for per-step figures
MAX_DEPTH = 3  # root -> run -> case: how deep a given folder is searched for case folders


class TraceError(ValueError):
    """A trace folder or file that cannot be read as expected; the message names it and what was expected."""


@dataclass(frozen=True)
class Trace:
    """One case folder: what was profiled, its per-step operator table, and its Chrome trace (if readable)."""

    folder: Path
    run: str
    case: str
    meta: dict[str, Any]
    operators: pd.DataFrame  # one row per (operator, input shapes); PER_STEP columns are per step
    trace_file: Path | None
    chrome: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def variant(self) -> str:
        return str(self.meta.get("variant") or self.case)

    @property
    def phase(self) -> str | None:
        return self.meta.get("phase")

    @property
    def torch_version(self) -> str | None:
        return self.meta.get("torch_version")

    @property
    def title(self) -> str:
        """``cpu-contiguous-fp32-eager · train_step (sgd) · batch 64``."""
        parts = [self.variant]
        if self.phase:
            optimizer = self.meta.get("optimizer")
            parts.append(f"{self.phase} ({optimizer})" if optimizer else str(self.phase))
        if self.meta.get("batch_size") is not None:
            parts.append(f"batch {self.meta['batch_size']}")
        return " · ".join(parts)

    @property
    def name(self) -> str:
        """``<run>/<case>``: TensorBoard's run name for this folder."""
        return f"{self.run}/{self.case}"


@dataclass
class TraceSet:
    traces: list[Trace] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.traces or self.problems)


def _read_json(path: Path, expected: str) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise TraceError(f"{path}: cannot be read ({error.strerror}); expected {expected}") from None
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise TraceError(f"{path}: truncated or not gzip ({error}); expected {expected}, gzip-compressed") from None
    if not raw.strip():
        raise TraceError(f"{path}: empty file; expected {expected}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        message = str(error)
    try:  # Python's json, as json.dump writes it: NaN and Infinity are values (that the checks then refuse)
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TraceError(f"{path}: not valid JSON, truncated? ({message}); expected {expected}") from None


def read_chrome_trace(path: Path) -> dict[str, Any]:
    """A Chrome trace (``.json`` or ``.json.gz``) as a dict with a ``traceEvents`` list, or TraceError."""
    expected = "a Chrome trace (a JSON object with a traceEvents list)"
    document = _read_json(path, expected)
    if isinstance(document, list):  # the format's other form: a bare array of events
        document = {"traceEvents": document}
    if not isinstance(document, dict) or not isinstance(document.get("traceEvents"), list):
        keys = ", ".join(sorted(document)[:5]) if isinstance(document, dict) else type(document).__name__
        raise TraceError(f"{path}: JSON without a traceEvents list (found: {keys}); expected {expected}")
    complete = [e for e in document["traceEvents"] if isinstance(e, dict) and e.get("ph") == "X"]
    if not complete:
        raise TraceError(f"{path}: a traceEvents list without complete ('X') events; expected a profiler trace")
    return document


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def is_complete_event(event: dict[str, Any]) -> bool:
    """A complete ('X') event that can be placed on a timeline: a name, a start and a duration."""
    return (
        isinstance(event.get("name"), str)
        and _is_number(event.get("ts"))
        and _is_number(event.get("dur"))
        and event["dur"] >= 0
    )


def usable_events(document: dict[str, Any], path: Path) -> tuple[dict[str, Any], str | None]:
    """The trace without the complete events that lack a text name or a numeric ts and dur, and a line
    saying how many were left out (None when none was)."""
    events = document["traceEvents"]
    bad = [e for e in events if isinstance(e, dict) and e.get("ph") == "X" and not is_complete_event(e)]
    if not bad:
        return document, None
    kept = [e for e in events if not (isinstance(e, dict) and e.get("ph") == "X") or is_complete_event(e)]
    first = {k: bad[0].get(k) for k in ("name", "ts", "dur")}
    line = (
        f"{path}: {len(bad)} complete event(s) without a text name and numeric ts and dur "
        f"(first: {short(first, 80)}); left out"
    )
    return {**document, "traceEvents": kept}, line


PROFILE_TEXT = ("variant", "phase", "optimizer", "torch_version", "trace_file", "device")
PROFILE_COUNTS = ("batch_size", "steps")


def read_profile(path: Path) -> dict[str, Any]:
    expected = f"lenet-bench's {path.name} (schema {PROFILE_SCHEMA})"
    document = _read_json(path, expected)
    if not isinstance(document, dict) or document.get("schema") != PROFILE_SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise TraceError(f"{path}: schema {found!r}; expected {expected}")
    return document


def checked_profile(meta: dict[str, Any], path: Path) -> tuple[dict[str, Any], str | None]:
    """``profile.json`` without the fields of the wrong type (text fields that are not text, counts that
    are not positive integers), and a line naming them (None when all were right)."""
    wrong = {key: meta[key] for key in PROFILE_TEXT if meta.get(key) is not None and not isinstance(meta[key], str)}
    wrong |= {
        key: meta[key]
        for key in PROFILE_COUNTS
        if meta.get(key) is not None
        and not (isinstance(meta[key], int) and not isinstance(meta[key], bool) and meta[key] > 0)
    }
    if not wrong:
        return meta, None
    listed = ", ".join(f"{key} {short(value)}" for key, value in wrong.items())
    return {k: v for k, v in meta.items() if k not in wrong}, f"{path}: wrong type of value ({listed}); ignored"


def read_operators(path: Path) -> tuple[pd.DataFrame, str | None]:
    """``operators.json`` -> one row per (operator, input shapes), every count and time per step,
    and a line saying what in it could not be used (None when all could)."""
    expected = f"a per-operator table (schema {OPERATORS_SCHEMA})"
    document = _read_json(path, expected)
    if not isinstance(document, dict) or document.get("schema") != OPERATORS_SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise TraceError(f"{path}: schema {found!r}; expected {expected}")
    steps, rows = document.get("steps"), document.get("operators")
    if not _is_number(steps) or not isinstance(steps, int) or steps < 1 or not isinstance(rows, list):
        raise TraceError(f"{path}: 'steps' {steps!r} or 'operators' is missing or wrong; expected {expected}")
    rows = [r for r in rows if isinstance(r, dict)]
    frame = pd.DataFrame(rows)
    missing = [c for c in ("name", *PER_STEP) if c not in frame.columns]
    if missing:
        raise TraceError(f"{path}: operator rows lack {', '.join(missing)}; expected {expected}")
    # Rows without a text name are left out; values that are not finite numbers become missing.
    named = frame["name"].map(lambda n: isinstance(n, str) and n != "")
    bad_values = sum(
        1
        for row, keep in zip(rows, named, strict=True)
        if keep
        for c in PER_STEP
        if row.get(c) is not None and not _is_number(row[c])
    )
    frame = frame[named].copy()
    for column in PER_STEP:
        values = frame[column].map(lambda v: v if _is_number(v) else None)  # True is not a count, "12" not a time
        frame[column] = pd.to_numeric(values, errors="coerce") / steps
    for column, default in (("input_shapes", ""), ("kind", "operator")):
        frame[column] = frame[column].fillna(default).astype(str) if column in frame else default
    parts = [f"{int((~named).sum())} operator row(s) without a text name left out"] * bool((~named).sum())
    parts += [f"{bad_values} value(s) that are not finite numbers shown as missing"] * bool(bad_values)
    return frame.reset_index(drop=True), f"{path}: {'; '.join(parts)}" if parts else None


def _trace_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_trace_file(p.name))


def load_case(folder: Path, problems: list[str]) -> Trace | None:
    """One case folder; each problem appended as a line. None when nothing in it could be read."""
    files = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if not files:
        problems.append(
            f"{folder}: empty folder; expected a trace (*.pt.trace.json[.gz]) with profile.json and operators.json"
        )
        return None
    meta: dict[str, Any] = {}
    if (folder / PROFILE_FILE).is_file():
        try:
            meta, problem = checked_profile(read_profile(folder / PROFILE_FILE), folder / PROFILE_FILE)
            problems += [problem] if problem else []
        except TraceError as error:
            problems.append(str(error))
    else:
        problems.append(f"{folder}: no profile.json; expected a folder written by `pytest bench --profile`")
    errors = meta.get("errors")
    if errors:  # a list of messages as lenet.profiling writes it; anything else is one message
        listed = errors if isinstance(errors, list) else [errors]
        what = "an error" if len(listed) == 1 else f"{len(listed)} errors"
        problems.append(f"{folder}: recorded with {what}: {one_line('; '.join(map(str, listed)))}")
    operators = pd.DataFrame()
    if (folder / OPERATORS_FILE).is_file():
        try:
            operators, problem = read_operators(folder / OPERATORS_FILE)
            problems += [problem] if problem else []
        except TraceError as error:
            problems.append(str(error))
    elif meta:
        problems.append(f"{folder}: no operators.json; the operator table was not saved")
    traces = _trace_files(folder)
    # The trace profile.json names, when that is a trace file's name in this folder (never a path elsewhere).
    name = Path(str(meta.get("trace_file") or "")).name
    named = folder / name if is_trace_file(name) and is_safe_name(name, max_length=255) else None
    trace_file = named if named is not None and named.is_file() else (traces[-1] if traces else None)
    chrome = None
    if trace_file is not None:
        try:
            chrome, problem = usable_events(read_chrome_trace(trace_file), trace_file)
            problems += [problem] if problem else []
        except TraceError as error:
            problems.append(str(error))
    elif meta.get("trace_file") or not meta:
        problems.append(f"{folder}: no trace file (*.pt.trace.json[.gz]); expected the one profile.json names")
    if operators.empty and chrome is None:
        return None
    return Trace(
        folder=folder,
        run=folder.parent.name,
        case=folder.name,
        meta=meta,
        operators=operators,
        trace_file=trace_file,
        chrome=chrome,
    )


def _is_case_folder(folder: Path) -> bool:
    return any(p.is_file() and (p.name in OUR_FILES or is_trace_file(p.name)) for p in folder.iterdir())


def case_folders(path: Path, problems: list[str], depth: int = 0) -> list[Path]:
    """The case folders at or under ``path`` (a traces root, a run folder, a case folder or a trace file)."""
    if path.is_file():
        if is_trace_file(path.name) or path.name in OUR_FILES:
            return [path.parent]
        problems.append(f"{path}: not a trace folder or *.pt.trace.json[.gz] file")
        return []
    if not path.is_dir():
        problems.append(f"{path}: does not exist; expected a folder of traces (results/traces/<run>/<case>/)")
        return []
    if _is_case_folder(path):
        return [path]
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    children = sorted(p for p in entries if p.is_dir())
    if not children:
        what = "empty folder" if not entries else "no trace files in this folder"
        problems.append(f"{path}: {what}; expected a trace (*.pt.trace.json[.gz]) with profile.json and operators.json")
        return []
    if depth >= MAX_DEPTH:
        problems.append(f"{path}: no trace found within {MAX_DEPTH} folder levels")
        return []
    found: list[Path] = []
    for child in children:
        found += case_folders(child, problems, depth + 1)
    return found


def newest_run(root: Path) -> Path | None:
    """The newest run folder under a traces root (run names start with their UTC time), or None."""
    if not root.is_dir():
        return None
    runs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return runs[-1] if runs else None


def load_traces(paths: Iterable[Path]) -> TraceSet:
    """Every case folder at or under ``paths``; a line per problem; traces from a minority torch version noted."""
    result = TraceSet()
    seen: set[Path] = set()
    for path in paths:
        for folder in case_folders(Path(path), result.problems):
            if folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            trace = load_case(folder, result.problems)
            if trace is not None:
                result.traces.append(trace)
    result.problems += version_notes(result.traces)
    return result


def version_notes(traces: Sequence[Trace]) -> list[str]:
    """A line for each trace whose torch version is not the one most traces were recorded with."""
    versions = Counter(t.torch_version for t in traces if t.torch_version)
    if len(versions) < 2:
        return []
    common = versions.most_common(1)[0][0]
    return [
        f"{t.folder}: recorded with torch {t.torch_version}, the other traces with torch {common}: shown, "
        "but its operators and times may not compare"
        for t in traces
        if t.torch_version and t.torch_version != common
    ]
