"""Trace recording: real torch.profiler passes over a tiny LeNet workload, and what they leave on disk."""

import csv
import gzip
import json
from pathlib import Path

import pytest
import torch
from torch.profiler import ProfilerActivity, profile

from lenet.options import TraceSettings
from lenet.profiling import (
    OPERATOR_COLUMNS,
    TraceRun,
    averages_within,
    new_run_name,
    operator_rows,
    phase_label,
    record_trace,
)
from lenet.variants import Case, Phase, parse_optimizer, parse_variant
from lenet.workload import build_workload, timed_call

EAGER = parse_variant("cpu-contiguous-fp32-eager")
LENET_OPS = {"aten::conv2d", "aten::linear", "aten::addmm", "aten::max_pool2d_with_indices", "aten::relu"}


def case_of(phase: Phase, batch_size: int = 2, variant=EAGER) -> Case:
    return Case(phase, variant, batch_size, parse_optimizer("sgd") if phase.uses_optimizer else None)


TWO_STEPS = TraceSettings(active=2)


def record(tmp_path, phase: Phase, settings: TraceSettings = TWO_STEPS, **kwargs):
    case = case_of(phase)
    workload = build_workload(case.variant, case.batch_size, case.optimizer)
    call = timed_call(workload, phase)
    target, setup = call.target, call.setup
    run = TraceRun(tmp_path / "traces", settings, name="run")
    return run.record(case, target, setup, **kwargs)


def read_trace(path):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return json.load(handle)


@pytest.mark.parametrize("use_gzip", [True, False], ids=["json.gz", "json"])
def test_a_train_step_trace_is_chrome_json_with_lenets_operators(tmp_path, use_gzip):
    result = record(tmp_path, Phase.TRAIN_STEP, TraceSettings(active=2, use_gzip=use_gzip))
    assert result.ok, result.errors
    assert result.folder == tmp_path / "traces" / "run" / "train_step-cpu-contiguous-fp32-eager-sgd-b2"
    name = result.trace_file.name
    assert name.startswith("cpu-contiguous-fp32-eager.")  # the variant id is the worker name
    assert name.endswith(".pt.trace.json.gz" if use_gzip else ".pt.trace.json")
    if use_gzip:
        assert result.trace_file.read_bytes()[:2] == b"\x1f\x8b"
    trace = read_trace(result.trace_file)
    events = trace["traceEvents"]
    complete = [e for e in events if e.get("ph") == "X"]
    assert all({"name", "ts", "dur", "pid", "tid"} <= set(e) for e in complete)
    names = {e["name"] for e in complete}
    assert names >= LENET_OPS
    # two recorded steps (the warm-up step is discarded), each with its phase label inside
    assert sorted(n for n in names if n.startswith("ProfilerStep#")) == ["ProfilerStep#1", "ProfilerStep#2"]
    assert sum(e["name"] == "lenet.train_step" for e in complete) == 2
    shapes = [e["args"]["Input Dims"] for e in complete if e["name"] == "aten::conv2d"]
    assert [2, 1, 32, 32] in [dims[0] for dims in shapes]


def test_operator_tables_count_per_recorded_step_with_shapes_memory_and_flops(tmp_path):
    result = record(tmp_path, Phase.TRAIN_STEP, TraceSettings(active=2))
    document = json.loads((result.folder / "operators.json").read_text())
    assert document["schema"] == "lenet-bench-operators/1" and document["steps"] == 2
    rows = document["operators"]
    assert set(rows[0]) == set(OPERATOR_COLUMNS)
    by_name: dict[str, list[dict]] = {}
    for row in rows:
        by_name.setdefault(row["name"], []).append(row)
    # conv1 and conv2 are two rows (grouped by input shape), each called once per step
    convs = sorted(by_name["aten::conv2d"], key=lambda r: r["input_shapes"])
    assert [r["calls"] for r in convs] == [2, 2]
    assert json.loads(convs[0]["input_shapes"])[0] == [2, 1, 32, 32]
    assert all(r["flops"] > 0 for r in convs)  # the profiler knows convolution's FLOPs
    assert all(r["flops"] is None for r in by_name["aten::relu"])  # and has no formula for relu
    assert sum(r["calls"] for r in by_name["aten::max_pool2d_with_indices"]) == 4
    assert any(r["self_cpu_memory_bytes"] > 0 for r in by_name["aten::max_pool2d_with_indices"])
    assert all(r["self_cpu_us"] >= 0 and r["cpu_total_us"] >= r["self_cpu_us"] for r in rows)
    assert by_name["Optimizer.step#SGD.step"][0]["kind"] == "annotation"
    assert not any(n.startswith(("ProfilerStep", "lenet.")) for n in by_name)  # the pass's own labels
    assert [r["self_cpu_us"] for r in rows] == sorted((r["self_cpu_us"] for r in rows), reverse=True)
    with open(result.folder / "operators.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["name"] for r in table] == [r["name"] for r in rows]
    assert {r["steps"] for r in table} == {"2"}
    meta = json.loads((result.folder / "profile.json").read_text())
    assert meta["variant"] == "cpu-contiguous-fp32-eager" and meta["phase"] == "train_step"
    assert meta["optimizer"] == "sgd" and meta["batch_size"] == 2 and meta["steps"] == 2
    assert meta["torch_version"] == torch.__version__ and meta["activities"] == ["CPU"]
    assert meta["trace_file"] == result.trace_file.name and meta["errors"] == []
    assert meta["settings"]["record_shapes"] and meta["settings"]["profile_memory"] and meta["settings"]["with_flops"]


def test_a_phase_with_set_up_counts_only_the_phase_in_its_table(tmp_path):
    """The backward trace shows its untimed set-up (the forward) in the trace, not in the table."""
    result = record(tmp_path, Phase.BACKWARD)
    assert result.ok, result.errors
    names = {r["name"] for r in json.loads((result.folder / "operators.json").read_text())["operators"]}
    assert "aten::convolution_backward" in names
    assert "aten::conv2d" not in names and "aten::max_pool2d_with_indices" not in names
    events = {e["name"] for e in read_trace(result.trace_file)["traceEvents"] if e.get("ph") == "X"}
    assert {"lenet.setup", "lenet.backward", "aten::conv2d"} <= events


def test_phase_filtered_aggregation_equals_key_averages():
    """averages_within() is key_averages(group_by_input_shape=True) restricted to the phase's ranges."""
    workload = build_workload(EAGER, 2, parse_optimizer("sgd"))
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        for _ in range(2):
            with torch.profiler.record_function(phase_label(Phase.TRAIN_STEP)):
                workload.train_step()
    ours = operator_rows(averages_within(prof.events(), phase_label(Phase.TRAIN_STEP)))
    theirs = operator_rows(prof.key_averages(group_by_input_shape=True))
    key = lambda r: (r["name"], r["input_shapes"])  # noqa: E731
    assert sorted(ours, key=key) == sorted(theirs, key=key)


def test_a_trace_that_fails_to_save_is_reported_and_the_table_kept(tmp_path):
    """A second export of one profile raises 'Trace is already saved' in torch: recorded, not raised."""

    def export_twice(prof):
        prof.export_chrome_trace(str(tmp_path / "first.pt.trace.json"))
        prof.export_chrome_trace(str(tmp_path / "second.pt.trace.json"))

    result = record(tmp_path, Phase.FORWARD_INFERENCE, export=export_twice)
    assert not result.ok
    assert result.trace_file is None
    assert len(result.errors) == 1 and result.errors[0].startswith("trace not saved: ")
    assert "already saved" in result.errors[0]
    assert (result.folder / "operators.json").is_file()
    meta = json.loads((result.folder / "profile.json").read_text())
    assert meta["trace_file"] is None and meta["errors"] == result.errors
    info = result.info()
    assert info.trace_error == result.errors[0] and info.trace_dir == str(result.folder.resolve())


def test_runs_get_fresh_folders_and_never_overwrite(tmp_path):
    first, second = new_run_name(), new_run_name()
    assert first != second and len(first.split("-")) == 3
    result = record(tmp_path, Phase.FORWARD_INFERENCE)
    assert sorted(p.name for p in result.folder.iterdir()) == sorted(
        ["operators.csv", "operators.json", "profile.json", result.trace_file.name]
    )
    with pytest.raises(FileExistsError):
        record(tmp_path, Phase.FORWARD_INFERENCE)  # the same case in the same run
    with pytest.raises(FileExistsError, match="already holds files"):
        record_trace(lambda: None, result.folder, phase=Phase.FORWARD_INFERENCE, worker="w")


def test_case_folders_take_the_cases_one_name():
    assert TraceRun(Path("t"), name="r").folder / case_of(Phase.BACKWARD, 64).name == Path(
        "t/r/backward-cpu-contiguous-fp32-eager-b64"
    )
    assert case_of(Phase.TRAIN_STEP, 1).name == "train_step-cpu-contiguous-fp32-eager-sgd-b1"


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available: the device-trace check needs a GPU")
@pytest.mark.parametrize("phase", [Phase.TRAIN_STEP, Phase.BACKWARD])
def test_a_cuda_trace_records_kernels_and_device_time(tmp_path, phase):
    """On a GPU (scripts/gpu_bench.sh runs it): CUDA activity, kernels in the trace, device time in the
    table (for backward too, whose kernels must end inside its range), a device row in the timeline."""
    from lenet.analysis.operators import main_time, step_timeline
    from lenet.analysis.trace_load import load_traces

    case = Case(phase, parse_variant("cuda-contiguous-fp32-eager"), 8, parse_optimizer("sgd"))
    workload = build_workload(case.variant, case.batch_size, case.optimizer)
    call = timed_call(workload, phase)
    target, setup = call.target, call.setup
    result = TraceRun(tmp_path, TWO_STEPS, name="run").record(case, target, setup, workload.synchronize)
    assert result.ok, result.errors
    assert json.loads((result.folder / "profile.json").read_text())["activities"] == ["CPU", "CUDA"]
    assert any(e.get("cat") == "kernel" for e in read_trace(result.trace_file)["traceEvents"])
    [trace] = load_traces([result.folder]).traces
    assert main_time(trace.operators) == "self_device_us"
    backward = trace.operators[trace.operators["name"] == "aten::convolution_backward"]
    assert (backward["device_total_us"] > 0).all() and len(backward) == 2
    assert "device" in set(step_timeline(trace.chrome, trace.phase)["segment"])
