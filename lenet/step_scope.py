"""The step scope: the whole training step as one compiled function, or as one captured CUDA graph.

A module-scope variant compiles the model alone: the loss, the backward, ``zero_grad`` and the
optimizer step run eager. A step-scope variant covers all of them (docs/measuring.md):

* **Compiled** (``compile*-step``): one ``torch.compile``'d function does forward, loss,
  backward, the optimizer step and ``zero_grad(set_to_none=True)``, as the dynamo benchmarks'
  ``forward_and_backward_pass`` and PyTorch's compiled-optimizer recipe do. The backward runs under
  compiled autograd where this torch has it (``torch._dynamo.config.compiled_autograd``); the
  learning rate is a tensor, so an LR scheduler changes a value, not a guard, and never
  recompiles. The optimizer phase of such a variant times ``torch.compile(optimizer.step)``.
* **Captured** (``cuda_graph-step``, CUDA only): no compiler. Eager kernels of the whole step
  are captured once in a CUDA graph with a ``capturable`` optimizer and replayed every step, as
  in PyTorch's CUDA graphs notes ("whole network capture"). Warm-up steps on a side stream
  initialise the optimizer state before the capture; the weights and that state are then put
  back, so the first replay is the first step.

Nothing here times anything; :mod:`lenet.workload` builds a workload's phases from these.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from lenet.variants import OptimizerSpec, Variant

if TYPE_CHECKING:
    from lenet.timing import DynamoTally

CAPTURE_WARMUP_STEPS = 3  # eager steps on a side stream before a capture, as PyTorch's notes advise
AutocastFactory = Callable[[], contextlib.AbstractContextManager[object]]


def compiled_autograd_supported() -> bool:
    """Whether this torch can compile the backward inside a compiled step (compiled autograd)."""
    import torch._dynamo.config

    return hasattr(torch._dynamo.config, "compiled_autograd")


@dataclass(frozen=True)
class StepPlan:
    """How a variant's optimizer and step are built: decided from the variant alone, so it is testable anywhere."""

    compile_mode: str | None  # torch.compile's mode for the step; None: not compiled
    captured: bool  # the step is a CUDA graph of eager kernels
    compiled_autograd: bool
    tensor_lr: bool  # the learning rate is a tensor (an LR scheduler never recompiles)
    capturable: bool  # the optimizer keeps its step count on the device (graph capture needs it)

    @property
    def step_scope(self) -> bool:
        return self.captured or self.compile_mode is not None


def step_plan(variant: Variant, optimizer: OptimizerSpec | None = None) -> StepPlan:
    """The plan of ``variant``: module scope builds the optimizer as before (a float LR, not capturable)."""
    if not variant.step_scope:
        return StepPlan(None, captured=False, compiled_autograd=False, tensor_lr=False, capturable=False)
    cuda = variant.device == "cuda"
    adam = optimizer is not None and optimizer.name == "adam"
    if variant.is_captured:
        # SGD has no step count to keep on the device; a float LR is baked into the graph.
        return StepPlan(None, captured=True, compiled_autograd=False, tensor_lr=False, capturable=adam)
    return StepPlan(
        variant.torch_compile_mode,
        captured=False,
        compiled_autograd=compiled_autograd_supported(),
        tensor_lr=True,
        # Adam with a tensor LR and foreach needs capturable (torch says so); capturable is CUDA-only.
        capturable=adam and cuda,
    )


def zero_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Put every state tensor back to zero in place: a fresh SGD (momentum) or Adam state, at the same addresses.

    Zeroed in place, a CUDA graph that reads them stays valid. SGD's first step clones the gradient
    into its momentum buffer; a zero buffer times the momentum plus the gradient is the same value.
    """
    with torch.no_grad():
        for state in optimizer.state.values():
            for value in state.values():
                if isinstance(value, torch.Tensor):
                    value.zero_()


class CompiledStep:
    """Forward, loss, backward, optimizer step and zero_grad as one ``torch.compile``'d function."""

    def __init__(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        autocast: AutocastFactory,
        plan: StepPlan,
        update: Callable[[], object] | None = None,
        backend: str = "inductor",
    ) -> None:
        """``update`` is what the step calls to update the weights (``optimizer.step``; tests plant a broken
        one); ``backend`` another torch.compile backend (tests trace with ``"eager"``, skipping Inductor)."""
        params = [p for p in module.parameters() if p.requires_grad]
        update = update or optimizer.step

        def whole_step(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            with autocast():
                logits = module(images)  # (N, 10)
                loss = F.cross_entropy(logits, labels)  # ()
            loss.backward()
            update()
            # What zero_grad(set_to_none=True) does; Optimizer.zero_grad itself is on dynamo's
            # skip list in torch 2.13 (a graph break), a loop over the parameters is not.
            for param in params:
                param.grad = None
            return loss.detach()

        def optimizer_step() -> None:
            optimizer.step()

        # dynamic=False: one static graph per batch size, as the module scope compiles.
        how: dict[str, object] = {"mode": plan.compile_mode} if backend == "inductor" else {"backend": backend}
        self._step = torch.compile(whole_step, dynamic=False, **how)  # type: ignore[call-overload]
        self._optimizer_step = torch.compile(optimizer_step, dynamic=False, **how)  # type: ignore[call-overload]
        self._compiled_autograd = plan.compiled_autograd

    def _config(self) -> contextlib.AbstractContextManager[object]:
        if not self._compiled_autograd:
            return contextlib.nullcontext()
        import torch._dynamo.config

        return torch._dynamo.config.patch(compiled_autograd=True)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with self._config():
            return self._step(images, labels)

    def optimizer_step(self) -> None:
        self._optimizer_step()


class CapturedStep:
    """The whole step, or the optimizer step alone, as one CUDA graph of eager kernels (CUDA only).

    Captured at the first call (after side-stream warm-up steps whose effects are undone) and
    replayed after. The graph reads and writes fixed addresses: the images, labels, weights,
    gradients and optimizer state must stay the same tensors (updated in place) from then on.
    """

    def __init__(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        images: torch.Tensor,
        labels: torch.Tensor,
        autocast: AutocastFactory,
    ) -> None:
        self._module, self._optimizer = module, optimizer
        self._images, self._labels, self._autocast = images, labels, autocast
        self._step_graph: torch.cuda.CUDAGraph | None = None
        self._optimizer_graph: torch.cuda.CUDAGraph | None = None
        self._loss: torch.Tensor | None = None

    @property
    def captured(self) -> bool:
        """Whether a graph has been captured (at the first call of a phase)."""
        return self._step_graph is not None or self._optimizer_graph is not None

    def _whole_step(self) -> torch.Tensor:
        with self._autocast():
            logits = self._module(self._images)  # (N, 10)
            loss = F.cross_entropy(logits, self._labels)  # ()
        loss.backward()
        self._optimizer.step()
        return loss.detach()

    def _capture(self, body: Callable[[], object], clear_grads: bool) -> tuple[torch.cuda.CUDAGraph, object]:
        params = list(self._module.parameters())
        snapshot = [p.detach().clone() for p in params]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(CAPTURE_WARMUP_STEPS):
                if clear_grads:
                    self._optimizer.zero_grad(set_to_none=True)
                body()
        torch.cuda.current_stream().wait_stream(side)
        with torch.no_grad():  # undo the warm-up steps: the first replay is the first step
            for param, saved in zip(params, snapshot, strict=True):
                param.copy_(saved)
        zero_optimizer_state(self._optimizer)
        if clear_grads:
            # The backward in the graph then writes gradients into memory of the graph's own pool.
            self._optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = body()
        return graph, out

    def train_step(self) -> torch.Tensor:
        if self._step_graph is None:
            self._step_graph, loss = self._capture(self._whole_step, clear_grads=True)
            self._loss = loss  # type: ignore[assignment]
        self._step_graph.replay()
        return self._loss  # type: ignore[return-value]

    def optimizer_step(self) -> None:
        """Replay the optimizer step alone over the gradients' fixed tensors (copy new ones in first)."""
        if self._optimizer_graph is None:
            self._optimizer_graph, _ = self._capture(self._optimizer.step, clear_grads=False)
        self._optimizer_graph.replay()


MODULE_SCOPE_NO_RECOMPILE = (
    "at the module scope the optimizer runs eager (torch.compile wraps the model alone), so an LR schedule "
    "changes a Python float that no compiled code guards on: nothing to recompile"
)


def lr_schedule_recompiles(
    step: Callable[[], object], optimizer: torch.optim.Optimizer, steps: int = 100, warmup_steps: int = 3
) -> DynamoTally:
    """What dynamo recompiles while ``step`` runs ``steps`` times under a cosine LR schedule.

    ``warmup_steps`` steps first, unscheduled: an optimizer's first steps create its state, and
    the compiled step recompiles once for that (a guard on the state's size), schedule or not.
    Then every step is followed by ``scheduler.step()``. With a tensor LR the schedule writes a
    value into the tensor (``fill_``), which no guard reads: 0 recompiles. With a float LR every
    new value fails a guard on it, until dynamo's recompile limit falls back to eager code.
    The step must hold the optimizer's own ``step`` (bound before the scheduler wraps it).
    """
    from lenet.timing import dynamo_snapshot, dynamo_tally

    for _ in range(warmup_steps):
        step()
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    before = dynamo_snapshot()
    with warnings.catch_warnings():
        # The step calls the optimizer's step bound before the scheduler wrapped it, so the
        # scheduler believes its step comes first and says so; the order is right.
        warnings.filterwarnings("ignore", message=".*lr_scheduler.step\\(\\)", category=UserWarning)
        for _ in range(steps):
            step()
            scheduler.step()
    return dynamo_tally(before)
