"""Saved runs -> a report (Markdown, CSV, HTML, plots): the steps behind ``scripts/report.py``.

:func:`build_report` computes everything in memory (each figure is rendered to the
requested image formats as soon as it is drawn, then closed, so memory stays flat
however many plots there are); :func:`write_report` is the only place that touches
the disk, and it writes atomically: the report folder appears complete or not at all.
"""

from __future__ import annotations

import functools
import hashlib
import io
import multiprocessing
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from lenet.analysis import blocks, changes, compare, metric_plots, metric_tables, plots, tables
from lenet.analysis.blocks import Block
from lenet.analysis.compare_render import comparison_blocks
from lenet.analysis.flagged import stable_summary
from lenet.analysis.noise import Calibration
from lenet.analysis.operators import TraceDiff, operators_csv
from lenet.analysis.summary import KEY, Filters, latest_commit, latest_run, summarize
from lenet.analysis.trace_load import TraceSet
from lenet.analysis.trace_tables import trace_blocks
from lenet.paths import is_safe_name, umask

FORMATS = ("md", "csv", "html", "png", "svg")


@dataclass(frozen=True)
class RenderedFigure:
    stem: str  # file name without extension
    caption: str
    images: dict[str, bytes]  # format ("png", "svg") -> bytes


@dataclass(frozen=True)
class Report:
    """Every section as blocks (rendered alike to Markdown and HTML), the CSV tables and the figures."""

    title: str
    summary: pd.DataFrame
    blocks: tuple[Block, ...]
    csv: str
    figures: tuple[RenderedFigure, ...] = ()
    comparison: compare.Comparison | None = None
    traces_csv: str = ""  # every trace's per-operator rows, when traces were given

    @property
    def markdown(self) -> str:
        return blocks.markdown(self.blocks)

    def html(self) -> str:
        embedded = [(f.caption, f.images["png"]) for f in self.figures if "png" in f.images]
        return blocks.html_page(self.title, self.blocks, embedded)


def render(fig: Figure, fmt: str, dpi: int = 100) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()


def draw_job(job: plots.FigureJob, formats: tuple[str, ...]) -> RenderedFigure | None:
    """Draw one figure and render it to each format; None when the job has nothing to draw."""
    fig = job.figure()
    if fig is None:
        return None
    try:
        return RenderedFigure(job.stem, job.caption, {fmt: render(fig, fmt) for fmt in formats})
    finally:
        plt.close(fig)


class TooManyTablesError(ValueError):
    """The selection would make more tables than the report renders; the message says how to narrow it."""


def _refuse_too_many_tables(tables: int, max_tables: int | None) -> None:
    """Each table costs milliseconds of pandas work: 10,000 of them took minutes, for a page nobody reads
    whole. Beyond the bound, the report refuses before any work, and says how to narrow the selection."""
    if max_tables is not None and tables > max_tables:
        raise TooManyTablesError(
            f"this selection makes {tables} tables (one per benchmark group, or per device, phase and batch "
            f"size); the report renders at most {max_tables}: narrow it with --variant GLOB, --phase, "
            "--batch-size or --machine, or raise --max-tables (each table costs milliseconds)"
        )


def default_workers() -> int:
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def build_report(
    frame: pd.DataFrame,
    reference: str | None = None,
    filters: Filters | None = None,
    latest_only: bool = False,
    image_formats: Sequence[str] = ("png", "svg"),
    history_by: str = "time",
    title: str = "LeNet benchmark report",
    workers: int = 1,
    baseline: compare.Side | None = None,
    baseline_noise: Calibration | None = None,
    gate_options: compare.GateOptions | None = None,
    traces: TraceSet | None = None,
    trace_diffs: Sequence[TraceDiff] = (),
    top_operators: int = 10,
    include_unstable: bool = False,
    commit_order: Sequence[str] = (),
    max_tables: int | None = tables.MAX_TABLES,
) -> Report:
    """Filter, pick the runs the tables describe, summarize, and render named sections.

    Tables describe each machine's latest commit (runs pooled as process samples), or with ``latest_only`` its
    newest run; history plots use every run kept. No ``image_formats``: no figures. A ``baseline`` adds the gate's
    verdicts (as scripts/compare.py); traces add a trace section, metrics a metrics section. Flagged runs leave the
    speedups unless ``include_unstable``. Steps in the history (commits in ``commit_order``) follow the glance.
    """
    frame = (filters or Filters()).apply(frame)
    table_frame = latest_run(frame) if latest_only else latest_commit(frame)
    _refuse_too_many_tables(tables.table_count(table_frame), max_tables)
    summary, unstable_note = stable_summary(table_frame, summarize, KEY, include_unstable, reference=reference)
    notes = [_read_note(frame, latest_only), *([unstable_note] if unstable_note else [])]
    trace_section, traces_csv, timelines = _trace_parts(traces, trace_diffs, top_operators, bool(image_formats))
    metric_rows = metric_tables.metric_rows(table_frame, summary)
    steps = changes.report_changes(frame, commit_order)  # the section lists them, the history plots mark them
    jobs = (
        _figure_jobs(frame, summary, table_frame, metric_rows, timelines, (history_by, steps[0]))
        if image_formats
        else []
    )
    options = replace(gate_options or compare.GateOptions(), include_unstable=include_unstable)
    comparison, comparison_section = _baseline_parts(table_frame, baseline, baseline_noise, options, notes)
    sections = (
        tables.intro_blocks(summary, title=title, notes=notes),
        metric_tables.glance_blocks(summary, metric_rows),  # at a glance, before the tables
        changes.change_blocks(frame, commit_order, steps),
        tables.table_blocks(summary),
        metric_tables.metrics_blocks(metric_rows),
        comparison_section,
        trace_section,
    )
    return Report(
        title=title,
        summary=summary,
        blocks=tuple(block for section in sections for block in section),
        csv=tables.csv(summary),
        figures=_draw(jobs, image_formats, workers),
        comparison=comparison,
        traces_csv=traces_csv,
    )


def _figure_jobs(
    frame: pd.DataFrame,
    summary: pd.DataFrame,
    table_frame: pd.DataFrame,
    metric_rows: pd.DataFrame,
    timelines: list[plots.FigureJob],
    history: tuple[str, Sequence[changes.Change]],
) -> list[plots.FigureJob]:
    """Every figure the report draws: the benchmarks', the metrics' and the traces' timelines; ``history``:
    how history plots order runs ("time" or "commit") and the steps they mark."""
    history_by, steps = history
    jobs = list(plots.report_figures(frame, summary, table_frame, history_by, steps)) if not summary.empty else []
    return [*jobs, *metric_plots.metric_figures(metric_rows), *timelines]


def _read_note(frame: pd.DataFrame, latest_only: bool) -> str:
    what = "newest run." if latest_only else "latest commit (its runs pooled as separate processes)."
    return f"Read {frame['source'].nunique()} saved run(s); tables show each machine's {what}"


def _baseline_parts(
    frame: pd.DataFrame,
    baseline: compare.Side | None,
    noise: Calibration | None,
    options: compare.GateOptions,
    notes: list[str],
) -> tuple[compare.Comparison | None, list[Block]]:
    """The comparison with a baseline and its section; where there is none, why joins ``notes``."""
    if baseline is None:  # no baseline asked for: nothing to say
        return None, []
    comparison, note = _compare_with_baseline(frame, baseline, noise, options)
    if comparison is None:
        notes.append(note)
        return None, []
    return comparison, comparison_blocks(comparison, f"baseline ({baseline.runs} runs)", note)


def _trace_parts(
    traces: TraceSet | None, trace_diffs: Sequence[TraceDiff], top: int, draw: bool
) -> tuple[list[Block], str, list[plots.FigureJob]]:
    """The trace section, its operators CSV and its timeline plots (nothing without traces)."""
    if not traces and not trace_diffs:
        return [], "", []
    trace_set = traces or TraceSet()
    problems = list(trace_set.problems)  # timelines that cannot be drawn add theirs
    timelines = list(plots.trace_figures(trace_set.traces, problems)) if draw else []
    return trace_blocks(trace_set.traces, trace_diffs, problems, top=top), operators_csv(trace_set.traces), timelines


def _draw(jobs: list[plots.FigureJob], image_formats: Sequence[str], workers: int) -> tuple[RenderedFigure, ...]:
    """Every figure in the formats asked for; in ``workers`` processes when there is more than one."""
    if not image_formats or not jobs:
        return ()
    draw = functools.partial(draw_job, formats=tuple(image_formats))
    if workers > 1 and len(jobs) > 1:
        # Drawing dominates a big report; separate processes draw in parallel (fork: no re-import).
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            rendered = list(pool.map(draw, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
    else:
        rendered = [draw(job) for job in jobs]
    return tuple(figure for figure in rendered if figure is not None)


def _compare_with_baseline(
    table_frame: pd.DataFrame,
    baseline: compare.Side,
    noise: Calibration | None,
    options: compare.GateOptions,
) -> tuple[compare.Comparison | None, str]:
    """Compare the report's runs of the baseline's machine; (None, why) when that cannot be done."""
    rows = table_frame[table_frame["machine"] == baseline.fingerprint]
    if rows.empty:
        return None, f"No comparison: none of these runs is from the baseline's machine ({baseline.fingerprint})."
    try:
        candidate = compare.side_from_frame(rows, "report's runs")
        calibration = noise or Calibration()
        comparison, _ = compare.gate(baseline, candidate, options, calibration.times, calibration.counts)
    except compare.CompareError as error:
        return None, f"No comparison with the baseline: {error}."
    return comparison, f"these runs ({candidate.runs})"


def write_report(report: Report, output: Path, formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write the report into ``output`` (a new or empty folder), atomically; return the files written.

    The folder gets the permissions a new folder gets under the umask (mkdtemp's own 0700
    would hide a published report from everyone else). OSError when it cannot be written.
    """
    output = output.resolve()
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FileExistsError(f"{output}: exists and is not an empty folder; choose a new output folder")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        staging.chmod(0o777 & ~umask())
        written = []
        for fmt, name, text in (("md", "report.md", report.markdown), ("csv", "report.csv", report.csv)):
            if fmt in formats:
                written.append(_write(staging / name, text))
        if "csv" in formats and report.traces_csv:
            written.append(_write(staging / "traces.csv", report.traces_csv))
        if "html" in formats:
            written.append(_write(staging / "report.html", report.html()))
        for figure in report.figures:
            for fmt in ("png", "svg"):
                if fmt in formats and fmt in figure.images:
                    (staging / "plots").mkdir(exist_ok=True)
                    path = staging / "plots" / f"{file_stem(figure.stem)}.{fmt}"
                    path.write_bytes(figure.images[fmt])
                    written.append(path)
        if output.exists():
            output.rmdir()  # empty (checked above); os.replace needs the name free
        os.replace(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return [output / path.relative_to(staging) for path in written]


def file_stem(stem: str) -> str:
    """A figure's file name: its stem when that is a safe name, else the stem with every other character
    replaced and a hash of it appended, so that no value can name a path and distinct stems stay distinct."""
    if is_safe_name(stem, max_length=200):
        return stem
    cleaned = re.sub(r"[^A-Za-z0-9._+-]|^[^A-Za-z0-9]+|\.(?=\.)", "_", stem)[:150]
    return f"{cleaned}-{hashlib.sha256(stem.encode()).hexdigest()[:8]}"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path
