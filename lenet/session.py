"""One benchmark session: what it measures, and the untimed passes around the timed rounds.

``bench/conftest.py`` connects a :class:`BenchSession` to pytest and pytest-benchmark;
everything a session does beyond timing lives here, so that a new pass (a trace, an
instruction count, a metric) is one method and one line in the fixture:

* :meth:`BenchSession.measure`: prepare the case (``lenet.harness``), time it with the
  caller's rounds, run the passes that must follow the timed rounds (the profiling pass,
  the metrics pass), and return its record;
* :meth:`BenchSession.finish`: before the run is saved, drop what was not measured whole,
  add the run-end metrics (% of peak, compile cost, break-even) and count instructions;
* :meth:`BenchSession.summary`: the lines for the end of the run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from lenet.harness import prepared, time_rounds
from lenet.instructions import InstructionCounting
from lenet.metrics.measure import metrics_pass
from lenet.metrics.peaks import PeaksCache
from lenet.metrics.run_end import MetricsRun
from lenet.options import RunOptions
from lenet.profiling import TraceRun, enable_kernel_profile, trace_pass
from lenet.record import Record, is_record
from lenet.timing import WarmupReport
from lenet.variants import Case
from lenet.workload import TimedCall

Rounds = Callable[[TimedCall, WarmupReport], None]  # runs the timed rounds of a call (pytest-benchmark's)


class SavedBenchmark(Protocol):
    """What this module needs of pytest-benchmark's ``Metadata`` (one benchmark of the run)."""

    name: str
    extra_info: dict[str, Any]
    fixture: Any  # its ``has_error`` decides whether pytest-benchmark saves the benchmark


@dataclass
class BenchSession:
    options: RunOptions
    trace_run: TraceRun | None = None
    counting: InstructionCounting | None = None
    notes: list[str] = field(default_factory=list)  # lines for the end of the run
    metrics: MetricsRun | None = None  # % of peak, compile cost and break-even, at the run's end
    _medians: dict[str, float | None] = field(default_factory=dict)  # case name -> its median, for the run's end

    @classmethod
    def start(cls, options: RunOptions) -> BenchSession:
        """Apply the options that act on the process (threads, Inductor kernel profiling) and set up the passes."""
        if options.threads is not None:
            torch.set_num_threads(options.threads)
        trace_run = None
        if options.trace_settings is not None and options.trace_dir is not None:
            trace_run = TraceRun(options.trace_dir, options.trace_settings)
            # Inductor writes profiler ranges into its kernels only when this is set before it
            # compiles, so a profiled run compiles every variant this way (docs/traces.md).
            enable_kernel_profile()
        counting = InstructionCounting(options.instruction_repeats) if options.instruction_repeats else None
        metrics = None
        if options.metrics or options.compile_cost:
            peaks = PeaksCache(options.peaks_dir, torch.get_num_threads()) if options.metrics else None
            metrics = MetricsRun(peaks, options.compile_cost, torch.get_num_threads())
        return cls(options, trace_run, counting, metrics=metrics)

    def header(self) -> list[str]:
        lines = [self.options.describe(torch.__version__, torch.get_num_threads())]
        lines += [self.trace_run.header()] if self.trace_run is not None else []
        return lines + ([self.metrics.header(self.options.peaks_dir)] if self.metrics is not None else [])

    def measure(
        self, case: Case, run_rounds: Rounds, label: str, median: Callable[[], float | None], timer: str
    ) -> Record:
        """Prepare, time (``run_rounds``), then run the untimed passes; the case's record.

        ``median`` reads the median round the timer measured, once the rounds are over.
        """
        with prepared(case) as ready:
            time_rounds(ready, run_rounds, label)
            # The timed rounds are over: the passes below cannot change their numbers.
            trace = trace_pass(self.trace_run, ready) if self.trace_run is not None else None
            measured = metrics_pass(ready) if self.options.metrics else None  # peak memory, FLOPs
        self._medians[case.name] = median_seconds = median()
        metrics = measured.info(median_seconds) if measured is not None else None
        return ready.record(median_seconds, timer, torch.get_num_threads(), trace, metrics)

    def saved(self, case: Case, record: Record, extra_info: dict[str, Any]) -> None:
        """The record is in the benchmark's ``extra_info``: queue the passes that run at the end."""
        extra_info.update(record.to_extra_info())
        if self.metrics is not None:
            self.metrics.add(case, record, extra_info, self._medians.get(case.name))
        if self.counting is not None:
            self.counting.add(case, record, extra_info)

    def finish(self, benchmarks: Iterable[SavedBenchmark], stopped_early: bool) -> None:
        """Before the run is saved: drop what was measured only in part, add the run-end metrics, count instructions."""
        unfinished = [b for b in benchmarks if not b.fixture.has_error and not is_record(b.extra_info)]
        for bench in unfinished:  # interrupted in its rounds, or failed after them: no record was written
            bench.fixture.has_error = True  # pytest-benchmark saves only benchmarks without an error
        if unfinished:
            self.notes.append(f"lenet-bench: not saved, measured only in part: {', '.join(b.name for b in unfinished)}")
        if self.metrics is not None:
            self.metrics.finish(stopped_early=stopped_early)
        if self.counting is not None:
            self.counting.finish(stopped_early=stopped_early)

    def publish(self, document: dict[str, Any]) -> None:
        """Publish the run being saved (``--publish-db``); a database failure is one line, the file stays."""
        if self.options.publish_db:
            from lenet.store.publish import publish_saved_run  # psycopg: needed only when publishing

            self.notes.append(publish_saved_run(self.options.publish_db, document))

    def summary(self) -> list[str]:
        lines = self.counting.summary() if self.counting is not None else []
        lines += self.trace_run.summary() if self.trace_run is not None else []
        lines += self.metrics.summary() if self.metrics is not None else []
        return lines + self.notes
