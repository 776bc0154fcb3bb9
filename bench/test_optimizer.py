"""Optimizer step alone, on the same gradients every round (restored in an untimed set-up)."""

import pytest

from lenet.variants import Phase


@pytest.mark.lenet_phase(Phase.OPTIMIZER_STEP.value)
def test_optimizer_step(measure, variant, batch_size, optimizer):
    measure(Phase.OPTIMIZER_STEP, variant, batch_size, optimizer)
