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


def make_optimizer(spec: OptimizerSpec, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    kwargs: dict[str, object] = {"lr": LEARNING_RATE}
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
    the phases call: the same module, or ``torch.compile`` of it.
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
    _saved_grads: list[torch.Tensor] = field(default_factory=list)

    @property
    def device(self) -> str:
        return self.variant.device

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        dtype = self.variant.amp_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device, dtype=dtype)

    def synchronize(self) -> None:
        synchronize(self.device)

    def _begin_step(self) -> None:
        """Tell CUDA-graph trees a new iteration starts, so replays may reuse the last one's outputs."""
        if self.variant.compile == "compile_reduce_overhead":
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
        self.module.zero_grad(set_to_none=True)
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
            param.grad = grad.clone()

    def optimizer_step(self) -> None:
        optimizer = self._require_optimizer()
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def train_step(self) -> torch.Tensor:
        optimizer = self._require_optimizer()
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
        self.module.zero_grad(set_to_none=True)
        if self.optimizer is not None:
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


def phase_round(workload: Workload, phase: Phase) -> tuple[Callable[..., object], Callable[[], Any] | None]:
    """The callable of one timed round of ``phase``, and the untimed set-up before each round (or None).

    The set-up returns pytest-benchmark's ``(args, kwargs)`` for the round (backward takes
    the loss) or None. Timed rounds and the profiling pass both run phases through this.
    """
    target = phase_callable(workload, phase)
    if phase is Phase.BACKWARD:

        def setup_backward() -> tuple[tuple[torch.Tensor], dict[str, Any]]:
            loss = workload.prepare_backward()
            workload.synchronize()
            return (loss,), {}

        return target, setup_backward
    if phase is Phase.OPTIMIZER_STEP:

        def setup_step() -> None:
            workload.prepare_optimizer_step()
            workload.synchronize()

        return target, setup_step
    return target, None


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
    runnable: Callable[[torch.Tensor], torch.Tensor] = module
    if variant.is_compiled:
        # dynamic=False: one static graph per batch size, never a silent switch to
        # a dynamic-shape graph when a later benchmark uses another batch size.
        runnable = torch.compile(module, mode=variant.torch_compile_mode, dynamic=False)
    opt = make_optimizer(optimizer, list(module.parameters())) if optimizer is not None else None
    scaler = torch.amp.GradScaler(variant.device) if variant.precision == "amp_fp16" else None
    return Workload(
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
