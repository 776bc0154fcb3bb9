"""pytest-benchmark as the timer of the harness: its timed rounds, their times, and a fresh start.

The bench fixture hands :class:`BenchmarkRounds` to :meth:`lenet.session.BenchSession.measure`,
which needs four things of whatever times a case: run the rounds of a call, then read their
median and their times, and forget them to time again (``--rerun-unstable``). Everything here
that reaches into pytest-benchmark's internals is said so where it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lenet.harness import pedantic_rounds
from lenet.timing import WarmupReport
from lenet.workload import TimedCall


@dataclass
class BenchmarkRounds:
    """The ``benchmark`` fixture of one test, with the run's ``--benchmark-max-time`` and ``-min-rounds``."""

    benchmark: Any  # pytest_benchmark.fixture.BenchmarkFixture
    max_time: float
    min_rounds: int
    session_timings: list[Any]  # the pytest-benchmark session's list of every timing it made

    def run_rounds(self, call: TimedCall, warmup: WarmupReport) -> int | None:
        """Time ``call``; how many times the target was called, when pytest-benchmark says (None otherwise)."""
        if call.setup is None:
            self.benchmark(call.target)
            timed = self.benchmark.stats  # None when pytest-benchmark is disabled
            # pytest-benchmark also calls a plain benchmark once to calibrate (once: every LeNet
            # call is far over its 5 µs min_time) and once after the rounds for the result.
            return timed.stats.rounds * timed.iterations + 2 if timed is not None else None
        # per-round set-up: as many rounds as pytest-benchmark would choose for a plain benchmark
        rounds = pedantic_rounds(self.max_time, self.min_rounds, warmup.steady_call_seconds)
        self.benchmark.pedantic(call.target, setup=call.setup, rounds=rounds, iterations=1)
        return None  # one call per set-up call

    def round_times(self) -> Sequence[float]:
        return self.benchmark.stats.stats.data if self.benchmark.stats is not None else []

    def median(self) -> float | None:
        stats = self.benchmark.stats.stats if self.benchmark.stats is not None else None
        return stats.median if stats is not None and stats.data else None

    def forget(self) -> None:
        """Let the fixture time again: it times once per test, and pytest-benchmark's session keeps every
        timing it made (pytest-benchmark 5's internals ``_mode`` and the session's list)."""
        if self.benchmark.stats in self.session_timings:
            self.session_timings.remove(self.benchmark.stats)
        self.benchmark._mode, self.benchmark.stats = None, None
