"""Which commit between a good and a bad one made the benchmarks slower: a bisection whose test is a measurement.

``git bisect`` assumes a test that never lies; a benchmark is noisy, so each probe is decided
against both ends rather than against a fixed threshold (as Chromium's Pinpoint compares
repeated measurements). The two ends are measured first; the benchmarks whose value differs
between them (the *step*) are the evidence. For each probe, every such benchmark gets its
position on the step, ``(probe - good) / (bad - good)``, and the median position decides:

* below 1/3: "like good" (the step comes later);
* above 2/3: "like bad" (the step is here or earlier);
* between: "between" - part of the step is before the probe and part after, so there is more
  than one step. The search follows the larger part and says so.

A probe whose code cannot run, or that lost a benchmark of the step (an import error, the
correctness gate), is skipped with its reason, as ``git bisect skip``, and the next commit
nearest the middle is probed instead.

Values are instruction counts where the ends were counted (deterministic to ~0.02%, so one
process a commit decides; a step counts when it is at least ``COUNT_STEP``), else the lower
quartile of several processes' time medians (a step counts when the bootstrap interval of its
ratio excludes 1 and it is at least ``TIME_STEP``). The lower quartile, not the median, because
process noise here is one-sided: the machine slows some processes by tens of percent and makes
none faster than its code, so the fast processes agree closely and a median of a few processes
jumps whenever two of them happen to be slow (results/studies/bisect_time_study.md). The loop
takes the measuring function, so tests drive it with fake measurements; ``scripts/culprit.py``
gives it git worktrees and ``pytest bench`` processes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lenet.analysis.stats import bootstrap_ratio_of_quantiles

COUNT_STEP = 0.005  # the smallest count step worth bisecting (as scripts/changes.py reports them)
TIME_STEP = 0.02
TIME_QUANTILE = 0.25  # of a commit's process medians (the module's docstring)
MORE_BATCHES = 3  # by time: how many more batches of processes an undecided measurement may get
LIKE_GOOD, LIKE_BAD, BETWEEN, SKIPPED = "like good", "like bad", "between", "skipped"


@dataclass(frozen=True)
class Measurement:
    """One commit's values per benchmark: ``metric`` is "instructions" (one count a process) or "time"
    (one median a process); ``problem`` says why the commit could not be measured (then no values)."""

    commit: str
    metric: str
    values: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    problem: str | None = None
    reused: bool = False

    def value(self, benchmark: str) -> float | None:
        samples = self.values.get(benchmark)
        if not samples:
            return None
        return float(np.quantile(samples, TIME_QUANTILE)) if self.metric == "time" else float(np.median(samples))


@dataclass(frozen=True)
class Probe:
    commit: str
    verdict: str
    position: float | None
    reason: str = ""


@dataclass
class BisectResult:
    """The first bad commit (or None when none could be named) and how it was found."""

    commits: list[str]  # good's children up to bad, oldest first
    step: dict[str, float]  # benchmark -> bad / good
    probes: list[Probe]
    culprit: str | None = None
    parent: str | None = None
    notes: list[str] = field(default_factory=list)


def step_benchmarks(good: Measurement, bad: Measurement) -> dict[str, float]:
    """The benchmarks whose value moved from good to bad, with the ratio bad / good."""
    step = {}
    for name in sorted(set(good.values) & set(bad.values)):
        g, b = good.value(name), bad.value(name)
        if not g or not b:
            continue
        ratio = b / g
        if good.metric == "instructions":
            if abs(ratio - 1) >= COUNT_STEP:
                step[name] = ratio
            continue
        interval = bootstrap_ratio_of_quantiles(bad.values[name], good.values[name], TIME_QUANTILE)
        low, high = interval.low, interval.high
        if abs(ratio - 1) >= TIME_STEP and not low <= 1.0 <= high:
            step[name] = ratio
    return step


def classify(probe: Measurement, good: Measurement, bad: Measurement, step: Mapping[str, float]) -> Probe:
    """Like good, like bad, between, or skipped (with its reason), by the median position on the step."""
    if probe.problem:
        return Probe(probe.commit, SKIPPED, None, probe.problem)
    missing = [name for name in step if probe.value(name) is None]
    if missing:
        return Probe(probe.commit, SKIPPED, None, f"no result for {', '.join(missing)} (failed or not run)")
    positions = []
    for name in step:
        g, b, p = good.value(name), bad.value(name), probe.value(name)
        positions.append((p - g) / (b - g))  # type: ignore[operator]
    position = float(np.median(positions))
    verdict = LIKE_GOOD if position < 1 / 3 else LIKE_BAD if position > 2 / 3 else BETWEEN
    return Probe(probe.commit, verdict, position)


def bisect(
    commits: Sequence[str],
    good: Measurement,
    bad: Measurement,
    measure: Callable[[str], Measurement],
    say: Callable[[str], None] = lambda line: None,
    more: Callable[[str], Measurement] | None = None,
) -> BisectResult:
    """Bisect ``commits`` (good's descendants up to and including bad, oldest first) with ``measure``.

    ``more(commit)``: the commit measured again with another batch of processes added to those it
    has (by time only): an undecided time measurement (no step between the ends, a probe "between")
    is measured more, up to ``MORE_BATCHES`` times, before it is taken as it is.
    """
    good, bad, step = _ends_with_step(good, bad, more)
    result = BisectResult(list(commits), step, [])
    if not step:
        result.notes.append("good and bad do not differ: no benchmark moved by a step worth bisecting")
        return result
    low, high = -1, len(commits) - 1  # indices into commits: low is good (-1), high is bad
    skipped: set[int] = set()
    while high - low > 1:
        index = _next_probe(low, high, skipped)
        if index is None:
            result.notes.append(f"every commit between {_name(commits, low, good)} and {commits[high]} was skipped")
            break
        probe = _decided(classify(measure(commits[index]), good, bad, step), good, bad, step, more)
        result.probes.append(probe)
        say(f"{commits[index][:12]}: {probe.verdict}" + (f" ({probe.reason})" if probe.reason else ""))
        if probe.verdict == SKIPPED:
            skipped.add(index)
        elif probe.verdict == LIKE_GOOD or (probe.verdict == BETWEEN and (probe.position or 0) < 0.5):
            low = index
        else:
            high = index
        if probe.verdict == BETWEEN:
            result.notes.append(
                f"{commits[index][:12]} lies between good and bad ({probe.position:.0%} of the step): more than one "
                "step; the search followed the larger part"
            )
    if high - low == 1:
        result.culprit, result.parent = commits[high], _name(commits, low, good)
    return result


def _ends_with_step(
    good: Measurement, bad: Measurement, more: Callable[[str], Measurement] | None
) -> tuple[Measurement, Measurement, dict[str, float]]:
    """The ends and their step; by time, ends that show none are measured more (a range is bisected because
    someone saw a step there, and a few processes of noisy time can hide it)."""
    step = step_benchmarks(good, bad)
    for _ in range(MORE_BATCHES if more is not None and good.metric == "time" else 0):
        if step:
            break
        good, bad = more(good.commit), more(bad.commit)  # type: ignore[misc]
        step = step_benchmarks(good, bad)
    return good, bad, step


def _decided(
    probe: Probe,
    good: Measurement,
    bad: Measurement,
    step: Mapping[str, float],
    more: Callable[[str], Measurement] | None,
) -> Probe:
    """A time probe "between" the ends measured more until it is like one of them (or the batches run out)."""
    for _ in range(MORE_BATCHES if more is not None and good.metric == "time" else 0):
        if probe.verdict != BETWEEN:
            break
        probe = classify(more(probe.commit), good, bad, step)  # type: ignore[misc]
    return probe


def _name(commits: Sequence[str], index: int, good: Measurement) -> str:
    return good.commit if index < 0 else commits[index]


def _next_probe(low: int, high: int, skipped: set[int]) -> int | None:
    """The unskipped commit strictly between low and high nearest the middle, or None."""
    middle = (low + high) / 2
    candidates = [i for i in range(low + 1, high) if i not in skipped]
    return min(candidates, key=lambda i: (abs(i - middle), i)) if candidates else None
