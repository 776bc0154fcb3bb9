"""Peak memory of a phase, warm, measured after the timed rounds.

What is measured is the same on both devices: the **peak of live tensor bytes during one call
of the phase, above what was live when the call began** (the activations, gradients and
workspaces the call creates; not the model, data or optimizer state that outlive it). The pass
makes a few calls, each after the phase's untimed set-up, and keeps the largest peak.

* **CUDA**: :func:`torch.cuda.reset_peak_memory_stats` after the set-up (and after warm-up, so
  compilation and autotuning spikes are excluded), then ``max_memory_allocated() -
  memory_allocated()`` around the call, as PyTorch's dynamo benchmarks measure warm peak
  memory. ``max_memory_allocated`` and ``max_memory_reserved`` (the caching allocator's
  segments) are kept as read too: process-wide figures, so they include whatever else the
  process holds.
* **CPU**: the profiler's memory events (``profile_memory=True``): every allocation and free of
  PyTorch's CPU allocator, in time order; their running sum inside the call's range is the live
  bytes, its maximum the peak. It sees only PyTorch's tensors, so it moves with the workload
  whatever the allocator does with the pages: the process high-water mark (``VmHWM``, reset
  through ``/proc/self/clear_refs``) would not, since glibc keeps freed blocks resident or
  returns them to the system depending on the process's history (docs/measuring.md), and
  ``psutil``'s ``memory_percent()`` is current RSS in percent, not a peak (pytorch/benchmark#2707).
  The first profiled call is discarded: frees of memory allocated before profiling began are
  not reported, which would leave the first call's sum too high.

:func:`activation_bytes_per_sample` is LeNet's own estimate, which the tests hold the CPU
measure against.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from lenet.variants import Phase

DEFAULT_CALLS = 3
CPU_METHOD = "profiler memory events: peak live tensor bytes during the call"
CUDA_METHOD = "torch.cuda.max_memory_allocated() - memory_allocated() around the call"
_PHASE_LABEL = "lenet.metrics.phase"


@dataclass(frozen=True)
class MemoryPeak:
    """The largest per-call peak over ``calls`` calls, and how it was measured."""

    peak_bytes: int
    method: str
    calls: int
    max_allocated_bytes: int | None = None  # CUDA only: process-wide
    max_reserved_bytes: int | None = None  # CUDA only: process-wide


def peaks_within(events: Sequence[tuple[int, int]], ranges: Sequence[tuple[int, int]]) -> list[int]:
    """The peak of the running sum of ``(time, bytes)`` events within each ``(start, end)`` range.

    The sum starts at 0 at each range's start (allocations positive, frees negative), so a
    peak is what the range added on top of what was live before it; events at equal times
    keep their order. Pure, so the tests give it literal events.
    """
    ordered = sorted(events, key=lambda event: event[0])
    times = [time for time, _ in ordered]
    peaks = []
    for start, end in ranges:
        live = peak = 0
        for index in range(bisect.bisect_left(times, start), bisect.bisect_right(times, end)):
            live += ordered[index][1]
            peak = max(peak, live)
        peaks.append(peak)
    return peaks


def cpu_peak(
    target: Callable[..., object],
    setup: Callable[[], Any] | None = None,
    calls: int = DEFAULT_CALLS,
) -> MemoryPeak:
    """Peak live bytes of ``calls`` calls of ``target`` (after one discarded call), from the profiler."""
    from torch.profiler import ProfilerActivity, profile, record_function

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=False) as prof:
        for _ in range(calls + 1):
            prepared = setup() if setup is not None else None
            args = tuple(prepared[0]) if prepared else ()
            with record_function(_PHASE_LABEL):
                target(*args)
    events = prof.profiler.kineto_results.events()  # type: ignore[union-attr]
    memory = [(event.start_ns(), event.nbytes()) for event in events if event.name() == "[memory]"]
    ranges = sorted((event.start_ns(), event.end_ns()) for event in events if event.name() == _PHASE_LABEL)
    if len(ranges) != calls + 1:
        raise RuntimeError(f"the profiler recorded {len(ranges)} of {calls + 1} calls")
    return MemoryPeak(peak_bytes=max(peaks_within(memory, ranges[1:])), method=CPU_METHOD, calls=calls)


class CudaMemory(Protocol):
    """The parts of ``torch.cuda`` the CUDA measure uses (tests bring a fake)."""

    def synchronize(self) -> None: ...
    def reset_peak_memory_stats(self) -> None: ...
    def memory_allocated(self) -> int: ...
    def max_memory_allocated(self) -> int: ...
    def max_memory_reserved(self) -> int: ...


def cuda_peak(
    target: Callable[..., object],
    setup: Callable[[], Any] | None = None,
    calls: int = DEFAULT_CALLS,
    cuda: CudaMemory | None = None,
) -> MemoryPeak:
    """Peak allocated bytes of ``calls`` calls of ``target`` above those live before each, on the GPU."""
    if cuda is None:
        import torch

        cuda = torch.cuda
    peak = max_allocated = max_reserved = 0
    for _ in range(calls):
        prepared = setup() if setup is not None else None
        args = tuple(prepared[0]) if prepared else ()
        cuda.synchronize()
        cuda.reset_peak_memory_stats()  # after the set-up: its own allocations are not the phase's
        before = cuda.memory_allocated()
        target(*args)
        cuda.synchronize()
        peak = max(peak, cuda.max_memory_allocated() - before)
        max_allocated = max(max_allocated, cuda.max_memory_allocated())
        max_reserved = max(max_reserved, cuda.max_memory_reserved())
    return MemoryPeak(peak, CUDA_METHOD, calls, max_allocated_bytes=max_allocated, max_reserved_bytes=max_reserved)


def measure_peak(
    device: str, target: Callable[..., object], setup: Callable[[], Any] | None = None, calls: int = DEFAULT_CALLS
) -> MemoryPeak:
    """The peak of the phase on ``device``; RuntimeError (or ValueError) with the reason when it cannot be had."""
    if device == "cuda":
        return cuda_peak(target, setup, calls)
    if device == "cpu":
        return cpu_peak(target, setup, calls)
    raise ValueError(f"peak memory is measured on cpu and cuda; not on {device!r}")


# --- LeNet's own estimate --------------------------------------------------------------------------

_FLOAT = 4
_INDEX = 8  # max-pooling's int64 indices
# Elements per sample of each activation of LeNet-5 (lenet/model.py's shape comments).
_C1, _S2, _C3, _S4, _F5, _F6, _OUT = 6 * 28 * 28, 6 * 14 * 14, 16 * 10 * 10, 16 * 5 * 5, 120, 84, 10


def activation_bytes_per_sample(phase: Phase | str) -> int:
    """Tensor bytes per sample that must be live at some moment of a phase, by LeNet's shapes (fp32).

    A lower bound, not a prediction of the figure: the measured peak adds what the kernels
    allocate on the side (oneDNN's blocked-format convolution outputs, for one). The larger of:

    * while conv1's ReLU runs: conv1's output and the ReLU's;
    * when the forward returns: every activation it kept in a local (conv1's ReLU, both poolings,
      conv2's ReLU, the linear layers' outputs), and for training also the pooling indices
      that backward needs (the training forward and the train step).

    Backward and the optimizer step get 0: backward frees the saved activations as it creates
    the gradients, so nothing fixes a lower bound of its net peak.
    """
    phase = Phase(phase)
    if phase in (Phase.BACKWARD, Phase.OPTIMIZER_STEP):
        return 0
    during_relu = 2 * _C1 * _FLOAT
    at_return = (_C1 + _S2 + _C3 + _S4 + _F5 + _F6 + _OUT) * _FLOAT
    if phase is not Phase.FORWARD_INFERENCE:
        at_return += (_S2 + _S4) * _INDEX
    return max(during_relu, at_return)
