"""LeNet-5 reproduces the PyTorch "Neural Networks" tutorial's own checks."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lenet.model import Net
from lenet.workload import make_model

TUTORIAL_PRINT = """Net(
  (conv1): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
  (conv2): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))
  (fc1): Linear(in_features=400, out_features=120, bias=True)
  (fc2): Linear(in_features=120, out_features=84, bias=True)
  (fc3): Linear(in_features=84, out_features=10, bias=True)
)"""


def test_print_matches_the_tutorial():
    assert str(Net()) == TUTORIAL_PRINT


def test_parameters_match_the_tutorial():
    net = Net()
    params = list(net.parameters())
    assert len(params) == 10
    assert params[0].size() == torch.Size([6, 1, 5, 5])  # conv1's .weight
    assert sum(p.numel() for p in params) == 61_706
    assert [name for name, _ in net.named_parameters()] == [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "fc3.weight",
        "fc3.bias",
    ]


def test_random_input_gives_ten_outputs():
    out = Net()(torch.randn(1, 1, 32, 32))
    assert out.shape == (1, 10)


def test_zero_grad_then_backward_like_the_tutorial():
    net = make_model(seed=0)
    input = torch.randn(1, 1, 32, 32)
    output = net(input)
    target = torch.randn(10).view(1, -1)
    loss = nn.MSELoss()(output, target)
    assert loss.grad_fn.__class__.__name__ == "MseLossBackward0"

    net.zero_grad()
    before = net.conv1.bias.grad
    assert before is None or torch.count_nonzero(before) == 0  # "conv1.bias.grad before backward"
    loss.backward()
    after = net.conv1.bias.grad
    assert after is not None and after.shape == (6,)
    assert torch.count_nonzero(after) > 0  # "conv1.bias.grad after backward"

    net.zero_grad()
    assert net.conv1.bias.grad is None or torch.count_nonzero(net.conv1.bias.grad) == 0


def test_channels_last_input_gives_the_same_answer():
    net = make_model(seed=0)
    x = torch.randn(4, 1, 32, 32)
    expected = net(x)
    net_cl = make_model(seed=0).to(memory_format=torch.channels_last)
    got = net_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected)


def test_view_would_fail_on_a_channels_last_activation():
    """Why the model flattens with torch.flatten: the tutorial's old ``.view`` breaks here."""
    net = make_model(seed=0).to(memory_format=torch.channels_last)
    x = torch.randn(4, 1, 32, 32).contiguous(memory_format=torch.channels_last)
    s4 = F.max_pool2d(F.relu(net.conv2(F.max_pool2d(F.relu(net.conv1(x)), 2))), 2)
    assert s4.is_contiguous(memory_format=torch.channels_last) and not s4.is_contiguous()
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        s4.view(-1, 16 * 5 * 5)


def test_same_seed_same_weights():
    a, b = make_model(seed=3), make_model(seed=3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not torch.equal(make_model(seed=4).conv1.weight, a.conv1.weight)
