"""Summary DataFrame -> the benchmark tables as blocks (one table per section), and CSV.

Presentation only: every function takes data and returns blocks or a string; the caller writes files.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pandas as pd

from lenet.analysis.blocks import Block, Heading, Table, paragraph
from lenet.analysis.formatting import Code, Text, aligns, code_list, is_missing, number, or_dash, time_unit
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
    "instructions",
    "instructions_vs_reference",
    "warning",
]


@dataclass(frozen=True)
class Section:
    """One table: the rows of one machine, device, phase and batch size (or one group of a foreign run)."""

    machine: str
    machine_label: str
    title: str
    rows: pd.DataFrame
    lenet: bool  # rows carry lenet-bench variants (else: a run of other code)


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


# The report's bound on tables (docs/report.md): each costs ~10 ms of pandas work, and 10,000 took 92 s.
MAX_TABLES = 1000


def table_count(frame: pd.DataFrame) -> int:
    """How many tables :func:`sections` makes of these rows, counted without building any: one per
    machine, device, phase and batch size for lenet-bench rows, one per machine and group for others."""
    if frame.empty:
        return 0
    ours = frame[frame["phase"].notna()]
    count = ours.groupby(["machine", "device", "phase", "batch_size"], sort=False).ngroups if len(ours) else 0
    other = frame[frame["phase"].isna()]
    if len(other):
        groups = other["group"].astype(object).where(other["group"].notna(), "").map(str)
        count += other.assign(_group=groups).groupby(["machine", "_group"], sort=False).ngroups
    return count


def speedup_text(row: pd.Series) -> str:
    if is_missing(row["speedup"]):
        return "–"
    if row["label"] == row["reference"]:
        return "1.00 (reference)"
    text = f"{row['speedup']:.2f}×"
    if not is_missing(row["speedup_low"]):
        text += f" [{row['speedup_low']:.2f}, {row['speedup_high']:.2f}]"
    return text


def _instructions_vs_reference(row: pd.Series) -> str:
    if is_missing(row["instructions_vs_reference"]):
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
                or_dash(r["optimizer"]),
                number(r["median"] * scale),
                number(r["iqr"] * scale),
                number(r["samples_per_s"]),
                speedup_text(r),
                or_dash(r["interval_basis"]),
                str(r["runs"]),
                str(r["rounds"]),
            ]
            for _, r in rows.iterrows()
        ]
        if "instructions" in rows.columns and rows["instructions"].notna().any():
            header += ["instructions", "instr. vs ref"]
            for cell, (_, r) in zip(cells, rows.iterrows(), strict=True):
                cell += [number(r["instructions"]), _instructions_vs_reference(r)]
        _add_warnings(rows, header, cells)
    else:
        header = ["benchmark", "params", f"median ({unit})", f"IQR ({unit})", "ops/s", "runs", "rounds"]
        cells = [
            [
                str(r["name"]),
                or_dash(r["params"]),
                number(r["median"] * scale),
                number(r["iqr"] * scale),
                number(r["ops"]),
                str(r["runs"]),
                str(r["rounds"]),
            ]
            for _, r in rows.iterrows()
        ]
    return header, cells


def _add_warnings(rows: pd.DataFrame, header: list[Text], cells: list[list[Text]]) -> None:
    """A warning column, only in sections where a stability check flagged something."""
    if "warning" in rows.columns and rows["warning"].notna().any():
        header.append("warning")
        for cell, warning in zip(cells, rows["warning"], strict=True):
            cell.append("–" if is_missing(warning) else str(warning))


def _machine_line(rows: pd.DataFrame) -> Text:
    commits = code_list(dict.fromkeys(c[:12] for c in rows["commit"].astype(str)))
    latest = rows["run_time"].max()
    when = latest.strftime("%Y-%m-%d %H:%M UTC") if not is_missing(latest) and not pd.isna(latest) else "unknown"
    runs = int(rows["runs"].max())
    bases = [b for b in dict.fromkeys(rows["interval_basis"].dropna()) if b]
    basis = "; ".join(BASIS_TEXT[b] for b in bases) or "none (no reference variant in these runs)"
    return (
        "Fingerprint ",
        Code(str(rows["machine"].iloc[0])),
        " · commit ",
        *commits,
        f" · up to {runs} run(s) per benchmark · latest {when}. Intervals: {basis}.",
    )


def intro_blocks(
    summary: pd.DataFrame, title: str = "LeNet benchmark report", notes: Sequence[str] = ()
) -> list[Block]:
    """The report's title and the paragraph that says what the tables hold (and the notes)."""
    if summary.empty:
        return [Heading(1, title), paragraph("No benchmarks to report.", *notes)]
    intro = (
        f"{len(summary)} benchmarks on {summary['machine'].nunique()} machine(s). Median and IQR of the time per "
        f"call; speedup = reference median / median (above 1 is faster than the reference), with a 95% "
        f"bootstrap confidence interval."
    )
    return [Heading(1, title), paragraph(intro, *notes)]


def table_blocks(summary: pd.DataFrame) -> list[Block]:
    """The benchmark tables: a heading per machine, a table per section."""
    blocks: list[Block] = []
    current = None
    for section in sections(summary):
        if section.machine != current:
            current = section.machine
            machine_rows = summary[summary["machine"] == section.machine]
            blocks += [Heading(2, section.machine_label), paragraph(_machine_line(machine_rows))]
        header, cells = section_table(section)
        blocks += [Heading(3, section.title), Table(tuple(header), tuple(map(tuple, cells)), aligns(len(header)))]
    return blocks


def csv(summary: pd.DataFrame) -> str:
    """Every summary row with raw numbers (seconds, samples/s) for spreadsheets and scripts."""
    columns = [c for c in CSV_COLUMNS if c in summary.columns]
    return summary[columns].to_csv(index=False)
