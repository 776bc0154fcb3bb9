"""Summary DataFrame -> Markdown (GitHub-flavoured), CSV and a self-contained HTML page.

Presentation only: every function takes data and returns a string; the caller writes files.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd

from lenet.analysis.summary import BASIS_TEXT
from lenet.analysis.traces import Trace, TraceDiff, main_time, step_totals, top_operators

CSV_COLUMNS = [
    "machine",
    "machine_label",
    "torch_version",
    "commit",
    "device",
    "phase",
    "batch_size",
    "optimizer",
    "label",
    "name",
    "params",
    "runs",
    "rounds",
    "median",
    "q1",
    "q3",
    "iqr",
    "samples_per_s",
    "ops",
    "reference",
    "speedup",
    "speedup_low",
    "speedup_high",
    "interval_basis",
    "instructions",
    "instructions_vs_reference",
]


@dataclass(frozen=True)
class Section:
    """One table: the rows of one machine, device, phase and batch size (or one group of a foreign run)."""

    machine: str
    machine_label: str
    title: str
    rows: pd.DataFrame
    lenet: bool  # rows carry lenet-bench variants (else: a run of other code)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def sections(summary: pd.DataFrame) -> Iterator[Section]:
    if summary.empty:
        return
    for machine, machine_rows in summary.groupby("machine", sort=False):
        label = str(machine_rows["machine_label"].iloc[0])
        lenet_rows = machine_rows[machine_rows["phase"].notna()]
        other_rows = machine_rows[machine_rows["phase"].isna()]
        for (device, phase, batch), rows in lenet_rows.groupby(["device", "phase", "batch_size"], sort=False):
            yield Section(str(machine), label, f"{device} · {phase} · batch {batch}", rows, lenet=True)
        if not other_rows.empty:
            groups = other_rows["group"].astype(object).where(other_rows["group"].notna(), "")
            for group, rows in other_rows.groupby(groups, sort=False):
                title = f"group {group}" if group else "benchmarks without a group"
                yield Section(str(machine), label, title, rows, lenet=False)


def time_unit(seconds: Sequence[float]) -> tuple[str, float]:
    """A unit that suits the smallest value: (name, multiplier)."""
    finite = [s for s in seconds if not _is_missing(s) and s > 0]
    smallest = min(finite) if finite else 1.0
    if smallest < 1e-6:
        return "ns", 1e9
    if smallest < 1e-3:
        return "µs", 1e6
    if smallest < 1.0:
        return "ms", 1e3
    return "s", 1.0


def _number(value: float, digits: int = 3) -> str:
    """Three significant digits, thousands separated: 6.87, 0.301, 1,234."""
    if _is_missing(value):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def speedup_text(row: pd.Series) -> str:
    if _is_missing(row["speedup"]):
        return "–"
    if row["label"] == row["reference"]:
        return "1.00 (reference)"
    text = f"{row['speedup']:.2f}×"
    if not _is_missing(row["speedup_low"]):
        text += f" [{row['speedup_low']:.2f}, {row['speedup_high']:.2f}]"
    return text


def _instructions_vs_reference(row: pd.Series) -> str:
    if _is_missing(row["instructions_vs_reference"]):
        return "–"
    if row["label"] == row["reference"]:
        return "1.000 (reference)"
    return f"{row['instructions_vs_reference']:.3f}×"


def section_table(section: Section) -> tuple[list[str], list[list[str]]]:
    """Header and cells of one section's table, as plain (unescaped) strings."""
    rows = section.rows
    unit, scale = time_unit(rows["median"].tolist())
    if section.lenet:
        header = [
            "variant",
            "optimizer",
            f"median ({unit})",
            f"IQR ({unit})",
            "samples/s",
            "speedup [95% CI]",
            "CI from",
            "runs",
            "rounds",
        ]
        cells = [
            [
                str(r["label"]),
                "–" if _is_missing(r["optimizer"]) else str(r["optimizer"]),
                _number(r["median"] * scale),
                _number(r["iqr"] * scale),
                _number(r["samples_per_s"]),
                speedup_text(r),
                "–" if _is_missing(r["interval_basis"]) else str(r["interval_basis"]),
                str(r["runs"]),
                str(r["rounds"]),
            ]
            for _, r in rows.iterrows()
        ]
        if "instructions" in rows.columns and rows["instructions"].notna().any():
            header += ["instructions", "instr. vs ref"]
            for cell, (_, r) in zip(cells, rows.iterrows(), strict=True):
                cell += [_number(r["instructions"]), _instructions_vs_reference(r)]
    else:
        header = ["benchmark", "params", f"median ({unit})", f"IQR ({unit})", "ops/s", "runs", "rounds"]
        cells = [
            [
                str(r["name"]),
                "–" if _is_missing(r["params"]) else str(r["params"]),
                _number(r["median"] * scale),
                _number(r["iqr"] * scale),
                _number(r["ops"]),
                str(r["runs"]),
                str(r["rounds"]),
            ]
            for _, r in rows.iterrows()
        ]
    return header, cells


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _machine_line(rows: pd.DataFrame) -> str:
    commits = ", ".join(f"`{c[:12]}`" for c in dict.fromkeys(rows["commit"].astype(str)))
    latest = rows["run_time"].max()
    when = latest.strftime("%Y-%m-%d %H:%M UTC") if not _is_missing(latest) and not pd.isna(latest) else "unknown"
    runs = int(rows["runs"].max())
    bases = [b for b in dict.fromkeys(rows["interval_basis"].dropna()) if b]
    basis = "; ".join(BASIS_TEXT[b] for b in bases) or "none (no reference variant in these runs)"
    return (
        f"Fingerprint `{rows['machine'].iloc[0]}` · commit {commits} · up to {runs} run(s) per benchmark · "
        f"latest {when}. Intervals: {basis}."
    )


def markdown(summary: pd.DataFrame, title: str = "LeNet benchmark report", notes: Sequence[str] = ()) -> str:
    """The whole report as GitHub-flavoured Markdown (fit for a job summary or a PR comment)."""
    lines = [f"# {title}", ""]
    if summary.empty:
        return "\n".join([*lines, "No benchmarks to report.", ""])
    machines = summary["machine"].nunique()
    lines.append(
        f"{len(summary)} benchmarks on {machines} machine(s). Median and IQR of the time per call; "
        f"speedup = reference median / median (above 1 is faster than the reference), with a 95% "
        f"bootstrap confidence interval."
    )
    lines.extend(f"{note}" for note in notes)
    lines.append("")
    current = None
    for section in sections(summary):
        if section.machine != current:
            current = section.machine
            machine_rows = summary[summary["machine"] == section.machine]
            lines += [f"## {section.machine_label}", "", _machine_line(machine_rows), ""]
        header, cells = section_table(section)
        aligns = ["---" if i < 2 else "---:" for i in range(len(header))]
        lines += [f"### {section.title}", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| " + " | ".join(aligns) + " |")
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in cells]
        lines.append("")
    return "\n".join(lines)


def csv(summary: pd.DataFrame) -> str:
    """Every summary row with raw numbers (seconds, samples/s) for spreadsheets and scripts."""
    columns = [c for c in CSV_COLUMNS if c in summary.columns]
    return summary[columns].to_csv(index=False)


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #111; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 3px 8px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eee; }
figure { margin: 1em 0; }
img { max-width: 100%; border: 1px solid #ddd; }
.note { color: #444; }
"""


def html_page(
    summary: pd.DataFrame,
    figures: Sequence[tuple[str, bytes]],
    title: str = "LeNet benchmark report",
    notes: Sequence[str] = (),
    extra_tables: Sequence[tuple[str, list[str], list[list[str]]]] = (),
    extra: str = "",
    top: str = "",
) -> str:
    """One self-contained page: ``top`` (escaped HTML, the at-a-glance summary), tables, any extra
    (title, header, rows) tables, ``extra`` (escaped HTML, e.g. the trace section), then the
    figures embedded as PNG data URIs.

    Every string that came from a file is escaped; the page loads nothing from the network.
    """
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    parts += [f'<p class="note">{esc(note)}</p>' for note in notes]
    if top:
        parts.append(top)
    if summary.empty:
        parts.append("<p>No benchmarks to report.</p>")
    current = None
    for section in sections(summary):
        if section.machine != current:
            current = section.machine
            machine_rows = summary[summary["machine"] == section.machine]
            parts.append(f"<h2>{esc(section.machine_label)}</h2>")
            parts.append(f'<p class="note">{esc(_machine_line(machine_rows).replace("`", ""))}</p>')
        header, cells = section_table(section)
        parts.append(f"<h3>{esc(section.title)}</h3><table><thead><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in header]
        parts.append("</tr></thead><tbody>")
        for row in cells:
            tds = [f"<td>{esc(c)}</td>" if i < 2 else f'<td class="num">{esc(c)}</td>' for i, c in enumerate(row)]
            parts.append("<tr>" + "".join(tds) + "</tr>")
        parts.append("</tbody></table>")
    for title_text, header, cells in extra_tables:
        parts.append(f"<h2>{esc(title_text)}</h2><table><thead><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in header]
        parts.append("</tr></thead><tbody>")
        parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in cells]
        parts.append("</tbody></table>")
    if extra:
        parts.append(extra)
    if figures:
        parts.append("<h2>Plots</h2>")
    for caption, png in figures:
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{esc(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


# --- traces: top operators per trace, diffs ------------------------------------------------------

TRACE_NOTE = (
    "Per step of the profiling pass, which runs apart from the timed rounds with the profiler on "
    "(shapes, memory, FLOPs): its times are inflated, so compare traces with each other, not with the "
    "tables above. Open a trace in https://ui.perfetto.dev (Open trace file) or TensorBoard with "
    "torch-tb-profiler (see the README, Traces)."
)


@dataclass(frozen=True)
class Block:
    """A piece of a report section, rendered alike to Markdown and HTML."""

    kind: str  # "h2", "h3", "p", "code", "list", "table"
    text: str = ""
    items: tuple[str, ...] = ()
    header: tuple[str, ...] = ()
    cells: tuple[tuple[str, ...], ...] = ()
    left: int = 2  # how many leading table columns are text (the rest align right)


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


def _us(value: float) -> str:
    return "–" if _is_missing(value) else _number(value)


TIME_NAMES = {"self_cpu_us": "self CPU", "self_device_us": "self device"}


def top_table(top: pd.DataFrame, by: str = "self_cpu_us") -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """Header and cells of a trace's top-operator table (values per step; ``share`` is of ``by``)."""
    device = bool((top["self_device_us"].fillna(0) > 0).any()) if not top.empty else False
    header = ["operator", "input shapes", "calls", "self CPU (µs)", "total CPU (µs)"]
    header += ["self device (µs)", "total device (µs)"] if device else []
    header += [f"share of {TIME_NAMES[by]}", "self memory (KB)", "MFLOP"]
    cells = []
    for _, r in top.iterrows():
        row = [str(r["name"]), short_shapes(str(r["input_shapes"])), _number(r["calls"])]
        row += [_us(r["self_cpu_us"]), _us(r["cpu_total_us"])]
        row += [_us(r["self_device_us"]), _us(r["device_total_us"])] if device else []
        memory = r["self_device_memory_bytes"] if device else r["self_cpu_memory_bytes"]
        row += [
            "–" if _is_missing(r["share"]) else f"{r['share']:.1%}",
            "–" if _is_missing(memory) else _number(memory / 1024),
            "–" if _is_missing(r["flops"]) else _number(r["flops"] / 1e6),
        ]
        cells.append(tuple(row))
    return tuple(header), tuple(cells)


def diff_table(rows: pd.DataFrame, limit: int = 15) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    header = ("operator", "change", "calls before", "calls after")
    header += ("before (µs)", "after (µs)", "Δ (µs)", "after/before")
    cells = []
    for _, r in rows.head(limit).iterrows():
        cells.append(
            (
                str(r["name"]),
                str(r["change"]),
                _number(r["calls_before"]),
                _number(r["calls_after"]),
                _us(r["before_us"]),
                _us(r["after_us"]),
                "–" if _is_missing(r["delta_us"]) else f"{r['delta_us']:+,.1f}",
                "–" if _is_missing(r["ratio"]) else f"{r['ratio']:.2f}×",
            )
        )
    return header, tuple(cells)


def trace_blocks(
    traces: Sequence[Trace], diffs: Sequence[TraceDiff] = (), problems: Sequence[str] = (), top: int = 10
) -> list[Block]:
    """The report's trace section: problems, then a top-operator table per trace, then each diff."""
    runs = ", ".join(f"`{run}`" for run in dict.fromkeys(t.run for t in traces)) or "none"
    versions = ", ".join(dict.fromkeys(str(t.torch_version) for t in traces if t.torch_version)) or "unknown"
    blocks = [Block("h2", "Traces"), Block("p", f"{len(traces)} trace(s) from run(s) {runs}; torch {versions}.")]
    blocks.append(Block("p", TRACE_NOTE))
    if problems:
        blocks += [Block("p", "Trace problems (the other traces are shown):"), Block("list", items=tuple(problems))]
    for trace in traces:
        blocks.append(Block("h3", trace.title))
        where = trace.trace_file.name if trace.trace_file is not None else "no trace file"
        if trace.operators.empty:
            blocks.append(Block("p", f"`{trace.name}/{where}` · no operator table"))
            continue
        totals = step_totals(trace.operators)
        steps = trace.meta.get("steps", "?")
        by = main_time(trace.operators)
        line = f"`{trace.name}/{where}` · self CPU {totals['self_cpu_us'] / 1e3:.3g} ms per step"
        if totals["self_device_us"] > 0:
            line += f", self device {totals['self_device_us'] / 1e3:.3g} ms"
        line += f" · mean of {steps} step(s) · top {top} of {len(trace.operators)} operator rows"
        line += f" by {TIME_NAMES[by]} time"
        blocks.append(Block("p", line))
        header, cells = top_table(top_operators(trace.operators, top, by=by), by)
        blocks.append(Block("table", header=header, cells=cells))
    for diff in diffs:
        before, after = step_totals(diff.before.operators)[diff.by], step_totals(diff.after.operators)[diff.by]
        ratio = after / before if before > 0 else float("nan")
        name = TIME_NAMES[diff.by]
        blocks.append(Block("h3", f"Diff: {diff.title}"))
        blocks.append(
            Block(
                "p",
                f"{name.capitalize()} per step {before / 1e3:.3g} ms → {after / 1e3:.3g} ms "
                f"({ratio:.2f}×). Operators by size of the change in {name} time per step (input shapes summed); "
                "`same` within ±10%. One trace per side is one process, and processes here differ by 10-25%: "
                "read small changes as noise.",
            )
        )
        header, cells = diff_table(diff.rows)
        blocks.append(Block("table", header=header, cells=cells, left=2))
    return blocks


def blocks_markdown(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if block.kind in ("h2", "h3"):
            lines += [f"{'#' * int(block.kind[1])} {block.text}", ""]
        elif block.kind == "p":
            lines += [block.text, ""]
        elif block.kind == "list":
            lines += [f"- {_md_cell(item)}" for item in block.items] + [""]
        elif block.kind == "table":
            aligns = ["---" if i < block.left else "---:" for i in range(len(block.header))]
            lines.append("| " + " | ".join(block.header) + " |")
            lines.append("| " + " | ".join(aligns) + " |")
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in block.cells]
            lines.append("")
    return "\n".join(lines)


def _html_inline(text: str) -> str:
    """Escape, then show `code` spans as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def blocks_html(blocks: Sequence[Block]) -> str:
    """The same blocks as HTML; every string is escaped."""
    esc = html.escape
    parts: list[str] = []
    for block in blocks:
        if block.kind in ("h2", "h3"):
            parts.append(f"<{block.kind}>{esc(block.text)}</{block.kind}>")
        elif block.kind == "p":
            parts.append(f'<p class="note">{_html_inline(block.text)}</p>')
        elif block.kind == "list":
            parts.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block.items) + "</ul>")
        elif block.kind == "table":
            head = "".join(f"<th>{esc(h)}</th>" for h in block.header)
            body = "".join(
                "<tr>"
                + "".join(
                    f"<td>{esc(c)}</td>" if i < block.left else f'<td class="num">{esc(c)}</td>'
                    for i, c in enumerate(row)
                )
                + "</tr>"
                for row in block.cells
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    return "\n".join(parts)
