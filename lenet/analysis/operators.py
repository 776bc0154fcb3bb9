"""Operator summaries of loaded traces: top operators, diffs between traces, one step's timeline.

Pure functions over the per-step operator tables and Chrome trace events that
``lenet.analysis.trace_load`` reads; nothing here touches a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lenet.analysis.trace_load import PER_STEP, Trace, TraceError, is_complete_event

SEGMENTS = ("set-up (untimed)", "zero_grad", "forward", "backward", "optimizer", "device")


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
    events = [e for e in chrome["traceEvents"] if isinstance(e, dict) and e.get("ph") == "X" and is_complete_event(e)]
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
