"""Instruction counts on this machine: their spread, what the mode costs, and whether a small change shows.

    python scripts/instruction_study.py spread    # the quick preset with --instructions (5 repeats)
    python scripts/instruction_study.py change    # one extra elementwise op in the model, counted and gated

spread: runs `pytest bench --preset quick --instructions` once, and records the wall
time of the run and of the counting, and each CPU benchmark's count and spread over
its 5 callgrind repeats -> results/studies/instruction_spread.{json,md}.

change: checks HEAD out in a throwaway git worktree, adds one elementwise op to
LeNet's forward there (``s2 = s2 * 1.0`` after the first pooling), counts the same
selection in both trees, and runs scripts/compare.py on the two runs ->
results/studies/instruction_change.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STUDY = REPO / "results" / "studies"
CHANGE_SELECTION = [
    "--variants",
    "cpu-contiguous-fp32-eager,cpu-channels_last-fp32-eager",
    "--batch-sizes",
    "64",
    "--optimizers",
    "sgd",
]
ANCHOR = "        s2 = F.max_pool2d(c1, (2, 2))  # (N, 6, 14, 14)\n"
CHANGE = ANCHOR + "        s2 = s2 * 1.0  # the change under study: one extra elementwise op\n"


def run_bench(tree: Path, output: Path, args: list[str]) -> tuple[float, str]:
    start = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "bench",
            "-q",
            "-p",
            "no:cacheprovider",
            "--instructions",
            f"--benchmark-json={output}",
            *args,
        ],
        cwd=tree,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    if result.returncode != 0 or not output.exists():
        raise SystemExit(f"pytest bench failed in {tree} (exit {result.returncode}):\n{result.stdout[-2000:]}")
    return time.monotonic() - start, result.stdout


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
    lines = [
        "# Instruction counts: spread over 5 repeats (quick preset)",
        "",
        f"`{document['command']}` took {seconds / 60:.1f} min on this machine ({counting.strip()}).",
        "",
        "| benchmark | instructions per call | spread (max-min)/median | calls per repeat |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, row in rows.items():
        if row["instructions"] is None:
            lines.append(f"| `{name}` | – ({row['instructions_unavailable']}) | – | – |")
        else:
            lines.append(
                f"| `{name}` | {row['instructions']:,.0f} | {row['instructions_spread']:.4%} | "
                f"{row['instructions_calls_per_repeat']} |"
            )
    (STUDY / "instruction_spread.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def change() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "changed"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), "HEAD"], cwd=REPO, check=True, capture_output=True
        )
        try:
            model = tree / "lenet" / "model.py"
            text = model.read_text()
            if ANCHOR not in text:
                raise SystemExit("lenet/model.py changed: update ANCHOR in this study")
            model.write_text(text.replace(ANCHOR, CHANGE))
            base, changed = Path(tmp) / "base.json", Path(tmp) / "changed.json"
            base_seconds, _ = run_bench(REPO, base, CHANGE_SELECTION)
            changed_seconds, _ = run_bench(tree, changed, CHANGE_SELECTION)
            gate = subprocess.run(
                [
                    sys.executable,
                    str(REPO / "scripts" / "compare.py"),
                    str(base),
                    str(changed),
                    "--json",
                    str(Path(tmp) / "verdicts.json"),
                ],
                capture_output=True,
                text=True,
            )
            verdicts = json.loads((Path(tmp) / "verdicts.json").read_text())
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
    rows = [
        {
            k: v
            for k, v in b.items()
            if k
            in (
                "benchmark",
                "baseline_instructions",
                "candidate_instructions",
                "count_ratio",
                "count_threshold",
                "count_verdict",
                "verdict",
                "ratio",
            )
        }
        for b in verdicts["benchmarks"]
    ]
    document = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "change": CHANGE.strip().splitlines()[-1].strip(),
        "selection": CHANGE_SELECTION,
        "seconds": {"baseline": base_seconds, "changed": changed_seconds},
        "gate_exit_status": gate.returncode,
        "headline": verdicts["headline"],
        "benchmarks": rows,
    }
    (STUDY / "instruction_change.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        "# Instruction counts: does one extra elementwise op show?",
        "",
        f"Change: `{document['change']}` in `Net.forward`. Gate (`scripts/compare.py`, one process a side): "
        f"exit {gate.returncode}, {verdicts['headline']}",
        "",
        "| benchmark | baseline instructions | changed | count change | threshold | count verdict | time verdict |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| `{row['benchmark']}` | {row['baseline_instructions']:,.0f} | {row['candidate_instructions']:,.0f} | "
            f"{(row['count_ratio'] - 1) * 100:+.3f}% | ±{row['count_threshold'] * 100:.2f}% | "
            f"{row['count_verdict']} | {row['verdict']} |"
        )
    (STUDY / "instruction_change.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=("spread", "change"))
    args = parser.parse_args(argv)
    STUDY.mkdir(parents=True, exist_ok=True)
    spread() if args.study == "spread" else change()
    return 0


if __name__ == "__main__":
    sys.exit(main())
