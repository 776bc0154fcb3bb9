"""Traces in the report: loading the committed fixture traces, tables, diffs, timelines and bad input."""

import gzip
import json
import shutil
from io import StringIO
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from lenet.analysis import blocks, plots, trace_tables
from lenet.analysis.operators import diff_traces, main_time, operator_diff, pair_traces, step_timeline, top_operators
from lenet.analysis.report import build_report, write_report
from lenet.analysis.trace_load import PER_STEP, Trace, TraceError, load_traces, newest_run, read_chrome_trace
from lenet.runs.files import read_runs

FIXTURES = Path(__file__).parent / "fixtures"
TRACES = FIXTURES / "traces"
RUN_A = TRACES / "20261127-124421-6815fe"  # eager and channels_last, forward_inference
RUN_B = TRACES / "20261127-124427-2af05b"  # eager forward_inference and train_step
EAGER_FI = "cpu-contiguous-fp32-eager-forward_inference-b2"
CHANNELS_LAST_FI = "cpu-channels_last-fp32-eager-forward_inference-b2"
TRAIN_STEP = "cpu-contiguous-fp32-eager-train_step-sgd-b2"


@pytest.fixture(scope="module")
def traces():
    return load_traces([TRACES])


def by_case(trace_set, case, run=None):
    [trace] = [t for t in trace_set.traces if t.case == case and (run is None or t.run == run)]
    return trace


def ops(rows):
    """A small operator table: (name, calls per step, self CPU µs per step)."""
    frame = pd.DataFrame(rows, columns=["name", "calls", "self_cpu_us"])
    return frame.assign(input_shapes="", kind="operator")


def test_fixture_traces_load_with_per_step_tables(traces):
    assert traces.problems == []
    assert sorted(t.name for t in traces.traces) == [
        f"{RUN_A.name}/{CHANNELS_LAST_FI}",
        f"{RUN_A.name}/{EAGER_FI}",
        f"{RUN_B.name}/{EAGER_FI}",
        f"{RUN_B.name}/{TRAIN_STEP}",
    ]
    step = by_case(traces, TRAIN_STEP)
    assert step.title == "cpu-contiguous-fp32-eager · train_step (sgd) · batch 2"
    assert step.meta["steps"] == 2 and step.torch_version
    assert step.trace_file.name.endswith(".pt.trace.json.gz")
    convs = step.operators[step.operators["name"] == "aten::conv2d"]
    assert list(convs["calls"]) == [1.0, 1.0]  # once per step each, after dividing by the 2 recorded steps
    raw = json.loads((step.folder / "operators.json").read_text())["operators"]
    first = next(r for r in raw if r["name"] == "aten::conv2d")
    ours = convs[convs["input_shapes"] == first["input_shapes"]].iloc[0]
    assert ours["self_cpu_us"] == pytest.approx(first["self_cpu_us"] / 2)
    assert newest_run(TRACES) == RUN_B


def test_top_operators_are_the_largest_with_their_share(traces):
    step = by_case(traces, TRAIN_STEP)
    top = top_operators(step.operators, 5)
    assert len(top) == 5
    assert list(top["self_cpu_us"]) == sorted(step.operators["self_cpu_us"], reverse=True)[:5]
    assert top["share"].iloc[0] == pytest.approx(top["self_cpu_us"].iloc[0] / step.operators["self_cpu_us"].sum())
    table = trace_tables.top_table(top)
    assert len(table.rows) == 5
    assert table.header[:4] == ("operator", "input shapes", "calls", "self CPU (µs)")
    assert "self device (µs)" not in table.header  # a CPU trace: no device columns


def test_diff_on_literal_tables_has_known_answers():
    before = ops([("aten::conv2d", 2, 100.0), ("aten::relu", 4, 10.0), ("aten::mm", 1, 50.0), ("aten::gone", 1, 5.0)])
    after = ops([("aten::conv2d", 2, 60.0), ("aten::relu", 4, 10.5), ("aten::mm", 1, 80.0), ("aten::new", 3, 7.0)])
    diff = operator_diff(before, after).set_index("name")
    assert list(diff.index) == ["aten::conv2d", "aten::mm", "aten::new", "aten::gone", "aten::relu"]  # by |Δ|
    assert diff.loc["aten::conv2d", "delta_us"] == pytest.approx(-40.0)
    assert diff.loc["aten::conv2d", "ratio"] == pytest.approx(0.6)
    assert diff.loc["aten::conv2d", "change"] == "faster"
    assert diff.loc["aten::mm", "change"] == "slower" and diff.loc["aten::mm", "ratio"] == pytest.approx(1.6)
    assert diff.loc["aten::relu", "change"] == "same"  # +5% is within ±10%
    assert diff.loc["aten::new", "change"] == "new" and diff.loc["aten::new", "delta_us"] == pytest.approx(7.0)
    assert diff.loc["aten::gone", "change"] == "gone" and diff.loc["aten::gone", "delta_us"] == pytest.approx(-5.0)
    assert np.isnan(diff.loc["aten::new", "calls_before"]) and diff.loc["aten::new", "calls_after"] == 3


def test_diff_sums_input_shapes_of_one_operator():
    before = ops([("aten::conv2d", 1, 30.0), ("aten::conv2d", 1, 70.0)])
    after = ops([("aten::conv2d", 1, 50.0)])
    [row] = operator_diff(before, after).to_dict("records")
    assert (row["calls_before"], row["before_us"], row["after_us"], row["change"]) == (2, 100.0, 50.0, "faster")


def device_trace(case: str, conv_device_us: float, kernel_device_us: float) -> Trace:
    """A trace of a device run, as literal rows: a launching operator and its kernel."""
    frame = ops([("aten::conv2d", 1, 40.0), ("void implicit_gemm_kernel", 1, 0.0)])
    for column in PER_STEP:
        if column not in frame:
            frame[column] = 0.0
    frame["self_device_us"] = [conv_device_us, kernel_device_us]
    return Trace(Path(case), "run", case, {"variant": case}, frame, None)


def test_device_traces_are_read_and_diffed_by_device_time():
    before, after = device_trace("a", 0.0, 90.0), device_trace("b", 0.0, 45.0)
    assert main_time(before.operators) == "self_device_us"
    assert main_time(ops([("aten::relu", 1, 1.0)]).assign(self_device_us=0.0)) == "self_cpu_us"
    top = top_operators(before.operators, 1, by="self_device_us")
    assert top["name"].tolist() == ["void implicit_gemm_kernel"] and top["share"].iloc[0] == pytest.approx(1.0)
    header = trace_tables.top_table(top, "self_device_us").header
    assert "self device (µs)" in header and "share of self device" in header
    [diff] = diff_traces([before], [after], [])
    assert diff.by == "self_device_us"
    row = diff.rows.set_index("name").loc["void implicit_gemm_kernel"]
    assert (row["before_us"], row["after_us"], row["change"]) == (90.0, 45.0, "faster")
    text = blocks.markdown(trace_tables.trace_blocks([before, after], [diff]))
    assert "Self device per step 0.09 ms → 0.045 ms (0.50×)" in text
    assert "operator rows by self device time" in text


def test_two_variants_and_two_runs_pair_as_expected(traces):
    problems: list[str] = []
    eager_a = load_traces([RUN_A / EAGER_FI]).traces
    channels_last = load_traces([RUN_A / CHANNELS_LAST_FI]).traces
    [variants] = diff_traces(eager_a, channels_last, problems)
    assert variants.title.startswith("cpu-contiguous-fp32-eager · forward_inference · batch 2 → cpu-channels_last")
    assert "aten::conv2d" in set(variants.rows["name"])
    runs = pair_traces(load_traces([RUN_A]).traces, load_traces([RUN_B]).traces, problems)
    assert [(a.case, a.run, b.run) for a, b in runs] == [(EAGER_FI, RUN_A.name, RUN_B.name)]
    assert sorted(p.split(": ")[0].rsplit("/", 1)[-1] for p in problems) == [CHANNELS_LAST_FI, TRAIN_STEP]
    assert all("no trace of the same case on the other side" in p for p in problems)


def test_a_train_step_timeline_has_forward_backward_and_optimizer(traces):
    step = by_case(traces, TRAIN_STEP)
    events = step_timeline(step.chrome, step.phase)
    assert events.attrs["step"] in ("ProfilerStep#1", "ProfilerStep#2")
    assert list(dict.fromkeys(events["segment"])) == ["forward", "backward", "optimizer"]
    assert (events["start_ms"] >= 0).all()
    assert (events["start_ms"] + events["duration_ms"] <= events.attrs["step_ms"] + 1e-6).all()
    assert list(events["start_ms"]) == sorted(events["start_ms"])  # one thread, operators in time order
    forward = events[events["segment"] == "forward"]
    assert forward["name"].tolist()[:2] == ["aten::conv2d", "aten::relu"]  # outermost operators, as the model runs
    assert {"convolution", "linear", "pooling", "relu", "loss"} <= set(forward["family"])
    assert events[events["segment"] == "backward"]["name"].str.startswith("autograd::engine").any()

    fig = plots.timeline_figure(events, title="step", step_ms=events.attrs["step_ms"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["forward", "backward", "optimizer"]
    bars = sum(len(c.get_paths()) for c in ax.collections)
    assert bars == len(events)  # a bar per top-level operator
    assert ax.get_xlim() == (0.0, pytest.approx(events.attrs["step_ms"]))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend[:4] == ["convolution", "linear", "pooling", "relu"]
    assert ax.get_xlabel() == "time since the step began (ms)"
    plt.close(fig)


def test_report_has_a_trace_section_only_when_traces_are_given(traces):
    frame = read_runs([FIXTURES / "runs" / "lenet-cpu"]).frame
    frame = frame[(frame["phase"] == "backward") & (frame["batch_size"] == 2)]  # few benchmark plots: fast
    plain = build_report(frame, image_formats=())
    assert "## Traces" not in plain.markdown and plain.traces_csv == "" and "<h2>Traces</h2>" not in plain.html()
    problems: list[str] = []
    diffs = diff_traces(load_traces([RUN_A]).traces, load_traces([RUN_B]).traces, problems)
    with_traces = build_report(frame, image_formats=("png",), traces=traces, trace_diffs=diffs, top_operators=3)
    assert with_traces.markdown.startswith(plain.markdown)
    section = with_traces.markdown[len(plain.markdown) :]
    assert section.count("\n### ") == 4 + 1  # a table per trace, and the diff
    assert "### cpu-contiguous-fp32-eager · train_step (sgd) · batch 2" in section
    diff_title = f"cpu-contiguous-fp32-eager · forward_inference · batch 2: run {RUN_A.name} → run {RUN_B.name}"
    assert f"### Diff: {diff_title}" in section
    assert "| operator | input shapes | calls | self CPU (µs) |" in section
    timelines = [f for f in with_traces.figures if f.stem.startswith("timeline-")]
    assert len(timelines) == 4
    table = pd.read_csv(StringIO(with_traces.traces_csv))
    assert set(table["case"]) == {EAGER_FI, CHANNELS_LAST_FI, TRAIN_STEP}
    page = with_traces.html()
    assert "<h2>Traces</h2>" in page and "One step over time" in page


def test_report_of_traces_alone(traces, tmp_path):
    report = build_report(read_runs([]).frame, image_formats=(), traces=traces)
    assert "No benchmarks to report." in report.markdown and "## Traces" in report.markdown
    written = write_report(report, tmp_path / "out", ("md", "csv"))
    assert sorted(p.name for p in written) == ["report.csv", "report.md", "traces.csv"]


# --- bad input: one clear line each, the other traces still shown ----------------------------------------


def copy_run(tmp_path) -> Path:
    target = tmp_path / "traces" / RUN_B.name
    shutil.copytree(RUN_B, target)
    return target


def trace_file(folder: Path) -> Path:
    [path] = folder.glob("*.pt.trace.json.gz")
    return path


def assert_one_problem(tmp_path, *needles):
    loaded = load_traces([tmp_path / "traces"])
    assert len(loaded.problems) == 1, loaded.problems
    for needle in needles:
        assert needle in loaded.problems[0]
    return loaded


def test_an_empty_folder_is_one_line(tmp_path):
    run = copy_run(tmp_path)
    (run / "cpu-contiguous-fp32-eager-backward-b2").mkdir()
    (tmp_path / "traces" / "20261127-000000-000000").mkdir()
    loaded = load_traces([tmp_path / "traces"])
    assert len(loaded.problems) == 2
    assert all(": empty folder; expected a trace (*.pt.trace.json[.gz])" in p for p in loaded.problems)
    assert len(loaded.traces) == 2


def test_a_truncated_trace_is_one_line_and_its_table_still_shown(tmp_path):
    case = copy_run(tmp_path) / TRAIN_STEP
    path = trace_file(case)
    path.write_bytes(path.read_bytes()[:1000])
    loaded = assert_one_problem(tmp_path, str(path), "truncated or not gzip", "expected a Chrome trace")
    step = by_case(loaded, TRAIN_STEP)
    assert step.chrome is None and not step.operators.empty
    assert len(loaded.traces) == 2


def test_truncated_plain_json_and_a_truncated_table_are_one_line_each(tmp_path):
    case = copy_run(tmp_path) / TRAIN_STEP
    gz = trace_file(case)
    plain = gz.with_name(gz.name[: -len(".gz")])
    plain.write_bytes(gzip.decompress(gz.read_bytes())[:5000])
    gz.unlink()
    loaded = load_traces([tmp_path / "traces"])
    assert len(loaded.problems) == 1 and "not valid JSON, truncated?" in loaded.problems[0]
    with pytest.raises(TraceError, match="expected a Chrome trace"):
        read_chrome_trace(plain)
    operators = case / "operators.json"
    operators.write_text(operators.read_text()[:300])
    loaded = load_traces([tmp_path / "traces"])
    assert any(str(operators) in p and "not valid JSON" in p for p in loaded.problems)
    assert [t.case for t in loaded.traces] == [EAGER_FI]  # nothing readable is left of the train step


def test_a_foreign_json_file_is_one_line(tmp_path):
    case = copy_run(tmp_path) / TRAIN_STEP
    trace_file(case).unlink()
    foreign = case / "cpu-contiguous-fp32-eager.1.pt.trace.json"
    foreign.write_text(json.dumps({"benchmarks": [], "machine_info": {}}))
    loaded = assert_one_problem(tmp_path, str(foreign), "JSON without a traceEvents list (found: benchmarks")
    assert len(loaded.traces) == 2
    (case / "profile.json").write_text(json.dumps({"schema": "something-else/2"}))
    loaded = load_traces([tmp_path / "traces"])
    expected = "profile.json: schema 'something-else/2'; expected lenet-bench's profile.json"
    assert any(expected in p for p in loaded.problems)


def test_a_trace_from_another_torch_version_is_noted_and_shown(tmp_path):
    run = copy_run(tmp_path)
    shutil.copytree(RUN_A, tmp_path / "traces" / RUN_A.name)
    meta_path = run / TRAIN_STEP / "profile.json"
    meta = json.loads(meta_path.read_text())
    current = meta["torch_version"]
    meta_path.write_text(json.dumps({**meta, "torch_version": "2.4.1+cpu"}))
    loaded = assert_one_problem(tmp_path, str(run / TRAIN_STEP), "recorded with torch 2.4.1+cpu", f"torch {current}")
    assert len(loaded.traces) == 4
    markdown = blocks.markdown(trace_tables.trace_blocks(loaded.traces, problems=loaded.problems))
    assert "Trace problems (the other traces are shown):" in markdown and "2.4.1+cpu" in markdown


def test_operator_names_from_a_file_are_escaped_in_html(tmp_path):
    case = copy_run(tmp_path) / EAGER_FI
    document = json.loads((case / "operators.json").read_text())
    document["operators"][0]["name"] = "<script>alert(1)</script>"
    (case / "operators.json").write_text(json.dumps(document))
    loaded = load_traces([case])
    page = blocks.html(trace_tables.trace_blocks(loaded.traces))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_errors_recorded_as_a_string_are_one_line(tmp_path):
    case = copy_run(tmp_path) / TRAIN_STEP
    meta = json.loads((case / "profile.json").read_text())
    (case / "profile.json").write_text(json.dumps({**meta, "errors": "out of memory"}))
    assert_one_problem(tmp_path, str(case), "recorded with an error: out of memory")


def test_bad_values_in_a_trace_are_one_line_per_file_and_the_rest_is_shown(tmp_path):
    case = copy_run(tmp_path) / TRAIN_STEP
    meta = json.loads((case / "profile.json").read_text())
    (case / "profile.json").write_text(json.dumps({**meta, "torch_version": {"a": 1}, "steps": "two"}))
    table = json.loads((case / "operators.json").read_text())
    table["operators"][0]["name"] = {"not": "text"}
    table["operators"][1]["self_cpu_us"] = "fast"
    table["operators"][2]["cpu_total_us"] = float("inf")
    (case / "operators.json").write_text(json.dumps(table))
    path = trace_file(case)
    chrome = json.loads(gzip.decompress(path.read_bytes()))
    ops = [e for e in chrome["traceEvents"] if e.get("cat") == "cpu_op"]
    ops[0]["dur"], ops[1]["ts"], ops[2]["name"] = "long", None, 7
    path.write_bytes(gzip.compress(json.dumps(chrome).encode()))
    loaded = load_traces([tmp_path / "traces"])
    assert len(loaded.problems) == 3, loaded.problems
    profile, operators, events = sorted(loaded.problems, key=lambda p: ("profile" not in p, "operators" not in p))
    assert "profile.json: wrong type of value (torch_version {'a': 1}, steps 'two'); ignored" in profile
    assert "1 operator row(s) without a text name left out; 2 value(s) that are not finite numbers" in operators
    assert f"{path}: 3 complete event(s) without a text name and numeric ts and dur" in events
    step = by_case(loaded, TRAIN_STEP)
    assert len(step.operators) == len(table["operators"]) - 1
    timeline = step_timeline(step.chrome, step.phase)
    assert {"forward", "backward", "optimizer"} <= set(timeline["segment"])
    report = build_report(read_runs([]).frame, image_formats=("png",), traces=loaded, trace_diffs=[])
    assert len([f for f in report.figures if f.stem.startswith("timeline-")]) == 2
    assert "### cpu-contiguous-fp32-eager · train_step (sgd) · batch 2" in report.markdown
