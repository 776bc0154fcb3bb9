"""Baselines: saved runs kept, per machine, as the reference that candidates are compared with.

    python scripts/baseline.py promote RUN_OR_FOLDER ...     # copy runs into results/baselines/<fingerprint>/
    python scripts/baseline.py calibrate --processes 10 [-- PYTEST_OPTIONS]   # A/A: measure the noise
    python scripts/baseline.py list
    python scripts/baseline.py promote RUNS --db [URL]      # into the shared history instead (docs/database.md)
    python scripts/baseline.py list --db [URL]              # the machines the shared history holds

A baseline folder holds several saved runs of the same code on one machine (each a
separate process, so that its noise is known) and noise.json: each benchmark's
process medians and their spread, from which scripts/compare.py derives thresholds.
Runs are copied, never moved or modified; a file of the same name is never overwritten;
a promotion that fails changes nothing. With --db, the runs go to (and the listing comes
from) the shared PostgreSQL history; a baseline there is a selection, e.g.
`compare.py --db URL --machine FP --branch main --latest-processes 10 CANDIDATE`.
Exit status (the contract of every command, docs/exit-codes.md): 0 done, 2 bad input (nothing
changed), 3 database unusable, 4 publishing failed partway or interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lenet.analysis.formatting import single_line
from lenet.baselines import calibrate, commit_tag, describe, promote
from lenet.cli import command_parser
from lenet.cli.gate_options import add_process_options, counting_arguments, process_setup
from lenet.cli.source_options import add_db_option
from lenet.exits import command
from lenet.source import REPO
from lenet.suite import run_suite

DEFAULT_ROOT = REPO / "results" / "baselines"
EXIT_BAD_INPUT = 2
DB_HELP = "the shared PostgreSQL history instead of files; --db alone: the URL in $LENET_DB_URL"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = command_parser("baseline.py", __doc__)
    parser.add_argument(
        "--root", type=Path, default=DEFAULT_ROOT, help="where baselines live (default results/baselines)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    promote_parser = commands.add_parser("promote", help="copy saved runs into their machine's baseline")
    promote_parser.add_argument("runs", type=Path, nargs="+", help="saved-run files or folders")
    add_db_option(promote_parser, DB_HELP)
    calibrate_parser = commands.add_parser("calibrate", help="run the suite N times (A/A) into the baseline")
    calibrate_parser.add_argument("--processes", type=int, default=10, help="fresh processes to run (default 10)")
    add_process_options(calibrate_parser, counted_default=3)
    calibrate_parser.add_argument(
        "pytest_args", nargs=argparse.REMAINDER, help="options for pytest bench after --, e.g. -- --preset quick"
    )
    list_parser = commands.add_parser("list", help="the baselines and their sizes")
    add_db_option(list_parser, DB_HELP)
    return parser.parse_args(argv)


@command
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if getattr(args, "db", None) is not None:
        return shared_history(args)
    try:
        if args.command == "promote":
            copied = promote(args.runs, args.root)
            print(f"copied {len(copied)} run(s) into {args.root}" + "".join(f"\n  {p}" for p in copied))
        elif args.command == "calibrate":
            extra = [a for a in args.pytest_args if a != "--"]
            setup = process_setup(args, extra)
            counting, why_not = counting_arguments(args.instructions)
            print(f"processes: {setup.label}; {why_not or 'instructions counted in the first processes'}", flush=True)

            def run_one(output: Path, count: bool) -> int:
                return run_suite(output, [*extra, *(counting if count else [])], tree=REPO, setup=setup)

            counted = args.count_processes if counting else 0
            copied = calibrate(args.processes, args.root, run_one, commit_tag(REPO), count_processes=counted)
            print(f"calibrated with {len(copied)} process(es) into {args.root}")
        else:
            lines, warnings = describe(args.root)
            print("\n".join(lines))
            for warning in warnings:
                print(warning, file=sys.stderr)
    except (ValueError, OSError) as error:  # BaselineError, and a noise file that cannot be built
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def shared_history(args: argparse.Namespace) -> int:
    """``promote --db`` publishes the runs; ``list --db`` lists the machines of the history."""
    from lenet.runs.postgres.connection import StoreError, database_url, redact_url
    from lenet.runs.postgres.read import list_machines
    from lenet.runs.postgres.write import publish_paths
    from lenet.terminal import printable

    try:
        url = database_url(args.db or None)
        if args.command == "promote":
            summary = publish_paths(url, args.runs, report=lambda outcome: print(outcome.line()))
            print(f"{summary.line()} into {redact_url(url)}")
            return summary.exit_code
        if args.command != "list":
            print("error: only promote and list take --db", file=sys.stderr)
            return EXIT_BAD_INPUT
        for machine in list_machines(url):
            last = machine.last_run.date().isoformat() if machine.last_run else "?"
            counts = f"{machine.runs} runs  {machine.commits} commits  last {last}"
            print(f"{printable(machine.fingerprint)}  {counts}  {printable(machine.label)}")
    except StoreError as error:
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return error.exit_code
    return 0
