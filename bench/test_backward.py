"""Backward alone: each round's autograd graph is rebuilt in an untimed set-up."""

import pytest

from lenet.variants import Phase


@pytest.mark.lenet_phase(Phase.BACKWARD.value)
def test_backward(measure, variant, batch_size):
    measure(Phase.BACKWARD, variant, batch_size)
