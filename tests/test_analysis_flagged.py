"""The report and the gate with flagged benchmarks: a warning column, speedups and verdicts without them."""

import numpy as np
import pandas as pd
import pytest

from lenet.analysis.compare import GateOptions, Side, compare, gate, side_from_frame
from lenet.analysis.compare_render import comparison_table, markdown
from lenet.analysis.flagged import FLAGS, ONLY_UNSTABLE, stable_summary, with_flag_column
from lenet.analysis.metric_tables import FLAGGED_ONLY, glance_blocks
from lenet.analysis.summary import KEY, summarize
from lenet.runs.frame import frame_from_rows

REF, CL = "cpu-contiguous-fp32-eager", "cpu-channels_last-fp32-eager"


def row(label, median, run="r1", phase="train_step", optimizer="sgd", flags=None, **extra):
    values = {
        "source": f"{run}.json",
        "run": run,
        "run_time": f"2026-01-01T00:00:0{run[-1]}",
        "commit": "c1",
        "dirty": False,
        "machine": "m1",
        "machine_label": "machine m1",
        "fingerprint_fields": "{}",
        "pytest_benchmark_version": "5.3.1",
        "torch_version": "2.13.0",
        "name": f"test_{phase}[{label}]",
        "label": label,
        "variant": label,
        "device": "cpu",
        "phase": phase,
        "batch_size": 64,
        "optimizer": optimizer,
        "median": median,
        "iqr": median * 0.1,
        "rounds": 40,
        **extra,
    }
    if flags is not None:  # as the frame keeps a saved list: a tuple
        values["stability_flags"] = tuple(flags)
    return values


def the_issues_run(run="r1", saved=False):
    """The loaded run from the issue: a 316 ms step whose phases sum to 20 ms; channels_last looks 14x faster."""
    flags = [] if saved else None
    return [
        row(REF, 0.007, run, "forward_train", None, flags),
        row(REF, 0.010, run, "backward", None, flags),
        row(REF, 0.003, run, "optimizer_step", "sgd", flags),
        row(REF, 0.316, run, "train_step", "sgd", flags),
        row(CL, 0.0226, run, "train_step", "sgd", flags),
    ]


def test_runs_saved_without_the_session_check_get_it_from_their_medians():
    frame = with_flag_column(frame_from_rows(the_issues_run()))
    flags = dict(zip(frame["name"], frame[FLAGS], strict=True))
    assert flags[f"test_train_step[{REF}]"] == ("phase_sum",)
    assert flags[f"test_train_step[{CL}]"] == () and flags[f"test_backward[{REF}]"] == ()
    # a run whose session ran the checks keeps what it saved
    saved = with_flag_column(frame_from_rows(the_issues_run(saved=True)))
    assert not saved[FLAGS].map(bool).any()
    marked = with_flag_column(frame_from_rows([row(REF, 0.01, flags=["busy", "drift"])]))
    assert marked[FLAGS].iloc[0] == ("busy", "drift")


def test_a_flagged_reference_leaves_the_headline_speedup_out_with_a_warning():
    frame = frame_from_rows(the_issues_run())
    summary, note = stable_summary(frame, summarize, KEY)
    steps = summary[summary["phase"] == "train_step"].set_index("label")
    assert steps.loc[REF, "warning"] == "⚠ phase_sum (1 of 1 runs)"
    assert pd.isna(steps.loc[CL, "speedup"]) and pd.isna(steps.loc[CL, "warning"])  # no 13.97x
    assert "left out of speedups" in note
    kept, kept_note = stable_summary(frame, summarize, KEY, include_unstable=True)
    assert kept.set_index(["phase", "label"]).loc[("train_step", CL), "speedup"] == pytest.approx(0.316 / 0.0226)
    assert "kept in speedups" in kept_note


def test_a_quiet_run_beside_a_flagged_one_gives_the_speedup_alone():
    frame = frame_from_rows(
        [
            row(REF, 0.010, "r1", flags=[]),
            row(CL, 0.008, "r1", flags=[]),
            row(REF, 0.050, "r2", flags=["busy"]),
            row(CL, 0.008, "r2", flags=[]),
        ]
    )
    summary, _ = stable_summary(frame, summarize, KEY)
    rows = summary.set_index("label")
    assert rows.loc[CL, "speedup"] == pytest.approx(1.25) and rows.loc[REF, "warning"] == "⚠ busy (1 of 2 runs)"
    unflagged, note = stable_summary(
        frame_from_rows([row(REF, 0.01, flags=[]), row(CL, 0.008, flags=[])]), summarize, KEY
    )
    assert note is None and "warning" not in unflagged.columns


def glance_items(summary):
    return [item for block in glance_blocks(summary) for item in getattr(block, "items", ())]


def test_at_a_glance_says_so_when_the_fastest_rests_on_flagged_runs_alone():
    frame = frame_from_rows(
        [
            row(REF, 0.010, "r1", flags=[]),
            row(CL, 0.004, "r1", flags=["busy"]),
            row(REF, 0.011, "r2", flags=[]),
            row(CL, 0.005, "r2", flags=["busy", "faults"]),
        ]
    )
    summary, _ = stable_summary(frame, summarize, KEY)
    assert summary.set_index("label")[ONLY_UNSTABLE].to_dict() == {REF: False, CL: True}
    [fastest] = [item for item in glance_items(summary) if "fastest is" in item]
    assert fastest.startswith(f"cpu train_step, batch 64: fastest is {CL} (sgd)")
    assert fastest.endswith(f"{FLAGGED_ONLY}: ⚠ busy, faults (2 of 2 runs))")
    [effect] = [item for item in glance_items(summary) if "instead of" in item]
    assert effect.endswith("every pair has a side whose runs were all flagged as disturbed by the stability checks")


def test_at_a_glance_says_nothing_more_when_a_quiet_run_stands_behind_the_fastest():
    frame = frame_from_rows(
        [
            row(REF, 0.010, "r1", flags=[]),
            row(CL, 0.004, "r1", flags=["busy"]),
            row(REF, 0.011, "r2", flags=[]),
            row(CL, 0.005, "r2", flags=[]),
        ]
    )
    summary, _ = stable_summary(frame, summarize, KEY)
    assert not summary[ONLY_UNSTABLE].any()
    assert not any("flagged" in item for item in glance_items(summary))
    unflagged, _ = stable_summary(frame_from_rows([row(REF, 0.01, flags=[]), row(CL, 0.008, flags=[])]), summarize, KEY)
    assert ONLY_UNSTABLE not in unflagged.columns and not any("flagged" in item for item in glance_items(unflagged))


def sides_with_a_flagged_candidate(flag_all=False):
    rng = np.random.default_rng(0)
    base = {"b": list(1.0 + 0.01 * rng.standard_normal(6))}
    cand = {"b": list(1.0 + 0.01 * rng.standard_normal(6))}
    cand["b"][2] = 3.0  # the process another program disturbed
    marks = [None] * 6
    marks[2] = "0003 (busy)"
    if flag_all:
        marks = [f"{i:04d} (busy)" for i in range(6)]
    baseline = Side(base, "fp", {}, ("5.3.1",), 6)
    return baseline, Side(cand, "fp", {}, ("5.3.1",), 6, unstable={"b": marks})


def test_a_flagged_process_is_left_out_of_the_verdict_and_named():
    baseline, candidate = sides_with_a_flagged_candidate()
    [result] = compare(baseline, candidate).table.to_dict("records")
    assert result["n_candidate"] == 5 and result["left_out"] == "candidate 0003 (busy)"
    assert result["candidate_median"] == pytest.approx(1.0, abs=0.05)
    comparison = compare(baseline, candidate)
    table = comparison_table(comparison)
    assert table.header[-1] == "left out: flagged unstable" and table.rows[0][-1] == "candidate 0003 (busy)"
    assert "are left out of the verdicts and named in the last column" in markdown(comparison, "a", "b")
    [kept] = compare(baseline, candidate, include_unstable=True).table.to_dict("records")
    assert kept["n_candidate"] == 6 and kept["left_out"] is None


def test_a_side_with_only_flagged_processes_is_inconclusive():
    baseline, candidate = sides_with_a_flagged_candidate(flag_all=True)
    comparison, status = gate(baseline, candidate, GateOptions())
    assert comparison.table["verdict"].tolist() == ["inconclusive"] and status == 0


def test_sides_from_loaded_rows_carry_each_process_flags():
    frame = frame_from_rows([row(REF, 0.01, "r1", flags=[]), row(REF, 0.02, "r2", flags=["spread", "drift"])])
    side = side_from_frame(frame, "candidate")
    assert side.unstable == {f"test_train_step[{REF}]": [None, "r2 (spread, drift)"]}
