"""Bisect by time only (a compiled variant, where counts do not apply): is the culprit named? Real and replayed.

    python studies/bisect_time_study.py real [--change conv2_kept] [--commits 16] [--culprit 11] [--processes 3]
    python studies/bisect_time_study.py replay [--trials 200] [--step 1.10]

``real``: one bisection end to end, as ``bisect_study.py`` makes them (a clone of HEAD with
``--commits`` commits on top, the ``--culprit``-th makes ``Net.forward`` do more: ``--change``, a second conv2
call that torch.compile keeps by default, or ``fc1``, a second fc1 call times zero, which it does not),
run by ``scripts/culprit.py --instructions off --processes N`` with the compiled selection below:
every probe is N fresh ``pytest bench`` processes, timed. Keeps its finding, its wall time and
every process median it measured (per commit, with whether the commit has the change).

``replay``: no new measurement. The SAME decision code (:func:`lenet.bisect.bisect`, as culprit.py
calls it) is driven with real process medians of the compiled variant instead of new processes:
each commit "measured" draws N process medians (with replacement) from a pool of real ones, those
at or after the culprit multiplied by ``--step``. The pool: every process the real bisections
measured, each over the median of its group (the commits without the change, or those with it).
Trials: 16 commits, the culprit at a random one; several N. The real runs' saved processes are
also decided again by the decision code as it is now. Writes results/studies/bisect_time_study.json
and .md (the real runs' entries are kept across invocations).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _study import STUDY_DIR, write_study
from bisect_study import build_history, run_culprit

from lenet.bisect import MORE_BATCHES, Measurement, bisect
from lenet.runs.files import read_runs

SELECTION = ["--variants", "cpu-contiguous-fp32-compile", "--phases", "forward_inference", "--batch-sizes", "64"]
SELECTION += ["--threads", "1"]
OUTPUT = STUDY_DIR / "bisect_time_study.json"
BENCHMARK = "bench/test_forward.py::test_forward_inference[cpu-contiguous-fp32-compile-b64]"
PROCESSES = (3, 5, 8, 12)
QUIET_LOAD = 2.0  # a real bisection that started below this 1-minute load (on 2 CPUs) ran on a quiet machine


def process_medians(keep: Path, shas: list[str], culprit: int) -> dict[str, dict]:
    """Per commit measured: whether it has the change, and the time medians of its processes."""
    measured = {}
    for index, sha in enumerate(shas):
        folder = keep / sha
        if not folder.is_dir():
            continue
        medians = [r.stats.median for run in read_runs([folder]).runs for r in run.results]
        measured[sha] = {"index": index, "changed": index >= culprit, "medians": medians}
    return measured


def real(change: str, commits: int, culprit: int, processes: int, keep: Path) -> dict:
    """One bisection end to end, timed processes only."""
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bisect-time-study-") as folder:
        repo = Path(folder) / "clone"
        shas = build_history(repo, change, commits, culprit)
        found = Path(folder) / "found.json"
        options = ["--instructions", "off", "--processes", str(processes), "--", *SELECTION]
        result, seconds = run_culprit(repo, shas, keep, found, options)
        document = json.loads(found.read_text()) if found.is_file() else {}
    named = document.get("culprit")
    return {
        "change": change,
        "commits": commits,
        "culprit_index": culprit,
        "processes_per_commit": processes,
        "exit": result.returncode,
        "named": named,
        "correct": named == shas[culprit],
        "named_index": shas.index(named) if named in shas else None,
        "probes": len(document.get("probes", [])),
        "probe_verdicts": [p["verdict"] for p in document.get("probes", [])],
        "commits_measured": document.get("commits_measured"),
        "step_percent": document.get("step"),
        "evidence": document.get("evidence"),
        "seconds": round(seconds, 1),
        "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "measured": process_medians(keep, shas, culprit),
        "stderr_tail": result.stderr.strip().splitlines()[-8:],
    }


def real_pool(entries: list[dict]) -> np.ndarray:
    """Every process median the real bisections measured, each over the median of its group (the commits
    without the change, or those with it, of one bisection): the noise's shape, whatever the step."""
    pool = []
    for entry in entries:
        for changed in (False, True):
            group = [m for c in entry["measured"].values() if c["changed"] is changed for m in c["medians"]]
            if group:
                pool.extend(np.asarray(group) / np.median(group))
    return np.asarray(pool)


def saved_pools(entries: list[dict]) -> dict[str, np.ndarray]:
    """The real process medians the replays draw from, each pool over its own median (see the docstring)."""
    stability = json.loads((STUDY_DIR / "stability_samples.json").read_text())["runs"]
    name = BENCHMARK.rsplit("::", 1)[-1]
    compiled = {run["condition"]: [] for run in stability}
    for run in stability:
        compiled[run["condition"]].append(run["benchmarks"][name]["median"])
    every = [m for medians in compiled.values() for m in medians]
    cpu = json.loads((STUDY_DIR / "gate_study_cputime_samples.json").read_text())["processes"]["A"]
    eager = [p["test_forward_inference[cpu-contiguous-fp32-eager-b64]"]["median"] for p in cpu]
    quiet = real_pool([e for e in entries if e["load_average_1min"][0] < QUIET_LOAD])
    loaded = real_pool([e for e in entries if e["load_average_1min"][0] >= QUIET_LOAD])
    pools = {
        f"compiled, the stability study's quiet processes ({len(compiled['quiet'])})": compiled["quiet"],
        f"compiled, every stability-study process: quiet, loaded, slow allocator ({len(every)})": every,
        f"compiled, this study's real bisections on a quiet VM ({quiet.size})": list(quiet),
        f"compiled, this study's real bisections on the loaded VM ({loaded.size})": list(loaded),
        f"eager (not compiled), CPU time, 1 thread: the CPU-time gate study's A processes ({len(eager)})": eager,
    }
    return {label: np.asarray(v) / np.median(v) for label, v in pools.items() if len(v)}


def replay_trial(pool: np.ndarray, step: float, processes: int, commits: int, rng: np.random.Generator) -> dict:
    """One bisection of ``commits`` commits driven by :func:`lenet.bisect.bisect` on resampled real processes,
    with culprit.py's ``more`` (another batch of processes for an undecided commit)."""
    culprit = int(rng.integers(1, commits + 1))  # commits[culprit - 1] is the first with the step
    names = [f"c{index:02d}" for index in range(commits + 1)]  # names[0] is good
    drawn: dict[str, list[float]] = {}

    def more(name: str) -> Measurement:
        factor = step if names.index(name) >= culprit else 1.0
        drawn.setdefault(name, []).extend(float(v) * factor for v in rng.choice(pool, size=processes))
        return Measurement(name, "time", {BENCHMARK: tuple(drawn[name])})

    def measure(name: str) -> Measurement:
        return Measurement(name, "time", {BENCHMARK: tuple(drawn[name])}) if name in drawn else more(name)

    result = bisect(names[1:], measure(names[0]), measure(names[-1]), measure, more=more)
    named = names.index(result.culprit) if result.culprit else None
    return {
        "culprit": culprit,
        "named": named,
        "step_seen": bool(result.step),
        "probes": len(result.probes),
        "processes": sum(len(v) for v in drawn.values()),
    }


def redecide(entry: dict) -> dict:
    """A real bisection's saved processes decided again by the decision code as it is now: the commit it
    names, or the first commit it would have had to measure (or measure more) that the real run did not."""
    by_index = {commit["index"]: commit["medians"] for commit in entry["measured"].values()}
    names = [f"c{index:02d}" for index in range(entry["commits"] + 1)]
    missing: list[int] = []

    def measure(name: str) -> Measurement:
        index = names.index(name)
        if index not in by_index:
            missing.append(index)
            return Measurement(name, "time", problem="not measured by the real run")
        return Measurement(name, "time", {BENCHMARK: tuple(by_index[index])})

    def more(name: str) -> Measurement:  # another batch, where the real run measured fewer than the code allows
        if len(by_index.get(names.index(name), [])) < entry["processes_per_commit"] * (1 + MORE_BATCHES):
            missing.append(names.index(name))
        return measure(name)

    result = bisect(names[1:], measure(names[0]), measure(names[-1]), measure, more=more)
    named = names.index(result.culprit) if result.culprit and not missing else None
    return {"named_index": named, "would_measure": missing[:1], "step_seen": bool(result.step)}


def replay(entries: list[dict], trials: int, step: float, seed: int, commits: int = 16) -> dict:
    """Per pool and processes a commit: how often the culprit is named, or a neighbour, and the cost."""
    rng = np.random.default_rng(seed)
    pools = {}
    for label, pool in saved_pools(entries).items():
        rows = {}
        for processes in PROCESSES:
            done = [replay_trial(pool, step, processes, commits, rng) for _ in range(trials)]
            probes = [t["probes"] for t in done]
            rows[str(processes)] = {
                "trials": trials,
                "exact": sum(t["named"] == t["culprit"] for t in done),
                "within_one": sum(t["named"] is not None and abs(t["named"] - t["culprit"]) <= 1 for t in done),
                "no_step_seen": sum(not t["step_seen"] for t in done),
                "probes_mean": round(float(np.mean(probes)), 2),
                "processes_mean": round(float(np.mean([t["processes"] for t in done])), 1),
            }
        spread = float(np.std(pool) / np.mean(pool))
        pools[label] = {"size": int(pool.size), "cv": round(spread, 3), "by_processes": rows}
    return {"step": step, "commits": commits, "pools": pools}


def _redecided_lines(document: dict) -> list[str]:
    """The real runs' saved processes decided again by today's decision code, where the study did that."""
    redecided = [e["decided_now"] for e in document["real"] if "decided_now" in e]
    if not redecided:
        return []
    return [
        "",
        "The same saved processes decided again by the decision code as it is now (a commit's value is the "
        "lower quartile of its processes): "
        + "; ".join(
            f"names commit {d['named_index']}"
            if d["named_index"] is not None
            else f"would measure commit {d['would_measure'][0]} next, or more (the real run did not)"
            if d["would_measure"]
            else "no step seen"
            for d in redecided
        )
        + ".",
    ]


def markdown(document: dict) -> str:
    lines = [
        "# Bisect by time only: a compiled variant, a step among 16 commits",
        "",
        f"Made by `python studies/bisect_time_study.py` (last on {document['created']}), selection "
        f"`{' '.join(SELECTION)}`, timed processes only (`--instructions off`), on a 2-core VM. The load column "
        f"says how busy it was: a run that started below a 1-minute load of {QUIET_LOAD:g} had the machine to "
        "itself; the others shared it with other work, and their wall times are a loaded machine's.",
        "",
        "## Real bisections, end to end",
        "",
        "| change | commits | culprit at | processes a commit | named (index) | correct | probes | verdicts "
        "| step seen | wall time | 1-min load, start / end |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in document["real"]:
        step = ", ".join(f"{v:+.1f}%" for v in (e["step_percent"] or {}).values()) or "none"
        lines.append(
            f"| {e.get('change', 'fc1')} | {e['commits']} | {e['culprit_index']} | {e['processes_per_commit']} | "
            f"{e['named_index']} | "
            f"{e['correct']} | {e['probes']} | {', '.join(e['probe_verdicts'])} | {step} | "
            f"{e['seconds'] / 60:.1f} min | {' / '.join(map(str, e['load_average_1min']))} |"
        )
    lines += ["", *document.get("notes", [])]  # hand-recorded readings of the real runs, kept in the JSON
    lines += _redecided_lines(document)
    replayed = document.get("replay")
    if replayed:
        lines += [
            "",
            "## Replays: the same decision code on resampled real processes",
            "",
            f"{replayed['commits']} commits, the culprit at a random one, a x{replayed['step']} step; each commit "
            "draws its processes (with replacement) from one pool of real process medians, each over its pool's "
            "median, and those at or after the culprit are multiplied by the step. Named or a neighbour: the "
            "culprit lies in a range of 2 commits around the one named.",
            "",
            "| pool (processes) | CV | processes a commit | culprit named | named or a neighbour | no step seen "
            "| probes (mean) | processes in all, ends and extra batches included (mean) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for label, pool in replayed["pools"].items():
            for processes, r in pool["by_processes"].items():
                n = r["trials"]
                lines.append(
                    f"| {label} | {pool['cv']:.1%} | {processes} | {r['exact'] / n:.0%} | {r['within_one'] / n:.0%} "
                    f"| {r['no_step_seen'] / n:.0%} | {r['probes_mean']} | {r['processes_mean']} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("real", "replay"))
    parser.add_argument("--commits", type=int, default=16)
    parser.add_argument("--culprit", type=int, default=11)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--change", choices=("conv2_kept", "fc1"), default="conv2_kept", help="what the culprit adds")
    parser.add_argument("--keep", type=Path, default=None, help="where measurements are kept (default: temporary)")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--step", type=float, default=1.10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    document = json.loads(OUTPUT.read_text()) if OUTPUT.is_file() else {}
    document.setdefault("real", [])
    if args.mode == "real":
        with tempfile.TemporaryDirectory(prefix="bisect-time-keep-") as scratch:
            entry = real(args.change, args.commits, args.culprit, args.processes, args.keep or Path(scratch))
        print(json.dumps({k: v for k, v in entry.items() if k != "measured"}, indent=1), flush=True)
        document["real"].append(entry)
    else:
        document["replay"] = replay(document["real"], args.trials, args.step, args.seed)
        for entry in document["real"]:
            entry["decided_now"] = redecide(entry)
    document["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_study(OUTPUT, document, markdown(document))


if __name__ == "__main__":
    main()
