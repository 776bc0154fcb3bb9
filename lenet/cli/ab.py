"""Same-job A/B: the baseline commit and the working tree, measured in alternating processes.

    python scripts/ab.py --baseline origin/main [options] [-- PYTEST_OPTIONS]

The baseline commit is checked out in a temporary git worktree. Fresh processes of
`pytest bench` then alternate between the two trees in ABBA blocks (baseline,
candidate, candidate, baseline), so that slow drifts of a shared machine hit both
sides alike. After each block (once both sides have --min-processes), the runs are
compared as scripts/compare.py does; the run stops early when no verdict is
inconclusive, or at --max-processes per side, or when --time-budget is spent.
Each look at the data is tested at alpha / (number of possible looks), so stopping
early does not raise the false-alarm rate.

Where valgrind is installed, the first --count-processes processes of each side
(default 2) also count the instructions of every eager CPU case (one callgrind repeat
each; compiled variants only with `-- --instructions-compiled`). Each benchmark then
gets a count verdict beside its time verdict, and the summary says which evidence
decided it. Every process starts with the allocator and CPU pinning that varied least
between processes in the noise study (results/studies/noise_study.md): tcmalloc where it
is installed, and one CPU when each process runs one thread; --allocator and --pin
change them.

This is the recommended CI mode: both sides run on the same machine in the same job,
so no stored baseline has to match the runner. Runs are kept in results/ab/<time>/
(or --keep, a new or empty folder).
Exit status as scripts/compare.py (0 pass, 1 regression, 2 bad input, 3 an output that cannot be written,
4 interrupted, 5/6 on request; docs/exit-codes.md).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from lenet.ab import ABError, ABSettings, ab_loop, prepare_keep
from lenet.analysis.compare import EXIT_BAD_INPUT
from lenet.analysis.compare_render import as_json, markdown
from lenet.analysis.formatting import Code
from lenet.cli.gate_options import (
    OutputError,
    add_gate_options,
    add_process_options,
    counting_arguments,
    gate_options,
    process_setup,
    publish,
)
from lenet.exits import EXIT_UNUSABLE, command
from lenet.suite import REPO, ForeignCodeError, check_suite_tree, run_suite

# CPU time on one thread: less process-to-process noise than wall time on a shared machine
# (results/studies/gate_study_cputime.md vs gate_study.md); CUDA benchmarks keep their synchronized wall clock.
DEFAULT_PYTEST = [
    "--preset",
    "quick",
    "--threads",
    "1",
    "--benchmark-timer",
    "time.process_time",
    "--benchmark-max-time=0.5",
]


def git(*args: str) -> subprocess.CompletedProcess[str]:
    """git in the candidate's checkout: the one this package was imported from."""
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ab.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", required=True, metavar="REF", help="git commit, branch or tag to compare against")
    parser.add_argument("--min-processes", type=int, default=4, help="per side before the first look (default 4)")
    parser.add_argument("--max-processes", type=int, default=12, help="per side at most (default 12)")
    parser.add_argument("--time-budget", type=float, default=3600.0, help="seconds before it stops (default 3600)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="new or empty folder for the runs (default results/ab/<UTC time>)"
    )
    add_process_options(parser, counted_default=2)
    add_gate_options(parser)
    parser.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        help=f"options for pytest bench after -- (default: {' '.join(DEFAULT_PYTEST)})",
    )
    return parser.parse_args(argv)


@command
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pytest_args = [a for a in args.pytest_args if a != "--"] or DEFAULT_PYTEST
    try:
        setup = process_setup(args, pytest_args)
        counting, why_not = counting_arguments(args.instructions)
        counted = args.count_processes if counting else 0
        settings = ABSettings(
            args.min_processes, args.max_processes, args.time_budget, gate_options(args), count_processes=counted
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"processes: {setup.label}; {why_not or f'instructions counted in {counted} process(es) a side'}",
        file=sys.stderr,
    )
    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != REPO:
        print(f"error: lenet was imported from {REPO}, not a git checkout; run ab.py of a clone", file=sys.stderr)
        return EXIT_BAD_INPUT
    resolved = git("rev-parse", "--verify", "--quiet", f"{args.baseline}^{{commit}}")
    if resolved.returncode != 0:
        print(f"error: baseline {args.baseline!r} is not a commit, branch or tag of this repository", file=sys.stderr)
        return EXIT_BAD_INPUT
    keep = args.keep or REPO / "results" / "ab" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    started = time.monotonic()
    try:
        prepare_keep(keep)
        with tempfile.TemporaryDirectory(prefix="lenet-ab-") as tmp:
            tree = Path(tmp) / "baseline"
            added = git("worktree", "add", "--detach", str(tree), resolved.stdout.strip())
            if added.returncode != 0:
                raise ABError(f"cannot check out {args.baseline}: {added.stderr.strip()}")
            trees = {"baseline": tree, "candidate": REPO}
            try:

                def run_side(side: str, output: Path, log: Path, count: bool) -> int:
                    arguments = [*pytest_args, *(counting if count else [])]
                    try:
                        return run_suite(output, arguments, tree=trees[side], log=log, setup=setup)
                    except ForeignCodeError as error:
                        raise ABError(f"the {side} side: {error}") from None

                for side, root in trees.items():  # each side measures its own tree's code, or nothing runs
                    try:
                        check_suite_tree(root, setup)
                    except ForeignCodeError as error:
                        raise ABError(f"the {side} side: {error}") from None
                result = ab_loop(run_side, keep, settings)
            finally:
                git("worktree", "remove", "--force", str(tree))
    except (ABError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    text = markdown(
        result.comparison,
        (Code(args.baseline), f" ({result.processes['baseline']} processes)"),
        f"working tree ({result.processes['candidate']} processes)",
    )
    try:
        publish(text, as_json(result.comparison), args.markdown, args.json)
    except OutputError as error:  # the runs are kept; a summary that cannot be written is not a regression
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNUSABLE
    print(f"runs kept in {keep} ({time.monotonic() - started:.0f} s in all)", file=sys.stderr)
    return result.status
