"""Forward passes: inference (no autograd) and training (builds the autograd graph, with the loss)."""

import pytest

from lenet.variants import Phase


@pytest.mark.lenet_phase(Phase.FORWARD_INFERENCE.value)
def test_forward_inference(measure, variant, batch_size):
    measure(Phase.FORWARD_INFERENCE, variant, batch_size)


@pytest.mark.lenet_phase(Phase.FORWARD_TRAIN.value)
def test_forward_train(measure, variant, batch_size):
    measure(Phase.FORWARD_TRAIN, variant, batch_size)
