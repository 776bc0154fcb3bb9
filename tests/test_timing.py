"""The synchronizing timer, warm-up and recompile guard, with fake clocks and counters."""

import time

import pytest
import torch

from lenet.timing import (
    RecompileError,
    SynchronizingTimer,
    WarmupError,
    compile_events,
    count_compilation,
    cuda_timer,
    no_compilation,
    warm_up,
)


class FakeClock:
    """A clock that advances only when told to; records every read."""

    def __init__(self) -> None:
        self.now = 0.0
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_synchronizing_timer_synchronizes_before_every_read():
    events = []
    clock = FakeClock()

    def synchronize():
        events.append(("sync", clock.reads))

    timer = SynchronizingTimer(synchronize, clock, name="fake")
    clock.advance(1.5)
    assert timer() == 1.5
    clock.advance(0.25)
    assert timer() == 1.75
    # each read was preceded by a synchronize issued while the clock had not yet been read
    assert events == [("sync", 0), ("sync", 1)]
    assert timer.__name__ == "fake"


def test_synchronizing_timer_is_named_for_pytest_benchmark():
    assert SynchronizingTimer(lambda: None, time.perf_counter).__name__ == "synchronized_perf_counter"
    assert cuda_timer().__name__ == "cuda_synchronized_perf_counter"


class Workload:
    """A fake workload: each call costs ``call_seconds``; the first ``compiling_calls`` compile."""

    def __init__(self, clock: FakeClock, compiling_calls: list[int], call_seconds=0.01, compile_seconds=20.0):
        self.clock = clock
        self.calls = 0
        self.compiles = 0
        self.compiling_calls = compiling_calls
        self.call_seconds = call_seconds
        self.compile_seconds = compile_seconds

    def __call__(self) -> None:
        self.calls += 1
        if self.calls in self.compiling_calls:
            self.compiles += 1
            self.clock.advance(self.compile_seconds)
        self.clock.advance(self.call_seconds)


def test_warm_up_continues_until_compilation_settles():
    clock = FakeClock()
    work = Workload(clock, compiling_calls=[1, 2, 5])  # compile, recompile, then a late recompile
    report = warm_up(work, clock=clock, compile_counter=lambda: work.compiles, min_seconds=0.0)
    assert report.calls == 8  # three quiet calls after the last compilation (call 5)
    assert report.compile_events == 3
    assert report.compile_seconds == pytest.approx(3 * 20.01)
    assert report.first_call_seconds == pytest.approx(20.01)
    assert report.steady_call_seconds == pytest.approx(0.01)


def test_warm_up_of_eager_code_is_short():
    clock = FakeClock()
    work = Workload(clock, compiling_calls=[])
    report = warm_up(work, clock=clock, compile_counter=lambda: 0, min_calls=3, min_seconds=0.0)
    assert report.calls == 3 and report.compile_seconds == 0.0


def test_warm_up_honours_a_minimum_time():
    clock = FakeClock()
    work = Workload(clock, compiling_calls=[], call_seconds=0.25)
    report = warm_up(work, clock=clock, compile_counter=lambda: 0, min_seconds=2.0)
    assert report.calls == 8


def test_warm_up_synchronizes_after_every_call():
    clock = FakeClock()
    work = Workload(clock, compiling_calls=[])
    synced_after = []
    warm_up(
        work,
        synchronize=lambda: synced_after.append(work.calls),
        clock=clock,
        compile_counter=lambda: 0,
        min_seconds=0.0,
    )
    assert synced_after == [0, 1, 2, 3]


def test_warm_up_gives_up_when_compilation_never_settles():
    clock = FakeClock()
    work = Workload(clock, compiling_calls=list(range(1, 10_000)), compile_seconds=1.0)
    with pytest.raises(WarmupError, match="still compiling after"):
        warm_up(work, clock=clock, compile_counter=lambda: work.compiles, max_seconds=30.0)


def test_no_compilation_passes_quietly_and_fails_loudly():
    counter = [0]
    with no_compilation("quiet", compile_counter=lambda: counter[0]):
        pass
    with (
        pytest.raises(RecompileError, match=r"loud: torch\.compile compiled 2 time"),
        no_compilation("loud", compile_counter=lambda: counter[0]),
    ):
        counter[0] += 2


def test_compile_events_counts_a_real_recompile():
    def double(x):
        return x * 2

    compiled = torch.compile(double, backend="eager", dynamic=False)
    before = compile_events()
    compiled(torch.ones(2))
    after_first = compile_events()
    compiled(torch.ones(2))
    assert compile_events() == after_first > before
    compiled(torch.ones(3))  # a new static shape: a recompile
    assert compile_events() > after_first


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available: the real-GPU timer check needs one")
def test_cuda_timer_waits_for_queued_kernels():
    cycles = 50_000_000  # torch.cuda._sleep spins the GPU for this many cycles (tens of ms)
    torch.cuda._sleep(1000)  # the first launch loads the kernel: keep that out of the comparison
    torch.cuda.synchronize()
    start = time.perf_counter()
    torch.cuda._sleep(cycles)
    unsynchronized = time.perf_counter() - start
    timer = cuda_timer()
    start = timer()
    torch.cuda._sleep(cycles)
    synchronized = timer() - start
    assert synchronized > 10 * unsynchronized


def test_count_compilation_reports_time_only_when_it_compiled():
    clock = FakeClock()
    counter = [0]

    def compiling_call():
        counter[0] += 1
        clock.advance(12.0)
        return "done"

    compiled = count_compilation(compiling_call, clock=clock, compile_counter=lambda: counter[0])
    assert (compiled.value, compiled.seconds, compiled.compile_events) == ("done", 12.0, 1)
    assert compiled.compile_seconds == 12.0

    def eager_call():
        clock.advance(0.5)

    quiet = count_compilation(eager_call, clock=clock, compile_counter=lambda: counter[0])
    assert (quiet.seconds, quiet.compile_events, quiet.compile_seconds) == (0.5, 0, 0.0)
