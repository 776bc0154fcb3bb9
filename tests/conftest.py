"""What the end-to-end tests share: the repository, and a real `pytest bench` run in a tiny configuration."""

from __future__ import annotations

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


def _run_bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``pytest bench`` of this checkout in a fresh process, with FAST settings and ``args``."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "bench", *FAST, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=1200,  # a counted run (--instructions) takes minutes
    )


@pytest.fixture(scope="session")
def run_bench() -> BenchRunner:
    return _run_bench
