"""The metrics pass: peak memory and FLOPs of a prepared case, untimed, after its timed rounds.

Called by the bench fixture after the timed rounds and the profiling pass, inside the case's
``prepared`` block (so a CUDA variant's math mode holds). Nothing here raises for a metric the
platform cannot give: the record gets ``memory_unavailable`` or ``flops_unavailable`` with the
reason, and the benchmark's timings are saved either way. A variant that fails its correctness
gate never reaches this pass, so it gets no metrics.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from lenet.harness import Prepared
from lenet.metrics.dispatch import Dispatch, count_dispatch
from lenet.metrics.flops import FlopCount, count_flops
from lenet.metrics.memory import DEFAULT_CALLS, MemoryPeak, measure_peak
from lenet.metrics.peaks import Peaks
from lenet.runs.record import MetricsInfo
from lenet.timing import Clock
from lenet.workload import timed_call

# What a metric that fails can raise: a profiler that cannot start, an op the counter trips on.
FAILURES = (RuntimeError, ValueError, OSError, TypeError, NotImplementedError)


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


@dataclass(frozen=True)
class Measurement:
    """What the pass found: each metric, or why it has none, and what the pass cost."""

    memory: MemoryPeak | str  # a str is the reason there is no figure
    flops: FlopCount | str
    seconds: float
    dispatch: Dispatch | str | None = None  # operators or kernels per call; a str is why there is none

    def info(self, median_seconds: float | None) -> MetricsInfo:
        """The record's metrics fields; achieved GFLOP/s = FLOPs / median time (peaks come at the run's end)."""
        memory, flops = self.memory, self.flops
        values: dict[str, object] = {"metrics_seconds": self.seconds}
        if isinstance(memory, str):
            values["memory_unavailable"] = memory
        else:
            values |= {
                "memory_peak_bytes": memory.peak_bytes,
                "memory_max_allocated_bytes": memory.max_allocated_bytes,
                "memory_max_reserved_bytes": memory.max_reserved_bytes,
                "memory_method": memory.method,
            }
        if isinstance(flops, str):
            values["flops_unavailable"] = flops
        else:
            values |= {
                "flops": flops.flops,
                "flops_uncounted": flops.uncounted_list(),
                "bytes_accessed": flops.bytes_accessed,
                "gflops_per_s": achieved_gflops(flops.flops, median_seconds),
            }
        if isinstance(self.dispatch, str):
            values["dispatch_unavailable"] = self.dispatch
        elif self.dispatch is not None:
            values |= {
                "ops_per_step": self.dispatch.ops_per_step,
                "kernels_per_step": self.dispatch.kernels_per_step,
                "gpu_busy_percent": self.dispatch.gpu_busy_percent,
            }
        return MetricsInfo(**values)  # type: ignore[arg-type]


def achieved_gflops(flops: int, median_seconds: float | None) -> float | None:
    """FLOPs / median time in GFLOP/s; None without a time or without counted FLOPs."""
    if not flops or not median_seconds or median_seconds <= 0:
        return None
    return flops / median_seconds / 1e9


def with_peaks(info: MetricsInfo, precision: str, peaks: Peaks | str, peaks_file: str | None = None) -> MetricsInfo:
    """``info`` with the machine's roofs for ``precision`` and the share of the compute roof reached."""
    if isinstance(peaks, str):
        return dataclasses.replace(info, peak_unavailable=peaks) if info.flops is not None else info
    compute, memory = peaks.compute_roof(precision), peaks.bandwidth_roof()
    values: dict[str, object] = {"peaks_file": peaks_file}
    if memory is not None:
        values |= {"peak_bandwidth_gbs": memory[0], "peak_bandwidth_kind": memory[1]}
    if compute is None:
        values["peak_unavailable"] = f"no {precision} matmul peak was measured on {peaks.identity.get('device')}"
    else:
        values |= {"peak_gflops": compute[0], "peak_gflops_kind": compute[1]}
        if info.gflops_per_s is not None:
            values["percent_of_peak"] = 100.0 * info.gflops_per_s / compute[0]
    return dataclasses.replace(info, **values)  # type: ignore[arg-type]


def metrics_pass(ready: Prepared, calls: int = DEFAULT_CALLS, clock: Clock = time.perf_counter) -> Measurement:
    """Peak memory (``calls`` warm calls of the phase as timed) and FLOPs (one call, eager) of a prepared case."""
    start = clock()
    workload, case = ready.workload, ready.case
    try:
        memory: MemoryPeak | str = measure_peak(case.variant.device, ready.call.target, ready.call.setup, calls)
    except FAILURES as error:
        memory = f"peak memory not measured: {_reason(error)}"
    try:
        # Compiled kernels bypass the dispatcher FlopCounterMode listens to: count the eager
        # module, which does the same math on the same weights, data and optimizer.
        # A step-scope variant's compiled step is dropped the same way: the eager phase does the same work.
        compiled = case.variant.is_compiled or workload.step is not None
        eager = dataclasses.replace(workload, runnable=workload.module, step=None) if compiled else workload
        call = timed_call(eager, case.phase)
        flops: FlopCount | str = count_flops(call.target, call.arguments())
        workload.synchronize()
    except FAILURES as error:
        flops = f"FLOPs not counted: {_reason(error)}"
    try:
        dispatch: Dispatch | str = count_dispatch(case.variant.device, ready.call.target, ready.call.setup)
    except FAILURES as error:
        dispatch = f"operators not counted: {_reason(error)}"
    return Measurement(memory=memory, flops=flops, seconds=clock() - start, dispatch=dispatch)
