"""Same-job A/B: the baseline and the candidate measured in alternating fresh processes.

Processes alternate between the two sides in ABBA blocks (``lenet.interleave``), so that
slow drifts of a shared machine hit both sides alike. After each block (once both sides
have ``min_processes``) the runs are compared as ``compare`` does; the loop stops early
when no verdict is inconclusive, or at ``max_processes`` per side, or when the time budget
is spent. Each look at the data is tested at alpha / (number of possible looks), so
stopping early does not raise the false-alarm rate.

The first ``count_processes`` processes of each side also count instructions (the runner
is told to): two counted processes a side give the spread of counts between processes
that the count verdict needs (``lenet.analysis.compare.count_columns``), and a benchmark
whose counts did not move is decided "unchanged" without waiting for its times.

The loop takes a runner (run one side's suite into a file) and a clock, so tests drive it
in-process with fake suites and a fake clock; ``scripts/ab.py`` gives it git worktrees.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from lenet.analysis.compare import EXIT_BAD_INPUT, CompareError, Comparison, GateOptions, gate
from lenet.analysis.sides import load_side
from lenet.interleave import abba_order
from lenet.runs.files import NotARunError, read_run

SIDES = ("baseline", "candidate")
# (side, output json, log file, count instructions in this process?) -> pytest's exit status
SideRunner = Callable[[str, Path, Path, bool], int]


class ABError(RuntimeError):
    """The A/B run could not reach a comparison; the message says why (exit status: bad input)."""


@dataclass(frozen=True)
class ABSettings:
    min_processes: int = 4
    max_processes: int = 12
    time_budget: float = 3600.0
    options: GateOptions = field(default_factory=GateOptions)
    count_processes: int = 0  # per side, the first ones: they count instructions too

    def __post_init__(self) -> None:
        if not 2 <= self.min_processes <= self.max_processes:
            raise ValueError(f"processes: need 2 <= min ({self.min_processes}) <= max ({self.max_processes}) per side")
        if not 0 <= self.count_processes <= self.max_processes:
            raise ValueError(f"counted processes: need 0 <= {self.count_processes} <= max ({self.max_processes})")

    @property
    def looks(self) -> int:
        """How often the loop may look at the data: after the first full set, then after every block."""
        return 1 + math.ceil((self.max_processes - self.min_processes) / 2)

    def per_look_options(self) -> GateOptions:
        return replace(self.options, alpha=self.options.alpha / self.looks)


@dataclass(frozen=True)
class ABResult:
    comparison: Comparison
    status: int
    processes: dict[str, int]


def prepare_keep(keep: Path) -> None:
    """The folder for the runs must be new or empty: old runs in it would be pooled into the verdict."""
    if keep.exists() and not keep.is_dir():
        raise ABError(f"--keep {keep} is a file; name a new or empty folder")
    if keep.is_dir() and any(path.is_file() for path in keep.rglob("*")):
        raise ABError(f"--keep {keep} already holds files; name a new or empty folder, so no old run is pooled")
    for side in SIDES:
        (keep / side).mkdir(parents=True, exist_ok=True)


def ab_loop(
    run_side: SideRunner,
    keep: Path,
    settings: ABSettings,
    clock: Callable[[], float] = time.monotonic,
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> ABResult:
    """Alternate processes until every decision is clear or a limit is reached; compare at each block's end."""
    started = clock()
    counts = dict.fromkeys(SIDES, 0)
    options = settings.per_look_options()
    result: ABResult | None = None
    order = abba_order(settings.max_processes, *SIDES)
    for index, side in enumerate(order):
        if clock() - started > settings.time_budget:
            say(f"time budget of {settings.time_budget:.0f} s spent; stopping")
            break
        counts[side] += 1
        output = keep / side / f"{counts[side]:04d}.json"
        log = output.with_suffix(".log")
        counting = counts[side] <= settings.count_processes
        code = run_side(side, output, log, counting)
        flagged = _flagged(output)
        unstable = f"; flagged unstable, left out of verdicts: {'; '.join(flagged)}" if flagged else ""
        counted = ", instructions counted" if counting else ""
        say(f"{side} process {counts[side]} done (pytest exit {code}{counted}){unstable}")
        if code not in (0, 1) or not output.exists():
            raise ABError(f"the {side} suite could not run (pytest exit {code}); its output is in {log}")
        block_done = index % 4 == 3 or index == len(order) - 1
        if not block_done or min(counts.values()) < settings.min_processes:
            continue
        try:
            baseline, _ = load_side([keep / "baseline"], "baseline")
            candidate, _ = load_side([keep / "candidate"], "candidate")
            comparison, status = gate(baseline, candidate, options)
        except CompareError as error:
            raise ABError(str(error)) from None
        result = ABResult(comparison, status, dict(counts))
        undecided = comparison.decisions("inconclusive")
        say(f"after {counts['baseline']}+{counts['candidate']} processes: {undecided} inconclusive")
        if undecided == 0:
            break
    if result is None:
        raise ABError("too few processes finished to compare (raise --time-budget)")
    return result


__all__ = ["EXIT_BAD_INPUT", "ABError", "ABResult", "ABSettings", "ab_loop", "prepare_keep"]


def _flagged(output: Path) -> list[str]:
    """The benchmarks of one process's saved run that a stability check flagged (none when it saved nothing)."""
    try:
        return read_run(output).flagged()
    except NotARunError:
        return []
