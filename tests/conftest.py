"""What the end-to-end tests share: the repository, and a real `pytest bench` run in a tiny configuration."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# As few rounds as pytest-benchmark allows: these runs prove the suites run, save and load, not speed.
FAST = ("--benchmark-max-time=0.02", "--benchmark-min-rounds=3", "-p", "no:cacheprovider")

BenchRunner = Callable[..., subprocess.CompletedProcess[str]]


def _run_bench(
    *args: str, env: dict[str, str] | None = None, peaks_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``pytest bench`` of this checkout in a fresh process, with FAST settings and ``args``.

    The machine's peaks are read from ``peaks_dir`` (never the checkout's results/peaks)."""
    env = {**({"LENET_PEAKS_DIR": str(peaks_dir)} if peaks_dir is not None else {}), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "bench", *FAST, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=1200,  # a counted run (--instructions) takes minutes
    )


@pytest.fixture(scope="session")
def peaks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Placeholder peaks of this machine, for 1 thread and torch's default: measuring them takes ~20 s a run."""
    import torch

    from lenet.metrics.peaks import Peaks, identity, save_peaks

    folder = tmp_path_factory.mktemp("peaks")
    for threads in {1, torch.get_num_threads()}:
        rates = {"fp32": 100.0, "bf16": 400.0}
        sweep = {kind: {"1024": rate} for kind, rate in rates.items()}
        bandwidth = {"copy": 10.0, "triad": 12.0}
        placeholder = Peaks(identity("cpu", threads), rates, sweep, bandwidth, 1 << 26, "placeholder for tests")
        save_peaks(folder, placeholder)
    return folder


@pytest.fixture(scope="session")
def run_bench(peaks_dir: Path) -> BenchRunner:
    return functools.partial(_run_bench, peaks_dir=peaks_dir)
