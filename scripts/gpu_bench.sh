#!/usr/bin/env bash
# The CUDA checks and benchmarks, in one go, on a machine with a GPU (how long: results/studies/run_costs.md).
#
#   bash scripts/gpu_bench.sh [OUTPUT_DIR]
#
# 1. prints the GPU, torch and the correctness gate's error for each eager CUDA variant;
# 2. runs the CUDA unit tests (pytest -m cuda);
# 3. runs the `cuda` preset in separate pytest processes (eager first, then the whole step
#    compiled or captured at batch 64 against eager and module reduce-overhead, then each compiled
#    variant) so that what finished is saved even if a later group runs out of time; the metrics
#    pass records kernels per step and the GPU-busy share of each case;
# 4. records profiler traces of two CUDA cases (pytest bench --profile) into traces.tar.gz.
# Each group's run is written as pytest-benchmark JSON into OUTPUT_DIR (default
# results/reference/<gpu>/), ready to commit. Set LENET_GPU_DEADLINE (seconds, default 450)
# to bound the whole script: groups that would start after it are skipped and listed.
# LENET_GPU_STEPS picks steps (default: gate,tests,eager,step,compile,traces).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
deadline=$(( $(date +%s) + ${LENET_GPU_DEADLINE:-450} ))
steps=",${LENET_GPU_STEPS:-gate,tests,eager,step,compile,traces},"
want() { [[ $steps == *",$1,"* ]]; }

slug=$($PY -c 'import re, torch; print(re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name().lower()).strip("-"))') || {
    echo "no CUDA device visible to torch: nothing to do" >&2; exit 2; }
out=${1:-results/reference/$slug}
mkdir -p "$out"
echo "== GPU $slug; output in $out"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
want gate && $PY - <<'PY'
import torch
from lenet.correctness import check_workload
from lenet.variants import parse_variant
from lenet.workload import build_workload, math_mode
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
for vid in ["cuda-contiguous-fp32-eager", "cuda-channels_last-fp32-eager", "cuda-contiguous-tf32-eager",
            "cuda-contiguous-amp_fp16-eager", "cuda-contiguous-amp_bf16-eager", "cuda-channels_last-amp_fp16-eager"]:
    v = parse_variant(vid)
    for batch in (64, 1024):
        w = build_workload(v, batch)
        with math_mode(v):
            r = check_workload(w, training=True)
        worst = max(r.checks, key=lambda c: c.error)
        print(f"gate {vid:40s} b{batch:<5d} {'pass' if r.passed else 'FAIL'} worst {worst.name} "
              f"error {worst.error:.3g} allowed {worst.allowed:.3g}")
PY
want step && $PY - <<'PY'
# The whole-step gate of the captured step (no compiler: seconds); the compiled ones are gated in their group.
from lenet.correctness import check_steps
from lenet.variants import Phase, parse_optimizer, parse_variant
from lenet.workload import build_workload, math_mode
v = parse_variant("cuda-contiguous-fp32-cuda_graph-step")
for name in ("sgd", "adam_fused"):
    for phase in (Phase.TRAIN_STEP, Phase.OPTIMIZER_STEP):
        w = build_workload(v, 64, parse_optimizer(name))
        with math_mode(v):
            r = check_steps(w, parse_optimizer(name), phase)
        worst = max(r.checks, key=lambda c: c.error)
        print(f"gate {v.id} {name} {phase.value} b64 {'pass' if r.passed else 'FAIL'} worst {worst.name} "
              f"error {worst.error:.3g} allowed {worst.allowed:.3g}")
PY
if want tests; then
    echo "== CUDA unit tests"
    $PY -m pytest tests -m cuda -q -p no:cacheprovider 2>&1 | tail -n 15
fi

run_group() {  # name, then pytest selection options
    local name=$1; shift
    if (( $(date +%s) > deadline )); then echo "== SKIPPED group $name: past the deadline"; return; fi
    echo "== group $name"
    $PY -m pytest bench -p no:cacheprovider -q --preset cuda --benchmark-max-time=0.3 \
        --benchmark-columns=median,iqr,rounds --benchmark-sort=name \
        --benchmark-json="$out/$name.json" "$@" 2>&1 | grep -vE '^-+$|^$'
}
want eager && run_group eager --variants cuda-contiguous-fp32-eager,cuda-channels_last-fp32-eager,cuda-contiguous-tf32-eager,\
cuda-contiguous-amp_fp16-eager,cuda-contiguous-amp_bf16-eager,cuda-channels_last-amp_fp16-eager
want step && run_group step --variants cuda-contiguous-fp32-eager,cuda-contiguous-fp32-cuda_graph-step,\
cuda-contiguous-fp32-compile_reduce_overhead,cuda-contiguous-fp32-compile_reduce_overhead-step,\
cuda-contiguous-fp32-compile-step --batch-sizes 64 --phases train_step
if want compile; then
    run_group compile --variants cuda-contiguous-fp32-compile
    run_group compile_reduce_overhead_fp32 --variants cuda-contiguous-fp32-compile_reduce_overhead
    run_group compile_reduce_overhead_amp_fp16 --variants cuda-contiguous-amp_fp16-compile_reduce_overhead
fi
if want traces; then
    traces=$(mktemp -d)
    run_group traces --variants cuda-contiguous-fp32-eager,cuda-contiguous-fp32-compile --batch-sizes 64 \
        --phases forward_train,train_step --optimizers sgd --profile --trace-dir "$traces"
    tar -czf "$out/traces.tar.gz" -C "$traces" . && echo "traces: $out/traces.tar.gz"
fi
ls -l "$out"
