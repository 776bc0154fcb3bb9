"""Write a synthetic corpus of saved runs, to measure how the report scales.

    python studies/make_corpus.py OUT --runs 1000 --benchmarks 50 --rounds 50

Each run is a pytest-benchmark 5 file in lenet-bench's format (the same keys,
extra_info and machine_info a real run has), spread over two machines and a new
commit every 10 runs, with per-round data drawn from a log-normal around a
per-benchmark median. Seeded: the same arguments write the same files.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import _study  # noqa: F401  (first: it puts this checkout's lenet first on sys.path)
import numpy as np

from lenet.runs.record import Record
from lenet.variants import PHASES, Case, Phase, Variant, all_variants, parse_optimizer

MACHINES = [
    {"cpu_model": "Intel(R) Xeon(R) Processor", "cpu_count": 2, "torch_threads": 2, "fingerprint": "0c1a55e5f00d"},
    {"cpu_model": "AMD EPYC 7763 64-Core Processor", "cpu_count": 4, "torch_threads": 4, "fingerprint": "0c1a55e5f11e"},
]

# The suite's module of each phase's test function.
BENCH_FILES = {
    Phase.FORWARD_INFERENCE: "test_forward.py",
    Phase.FORWARD_TRAIN: "test_forward.py",
    Phase.BACKWARD: "test_backward.py",
    Phase.OPTIMIZER_STEP: "test_optimizer.py",
    Phase.TRAIN_STEP: "test_train_step.py",
}


def benchmark_specs(count: int) -> list[tuple[str, Variant, int]]:
    """``count`` (phase, variant, batch size) triples cycling through CPU variants and batch sizes."""
    cpu = [v for v in all_variants() if v.device == "cpu"]
    specs = []
    for batch in (16, 64, 256, 1):
        for variant in cpu:
            for phase in PHASES:
                specs.append((phase, variant, batch))
    return specs[:count]


def run_document(index: int, machine: dict, specs: list, rounds: int, rng: np.random.Generator) -> dict:
    when = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(hours=index)
    commit = f"{index // 10:040x}"
    benchmarks = []
    for number, (phase, variant, batch) in enumerate(specs):
        center = 1e-3 * (1 + number % 7) * (1 + batch / 64)
        data = center * rng.lognormal(0.0, 0.08, rounds)
        median = float(np.median(data))
        step = Phase(phase)
        case = Case(step, variant, batch, parse_optimizer("sgd") if step.uses_optimizer else None)
        # pytest's own name for the test: the function (one per phase) and the case's parameter id.
        name = f"test_{phase}[{case.id}]"
        record = Record.for_case(
            case, samples_per_s=batch / median, compile_seconds=0.0, torch_threads=machine["torch_threads"]
        )
        benchmarks.append(
            {
                "group": f"{phase} batch={batch}",
                "name": name,
                "fullname": f"bench/{BENCH_FILES[step]}::{name}",
                "params": {
                    "variant": variant.id,
                    "batch_size": batch,
                    **({"optimizer": case.optimizer.id} if case.optimizer else {}),
                },
                "param": case.id,
                "extra_info": record.to_extra_info(),
                "options": {"disable_gc": True, "timer": "perf_counter", "min_rounds": 5, "max_time": 1.0},
                "stats": round_stats(data),
            }
        )
    return {
        "machine_info": {
            "node": "ci",
            "machine": "x86_64",
            "system": "Linux",
            "python_version": "3.11.7",
            "torch_version": "2.13.0+cpu",
            **machine,
            "fingerprint_fields": {k: machine[k] for k in ("cpu_model", "cpu_count", "torch_threads")},
        },
        "commit_info": {"id": commit, "time": when.isoformat(), "dirty": False, "branch": "main", "project": "lenet"},
        "benchmarks": benchmarks,
        "datetime": when.isoformat(),
        "version": "5.2.3",
    }


def round_stats(data: np.ndarray) -> dict:
    """pytest-benchmark's stats of one benchmark's per-round times, the raw times included."""
    q1, median, q3 = np.percentile(data, [25, 50, 75])
    return {
        "min": float(data.min()),
        "max": float(data.max()),
        "mean": float(data.mean()),
        "stddev": float(data.std(ddof=1)),
        "rounds": len(data),
        "median": float(median),
        "iqr": float(q3 - q1),
        "q1": float(q1),
        "q3": float(q3),
        "iqr_outliers": 0,
        "stddev_outliers": 0,
        "outliers": "0;0",
        "ld15iqr": float(data.min()),
        "hd15iqr": float(data.max()),
        "ops": float(1 / data.mean()),
        "total": float(data.sum()),
        "data": data.tolist(),
        "iterations": 1,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="a folder to write the corpus into (created)")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--benchmarks", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=50, help="per-round samples saved per benchmark")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    specs = benchmark_specs(args.benchmarks)
    rng = np.random.default_rng(args.seed)
    for index in range(args.runs):
        machine = MACHINES[index % len(MACHINES)]
        folder = args.output / f"Linux-CPython-3.11-64bit-{machine['fingerprint']}"
        folder.mkdir(parents=True, exist_ok=True)
        document = run_document(index, machine, specs, args.rounds, rng)
        (folder / f"{index + 1:04d}_{document['commit_info']['id'][:8]}.json").write_text(json.dumps(document))
    print(f"wrote {args.runs} runs of {len(specs)} benchmarks into {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
