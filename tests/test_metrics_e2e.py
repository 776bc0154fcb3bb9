"""End to end: the metrics a real `pytest bench` run saves, and a run whose metrics cannot be had."""

import json
import os
import textwrap

import pytest

from lenet.metrics.flops import lenet_flops

pytestmark = pytest.mark.slow


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
    from lenet.runs.record import MetricsInfo

    benchmarks = json.loads(switched_run.output.read_text())["benchmarks"]  # that run passed --no-metrics
    assert [b["extra_info"]["phase"] for b in benchmarks] == ["forward_inference"]
    assert not set(MetricsInfo.KINDS) & set(benchmarks[0]["extra_info"])
    assert "lenet-bench: metrics:" not in switched_run.result.stdout
