"""What a profiling pass costs, and what keeping the profiler out of the timed rounds saves.

For each variant, at one batch size, in one process:

1. **The pass**: ``lenet.profiling.profile_case`` for every phase, as ``pytest bench
   --profile`` runs it after the timed rounds (1 discarded + 3 recorded steps, shapes,
   memory, FLOPs), once writing ``.json.gz`` and once ``.json``: the pass's wall time
   (recording, operator table and export; the workload is built and warm) and the
   trace's size.
2. **The overhead avoided**: the train step timed call by call with ``perf_counter``
   with the profiler off and on (the pass's settings, every call recorded), in blocks of
   ``--steps`` calls, ``--pairs`` off/on pairs in ABBA order; the medians of all calls,
   and the median over pairs of the ratio of the block medians.
3. **Inductor kernel profiling**, for compiled variants: the train step compiled with
   and without ``cpp.enable_kernel_profile`` (as ``torch.compile(options=...)``, separate
   graphs in one process), profiler inactive, timed the same way, with an off-vs-off
   control. ``pytest bench --profile`` compiles with it on, so this is what a profiled
   run changes in compiled timings.

    python studies/profile_cost.py --threads 1 --output results/studies/profile_cost.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from _study import write_study
from torch.profiler import ProfilerActivity, profile

from lenet import machine
from lenet.harness import prepared
from lenet.interleave import interleave
from lenet.options import TraceSettings
from lenet.profiling import TraceRun, enable_kernel_profile, profile_case
from lenet.variants import Case, Phase, SelectionError, parse_phase, parse_variant
from lenet.workload import Workload, build_workload

QUICK_CPU = (
    "cpu-contiguous-fp32-eager",
    "cpu-channels_last-fp32-eager",
    "cpu-contiguous-amp_bf16-eager",
    "cpu-contiguous-fp32-compile",
)


def case_for(variant: str, phase: Phase, batch_size: int) -> Case:
    optimizer = "sgd" if phase.uses_optimizer else None
    return Case.from_spec({"phase": phase.value, "variant": variant, "batch_size": batch_size, "optimizer": optimizer})


def pass_costs(
    variant: str, batch_size: int, workdir: Path, phases: Sequence[Phase] = tuple(Phase)
) -> list[dict[str, Any]]:
    """Profile each phase twice (gzip, plain): the pass's wall time and the trace's size."""
    rows = []
    runs = {fmt: TraceRun(workdir / fmt, TraceSettings(use_gzip=fmt == "json.gz")) for fmt in ("json.gz", "json")}
    for phase in phases:
        row: dict[str, Any] = {"variant": variant, "phase": phase.value}
        for fmt, run in runs.items():
            result = profile_case(case_for(variant, phase, batch_size), run)
            if not result.ok:
                raise SystemExit(f"{variant} {phase.value}: {result.errors}")
            row[f"pass_s_{fmt}"] = result.seconds
            row[f"export_s_{fmt}"] = result.export_seconds
            row[f"bytes_{fmt}"] = result.trace_bytes
        rows.append(row)
        print(
            f"{variant} {phase.value}: pass {row['pass_s_json.gz']:.2f} s (json.gz) / {row['pass_s_json']:.2f} s "
            f"(json); trace {row['bytes_json'] / 1024:.0f} KiB json, {row['bytes_json.gz'] / 1024:.0f} KiB gz",
            flush=True,
        )
    return rows


def timed_calls(step: Callable[[], object], calls: int, clock: Callable[[], float] = time.perf_counter) -> list[float]:
    times = []
    for _ in range(calls):
        start = clock()
        step()
        times.append(clock() - start)
    return times


def compare(name_a: str, blocks_a: list[list[float]], name_b: str, blocks_b: list[list[float]]) -> dict[str, Any]:
    """Medians of all calls, and the median over pairs of the ratio of block medians (B / A)."""
    median_a = statistics.median(t for block in blocks_a for t in block)
    median_b = statistics.median(t for block in blocks_b for t in block)
    ratios = [statistics.median(b) / statistics.median(a) for a, b in zip(blocks_a, blocks_b, strict=True)]
    return {
        f"median_{name_a}_s": median_a,
        f"median_{name_b}_s": median_b,
        f"ratio_{name_b}_{name_a}": median_b / median_a,
        "median_of_pair_ratios": statistics.median(ratios),
        "pair_ratios": ratios,
        "pairs": len(ratios),
        "calls_per_block": len(blocks_a[0]),
    }


def profiler_overhead(variant: str, batch_size: int, pairs: int, steps: int) -> dict[str, Any]:
    """Train-step call times with the profiler off and on (the pass's settings, every call recorded)."""
    settings = TraceSettings()
    with prepared(case_for(variant, Phase.TRAIN_STEP, batch_size), gate=False) as ready:

        def off() -> list[float]:
            return timed_calls(ready.call.once, steps)

        def on() -> list[float]:
            with profile(
                activities=[ProfilerActivity.CPU],
                record_shapes=settings.record_shapes,
                profile_memory=settings.profile_memory,
                with_flops=settings.with_flops,
            ):
                return timed_calls(ready.call.once, steps)

        blocks_off, blocks_on = interleave(off, on, pairs)
    return {"variant": variant, **compare("off", blocks_off, "on", blocks_on)}


def kernel_profile_effect(variant: str, batch_size: int, pairs: int, steps: int) -> dict[str, Any]:
    """The compiled train step with and without Inductor's kernel profiling, in one process.

    Three workloads compiled with ``options={"cpp.enable_kernel_profile": ...}`` off, on and
    off again (torch.compile keeps a graph per option set), timed in interleaved blocks with
    the profiler inactive: on vs off, and the control off vs off, which shows how far two
    identical compiled copies differ in one process (data placement, order).
    """
    steps_of = []
    case = case_for(variant, Phase.TRAIN_STEP, batch_size)
    for enabled in (False, True, False):

        def compiled_with_flag(case: Case, enabled: bool = enabled) -> Workload:
            workload = build_workload(case.variant, case.batch_size, case.optimizer)
            options = {"cpp.enable_kernel_profile": enabled}
            workload.runnable = torch.compile(workload.module, dynamic=False, options=options)
            return workload

        with prepared(case, gate=False, workload_factory=compiled_with_flag) as ready:
            steps_of.append(ready.call.once)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps_of[1]()
    kernels = sorted({e.key for e in prof.key_averages() if "cpp_fused" in e.key})
    if not kernels:
        raise SystemExit("the kernel-profiled compile shows no Inductor kernels in a trace")

    def block(index: int) -> Callable[[], list[float]]:
        return lambda: timed_calls(steps_of[index], steps)

    off, on = interleave(block(0), block(1), pairs)
    first, second = interleave(block(0), block(2), pairs)
    return {
        "variant": variant,
        "kernels_named": len(kernels),
        **compare("off", off, "on", on),
        "control_off_vs_off": compare("first", first, "second", second),
    }


def phase_list(text: str) -> list[Phase]:
    """``--phases``: phase names separated by commas."""
    try:
        return [parse_phase(name) for name in text.split(",") if name.strip()]
    except SelectionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(QUICK_CPU), help="comma-separated variant ids")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--pairs", type=int, default=12, help="off/on block pairs (default 12)")
    parser.add_argument("--steps", type=int, default=10, help="train steps per block (default 10)")
    parser.add_argument("--output", type=Path, default=None, help="write the study as JSON here")
    parser.add_argument(
        "--phases", type=phase_list, default=list(Phase), help="comma-separated phases to profile (default all)"
    )
    args = parser.parse_args(argv)
    phases = args.phases
    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    started = time.perf_counter()
    # Before the global switch below: each of its two compiles sets the flag for itself.
    kernel_rows = [
        kernel_profile_effect(v, args.batch_size, args.pairs, args.steps)
        for v in variants
        if parse_variant(v).is_compiled
    ]
    for row in kernel_rows:
        print(
            f"{row['variant']} train_step b{args.batch_size}, Inductor kernel profiling off/on: "
            f"{row['median_off_s'] * 1e3:.2f} / {row['median_on_s'] * 1e3:.2f} ms "
            f"(pair ratios: median {row['median_of_pair_ratios']:.3f}; off/off control: "
            f"{row['control_off_vs_off']['median_of_pair_ratios']:.3f})",
            flush=True,
        )
    enable_kernel_profile()  # as `pytest bench --profile` does, before anything else compiles here
    passes, overheads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for variant in variants:
            overheads.append(profiler_overhead(variant, args.batch_size, args.pairs, args.steps))
            row = overheads[-1]
            print(
                f"{variant} train_step b{args.batch_size}, profiler off/on: {row['median_off_s'] * 1e3:.2f} / "
                f"{row['median_on_s'] * 1e3:.2f} ms (pair ratios: median {row['median_of_pair_ratios']:.3f})",
                flush=True,
            )
            passes += pass_costs(variant, args.batch_size, Path(tmp) / variant, phases)
    study = {
        "command": "python studies/profile_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "trace_settings": TraceSettings().__dict__,
        "passes": passes,
        "profiler_overhead": overheads,
        "inductor_kernel_profile": kernel_rows,
        "seconds": time.perf_counter() - started,
        "machine": machine.collect(),
    }
    if args.output:
        write_study(args.output, study)
    return 0


if __name__ == "__main__":
    sys.exit(main())
