"""A baseline's noise calibration (``noise.json``): how far identical code strays on its machine.

``scripts/baseline.py`` writes it beside a baseline's runs (:func:`noise_document`); the
gate reads it back (:func:`read_noise`) and derives each benchmark's threshold from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet.analysis.compare import NULL_QUANTILE, CompareError, Side, relative_range
from lenet.analysis.stats import null_change_quantile, robust_cv

NOISE_FILE = "noise.json"
NOISE_SCHEMA = "lenet-bench-noise/1"


@dataclass(frozen=True)
class Calibration:
    """A baseline's noise calibration: each benchmark's A/A process medians, and its counted processes' counts."""

    times: dict[str, list[float]] | None = None
    counts: dict[str, list[float]] | None = None


def read_calibration(baseline_dir: Path) -> Calibration:
    """What ``noise.json`` beside a baseline's runs says (empty when there is none)."""
    return Calibration(read_noise(baseline_dir), read_count_noise(baseline_dir))


def read_noise(baseline_dir: Path) -> dict[str, list[float]] | None:
    """The per-benchmark A/A process medians stored with a baseline, or None when it has none."""
    return _read(baseline_dir, "medians")


def read_count_noise(baseline_dir: Path) -> dict[str, list[float]] | None:
    """The per-benchmark A/A instruction counts (one per counted process) stored with a baseline, or None."""
    counts = _read(baseline_dir, "instructions")
    return counts or None


def _read(baseline_dir: Path, key: str) -> dict[str, list[float]] | None:
    path = baseline_dir / NOISE_FILE if baseline_dir.is_dir() else None
    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        entries = data["benchmarks"].items()
        return {name: list(map(float, entry[key])) for name, entry in entries if key == "medians" or key in entry}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CompareError(f"{path}: not a noise file written by scripts/baseline.py ({error})") from None


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
