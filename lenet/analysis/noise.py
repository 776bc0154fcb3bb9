"""A baseline's noise calibration (``noise.json``): how far identical code strays on its machine.

``scripts/baseline.py`` writes it beside a baseline's runs (:func:`noise_document`); the
gate reads it back (:func:`read_noise`) and derives each benchmark's threshold from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lenet.analysis.compare import MIN_COUNT_PROCESSES, NULL_QUANTILE, CompareError, Side, relative_range, times
from lenet.analysis.stats import null_change_quantile, robust_cv

NOISE_FILE = "noise.json"
NOISE_SCHEMA = "lenet-bench-noise/1"


@dataclass(frozen=True)
class Calibration:
    """A baseline's noise calibration: each benchmark's A/A process medians, its counted processes' counts, and
    the fields of the machine fingerprint they were measured on (empty when unknown)."""

    times: dict[str, list[float]] | None = None
    counts: dict[str, list[float]] | None = None
    fingerprint_fields: dict[str, Any] = field(default_factory=dict)


def read_calibration(baseline_dir: Path) -> Calibration:
    """What ``noise.json`` beside a baseline's runs says (empty when there is none), read once."""
    path, data = _document(baseline_dir)
    if data is None:
        return Calibration()
    counts = _entries(path, data, "instructions")
    return Calibration(_entries(path, data, "medians"), counts or None, _fingerprint_fields(path, data))


def read_count_calibration(baseline_dir: Path) -> Calibration:
    """A baseline folder's count calibration, for a verdict from one counted process a side; CompareError when the
    folder has no ``noise.json`` with MIN_COUNT_PROCESSES usable counts (finite, positive: what the count verdict
    keeps) of a benchmark (``baseline.py calibrate``)."""
    calibration = read_calibration(baseline_dir)
    if not any(len(times(counts)) >= MIN_COUNT_PROCESSES for counts in (calibration.counts or {}).values()):
        raise CompareError(
            f"{baseline_dir}: no {NOISE_FILE} with {MIN_COUNT_PROCESSES} or more counted processes of a benchmark; "
            f"make one with scripts/baseline.py calibrate --count-processes {MIN_COUNT_PROCESSES}"
        )
    return calibration


def read_noise(baseline_dir: Path) -> dict[str, list[float]] | None:
    """The per-benchmark A/A process medians stored with a baseline, or None when it has none."""
    return read_calibration(baseline_dir).times


def read_count_noise(baseline_dir: Path) -> dict[str, list[float]] | None:
    """The per-benchmark A/A instruction counts (one per counted process) stored with a baseline, or None."""
    return read_calibration(baseline_dir).counts


def _entries(path: Path, data: dict[str, Any], key: str) -> dict[str, list[float]]:
    """Each benchmark's ``key`` list (every benchmark has medians; only counted ones have instructions)."""
    try:
        entries = data["benchmarks"].items()
        return {name: list(map(float, entry[key])) for name, entry in entries if key == "medians" or key in entry}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CompareError(f"{path}: not a noise file written by scripts/baseline.py ({error})") from None


def _fingerprint_fields(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    fields = data.get("fingerprint_fields", {})  # unknown in a noise file that predates it
    if not isinstance(fields, dict):
        raise CompareError(f"{path}: not a noise file written by scripts/baseline.py (fingerprint_fields)")
    return fields


def _document(baseline_dir: Path) -> tuple[Path, dict[str, Any] | None]:
    """``noise.json`` of a baseline folder, parsed (None when there is none); CompareError when it is no object."""
    path = baseline_dir / NOISE_FILE
    if not baseline_dir.is_dir() or not path.is_file():
        return path, None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CompareError(f"{path}: not a noise file written by scripts/baseline.py ({error})") from None
    if not isinstance(data, dict):
        raise CompareError(f"{path}: not a noise file written by scripts/baseline.py (not a JSON object)")
    return path, data


def noise_document(side: Side, fingerprint_label: str) -> dict[str, Any]:
    """What ``noise.json`` holds: each benchmark's process medians, their robust CV, the
    change identical code reaches 5% of the time when 5 processes meet 5, and the instruction
    counts of the processes that counted (with how far they stray, (max - min) / median)."""
    benchmarks: dict[str, dict[str, Any]] = {}
    for name, medians in sorted(side.samples.items()):
        benchmarks[name] = {
            "processes": len(medians),
            "medians": medians,
            "robust_cv": robust_cv(medians),
            "aa_change_95pct_5v5": null_change_quantile(medians, 5, 5, quantile=NULL_QUANTILE),
        }
        counts = side.instructions.get(name)
        if counts:
            benchmarks[name]["instructions"] = counts
            benchmarks[name]["instructions_range"] = relative_range(counts)
    return {
        "schema": NOISE_SCHEMA,
        "fingerprint": side.fingerprint,
        "machine": fingerprint_label,
        "fingerprint_fields": side.fingerprint_fields,
        "runs": side.runs,
        "benchmarks": benchmarks,
    }
