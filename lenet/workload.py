"""Build the model, optimizer and seeded data for a variant, and one callable per phase.

Every callable here does the work of its phase and nothing else: no clock, no
synchronization. Callers that time them (``lenet.timing``) synchronize the device
around them; callers that check them (``lenet.correctness``) compare what they return.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lenet.model import INPUT_SHAPE, NUM_CLASSES, Net
from lenet.step_scope import CapturedStep, CompiledStep, StepPlan, step_plan, zero_optimizer_state
from lenet.variants import OptimizerSpec, Phase, Variant

LEARNING_RATE = 0.01
SGD_MOMENTUM = 0.9


def make_batch(batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded synthetic images (N, 1, 32, 32) and class labels (N,), on the CPU in fp32."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn((batch_size, *INPUT_SHAPE), generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (batch_size,), generator=generator)
    return images, labels


def make_model(seed: int = 0) -> Net:
    """A freshly initialised Net whose weights depend on ``seed`` only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Net()


def make_optimizer(
    spec: OptimizerSpec,
    params: list[nn.Parameter],
    lr: float | torch.Tensor = LEARNING_RATE,
    capturable: bool = False,
) -> torch.optim.Optimizer:
    """``spec``'s optimizer; ``lr`` a tensor for a compiled step, ``capturable`` for Adam in a CUDA graph."""
    kwargs: dict[str, object] = {"lr": lr}
    if capturable and spec.name == "adam":  # SGD has no device-side step count, and no such option
        kwargs["capturable"] = True
    if spec.impl == "fused":
        kwargs["fused"] = True
    elif spec.impl == "foreach":
        kwargs["foreach"] = True
    elif spec.impl == "forloop":
        kwargs["foreach"] = False
    if spec.name == "sgd":
        return torch.optim.SGD(params, momentum=SGD_MOMENTUM, **kwargs)
    return torch.optim.Adam(params, **kwargs)


def synchronize(device: str) -> None:
    """Wait until all queued work on ``device`` is done (a no-op on the CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def math_mode(variant: Variant) -> Iterator[None]:
    """Set the process-wide TF32 switches this variant needs; restore them afterwards.

    fp32 on CUDA turns TF32 *off* for cuDNN too (PyTorch leaves it on by default),
    so that "fp32" means fp32; ``tf32`` turns it on for matmul and convolution.
    """
    if variant.device != "cuda":
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = (matmul.allow_tf32, cudnn.allow_tf32)
    enable = variant.precision == "tf32"
    matmul.allow_tf32, cudnn.allow_tf32 = enable, enable
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


@dataclass
class Workload:
    """LeNet set up for one variant, batch size and (optionally) optimizer.

    ``module`` is the eager model that owns the parameters; ``runnable`` is what
    the phases call: the same module, or ``torch.compile`` of it. A step-scope variant
    also has ``step``: the compiled or captured whole step (``lenet.step_scope``), which
    the train step and optimizer step phases call instead.
    """

    variant: Variant
    batch_size: int
    module: Net
    runnable: Callable[[torch.Tensor], torch.Tensor]
    images: torch.Tensor
    labels: torch.Tensor
    initial_state: dict[str, torch.Tensor]
    optimizer: torch.optim.Optimizer | None = None
    scaler: torch.amp.GradScaler | None = None
    step: CompiledStep | CapturedStep | None = None
    _saved_grads: list[torch.Tensor] = field(default_factory=list)

    @property
    def device(self) -> str:
        return self.variant.device

    @property
    def static_grads(self) -> bool:
        """Whether gradients must stay the same tensors (a CUDA graph reads their addresses)."""
        return self.variant.is_captured

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        dtype = self.variant.amp_dtype
        if dtype is None:
            return contextlib.nullcontext()
        # A CUDA graph must not capture autocast's cast cache (PyTorch's CUDA graphs notes).
        return torch.autocast(device_type=self.device, dtype=dtype, cache_enabled=not self.variant.is_captured)

    def synchronize(self) -> None:
        synchronize(self.device)

    def _begin_step(self) -> None:
        """Tell CUDA-graph trees a new iteration starts, so replays may reuse the last one's outputs."""
        if self.variant.compile == "compile_reduce_overhead" and self.device == "cuda":
            torch.compiler.cudagraph_mark_step_begin()

    # --- the phases ---------------------------------------------------------------------

    def forward_inference(self) -> torch.Tensor:
        self._begin_step()
        with torch.inference_mode(), self.autocast():
            return self.runnable(self.images)

    def forward_train(self) -> torch.Tensor:
        """Forward and loss with autograd recording; returns the loss."""
        self._begin_step()
        with self.autocast():
            logits = self.runnable(self.images)
            return F.cross_entropy(logits, self.labels)

    def prepare_backward(self) -> torch.Tensor:
        """Untimed set-up of the backward phase: clear gradients, rebuild the graph."""
        self.module.zero_grad(set_to_none=not self.static_grads)
        loss = self.forward_train()
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def prepare_optimizer_step(self) -> None:
        """Untimed set-up of the optimizer phase: the same gradients before every step.

        Restoring them keeps every round's work identical: GradScaler unscales
        gradients in place, and a step on ever-shrinking gradients is not a real step.
        """
        if not self._saved_grads:
            loss = self.prepare_backward()
            loss.backward()
            self._saved_grads = [p.grad.detach().clone() for p in self.module.parameters()]  # type: ignore[union-attr]
        for param, grad in zip(self.module.parameters(), self._saved_grads, strict=True):
            if self.static_grads and param.grad is not None:
                param.grad.copy_(grad)
            else:
                param.grad = grad.clone()

    def optimizer_step(self) -> None:
        optimizer = self._require_optimizer()
        if self.step is not None:  # the compiled or captured optimizer step
            self._begin_step()
            self.step.optimizer_step()
        elif self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def train_step(self) -> torch.Tensor:
        optimizer = self._require_optimizer()
        if isinstance(self.step, CompiledStep):
            self._begin_step()
            return self.step.train_step(self.images, self.labels)
        if isinstance(self.step, CapturedStep):
            return self.step.train_step()
        optimizer.zero_grad(set_to_none=True)
        loss = self.forward_train()
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return loss.detach()

    def _require_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            raise ValueError(f"workload {self.variant.id} b{self.batch_size} was built without an optimizer")
        return self.optimizer

    def reset(self) -> None:
        """Back to the initial weights, no gradients, fresh optimizer and scaler state."""
        with torch.no_grad():
            for name, tensor in self.module.state_dict().items():
                tensor.copy_(self.initial_state[name])
        self.module.zero_grad(set_to_none=not self.static_grads)
        if self.optimizer is not None and self.static_grads:
            zero_optimizer_state(self.optimizer)  # a captured graph reads the state where it is
        elif self.optimizer is not None:
            self.optimizer.state.clear()
        if self.scaler is not None:
            self.scaler = torch.amp.GradScaler(self.device)
        self._saved_grads = []


def phase_callable(workload: Workload, phase: Phase) -> Callable[[], object]:
    """The callable that one timed round of ``phase`` runs (backward takes the loss)."""
    return {
        Phase.FORWARD_INFERENCE: workload.forward_inference,
        Phase.FORWARD_TRAIN: workload.forward_train,
        Phase.BACKWARD: workload.backward,
        Phase.OPTIMIZER_STEP: workload.optimizer_step,
        Phase.TRAIN_STEP: workload.train_step,
    }[phase]


@dataclass(frozen=True)
class TimedCall:
    """One round of a phase: ``target`` is what is measured; ``setup``, when there is one, runs
    untimed before every round and returns the target's arguments as ``(args, kwargs)``
    (pytest-benchmark's ``pedantic`` convention) or None."""

    target: Callable[..., object]
    setup: Callable[[], tuple[tuple[Any, ...], dict[str, Any]] | None] | None = None

    def arguments(self) -> tuple[Any, ...]:
        """Run the set-up (if any) and return the positional arguments for ``target``."""
        prepared = self.setup() if self.setup is not None else None
        return prepared[0] if prepared else ()

    def once(self) -> None:
        """Set-up and target, as one warm-up call."""
        self.target(*self.arguments())


def timed_call(workload: Workload, phase: Phase) -> TimedCall:
    """What one timed round of ``phase`` runs, and its untimed set-up.

    Backward needs a fresh graph each round (forward + loss, untimed); the optimizer step
    needs the same gradients each round (restored, untimed). Set-ups end synchronized,
    so no queued device work leaks into the timed target.
    """
    target = phase_callable(workload, phase)
    if phase is Phase.BACKWARD:

        def setup_backward() -> tuple[tuple[Any, ...], dict[str, Any]]:
            loss = workload.prepare_backward()
            workload.synchronize()
            return (loss,), {}

        return TimedCall(target, setup_backward)
    if phase is Phase.OPTIMIZER_STEP:

        def setup_step() -> None:
            workload.prepare_optimizer_step()
            workload.synchronize()
            return None

        return TimedCall(target, setup_step)
    return TimedCall(target)


def build_workload(
    variant: Variant,
    batch_size: int,
    optimizer: OptimizerSpec | None = None,
    seed: int = 0,
    model_factory: Callable[[], nn.Module] | None = None,
) -> Workload:
    """Model, data and optimizer for ``variant`` at ``batch_size``.

    ``model_factory`` replaces the seeded Net (tests use it to plant a wrong model);
    the correctness reference is always the seeded Net's weights.
    """
    module = model_factory() if model_factory is not None else make_model(seed)
    initial_state = copy.deepcopy(module.state_dict())
    module = module.to(device=variant.device, memory_format=variant.torch_memory_format)
    images, labels = make_batch(batch_size, seed)
    images = images.to(device=variant.device).contiguous(memory_format=variant.torch_memory_format)
    labels = labels.to(device=variant.device)
    plan = step_plan(variant, optimizer)
    if plan.step_scope and optimizer is None:
        raise ValueError(f"{variant.id} compiles or captures the training step: build it with an optimizer")
    runnable: Callable[[torch.Tensor], torch.Tensor] = module
    if variant.is_compiled and not plan.step_scope:
        # dynamic=False: one static graph per batch size, never a silent switch to
        # a dynamic-shape graph when a later benchmark uses another batch size.
        runnable = torch.compile(module, mode=variant.torch_compile_mode, dynamic=False)
    opt = None
    if optimizer is not None:
        lr = torch.tensor(LEARNING_RATE, device=variant.device) if plan.tensor_lr else LEARNING_RATE
        opt = make_optimizer(optimizer, list(module.parameters()), lr=lr, capturable=plan.capturable)
    scaler = torch.amp.GradScaler(variant.device) if variant.precision == "amp_fp16" else None
    workload = Workload(
        variant=variant,
        batch_size=batch_size,
        module=module,  # type: ignore[arg-type]
        runnable=runnable,
        images=images,
        labels=labels,
        initial_state=initial_state,
        optimizer=opt,
        scaler=scaler,
    )
    workload.step = make_step(workload, plan)
    return workload


def make_step(workload: Workload, plan: StepPlan) -> CompiledStep | CapturedStep | None:
    """The compiled or captured whole step of a step-scope workload; None at the module scope."""
    if not plan.step_scope or workload.optimizer is None:
        return None
    if plan.captured:
        return CapturedStep(workload.module, workload.optimizer, workload.images, workload.labels, workload.autocast)
    return CompiledStep(workload.module, workload.optimizer, workload.autocast, plan)
