"""Same-job A/B: the baseline commit and the working tree, or two Python environments, in alternating processes.

    python scripts/ab.py --baseline origin/main [options] [-- PYTEST_OPTIONS]
    python scripts/ab.py --baseline-python OLD/bin/python --candidate-python NEW/bin/python [options]

The baseline commit is checked out in a temporary git worktree. Without --baseline both sides
measure this tree, and --baseline-python/--candidate-python name the interpreter of each side
(default: this one): torch 2.12 against 2.13, or a patched build against a release. Each
interpreter must import torch and this project, or nothing runs (one line names it, exit 2);
the summary names each side's torch, its build, and where torch and lenet came from. Fresh processes of
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
ones, inconclusive counts), or always with --time. A count verdict needs to know how far counts
of unchanged code stray: from 2 counted processes a side, or from a baseline's calibration
(--count-calibration BASELINE, made by baseline.py calibrate on this machine), with which one
counted process a side decides. The summary says which evidence decided
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
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from lenet.ab import ABError, ABResult, ABSettings, SideRunner, ab_loop, prepare_keep
from lenet.analysis.compare import EXIT_BAD_INPUT, MIN_COUNT_PROCESSES
from lenet.analysis.compare_render import as_json, markdown
from lenet.analysis.formatting import Code, single_line
from lenet.analysis.noise import read_count_calibration
from lenet.callgrind import WORKERS_VARIABLE
from lenet.cli import command_parser
from lenet.cli.gate_options import (
    COUNTED_ENVIRONMENT,
    COUNTED_TIMING,
    OutputError,
    add_gate_options,
    add_process_options,
    counting_arguments,
    gate_options,
    process_setup,
    publish,
)
from lenet.environments import Environment, InterpreterError, probe
from lenet.exits import EXIT_UNUSABLE, command
from lenet.process_setup import ProcessSetup
from lenet.source import REPO, ForeignCodeError, tree_path_like
from lenet.suite import check_suite_tree, run_suite, suite_environment

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
    parser = command_parser("ab.py", __doc__)
    parser.add_argument(
        "--baseline", metavar="REF", help="git commit, branch or tag to compare against (default: this tree)"
    )
    parser.add_argument(
        "--baseline-python", metavar="PATH", default=sys.executable, help="the baseline's interpreter (default: this)"
    )
    parser.add_argument(
        "--candidate-python", metavar="PATH", default=sys.executable, help="the candidate's interpreter (default: this)"
    )
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
    parser.add_argument(
        "--count-calibration",
        type=Path,
        metavar="BASELINE",
        help="a baseline folder whose noise.json has counted processes (baseline.py calibrate): how far counts of "
        "unchanged code stray on this machine; with it, --count-processes 1 decides",
    )
    add_gate_options(parser)
    parser.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        help=f"options for pytest bench after -- (default: {' '.join(DEFAULT_PYTEST)})",
    )
    return parser.parse_args(argv)


@dataclasses.dataclass(frozen=True)
class Plan:
    """What one A/B runs: each side's tree (a commit, or None for this tree) and interpreter, and how."""

    baseline: str | None
    pythons: dict[str, str]
    settings: ABSettings
    pytest_args: list[str]
    counting: list[str]
    setup: ProcessSetup
    count_calibration: Path | None = None  # the baseline folder whose count spread the count verdicts use

    @property
    def across_environments(self) -> bool:
        return self.pythons["baseline"] != self.pythons["candidate"]


def plan(args: argparse.Namespace) -> tuple[Plan, str | None]:
    """The A/B asked for, and why no instructions are counted (None when they are); ValueError for bad input."""
    pytest_args = [a for a in args.pytest_args if a != "--"] or DEFAULT_PYTEST
    pythons = {"baseline": args.baseline_python, "candidate": args.candidate_python}
    if args.baseline is None and pythons["baseline"] == pythons["candidate"]:
        raise ValueError(
            "nothing to compare: name --baseline REF, or two interpreters with --baseline-python PATH "
            "and --candidate-python PATH"
        )
    setup = process_setup(args, pytest_args)
    counting, why_not = counting_arguments(args.instructions)
    counted = args.count_processes if counting else 0
    calibration = read_count_calibration(args.count_calibration) if args.count_calibration and counted else None
    settings = ABSettings(
        args.min_processes,
        args.max_processes,
        args.time_budget,
        gate_options(args),
        count_processes=counted,
        time="always" if args.time else "auto",
        count_calibration=calibration,
    )
    calibrated = args.count_calibration if calibration else None
    return Plan(args.baseline, pythons, settings, [*pytest_args], counting, setup, calibrated), why_not


@command
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        the_plan, why_not = plan(args)
    except ValueError as error:
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    counted = the_plan.settings.count_processes
    lines = [f"processes: {the_plan.setup.label}; {why_not or f'instructions counted in {counted} process(es) a side'}"]
    if counted and (note := uneven_interpreters(the_plan.pythons)):
        lines.append(f"warning: {note}")  # said once both interpreters passed their checks
    if counted == 1 and the_plan.settings.count_calibration is None:
        lines.append(f"note: {ONE_COUNTED}")
    keep = args.keep or REPO / "results" / "ab" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    started = time.monotonic()
    try:
        commit = baseline_commit(args.baseline) if args.baseline is not None else None
        prepare_keep(keep)
        result, environments = measure_both(the_plan, commit, keep, lambda: print(*lines, sep="\n", file=sys.stderr))
    except (ABError, OSError) as error:
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    text, document = summary(the_plan, result, environments)
    try:
        publish(text, document, args.markdown, args.json)
    except OutputError as error:  # the runs are kept; a summary that cannot be written is not a regression
        print(f"error: {single_line(str(error))}", file=sys.stderr)
        return EXIT_UNUSABLE
    print(f"runs kept in {keep} ({time.monotonic() - started:.0f} s in all)", file=sys.stderr)
    return result.status


ONE_COUNTED = (
    f"one counted process a side cannot tell how far counts stray (the count verdict needs {MIN_COUNT_PROCESSES}), "
    "so time processes decide; --count-calibration BASELINE lends a baseline's spread"
)


def uneven_interpreters(pythons: dict[str, str]) -> str | None:
    """Why counts of two interpreters at paths of different lengths may differ for unchanged code, or None.

    A count depends on the length of the interpreter's path, as on the tree's (docs/environments.md): a
    plain venv and its own base interpreter counted apart by more than the verdict's floor.
    """
    lengths = {side: len(os.path.abspath(python)) for side, python in pythons.items()}
    if len(set(lengths.values())) < 2:
        return None
    sizes = ", ".join(f"{side} {length}" for side, length in lengths.items())
    return (
        f"the two interpreters' paths differ in length ({sizes} characters): instruction counts depend on it, "
        "and unchanged code may count apart; give the two environments equally long paths (docs/environments.md)"
    )


def summary(the_plan: Plan, result: ABResult, environments: dict[str, Environment]) -> tuple[str, dict[str, object]]:
    """The Markdown summary (with each side's environment when they differ) and its JSON."""
    baseline: object = Code(the_plan.baseline) if the_plan.baseline else "this tree"
    where = {"baseline": baseline, "candidate": "working tree" if the_plan.baseline else "this tree"}
    if the_plan.across_environments:
        where = {side: (where[side], " under ", Code(the_plan.pythons[side])) for side in where}
    text = markdown(
        result.comparison,
        (*_spans(where["baseline"]), f" ({side_processes(result, 'baseline')})"),
        (*_spans(where["candidate"]), f" ({side_processes(result, 'candidate')})"),
    )
    lines = [*(f"{side}: {environments[side].line()}" for side in environments), *result.cost_lines()]
    if the_plan.count_calibration:
        lines.append(f"how far counts stray: also from the calibration in {the_plan.count_calibration}")
    text += "\n" + "".join(f"\n- {line}" for line in lines) + "\n"
    document = {
        **as_json(result.comparison),
        "processes": result.costs(),
        "environments": {side: env.as_json() for side, env in environments.items()},
        "count_calibration": str(the_plan.count_calibration) if the_plan.count_calibration else None,
    }
    return text, document


def _spans(text: object) -> tuple[object, ...]:
    return text if isinstance(text, tuple) else (text,)


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
    the_plan: Plan, commit: str | None, keep: Path, checked: Callable[[], None]
) -> tuple[ABResult, dict[str, Environment]]:
    """The A/B loop between ``commit`` (checked out in a temporary worktree; None: this tree) and this checkout,
    each side under its interpreter, and what each interpreter imports; ``checked`` is called once both sides
    passed their checks, before the first process."""
    try:
        with tree_path_like(REPO, "baseline") as tree:  # as long as the candidate's: counts depend on it
            try:
                if commit is not None:
                    added = git("worktree", "add", "--detach", str(tree), commit)
                    if added.returncode != 0:
                        raise ABError(f"cannot check out {the_plan.baseline}: {added.stderr.strip()}")
                trees = {"baseline": tree if commit is not None else REPO, "candidate": REPO}
                environments = check_sides(the_plan, trees)
                checked()
                return ab_loop(side_runner(the_plan, trees), keep, the_plan.settings), environments
            finally:
                if commit is not None:  # twice forced: an add cut short (Ctrl-C, SIGTERM) leaves its entry locked
                    git("worktree", "remove", "--force", "--force", str(tree))
    finally:
        if commit is not None:  # an entry whose add was cut before its checkout was whole: its folder is gone now
            git("worktree", "prune")


def check_sides(the_plan: Plan, trees: dict[str, Path]) -> dict[str, Environment]:
    """Before any process runs: each side's interpreter imports torch and its own tree's lenet, or ABError."""
    environments = {}
    for side, root in trees.items():  # each side measures its own tree's code, or nothing runs
        python = the_plan.pythons[side]
        try:
            environments[side] = probe(python, root, suite_environment(root, setup=the_plan.setup))
            check_suite_tree(root, the_plan.setup, python)
        except (ForeignCodeError, InterpreterError) as error:
            raise ABError(f"the {side} side: {error}") from None
    return environments


def side_runner(the_plan: Plan, trees: dict[str, Path]) -> SideRunner:
    """Run one process of a side: its tree, its interpreter; counted processes side by side, unpinned."""
    settings, setup = the_plan.settings, the_plan.setup
    # the counted processes run side by side: together, one valgrind process per CPU
    share = {WORKERS_VARIABLE: str(max(1, (os.cpu_count() or 1) // settings.parallel)), **COUNTED_ENVIRONMENT}
    side_by_side = dataclasses.replace(setup, pin=())  # counted processes share the CPUs

    def run_side(side: str, output: Path, log: Path, count: bool) -> int:
        arguments = [*the_plan.pytest_args, *(the_plan.counting + COUNTED_TIMING if count else [])]
        python = the_plan.pythons[side]
        try:
            if not count:
                return run_suite(output, arguments, tree=trees[side], python=python, log=log, setup=setup)
            return run_suite(output, arguments, tree=trees[side], python=python, log=log, setup=side_by_side, env=share)
        except ForeignCodeError as error:
            raise ABError(f"the {side} side: {error}") from None

    return run_side


def side_processes(result: ABResult, side: str) -> str:
    """``2 counted + 4 time processes``: what one side of the A/B ran."""
    return f"{result.counted.processes[side]} counted + {result.processes[side]} time processes"
