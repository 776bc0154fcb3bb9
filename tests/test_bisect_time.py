"""Bisect by time: a commit's value is the lower quartile of its processes, which slow processes do not move."""

from __future__ import annotations

import pytest

from lenet.bisect import LIKE_GOOD, Measurement, bootstrap_quantile_ratio, classify, step_benchmarks

# Process medians of one benchmark: most processes agree, some ran 30-50% slow (one-sided noise).
GOOD = Measurement("g", "time", {"t": (1.00, 1.01, 1.30, 1.35, 0.99, 1.00, 1.02, 1.01)})
BAD = Measurement("b", "time", {"t": (1.10, 1.45, 1.50, 1.11, 1.09, 1.10, 1.12, 1.48)})


def test_a_time_step_is_sized_by_the_fast_processes() -> None:
    assert step_benchmarks(GOOD, BAD) == {"t": pytest.approx(1.10, abs=0.01)}


def test_a_probe_with_slow_processes_is_still_like_good() -> None:
    # Half its processes were slowed: its median (1.205) lies past the bad end's (1.115).
    probe = Measurement("p", "time", {"t": (1.00, 1.40, 1.45, 1.01, 1.50, 0.99, 1.42, 1.01)})
    assert classify(probe, GOOD, BAD, step_benchmarks(GOOD, BAD)).verdict == LIKE_GOOD


def test_the_interval_of_one_process_a_side_is_the_point() -> None:
    assert bootstrap_quantile_ratio((1.1,), (1.0,)) == pytest.approx((1.1, 1.1))
