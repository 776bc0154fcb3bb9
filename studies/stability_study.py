"""Do the stability checks stay quiet on a quiet machine, and flag what a busy one disturbs? Real runs.

    python studies/stability_study.py collect quiet --runs 3     # waits for a 1-minute load under 1.0
    python studies/stability_study.py collect loaded --runs 1    # a CPU-bound competitor on the same CPUs
    python studies/stability_study.py cost                        # what sampling and checking cost
    python studies/stability_study.py analyze                     # seconds; writes the .md and .json

collect: runs the quick preset in fresh processes (``pytest bench --preset quick``) and keeps,
for every benchmark, its median, rounds and everything the stability record holds, in
results/studies/stability_samples.json (runs of a condition are added to those already there).
Each run first waits, checking every 30 s for up to --wait seconds, for the 1-minute load to
drop below --max-load, and records the load it started at. ``loaded`` then starts --competitors
CPU-bound processes (``while True: pass``) pinned with taskset to the CPUs the suite may use,
and always stops them (they also stop themselves after --competitor-seconds).

cost: times the machine-state snapshot, the CPU-settings read and the checks in this process.

analyze: re-judges every saved benchmark with the bounds in lenet/stability.py (so a changed
bound needs no new runs), and writes results/studies/stability_calibration.md/.json: the
quiet values each bound was set from, the share of quiet benchmarks flagged, how the loaded
run's medians moved against the quiet runs' and which of them were flagged, the page faults
per call of every phase, and the cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _study import STUDY_DIR, write_study

from lenet import stability
from lenet.analysis.load import load_runs
from lenet.record import Record
from lenet.suite import REPO, run_suite

SAMPLES = STUDY_DIR / "stability_samples.json"
RESULT = STUDY_DIR / "stability_calibration.json"
KEPT = ("rounds", "median", "min", "max")
SPIN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def load_average() -> float:
    return stability.parse_loadavg(Path("/proc/loadavg").read_text())


def wait_for_quiet(max_load: float, wait: float) -> float:
    """Wait (checking every 30 s, at most ``wait`` s) for the 1-minute load to drop below ``max_load``."""
    deadline = time.monotonic() + wait
    load = load_average()
    while load >= max_load and time.monotonic() < deadline:
        print(f"1-minute load {load:.2f}: waiting for it to drop below {max_load}", file=sys.stderr, flush=True)
        time.sleep(30)
        load = load_average()
    return load


def start_competitors(count: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    command = [sys.executable, "-c", SPIN, str(seconds)]
    if shutil.which("taskset"):
        command = ["taskset", "-c", cpus, *command]
    return [subprocess.Popen(command) for _ in range(count)]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def one_run(output: Path, measure: list[str]) -> dict[str, Any]:
    started = time.monotonic()
    status = run_suite(output, ["--preset", "quick", *measure], tree=REPO)
    if not output.exists():
        raise RuntimeError(f"the suite wrote no results (pytest exit {status})")
    frame = load_runs([output]).frame
    run = json.loads(output.read_text())
    benchmarks = {}
    for bench in run["benchmarks"]:
        record = Record.from_extra_info(bench["extra_info"])
        benchmarks[bench["name"]] = {
            **{key: bench["stats"][key] for key in KEPT},
            "phase": record.phase,
            "variant": record.variant,
            "batch_size": record.batch_size,
            "optimizer": record.optimizer,
            "stability": record.stability.to_extra_info() if record.stability else None,
        }
    return {"seconds": time.monotonic() - started, "pytest_exit": status, "rows": len(frame), "benchmarks": benchmarks}


def collect(condition: str, args: argparse.Namespace, samples: Path) -> None:
    document = json.loads(samples.read_text()) if samples.exists() else {"runs": []}
    measure = args.measure.split() if args.measure else []
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(args.runs):
            # Both conditions start on a quiet machine: in a loaded run, the competitor is to be the only load.
            load = wait_for_quiet(args.max_load, args.wait)
            competitors = start_competitors(args.competitors, args.competitor_seconds) if condition == "loaded" else []
            try:
                run = one_run(Path(tmp) / f"{index}.json", measure)
            finally:
                stop(competitors)
            run.update(
                condition=condition,
                load_at_start=load,
                competitors=len(competitors),
                measure=measure,
                created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            )
            document["runs"].append(run)
            samples.write_text(json.dumps(document, indent=1) + "\n")  # after every run: a long study keeps its runs
            print(f"{condition} run {index + 1}/{args.runs}: {run['seconds']:.0f} s, load {load:.2f}", file=sys.stderr)
    print(f"wrote {samples}")


def cost(samples: Path) -> None:
    document = json.loads(samples.read_text()) if samples.exists() else {"runs": []}
    times = [0.010 + 0.0001 * (i % 7) for i in range(200)]
    state = stability.rounds_state(stability.take_snapshot(), stability.take_snapshot(), 200)
    number = 2000
    measured = {
        "take_snapshot": timeit.timeit(stability.take_snapshot, number=number) / number,
        "cpu_settings": timeit.timeit(stability.cpu_settings, number=number) / number,
        "process_usage (SetupMeter: two per pedantic round)": timeit.timeit(stability.process_usage, number=number)
        / number,
        "check_rounds over 200 rounds": timeit.timeit(lambda: stability.check_rounds(times), number=number) / number,
        "check_state": timeit.timeit(lambda: stability.check_state(state), number=number) / number,
    }
    document["cost_seconds"] = measured
    samples.write_text(json.dumps(document, indent=1) + "\n")
    for name, seconds in measured.items():
        print(f"{name}: {seconds * 1e6:.1f} µs")


def flags_of(benchmarks: dict[str, dict[str, Any]], bounds: stability.Bounds) -> dict[str, list[str]]:
    """Every benchmark's flags under ``bounds``, the phase-sum check included, from what a run kept."""
    names = list(benchmarks)
    flags: dict[str, list[str]] = {}
    for name, bench in benchmarks.items():
        saved = Record.from_extra_info(
            {"schema": "lenet-bench/2", **_case(bench), **(bench["stability"] or {"stability_flags": []})}
        ).stability
        flags[name] = [f.check for f in stability.recheck(saved, bench["rounds"], bounds)] if saved else []
    timed = [
        stability.Timed(b["phase"], b["variant"], b["batch_size"], b["optimizer"], b["median"])
        for b in benchmarks.values()
    ]
    for index, flag in stability.check_phase_sums(timed, bounds).items():
        flags[names[index]].append(flag.check)
    return flags


def _case(bench: dict[str, Any]) -> dict[str, Any]:
    variant = bench["variant"].split("-")
    fields = dict(zip(("device", "memory_format", "precision", "compile"), variant, strict=True))
    return {"variant": bench["variant"], **fields, "phase": bench["phase"], "batch_size": bench["batch_size"]}


def undisturbed(bench: dict[str, Any], bounds: stability.Bounds) -> bool:
    """Whether nothing else ran on the machine during this benchmark's rounds (steal and busy within bounds)."""
    state = bench["stability"] or {}
    return (state.get("busy_share") or 0.0) <= bounds.busy and (state.get("steal_share") or 0.0) <= bounds.steal


def values(runs: list[dict[str, Any]], key: str, bounds: stability.Bounds | None = None) -> list[float]:
    """``key`` of every benchmark of ``runs`` (with ``bounds``: of the undisturbed ones only)."""
    found = []
    for run in runs:
        for bench in run["benchmarks"].values():
            if bounds is not None and not undisturbed(bench, bounds):
                continue
            value = (bench["stability"] or {}).get(key)
            if value is not None:
                found.append(abs(float(value)) if key == "rounds_drift" else float(value))
    return found


def phase_ratios(runs: list[dict[str, Any]], bounds: stability.Bounds | None = None) -> list[tuple[str, float]]:
    """Train step / sum of its phases per variant and run (with ``bounds``: where all four were undisturbed)."""
    ratios = []
    for run in runs:
        benchmarks = list(run["benchmarks"].values())
        parts = {(b["phase"], b["variant"]): b["median"] for b in benchmarks}
        calm = {(b["phase"], b["variant"]) for b in benchmarks if bounds is None or undisturbed(b, bounds)}
        for bench in benchmarks:
            members = [(phase, bench["variant"]) for phase in (*stability.STEP_PARTS, "train_step")]
            if bench["phase"] == "train_step" and all(member in calm for member in members):
                total = sum(parts.get((p, bench["variant"]), float("nan")) for p in stability.STEP_PARTS)
                ratios.append((bench["variant"], bench["median"] / total))
    return ratios


def summary(numbers: list[float]) -> dict[str, float | int | None]:
    if not numbers:
        return {"n": 0, "min": None, "median": None, "p95": None, "max": None}
    ordered = sorted(numbers)
    return {
        "n": len(ordered),
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "max": ordered[-1],
    }


def analyze(samples: Path) -> dict[str, Any]:
    document = json.loads(samples.read_text())
    bounds = stability.Bounds()
    quiet = [run for run in document["runs"] if run["condition"] == "quiet"]
    loaded = [run for run in document["runs"] if run["condition"] == "loaded"]
    result: dict[str, Any] = {
        "bounds": {field: getattr(bounds, field) for field in bounds.__dataclass_fields__},
        "quiet_runs": [
            {"created": r["created"], "load_at_start": r["load_at_start"], "seconds": r["seconds"]} for r in quiet
        ],
        "loaded_runs": [
            {
                "created": r["created"],
                "load_at_start": r["load_at_start"],
                "competitors": r["competitors"],
                "seconds": r["seconds"],
            }
            for r in loaded
        ],
    }
    result["quiet_values"] = {
        key: summary(values(quiet, key))
        for key in (
            "rounds_spread",
            "rounds_drift",
            "steal_share",
            "busy_share",
            "minor_faults_per_call",
            "major_faults_per_call",
        )
    }
    result["quiet_values"]["rounds"] = summary([float(b["rounds"]) for r in quiet for b in r["benchmarks"].values()])
    result["quiet_values"]["phase_sum_ratio"] = summary([ratio for _, ratio in phase_ratios(quiet)])
    result["quiet_phase_ratios"] = phase_ratios(quiet)
    # The shared machine was rarely idle: the benchmarks whose rounds nothing else disturbed calibrate best.
    result["undisturbed_values"] = {
        key: summary(values(quiet, key, bounds))
        for key in ("rounds_spread", "rounds_drift", "minor_faults_per_call", "major_faults_per_call")
    }
    result["undisturbed_values"]["phase_sum_ratio"] = summary([ratio for _, ratio in phase_ratios(quiet, bounds)])
    quiet_flags = [flags_of(run["benchmarks"], bounds) for run in quiet]
    total = sum(len(f) for f in quiet_flags)
    flagged = sum(bool(v) for f in quiet_flags for v in f.values())
    by_check: dict[str, int] = {}
    for f in quiet_flags:
        for names in f.values():
            for name in names:
                by_check[name] = by_check.get(name, 0) + 1
    calm = [
        flags[name]
        for run, flags in zip(quiet, quiet_flags, strict=True)
        for name, bench in run["benchmarks"].items()
        if undisturbed(bench, bounds)
    ]
    result["quiet"] = {
        "benchmarks": total,
        "flagged": flagged,
        "share_flagged": flagged / total if total else None,
        "undisturbed_benchmarks": len(calm),
        "undisturbed_flagged": sum(bool(f) for f in calm),
        "by_check": by_check,
        "flagged_benchmarks": sorted({f"{name}: {','.join(v)}" for f in quiet_flags for name, v in f.items() if v}),
    }
    reference = {
        name: statistics.median(run["benchmarks"][name]["median"] for run in quiet if name in run["benchmarks"])
        for name in (quiet[0]["benchmarks"] if quiet else {})
    }
    result["loaded"] = []
    for run in loaded:
        flags = flags_of(run["benchmarks"], bounds)
        rows = []
        for name, bench in run["benchmarks"].items():
            if name in reference:
                rows.append({"name": name, "moved": bench["median"] / reference[name] - 1, "flags": flags[name]})
        big = [r for r in rows if abs(r["moved"]) > 0.20]
        small = [r for r in rows if abs(r["moved"]) < 0.05]
        result["loaded"].append(
            {
                "benchmarks": len(rows),
                "moved_over_20pct": len(big),
                "of_those_flagged": sum(bool(r["flags"]) for r in big),
                "moved_under_5pct": len(small),
                "of_those_flagged_small": sum(bool(r["flags"]) for r in small),
                "rows": sorted(rows, key=lambda r: -abs(r["moved"])),
            }
        )
    result["faults_per_call"] = faults_table(quiet)
    result["cost_seconds"] = document.get("cost_seconds")
    return result


def faults_table(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = list(runs[0]["benchmarks"]) if runs else []
    rows = []
    for name in names:
        kept = [run["benchmarks"][name]["stability"] or {} for run in runs if name in run["benchmarks"]]

        def median_of(key: str, kept: list[dict[str, Any]] = kept) -> float | None:
            found = [k[key] for k in kept if k.get(key) is not None]
            return statistics.median(found) if found else None

        rows.append(
            {
                "name": name,
                "minor_faults_per_call": median_of("minor_faults_per_call"),
                "major_faults_per_call": median_of("major_faults_per_call"),
                "cpu_per_wall": median_of("cpu_per_wall"),
                "involuntary_switches_per_call": median_of("involuntary_switches_per_call"),
                "median_ms": statistics.median(run["benchmarks"][name]["median"] for run in runs) * 1e3,
            }
        )
    return rows


def _fmt(value: float | None, pattern: str = "{:.3g}") -> str:
    return "–" if value is None else pattern.format(value)


def markdown(result: dict[str, Any]) -> str:
    quiet, bounds = result["quiet"], result["bounds"]
    lines = [
        "# Stability checks: calibration on quiet runs, and a loaded run",
        "",
        "Made by `studies/stability_study.py` (`collect quiet`, `collect loaded`, `cost`, `analyze`), quick preset "
        "(`pytest bench --preset quick`), on the shared 2-core VM. Flags are re-judged from the saved figures "
        "with the bounds in `lenet/stability.py` as they are now.",
        "",
        "Quiet runs: "
        + ", ".join(
            f"{r['created']} (1-minute load {r['load_at_start']:.2f} at start, {r['seconds']:.0f} s)"
            for r in result["quiet_runs"]
        )
        + ".",
        "",
        "## What quiet runs show, and the bounds set from them",
        "",
        "| figure | quiet benchmarks | min | median | 95th pct | max | bound |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    bound_of = {
        "rounds": f"≥ {bounds['min_rounds']}",
        "rounds_spread": f"{bounds['spread']:.0%}",
        "rounds_drift": f"±{bounds['drift']:.0%}",
        "steal_share": f"{bounds['steal']:.0%}",
        "busy_share": f"{bounds['busy']:.0%}",
        "minor_faults_per_call": f"{bounds['faults']:g}",
        "major_faults_per_call": "any major fault",
        "phase_sum_ratio": f"{bounds['phase_low']}–{bounds['phase_high']}",
    }
    for key, stats in result["quiet_values"].items():
        lines.append(
            f"| `{key}` | {stats['n']} | {_fmt(stats['min'])} | {_fmt(stats['median'])} | {_fmt(stats['p95'])} | "
            f"{_fmt(stats['max'])} | {bound_of.get(key, '')} |"
        )
    lines += [
        "",
        "The same figures over the *undisturbed* benchmarks of those runs only (other processes and steal "
        "within their bounds during the rounds), which is what the bounds are calibrated from:",
        "",
        "| figure | undisturbed benchmarks | min | median | 95th pct | max | bound |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, stats in result["undisturbed_values"].items():
        lines.append(
            f"| `{key}` | {stats['n']} | {_fmt(stats['min'])} | {_fmt(stats['median'])} | {_fmt(stats['p95'])} | "
            f"{_fmt(stats['max'])} | {bound_of.get(key, '')} |"
        )
    lines += [
        "",
        "Train step / sum of its phases, per variant (quiet runs): "
        + ", ".join(f"{variant} {ratio:.2f}" for variant, ratio in result["quiet_phase_ratios"])
        + ".",
        "",
        "## Quiet runs: how many benchmarks the checks flag",
        "",
        f"{quiet['flagged']} of {quiet['benchmarks']} quiet benchmarks flagged "
        f"({_fmt(quiet['share_flagged'], '{:.1%}')}; target at most 5%). By check: "
        + (", ".join(f"{k} {v}" for k, v in quiet["by_check"].items()) or "none")
        + f". Of the {quiet['undisturbed_benchmarks']} undisturbed ones, {quiet['undisturbed_flagged']} flagged.",
        "",
    ]
    lines += [f"- `{line}`" for line in quiet["flagged_benchmarks"]]
    for index, (run, meta) in enumerate(zip(result["loaded"], result["loaded_runs"], strict=True)):
        lines += [
            "",
            f"## Loaded run {index + 1}: {meta['competitors']} CPU-bound competitor(s) on the same CPUs",
            "",
            f"Started {meta['created']} (1-minute load {meta['load_at_start']:.2f}), {meta['seconds']:.0f} s. "
            "Each median against the median of the quiet runs' medians:",
            "",
            f"- moved more than 20%: {run['moved_over_20pct']} of {run['benchmarks']}, of which flagged "
            f"{run['of_those_flagged']} (target at least 90%)",
            f"- moved less than 5%: {run['moved_under_5pct']}, of which flagged {run['of_those_flagged_small']}",
            "",
            "| benchmark | moved | flags |",
            "| --- | ---: | --- |",
        ]
        lines += [f"| `{r['name']}` | {r['moved']:+.0%} | {', '.join(r['flags']) or '–'} |" for r in run["rows"]]
    lines += [
        "",
        "## Page faults and CPU per call, every benchmark of the quick preset (quiet runs' medians)",
        "",
        "Per timed call, the untimed set-up of backward and optimizer_step left out.",
        "",
        "| benchmark | median (ms) | minor faults / call | major faults / call | CPU / wall | "
        "involuntary switches / call |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["faults_per_call"]:
        lines.append(
            f"| `{row['name']}` | {_fmt(row['median_ms'])} | {_fmt(row['minor_faults_per_call'])} | "
            f"{_fmt(row['major_faults_per_call'])} | {_fmt(row['cpu_per_wall'], '{:.2f}')} | "
            f"{_fmt(row['involuntary_switches_per_call'])} |"
        )
    if result["cost_seconds"]:
        lines += [
            "",
            "## What the checks cost (per benchmark, outside the timed rounds)",
            "",
            "| step | µs |",
            "| --- | ---: |",
        ]
        lines += [f"| {name} | {seconds * 1e6:.1f} |" for name, seconds in result["cost_seconds"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gather = commands.add_parser("collect")
    gather.add_argument("condition", choices=("quiet", "loaded"))
    gather.add_argument("--runs", type=int, default=1)
    gather.add_argument("--max-load", type=float, default=1.0, help="wait for a 1-minute load below this")
    gather.add_argument("--wait", type=float, default=600.0, help="wait at most this long (s)")
    gather.add_argument("--competitors", type=int, default=1, help="loaded: CPU-bound processes to start")
    gather.add_argument("--competitor-seconds", type=float, default=900.0, help="loaded: each stops itself after this")
    gather.add_argument("--measure", default="", help="more pytest options, e.g. '--threads 1'")
    commands.add_parser("cost")
    report = commands.add_parser("analyze")
    report.add_argument(
        "--output", type=Path, default=RESULT, help=f"the JSON to write, beside its .md (default {RESULT})"
    )
    parser.add_argument("--samples", type=Path, default=SAMPLES, help=f"the samples file (default {SAMPLES})")
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(args.condition, args, args.samples)
    elif args.command == "cost":
        cost(args.samples)
    else:
        result = analyze(args.samples)
        write_study(args.output, result)
        args.output.with_suffix(".md").write_text(markdown(result))
        print(f"wrote {args.output.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
