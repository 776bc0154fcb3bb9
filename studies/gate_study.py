"""How often does the gate cry wolf, and how large a slowdown does it catch? A study with real runs.

    python studies/gate_study.py collect [--a 48 --b 24 --slowdowns 0.05,0.10,0.20]   # minutes: see the study file
    python studies/gate_study.py analyze                                            # seconds

collect: runs the suite in fresh processes on this machine: unchanged code (A), and
code whose forward pass does extra CPU work worth 5%, 10%, 20% of each benchmark's
median (B; studies/inject_slowdown.py), interleaved so that the machine's
moods hit every group alike. The medians of each process are kept in
results/studies/gate_study_samples.json.

analyze: draws comparisons of n processes against n from those samples:
* A/A (two disjoint groups of A): every "regressed" verdict is a false alarm;
* A/B at each slowdown: every "regressed" verdict is a detection;
and applies pytest-benchmark's --benchmark-compare-fail rules (min:5%, median:10%,
mean:10%) to single-run pairs of the same runs for comparison. Writes
results/studies/gate_study.json and gate_study.md.
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
from _study import STUDY_DIR

from lenet.analysis.compare import GateOptions, Side, compare
from lenet.process_setup import ProcessSetup
from lenet.runs.files import read_runs
from lenet.source import REPO
from lenet.suite import run_suite

STUDY = STUDY_DIR
SELECTION = [
    "--variants",
    "cpu-contiguous-fp32-eager,cpu-channels_last-fp32-eager",
    "--phases",
    "forward_inference,forward_train,train_step",
    "--batch-sizes",
    "16,64",
    "--optimizers",
    "sgd",
    "--benchmark-max-time=0.5",
]
PYTEST_RULES = (("min", 0.05), ("median", 0.10), ("mean", 0.10))


def samples_file(name: str) -> Path:
    return STUDY / (f"gate_study_{name}_samples.json" if name else "gate_study_samples.json")


def run_process(
    group: str, extra: dict[str, float], output: Path, measure: list[str], setup: ProcessSetup
) -> dict[str, dict[str, float]]:
    env = {"PYTHONPATH": str(REPO / "studies"), "LENET_STUDY_EXTRA": json.dumps(extra)}
    args = [*SELECTION, *measure, "-p", "inject_slowdown"] if group != "A" else [*SELECTION, *measure]
    status = run_suite(output, args, tree=REPO, env=env if group != "A" else None, setup=setup)
    if not output.exists():
        raise RuntimeError(f"a {group} process wrote no results (pytest exit {status})")
    frame = read_runs([output]).frame
    return {row["name"]: {k: float(row[k]) for k in ("min", "median", "mean")} for _, row in frame.iterrows()}


def collect(
    a_processes: int, b_processes: int, slowdowns: list[float], measure: list[str], name: str, setup: ProcessSetup
) -> None:
    samples: dict[str, list[dict]] = {"A": []}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        pilot = 4  # A processes first: their medians size the extra work of the B groups
        for index in range(pilot):
            samples["A"].append(run_process("A", {}, Path(tmp) / f"a{index}.json", measure, setup))
        medians = {name: float(np.median([s[name]["median"] for s in samples["A"]])) for name in samples["A"][0]}
        groups = {f"B{round(s * 100):02d}": {n: s * m for n, m in medians.items()} for s in slowdowns}
        for group in groups:
            samples[group] = []
        # Interleave: A, B05, A, B10, A, B20, ... until every group is full.
        order = []
        remaining = {"A": a_processes - pilot, **{g: b_processes for g in groups}}
        while any(remaining.values()):
            for group in groups:
                for member in ("A", group):
                    if remaining[member] > 0:
                        order.append(member)
                        remaining[member] -= 1
        for index, group in enumerate(order):
            extra = groups.get(group, {})
            samples[group].append(run_process(group, extra, Path(tmp) / f"{index}.json", measure, setup))
            elapsed = time.monotonic() - started
            print(f"{index + 1}/{len(order)} {group} ({elapsed:.0f} s)", file=sys.stderr, flush=True)
    document = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "selection": SELECTION + measure,
        "process_setup": setup.label,
        "slowdowns": {g: s for g, s in zip(groups, slowdowns, strict=True)},
        "extra_seconds": groups,
        "collect_seconds": time.monotonic() - started,
        "processes": samples,
    }
    STUDY.mkdir(parents=True, exist_ok=True)
    samples_file(name).write_text(json.dumps(document, indent=1) + "\n")
    print(f"wrote {samples_file(name)}")


def side(processes: list[dict], field: str = "median") -> Side:
    names = processes[0].keys()
    return Side({n: [p[n][field] for p in processes] for n in names}, "study", {}, ("5",), len(processes))


def verdict_counts(base: list[dict], cand: list[dict], options: GateOptions) -> dict[str, int]:
    table = compare(side(base), side(cand), alpha=options.alpha, threshold=options.threshold).table
    return {v: int((table["verdict"] == v).sum()) for v in ("regressed", "improved", "unchanged", "inconclusive")}


def pytest_benchmark_rule(base: dict, cand: dict, field: str, limit: float) -> int:
    """pytest-benchmark's --benchmark-compare-fail=FIELD:PCT% on one run each: benchmarks failed."""
    return sum((cand[n][field] - base[n][field]) / base[n][field] > limit for n in base)


def analyze(document: dict, n: int, draws: int, seed: int) -> dict:
    groups = document["processes"]
    a = groups["A"]
    rng = np.random.default_rng(seed)
    options = GateOptions()
    results: dict[str, dict] = {"n_per_side": n, "draws": draws, "benchmarks": len(a[0])}
    aa = {"regressed": 0, "improved": 0, "unchanged": 0, "inconclusive": 0}
    for _ in range(draws):
        picked = rng.permutation(len(a))[: 2 * n]
        counts = verdict_counts([a[i] for i in picked[:n]], [a[i] for i in picked[n:]], options)
        for key, value in counts.items():
            aa[key] += value
    total = sum(aa.values())
    results["A/A"] = {**aa, "comparisons": total, "false_regression_rate": aa["regressed"] / total}
    for group, slowdown in document["slowdowns"].items():
        b = groups[group]
        ab = {"regressed": 0, "improved": 0, "unchanged": 0, "inconclusive": 0}
        for _ in range(draws):
            base = [a[i] for i in rng.choice(len(a), n, replace=False)]
            cand = [b[i] for i in rng.choice(len(b), n, replace=False)]
            for key, value in verdict_counts(base, cand, options).items():
                ab[key] += value
        total = sum(ab.values())
        measured = np.median(
            [np.median([p[k]["median"] for p in b]) / np.median([p[k]["median"] for p in a]) for k in a[0]]
        )
        results[f"A/B {slowdown:.0%}"] = {
            **ab,
            "comparisons": total,
            "detection_rate": ab["regressed"] / total,
            "measured_slowdown": float(measured - 1),
        }
    rules = {}
    for field, limit in PYTEST_RULES:
        pairs = [(a[i], a[j]) for i in range(len(a)) for j in range(len(a)) if i != j]
        false = sum(pytest_benchmark_rule(x, y, field, limit) for x, y in pairs) / (len(pairs) * len(a[0]))
        entry = {"A/A false regression rate": false}
        for group, slowdown in document["slowdowns"].items():
            b = groups[group]
            hits = sum(pytest_benchmark_rule(x, y, field, limit) for x in a for y in b)
            entry[f"detection at {slowdown:.0%}"] = hits / (len(a) * len(b) * len(a[0]))
        rules[f"{field}:{limit:.0%}"] = entry
    results["pytest-benchmark --benchmark-compare-fail (one run vs one run)"] = rules
    aa_cv = [np.std([p[k]["median"] for p in a]) / np.mean([p[k]["median"] for p in a]) for k in a[0]]
    results["process_median_cv"] = {
        "min": float(np.min(aa_cv)),
        "median": float(np.median(aa_cv)),
        "max": float(np.max(aa_cv)),
    }
    return results


def write_markdown(all_results: list[dict], document: dict) -> str:
    lines = [
        "# Gate study",
        "",
        "Rate: false regressions (A/A) or detections (A/B) among all comparisons. Definitive: the share that "
        "is not inconclusive (an A/A comparison called unchanged is definitive and right).",
        "",
        f"Real runs on this machine ({document['created']}): "
        f"{len(document['processes']['A'])} processes of unchanged code (A), "
        + ", ".join(
            f"{len(document['processes'][g])} with {s:.0%} extra work ({g})" for g, s in document["slowdowns"].items()
        )
        + f"; {document['collect_seconds'] / 60:.0f} min. Selection: `{' '.join(document['selection'])}`"
        + (f"; processes: {document['process_setup']}." if "process_setup" in document else "."),
        "",
        "Which code was measured: every process ran `pytest bench` of this checkout through "
        "`lenet.suite.run_suite`, which puts the checkout first on `PYTHONPATH`; the B groups' extra work is "
        "a pytest plugin (`studies/inject_slowdown.py`) switched on per process, not a second tree. ab.py was"
        " not involved, so its fault of measuring an installed checkout in place of the tree under test "
        "(fixed in `lenet/source.py`) did not touch these numbers, and the B groups' measured slowdown shows "
        "the added work ran.",
        "",
    ]
    for results in all_results:
        n = results["n_per_side"]
        lines += [
            f"## {n} processes per side ({results['draws']} draws, {results['benchmarks']} benchmarks each)",
            "",
            "| comparison | comparisons | regressed | improved | unchanged | inconclusive | rate | definitive |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for key, value in results.items():
            if not key.startswith("A/"):
                continue
            rate = value.get("false_regression_rate", value.get("detection_rate"))
            label = key if key == "A/A" else f"{key} (measured {value['measured_slowdown']:+.1%})"
            lines.append(
                f"| {label} | {value['comparisons']} | {value['regressed']} | {value['improved']} | "
                f"{value['unchanged']} | {value['inconclusive']} | {rate:.1%} | "
                f"{1 - value['inconclusive'] / value['comparisons']:.1%} |"
            )
        lines.append("")
    rules = all_results[0]["pytest-benchmark --benchmark-compare-fail (one run vs one run)"]
    lines += [
        "## pytest-benchmark's --benchmark-compare-fail on the same runs (one run vs one run)",
        "",
        "| rule | " + " | ".join(next(iter(rules.values())).keys()) + " |",
        "| --- | " + " | ".join("---:" for _ in next(iter(rules.values()))) + " |",
    ]
    for rule, entry in rules.items():
        lines.append(f"| `{rule}` | " + " | ".join(f"{v:.1%}" for v in entry.values()) + " |")
    cv = all_results[0]["process_median_cv"]
    lines += [
        "",
        f"Process-to-process CV of the medians (A): {cv['min']:.1%} to {cv['max']:.1%} (median {cv['median']:.1%}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("collect")
    run.add_argument("--a", type=int, default=48, help="processes of unchanged code (default 48)")
    run.add_argument("--b", type=int, default=24, help="processes per slowdown (default 24)")
    run.add_argument("--slowdowns", default="0.05,0.10,0.20")
    run.add_argument(
        "--measure", default="", help="extra pytest options, e.g. '--threads 1 --benchmark-timer time.process_time'"
    )
    run.add_argument("--allocator", default="glibc", help="every process's allocator (lenet.process_setup)")
    run.add_argument("--pin", default="none", help="every process's CPUs: none, last or a list")
    for sub_parser in (run,):
        sub_parser.add_argument("--name", default="", help="names the samples file (gate_study_<name>_samples.json)")
    look = commands.add_parser("analyze")
    look.add_argument("--n", default="6,12", help="processes per side to evaluate (default 6,12)")
    look.add_argument("--draws", type=int, default=40)
    look.add_argument("--seed", type=int, default=0)
    look.add_argument("--name", default="", help="which samples file to analyze")
    args = parser.parse_args(argv)
    if args.command == "collect":
        setup = ProcessSetup.parse(args.allocator, args.pin)
        slowdowns = [float(s) for s in args.slowdowns.split(",")]
        collect(args.a, args.b, slowdowns, args.measure.split(), args.name, setup)
        return 0
    document = json.loads(samples_file(args.name).read_text())
    all_results = [analyze(document, int(n), args.draws, args.seed) for n in args.n.split(",")]
    stem = f"gate_study_{args.name}" if args.name else "gate_study"
    (STUDY / f"{stem}.json").write_text(json.dumps(all_results, indent=2) + "\n")
    text = write_markdown(all_results, document)
    (STUDY / f"{stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
