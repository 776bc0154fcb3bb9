"""Operators (CPU) or kernels (CUDA) per call of a phase, and the share of a CUDA call the GPU was busy.

What a small model's step costs is often not arithmetic but dispatch: every operator a step runs
costs a few microseconds of framework on the CPU, every kernel a launch on the GPU. Compiling or
capturing the whole step is worth what it removes of these, so the metrics pass counts them:

* **How**: each of ``calls`` calls of the phase (its untimed set-up first, outside the profiler)
  runs inside its own ``torch.profiler.profile`` under the label ``lenet.dispatch``.
* **Operators per step** (CPU): ``aten::`` events inside the label with no ``aten::`` event above
  them, i.e. the operators the Python code or the compiled code called, not the ones those called
  in turn. Inductor's own C++ kernels are not operators (they do not go through the dispatcher);
  the aten operators a compiled graph still calls (its convolutions and matmuls) are counted.
* **Kernels per step** (CUDA): device events (kernels, memcpy, memset) per call.
* **GPU busy %**: the union of those events' intervals over the call's span, from the label's start
  to the later of its end and the last device event's end. The profiler's own overhead is in
  the span, so this is a lower bound of the share an unprofiled step keeps the GPU busy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

LABEL = "lenet.dispatch"
DEFAULT_CALLS = 3


@dataclass(frozen=True)
class Dispatch:
    """Per call: CPU operators, device events (CUDA) and the share of the span the GPU was busy (CUDA)."""

    ops_per_step: float
    kernels_per_step: float | None = None
    gpu_busy_percent: float | None = None


def _within_label(event: Any) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name == LABEL:
            return True
        parent = parent.cpu_parent
    return False


def _top_level_op(event: Any) -> bool:
    if not event.name.startswith("aten::") or event.device_type != DeviceType.CPU:
        return False
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return False
        parent = parent.cpu_parent
    return _within_label(event)


def busy_share(intervals: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """The share of [start, end] covered by the union of ``intervals`` (0-1); 0 for an empty span."""
    if end <= start:
        return 0.0
    covered, reach = 0.0, start
    for low, high in sorted(intervals):
        low, high = max(low, reach), min(high, end)
        if high > low:
            covered += high - low
            reach = high
    return covered / (end - start)


def count_dispatch(
    device: str,
    target: Callable[..., object],
    setup: Callable[[], tuple[tuple[Any, ...], dict[str, Any]] | None] | None = None,
    calls: int = DEFAULT_CALLS,
) -> Dispatch:
    """Profile ``calls`` calls of ``target`` (each after its untimed ``setup``) and count what each dispatched."""
    cuda = device == "cuda"
    activities = [ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]
    ops, kernels, busy = 0, 0, []
    for _ in range(calls):
        prepared = setup() if setup is not None else None
        args = prepared[0] if prepared else ()
        if cuda:
            torch.cuda.synchronize()
        with profile(activities=activities) as prof:
            with record_function(LABEL):
                target(*args)
            if cuda:
                torch.cuda.synchronize()
        events = prof.events()
        ops += sum(1 for event in events if _top_level_op(event))
        if cuda:
            device_events = [e for e in events if e.device_type == DeviceType.CUDA]
            kernels += len(device_events)
            label = next(e for e in events if e.name == LABEL and e.device_type == DeviceType.CPU)
            spans = [(e.time_range.start, e.time_range.end) for e in device_events]
            end = max([label.time_range.end, *(high for _, high in spans)])
            busy.append(busy_share(spans, label.time_range.start, end))
    if not cuda:
        return Dispatch(ops_per_step=ops / calls)
    return Dispatch(ops / calls, kernels / calls, 100.0 * sum(busy) / len(busy))
