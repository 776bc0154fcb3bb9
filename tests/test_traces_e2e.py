"""End to end: `pytest bench --profile` in a tiny configuration, its traces in TensorBoard's profiler
plugin (a real server on the loopback address), in the report, and Inductor's kernels by name."""

import gzip
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LENET_OPERATORS = ("aten::conv2d", "aten::addmm", "aten::max_pool2d_with_indices", "aten::relu")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def profiled(tmp_path_factory, run_bench):
    """One real profiled run of the smoke preset: (traces root, its saved benchmarks, their file)."""
    tmp = tmp_path_factory.mktemp("profiled")
    root, report = tmp / "traces", tmp / "run.json"
    result = run_bench(
        "--preset",
        "smoke",
        "--phases",
        "forward_inference,train_step",
        "--profile",
        f"--trace-dir={root}",
        f"--benchmark-json={report}",
        f"--benchmark-storage={tmp / 'benchmarks'}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"lenet-bench: profiling into {root}/" in result.stdout
    assert "lenet-bench: 2 trace(s) in" in result.stdout
    return root, json.loads(report.read_text()), report


def case_folder(root: Path, case: str) -> Path:
    [run] = list(root.iterdir())
    return run / case


def test_the_suite_records_a_trace_per_case_after_its_timed_rounds(profiled):
    root, saved, _ = profiled
    [run] = list(root.iterdir())
    assert sorted(p.name for p in run.iterdir()) == [
        "forward_inference-cpu-contiguous-fp32-eager-b2",
        "train_step-cpu-contiguous-fp32-eager-sgd-b2",
    ]
    for bench in saved["benchmarks"]:
        info = bench["extra_info"]
        assert info["trace_error"] is None
        folder = Path(info["trace_dir"])
        assert folder.parent == run.resolve() and (folder / info["trace_file"]).is_file()
        assert info["trace_bytes"] == (folder / info["trace_file"]).stat().st_size
        assert info["inductor_kernel_profile"] is False  # an eager variant
        assert len(bench["stats"]["data"]) == bench["stats"]["rounds"] >= 3  # the timed rounds are intact


def test_the_saved_trace_is_valid_chrome_trace_json(profiled):
    root, _, _ = profiled
    [path] = case_folder(root, "train_step-cpu-contiguous-fp32-eager-sgd-b2").glob("*.pt.trace.json.gz")
    trace = json.loads(gzip.decompress(path.read_bytes()))
    assert isinstance(trace["traceEvents"], list)
    names = {e["name"] for e in trace["traceEvents"] if e.get("ph") == "X"}
    assert set(LENET_OPERATORS) | {"aten::linear", "aten::convolution_backward", "Optimizer.step#SGD.step"} <= names
    assert {e.get("ph") for e in trace["traceEvents"]} >= {"X", "M"}  # complete events and process metadata


# --- TensorBoard with torch-tb-profiler --------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 10.0):
    """GET a plugin answer; some come gzip-compressed whatever the request says."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
    return json.loads(body)


@pytest.fixture
def tensorboard(profiled):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed (pip install -e '.[test]')")
    pytest.importorskip("torch_tb_profiler", reason="torch-tb-profiler is not installed (pip install -e '.[test]')")
    root, _, _ = profiled
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(root), "--host", "127.0.0.1", f"--port={port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/data/plugin/pytorch_profiler"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                runs = get_json(f"{base}/runs", timeout=2)
                if runs["runs"] and not runs["loading"]:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"TensorBoard did not list the runs within 90 s: {process.communicate()[1][-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_tensorboard_profiler_plugin_lists_the_trace_with_overview_and_operators(profiled, tensorboard):
    root, _, _ = profiled
    [run] = list(root.iterdir())
    runs = get_json(f"{tensorboard}/runs")["runs"]
    name = f"{run.name}/train_step-cpu-contiguous-fp32-eager-sgd-b2"
    assert sorted(runs) == sorted([f"{run.name}/forward_inference-cpu-contiguous-fp32-eager-b2", name])
    query = urllib.parse.urlencode({"run": name})
    views = get_json(f"{tensorboard}/views?{query}")
    assert {"Overview", "Operator", "Trace"} <= set(views)
    workers = get_json(f"{tensorboard}/workers?{query}&view=Overview")
    assert workers == ["cpu-contiguous-fp32-eager"]  # the variant id is the worker
    spans = get_json(f"{tensorboard}/spans?{query}&worker={workers[0]}")
    assert spans
    params = urllib.parse.urlencode({"run": name, "worker": workers[0], "span": spans[0]})
    overview = get_json(f"{tensorboard}/overview?{params}&view=Overview")
    steps = overview["steps"]["rows"]
    assert len(steps) == 3  # the three recorded steps
    assert {e["value"] for e in overview["environments"]} >= {"CPU"}
    table = get_json(f"{tensorboard}/operation/table?{params}&view=Operator&group_by=Operation")
    operators = {row["name"]: row for row in table["data"]}
    assert set(LENET_OPERATORS) <= set(operators)
    assert operators["aten::conv2d"]["calls"] == 2 * 3  # two convolutions a step, three steps
    assert all(operators[name]["host_total_duration"] > 0 for name in LENET_OPERATORS)
    pie = get_json(f"{tensorboard}/operation?{params}&view=Operator&group_by=Operation")
    assert any(row[0] == "aten::conv2d" for row in pie["host_total_time"]["rows"])


# --- the report ----------------------------------------------------------------------------------------


def run_report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "report.py"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_report_shows_the_traces_and_one_line_per_bad_folder(profiled, tmp_path):
    root, _, saved = profiled
    bad = tmp_path / "bad"
    (bad / "run" / "empty-case").mkdir(parents=True)
    truncated = bad / "run" / "truncated" / "cpu-contiguous-fp32-eager.1.pt.trace.json"
    truncated.parent.mkdir()
    truncated.write_text('{"traceEvents": [{"ph": "X", "name": "aten::conv2d", "ts": 1')
    out = tmp_path / "report"
    result = run_report(
        str(saved), "--traces", str(root), "--traces", str(bad), "-o", str(out), "--formats", "md,csv,html,png"
    )
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert any("empty-case: empty folder" in w for w in warnings)
    assert any(str(truncated) in w and "not valid JSON" in w for w in warnings)
    assert "2 trace(s)" in result.stdout and "traces.csv" in result.stdout
    markdown = (out / "report.md").read_text()
    assert "### cpu · train_step · batch 2" in markdown  # the run's benchmarks, then its traces
    assert "### cpu-contiguous-fp32-eager · train_step (sgd) · batch 2" in markdown
    assert "empty-case: empty folder" in markdown  # the problem is in the report too
    assert sorted(p.name for p in (out / "plots").glob("timeline-*.png")) == sorted(
        f"timeline-{case.parent.name}-{case.name}.png" for case in root.glob("*/*")
    )
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_the_report_diffs_two_runs(profiled, tmp_path):
    root, _, saved = profiled
    [run] = list(root.iterdir())
    case = run / "forward_inference-cpu-contiguous-fp32-eager-b2"
    out = tmp_path / "report"
    result = run_report(str(saved), "--diff-traces", str(case), str(case), "-o", str(out), "--formats", "md")
    assert result.returncode == 0, result.stderr
    markdown = (out / "report.md").read_text()
    assert f"### Diff: cpu-contiguous-fp32-eager · forward_inference · batch 2: run {run.name} → run {run.name}" in (
        markdown
    )
    assert "| aten::max_pool2d_with_indices | same |" in markdown  # a trace against itself: nothing changed


# --- compiled variants ------------------------------------------------------------------------------


def test_inductor_kernels_appear_by_name_in_traces_and_tables(tmp_path, run_bench):
    """One compiled CPU variant (compiling takes ~25 s cold): Inductor's C++ kernels are named."""
    root, report = tmp_path / "traces", tmp_path / "run.json"
    result = run_bench(
        "--variants",
        "cpu-contiguous-fp32-compile",
        "--phases",
        "forward_inference",
        "--batch-sizes",
        "2",
        f"--benchmark-json={report}",
        env={"LENET_PROFILE": "1", "LENET_TRACE_DIR": str(root), "LENET_TRACE_FORMAT": "json"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [bench] = json.loads(report.read_text())["benchmarks"]
    assert bench["extra_info"]["inductor_kernel_profile"] is True
    folder = Path(bench["extra_info"]["trace_dir"])
    [path] = folder.glob("*.pt.trace.json")  # LENET_TRACE_FORMAT=json: plain JSON
    names = {e["name"] for e in json.loads(path.read_text())["traceEvents"] if e.get("ph") == "X"}
    kernels = {n for n in names if "cpp_fused" in n}
    assert kernels, sorted(names)
    assert any(n.startswith("Torch-Compiled Region") for n in names)
    table = {r["name"] for r in json.loads((folder / "operators.json").read_text())["operators"]}
    assert kernels <= table


# --- scripts/trace.py -----------------------------------------------------------------------------------


def test_trace_script_records_a_selection_without_timing_it(tmp_path):
    root = tmp_path / "traces"
    options = ["--preset", "smoke", "--phases", "backward", "--profile-steps", "2", "--trace-format", "json"]
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "trace.py"), *options, "--trace-dir", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    [folder] = root.glob("*/backward-cpu-contiguous-fp32-eager-b2")
    [trace] = folder.glob("cpu-contiguous-fp32-eager.*.pt.trace.json")
    assert "aten::convolution_backward" in trace.read_text()
    assert json.loads((folder / "profile.json").read_text())["steps"] == 2
    assert f"-> {folder}" in result.stdout
    bad = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "trace.py"), "--trace-format", "perfetto"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "trace format 'perfetto' is unknown; choose from json.gz, json" in bad.stderr
