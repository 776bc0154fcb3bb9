"""Does ab.py's count verdict flag a 1% change in CPU work, and never identical code? Real ab.py runs.

    python studies/count_study.py spin              # instructions per iteration of the extra work (a minute)
    python studies/count_study.py ab 0              # ab.py on identical code (A/A), at its defaults
    python studies/count_study.py ab 0.01 0.02      # ab.py with +1% and +2% extra CPU work in every timed call
    python studies/count_study.py ab 0 0.01 --selection "--variants cpu-contiguous-fp32-eager"  # a smaller selection
    python studies/count_study.py analyze           # seconds

ab F: checks HEAD out in a throwaway git worktree; for F > 0 appends to its
``lenet/workload.py`` a loop of pure-Python work after every timed call, sized per
benchmark to F of that benchmark's instructions (counted by the A/A run, divided by
the loop's instructions per iteration from ``spin``), so the working tree of that
worktree is the "candidate" a user would have. Then runs that worktree's
``scripts/ab.py --baseline HEAD`` at its defaults (``--selection``: these pytest options added to
ab.py's default ones, after its ``--``) and keeps its verdicts, wall time and runs
(results/studies/count_study_runs.json). ``--fresh`` forgets the runs made before.

analyze: per run, the decisions, time verdicts and count verdicts; for the changed
runs, the share of counted benchmarks flagged regressed by counts; and A/A splits: every
way to split the counted processes of identical code (both sides of the A/A run and the
baseline sides of the others) into two disjoint pairs, gated as ab.py gates them, and
the false alarms among them; and one counted process a side with a calibration (ab.py
--count-calibration): every pair of those processes as the calibration, against one process
a side of the rest, and against each process of the changed candidates. Writes
results/studies/count_verdict.json and .md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _study import STUDY_DIR, write_study

from lenet.ab import SIDES
from lenet.analysis.compare import GateOptions, Side, gate
from lenet.cli.ab import DEFAULT_PYTEST
from lenet.runs.files import read_runs
from lenet.source import REPO

RUNS = STUDY_DIR / "count_study_runs.json"
VERDICTS = ("regressed", "improved", "unchanged", "inconclusive")
SPIN = """
def _spin(iterations):
    total = 0
    for index in range(iterations):
        total += index
    return total
"""
# Appended to the candidate's lenet/workload.py: every timed call then does its share of extra work.
PATCH = (
    "\n\n# --- count study: extra CPU work after every timed call ---\n"
    + SPIN
    + """
import dataclasses as _dataclasses
import json as _json
from pathlib import Path as _Path

_EXTRA_WORK = _json.loads((_Path(__file__).parent / "extra_work.json").read_text())
_plain_timed_call = timed_call


def timed_call(workload, phase):
    call = _plain_timed_call(workload, phase)
    iterations = _EXTRA_WORK.get(f"{phase.value}-{workload.variant.id}", 0)
    target = call.target

    def slower(*arguments):
        result = target(*arguments)
        _spin(iterations)
        return result

    return _dataclasses.replace(call, target=slower)
"""
)
_TOTAL = re.compile(rb"^(?:totals|summary):\s*(\d+)", re.MULTILINE)


def spin_cost() -> float:
    """Instructions per iteration of ``_spin``: the difference of two callgrind runs over their iterations."""
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for iterations in (0, 2_000_000):
            out = Path(tmp) / f"callgrind.{iterations}"
            code = SPIN + f"\n_spin({iterations})\n"
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-c", code],
                check=True,
                capture_output=True,
            )
            match = _TOTAL.search(out.read_bytes())
            assert match, f"no total in {out}"
            totals.append(int(match.group(1)))
    return (totals[1] - totals[0]) / 2_000_000


def load_document() -> dict:
    return json.loads(RUNS.read_text()) if RUNS.is_file() else {"runs": {}}


def counted_runs(folder: Path) -> list[Path]:
    """The runs of an ab.py side that carry instruction counts."""
    return [p for p in sorted(folder.glob("*.json")) if '"instructions":' in p.read_text()]


def side_folder(keep: Path, side: str) -> Path:
    """Where ab.py kept a side's counted processes: ``counted/<side>`` now, ``<side>`` before counting ran apart."""
    return keep / "counted" / side if (keep / "counted" / side).is_dir() else keep / side


def base_counts(document: dict) -> dict[str, float]:
    """Each benchmark's instructions per call in the A/A run, keyed as the patch looks them up."""
    keep = Path(document["runs"]["0"]["keep"])
    frame = read_runs(counted_runs(side_folder(keep, "baseline"))).frame
    frame = frame[frame["instructions"].notna()]
    return {f"{row['phase']}-{row['variant']}": float(row["instructions"]) for _, row in frame.iterrows()}


def ab_run(fraction: float, document: dict, selection: list[str], sizes: dict[str, int] | None = None) -> dict:
    keep = Path(tempfile.mkdtemp(prefix=f"lenet-count-study-{fraction:g}-"))
    tree = Path(tempfile.mkdtemp(prefix="lenet-count-tree-")) / "candidate"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), "HEAD"], cwd=REPO, check=True, capture_output=True)
    try:
        extra: dict[str, int] = {}
        if fraction > 0:
            per_iteration = document["spin_instructions_per_iteration"]
            extra = sizes or {
                key: round(fraction * count / per_iteration) for key, count in base_counts(document).items()
            }
            (tree / "lenet" / "extra_work.json").write_text(json.dumps(extra, indent=1))
            with open(tree / "lenet" / "workload.py", "a") as workload:
                workload.write(PATCH)
        command = [
            sys.executable,
            "scripts/ab.py",
            "--baseline",
            "HEAD",
            "--keep",
            str(keep / "runs"),
            "--json",
            str(keep / "ab.json"),
            "--markdown",
            str(keep / "ab.md"),
            *(["--", *DEFAULT_PYTEST, *selection] if selection else []),
        ]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        started = time.monotonic()
        result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - started
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
    (keep / "ab.log").write_text(result.stdout + result.stderr)
    if not (keep / "ab.json").is_file():
        raise RuntimeError(f"ab.py exited {result.returncode} without verdicts; see {keep / 'ab.log'}")
    return {
        "fraction": fraction,
        "selection": selection,
        "exit": result.returncode,
        "seconds": seconds,
        "keep": str(keep / "runs"),
        "extra_iterations": extra,
        "log_tail": (result.stdout + result.stderr).splitlines()[-30:],
        "verdicts": json.loads((keep / "ab.json").read_text()),
    }


def identical_processes(document: dict) -> tuple[list[Path], str, list[str]]:
    """The counted processes of identical code (both sides of the A/A run and the other runs' baselines) at the A/A
    run's commit, that commit, and the other commits left out: another version of the counting counts differently."""
    folders = [side_folder(Path(document["runs"]["0"]["keep"]), "candidate")]
    folders += [side_folder(Path(run["keep"]), "baseline") for run in document["runs"].values()]
    commit = json.loads(counted_runs(folders[0])[0].read_text())["commit_info"].get("id")
    every = [path for folder in folders for path in counted_runs(folder)]
    commits = {path: json.loads(path.read_text())["commit_info"].get("id", "?") for path in every}
    others = sorted({str(found)[:8] for found in commits.values()} - {str(commit)[:8]})
    return [path for path in every if commits[path] == commit], str(commit)[:8], others


def aa_splits(document: dict) -> dict:
    """Every split of identical code's counted processes into two disjoint pairs, gated on counts."""
    processes, commit, others = identical_processes(document)
    outcomes = dict.fromkeys(VERDICTS, 0)
    splits, largest = 0, 0.0
    for first in itertools.combinations(range(len(processes)), 2):
        rest = [i for i in range(len(processes)) if i not in first]
        for second in itertools.combinations(rest, 2):
            if first > second:
                continue  # each unordered split once
            sides = [count_side([processes[i] for i in group]) for group in (first, second)]
            comparison, _ = gate(sides[0], sides[1], GateOptions())
            table = comparison.table[comparison.table["count_verdict"].notna()]
            for verdict in table["count_verdict"]:
                outcomes[verdict] += 1
            largest = max(largest, float((table["count_ratio"] - 1).abs().max()))
            splits += 1
    return {
        "processes": len(processes),
        "splits": splits,
        "count_verdicts": outcomes,
        "largest_change": largest,
        "commit": commit,
        "other_commits": others,
    }


def calibrated_splits(document: dict) -> dict:
    """One counted process a side with a baseline's count calibration (``ab.py --count-processes 1
    --count-calibration``): every pair of identical code's processes as the calibration, against one process a side
    of the rest (A/A), and against each pairing of a changed run's own baseline and candidate processes (+1%, +2%;
    that run may be at another commit, as a calibration made earlier is)."""
    processes, commit, _ = identical_processes(document)
    sides = [count_side([path]) for path in processes]
    changed_runs = {
        key: [[count_side([p]) for p in counted_runs(side_folder(Path(run["keep"]), side))] for side in SIDES]
        for key, run in document["runs"].items()
        if float(key) > 0
    }
    # a calibration's kind: two processes of one tree (as baseline.py calibrate makes it) or of two trees, whose
    # spread then holds the two trees' own offset (instructions.md: how well it works here)
    outcomes: dict[str, dict[str, dict[str, int]]] = {}
    for pair in itertools.combinations(range(len(processes)), 2):
        kind = "one_tree" if len({processes[i].parent for i in pair}) == 1 else "two_trees"
        calibration = count_side([processes[i] for i in pair]).instructions
        rest = [i for i in range(len(processes)) if i not in pair]
        trials = [(sides[a], sides[b], "0") for a, b in itertools.combinations(rest, 2)]
        for key, (baselines, candidates) in changed_runs.items():
            trials += [(baseline, candidate, key) for baseline in baselines for candidate in candidates]
        for baseline, candidate, key in trials:
            comparison, _ = gate(baseline, candidate, GateOptions(), count_noise=calibration)
            tally = outcomes.setdefault(key, {}).setdefault(kind, dict.fromkeys(VERDICTS, 0))
            for verdict in comparison.table["count_verdict"].dropna():
                tally[verdict] += 1
    return {"processes": len(processes), "commit": commit, "count_verdicts": outcomes}


def count_side(paths: list[Path]) -> Side:
    frame = read_runs(paths).frame
    frame = frame[frame["instructions"].notna()]
    names = sorted(frame["name"].unique())
    samples = {n: frame.loc[frame["name"] == n, "median"].tolist() for n in names}
    counts = {n: frame.loc[frame["name"] == n, "instructions"].tolist() for n in names}
    return Side(samples, "study", {}, ("5",), len(paths), counts)


def summarize_run(run: dict) -> dict:
    rows = run["verdicts"]["benchmarks"]
    counted = [r for r in rows if r.get("count_verdict")]
    tally = {
        kind: {v: sum(r[kind] == v for r in rows) for v in ("regressed", "improved", "unchanged", "inconclusive")}
        for kind in ("decision", "verdict", "count_verdict")
    }
    return {
        "fraction": run["fraction"],
        **({"selection": run["selection"]} if run.get("selection") else {}),  # runs at ab.py's defaults have none
        "exit": run["exit"],
        "minutes": run["seconds"] / 60,
        **({"processes": run["verdicts"]["processes"]} if "processes" in run["verdicts"] else {}),
        "benchmarks": len(rows),
        "counted": len(counted),
        "counted_flagged": sum(r["count_verdict"] == "regressed" for r in counted),
        "count_change_median": float(np.median([r["count_ratio"] - 1 for r in counted])) if counted else None,
        "count_change_min": float(min(r["count_ratio"] - 1 for r in counted)) if counted else None,
        "count_threshold_max": float(max(r["count_threshold"] or 0 for r in counted)) if counted else None,
        "count_missed": [  # counted benchmarks of a changed candidate that its counts did not call regressed
            {"benchmark": r["benchmark"], "change": r["count_ratio"] - 1, "threshold": r["count_threshold"]}
            for r in counted
            if run["fraction"] > 0 and r["count_verdict"] != "regressed"
        ],
        "tally": tally,
        "definitive_time_share": 1 - tally["verdict"]["inconclusive"] / len(rows),
        "headline": run["verdicts"]["headline"],
    }


def _how(summaries: list[dict]) -> str:
    """How ab.py was run: at its defaults, or with the selection added to its default pytest options."""
    selections = {" ".join(s.get("selection") or []) for s in summaries}
    if selections == {""}:
        return "at its defaults"
    listed = ", ".join(f"`-- {' '.join(DEFAULT_PYTEST)} {s}`" for s in sorted(selections))
    return f"at its defaults but for the selection {listed}"


def _candidates(summaries: list[dict]) -> str:
    """``identical code and on +1% / +2% CPU work``: what the runs compared."""
    changed = [f"+{s['fraction']:.0%}" for s in summaries if s["fraction"] > 0]
    return "identical code" + (f" and on {' / '.join(changed)} CPU work" if changed else "")


def _time_share(summary: dict) -> str:
    """The share of definitive time verdicts, or why there are none: no time process ran."""
    timed = (summary.get("processes") or {}).get("time", {}).get("per_side")
    if timed is not None and not any(timed.values()):
        return "none (no time process ran: the counts decided every benchmark)"
    return f"{summary['definitive_time_share']:.0%}"


def _cost_lines(summaries: list[dict]) -> list[str]:
    """What each kind of process cost in each run, where ab.py said (wall seconds; the machine may have been busy)."""
    lines = []
    for s in summaries:
        costs = s.get("processes")
        if not costs:
            continue
        kinds = [
            f"{kind} {'+'.join(str(n) for n in cost['per_side'].values())} processes, {cost['wall']:.0f} s"
            if cost["seconds"]
            else f"{kind}: none"
            for kind, cost in costs.items()
        ]
        lines.append(f"- {label(s)}: {'; '.join(kinds)}")
    return ["", "Processes of each kind and their wall time (ab.py's own account):", "", *lines] if lines else []


def label(summary: dict) -> str:
    return "A/A" if summary["fraction"] == 0 else f"+{summary['fraction']:.0%}"


def markdown(document: dict, summaries: list[dict], splits: dict, calibrated: dict) -> str:
    lines = [
        f"# Count verdict: ab.py on {_candidates(summaries)}",
        "",
        f"Real `python scripts/ab.py --baseline HEAD` runs {_how(summaries)} on this machine ({document['created']}). "
        "The changed candidates do extra pure-Python work after every timed call, sized per benchmark to 1% or 2% "
        "of its instructions by a calibration "
        f"({document['spin_instructions_per_iteration']:.1f} instructions per loop iteration, measured under "
        "callgrind over one long loop). The count change in the table is what the counts measured: inside the "
        "benchmarks' short loops an iteration cost less than in the calibration, so the changes came out below "
        "their nominal size. The time verdicts are ab.py's (CPU time, one thread); the A/A splits below pool "
        "the counted processes of identical code from every run.",
        "",
        "Which code was measured: each run started the candidate worktree's own `scripts/ab.py` with "
        "`PYTHONPATH` at that worktree, so the command and the candidate's processes ran the worktree's "
        "`lenet`, and the baseline worktree's processes had their own tree first on `PYTHONPATH`. The fault "
        "by which ab.py measured an installed checkout in place of the tree under test (found later and fixed"
        " in `lenet/source.py`) therefore did not touch these runs: the changed candidates' counts moved by "
        "the amounts in the table, which a tree compared with itself cannot show.",
        "",
        *_runs_table(summaries),
    ]
    verdicts = splits["count_verdicts"]
    lines += [
        "",
        "Time verdicts definitive (not inconclusive): "
        + ", ".join(f"{label(s)} {_time_share(s)}" for s in summaries)
        + ".",
        *_cost_lines(summaries),
        "",
        f"A/A splits of identical code: {splits['processes']} counted processes of the A/A run's commit "
        f"(both its sides and the other runs' baselines), {splits['splits']} ways to split "
        f"them into two disjoint pairs, gated as ab.py gates them: count verdicts {verdicts['regressed']} regressed, "
        f"{verdicts['improved']} improved, {verdicts['unchanged']} unchanged, {verdicts['inconclusive']} "
        f"inconclusive; the largest count change between two pairs was {splits['largest_change']:.3%}."
        + (
            f" Runs made at another commit ({', '.join(splits['other_commits'])}) are left out of the splits: "
            "their processes ran other code, and only their own verdicts compare them."
            if splits["other_commits"]
            else ""
        ),
        "",
        *_calibrated_lines(calibrated),
        *_missed_lines(summaries),
        *[line for note in document.get("notes", []) for line in (note, "")],  # hand-recorded, kept in the runs file
        "Headlines:",
        "",
        *[f"- {label(s)}: {s['headline']}" for s in summaries],
    ]
    return "\n".join(lines) + "\n"


def _calibrated_lines(calibrated: dict) -> list[str]:
    """The verdicts of one counted process a side, with two other processes of identical code as the calibration."""
    tallies = calibrated["count_verdicts"]
    if not tallies:
        return []
    kinds = {"one_tree": "a pair of one tree's processes", "two_trees": "a pair from two trees"}
    rows = [
        f"| {'identical code' if float(key) == 0 else f'+{float(key):.0%} CPU work'} | {kinds[kind]} | "
        + " | ".join(str(tallies[key][kind][v]) for v in VERDICTS)
        + " |"
        for key in sorted(tallies, key=float)
        for kind in kinds
        if kind in tallies[key]
    ]
    return [
        "One counted process a side with a count calibration, as `ab.py --count-processes 1 --count-calibration "
        f"BASELINE` gates them: each pair of the {calibrated['processes']} counted processes of identical code "
        "above as the calibration, against one process a side of the rest (identical code), or against each pairing "
        "of a changed run's own baseline and candidate processes (a calibration made at another commit, as one made "
        "earlier on main is). Count verdicts, one per counted benchmark and trial; `baseline.py calibrate` makes "
        "the first kind of calibration, and a pair from two trees holds the two trees' offset in its spread:",
        "",
        "| candidate | calibration | regressed | improved | unchanged | inconclusive |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
    ]


def _missed_lines(summaries: list[dict]) -> list[str]:
    """What the counts did not flag in a changed candidate, and why: a threshold widened by its processes' spread."""
    missed = [(s, m) for s in summaries for m in s.get("count_missed", [])]
    if not missed:
        return []
    listed = "; ".join(
        f"`{m['benchmark']}` at +{s['fraction']:.0%}: {m['change']:+.2%} against a threshold of ±{m['threshold']:.2%}"
        for s, m in missed
    )
    return [
        f"Not flagged by counts: {listed}. The threshold is 10 times how far a benchmark's counted processes stray, "
        "and at least 0.5%; these processes strayed past 0.05%. ab.py called such a change unchanged when these "
        "runs were made; it now calls a change past 0.5% but within a wider threshold inconclusive, and times it.",
        "",
    ]


def _runs_table(summaries: list[dict]) -> list[str]:
    """One row per ab.py run: its exit, time, decisions, time verdicts and what the counts saw."""
    lines = [
        "| candidate | exit | minutes | decisions (reg / imp / unch / inc) | time verdicts (reg / imp / unch / inc) "
        "| counted benchmarks flagged | count change (median, min) | largest count threshold |",
        "| --- | ---: | ---: | --- | --- | ---: | --- | ---: |",
    ]
    for s in summaries:
        name = "identical code (A/A)" if s["fraction"] == 0 else f"+{s['fraction']:.0%} CPU work"
        tallies = [
            " / ".join(str(s["tally"][kind][v]) for v in ("regressed", "improved", "unchanged", "inconclusive"))
            for kind in ("decision", "verdict")
        ]
        change = f"{s['count_change_median']:+.2%}, {s['count_change_min']:+.2%}" if s["counted"] else "–"
        threshold = f"±{s['count_threshold_max']:.2%}" if s["counted"] else "–"
        lines.append(
            f"| {name} | {s['exit']} | {s['minutes']:.1f} | {tallies[0]} | {tallies[1]} | "
            f"{s['counted_flagged']} of {s['counted']} | {change} | {threshold} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("spin")
    runs = sub.add_parser("ab")
    runs.add_argument("fractions", type=float, nargs="+")
    runs.add_argument("--selection", type=str.split, default=[], help="pytest options added to ab.py's defaults")
    runs.add_argument("--fresh", action="store_true", help="forget the runs made before")
    runs.add_argument(
        "--sizes-from",
        type=Path,
        help="a count_study_runs.json whose run at the same fraction sized the extra work: this run need not wait "
        "for an A/A run's counts (counts of one benchmark agree between versions of the counting within 0.2%%)",
    )
    sub.add_parser("analyze")
    args = parser.parse_args(argv)
    document = load_document()
    document["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if args.command == "spin":
        document["spin_instructions_per_iteration"] = spin_cost()
        write_study(RUNS, document)
    elif args.command == "ab":
        if args.fresh:
            document["runs"] = {}
        for fraction in args.fractions:
            sizes = json.loads(args.sizes_from.read_text())["runs"][f"{fraction:g}"] if args.sizes_from else None
            run = ab_run(fraction, document, args.selection, sizes and sizes["extra_iterations"])
            document["runs"][f"{fraction:g}"] = {**run, "sized_from": str(args.sizes_from)} if sizes else run
            write_study(RUNS, document)
            print(f"ab.py with +{fraction:.0%}: {document['runs'][f'{fraction:g}']['seconds'] / 60:.1f} min")
    else:
        summaries = [summarize_run(run) for _, run in sorted(document["runs"].items(), key=lambda kv: float(kv[0]))]
        splits, calibrated = aa_splits(document), calibrated_splits(document)
        write_study(
            STUDY_DIR / "count_verdict.json",
            {"created": document["created"], "runs": summaries, "aa_splits": splits, "calibrated_splits": calibrated},
            markdown(document, summaries, splits, calibrated),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
