"""Instruction counts: parsing callgrind's dumps, verdicts from counts, and real counting under valgrind."""

import os
import time
from pathlib import Path

import pytest

from lenet import callgrind
from lenet.analysis.compare import EXIT_REGRESSION, GateOptions, Side, compare, gate
from lenet.analysis.compare_render import markdown
from lenet.analysis.summary import summarize
from lenet.analysis.tables import section_table, sections
from lenet.instructions import (
    InstructionCount,
    InstructionCounting,
    _count_case,
    count,
    deal,
    environment_workers,
    read_counts,
    unavailable_reason,
)
from lenet.runs.frame import frame_from_rows
from lenet.variants import Case, Phase, parse_optimizer, parse_variant
from lenet.workload import TimedCall

REPO = Path(__file__).resolve().parents[1]


def test_count_statistics_on_literal_repeats():
    counts = InstructionCount((1000.0, 1001.0, 999.0, 1000.0, 1002.0), calls=10)
    assert counts.median == 1000.0
    assert counts.spread == pytest.approx(0.003)
    assert counts.info().to_extra_info() == {
        "instructions": 1000.0,
        "instructions_spread": pytest.approx(0.003),
        "instructions_repeats": [1000.0, 1001.0, 999.0, 1000.0, 1002.0],
        "instructions_calls_per_repeat": 10,
    }


def test_a_count_is_keyed_by_the_cases_one_name():
    case = Case(Phase.TRAIN_STEP, parse_variant("cpu-contiguous-fp32-eager"), 64, parse_optimizer("sgd"))
    assert case.name == "train_step-cpu-contiguous-fp32-eager-sgd-b64"


def test_compiled_cases_are_shared_evenly_among_workers():
    variants = ["cpu-contiguous-fp32-eager", "cpu-channels_last-fp32-eager", "cpu-contiguous-fp32-compile"]
    cases = [
        Case(phase, parse_variant(v), 64, None) for v in variants for phase in (Phase.FORWARD_INFERENCE, Phase.BACKWARD)
    ]
    groups = deal(cases, 2)
    assert sorted(map(len, groups)) == [3, 3]
    assert [sum(c.variant.is_compiled for c in group) for group in groups] == [1, 1]


def test_runs_that_count_side_by_side_name_their_valgrind_workers_in_the_environment(monkeypatch):
    monkeypatch.delenv(callgrind.WORKERS_VARIABLE, raising=False)
    assert environment_workers() is None  # one valgrind process per CPU
    monkeypatch.setenv(callgrind.WORKERS_VARIABLE, "1")
    assert environment_workers() == 1
    monkeypatch.setenv(callgrind.WORKERS_VARIABLE, "0")
    with pytest.raises(ValueError, match=r"LENET_INSTRUCTIONS_WORKERS='0': expected a whole number of 1 or more"):
        environment_workers()


def test_cuda_variants_are_not_counted():
    assert "CPU code only" in unavailable_reason("cuda")


@pytest.mark.skipif(unavailable_reason() is not None, reason="counting needs valgrind here")
def test_compiled_variants_are_counted_only_on_request():
    compiled = Case(Phase.FORWARD_INFERENCE, parse_variant("cpu-contiguous-fp32-compile"), 2)
    eager = Case(Phase.FORWARD_INFERENCE, parse_variant("cpu-contiguous-fp32-eager"), 2)
    by_default, on_request = InstructionCounting(1), InstructionCounting(1, compiled=True)
    for counting in (by_default, on_request):
        for case in (compiled, eager):
            counting.add(case)
    assert by_default.pending == [eager]
    assert "--instructions-compiled" in by_default.unavailable[compiled].instructions_unavailable
    assert on_request.pending == [compiled, eager] and not on_request.unavailable


def test_read_counts_divides_each_dump_by_its_calls(tmp_path):
    # callgrind's numbered dumps, as it writes them: a header with "summary:" and a "totals:" line
    for number, total in enumerate([2000, 2010, 30000, 30300], start=1):
        (tmp_path / f"callgrind.4242.{number}").write_text(
            f"version: 1\ncmd: python\nsummary: {total}\n\ntotals: {total}\n"
        )
    (tmp_path / "callgrind.4242").write_text("summary: 5\ntotals: 5\n")  # the final dump at exit: not a repeat
    manifest = {
        "cases": [
            {"id": "forward_inference[x-b2]", "dumps": [1, 2], "calls": 10},
            {"id": "train_step[x-b64]", "dumps": [3, 4], "calls": 1},
            {"id": "backward[x-b2]", "error": "RuntimeError: out of memory"},
        ]
    }
    counts = read_counts(manifest, tmp_path)
    assert counts["forward_inference[x-b2]"].per_repeat == (200.0, 201.0)
    assert counts["train_step[x-b64]"].median == 30150.0
    assert counts["backward[x-b2]"] == "RuntimeError: out of memory"


def test_the_first_repeat_sums_the_probes_dump_and_the_rest_of_its_calls(tmp_path):
    for number, total in enumerate([2000, 18000, 20100], start=1):  # the probe (1 call), 9 more, then 10
        (tmp_path / f"callgrind.4242.{number}").write_text(f"summary: {total}\ntotals: {total}\n")
    manifest = {"cases": [{"id": "a", "dumps": [[1, 2], 3], "calls": 10}, {"id": "b", "dumps": [[1]], "calls": 1}]}
    counts = read_counts(manifest, tmp_path)
    assert counts["a"].per_repeat == (2000.0, 2010.0) and counts["b"].per_repeat == (2000.0,)
    cut = read_counts({"cases": [{"id": "a", "dumps": [[1, 7]], "calls": 2}]}, tmp_path)
    assert cut["a"] == "callgrind wrote 3 dumps, not the numbers [1, 7] the manifest names"


def test_the_counting_child_sizes_its_repeats_from_the_probe_and_dumps_once_a_repeat(tmp_path, monkeypatch):
    """The child's schedule, with callgrind's dump played by a fake that writes what was called since the last
    one (real counted processes run in test_environments.py, one repeat each): the probe is the first call of
    the first repeat, and every repeat counts the same number of calls."""
    import torch

    calls: list[int] = []
    dumps = iter(range(1, 100))

    def dump() -> None:
        total = 1_000_000 * len(calls)  # a million instructions a call
        (tmp_path / f"callgrind.42.{next(dumps)}").write_text(f"summary: {total}\ntotals: {total}\n")
        calls.clear()

    monkeypatch.setattr(torch._C, "_valgrind_toggle", lambda: None)
    monkeypatch.setattr(torch._C, "_valgrind_toggle_and_dump_stats", dump)
    entry = _count_case(TimedCall(lambda: calls.append(1)), {"calls": 1, "repeats": 3}, tmp_path)
    assert entry == {"dumps": [[1, 2], 3, 4], "calls": 50}  # 50 M instructions a repeat: 50 calls
    counted = read_counts({"cases": [{"id": "a", **entry}]}, tmp_path)["a"]
    assert counted.per_repeat == (1_000_000.0,) * 3


def test_a_dump_cut_short_marks_its_case_unavailable(tmp_path):
    (tmp_path / "callgrind.7.1").write_text("summary: 1000\ntotals: 1000\n")
    (tmp_path / "callgrind.7.2").write_text("version: 1\ncmd: python\n")  # the process was killed mid-write
    (tmp_path / "callgrind.7.3").write_text("summary: 900\ntotals: 900\n")
    manifest = {"cases": [{"id": "a", "dumps": [1], "calls": 1}, {"id": "b", "dumps": [2, 3], "calls": 1}]}
    counts = read_counts(manifest, tmp_path)
    assert counts["a"].median == 1000.0
    assert counts["b"] == "a callgrind dump of this case has no total (cut short?)"


def test_a_dump_straddling_an_instrumentation_switch_is_refused_as_a_count(tmp_path):
    # The first dump after instrumentation is switched on, once another dump exists, is "now minus last
    # dump" with "now" reset to zero: negative, written unsigned (lenet.callgrind). It is never a count.
    (tmp_path / "callgrind.7.1").write_text("summary: 60193452\ntotals: 60193452\n")
    (tmp_path / "callgrind.7.2").write_text("summary: 18446744073525579000\ntotals: 18446744073525579000\n")
    (tmp_path / "callgrind.7.3").write_text("summary: 26685106\ntotals: 26685106\n")
    manifest = {
        "cases": [
            {"id": "a", "dumps": [1], "calls": 2},
            {"id": "b", "dumps": [2, 3], "calls": 1},
            {"id": "c", "dumps": [3], "calls": 1},
            {"id": "d", "dumps": [4], "calls": 1},
        ]
    }
    counts = read_counts(manifest, tmp_path)
    assert counts["a"].median == 30096726.0 and counts["c"].median == 26685106.0
    assert "negative" in counts["b"] and "straddles an instrumentation switch" in counts["b"]
    assert counts["d"] == "callgrind wrote 3 dumps, not the numbers [4] the manifest names"


def test_the_client_requests_build_and_do_nothing_outside_valgrind(tmp_path):
    library, why = callgrind.build(tmp_path)
    if library is None:
        pytest.skip(why)
    requests = callgrind.ClientRequests(library)
    requests.instrument(True)  # outside valgrind each request is a few no-op instructions
    requests.dump("outside")
    requests.instrument(False)


def fake_valgrind(folder, script):
    """A `valgrind` on PATH that is a small shell script: how count() meets a valgrind that fails or hangs."""
    folder.mkdir()
    path = folder / "valgrind"
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


SMOKE_CASES = [
    Case(Phase.FORWARD_INFERENCE, parse_variant("cpu-contiguous-fp32-eager"), 2, None),
    Case(Phase.BACKWARD, parse_variant("cpu-contiguous-fp32-eager"), 2, None),
]


def test_a_valgrind_that_dies_gives_every_case_its_exit_status_and_last_words(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_valgrind(tmp_path / "bin", "echo 'valgrind: cannot start'; exit 3"))
    counts = count(SMOKE_CASES, workers=2, timeout=60)
    assert counts == {
        case.name: "valgrind exited 3 before this case was counted: valgrind: cannot start" for case in SMOKE_CASES
    }


def test_a_hung_valgrind_is_stopped_at_the_time_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", fake_valgrind(tmp_path / "bin", "exec sleep 600"))
    start = time.monotonic()
    counts = count(SMOKE_CASES[:1], timeout=1.0)
    assert time.monotonic() - start < 30
    assert counts == {SMOKE_CASES[0].name: "valgrind ran past the time limit of 1 s for this run's counts"}


def side(times, counts):
    return Side({"b": times}, "fp", {}, ("5",), len(times), {"b": counts})


NOISY_TIMES = [1.0, 1.2, 0.9, 1.1, 1.0]  # 10-20% process noise: time cannot tell
WILDER_TIMES = [1.5, 0.8, 1.3, 0.9, 1.2]  # against NOISY_TIMES: neither a change nor its absence shows


def test_a_one_percent_count_increase_is_a_regression_even_when_time_cannot_tell():
    base = side(NOISY_TIMES, [1_000_000.0, 1_000_200.0, 999_900.0])  # processes stray 0.03%
    cand = side(NOISY_TIMES, [1_010_000.0, 1_010_100.0, 1_009_900.0])
    [row] = compare(base, cand).table.to_dict("records")
    assert row["verdict"] in ("inconclusive", "unchanged")  # no time change beyond its 10-20% noise
    assert row["count_verdict"] == "regressed"
    assert row["count_ratio"] == pytest.approx(1.01, abs=1e-4)
    assert row["count_threshold"] == pytest.approx(0.005)  # max(0.5%, 10 x 0.03%)
    assert (row["decision"], row["decided_by"]) == ("regressed", "instructions")
    comparison, status = gate(base, cand, GateOptions())
    assert status == EXIT_REGRESSION
    text = markdown(comparison, "base", "cand")
    assert "by instruction counts: 1 regressed" in text and "+1.0% (±0.50%)" in text
    assert "| instructions |" in text  # the decided-by column names the evidence


def test_the_count_threshold_is_ten_times_the_spread_between_processes():
    base = side([1.0] * 5, [1_000_000.0, 1_002_000.0])  # two processes 0.2% apart -> threshold 2%
    cand = side([1.0] * 5, [1_015_000.0, 1_015_000.0])
    [row] = compare(base, cand).table.to_dict("records")
    assert row["count_threshold"] == pytest.approx(0.02, rel=1e-3)
    assert row["count_verdict"] == "inconclusive"  # +1.4%: past the 0.5% floor, within how far processes stray
    beyond = compare(base, side([1.0] * 5, [1_025_000.0, 1_025_000.0])).table.to_dict("records")[0]
    within = compare(base, side([1.0] * 5, [1_004_000.0, 1_004_000.0])).table.to_dict("records")[0]
    assert (beyond["count_verdict"], within["count_verdict"]) == ("regressed", "unchanged")


def test_one_counted_process_a_side_gives_no_count_verdict_unless_a_calibration_counted():
    base, cand = side(NOISY_TIMES, [1_000_000.0]), side(WILDER_TIMES, [1_300_000.0])
    [row] = compare(base, cand).table.to_dict("records")
    assert row["count_verdict"] == "inconclusive" and row["count_threshold"] is None
    assert row["decision"] == "inconclusive"
    text = markdown(compare(base, cand), "base", "cand")
    assert "+30.0% (too few counted processes)" in text
    calibrated = compare(base, cand, count_noise={"b": [999_800.0, 1_000_000.0, 1_000_100.0]})
    [row] = calibrated.table.to_dict("records")
    assert row["count_verdict"] == "regressed" and row["count_threshold"] == pytest.approx(0.005)


def test_counts_that_did_not_move_decide_unchanged_when_time_cannot_tell():
    counts = [5_000_000.0, 5_000_300.0]
    [row] = compare(side(NOISY_TIMES, counts), side(WILDER_TIMES, counts)).table.to_dict("records")
    assert (row["verdict"], row["count_verdict"]) == ("inconclusive", "unchanged")
    assert (row["decision"], row["decided_by"]) == ("unchanged", "instructions")


def test_without_counts_on_both_sides_there_is_no_count_verdict():
    base = Side({"b": [1.0] * 5}, "fp", {}, ("5",), 5)
    [row] = compare(base, side([1.0] * 5, [1.0] * 5)).table.to_dict("records")
    assert row["count_verdict"] is None
    assert row["decided_by"] == "time"  # identical times: unchanged by time alone


def test_summary_and_tables_show_counts_and_their_ratio_to_the_reference():
    rows = []
    for label, instructions in (
        ("cpu-contiguous-fp32-eager", 2_000_000.0),
        ("cpu-channels_last-fp32-eager", 1_500_000.0),
    ):
        rows.append(
            {
                "source": "r.json",
                "run": "r",
                "run_time": "2026-01-01T00:00:00",
                "commit": "c",
                "dirty": False,
                "machine": "m",
                "machine_label": "m",
                "torch_version": "2.13.0",
                "name": f"test_x[{label}]",
                "label": label,
                "variant": label,
                "device": "cpu",
                "phase": "forward_inference",
                "batch_size": 2,
                "optimizer": None,
                "median": 0.001,
                "q1": 0.001,
                "q3": 0.001,
                "iqr": 0.0,
                "rounds": 5,
                "data": None,
                "instructions": instructions,
            }
        )
    summary = summarize(frame_from_rows(rows)).set_index("label")
    assert summary.loc["cpu-channels_last-fp32-eager", "instructions_vs_reference"] == pytest.approx(0.75)
    [section] = list(sections(summary.reset_index()))
    header, cells = section_table(section)
    assert header[-2:] == ["instructions", "instr. vs ref"]
    assert cells[0][-2:] == ["2,000,000", "1.000 (reference)"]
    assert cells[1][-2:] == ["1,500,000", "0.750×"]


def test_the_valgrind_time_limit_grows_with_the_load_per_cpu_up_to_a_cap(monkeypatch):
    from lenet.instructions import MAX_LOAD_FACTOR, load_factor, time_limit

    monkeypatch.setattr("os.cpu_count", lambda: 2)
    idle = time_limit([SMOKE_CASES[:1]], load=0.5)
    assert load_factor(1.0) == 1.0 and load_factor(6.0) == 3.0 and load_factor(100.0) == MAX_LOAD_FACTOR
    assert time_limit([SMOKE_CASES[:1]], load=6.0) == pytest.approx(3 * idle)
