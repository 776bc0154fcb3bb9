"""Baseline vs candidate verdicts on literal process medians, and the command lines end to end."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lenet.analysis.compare import (
    EXIT_BAD_INPUT,
    EXIT_IMPROVEMENT,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    EXIT_REGRESSION,
    CompareError,
    GateOptions,
    Side,
    compare,
    gate,
    machine_differences,
)
from lenet.analysis.compare_render import markdown
from lenet.cli import compare as compare_cli
from lenet.exits import EXIT_INTERNAL, EXIT_UNUSABLE

REPO = Path(__file__).resolve().parents[1]
RUNS = Path(__file__).parent / "fixtures" / "runs"
FIELDS = {"cpu_model": "Xeon", "torch_threads": 2, "torch_version": "2.13.0"}


def side(samples, fingerprint="fp", fields=FIELDS, version="5.3.1"):
    return Side({k: list(v) for k, v in samples.items()}, fingerprint, dict(fields), (version,), 12)


def noisy(center, n, cv=0.03, seed=0):
    return center * (1 + cv * np.random.default_rng(seed).standard_normal(n))


def test_a_clear_slowdown_is_a_regression():
    base = side({"b": noisy(1.0, 12, seed=1)})
    cand = side({"b": noisy(1.3, 12, seed=2)})
    [row] = compare(base, cand).table.to_dict("records")
    assert row["verdict"] == "regressed"
    assert row["ratio"] == pytest.approx(1.3, rel=0.05)
    assert row["ci_low"] > 1.0 and row["p_adjusted"] < 0.05


def test_a_clear_speedup_is_an_improvement():
    [row] = compare(side({"b": noisy(1.0, 12, seed=1)}), side({"b": noisy(0.7, 12, seed=2)})).table.to_dict("records")
    assert row["verdict"] == "improved"


def test_same_distribution_is_unchanged_when_quiet_and_inconclusive_when_noisy():
    quiet = compare(side({"b": noisy(1.0, 12, 0.005, 1)}), side({"b": noisy(1.0, 12, 0.005, 2)}))
    assert quiet.table["verdict"].tolist() == ["unchanged"]
    loud = compare(side({"b": noisy(1.0, 4, 0.30, 1)}), side({"b": noisy(1.0, 4, 0.30, 2)}))
    assert loud.table["verdict"].tolist() == ["inconclusive"]
    assert loud.table["detectable"].iloc[0] > 0.2  # and it says how large a change it could have seen


def test_a_small_change_below_the_noise_threshold_is_not_a_regression():
    # 3% slower, but identical code strays about as far here: never cry wolf
    base = [1.00, 0.92, 1.08, 0.95, 1.05, 0.99, 1.01, 0.93, 1.07, 0.97, 1.03, 1.00]
    cand = [1.03 * x for x in base]
    [row] = compare(side({"b": base}), side({"b": cand})).table.to_dict("records")
    assert row["ratio"] == pytest.approx(1.03)
    assert row["threshold"] > 0.03
    assert row["verdict"] == "inconclusive"


def test_the_correction_spans_all_benchmarks():
    # a p of ~0.03 alone is significant; as the only small one among 10 benchmarks it is not (BH: p * 10 / 1)
    base = {f"b{i}": [1.0, 1.01, 0.99, 1.02] for i in range(10)}
    cand = {f"b{i}": [1.0, 1.01, 0.99, 1.02] for i in range(10)}
    cand["b0"] = [1.5, 1.51, 1.49, 1.52]
    table = compare(side(base), side(cand), threshold=0.05).table.set_index("benchmark")
    assert table.loc["b0", "p"] == pytest.approx(2 / 70)
    assert table.loc["b0", "p_adjusted"] == pytest.approx(min(1.0, 10 * 2 / 70))
    assert table.loc["b0", "verdict"] == "inconclusive"


def test_benchmarks_on_one_side_are_listed():
    comparison = compare(side({"a": [1.0] * 5, "b": [1.0] * 5}), side({"b": [1.0] * 5, "c": [1.0] * 5}))
    assert comparison.only_baseline == ["a"] and comparison.only_candidate == ["c"]
    text = markdown(comparison, "base", "cand")
    assert "Only in the baseline (1): `a`" in text and "Only in the candidate (1): `c`" in text


def test_exit_status_follows_the_verdicts_and_options():
    base = side({"slow": noisy(1.0, 12, seed=1), "fast": noisy(1.0, 12, seed=3)})
    cand = side({"slow": noisy(1.3, 12, seed=2), "fast": noisy(0.7, 12, seed=4)})
    assert gate(base, cand, GateOptions())[1] == EXIT_REGRESSION
    only_fast = side({"fast": noisy(0.7, 12, seed=4)})
    assert gate(base, only_fast, GateOptions())[1] == EXIT_OK
    assert gate(base, only_fast, GateOptions(fail_on_improvement=True))[1] == EXIT_IMPROVEMENT
    unsure = side({"fast": [0.7, 1.0, 1.3]})
    assert gate(base, unsure, GateOptions(fail_on_inconclusive=True))[1] == EXIT_INCONCLUSIVE


def test_different_machines_are_refused_unless_allowed():
    base = side({"b": [1.0] * 6})
    other = side({"b": [2.0] * 6}, fingerprint="other", fields={**FIELDS, "torch_threads": 1})
    assert machine_differences(base, other) == {"torch_threads": (2, 1)}
    with pytest.raises(CompareError, match=r"different machines or tools: torch_threads: 2 \(baseline\) vs 1"):
        gate(base, other, GateOptions())
    comparison, status = gate(base, other, GateOptions(allow_mismatch=True))
    assert status == EXIT_OK and comparison.informational
    assert "**Informational only**" in markdown(comparison, "b", "c")


def test_another_pytest_benchmark_major_version_is_a_mismatch():
    differences = machine_differences(side({"b": [1.0]}), side({"b": [1.0]}, version="4.0.0"))
    assert differences == {"pytest_benchmark_version": ("5.3.1", "4.0.0")}


def test_no_common_benchmark_is_bad_input():
    with pytest.raises(CompareError, match="no benchmark is on both sides: the baseline has a, the candidate has b"):
        gate(side({"a": [1.0]}), side({"b": [1.0]}), GateOptions())


# --- command lines ------------------------------------------------------------------------


def script(name, *args, cwd=REPO):
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / name), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def cpu_runs():
    return sorted((RUNS / "lenet-cpu").rglob("*.json"))


@pytest.mark.slow
def test_promote_copies_runs_never_overwrites_and_writes_noise(tmp_path):
    root = tmp_path / "baselines"
    result = script("baseline.py", "--root", root, "promote", RUNS / "lenet-cpu")
    assert result.returncode == 0, result.stderr
    [folder] = list(root.iterdir())
    assert folder.name == "3fb884d1daa2"
    assert sorted(p.name for p in folder.iterdir()) == sorted([p.name for p in cpu_runs()] + ["noise.json"])
    noise = json.loads((folder / "noise.json").read_text())
    assert noise["runs"] == 2 and len(noise["benchmarks"]) == 30
    again = script("baseline.py", "--root", root, "promote", RUNS / "lenet-cpu")  # same files: nothing to do
    assert again.returncode == 0 and "copied 0 run(s)" in again.stdout
    clash = tmp_path / "clash" / cpu_runs()[0].name
    clash.parent.mkdir()
    clash.write_text(cpu_runs()[1].read_text())
    refused = script("baseline.py", "--root", root, "promote", clash)
    assert refused.returncode == 2 and "a different run of this name is already in the baseline" in refused.stderr
    assert (folder / clash.name).read_bytes() == cpu_runs()[0].read_bytes()


def compare_main(capsys, *args) -> tuple[int, str, str]:
    """The compare command in this process: (exit status, stdout, stderr)."""
    status = compare_cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_compare_cli_reports_and_exits_by_the_documented_codes(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    summary = tmp_path / "summary.md"
    status, stdout, stderr = compare_main(
        capsys, cpu_runs()[0], cpu_runs()[1], "--json", tmp_path / "v.json", "--markdown", summary
    )
    assert status == EXIT_OK, stderr
    assert "## Benchmark comparison" in stdout and summary.read_text() in stdout + "\n"
    verdicts = json.loads((tmp_path / "v.json").read_text())
    assert len(verdicts["benchmarks"]) == 30
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in (
        ((tmp_path / "missing", cpu_runs()[0]), "the baseline"),
        ((empty, cpu_runs()[0]), "holds no saved runs"),
        ((cpu_runs()[0], RUNS / "lenet-h200"), "different machines or tools"),
        ((cpu_runs()[0], RUNS / "other-pb3"), "different machines or tools"),
    ):
        status, _, stderr = compare_main(capsys, *args)
        assert status == EXIT_BAD_INPUT, (args, stderr)
        assert message in stderr
    status, _, stderr = compare_main(capsys, cpu_runs()[0], RUNS / "lenet-h200", "--allow-mismatch")
    assert status == EXIT_BAD_INPUT  # still no benchmark in common (cpu vs cuda)
    assert "no benchmark is on both sides" in stderr


@pytest.mark.slow
def test_the_compare_script_runs_as_a_command():
    result = script("compare.py", cpu_runs()[0], cpu_runs()[1])
    assert result.returncode == EXIT_OK, result.stderr
    assert "## Benchmark comparison" in result.stdout


@pytest.mark.slow
def test_ab_refuses_a_ref_that_does_not_exist():
    result = script("ab.py", "--baseline", "no-such-ref-anywhere")
    assert result.returncode == EXIT_BAD_INPUT
    assert "baseline 'no-such-ref-anywhere' is not a commit, branch or tag" in result.stderr


# --- a failure is never exit 1 (which means "regression confirmed") -----------------------------------


def test_broken_medians_are_left_out_of_the_verdicts():
    base = side({"b": noisy(1.0, 12, seed=1), "gone": [1.0] * 5})
    cand = side({"b": [*noisy(1.3, 12, seed=2), float("nan"), 0.0, -1.0, float("inf")], "gone": [float("nan")] * 5})
    comparison = compare(base, cand)
    [row] = comparison.table.to_dict("records")
    assert row["benchmark"] == "b" and row["n_candidate"] == 12 and row["verdict"] == "regressed"
    assert comparison.only_baseline == ["gone"]  # no usable time left on the candidate side


def with_medians(tmp_path, name, median):
    """Copies of the two CPU runs in a new folder, the first benchmark's median replaced in both."""
    folder = tmp_path / name
    folder.mkdir()
    for path in cpu_runs():
        run = json.loads(path.read_text())
        run["benchmarks"][0]["stats"]["median"] = median
        (folder / path.name).write_text(json.dumps(run))
    return folder


def test_nan_medians_do_not_crash_the_gate(tmp_path, capsys):
    candidate = with_medians(tmp_path, "nan", float("nan"))
    status, stdout, stderr = compare_main(capsys, RUNS / "lenet-cpu", candidate)
    assert status == EXIT_OK, stderr
    assert "Traceback" not in stderr and "## Benchmark comparison" in stdout


@pytest.mark.parametrize("where", ["--markdown", "--json", "GITHUB_STEP_SUMMARY"])
@pytest.mark.parametrize("problem", ["a folder", "under a file"])
def test_an_output_that_cannot_be_written_is_one_error_line_and_exit_3(tmp_path, capsys, monkeypatch, where, problem):
    target = tmp_path / "taken"
    if problem == "a folder":
        target.mkdir()
    else:
        (tmp_path / "file").write_text("")
        target = tmp_path / "file" / "summary.md"
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    args = [cpu_runs()[0], cpu_runs()[1]]
    if where == "GITHUB_STEP_SUMMARY":
        monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    else:
        args += [where, target]
    status, _, stderr = compare_main(capsys, *args)
    assert status == EXIT_UNUSABLE
    assert stderr.splitlines() == [stderr.strip()] and stderr.startswith(f"error: cannot write {where} {target}: ")


def test_an_internal_error_is_one_line_and_exit_70(capsys, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("ps must include only numbers between 0 and 1\nsecond line")

    monkeypatch.setattr(compare_cli, "gate", broken)
    status, _, stderr = compare_main(capsys, cpu_runs()[0], cpu_runs()[1])
    assert status == EXIT_INTERNAL
    assert stderr.count("\n") == 1 and stderr.startswith("error: internal error, nothing was decided: ValueError: ps")


def test_benchmark_names_never_break_the_comparison_table():
    names = ["a|b", "tick`s", "line\nbreak", "<img src=x onerror=alert(1)>", "``", "| --- |"]
    comparison = compare(side({n: [1.0] * 5 for n in names}), side({n: [1.0] * 5 for n in names}))
    text = markdown(comparison, "base", "cand")
    rows = [line for line in text.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + len(names)
    assert len({len(re.findall(r"(?<!\\)\|", row)) for row in rows}) == 1  # every row as wide as the header
    assert not re.search(r"<[A-Za-z]", re.sub(r"(`+).*?\1", "", text))  # HTML only inside code spans
    assert "``tick`s``" in text and "``` `` ```" in text


def test_a_fingerprint_that_is_a_path_is_replaced_by_the_hash_of_its_fields(tmp_path, capsys):
    run = json.loads(cpu_runs()[1].read_text())
    run["machine_info"]["fingerprint"] = "../../../etc"
    (tmp_path / "run.json").write_text(json.dumps(run))
    status, _, stderr = compare_main(capsys, cpu_runs()[0], tmp_path / "run.json")
    assert status == EXIT_OK, stderr  # the same machine as the baseline, by the hash of its fields
    [warning] = stderr.splitlines()
    assert "machine_info.fingerprint is not a name" in warning and "using 3fb884d1daa2" in warning
