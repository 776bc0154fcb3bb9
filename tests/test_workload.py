"""Each phase's callable does its phase's work, and only that."""

import pytest
import torch

from lenet.variants import OptimizerSpec, Phase, Variant, parse_variant
from lenet.workload import build_workload, make_batch, phase_callable


def test_batch_is_seeded_and_shaped():
    images, labels = make_batch(8, seed=1)
    again, _ = make_batch(8, seed=1)
    assert images.shape == (8, 1, 32, 32) and labels.shape == (8,)
    assert torch.equal(images, again)
    assert int(labels.min()) >= 0 and int(labels.max()) < 10


def test_channels_last_workload_keeps_its_memory_format():
    workload = build_workload(parse_variant("cpu-channels_last-fp32-eager"), 4)
    assert workload.images.is_contiguous(memory_format=torch.channels_last)
    assert workload.module.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_inference_records_no_graph_and_training_forward_does():
    workload = build_workload(Variant(), 4)
    assert not workload.forward_inference().requires_grad
    loss = workload.forward_train()
    assert loss.requires_grad and loss.ndim == 0


def test_backward_fills_gradients_from_an_untimed_graph():
    workload = build_workload(Variant(), 4)
    loss = workload.prepare_backward()
    assert all(p.grad is None for p in workload.module.parameters())
    phase_callable(workload, Phase.BACKWARD)(loss)
    assert all(p.grad is not None for p in workload.module.parameters())


def test_optimizer_step_sees_the_same_gradients_every_round():
    workload = build_workload(Variant(), 4, OptimizerSpec("sgd", "forloop"))
    updates = []
    for _ in range(3):
        workload.prepare_optimizer_step()
        grads = [p.grad.clone() for p in workload.module.parameters()]
        before = workload.module.fc3.bias.detach().clone()
        workload.optimizer_step()
        updates.append(workload.module.fc3.bias.detach() - before)
        assert all(torch.equal(g, p.grad) for g, p in zip(grads, workload.module.parameters(), strict=True))
    assert not torch.equal(updates[0], torch.zeros_like(updates[0]))


@pytest.mark.parametrize("optimizer", ["sgd", "sgd_foreach", "sgd_fused", "adam", "adam_forloop", "adam_fused"])
def test_training_steps_learn_the_fixed_batch(optimizer):
    from lenet.variants import parse_optimizer

    workload = build_workload(Variant(), 8, parse_optimizer(optimizer))  # seeded: the same losses every run
    first = float(workload.train_step())
    for _ in range(5):  # enough to see the loss fall (2.37 -> 2.28 with SGD, -> 1.44 with Adam)
        last = float(workload.train_step())
    assert last < first


def test_reset_restores_the_initial_weights():
    workload = build_workload(Variant(), 4, OptimizerSpec("adam"))
    initial = workload.module.fc1.weight.detach().clone()
    workload.train_step()
    assert not torch.equal(workload.module.fc1.weight, initial)
    workload.reset()
    assert torch.equal(workload.module.fc1.weight, initial)
    assert all(p.grad is None for p in workload.module.parameters())
    assert not workload.optimizer.state


def test_a_phase_that_steps_needs_an_optimizer():
    with pytest.raises(ValueError, match="built without an optimizer"):
        build_workload(Variant(), 4).train_step()


def test_amp_bf16_runs_convolutions_in_bf16():
    workload = build_workload(parse_variant("cpu-contiguous-amp_bf16-eager"), 4)
    with workload.autocast():
        assert workload.module.conv1(workload.images).dtype == torch.bfloat16
