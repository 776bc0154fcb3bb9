"""What lowers the variation between processes? Allocators, pinning, timers and round length, through the suite.

    python studies/noise_study.py collect [--processes 7]   # tens of minutes
    python studies/noise_study.py analyze                   # seconds

collect: runs the suite in fresh processes under each setting (allocator, CPU pinning,
CPU vs wall time, longer rounds), taking the settings in turn, round after round, so the
machine's moods hit every setting alike; each process's medians, page faults per call and
process set-up are kept in results/studies/noise_samples.json.

analyze: per setting, the coefficient of variation of each benchmark's process medians
(robust: 1.4826 MAD / median; and classic: sd / mean), the median over benchmarks, the
median time itself relative to the glibc default, and the page faults per call. Writes
results/studies/noise_study.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _study import EAGER_FP32_B64, STUDY_DIR, write_study

from lenet.analysis.stats import robust_cv
from lenet.process_setup import ProcessSetup
from lenet.runs.files import read_runs
from lenet.source import REPO
from lenet.suite import run_suite

SAMPLES = STUDY_DIR / "noise_samples.json"
SELECTION = [
    *EAGER_FP32_B64,
    "--threads",
    "1",
    "--no-metrics",
]
CPU_TIME = ["--benchmark-timer", "time.process_time"]
SHORT = ["--benchmark-max-time=0.5"]
# name -> (allocator, pin, timer and rounds)
SETTINGS: dict[str, tuple[str, str, list[str]]] = {
    "glibc": ("glibc", "none", CPU_TIME + SHORT),
    "glibc-tuned": ("glibc-tuned", "none", CPU_TIME + SHORT),
    "jemalloc": ("jemalloc", "none", CPU_TIME + SHORT),
    "tcmalloc": ("tcmalloc", "none", CPU_TIME + SHORT),
    "glibc pinned": ("glibc", "last", CPU_TIME + SHORT),
    "tcmalloc pinned": ("tcmalloc", "last", CPU_TIME + SHORT),
    "glibc wall time": ("glibc", "none", SHORT),
    "glibc 2 s rounds": ("glibc", "none", [*CPU_TIME, "--benchmark-max-time=2.0"]),
}
BASE = "glibc"


def run_process(name: str, output: Path) -> dict[str, dict[str, float | None]]:
    allocator, pin, measure = SETTINGS[name]
    status = run_suite(output, [*SELECTION, *measure], tree=REPO, setup=ProcessSetup.parse(allocator, pin))
    if not output.exists():
        raise RuntimeError(f"a {name} process wrote no results (pytest exit {status})")
    run = json.loads(output.read_text())
    frame = read_runs([output]).frame
    faults = {b["name"]: b["extra_info"].get("minor_faults_per_call") for b in run["benchmarks"]}
    return {
        "process_setup": run["machine_info"].get("process_setup"),
        "benchmarks": {
            row["name"]: {"median": float(row["median"]), "faults": faults.get(row["name"])}
            for _, row in frame.iterrows()
        },
    }


def collect(processes: int, names: list[str], append: bool) -> None:
    earlier = json.loads(SAMPLES.read_text()) if append and SAMPLES.is_file() else None
    samples: dict[str, list[dict]] = {name: [] for name in names}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        for round_index in range(processes):
            # Rotate the order each round: no setting always runs right after another one.
            order = names[round_index % len(names) :] + names[: round_index % len(names)]
            for name in order:
                output = Path(tmp) / f"{round_index}-{names.index(name)}.json"
                samples[name].append(run_process(name, output))
                print(f"round {round_index + 1}/{processes} {name} ({time.monotonic() - started:.0f} s)", flush=True)
    document = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "selection": SELECTION,
        "settings": {name: {"allocator": a, "pin": p, "measure": m} for name, (a, p, m) in SETTINGS.items()},
        "collect_seconds": time.monotonic() - started,
        "processes": samples,
    }
    if earlier is not None:  # a second pass: the settings it ran get more processes, the others keep theirs
        for name, processes in earlier["processes"].items():
            document["processes"][name] = processes + samples.get(name, [])
        document["collect_seconds"] += earlier["collect_seconds"]
        document["passes"] = [*earlier.get("passes", [earlier["created"]]), document["created"]]
        document["created"] = earlier["created"]
    write_study(SAMPLES, document)


def analyze(document: dict) -> dict:
    groups = document["processes"]
    results = {}
    for name, processes in groups.items():
        # Against the glibc processes of the same passes (every pass ran the settings in turn, glibc first).
        base_medians = _medians(groups[BASE][: len(processes)])
        medians = _medians(processes)
        robust = [robust_cv(values) for values in medians.values()]
        classic = [float(np.std(values, ddof=1) / np.mean(values)) for values in medians.values()]
        relative = [float(np.median(medians[b]) / np.median(base_medians[b])) for b in medians if b in base_medians]
        faults = [
            p["benchmarks"][b]["faults"] for p in processes for b in p["benchmarks"] if p["benchmarks"][b]["faults"]
        ]
        results[name] = {
            "processes": len(processes),
            "benchmarks": len(medians),
            "robust_cv_median": float(np.median(robust)),
            "robust_cv_max": float(np.max(robust)),
            "cv_median": float(np.median(classic)),
            "cv_max": float(np.max(classic)),
            "time_vs_glibc_median": float(np.median(relative)),
            "faults_per_call_median": float(np.median(faults)) if faults else 0.0,
            "faults_per_call_max": float(np.max(faults)) if faults else 0.0,
            "process_setup": processes[0]["process_setup"],
            "per_benchmark_robust_cv": {b: robust_cv(v) for b, v in sorted(medians.items())},
        }
    return results


def _medians(processes: list[dict]) -> dict[str, list[float]]:
    names = processes[0]["benchmarks"].keys()
    return {b: [p["benchmarks"][b]["median"] for p in processes if b in p["benchmarks"]] for b in names}


def markdown(document: dict, results: dict) -> str:
    lines = [
        "# Noise study: what lowers the variation between processes",
        "",
        f"Real runs on this machine ({document['created']}, {document['collect_seconds'] / 60:.0f} min): "
        f"each setting ran the fresh processes counted below of `pytest bench {' '.join(document['selection'])}`, "
        "the settings taken in turn, round after round"
        + (f" (in {len(document['passes'])} passes: {', '.join(document['passes'])})" if "passes" in document else "")
        + ". "
        "CV: the variation of one benchmark's process medians between processes (robust: 1.4826 MAD / median); "
        "the table gives the median and the largest over the benchmarks.",
        "",
        "| setting | processes | robust CV (median) | robust CV (max) | sd/mean (median) | sd/mean (max) "
        "| time vs glibc (same passes) | page faults per call (median / max) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['processes']} | {r['robust_cv_median']:.2%} | {r['robust_cv_max']:.2%} | "
            f"{r['cv_median']:.2%} | {r['cv_max']:.2%} | ×{r['time_vs_glibc_median']:.3f} | "
            f"{r['faults_per_call_median']:.2f} / {r['faults_per_call_max']:.1f} |"
        )
    lines += ["", "Settings:", ""]
    for name, setting in document["settings"].items():
        if name in results:
            measure = " ".join(setting["measure"])
            lines.append(f"- {name}: allocator `{setting['allocator']}`, pin `{setting['pin']}`, `{measure}`")
    benchmarks = sorted(next(iter(results.values()))["per_benchmark_robust_cv"])
    lines += ["", "Robust CV per benchmark:", "", "| benchmark | " + " | ".join(results) + " |"]
    lines.append("| --- |" + " ---: |" * len(results))
    for bench in benchmarks:
        cells = [f"{r['per_benchmark_robust_cv'].get(bench, float('nan')):.2%}" for r in results.values()]
        lines.append(f"| `{bench}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("collect")
    run.add_argument("--processes", type=int, default=7, help="per setting (default 7)")
    run.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names (default: all)")
    run.add_argument("--append", action="store_true", help="add these processes to the samples already collected")
    sub.add_parser("analyze")
    args = parser.parse_args(argv)
    if args.command == "collect":
        names = [name.strip() for name in args.settings.split(",")]
        unknown = [name for name in names if name not in SETTINGS]
        if unknown:
            print(f"error: unknown setting {unknown[0]!r}; known: {', '.join(SETTINGS)}", file=sys.stderr)
            return 2
        collect(args.processes, names, args.append)
        return 0
    document = json.loads(SAMPLES.read_text())
    results = analyze(document)
    write_study(
        STUDY_DIR / "noise_study.json",
        {"created": document["created"], "settings": results},
        markdown(document, results),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
