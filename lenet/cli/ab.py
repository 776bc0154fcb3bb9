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

Where valgrind is installed, --count-processes processes of each side (default 2) count
the instructions of every eager CPU case (one callgrind repeat each; compiled variants only
with `-- --instructions-compiled`) first. A count does not depend on the machine's load, so
these counted processes run side by side, both sides at once, one per CPU; their times,
taken under that load, decide nothing. Time processes, alone and in ABBA order, then run
only if the counts left a benchmark undecided (compiled, AMP and CUDA variants, uncounted
ones, inconclusive counts), or always with --time. The summary says which evidence decided
each benchmark and how long each kind of process took. Every time process starts with the
allocator and CPU pinning that varied least between processes in the noise study
(results/studies/noise_study.md): tcmalloc where it is installed, and one CPU when each
process runs one thread; --allocator and --pin change them (counted processes are never pinned).

This is the recommended CI mode: both sides run on the same machine in the same job,
so no stored baseline has to match the runner. Runs are kept in results/ab/<time>/
(or --keep, a new or empty folder).
Exit status as scripts/compare.py (0 pass, 1 regression, 2 bad input, 3 an output that cannot be written,
4 interrupted, 5/6 on request; docs/exit-codes.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from lenet.ab import ABError, ABResult, ABSettings, ab_loop, prepare_keep
from lenet.analysis.compare import EXIT_BAD_INPUT
from lenet.analysis.compare_render import as_json, markdown
from lenet.analysis.formatting import Code
from lenet.callgrind import WORKERS_VARIABLE
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
from lenet.process_setup import ProcessSetup
from lenet.source import REPO, ForeignCodeError
from lenet.suite import check_suite_tree, run_suite

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
# A counted process's times decide nothing (it runs beside others): as few rounds as pytest-benchmark allows.
COUNTED_TIMING = ["--benchmark-max-time=0.02", "--benchmark-min-rounds=3"]


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
    parser.add_argument(
        "--time",
        action="store_true",
        help="run time processes even where counts decided every benchmark (default: only for what they left)",
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
            args.min_processes,
            args.max_processes,
            args.time_budget,
            gate_options(args),
            count_processes=counted,
            time="always" if args.time else "auto",
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        f"processes: {setup.label}; {why_not or f'instructions counted in {counted} process(es) a side'}",
        file=sys.stderr,
    )
    keep = args.keep or REPO / "results" / "ab" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    started = time.monotonic()
    try:
        commit = baseline_commit(args.baseline)
        prepare_keep(keep)
        result = measure_both(args.baseline, commit, keep, settings, [*pytest_args], counting, setup)
    except (ABError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    timed = bool(result.timed.seconds)  # False: the counts decided every benchmark, no time column to show
    text = markdown(
        result.comparison,
        (Code(args.baseline), f" ({side_processes(result, 'baseline')})"),
        f"working tree ({side_processes(result, 'candidate')})",
        timed,
    )
    text += "\n" + "".join(f"\n- {line}" for line in result.cost_lines()) + "\n"
    try:
        publish(text, {**as_json(result.comparison, timed), "processes": result.costs()}, args.markdown, args.json)
    except OutputError as error:  # the runs are kept; a summary that cannot be written is not a regression
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNUSABLE
    print(f"runs kept in {keep} ({time.monotonic() - started:.0f} s in all)", file=sys.stderr)
    return result.status


def baseline_commit(baseline: str) -> str:
    """The commit ``baseline`` names in this checkout; ABError when there is no checkout or no such commit."""
    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != REPO:
        raise ABError(f"lenet was imported from {REPO}, not a git checkout; run ab.py of a clone")
    resolved = git("rev-parse", "--verify", "--quiet", f"{baseline}^{{commit}}")
    if resolved.returncode != 0:
        raise ABError(f"baseline {baseline!r} is not a commit, branch or tag of this repository")
    return resolved.stdout.strip()


def measure_both(
    baseline: str,
    commit: str,
    keep: Path,
    settings: ABSettings,
    pytest_args: list[str],
    counting: list[str],
    setup: ProcessSetup,
) -> ABResult:
    """The A/B loop between ``commit``, checked out in a temporary worktree, and this checkout."""
    with tempfile.TemporaryDirectory(prefix="lenet-ab-") as tmp:
        tree = Path(tmp) / "baseline"
        added = git("worktree", "add", "--detach", str(tree), commit)
        if added.returncode != 0:
            raise ABError(f"cannot check out {baseline}: {added.stderr.strip()}")
        trees = {"baseline": tree, "candidate": REPO}
        # the counted processes run side by side: together, one valgrind process per CPU
        share = {WORKERS_VARIABLE: str(max(1, (os.cpu_count() or 1) // settings.parallel))}
        side_by_side = dataclasses.replace(setup, pin=())  # counted processes share the CPUs
        try:

            def run_side(side: str, output: Path, log: Path, count: bool) -> int:
                arguments = [*pytest_args, *(counting + COUNTED_TIMING if count else [])]
                try:
                    if not count:
                        return run_suite(output, arguments, tree=trees[side], log=log, setup=setup)
                    return run_suite(output, arguments, tree=trees[side], log=log, setup=side_by_side, env=share)
                except ForeignCodeError as error:
                    raise ABError(f"the {side} side: {error}") from None

            for side, root in trees.items():  # each side measures its own tree's code, or nothing runs
                try:
                    check_suite_tree(root, setup)
                except ForeignCodeError as error:
                    raise ABError(f"the {side} side: {error}") from None
            return ab_loop(run_side, keep, settings)
        finally:
            git("worktree", "remove", "--force", str(tree))


def side_processes(result: ABResult, side: str) -> str:
    """``2 counted + 4 time processes``: what one side of the A/B ran."""
    return f"{result.counted.processes[side]} counted + {result.processes[side]} time processes"
