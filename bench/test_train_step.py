"""The whole training step: zero_grad, forward, loss, backward, optimizer step."""

import pytest

from lenet.variants import Phase


@pytest.mark.lenet_phase(Phase.TRAIN_STEP.value)
def test_train_step(measure, variant, batch_size, optimizer):
    measure(Phase.TRAIN_STEP, variant, batch_size, optimizer)
