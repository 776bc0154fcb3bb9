"""What the tests share: the repository, a real `pytest bench` run in a tiny configuration, and a check
that nothing a test started (a server, a browser, compile workers) outlives the test session."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
# As few rounds as pytest-benchmark allows: these runs prove the suites run, save and load, not speed.
FAST = ("--benchmark-max-time=0.02", "--benchmark-min-rounds=3", "-p", "no:cacheprovider")

# Inductor compiles in the test process itself rather than in a pool of worker processes per
# pytest process: the suite then starts no long-lived compile workers, which on a loaded machine
# had made thread creation fail ("can't start new thread").
os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
# Under pytest-xdist (tox) a worker's environment names it; a `pytest bench` the tests start would inherit that,
# and pytest-benchmark then disables every benchmark ("xdist plugin is active"): the children must not see it.
for _name in [name for name in os.environ if name.startswith("PYTEST_XDIST_")]:
    del os.environ[_name]

import torch  # noqa: E402 - after the compile-threads setting above, which torch reads on import

# The tests' own torch runs one thread; the processes they start keep torch's default (recorded here for the
# placeholder peaks). On a 2-core machine shared with other work, OpenMP's second thread spun against the
# load and made in-process tests several times slower (a 31-step training test took 55 s in a loaded run).
DEFAULT_THREADS = torch.get_num_threads()
torch.set_num_threads(1)

BenchRunner = Callable[..., subprocess.CompletedProcess[str]]


def _run_bench(
    *args: str, env: dict[str, str] | None = None, peaks_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``pytest bench`` of this checkout in a fresh process, with FAST settings and ``args``.

    The machine's peaks are read from ``peaks_dir`` (never the checkout's results/peaks)."""
    env = {**({"LENET_PEAKS_DIR": str(peaks_dir)} if peaks_dir is not None else {}), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "bench", *FAST, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=1200,  # a counted run (--instructions) takes minutes
    )


@pytest.fixture(scope="module")
def frame(request: pytest.FixtureRequest) -> Any:
    """The runs of the test module's ``RUNS`` folder as one frame, read once per module."""
    from lenet.runs.files import read_runs

    return read_runs([request.module.RUNS]).frame


@pytest.fixture(scope="module")
def summary(frame: Any) -> Any:
    """The at-a-glance summary of ``frame``'s latest commit."""
    from lenet.analysis.summary import latest_commit, summarize

    return summarize(latest_commit(frame))


@pytest.fixture(scope="session", autouse=True)
def children_without_hypothesis() -> None:
    """The processes the tests start (`pytest bench`, the scripts' suites) load no Hypothesis plugin, as a user's
    benchmark environment (no test extras) has none: it cost each one about 0.9 s of its 3.5 s start. Set once the
    test process is configured, so that it (and an xdist worker it starts) keeps the plugin its fuzz tests use."""
    given = os.environ.get("PYTEST_ADDOPTS")
    os.environ["PYTEST_ADDOPTS"] = " ".join(filter(None, [given, "-p no:hypothesispytest"]))


@pytest.fixture(scope="session")
def peaks_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Placeholder peaks of this machine, for 1 thread and torch's default: measuring them takes ~20 s a run."""
    from lenet.metrics.peaks import Peaks, identity, save_peaks

    folder = tmp_path_factory.mktemp("peaks")
    for threads in {1, DEFAULT_THREADS}:
        rates = {"fp32": 100.0, "bf16": 400.0}
        sweep = {kind: {"1024": rate} for kind, rate in rates.items()}
        bandwidth = {"copy": 10.0, "triad": 12.0}
        placeholder = Peaks(identity("cpu", threads), rates, sweep, bandwidth, 1 << 26, "placeholder for tests")
        save_peaks(folder, placeholder)
    return folder


@pytest.fixture(scope="session")
def run_bench(peaks_dir: Path) -> BenchRunner:
    return functools.partial(_run_bench, peaks_dir=peaks_dir)


@dataclass(frozen=True)
class SmokeRun:
    """The session's one plain ``pytest bench --preset smoke`` run (one thread), saved both ways."""

    result: subprocess.CompletedProcess[str]
    storage: Path  # --benchmark-autosave's folder
    output: Path  # --benchmark-json's file


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory, run_bench: BenchRunner) -> SmokeRun:
    """One real smoke run shared by the tests that only read what a plain run saves and prints: each of them
    used to start its own (about 15 s each)."""
    folder = tmp_path_factory.mktemp("smoke")
    storage, output = folder / "benchmarks", folder / "run.json"
    result = run_bench(
        *("--preset", "smoke", "--threads", "1", "--benchmark-autosave", f"--benchmark-storage={storage}"),
        f"--benchmark-json={output}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return SmokeRun(result, storage, output)


@pytest.fixture(scope="session")
def switched_run(tmp_path_factory: pytest.TempPathFactory, run_bench: BenchRunner) -> SmokeRun:
    """One run with the switches that change what a run does but not each other: a CUDA variant beside the CPU
    one (skipped without CUDA), ``--no-metrics``, a rootdir outside the checkout, and ``--instructions`` where
    valgrind cannot be found (an empty folder as PATH; python is run by its full path). Shared by their tests."""
    folder = tmp_path_factory.mktemp("switched")
    output, no_valgrind = folder / "run.json", folder / "bin"
    no_valgrind.mkdir()
    result = run_bench(
        *("--preset", "smoke", "--phases", "forward_inference", "--batch-sizes", "2", "--no-metrics"),
        *("--variants", "cpu-contiguous-fp32-eager,cuda-contiguous-fp32-eager", f"--rootdir={folder}"),
        *("--instructions", f"--benchmark-json={output}"),
        env={"PATH": str(no_valgrind)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return SmokeRun(result, folder, output)


# The test files that cost the most CPU time (docs/development.md), started first in this order (xdist hands out
# whole files in collection order: tox passes --no-loadscope-reorder, which would otherwise order them by their
# number of tests); then the files with tests marked slow, then the rest.
LONGEST_FIRST = (
    "test_trees.py",
    "test_environments.py",
    "test_bisect.py",
    "test_analysis_mutations.py",
    "test_bench_e2e.py",
    "test_traces_e2e.py",
    "test_metrics.py",
    "test_step_scope.py",
    "test_store_postgres.py",
    "test_studies.py",
)


def start_order(item: pytest.Item) -> tuple[int, int]:
    """Where a test starts: the longest files first, then the slow tests, then the rest (each kind in collection
    order)."""
    file = item.path.name
    longest = LONGEST_FIRST.index(file) if file in LONGEST_FIRST else len(LONGEST_FIRST)
    return longest, item.get_closest_marker("slow") is None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the longest first: tox runs one worker per CPU, each file in one worker (``--dist loadfile``, so a
    module's set-up is made once), and a worker that drew a minute-long file last would leave the other idle."""
    items.sort(key=start_order)  # stable: the collection order within each kind stays


def child_processes() -> dict[int, str]:
    """This process's live children (pid -> command), from /proc; empty where there is no /proc."""
    children: dict[int, str] = {}
    for task in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        for pid in task.read_text().split():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                state = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1]
            except OSError:  # it ended while we looked
                continue
            if state != "Z":
                children[int(pid)] = command.strip()[:120]
    return children


@pytest.fixture(scope="session", autouse=True)
def nothing_outlives_the_session() -> Iterator[None]:
    """Fail the session if a test left a process running: servers and browsers are stopped by their tests."""
    before = set(child_processes())
    yield
    deadline = time.monotonic() + 10
    while (left := {pid: cmd for pid, cmd in child_processes().items() if pid not in before}) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert not left, f"processes started by tests are still running: {left}"
