"""Bisect by time: a commit's value is the lower quartile of its processes, which slow processes do not move."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lenet.analysis.stats import bootstrap_ratio_of_quantiles
from lenet.bisect import LIKE_GOOD, TIME_QUANTILE, Measurement, bisect, classify, step_benchmarks
from lenet.cli.bisect import measurement_of
from lenet.runs.files import read_runs

FIXTURE = next(Path(__file__).parent.joinpath("fixtures/runs/lenet-cpu").rglob("0002_*.json"))

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


def _saved_process(folder: Path, index: int, median: float, flags: list[str]) -> None:
    document = json.loads(FIXTURE.read_text())
    document["benchmarks"] = document["benchmarks"][:1]
    document["datetime"] = f"2026-11-28T12:{index:02d}:00+00:00"
    bench = document["benchmarks"][0]
    bench["stats"].update(median=median, min=median * 0.9, max=median * 1.2, mean=median)
    bench["extra_info"].update(stability_flags=flags, stability_reasons=[])
    (folder / f"{index:04d}.json").write_text(json.dumps(document))


def test_by_time_a_flagged_process_is_left_out_where_unflagged_ones_remain(tmp_path: Path) -> None:
    for index, (median, flags) in enumerate([(1.0, []), (1.02, []), (1.9, ["busy"])]):
        _saved_process(tmp_path, index, median, flags)
    runs = read_runs([tmp_path]).runs
    [values] = measurement_of("c", "time", runs).values.values()
    assert sorted(values) == [1.0, 1.02]
    # Where every process was flagged, they are all there is: kept, not a commit without a value.
    only_flagged = [run for run in runs if run.results[0].stats.median > 1.5]
    assert list(measurement_of("c", "time", only_flagged).values.values()) == [(1.9,)]
