"""The report's metrics: rows from a real run with metrics, the at-a-glance summary, rooflines and memory plots."""

import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from lenet.analysis import blocks, metric_plots, metric_tables
from lenet.analysis.report import build_report
from lenet.analysis.summary import latest_commit, summarize
from lenet.runs.files import read_runs

FIXTURES = Path(__file__).parent / "fixtures"
RUNS = FIXTURES / "metrics"  # read by conftest's frame fixture
GOLDEN = FIXTURES / "golden" / "metrics.md"


@pytest.fixture(scope="module")
def rows(frame, summary):
    return metric_tables.metric_rows(latest_commit(frame), summary)


def test_every_benchmark_gets_its_metrics_and_they_agree_with_its_median(rows, frame):
    assert len(rows) == len(frame) == 12
    assert (rows["gflops_per_s"] == rows["flops"] / rows["median"] / 1e9).all()
    assert (rows["percent_of_peak"] == 100 * rows["gflops_per_s"] / rows["peak_gflops"]).all()
    assert (rows["intensity"] == rows["flops"] / rows["bytes_accessed"]).all()
    assert (rows["memory_peak_bytes"] > 0).all() and set(rows["peak_gflops_kind"]) == {"fp32 matmul"}


def test_break_even_uses_the_cold_cost_and_the_eager_counterparts_median(rows):
    compiled = rows[rows["compile"] == "compile"]
    assert len(compiled) == 4 and (compiled["break_even_basis"] == "cold").all()
    for r in compiled.itertuples():
        eager = rows[
            (rows["compile"] == "eager")
            & (rows["memory_format"] == "contiguous")
            & (rows["phase"] == r.phase)
            & (rows["batch_size"] == r.batch_size)
        ]
        assert r.eager_median == eager["median"].iloc[0]
        saving = r.eager_median - r.median
        expected = "never" if saving <= 0 else max(1, -(-r.compile_cold_seconds // saving))
        assert r.break_even == expected
    assert rows.loc[rows["compile"] == "eager", "break_even"].isna().all()


def test_runs_without_metrics_have_no_metrics_rows_and_no_section():
    old = read_runs([FIXTURES / "runs" / "lenet-cpu"]).frame
    assert not metric_tables.has_metrics(old)
    assert metric_tables.metric_rows(old, summarize(old)).empty and metric_tables.metrics_blocks(pd.DataFrame()) == []
    assert "## Metrics" not in build_report(old, image_formats=()).markdown


def test_the_metrics_section_matches_the_golden_file(rows):
    text = blocks.markdown(metric_tables.metrics_blocks(rows))
    if os.environ.get("LENET_UPDATE_GOLDEN"):
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8")


def test_the_report_holds_the_metrics_section_and_opens_with_the_glance(frame):
    report = build_report(frame, image_formats=())
    assert "## Metrics: FLOPs, % of peak, peak memory, compile cost" in report.markdown
    page = report.html()
    assert page.index("At a glance") < page.index("<table>") < page.index("Metrics: FLOPs")


def summary_of(rows: list[tuple[str, str, int, float]]) -> pd.DataFrame:
    """A summary frame from (label, phase, batch, median) tuples, one machine, cpu."""
    return pd.DataFrame(
        [
            {
                "machine": "m",
                "machine_label": "machine m",
                "device": "cpu",
                "phase": phase,
                "batch_size": batch,
                "optimizer": None,
                "label": label,
                "median": median,
                "speedup": None,
            }
            for label, phase, batch, median in rows
        ]
    )


def test_axis_effects_are_geometric_means_over_matched_pairs():
    summary = summary_of(
        [
            ("cpu-contiguous-fp32-eager", "forward_inference", 64, 4.0),
            ("cpu-channels_last-fp32-eager", "forward_inference", 64, 2.0),
            ("cpu-contiguous-fp32-eager", "backward", 64, 8.0),
            ("cpu-channels_last-fp32-eager", "backward", 64, 16.0),
            ("cpu-contiguous-fp32-compile", "backward", 64, 4.0),
            ("cpu-channels_last-amp_bf16-eager", "backward", 64, 1.0),  # its only twin: channels_last fp32
        ]
    )
    effects = metric_tables.axis_effects(summary).set_index(["axis", "value"])
    layout = effects.loc[("memory_format", "channels_last")]
    assert layout["time_ratio"] == pytest.approx(1.0) and layout["pairs"] == 2  # x0.5 and x2
    assert (layout["low"], layout["high"]) == (0.5, 2.0)
    assert effects.loc[("compile", "compile"), "time_ratio"] == pytest.approx(0.5)
    assert effects.loc[("precision", "amp_bf16"), "time_ratio"] == pytest.approx(1 / 16)  # vs cl fp32 backward


def test_the_best_variant_is_the_lowest_median_of_each_phase_and_batch():
    summary = summary_of(
        [
            ("cpu-contiguous-fp32-eager", "forward_inference", 64, 4.0),
            ("cpu-channels_last-fp32-eager", "forward_inference", 64, 2.0),
            ("cpu-contiguous-fp32-eager", "forward_inference", 8, 1.0),
        ]
    )
    best = metric_tables.best_variants(summary)
    assert list(zip(best["batch_size"], best["label"], strict=True)) == [
        (64, "cpu-channels_last-fp32-eager"),
        (8, "cpu-contiguous-fp32-eager"),
    ]
    items = [item for block in metric_tables.glance_blocks(summary) for item in getattr(block, "items", ())]
    assert "cpu forward_inference, batch 64: fastest is cpu-channels_last-fp32-eager (2,000 ms)" in items
    assert any("channels_last instead of contiguous: time ×0.5 (50% faster; 1 pair(s)" in item for item in items)


def test_a_roofline_per_machine_and_batch_with_a_point_per_variant_and_phase(rows):
    jobs = {job.stem: job for job in metric_plots.metric_figures(rows)}
    assert {stem.split("-")[0] for stem in jobs} == {"roofline", "memory"}
    job = next(job for stem, job in jobs.items() if stem.startswith("roofline") and stem.endswith("b8"))
    fig = job.figure()
    try:
        ax = fig.axes[0]
        points = [c for c in ax.collections if len(c.get_offsets()) == 1]
        assert len(points) == 6  # 3 variants x 2 phases
        assert any("roof: fp32 matmul" in line.get_label() for line in ax.get_lines())
        assert ax.get_xscale() == ax.get_yscale() == "log"
    finally:
        plt.close(fig)
    scaling = next(job for stem, job in jobs.items() if stem.startswith("memory-scaling"))
    fig = scaling.figure()
    try:
        assert len(fig.axes[0].get_lines()) == 3  # a line per variant over batch 4 and 8
    finally:
        plt.close(fig)


def test_nothing_to_draw_draws_nothing(rows):
    assert metric_plots.roofline_figure(rows.assign(flops=0, gflops_per_s=None, intensity=None)) is None
    assert metric_plots.memory_scaling_figure(rows[rows["batch_size"] == 4]) is None


def test_no_benchmarks_no_glance():
    assert metric_tables.glance_blocks(pd.DataFrame()) == [] and metric_tables.axis_effects(pd.DataFrame()).empty


def test_axis_effects_include_the_scope_and_compare_each_scope_with_eager():
    summary = summary_of(
        [
            ("cpu-contiguous-fp32-eager", "train_step", 64, 10.0),
            ("cpu-contiguous-fp32-compile", "train_step", 64, 20.0),
            ("cpu-contiguous-fp32-compile-step", "train_step", 64, 5.0),
            ("cpu-contiguous-fp32-eager", "forward_train", 64, 4.0),  # no step-scope twin: no scope pair
            ("cpu-contiguous-fp32-compile", "forward_train", 64, 2.0),
        ]
    )
    effects = metric_tables.axis_effects(summary).set_index(["axis", "value"])
    scope = effects.loc[("scope", "step")]
    assert scope["reference"] == "module" and scope["time_ratio"] == pytest.approx(0.25) and scope["pairs"] == 1
    compiled = effects.loc[("compile", "compile")]  # module scope: x2 (train step), x0.5 (forward); step scope: x0.5
    assert compiled["pairs"] == 3 and compiled["time_ratio"] == pytest.approx((2 * 0.5 * 0.5) ** (1 / 3))
