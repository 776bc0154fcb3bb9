"""Every study script's entry point runs on small input, so a change of format breaks a test, not a study.

The studies' own measurements take minutes to hours (many processes, valgrind); here each study runs
what it can in seconds: its ``analyze`` step on the committed samples (or a small copy of them), where
that step must write the committed page again, or its collecting step in the tiniest configuration,
and for the steps that need valgrind or many processes, their pure parts on the committed results.
Each study reads and writes a temporary folder (``LENET_STUDY_DIR``), never results/studies.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from lenet.runs.files import read_runs
from lenet.variants import PHASES

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"
COMMITTED = ROOT / "results" / "studies"


@pytest.fixture
def study_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The folder the studies loaded by :func:`load_study` read their samples from and write into."""
    folder = tmp_path / "study"
    folder.mkdir()
    monkeypatch.setenv("LENET_STUDY_DIR", str(folder))
    monkeypatch.syspath_prepend(str(STUDIES))
    yield folder
    for name in [name for name in sys.modules if name == "_study" or (STUDIES / f"{name}.py").is_file()]:
        del sys.modules[name]  # the next test imports them afresh, with its own folder


def load_study(name: str) -> ModuleType:
    """Import ``studies/<name>.py`` as ``python studies/<name>.py`` would, under this test's LENET_STUDY_DIR."""
    for module in ("_study", name):
        sys.modules.pop(module, None)
    return importlib.import_module(name)


def copy_committed(study_dir: Path, *names: str) -> None:
    for name in names:
        shutil.copy(COMMITTED / name, study_dir / name)


def test_the_results_folder_is_injectable(study_dir: Path) -> None:
    assert study_dir == load_study("_study").STUDY_DIR


def test_every_study_runs_its_own_checkouts_lenet(tmp_path: Path) -> None:
    """Each study imports _study first, which puts its checkout first on sys.path, whatever is installed."""
    for script in sorted(STUDIES.glob("[!_]*.py")):
        # inject_slowdown is a plugin of suite processes, which have their tree first already; otava_changes runs
        # in Apache Otava's own environment and imports nothing of lenet.
        if script.name not in ("inject_slowdown.py", "otava_changes.py"):
            assert re.search(r"^(from _study import|import _study\b)", script.read_text(), re.MULTILINE), script.name
    (tmp_path / "elsewhere" / "lenet").mkdir(parents=True)
    (tmp_path / "elsewhere" / "lenet" / "__init__.py").write_text(
        "raise ImportError('the lenet of another checkout')\n"
    )
    written = subprocess.run(
        [sys.executable, str(STUDIES / "make_corpus.py"), str(tmp_path / "corpus"), "--runs", "1", "--benchmarks", "1"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "elsewhere")},
        capture_output=True,
        text=True,
    )
    assert written.returncode == 0, written.stderr


def test_make_corpus_writes_runs_that_load_under_pytest_names(tmp_path: Path, study_dir: Path) -> None:
    corpus = load_study("make_corpus")
    assert corpus.main([str(tmp_path / "corpus"), "--runs", "2", "--benchmarks", "12", "--rounds", "5"]) == 0
    loaded = read_runs([tmp_path / "corpus"])
    assert loaded.problems == [] and loaded.files_read == 2
    assert len(loaded.frame) == 24 and set(loaded.frame["phase"]) == set(PHASES)
    document = json.loads(next((tmp_path / "corpus").rglob("0001_*.json")).read_text())
    names = {bench["name"] for bench in document["benchmarks"]}
    assert "test_train_step[cpu-contiguous-fp32-eager-sgd-b16]" in names
    assert "test_forward_inference[cpu-contiguous-fp32-eager-b16]" in names
    for bench in document["benchmarks"]:
        assert bench["fullname"].endswith(f"::{bench['name']}") and (ROOT / bench["fullname"].split("::")[0]).is_file()
        assert bench["name"].endswith(f"[{bench['param']}]")


def test_stability_study_analyze_writes_the_committed_page_again(study_dir: Path) -> None:
    copy_committed(study_dir, "stability_samples.json")
    study = load_study("stability_study")
    output = study_dir / "stability_calibration.json"
    assert study.main(["analyze", "--output", str(output)]) == 0
    assert output.read_text() == (COMMITTED / "stability_calibration.json").read_text()
    assert output.with_suffix(".md").read_text() == (COMMITTED / "stability_calibration.md").read_text()


def test_stability_study_cost_adds_its_figures_to_the_samples(study_dir: Path) -> None:
    study = load_study("stability_study")
    samples = study_dir / "samples.json"
    assert study.main(["--samples", str(samples), "cost"]) == 0
    measured = json.loads(samples.read_text())["cost_seconds"]
    assert len(measured) == 5 and all(seconds > 0 for seconds in measured.values())


def test_noise_study_analyze_writes_the_committed_page_again(study_dir: Path) -> None:
    copy_committed(study_dir, "noise_samples.json")
    assert load_study("noise_study").main(["analyze"]) == 0
    for name in ("noise_study.json", "noise_study.md"):
        assert (study_dir / name).read_text() == (COMMITTED / name).read_text()


def test_gate_study_analyze_runs_on_a_few_processes(study_dir: Path) -> None:
    document = json.loads((COMMITTED / "gate_study_samples.json").read_text())
    document["processes"] = {group: processes[:4] for group, processes in document["processes"].items()}
    (study_dir / "gate_study_samples.json").write_text(json.dumps(document))
    assert load_study("gate_study").main(["analyze", "--n", "2", "--draws", "2"]) == 0
    results = json.loads((study_dir / "gate_study.json").read_text())
    assert [r["n_per_side"] for r in results] == [2] and results[0]["A/A"]["comparisons"] > 0
    assert "## 2 processes per side (2 draws" in (study_dir / "gate_study.md").read_text()


def counted_run(corpus: ModuleType, index: int, instructions: float, rng: np.random.Generator) -> dict:
    """A saved run of two benchmarks, each with an instruction count, as ``pytest bench --instructions`` saves."""
    specs = corpus.benchmark_specs(2)
    document = corpus.run_document(index, corpus.MACHINES[0], specs, 5, rng)
    for bench in document["benchmarks"]:
        repeats = [instructions * (1 + 1e-5 * k) for k in range(3)]
        bench["extra_info"].update(
            instructions=repeats[1],
            instructions_spread=2e-5,
            instructions_repeats=repeats,
            instructions_calls_per_repeat=5,
        )
    return document


def test_count_study_analyze_runs_on_a_few_counted_processes(study_dir: Path) -> None:
    corpus = load_study("make_corpus")
    keep = study_dir / "kept"
    rng = np.random.default_rng(0)
    for side, offset in (("baseline", 0), ("candidate", 2)):
        (keep / side).mkdir(parents=True)
        for index in range(2):
            run = counted_run(corpus, 0, 30e6, rng)  # one commit: every process counts the same code
            (keep / side / f"{offset + index}.json").write_text(json.dumps(run))
    committed = json.loads((COMMITTED / "count_study_runs.json").read_text())
    committed["runs"] = {"0": {**committed["runs"]["0"], "keep": str(keep)}}
    (study_dir / "count_study_runs.json").write_text(json.dumps(committed))
    assert load_study("count_study").main(["analyze"]) == 0
    verdict = json.loads((study_dir / "count_verdict.json").read_text())
    assert verdict["aa_splits"]["processes"] == 4 and verdict["aa_splits"]["splits"] == 3
    assert verdict["aa_splits"]["count_verdicts"]["regressed"] == 0
    # each of the 6 pairs as the calibration (2 of one tree, 4 of two), the other two one a side: 2 benchmarks each
    unchanged = {"regressed": 0, "improved": 0, "inconclusive": 0}
    assert verdict["calibrated_splits"]["count_verdicts"] == {
        "0": {"one_tree": {**unchanged, "unchanged": 4}, "two_trees": {**unchanged, "unchanged": 8}}
    }
    page = (study_dir / "count_verdict.md").read_text()
    assert "| identical code (A/A) |" in page and "| identical code | a pair from two trees | 0 | 0 | 8 | 0 |" in page


def test_count_study_page_comes_from_the_committed_runs(study_dir: Path) -> None:
    study = load_study("count_study")
    runs = json.loads((COMMITTED / "count_study_runs.json").read_text())
    verdict = json.loads((COMMITTED / "count_verdict.json").read_text())
    summaries = [study.summarize_run(run) for _, run in sorted(runs["runs"].items(), key=lambda kv: float(kv[0]))]
    assert summaries == verdict["runs"]
    document = {
        "created": verdict["created"],
        "spin_instructions_per_iteration": runs["spin_instructions_per_iteration"],
        "notes": runs.get("notes", []),
    }
    page = study.markdown(document, summaries, verdict["aa_splits"], verdict["calibrated_splits"])
    assert page == (COMMITTED / "count_verdict.md").read_text()


def test_instruction_study_pages_and_the_model_line_it_patches(study_dir: Path) -> None:
    study = load_study("instruction_study")
    assert study.ANCHOR in (ROOT / "lenet" / "model.py").read_text()
    assert study.op_counts("1,10") == [1, 10]
    for stem, write in (("instruction_spread", study.spread_markdown), ("instruction_change", study.change_markdown)):
        document = json.loads((COMMITTED / f"{stem}.json").read_text())
        assert write(document) == (COMMITTED / f"{stem}.md").read_text()


def test_metrics_study_page_and_table_rows(study_dir: Path) -> None:
    study = load_study("metrics_study")
    document = json.loads((COMMITTED / "metrics.json").read_text())
    assert study.markdown(document) == (COMMITTED / "metrics.md").read_text()
    corpus = load_study("make_corpus")
    bench = corpus.run_document(0, corpus.MACHINES[0], corpus.benchmark_specs(1), 5, np.random.default_rng(0))
    row = study.table_row(bench["benchmarks"][0])
    assert row["case"] == "forward_inference-cpu-contiguous-fp32-eager-b16" and row["median_s"] > 0


def test_profile_cost_in_its_tiniest_configuration(study_dir: Path) -> None:
    import torch._inductor.config as inductor_config

    study = load_study("profile_cost")
    output = study_dir / "profile_cost.json"
    arguments = ["--variants", "cpu-contiguous-fp32-eager", "--batch-size", "1", "--pairs", "1", "--steps", "1"]
    arguments += ["--phases", "forward_inference"]
    # The study switches Inductor's kernel profiling on for the rest of its process: as it was again after.
    kernel_profile = inductor_config.cpp.enable_kernel_profile
    try:
        assert study.main([*arguments, "--output", str(output)]) == 0
    finally:
        inductor_config.cpp.enable_kernel_profile = kernel_profile
    result = json.loads(output.read_text())
    assert [row["phase"] for row in result["passes"]] == ["forward_inference"]
    assert result["profiler_overhead"][0]["variant"] == "cpu-contiguous-fp32-eager"


def test_profile_cost_times_calls_with_the_clock_it_is_given(study_dir: Path) -> None:
    study = load_study("profile_cost")
    ticks = iter([0.0, 1.0, 1.0, 3.0])
    assert study.timed_calls(lambda: None, 2, clock=lambda: next(ticks)) == [1.0, 2.0]


def test_timer_agreement_in_its_tiniest_configuration(study_dir: Path) -> None:
    study = load_study("timer_agreement")
    output = study_dir / "timer_agreement.json"
    suite = "--no-metrics --benchmark-max-time=0.0001 --benchmark-min-rounds=1 --benchmark-warmup=off"
    arguments = ["--batch-size", "1", "--phase", "forward_inference", "--pairs", "1", "--min-run-time", "0.001"]
    assert study.main([*arguments, "--suite-options", suite, "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert len(result["pairs"]) == 1 and result["ratio_of_medians"] > 0


def test_inject_slowdown_reads_each_benchmarks_extra_work(study_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from lenet.model import Net

    monkeypatch.setattr(Net, "forward", Net.forward)  # the plugin replaces it on import; put it back after
    net = Net().eval()
    data = torch.zeros(1, 1, 32, 32)
    expected = net(data)
    plugin = load_study("inject_slowdown")
    monkeypatch.setenv("LENET_STUDY_EXTRA", json.dumps({"test_forward_inference[x]": 0.001}))
    plugin.pytest_runtest_setup(type("Item", (), {"name": "test_forward_inference[x]"})())
    assert plugin._extra["seconds"] == 0.001
    assert torch.equal(net(data), expected)
    plugin.pytest_runtest_setup(type("Item", (), {"name": "test_backward[x]"})())
    assert plugin._extra["seconds"] == 0.0


def test_report_scale_times_a_tiny_corpus_with_this_checkouts_report(tmp_path: Path, study_dir: Path) -> None:
    assert load_study("make_corpus").main([str(tmp_path / "corpus"), "--runs", "2", "--benchmarks", "3"]) == 0
    scale = load_study("report_scale")
    assert scale.run_order(["a", "b"], 2) == ["a", "b", "b", "a"] and scale.run_order(["a"], 2) == ["a", "a"]
    assert scale.main([str(tmp_path / "corpus"), "--repeats", "1", "--label", "this checkout"]) == 0
    document = json.loads((study_dir / "report_scale.json").read_text())
    [tree] = document["trees"]
    assert tree["label"] == "this checkout" and tree["seconds"] > 0 and tree["peak_mb"] > 0
    assert "| this checkout |" in (study_dir / "report_scale.md").read_text()


def test_report_size_reports_a_tiny_run_with_and_without_the_bound(study_dir: Path) -> None:
    size = load_study("report_size")
    assert size.main(["--sizes", "3", "--output", str(study_dir / "report_size.json")]) == 0
    results = json.loads((study_dir / "report_size.json").read_text())["results"]
    assert [(r["size"], r["max_tables"], r["status"]) for r in results] == [(3, None, 0), (3, 0, 0)]
    assert "| 3 | none | 0 |" in (study_dir / "report_size.md").read_text()


def test_changes_study_scores_a_few_trials_without_otava(study_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = ("gate_study_samples.json", "gate_study_cputime_samples.json", "gate_study_defaults_samples.json")
    copy_committed(study_dir, *samples, "instruction_spread.json", "noise_samples.json")  # the real noise it resamples
    changes = load_study("changes_study")
    monkeypatch.setattr(sys, "argv", ["changes_study.py", "--trials", "2"])
    changes.main()
    document = json.loads((study_dir / "changes_study.json").read_text())
    assert document["detectors"] == ["ours"] and document["trials"] == 2
    assert (study_dir / "changes_study.md").read_text().startswith("#")


def test_bisect_study_builds_its_history_with_one_commit_that_changes_the_model(
    tmp_path: Path, study_dir: Path
) -> None:
    bisect_study = load_study("bisect_study")
    shas = bisect_study.build_history(tmp_path / "clone", "conv2", commits=3, culprit=2)
    assert len(shas) == 4
    changed = bisect_study.git(tmp_path / "clone", "diff", "--name-only", shas[1], shas[2])
    assert changed == "lenet/model.py"
    assert bisect_study.git(tmp_path / "clone", "diff", "--name-only", shas[2], shas[3]) == "docs/findings.md"


def test_bisect_time_study_replays_the_decision_code_on_saved_processes(
    study_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy_committed(study_dir, "stability_samples.json", "gate_study_cputime_samples.json")
    study = load_study("bisect_time_study")
    monkeypatch.setattr(sys, "argv", ["bisect_time_study.py", "replay", "--trials", "2"])
    study.main()
    document = json.loads((study_dir / "bisect_time_study.json").read_text())
    for pool in document["replay"]["pools"].values():
        assert set(pool["by_processes"]) == {"3", "5", "8", "12"}
        assert all(row["trials"] == 2 and row["processes_mean"] >= 6 for row in pool["by_processes"].values())
    assert "## Replays" in (study_dir / "bisect_time_study.md").read_text()


def test_torch_versions_page_from_one_step_of_ab_verdicts(tmp_path: Path, study_dir: Path) -> None:
    study = load_study("torch_versions")
    row = {
        "benchmark": "test_train_step[cpu-contiguous-fp32-eager-sgd-b64]",
        **{"decision": "regressed", "decided_by": "instructions", "verdict": "inconclusive", "ratio": 1.02},
        **{"ci_low": 0.97, "ci_high": 1.08, "n_baseline": 4, "n_candidate": 4, "count_verdict": "regressed"},
        **{"count_ratio": 1.031, "count_threshold": 0.005, "count_processes": "2 / 2", "left_out": None},
    }
    environment = {"python": "3.11.7", "torch_version": "2.13.0+cpu", "build": "CPU build", "torch_from": "x"}
    ab = {
        "headline": "Regression confirmed in 1 of 1 benchmarks.",
        "software_differences": {"torch_version": ["2.13.0+cpu", "2.14.1+cu130"]},
        "environments": {"baseline": environment, "candidate": {**environment, "torch_version": "2.14.1+cu130"}},
        "processes": {"counted": {"wall": 300.0}, "time": {"wall": 200.0}},
        "benchmarks": [row],
    }
    out = tmp_path / "out"
    out.mkdir()
    (out / "eager-2.13-vs-2.14.json").write_text(json.dumps(ab))
    options = "--keep /x/out --json /x/out.json --baseline-python /x/bin/python --candidate-python /y/bin/python --time"
    lines = [f"eager-2.13-vs-2.14\t512\t1\t05:00:00\t{options} -- --threads 1", "failed\t3\t2\t05:01:00\t-x"]
    (out / "steps.tsv").write_text("\n".join(lines) + "\n")
    installs = tmp_path / "installs.json"
    installs.write_text(json.dumps([{"version": "2.14.1", "seconds": 357, "bytes": 5.8e9, "packages": "torch"}]))
    study.main(["analyze", str(out), "--installs", str(installs), "--note", "A busy machine."])
    page = (study_dir / "torch_versions.md").read_text()
    assert "| 2.14.1 | 5.8 GB | 357 s | torch |" in page
    assert (
        "| `train_step[cpu-contiguous-fp32-eager-sgd-b64]` | **regressed** (instructions) | regressed +3.100% (±0.5%)"
        in page
    )
    assert "torch 2.13.0+cpu (CPU build) → 2.14.1+cu130 (CPU build); exit 1, 512 s" in page
    assert "No verdicts: ab.py exited 2 after 3 s." in page
    assert "ab.py --baseline-python TORCH_A/bin/python --candidate-python TORCH_B/bin/python --time" in page
    assert "/x/" not in page and "/y/" not in page  # no folder of the machine that ran it
    document = json.loads((study_dir / "torch_versions.json").read_text())
    assert study.markdown(document) == page


def test_count_paths_page_comes_from_the_committed_counts(study_dir: Path) -> None:
    """The counting itself needs valgrind and four processes; its page is written again from the committed counts."""
    study = load_study("count_paths")
    document = json.loads((COMMITTED / "count_paths.json").read_text())
    assert study.markdown(document) == (COMMITTED / "count_paths.md").read_text()
    run = study_dir / "a.json"  # what a counted pytest bench process saves, cut to what the study reads
    run.write_text(json.dumps({"benchmarks": [{"name": "test_x[b2]", "extra_info": {"instructions": 12.5}}]}))
    assert study.counts_of(run) == {"test_x[b2]": 12.5}
