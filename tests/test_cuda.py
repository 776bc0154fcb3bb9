"""CUDA checks: run on a GPU machine (scripts/gpu_bench.sh), skipped with a reason elsewhere."""

import pytest
import torch

from lenet.correctness import check_workload
from lenet.variants import parse_optimizer, parse_variant
from lenet.workload import build_workload, math_mode

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available: these checks need a GPU"),
]

EAGER_CUDA = [
    "cuda-contiguous-fp32-eager",
    "cuda-channels_last-fp32-eager",
    "cuda-contiguous-tf32-eager",
    "cuda-contiguous-amp_fp16-eager",
    "cuda-contiguous-amp_bf16-eager",
    "cuda-channels_last-amp_fp16-eager",
]


@pytest.mark.parametrize("variant_id", EAGER_CUDA)
def test_cuda_variants_pass_the_gate(variant_id):
    variant = parse_variant(variant_id)
    workload = build_workload(variant, 64)
    with math_mode(variant):
        check_workload(workload, training=True).raise_if_failed()


def test_fp32_on_cuda_really_is_fp32():
    variant = parse_variant("cuda-contiguous-fp32-eager")
    with math_mode(variant):
        assert not torch.backends.cuda.matmul.allow_tf32
        assert not torch.backends.cudnn.allow_tf32
    with math_mode(parse_variant("cuda-contiguous-tf32-eager")):
        assert torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32


def test_amp_fp16_trains_with_grad_scaler():
    workload = build_workload(parse_variant("cuda-contiguous-amp_fp16-eager"), 64, parse_optimizer("adam_fused"))
    assert workload.scaler is not None
    first = float(workload.train_step())
    for _ in range(30):
        last = float(workload.train_step())
    assert last < first
