"""The report's side of the stability checks: which loaded rows are flagged, and speedups without them.

A saved run marks each benchmark a check flagged (``stability_flags`` in its record;
``lenet/stability.py``). Runs saved without the session's phase-sum check (older runs, or
ones whose phases were run apart) get it here, per saved run, from their medians. The
report shows every row with a warning column; speedups and their intervals, and the
gate's verdicts, leave flagged runs out unless asked to keep them (``--include-unstable``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from lenet.stability import Bounds, Timed, check_phase_sums

FLAGS = "flags"  # the column of this module: a tuple of check names per row (empty: not flagged)
# The summary's column (where anything was flagged): True where every run behind the row was flagged.
ONLY_UNSTABLE = "only_unstable"
SPEEDUP_COLUMNS = ("speedup", "speedup_low", "speedup_high", "interval_basis")
UNSTABLE_NOTE = (
    "⚠ marks benchmarks a stability check flagged in some run (docs/stability.md); "
    "their flagged runs are left out of speedups and intervals"
)
INCLUDED_NOTE = "⚠ marks benchmarks a stability check flagged in some run (docs/stability.md); kept in speedups"


def _names(value: Any) -> tuple[str, ...]:
    """Saved flags as the frame keeps them (a tuple, checked when read); anything else (no record): none."""
    return value if isinstance(value, tuple) else ()


def with_flag_column(frame: pd.DataFrame, bounds: Bounds | None = None) -> pd.DataFrame:
    """``frame`` with a FLAGS column: the saved flags, plus ``phase_sum`` for runs saved without that check."""
    saved = frame["stability_flags"] if "stability_flags" in frame.columns else pd.Series(None, index=frame.index)
    flags = {index: _names(value) for index, value in saved.items()}
    for _, rows in frame.groupby("source", sort=False):
        if saved.loc[rows.index].notna().any():
            continue  # saved by a session that ran the phase-sum check itself
        cases = rows[rows["phase"].notna() & rows["variant"].notna() & rows["batch_size"].notna()]
        timed = [
            Timed(
                str(r["phase"]),
                str(r["variant"]),
                int(r["batch_size"]),
                None if pd.isna(r["optimizer"]) else str(r["optimizer"]),
                float(r["median"]),
            )
            for _, r in cases.iterrows()
        ]
        for position in check_phase_sums(timed, bounds or Bounds()):
            index = cases.index[position]
            flags[index] = (*flags[index], "phase_sum")
    return frame.assign(**{FLAGS: pd.Series(flags, dtype=object)})


def flagged(frame: pd.DataFrame) -> pd.Series:
    """Whether each row (one benchmark of one saved run) was flagged."""
    return frame[FLAGS].map(bool) if FLAGS in frame.columns else pd.Series(False, index=frame.index)


@dataclass(frozen=True)
class FlaggedRuns:
    """The flagged runs behind one summary key: which checks flagged them, how many, out of how many runs."""

    checks: tuple[str, ...]
    flagged: int
    runs: int

    @property
    def text(self) -> str:
        """``⚠ busy, phase_sum (1 of 3 runs)``."""
        return f"⚠ {', '.join(self.checks)} ({self.flagged} of {self.runs} runs)"

    @property
    def only_flagged(self) -> bool:
        """Every run behind the key was flagged: nothing said of it rests on an undisturbed run."""
        return self.flagged == self.runs


def flagged_runs(frame: pd.DataFrame, key: list[str]) -> dict[tuple, FlaggedRuns]:
    """Per summary key, for the keys with any flagged run: the checks and how many of its runs they flagged."""
    found: dict[tuple, FlaggedRuns] = {}
    if not flagged(frame).any():  # the usual case: no group to look at (10,000 of them cost seconds)
        return found
    for value, rows in frame.groupby(key, dropna=False, sort=False):
        marked = rows[flagged(rows)]
        if marked.empty:
            continue
        checks = tuple(dict.fromkeys(name for names in marked[FLAGS] for name in names))
        found[value] = FlaggedRuns(checks, marked["source"].nunique(), rows["source"].nunique())
    return found


def stable_summary(
    frame: pd.DataFrame, summarize: Any, key: list[str], include_unstable: bool = False, **options: Any
) -> tuple[pd.DataFrame, str | None]:
    """``summarize(frame)`` with a ``warning`` column; speedups from the unflagged runs only unless
    ``include_unstable``. Returns the summary and a note for the report (None when nothing was flagged)."""
    frame = with_flag_column(frame)
    summary = summarize(frame, **options)
    if summary.empty:
        return summary, None
    marked = flagged_runs(frame.assign(**{c: _grouping(frame[c]) for c in key}), key)
    if not marked:
        return summary, None
    grouped = summary.assign(**{c: _grouping(summary[c]) for c in key})
    found = [marked.get(tuple(row)) for row in grouped[key].itertuples(index=False)]
    summary["warning"] = [runs.text if runs else None for runs in found]
    summary[ONLY_UNSTABLE] = [bool(runs and runs.only_flagged) for runs in found]
    if include_unstable:
        return summary, INCLUDED_NOTE
    stable = summarize(frame[~flagged(frame)], **options)
    by_key: dict[tuple, pd.Series] = {}
    if not stable.empty:
        stable_keys = stable.assign(**{c: _grouping(stable[c]) for c in key})
        by_key = {tuple(row[key]): row for _, row in stable_keys.iterrows()}
    # Every row's speedup is taken from the stable summary: an unflagged row's may lean on a flagged reference.
    kept_rows = [by_key.get(tuple(row)) for row in grouped[key].itertuples(index=False)]
    for column in SPEEDUP_COLUMNS:  # whole columns: cell by cell, .loc cost seconds on a few dozen rows
        summary[column] = [kept[column] if kept is not None else None for kept in kept_rows]
    return summary, UNSTABLE_NOTE


def _grouping(column: pd.Series) -> pd.Series:
    """Keys that compare equal across frames: missing values as '' and numbers as text."""
    return column.astype(object).where(column.notna(), "").map(str)
