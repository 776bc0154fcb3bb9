"""The measuring pipeline: prepare a case (build, gate, warm up past compilation), time it, record it.

Every consumer measures the same way because they all go through here: the bench fixture
(``bench/conftest.py``), the profiling pass (``lenet.profiling``), the instruction-count
child (``lenet.instructions``), ``scripts/trace.py`` and the studies.

1. **Build** the workload for the case (model, data, optimizer; ``torch.compile`` for a
   compiled variant) under the variant's math mode (TF32 switches on CUDA).
2. **Gate**: run the case once from fixed weights and compare logits, loss and gradients
   with the fp64 reference (``lenet.correctness``). A wrong variant raises
   ``CorrectnessError`` and is never timed. For a compiled variant this is the compiling call.
3. **Warm up** until torch.compile has compiled nothing for a few calls in a row
   (``lenet.timing.warm_up``); compile time is recorded apart and never timed.
4. **Time** the phase's callable with a timer the caller brings (pytest-benchmark in the
   suites), inside :func:`lenet.timing.no_compilation`: a recompile fails the benchmark.
   The machine's state and this process's resource use are sampled just before and just
   after the rounds (``lenet.stability``), for the stability checks.
5. **Record** what ran and what it cost as a :class:`lenet.runs.record.Record`.

Passes that instrument (profiling, the metrics pass, instruction counts) run after step 4, never inside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from lenet.correctness import CorrectnessReport, check_steps, check_workload
from lenet.runs.record import MetricsInfo, Record, Stability, TraceInfo
from lenet.stability import (
    Bounds,
    Flag,
    ProcessUsage,
    Read,
    RoundsState,
    SetupMeter,
    check_rounds,
    check_state,
    cpu_settings,
    read_file,
    rounds_state,
    stability_record,
    take_snapshot,
)
from lenet.timing import (
    Compiled,
    DynamoTally,
    WarmupReport,
    count_compilation,
    dynamo_snapshot,
    dynamo_tally,
    no_compilation,
    warm_up,
)
from lenet.variants import Case
from lenet.workload import TimedCall, Workload, build_workload, math_mode, timed_call


@dataclass(frozen=True)
class WarmupSettings:
    """How long to warm up (see :func:`lenet.timing.warm_up`); ``count_compiles`` False skips dynamo's counter."""

    min_calls: int = 3
    settle_calls: int = 3
    min_seconds: float = 0.05
    count_compiles: bool = True

    def kwargs(self, compiled: bool) -> dict[str, Any]:
        values: dict[str, Any] = {
            "min_calls": self.min_calls,
            "settle_calls": self.settle_calls,
            "min_seconds": self.min_seconds,
        }
        if not (self.count_compiles and compiled):
            # Eager code never compiles; the counter's first read imports torch._dynamo
            # (minutes under valgrind), so it is skipped where it cannot move.
            values["compile_counter"] = lambda: 0
        return values


@dataclass
class Prepared:
    """A case built, checked and warm: ``call`` is what a timed round runs."""

    case: Case
    workload: Workload
    call: TimedCall
    warmup: WarmupReport
    gate: Compiled[CorrectnessReport] | None = None
    dynamo: DynamoTally | None = None  # graph breaks and recompiles while gated and warmed up (compiled only)

    @property
    def compile_seconds(self) -> float:
        return (self.gate.compile_seconds if self.gate else 0.0) + self.warmup.compile_seconds

    @property
    def compile_events(self) -> int:
        return (self.gate.compile_events if self.gate else 0) + self.warmup.compile_events

    def record(
        self,
        median_seconds: float | None,
        timer: str,
        threads: int,
        trace: TraceInfo | None = None,
        metrics: MetricsInfo | None = None,
        stability: Stability | None = None,
    ) -> Record:
        """The record of this case, timed with ``timer`` on ``threads`` threads, median round ``median_seconds``."""
        report = self.gate.value if self.gate else None
        tally = self.dynamo
        return Record.for_case(
            self.case,
            timer=timer,
            torch_threads=threads,
            samples_per_s=self.case.batch_size / median_seconds if median_seconds else None,
            compile_seconds=self.compile_seconds,
            compile_events=self.compile_events,
            gate_seconds=self.gate.seconds if self.gate else None,
            first_call_seconds=self.warmup.first_call_seconds,
            warmup_calls=self.warmup.calls,
            warmup_seconds=self.warmup.seconds,
            correctness_worst_error=report.worst_error if report else None,
            correctness_worst_ratio=report.worst_ratio if report else None,
            graph_breaks=tally.graph_breaks if tally else None,
            graph_break_reasons=tally.graph_break_reasons if tally else None,
            recompiles=tally.recompiles if tally else None,
            recompile_reasons=tally.recompile_reasons if tally else None,
            trace=trace,
            metrics=metrics,
            stability=stability,
        )


@contextlib.contextmanager
def prepared(
    case: Case,
    *,
    gate: bool = True,
    warmup: WarmupSettings = WarmupSettings(),
    workload_factory: Callable[[Case], Workload] | None = None,
) -> Iterator[Prepared]:
    """Build, gate (unless ``gate`` is False) and warm up ``case``; yield it under the variant's math mode.

    Time and profile inside the ``with`` block: the TF32 switches of a CUDA variant hold
    only there. ``workload_factory`` replaces :func:`lenet.workload.build_workload`
    (tests plant a wrong model with it).
    """
    variant = case.variant
    before = None
    if variant.is_compiled:
        import torch._dynamo

        # A clean dynamo, as in a new process: this case's graph breaks and recompiles are its own, and
        # cases that share code (Net.forward, the step function) never reach dynamo's recompile limit.
        torch._dynamo.reset()
        before = dynamo_snapshot()
    workload = (
        workload_factory(case)
        if workload_factory is not None
        else build_workload(variant, case.batch_size, case.optimizer)
    )
    with math_mode(variant):
        checked = None
        if gate:
            # The gate runs the variant first, so for a compiled variant it is the compiling call.
            checked = count_compilation(lambda: gate_case(case, workload))
            checked.value.raise_if_failed()
            workload.reset()
        call = timed_call(workload, case.phase)
        report = warm_up(call.once, synchronize=workload.synchronize, **warmup.kwargs(variant.is_compiled))
        tally = dynamo_tally(before) if before is not None else None
        yield Prepared(case=case, workload=workload, call=call, warmup=report, gate=checked, dynamo=tally)
        workload.synchronize()


def gate_case(case: Case, workload: Workload) -> CorrectnessReport:
    """The correctness gate of ``case``: the whole step for a step-scope variant, else one call's outputs."""
    if case.variant.step_scope and case.optimizer is not None:
        return check_steps(workload, case.optimizer, case.phase)
    return check_workload(workload, training=case.phase.trains)


def pedantic_rounds(max_time: float, min_rounds: int, seconds_per_call: float) -> int:
    """Rounds for a benchmark with per-round set-up, chosen as pytest-benchmark chooses them for plain ones:
    enough to fill ``max_time``, at least ``min_rounds``."""
    return max(min_rounds, math.ceil(max_time / max(seconds_per_call, 1e-9)))


def time_rounds(
    prepared_case: Prepared,
    run_rounds: Callable[[TimedCall, WarmupReport], int | None],
    label: str,
    read: Read = read_file,
) -> RoundsState:
    """Run the caller's timed rounds; raise RecompileError if torch.compile compiled during them.

    Just before and just after the rounds (never inside them) the machine and this process are
    sampled (``lenet.stability``); a per-round set-up is metered apart and left out. ``run_rounds``
    returns how many calls of the target it made (None: one per set-up call).
    """
    call = prepared_case.call
    meter = SetupMeter(call.setup) if call.setup is not None else None
    settings = cpu_settings(read)
    with no_compilation(label):
        before = take_snapshot(read)
        calls = run_rounds(dataclasses.replace(call, setup=meter) if meter else call, prepared_case.warmup)
        after = take_snapshot(read)
    if calls is None:
        calls = meter.calls if meter else 0
    return rounds_state(before, after, calls, meter.total if meter else ProcessUsage(), settings)


@dataclass(frozen=True)
class CheckedRounds:
    """The last timed attempt of a benchmark: the state over its rounds, their times, and its flags."""

    state: RoundsState
    times: tuple[float, ...]
    flags: tuple[Flag, ...]
    attempts: int

    def stability(self) -> Stability:
        return stability_record(self.state, self.times, self.flags, self.attempts)


def time_checked_rounds(
    prepared_case: Prepared,
    run_rounds: Callable[[TimedCall, WarmupReport], int | None],
    label: str,
    round_times: Callable[[], Sequence[float]],
    forget: Callable[[], None],
    bounds: Bounds | None = None,
    reruns: int = 0,
) -> CheckedRounds:
    """:func:`time_rounds`, then the per-benchmark stability checks over ``round_times()``.

    ``bounds`` default to the calibrated ones. A flagged benchmark is timed again, up to
    ``reruns`` times, after ``forget()`` has made the timer ready for new rounds; the last
    attempt is kept, whatever its flags. The phase-sum check needs other benchmarks, so it
    is not among these (see ``lenet.stability``).
    """
    bounds = bounds or Bounds()
    attempts = 0
    while True:
        attempts += 1
        state = time_rounds(prepared_case, run_rounds, label)
        times = tuple(round_times())
        flags = (*check_rounds(times, bounds), *check_state(state, bounds))
        if not flags or attempts > reruns:
            return CheckedRounds(state, times, flags, attempts)
        forget()
