"""Steps over the history: per machine and benchmark, runs in commit order, each metric searched for change points.

A history is one machine fingerprint's runs of one benchmark, ordered by commit (git's
first-parent order where the repository knows every commit, else the commit time) and, within
a commit, by run time. Two metrics are searched: the instruction count (deterministic to
about 0.02%, docs/instructions.md) and the time median (process noise of 6-25% here).

Runs that a stability check flagged are left out of the time history and kept in the count
history, where load does not show; every history says which runs it left out. The method and
its thresholds are in :mod:`lenet.analysis.changepoints`; their false alerts and sensitivity on
real noise are measured by ``studies/changes_study.py``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lenet.analysis.changepoints import ChangePoint, find_change_points
from lenet.runs.model import Result, Run

TIME = "time"
COUNTS = "instructions"
# Per metric: the smallest step worth a line; below it a real change is not worth an alert (counts
# see changes of 0.01% that matter to nobody).
MIN_CHANGE = {TIME: 0.02, COUNTS: 0.005}
# Per metric: the p-value a split must reach. 0.05 keeps time's false steps well under one per 100
# commits on real noise (binary segmentation tests a history, not each commit), and buys power;
# counts need no such trade (results/studies/changes_study.md).
ALPHA = {TIME: 0.05, COUNTS: 0.01}


@dataclass(frozen=True)
class Point:
    """One run's value in a history."""

    commit: str
    run_time: str
    source: str
    value: float


@dataclass
class History:
    machine: str
    benchmark: str
    metric: str
    points: list[Point] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)  # "source (flags)" of runs left out


@dataclass(frozen=True)
class Change:
    """A step between two measured commits; ``unmeasured`` lists the commits between them that no run measured."""

    machine: str
    benchmark: str
    metric: str
    before: str
    after: str
    unmeasured: tuple[str, ...]
    ratio: float
    low: float
    high: float
    confidence: float
    runs_before: int
    runs_after: int

    @property
    def regression(self) -> bool:
        return self.ratio > 1.0  # more time or more instructions

    def to_dict(self) -> dict[str, Any]:
        fields = dict(self.__dict__)
        fields["unmeasured"] = list(self.unmeasured)
        fields["change_percent"] = round((self.ratio - 1.0) * 100.0, 3)
        fields["regression"] = self.regression
        return fields


def first_parent_order(repo: Path, head: str = "HEAD") -> list[str]:
    """Full SHAs of ``head``'s first-parent history, oldest first; empty when ``repo`` is not a git checkout."""
    result = subprocess.run(
        ["git", "-C", str(repo), "rev-list", "--first-parent", "--reverse", head],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.split() if result.returncode == 0 else []


def commit_positions(runs: Iterable[Run], order: Sequence[str]) -> tuple[dict[str, float], str]:
    """Each run commit's place in history, and how it was ordered ("first-parent" or "commit time").

    First-parent positions are used only when every commit is in ``order`` (a run commit matches
    by prefix); otherwise the commit times order them all, so one unknown commit cannot interleave
    two orders.
    """
    commits = {run.commit.id: run.commit.time for run in runs}
    index = {sha: i for i, sha in enumerate(order)}
    by_prefix = {c: next((i for sha, i in index.items() if sha.startswith(c)), None) for c in commits}
    if commits and all(position is not None for position in by_prefix.values()):
        return {c: float(p) for c, p in by_prefix.items() if p is not None}, "first-parent"
    return {c: _timestamp(t) for c, t in commits.items()}, "commit time"


def _timestamp(text: str | None) -> float:
    if not text:
        return float("inf")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("inf")


def result_value(result: Result, metric: str) -> float | None:
    if metric == TIME:
        return result.stats.median
    counts = result.record.counts if result.record is not None else None
    return counts.instructions if counts is not None and counts.instructions else None


def _flags(result: Result) -> tuple[str, ...]:
    stability = result.record.stability if result.record is not None else None
    return tuple(stability.stability_flags) if stability is not None else ()


def build_histories(runs: Sequence[Run], positions: Mapping[str, float]) -> list[History]:
    """One history per (machine, benchmark, metric), its points in commit order then run time."""
    ordered = sorted(
        (run for run in runs if run.commit.id in positions and run.commit.id != "unknown"),
        key=lambda run: (positions[run.commit.id], run.time or ""),
    )
    histories: dict[tuple[str, str, str], History] = {}
    for run in ordered:
        for result in run.results:
            for metric in (COUNTS, TIME):
                value = result_value(result, metric)
                if value is None:
                    continue
                key = (run.machine.fingerprint, result.fullname or result.name, metric)
                history = histories.setdefault(key, History(*key))
                flags = _flags(result)
                if flags and metric == TIME:
                    history.left_out.append(f"{run.source} ({', '.join(flags)})")
                    continue
                history.points.append(Point(run.commit.id, run.time or "", run.source, value))
    return sorted(histories.values(), key=lambda h: (h.machine, h.benchmark, h.metric))


def detect(history: History, order: Sequence[str], seed: int = 0) -> list[Change]:
    """The steps of one history, each placed between the last commit before and the first after it."""
    points = history.points
    if len(points) < 2:
        return []
    boundaries = [i == 0 or points[i].commit != points[i - 1].commit for i in range(len(points))]
    found = find_change_points(
        [p.value for p in points],
        boundaries,
        alpha=ALPHA[history.metric],
        min_change=MIN_CHANGE[history.metric],
        seed=seed,
    )
    return [_change(history, point, order) for point in found]


def _change(history: History, point: ChangePoint, order: Sequence[str]) -> Change:
    before, after = history.points[point.index - 1].commit, history.points[point.index].commit
    return Change(
        machine=history.machine,
        benchmark=history.benchmark,
        metric=history.metric,
        before=before,
        after=after,
        unmeasured=unmeasured_between(order, before, after),
        ratio=point.ratio.point,
        low=point.ratio.low,
        high=point.ratio.high,
        confidence=point.confidence,
        runs_before=point.index - point.start,
        runs_after=point.stop - point.index,
    )


def unmeasured_between(order: Sequence[str], before: str, after: str) -> tuple[str, ...]:
    """The commits strictly between ``before`` and ``after`` in first-parent ``order`` (empty if unknown)."""
    first = next((i for i, sha in enumerate(order) if sha.startswith(before)), None)
    last = next((i for i, sha in enumerate(order) if sha.startswith(after)), None)
    if first is None or last is None or last <= first:
        return ()
    return tuple(order[first + 1 : last])
