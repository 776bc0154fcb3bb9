"""The correctness gate: a variant must compute LeNet's answer before it is timed.

Method (after PyTorch's dynamo benchmarks, ``torch._dynamo.utils.same``, made
scale-aware). For each tensor a variant produces (logits, loss and, when it
trains, every parameter's gradient):

* ``error`` = RMSE(result, fp64 reference) / RMS(fp64 reference): the relative
  RMS error against an fp64 eager run from the same weights and data on the CPU.
* The tensor passes when ``error <= max(tolerance[precision], m * twin_error)``.
  ``tolerance`` is the error the precision is expected to make on LeNet (table
  below); ``twin_error`` is the
  error of the variant's *eager twin* (same device and precision, contiguous, not
  compiled), and ``m`` is 2 for fp32 and 3 for reduced precision, as in dynamo.
  So a compiled or channels_last variant may be as inaccurate as eager at its
  precision, a little more, but never by a wide margin.
* Any NaN or infinity fails.

Why relative and not ``allclose(atol=rtol=1e-4)``: LeNet's gradients are around
1e-3 in size, so an absolute tolerance of 1e-4..1e-3 lets a gradient that is
10-100% wrong pass. Relative RMSE keeps the gate meaningful at every scale.

=========  =========
precision  tolerance
=========  =========
fp32       1e-4
tf32       2e-1
amp_fp16   2e-1
amp_bf16   4e-1
=========  =========

**The whole step** (a step-scope variant, whose compiled function or CUDA graph also holds the
backward, the optimizer step and zero_grad): :func:`check_steps` runs ``GATE_STEPS`` steps from
the initial weights and compares each step's loss and every parameter after the last step with
an fp64 eager run of the same optimizer, by the same rule (the eager twin runs the same steps). A
step that drops its optimizer update, or updates with wrong gradients, moves the parameters
elsewhere and fails.

Each tolerance sits well above the worst error an eager twin made on CPU and on an H200;
the measurements, and what planted bugs err by, are in results/studies/correctness_errors.md.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lenet.model import Net
from lenet.variants import OptimizerSpec, Phase, Variant
from lenet.workload import Workload, build_workload, make_optimizer, math_mode

GATE_STEPS = 5  # steps of the whole-step check: enough for momentum and Adam's moments to matter
TOLERANCE = {"fp32": 1e-4, "tf32": 2e-1, "amp_fp16": 2e-1, "amp_bf16": 4e-1}


class CorrectnessError(AssertionError):
    """A variant computed a wrong answer; the message lists each tensor that failed and by how much."""


@dataclass(frozen=True)
class TensorCheck:
    name: str
    error: float  # RMSE / RMS of the fp64 reference
    allowed: float
    finite: bool

    @property
    def passed(self) -> bool:
        return self.finite and self.error <= self.allowed

    def describe(self) -> str:
        if not self.finite:
            return f"{self.name}: contains NaN or infinity"
        return f"{self.name}: relative RMS error {self.error:.3g} > allowed {self.allowed:.3g}"


@dataclass(frozen=True)
class CorrectnessReport:
    variant_id: str
    checks: tuple[TensorCheck, ...]

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def worst_error(self) -> float:
        return max((c.error for c in self.checks), default=0.0)

    @property
    def worst_ratio(self) -> float:
        """The largest error/allowed over all tensors (<= 1 when the gate passes)."""
        return max((c.error / c.allowed if c.allowed > 0 else math.inf for c in self.checks), default=0.0)

    def raise_if_failed(self) -> None:
        if self.passed:
            return
        failed = [c.describe() for c in self.checks if not c.passed]
        raise CorrectnessError(
            f"{self.variant_id} computes a wrong answer compared with an fp64 eager reference "
            f"({len(failed)} of {len(self.checks)} tensors): " + "; ".join(failed)
        )


def relative_rms_error(result: torch.Tensor, reference: torch.Tensor) -> float:
    """RMSE(result, reference) / RMS(reference), in fp64 on the CPU; 0 when both are zero."""
    result64 = result.detach().to("cpu", torch.float64)
    reference64 = reference.detach().to("cpu", torch.float64)
    rmse = torch.sqrt(torch.mean((result64 - reference64) ** 2)).item()
    scale = torch.sqrt(torch.mean(reference64**2)).item()
    if scale == 0.0:
        return 0.0 if rmse == 0.0 else math.inf
    return rmse / scale


def eager_twin(variant: Variant) -> Variant:
    """Same device and precision, contiguous and eager: the variant's own baseline."""
    return Variant(device=variant.device, memory_format="contiguous", precision=variant.precision, compile="eager")


@dataclass(frozen=True)
class Outputs:
    """What a run of the model produced, keyed by tensor name."""

    tensors: dict[str, torch.Tensor]

    def __iter__(self) -> Iterator[str]:
        return iter(self.tensors)


def run_outputs(workload: Workload, training: bool) -> Outputs:
    """Logits (and loss and gradients when ``training``) of one call, from the initial weights.

    Leaves the workload with no gradients, as it found it.
    """
    with math_mode(workload.variant):
        if not training:
            logits = workload.forward_inference()
            return Outputs({"logits": logits.detach().float().clone()})
        workload.module.zero_grad(set_to_none=True)
        with workload.autocast():
            logits = workload.runnable(workload.images)
            loss = F.cross_entropy(logits, workload.labels)
        scale = 1.0
        if workload.scaler is not None:
            # The gate checks the scaled path the phases run, then unscales to compare.
            workload.scaler.scale(loss).backward()
            scale = float(workload.scaler.get_scale())
        else:
            loss.backward()
        tensors = {"logits": logits.detach().float().clone(), "loss": loss.detach().float().clone()}
        for name, param in workload.module.named_parameters():
            grad = param.grad
            tensors[f"{name}.grad"] = (
                (grad.detach().float() / scale) if grad is not None else torch.full_like(param, math.nan)
            )
        workload.module.zero_grad(set_to_none=True)
        workload.synchronize()
        return Outputs(tensors)


def _fp64_model_and_batch(workload: Workload) -> tuple[Net, torch.Tensor, torch.Tensor]:
    """The seeded Net from the workload's initial weights in fp64, and its batch, contiguous on the CPU."""
    model = Net().double()
    model.load_state_dict({k: v.double() for k, v in workload.initial_state.items()})
    images = workload.images.detach().to("cpu", torch.float64).contiguous()
    return model, images, workload.labels.detach().to("cpu")


def fp64_reference(workload: Workload, training: bool) -> Outputs:
    """The same computation in fp64, eager, contiguous, on the CPU, from the workload's initial weights."""
    model, images, labels = _fp64_model_and_batch(workload)
    if not training:
        with torch.no_grad():
            return Outputs({"logits": model(images)})
    logits = model(images)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    tensors = {"logits": logits.detach(), "loss": loss.detach()}
    for name, param in model.named_parameters():
        tensors[f"{name}.grad"] = param.grad.detach()  # type: ignore[union-attr]
    return Outputs(tensors)


def compare(variant: Variant, result: Outputs, reference: Outputs, twin: Outputs | None) -> CorrectnessReport:
    """Apply the rule in this module's docstring to every tensor of ``result``."""
    tolerance = TOLERANCE[variant.precision]
    multiplier = 2.0 if variant.precision == "fp32" else 3.0
    checks = []
    for name, tensor in result.tensors.items():
        expected = reference.tensors[name]
        allowed = tolerance
        if twin is not None:
            allowed = max(tolerance, multiplier * relative_rms_error(twin.tensors[name], expected))
        finite = bool(torch.isfinite(tensor).all().item())
        error = relative_rms_error(tensor, expected) if finite else math.inf
        checks.append(TensorCheck(name=name, error=error, allowed=allowed, finite=finite))
    return CorrectnessReport(variant_id=variant.id, checks=tuple(checks))


def check_workload(workload: Workload, training: bool) -> CorrectnessReport:
    """Gate ``workload``'s variant: its outputs against fp64 and against its eager twin.

    Runs the workload's own (possibly compiled) callable once, so for compiled
    variants this is also the first, compiling call.
    """
    reference = fp64_reference(workload, training)
    result = run_outputs(workload, training)
    twin = None
    twin_variant = eager_twin(workload.variant)
    if twin_variant != workload.variant:
        twin_workload = build_workload(twin_variant, workload.batch_size)
        twin_workload.module.load_state_dict(copy.deepcopy(workload.initial_state))
        twin_workload.images = workload.images.contiguous()
        twin_workload.labels = workload.labels
        twin = run_outputs(twin_workload, training)
    return compare(workload.variant, result, reference, twin)


def _one_step(workload: Workload, phase: Phase) -> torch.Tensor:
    """One training step as ``phase`` times it: the whole step, or eager forward and backward then the step."""
    if phase is Phase.OPTIMIZER_STEP:
        loss = workload.prepare_backward()
        loss.backward()
        workload.optimizer_step()
        return loss
    return workload.train_step()


def run_steps(workload: Workload, phase: Phase, steps: int = GATE_STEPS) -> Outputs:
    """Each step's loss and the parameters after ``steps`` steps of ``phase``, from the workload's current state."""
    losses = []
    with math_mode(workload.variant):
        for _ in range(steps):
            # clone: a captured step returns the same (replayed) loss tensor every time
            losses.append(_one_step(workload, phase).detach().float().reshape(()).clone())
        workload.synchronize()
        tensors = {"losses": torch.stack(losses)}
        for name, param in workload.module.named_parameters():
            tensors[f"{name} after {steps} steps"] = param.detach().float().clone()
    return Outputs(tensors)


def fp64_steps_reference(workload: Workload, optimizer: OptimizerSpec, steps: int = GATE_STEPS) -> Outputs:
    """``steps`` eager training steps in fp64 on the CPU with the same optimizer (a float LR, a for-loop)."""
    model, images, labels = _fp64_model_and_batch(workload)
    reference_optimizer = make_optimizer(OptimizerSpec(optimizer.name, "forloop"), list(model.parameters()))
    losses = []
    for _ in range(steps):
        reference_optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        reference_optimizer.step()
        losses.append(loss.detach())
    tensors = {"losses": torch.stack(losses)}
    for name, param in model.named_parameters():
        tensors[f"{name} after {steps} steps"] = param.detach()
    return Outputs(tensors)


def check_steps(
    workload: Workload, optimizer: OptimizerSpec, phase: Phase, steps: int = GATE_STEPS
) -> CorrectnessReport:
    """Gate a step-scope workload: ``steps`` compiled or captured steps against fp64 and the eager twin.

    Starts from the initial weights; for a compiled variant the first step is the compiling call.
    The caller resets the workload afterwards.
    """
    reference = fp64_steps_reference(workload, optimizer, steps)
    result = run_steps(workload, phase, steps)
    twin_workload = build_workload(eager_twin(workload.variant), workload.batch_size, optimizer)
    twin_workload.module.load_state_dict(copy.deepcopy(workload.initial_state))
    twin_workload.images = workload.images.contiguous()
    twin_workload.labels = workload.labels
    twin = run_steps(twin_workload, Phase.TRAIN_STEP, steps)
    return compare(workload.variant, result, reference, twin)
