"""Recorded traces (``results/traces/<run>/<case>/``) -> operator tables, diffs and step timelines.

A case folder, as ``lenet.profiling`` writes it, holds ``profile.json`` (what was
recorded), ``operators.json`` (the profiler's per-operator totals over ``steps``
steps) and the Chrome trace ``<variant>.<ns>.pt.trace.json[.gz]``. Here every time
and count is turned into a value **per step**.

Bad input never stops a load: an empty folder, a truncated or foreign JSON file, a
trace from another torch version each yield one line in :attr:`TraceSet.problems`
naming the file and what was expected, and the other traces are still loaded.
Files are only read.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from lenet.trace_files import (
    OPERATORS_FILE,
    OPERATORS_SCHEMA,
    OUR_FILES,
    PROFILE_FILE,
    PROFILE_SCHEMA,
    is_trace_file,
)

PER_STEP = (
    "calls",
    "self_cpu_us",
    "cpu_total_us",
    "self_device_us",
    "device_total_us",
    "self_cpu_memory_bytes",
    "cpu_memory_bytes",
    "self_device_memory_bytes",
    "device_memory_bytes",
    "flops",
)
SEGMENTS = ("set-up (untimed)", "zero_grad", "forward", "backward", "optimizer", "device")
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


# --- reading files -----------------------------------------------------------------------------


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
        raise TraceError(f"{path}: not valid JSON, truncated? ({error}); expected {expected}") from None


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


def read_profile(path: Path) -> dict[str, Any]:
    expected = f"lenet-bench's {path.name} (schema {PROFILE_SCHEMA})"
    document = _read_json(path, expected)
    if not isinstance(document, dict) or document.get("schema") != PROFILE_SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise TraceError(f"{path}: schema {found!r}; expected {expected}")
    return document


def read_operators(path: Path) -> pd.DataFrame:
    """``operators.json`` -> one row per (operator, input shapes), every count and time per step."""
    expected = f"a per-operator table (schema {OPERATORS_SCHEMA})"
    document = _read_json(path, expected)
    if not isinstance(document, dict) or document.get("schema") != OPERATORS_SCHEMA:
        found = document.get("schema") if isinstance(document, dict) else type(document).__name__
        raise TraceError(f"{path}: schema {found!r}; expected {expected}")
    steps, rows = document.get("steps"), document.get("operators")
    if not isinstance(steps, int) or steps < 1 or not isinstance(rows, list):
        raise TraceError(f"{path}: 'steps' {steps!r} or 'operators' is missing or wrong; expected {expected}")
    frame = pd.DataFrame(rows)
    missing = [c for c in ("name", *PER_STEP) if c not in frame.columns]
    if missing:
        raise TraceError(f"{path}: operator rows lack {', '.join(missing)}; expected {expected}")
    for column in PER_STEP:
        frame[column] = pd.to_numeric(frame[column], errors="coerce") / steps
    for column, default in (("input_shapes", ""), ("kind", "operator")):
        frame[column] = frame[column].fillna(default).astype(str) if column in frame else default
    return frame


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
            meta = read_profile(folder / PROFILE_FILE)
        except TraceError as error:
            problems.append(str(error))
    else:
        problems.append(f"{folder}: no profile.json; expected a folder written by `pytest bench --profile`")
    for error in meta.get("errors") or ():
        problems.append(f"{folder}: recorded with an error: {error}")
    operators = pd.DataFrame()
    if (folder / OPERATORS_FILE).is_file():
        try:
            operators = read_operators(folder / OPERATORS_FILE)
        except TraceError as error:
            problems.append(str(error))
    elif meta:
        problems.append(f"{folder}: no operators.json; the operator table was not saved")
    traces = _trace_files(folder)
    named = folder / Path(str(meta["trace_file"])).name if meta.get("trace_file") else None
    trace_file = named if named is not None and named.is_file() else (traces[-1] if traces else None)
    chrome = None
    if trace_file is not None:
        try:
            chrome = read_chrome_trace(trace_file)
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


# --- tables ------------------------------------------------------------------------------------


def top_operators(operators: pd.DataFrame, n: int = 10, by: str = "self_cpu_us") -> pd.DataFrame:
    """The ``n`` rows (operator and input shapes) with the most ``by`` per step, with their share of the step."""
    if operators.empty:
        return operators
    total = float(operators[by].sum())
    top = operators.sort_values([by, "name"], ascending=[False, True], kind="stable").head(n).copy()
    top["share"] = top[by] / total if total > 0 else float("nan")
    return top.reset_index(drop=True)


def main_time(operators: pd.DataFrame) -> str:
    """The column a trace is read by: self device time when it ran on a device, else self CPU time."""
    has_device = not operators.empty and float(operators["self_device_us"].fillna(0).sum()) > 0
    return "self_device_us" if has_device else "self_cpu_us"


def step_totals(operators: pd.DataFrame) -> dict[str, float]:
    """Self CPU and device time of all operators in one step (microseconds)."""
    return {
        "self_cpu_us": float(operators["self_cpu_us"].sum()) if not operators.empty else 0.0,
        "self_device_us": float(operators["self_device_us"].sum()) if not operators.empty else 0.0,
    }


def operator_diff(
    before: pd.DataFrame, after: pd.DataFrame, by: str = "self_cpu_us", same_within: float = 0.10
) -> pd.DataFrame:
    """Per operator (input shapes summed): ``by`` per step before and after, the change and the ratio.

    ``change`` is ``slower`` / ``faster`` when after/before is beyond 1 ± ``same_within``
    (a label for reading, not a test: one trace is one process, and processes here differ
    by 10-25%), ``new`` / ``gone`` when the operator ran on one side only. Rows are sorted
    by the size of the change, largest first.
    """
    columns = ["calls", by]
    a = before.groupby("name")[columns].sum() if not before.empty else pd.DataFrame(columns=columns)
    b = after.groupby("name")[columns].sum() if not after.empty else pd.DataFrame(columns=columns)
    both = a.add_suffix("_before").join(b.add_suffix("_after"), how="outer")
    for column in both.columns:
        both[column] = pd.to_numeric(both[column], errors="coerce")
    diff = pd.DataFrame(
        {
            "name": both.index.astype(str),
            "calls_before": both["calls_before"].to_numpy(),
            "calls_after": both["calls_after"].to_numpy(),
            "before_us": both[f"{by}_before"].to_numpy(),
            "after_us": both[f"{by}_after"].to_numpy(),
        }
    )
    diff["delta_us"] = diff["after_us"].fillna(0.0) - diff["before_us"].fillna(0.0)
    diff["ratio"] = diff["after_us"] / diff["before_us"].where(diff["before_us"] > 0)
    diff["change"] = [_change(b_, a_, r, same_within) for b_, a_, r in diff[["before_us", "after_us", "ratio"]].values]
    diff["_size"] = diff["delta_us"].abs()
    diff = diff.sort_values(["_size", "name"], ascending=[False, True], kind="stable").drop(columns="_size")
    return diff.reset_index(drop=True)


def _change(before: float, after: float, ratio: float, same_within: float) -> str:
    if pd.isna(before):
        return "new"
    if pd.isna(after):
        return "gone"
    if pd.isna(ratio):
        return "slower" if after > 0 else "same"
    if ratio > 1 + same_within:
        return "slower"
    if ratio < 1 - same_within:
        return "faster"
    return "same"


@dataclass(frozen=True)
class TraceDiff:
    before: Trace
    after: Trace
    rows: pd.DataFrame
    by: str = "self_cpu_us"  # the time compared: self_cpu_us, or self_device_us when both ran on a device

    @property
    def title(self) -> str:
        if self.before.case == self.after.case:
            return f"{self.before.title}: run {self.before.run} → run {self.after.run}"
        return f"{self.before.title} → {self.after.title}"


def pair_traces(before: Sequence[Trace], after: Sequence[Trace], problems: list[str]) -> list[tuple[Trace, Trace]]:
    """Two single traces pair as they are (two variants); two runs pair by case folder name."""
    if len(before) == 1 and len(after) == 1:
        return [(before[0], after[0])]
    by_case = {t.case: t for t in after}
    pairs = [(t, by_case[t.case]) for t in before if t.case in by_case]
    matched = {t.case for t, _ in pairs}
    for trace in [*before, *after]:
        if trace.case not in matched:
            problems.append(f"{trace.folder}: no trace of the same case on the other side of the diff")
    return pairs


def diff_traces(before: Sequence[Trace], after: Sequence[Trace], problems: list[str]) -> list[TraceDiff]:
    """A diff per pair: by self device time when both traces ran on a device, else by self CPU time."""
    diffs = []
    for a, b in pair_traces(before, after, problems):
        by = "self_device_us" if main_time(a.operators) == main_time(b.operators) == "self_device_us" else "self_cpu_us"
        diffs.append(TraceDiff(a, b, operator_diff(a.operators, b.operators, by=by), by))
    return diffs


def operators_csv(traces: Sequence[Trace]) -> str:
    """Every trace's operator rows, per step, with the run, case, variant and phase they belong to."""
    frames = [
        t.operators.assign(run=t.run, case=t.case, variant=t.variant, phase=t.phase, torch_version=t.torch_version)
        for t in traces
        if not t.operators.empty
    ]
    if not frames:
        return ""
    table = pd.concat(frames, ignore_index=True)
    first = ["run", "case", "variant", "phase", "torch_version", "name", "kind", "input_shapes"]
    return table[first + [c for c in PER_STEP if c in table.columns]].to_csv(index=False)


# --- one step's timeline -----------------------------------------------------------------------

FAMILIES = (
    ("compiled", ("cpp_fused", "compiled", "triton_")),
    ("convolution", ("conv",)),
    ("linear", ("addmm", "linear", "aten::mm", "matmul", "aten::bmm")),
    ("pooling", ("pool",)),
    ("relu", ("relu", "threshold", "clamp_min")),
    ("loss", ("softmax", "nll_loss", "cross_entropy")),
    ("optimizer", ("optimizer", "aten::add_", "aten::mul_", "aten::addcmul", "aten::addcdiv", "aten::_foreach")),
)


def family(name: str) -> str:
    """A coarse operator family for colouring a timeline (the first that matches), else ``other``."""
    lowered = name.lower()
    for label, needles in FAMILIES:
        if any(needle in lowered for needle in needles):
            return label
    return "other"


def _inside(event: dict[str, Any], ranges: Sequence[tuple[float, float]]) -> bool:
    start, end = float(event["ts"]), float(event["ts"]) + float(event["dur"])
    return any(lo - 1e-3 <= start and end <= hi + 1e-3 for lo, hi in ranges)


def step_timeline(chrome: dict[str, Any], phase: str | None = None, step: str | None = None) -> pd.DataFrame:
    """The top-level operators of one profiler step, in time order, each with the part of the step it ran in.

    ``step``: a ``ProfilerStep#N`` name; default the step of median duration. Columns:
    ``name``, ``segment`` (one of SEGMENTS), ``family``, ``start_ms`` (since the step began),
    ``duration_ms``; ``frame.attrs`` holds the step's name and duration. Device kernels
    (CUDA traces) form the ``device`` segment. TraceError when the trace has no steps.
    """
    events = [
        e
        for e in chrome["traceEvents"]
        if isinstance(e, dict) and e.get("ph") == "X" and isinstance(e.get("ts"), int | float) and "dur" in e
    ]
    steps = sorted((e for e in events if str(e.get("name", "")).startswith("ProfilerStep#")), key=lambda e: e["dur"])
    if step is not None:
        steps = [e for e in steps if e["name"] == step]
    if not steps:
        raise TraceError(f"no {step or 'ProfilerStep#'} range in the trace; expected one recorded with a schedule")
    chosen = steps[(len(steps) - 1) // 2]
    lo, hi = float(chosen["ts"]), float(chosen["ts"]) + float(chosen["dur"])
    within = [e for e in events if e is not chosen and _inside(e, [(lo, hi)])]
    annotations = [e for e in within if e.get("cat") == "user_annotation"]

    def ranges(prefix: str) -> list[tuple[float, float]]:
        return [(float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in annotations if e["name"].startswith(prefix)]

    setup, optimizer, zero_grad = ranges("lenet.setup"), ranges("Optimizer.step"), ranges("Optimizer.zero_grad")
    ops = sorted((e for e in within if e.get("cat") == "cpu_op"), key=lambda e: (e.get("tid"), e["ts"], -e["dur"]))
    top: list[dict[str, Any]] = []
    ends: dict[Any, float] = {}
    for event in ops:  # outermost operators only: an operator inside another one's span is its callee
        if float(event["ts"]) + float(event["dur"]) <= ends.get(event.get("tid"), float("-inf")) + 1e-3:
            continue
        ends[event.get("tid")] = float(event["ts"]) + float(event["dur"])
        top.append(event)
    backward_starts = [float(e["ts"]) for e in top if str(e["name"]).startswith("autograd::engine")]
    first_backward = min(backward_starts) if backward_starts else float("inf")
    rows = []
    for event in top:
        name = str(event["name"])
        if _inside(event, setup):
            segment = "set-up (untimed)"
        elif _inside(event, optimizer) or phase == "optimizer_step":
            segment = "optimizer"
        elif _inside(event, zero_grad):
            segment = "zero_grad"
        elif phase == "backward" or name.startswith("autograd::engine") or float(event["ts"]) >= first_backward:
            segment = "backward"
        else:
            segment = "forward"
        rows.append((name, segment, float(event["ts"]), float(event["dur"])))
    rows += [
        (str(e["name"]), "device", float(e["ts"]), float(e["dur"]))
        for e in events
        if e.get("cat") == "kernel" and lo <= float(e["ts"]) <= hi
    ]
    frame = pd.DataFrame(rows, columns=["name", "segment", "ts", "dur"])
    frame = frame.assign(
        family=frame["name"].map(family),
        start_ms=(frame["ts"] - lo) / 1e3,
        duration_ms=frame["dur"] / 1e3,
    )[["name", "segment", "family", "start_ms", "duration_ms"]]
    frame.attrs = {"step": str(chosen["name"]), "step_ms": float(chosen["dur"]) / 1e3}
    return frame
