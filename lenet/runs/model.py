"""A saved run as one typed value: :class:`Run` of :class:`Result` (name, :class:`Stats`, :class:`Record`).

Made once, where a run is read (:mod:`lenet.runs.checks` holds the one table of what each
field must be), and read by every later step as it is: the frame (:mod:`lenet.runs.frame`),
publishing, the stability checks, A/B. As torch.utils.benchmark's ``Measurement`` keeps the
raw times and derives the rest, a :class:`Stats` keeps what pytest-benchmark saved and the
per-round times, and a :class:`Result` derives its case name and samples/s rather than
storing copies. A run from a file also keeps the document it was read from (pyperf's ``Run``
owns its JSON), so publishing stores what was saved, byte for byte in meaning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lenet.runs.record import Record

# pytest-benchmark's statistics, in the order it saves them (the frame's columns).
STAT_FIELDS = (
    "min",
    "max",
    "mean",
    "stddev",
    "rounds",
    "median",
    "iqr",
    "q1",
    "q3",
    "iqr_outliers",
    "stddev_outliers",
    "outliers",
    "ld15iqr",
    "hd15iqr",
    "ops",
    "total",
    "iterations",
)


OTHER_STATS = tuple(name for name in STAT_FIELDS if name != "median")


@dataclass(frozen=True, slots=True)
class Stats:
    """One benchmark's statistics in seconds, as pytest-benchmark saved them, checked once.

    ``median`` is always a positive time (a benchmark without one is not read); the other
    statistics are None where absent or dropped by a check. ``data`` holds the per-round
    times when the run was saved with ``--benchmark-save-data``.
    """

    median: float
    others: tuple[Any, ...] = (None,) * len(OTHER_STATS)  # OTHER_STATS in order: a tuple, 50,000 of them fit
    data: tuple[float, ...] | None = None

    def get(self, name: str) -> Any:
        return self.median if name == "median" else self.others[_OTHER_INDEX[name]]

    @property
    def iqr(self) -> float | None:
        return self.get("iqr")


_OTHER_INDEX = {name: index for index, name in enumerate(OTHER_STATS)}


@dataclass(frozen=True, slots=True)
class Result:
    """One benchmark of one run: what pytest-benchmark names it, its statistics and lenet-bench's record.

    ``record`` is None for runs made without lenet-bench; their ``extra_info`` (checked) is in
    ``foreign``. For a record, ``absent`` names the keys that were dropped by a check or that the
    record filled in, so that they read as absent rather than as the placeholder.
    """

    name: str
    stats: Stats
    record: Record | None = None
    foreign: Mapping[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()
    fullname: str | None = None
    group: str | None = None
    param: str | None = None
    params: str | None = None  # JSON text of pytest's params, as a table shows them

    def info(self) -> dict[str, Any]:
        """The ``extra_info`` this result stands for: the record's keys, or the foreign run's."""
        if self.record is None:
            return dict(self.foreign)
        return {key: None if key in self.absent else value for key, value in self.record.to_extra_info().items()}

    @property
    def label(self) -> str:
        """The variant id, or the benchmark's name for runs made without lenet-bench."""
        variant = self.record.variant if self.record is not None and "variant" not in self.absent else None
        return variant or self.foreign.get("variant") or self.name

    @property
    def samples_per_s(self) -> float | None:
        batch = self.record.batch_size if self.record is not None else None
        return batch / self.stats.median if batch else None


@dataclass(frozen=True, slots=True)
class Commit:
    id: str = "unknown"
    time: str | None = None
    branch: str | None = None
    dirty: bool = False


@dataclass(frozen=True, slots=True)
class Machine:
    """Which machine a run was made on: its fingerprint (what may be compared) and a readable label."""

    fingerprint: str
    fields: Mapping[str, Any]
    label: str
    cpu_model: str
    gpu_name: str | None = None
    torch_version: str | None = None
    torch_threads: int | None = None


@dataclass(frozen=True, slots=True)
class Run:
    """One saved run (one pytest process): where it came from, its machine, commit and results.

    ``source`` is the file's path as named, or ``postgresql:<id>``; ``problems`` holds at most
    one line per run saying what in it could not be used (the rest was read).
    """

    source: str
    name: str
    time: str | None
    machine: Machine
    commit: Commit = Commit()
    results: tuple[Result, ...] = ()
    pytest_benchmark_version: str | None = None
    problems: tuple[str, ...] = ()
    document: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def copy_key(self) -> tuple[Any, ...] | None:
        """What makes two saved files one process: the same time, machine, commit and results (each
        benchmark's median), as in a copy of a run; None for a run without a time."""
        if not self.time:
            return None
        medians = tuple(sorted((r.fullname or r.name, r.stats.median) for r in self.results))
        return (self.time, self.machine.fingerprint, self.commit.id, medians)

    def flagged(self) -> list[str]:
        """The benchmarks a stability check flagged, as ``name (check, ...)``."""
        return [
            f"{r.name} ({', '.join(r.record.stability.stability_flags)})"
            for r in self.results
            if r.record is not None and r.record.stability is not None and r.record.stability.flagged
        ]
