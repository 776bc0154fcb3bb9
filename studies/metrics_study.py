"""What the metrics say on this machine, whether they are right, and what they cost.

1. **FLOPs**: FlopCounterMode against the hand count of LeNet-5 (``lenet.metrics.flops.lenet_flops``),
   every phase, eager fp32.
2. **Peak memory on the CPU** at batch 16 and 256, every phase, for the eager fp32 variants
   (contiguous and channels_last): bytes per sample of growth against LeNet's activation
   estimate (``lenet.metrics.memory.activation_bytes_per_sample``).
3. **The machine's peaks**, measured afresh three times (matmul sweep per precision, copy and
   triad): the figures and how far apart the three measurements are (the cache keeps one).
4. **The quick preset** in new processes: the default (metrics pass on) and ``--no-metrics``
   twice each, alternating, then ``--compile-cost``; the wall time of each, the metrics pass's own
   time summed over the benchmarks, the time the compiling processes took, and the table of the
   last run: median, GFLOP/s, % of peak, peak memory, compile cold/warm and break-even. The
   peaks are cached before these runs (step 3), as they are on a machine that ran before.

    python studies/metrics_study.py                 # writes results/studies/metrics.json and .md
    python studies/metrics_study.py --skip-runs     # 1-3 only (about a minute)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _study import STUDY_DIR, write_study

from lenet import machine
from lenet.analysis.metric_tables import COMPILE_FIGURES
from lenet.harness import prepared
from lenet.metrics.flops import count_flops, lenet_flops
from lenet.metrics.memory import activation_bytes_per_sample, cpu_peak
from lenet.metrics.peaks import describe, identity, measure_peaks, save_peaks
from lenet.runs.record import Record
from lenet.source import REPO
from lenet.stability import load_average
from lenet.suite import run_suite
from lenet.variants import Case, Phase, parse_optimizer, parse_variant
from lenet.workload import build_workload, timed_call

MEMORY_VARIANTS = ("cpu-contiguous-fp32-eager", "cpu-channels_last-fp32-eager")
MEMORY_PHASES = (Phase.FORWARD_INFERENCE, Phase.FORWARD_TRAIN, Phase.BACKWARD, Phase.TRAIN_STEP)
PEAK_REPEATS = 3
RUNS = (
    ("metrics (default)", []),
    ("no metrics", ["--no-metrics"]),
    ("metrics (default), again", []),
    ("no metrics, again", ["--no-metrics"]),
    ("metrics + compile cost", ["--compile-cost"]),
)
COMPILE_LINE = re.compile(r"compile cost measured cold and warm in (\d+) s")


def case_for(variant: str, phase: Phase, batch_size: int) -> Case:
    optimizer = "sgd" if phase.uses_optimizer else None
    return Case.from_spec({"phase": phase.value, "variant": variant, "batch_size": batch_size, "optimizer": optimizer})


def flop_rows(batch_size: int = 64) -> list[dict[str, Any]]:
    rows = []
    for phase in Phase:
        workload = build_workload(
            parse_variant("cpu-contiguous-fp32-eager"),
            batch_size,
            parse_optimizer("sgd") if phase.uses_optimizer else None,
        )
        call = timed_call(workload, phase)
        call.once()
        counted = count_flops(call.target, call.arguments())
        rows.append(
            {
                "phase": phase.value,
                "batch_size": batch_size,
                "hand_count": lenet_flops(phase, batch_size),
                "flop_counter": counted.flops,
                "by_op": dict(counted.by_op),
                "uncounted": list(counted.uncounted_list()),
                "bytes_accessed": counted.bytes_accessed,
            }
        )
        print(f"FLOPs {phase.value}: hand {rows[-1]['hand_count']:,} counter {counted.flops:,}", flush=True)
    return rows


def memory_rows() -> list[dict[str, Any]]:
    rows = []
    for variant in MEMORY_VARIANTS:
        for phase in MEMORY_PHASES:
            peaks = {}
            for batch in (16, 256):
                with prepared(case_for(variant, phase, batch)) as ready:
                    peaks[batch] = cpu_peak(ready.call.target, ready.call.setup).peak_bytes
            per_sample = (peaks[256] - peaks[16]) / 240
            estimate = activation_bytes_per_sample(phase)
            rows.append(
                {
                    "variant": variant,
                    "phase": phase.value,
                    "peak_b16": peaks[16],
                    "peak_b256": peaks[256],
                    "ratio": peaks[256] / peaks[16],
                    "growth_per_sample": per_sample,
                    "estimate_per_sample": estimate,
                    "growth_over_estimate": per_sample / estimate if estimate else None,
                }
            )
            print(f"memory {variant} {phase.value}: {peaks[16]:,} -> {peaks[256]:,} B", flush=True)
    return rows


def quick_runs(peaks_dir: Path, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, args in RUNS:
        output, log = workdir / f"{len(results)}.json", workdir / f"{len(results)}.log"
        start = time.perf_counter()
        status = run_suite(output, args, REPO, env={"LENET_PEAKS_DIR": str(peaks_dir)}, log=log)
        wall = time.perf_counter() - start
        compiling = COMPILE_LINE.search(log.read_text()) if log.is_file() else None
        benchmarks = json.loads(output.read_text())["benchmarks"] if output.is_file() else []
        results[name] = {
            "args": args,
            "exit_status": status,
            "wall_s": wall,
            "benchmarks": len(benchmarks),
            "metrics_pass_s": sum(b["extra_info"].get("metrics_seconds", 0.0) for b in benchmarks),
            "compile_cost_s": int(compiling.group(1)) if compiling else None,
            "rows": [table_row(b) for b in benchmarks],
        }
        print(f"quick preset, {name}: {wall:.0f} s, exit {status}", flush=True)
    return results


def table_row(bench: dict[str, Any]) -> dict[str, Any]:
    info = bench["extra_info"]
    keys = (
        "memory_peak_bytes",
        "flops",
        "gflops_per_s",
        "percent_of_peak",
        "peak_gflops_kind",
        *COMPILE_FIGURES,
        "compile_warm_cache_hits",
        "break_even_steps",
        "break_even_warm_steps",
        "break_even_basis",
        "break_even_unavailable",
        "metrics_seconds",
    )
    return {"case": Record.from_extra_info(info).case_name, "median_s": bench["stats"]["median"]} | {
        k: info.get(k) for k in keys
    }


def loadavg() -> str:
    load = load_average()
    return "unknown" if load is None else f"{load:.2f}"


def fmt(value: Any, spec: str = ",.1f", missing: str = "–") -> str:
    if value is None:
        return missing
    return value if isinstance(value, str) else format(value, spec)


def markdown(document: dict[str, Any]) -> str:
    machine_info = document["machine"]
    lines = [
        "# Metrics: FLOPs, peak memory, the machine's peaks and what the metrics cost",
        "",
        f"Written by `studies/metrics_study.py` on {document['date']}. Machine: {machine_info['cpu_model']}, "
        f"{machine_info['cpu_count']} CPUs, torch {machine_info['torch_version']}, "
        f"{document['threads']} threads; load average at start/end: {document['load_start']} / {document['load_end']} "
        "(a shared VM: times are rough).",
        *_flops_section(document["flops"]),
        *_memory_section(document["memory"]),
        *_peaks_section(document["peaks_text"], document["peaks_repeats"]),
    ]
    if document.get("runs"):
        lines += _runs_section(document["runs"])
    return "\n".join(lines) + "\n"


def _table_section(title: str, intro: list[str], header: str, align: str, rows: list[str]) -> list[str]:
    """A section: its heading, the lines that say how to read it, and its table."""
    return ["", f"## {title}", "", *intro, *([""] if intro else []), header, align, *rows]


def _flops_section(rows: list[dict[str, Any]]) -> list[str]:
    return _table_section(
        "FLOPs: FlopCounterMode against the hand count (batch 64)",
        [],
        "| phase | hand count | FlopCounterMode | uncounted ops |",
        "| --- | ---: | ---: | --- |",
        [
            f"| {row['phase']} | {row['hand_count']:,} | {row['flop_counter']:,} | {', '.join(row['uncounted'])} |"
            for row in rows
        ],
    )


def _memory_section(rows: list[dict[str, Any]]) -> list[str]:
    return _table_section(
        "CPU peak memory, batch 16 and 256, against LeNet's activations",
        [
            "Peak live tensor bytes above those live before the call (profiler memory events); growth per sample =",
            "(peak at 256 - peak at 16) / 240; the estimate is what LeNet must hold at some moment (a lower bound).",
        ],
        "| variant | phase | batch 16 | batch 256 | ratio | growth per sample | estimate | growth / estimate |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        [
            f"| {row['variant']} | {row['phase']} | {row['peak_b16']:,} | {row['peak_b256']:,} | {row['ratio']:.2f} | "
            f"{row['growth_per_sample']:,.0f} | {row['estimate_per_sample']:,} | "
            f"{fmt(row['growth_over_estimate'], '.2f')} |"
            for row in rows
        ],
    )


def _peaks_section(text: list[str], repeats: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## The machine's peaks", "", "The last of three measurements, as the cache would keep it:", ""]
    lines += ["```", *text, "```", "", "All three, one after the other:", ""]
    kinds = [k for k in repeats[0] if k not in ("seconds", "notes")]
    lines += ["| # | " + " | ".join(kinds) + " | took | load |", "| ---: |" + " ---: |" * (len(kinds) + 1) + " --- |"]
    for index, repeat in enumerate(repeats, 1):
        load = next((n for n in repeat["notes"] if n.startswith("load")), "")
        cells = " | ".join(f"{repeat[k]:,.1f}" for k in kinds)
        lines.append(f"| {index} | {cells} | {repeat['seconds']:.1f} s | {load} |")
    return [*lines, "", "(matmul in GFLOP/s, copy and triad in GB/s)", ""]


def _runs_section(runs: dict[str, dict[str, Any]]) -> list[str]:
    """What each quick-preset run cost, then the metrics table of the last (the ``--compile-cost``) run."""
    lines = [
        "## The quick preset: what the metrics cost",
        "",
        "In this order, each a new process; the peaks were cached already.",
        "",
        "| run | wall time | benchmarks | metrics pass, summed | compiling processes | exit |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, run in runs.items():
        compiling = "–" if run.get("compile_cost_s") is None else f"{run['compile_cost_s']} s"
        lines.append(
            f"| {name} | {run['wall_s']:.0f} s | {run['benchmarks']} | {run['metrics_pass_s']:.1f} s | "
            f"{compiling} | {run['exit_status']} |"
        )
    lines += [
        "",
        "## The quick preset's metrics (the `--compile-cost` run)",
        "",
        "| case | median | GFLOP/s | % of peak | peak memory | compile in-process | cold | warm | "
        "break-even (cold) | break-even (warm) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    return lines + [_metrics_row(row) for row in list(runs.values())[-1]["rows"]]


def _metrics_row(row: dict[str, Any]) -> str:
    memory = row["memory_peak_bytes"]
    return (
        f"| {row['case']} | {row['median_s'] * 1e3:.2f} ms | {fmt(row['gflops_per_s'], '.2f')} | "
        f"{fmt(row['percent_of_peak'], '.2f')} | {fmt(memory / 2**20 if memory else None, '.2f')} MiB | "
        f"{fmt(row['compile_seconds'], '.1f')} s | {fmt(row['compile_cold_seconds'], '.1f')} | "
        f"{fmt(row['compile_warm_seconds'], '.1f')} | {fmt(row['break_even_steps'], ',')} | "
        f"{fmt(row['break_even_warm_steps'], ',')} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-runs", action="store_true", help="no quick-preset runs (steps 1-3 only)")
    parser.add_argument("--output", type=Path, default=STUDY_DIR / "metrics.json")
    args = parser.parse_args(argv)
    threads = torch.get_num_threads()
    info = machine.collect()
    document: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": {k: info[k] for k in ("cpu_model", "cpu_count", "torch_version", "cpu_capability", "fingerprint")},
        "threads": threads,
        "load_start": loadavg(),
    }
    document["flops"] = flop_rows()
    document["memory"] = memory_rows()
    with tempfile.TemporaryDirectory(prefix="lenet-metrics-study-") as tmp:
        repeats = [measure_peaks(identity("cpu", threads)) for _ in range(PEAK_REPEATS)]
        peaks = repeats[-1]
        save_peaks(Path(tmp) / "peaks", peaks)
        document["peaks"] = json.loads(peaks.to_json())
        document["peaks_text"] = describe(peaks)
        document["peaks_repeats"] = [
            {**p.matmul_gflops, **p.bandwidth_gbs, "seconds": p.seconds, "notes": list(p.notes)} for p in repeats
        ]
        print("\n".join(document["peaks_text"]), flush=True)
        if not args.skip_runs:
            document["runs"] = quick_runs(Path(tmp) / "peaks", Path(tmp))
    document["load_end"] = loadavg()
    write_study(args.output, document, markdown(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
