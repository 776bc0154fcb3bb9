"""pytest wiring of the LeNet-5 suites: options, parametrization, and the fixture that measures.

The options and their environment twins are in ``lenet/options.py``; the measuring
pipeline (build, gate, warm-up, timing, record) is ``lenet/harness.py``; this file only
connects them to pytest and pytest-benchmark. Bad values stop the run before any
benchmark starts, with one line naming the value and the legal choices.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lenet import machine, source
from lenet.benchmark_timer import BenchmarkRounds
from lenet.options import OPTIONS, RunOptions
from lenet.session import BenchSession
from lenet.timing import cuda_timer
from lenet.variants import Case, Phase, SelectionError, skip_reason

_SESSION = pytest.StashKey[BenchSession]()
BENCH = Path(__file__).resolve().parent  # the suites this run measures (recorded beside lenet's origin)
DEFAULT_STORAGE = "results/benchmarks"  # pyproject.toml's --benchmark-storage


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lenet-bench", "LeNet benchmark selection, profiling and instruction counts")
    for option in OPTIONS:
        action = "store_true" if option.switch else "store"
        group.addoption(option.flag, action=action, default=None, help=f"{option.help} [env {option.env}]")


def pytest_configure(config: pytest.Config) -> None:
    given = {option.flag: config.getoption(option.dest) for option in OPTIONS}
    try:
        options = RunOptions.parse(given, os.environ, machine.cpu_count(), root=config.rootpath)
    except SelectionError as error:
        raise pytest.UsageError(str(error)) from None
    if options.publish_db and not (
        config.option.benchmark_autosave or config.option.benchmark_save or config.option.benchmark_json
    ):
        raise pytest.UsageError("--publish-db publishes the saved run: add --benchmark-autosave or --benchmark-json")
    if config.option.benchmark_storage == DEFAULT_STORAGE:  # the project's default: the checkout's results/,
        config.option.benchmark_storage = str(config.rootpath / DEFAULT_STORAGE)  # wherever pytest runs from
    config.stash[_SESSION] = BenchSession.start(options)
    if threading.current_thread() is threading.main_thread():
        # A cancelled CI job gets SIGTERM: end like Ctrl-C, so the benchmarks already finished are saved.
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    """Before pytest-benchmark saves the run: drop what was not measured whole, then count instructions."""
    if _SESSION in session.config.stash:
        stopped = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldstop or session.shouldfail)
        session.config.stash[_SESSION].finish(session.config._benchmarksession.benchmarks, stopped_early=stopped)
    yield


def pytest_report_header(config: pytest.Config) -> list[str]:
    code = source.imported_from(config.rootpath, BENCH)
    outside = [f"{name} from {where}" for name, where in code.items() if not source.is_inside(where)]
    warning = [f"warning: this run measures {', '.join(outside)}: outside {config.rootpath}"] if outside else []
    return config.stash[_SESSION].header() + warning


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    for line in config.stash[_SESSION].summary() if _SESSION in config.stash else ():
        terminalreporter.write_line(line)


def pytest_benchmark_update_json(config: pytest.Config, benchmarks: Any, output_json: dict[str, Any]) -> None:
    config.stash[_SESSION].publish(output_json)  # --publish-db


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info.update(machine.collect())


def pytest_benchmark_update_commit_info(config: pytest.Config, commit_info: dict[str, Any]) -> None:
    """The code measured: where lenet and bench/ were imported from (``lenet.source``), and the commit.

    A checkout copied without its .git (a CI artifact, a remote GPU box) names its commit in LENET_COMMIT.
    """
    commit_info["imported_from"] = source.imported_from(config.rootpath, BENCH)
    commit = os.environ.get("LENET_COMMIT")
    if commit and commit_info.get("id") in (None, "unknown"):
        commit_info.update(id=commit, error=None, source="LENET_COMMIT")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("lenet_phase")
    if marker is None:
        return
    phase = Phase(marker.args[0])
    argnames = ["variant", "batch_size", "optimizer"] if phase.uses_optimizer else ["variant", "batch_size"]
    params = []
    for case in metafunc.config.stash[_SESSION].options.selection.cases(phase):
        values: list[object] = [case.variant.id, case.batch_size]
        if case.optimizer is not None:
            values.append(case.optimizer.id)
        settings: dict[str, object] = {"group": f"{phase.value} batch={case.batch_size}"}
        reason = skip_reason(case)
        if reason is None and case.variant.device == "cuda":
            settings["timer"] = cuda_timer()
        marks = [pytest.mark.benchmark(**settings), *([pytest.mark.skip(reason=reason)] if reason else [])]
        params.append(pytest.param(*values, marks=marks, id=case.id))
    metafunc.parametrize(argnames, params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests of phases the selection leaves out (rather than skip them as empty)."""
    phases = {phase.value for phase in config.stash[_SESSION].options.selection.phases}
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("lenet_phase")
        (dropped if marker is not None and marker.args[0] not in phases else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def measure(benchmark: Any, request: pytest.FixtureRequest) -> Callable[..., None]:
    """Prepare (build, gate, warm up), time, then record one phase of this test's case (lenet/session.py)."""
    session, config = request.config.stash[_SESSION], request.config
    max_time, min_rounds = config.getoption("benchmark_max_time"), config.getoption("benchmark_min_rounds")
    rounds = BenchmarkRounds(benchmark, float(max_time), int(min_rounds), config._benchmarksession.benchmarks)

    def measure_case(phase: Phase, variant_id: str, batch_size: int, optimizer_id: str | None = None) -> None:
        spec = {"phase": phase.value, "variant": variant_id, "batch_size": batch_size, "optimizer": optimizer_id}
        case = Case.from_spec(spec)
        timer = cuda_timer().__name__ if case.variant.device == "cuda" else str(config.getoption("benchmark_timer"))
        record = session.measure(case, rounds, request.node.name, timer)
        session.saved(case, record, benchmark.extra_info)

    return measure_case
