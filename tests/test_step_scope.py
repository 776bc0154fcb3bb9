"""The step scope: the whole training step compiled (CPU here) or captured (CUDA), gated, counted, never recompiled.

One step-scope case is compiled once for the whole session (``compiled_step``, tens of seconds on a
2-core machine; docs/development.md); the tests below share it. The planted fault compiles with
dynamo's ``eager`` backend, which traces the step as torch.compile does but skips Inductor.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from lenet.correctness import GATE_STEPS, CorrectnessError, check_steps
from lenet.harness import Prepared, prepared
from lenet.metrics.dispatch import busy_share, count_dispatch
from lenet.step_scope import (
    MODULE_SCOPE_NO_RECOMPILE,
    CapturedStep,
    CompiledStep,
    lr_schedule_recompiles,
    step_plan,
)
from lenet.variants import Case, OptimizerSpec, Phase, cuda_unavailable_reason, parse_optimizer, parse_variant
from lenet.workload import LEARNING_RATE, build_workload, make_model, make_optimizer, timed_call

# Not 16: torch 2.13's Inductor miscompiles LeNet's backward at batch 16 on the CPU (docs/findings.md).
BATCH = 8
STEP_CASE = Case(Phase.TRAIN_STEP, parse_variant("cpu-contiguous-fp32-compile-step"), BATCH, parse_optimizer("sgd"))


@pytest.fixture(scope="session")
def compiled_step() -> Iterator[Prepared]:
    """The step-scope SGD train step, built, gated over whole steps and warmed up once per session."""
    with prepared(STEP_CASE) as ready:
        yield ready


def test_the_step_scope_passes_the_whole_step_gate(compiled_step):
    report = compiled_step.gate.value
    assert report.passed
    names = {check.name for check in report.checks}
    assert "losses" in names and f"conv1.weight after {GATE_STEPS} steps" in names
    assert isinstance(compiled_step.workload.step, CompiledStep)


def test_graph_breaks_and_recompiles_are_recorded_with_their_reasons(compiled_step):
    record = compiled_step.record(0.01, "perf_counter", torch.get_num_threads())
    info = record.to_extra_info()
    assert info["scope"] == "step" and info["variant"] == "cpu-contiguous-fp32-compile-step"
    # torch 2.13: the backward is a graph break (compiled autograd compiles it on its own), and
    # Optimizer.step breaks twice on purpose (pytorch/pytorch#104053); every break has its reason.
    assert record.graph_breaks is not None and record.graph_breaks >= 1
    assert len(record.graph_break_reasons or ()) >= 1
    assert any("backward" in reason for reason in record.graph_break_reasons or ())
    # The only recompiles are the optimizer state's first steps, each named with the guard that failed.
    assert all("state" in reason for reason in record.recompile_reasons or ())


def test_a_cosine_lr_schedule_over_100_steps_recompiles_nothing_at_the_step_scope(compiled_step):
    workload = compiled_step.workload
    assert isinstance(workload.optimizer.param_groups[0]["lr"], torch.Tensor)  # type: ignore[union-attr]
    tally = lr_schedule_recompiles(workload.train_step, workload.optimizer, steps=100)  # type: ignore[arg-type]
    assert tally.recompiles == 0, f"recompiled under the LR schedule: {tally.recompile_reasons}"
    lr = workload.optimizer.param_groups[0]["lr"]  # type: ignore[union-attr]
    assert lr.item() < LEARNING_RATE  # the schedule moved it
    lr.fill_(LEARNING_RATE)  # as the other tests expect it
    workload.reset()


def test_a_float_lr_in_a_compiled_optimizer_step_recompiles_on_the_lr_guard():
    """Why the step scope's LR is a tensor: a compiled step reading a float LR guards on its value."""
    model = make_model()
    optimizer = make_optimizer(OptimizerSpec("sgd"), list(model.parameters()))  # a float LR
    for param in model.parameters():
        param.grad = torch.ones_like(param)
    step = torch.compile(optimizer.step, backend="eager", dynamic=False)
    tally = lr_schedule_recompiles(step, optimizer, steps=4, warmup_steps=2)
    assert tally.recompiles >= 1
    assert any("lr" in reason for reason in tally.recompile_reasons)
    assert "optimizer runs eager" in MODULE_SCOPE_NO_RECOMPILE


def test_the_gate_catches_a_compiled_step_that_drops_the_optimizer_step():
    workload = build_workload(STEP_CASE.variant, BATCH, STEP_CASE.optimizer)
    plan = step_plan(STEP_CASE.variant, STEP_CASE.optimizer)
    # Forward, loss, backward and zero_grad compiled, the update left out: parameters never move.
    workload.step = CompiledStep(workload.module, workload.optimizer, workload.autocast, plan, lambda: None, "eager")
    report = check_steps(workload, STEP_CASE.optimizer, Phase.TRAIN_STEP)  # type: ignore[arg-type]
    failed = {check.name for check in report.checks if not check.passed}
    assert "losses" in failed and f"fc3.bias after {GATE_STEPS} steps" in failed
    with pytest.raises(CorrectnessError, match="compile-step computes a wrong answer"):
        report.raise_if_failed()


def test_the_step_scope_dispatches_fewer_operators_than_eager(compiled_step):
    eager = build_workload(parse_variant("cpu-contiguous-fp32-eager"), BATCH, parse_optimizer("sgd"))
    eager_ops = count_dispatch("cpu", timed_call(eager, Phase.TRAIN_STEP).target).ops_per_step
    compiled_step.call.once()  # warm: a first call after a reset could still compile
    compiled = count_dispatch("cpu", compiled_step.call.target).ops_per_step
    assert 0 < compiled < eager_ops
    compiled_step.workload.reset()


def test_busy_share_is_the_union_of_intervals_over_the_span():
    assert busy_share([(0, 2), (1, 3), (5, 6)], 0, 10) == pytest.approx(0.4)
    assert busy_share([(-5, 1)], 0, 4) == pytest.approx(0.25)
    assert busy_share([], 0, 4) == 0.0 and busy_share([(0, 1)], 3, 3) == 0.0


# --- CUDA: constructed and planned everywhere, run only with a GPU --------------------------------------


@pytest.mark.parametrize(
    ("variant_id", "captured", "mode"),
    [
        ("cuda-contiguous-fp32-compile-step", False, "default"),
        ("cuda-contiguous-fp32-compile_reduce_overhead-step", False, "reduce-overhead"),
        ("cuda-contiguous-fp32-cuda_graph-step", True, None),
    ],
)
def test_cuda_step_variants_are_planned_without_a_gpu(variant_id, captured, mode):
    variant = parse_variant(variant_id)
    adam = step_plan(variant, parse_optimizer("adam_fused"))
    assert adam.step_scope and adam.captured is captured and adam.compile_mode == mode
    assert adam.capturable  # Adam keeps its step count on the GPU: capturable, whatever the step does
    assert adam.tensor_lr is not captured  # a graph bakes a float LR in; a compiled step reads a tensor
    assert not step_plan(variant, parse_optimizer("sgd")).capturable  # SGD has no such option
    module = step_plan(parse_variant("cuda-contiguous-fp32-compile"), parse_optimizer("adam"))
    assert not module.step_scope and not module.tensor_lr and not module.capturable


def test_a_captured_step_is_constructed_without_touching_the_gpu():
    model = make_model()
    optimizer = make_optimizer(OptimizerSpec("adam"), list(model.parameters()), capturable=True)
    images, labels = torch.zeros(2, 1, 32, 32), torch.zeros(2, dtype=torch.long)
    step = CapturedStep(model, optimizer, images, labels, lambda: torch.autocast("cpu", enabled=False))
    assert optimizer.defaults["capturable"] is True
    assert not step.captured  # nothing is captured (nor any GPU touched) before its first call


@pytest.mark.cuda
@pytest.mark.skipif(cuda_unavailable_reason() is not None, reason=str(cuda_unavailable_reason()))
@pytest.mark.parametrize(
    ("variant_id", "phase"),
    [
        ("cuda-contiguous-fp32-compile-step", Phase.TRAIN_STEP),
        ("cuda-contiguous-fp32-compile_reduce_overhead-step", Phase.OPTIMIZER_STEP),
        ("cuda-contiguous-fp32-cuda_graph-step", Phase.TRAIN_STEP),
        ("cuda-contiguous-fp32-cuda_graph-step", Phase.OPTIMIZER_STEP),
    ],
)
def test_cuda_step_variants_pass_the_whole_step_gate_and_replay(variant_id, phase):
    case = Case(phase, parse_variant(variant_id), 64, parse_optimizer("adam_fused"))
    with prepared(case) as ready:
        assert ready.gate is not None and ready.gate.value.passed
        ready.call.once()
        dispatch = count_dispatch("cuda", ready.call.target, ready.call.setup)
        assert dispatch.kernels_per_step and dispatch.gpu_busy_percent is not None
