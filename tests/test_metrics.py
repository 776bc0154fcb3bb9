"""Metrics: FLOPs against a hand count, memory that grows as LeNet's activations do, peaks and their cache,
break-even arithmetic, and what a run adds at its end. No timing is asserted."""

import dataclasses
import json
import math

import pytest
import torch

from lenet.harness import prepared
from lenet.metrics.compile_cost import ChildResult, break_even_steps, cost_info, eager_counterpart
from lenet.metrics.flops import count_flops, lenet_flops
from lenet.metrics.measure import Measurement, achieved_gflops, metrics_pass, with_peaks
from lenet.metrics.memory import (
    CPU_METHOD,
    MemoryPeak,
    activation_bytes_per_sample,
    cpu_peak,
    cuda_peak,
    peaks_within,
)
from lenet.metrics.peaks import (
    PEAKS_SCHEMA,
    Peaks,
    PeaksCache,
    PeaksFileError,
    array_bytes_for,
    best_seconds,
    cached_peaks,
    load_peaks,
    measure_peaks,
    peaks_path,
)
from lenet.metrics.run_end import MetricsRun
from lenet.paths import UnsafeNameError
from lenet.runs.record import CompileCostInfo, MetricsInfo, Record
from lenet.variants import Case, Phase, parse_optimizer, parse_variant
from lenet.workload import build_workload, timed_call

EAGER = parse_variant("cpu-contiguous-fp32-eager")
SGD = parse_optimizer("sgd")


def case(phase: Phase, batch_size: int = 4, variant=EAGER) -> Case:
    return Case(phase, variant, batch_size, SGD if phase.uses_optimizer else None)


# --- FLOPs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", list(Phase))
def test_flop_counter_agrees_exactly_with_the_hand_count(phase):
    workload = build_workload(EAGER, 3, SGD if phase.uses_optimizer else None)
    call = timed_call(workload, phase)
    call.once()  # the optimizer's state exists, as after warm-up
    counted = count_flops(call.target, call.arguments())
    assert counted.flops == lenet_flops(phase, 3)


def test_the_hand_count_itself():
    # conv1 235,200 + conv2 480,000 + fc 96,000 + 20,160 + 1,680 per sample, 2 FLOPs per multiply-add
    assert lenet_flops(Phase.FORWARD_TRAIN, 1) == 833_040
    # weight gradients = forward again; input gradients too, but not conv1's (its input needs none)
    assert lenet_flops(Phase.BACKWARD, 1) == 2 * 833_040 - 235_200 == 1_430_880
    assert lenet_flops(Phase.TRAIN_STEP, 10) == 10 * (833_040 + 1_430_880)
    assert lenet_flops(Phase.OPTIMIZER_STEP, 64) == 0


def test_ops_without_a_formula_are_listed_as_uncounted_never_silently_zero():
    workload = build_workload(EAGER, 2, SGD)
    call = timed_call(workload, Phase.TRAIN_STEP)
    call.once()
    counted = count_flops(call.target)
    assert set(counted.by_op) == {"aten.convolution", "aten.addmm", "aten.mm", "aten.convolution_backward"}
    names = {entry.split(" x")[0] for entry in counted.uncounted_list()}
    assert {"aten.relu", "aten.max_pool2d_with_indices", "aten.nll_loss_forward", "aten.add_"} <= names
    assert not names & {"aten.view", "aten.t", "aten.detach"}  # views do no work
    assert "aten.relu x4" in counted.uncounted_list()

    step = timed_call(workload, Phase.OPTIMIZER_STEP)
    only_uncounted = count_flops(step.target, step.arguments())
    assert only_uncounted.flops == 0 and only_uncounted.uncounted_list() == ("aten.add_ x20", "aten.mul_ x10")


def test_bytes_are_each_ops_input_and_output_sizes_and_views_move_nothing():
    a, b = torch.ones(8, 16), torch.ones(16, 4)
    counted = count_flops(lambda: torch.mm(a, b))
    assert counted.flops == 2 * 8 * 16 * 4
    assert counted.bytes_accessed == (8 * 16 + 16 * 4 + 8 * 4) * 4
    assert count_flops(lambda: a.view(16, 8).t()).bytes_accessed == 0
    # in place: reads both, writes the first
    assert count_flops(lambda: a.add_(a)).bytes_accessed == 2 * 8 * 16 * 4


# --- memory -----------------------------------------------------------------------------------------


def test_peaks_within_sums_events_inside_each_range_from_zero():
    events = [(1, 100), (2, 50), (3, -100), (5, 500), (6, 30), (7, -530), (9, 999)]
    assert peaks_within(events, [(1, 3), (5, 7), (8, 8), (0, 10)]) == [150, 530, 0, 50 + 999]
    assert peaks_within([], [(0, 1)]) == [0]


@pytest.mark.parametrize("phase", [Phase.FORWARD_INFERENCE, Phase.FORWARD_TRAIN, Phase.TRAIN_STEP])
def test_cpu_peak_memory_grows_with_batch_size_as_the_activations_predict(phase):
    peaks = {}
    for batch in (16, 256):
        with prepared(case(phase, batch)) as ready:
            peaks[batch] = cpu_peak(ready.call.target, ready.call.setup).peak_bytes
    per_sample = (peaks[256] - peaks[16]) / (256 - 16)
    estimate = activation_bytes_per_sample(phase)
    # Linear in the batch (what does not grow with it is small), and at least the activations
    # LeNet must hold; oneDNN's blocked conv1 output (6 channels padded to 16) adds up to ~1.9x.
    assert 14 <= peaks[256] / peaks[16] <= 17
    assert estimate <= per_sample <= 2.5 * estimate


def test_the_activation_estimate_follows_the_model_shapes():
    conv1 = 6 * 28 * 28 * 4
    assert activation_bytes_per_sample(Phase.FORWARD_INFERENCE) == 2 * conv1  # conv1 and its ReLU
    kept = (6 * 28 * 28 + 6 * 14 * 14 + 16 * 10 * 10 + 16 * 5 * 5 + 120 + 84 + 10) * 4
    assert activation_bytes_per_sample(Phase.FORWARD_TRAIN) == kept + (6 * 14 * 14 + 16 * 5 * 5) * 8
    assert activation_bytes_per_sample(Phase.BACKWARD) == 0


class FakeCuda:
    """torch.cuda's allocator statistics, scripted: each call allocates ``grow`` bytes on top of ``base``."""

    def __init__(self, base: int, grow: int):
        self.base, self.grow, self.allocated, self.peak, self.events = base, grow, base, base, []

    def synchronize(self):
        self.events.append("sync")

    def reset_peak_memory_stats(self):
        self.events.append("reset")
        self.peak = self.allocated

    def memory_allocated(self):
        return self.allocated

    def max_memory_allocated(self):
        return self.peak

    def max_memory_reserved(self):
        return 2 * self.peak

    def run(self):
        self.events.append("call")
        self.peak = max(self.peak, self.allocated + self.grow)


def test_cuda_peak_resets_after_the_setup_and_subtracts_what_was_live():
    cuda = FakeCuda(base=1000, grow=300)

    def setup():
        cuda.events.append("setup")
        cuda.peak = cuda.allocated + 10_000  # the set-up's own spike must not count

    peak = cuda_peak(cuda.run, setup, calls=2, cuda=cuda)
    assert peak.peak_bytes == 300 and peak.max_allocated_bytes == 1300 and peak.max_reserved_bytes == 2600
    assert cuda.events == ["setup", "sync", "reset", "call", "sync"] * 2


# --- the pass and the record ------------------------------------------------------------------------


def test_the_metrics_pass_gives_memory_and_flops_and_keeps_going_when_one_fails(monkeypatch):
    with prepared(case(Phase.FORWARD_TRAIN, 8)) as ready:
        measured = metrics_pass(ready)
        monkeypatch.setattr("lenet.metrics.measure.measure_peak", _raise(RuntimeError("profiler busy")))
        failed = metrics_pass(ready)
    info = measured.info(median_seconds=0.002)
    assert info.flops == lenet_flops(Phase.FORWARD_TRAIN, 8) and info.memory_peak_bytes > 0
    assert info.gflops_per_s == pytest.approx(info.flops / 0.002 / 1e9)
    assert info.memory_method == CPU_METHOD and info.memory_unavailable is None
    broken = failed.info(0.002)
    assert broken.memory_unavailable == "peak memory not measured: RuntimeError: profiler busy"
    assert broken.memory_peak_bytes is None and broken.flops == info.flops


def _raise(error):
    def fail(*args, **kwargs):
        raise error

    return fail


def test_achieved_gflops_needs_flops_and_a_time():
    assert achieved_gflops(2_000_000_000, 0.5) == 4.0
    assert achieved_gflops(0, 0.5) is None and achieved_gflops(10, None) is None and achieved_gflops(10, 0.0) is None


def fake_peaks(device: str = "cpu", **identity) -> Peaks:
    return Peaks(
        identity={"device": device, "fingerprint": "abc123", "threads": 2, **identity},
        matmul_gflops={"fp32": 100.0, "bf16": 400.0},
        matmul_sweep={"fp32": {"512": 50.0, "1024": 100.0}, "bf16": {"512": 400.0}},
        bandwidth_gbs={"copy": 10.0, "triad": 12.0},
        array_bytes=64 << 20,
        method="fake",
        seconds=0.0,
    )


def test_with_peaks_gives_the_share_of_the_roof_of_the_variants_precision():
    info = MetricsInfo(flops=1000, gflops_per_s=20.0)
    fp32 = with_peaks(info, "fp32", fake_peaks(), "p.json")
    assert fp32.percent_of_peak == pytest.approx(20.0) and fp32.peak_gflops_kind == "fp32 matmul"
    assert fp32.peak_bandwidth_gbs == 12.0 and fp32.peak_bandwidth_kind == "triad" and fp32.peaks_file == "p.json"
    assert with_peaks(info, "amp_bf16", fake_peaks()).percent_of_peak == pytest.approx(5.0)
    fp16 = with_peaks(info, "amp_fp16", fake_peaks())
    assert fp16.percent_of_peak is None and fp16.peak_unavailable == "no amp_fp16 matmul peak was measured on cpu"
    assert with_peaks(info, "fp32", "peaks not measured: OSError").peak_unavailable == "peaks not measured: OSError"


def test_records_with_metrics_and_compile_cost_round_trip_and_old_runs_load_without_them():
    metrics = MetricsInfo(
        memory_peak_bytes=123,
        memory_method=CPU_METHOD,
        flops=1000,
        flops_uncounted=("aten.relu x4",),
        bytes_accessed=400,
        gflops_per_s=1.5,
        percent_of_peak=0.25,
        metrics_seconds=0.3,
    )
    cost = CompileCostInfo(compile_cold_seconds=20.0, compile_warm_seconds=2.0, break_even_steps="never")
    record = Record.for_case(case(Phase.TRAIN_STEP), samples_per_s=10.0, metrics=metrics, compile_cost=cost)
    info = json.loads(json.dumps(record.to_extra_info()))
    assert info["flops_uncounted"] == ["aten.relu x4"] and info["break_even_steps"] == "never"
    assert "memory_unavailable" not in info and "peak_gflops" not in info  # absent values are left out
    assert Record.from_extra_info(info) == record
    plain = Record.from_extra_info(Record.for_case(case(Phase.TRAIN_STEP)).to_extra_info())
    assert plain.metrics is None and plain.compile_cost is None


def test_an_unavailable_metric_is_its_reason_in_the_record():
    info = Measurement(memory="peak memory not measured: no profiler", flops="FLOPs not counted: x", seconds=0.1)
    extra = Record.for_case(case(Phase.BACKWARD), metrics=info.info(0.01)).to_extra_info()
    assert extra["memory_unavailable"] == "peak memory not measured: no profiler"
    assert extra["flops_unavailable"] == "FLOPs not counted: x" and "flops" not in extra


# --- peaks ------------------------------------------------------------------------------------------


def test_a_tiny_peak_measurement_has_every_figure():
    ident = {"device": "cpu", "fingerprint": "abc123", "threads": 1}
    peaks = measure_peaks(ident, sizes=(32, 64), array_bytes=1 << 16, repeats=1)
    assert set(peaks.matmul_gflops) == {"fp32", "bf16"} and set(peaks.matmul_sweep["fp32"]) == {"32", "64"}
    assert peaks.matmul_gflops["fp32"] == max(peaks.matmul_sweep["fp32"].values()) > 0
    assert set(peaks.bandwidth_gbs) == {"copy", "triad"} and all(v > 0 for v in peaks.bandwidth_gbs.values())
    assert Peaks.from_json(peaks.to_json()) == peaks


def test_best_seconds_is_the_fastest_call_after_a_warm_up():
    ticks = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])
    calls = []
    assert best_seconds(lambda: calls.append(1), 3, lambda: None, clock=lambda: next(ticks)) == 1.0
    assert len(calls) == 4  # one warm-up call, then three timed


def test_bandwidth_arrays_are_four_times_the_cache_within_bounds():
    assert array_bytes_for(32 << 20, None) == (128 << 20, [])
    size, notes = array_bytes_for(480 << 20, None)
    assert size == 512 << 20 and "under 4x the last-level cache" in notes[0]
    assert array_bytes_for(1 << 20, None)[0] == 64 << 20
    assert array_bytes_for(32 << 20, free=256 << 20)[0] == 32 << 20  # at most an eighth of the free memory
    assert "assumed" in array_bytes_for(None, None)[1][0]


def test_the_cache_is_read_when_it_matches_and_measured_again_when_not(tmp_path):
    measured = []

    def measure(ident):
        measured.append(dict(ident))
        return fake_peaks(**{k: v for k, v in ident.items() if k != "device"})

    ident = {"device": "cpu", "fingerprint": "abc123", "threads": 2, "torch_version": "2.13.0"}
    peaks, path, note = cached_peaks(tmp_path, ident, measure)
    assert path == tmp_path / "abc123-t2-cpu.json" and path.is_file() and "no cached peaks" in note
    again, _, note = cached_peaks(tmp_path, ident, measure)
    assert again == peaks and note.startswith("read ") and len(measured) == 1

    upgraded = {**ident, "torch_version": "2.14.0"}
    _, _, note = cached_peaks(tmp_path, upgraded, measure)
    assert "torch_version '2.13.0' -> '2.14.0'" in note and len(measured) == 2
    assert json.loads(path.read_text())["identity"]["torch_version"] == "2.14.0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not JSON"),
        ('{"schema": "other/1"}', "schema is 'other/1'; expected lenet-bench-peaks/1"),
        ("[]", "schema is 'list'"),
        (json.dumps({"schema": PEAKS_SCHEMA}), "KeyError"),
        ("BAD_BANDWIDTH", "bandwidth_gbs.copy is -1.0; expected a positive number"),
    ],
)
def test_a_bad_cache_file_says_what_is_wrong_and_is_measured_again(tmp_path, text, message):
    ident = {"device": "cpu", "fingerprint": "abc123", "threads": 2}
    path = peaks_path(tmp_path, ident)
    if text == "BAD_BANDWIDTH":
        document = json.loads(fake_peaks().to_json())
        document["bandwidth_gbs"]["copy"] = -1.0
        text = json.dumps(document)
    path.write_text(text)
    with pytest.raises(PeaksFileError, match=r"abc123-t2-cpu\.json") as raised:
        load_peaks(path, ident)
    assert message in str(raised.value)
    peaks, _, note = cached_peaks(tmp_path, ident, lambda i: fake_peaks())
    assert message in note and "measured again" in note and load_peaks(path, ident) == peaks


@pytest.mark.parametrize(
    "ident",
    [
        {"device": "cpu", "fingerprint": "../../etc", "threads": 2},
        {"device": "cpu/x", "fingerprint": "abc", "threads": 2},
        {"device": "cpu", "fingerprint": "abc", "threads": 0},
    ],
)
def test_a_fingerprint_or_device_that_cannot_name_a_file_is_refused(tmp_path, ident):
    with pytest.raises(UnsafeNameError):
        peaks_path(tmp_path, ident)


def test_the_peaks_cache_gives_a_reason_instead_of_raising(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    cache = PeaksCache(blocker / "peaks", 1, measure=lambda ident: fake_peaks())
    found = cache.get("cpu")
    assert isinstance(found, str) and found.startswith("peaks not measured: ")
    assert cache.get("cpu") is found  # asked once per device


# --- compile cost and break-even --------------------------------------------------------------------


def test_break_even_steps_on_literal_numbers():
    assert break_even_steps(10.0, 0.005, 0.003) == 5000
    assert break_even_steps(10.0, 0.004, 0.003) == 10_000
    assert break_even_steps(1.0, 0.3, 0.1) == 5
    assert break_even_steps(0.0, 0.2, 0.1) == 1
    assert break_even_steps(10.0, 0.003, 0.003) == "never"
    assert break_even_steps(10.0, 0.003, 0.004) == "never"
    with pytest.raises(ValueError, match=r"compile cost -1\.0 must be"):
        break_even_steps(-1.0, 0.1, 0.05)
    with pytest.raises(ValueError, match="eager step nan"):
        break_even_steps(1.0, math.nan, 0.05)


def child(seconds: float, hits: int = 0) -> ChildResult:
    return ChildResult(seconds, 2, 1, 0, 0, hits, 2 - hits, seconds + 3)


def test_cost_info_prefers_the_cold_cost_and_says_what_is_missing():
    cold_warm = (child(20.0), child(2.0, hits=2))
    info = cost_info(cold_warm, 30.0, compiled_median=0.003, eager_median=0.005, eager_name="e")
    assert (info.break_even_steps, info.break_even_warm_steps, info.break_even_basis) == (10_000, 1000, "cold")
    assert info.compile_cold_seconds == 20.0 and info.compile_warm_cache_hits == 2 and info.compile_graphs == 1
    in_process = cost_info(None, 30.0, 0.003, 0.005, "e")
    assert in_process.break_even_steps == 15_000 and in_process.break_even_basis == "in-process"
    assert in_process.compile_cold_seconds is None and in_process.compile_cost_unavailable is None
    missing = cost_info("compile cost not measured: boom", 30.0, 0.003, None, "forward_inference-cpu-x-b64")
    assert missing.compile_cost_unavailable == "compile cost not measured: boom"
    assert (
        missing.break_even_unavailable == "the eager counterpart forward_inference-cpu-x-b64 was not timed in this run"
    )
    assert cost_info(None, 30.0, 0.003, 0.002, "e").break_even_steps == "never"


def test_the_eager_counterpart_changes_only_the_compile_mode():
    compiled = case(Phase.TRAIN_STEP, 64, parse_variant("cpu-channels_last-amp_bf16-compile"))
    assert eager_counterpart(compiled).name == "train_step-cpu-channels_last-amp_bf16-eager-sgd-b64"


def test_the_run_end_adds_peaks_compile_cost_and_break_even(tmp_path):
    compiled_variant = parse_variant("cpu-contiguous-fp32-compile")
    runs = []

    def runner(c, threads, cache_dir):
        runs.append((c.name, threads, cache_dir))
        return child(20.0) if len(runs) % 2 else child(2.0, hits=2)

    metrics_run = MetricsRun(PeaksCache(tmp_path, 2, measure=lambda ident: fake_peaks()), True, 2, runner)
    cases = {}
    for variant, median, compile_seconds in ((EAGER, 0.005, 0.0), (compiled_variant, 0.003, 30.0)):
        c = case(Phase.FORWARD_INFERENCE, 64, variant)
        metrics = MetricsInfo(flops=lenet_flops(c.phase, 64), gflops_per_s=10.0)
        cases[variant.compile] = c
        metrics_run.add(c, Record.for_case(c, compile_seconds=compile_seconds, metrics=metrics), median)
    done = metrics_run.finish()
    saved = {name: done[c].to_extra_info() for name, c in cases.items()}
    assert saved["eager"]["percent_of_peak"] == pytest.approx(10.0) and "break_even_steps" not in saved["eager"]
    compiled = saved["compile"]
    assert compiled["compile_cold_seconds"] == 20.0 and compiled["compile_warm_seconds"] == 2.0
    assert compiled["break_even_steps"] == 10_000 and compiled["break_even_basis"] == "cold"
    assert [name for name, _, _ in runs] == ["forward_inference-cpu-contiguous-fp32-compile-b64"] * 2
    assert runs[0][2] == runs[1][2] and runs[0][1] == 2  # warm reuses the cold process's cache
    assert any("break-even 10000 steps (cold)" in line for line in metrics_run.summary())


def test_a_failed_compile_process_is_a_reason_and_an_early_stop_measures_nothing(tmp_path):
    def failing(c, threads, cache_dir):
        raise RuntimeError("the compiling process exited 1: boom")

    c = case(Phase.FORWARD_INFERENCE, 64, parse_variant("cpu-contiguous-fp32-compile"))
    for stopped, reason in ((False, "compile cost not measured: the compiling process exited 1: boom"), (True, "")):
        metrics_run = MetricsRun(None, True, 1, failing)
        metrics_run.add(c, Record.for_case(c, compile_seconds=30.0), 0.003)
        extra = metrics_run.finish(stopped_early=stopped)[c].to_extra_info()
        assert reason in extra["compile_cost_unavailable"]
        assert extra["break_even_unavailable"].startswith("the eager counterpart")
    assert "stopped early" in extra["compile_cost_unavailable"]


@pytest.mark.slow
def test_a_cold_compile_misses_the_cache_and_a_warm_one_hits_it():
    """Real processes (about a minute here): batch 8, since torch.compile miscompiles LeNet at 16 on CPU."""
    from lenet.metrics.compile_cost import cold_and_warm

    cold, warm = cold_and_warm(case(Phase.FORWARD_INFERENCE, 8, parse_variant("cpu-contiguous-fp32-compile")), 1)
    assert cold.graphs >= 1 and cold.graph_breaks == 0 and cold.recompiles == 0
    assert cold.cache_misses >= 1 and cold.cache_hits == 0
    assert warm.cache_hits >= 1 and warm.compile_events >= 1


def test_metrics_info_fields_do_not_collide_with_other_record_keys():
    parts = [Record.KINDS, MetricsInfo.KINDS, CompileCostInfo.KINDS]
    from lenet.runs.record import InstructionInfo, TraceInfo

    parts += [TraceInfo.KINDS, InstructionInfo.KINDS]
    keys = [key for part in parts for key in part]
    assert len(keys) == len(set(keys))
    assert {f.name for f in dataclasses.fields(MetricsInfo)} == set(MetricsInfo.KINDS)


def test_the_memory_peak_record_is_plain_data():
    peak = MemoryPeak(peak_bytes=10, method=CPU_METHOD, calls=3)
    assert peak.max_allocated_bytes is None and peak.max_reserved_bytes is None


def test_a_run_stopped_early_reads_cached_peaks_but_measures_none(tmp_path):
    measured = []
    cache = PeaksCache(tmp_path, 2, measure=lambda ident: measured.append(ident) or fake_peaks())
    metrics_run = MetricsRun(cache, False, 2)
    c = case(Phase.FORWARD_TRAIN, 8)
    metrics_run.add(c, Record.for_case(c, metrics=MetricsInfo(flops=10, gflops_per_s=1.0)), 0.01)
    extra = metrics_run.finish(stopped_early=True)[c].to_extra_info()
    assert not measured and extra["peak_unavailable"].startswith("peaks not measured: FileNotFoundError")


def test_a_compiled_optimizer_step_gets_no_compile_cost_it_runs_no_compiled_code():
    runs = []
    metrics_run = MetricsRun(None, True, 1, lambda *args: runs.append(args) or child(1.0))
    c = case(Phase.OPTIMIZER_STEP, 64, parse_variant("cpu-contiguous-fp32-compile"))
    metrics_run.add(c, Record.for_case(c, compile_seconds=0.0), 0.001)
    extra = metrics_run.finish()[c].to_extra_info()
    assert not runs and "runs no compiled code" in extra["compile_cost_unavailable"]
    assert "break_even_steps" not in extra and "runs no compiled code" in extra["break_even_unavailable"]
    # its end-of-run line gives the one reason once
    assert (
        metrics_run.summary()[-1]
        == f"  {c.name}: the optimizer step runs no compiled code at the module scope (only its untimed set-up does)"
    )


def test_the_peaks_command_reads_the_cache_and_refuses_what_it_cannot_measure(tmp_path, capsys, monkeypatch):
    from lenet.cli import peaks as cli
    from lenet.metrics.peaks import identity, save_peaks

    threads = torch.get_num_threads()
    save_peaks(tmp_path, dataclasses.replace(fake_peaks(), identity=identity("cpu", threads)))
    assert cli.main(["--device", "cpu", "--peaks-dir", str(tmp_path), "--threads", str(threads)]) == 0
    out = capsys.readouterr().out
    assert f"read {peaks_path(tmp_path, identity('cpu', threads))}" in out and "fp32 matmul: 100.0 GFLOP/s" in out
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["--device", "cuda", "--peaks-dir", str(tmp_path)]) == 4  # done in part: docs/exit-codes.md
    assert "CUDA is not available here" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        cli.main(["--device", "gpu"])
    assert raised.value.code == 2 and "device 'gpu' is unknown; choose from cpu, cuda, all" in capsys.readouterr().err


def test_a_step_scope_optimizer_step_runs_compiled_code_and_pays_back_against_eager():
    runs = []
    metrics_run = MetricsRun(None, True, 1, lambda *args: runs.append(args) or child(1.0))
    step = case(Phase.OPTIMIZER_STEP, 64, parse_variant("cpu-contiguous-fp32-compile-step"))
    eager = case(Phase.OPTIMIZER_STEP, 64, parse_variant("cpu-contiguous-fp32-eager"))
    assert eager_counterpart(step) == eager  # the eager counterpart has no scope: module
    for c, median in ((step, 0.001), (eager, 0.002)):
        metrics_run.add(c, Record.for_case(c, compile_seconds=5.0), median)
    done = metrics_run.finish()
    extras = [done[step].to_extra_info(), done[eager].to_extra_info()]
    assert [args[0] for args in runs] == [step, step]  # cold, then warm
    assert extras[0]["compile_cold_seconds"] == 1.0 and extras[0]["break_even_steps"] == 1000
