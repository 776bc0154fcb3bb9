"""How the report scales: wall time and peak memory of scripts/report.py on a large corpus of saved runs.

    python studies/make_corpus.py /tmp/corpus --runs 1000 --benchmarks 50
    python studies/report_scale.py /tmp/corpus --tree . --tree ../other-checkout --repeats 3

Each repeat runs ``scripts/report.py CORPUS --formats md,csv -q`` of every tree named, in a new
process, the trees interleaved (A B B A ...) so that a machine that slows down mid-study weighs
on both alike. A tree's report reads its own checkout's code (scripts put their checkout first on
``sys.path``). Wall time is the child's; peak memory its maximum resident set (``wait4``). Medians
over the repeats; the first tree is the reference of the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _study import STUDY_DIR, write_study

from lenet.interleave import abba_order


def run_report(tree: Path, corpus: Path, output: Path) -> dict[str, float]:
    """One report of ``corpus`` by ``tree``'s own code: wall seconds and peak resident MB."""
    args = [sys.executable, str(tree / "scripts" / "report.py"), str(corpus), "--formats", "md,csv", "-q"]
    args += ["-o", str(output)]
    start = time.perf_counter()
    pid = os.spawnv(os.P_NOWAIT, sys.executable, args)
    _, status, usage = os.wait4(pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{tree}: report.py exited {os.waitstatus_to_exitcode(status)}")
    return {"seconds": seconds, "peak_mb": usage.ru_maxrss / 1024}  # ru_maxrss: KiB on Linux


def run_order(names: list[str], repeats: int) -> list[str]:
    """ABBA for two trees (lenet.interleave), round robin otherwise."""
    if len(names) == 2:
        return abba_order(repeats, names[0], names[1])
    return [name for _ in range(repeats) for name in names]


def measure(trees: list[Path], corpus: Path, repeats: int) -> dict[str, list[dict[str, float]]]:
    samples: dict[str, list[dict[str, float]]] = {str(tree): [] for tree in trees}
    with tempfile.TemporaryDirectory(prefix="report-scale-") as scratch:
        for index, side in enumerate(run_order([str(tree) for tree in trees], repeats)):
            samples[side].append(run_report(Path(side), corpus, Path(scratch) / f"r{index}"))
            print(f"{side}: {samples[side][-1]['seconds']:.1f} s, {samples[side][-1]['peak_mb']:.0f} MB", flush=True)
    return samples


def markdown(document: dict[str, Any]) -> str:
    lines = [
        "# The report at scale",
        "",
        f"`scripts/report.py CORPUS --formats md,csv` on {document['corpus']}, {document['repeats']} repeats per "
        "tree, trees interleaved; medians (`python studies/report_scale.py`).",
        "",
        "| tree | wall s (median) | peak MB (median) | time vs first | memory vs first |",
        "| --- | --- | --- | --- | --- |",
    ]
    first = document["trees"][0]
    for tree in document["trees"]:
        lines.append(
            f"| {tree['label']} | {tree['seconds']:.1f} | {tree['peak_mb']:.0f} | "
            f"{tree['seconds'] / first['seconds']:.2f}x | {tree['peak_mb'] / first['peak_mb']:.2f}x |"
        )
    return "\n".join([*lines, "", document.get("note", ""), ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, help="a folder of saved runs (studies/make_corpus.py)")
    parser.add_argument("--tree", type=Path, action="append", default=[], help="a checkout to measure; repeatable")
    parser.add_argument("--label", action="append", default=[], help="a name for each --tree, in order")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--note", default="", help="a sentence for the study file (the machine, what was compared)")
    parser.add_argument("--output", type=Path, default=STUDY_DIR / "report_scale.json")
    args = parser.parse_args(argv)
    trees = [tree.resolve() for tree in args.tree] or [Path(__file__).resolve().parents[1]]
    labels = args.label + [str(tree) for tree in trees[len(args.label) :]]
    samples = measure(trees, args.corpus, args.repeats)
    rows = [
        {
            "label": label,
            "seconds": statistics.median(s["seconds"] for s in samples[str(tree)]),
            "peak_mb": statistics.median(s["peak_mb"] for s in samples[str(tree)]),
            "samples": samples[str(tree)],
        }
        for tree, label in zip(trees, labels, strict=True)
    ]
    files = sum(1 for _ in args.corpus.rglob("*.json"))
    document = {"corpus": f"{files} saved runs", "repeats": args.repeats, "trees": rows, "note": args.note}
    write_study(args.output, document, markdown(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
