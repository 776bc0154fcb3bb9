"""Change points over the history: the method on literal data, and changes.py on saved-run files in a real git repo."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lenet.analysis.blocks import Heading
from lenet.analysis.changepoints import find_change_points, l1_split
from lenet.analysis.changes import change_blocks, first_parent_order, unmeasured_between
from lenet.cli.changes import main
from lenet.runs.source import open_source
from lenet.source import REPO

FIXTURE = next(Path(__file__).parent.joinpath("fixtures/runs/lenet-cpu").rglob("0002_*.json"))
# Time medians of one benchmark in 24 real processes of identical code (ms; the gate study's A side, rounded).
REAL_TIMES = [2.08, 2.11, 2.05, 2.31, 2.07, 2.12, 2.02, 2.09, 2.44, 2.06, 2.10, 2.13,
              2.04, 2.08, 2.19, 2.07, 2.01, 2.11, 2.09, 2.26, 2.05, 2.12, 2.08, 2.10]  # fmt: skip


def test_a_count_step_is_found_at_its_exact_run() -> None:
    counts = [30_216_967.0] * 20 + [30_216_967.0 * 1.01] * 20
    (point,) = find_change_points(counts)
    assert point.index == 20 and point.ratio.point == pytest.approx(1.01) and point.p_value < 0.01


def test_identical_counts_have_no_step() -> None:
    assert find_change_points([1e6] * 40) == []


def test_a_tiny_count_change_is_below_the_minimum_size() -> None:
    counts = [1e6] * 20 + [1e6 * 1.0001] * 20
    assert find_change_points(counts, min_change=0.005) == []
    assert [p.index for p in find_change_points(counts)] == [20]


def test_the_l1_split_places_a_clean_step_at_its_run() -> None:
    values = np.log([1.0, 1.0002, 0.9999, 1.0001, 1.01, 1.0098, 1.0101, 1.0102])
    assert l1_split(values, np.ones(7, dtype=bool)) == 4


def test_a_one_run_spike_is_not_a_step() -> None:
    times = REAL_TIMES * 2
    times[30] *= 1.6
    assert find_change_points(times, min_change=0.02) == []


def test_a_ten_percent_time_step_in_real_noise_is_found_within_two_runs() -> None:
    times = REAL_TIMES + [t * 1.10 for t in REAL_TIMES]
    (point,) = find_change_points(times, min_change=0.02)
    assert abs(point.index - 24) <= 2 and point.ratio.low > 1.0


def test_a_step_falls_only_between_commits() -> None:
    counts = [100.0] * 10 + [101.0] * 10
    boundaries = [i % 2 == 0 for i in range(20)]  # two runs per commit; the step at run 10 is a boundary
    (point,) = find_change_points(counts, boundaries)
    assert point.index == 10
    boundaries = [i % 4 == 0 for i in range(20)]  # four runs per commit: 10 is inside one
    (point,) = find_change_points(counts, boundaries)
    assert point.index in (8, 12)


def test_two_steps_are_both_found() -> None:
    counts = [100.0] * 15 + [102.0] * 15 + [99.0] * 15
    assert [p.index for p in find_change_points(counts)] == [15, 30]


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        find_change_points([1.0, 0.0, 2.0])


def test_unmeasured_between() -> None:
    assert unmeasured_between(["a1", "b2", "c3", "d4"], "a1", "d4") == ("b2", "c3")
    assert unmeasured_between(["a1", "b2"], "b2", "a1") == ()


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """A git repo of 24 commits, and one saved run per commit: counts step +1% at commit 12, a time spike at 5,
    and a flagged run at 20."""
    root = tmp_path_factory.mktemp("history")
    repo, runs = root / "repo", root / "runs"
    repo.mkdir()
    runs.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    shas = []
    for i in range(24):
        _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", f"c{i}")
        shas.append(_git(repo, "rev-parse", "HEAD"))
    template = json.loads(FIXTURE.read_text())
    for i, sha in enumerate(shas):
        _write_run(runs / f"{i:04d}_{sha[:7]}.json", template, sha, i)
    return repo, runs, shas


def _write_run(path: Path, template: dict, sha: str, i: int) -> None:
    document = copy.deepcopy(template)
    document["benchmarks"] = document["benchmarks"][:1]
    document["commit_info"].update(id=sha, time=f"2026-11-27T12:{i:02d}:00+00:00", dirty=False)
    document["datetime"] = f"2026-11-28T12:{i:02d}:00+00:00"
    bench = document["benchmarks"][0]
    time = REAL_TIMES[i] / 1000 * (1.6 if i == 5 else 1.0)
    bench["stats"].update(median=time, min=time * 0.9, max=time * 1.2, mean=time)
    count = 1e6 * (1.01 if i >= 12 else 1.0)
    bench["extra_info"].update(
        instructions=count, instructions_spread=0.0, instructions_repeats=[count], instructions_calls_per_repeat=1
    )
    bench["extra_info"].update(stability_flags=["busy"] if i == 20 else [], stability_reasons=[])
    path.write_text(json.dumps(document))


def test_changes_names_the_commit_range_and_exits_1(history, tmp_path, capsys) -> None:
    repo, runs, shas = history
    out = tmp_path / "changes.json"
    assert main([str(runs), "--repo", str(repo), "--json", str(out)]) == 1
    text = capsys.readouterr().out
    assert "first-parent order" in text and "REGRESSION" in text
    assert f"--good {shas[11]} --bad {shas[12]}" in text
    assert "left out of" in text and "(busy)" in text
    (change,) = json.loads(out.read_text())["changes"]
    assert change["metric"] == "instructions" and change["change_percent"] == pytest.approx(1.0)
    assert change["before"] == shas[11] and change["after"] == shas[12]


def test_changes_window_after_the_step_exits_0(history, capsys) -> None:
    repo, runs, shas = history
    assert main([str(runs), "--repo", str(repo), "--since", shas[14]]) == 0
    assert "no step found" in capsys.readouterr().out


def test_changes_bad_input_exits_2_with_one_line(history, tmp_path, capsys) -> None:
    repo, runs, _ = history
    assert main([str(runs), "--repo", str(repo), "--since", "no-such-ref"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main([str(tmp_path / "missing"), "--repo", str(repo)]) == 2


def test_the_report_section_shows_the_step(history) -> None:
    repo, runs, shas = history
    frame = open_source([str(runs)]).runs().frame
    section = change_blocks(frame, first_parent_order(repo))
    assert section[0] == Heading(2, "Steps in the history")
    (row,) = section[-1].rows
    assert row[:3] == ("regression", row[1], "instructions") and row[5] == shas[11][:12] and row[6] == shas[12][:12]
    assert change_blocks(frame.iloc[:3]) == []  # too short a history to search: no section


@pytest.mark.parametrize("script", ["changes.py", "culprit.py"])
def test_the_scripts_start(script: str) -> None:
    """Run as files, as users run them: no script may hide a standard-library module from the others."""
    result = subprocess.run([sys.executable, str(REPO / "scripts" / script), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_history_plot_marks_the_step_where_it_starts(history) -> None:
    from lenet.analysis import plots
    from lenet.analysis.changes import COUNTS, find_changes, samples_from_frame

    repo, runs, _ = history
    frame = open_source([str(runs)]).runs().frame
    changes, _, _ = find_changes(samples_from_frame(frame), first_parent_order(repo))
    (change,) = changes
    marks = plots.history_changes(changes, change.machine, frame, COUNTS)
    assert marks == (change,) and plots.history_changes(changes, change.machine, frame, "time") == ()
    figure = plots.history_figure(frame, metric="instructions", by="commit", changes=marks)
    axes = figure.axes[0]
    (line,) = [line for line in axes.lines if line.get_label() == "step found (changes.py)"]
    assert list(line.get_xdata()) == [11.5, 11.5]  # between commit 11 and commit 12
    assert any(text.get_text().startswith("+1.0%") for text in axes.texts)
    plots.plt.close(figure)


def test_a_time_step_in_one_sided_noise_is_placed_about_the_lower_quartile() -> None:
    from lenet.analysis.changepoints import quantile_split

    fast = [1.00, 1.01, 0.99, 1.02, 1.00, 0.98, 1.01, 1.00, 0.99, 1.01]
    slow = {1: 1.45, 4: 1.5, 8: 1.4, 11: 1.5, 13: 1.45, 16: 1.4, 18: 1.45}  # processes the machine slowed
    values = np.log([v * (1.10 if i >= 10 else 1.0) * slow.get(i, 1.0) for i, v in enumerate(fast * 2)])
    allowed = np.ones(values.size - 1, dtype=bool)
    assert quantile_split(values, allowed, 0.25) == 10
