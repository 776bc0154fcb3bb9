"""Clocks that are right for the device, warm-up past compilation, and the recompile guard.

How we time (see docs/measuring.md):

* **Synchronize before every clock read.** CUDA kernels run asynchronously; a
  clock read while they are queued measures only the launch. :class:`SynchronizingTimer`
  waits for the device, then reads the clock. pytest-benchmark calls it at the
  start and the end of every round, so the GPU is idle when a round starts and
  its work is complete when it ends.
* **Warm up until compilation is done.** :func:`warm_up` calls the workload
  until torch.compile has stopped compiling (no new graph for ``settle_calls``
  calls in a row), so compile and autotuning time never reach the timed rounds;
  it reports that time separately.
* **No compilation in timed rounds.** :func:`no_compilation` fails the benchmark
  when torch.compile compiles during the rounds it guards.

Every clock and counter is injectable, so tests run these with fake clocks.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

Clock = Callable[[], float]


class SynchronizingTimer:
    """A clock that first waits for the device: ``synchronize(); return clock()``.

    Usable as pytest-benchmark's timer (``@pytest.mark.benchmark(timer=...)``);
    its ``__name__`` is what pytest-benchmark records as the timer in saved runs.
    """

    def __init__(self, synchronize: Callable[[], None], clock: Clock = time.perf_counter, name: str | None = None):
        self._synchronize = synchronize
        self._clock = clock
        self.__name__ = name or f"synchronized_{getattr(clock, '__name__', 'clock')}"

    def __call__(self) -> float:
        self._synchronize()
        return self._clock()

    def __repr__(self) -> str:
        return f"SynchronizingTimer({self.__name__})"


@functools.cache
def cuda_timer() -> SynchronizingTimer:
    """``perf_counter`` after ``torch.cuda.synchronize()``: the timer of every CUDA benchmark.

    One shared instance, so that pytest-benchmark measures its precision once.
    """
    import torch

    return SynchronizingTimer(torch.cuda.synchronize, time.perf_counter, name="cuda_synchronized_perf_counter")


def compile_events() -> int:
    """How many frames torch.compile has compiled in this process (recompiles included)."""
    import torch._dynamo.utils

    counters = torch._dynamo.utils.counters
    return int(counters["frames"]["total"]) + int(counters["stats"]["unique_graphs"])


T = TypeVar("T")


@dataclass(frozen=True)
class Compiled(Generic[T]):
    """What a call returned, how long it took, and how many compilations happened during it."""

    value: T
    seconds: float
    compile_events: int

    @property
    def compile_seconds(self) -> float:
        """The call's wall time if it compiled anything, else 0."""
        return self.seconds if self.compile_events else 0.0


def count_compilation(
    call: Callable[[], T], clock: Clock = time.perf_counter, compile_counter: Callable[[], int] = compile_events
) -> Compiled[T]:
    """Run ``call`` once, noting its wall time and the torch.compile compilations it caused."""
    compile_counter()  # the first read may import torch._dynamo: keep that out of the clock
    before = compile_counter()
    start = clock()
    value = call()
    seconds = clock() - start
    return Compiled(value, seconds, compile_counter() - before)


class WarmupError(RuntimeError):
    """Compilation never settled within the warm-up budget."""


class RecompileError(RuntimeError):
    """torch.compile compiled during timed rounds, so the timings include compilation."""


@dataclass(frozen=True)
class WarmupReport:
    calls: int
    seconds: float  # the whole warm-up, compilation included
    compile_seconds: float  # wall time of the calls during which torch.compile compiled
    compile_events: int
    first_call_seconds: float
    steady_call_seconds: float  # median wall time of the warm-up calls that compiled nothing


def warm_up(
    run: Callable[[], object],
    *,
    synchronize: Callable[[], None] = lambda: None,
    clock: Clock = time.perf_counter,
    compile_counter: Callable[[], int] = compile_events,
    min_calls: int = 3,
    settle_calls: int = 3,
    min_seconds: float = 0.05,
    max_seconds: float = 900.0,
) -> WarmupReport:
    """Call ``run`` until compilation is done and caches are warm; report what it cost.

    Stops after at least ``min_calls`` calls and ``min_seconds``, once the last
    ``settle_calls`` calls compiled nothing. Calls during which the compile
    counter moved are summed as compile time (so it includes the first eager
    execution of the compiled code, as a user would wait for it).
    """
    calls = 0
    settled = 0
    compile_seconds = 0.0
    compiles = 0
    first_call_seconds = 0.0
    steady: list[float] = []
    compile_counter()  # the first read may import torch._dynamo: keep that out of the clock
    synchronize()
    start = clock()
    while True:
        before = compile_counter()
        call_start = clock()
        run()
        synchronize()
        call_end = clock()
        calls += 1
        if calls == 1:
            first_call_seconds = call_end - call_start
        compiled = compile_counter() - before
        if compiled:
            compiles += compiled
            compile_seconds += call_end - call_start
            settled = 0
        else:
            settled += 1
            steady.append(call_end - call_start)
        elapsed = call_end - start
        if calls >= min_calls and settled >= settle_calls and elapsed >= min_seconds:
            return WarmupReport(
                calls, elapsed, compile_seconds, compiles, first_call_seconds, statistics.median(steady)
            )
        if elapsed > max_seconds:
            raise WarmupError(
                f"still compiling after {calls} warm-up calls and {elapsed:.0f} s "
                f"({compiles} compilations); the workload's graphs never settle"
            )


@contextlib.contextmanager
def no_compilation(label: str, compile_counter: Callable[[], int] = compile_events) -> Iterator[None]:
    """Raise :class:`RecompileError` if torch.compile compiles inside this block."""
    before = compile_counter()
    yield
    compiled = compile_counter() - before
    if compiled:
        raise RecompileError(
            f"{label}: torch.compile compiled {compiled} time(s) during the timed rounds, so these "
            f"timings include compilation; a guard failed after warm-up (a changing shape, dtype "
            f"or global?). Rerun with TORCH_LOGS=recompiles to see which guard."
        )


@dataclass(frozen=True)
class DynamoTally:
    """What dynamo did in a stretch of code: graph breaks (and their reasons), recompiles (and the failed guards)."""

    graph_breaks: int
    graph_break_reasons: tuple[str, ...]
    recompiles: int
    recompile_reasons: tuple[str, ...]


@dataclass(frozen=True)
class DynamoSnapshot:
    """Dynamo's graph-break counter and compilation log at one moment (:func:`dynamo_snapshot`)."""

    breaks: dict[str, int]
    compilations: frozenset[int]  # ids of the compilation records already logged


def dynamo_snapshot() -> DynamoSnapshot:
    import torch._dynamo.utils as dynamo_utils

    return DynamoSnapshot(
        dict(dynamo_utils.counters["graph_break"]),
        frozenset(id(m) for m in dynamo_utils.get_compilation_metrics()),
    )


def dynamo_tally(before: DynamoSnapshot) -> DynamoTally:
    """What dynamo did since ``before``: each graph-break reason's first line, each recompile's failed guard."""
    import torch._dynamo.utils as dynamo_utils

    breaks = {k: v - before.breaks.get(k, 0) for k, v in dynamo_utils.counters["graph_break"].items()}
    breaks = {k: v for k, v in breaks.items() if v > 0}
    new = [m for m in dynamo_utils.get_compilation_metrics() if id(m) not in before.compilations]
    reasons = [str(m.recompile_reason).strip().splitlines()[0] for m in new if getattr(m, "recompile_reason", None)]
    return DynamoTally(
        graph_breaks=sum(breaks.values()),
        graph_break_reasons=tuple(k.strip().splitlines()[0] for k in breaks),
        recompiles=len(reasons),
        recompile_reasons=tuple(reasons),
    )
