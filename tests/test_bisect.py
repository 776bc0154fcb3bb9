"""The bisection: its decisions on literal measurements, and scripts/culprit.py's refusals on a real git repo."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lenet.bisect import BETWEEN, LIKE_BAD, LIKE_GOOD, SKIPPED, Measurement, bisect, classify, step_benchmarks
from lenet.cli.bisect import main
from lenet.instructions import unavailable_reason
from lenet.source import REPO


def counts(commit: str, forward: float, step: float = 1000.0) -> Measurement:
    return Measurement(commit, "instructions", {"forward": (forward,), "step": (step,)})


GOOD, BAD = counts("g", 1_000_000), counts("b", 1_020_000)


def test_the_step_is_the_benchmarks_that_moved() -> None:
    assert step_benchmarks(GOOD, BAD) == {"forward": pytest.approx(1.02)}
    assert step_benchmarks(GOOD, counts("b", 1_000_100)) == {}  # 0.01%: not worth bisecting


def test_time_steps_need_an_interval_that_excludes_one() -> None:
    good = Measurement("g", "time", {"t": (1.00, 1.02, 0.99, 1.01, 1.00)})
    assert step_benchmarks(good, Measurement("b", "time", {"t": (1.10, 1.12, 1.09, 1.11, 1.10)})) == {
        "t": pytest.approx(1.10)
    }
    assert step_benchmarks(good, Measurement("b", "time", {"t": (1.30, 0.90, 1.00, 0.95, 1.40)})) == {}


def test_a_probe_is_like_good_like_bad_between_or_skipped() -> None:
    step = step_benchmarks(GOOD, BAD)
    assert classify(counts("p", 1_000_200), GOOD, BAD, step).verdict == LIKE_GOOD
    assert classify(counts("p", 1_019_900), GOOD, BAD, step).verdict == LIKE_BAD
    assert classify(counts("p", 1_010_000), GOOD, BAD, step).verdict == BETWEEN
    assert classify(Measurement("p", "instructions", problem="ImportError"), GOOD, BAD, step).verdict == SKIPPED
    missing = classify(Measurement("p", "instructions", {"step": (1000.0,)}), GOOD, BAD, step)
    assert missing.verdict == SKIPPED and "forward" in missing.reason


def history(culprit: int, size: int = 16) -> dict[str, Measurement]:
    return {f"c{i}": counts(f"c{i}", 1_020_000 if i >= culprit else 1_000_000) for i in range(size)}


@pytest.mark.parametrize("culprit", [0, 1, 7, 8, 15])
def test_bisect_names_the_culprit_within_log2_probes(culprit: int) -> None:
    measured = history(culprit)
    commits = list(measured)
    result = bisect(commits, GOOD, measured["c15"], measured.__getitem__)
    assert result.culprit == f"c{culprit}" and len(result.probes) <= 4
    assert result.parent == ("g" if culprit == 0 else f"c{culprit - 1}")


def test_bisect_skips_a_broken_commit_and_still_names_the_culprit() -> None:
    measured = history(9)
    measured["c7"] = Measurement("c7", "instructions", problem="pytest exit 2: ImportError")
    result = bisect(list(measured), GOOD, measured["c15"], measured.__getitem__)
    assert result.culprit == "c9"
    assert [p.commit for p in result.probes if p.verdict == SKIPPED] == ["c7"]


def test_bisect_with_nothing_between_good_and_bad() -> None:
    result = bisect(["b"], GOOD, BAD, lambda commit: pytest.fail("nothing to probe"))
    assert result.culprit == "b" and result.parent == "g"
    same = bisect(["c0", "b"], GOOD, counts("b", 1_000_000), lambda commit: pytest.fail("no step"))
    assert same.culprit is None and "do not differ" in same.notes[0]


def test_two_steps_are_said_and_the_larger_followed() -> None:
    values = [1_000_000] * 4 + [1_005_000] * 4 + [1_020_000] * 8  # +0.5% at c4, +1.5% at c8
    measured = {f"c{i}": counts(f"c{i}", v) for i, v in enumerate(values)}
    result = bisect(list(measured), GOOD, measured["c15"], measured.__getitem__)
    assert result.culprit == "c8"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def small_repo(tmp_path: Path) -> tuple[Path, list[str]]:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    shas = []
    for i in range(4):
        (repo / "file.txt").write_text(f"{i}\n")
        _git(repo, "add", "file.txt")
        _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"c{i}")
        shas.append(_git(repo, "rev-parse", "HEAD"))
    return repo, shas


def test_bad_input_gets_one_line_and_exit_2(small_repo, capsys) -> None:
    repo, shas = small_repo
    cases = [
        ["--good", shas[3], "--bad", shas[0]],  # good newer than bad
        ["--good", "no-such-ref", "--bad", shas[3]],
        ["--good", shas[0], "--bad", shas[3], "--max-commits", "2"],
    ]
    for arguments in cases:
        assert main([*arguments, "--repo", str(repo)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1
    (repo / "file.txt").write_text("dirty\n")
    assert main(["--good", shas[0], "--bad", shas[3], "--repo", str(repo)]) == 2
    assert "uncommitted" in capsys.readouterr().err
    assert _git(repo, "worktree", "list").count("\n") == 0  # no worktree left behind


# The smallest counted selection: one eager case at batch 2, one thread (about a minute a process under valgrind).
SELECTION = ["--preset", "smoke", "--variants", "cpu-contiguous-fp32-eager", "--phases", "forward_inference"]
SELECTION += ["--threads", "1"]
EXTRA_CONV = (
    "        c3 = F.relu(self.conv2(s2))  # (N, 16, 10, 10)\n",
    "        c3 = F.relu(self.conv2(s2))  # (N, 16, 10, 10)\n        c3 = c3 + 0 * self.conv2(s2)  # extra work\n",
)


@pytest.fixture(scope="session")
def culprit_history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], Path]:
    """A clone of this checkout with two commits on top, the first adding a conv2 call to Net.forward; and the
    folder where bisect keeps (and reuses) its measurements. The culprit lies between the ends, so bisect must
    measure it as a probe (the ends side by side, then the one probe: two rounds of counting)."""
    if unavailable_reason("cpu"):
        if os.environ.get("LENET_REQUIRE_VALGRIND"):  # CI: counts are the evidence here, never skipped
            pytest.fail(f"LENET_REQUIRE_VALGRIND is set but {unavailable_reason('cpu')}")
        pytest.skip(unavailable_reason("cpu"))
    repo = tmp_path_factory.mktemp("bisect") / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(repo)], check=True)
    shas = [_git(repo, "rev-parse", "HEAD")]
    for subject, (path, old, new) in [
        ("model: an extra conv2 call", ("lenet/model.py", *EXTRA_CONV)),
        ("docs: a note", ("docs/findings.md", "", "\nA note.\n")),
    ]:
        file = repo / path
        text = file.read_text()
        file.write_text(text.replace(old, new) if old else text + new)
        _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", subject)
        shas.append(_git(repo, "rev-parse", "HEAD"))
    return repo, shas, repo.parent / "keep"


@pytest.mark.slow
def test_bisect_names_the_commit_that_added_work_and_then_reuses_its_runs(culprit_history, tmp_path, capsys) -> None:
    """Three counted processes, the two ends side by side then one probe (about a minute on 2 quiet cores);
    the rerun reuses them all."""
    repo, shas, keep = culprit_history
    found = tmp_path / "found.json"
    arguments = ["--good", shas[0], "--bad", shas[2], "--repo", str(repo), "--keep", str(keep), "--json", str(found)]
    assert main([*arguments, "--", *SELECTION]) == 0
    document = json.loads(found.read_text())
    assert document["culprit"] == shas[1] and document["subject"] == "model: an extra conv2 call"
    assert document["parent"] == shas[0] and [p["commit"] for p in document["probes"]] == [shas[1]]  # one probe
    (evidence,) = document["evidence"]
    assert evidence["change_percent"] > 5  # a second conv2 at batch 2 is a large share of the forward
    assert "First bad commit" in capsys.readouterr().out
    probes = [json.loads(run.read_text())["benchmarks"] for run in keep.rglob("*.json")]
    assert len(probes) == 3 and not any("metrics_seconds" in b["extra_info"] for run in probes for b in run)
    assert main([*arguments, "--", *SELECTION]) == 0
    again = json.loads(found.read_text())
    assert again["culprit"] == shas[1] and again["commits_measured"] == 0 and again["commits_reused"] == 3
    assert _git(repo, "worktree", "list").count("\n") == 0 and _git(repo, "status", "--porcelain") == ""


@pytest.mark.slow
def test_a_bad_end_that_cannot_run_is_bad_input(culprit_history, tmp_path, capsys) -> None:
    """The good end's runs are reused from the test above when it ran first."""
    repo, shas, keep = culprit_history
    broken = tmp_path / "broken"
    subprocess.run(["git", "clone", "-q", str(repo), str(broken)], check=True)
    (broken / "lenet" / "model.py").write_text("raise ImportError('broken on purpose')\n")
    _git(broken, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "break the model")
    code = main(["--good", shas[2], "--bad", "HEAD", "--repo", str(broken), "--keep", str(keep), "--", *SELECTION])
    assert code == 2 and "cannot be measured" in capsys.readouterr().err
