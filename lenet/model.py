"""LeNet-5 exactly as the PyTorch "Neural Networks" tutorial defines it.

https://pytorch.org/tutorials/beginner/blitz/neural_networks_tutorial.html

The only departure from the tutorial's text is none at all: it already flattens
with ``torch.flatten``, which (unlike ``.view``) also accepts the non-contiguous
activations that a channels_last input produces.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

INPUT_SHAPE = (1, 32, 32)  # channels, height, width of one sample
NUM_CLASSES = 10


class Net(nn.Module):
    """conv 1->6 5x5, max-pool 2x2, conv 6->16 5x5, max-pool 2x2, fc 400->120->84->10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, NUM_CLASSES)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # (N, 1, 32, 32)
        c1 = F.relu(self.conv1(input))  # (N, 6, 28, 28)
        s2 = F.max_pool2d(c1, (2, 2))  # (N, 6, 14, 14)
        c3 = F.relu(self.conv2(s2))  # (N, 16, 10, 10)
        s4 = F.max_pool2d(c3, 2)  # (N, 16, 5, 5)
        s4 = torch.flatten(s4, 1)  # (N, 400); a copy when s4 is channels_last
        f5 = F.relu(self.fc1(s4))  # (N, 120)
        f6 = F.relu(self.fc2(f5))  # (N, 84)
        output = self.fc3(f6)  # (N, 10)
        return output
