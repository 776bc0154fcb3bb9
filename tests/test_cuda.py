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


def test_cuda_metrics_pass_gives_allocator_peaks_and_flops():
    from lenet.harness import prepared
    from lenet.metrics.flops import lenet_flops
    from lenet.metrics.measure import metrics_pass
    from lenet.metrics.memory import CUDA_METHOD
    from lenet.variants import Case, Phase

    case = Case(Phase.TRAIN_STEP, parse_variant("cuda-contiguous-fp32-eager"), 64, parse_optimizer("sgd"))
    with prepared(case) as ready:
        info = metrics_pass(ready).info(0.001)
    assert info.memory_method == CUDA_METHOD and info.memory_peak_bytes > 0
    assert info.memory_max_allocated_bytes >= info.memory_peak_bytes and info.memory_max_reserved_bytes > 0
    assert info.flops == lenet_flops(Phase.TRAIN_STEP, 64)


def test_cuda_peaks_measure_every_precision_and_bandwidth():
    from lenet.metrics.peaks import measure_peaks

    peaks = measure_peaks({"device": "cuda", "fingerprint": "x", "threads": 1}, sizes=(256, 512), array_bytes=1 << 24)
    assert set(peaks.matmul_gflops) == {"fp32", "tf32", "fp16", "bf16"}
    assert all(value > 0 for value in [*peaks.matmul_gflops.values(), *peaks.bandwidth_gbs.values()])
    assert not torch.backends.cuda.matmul.allow_tf32  # restored after the TF32 sweep
