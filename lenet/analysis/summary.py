"""Loaded rows -> one summary row per machine, device, phase, batch size, optimizer and variant.

Runs on different machines are never pooled: every statistic is computed within
one machine fingerprint. Within a machine, the tables describe one commit (by
default each machine's latest); several saved runs of that commit are separate
processes, and their medians are the samples of every interval.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lenet.analysis.formatting import is_missing
from lenet.analysis.stats import bootstrap_ratio_of_medians
from lenet.variants import PHASES, SelectionError, Variant, all_variants, parse_variant

VARIANT_ORDER = {variant.id: index for index, variant in enumerate(all_variants())}
KEY = ["machine", "device", "phase", "batch_size", "optimizer", "label"]

BASIS_TEXT = {
    "runs": "between saved runs, each a separate process (the honest kind)",
    "rounds": "from the rounds of one process (optimistic: process-to-process noise is not in it)",
    "none": "none (only summary statistics were saved)",
}


class FilterError(ValueError):
    """A filter matched nothing; the message names the filter and the values that exist."""


def commit_key(frame: pd.DataFrame) -> pd.Series:
    return frame["commit"].astype(str) + np.where(frame["dirty"].fillna(False).astype(bool), "+dirty", "")


def latest_commit(frame: pd.DataFrame) -> pd.DataFrame:
    """Each machine's rows of its most recent commit (by the newest run of that commit)."""
    if frame.empty:
        return frame
    keyed = frame.assign(_commit=commit_key(frame))
    newest = keyed.groupby(["machine", "_commit"], dropna=False)["run_time"].max().reset_index()
    newest = newest.sort_values("run_time", na_position="first").groupby("machine", dropna=False).tail(1)
    chosen = set(zip(newest["machine"], newest["_commit"], strict=True))
    mask = [(m, c) in chosen for m, c in zip(keyed["machine"], keyed["_commit"], strict=True)]
    return frame[mask]


def latest_run(frame: pd.DataFrame) -> pd.DataFrame:
    """Each machine's newest saved run only."""
    if frame.empty:
        return frame
    newest = frame.sort_values("run_time", na_position="first").groupby("machine", dropna=False)["source"].last()
    return frame[frame["source"].isin(set(newest))]


@dataclass(frozen=True)
class Filters:
    variants: Sequence[str] = ()  # globs over the label (variant id, or benchmark name)
    phases: Sequence[str] = ()
    batch_sizes: Sequence[int] = ()
    machines: Sequence[str] = ()  # fingerprint prefixes or globs over the machine label

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows matching every given filter; FilterError when a filter leaves nothing."""
        checks = [
            ("variant", self.variants, lambda f: _glob_mask(f["label"], self.variants), "label"),
            ("phase", self.phases, lambda f: f["phase"].isin(list(self.phases)), "phase"),
            ("batch size", self.batch_sizes, lambda f: f["batch_size"].isin(list(self.batch_sizes)), "batch_size"),
            ("machine", self.machines, lambda f: _machine_mask(f, self.machines), "machine_label"),
        ]
        for name, values, mask_of, column in checks:
            if not values:
                continue
            kept = frame[mask_of(frame).fillna(False).astype(bool)]
            if kept.empty:
                known = sorted({str(v) for v in frame[column].dropna().unique()})[:20]
                raise FilterError(
                    f"{name} filter {', '.join(map(str, values))!s} matches nothing; "
                    f"the runs have: {', '.join(known) or 'no values'}"
                )
            frame = kept
        return frame


def _glob_mask(column: pd.Series, patterns: Sequence[str]) -> pd.Series:
    return column.astype(str).map(lambda v: any(fnmatch.fnmatchcase(v, p) for p in patterns))


def _machine_mask(frame: pd.DataFrame, patterns: Sequence[str]) -> pd.Series:
    by_print = frame["machine"].astype(str).map(lambda v: any(v.startswith(p) for p in patterns))
    return by_print | _glob_mask(frame["machine_label"], patterns)


def reference_for(device: str | None, reference: str | None) -> str | None:
    """The reference variant id on ``device``: the given one moved to that device, else eager fp32 contiguous."""
    if device is None or (isinstance(device, float) and np.isnan(device)):
        return None
    if reference is None:
        return Variant(device=str(device)).id
    base = parse_variant(reference)
    moved = Variant(str(device), base.memory_format, base.precision, base.compile)
    try:
        return parse_variant(moved.id).id
    except SelectionError:
        return Variant(device=str(device)).id


def _group_samples(group: list[dict[str, Any]]) -> dict[str, object]:
    """One KEY's figures from its rows (plain records: per-group pandas calls cost seconds on a few dozen keys)."""
    by_run = sorted(group, key=lambda r: (not is_missing(r.get("run_time")), str(r.get("run_time") or "")))
    run_medians = [float(r["median"]) for r in by_run]
    latest = by_run[-1]
    run_times = [r["run_time"] for r in by_run if not is_missing(r.get("run_time"))]
    return {
        "run_medians": run_medians,
        "rounds_data": latest["data"] if isinstance(latest.get("data"), tuple) else None,
        "median": float(np.median(run_medians)),
        "q1": float(np.median([_float(r.get("q1")) for r in by_run])),
        "q3": float(np.median([_float(r.get("q3")) for r in by_run])),
        "iqr": float(np.median([_float(r.get("iqr")) for r in by_run])),
        "runs": len(run_medians),
        "rounds": int(sum(r["rounds"] for r in by_run if not is_missing(r.get("rounds")))),
        "run_time": max(run_times) if run_times else None,
        "commit": latest["commit"],
        "instructions": _median_or_none(by_run, "instructions"),
    }


def _float(value: object) -> float:
    """A figure as a float, NaN where it is missing (as pandas' ``astype(float)`` gave)."""
    return math.nan if is_missing(value) else float(value)  # type: ignore[arg-type]


def _median_or_none(rows: list[dict[str, Any]], column: str) -> float | None:
    """The median of a metric over runs, or None where no run measured it (a column open to new metrics)."""
    values = [float(r[column]) for r in rows if isinstance(r.get(column), int | float) and not is_missing(r[column])]
    return float(np.median(values)) if values else None


def _samples_for(a: dict[str, object], b: dict[str, object]) -> tuple[str, list[float], list[float]]:
    """The common kind of sample two summary rows both have: runs, else rounds, else none."""
    if a["runs"] >= 2 and b["runs"] >= 2:  # type: ignore[operator]
        return "runs", list(a["run_medians"]), list(b["run_medians"])  # type: ignore[call-overload]
    if a["rounds_data"] is not None and b["rounds_data"] is not None:
        return "rounds", list(a["rounds_data"]), list(b["rounds_data"])  # type: ignore[call-overload]
    return "none", [float(a["median"])], [float(b["median"])]  # type: ignore[arg-type]


def summarize(frame: pd.DataFrame, reference: str | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """One row per KEY with median, quartiles, throughput and speedup vs the reference variant.

    ``instructions`` (when runs counted them) is the median count per call over runs, and
    ``instructions_vs_reference`` its ratio to the reference variant's (below 1: fewer).
    ``speedup`` = reference median / this median (above 1: faster than the reference),
    with a percentile-bootstrap interval over the samples both sides have
    (``interval_basis``: runs, rounds or none; see BASIS_TEXT).
    """
    if frame.empty:
        return pd.DataFrame()
    work = frame.copy()
    # Missing keys become "" while grouping: NaN keys are not equal to each other, so a
    # reference looked up by key would never be found for runs without an optimizer.
    for column in ("device", "phase", "optimizer"):
        work[column] = work[column].astype(object).where(work[column].notna(), "")
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for record in work.to_dict("records"):
        groups.setdefault(tuple(None if is_missing(record[c]) else record[c] for c in KEY), []).append(record)
    cells = {key: _group_samples(group) for key, group in groups.items()}
    meta = {key: group[-1] for key, group in groups.items()}
    rows = [_summary_row(key, cells, meta[key], reference, confidence) for key in cells]
    return _in_reading_order(pd.DataFrame(rows))


def _summary_row(
    key: tuple, cells: dict[tuple, dict[str, object]], first: dict[str, Any], reference: str | None, confidence: float
) -> dict[str, object]:
    """The summary row of one KEY: its samples' figures, and its speedup against the reference variant's row."""
    cell = cells[key]
    machine, device, phase, batch, optimizer, _label = key
    ref_label = reference_for(device or None, reference)
    ref_key = (machine, device, phase, batch, optimizer, ref_label)
    row = {
        name: (None if isinstance(value, str) and value == "" else value) for name, value in zip(KEY, key, strict=True)
    }
    batch_value = None if pd.isna(batch) else int(batch)
    row.update(
        batch_size=batch_value,
        machine_label=first["machine_label"],
        torch_version=first["torch_version"],
        group=first["group"],
        name=first["name"],
        params=first["params"],
        variant=first["variant"],
        commit=cell["commit"],
        run_time=cell["run_time"],
        runs=cell["runs"],
        rounds=cell["rounds"],
        median=cell["median"],
        q1=cell["q1"],
        q3=cell["q3"],
        iqr=cell["iqr"],
        samples_per_s=(batch_value / cell["median"]) if batch_value else None,  # type: ignore[operator]
        ops=1.0 / cell["median"] if cell["median"] else None,  # type: ignore[operator]
        reference=ref_label if ref_key in cells else None,
        speedup=None,
        speedup_low=None,
        speedup_high=None,
        interval_basis=None,
        instructions=cell["instructions"],
        instructions_vs_reference=None,
    )
    if ref_key in cells:
        row.update(_against_reference(cells[ref_key], cell, confidence))
    return row


def _against_reference(ref: dict[str, object], cell: dict[str, object], confidence: float) -> dict[str, object]:
    """The speedup over the reference's samples (with its interval and basis) and the instruction-count ratio."""
    found: dict[str, object] = {}
    if cell["instructions"] and ref["instructions"]:
        found["instructions_vs_reference"] = cell["instructions"] / ref["instructions"]  # type: ignore[operator]
    basis, ref_samples, own_samples = _samples_for(ref, cell)
    interval = bootstrap_ratio_of_medians(ref_samples, own_samples, confidence=confidence)
    if basis == "none":
        interval = type(interval)(ref["median"] / cell["median"], None, None)  # type: ignore[operator, arg-type]
    return found | {
        "speedup": interval.point,
        "speedup_low": interval.low,
        "speedup_high": interval.high,
        "interval_basis": basis,
    }


def _in_reading_order(summary: pd.DataFrame) -> pd.DataFrame:
    summary["batch_size"] = pd.to_numeric(summary["batch_size"], errors="coerce").astype("Int64")
    # Rows in the order a reader expects: phases as they run, the reference first, then
    # variants in their canonical order (contiguous before channels_last, eager before compiled).
    summary["_phase"] = summary["phase"].map({p: i for i, p in enumerate(PHASES)}).fillna(len(PHASES))
    summary["_not_ref"] = summary["label"] != summary["reference"]
    summary["_variant"] = summary["label"].map(lambda v: VARIANT_ORDER.get(v, len(VARIANT_ORDER)))
    summary = summary.sort_values(
        ["machine_label", "machine", "device", "_phase", "batch_size", "optimizer", "_not_ref", "_variant", "label"],
        na_position="first",
        key=lambda s: s.astype(str) if s.dtype == object else s,
    )
    return summary.drop(columns=["_phase", "_not_ref", "_variant"]).reset_index(drop=True)
