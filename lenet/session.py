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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch

from lenet import stability
from lenet.harness import prepared, time_checked_rounds
from lenet.instructions import InstructionCounting
from lenet.metrics.measure import metrics_pass
from lenet.metrics.peaks import PeaksCache
from lenet.metrics.run_end import MetricsRun
from lenet.options import RunOptions
from lenet.profiling import TraceRun, enable_kernel_profile, trace_pass
from lenet.runs.record import Record
from lenet.timing import WarmupReport
from lenet.variants import Case
from lenet.workload import TimedCall


class CaseTimer(Protocol):
    """What times a case (:class:`lenet.benchmark_timer.BenchmarkRounds` in the suites)."""

    def run_rounds(self, call: TimedCall, warmup: WarmupReport) -> int | None: ...
    def round_times(self) -> Sequence[float]: ...
    def median(self) -> float | None: ...
    def forget(self) -> None: ...


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
    # The one copy of each saved case's record, updated by the end-of-run passes, and the benchmark's
    # extra_info it is written into once, when the session finishes (the one writer of extra_info).
    records: dict[Case, Record] = field(default_factory=dict)
    _extra_infos: dict[Case, dict[str, Any]] = field(default_factory=dict)
    _labels: dict[Case, str] = field(default_factory=dict)  # the pytest name each case is reported by

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
        counting = (
            InstructionCounting(options.instruction_repeats, options.count_compiled)
            if options.instruction_repeats
            else None
        )
        metrics = None
        if options.metrics or options.compile_cost:
            peaks = PeaksCache(options.peaks_dir, torch.get_num_threads()) if options.metrics else None
            metrics = MetricsRun(peaks, options.compile_cost, torch.get_num_threads())
        return cls(options, trace_run, counting, metrics=metrics)

    def header(self) -> list[str]:
        lines = [self.options.describe(torch.__version__, torch.get_num_threads())]
        lines += [self.trace_run.header()] if self.trace_run is not None else []
        return lines + ([self.metrics.header(self.options.peaks_dir)] if self.metrics is not None else [])

    def measure(self, case: Case, timer: CaseTimer, label: str, timer_name: str) -> Record:
        """Prepare, time (``timer.run_rounds``), check its stability, then run the untimed passes; the record.

        ``timer`` also reads the rounds' median and times once they are over, and forgets them to time
        a flagged benchmark again (``--rerun-unstable``; ``lenet.stability``).
        """
        options = self.options
        with prepared(case) as ready:
            checked = time_checked_rounds(
                ready,
                timer.run_rounds,
                label,
                timer.round_times,
                timer.forget,
                options.stability_bounds,
                options.rerun_unstable,
            )
            # The timed rounds are over: the passes below cannot change their numbers.
            trace = trace_pass(self.trace_run, ready) if self.trace_run is not None else None
            measured = metrics_pass(ready) if self.options.metrics else None  # peak memory, FLOPs
        self._medians[case.name] = median_seconds = timer.median()
        self._labels[case] = label
        metrics = measured.info(median_seconds) if measured is not None else None
        return ready.record(median_seconds, timer_name, torch.get_num_threads(), trace, metrics, checked.stability())

    def saved(self, case: Case, record: Record, extra_info: dict[str, Any]) -> None:
        """The case's timed rounds are over: keep its record for the end-of-run passes, which fill it in; it
        goes into the benchmark's ``extra_info`` when the session finishes."""
        self.records[case] = record
        self._extra_infos[case] = extra_info
        if self.metrics is not None:
            self.metrics.add(case, record, self._medians.get(case.name))
        if self.counting is not None:
            self.counting.add(case)

    def finish(self, benchmarks: Iterable[SavedBenchmark], stopped_early: bool) -> None:
        """Before the run is saved: drop what was measured only in part, add the run-end metrics, count
        instructions, check each train step against its phases, then write every record into its
        benchmark's ``extra_info`` and list what was flagged."""
        benchmarks = list(benchmarks)
        ours = {id(info) for info in self._extra_infos.values()}
        unfinished = [b for b in benchmarks if not b.fixture.has_error and id(b.extra_info) not in ours]
        for bench in unfinished:  # interrupted in its rounds, or failed after them: no record was made
            bench.fixture.has_error = True  # pytest-benchmark saves only benchmarks without an error
        if unfinished:
            self.notes.append(f"lenet-bench: not saved, measured only in part: {', '.join(b.name for b in unfinished)}")
        if self.metrics is not None:  # each pass fills in the parts of the record it owns
            for case, done in self.metrics.finish(stopped_early=stopped_early).items():
                self.records[case] = replace(self.records[case], metrics=done.metrics, compile_cost=done.compile_cost)
        if self.counting is not None:
            for case, counts in self.counting.finish(stopped_early=stopped_early).items():
                self.records[case] = self.records[case].with_counts(counts)
        self._check_phase_sums()
        for case, info in self._extra_infos.items():
            info.update(self.records[case].to_extra_info())
        flagged = [
            (self._labels.get(case, case.name), r.stability)
            for case, r in self.records.items()
            if r.stability and r.stability.flagged
        ]
        self.notes += stability.summary_lines(flagged, len(self.records))

    def _check_phase_sums(self) -> None:
        """The phase-sum check over the session's records (``lenet.stability``): its flags join theirs."""
        timed_cases = [case for case in self.records if self._medians.get(case.name) is not None]
        timed = [
            stability.Timed(
                case.phase.value,
                case.variant.id,
                case.batch_size,
                case.optimizer.id if case.optimizer else None,
                self._medians[case.name] or 0.0,
            )
            for case in timed_cases
        ]
        for index, flag in stability.check_phase_sums(timed, self.options.stability_bounds).items():
            record = self.records[timed_cases[index]]
            if record.stability is not None:
                self.records[timed_cases[index]] = record.with_stability(stability.with_flags(record.stability, [flag]))

    def publish(self, document: dict[str, Any]) -> None:
        """Publish the run being saved (``--publish-db``); a database failure is one line, the file stays."""
        if self.options.publish_db:
            from lenet.runs.postgres.write import publish_saved_run  # psycopg: needed only when publishing

            self.notes.append(publish_saved_run(self.options.publish_db, document))

    def summary(self) -> list[str]:
        lines = self.counting.summary() if self.counting is not None else []
        lines += self.trace_run.summary() if self.trace_run is not None else []
        lines += self.metrics.summary() if self.metrics is not None else []
        return lines + self.notes
