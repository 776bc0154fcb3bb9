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

This is the recommended CI mode: both sides run on the same machine in the same job,
so no stored baseline has to match the runner. Runs are kept in results/ab/<time>/.
Exit status as scripts/compare.py (0 pass, 1 regression, 2 bad input, 3/4 on request).
"""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from _gate_cli import add_gate_options, gate_options, publish  # scripts/ is on sys.path when run

from lenet.analysis.compare import (
    EXIT_BAD_INPUT,
    CompareError,
    GateOptions,
    abba_sides,
    as_json,
    gate,
    load_side,
    markdown,
)
from lenet.suite import run_suite

REPO = Path(__file__).resolve().parents[1]
# CPU time on one thread: half the process-to-process noise of wall time on a shared machine
# (results/studies/gate_study*.md); CUDA benchmarks keep their synchronized wall clock.
DEFAULT_PYTEST = [
    "--preset",
    "quick",
    "--threads",
    "1",
    "--benchmark-timer",
    "time.process_time",
    "--benchmark-max-time=0.5",
]


def git(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="ab.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", required=True, metavar="REF", help="git commit, branch or tag to compare against")
    parser.add_argument("--min-processes", type=int, default=4, help="per side before the first look (default 4)")
    parser.add_argument("--max-processes", type=int, default=12, help="per side at most (default 12)")
    parser.add_argument("--time-budget", type=float, default=3600.0, help="seconds before it stops (default 3600)")
    parser.add_argument("--keep", type=Path, default=None, help="folder for the runs (default results/ab/<UTC time>)")
    add_gate_options(parser)
    parser.add_argument(
        "pytest_args",
        nargs=argparse.REMAINDER,
        help=f"options for pytest bench after -- (default: {' '.join(DEFAULT_PYTEST)})",
    )
    args = parser.parse_args(argv)
    pytest_args = [a for a in args.pytest_args if a != "--"] or DEFAULT_PYTEST
    if args.min_processes < 2 or args.max_processes < args.min_processes:
        print("error: need 2 <= --min-processes <= --max-processes", file=sys.stderr)
        return EXIT_BAD_INPUT
    resolved = git("rev-parse", "--verify", "--quiet", f"{args.baseline}^{{commit}}")
    if resolved.returncode != 0:
        print(f"error: baseline {args.baseline!r} is not a commit, branch or tag of this repository", file=sys.stderr)
        return EXIT_BAD_INPUT
    commit = resolved.stdout.strip()
    keep = args.keep or REPO / "results" / "ab" / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    (keep / "baseline").mkdir(parents=True, exist_ok=True)
    (keep / "candidate").mkdir(parents=True, exist_ok=True)
    looks = 1 + math.ceil((args.max_processes - args.min_processes) / 2)
    options = replace(gate_options(args), alpha=args.alpha / looks)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lenet-ab-") as tmp:
        tree = Path(tmp) / "baseline"
        added = git("worktree", "add", "--detach", str(tree), commit)
        if added.returncode != 0:
            print(f"error: cannot check out {args.baseline}: {added.stderr.strip()}", file=sys.stderr)
            return EXIT_BAD_INPUT
        try:
            status, text, data = ab_loop(args, pytest_args, options, tree, keep, started)
        finally:
            git("worktree", "remove", "--force", str(tree))
    if text is None:
        return status
    publish(text, data, args.markdown, args.json)
    print(f"runs kept in {keep} ({time.monotonic() - started:.0f} s in all)", file=sys.stderr)
    return status


def ab_loop(
    args: argparse.Namespace, pytest_args: list[str], options: GateOptions, tree: Path, keep: Path, started: float
) -> tuple[int, str | None, dict | None]:
    """Alternate processes until every verdict is clear or a limit is reached; compare at each block's end."""
    counts = {"baseline": 0, "candidate": 0}
    comparison, status = None, EXIT_BAD_INPUT
    sides = list(abba_sides(args.max_processes))
    for index, side in enumerate(sides):
        if time.monotonic() - started > args.time_budget:
            print(f"time budget of {args.time_budget:.0f} s spent; stopping", file=sys.stderr)
            break
        counts[side] += 1
        output = keep / side / f"{counts[side]:04d}.json"
        log = output.with_suffix(".log")
        code = run_suite(output, pytest_args, tree=tree if side == "baseline" else REPO, log=log)
        print(f"{side} process {counts[side]} done (pytest exit {code})", file=sys.stderr, flush=True)
        if code not in (0, 1) or not output.exists():
            print(
                f"error: the {side} suite could not run (pytest exit {code}); its output is in {log}",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT, None, None
        block_done = index % 4 == 3 or index == len(sides) - 1
        if not block_done or min(counts.values()) < args.min_processes:
            continue
        try:
            baseline, _ = load_side([keep / "baseline"], "baseline")
            candidate, _ = load_side([keep / "candidate"], "candidate")
            comparison, status = gate(baseline, candidate, options)
        except CompareError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT, None, None
        undecided = comparison.count("inconclusive")
        print(
            f"after {counts['baseline']}+{counts['candidate']} processes: {undecided} inconclusive",
            file=sys.stderr,
            flush=True,
        )
        if undecided == 0:
            break
    if comparison is None:
        print("error: too few processes finished to compare (raise --time-budget)", file=sys.stderr)
        return EXIT_BAD_INPUT, None, None
    text = markdown(
        comparison,
        f"`{args.baseline}` ({counts['baseline']} processes)",
        f"working tree ({counts['candidate']} processes)",
    )
    return status, text, as_json(comparison)


if __name__ == "__main__":
    sys.exit(main())
