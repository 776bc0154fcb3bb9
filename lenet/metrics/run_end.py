"""What a run adds to its records once every benchmark is timed: % of peak, break-even, compile cost.

The bench session hands each finished case here (its record and its
median); :meth:`MetricsRun.finish`, at the end of the session and before pytest-benchmark saves,
then

1. reads (or measures, once per machine and thread count) the peaks of each device the run
   used, and adds each record's roofs and ``percent_of_peak``;
2. with ``--compile-cost``, compiles each compiled case again in new processes, cold then warm;
3. gives each compiled case its break-even steps against its eager counterpart's median in
   this run.

All of it after the timed rounds, so none of it can move a timing; every step that fails
writes its reason into the record and leaves the rest of the run as it was.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from lenet.metrics.compile_cost import ChildResult, Runner, cold_and_warm, cost_info, eager_counterpart, run_child
from lenet.metrics.measure import with_peaks
from lenet.metrics.peaks import PeaksCache
from lenet.runs.record import CompileCostInfo, Record
from lenet.variants import Case, Phase

# At the module scope torch.compile compiles the model, not the optimizer: the optimizer step runs eager
# code, and only its untimed set-up (forward and backward) is compiled. Nothing to pay back. At the step
# scope the optimizer step is compiled, and has a compile cost like any other compiled phase.
_REASON = "the optimizer step runs no compiled code at the module scope (only its untimed set-up does)"
NOT_COMPILED = {"compile_cost_unavailable": _REASON, "break_even_unavailable": _REASON}


def _eager_optimizer_step(case: Case) -> bool:
    """A module-scope optimizer step: timed eager, whatever the variant compiles."""
    return case.phase is Phase.OPTIMIZER_STEP and not case.variant.step_scope


@dataclass
class Pending:
    case: Case
    record: Record  # this pass's copy: the session takes its metrics and compile_cost parts at the end
    median: float | None


class MetricsRun:
    """The run's cases waiting for the end-of-run steps. ``peaks`` None: no metrics pass ran."""

    def __init__(self, peaks: PeaksCache | None, compile_cost: bool, threads: int, runner: Runner = run_child) -> None:
        self.peaks = peaks
        self.compile_cost = compile_cost
        self.threads = threads
        self.runner = runner
        self.pending: list[Pending] = []
        self.compile_seconds: float | None = None  # wall time of the cold/warm processes, once they ran
        self.lines: list[str] = []

    def add(self, case: Case, record: Record, median: float | None) -> None:
        self.pending.append(Pending(case, record, median))

    def finish(self, stopped_early: bool = False) -> dict[Case, Record]:
        """Add peaks, compile costs and break-even to every pending record; the records, by case."""
        if self.peaks is not None:
            self._add_peaks(measure_if_missing=not stopped_early)
        compiled = [p for p in self.pending if p.case.variant.is_compiled and not _eager_optimizer_step(p.case)]
        for item in self.pending:
            if item.case.variant.is_compiled and _eager_optimizer_step(item.case):
                self._update(item, dataclasses.replace(item.record, compile_cost=CompileCostInfo(**NOT_COMPILED)))
        medians = {p.case.name: p.median for p in self.pending}
        measured: dict[str, tuple[ChildResult, ChildResult] | str] = {}
        if self.compile_cost and compiled:
            start = time.perf_counter()
            for item in compiled:
                if stopped_early:
                    measured[item.case.name] = "the session stopped early, so compile cost was not measured"
                    continue
                try:
                    measured[item.case.name] = cold_and_warm(item.case, self.threads, self.runner)
                except (RuntimeError, OSError, ValueError, KeyError) as error:
                    measured[item.case.name] = f"compile cost not measured: {str(error).splitlines()[0]}"
            self.compile_seconds = time.perf_counter() - start
        for item in compiled:
            eager = eager_counterpart(item.case)
            info = cost_info(
                measured.get(item.case.name),
                item.record.compile_seconds,
                item.median,
                medians.get(eager.name),
                eager.name,
            )
            self._update(item, dataclasses.replace(item.record, compile_cost=info))
        return {item.case: item.record for item in self.pending}

    def _add_peaks(self, measure_if_missing: bool) -> None:
        if self.peaks is None:
            return
        for item in self.pending:
            metrics = item.record.metrics
            if metrics is None or metrics.flops is None:
                continue
            found = self.peaks.get(item.case.variant.device, measure_if_missing)
            peaks, path = (found, None) if isinstance(found, str) else found
            updated = with_peaks(metrics, item.case.variant.precision, peaks, str(path) if path else None)
            self._update(item, dataclasses.replace(item.record, metrics=updated))
        self.lines += self.peaks.log

    def _update(self, item: Pending, record: Record) -> None:
        item.record = record

    def header(self, peaks_dir: Path) -> str:
        """One line for the top of the run: which end-of-run steps it will take."""
        parts = []
        if self.peaks is not None:
            parts.append(f"peak memory and FLOPs after each benchmark's timed rounds; peaks cached in {peaks_dir}")
        if self.compile_cost:
            parts.append("compile cost cold and warm at the end (new processes; minutes)")
        return "lenet-bench: metrics: " + "; ".join(parts)

    def summary(self) -> list[str]:
        """Lines for the end of the run: where the peaks came from, and each compiled case's cost."""
        lines = list(self.lines)
        if self.compile_seconds is not None:
            lines.append(f"lenet-bench: compile cost measured cold and warm in {self.compile_seconds:.0f} s")
        for item in self.pending:
            cost = item.record.compile_cost
            if cost is not None:
                lines.append(f"  {item.case.name}: {cost_line(cost)}")
        return lines


def cost_line(cost: CompileCostInfo) -> str:
    """A compiled case's compile cost and break-even, or why each is missing; one reason said once."""
    parts = []
    if cost.compile_cold_seconds is not None:
        parts.append(f"cold {cost.compile_cold_seconds:.1f} s, warm {cost.compile_warm_seconds:.1f} s")
    elif cost.compile_cost_unavailable:
        parts.append(cost.compile_cost_unavailable)
    if cost.break_even_steps is not None:
        steps = cost.break_even_steps
        parts.append(f"break-even {steps if isinstance(steps, str) else f'{steps} steps'} ({cost.break_even_basis})")
    elif cost.break_even_unavailable:
        parts.append(cost.break_even_unavailable)
    # The optimizer step of a compiled variant has one reason for both (NOT_COMPILED): say it once.
    return "; ".join(dict.fromkeys(parts))
