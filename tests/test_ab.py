"""The A/B loop in-process: a fake suite and a fake clock, ABBA order, early stops, and a kept folder."""

import json
import shutil
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from lenet.ab import ABError, ABSettings, ab_loop, counts_decide, prepare_keep
from lenet.analysis.compare import CompareError, GateOptions
from lenet.analysis.compare_render import as_json, markdown
from lenet.analysis.noise import read_count_calibration
from lenet.baselines import calibrate
from lenet.cli.ab import main as ab_main
from lenet.cli.ab import uneven_interpreters
from lenet.cli.gate_options import one_thread

CPU_RUNS = sorted((Path(__file__).parent / "fixtures" / "runs" / "lenet-cpu").glob("*/*.json"))


class FakeSuite:
    """Writes a copy of a real saved run for each process, scaled per side; records the order of sides.

    A counted process adds instruction counts (``counts``: per side, a factor on one million), and
    ``together`` counted processes must run at once (a barrier they all wait at) or the test fails.
    ``keep``: a pattern the benchmarks' names must match (the rest are left out of every run).
    """

    def __init__(self, scale=None, status=0, counts=None, together=1, keep=""):
        self.scale = scale or {"baseline": 1.0, "candidate": 1.0}
        self.counts = counts or {"baseline": 1.0, "candidate": 1.0}
        self.status = status
        self.sides = []
        self.counted = []
        self.barrier = threading.Barrier(together, timeout=60)
        self.keep = keep
        self.lock = threading.Lock()

    def __call__(self, side, output, log, count):
        with self.lock:
            self.sides.append(side)
            self.counted.append(count)
            number = len(self.sides)
        if count:
            self.barrier.wait()  # BrokenBarrierError unless the counted processes run side by side
        run = json.loads(CPU_RUNS[number % 2].read_text())
        run["benchmarks"] = [b for b in run["benchmarks"] if self.keep in b["name"]]
        for bench in run["benchmarks"]:
            for key in ("min", "max", "mean", "median", "q1", "q3"):
                bench["stats"][key] *= self.scale[side] * (1 + 0.001 * number)
            if count:
                bench["extra_info"]["instructions"] = 1e6 * self.counts[side] * (1 + 1e-6 * number)
        output.write_text(json.dumps(run))
        log.write_text("1 passed\n")
        return self.status


class FakeClock:
    def __init__(self, step):
        self.now, self.step = 0.0, step

    def __call__(self):
        self.now += self.step
        return self.now


def test_processes_alternate_in_abba_blocks_up_to_the_maximum(tmp_path):
    prepare_keep(tmp_path / "keep")
    suite = FakeSuite()
    result = ab_loop(suite, tmp_path / "keep", ABSettings(3, 4), clock=FakeClock(1.0), say=lambda line: None)
    assert suite.sides == ["baseline", "candidate", "candidate", "baseline"] * 2
    assert result.processes == {"baseline": 4, "candidate": 4}
    assert sorted(p.name for p in (tmp_path / "keep" / "candidate").glob("*.json")) == [
        f"000{i}.json" for i in (1, 2, 3, 4)
    ]


def test_a_clear_slowdown_stops_early_with_a_regression(tmp_path):
    prepare_keep(tmp_path / "keep")
    suite = FakeSuite({"baseline": 1.0, "candidate": 2.0})
    settings = ABSettings(4, 12, options=GateOptions(threshold=0.05))
    result = ab_loop(suite, tmp_path / "keep", settings, clock=FakeClock(1.0), say=lambda line: None)
    assert result.comparison.count("regressed") == 30 and result.status == 1
    assert result.processes["baseline"] == result.processes["candidate"] < 12  # decided before the maximum


def test_counts_that_decide_every_benchmark_need_no_time_process(tmp_path):
    prepare_keep(tmp_path / "keep")
    # eager fp32 CPU benchmarks only, a 2% count regression; the counted processes must run two at once
    suite = FakeSuite(counts={"baseline": 1.0, "candidate": 1.02}, together=2, keep="-fp32-eager-")
    settings = ABSettings(3, 4, count_processes=2, parallel=2)
    result = ab_loop(suite, tmp_path / "keep", settings, clock=FakeClock(1.0), say=lambda _: None)
    assert suite.counted == [True] * 4 and sorted(suite.sides) == ["baseline"] * 2 + ["candidate"] * 2
    assert result.processes == {"baseline": 0, "candidate": 0} and result.status == 1
    assert set(result.comparison.table["decided_by"]) == {"instructions"}
    assert set(result.comparison.table["verdict"]) == {"inconclusive"}  # times of counted processes decide nothing
    assert result.counted.processes == {"baseline": 2, "candidate": 2} and len(result.counted.seconds) == 4
    assert result.cost_lines()[1] == "time processes (ABBA): none" and result.costs()["time"]["seconds"] == []
    untimed = markdown(result.comparison, "base", "cand")
    timed = markdown(replace(result.comparison, time_processes_ran=True), "base", "cand")
    assert "| decided by |" in untimed and "instructions" in untimed and "No time process ran" in untimed
    assert not any(column in untimed for column in ("change [95% CI]", "p (BH)", "time verdict", "detectable"))
    assert "by time: no time process ran; by instruction counts: 20 regressed" in untimed
    assert "change [95% CI]" in timed and "time verdict" in timed  # ab.py --time: the columns are back
    # the counted processes' times are flagged (few rounds), but they decide nothing: no column names them
    flagged = replace(result.comparison, table=result.comparison.table.assign(left_out="baseline 0001 (few_rounds)"))
    assert "flagged unstable" not in markdown(flagged, "base", "cand")
    assert "| left out: flagged unstable |" in markdown(replace(flagged, time_processes_ran=True), "base", "cand")
    assert as_json(result.comparison)["time_processes_ran"] is False
    assert sorted(p.name for p in (tmp_path / "keep" / "counted" / "candidate").glob("*.json")) == [
        "0001.json",
        "0002.json",
    ]


def test_what_counts_cannot_decide_gets_time_processes_alone_in_abba_order(tmp_path):
    prepare_keep(tmp_path / "keep")
    suite = FakeSuite(together=2)  # AMP benchmarks among the eager fp32 ones: counts cannot decide them
    settings = ABSettings(3, 4, count_processes=2, parallel=2)
    result = ab_loop(suite, tmp_path / "keep", settings, clock=FakeClock(1.0), say=lambda _: None)
    assert suite.counted == [True] * 4 + [False] * 8
    assert suite.sides[4:] == ["baseline", "candidate", "candidate", "baseline"] * 2
    table = result.comparison.table.set_index("benchmark")
    assert table.loc["test_forward_inference[cpu-contiguous-fp32-eager-b8]", "count_verdict"] == "unchanged"
    assert table.loc["test_forward_inference[cpu-contiguous-fp32-eager-b8]", "n_baseline"] == 4  # times: ABBA ones
    assert result.processes == {"baseline": 4, "candidate": 4} and len(result.timed.seconds) == 8


def test_time_processes_run_on_request_even_where_counts_decided(tmp_path):
    prepare_keep(tmp_path / "keep")
    suite = FakeSuite(keep="-fp32-eager-")
    settings = ABSettings(2, 2, count_processes=1, parallel=1, time="always")
    result = ab_loop(suite, tmp_path / "keep", settings, clock=FakeClock(1.0), say=lambda _: None)
    assert suite.counted == [True, True, False, False, False, False]
    assert result.processes == {"baseline": 2, "candidate": 2}
    with pytest.raises(ValueError, match="counted processes"):
        ABSettings(2, 4, count_processes=5)
    with pytest.raises(ValueError, match="time 'never': expected one of auto, always"):
        ABSettings(2, 4, time="never")


def calibrated_baseline(tmp_path: Path) -> Path:
    """A baseline folder as ``baseline.py calibrate --processes 2 --count-processes 2`` leaves it (fake suite)."""
    suite = FakeSuite(keep="-fp32-eager-")
    calibrate(
        2,
        tmp_path / "baselines",
        lambda out, count: suite("baseline", out, out.with_suffix(".log"), count),
        "c0ffee1",
        2,
    )
    [folder] = (tmp_path / "baselines").iterdir()
    return folder


def test_one_counted_process_a_side_decides_with_a_baselines_count_calibration(tmp_path):
    calibration = read_count_calibration(calibrated_baseline(tmp_path))
    for calibrated, time_processes in ((calibration, 0), (None, 2)):
        keep = tmp_path / f"keep{time_processes}"
        prepare_keep(keep)
        suite = FakeSuite(counts={"baseline": 1.0, "candidate": 1.02}, together=2, keep="-fp32-eager-")
        settings = ABSettings(2, 2, count_processes=1, parallel=2, count_calibration=calibrated)
        result = ab_loop(suite, keep, settings, clock=FakeClock(1.0), say=lambda _: None)
        table = result.comparison.table
        assert result.processes == {"baseline": time_processes, "candidate": time_processes}
        assert set(table["count_processes"]) == {"1 / 1"}
        # the calibration's spread lets one process a side decide; without it counts cannot tell, and time decides
        assert set(table["count_verdict"]) == ({"regressed"} if calibrated else {"inconclusive"})
    assert result.status == 0 and "instructions" not in set(table["decided_by"])


def test_a_count_calibration_must_hold_counts_and_come_from_this_machine(tmp_path, capsys):
    with pytest.raises(CompareError, match=r"no noise.json with 2 or more counted processes of a benchmark"):
        read_count_calibration(tmp_path)
    unusable = tmp_path / "nan"  # counts the count verdict would drop (not finite, not positive) calibrate nothing
    unusable.mkdir()
    counts = {"b": {"medians": [1.0, 1.0], "instructions": [float("nan"), float("nan")]}, "c": {"medians": [1.0]}}
    (unusable / "noise.json").write_text(
        json.dumps({"benchmarks": {**counts, "d": {"medians": [1.0], "instructions": [0, -1]}}})
    )
    with pytest.raises(CompareError, match=r"no noise.json with 2 or more counted processes of a benchmark"):
        read_count_calibration(unusable)
    calibration = read_count_calibration(calibrated_baseline(tmp_path))
    first = sorted(calibration.counts)[0]
    partial = replace(calibration, counts={first: calibration.counts[first]})  # the others were not counted there
    prepare_keep(tmp_path / "partial")
    said = []
    settings = ABSettings(2, 2, count_processes=1, parallel=2, count_calibration=partial)
    ab_loop(FakeSuite(together=2, keep="-fp32-eager-"), tmp_path / "partial", settings, say=said.append)
    [warning] = [line for line in said if line.startswith("warning:")]
    uncounted = len(calibration.counts) - 1
    assert f"has no spread of {uncounted} counted benchmark(s), whose counts then cannot decide from 1" in warning
    elsewhere = replace(calibration, fingerprint_fields={"cpu_model": "Z80"})
    prepare_keep(tmp_path / "keep")
    settings = ABSettings(2, 2, count_processes=1, parallel=2, count_calibration=elsewhere)
    with pytest.raises(ABError, match=r"made on another machine: cpu_model: 'Z80' \(calibration\) vs '.*' \(here\)"):
        ab_loop(FakeSuite(together=2, keep="-fp32-eager-"), tmp_path / "keep", settings, say=lambda _: None)
    if shutil.which("valgrind"):  # --instructions on needs it; the option is read only where counts are taken
        arguments = ["--baseline", "HEAD", "--instructions", "on", "--count-processes", "1"]
        assert ab_main([*arguments, "--count-calibration", str(tmp_path / "new\nline")]) == 2
        [line] = capsys.readouterr().err.splitlines()  # a line break in the path does not break the line
        assert line.startswith(f"error: {tmp_path / 'new line'}: no noise.json with 2 or more counted processes")


@pytest.mark.parametrize(
    ("name", "decides"),
    [
        ("test_train_step[cpu-contiguous-fp32-eager-sgd-b64]", True),
        ("test_backward[cpu-channels_last-fp32-eager-b2]", True),
        ("test_forward_inference[cpu-contiguous-amp_bf16-eager-b64]", False),
        ("test_forward_inference[cpu-contiguous-fp32-compile-b64]", False),
        ("test_forward_inference[cuda-contiguous-fp32-eager-b64]", False),
        ("test_other", False),
    ],
)
def test_counts_decide_eager_cpu_benchmarks_without_amp(name, decides):
    assert counts_decide(name) is decides


def test_the_time_budget_stops_the_loop_and_too_few_processes_is_an_error(tmp_path):
    prepare_keep(tmp_path / "keep")
    suite = FakeSuite()
    with pytest.raises(ABError, match="too few processes finished"):
        ab_loop(suite, tmp_path / "keep", ABSettings(2, 4, time_budget=2.5), clock=FakeClock(1.0), say=lambda _: None)
    assert len(suite.sides) == 2


def test_a_suite_that_cannot_run_is_an_error_naming_its_log(tmp_path):
    prepare_keep(tmp_path / "keep")
    with pytest.raises(ABError, match=r"the baseline suite could not run \(pytest exit 4\).*0001.log"):
        ab_loop(FakeSuite(status=4), tmp_path / "keep", ABSettings(2, 2), say=lambda _: None)


def test_a_keep_folder_must_be_new_or_empty(tmp_path):
    used = tmp_path / "used"
    (used / "baseline").mkdir(parents=True)
    shutil.copy(CPU_RUNS[0], used / "baseline" / "0005.json")
    with pytest.raises(ABError, match="already holds files"):
        prepare_keep(used)
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ABError, match="is a file"):
        prepare_keep(a_file)
    prepare_keep(tmp_path / "fresh")
    prepare_keep(tmp_path / "fresh")  # its own empty side folders are fine
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == ["baseline", "candidate", "counted"]


def test_settings_refuse_impossible_process_counts():
    with pytest.raises(ValueError, match=r"need 2 <= min \(1\) <= max \(4\)"):
        ABSettings(1, 4)
    assert ABSettings(4, 12).looks == 5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--pin", "4096"], "error: --pin '4096': CPU 4096 is not one this process may use"),
        (["--pin", "half"], "error: --pin 'half': expected none, last, or CPU numbers"),
        (["--count-processes", "-1"], "error: --count-processes -1: expected 0 or more"),
        pytest.param(
            ["--count-processes", "13"],
            "error: counted processes: need 0 <= 13 <= max (12)",
            marks=pytest.mark.skipif(shutil.which("valgrind") is None, reason="--instructions on needs valgrind"),
        ),
    ],
)
def test_process_options_that_cannot_be_had_are_one_line_and_exit_2(options, message, capsys):
    assert ab_main(["--baseline", "HEAD", "--instructions", "on", *options]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_counting_on_demand_without_valgrind_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no valgrind on it
    assert ab_main(["--baseline", "HEAD", "--instructions", "on"]) == 2
    assert "valgrind is not installed" in capsys.readouterr().err


def test_auto_pins_only_one_thread_processes(monkeypatch):
    monkeypatch.delenv("LENET_THREADS", raising=False)
    assert one_thread(["--preset", "quick", "--threads", "1"]) and one_thread(["--threads=1"])
    assert not one_thread(["--threads", "2"]) and not one_thread(["--preset", "quick"])
    monkeypatch.setenv("LENET_THREADS", "1")
    assert one_thread([]) and not one_thread(["--threads", "2"])  # the option wins over its environment twin


def test_a_candidate_that_is_not_a_git_checkout_is_refused(tmp_path, monkeypatch, capsys):
    """lenet imported from an installed copy (not a clone): there is no working tree to measure."""
    monkeypatch.setattr("lenet.cli.ab.REPO", tmp_path)
    assert ab_main(["--baseline", "HEAD", "--instructions", "off"]) == 2
    assert f"lenet was imported from {tmp_path}, not a git checkout" in capsys.readouterr().err


def test_a_baseline_that_names_no_commit_is_one_line_and_exit_2(tmp_path, capsys):
    keep = tmp_path / "keep"
    assert ab_main(["--baseline", "no-such-ref-anywhere", "--instructions", "off", "--keep", str(keep)]) == 2
    err = capsys.readouterr().err
    assert "error: baseline 'no-such-ref-anywhere' is not a commit, branch or tag of this repository" in err
    assert not keep.exists()  # refused before anything was made


def test_interpreters_at_paths_of_different_lengths_are_warned_of():
    assert (
        uneven_interpreters({"baseline": "/envs/torch-2.13/bin/python", "candidate": "/envs/torch-2.14/bin/python"})
        is None
    )
    note = uneven_interpreters({"baseline": "/envs/a/bin/python", "candidate": "/envs/patched/bin/python"})
    assert note is not None and "(baseline 18, candidate 24 characters)" in note and "equally long paths" in note
