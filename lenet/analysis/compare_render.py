"""A comparison -> blocks (Markdown for a CI job summary or a PR comment, HTML in the report) and JSON."""

from __future__ import annotations

import json
from typing import Any

from lenet.analysis import blocks
from lenet.analysis.blocks import Block, Heading, Paragraph, Table, paragraph
from lenet.analysis.compare import COUNT_SPREAD_MARGIN, VERDICT_ORDER, Comparison
from lenet.analysis.formatting import (
    LEFT,
    RIGHT,
    Code,
    Emphasis,
    Strong,
    Text,
    change,
    code_list,
    is_missing,
    plain_text,
    spans,
)
from lenet.fingerprint import describe_software

MARKS = {"regressed": "🔴 regressed", "improved": "🟢 improved", "inconclusive": "⚪ inconclusive"}


def headline(comparison: Comparison) -> Text:
    """One sentence: the outcome, the decisions, and with counts what each kind of evidence said.

    Where no time process ran (the counts decided every benchmark), time said nothing and the sentence says so
    instead of counting inconclusive time verdicts."""
    total = len(comparison.table)
    counts = ", ".join(f"{comparison.decisions(v)} {v}" for v in VERDICT_ORDER)
    if comparison.has_counts:
        by_time = (
            ", ".join(f"{comparison.count(v)} {v}" for v in VERDICT_ORDER)
            if comparison.time_processes_ran
            else "no time process ran"
        )
        by_count = ", ".join(f"{comparison.count_verdicts(v)} {v}" for v in VERDICT_ORDER)
        counts = f"{counts}; by time: {by_time}; by instruction counts: {by_count}"
    if comparison.informational:
        return (Strong("Informational only"), f" (machines differ): {total} benchmarks, {counts}.")
    if comparison.regressed:
        regressed = comparison.decisions("regressed")
        return (Strong("Regression confirmed"), f" in {regressed} of {total} benchmarks ({counts}).")
    return (Strong("No confirmed regression"), f" in {total} benchmarks ({counts}).")


def comparison_table(comparison: Comparison) -> Table:
    """The verdict table: a row per benchmark, its decision first, then the time evidence and the count evidence.

    Where no time process ran (only with counts), no time columns: the only times are those of the counted
    processes, taken under valgrind side by side, which decide nothing."""
    timed = shows_times(comparison)
    header: list[Text] = ["benchmark", "verdict"]
    if comparison.has_counts:
        header += ["decided by", "time verdict"] if timed else ["decided by"]
    if timed:
        header += TIME_HEADER
    if comparison.has_counts:
        header += ["instructions: change (threshold)", "count verdict", "counted processes"]
    left_out = shows_left_out(comparison)
    if left_out:
        header.append("left out: flagged unstable")
    rows = []
    for _, row in comparison.table.iterrows():
        cells: list[Text] = [Code(str(row["benchmark"])), MARKS.get(row["decision"], "unchanged")]
        if comparison.has_counts:
            cells += [str(row["decided_by"])]
            cells += [MARKS.get(row["verdict"], "unchanged")] if timed else []
        cells += time_cells(row) if timed else []
        if comparison.has_counts:
            cells += count_cells(row)
        if left_out:
            cells.append(row["left_out"] if isinstance(row["left_out"], str) else "–")
        rows.append(tuple(cells))
    aligns = tuple(LEFT if "verdict" in str(h) or h in ("benchmark", "decided by") else RIGHT for h in header)
    return Table(tuple(header), tuple(rows), aligns)


TIME_HEADER: list[Text] = [
    "change [95% CI]", "p (BH)", "threshold", "detectable", "baseline", "candidate", "processes"
]  # fmt: skip


def time_cells(row: Any) -> list[Text]:
    """The time cells of one row, under TIME_HEADER."""
    return [
        f"{change(row['ratio'])} [{change(row['ci_low'])}, {change(row['ci_high'])}]",
        f"{row['p_adjusted']:.3g}",
        f"±{row['threshold'] * 100:.1f}%",
        "–" if is_missing(row["detectable"]) else f"{row['detectable'] * 100:.1f}%",
        f"{row['baseline_median'] * 1e3:.3f} ms",
        f"{row['candidate_median'] * 1e3:.3f} ms",
        f"{row['n_baseline']} / {row['n_candidate']}",
    ]


def count_cells(row: Any) -> list[Text]:
    """The instruction-count cells of one row: change (threshold), verdict, processes counted per side."""
    if not isinstance(row["count_verdict"], str):
        return ["–", "–", "–"]
    limit = row["count_threshold"]
    bound = "too few counted processes" if is_missing(limit) else f"±{limit * 100:.2f}%"
    return [
        f"{change(row['count_ratio'])} ({bound})",
        MARKS.get(row["count_verdict"], "unchanged"),
        row["count_processes"],
    ]


def has_left_out(comparison: Comparison) -> bool:
    """Whether any benchmark's verdict left out a process a stability check flagged."""
    table = comparison.table
    return "left_out" in table.columns and bool(table["left_out"].notna().any())


def shows_times(comparison: Comparison) -> bool:
    """Whether the table has time columns: not where only counted processes ran, whose times decide nothing."""
    return comparison.time_processes_ran or not comparison.has_counts


def shows_left_out(comparison: Comparison) -> bool:
    """Whether the summary names the flagged processes: only where times are shown, since a stability check
    flags times (a count keeps every process: load does not move it)."""
    return shows_times(comparison) and has_left_out(comparison)


LEFT_OUT_NOTE = (
    "Processes a stability check flagged (a busy machine, spread or drifting rounds, ...; docs/stability.md) "
    "are left out of the verdicts and named in the last column; a benchmark with no unflagged process on a "
    "side is inconclusive."
)


UNTIMED_NOTE = (
    "No time process ran: the instruction counts decided every benchmark, so the table has no time columns "
    "(the counted processes' times, taken under valgrind side by side, decide nothing). "
)


def explanation(alpha: float, counted: bool, timed: bool = True) -> Text:
    time: Text = (
        "Change = candidate / baseline median of process medians (+ is slower), 95% bootstrap interval; "
        "p: Mann-Whitney over processes, adjusted for many benchmarks (Benjamini-Hochberg); ",
        Emphasis("regressed"),
        " or ",
        Emphasis("improved"),
        f" needs p < {alpha} and a change beyond the threshold (what identical code "
        "exceeds 5% of the time at these sample sizes); ",
        Emphasis("unchanged"),
        f" needs the {1 - 2 * alpha:.0%} interval within ± the threshold (two one-sided tests at {alpha}); ",
        Emphasis("detectable"),
        " is the smallest change these samples could have caught.",
    )
    if not counted:
        return time
    return (
        *((*time, " ") if timed else (UNTIMED_NOTE,)),
        "Instructions: the median count per call of each side's counted processes (callgrind); a change beyond "
        f"the threshold ({COUNT_SPREAD_MARGIN:g}× how far counts stray between processes, and at least "
        "--count-threshold) is real. The verdict weighs both: "
        "a regression by either is a regression; counts that did not move say ",
        Emphasis("unchanged"),
        " when time cannot tell; ",
        Emphasis("decided by"),
        " names the evidence.",
    )


def comparison_blocks(comparison: Comparison, baseline_label: Text, candidate_label: Text) -> list[Block]:
    """The comparison section: headline, what was compared, how to read it, the table, one-sided benchmarks."""
    sides: list[Text] = [("Baseline: ", *spans(baseline_label), ". Candidate: ", *spans(candidate_label), ".")]
    if comparison.differences:
        diffs = "; ".join(f"{name}: {a!r} vs {b!r}" for name, (a, b) in comparison.differences.items())
        sides.append(f"Machines differ ({diffs}): these verdicts are informational.")
    if comparison.software:
        sides.append(f"Software under test differs: {describe_software(comparison.software)}.")
    result: list[Block] = [
        Heading(2, "Benchmark comparison"),
        paragraph(headline(comparison)),
        Paragraph(tuple(sides)),
        paragraph(explanation(comparison.alpha, comparison.has_counts, comparison.time_processes_ran)),
        *([paragraph(LEFT_OUT_NOTE)] if shows_left_out(comparison) else []),
    ]
    if not comparison.table.empty:
        result.append(comparison_table(comparison))
    for title, names in (
        ("Only in the baseline", comparison.only_baseline),
        ("Only in the candidate", comparison.only_candidate),
    ):
        if names:
            result.append(paragraph((f"{title} ({len(names)}): ", *code_list(names))))
    return result


def markdown(comparison: Comparison, baseline_label: Text, candidate_label: Text) -> str:
    """The comparison section as Markdown, fit for a CI job summary or a PR comment."""
    return blocks.markdown(comparison_blocks(comparison, baseline_label, candidate_label))


def as_json(comparison: Comparison) -> dict[str, Any]:
    """The comparison for machines; ``time_processes_ran`` false says that the time fields are the counted
    processes' times, which decided nothing."""
    return {
        "headline": plain_text(headline(comparison)),
        "time_processes_ran": comparison.time_processes_ran,
        "informational": comparison.informational,
        "machine_differences": {k: list(v) for k, v in comparison.differences.items()},
        "software_differences": {k: list(v) for k, v in comparison.software.items()},
        "benchmarks": json.loads(comparison.table.to_json(orient="records")) if not comparison.table.empty else [],
        "only_baseline": comparison.only_baseline,
        "only_candidate": comparison.only_candidate,
    }
