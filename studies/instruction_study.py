"""Instruction counts on this machine: their spread, what the mode costs, and whether a small change shows.

    python studies/instruction_study.py spread    # the quick preset with --instructions (5 repeats)
    python studies/instruction_study.py change    # 1 and 10 extra elementwise ops in the model, counted and gated

spread: runs `pytest bench --preset quick --instructions` once, and records the wall
time of the run and of the counting, and each CPU benchmark's count and spread over
its 5 callgrind repeats -> results/studies/instruction_spread.{json,md}.

change: counts a selection of HEAD (checked out in a throwaway git worktree) twice (A/A:
how far counts of the same code move between processes), then, for each N in --ops
(default 1 and 10), adds N elementwise ops to LeNet's forward in another worktree of
HEAD (``s2 = s2 * 1.0`` after the first pooling), counts the same selection, and runs
scripts/compare.py against the first count -> results/studies/instruction_change.{json,md}.
Each run overwrites that study's files (they are committed: git keeps the earlier ones).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from _study import EAGER_FP32_B64, STUDY_DIR

from lenet.source import REPO
from lenet.suite import run_suite

STUDY = STUDY_DIR
CHANGE_SELECTION = EAGER_FP32_B64
ANCHOR = "        s2 = F.max_pool2d(c1, (2, 2))  # (N, 6, 14, 14)\n"
EXTRA_OP = "        s2 = s2 * 1.0  # the change under study: an extra elementwise op\n"


def run_bench(tree: Path, output: Path, args: list[str]) -> tuple[float, str]:
    """``pytest bench --instructions ARGS`` of ``tree`` in a new process: its wall time and output."""
    log = output.with_suffix(".log")
    start = time.monotonic()
    status = run_suite(output, ["--instructions", *args], tree=tree, log=log)
    seconds = time.monotonic() - start
    if status != 0 or not output.exists():
        raise SystemExit(f"pytest bench failed in {tree} (exit {status}):\n{log.read_text()[-2000:]}")
    return seconds, log.read_text()


def counts(path: Path) -> dict[str, dict]:
    return {b["name"]: b["extra_info"] for b in json.loads(path.read_text())["benchmarks"]}


def spread() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        output = Path(tmp) / "quick.json"
        seconds, stdout = run_bench(REPO, output, ["--preset", "quick"])
        infos = counts(output)
    counting = next((line for line in stdout.splitlines() if "instructions counted for" in line), "")
    rows = {
        name: {
            k: info.get(k)
            for k in (
                "instructions",
                "instructions_spread",
                "instructions_repeats",
                "instructions_calls_per_repeat",
                "instructions_unavailable",
            )
        }
        for name, info in sorted(infos.items())
    }
    document = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "pytest bench --preset quick --instructions",
        "wall_seconds": seconds,
        "counting": counting.strip(),
        "benchmarks": rows,
    }
    (STUDY / "instruction_spread.json").write_text(json.dumps(document, indent=2) + "\n")
    text = spread_markdown(document)
    (STUDY / "instruction_spread.md").write_text(text)
    print(text, end="")


def spread_markdown(document: dict) -> str:
    """The spread study's page: what the run took, then every benchmark's count and spread."""
    lines = [
        "# Instruction counts: spread over 5 repeats (quick preset)",
        "",
        f"`{document['command']}` took {document['wall_seconds'] / 60:.1f} min on this machine "
        f"({document['counting']}).",
        "",
        "| benchmark | instructions per call | spread (max-min)/median | calls per repeat |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, row in document["benchmarks"].items():
        if row["instructions"] is None:
            lines.append(f"| `{name}` | – ({row['instructions_unavailable']}) | – | – |")
        else:
            lines.append(
                f"| `{name}` | {row['instructions']:,.0f} | {row['instructions_spread']:.4%} | "
                f"{row['instructions_calls_per_repeat']} |"
            )
    return "\n".join(lines) + "\n"


def gate(base: Path, candidate: Path, verdicts: Path) -> tuple[int, dict]:
    """scripts/compare.py on two runs: its exit status and its JSON verdicts."""
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compare.py"), str(base), str(candidate), "--json", str(verdicts)],
        capture_output=True,
        text=True,
    )
    if not verdicts.is_file():
        raise SystemExit(
            f"scripts/compare.py {base.name} {candidate.name} failed (exit {result.returncode}): "
            f"{result.stderr.strip()}"
        )
    return result.returncode, json.loads(verdicts.read_text())


@contextlib.contextmanager
def head_tree(folder: Path, extra_ops: int) -> Iterator[Path]:
    """HEAD checked out in a throwaway git worktree, with ``extra_ops`` elementwise ops added to LeNet's forward."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(folder), "HEAD"], cwd=REPO, check=True, capture_output=True
    )
    try:
        model = folder / "lenet" / "model.py"
        text = model.read_text()
        if ANCHOR not in text:
            raise SystemExit("lenet/model.py changed: update ANCHOR in this study")
        model.write_text(text.replace(ANCHOR, ANCHOR + EXTRA_OP * extra_ops))
        yield folder
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=REPO, capture_output=True)


def change(ops: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        seconds: dict[str, float] = {}
        base, again = work / "base.json", work / "again.json"
        # Both sides from HEAD: uncommitted edits in the working tree must not mix into the change.
        with head_tree(work / "baseline", 0) as tree:
            seconds["baseline"], _ = run_bench(tree, base, CHANGE_SELECTION)
            seconds["baseline again"], _ = run_bench(tree, again, CHANGE_SELECTION)
        comparisons = {"A/A: the same code, another process": gate(base, again, work / "aa.json")}
        for count in ops:
            label = f"{count} extra elementwise op{'s' if count > 1 else ''}"
            output = work / f"changed{count}.json"
            with head_tree(work / f"changed{count}", count) as tree:
                seconds[label], _ = run_bench(tree, output, CHANGE_SELECTION)
            comparisons[label] = gate(base, output, work / f"verdicts{count}.json")
    fields = ("baseline_instructions", "candidate_instructions", "count_ratio", "count_threshold", "count_verdict")
    document = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "change": EXTRA_OP.strip(),
        "selection": CHANGE_SELECTION,
        "seconds": seconds,
        "comparisons": {
            label: {
                "gate_exit_status": status,
                "headline": verdicts["headline"],
                "benchmarks": {
                    b["benchmark"]: {k: b.get(k) for k in (*fields, "verdict", "ratio")} for b in verdicts["benchmarks"]
                },
            }
            for label, (status, verdicts) in comparisons.items()
        },
    }
    (STUDY / "instruction_change.json").write_text(json.dumps(document, indent=2) + "\n")
    text = change_markdown(document)
    (STUDY / "instruction_change.md").write_text(text)
    print(text, end="")


def change_markdown(document: dict) -> str:
    """The change study's page: each comparison's headline, then every benchmark's count change per comparison."""
    comparisons = document["comparisons"]
    labels = list(comparisons)
    lines = [
        "# Instruction counts: does a small change to the model show?",
        "",
        f"The change: `{document['change']}` after the first pooling in `Net.forward`, once or repeated, "
        "in a throwaway git worktree. Each column compares one process of the changed code (or, for A/A, "
        "of the same code) with one baseline process through `scripts/compare.py`; cells: count change "
        "(count threshold) count verdict.",
        "",
        "Which code was measured: each process ran `pytest bench` in its worktree through "
        "`lenet.suite.run_suite`, which puts that worktree first on `PYTHONPATH`; ab.py was not involved, so "
        "its fault of measuring an installed checkout in place of the tree under test (fixed in "
        "`lenet/source.py`) did not touch these counts, and the 10-op change's counts moved, which a tree "
        "compared with itself cannot show.",
        "",
    ]
    for label in labels:
        lines.append(f"- {label}: exit {comparisons[label]['gate_exit_status']}. {comparisons[label]['headline']}")
    lines += [
        "",
        "| benchmark | baseline instructions | " + " | ".join(labels) + " |",
        "| --- | ---: | " + " | ".join("---" for _ in labels) + " |",
    ]
    for name in sorted(comparisons[labels[0]]["benchmarks"]):
        cells = [_count_cell(comparisons[label]["benchmarks"].get(name)) for label in labels]
        baseline = comparisons[labels[0]]["benchmarks"][name].get("baseline_instructions")
        shown = f"{baseline:,.0f}" if baseline is not None else "–"
        lines.append(f"| `{name}` | {shown} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _count_cell(row: dict | None) -> str:
    if not row or row.get("count_ratio") is None:
        return "–"
    return f"{(row['count_ratio'] - 1) * 100:+.3f}% (±{row['count_threshold'] * 100:.2f}%) {row['count_verdict']}"


def op_counts(text: str) -> list[int]:
    """``--ops``: positive whole numbers, e.g. ``1,10``."""
    parts = text.split(",")
    if not all(part.strip().isdigit() and int(part) > 0 for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r} must be positive whole numbers separated by commas, e.g. 1,10")
    return [int(part) for part in parts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=("spread", "change"))
    parser.add_argument(
        "--ops",
        type=op_counts,
        default=[1, 10],
        help="change: how many extra elementwise ops each changed tree adds (default 1,10)",
    )
    args = parser.parse_args(argv)
    STUDY.mkdir(parents=True, exist_ok=True)
    if args.study == "spread":
        spread()
    else:
        change(args.ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
