"""Same-job A/B: the cheapest evidence that decides, from fresh processes of both sides.

Two kinds of process, each with its own schedule:

- **Counted processes** (the first ``count_processes`` of each side) count instructions under
  valgrind. A count does not depend on what else the machine runs
  (``results/studies/count_toggling.md``), so they run side by side, both sides at once, as many
  as ``parallel`` (the machine's cores). Their times were taken under that load, so they serve no
  time verdict: they are kept apart (``keep/counted/<side>``) and give the comparison its counts only.
- **Time processes** run alone, alternating between the sides in ABBA blocks
  (``lenet.interleave``), so that slow drifts of a shared machine hit both sides alike. After each
  block (once both sides have ``min_processes``) the runs are compared as ``compare`` does; the
  loop stops early when no decision is inconclusive, or at ``max_processes`` per side, or when the
  time budget is spent. Each look at the data is tested at alpha / (number of possible looks), so
  stopping early does not raise the false-alarm rate.

Time processes run only when the counts leave something to decide (``time="auto"``): a benchmark
counts cannot decide (compiled, AMP or CUDA variants: counts there do not stand for the time the
machine spends, see ``counts_decide``), one that was not counted, or one whose count verdict is
inconclusive. ``time="always"`` runs them anyway.

The loop takes a runner (run one side's suite into a file) and a clock, so tests drive it
in-process with fake suites and a fake clock; ``scripts/ab.py`` gives it git worktrees.
"""

from __future__ import annotations

import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from lenet.analysis.compare import (
    EXIT_BAD_INPUT,
    MIN_COUNT_PROCESSES,
    CompareError,
    Comparison,
    GateOptions,
    Side,
    gate,
    times,
)
from lenet.analysis.noise import Calibration
from lenet.analysis.sides import load_side
from lenet.fingerprint import split_differences
from lenet.interleave import abba_order
from lenet.runs.files import NotARunError, read_run

SIDES = ("baseline", "candidate")
TIME_MODES = ("auto", "always")
# (side, output json, log file, count instructions in this process?) -> pytest's exit status
SideRunner = Callable[[str, Path, Path, bool], int]
Say = Callable[[str], None]
_PARAMETERS = re.compile(r"\[([^\]]*)\]")


class ABError(RuntimeError):
    """The A/B run could not reach a comparison; the message says why (exit status: bad input)."""


@dataclass(frozen=True)
class ABSettings:
    min_processes: int = 4
    max_processes: int = 12
    time_budget: float = 3600.0
    options: GateOptions = field(default_factory=GateOptions)
    count_processes: int = 0  # per side: they count instructions, side by side
    time: str = "auto"  # "auto": time processes only for what counts did not decide; "always"
    parallel: int = field(default_factory=lambda: os.cpu_count() or 1)  # counted processes at once
    # how far counts of unchanged code stray (a baseline's noise.json): with it one counted process a side decides
    count_calibration: Calibration | None = None

    def __post_init__(self) -> None:
        if not 2 <= self.min_processes <= self.max_processes:
            raise ValueError(f"processes: need 2 <= min ({self.min_processes}) <= max ({self.max_processes}) per side")
        if not 0 <= self.count_processes <= self.max_processes:
            raise ValueError(f"counted processes: need 0 <= {self.count_processes} <= max ({self.max_processes})")
        if self.time not in TIME_MODES:
            raise ValueError(f"time {self.time!r}: expected one of {', '.join(TIME_MODES)}")
        if self.parallel < 1:
            raise ValueError(f"parallel counted processes: need >= 1, got {self.parallel}")

    @property
    def looks(self) -> int:
        """How often the loop may look at the data: after the first full set, then after every block."""
        return 1 + math.ceil((self.max_processes - self.min_processes) / 2)

    def per_look_options(self) -> GateOptions:
        return replace(self.options, alpha=self.options.alpha / self.looks)


@dataclass(frozen=True)
class ProcessCost:
    """What one kind of process cost: how many ran (per side), each one's seconds, and the wall time of the phase."""

    processes: dict[str, int]
    seconds: tuple[float, ...] = ()
    wall: float = 0.0

    def line(self, kind: str) -> str:
        if not self.seconds:
            return f"{kind}: none"
        each = statistics.median(self.seconds)
        counts = "+".join(str(self.processes[side]) for side in SIDES)
        return f"{kind}: {counts} processes, {self.wall:.0f} s in all (median {each:.0f} s each)"


@dataclass(frozen=True)
class ABResult:
    comparison: Comparison
    status: int
    processes: dict[str, int]  # time processes per side
    counted: ProcessCost = field(default_factory=lambda: ProcessCost(dict.fromkeys(SIDES, 0)))
    timed: ProcessCost = field(default_factory=lambda: ProcessCost(dict.fromkeys(SIDES, 0)))

    def costs(self) -> dict[str, dict[str, object]]:
        """Each kind of process: how many a side, each one's seconds, and the phase's wall seconds (for JSON)."""
        return {
            kind: {"per_side": cost.processes, "seconds": list(cost.seconds), "wall": cost.wall}
            for kind, cost in (("counted", self.counted), ("time", self.timed))
        }

    def cost_lines(self) -> list[str]:
        """How long each kind of process took, for the end of the summary."""
        return [self.counted.line("counted processes (side by side)"), self.timed.line("time processes (ABBA)")]


def prepare_keep(keep: Path) -> None:
    """The folder for the runs must be new or empty: old runs in it would be pooled into the verdict."""
    if keep.exists() and not keep.is_dir():
        raise ABError(f"--keep {keep} is a file; name a new or empty folder")
    if keep.is_dir() and any(path.is_file() for path in keep.rglob("*")):
        raise ABError(f"--keep {keep} already holds files; name a new or empty folder, so no old run is pooled")
    for side in SIDES:
        (keep / side).mkdir(parents=True, exist_ok=True)
        (keep / "counted" / side).mkdir(parents=True, exist_ok=True)


def counts_decide(benchmark: str) -> bool:
    """Whether instruction counts can decide ``benchmark`` (a pytest name with its variant id in brackets).

    Not for CUDA variants (their time is spent on the device), compiled ones (counted only on request,
    and in AVX2 code compiled for valgrind, not the code the machine runs) or AMP (valgrind emulates no
    native bf16/fp16, so the counted kernels are not the timed ones).
    """
    found = _PARAMETERS.search(benchmark)
    parts = found.group(1).split("-") if found else []
    if len(parts) < 4:
        return False  # not a variant this project names: let time decide
    device, _, precision, mode = parts[:4]
    return device == "cpu" and mode == "eager" and not precision.startswith("amp")


def ab_loop(
    run_side: SideRunner,
    keep: Path,
    settings: ABSettings,
    clock: Callable[[], float] = time.monotonic,
    say: Say = lambda line: print(line, file=sys.stderr, flush=True),
) -> ABResult:
    """Counted processes side by side, then time processes in ABBA order for what counts left undecided."""
    counted, counted_cost = run_counted(run_side, keep, settings, clock, say)
    if counted is not None and settings.count_calibration is not None:
        check_calibration(settings.count_calibration, counted[0], settings.count_processes, say)
    if counted is not None and settings.time == "auto":
        comparison, status = _gate(*counted, settings.options, settings.count_calibration)
        undecided = [name for name in _names(comparison) if not decided_by_counts(comparison, name)]
        if not undecided:
            say(f"counts decided all {len(_names(comparison))} benchmark(s); no time processes needed")
            untimed = replace(comparison, time_processes_ran=False)
            return ABResult(untimed, status, dict.fromkeys(SIDES, 0), counted_cost)
        listed = ", ".join(undecided[:3]) + (" ..." if len(undecided) > 3 else "")
        say(f"counts left {len(undecided)} benchmark(s) to time: {listed}")
    spent = counted_cost.wall  # the counted processes' share of the time budget
    budget = replace(settings, time_budget=settings.time_budget - spent)
    return run_timed(run_side, keep, budget, counted, counted_cost, clock, say)


def decided_by_counts(comparison: Comparison, name: str) -> bool:
    rows = comparison.table[comparison.table["benchmark"] == name]
    return bool(counts_decide(name) and len(rows) and rows["decision"].iloc[0] != "inconclusive")


def _names(comparison: Comparison) -> list[str]:
    return [] if comparison.table.empty else list(comparison.table["benchmark"])


def run_counted(
    run_side: SideRunner, keep: Path, settings: ABSettings, clock: Callable[[], float], say: Say
) -> tuple[tuple[Side, Side] | None, ProcessCost]:
    """The counted processes of both sides, ``parallel`` at a time; each side's counts (None when none ran)."""
    per_side = settings.count_processes
    if per_side == 0:
        return None, ProcessCost(dict.fromkeys(SIDES, 0))
    jobs = [(side, number) for number in range(1, per_side + 1) for side in SIDES]
    started = clock()

    def one(job: tuple[str, int]) -> float:
        side, number = job
        output = keep / "counted" / side / f"{number:04d}.json"
        begun = time.monotonic()
        code = run_side(side, output, output.with_suffix(".log"), True)
        say(f"{side} counted process {number} done (pytest exit {code})")
        if code not in (0, 1) or not output.exists():
            raise ABError(
                f"the {side} suite could not run (pytest exit {code}); its output is in {output.with_suffix('.log')}"
            )
        return time.monotonic() - begun

    with ThreadPoolExecutor(max_workers=min(settings.parallel, len(jobs))) as pool:
        seconds = tuple(pool.map(one, jobs))
    cost = ProcessCost(dict.fromkeys(SIDES, per_side), seconds, clock() - started)
    baseline, candidate = (_counts_only(_load(keep / "counted" / side, side)) for side in SIDES)
    return (baseline, candidate), cost


def _counts_only(side: Side) -> Side:
    """A side of counted processes for a count verdict: their times, taken side by side under load, must decide
    nothing, so each benchmark keeps one time (fewer processes than any time verdict needs: inconclusive)."""
    return replace(
        side,
        samples={name: values[:1] for name, values in side.samples.items()},
        unstable={name: marks[:1] for name, marks in side.unstable.items()},
    )


def run_timed(
    run_side: SideRunner,
    keep: Path,
    settings: ABSettings,
    counted: tuple[Side, Side] | None,
    counted_cost: ProcessCost,
    clock: Callable[[], float],
    say: Say,
) -> ABResult:
    """Alternate time processes until every decision is clear or a limit is reached; compare at each block's end."""
    started = clock()
    counts = dict.fromkeys(SIDES, 0)
    seconds: list[float] = []
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
        begun = time.monotonic()
        code = run_side(side, output, log, False)
        seconds.append(time.monotonic() - begun)
        flagged = _flagged(output)
        unstable = f"; flagged unstable, left out of verdicts: {'; '.join(flagged)}" if flagged else ""
        say(f"{side} time process {counts[side]} done (pytest exit {code}){unstable}")
        if code not in (0, 1) or not output.exists():
            raise ABError(f"the {side} suite could not run (pytest exit {code}); its output is in {log}")
        block_done = index % 4 == 3 or index == len(order) - 1
        if not block_done or min(counts.values()) < settings.min_processes:
            continue
        timed = ProcessCost(dict(counts), tuple(seconds), clock() - started)
        baseline, candidate = _load(keep / "baseline", "baseline"), _load(keep / "candidate", "candidate")
        if counted is not None:  # the counts come from the counted processes, the times from these
            baseline = replace(baseline, instructions=counted[0].instructions)
            candidate = replace(candidate, instructions=counted[1].instructions)
        comparison, status = _gate(baseline, candidate, options, settings.count_calibration)
        result = ABResult(comparison, status, dict(counts), counted_cost, timed)
        undecided = comparison.decisions("inconclusive")
        say(f"after {counts['baseline']}+{counts['candidate']} time processes: {undecided} inconclusive")
        if undecided == 0:
            break
    if result is None:
        raise ABError("too few processes finished to compare (raise --time-budget)")
    return result


def _load(folder: Path, what: str) -> Side:
    try:
        return load_side([folder], what)[0]
    except CompareError as error:
        raise ABError(str(error)) from None


def _gate(
    baseline: Side, candidate: Side, options: GateOptions, calibration: Calibration | None
) -> tuple[Comparison, int]:
    try:
        return gate(baseline, candidate, options, count_noise=calibration.counts if calibration else None)
    except CompareError as error:
        raise ABError(str(error)) from None


def check_calibration(calibration: Calibration, counted: Side, per_side: int, say: Say) -> None:
    """A count calibration stands for how far counts stray on the machine it was made on: ABError for another.
    Where it has too few counts of a benchmark to lend it a spread, and ``per_side`` counted processes cannot
    either, that is said."""
    machine, _ = split_differences(calibration.fingerprint_fields, counted.fingerprint_fields)
    if machine:
        listed = "; ".join(f"{name}: {a!r} (calibration) vs {b!r} (here)" for name, (a, b) in machine.items())
        raise ABError(f"the count calibration was made on another machine: {listed}; calibrate on this one")
    known = calibration.counts or {}
    missing = sorted(name for name in counted.instructions if len(times(known.get(name, ()))) < MIN_COUNT_PROCESSES)
    if missing and per_side < MIN_COUNT_PROCESSES:
        listed = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        say(
            f"warning: the count calibration has no spread of {len(missing)} counted benchmark(s), whose counts "
            f"then cannot decide from {per_side} process(es) a side: {listed}"
        )


__all__ = [
    "EXIT_BAD_INPUT",
    "ABError",
    "ABResult",
    "ABSettings",
    "ProcessCost",
    "ab_loop",
    "counts_decide",
    "prepare_keep",
]


def _flagged(output: Path) -> list[str]:
    """The benchmarks of one process's saved run that a stability check flagged (none when it saved nothing)."""
    try:
        return read_run(output).flagged()
    except NotARunError:
        return []
