"""The correctness gate passes real variants and catches a planted bug."""

import math

import pytest
import torch
import torch.nn.functional as F

from lenet.correctness import (
    TOLERANCE,
    CorrectnessError,
    Outputs,
    check_workload,
    compare,
    eager_twin,
    relative_rms_error,
    run_outputs,
)
from lenet.model import Net
from lenet.variants import Variant, parse_variant
from lenet.workload import build_workload, make_model


class FlattenInWrongOrderNet(Net):
    """A realistic bug: flattening an NHWC activation in NHWC order feeds fc1 scrambled features."""

    def forward(self, input):
        s2 = F.max_pool2d(F.relu(self.conv1(input)), 2)
        s4 = F.max_pool2d(F.relu(self.conv2(s2)), 2)
        flat = s4.permute(0, 2, 3, 1).reshape(s4.shape[0], -1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(flat)))))


def test_relative_rms_error_on_literal_tensors():
    reference = torch.tensor([3.0, 4.0])  # RMS = sqrt(12.5)
    assert relative_rms_error(reference, reference) == 0.0
    assert relative_rms_error(torch.tensor([3.0, 5.0]), reference) == pytest.approx(math.sqrt(0.5) / math.sqrt(12.5))
    assert relative_rms_error(torch.zeros(2), torch.zeros(2)) == 0.0
    assert relative_rms_error(torch.ones(2), torch.zeros(2)) == math.inf


def test_compare_applies_tolerance_and_twin_rule():
    reference = Outputs({"t": torch.tensor([1.0, 1.0, 1.0, 1.0])})
    slightly_off = Outputs({"t": torch.tensor([1.0, 1.0, 1.0, 1.0 + 1e-5])})  # relative error 5e-6
    assert compare(Variant(), slightly_off, reference, twin=None).passed
    far_off = Outputs({"t": torch.tensor([1.0, 1.0, 1.0, 1.01])})  # 5e-3 > fp32's 1e-4
    report = compare(Variant(), far_off, reference, twin=None)
    assert not report.passed and report.worst_ratio == pytest.approx(5e-3 / TOLERANCE["fp32"])
    # an equally inaccurate eager twin raises the allowance to m * its error (m = 2 for fp32)
    assert compare(parse_variant("cpu-contiguous-fp32-compile"), far_off, reference, twin=far_off).passed


def test_nan_fails_the_gate():
    reference = Outputs({"t": torch.ones(3)})
    report = compare(Variant(), Outputs({"t": torch.tensor([1.0, math.nan, 1.0])}), reference, twin=None)
    with pytest.raises(CorrectnessError, match="t: contains NaN or infinity"):
        report.raise_if_failed()


def test_eager_twin_is_contiguous_and_eager():
    assert eager_twin(parse_variant("cpu-channels_last-amp_bf16-compile")).id == "cpu-contiguous-amp_bf16-eager"


def test_two_eager_fp32_runs_agree_exactly():
    first = run_outputs(build_workload(Variant(), 16), training=True)
    second = run_outputs(build_workload(Variant(), 16), training=True)
    for name in first:
        assert torch.equal(first.tensors[name], second.tensors[name]), name


@pytest.mark.parametrize(
    "variant_id",
    [
        "cpu-contiguous-fp32-eager",
        "cpu-channels_last-fp32-eager",
        "cpu-contiguous-amp_bf16-eager",
        "cpu-channels_last-amp_bf16-eager",
    ],
)
@pytest.mark.parametrize("training", [True, False])
def test_real_cpu_variants_pass(variant_id, training):
    report = check_workload(build_workload(parse_variant(variant_id), 32), training=training)
    report.raise_if_failed()
    expected = 2 + 10 if training else 1  # logits, loss, 10 gradients
    assert len(report.checks) == expected


def test_a_compiled_variant_passes():
    """The one in-process compile of the suite (tens of seconds): the gate passes a compiled training step,
    which no end-to-end run compiles (the trace test compiles inference only)."""
    report = check_workload(build_workload(parse_variant("cpu-contiguous-fp32-compile"), 8), training=True)
    report.raise_if_failed()


def test_gate_catches_a_planted_bug_and_says_what_went_wrong():
    def wrong_model():
        model = FlattenInWrongOrderNet()
        model.load_state_dict(make_model(seed=0).state_dict())
        return model

    workload = build_workload(Variant(), 32, model_factory=wrong_model)
    report = check_workload(workload, training=True)
    assert not report.passed
    with pytest.raises(CorrectnessError) as info:
        report.raise_if_failed()
    message = str(info.value)
    assert message.startswith("cpu-contiguous-fp32-eager computes a wrong answer")
    assert "logits: relative RMS error" in message and "fc1.weight.grad" in message
    assert report.worst_error > 0.1  # far beyond any precision's tolerance


def test_gate_leaves_the_workload_without_gradients():
    workload = build_workload(Variant(), 8)
    check_workload(workload, training=True)
    assert all(p.grad is None for p in workload.module.parameters())
