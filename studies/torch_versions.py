"""torch 2.13.0 against the newest torch pip installs here (2.14.1) and against 2.12.1, by scripts/ab.py.

    python studies/torch_versions.py run --python 2.12.1=VENV/bin/python --python 2.13.0=... --python 2.14.1=... OUT
    python studies/torch_versions.py analyze OUT [--installs installs.json] [--note TEXT]

run: each step of STEPS (or of ``--steps``) is one ``scripts/ab.py --baseline-python A
--candidate-python B`` of this checkout, one after another (two at once would disturb each
other's time processes; counts do not mind), keeping its runs in ``OUT/<step>/`` and its
verdicts in ``OUT/<step>.json``; ``OUT/steps.tsv`` gets a line per step (name, wall seconds,
exit status, UTC time it ended, the ab.py options).

analyze: per step, each benchmark's decision, its count verdict and change, its time verdict
and change with the interval, the processes that ran and each side's torch; with
``--installs`` (a JSON list of {"version", "seconds", "bytes", "packages"}), what installing
each venv cost. Writes results/studies/torch_versions.json and .md.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from _study import STUDY_DIR, write_study

from lenet.source import REPO

EAGER = [
    *("--variants", "cpu-contiguous-fp32-eager", "--phases", "forward_inference,train_step"),
    *("--batch-sizes", "64", "--optimizers", "sgd", "--threads", "1", "--no-metrics"),
]
FOUR_EAGER = [
    *("--variants", "cpu-contiguous-fp32-eager,cpu-channels_last-fp32-eager", "--phases"),
    *("forward_inference,train_step", "--batch-sizes", "64", "--optimizers", "sgd", "--threads", "1", "--no-metrics"),
]
# Counting a batch-64 train step under valgrind passed the counter's time limit on the loaded machine: forward only.
FORWARD = [*EAGER[:2], "--phases", "forward_inference", *EAGER[4:]]
COMPILED = [
    *("--variants", "cpu-contiguous-fp32-compile", "--phases", "train_step"),
    *("--batch-sizes", "64", "--optimizers", "sgd", "--threads", "1", "--no-metrics"),
]
# Time processes only (counts come from their own steps), three a side: the fewest a time verdict takes.
TIMED = ["--instructions", "off", "--min-processes", "3", "--max-processes", "3", "--time-budget", "2400"]
# (name, baseline torch, candidate torch, ab.py options, pytest options)
STEPS = (
    ("counts-four-eager-2.13-vs-2.14", "2.13.0", "2.14.1", [], FOUR_EAGER),
    ("counts-forward-2.12-vs-2.13", "2.12.1", "2.13.0", [], FORWARD),
    ("time-eager-2.13-vs-2.14", "2.13.0", "2.14.1", TIMED, EAGER),
    ("time-eager-2.12-vs-2.13", "2.12.1", "2.13.0", TIMED, EAGER),
    ("time-compiled-2.13-vs-2.14", "2.13.0", "2.14.1", TIMED, COMPILED),
    ("time-compiled-2.12-vs-2.13", "2.12.1", "2.13.0", TIMED, COMPILED),
)


def ab_options(step: tuple[str, str, str, list[str], list[str]], pythons: dict[str, str], out: Path) -> list[str]:
    name, baseline, candidate, options, pytest_options = step
    return [
        *("--keep", str(out / name), "--json", str(out / f"{name}.json")),
        *("--baseline-python", pythons[baseline], "--candidate-python", pythons[candidate]),
        *options,
        "--",
        *pytest_options,
    ]


def run(pythons: dict[str, str], out: Path, names: list[str]) -> None:
    """The steps named (all by default), one after another; a line per step in ``out/steps.tsv``."""
    out.mkdir(parents=True, exist_ok=True)
    for step in [step for step in STEPS if not names or step[0] in names]:
        options = ab_options(step, pythons, out)
        started = time.monotonic()
        with (out / f"{step[0]}.md").open("w") as summary, (out / f"{step[0]}.err").open("w") as log:
            status = subprocess.run(
                [sys.executable, str(REPO / "scripts" / "ab.py"), *options], stdout=summary, stderr=log, cwd=REPO
            ).returncode
        ended = datetime.now(timezone.utc).strftime("%H:%M:%S")
        line = f"{step[0]}\t{time.monotonic() - started:.0f}\t{status}\t{ended}\t{' '.join(options)}\n"
        with (out / "steps.tsv").open("a") as steps:
            steps.write(line)
        print(line, end="", flush=True)


def read_steps(out: Path) -> list[dict[str, Any]]:
    """Each finished step: its line of steps.tsv and the verdicts ab.py wrote (None where it wrote none)."""
    steps = []
    for line in (out / "steps.tsv").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) < 5:
            continue
        name, seconds, status, ended, options = parts[:5]
        verdicts = out / f"{name}.json"
        ab = json.loads(verdicts.read_text()) if verdicts.is_file() else None
        options = without_paths(name, options)
        steps.append({"name": name, "seconds": int(seconds), "status": int(status), "ended": ended, "options": options})
        steps[-1]["verdicts"] = summarize(ab) if ab is not None else None
    return sorted(steps, key=lambda step: (step_index(step["name"]), step["name"]))


def step_index(name: str) -> int:
    """Where a step comes in STEPS (a suffixed name, "...-rerun", with its step); unknown ones last."""
    return next((index for index, step in enumerate(STEPS) if name.startswith(step[0])), len(STEPS))


def without_paths(name: str, options: str) -> str:
    """The ab.py options of a step as a reader would type them: no folder of the machine that ran it."""
    versions = STEPS[step_index(name)][1:3] if step_index(name) < len(STEPS) else ("A", "B")
    options = re.sub(r"--keep \S+ --json \S+ ", "", options)
    for side, version in zip(("baseline", "candidate"), versions, strict=True):
        options = re.sub(rf"--{side}-python \S+", f"--{side}-python TORCH_{version}/bin/python", options)
    return options


def summarize(ab: dict[str, Any]) -> dict[str, Any]:
    """What the page needs of one ab.py JSON: each benchmark's evidence, the torches, the processes and headline."""
    keep = (
        *("benchmark", "decision", "decided_by", "verdict", "ratio", "ci_low", "ci_high", "n_baseline"),
        *("n_candidate", "count_verdict", "count_ratio", "count_threshold", "count_processes", "left_out"),
    )
    return {
        "headline": ab["headline"],
        "software_differences": ab.get("software_differences", {}),
        "environments": {
            side: {k: env.get(k) for k in ("python", "torch_version", "build", "torch_git_version")}
            for side, env in ab.get("environments", {}).items()
        },
        "processes": ab.get("processes", {}),
        "benchmarks": [{k: row.get(k) for k in keep} for row in ab["benchmarks"]],
    }


def change(ratio: float | None, digits: int = 1) -> str:
    return "–" if ratio is None else f"{(ratio - 1) * 100:+.{digits}f}%"


def benchmark_row(row: dict[str, Any], timed: bool) -> str:
    """One benchmark's line; ``timed``: whether time processes ran (counted processes' times decide nothing)."""
    counts = "not counted"
    if row["count_verdict"] is not None:
        limit = row["count_threshold"]
        why = f"±{limit * 100:.1f}%" if limit is not None else f"{row['count_processes']} counted: too few"
        counts = f"{row['count_verdict']} {change(row['count_ratio'], 3)} ({why})"
    time_ = f"{row['verdict']} {change(row['ratio'])} [{change(row['ci_low'])}, {change(row['ci_high'])}]"
    if not timed or not row["n_baseline"] or not row["n_candidate"]:
        time_ = "not timed"
    processes = f"{row['n_baseline']} / {row['n_candidate']}"
    name = row["benchmark"].replace("test_", "")
    return f"| `{name}` | **{row['decision']}** ({row['decided_by']}) | {counts} | {time_} | {processes} |"


def step_section(step: dict[str, Any]) -> list[str]:
    lines = [f"### {step['name']}", ""]
    verdicts = step["verdicts"]
    if verdicts is None:
        return [*lines, f"No verdicts: ab.py exited {step['status']} after {step['seconds']} s.", ""]
    sides = verdicts["environments"]
    if sides:
        torches = " → ".join(f"{sides[s]['torch_version']} ({sides[s]['build']})" for s in ("baseline", "candidate"))
    else:  # verdicts by compare.py over a stopped A/B's kept runs: no interpreters to name
        torches = " → ".join(verdicts["software_differences"].get("torch_version", ["?", "?"]))
    counted, timed = verdicts["processes"].get("counted"), verdicts["processes"].get("time")
    phases = f" (counted processes {counted['wall']:.0f} s, time processes {timed['wall']:.0f} s)" if counted else ""
    lines += [
        f"torch {torches}; exit {step['status']}, {step['seconds']} s in all{phases}. {verdicts['headline']}",
        "",
        "| benchmark | decision (by) | instructions: verdict, change (threshold) | time: verdict, change [95% CI] "
        "| time processes |",
        "| --- | --- | --- | --- | ---: |",
        *(benchmark_row(row, bool(timed and timed["wall"])) for row in verdicts["benchmarks"]),
        "",
        f"`python scripts/ab.py {step['options']}`",
        "",
    ]
    return lines


def install_section(installs: list[dict[str, Any]]) -> list[str]:
    if not installs:
        return []
    lines = [
        "## What installing each torch cost",
        "",
        "| torch | venv size | install wall time | what pip installed |",
        "| --- | ---: | ---: | --- |",
    ]
    for item in installs:
        size = f"{item['bytes'] / 1e9:.1f} GB"
        lines.append(f"| {item['version']} | {size} | {item['seconds']} s | {item['packages']} |")
    return [*lines, ""]


def markdown(document: dict[str, Any]) -> str:
    lines = [
        "# torch 2.12.1, 2.13.0 and 2.14.1 on one CPU, by scripts/ab.py",
        "",
        f"Made by `studies/torch_versions.py` on {document['created']}. {document['note']}",
        "",
        *install_section(document["installs"]),
        "## Verdicts",
        "",
        "Each step is one `ab.py` across two environments (`docs/environments.md`): counted processes "
        "side by side under valgrind, then time processes (CPU time, one thread, pinned) in ABBA order. "
        "A change is the candidate over the baseline: + is slower.",
        "",
    ]
    for step in document["steps"]:
        lines += step_section(step)
    return "\n".join(lines).rstrip() + "\n"


def analyze(out: Path, installs: Path | None, note: str) -> None:
    document = {
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "note": note,
        "installs": json.loads(installs.read_text()) if installs else [],
        "steps": read_steps(out),
    }
    write_study(STUDY_DIR / "torch_versions.json", document, markdown(document))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    running = commands.add_parser("run")
    running.add_argument("--python", action="append", default=[], metavar="VERSION=PATH", required=True)
    running.add_argument("--steps", default="", help="comma-separated step names (default: all, in order)")
    running.add_argument("out", type=Path)
    analyzing = commands.add_parser("analyze")
    analyzing.add_argument("out", type=Path)
    analyzing.add_argument("--installs", type=Path)
    analyzing.add_argument("--note", default="")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(dict(item.split("=", 1) for item in args.python), args.out, [n for n in args.steps.split(",") if n])
    else:
        analyze(args.out, args.installs, args.note)


if __name__ == "__main__":
    main()
