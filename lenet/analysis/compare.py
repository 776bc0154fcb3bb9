"""Baseline vs candidate: one verdict per benchmark, built not to cry wolf on a noisy machine.

The unit of evidence is a process: each saved run contributes its median for a
benchmark as one sample (rounds inside one process are not independent; see
``stats``). For every benchmark present on both sides:

* ``ratio`` = median of the candidate's process medians / median of the baseline's
  (above 1: slower), with a 95% percentile-bootstrap interval over process medians;
* ``p`` from a two-sided Mann-Whitney U test over process medians, adjusted
  (``p_adjusted``) for testing all benchmarks at once with Benjamini-Hochberg
  (``scipy.stats.false_discovery_control``): among the benchmarks called changed,
  the expected share of unchanged ones stays below ``alpha``;
* ``threshold``, the smallest change a verdict may call real, from data: the
  NULL_QUANTILE (95th) percentile of |ratio - 1| that identical code shows at these
  sample sizes, drawn from the noise calibration's (else the baseline's) process
  medians (at least MIN_NOISE_PROCESSES of them; with fewer, 5%), and never below
  ``min_effect``. A fixed ``threshold`` replaces it;
* ``equivalence``: how close to 1 the interval must be to call a benchmark unchanged:
  the same threshold, so "unchanged" means "no change as large as the threshold". The
  test is two one-sided tests at ``alpha`` (TOST): the (1 - 2 alpha) bootstrap interval,
  ``eq_low`` to ``eq_high``, 90% by default, lies within 1 +- threshold;
* ``detectable``: the smallest change this data could have detected (80% power at
  the strictest level the adjustment uses, alpha / benchmarks), never below the threshold.

These choices come from a study on real runs of this suite on a shared 2-core VM
(``studies/gate_study.py``, results/studies/gate_study*.md): with 12-24 processes a
side they called 0.0-0.6% of unchanged benchmarks regressed; a 99th-percentile
threshold or Holm's correction instead lost much of the power to see 10-20% slowdowns
without lowering that rate.

Verdicts:

=============  ===================================================================
regressed      p_adjusted < alpha, the interval lies above 1, ratio > 1 + threshold
improved       p_adjusted < alpha, the interval lies below 1, ratio < 1 - threshold
unchanged      the (1 - 2 alpha) interval lies within 1 +- threshold
inconclusive   anything else: too noisy to tell at this sample size (and always
               with fewer than MIN_PROCESSES processes on a side)
=============  ===================================================================

Instruction counts (``pytest bench --instructions``), where both sides have them, get a
verdict of their own (:func:`count_columns`): the threshold comes from how far counts
stray between processes, so it needs MIN_COUNT_PROCESSES counted processes a side, or
a noise calibration that counted. Each benchmark's ``decision`` then weighs both
(:func:`decide`) and ``decided_by`` names the evidence: a regression by either is a
regression; counts that did not move decide "unchanged" when time cannot tell.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import false_discovery_control

from lenet.analysis.flagged import FLAGS, with_flag_column
from lenet.analysis.stats import (
    bootstrap_ratio_of_medians,
    mann_whitney_p,
    minimal_detectable_change,
    null_change_quantile,
    robust_cv,
)
from lenet.fingerprint import split_differences

MIN_NOISE_PROCESSES = 5  # fewer A/A samples cannot say how far identical code strays
MIN_PROCESSES = 3  # per side, for any verdict but inconclusive
NULL_QUANTILE = 0.95  # the threshold: the change identical code exceeds 5% of the time
# Instruction counts: the smallest change called real, and how far beyond the spread between processes a change
# must go. Processes of one tree count the same to the instruction, but two trees of the same code differ by
# tenths of a percent (their environment); the floor stands above that (results/studies/count_verdict.md).
DEFAULT_COUNT_THRESHOLD = 0.005
COUNT_SPREAD_MARGIN = 10.0
MIN_COUNT_PROCESSES = 2  # per side: one process a side says nothing about how far counts stray between processes
DEFAULT_EQUIVALENCE = 0.05  # the threshold when the noise is unknown (too few processes)
VERDICT_ORDER = ("regressed", "improved", "inconclusive", "unchanged")


class CompareError(ValueError):
    """The comparison cannot be made (bad or incompatible input); the message says why."""


@dataclass(frozen=True)
class Side:
    """One side of a comparison: each benchmark's process medians, and the machine they ran on."""

    samples: dict[str, list[float]]
    fingerprint: str
    fingerprint_fields: dict[str, Any]
    pytest_benchmark_versions: tuple[str, ...]
    runs: int
    # Instruction counts per call (one per counted process), for the benchmarks whose runs counted them
    # (``pytest bench --instructions``).
    instructions: dict[str, list[float]] = field(default_factory=dict)
    # Per benchmark, per sample (in the order of ``samples``): None, or the process's run and the stability
    # checks that flagged it there (``lenet.analysis.flagged``); flagged processes decide no verdict.
    unstable: dict[str, list[str | None]] = field(default_factory=dict)


def side_from_frame(frame: pd.DataFrame, what: str) -> Side:
    """Process samples per benchmark name from loaded rows; CompareError when they mix machines."""
    if frame.empty:
        raise CompareError(f"the {what} has no benchmarks")
    machines = sorted(frame["machine"].astype(str).unique())
    if len(machines) > 1:
        labels = sorted(frame["machine_label"].astype(str).unique())
        raise CompareError(
            f"the {what} mixes runs from {len(machines)} machines ({', '.join(machines)}: {'; '.join(labels)}); "
            f"compare runs of one machine at a time"
        )
    samples: dict[str, list[float]] = {}
    instructions: dict[str, list[float]] = {}
    unstable: dict[str, list[str | None]] = {}
    for name, rows in with_flag_column(frame).sort_values("run_time").groupby("name", sort=True):
        samples[str(name)] = rows["median"].astype(float).tolist()
        unstable[str(name)] = unstable_marks(rows)
        if "instructions" in rows.columns and rows["instructions"].notna().any():
            counted = rows[rows["instructions"].notna()]
            instructions[str(name)] = counted["instructions"].astype(float).tolist()
    fields = frame["fingerprint_fields"].dropna() if "fingerprint_fields" in frame.columns else pd.Series()
    parsed = json.loads(fields.iloc[0]) if len(fields) and isinstance(fields.iloc[0], str) else {}
    versions = tuple(sorted({str(v) for v in frame["pytest_benchmark_version"].dropna()}))
    runs = int(frame["source"].nunique())
    return Side(samples, machines[0], parsed, versions, runs, instructions, unstable)


def machine_differences(baseline: Side, candidate: Side) -> dict[str, tuple[Any, Any]]:
    """What differs between the two machines: machine fields, and pytest-benchmark's major version.

    The software under test (Python, torch, CUDA, cuDNN, the allocator) is what an A/B may change:
    see :func:`software_differences`. Two fingerprints that differ in no field known to both
    sides are still different machines.
    """
    differences: dict[str, tuple[Any, Any]] = {}
    if baseline.fingerprint != candidate.fingerprint:
        differences, software = split_differences(baseline.fingerprint_fields, candidate.fingerprint_fields)
        if not differences and not software:
            differences["fingerprint"] = (baseline.fingerprint, candidate.fingerprint)
    majors = (
        {v.split(".")[0] for v in baseline.pytest_benchmark_versions},
        {v.split(".")[0] for v in candidate.pytest_benchmark_versions},
    )
    if majors[0] != majors[1]:
        differences["pytest_benchmark_version"] = (
            ", ".join(baseline.pytest_benchmark_versions),
            ", ".join(candidate.pytest_benchmark_versions),
        )
    return differences


def software_differences(baseline: Side, candidate: Side) -> dict[str, tuple[Any, Any]]:
    """The software under test that differs between the sides (``torch_version``: ('2.12.1', '2.13.0'), ...)."""
    if baseline.fingerprint == candidate.fingerprint:
        return {}
    return split_differences(baseline.fingerprint_fields, candidate.fingerprint_fields)[1]


@dataclass(frozen=True)
class Comparison:
    table: pd.DataFrame  # one row per benchmark on both sides
    only_baseline: list[str]
    only_candidate: list[str]
    differences: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    informational: bool = False
    alpha: float = 0.05
    software: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # what the A/B changed (torch, CUDA, ...)
    # False when ab.py's counts decided every benchmark and no time process ran: the only times are the counted
    # processes', taken under valgrind side by side, which decide nothing (the summary then has no time columns).
    time_processes_ran: bool = True

    def count(self, verdict: str) -> int:
        return int((self.table["verdict"] == verdict).sum()) if not self.table.empty else 0

    def count_verdicts(self, verdict: str) -> int:
        """How many benchmarks got this instruction-count verdict."""
        if "count_verdict" not in self.table.columns:
            return 0
        return int((self.table["count_verdict"] == verdict).sum())

    def decisions(self, verdict: str) -> int:
        """How many benchmarks' decision (time and counts weighed together) is this verdict."""
        return int((self.table["decision"] == verdict).sum()) if not self.table.empty else 0

    @property
    def has_counts(self) -> bool:
        return "count_verdict" in self.table.columns and bool(self.table["count_verdict"].notna().any())

    @property
    def regressed(self) -> bool:
        """A regression is confirmed by time, or by instruction counts, on any benchmark."""
        return self.decisions("regressed") > 0


def compare(
    baseline: Side,
    candidate: Side,
    alpha: float = 0.05,
    threshold: float | None = None,
    min_effect: float = 0.02,
    noise: Mapping[str, Sequence[float]] | None = None,
    confidence: float = 0.95,
    informational: bool = False,
    count_threshold: float = DEFAULT_COUNT_THRESHOLD,
    include_unstable: bool = False,
    count_noise: Mapping[str, Sequence[float]] | None = None,
) -> Comparison:
    """Verdicts for every benchmark both sides measured (see the module docstring).

    Only times count as samples: a NaN, infinite, zero or negative median (a broken
    measurement) is left out, and a benchmark left with none on a side is one-sided.
    Processes a stability check flagged are left out of a benchmark's verdict and named in
    ``left_out`` (unless ``include_unstable``); a side left with none is inconclusive.
    """
    base_samples, cand_samples = usable_samples(baseline.samples), usable_samples(candidate.samples)
    rows = []
    for name in sorted(set(base_samples) & set(cand_samples)):
        (base, cand), left_out = stable_pair(baseline, candidate, name, include_unstable)
        noise_samples = times(noise[name]) if noise and name in noise else base
        noise_samples = noise_samples or base
        practical = practical_change(threshold, min_effect, noise_samples, base, cand)
        rows.append(
            {
                "benchmark": name,
                **time_columns(base, cand, alpha, confidence),
                "threshold": practical,
                "equivalence": practical,
                "noise_cv": robust_cv(noise_samples),
                **count_columns(baseline, candidate, name, count_threshold, (count_noise or {}).get(name)),
                **left_out,
            }
        )
    return Comparison(
        table=judged(pd.DataFrame(rows), alpha),
        only_baseline=sorted(set(base_samples) - set(cand_samples)),
        only_candidate=sorted(set(cand_samples) - set(base_samples)),
        informational=informational,
        alpha=alpha,
    )


def time_columns(base: list[float], cand: list[float], alpha: float, confidence: float) -> dict[str, Any]:
    """One benchmark's time columns: sizes, medians, the ratio with its interval and equivalence bounds, and p."""
    interval = bootstrap_ratio_of_medians(cand, base, confidence=confidence)
    equivalence = bootstrap_ratio_of_medians(cand, base, confidence=1.0 - 2.0 * alpha)
    return {
        "n_baseline": len(base),
        "n_candidate": len(cand),
        "baseline_median": float(np.median(base)),
        "candidate_median": float(np.median(cand)),
        "ratio": interval.point,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "eq_low": equivalence.low,
        "eq_high": equivalence.high,
        "p": mann_whitney_p(cand, base),
    }


def practical_change(
    threshold: float | None, min_effect: float, noise_samples: list[float], base: list[float], cand: list[float]
) -> float:
    """The smallest change that matters: the given threshold, else what noise alone reaches (at least min_effect)."""
    if threshold is not None:
        return threshold
    if len(noise_samples) >= MIN_NOISE_PROCESSES:
        return max(min_effect, null_change_quantile(noise_samples, len(base), len(cand), quantile=NULL_QUANTILE))
    return max(min_effect, DEFAULT_EQUIVALENCE)


def judged(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """The table with adjusted p-values, detectable changes, verdicts and decisions, in the order a reader wants."""
    if table.empty:
        return table
    table["p_adjusted"] = false_discovery_control(table["p"].to_numpy(), method="bh")
    per_test_alpha = alpha / len(table)
    table["detectable"] = [
        max(t, minimal_detectable_change(cv, nb, nc, per_test_alpha)) if np.isfinite(cv) else float("nan")
        for t, cv, nb, nc in zip(
            table["threshold"], table["noise_cv"], table["n_baseline"], table["n_candidate"], strict=True
        )
    ]
    table["verdict"] = [verdict(row, alpha) for _, row in table.iterrows()]
    decided = [decide(time, counts) for time, counts in zip(table["verdict"], table["count_verdict"], strict=True)]
    table["decision"] = [d for d, _ in decided]
    table["decided_by"] = [by for _, by in decided]
    order = {v: i for i, v in enumerate(VERDICT_ORDER)}
    table = table.sort_values(["decision", "ratio"], key=lambda s: s.map(order) if s.name == "decision" else -s)
    return table.reset_index(drop=True)


def times(samples: Sequence[float]) -> list[float]:
    """The samples that are times: finite and positive."""
    return [float(s) for s in samples if np.isfinite(s) and s > 0]


def usable_samples(samples: Mapping[str, Sequence[float]]) -> dict[str, list[float]]:
    """Each benchmark's times (see :func:`times`); benchmarks with none are left out."""
    kept = {name: times(values) for name, values in samples.items()}
    return {name: values for name, values in kept.items() if values}


def unstable_marks(rows: pd.DataFrame) -> list[str | None]:
    """Per row (one process): None, or ``run (check, ...)`` when a stability check flagged it."""
    return [
        f"{run} ({', '.join(flags)})" if flags else None for run, flags in zip(rows["run"], rows[FLAGS], strict=True)
    ]


def stable_pair(
    baseline: Side, candidate: Side, name: str, include_unstable: bool
) -> tuple[tuple[list[float], list[float]], dict[str, Any]]:
    """Both sides' times of ``name`` less the flagged processes, and the ``left_out`` and ``only_unstable`` columns.

    A side whose every process was flagged keeps them all for the numbers, and its verdict is inconclusive.
    """
    kept, names, only_unstable = [], [], False
    for label, side in (("baseline", baseline), ("candidate", candidate)):
        samples = side.samples[name]
        marks = side.unstable.get(name) or [None] * len(samples)
        if include_unstable:
            kept.append(times(samples))
            continue
        stable = times([sample for sample, mark in zip(samples, marks, strict=True) if mark is None])
        names += [f"{label} {mark}" for mark in marks if mark]
        only_unstable |= not stable
        kept.append(stable or times(samples))
    return (kept[0], kept[1]), {"left_out": "; ".join(names) or None, "only_unstable": only_unstable}


def count_columns(
    baseline: Side, candidate: Side, name: str, minimum: float, calibration: Sequence[float] | None = None
) -> dict[str, Any]:
    """Instruction-count verdict columns for one benchmark (None where a side has no counts).

    Each process gives one count per call (the median of its callgrind repeats). A change
    is real when it exceeds ``minimum`` and COUNT_SPREAD_MARGIN times the spread between
    processes, (max - min) / median, the larger of the two sides' and of the calibration's
    counts (``calibration``, from a baseline's noise file). Repeats inside one process
    share its memory layout and warm-up, so their spread is not what a new process shows.
    "unchanged" needs the change within ``minimum``: one past it but within a wider spread is
    "inconclusive" (such a change was once called unchanged: results/studies/count_verdict.md).
    Without MIN_COUNT_PROCESSES counted processes on both sides, or a calibration that
    counted as many, the verdict is "inconclusive".
    """
    base, cand = times(baseline.instructions.get(name, ())), times(candidate.instructions.get(name, ()))
    if not base or not cand:  # no counts on a side, or nothing counted
        return {"count_ratio": None, "count_threshold": None, "count_verdict": None}
    calibrated = times(calibration or ())
    spreads = [relative_range(v) for v in (base, cand, calibrated) if len(v) >= MIN_COUNT_PROCESSES]
    base_median, cand_median = float(np.median(base)), float(np.median(cand))
    ratio = cand_median / base_median
    enough = min(len(base), len(cand)) >= MIN_COUNT_PROCESSES or len(calibrated) >= MIN_COUNT_PROCESSES
    limit = max(minimum, COUNT_SPREAD_MARGIN * max(spreads)) if enough else None
    if limit is None:
        verdict = "inconclusive"
    elif abs(ratio - 1) > limit:
        verdict = "regressed" if ratio > 1 else "improved"
    else:  # moved past the floor but not past how far this benchmark's processes stray: counts cannot tell
        verdict = "unchanged" if abs(ratio - 1) <= minimum else "inconclusive"
    return {
        "baseline_instructions": base_median,
        "candidate_instructions": cand_median,
        "count_processes": f"{len(base)} / {len(cand)}",
        "count_ratio": ratio,
        "count_threshold": limit,
        "count_verdict": verdict,
    }


def relative_range(values: Sequence[float]) -> float:
    """(max - min) / median: 0.0002 means the values stray 0.02% around their middle."""
    return (max(values) - min(values)) / float(np.median(values))


EVIDENCE = {"time": "time", "count": "instructions"}


def decide(time: str, counts: str | None) -> tuple[str, str]:
    """A benchmark's decision from its time verdict and its count verdict (None: not counted), and what decided it.

    A regression by either is a regression, and otherwise an improvement by either an
    improvement: the evidence that saw it is named. Counts that did not move decide
    "unchanged" when time cannot tell: the CPU work is the same.
    """
    said = {"time": time, "count": counts}
    for outcome in ("regressed", "improved"):
        saw = [EVIDENCE[kind] for kind, verdict in said.items() if verdict == outcome]
        if saw:
            return outcome, " and ".join(saw)
    if counts == "unchanged":
        return "unchanged", "instructions and time" if time == "unchanged" else "instructions"
    if time == "unchanged":
        return "unchanged", "time"
    return "inconclusive", "neither"


def verdict(row: Mapping[str, Any], alpha: float) -> str:
    if row.get("only_unstable"):
        return "inconclusive"  # every process of a side was flagged: nothing trustworthy to judge by
    if min(row["n_baseline"], row["n_candidate"]) < MIN_PROCESSES:
        return "inconclusive"  # an interval from one or two processes says nothing about the noise
    significant = row["p_adjusted"] < alpha
    t = row["threshold"]
    if significant and row["ci_low"] > 1.0 and row["ratio"] > 1.0 + t:
        return "regressed"
    if significant and row["ci_high"] < 1.0 and row["ratio"] < 1.0 - t:
        return "improved"
    band = row["equivalence"]
    if 1.0 - band < row["eq_low"] and row["eq_high"] < 1.0 + band:
        return "unchanged"
    return "inconclusive"


# --- the gate: verdicts -> an exit status ---------------------------------------------------

EXIT_OK = 0  # no confirmed regression
EXIT_REGRESSION = 1  # a regression is confirmed
EXIT_BAD_INPUT = 2  # the comparison could not be made: missing/empty input, no common benchmarks, other machines
EXIT_INCONCLUSIVE = 5  # with fail_on_inconclusive: some benchmark could not be decided (lenet/exits.py)
EXIT_IMPROVEMENT = 6  # with fail_on_improvement: some benchmark got faster than its baseline


@dataclass(frozen=True)
class GateOptions:
    alpha: float = 0.05
    threshold: float | None = None
    min_effect: float = 0.02
    allow_mismatch: bool = False
    fail_on_inconclusive: bool = False
    fail_on_improvement: bool = False
    count_threshold: float = DEFAULT_COUNT_THRESHOLD
    include_unstable: bool = False


def gate(
    baseline: Side,
    candidate: Side,
    options: GateOptions,
    noise: Mapping[str, Sequence[float]] | None = None,
    count_noise: Mapping[str, Sequence[float]] | None = None,
) -> tuple[Comparison, int]:
    """Compare and decide the exit status; CompareError for a refused or impossible comparison."""
    differences = machine_differences(baseline, candidate)
    if differences and not options.allow_mismatch:
        listed = "; ".join(f"{name}: {a!r} (baseline) vs {b!r} (candidate)" for name, (a, b) in differences.items())
        raise CompareError(
            f"the baseline and the candidate ran on different machines or tools: {listed}. "
            "Compare runs of one machine, or pass --allow-mismatch for an informational comparison"
        )
    base, cand = usable_samples(baseline.samples), usable_samples(candidate.samples)
    if not set(base) & set(cand):
        raise CompareError(
            f"no benchmark is on both sides: the baseline has {_few(base)}, the candidate has {_few(cand)}"
        )
    comparison = compare(
        baseline,
        candidate,
        alpha=options.alpha,
        threshold=options.threshold,
        min_effect=options.min_effect,
        noise=noise,
        informational=bool(differences),
        count_threshold=options.count_threshold,
        include_unstable=options.include_unstable,
        count_noise=count_noise,
    )
    comparison = replace(comparison, differences=differences, software=software_differences(baseline, candidate))
    if comparison.informational:
        return comparison, EXIT_OK
    if comparison.regressed:
        return comparison, EXIT_REGRESSION
    if options.fail_on_inconclusive and comparison.decisions("inconclusive"):
        return comparison, EXIT_INCONCLUSIVE
    if options.fail_on_improvement and comparison.decisions("improved"):
        return comparison, EXIT_IMPROVEMENT
    return comparison, EXIT_OK


def _few(names: Mapping[str, object]) -> str:
    listed = sorted(names)
    more = f" and {len(listed) - 3} more" if len(listed) > 3 else ""
    return ", ".join(listed[:3]) + more if listed else "none"
