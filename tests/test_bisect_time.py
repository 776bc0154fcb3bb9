"""Bisect by time: a commit's value is the lower quartile of its processes, which slow processes do not move."""

from __future__ import annotations

import pytest

from lenet.analysis.stats import bootstrap_ratio_of_quantiles
from lenet.bisect import LIKE_GOOD, TIME_QUANTILE, Measurement, bisect, classify, step_benchmarks

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
    single = bootstrap_ratio_of_quantiles((1.1,), (1.0,), TIME_QUANTILE)
    assert (single.low, single.high) == pytest.approx((1.1, 1.1))


def test_undecided_time_is_measured_more_and_then_decided() -> None:
    """The ends' first batch hides the step, a probe's first batch lies between: each gets another batch."""
    batches = {  # per commit, the batches of process medians it gets, in order
        "g": [(1.00, 1.30), (1.00, 1.01, 0.99, 1.00)],
        "b": [(1.02, 1.35), (1.10, 1.11, 1.09, 1.10)],
        "c0": [(1.05, 1.05), (1.00, 1.00, 1.01, 0.99)],  # "between" at first; like good with more processes
        "c1": [(1.10, 1.11, 1.10)],
    }
    assert (
        step_benchmarks(
            Measurement("g", "time", {"t": batches["g"][0]}), Measurement("b", "time", {"t": batches["b"][0]})
        )
        == {}
    )
    given: dict[str, list[float]] = {}
    count = dict.fromkeys(batches, 0)

    def more(commit: str) -> Measurement:
        given.setdefault(commit, []).extend(batches[commit][count[commit]])
        count[commit] += 1
        return Measurement(commit, "time", {"t": tuple(given[commit])})

    def measure(commit: str) -> Measurement:
        return Measurement(commit, "time", {"t": tuple(given[commit])}) if commit in given else more(commit)

    result = bisect(["c0", "c1", "b"], measure("g"), measure("b"), measure, more=more)
    assert (result.culprit, result.parent) == ("c1", "c0")
    assert result.probes[0].commit == "c0" and result.probes[0].verdict == LIKE_GOOD
    assert count == {"g": 2, "b": 2, "c0": 2, "c1": 1}
