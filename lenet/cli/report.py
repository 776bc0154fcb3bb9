"""Comparison tables and plots from pytest-benchmark saved runs.

With no arguments: reads every saved run under results/ (benchmarks/, reference/,
baselines/), writes Markdown, CSV, a self-contained HTML page and PNG/SVG plots
into a new folder results/reports/<time>/, and prints what it wrote where.

Any pytest-benchmark saved run (versions 3.x to 5.x, from any project) loads; runs
made without lenet-bench are shown with the names, params and stats they have.
A bad file is reported in one line and skipped. SOURCE is saved-run files or folders, or one
postgresql:// URL (docs/database.md; `--db URL` says the same, `--db` alone reads $LENET_DB_URL):
then every filter (--machine, --variant, --phase, --batch-size, --commit, --commit-range,
--branch, --since, --until, --latest-processes) is applied by the server and only what is
selected leaves it. The same filters work on files.
Exit status (the contract of every command, docs/exit-codes.md): 0 when something was
reported, 2 for bad options or inputs from which nothing could be reported, 3 when the
database or the output (folder, stdout) cannot be used, 4 when interrupted; one `error:`
line says which. Never 1: that means a confirmed regression.

Traces (from `pytest bench --profile` or scripts/trace.py) add a section: the top
operators of each trace, diffs, and a timeline of one step per trace. With no INPUT,
the newest run under results/traces is shown too, when there is one.

examples:
  python scripts/report.py
  python scripts/report.py results/benchmarks --phase train_step --batch-size 64 --formats md
  python scripts/report.py run1.json run2.json --reference cpu-channels_last-fp32-eager --latest
  python scripts/report.py --traces results/traces/20261127-120000-ab12cd --top 5
  python scripts/report.py --diff-traces results/traces/RUN/train_step-cpu-contiguous-fp32-eager-sgd-b64 \
                                         results/traces/RUN/train_step-cpu-channels_last-fp32-eager-sgd-b64
  python scripts/report.py postgresql://bench@db/lenet --machine '*EPYC*' --since 30d
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from lenet.analysis.changes import first_parent_order
from lenet.analysis.compare import CompareError, Side
from lenet.analysis.formatting import single_line
from lenet.analysis.noise import Calibration, read_calibration
from lenet.analysis.operators import TraceDiff, diff_traces
from lenet.analysis.report import FORMATS, Report, TooManyTablesError, build_report, default_workers, write_report
from lenet.analysis.sides import load_side
from lenet.analysis.summary import FilterError, Filters
from lenet.analysis.tables import MAX_TABLES
from lenet.analysis.trace_load import TraceSet, load_traces, newest_run
from lenet.cli import command_parser
from lenet.cli.source_options import add_selection_arguments, selection_from_arguments, source_from_arguments
from lenet.exits import EXIT_BAD_INPUT, EXIT_UNUSABLE, command
from lenet.runs.files import default_paths
from lenet.runs.postgres.connection import StoreError
from lenet.runs.runset import RunSet
from lenet.runs.selection import is_empty
from lenet.runs.source import FileSource, RunSource
from lenet.source import REPO
from lenet.variants import SelectionError, parse_variant

if TYPE_CHECKING:
    import pandas as pd

EXIT_NOTHING = EXIT_BAD_INPUT  # nothing could be reported from the inputs given
EXIT_USAGE = EXIT_BAD_INPUT  # bad options (argparse's own status for them)
EXIT_DATABASE = EXIT_UNUSABLE  # --db: the database cannot be reached or used
EXIT_OUTPUT = EXIT_UNUSABLE  # the report's folder cannot be written


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = command_parser("report.py", __doc__)
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="SOURCE",
        help="saved-run files or folders, or one postgresql:// URL "
        "(default: results/benchmarks, results/reference, results/baselines)",
    )
    _add_output_options(parser)
    _add_table_options(parser)
    _add_trace_options(parser)
    add_selection_arguments(parser)
    args = parser.parse_args(argv)
    _check(parser, args)
    return args


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="a new folder for the report (default: results/reports/<UTC time>)",
    )
    parser.add_argument(
        "--reference",
        default=None,
        metavar="VARIANT",
        help="variant id that speedups are relative to, moved to each device (default: <device>-contiguous-fp32-eager)",
    )
    parser.add_argument(
        "--formats",
        default=",".join(FORMATS),
        help=f"comma-separated outputs among {', '.join(FORMATS)} (default: all)",
    )
    parser.add_argument("--title", default="LeNet benchmark report", help="the report's title")
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help=f"processes drawing plots in parallel (default: {default_workers()}, the CPUs here, at most 4)",
    )


def _add_table_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="GLOB",
        help="keep variants (or, for other projects' runs, benchmark names) matching GLOB; repeatable",
    )
    parser.add_argument("--phase", action="append", default=[], help="keep this phase; repeatable")
    parser.add_argument("--batch-size", action="append", default=[], type=int, help="keep this batch size; repeatable")
    parser.add_argument(
        "--machine",
        action="append",
        default=[],
        metavar="ID",
        help="keep machines whose fingerprint starts with ID or whose label matches the glob ID; repeatable",
    )
    parser.add_argument(
        "--latest",
        action="store_true",
        help="tables from each machine's newest run only (default: its latest commit, all runs of that commit pooled)",
    )
    parser.add_argument(
        "--history-by", choices=("time", "commit"), default="time", help="x axis of the history plots (default: time)"
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        metavar="DIR",
        help="also compare the runs of the baseline's machine with this baseline (a folder made by "
        "scripts/baseline.py, or saved runs), as scripts/compare.py does",
    )
    parser.add_argument(
        "--include-unstable",
        action="store_true",
        help="keep runs a stability check flagged in speedups, intervals and verdicts (default: left out, with a "
        "warning; docs/stability.md)",
    )
    parser.add_argument(
        "--max-tables",
        type=int,
        default=MAX_TABLES,
        help=f"refuse, with advice, a selection that makes more tables than this (default {MAX_TABLES}; 0: no bound)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def _add_trace_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--traces",
        action="append",
        default=[],
        type=Path,
        metavar="DIR",
        help="trace folders to summarize: the traces root, a run or a case folder; repeatable "
        "(default, when no INPUT is named: the newest run under results/traces, if any)",
    )
    parser.add_argument("--no-traces", action="store_true", help="no trace section, even if traces exist")
    parser.add_argument(
        "--diff-traces",
        action="append",
        default=[],
        nargs=2,
        type=Path,
        metavar=("A", "B"),
        help="operators that got faster or slower from A to B: two case folders (two variants, or one case in "
        "two runs) or two run folders (cases paired by name); repeatable",
    )
    parser.add_argument("--top", type=int, default=10, help="operators shown per trace (default: 10)")


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Values argparse cannot check itself; parser.error (exit 2) names the first bad one."""
    if args.top < 1:
        parser.error(f"--top {args.top} must be a positive integer")
    if args.max_tables < 0:
        parser.error(f"--max-tables {args.max_tables} must be 0 (no bound) or a positive integer")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        parser.error(
            f"--formats {args.formats!r}: unknown {', '.join(unknown) or 'empty'}; choose from {', '.join(FORMATS)}"
        )
    args.formats = formats
    if args.reference:
        try:
            parse_variant(args.reference)
        except SelectionError as error:
            parser.error(f"--reference: {error}")
    bad_sizes = [b for b in args.batch_size if b <= 0]
    if bad_sizes:
        parser.error(f"--batch-size {bad_sizes[0]} must be a positive integer")


def image_formats(formats: list[str]) -> list[str]:
    """The image formats to render: those asked for, and PNG when the HTML page (which embeds it) is."""
    wanted = [f for f in ("png", "svg") if f in formats]
    if "html" in formats and "png" not in wanted:
        wanted.append("png")
    return wanted


def load_trace_inputs(args: argparse.Namespace) -> tuple[TraceSet, list[TraceDiff]]:
    """The traces to summarize and the diffs asked for; every problem is in the TraceSet's problems."""
    paths = list(args.traces)
    # Like the saved runs, the newest traces are shown by default only when no input was named.
    if not paths and not args.no_traces and not args.inputs:
        newest = newest_run(REPO / "results" / "traces")
        paths = [newest] if newest is not None else []
    traces = load_traces(paths) if paths else TraceSet()
    diffs: list[TraceDiff] = []
    for before, after in args.diff_traces:
        a, b = load_traces([before]), load_traces([after])
        traces.problems += [p for p in a.problems + b.problems if p not in traces.problems]
        diffs += diff_traces(a.traces, b.traces, traces.problems)
    return traces, diffs


def load_selection(source: RunSource, args: argparse.Namespace, progress: Any) -> RunSet:
    """The runs to report. A database applies every filter in SQL; saved files get the filters beyond the
    report's own (commit, branch, dates, latest processes), since the report's own filters explain what
    they leave out (FilterError names the values the runs do have)."""
    selection = selection_from_arguments(args)
    if isinstance(source, FileSource):
        selection = dataclasses.replace(selection, machines=(), variants=(), phases=(), batch_sizes=())
    return source.runs(None if is_empty(selection) else selection, progress=progress)


def reading_progress(quiet: bool) -> Any:
    """A progress bar over the files read, on stderr, where there are enough to wait for."""

    def progress(files):
        return tqdm(files, desc="reading runs", unit="file", disable=quiet or len(files) < 20, file=sys.stderr)

    return progress


@command
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    inputs = args.inputs or ([] if args.db is not None else [str(p) for p in default_paths(REPO / "results")])
    traces, diffs = load_trace_inputs(args)
    warn(traces.problems)
    has_traces = bool(traces.traces or diffs)
    if not inputs and args.db is None and not has_traces:
        print(
            f"error: no saved runs: {REPO / 'results'} has no benchmarks/, reference/ or baselines/ folder; "
            "run `pytest bench --benchmark-autosave` first",
            file=sys.stderr,
        )
        return EXIT_NOTHING

    try:
        source = source_from_arguments(inputs, args.db)
        loaded = load_selection(source, args, reading_progress(args.quiet))
    except StoreError as error:  # QueryError and BadURLError among them: bad input, 2
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return error.exit_code
    warn(loaded.problems)
    warn(loaded.notes, "note")
    frame, files_read = loaded.frame, loaded.files_read
    loaded.runs.clear()  # the report reads the frame alone: the typed runs go before its peak of memory
    if frame.empty and not has_traces:
        print(f"error: no benchmarks could be read from {source.describe()}", file=sys.stderr)
        return EXIT_NOTHING
    try:
        baseline, noise = load_baseline(args.baseline)
        report = build_report(
            frame,
            reference=args.reference,
            filters=Filters(
                variants=args.variant, phases=args.phase, batch_sizes=args.batch_size, machines=args.machine
            ),
            latest_only=args.latest,
            image_formats=image_formats(args.formats),
            history_by=args.history_by,
            title=args.title,
            workers=args.workers,
            baseline=baseline,
            baseline_noise=noise,
            traces=traces,
            trace_diffs=diffs,
            top_operators=args.top,
            include_unstable=args.include_unstable,
            commit_order=commit_order(frame),
            max_tables=args.max_tables or None,
        )
    except (CompareError, FilterError, TooManyTablesError) as error:
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return EXIT_NOTHING
    return write(
        report,
        args,
        f"read {files_read} run(s), {len(frame)} benchmark result(s), "
        f"{len(traces.traces)} trace(s), {len(diffs)} trace diff(s)",
    )


def commit_order(frame: pd.DataFrame) -> list[str]:
    """This checkout's first-parent history for the steps section, asked of git only where the runs span
    commits: a step lies between two."""
    if "commit" not in frame.columns or frame["commit"].nunique() < 2:
        return []
    return first_parent_order(REPO)


def warn(lines: list[str], kind: str = "warning") -> None:
    for line in lines:
        print(f"{kind}: {single_line(line)}", file=sys.stderr)


def load_baseline(path: Path | None) -> tuple[Side | None, Calibration | None]:
    """The ``--baseline`` side and its noise calibration (None, None without one); CompareError when unusable."""
    if path is None:
        return None, None
    baseline, problems = load_side([path], "baseline")
    warn(problems)
    return baseline, read_calibration(path)


def write(report: Report, args: argparse.Namespace, what: str) -> int:
    """Write the report where asked and say what was read and written; EXIT_OUTPUT when it cannot be written."""
    output = args.output or REPO / "results" / "reports" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    try:
        written = write_report(report, output, args.formats)
    except OSError as error:
        where = f" ({error.filename})" if error.filename and str(error.filename) != str(output) else ""
        reason = f"{error.strerror}{where}" if error.strerror else str(error)
        print(f"error: cannot write the report into {output}: {reason}", file=sys.stderr)
        return EXIT_OUTPUT
    print(f"{what}; wrote {len(written)} file(s) into {output}:")
    for path in written:
        if path.suffix in (".md", ".csv", ".html"):
            print(f"  {path}")
    plots = [p for p in written if p.parent.name == "plots"]
    if plots:
        print(f"  {plots[0].parent}/ ({len(plots)} plot files)")
    return 0
