"""Did it get slower? Compare candidate runs against a baseline, benchmark by benchmark.

    python scripts/compare.py BASELINE CANDIDATE [options]

BASELINE and CANDIDATE are saved-run files or folders (several runs = several
processes: the more, the smaller the change that can be seen). A baseline folder
made by scripts/baseline.py also carries its noise calibration (noise.json).
BASELINE may also be the shared history, a postgresql:// URL (docs/database.md), with
the selection options choosing the runs, e.g. the latest 10 processes of this machine
on main: `compare.py postgresql://bench@db/lenet --machine FINGERPRINT --branch main
--latest-processes 10 results/benchmarks`. Only the selected runs leave the server.

Each benchmark gets a verdict: regressed, improved, unchanged or inconclusive (too
noisy to tell), with the change, its 95% interval, a p-value adjusted for many benchmarks, the
threshold from the measured noise and the smallest change the data could detect.
The method is in lenet/analysis/compare.py.

exit status (the contract of every command: docs/exit-codes.md):
  0  no confirmed regression (also: an informational comparison across machines)
  1  a regression is confirmed, and nothing else
  2  the comparison could not be made: missing or empty input, no common benchmark,
     different machines or pytest-benchmark major versions without --allow-mismatch,
     bad options; one `error:` line on stderr says which
  3  the database or an output (--markdown, --json, stdout) cannot be used
  4  interrupted
  5  --fail-on-inconclusive and some benchmark is inconclusive
  6  --fail-on-improvement and some benchmark improved
  70 an internal error: one line to report

The Markdown summary goes to stdout (and is appended to $GITHUB_STEP_SUMMARY when set).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lenet.analysis.compare import EXIT_BAD_INPUT, CompareError, Side, gate
from lenet.analysis.compare_render import as_json, markdown
from lenet.analysis.formatting import Code, code_list, single_line
from lenet.analysis.noise import Calibration, read_calibration
from lenet.analysis.sides import load_side
from lenet.cli import command_parser
from lenet.cli.gate_options import OutputError, add_gate_options, gate_options, publish
from lenet.cli.source_options import add_selection_arguments, selection_from_arguments
from lenet.exits import EXIT_UNUSABLE, command
from lenet.runs.postgres.connection import StoreError, is_database_url, looks_like_database_url, redact_url
from lenet.runs.selection import is_empty
from lenet.runs.source import FileSource, open_source


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = command_parser("compare.py", __doc__)
    parser.add_argument(
        "baseline",
        metavar="BASELINE",
        help="baseline SOURCE: a saved-run file or folder (e.g. results/baselines/<fp>), or a postgresql:// URL",
    )
    parser.add_argument("candidate", type=Path, nargs="+", help="candidate: saved-run files or folders")
    add_gate_options(parser)
    parser.add_argument(
        "--machine", action="append", default=[], help="database baseline: keep this fingerprint or label glob"
    )
    add_selection_arguments(parser, latest_commit=True, db=False)
    return parser.parse_args(argv)


@command
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except CompareError as error:
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OutputError as error:
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return EXIT_UNUSABLE
    except StoreError as error:  # the database baseline: unreachable, refused, ... (QueryError: a bad filter, 2)
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return error.exit_code


def baseline_side(args: argparse.Namespace) -> tuple[Side, list[str], Calibration]:
    """The baseline's side, its load problems, and its noise calibration (a baseline folder's noise.json)."""
    source = open_source([args.baseline])  # StoreError for a database that cannot be used: its own status
    filters = selection_from_arguments(args)
    side, problems = load_side(source, "baseline", None if is_empty(filters) else filters)
    calibration = read_calibration(Path(args.baseline)) if isinstance(source, FileSource) else Calibration()
    return side, problems, calibration


def run(args: argparse.Namespace) -> int:
    """Compare, print and write the summary; the exit status by the verdicts."""
    urls = [str(path) for path in args.candidate if looks_like_database_url(str(path))]
    if urls:
        raise CompareError(f"the candidate {urls[0]} is a database URL; candidates are saved-run files or folders")
    baseline, problems, calibration = baseline_side(args)
    candidate, more = load_side(args.candidate, "candidate")
    for problem in problems + more:
        print(f"warning: {single_line(problem)}", file=sys.stderr)
    comparison, status = gate(baseline, candidate, gate_options(args), calibration.times, calibration.counts)
    text = markdown(
        comparison,
        (
            Code(redact_url(args.baseline) if is_database_url(args.baseline) else args.baseline),
            f" ({baseline.runs} runs)",
        ),
        (*code_list(map(str, args.candidate)), f" ({candidate.runs} runs)"),
    )
    publish(text, as_json(comparison), args.markdown, args.json)
    return status
