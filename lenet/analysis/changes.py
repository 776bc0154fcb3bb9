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

from lenet.analysis.blocks import Block, Heading, Table, paragraph
from lenet.analysis.changepoints import DEFAULT_MIN_SIZE as MIN_SIZE
from lenet.analysis.changepoints import ChangePoint, find_change_points
from lenet.analysis.formatting import LEFT, RIGHT
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
# The report searches each history's newest runs only, so its cost stays bounded as a history grows
# (a step older than this is history the report's plots still show); scripts/changes.py searches all.
REPORT_WINDOW = 200
# Per metric: the quantile a step is placed about. Process noise in time is one-sided (the machine slows a
# process, nothing makes it faster than its code), so the lower quartile of a segment is far tighter than its
# median and places a step nearer its commit; count noise is symmetric (results/studies/changes_study.md).
QUANTILE = {TIME: 0.25, COUNTS: 0.5}


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


@dataclass(frozen=True)
class Sample:
    """One benchmark's value in one run, whichever way the runs were read (typed runs or the frame)."""

    machine: str
    benchmark: str
    commit: str
    commit_time: str | None
    run_time: str
    source: str
    time: float
    instructions: float | None
    flags: tuple[str, ...]


def samples_from_runs(runs: Iterable[Run]) -> list[Sample]:
    return [
        Sample(
            run.machine.fingerprint,
            result.fullname or result.name,
            run.commit.id,
            run.commit.time,
            run.time or "",
            run.source,
            result.stats.median,
            _instructions(result),
            _flags(result),
        )
        for run in runs
        for result in run.results
    ]


def samples_from_frame(frame: Any) -> list[Sample]:
    """The same samples from the report's frame (:func:`lenet.runs.frame.to_frame`).

    Read column by column: a corpus of 1,000 runs has 50,000 rows, and a per-row dict costs seconds.
    """

    def column(name: str) -> list[Any]:
        return frame[name].tolist() if name in frame.columns else [None] * len(frame)

    names = [full or name for full, name in zip(column("fullname"), column("name"), strict=True)]
    rows = zip(
        column("machine"),
        names,
        column("commit"),
        column("commit_time"),
        column("run_time"),
        column("source"),
        column("median"),
        column("instructions"),
        column("stability_flags"),
        strict=True,
    )
    return [
        Sample(
            str(machine),
            str(name),
            str(commit),
            commit_time if isinstance(commit_time, str) else None,
            str(run_time or ""),
            str(source),
            float(median),
            float(count) if isinstance(count, int | float) and count == count and count > 0 else None,
            tuple(flags) if isinstance(flags, list | tuple) else (),
        )
        for machine, name, commit, commit_time, run_time, source, median, count, flags in rows
    ]


def commit_positions(samples: Iterable[Sample], order: Sequence[str]) -> tuple[dict[str, float], str]:
    """Each commit's place in history, and how it was ordered ("first-parent" or "commit time").

    First-parent positions are used only when every commit is in ``order`` (a run commit matches
    by prefix); otherwise the commit times order them all, so one unknown commit cannot interleave
    two orders.
    """
    commits = {sample.commit: sample.commit_time for sample in samples}
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


def _instructions(result: Result) -> float | None:
    counts = result.record.counts if result.record is not None else None
    return counts.instructions if counts is not None and counts.instructions else None


def _flags(result: Result) -> tuple[str, ...]:
    stability = result.record.stability if result.record is not None else None
    return tuple(stability.stability_flags) if stability is not None else ()


def build_histories(samples: Sequence[Sample], positions: Mapping[str, float]) -> list[History]:
    """One history per (machine, benchmark, metric), its points in commit order then run time.

    Flagged samples are left out of time histories (and listed); counts keep them.
    """
    ordered = sorted(
        (s for s in samples if s.commit in positions and s.commit != "unknown"),
        key=lambda s: (positions[s.commit], s.run_time),
    )
    histories: dict[tuple[str, str, str], History] = {}
    for sample in ordered:
        for metric, value in ((COUNTS, sample.instructions), (TIME, sample.time)):
            if value is None:
                continue
            history = histories.setdefault((sample.machine, sample.benchmark, metric), History(*key_of(sample, metric)))
            if sample.flags and metric == TIME:
                history.left_out.append(f"{sample.source} ({', '.join(sample.flags)})")
                continue
            history.points.append(Point(sample.commit, sample.run_time, sample.source, value))
    return sorted(histories.values(), key=lambda h: (h.machine, h.benchmark, h.metric))


def key_of(sample: Sample, metric: str) -> tuple[str, str, str]:
    return sample.machine, sample.benchmark, metric


def find_changes(
    samples: Sequence[Sample], order: Sequence[str], window: int | None = None
) -> tuple[list[Change], list[History], str]:
    """Every step in the samples' histories, the histories, and how commits were ordered.

    ``window``: search only each history's newest that many runs (the report's bound on its cost).
    """
    positions, ordering = commit_positions(samples, order)
    histories = build_histories(samples, positions)
    if window is not None:
        for history in histories:
            history.points = history.points[-window:]
    return [c for h in histories for c in detect(h, order)], histories, ordering


def report_changes(frame: Any, order: Sequence[str]) -> tuple[list[Change], list[History], str]:
    """:func:`find_changes` over the report's frame, each history's newest ``REPORT_WINDOW`` runs."""
    return find_changes(samples_from_frame(frame), order, REPORT_WINDOW)


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
        quantile=QUANTILE[history.metric],
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


def change_blocks(
    frame: Any, order: Sequence[str] = (), found: tuple[list[Change], list[History], str] | None = None
) -> list[Block]:
    """The report's section of steps in the history (scripts/changes.py's findings); nothing when no
    history is long enough to search (two commits of ``MIN_SIZE`` runs at least). ``found``: what
    :func:`find_changes` returned for the frame's samples, when the caller has it already."""
    changes, histories, ordering = found or report_changes(frame, order)
    searched = [h for h in histories if len(h.points) >= 2 * MIN_SIZE]
    if not searched:
        return []
    intro = (
        f"{len(searched)} histories (machine, benchmark, metric) of {MIN_SIZE * 2} runs or more searched for steps, "
        f"each over its newest {REPORT_WINDOW} runs at most (scripts/changes.py searches them whole), commits in "
        f"{ordering} order; a one-run spike is not a step, and runs flagged unstable are left out of time histories "
        "(docs/culprits.md)."
    )
    if not changes:
        return [Heading(2, "Steps in the history"), paragraph(intro, "No step found.")]
    rows = tuple(
        (
            "regression" if c.regression else "improvement",
            c.benchmark,
            c.metric,
            f"{100 * (c.ratio - 1):+.2f}% [{100 * (c.low - 1):+.2f}%, {100 * (c.high - 1):+.2f}%]",
            f"{c.confidence:.3f}",
            c.before[:12],
            c.after[:12] + (f" ({len(c.unmeasured)} unmeasured between)" if c.unmeasured else ""),
        )
        for c in changes
    )
    header = ("step", "benchmark", "metric", "change [95% CI]", "confidence", "last before", "first after")
    table = Table(header, rows, (LEFT, LEFT, LEFT, RIGHT, RIGHT, LEFT, LEFT))
    return [Heading(2, "Steps in the history"), paragraph(intro), table]
