"""Loaded traces -> the report's trace section as blocks: top operators per trace, then each diff."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd

from lenet.analysis.blocks import Block, BulletList, Heading, Table, paragraph
from lenet.analysis.formatting import Code, aligns, code_list, is_missing, number
from lenet.analysis.operators import TraceDiff, main_time, step_totals, top_operators
from lenet.analysis.trace_load import Trace

TRACE_NOTE = (
    "Per step of the profiling pass, which runs apart from the timed rounds with the profiler on "
    "(shapes, memory, FLOPs): its times are inflated, so compare traces with each other, not with the "
    "tables above. Open a trace in https://ui.perfetto.dev (Open trace file) or TensorBoard with "
    "torch-tb-profiler (see the README, Traces)."
)
TIME_NAMES = {"self_cpu_us": "self CPU", "self_device_us": "self device"}


def short_shapes(text: str) -> str:
    """``[[64, 1, 32, 32], [6, 1, 5, 5], [], []]`` -> ``[64, 1, 32, 32], [6, 1, 5, 5]``: the tensors only."""
    if not text:
        return ""
    try:
        shapes = json.loads(text)
    except ValueError:
        return text
    if not isinstance(shapes, list):
        return text
    kept = [s for s in shapes if s != []]
    return ", ".join(json.dumps(s) for s in kept)


def top_table(top: pd.DataFrame, by: str = "self_cpu_us") -> Table:
    """A trace's top-operator table (values per step; ``share`` is of ``by``)."""
    device = bool((top["self_device_us"].fillna(0) > 0).any()) if not top.empty else False
    header = ["operator", "input shapes", "calls", "self CPU (µs)", "total CPU (µs)"]
    header += ["self device (µs)", "total device (µs)"] if device else []
    header += [f"share of {TIME_NAMES[by]}", "self memory (KB)", "MFLOP"]
    rows = []
    for _, r in top.iterrows():
        row = [str(r["name"]), short_shapes(str(r["input_shapes"])), number(r["calls"])]
        row += [number(r["self_cpu_us"]), number(r["cpu_total_us"])]
        row += [number(r["self_device_us"]), number(r["device_total_us"])] if device else []
        memory = r["self_device_memory_bytes"] if device else r["self_cpu_memory_bytes"]
        row += [
            "–" if is_missing(r["share"]) else f"{r['share']:.1%}",
            "–" if is_missing(memory) else number(memory / 1024),
            "–" if is_missing(r["flops"]) else number(r["flops"] / 1e6),
        ]
        rows.append(tuple(row))
    return Table(tuple(header), tuple(rows), aligns(len(header)))


def diff_table(rows: pd.DataFrame, limit: int = 15) -> Table:
    header = (
        "operator",
        "change",
        "calls before",
        "calls after",
        "before (µs)",
        "after (µs)",
        "Δ (µs)",
        "after/before",
    )
    cells = []
    for _, r in rows.head(limit).iterrows():
        cells.append(
            (
                str(r["name"]),
                str(r["change"]),
                number(r["calls_before"]),
                number(r["calls_after"]),
                number(r["before_us"]),
                number(r["after_us"]),
                "–" if is_missing(r["delta_us"]) else f"{r['delta_us']:+,.1f}",
                "–" if is_missing(r["ratio"]) else f"{r['ratio']:.2f}×",
            )
        )
    return Table(header, tuple(cells), aligns(len(header)))


def trace_blocks(
    traces: Sequence[Trace], diffs: Sequence[TraceDiff] = (), problems: Sequence[str] = (), top: int = 10
) -> list[Block]:
    """The report's trace section: problems, then a top-operator table per trace, then each diff."""
    runs = code_list(dict.fromkeys(t.run for t in traces)) or ("none",)
    versions = ", ".join(dict.fromkeys(str(t.torch_version) for t in traces if t.torch_version)) or "unknown"
    blocks: list[Block] = [
        Heading(2, "Traces"),
        paragraph((f"{len(traces)} trace(s) from run(s) ", *runs, f"; torch {versions}.")),
        paragraph(TRACE_NOTE),
    ]
    if problems:
        blocks += [paragraph("Trace problems (the other traces are shown):"), BulletList(tuple(problems))]
    for trace in traces:
        blocks.append(Heading(3, trace.title))
        where = Code(f"{trace.name}/{trace.trace_file.name if trace.trace_file is not None else 'no trace file'}")
        if trace.operators.empty:
            blocks.append(paragraph((where, " · no operator table")))
            continue
        totals = step_totals(trace.operators)
        steps = trace.meta.get("steps", "?")
        by = main_time(trace.operators)
        line = f" · self CPU {totals['self_cpu_us'] / 1e3:.3g} ms per step"
        if totals["self_device_us"] > 0:
            line += f", self device {totals['self_device_us'] / 1e3:.3g} ms"
        line += f" · mean of {steps} step(s) · top {top} of {len(trace.operators)} operator rows"
        line += f" by {TIME_NAMES[by]} time"
        blocks.append(paragraph((where, line)))
        blocks.append(top_table(top_operators(trace.operators, top, by=by), by))
    for diff in diffs:
        before, after = step_totals(diff.before.operators)[diff.by], step_totals(diff.after.operators)[diff.by]
        ratio = after / before if before > 0 else float("nan")
        name = TIME_NAMES[diff.by]
        blocks.append(Heading(3, f"Diff: {diff.title}"))
        blocks.append(
            paragraph(
                (
                    f"{name.capitalize()} per step {before / 1e3:.3g} ms → {after / 1e3:.3g} ms "
                    f"({ratio:.2f}×). Operators by size of the change in {name} time per step (input shapes summed); ",
                    Code("same"),
                    " within ±10%. One trace per side is one process, and processes here differ by 10-25%: "
                    "read small changes as noise.",
                )
            )
        )
        blocks.append(diff_table(diff.rows))
    return blocks
