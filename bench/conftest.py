"""pytest-benchmark suites for LeNet-5: options, presets, parametrization and the measuring fixture.

Selection (each option overrides the preset's list; each has an environment twin):

    --preset NAME          LENET_PRESET       quick (default), full, cuda, smoke
    --variants LIST        LENET_VARIANTS     ids or globs: cpu-*-fp32-*, cuda-contiguous-amp_fp16-eager
    --batch-sizes LIST     LENET_BATCH_SIZES  1,64,256
    --phases LIST          LENET_PHASES       forward_inference,forward_train,backward,optimizer_step,train_step
    --optimizers LIST      LENET_OPTIMIZERS   sgd, sgd_foreach, sgd_fused, adam, adam_fused, ...
    --threads N            LENET_THREADS      torch.set_num_threads (default: torch's own choice)

Profiling (a separate pass after each benchmark's timed rounds; see lenet/profiling.py):

    --profile              LENET_PROFILE=1      record a torch.profiler trace of every case
    --trace-dir DIR        LENET_TRACE_DIR      root of the run folders (default results/traces)
    --profile-steps N      LENET_PROFILE_STEPS  recorded steps per trace (default 3)
    --trace-format FMT     LENET_TRACE_FORMAT   json.gz (default) or json

Instruction counts (after the timed rounds, in one valgrind process; see lenet/instructions.py):

    --instructions          LENET_INSTRUCTIONS=1          count the instructions of every CPU case
    --instructions-repeats N LENET_INSTRUCTIONS_REPEATS  repeats per case (default 5)

Bad values stop the run before any benchmark starts, with one line naming the
value and the legal choices.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from lenet import instructions, machine
from lenet.correctness import check_workload
from lenet.profiling import TraceRun, enable_kernel_profile, kernel_profile_enabled, parse_settings, parse_switch
from lenet.timing import count_compilation, cuda_timer, no_compilation, warm_up
from lenet.variants import (
    Case,
    Phase,
    Selection,
    SelectionError,
    build_selection,
    parse_optimizer,
    parse_variant,
    skip_reason,
)
from lenet.workload import build_workload, math_mode, timed_call

SCHEMA = "lenet-bench/1"

_OPTIONS = (
    # (option, environment variable, help)
    ("--preset", "LENET_PRESET", "named selection: quick (default), full, cuda, smoke"),
    ("--variants", "LENET_VARIANTS", "comma-separated variant ids or globs, e.g. 'cpu-*-fp32-*'"),
    ("--batch-sizes", "LENET_BATCH_SIZES", "comma-separated positive batch sizes, e.g. 1,64,256"),
    ("--phases", "LENET_PHASES", "comma-separated phases (forward_inference, forward_train, backward, ...)"),
    ("--optimizers", "LENET_OPTIMIZERS", "comma-separated optimizers: sgd, sgd_foreach, sgd_fused, adam, adam_fused"),
    ("--threads", "LENET_THREADS", "torch.set_num_threads for the run (default: torch's choice)"),
)
_PROFILE_OPTIONS = (
    ("--trace-dir", "LENET_TRACE_DIR", "root of the trace run folders (default: results/traces)"),
    ("--profile-steps", "LENET_PROFILE_STEPS", "steps recorded in each trace, after one discarded (default: 3)"),
    ("--trace-format", "LENET_TRACE_FORMAT", "json.gz (default) or json"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lenet-bench", "LeNet benchmark selection")
    for option, env, help_text in _OPTIONS:
        group.addoption(option, action="store", default=None, help=f"{help_text} [env {env}]")
    group.addoption(
        "--profile",
        action="store_true",
        default=None,
        help="after each benchmark's timed rounds, record a torch.profiler trace and operator table "
        "into <trace dir>/<run>/<variant-phase>/ [env LENET_PROFILE=1]",
    )
    for option, env, help_text in _PROFILE_OPTIONS:
        group.addoption(option, action="store", default=None, help=f"{help_text} [env {env}]")
    group.addoption(
        "--instructions",
        action="store_true",
        default=None,
        help="after the run, count the instructions per call of every CPU case under valgrind's callgrind "
        "(one thread; slow: minutes) and save them in extra_info [env LENET_INSTRUCTIONS=1]",
    )
    group.addoption(
        "--instructions-repeats",
        action="store",
        default=None,
        help="callgrind repeats per case, for the spread (default 5) [env LENET_INSTRUCTIONS_REPEATS]",
    )


def _option(config: pytest.Config, option: str, env: str) -> str | None:
    value = config.getoption(option.lstrip("-").replace("-", "_"))
    return value if value is not None else os.environ.get(env)


def _parse_threads(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        threads = int(text)
    except ValueError:
        threads = 0
    if threads <= 0:
        raise SelectionError(f"threads {text!r} must be a positive integer, e.g. 1 or {machine.cpu_count()}")
    return threads


def pytest_configure(config: pytest.Config) -> None:
    values = {opt: _option(config, opt, env) for opt, env, _ in _OPTIONS}
    try:
        selection = build_selection(
            preset=values["--preset"] or "quick",
            variants=values["--variants"],
            batch_sizes=values["--batch-sizes"],
            phases=values["--phases"],
            optimizers=values["--optimizers"],
        )
        threads = _parse_threads(values["--threads"])
        trace_run = _trace_run(config)
        counting = _instruction_counting(config)
    except SelectionError as error:
        raise pytest.UsageError(str(error)) from None
    if threads is not None:
        torch.set_num_threads(threads)
    if trace_run is not None:
        # Inductor writes profiler ranges into its kernels only when this is set before it
        # compiles, so a profiled run compiles every variant this way (README "Traces").
        enable_kernel_profile()
    config.stash[_TRACE_RUN] = trace_run
    config.stash[_COUNTING] = counting
    config.stash[_SELECTION] = selection
    config.stash[_PRESET] = values["--preset"] or "quick"


_SELECTION = pytest.StashKey[Selection]()
_PRESET = pytest.StashKey[str]()
_TRACE_RUN = pytest.StashKey["TraceRun | None"]()
_COUNTING = pytest.StashKey["InstructionCounting | None"]()


class InstructionCounting:
    """The CPU cases of this run that get instruction counts, counted together when the run ends."""

    def __init__(self, repeats: int) -> None:
        self.repeats = repeats
        self.pending: list[tuple[Case, dict[str, Any]]] = []  # the case and its benchmark's extra_info
        self.seconds: float | None = None  # set once counting ran

    def add(self, case: Case, extra_info: dict[str, Any]) -> None:
        reason = instructions.unavailable_reason(case.variant.device)
        if reason:
            extra_info["instructions_unavailable"] = reason
        else:
            self.pending.append((case, extra_info))

    def count(self) -> None:
        """Count every pending case under valgrind; write counts (or why not) into extra_info."""
        if not self.pending:
            return
        start = time.perf_counter()
        missing = "no count came back"
        try:
            results = instructions.count([case for case, _ in self.pending], repeats=self.repeats)
        except Exception as error:  # noqa: BLE001 - counting must never cost the run its timings
            results, missing = {}, f"counting failed: {type(error).__name__}: {error}".splitlines()[0]
        self.seconds = time.perf_counter() - start
        self.record(results, missing)

    def record(self, results: Mapping[str, Any], missing: str) -> None:
        """Write each pending case's count from ``results`` into its extra_info, or ``missing`` as the reason."""
        for case, extra_info in self.pending:
            result = results.get(instructions.case_key(case), missing)
            if isinstance(result, str):
                extra_info["instructions_unavailable"] = result
            else:
                extra_info.update(result.as_extra_info())


def _instruction_counting(config: pytest.Config) -> InstructionCounting | None:
    flag = config.getoption("instructions") or parse_switch(os.environ.get("LENET_INSTRUCTIONS"), "LENET_INSTRUCTIONS")
    if not flag:
        return None
    text = _option(config, "--instructions-repeats", "LENET_INSTRUCTIONS_REPEATS")
    repeats = instructions.DEFAULT_REPEATS
    if text is not None:
        repeats = int(text) if text.strip().isdigit() else 0
        if repeats < 1:
            raise SelectionError(f"instructions repeats {text!r} must be a positive integer, e.g. 5")
    return InstructionCounting(repeats)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> Any:
    """Count instructions before pytest-benchmark saves the run, so the counts are saved with it."""
    counting = session.config.stash.get(_COUNTING, None)
    if counting is not None:
        if exitstatus == pytest.ExitCode.INTERRUPTED or session.shouldstop or session.shouldfail:
            # Stopped early (Ctrl-C, -x, --maxfail): the user wants out, not minutes of valgrind.
            counting.record({}, "the session stopped early, so nothing was counted")
        else:
            counting.count()
    yield


def _trace_run(config: pytest.Config) -> TraceRun | None:
    """The run's trace folder (created on the first trace) when profiling was asked for, else None."""
    flag = config.getoption("profile")
    if not (flag or parse_switch(os.environ.get("LENET_PROFILE"), "LENET_PROFILE")):
        return None
    values = {opt: _option(config, opt, env) for opt, env, _ in _PROFILE_OPTIONS}
    settings = parse_settings(values["--profile-steps"], values["--trace-format"])
    # Relative to the working directory, as pytest-benchmark's storage is; kept relative, so the
    # path each trace records as its name says nothing about the machine it was made on.
    return TraceRun(Path(values["--trace-dir"] or Path("results") / "traces"), settings)


def pytest_report_header(config: pytest.Config) -> list[str]:
    selection = config.stash[_SELECTION]
    return [
        f"lenet-bench: preset {config.stash[_PRESET]}; {len(selection.variants)} variants, "
        f"batch sizes {','.join(map(str, selection.batch_sizes))}, "
        f"phases {','.join(p.value for p in selection.phases)}, "
        f"optimizers {','.join(o.id for o in selection.optimizers)}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        *_profile_header(config),
    ]


def _profile_header(config: pytest.Config) -> list[str]:
    trace_run = config.stash[_TRACE_RUN]
    if trace_run is None:
        return []
    return [
        f"lenet-bench: profiling into {trace_run.folder} ({trace_run.settings.active} steps per trace, after the "
        "timed rounds; Inductor kernel profiling on)"
    ]


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    counting = config.stash.get(_COUNTING, None)
    if counting is not None and counting.pending:
        if counting.seconds is not None:
            terminalreporter.write_line(
                f"lenet-bench: instructions counted for {len(counting.pending)} case(s) in {counting.seconds:.0f} s "
                f"({counting.repeats} repeats each, one thread, under valgrind)"
            )
        for case, info in counting.pending:
            if "instructions" in info:
                terminalreporter.write_line(
                    f"  {instructions.case_key(case)}: {info['instructions']:,.0f} instructions per call "
                    f"(spread {info['instructions_spread']:.3%})"
                )
            else:
                terminalreporter.write_line(
                    f"  {instructions.case_key(case)}: no count: {info['instructions_unavailable']}"
                )
    trace_run = config.stash.get(_TRACE_RUN, None)
    if trace_run is None or not trace_run.folder.exists():
        return
    count = sum(1 for path in trace_run.folder.iterdir() if path.is_dir())
    terminalreporter.write_line(
        f"lenet-bench: {count} trace(s) in {trace_run.folder}; open them with "
        f"`tensorboard --logdir {trace_run.root}` or in https://ui.perfetto.dev, "
        "and `python scripts/report.py` summarizes them"
    )


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    machine_info.update(machine.collect())


def pytest_benchmark_update_commit_info(config: pytest.Config, commit_info: dict[str, Any]) -> None:
    """A checkout copied without its .git (a CI artifact, a remote GPU box) names its commit in LENET_COMMIT."""
    commit = os.environ.get("LENET_COMMIT")
    if commit and commit_info.get("id") in (None, "unknown"):
        commit_info.update(id=commit, error=None, source="LENET_COMMIT")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("lenet_phase")
    if marker is None:
        return
    phase = Phase(marker.args[0])
    selection = metafunc.config.stash[_SELECTION]
    cases = selection.cases(phase)
    argnames = ["variant", "batch_size", "optimizer"] if phase.uses_optimizer else ["variant", "batch_size"]
    params = []
    for case in cases:
        values: list[object] = [case.variant.id, case.batch_size]
        if case.optimizer is not None:
            values.append(case.optimizer.id)
        settings: dict[str, object] = {"group": f"{phase.value} batch={case.batch_size}"}
        reason = skip_reason(case)
        if reason is None and case.variant.device == "cuda":
            settings["timer"] = cuda_timer()
        marks = [pytest.mark.benchmark(**settings)]
        if reason:
            marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param(*values, marks=marks, id=case.id))
    metafunc.parametrize(argnames, params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the tests of phases the selection leaves out (rather than skip them as empty)."""
    phases = {phase.value for phase in config.stash[_SELECTION].phases}
    kept, dropped = [], []
    for item in items:
        marker = item.get_closest_marker("lenet_phase")
        (dropped if marker is not None and marker.args[0] not in phases else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _rounds(config: pytest.Config, seconds_per_call: float) -> int:
    """Rounds for a pedantic benchmark, chosen as pytest-benchmark chooses them for plain ones."""
    max_time = float(config.getoption("benchmark_max_time"))
    min_rounds = int(config.getoption("benchmark_min_rounds"))
    return max(min_rounds, math.ceil(max_time / max(seconds_per_call, 1e-9)))


def _profile(
    trace_run: TraceRun | None,
    case: Case,
    target: Callable[..., object],
    setup: Callable[[], Any] | None,
    synchronize: Callable[[], None],
) -> dict[str, Any]:
    """Record the case's trace; extra_info fields saying where it went. A failure warns, never fails the test."""
    if trace_run is None:
        return {}
    info: dict[str, Any] = {"inductor_kernel_profile": case.variant.is_compiled and kernel_profile_enabled()}
    try:
        result = trace_run.record(case, target, setup, synchronize)
    except (RuntimeError, OSError, ValueError) as error:
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        warnings.warn(f"{case.id} {case.phase.value}: no trace recorded: {message}", stacklevel=1)
        return {**info, "trace_dir": None, "trace_error": message}
    if result.errors:
        warnings.warn(f"{case.id} {case.phase.value}: {'; '.join(result.errors)}", stacklevel=1)
    return {**info, **result.extra_info()}


@pytest.fixture
def measure(benchmark: Any, request: pytest.FixtureRequest) -> Callable[..., None]:
    """Gate, warm up, then time one phase of the case this test was parametrized with."""

    def run(phase: Phase, variant_id: str, batch_size: int, optimizer_id: str | None = None) -> None:
        optimizer = parse_optimizer(optimizer_id) if optimizer_id is not None else None
        case = Case(phase, parse_variant(variant_id), batch_size, optimizer)
        variant = case.variant
        workload = build_workload(variant, case.batch_size, case.optimizer)
        with math_mode(variant):
            # The gate runs the variant first, so for compiled variants it is the compiling call.
            gate = count_compilation(lambda: check_workload(workload, training=phase.trains))
            report = gate.value
            report.raise_if_failed()
            workload.reset()

            call = timed_call(workload, phase)
            warmup = warm_up(call.once, synchronize=workload.synchronize)
            with no_compilation(request.node.name):
                if call.setup is None:
                    benchmark(call.target)
                else:
                    rounds = _rounds(request.config, warmup.steady_call_seconds)
                    benchmark.pedantic(call.target, setup=call.setup, rounds=rounds, iterations=1)
            # The timed rounds are over: the profiling pass cannot change their numbers.
            trace_info = _profile(request.config.stash[_TRACE_RUN], case, call.target, call.setup, workload.synchronize)
        if variant.device == "cuda":
            torch.cuda.synchronize()

        stats = benchmark.stats.stats if benchmark.stats is not None else None
        median = stats.median if stats is not None and stats.data else None
        benchmark.extra_info.update(
            {
                "schema": SCHEMA,
                "variant": variant.id,
                **variant.fields(),
                "phase": phase.value,
                "batch_size": case.batch_size,
                "optimizer": case.optimizer.id if case.optimizer else None,
                "samples_per_s": case.batch_size / median if median else None,
                "compile_seconds": gate.compile_seconds + warmup.compile_seconds,
                "compile_events": gate.compile_events + warmup.compile_events,
                "gate_seconds": gate.seconds,
                "first_call_seconds": warmup.first_call_seconds,
                "warmup_calls": warmup.calls,
                "warmup_seconds": warmup.seconds,
                "correctness_worst_error": report.worst_error,
                "correctness_worst_ratio": report.worst_ratio,
                "torch_threads": torch.get_num_threads(),
                "timer": str(
                    cuda_timer().__name__ if variant.device == "cuda" else request.config.getoption("benchmark_timer")
                ),
                **trace_info,
            }
        )
        counting = request.config.stash[_COUNTING]
        if counting is not None:
            counting.add(case, benchmark.extra_info)

    return run
