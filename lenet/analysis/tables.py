"""Summary DataFrame -> Markdown (GitHub-flavoured), CSV and a self-contained HTML page.

Presentation only: every function takes data and returns a string; the caller writes files.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd

from lenet.analysis.summary import BASIS_TEXT

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
) -> str:
    """One self-contained page: tables, any extra (title, header, rows) tables, then the figures
    embedded as PNG data URIs.

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
