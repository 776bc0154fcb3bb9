"""Run selection, summaries and filters on small literal DataFrames."""

import pandas as pd
import pytest

from lenet.analysis.summary import FilterError, Filters, latest_commit, latest_run, reference_for, summarize
from lenet.runs.frame import frame_from_rows


def row(
    label,
    median,
    machine="m1",
    run="r1",
    commit="c1",
    time="2026-01-01T00:00:00",
    device="cpu",
    phase="train_step",
    batch=64,
    optimizer="sgd",
    data=None,
    **extra,
):
    return {
        "source": f"{machine}/{run}.json",
        "run": run,
        "run_time": time,
        "commit": commit,
        "dirty": False,
        "machine": machine,
        "machine_label": f"machine {machine}",
        "torch_version": "2.13.0",
        "name": f"test_{phase}[{label}]",
        "label": label,
        "variant": label,
        "device": device,
        "phase": phase,
        "batch_size": batch,
        "optimizer": optimizer,
        "median": median,
        "q1": median * 0.9,
        "q3": median * 1.1,
        "iqr": median * 0.2,
        "rounds": 10,
        "data": data,
        **extra,
    }


REF, CL = "cpu-contiguous-fp32-eager", "cpu-channels_last-fp32-eager"


def test_speedup_is_reference_median_over_median():
    frame = frame_from_rows([row(REF, 0.010), row(CL, 0.008)])
    summary = summarize(frame).set_index("label")
    assert summary.loc[REF, "speedup"] == pytest.approx(1.0)
    assert summary.loc[CL, "speedup"] == pytest.approx(1.25)
    assert summary.loc[CL, "samples_per_s"] == pytest.approx(64 / 0.008)
    assert summary.loc[CL, "interval_basis"] == "none"
    assert pd.isna(summary.loc[CL, "speedup_low"])


def test_rounds_give_an_interval_from_one_process():
    ref = row(REF, 0.010, data=(0.010, 0.011, 0.009, 0.010, 0.0105))
    cl = row(CL, 0.005, data=(0.005, 0.0055, 0.0045, 0.005, 0.00525))
    summary = summarize(frame_from_rows([ref, cl])).set_index("label")
    assert summary.loc[CL, "interval_basis"] == "rounds"
    assert summary.loc[CL, "speedup_low"] <= 2.0 <= summary.loc[CL, "speedup_high"]


def test_several_runs_are_pooled_as_process_samples():
    rows = [row(REF, m, run=f"r{i}") for i, m in enumerate([0.010, 0.011, 0.009])]
    rows += [row(CL, m, run=f"r{i}") for i, m in enumerate([0.005, 0.0055, 0.0045])]
    summary = summarize(frame_from_rows(rows)).set_index("label")
    assert summary.loc[CL, "runs"] == 3
    assert summary.loc[CL, "median"] == pytest.approx(0.005)
    assert summary.loc[CL, "interval_basis"] == "runs"
    assert summary.loc[CL, "speedup_low"] < 2.0 < summary.loc[CL, "speedup_high"]


def test_machines_are_never_pooled():
    frame = frame_from_rows([row(REF, 0.010, machine="a"), row(REF, 0.020, machine="b"), row(CL, 0.010, machine="b")])
    summary = summarize(frame)
    assert len(summary) == 3
    b = summary[summary["machine"] == "b"].set_index("label")
    assert b.loc[CL, "speedup"] == pytest.approx(2.0)  # against b's own reference only


def test_latest_commit_per_machine():
    frame = frame_from_rows(
        [
            row(REF, 0.01, run="old", commit="c1", time="2026-01-01T00:00:00"),
            row(REF, 0.02, run="new1", commit="c2", time="2026-01-02T00:00:00"),
            row(REF, 0.03, run="new2", commit="c2", time="2026-01-03T00:00:00"),
            row(REF, 0.04, machine="other", run="x", commit="c1", time="2025-01-01T00:00:00"),
        ]
    )
    assert sorted(latest_commit(frame)["run"]) == ["new1", "new2", "x"]
    assert sorted(latest_run(frame)["run"]) == ["new2", "x"]


def test_reference_moves_to_each_device():
    assert reference_for("cuda", None) == "cuda-contiguous-fp32-eager"
    assert reference_for("cuda", "cpu-channels_last-fp32-eager") == "cuda-channels_last-fp32-eager"
    assert reference_for("cpu", "cuda-contiguous-tf32-eager") == "cpu-contiguous-fp32-eager"  # no tf32 on cpu
    assert reference_for(None, None) is None


def test_rows_come_in_canonical_variant_order_reference_first():
    labels = ["cpu-channels_last-fp32-compile", CL, "cpu-contiguous-amp_bf16-eager", REF]
    summary = summarize(frame_from_rows([row(label, 0.01) for label in labels]))
    assert list(summary["label"]) == [REF, "cpu-contiguous-amp_bf16-eager", CL, "cpu-channels_last-fp32-compile"]


def test_filters_keep_what_matches_and_name_what_matched_nothing():
    frame = frame_from_rows([row(REF, 0.01), row(CL, 0.01, phase="backward", optimizer=None)])
    assert list(Filters(variants=["*channels_last*"]).apply(frame)["label"]) == [CL]
    assert list(Filters(phases=["backward"]).apply(frame)["label"]) == [CL]
    assert len(Filters(machines=["m1"]).apply(frame)) == 2
    assert len(Filters(machines=["machine m*"]).apply(frame)) == 2
    with pytest.raises(FilterError, match="batch size filter 7 matches nothing; the runs have: 64"):
        Filters(batch_sizes=[7]).apply(frame)
    with pytest.raises(FilterError, match="variant filter cuda-\\* matches nothing"):
        Filters(variants=["cuda-*"]).apply(frame)
