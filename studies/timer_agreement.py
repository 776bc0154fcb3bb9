"""Does the harness report the same time as torch.utils.benchmark? An interleaved study.

In one process, alternately (ABBA order): run the real suite through ``pytest.main``
for one case and read the median it reports, then time the same phase callable
of an identically built workload with ``Timer.blocked_autorange``. The ratio of
the two medians should be within 0.95-1.05.

    python studies/timer_agreement.py                       # eager CPU train step, batch 64
    python studies/timer_agreement.py --pairs 10 --output results/studies/timer_agreement.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from _study import write_study
from torch.utils.benchmark import Timer

from lenet import machine
from lenet.interleave import interleave
from lenet.source import REPO
from lenet.variants import Phase, parse_optimizer, parse_variant
from lenet.workload import build_workload, phase_callable


def harness_median(
    variant: str, batch_size: int, phase: str, optimizer: str, workdir: Path, index: int, options: Sequence[str] = ()
) -> float:
    """The median the suite reports for one case, run in this process; ``options`` are more ``pytest bench`` options."""
    report = workdir / f"harness-{index}.json"
    code = pytest.main(
        [
            str(REPO / "bench"),
            "-q",
            "-p",
            "no:cacheprovider",
            "--variants",
            variant,
            "--batch-sizes",
            str(batch_size),
            "--phases",
            phase,
            "--optimizers",
            optimizer,
            f"--benchmark-json={report}",
            *options,
        ]
    )
    if code != 0:
        raise SystemExit(f"the suite failed (exit {code}) for {variant} {phase} b{batch_size}")
    [bench] = json.loads(report.read_text())["benchmarks"]
    return float(bench["stats"]["median"])


def timer_median(variant: str, batch_size: int, phase: str, optimizer: str, min_run_time: float) -> float:
    """torch.utils.benchmark's median of the same phase callable (phases without per-round set-up)."""
    workload = build_workload(parse_variant(variant), batch_size, parse_optimizer(optimizer))
    step = phase_callable(workload, Phase(phase))
    timer = Timer(stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads())
    return float(timer.blocked_autorange(min_run_time=min_run_time).median)


def pair_rows(harness_medians: list[float], timer_medians: list[float]) -> list[dict]:
    """One row per interleaved pair: which ran first (ABBA), both medians and their ratio; printed as it goes."""
    rows = []
    for index, (by_harness, by_timer) in enumerate(zip(harness_medians, timer_medians, strict=True)):
        order = ("harness", "timer") if index % 2 == 0 else ("timer", "harness")
        rows.append(
            {
                "pair": index,
                "order": "-".join(order),
                "harness": by_harness,
                "timer": by_timer,
                "ratio": by_harness / by_timer,
            }
        )
        print(
            f"pair {index}: harness {by_harness * 1e3:.3f} ms, Timer {by_timer * 1e3:.3f} ms, "
            f"ratio {rows[-1]['ratio']:.3f}"
        )
    return rows


def agreement(rows: list[dict]) -> dict:
    """The pairs, the median of each side, the ratio of those medians and the median of the pairs' ratios."""
    harness = statistics.median(r["harness"] for r in rows)
    timer = statistics.median(r["timer"] for r in rows)
    return {
        "pairs": rows,
        "median_harness_s": harness,
        "median_timer_s": timer,
        "ratio_of_medians": harness / timer,
        "median_of_pair_ratios": statistics.median(r["ratio"] for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="cpu-contiguous-fp32-eager")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--phase", default="train_step", choices=["forward_inference", "forward_train", "train_step"])
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--pairs", type=int, default=8, help="harness/Timer pairs, alternated ABBA (default 8)")
    parser.add_argument("--min-run-time", type=float, default=1.0, help="Timer.blocked_autorange seconds (default 1)")
    parser.add_argument("--output", type=Path, default=None, help="write the study as JSON here")
    parser.add_argument(
        "--suite-options", default="", help="more `pytest bench` options for the harness side, e.g. '--no-metrics'"
    )
    args = parser.parse_args(argv)
    suite_options = args.suite_options.split()

    with tempfile.TemporaryDirectory() as tmp:
        runs = iter(range(args.pairs))

        def harness() -> float:
            return harness_median(
                args.variant, args.batch_size, args.phase, args.optimizer, Path(tmp), next(runs), suite_options
            )

        def timer() -> float:
            return timer_median(args.variant, args.batch_size, args.phase, args.optimizer, args.min_run_time)

        harness_medians, timer_medians = interleave(harness, timer, args.pairs)
    rows = pair_rows(harness_medians, timer_medians)
    summary = {
        "case": {
            "variant": args.variant,
            "batch_size": args.batch_size,
            "phase": args.phase,
            "optimizer": args.optimizer,
        },
        **agreement(rows),
        "machine": machine.collect(),
    }
    harness, timer = summary["median_harness_s"], summary["median_timer_s"]
    print(
        f"\nmedian over {len(rows)} pairs: harness {harness * 1e3:.3f} ms, Timer {timer * 1e3:.3f} ms, "
        f"ratio {summary['ratio_of_medians']:.3f} (median of pair ratios {summary['median_of_pair_ratios']:.3f})"
    )
    if args.output:
        write_study(args.output, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
