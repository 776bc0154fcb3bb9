"""The metrics of saved runs as report data: a table per machine, roofline points, an at-a-glance summary.

Pure functions over the loaded DataFrame (``lenet.runs.frame``) and the summary
(``lenet.analysis.summary.summarize``): no files, no plotting. Runs saved without the metrics
pass (any run before it existed, or ``--no-metrics``) simply have no metrics rows, and the report
shows no metrics section for them.

Per benchmark (machine, device, phase, batch size, optimizer, variant), over the runs the
tables describe: the pooled median time (the summary's), and each metric's median over runs.
Achieved GFLOP/s and % of peak are recomputed from that median, and break-even from it and
the eager counterpart's median, so that every figure in a row agrees with the time beside it.
How each is measured: docs/metrics.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lenet.analysis.blocks import Block, BulletList, Heading, Table, paragraph
from lenet.analysis.flagged import ONLY_UNSTABLE
from lenet.analysis.formatting import aligns, is_missing, number, time_unit
from lenet.metrics.compile_cost import break_even_steps
from lenet.variants import SelectionError, parse_variant

KEY = ["machine", "device", "phase", "batch_size", "optimizer", "label"]
# What compiling a case cost (lenet.metrics.compile_cost), as saved.
COMPILE_FIGURES = (
    "compile_seconds",
    "compile_cold_seconds",
    "compile_warm_seconds",
    "compile_graphs",
    "compile_graph_breaks",
    "compile_recompiles",
)
NUMERIC = (
    "memory_peak_bytes",
    "memory_max_allocated_bytes",
    "memory_max_reserved_bytes",
    "flops",
    "bytes_accessed",
    "peak_gflops",
    "peak_bandwidth_gbs",
    *COMPILE_FIGURES,
    "ops_per_step",
    "kernels_per_step",
    "gpu_busy_percent",
    "graph_breaks",
    "recompiles",
)
TEXT = ("peak_gflops_kind", "peak_bandwidth_kind", "memory_unavailable", "flops_unavailable", "peak_unavailable")
# axis -> its reference value; an eager row stands for every scope (eager compiles nothing to scope)
AXES = {"memory_format": "contiguous", "precision": "fp32", "compile": "eager", "scope": "module"}
METRICS_NOTE = (
    "Measured in an untimed pass after each benchmark's timed rounds (docs/metrics.md). GFLOP/s = FLOPs "
    "(FlopCounterMode: conv and matmul only) / median; % of peak = GFLOP/s / the machine's measured matmul "
    "peak of the variant's precision; peak memory = peak live tensor bytes the call adds (CUDA allocator "
    "stats; CPU profiler memory events). Compile: in-process = the calls that compiled during this run "
    "(order-dependent: caches are shared), cold = a new process on an empty Inductor cache, warm = a new "
    "process on that cache; break-even = compile cost (cold, else in-process) / (eager median - median), "
    "'never' when compiled is not faster. Ops or kernels / step: aten operators (CPU) or GPU kernels (CUDA) per "
    "call, from the profiler; GPU busy %: kernel time over the call's span; graph breaks and recompiles: dynamo's, "
    "while the case was gated and warmed up."
)


def has_metrics(frame: pd.DataFrame) -> bool:
    """Whether any loaded row carries a metric (memory, FLOPs or compile cost)."""
    columns = [c for c in ("memory_peak_bytes", "flops", "compile_cold_seconds") if c in frame.columns]
    return any(frame[c].notna().any() for c in columns)


def _median(values: pd.Series) -> float | None:
    numbers = pd.to_numeric(values, errors="coerce").dropna()
    return float(numbers.median()) if not numbers.empty else None


def _last_text(values: pd.Series) -> str | None:
    texts = [v for v in values if isinstance(v, str) and v]
    return texts[-1] if texts else None


def metric_rows(table_frame: pd.DataFrame, summary: pd.DataFrame) -> pd.DataFrame:
    """One row per benchmark of ``summary`` with its metrics (medians over the runs in ``table_frame``).

    Columns: the summary's key and median, ``memory_format``, ``precision``, ``compile``, every
    NUMERIC and TEXT metric, and ``gflops_per_s``, ``percent_of_peak``, ``intensity`` (FLOPs per
    byte), ``eager_median``, ``break_even`` and ``break_even_warm`` (steps or "never"),
    ``break_even_basis``. Empty when no run carries metrics.
    """
    if table_frame.empty or summary.empty or not has_metrics(table_frame):
        return pd.DataFrame()
    work = table_frame[table_frame["phase"].notna()].copy()
    for column in ("device", "phase", "optimizer"):
        work[column] = work[column].astype(object).where(work[column].notna(), "")
    values: dict[tuple, dict[str, object]] = {}
    for key, group in work.groupby(KEY, dropna=False, sort=False):
        group = group.sort_values("run_time", na_position="first")
        cell: dict[str, object] = {name: _median(group[name]) if name in group else None for name in NUMERIC}
        cell |= {name: _last_text(group[name]) if name in group else None for name in TEXT}
        cell |= {axis: _last_text(group[axis]) if axis in group else None for axis in AXES}
        values[key] = cell
    rows = []
    for _, row in summary[summary["phase"].notna()].iterrows():
        key = tuple("" if row[k] is None or (isinstance(row[k], float) and math.isnan(row[k])) else row[k] for k in KEY)
        cell = values.get(key)
        if cell is None:
            continue
        rows.append(
            {**{k: row[k] for k in KEY}, "machine_label": row["machine_label"], "median": row["median"], **cell}
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    median = frame["median"].astype(float)
    flops = pd.to_numeric(frame["flops"], errors="coerce")
    frame["gflops_per_s"] = (flops / median / 1e9).where(flops > 0)
    frame["percent_of_peak"] = 100.0 * frame["gflops_per_s"] / pd.to_numeric(frame["peak_gflops"], errors="coerce")
    frame["intensity"] = (flops / pd.to_numeric(frame["bytes_accessed"], errors="coerce")).where(flops > 0)
    _add_break_even(frame)
    return frame


def _add_break_even(frame: pd.DataFrame) -> None:
    """Break-even of each compiled row against the eager row of the same machine, case and other axes."""
    medians = {
        (r.machine, r.device, r.phase, r.batch_size, _text(r.optimizer), r.memory_format, r.precision): r.median
        for r in frame.itertuples()
        if r.compile == "eager"
    }
    eager, steps, warm, basis = [], [], [], []
    for r in frame.itertuples():
        key = (r.machine, r.device, r.phase, r.batch_size, _text(r.optimizer), r.memory_format, r.precision)
        # A module-scope optimizer step runs eager code: nothing compiled to pay back.
        pays_back = r.compile not in (None, "eager") and (r.phase != "optimizer_step" or r.scope == "step")
        reference = medians.get(key) if pays_back else None
        cold = None if is_missing(r.compile_cold_seconds) else float(r.compile_cold_seconds)
        cost = cold if cold is not None else None if is_missing(r.compile_seconds) else float(r.compile_seconds)
        if reference is None or cost is None:
            eager.append(None), steps.append(None), warm.append(None), basis.append(None)
            continue
        eager.append(reference)
        steps.append(break_even_steps(cost, reference, float(r.median)))
        warm_cost = None if is_missing(r.compile_warm_seconds) else float(r.compile_warm_seconds)
        warm.append(break_even_steps(warm_cost, reference, float(r.median)) if warm_cost is not None else None)
        basis.append("cold" if cold is not None else "in-process")
    frame["eager_median"], frame["break_even"] = eager, steps
    frame["break_even_warm"], frame["break_even_basis"] = warm, basis


def _text(value: object) -> str:
    return "" if is_missing(value) else str(value)


# --- presentation data --------------------------------------------------------------------------------


def _mib(value: object) -> str:
    return "–" if is_missing(value) else f"{float(value) / 2**20:.3g}"  # type: ignore[arg-type]


def _steps(value: object) -> str:
    if is_missing(value):
        return "–"
    return value if isinstance(value, str) else f"{int(value):,}"  # type: ignore[call-overload]


def peaks_line(rows: pd.DataFrame) -> str:
    """The machine's measured roofs, as the records of ``rows`` name them."""
    parts = []
    for kind, part in rows.groupby("peak_gflops_kind", dropna=True, sort=True):
        parts.append(f"{kind} {number(_median(part['peak_gflops']))} GFLOP/s")
    for kind, part in rows.groupby("peak_bandwidth_kind", dropna=True, sort=True):
        parts.append(f"{kind} bandwidth {number(_median(part['peak_bandwidth_gbs']))} GB/s")
    missing = sorted({t for t in rows["peak_unavailable"].dropna() if t})
    text = "Measured peaks: " + ("; ".join(parts) if parts else "none") + "."
    return text + (f" Not measured: {missing[0]}." if missing else "")


METRICS_HEADER = (
    "device",
    "phase",
    "batch",
    "variant",
    "median ({unit})",
    "GFLOP/s",
    "% of peak",
    "peak memory (MiB)",
    "compile in-process (s)",
    "cold (s)",
    "warm (s)",
    "break-even (steps)",
    "break-even warm",
    "ops or kernels / step",
    "GPU busy %",
    "graph breaks",
    "recompiles",
)


def metrics_blocks(rows: pd.DataFrame) -> list[Block]:
    """The metrics section: a note, then per machine its peaks and one table (every device, phase, batch)."""
    if rows.empty:
        return []
    blocks: list[Block] = [Heading(2, "Metrics: FLOPs, % of peak, peak memory, compile cost"), paragraph(METRICS_NOTE)]
    for _machine, part in rows.groupby("machine", sort=False):
        unit, scale = time_unit(part["median"].astype(float).tolist())
        blocks.append(Heading(3, str(part["machine_label"].iloc[0])))
        blocks.append(paragraph(peaks_line(part)))
        header = tuple(column.format(unit=unit) for column in METRICS_HEADER)
        cells = tuple(_metrics_cells(r, scale) for r in part.itertuples())
        blocks.append(Table(header, cells, aligns(len(header), left=4)))
        reasons = sorted(
            {
                f"{k.replace('_unavailable', '')}: {t}"
                for k in TEXT
                if k.endswith("unavailable")
                for t in part[k].dropna()
            }
        )
        if reasons:
            blocks.append(BulletList(tuple(f"not measured, {reason}" for reason in reasons)))
    return blocks


def _metrics_cells(r: Any, scale: float) -> tuple[str, ...]:
    """One benchmark's row of the metrics table (METRICS_HEADER's columns)."""
    name = str(r.label) + (f" ({r.optimizer})" if not is_missing(r.optimizer) and r.optimizer else "")
    compiled = r.compile not in (None, "eager")
    return (
        str(r.device),
        str(r.phase),
        str(r.batch_size),
        name,
        number(float(r.median) * scale),
        number(r.gflops_per_s),
        number(r.percent_of_peak, 2),
        _mib(r.memory_peak_bytes),
        number(r.compile_seconds) if compiled else "–",
        number(r.compile_cold_seconds),
        number(r.compile_warm_seconds),
        _steps(r.break_even) + (f" ({r.break_even_basis})" if r.break_even_basis == "in-process" else ""),
        _steps(r.break_even_warm),
        number(r.kernels_per_step if not is_missing(r.kernels_per_step) else r.ops_per_step),
        number(r.gpu_busy_percent, 2),
        _count(r.graph_breaks) if compiled else "–",
        _count(r.recompiles) if compiled else "–",
    )


# --- at a glance ----------------------------------------------------------------------------------------


def best_variants(summary: pd.DataFrame) -> pd.DataFrame:
    """The fastest variant (lowest median) per machine, device, phase and batch size, with its speedup
    (and, where the stability checks flagged anything, its warning and whether only flagged runs are behind it)."""
    if summary.empty or "phase" not in summary.columns:  # no benchmarks at all (a report of traces alone)
        return pd.DataFrame()
    rows = summary[summary["phase"].notna() & summary["median"].notna()]
    if rows.empty:
        return pd.DataFrame()
    best = rows.loc[rows.groupby(["machine", "device", "phase", "batch_size"], sort=False)["median"].idxmin()]
    columns = ["machine", "machine_label", "device", "phase", "batch_size", "label", "optimizer", "median", "speedup"]
    optional = [c for c in ("reference", "warning", ONLY_UNSTABLE) if c in best.columns]
    return best[[*columns, *optional]]


def axis_effects(summary: pd.DataFrame, metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """What each axis value costs or gains against the axis's reference value, per machine and device.

    For every pair of benchmarks that differ only in one axis (same phase, batch size,
    optimizer and other axes), the ratio of medians (value / reference: below 1 is faster);
    the geometric mean over pairs, their range and count; and, where both have a peak memory,
    the geometric mean ratio of peak memory. ``flagged_pairs``: the pairs with a side that rests on
    runs the stability checks all flagged (the summary's ``only_unstable``).
    """
    if summary.empty or "phase" not in summary.columns:
        return pd.DataFrame()
    rows = summary[summary["phase"].notna() & summary["median"].notna()].copy()
    if rows.empty:
        return pd.DataFrame()
    rows = _with_axes(rows)
    if rows.empty:
        return pd.DataFrame()
    rows["optimizer"] = rows["optimizer"].astype(object).where(rows["optimizer"].notna(), "")
    memory = _peak_memory(metrics)
    out = []
    for axis, reference in AXES.items():
        for (machine, device), part in _axis_rows(rows, axis).groupby(["machine", "device"], sort=False):
            pairs = _axis_pairs(part, axis, reference, memory)
            out += [
                {
                    "machine": machine,
                    "machine_label": part["machine_label"].iloc[0],
                    "device": device,
                    "axis": axis,
                    "value": value,
                    "reference": reference,
                    **found,
                }
                for value, found in pairs.items()
            ]
    return pd.DataFrame(out)


def _peak_memory(metrics: pd.DataFrame | None) -> dict[tuple, float]:
    """Each benchmark's peak memory by (machine, phase, batch size, optimizer, label), where it has one."""
    memory: dict[tuple, float] = {}
    if metrics is not None and not metrics.empty:
        for r in metrics.itertuples():
            if not is_missing(r.memory_peak_bytes) and r.memory_peak_bytes > 0:
                memory[(r.machine, r.phase, r.batch_size, _text(r.optimizer), r.label)] = float(r.memory_peak_bytes)
    return memory


def _axis_pairs(part: pd.DataFrame, axis: str, reference: str, memory: dict[tuple, float]) -> dict[str, dict]:
    """Per value of ``axis`` in one machine's and device's rows: the time ratios of its pairs with the reference
    value (geometric mean, range, count, how many lean on flagged runs alone) and their peak memory ratio."""
    group_keys = ["machine", "device", "phase", "batch_size", "optimizer", *(a for a in AXES if a != axis)]
    ratios: dict[str, list[float]] = {}
    memory_ratios: dict[str, list[float]] = {}
    flagged_pairs: dict[str, int] = {}  # pairs with a side whose every run was flagged
    # Plain records, not iterrows: a report of a few dozen benchmarks spent seconds here in pandas.
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in part.to_dict("records"):
        groups.setdefault(tuple(None if is_missing(record[k]) else record[k] for k in group_keys), []).append(record)
    for group in groups.values():
        base_row = next((r for r in group if r[axis] == reference), None)
        if base_row is None:
            continue
        for r in (r for r in group if r[axis] != reference):
            ratios.setdefault(r[axis], []).append(float(r["median"]) / float(base_row["median"]))
            if _only_flagged(r) or _only_flagged(base_row):
                flagged_pairs[r[axis]] = flagged_pairs.get(r[axis], 0) + 1
            key = (r["machine"], r["phase"], r["batch_size"], r["optimizer"])
            mine, theirs = memory.get((*key, r["label"])), memory.get((*key, base_row["label"]))
            if mine and theirs:
                memory_ratios.setdefault(r[axis], []).append(mine / theirs)
    return {
        value: {
            "time_ratio": _geomean(found),
            "low": min(found),
            "high": max(found),
            "pairs": len(found),
            "flagged_pairs": flagged_pairs.get(value, 0),
            "memory_ratio": _geomean(memory_ratios[value]) if value in memory_ratios else None,
        }
        for value, found in ratios.items()
    }


def _with_axes(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` whose label is a variant id, with one column per axis (read from the id)."""
    variants = {}
    for label in rows["label"].astype(str).unique():
        try:
            variants[label] = parse_variant(label)
        except SelectionError:
            continue
    rows = rows[rows["label"].astype(str).isin(list(variants))].copy()
    for axis in AXES:
        rows[axis] = [getattr(variants[label], axis) for label in rows["label"].astype(str)]
    return rows


def _axis_rows(rows: pd.DataFrame, axis: str) -> pd.DataFrame:
    """The rows an axis compares: eager rows stand for every scope in the compile axis (a step-scope compiled
    variant is compared with eager), and are left out of the scope axis (eager has no scope to change)."""
    eager = rows["compile"] == "eager"
    if axis == "scope":
        return rows[~eager]
    if axis == "compile":
        return pd.concat([rows, rows[eager].assign(scope="step")], ignore_index=True)
    return rows


def _count(value: object) -> str:
    return "–" if is_missing(value) else str(int(value))  # type: ignore[call-overload]


def _geomean(values: Sequence[float]) -> float:
    return float(np.exp(np.mean(np.log(values))))


def glance_blocks(summary: pd.DataFrame, metrics: pd.DataFrame | None = None) -> list[Block]:
    """The at-a-glance summary: the best variant per phase and device, and what each axis costs or gains."""
    best = best_variants(summary)
    if best.empty:
        return []
    blocks: list[Block] = [Heading(2, "At a glance")]
    for (_machine, label), part in best.groupby(["machine", "machine_label"], sort=False):
        blocks += [Heading(3, str(label)), BulletList(tuple(_fastest_line(r) for r in part.itertuples()))]
        effects = axis_effects(summary[summary["machine"] == _machine], metrics)
        if not effects.empty:
            blocks += [paragraph("What each axis costs or gains (geometric mean over matched pairs):")]
            blocks += [BulletList(tuple(_effect_line(e) for e in effects.itertuples()))]
    return blocks


FLAGGED_ONLY = "every run behind it was flagged as disturbed by the stability checks"


def _only_flagged(row: Any) -> bool:
    """Whether a summary row (a Series, a dict or a named tuple) rests on flagged runs alone."""
    value = row.get(ONLY_UNSTABLE) if isinstance(row, pd.Series | dict) else getattr(row, ONLY_UNSTABLE, None)
    return bool(value) and not is_missing(value)


def _fastest_line(r: Any) -> str:
    """``cpu train_step, batch 64: fastest is … (1.2 ms, 1.30× the reference)``, and a warning where only
    flagged runs are behind it."""
    if getattr(r, "reference", None) == r.label:
        speedup = ", the reference"
    else:
        speedup = "" if is_missing(r.speedup) else f", {float(r.speedup):.2f}× the reference"
    optimizer = f" ({r.optimizer})" if not is_missing(r.optimizer) and r.optimizer else ""
    flagged = f"; {FLAGGED_ONLY}: {r.warning}" if _only_flagged(r) else ""
    return (
        f"{r.device} {r.phase}, batch {r.batch_size}: fastest is {r.label}{optimizer} "
        f"({number(float(r.median) * 1e3)} ms{speedup}{flagged})"
    )


def _effect_line(e: Any) -> str:
    """What one axis value costs or gains, and a warning where every pair behind it leans on flagged runs."""
    change = "faster" if e.time_ratio < 1 else "slower"
    memory = "" if is_missing(e.memory_ratio) else f"; peak memory ×{e.memory_ratio:.3g}"
    flagged = (
        "; every pair has a side whose runs were all flagged as disturbed by the stability checks"
        if e.flagged_pairs and e.flagged_pairs == e.pairs
        else ""
    )
    return (
        f"{e.device}: {e.value} instead of {e.reference}: time ×{e.time_ratio:.3g} "
        f"({abs(1 - e.time_ratio):.0%} {change}; {e.pairs} pair(s), ×{e.low:.3g} to ×{e.high:.3g})"
        f"{memory}{flagged}"
    )
