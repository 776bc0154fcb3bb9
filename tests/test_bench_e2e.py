"""End to end: real `pytest bench` runs in tiny configurations, saved and loaded back, with the metrics and
instruction-count records they save. The tests that read the session's shared runs (``smoke_run``,
``switched_run``) live here, in one file, so that one worker makes each run once."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lenet.metrics.flops import lenet_flops
from lenet.runs.record import SCHEMA, MetricsInfo

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def saved_runs(storage: Path) -> list[Path]:
    return sorted(storage.glob("*/*.json"))


def test_smoke_run_saves_a_run_that_loads_back(smoke_run):
    storage = smoke_run.storage
    assert "lenet-bench: preset smoke" in smoke_run.result.stdout
    [saved] = saved_runs(storage)

    run = json.loads(saved.read_text())
    names = sorted(b["name"] for b in run["benchmarks"])
    assert names == [
        "test_backward[cpu-contiguous-fp32-eager-b2]",
        "test_forward_inference[cpu-contiguous-fp32-eager-b2]",
        "test_forward_train[cpu-contiguous-fp32-eager-b2]",
        "test_optimizer_step[cpu-contiguous-fp32-eager-sgd-b2]",
        "test_train_step[cpu-contiguous-fp32-eager-sgd-b2]",
    ]
    machine = run["machine_info"]
    assert machine["fingerprint"] and machine["torch_version"] and machine["torch_threads"] >= 1
    assert run["commit_info"]["imported_from"] == {"lenet": "lenet", "bench": "bench"}  # this checkout's code
    for bench in run["benchmarks"]:
        info = bench["extra_info"]
        assert info["schema"] == SCHEMA
        assert info["variant"] == "cpu-contiguous-fp32-eager" and info["batch_size"] == 2
        assert info["samples_per_s"] == pytest.approx(2 / bench["stats"]["median"])
        assert info["correctness_worst_ratio"] <= 1.0
        assert len(bench["stats"]["data"]) == bench["stats"]["rounds"] >= 3
        assert bench["params"]["variant"] == "cpu-contiguous-fp32-eager"
    steps = [b for b in run["benchmarks"] if b["extra_info"]["phase"] == "train_step"]
    assert steps[0]["extra_info"]["optimizer"] == "sgd"

    # upstream's own CLI reads the run unchanged
    listing = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "--storage", f"file://{storage}", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert saved.name in listing.stdout
    compared = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_benchmark",
            "--storage",
            f"file://{storage}",
            "compare",
            "0001",
            "--columns=median",
            "--group-by=name",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "test_train_step[cpu-contiguous-fp32-eager-sgd-b2]" in compared.stdout


def test_the_machine_state_is_saved_and_flagged_benchmarks_are_listed_at_the_end(tmp_path, run_bench):
    """Bounds no benchmark can meet force every check's flag: each benchmark is re-timed once, saved once,
    marked, and listed with its reason and advice; the train step is flagged against its phases too."""
    json_path = tmp_path / "run.json"
    result = run_bench(
        "--preset",
        "smoke",
        "--phases",
        "forward_train,backward,optimizer_step,train_step",
        "--rerun-unstable",
        "1",
        f"--benchmark-json={json_path}",
        env={"LENET_STABILITY_BOUNDS": "min_rounds=1000000,phase_low=0,phase_high=0"},
    )
    assert result.returncode == 0, result.stdout + result.stderr  # a flag warns; it does not fail the run
    run = json.loads(json_path.read_text())
    assert len(run["benchmarks"]) == 4  # the first attempt of each was forgotten, not saved beside the second
    by_phase = {b["extra_info"]["phase"]: b["extra_info"] for b in run["benchmarks"]}
    for info in by_phase.values():
        assert info["stability_flags"][0] == "few_rounds" and info["stability_attempts"] == 2
        assert info["calls"] >= 3 and info["cpu_per_wall"] > 0 and info["minor_faults_per_call"] >= 0
        assert info["involuntary_switches_per_call"] >= 0 and info["cpu_governor"] and info["cpu_boost"]
        assert "busy_share" in info or "state_unavailable" in info
    assert by_phase["train_step"]["stability_flags"][-1] == "phase_sum"
    assert "the sum of its phases" in by_phase["train_step"]["stability_reasons"][-1]
    assert "lenet-bench: 4 of 4 benchmarks flagged unstable" in result.stdout
    assert "test_train_step[cpu-contiguous-fp32-eager-sgd-b2]: few_rounds: " in result.stdout
    assert "    phase_sum: the whole step and its phases disagree" in result.stdout


def test_threads_option_is_applied_and_recorded(smoke_run):
    run = json.loads(smoke_run.output.read_text())  # the shared smoke run ran with --threads 1
    assert run["machine_info"]["torch_threads"] == 1
    assert {b["extra_info"]["torch_threads"] for b in run["benchmarks"]} == {1}


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [  # one bad value end to end (the parser's other messages: test_options.py, in-process)
        (
            ["--variants", "cpu-nhwc-fp32-eager"],
            {},
            "unknown memory format 'nhwc'; choose from contiguous, channels_last",
        ),
    ],
)
def test_bad_selection_stops_before_any_benchmark(args, env, message, run_bench):
    result = run_bench(*args, env=env)
    assert result.returncode == 4  # pytest's usage error
    assert message in result.stderr
    assert "passed" not in result.stdout and "failed" not in result.stdout


def test_cuda_cases_are_reported_as_skipped_with_a_reason(switched_run):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the CUDA cases run instead of skipping")
    assert "1 passed, 1 skipped" in switched_run.result.stdout
    assert "CUDA not available" in switched_run.result.stdout


def test_a_wrong_variant_fails_alone_and_the_rest_is_saved(tmp_path, run_bench):
    """A planted bug in channels_last: its benchmark fails with the gate's message, the others save."""
    plugin = tmp_path / "plant_channels_last_bug.py"
    plugin.write_text(
        textwrap.dedent("""
        import torch
        from lenet.model import Net

        _forward = Net.forward

        def wrong_when_channels_last(self, input):
            out = _forward(self, input)
            weight = self.conv2.weight
            if weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous():
                out = out * 1.5  # the bug
            return out

        Net.forward = wrong_when_channels_last
    """)
    )
    storage = tmp_path / "benchmarks"
    result = run_bench(
        "-p",
        "plant_channels_last_bug",
        "--preset",
        "smoke",
        "--phases",
        "forward_inference,train_step",
        "--variants",
        "cpu-contiguous-fp32-eager,cpu-channels_last-fp32-eager",
        "--benchmark-autosave",
        f"--benchmark-storage={storage}",
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])},
    )
    assert result.returncode == 1
    assert "2 failed, 2 passed" in result.stdout
    assert "cpu-channels_last-fp32-eager computes a wrong answer" in result.stdout
    [saved] = saved_runs(storage)
    variants = {b["extra_info"]["variant"] for b in json.loads(saved.read_text())["benchmarks"]}
    assert variants == {"cpu-contiguous-fp32-eager"}


SIGNAL_IN_ROUNDS = """
import os
import signal
from pytest_benchmark.fixture import BenchmarkFixture
from lenet.workload import Workload

# As a terminal's Ctrl-C finds it: a test run started as a background job of a shell without job control
# (`cmd &` in a script) hands its children SIGINT ignored, and Python then installs no KeyboardInterrupt.
signal.signal(signal.SIGINT, signal.default_int_handler)

make_stats, forward_train = BenchmarkFixture._make_stats, Workload.forward_train
rounds = []

def marking_make_stats(self, iterations):
    if "forward_train" in self.name:  # its timed rounds begin now
        rounds.append(0)
    return make_stats(self, iterations)

def signalling_forward_train(self):
    if rounds:
        rounds[0] += 1
        if rounds[0] == 5:  # the 5th timed round: interrupt it
            os.kill(os.getpid(), int(os.environ["SIGNAL_TO_SEND"]))
    return forward_train(self)

BenchmarkFixture._make_stats = marking_make_stats
Workload.forward_train = signalling_forward_train
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_saves_what_finished_and_nothing_measured_in_part(tmp_path, signum, run_bench):
    """Ctrl-C, or a cancelled CI job's SIGTERM, during the second benchmark's rounds: the first is saved whole,
    the second not at all (not as a short run with an empty record)."""
    (tmp_path / "signal_in_rounds.py").write_text(SIGNAL_IN_ROUNDS)
    output = tmp_path / "run.json"
    result = run_bench(
        *("-p", "signal_in_rounds", "--preset", "smoke", "--phases", "forward_inference,forward_train"),
        *("--benchmark-max-time=1", f"--benchmark-json={output}"),
        env={"PYTHONPATH": str(tmp_path), "SIGNAL_TO_SEND": str(int(signum))},
    )
    assert result.returncode == 2, result.stdout + result.stderr  # pytest: interrupted
    assert "not saved, measured only in part: test_forward_train[cpu-contiguous-fp32-eager-b2]" in result.stdout
    [bench] = json.loads(output.read_text())["benchmarks"]
    assert bench["name"] == "test_forward_inference[cpu-contiguous-fp32-eager-b2]"
    assert bench["extra_info"]["schema"] == SCHEMA and bench["stats"]["rounds"] >= 3


def test_code_from_outside_the_rootdir_is_recorded_in_full_and_warned_of(switched_run):
    result = switched_run.result  # its --rootdir is a folder outside the checkout
    assert f"warning: this run measures lenet from {REPO / 'lenet'}, bench from {REPO / 'bench'}" in result.stdout
    recorded = json.loads(switched_run.output.read_text())["commit_info"]["imported_from"]
    assert recorded == {"lenet": str(REPO / "lenet"), "bench": str(REPO / "bench")}


# --- the metrics a real run saves, and a run whose metrics cannot be had ---------------------------------


def test_a_smoke_run_saves_memory_flops_and_percent_of_peak(smoke_run):
    output, result = smoke_run.output, smoke_run.result
    assert "lenet-bench: metrics: peak memory and FLOPs after each benchmark's timed rounds" in result.stdout
    assert "lenet-bench: cpu peaks: read " in result.stdout
    for bench in json.loads(output.read_text())["benchmarks"]:
        info = bench["extra_info"]
        assert info["memory_peak_bytes"] > 0 and info["metrics_seconds"] > 0
        assert info["flops"] == lenet_flops(info["phase"], 2)
        assert info["peak_gflops"] == 100.0 and info["peak_bandwidth_gbs"] == 12.0
        if info["flops"]:
            assert info["gflops_per_s"] == pytest.approx(info["flops"] / bench["stats"]["median"] / 1e9)
            assert info["percent_of_peak"] == pytest.approx(info["gflops_per_s"])  # of 100 GFLOP/s
        else:  # the optimizer step: nothing FlopCounterMode counts, and it says which ops
            assert "percent_of_peak" not in info and info["flops_uncounted"] == ["aten.add_ x20", "aten.mul_ x10"]


def test_metrics_that_cannot_be_had_are_reasons_and_the_run_is_saved(tmp_path, run_bench):
    (tmp_path / "no_profiler.py").write_text(
        textwrap.dedent("""
        import lenet.metrics.memory

        def cpu_peak(*args, **kwargs):
            raise RuntimeError("this platform's profiler records no memory events")

        lenet.metrics.memory.cpu_peak = cpu_peak
    """)
    )
    not_a_folder = tmp_path / "peaks"
    not_a_folder.write_text("a file where the peaks folder should be")
    output = tmp_path / "run.json"
    result = run_bench(
        "-p",
        "no_profiler",
        "--preset",
        "smoke",
        "--phases",
        "forward_inference",
        f"--benchmark-json={output}",
        env={
            "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
            "LENET_PEAKS_DIR": str(not_a_folder / "sub"),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [bench] = json.loads(output.read_text())["benchmarks"]
    info = bench["extra_info"]
    assert info["memory_unavailable"] == (
        "peak memory not measured: RuntimeError: this platform's profiler records no memory events"
    )
    assert info["peak_unavailable"].startswith("peaks not measured: ")
    assert info["flops"] == lenet_flops("forward_inference", 2) and bench["stats"]["rounds"] >= 3


def test_no_metrics_leaves_the_record_as_it_was(switched_run):
    benchmarks = json.loads(switched_run.output.read_text())["benchmarks"]  # that run passed --no-metrics
    assert [b["extra_info"]["phase"] for b in benchmarks] == ["forward_inference"]
    assert not set(MetricsInfo.KINDS) & set(benchmarks[0]["extra_info"])
    assert "lenet-bench: metrics:" not in switched_run.result.stdout


# --- instruction counts where valgrind cannot be found ------------------------------------------------


def test_without_valgrind_counts_are_marked_unavailable_and_timings_still_save(switched_run):
    [bench] = json.loads(switched_run.output.read_text())["benchmarks"]  # --instructions, no valgrind on PATH
    assert bench["stats"]["median"] > 0
    assert bench["extra_info"]["instructions_unavailable"] == "valgrind is not installed (apt-get install valgrind)"
    assert "instructions" not in bench["extra_info"]
