"""Each tree measures its own code, whatever is installed (lenet/source.py).

The end-to-end test reproduces the set-up in which an A/B once compared a tree with itself:
lenet installed editable from one checkout, and ab.py run in another clone whose last commit
changes the model. It must find the change, by instruction counts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from venvs import layered_python

from lenet.instructions import read_counts, unavailable_reason
from lenet.source import (
    ForeignCodeError,
    check_run,
    check_tree,
    child_environment,
    is_inside,
    package_origin,
    recorded_path,
    tree_path_like,
)

REPO = Path(__file__).resolve().parents[1]
PROJECT = [
    "lenet",
    "bench",
    "scripts",
    "pyproject.toml",
    "README.md",
    ".gitignore",
]  # what a checkout needs to run and install
EXIT_REGRESSION, EXIT_BAD_INPUT = 1, 2


# --- what a run records, and what is refused -----------------------------------------------------------


def test_paths_inside_the_checkout_are_recorded_relative_and_others_in_full(tmp_path):
    (tmp_path / "tree" / "lenet").mkdir(parents=True)
    assert recorded_path(tmp_path / "tree" / "lenet", tmp_path / "tree") == "lenet"
    assert recorded_path(tmp_path / "elsewhere", tmp_path / "tree") == str((tmp_path / "elsewhere").resolve())
    assert is_inside("lenet") and is_inside("sub/lenet")
    for outside in ("/opt/lenet", "../lenet", "a/../../lenet", "", None, 3):
        assert not is_inside(outside), outside


def test_a_child_process_puts_the_tree_first_on_its_path(tmp_path):
    environment = child_environment({"PYTHONPATH": "/somewhere", "HOME": "h"}, tmp_path)
    assert environment["PYTHONPATH"] == f"{tmp_path}{os.pathsep}/somewhere" and environment["HOME"] == "h"
    assert child_environment({}, tmp_path)["PYTHONPATH"] == str(tmp_path)


def other_checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A tree without lenet/, and an environment in which lenet resolves to another folder."""
    (tmp_path / "other" / "lenet").mkdir(parents=True)
    (tmp_path / "other" / "lenet" / "__init__.py").write_text("")
    (tmp_path / "tree").mkdir()
    return tmp_path / "tree", child_environment(
        {**os.environ, "PYTHONPATH": str(tmp_path / "other")}, tmp_path / "tree"
    )


def test_a_tree_whose_processes_would_import_another_lenet_is_refused(tmp_path):
    tree, environment = other_checkout(tmp_path)
    with pytest.raises(ForeignCodeError, match=r"would import lenet from .*other.*outside the tree"):
        check_tree(tree, environment, sys.executable)
    (tree / "lenet").mkdir()
    (tree / "lenet" / "__init__.py").write_text("")
    check_tree(tree, environment, sys.executable)  # its own lenet comes first: accepted


def test_a_saved_run_that_imported_code_from_outside_its_tree_is_refused(tmp_path):
    run = tmp_path / "run.json"
    for recorded, refused in (
        ({"lenet": "lenet", "bench": "bench"}, False),
        ({"lenet": "/elsewhere/lenet", "bench": "bench"}, True),
        ({"lenet": "lenet", "bench": "../other/bench"}, True),
        (None, False),  # a run from before the record: check_tree vouched for its process
    ):
        run.write_bytes(orjson.dumps({"commit_info": {"imported_from": recorded} if recorded else {}}))
        if refused:
            with pytest.raises(ForeignCodeError, match="outside the tree"):
                check_run(run, tmp_path)
        else:
            check_run(run, tmp_path)
    run.write_text("{not json")
    check_run(run, tmp_path)  # left to the loaders, which name the file


@pytest.mark.parametrize("recorded", ["lenet", ["lenet"], {}, {"bench": "bench"}, {"lenet": 3}, None])
def test_a_record_of_the_wrong_shape_vouches_for_nothing(tmp_path, recorded):
    run = tmp_path / "run.json"
    run.write_bytes(orjson.dumps({"commit_info": {"imported_from": recorded}}))
    with pytest.raises(ForeignCodeError, match="not a record of where the run's lenet came from"):
        check_run(run, tmp_path)


def test_counts_from_a_counter_that_imported_another_checkout_are_errors(tmp_path):
    manifest = {"tree": str(tmp_path), "cases": [{"id": "a", "dumps": [1], "calls": 1}, {"id": "b", "error": "x"}]}
    counts = read_counts(manifest, tmp_path)
    assert set(counts) == {"a", "b"}
    assert all(isinstance(why, str) and "imported lenet from" in why for why in counts.values())


@pytest.mark.parametrize("length", [12, 40, 200])
def test_another_tree_gets_a_path_as_long_as_the_reference_and_it_is_removed(tmp_path, length):
    """Counts depend on the length of a tree's path: ab.py puts the baseline's worktree at one as long as the
    candidate's (at 12 characters, a folder of its own directly in the temporary folder)."""
    if len(tempfile.gettempdir()) + 5 > length:
        pytest.skip(f"the temporary folder {tempfile.gettempdir()} is too long for a {length}-character path")
    reference = Path("/" + "r" * (length - 1))
    with tree_path_like(reference, "baseline") as tree:
        assert len(str(tree)) == length
        assert not tree.exists() or (tree.is_dir() and not any(tree.iterdir()))  # ready for git worktree add
        tree.mkdir(exist_ok=True)
        (tree / "a file").write_text("x")
    assert not tree.exists()
    with tree_path_like(Path("/r"), "baseline") as tree:  # no path that short: one in a temporary folder
        assert tree.name == "baseline" and tree.parent.is_dir()
    assert not tree.parent.exists()


def test_every_script_runs_its_command_from_its_own_checkout(tmp_path):
    """A lenet elsewhere on the path (another clone's editable install) is not what a script runs."""
    scripts = sorted((REPO / "scripts").glob("[!_]*.py"))
    for script in scripts:
        command = re.search(r'run\("(\w+)"\)', script.read_text())
        assert command and (REPO / "lenet" / "cli" / f"{command.group(1)}.py").is_file(), script.name
    (tmp_path / "lenet").mkdir()
    (tmp_path / "lenet" / "__init__.py").write_text("raise ImportError('the lenet of another checkout')\n")
    environment = {**os.environ, "PYTHONPATH": str(tmp_path)}
    shown = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compare.py"), "--help"],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0 and shown.stdout.startswith("usage: compare.py"), shown.stderr


# --- end to end: lenet installed editable from another checkout --------------------------------------


def copy_project(target: Path) -> Path:
    """This checkout's project files (as they are now, committed or not) copied into ``target``."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", *PROJECT], cwd=REPO, capture_output=True, text=True, check=True
    )
    for name in listed.stdout.splitlines():
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    return target


def git(tree: Path, *args: str) -> str:
    identity = ["-c", "user.name=lenet-bench tests", "-c", "user.email=tests@lenet-bench.invalid"]
    return subprocess.run(["git", *identity, *args], cwd=tree, capture_output=True, text=True, check=True).stdout


def editable_python(venv: Path, checkout: Path) -> Path:
    """A virtual environment on top of this one (torch, pytest, ...) with lenet installed editable from ``checkout``."""
    python = layered_python(venv)
    install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-e", checkout]
    result = subprocess.run(install, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return python


EXTRA_WORK = """
import itertools


def _extra_work(iterations: int) -> int:
    flag = 0
    for _ in itertools.repeat(None, iterations):  # no int object is made: the same cost per iteration at any count
        flag ^= 1
    return flag
"""
# The same work in a process of its own: warmed up (specialized) first, as it is in a benchmark's timed calls.
SPIN = EXTRA_WORK + "import sys\n_extra_work(100)\n_extra_work(int(sys.argv[1]))\n"


def count_the_extra_work(tmp_path: Path) -> Callable[[], float]:
    """Start counting what one iteration of the pure-Python work the candidate adds costs (two counted processes,
    side by side: a count does not depend on the load); the function returned waits for them and says."""
    processes = {}
    environment = {**os.environ, "PYTHONHASHSEED": "0"}  # the same start-up work in both processes
    for iterations in (100_000, 200_000):
        out = tmp_path / f"spin.{iterations}"
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", SPIN]
        processes[iterations] = subprocess.Popen(
            [*command, str(iterations)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment
        )

    def instructions_per_iteration() -> float:
        totals = {}
        for iterations, process in processes.items():
            assert process.wait(timeout=600) == 0, f"valgrind counting {iterations} iterations failed"
            out = tmp_path / f"spin.{iterations}"
            totals[iterations] = int(re.search(rb"^(?:totals|summary):\s*(\d+)", out.read_bytes(), re.M).group(1))
        return (totals[200_000] - totals[100_000]) / 100_000

    return instructions_per_iteration


def the_change(model: str, iterations: int) -> str:
    """LeNet's forward with about +1% of pure-Python work."""
    anchor = "        c3 = F.relu(self.conv2(s2))  # (N, 16, 10, 10)\n"
    assert anchor in model, "lenet/model.py changed: update the change this test makes"
    added = f"        _extra_work({iterations})  # the change under test\n"
    return model.replace(anchor, anchor + added) + "\n" + EXTRA_WORK


def saved_runs(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.rglob("*.json")) if p.name != "noise.json"]


def skip_without_git_or_valgrind() -> None:
    reason = unavailable_reason("cpu")
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and this git checkout")
    if reason:
        if os.environ.get("LENET_REQUIRE_VALGRIND"):  # CI: counts are the evidence here, never skipped
            pytest.fail(f"LENET_REQUIRE_VALGRIND is set but {reason}")
        pytest.skip(reason)


def clone_with_history(folder: Path) -> tuple[Path, str, str]:
    """A copy of the project as a git repository: a first commit without lenet/'s code, then the whole project."""
    clone = copy_project(folder)
    git(clone, "init", "-q")
    git(clone, "add", "pyproject.toml", "README.md")
    git(clone, "commit", "-qm", "a commit without lenet/'s code")
    no_lenet = git(clone, "rev-parse", "HEAD").strip()
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", "base")
    return clone, no_lenet, git(clone, "rev-parse", "HEAD").strip()


def ab_verdicts(keep: Path, verdicts: Path) -> dict[str, dict]:
    """ab.py's verdicts by test function, once each side's processes are seen to have run their own tree."""
    for side in ("baseline", "candidate"):  # each counted process's run and its pytest log, from its own tree
        counted = keep / "counted" / side
        assert sorted(p.name for p in counted.iterdir()) == ["0001.json", "0001.log"]
        assert "1 passed" in (counted / "0001.log").read_text()
        assert all(r["commit_info"]["imported_from"]["lenet"] == "lenet" for r in saved_runs(counted))
        # its counts alone are used: no metrics pass (which calibrate's processes, with the same options, made)
        assert not any("metrics_seconds" in b["extra_info"] for r in saved_runs(counted) for b in r["benchmarks"])
        assert not any((keep / side).iterdir())  # the counts decided every benchmark: no time process ran
    return {row["benchmark"].split("[")[0]: row for row in json.loads(verdicts.read_text())["benchmarks"]}


@pytest.mark.slow
def test_each_tree_measures_its_own_code_with_lenet_installed_editable_from_another(tmp_path, peaks_dir):
    """calibrate and ab.py in a clone, lenet installed editable from another checkout (a few minutes under valgrind)."""
    skip_without_git_or_valgrind()
    installed = copy_project(tmp_path / "installed")
    python = editable_python(tmp_path / "venv", installed)
    env = {**os.environ, "LENET_PEAKS_DIR": str(peaks_dir)}
    env.pop("PYTHONPATH", None)
    origin = package_origin(tmp_path, env, str(python))
    assert Path(origin).parent == installed / "lenet"  # the trap: an editable install elsewhere
    clone, no_lenet, base = clone_with_history(tmp_path / "clone")
    extra_work_cost = count_the_extra_work(tmp_path)  # counted while calibrate runs

    def run(script: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [python, f"scripts/{script}", *args]
        return subprocess.run(command, cwd=clone, env=env, capture_output=True, text=True, timeout=1800)

    # calibrate in the clone: the clone's code, tagged with the clone's commit; its two counted processes size the
    # +1% and lend ab.py how far counts stray, so that one counted process a side decides there
    selection = ["--preset", "smoke", "--phases", "forward_inference", "--benchmark-max-time=0.02"]
    baselines = tmp_path / "baselines"
    calibrated = run(
        "baseline.py", "--root", str(baselines), "calibrate", "--processes", "2", "--count-processes", "2",
        "--", *selection,
    )  # fmt: skip
    assert calibrated.returncode == 0, calibrated.stdout + calibrated.stderr
    runs = saved_runs(baselines)
    assert len(runs) == 2 and all(r["commit_info"]["id"] == base for r in runs)
    assert all(r["commit_info"]["imported_from"] == {"lenet": "lenet", "bench": "bench"} for r in runs)
    counts = [b["extra_info"]["instructions"] for r in runs for b in r["benchmarks"]]
    assert len(counts) == 2 and all(counts), counts
    assert all("metrics_seconds" in b["extra_info"] for r in runs for b in r["benchmarks"])
    [baseline_folder] = baselines.iterdir()

    # one commit: +1% of pure-Python work in the forward. A large change (an extra conv2) is found end to end by
    # test_bisect.py, and counts calling unchanged code unchanged by test_environments.py (two plain venvs).
    iterations = round(0.01 * min(counts) / extra_work_cost())
    model = clone / "lenet" / "model.py"
    model.write_text(the_change(model.read_text(), iterations))
    git(clone, "commit", "-qam", "the change")
    keep, verdicts = tmp_path / "runs", tmp_path / "ab.json"
    ab = run(
        "ab.py", "--baseline", "HEAD~1", "--min-processes", "2", "--max-processes", "2", "--instructions", "on",
        "--count-processes", "1", "--count-calibration", str(baseline_folder),
        "--keep", str(keep), "--json", str(verdicts), "--", *selection,
    )  # fmt: skip
    assert ab.returncode == EXIT_REGRESSION, ab.stdout + ab.stderr
    assert "no time processes needed" in ab.stderr and "time processes (ABBA): none" in ab.stdout
    assert f"how far counts stray: also from the calibration in {baseline_folder}" in ab.stdout
    work = ab_verdicts(keep, verdicts)["test_forward_inference"]
    assert (work["decision"], work["count_verdict"], work["count_processes"]) == ("regressed", "regressed", "1 / 1")
    assert 1.006 < work["count_ratio"] < 1.02, work  # the +1% change, measured

    # a baseline commit without lenet/'s code would measure the installed checkout: refused before any process
    refused = run("ab.py", "--baseline", no_lenet, "--keep", str(tmp_path / "refused"), "--", *selection)
    assert refused.returncode == EXIT_BAD_INPUT, refused.stdout + refused.stderr
    assert re.search(r"the baseline side: .* would import lenet from .*installed.*outside the tree", refused.stderr)
    assert not any(p.is_file() for p in (tmp_path / "refused").rglob("*"))
