"""Which runs to read: one :class:`RunFilter` for the database (run as SQL) and for files (run on the frame).

The database pushes every filter into SQL (:mod:`lenet.runs.postgres.read`); saved files are
loaded whole and :func:`select_frame` applies the same filter to the frame, so a
command gives the same selection from either. Filters mean what the report's own
filters mean:

* ``machines``: fingerprint prefixes, or ``fnmatch`` globs over the readable machine label;
* ``variants``: globs over the label (the variant id, or the benchmark name for runs
  made without lenet-bench); ``phases``; ``batch_sizes``;
* ``commits``: commit id prefixes; ``commit_range`` (A, B): runs of commits made after
  A up to and including B, by the commit times recorded in the runs (combine it with a
  branch for a linear history);
* ``branches``; ``since`` (inclusive) and ``until`` (exclusive): the run's own time;
* ``latest_commit``: per machine, only the runs of the commit (and dirty state) of its
  newest run; ``latest_processes`` N: per machine, its newest N runs (each saved run is
  one process), after every other filter. "The baseline of fingerprint F at main's
  latest commit": ``RunFilter(machines=[F], branches=["main"], latest_commit=True)``;
  "the latest 10 processes of F on main": ``RunFilter(machines=[F], branches=["main"],
  latest_processes=10)``.

Nothing here needs psycopg: the file path of every command stays free of it.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pandas as pd

from lenet.runs.postgres.connection import EXIT_BAD_INPUT, StoreError


class QueryError(StoreError):
    """A filter that cannot be run (bad value, unknown or ambiguous commit); the message is one line."""

    exit_code = EXIT_BAD_INPUT


@dataclass(frozen=True)
class RunFilter:
    machines: Sequence[str] = ()
    commits: Sequence[str] = ()
    commit_range: tuple[str, str] | None = None
    branches: Sequence[str] = ()
    since: datetime | None = None
    until: datetime | None = None
    variants: Sequence[str] = ()
    phases: Sequence[str] = ()
    batch_sizes: Sequence[int] = ()
    latest_commit: bool = False
    latest_processes: int | None = None

    def __post_init__(self) -> None:
        if self.latest_processes is not None and self.latest_processes < 1:
            raise QueryError(f"latest processes {self.latest_processes} must be a positive integer")
        if self.since and self.until and aware(self.since) >= aware(self.until):
            raise QueryError(f"since {self.since.isoformat()} is not before until {self.until.isoformat()}")
        for text, kind in [(p, "machine") for p in self.machines] + [(p, "commit") for p in self.commits]:
            if not str(text).strip():
                raise QueryError(f"an empty {kind} filter matches everything; give a value or leave it out")


def is_empty(filters: RunFilter | None) -> bool:
    """Whether ``filters`` keeps every run (lists and tuples alike: options parse into lists)."""
    return filters is None or not any(getattr(filters, f.name) for f in dataclasses.fields(filters))


def aware(when: datetime) -> datetime:
    """Naive times are UTC, as the loader reads a run's time."""
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """A date (``2026-01-31``), an ISO time, or a span back from ``now`` (``30d``, ``12h``, ``2w``), as UTC-aware."""
    now = aware(now or datetime.now(timezone.utc))
    spans = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    match = re.fullmatch(r"\s*(\d+)\s*([mhdw])\s*", text)
    if match:
        return now - timedelta(**{spans[match.group(2)]: int(match.group(1))})
    try:
        return aware(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        raise QueryError(
            f"{text!r} is not a time: give a date (2026-01-31), an ISO time (2026-01-31T12:00:00+00:00) "
            "or a span back from now (30d, 12h, 2w, 90m)"
        ) from None


def parse_commit_range(text: str) -> tuple[str, str]:
    """``A..B`` -> (A, B): the commits after A up to and including B, as git's range reads."""
    after, dots, through = text.partition("..")
    if not dots or not after.strip() or not through.strip() or through.startswith("."):
        raise QueryError(f"commit range {text!r} must be two commits joined by '..', e.g. 1a2b3c4..5d6e7f8")
    return after.strip(), through.strip()


# --- the same selection over a loaded frame (saved files) --------------------------------


def _any_glob(column: pd.Series, patterns: Sequence[str]) -> pd.Series:
    return column.astype(str).map(lambda v: any(fnmatch.fnmatchcase(v, p) for p in patterns))


def _any_prefix(column: pd.Series, prefixes: Sequence[str]) -> pd.Series:
    return column.astype(str).map(lambda v: any(v.startswith(p) for p in prefixes))


def _commit_time(frame: pd.DataFrame, times: pd.Series, prefix: str) -> pd.Timestamp:
    """The commit time of the one commit starting with ``prefix``, as the database resolves it."""
    commits = sorted(set(frame.loc[_any_prefix(frame["commit"], [prefix]), "commit"].astype(str)))
    if not commits:
        raise QueryError(f"commit {prefix!r} of the range is in no run read")
    if len(commits) > 1:
        raise QueryError(
            f"commit {prefix!r} of the range is ambiguous ({', '.join(commits[:3])}, ...): give more digits"
        )
    when = times[frame["commit"].astype(str) == commits[0]].max()
    if pd.isna(when):
        raise QueryError(
            f"commit {commits[0]} has no commit time recorded, so a range cannot be ordered by it; "
            "name the commits one by one instead"
        )
    return when


def _newest_first(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run (source), newest first within each machine."""
    runs = frame.drop_duplicates("source")[["source", "machine", "run_time", "commit", "dirty"]]
    return runs.sort_values(["machine", "run_time"], ascending=[True, False], na_position="last")


def select_frame(frame: pd.DataFrame, filters: RunFilter) -> pd.DataFrame:
    """The rows of a frame loaded from files that the database returns for ``filters`` (see the module docstring)."""
    if frame.empty:
        return frame
    keep = pd.Series(True, index=frame.index)
    if filters.machines:
        keep &= _any_prefix(frame["machine"], filters.machines) | _any_glob(frame["machine_label"], filters.machines)
    if filters.commits:
        keep &= _any_prefix(frame["commit"], filters.commits)
    if filters.commit_range is not None:
        times = pd.to_datetime(frame["commit_time"], utc=True, errors="coerce", format="ISO8601")
        after, through = (_commit_time(frame, times, c) for c in filters.commit_range)
        keep &= (times > after) & (times <= through)
    if filters.branches:
        keep &= frame["branch"].isin(list(filters.branches))
    if filters.since is not None:
        keep &= frame["run_time"] >= pd.Timestamp(aware(filters.since))
    if filters.until is not None:
        keep &= frame["run_time"] < pd.Timestamp(aware(filters.until))
    if filters.variants:
        keep &= _any_glob(frame["label"], filters.variants)
    if filters.phases:
        keep &= frame["phase"].isin(list(filters.phases))
    if filters.batch_sizes:
        keep &= frame["batch_size"].isin([int(b) for b in filters.batch_sizes])
    kept = frame[keep.fillna(False).astype(bool)]
    if filters.latest_commit and not kept.empty:
        runs = _newest_first(kept)
        newest = runs.groupby("machine", sort=False).head(1)
        chosen = set(zip(newest["machine"], newest["commit"], newest["dirty"], strict=True))
        mask = [key in chosen for key in zip(kept["machine"], kept["commit"], kept["dirty"], strict=True)]
        kept = kept[mask]
    if filters.latest_processes is not None and not kept.empty:
        runs = _newest_first(kept).groupby("machine", sort=False).head(filters.latest_processes)
        kept = kept[kept["source"].isin(set(runs["source"]))]
    return kept
