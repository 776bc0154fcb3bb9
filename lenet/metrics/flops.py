"""FLOPs of one call of a phase, the ops nothing counted, and the bytes each op touches.

How (docs/metrics.md):

* **FLOPs** come from :class:`torch.utils.flop_counter.FlopCounterMode`: convolutions
  (``convolution_backward`` per gradient it computes) and matrix products (``mm``, ``addmm``,
  ``bmm``) at 2 FLOPs per multiply-add, bias additions ignored. Everything else (pooling,
  activations, the loss, the optimizer's arithmetic) has no formula there and counts 0: those
  ops are listed as *uncounted* (:attr:`FlopCount.uncounted`), never silently folded into the total.
* **Bytes** are estimated per op as the sizes of its input and output tensors (each counted once
  per op; views move nothing and count 0), summed over the ops of the call: the traffic of each
  op reading its inputs and writing its outputs once. A lower bound on what the ops themselves
  move (im2col buffers, re-reads and workspaces are not in it); caches between ops and fusion in
  compiled code can make the real DRAM traffic smaller than the sum. It is the denominator of the
  roofline's arithmetic intensity.
* A compiled variant's FLOPs are counted on its eager module (compiled kernels bypass the
  dispatcher the counter listens to): the same math, so the same count.

:func:`lenet_flops` is the hand count of LeNet-5 the tests check the counter against.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from lenet.variants import Phase

# Namespaces of ops that do no tensor work (the profiler's record_function markers).
_MARKER_NAMESPACES = ("profiler",)


@dataclass(frozen=True)
class FlopCount:
    """What one call did: FLOPs by counted op, calls of the ops with no formula, and bytes touched."""

    by_op: Mapping[str, int]
    uncounted: Mapping[str, int]  # op name -> calls; ops that ran (not views) with no FLOP formula
    bytes_accessed: int

    @property
    def flops(self) -> int:
        return sum(self.by_op.values())

    def uncounted_list(self) -> tuple[str, ...]:
        """``("aten.relu x4", ...)``, in name order: what the record lists."""
        return tuple(f"{name} x{calls}" for name, calls in sorted(self.uncounted.items()))


def _is_view(packet: Any) -> bool:
    """Whether an op returns an alias of an input that it does not write (a view: no data moves)."""
    try:
        overloads = packet.overloads()
        schema = getattr(packet, overloads[0])._schema if overloads else None
    except (AttributeError, RuntimeError):
        return False
    if schema is None:
        return False
    return any(ret.alias_info is not None and not ret.alias_info.is_write for ret in schema.returns)


def _tensor_bytes(tree: Any) -> int:
    leaves, _ = tree_flatten(tree)
    seen: dict[int, int] = {}
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            seen[id(leaf)] = leaf.numel() * leaf.element_size()
    return sum(seen.values())


class _CountingMode(FlopCounterMode):
    """FlopCounterMode that also notes every op it executes, and the bytes that op's tensors hold.

    ``_count_flops`` is where FlopCounterMode sees each op it runs (after its own decompositions);
    overriding it keeps the counting FlopCounterMode's own.
    """

    def __init__(self) -> None:
        super().__init__(display=False)
        self.calls: Counter[str] = Counter()
        self.bytes_accessed = 0
        self._views: dict[Any, bool] = {}

    def _count_flops(self, func_packet: Any, out: Any, args: Any, kwargs: Any) -> Any:
        name = str(func_packet)
        if not name.startswith(_MARKER_NAMESPACES):
            view = self._views.setdefault(func_packet, _is_view(func_packet))
            if not view:
                self.calls[name] += 1
                self.bytes_accessed += _tensor_bytes((args, kwargs)) + _tensor_bytes(out)
        return super()._count_flops(func_packet, out, args, kwargs)


def count_flops(target: Callable[..., object], args: tuple[Any, ...] = ()) -> FlopCount:
    """Run ``target(*args)`` once under FlopCounterMode; what it counted, and what it could not."""
    mode = _CountingMode()
    with mode:
        target(*args)
    by_op = {str(op): int(n) for op, n in mode.get_flop_counts().get("Global", {}).items() if n}
    uncounted = {name: calls for name, calls in mode.calls.items() if name not in by_op}
    return FlopCount(by_op=by_op, uncounted=uncounted, bytes_accessed=mode.bytes_accessed)


# --- LeNet-5 by hand -----------------------------------------------------------------------------

# (multiply-adds per sample, whether autograd computes the layer's input gradient)
# conv: out channels x out height x out width x in channels x kernel area; linear: in x out.
_LAYERS = {
    "conv1": (6 * 28 * 28 * 1 * 5 * 5, False),  # its input is the image: no gradient wanted
    "conv2": (16 * 10 * 10 * 6 * 5 * 5, True),
    "fc1": (400 * 120, True),
    "fc2": (120 * 84, True),
    "fc3": (84 * 10, True),
}


def lenet_flops(phase: Phase | str, batch_size: int) -> int:
    """LeNet-5's FLOPs per call of ``phase`` counted by hand, by FlopCounterMode's rules.

    Forward: 2 FLOPs per multiply-add of each conv and linear layer (833,040 per sample).
    Backward: each layer's weight gradient costs its forward again, and its input gradient
    once more, except conv1's: autograd skips the gradient of an input that does not require
    one (1,430,880 per sample). Bias, pooling, activations, loss and optimizer: 0.
    """
    phase = Phase(phase)
    forward = sum(2 * macs for macs, _ in _LAYERS.values())
    backward = sum(2 * macs * (2 if input_grad else 1) for macs, input_grad in _LAYERS.values())
    per_sample = {
        Phase.FORWARD_INFERENCE: forward,
        Phase.FORWARD_TRAIN: forward,
        Phase.BACKWARD: backward,
        Phase.OPTIMIZER_STEP: 0,
        Phase.TRAIN_STEP: forward + backward,
    }[phase]
    return per_sample * batch_size
