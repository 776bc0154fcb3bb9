"""Do the stability checks stay quiet on a quiet machine, and flag what a busy one disturbs? Real runs.

    python studies/stability_study.py collect quiet --runs 3     # waits for a 1-minute load under 1.0
    python studies/stability_study.py collect loaded --runs 1    # a CPU-bound competitor on the same CPUs
    python studies/stability_study.py collect slow_malloc         # glibc malloc held in its slow regime
    python studies/stability_study.py cost                        # what sampling and checking cost
    python studies/stability_study.py analyze                     # seconds; writes the .md and .json

collect: runs the quick preset in fresh processes (``pytest bench --preset quick``) and keeps,
for every benchmark, its median, rounds and everything the stability record holds, in
results/studies/stability_samples.json (runs of a condition are added to those already there).
Each run first waits, checking every 30 s for up to --wait seconds, for the 1-minute load to
drop below --max-load, and records the load it started at. ``loaded`` then starts --competitors
CPU-bound processes (``while True: pass``) pinned with taskset to the CPUs the suite may use,
and always stops them (they also stop themselves after --competitor-seconds). ``slow_malloc``
holds glibc's allocator in the regime that faults memory in on every call (SLOW_MALLOC).

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
from lenet.runs.files import read_runs
from lenet.runs.record import Record
from lenet.source import REPO
from lenet.suite import run_suite

SAMPLES = STUDY_DIR / "stability_samples.json"
QUIET_LOAD = 1.0  # a run is quiet when the 1-minute load was below this as it started
# glibc mmaps every block above this and unmaps it when freed (a fixed threshold also stops glibc
# from raising it): the allocator's slow regime, held on purpose, for the page-fault check.
SLOW_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "65536"}
RESULT = STUDY_DIR / "stability_calibration.json"
KEPT = ("rounds", "median", "min", "max")
SPIN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def load_average() -> float:
    load = stability.load_average()
    if load is None:
        raise SystemExit("this study needs /proc/loadavg (Linux)")
    return load


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


def one_run(output: Path, measure: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    started = time.monotonic()
    status = run_suite(output, ["--preset", "quick", *measure], tree=REPO, env=env)
    if not output.exists():
        raise RuntimeError(f"the suite wrote no results (pytest exit {status})")
    frame = read_runs([output]).frame
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
                run = one_run(Path(tmp) / f"{index}.json", measure, SLOW_MALLOC if condition == "slow_malloc" else None)
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


def values(runs: list[dict[str, Any]], key: str) -> list[float]:
    """``key`` of every benchmark of ``runs`` (drift as its size)."""
    found = []
    for run in runs:
        for bench in run["benchmarks"].values():
            value = (bench["stability"] or {}).get(key)
            if value is not None:
                found.append(abs(float(value)) if key == "rounds_drift" else float(value))
    return found


def phase_ratios(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Train step / sum of its phases, per variant, one value per run."""
    ratios: dict[str, list[float]] = {}
    for run in runs:
        benchmarks = list(run["benchmarks"].values())
        parts = {(b["phase"], b["variant"]): b["median"] for b in benchmarks}
        for bench in benchmarks:
            members = [(phase, bench["variant"]) for phase in stability.STEP_PARTS]
            if bench["phase"] == "train_step" and all(member in parts for member in members):
                ratio = bench["median"] / sum(parts[member] for member in members)
                ratios.setdefault(bench["variant"], []).append(ratio)
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


def flag_counts(runs: list[dict[str, Any]], bounds: stability.Bounds) -> dict[str, Any]:
    """How many benchmarks of ``runs`` the checks flag, by check, and which."""
    flags = [flags_of(run["benchmarks"], bounds) for run in runs]
    by_check: dict[str, int] = {}
    for names in (names for run_flags in flags for names in run_flags.values()):
        for name in names:
            by_check[name] = by_check.get(name, 0) + 1
    total = sum(len(run_flags) for run_flags in flags)
    flagged = sum(bool(names) for run_flags in flags for names in run_flags.values())
    return {
        "benchmarks": total,
        "flagged": flagged,
        "share_flagged": flagged / total if total else None,
        "by_check": by_check,
        "flagged_benchmarks": [
            f"run {index + 1}: {name}: {', '.join(names)}"
            for index, run_flags in enumerate(flags)
            for name, names in run_flags.items()
            if names
        ],
    }


def moved(run: dict[str, Any], reference: dict[str, float], bounds: stability.Bounds) -> dict[str, Any]:
    """How a disturbed run's medians moved against the quiet reference, and which of them were flagged."""
    flags = flags_of(run["benchmarks"], bounds)
    rows = [
        {"name": name, "moved": bench["median"] / reference[name] - 1, "flags": flags[name]}
        for name, bench in run["benchmarks"].items()
        if name in reference
    ]
    big = [r for r in rows if abs(r["moved"]) > 0.20]
    small = [r for r in rows if abs(r["moved"]) < 0.05]
    return {
        "created": run["created"],
        "load_at_start": run["load_at_start"],
        "competitors": run["competitors"],
        "seconds": run["seconds"],
        "benchmarks": len(rows),
        "moved_over_20pct": len(big),
        "of_those_flagged": sum(bool(r["flags"]) for r in big),
        "moved_under_5pct": len(small),
        "of_those_flagged_small": sum(bool(r["flags"]) for r in small),
        "rows": sorted(rows, key=lambda r: -abs(r["moved"])),
    }


def analyze(samples: Path, max_load: float = QUIET_LOAD) -> dict[str, Any]:
    document = json.loads(samples.read_text())
    bounds = stability.Bounds()
    runs = document["runs"]
    # A "quiet" run the machine did not allow (others' work kept the load up past the wait) is a
    # disturbed run like the loaded ones, by other people's programs rather than ours.
    quiet = [r for r in runs if r["condition"] == "quiet" and r["load_at_start"] < max_load]
    busy = [r for r in runs if r["condition"] == "quiet" and r["load_at_start"] >= max_load]
    loaded = [r for r in runs if r["condition"] == "loaded"]
    figures = ("rounds_spread", "rounds_drift", "steal_share", "busy_share", "involuntary_switches_per_call")
    figures += ("minor_faults_per_call", "major_faults_per_call")
    result: dict[str, Any] = {
        "bounds": {field: getattr(bounds, field) for field in bounds.__dataclass_fields__},
        "quiet_load_below": max_load,
        "quiet_runs": [{k: r[k] for k in ("created", "load_at_start", "seconds")} for r in quiet],
        "quiet_values": {key: summary(values(quiet, key)) for key in figures},
    }
    result["quiet_values"]["rounds"] = summary([float(b["rounds"]) for r in quiet for b in r["benchmarks"].values()])
    ratios = phase_ratios(quiet)
    result["quiet_values"]["phase_sum_ratio"] = summary([x for found in ratios.values() for x in found])
    result["quiet_phase_ratios"] = ratios
    result["quiet"] = flag_counts(quiet, bounds)
    reference = {
        name: statistics.median(run["benchmarks"][name]["median"] for run in quiet if name in run["benchmarks"])
        for name in (quiet[0]["benchmarks"] if quiet else {})
    }
    result["loaded"] = [moved(run, reference, bounds) for run in loaded]
    slow = [r for r in runs if r["condition"] == "slow_malloc"]
    result["slow_malloc"] = [{**moved(run, reference, bounds), "faults": faults_table([run])} for run in slow]
    result["busy_by_others"] = [moved(run, reference, bounds) for run in busy]
    counted = ("benchmarks", "moved_over_20pct", "of_those_flagged", "moved_under_5pct", "of_those_flagged_small")
    for name, group in (
        ("disturbed_totals", result["loaded"] + result["busy_by_others"]),
        ("loaded_totals", result["loaded"]),
        ("busy_totals", result["busy_by_others"]),
    ):
        result[name] = {key: sum(run[key] for run in group) for key in counted}
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


def _moved_section(title: str, run: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"### {title}",
        "",
        f"Started {run['created']} (1-minute load {run['load_at_start']:.2f}), {run['seconds']:.0f} s. "
        f"Moved more than 20%: {run['moved_over_20pct']} of {run['benchmarks']}, of which flagged "
        f"{run['of_those_flagged']}. Moved less than 5%: {run['moved_under_5pct']}, of which flagged "
        f"{run['of_those_flagged_small']}.",
        "",
        "| benchmark | moved | flags |",
        "| --- | ---: | --- |",
    ]
    return lines + [f"| `{r['name']}` | {r['moved']:+.0%} | {', '.join(r['flags']) or '–'} |" for r in run["rows"]]


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Stability checks: quiet runs, disturbed runs, page faults and cost",
        "",
        "Made by `studies/stability_study.py` (`collect quiet`, `collect loaded`, `cost`, `analyze`): the quick "
        "preset (`pytest bench --preset quick`: 4 CPU variants, batch 64, every phase, SGD; default pytest-benchmark "
        "settings, torch's 2 threads) in fresh processes on the shared 2-core VM (2026-11-28). Flags are re-judged "
        "from the saved figures with the bounds in `lenet/stability.py` as they are now.",
        "",
        *_headline(result),
        *_quiet_values_section(result),
        *_disturbed_sections(result),
        *_faults_section(result["faults_per_call"]),
    ]
    for run in result["slow_malloc"]:
        lines += _slow_malloc_section(run)
    if result["cost_seconds"]:
        lines += _cost_section(result["cost_seconds"])
    return "\n".join(lines) + "\n"


def _headline(result: dict[str, Any]) -> list[str]:
    """The two findings (quiet runs flagged, disturbed runs caught), then how to read them."""
    quiet, totals = result["quiet"], result["disturbed_totals"]
    share = quiet["share_flagged"]
    return [
        f"**Quiet runs** (the 1-minute load below {result['quiet_load_below']} as each started): "
        + ", ".join(
            f"{r['created']} (load {r['load_at_start']:.2f}, {r['seconds']:.0f} s)" for r in result["quiet_runs"]
        )
        + f". **{quiet['flagged']} of {quiet['benchmarks']} benchmarks flagged "
        f"({'–' if share is None else f'{share:.1%}'}; target at most 5%)**; by check: "
        + (", ".join(f"{k} {v}" for k, v in quiet["by_check"].items()) or "none")
        + ".",
        "",
        "**Disturbed runs**, each median against the median of the quiet runs' medians: "
        f"**{totals['of_those_flagged']} of the {totals['moved_over_20pct']} benchmarks that moved more than 20% "
        f"were flagged** (target at least 90%); {totals['of_those_flagged_small']} of the "
        f"{totals['moved_under_5pct']} that moved less than 5% were. With our competitor alone "
        f"({len(result['loaded'])} runs): {_caught(result['loaded_totals'])}; busy with other people's work "
        f"({len(result['busy_by_others'])} runs): {_caught(result['busy_totals'])}.",
        "",
        "Reading it:",
        "",
        "- Each bound keeps a margin over the largest value quiet runs reached (table below); the quiet "
        "benchmarks flagged were disturbed for real (another program started during one; two optimizer steps of "
        "about 90 µs drifted between the first and the last third of their rounds).",
        "- `busy` alone would flag every benchmark of a loaded run, the optimizer steps too, whose medians did not "
        "move: a call far shorter than a scheduler slice is rarely preempted. So `busy` also needs the calls to "
        "have been preempted (involuntary context switches per call at or above `preemptions`): the moved "
        "benchmarks were preempted about once per call or more, the unmoved ones far less.",
        "- The allocator's slow regime is caught by its page faults; a benchmark it slowed without faulting "
        "(the optimizer step there) is not, since no check sees the allocator's mode itself.",
    ]


def _caught(totals: dict[str, int]) -> str:
    """Flagged among the benchmarks that moved more than 20%, and among those that moved less than 5%."""
    return (
        f"{totals['of_those_flagged']} of {totals['moved_over_20pct']}, and "
        f"{totals['of_those_flagged_small']} of {totals['moved_under_5pct']}"
    )


def _bound_texts(bounds: dict[str, Any]) -> dict[str, str]:
    """Each quiet figure's bound, as the table shows it."""
    return {
        "rounds": f"at least {bounds['min_rounds']}",
        "rounds_spread": f"{bounds['spread']:.0%}",
        "rounds_drift": f"±{bounds['drift']:.0%}",
        "steal_share": f"{bounds['steal']:.0%}",
        "busy_share": f"{bounds['busy']:.0%}",
        "involuntary_switches_per_call": f"{bounds['preemptions']:g} (with busy)",
        "minor_faults_per_call": f"{bounds['faults']:g}",
        "major_faults_per_call": "any major fault",
        "phase_sum_ratio": f"{bounds['phase_low']}–{bounds['phase_high']}",
    }


def _quiet_values_section(result: dict[str, Any]) -> list[str]:
    """The quiet runs' figures against their bounds, the phase-sum ratios, and what quiet runs flagged."""
    bound_of = _bound_texts(result["bounds"])
    lines = [
        "",
        "## Quiet runs: the figures each bound was set from",
        "",
        "| figure | benchmarks | min | median | 95th pct | max | bound |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, stats in result["quiet_values"].items():
        lines.append(
            f"| `{key}` | {stats['n']} | {_fmt(stats['min'])} | {_fmt(stats['median'])} | {_fmt(stats['p95'])} | "
            f"{_fmt(stats['max'])} | {bound_of.get(key, '')} |"
        )
    return [
        *lines,
        "",
        "Train step / (forward_train + backward + optimizer_step), per variant over the quiet runs: "
        + "; ".join(f"{v} {min(r):.2f}–{max(r):.2f}" for v, r in result["quiet_phase_ratios"].items())
        + ".",
        "",
        "Flagged in quiet runs:",
        "",
        *[f"- `{line}`" for line in result["quiet"]["flagged_benchmarks"]],
    ]


def _disturbed_sections(result: dict[str, Any]) -> list[str]:
    lines = ["", "## Disturbed runs: which moved, which were flagged"]
    for index, run in enumerate(result["loaded"]):
        title = f"Loaded run {index + 1}: {run['competitors']} CPU-bound competitor on the same CPUs (ours)"
        lines += _moved_section(title, run)
    for index, run in enumerate(result["busy_by_others"]):
        title = f"Busy run {index + 1}: meant to be quiet, but other people's work kept the load up past the wait"
        lines += _moved_section(title, run)
    return lines


def _faults_section(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "## Page faults and CPU per call, every benchmark of the quick preset (quiet runs' medians)",
        "",
        "Per call of the timed function, the untimed set-up of backward and optimizer_step left out. "
        "CPU / wall counts every thread (2 here).",
        "",
        "| benchmark | median (ms) | minor faults / call | major faults / call | CPU / wall | "
        "involuntary switches / call |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    return lines + [
        f"| `{row['name']}` | {_fmt(row['median_ms'])} | {_fmt(row['minor_faults_per_call'])} | "
        f"{_fmt(row['major_faults_per_call'])} | {_fmt(row['cpu_per_wall'], '{:.2f}')} | "
        f"{_fmt(row['involuntary_switches_per_call'])} |"
        for row in rows
    ]


def _slow_malloc_section(run: dict[str, Any]) -> list[str]:
    flagged = {r["name"]: r for r in run["rows"]}
    lines = [
        "",
        f"## The allocator's slow regime, held with `{' '.join(f'{k}={v}' for k, v in SLOW_MALLOC.items())}`",
        "",
        f"Started {run['created']} (1-minute load {run['load_at_start']:.2f}), {run['seconds']:.0f} s; each "
        "median against the quiet runs'.",
        "",
        "| benchmark | minor faults / call | moved | flags |",
        "| --- | ---: | ---: | --- |",
    ]
    return lines + [
        f"| `{row['name']}` | {_fmt(row['minor_faults_per_call'])} | {flagged[row['name']]['moved']:+.0%} | "
        f"{', '.join(flagged[row['name']]['flags']) or '–'} |"
        for row in run["faults"]
        if row["name"] in flagged
    ]


def _cost_section(cost_seconds: dict[str, float]) -> list[str]:
    lines = [
        "",
        "## What the checks cost (once per benchmark, outside the timed rounds, unless said)",
        "",
        "| step | µs |",
        "| --- | ---: |",
    ]
    return lines + [f"| {name} | {seconds * 1e6:.1f} |" for name, seconds in cost_seconds.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    gather = commands.add_parser("collect")
    gather.add_argument("condition", choices=("quiet", "loaded", "slow_malloc"))
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
        write_study(args.output, result, markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
