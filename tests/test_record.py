"""The result record: what the suites write is what the loader reads back, old runs included."""

import json
import math
from pathlib import Path

import pytest

from lenet.runs.record import SCHEMA, InstructionInfo, Record, RecordError, TraceInfo, is_record
from lenet.variants import Case, Phase, parse_optimizer, parse_variant

FIXTURE_RUN = (
    Path(__file__).parent / "fixtures/runs/lenet-cpu/Linux-CPython-3.11-64bit/0001_5adf536_20261127_121749.json"
)
CASE = Case(Phase.TRAIN_STEP, parse_variant("cpu-channels_last-fp32-eager"), 64, parse_optimizer("adam_fused"))


def test_a_record_round_trips_through_extra_info_and_json():
    record = Record.for_case(
        CASE,
        timer="time.perf_counter",
        torch_threads=2,
        samples_per_s=1000.0,
        compile_seconds=0.0,
        trace=TraceInfo(trace_dir="t", trace_file="x.pt.trace.json.gz", trace_seconds=0.1, trace_bytes=10),
        counts=InstructionInfo(1e6, 0.001, (1e6, 1.001e6), 3),
    )
    info = json.loads(json.dumps(record.to_extra_info()))
    assert info["schema"] == SCHEMA and info["variant"] == "cpu-channels_last-fp32-eager"
    assert info["optimizer"] == "adam_fused" and info["memory_format"] == "channels_last"
    assert info["instructions_repeats"] == [1e6, 1.001e6] and "instructions_unavailable" not in info
    assert Record.from_extra_info(info) == record
    assert record.case_name == CASE.name == "train_step-cpu-channels_last-fp32-eager-adam_fused-b64"


def test_optional_passes_appear_only_when_they_ran():
    plain = Record.for_case(CASE).to_extra_info()
    assert not any(key.startswith(("trace_", "instructions")) for key in plain)
    unavailable = Record.for_case(CASE, counts=InstructionInfo.unavailable("no valgrind")).to_extra_info()
    assert unavailable["instructions_unavailable"] == "no valgrind" and "instructions" not in unavailable


def test_runs_saved_before_the_record_still_load():
    run = json.loads(FIXTURE_RUN.read_text())
    records = [Record.from_extra_info(bench["extra_info"]) for bench in run["benchmarks"]]
    assert {r.schema for r in records} == {"lenet-bench/1"}
    assert {r.phase for r in records} == {p.value for p in Phase}
    assert all(r.batch_size in (2, 8) and r.timer for r in records)


def test_unknown_keys_are_kept_as_read():
    info = {**Record.for_case(CASE).to_extra_info(), "gpu_temperature_c": 61}
    record = Record.from_extra_info(info)
    assert record.extra == {"gpu_temperature_c": 61} and record.to_extra_info()["gpu_temperature_c"] == 61


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("variant", {"a": 1}, "extra_info['variant'] is dict {'a': 1}; expected text"),
        ("variant", None, "extra_info['variant'] is missing; expected text"),
        ("batch_size", "64", "extra_info['batch_size'] is str '64'; expected an integer"),
        ("batch_size", True, "extra_info['batch_size'] is True; expected an integer"),
        ("samples_per_s", math.nan, "extra_info['samples_per_s'] is nan; expected a finite number"),
        ("samples_per_s", math.inf, "expected a finite number"),
        ("trace_bytes", 1.5, "extra_info['trace_bytes'] is float 1.5; expected an integer"),
        ("schema", "lenet-bench/99", "extra_info['schema'] is 'lenet-bench/99'; expected one of lenet-bench/1"),
    ],
)
def test_a_wrong_value_names_its_key_and_what_was_expected(key, value, message):
    info = Record.for_case(CASE, samples_per_s=1.0).to_extra_info()
    info[key] = value
    with pytest.raises(RecordError) as raised:
        Record.from_extra_info(info)
    assert message in str(raised.value)


def test_is_record_tells_ours_from_other_extra_info():
    assert is_record(Record.for_case(CASE).to_extra_info())
    assert not is_record({}) and not is_record({"schema": 3}) and not is_record([])


def test_reading_drops_a_bad_optional_value_and_refuses_a_bad_case():
    info = {**Record.for_case(CASE, samples_per_s=1.0).to_extra_info(), "samples_per_s": "fast", "trace_bytes": -0.5}
    record, problems = Record.read(info)
    assert record is not None and record.samples_per_s is None and record.trace is None
    assert [p.key for p in problems] == ["samples_per_s", "trace_bytes"]
    record, problems = Record.read({**info, "phase": ["train_step"]})
    assert record is None and problems[-1].key == "phase"


def test_the_scope_and_what_dynamo_did_round_trip_and_older_runs_read_without_them():
    step_case = Case(Phase.TRAIN_STEP, parse_variant("cpu-contiguous-fp32-compile-step"), 64, parse_optimizer("sgd"))
    record = Record.for_case(
        step_case,
        graph_breaks=3,
        graph_break_reasons=("Unsupported Tensor.backward() call",),
        recompiles=1,
        recompile_reasons=("len(self.state) != 10",),
    )
    info = json.loads(json.dumps(record.to_extra_info()))
    assert info["scope"] == "step" and info["graph_break_reasons"] == ["Unsupported Tensor.backward() call"]
    assert Record.from_extra_info(info) == record
    assert record.case_name == step_case.name == "train_step-cpu-contiguous-fp32-compile-step-sgd-b64"
    assert Record.for_case(CASE).scope == "module"
    run = json.loads(FIXTURE_RUN.read_text())
    old = Record.from_extra_info(run["benchmarks"][0]["extra_info"])
    assert old.scope is None and old.graph_breaks is None and old.recompiles is None
