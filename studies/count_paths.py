"""Does an instruction count depend on the length of the tree's path?

    python studies/count_paths.py [--phases forward_inference,forward_train,optimizer_step] [--batch-size 2]

The same commit (this checkout's HEAD) is checked out in four git worktrees: *a*, *b* (another name of
the same length), *c* (one character longer) and *d* (sixteen characters longer). Each runs one counted
``pytest bench`` process (``--instructions``, as ab.py's counted processes), on the eager fp32 contiguous
case at ``--batch-size`` for each of ``--phases``; the processes run side by side, one per CPU (a count
does not depend on the load). The table gives each tree's count per call and its difference from *a*'s.
ab.py puts the baseline's worktree at a path as long as the candidate's (``lenet.source.tree_path_like``)
because of what this study finds.
-> results/studies/count_paths.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from _study import STUDY_DIR, write_study

from lenet.cli.gate_options import COUNTING
from lenet.source import REPO
from lenet.suite import run_suite

# The name of each tree, padded to its length: b is as long as a, c one character longer, d sixteen.
TREES = {"a": "a" * 8, "b": "b" * 8, "c": "c" * 9, "d": "d" * 24}


def counts_of(output: Path) -> dict[str, float]:
    document = json.loads(output.read_text())
    return {b["name"]: b["extra_info"]["instructions"] for b in document["benchmarks"]}


def count_in(tree: Path, folder: Path, selection: list[str]) -> dict[str, float]:
    output = folder / f"{tree.name[0]}.json"
    arguments = [*selection, *COUNTING, "--benchmark-max-time=0.02", "--benchmark-min-rounds=3"]
    status = run_suite(output, arguments, tree=tree, log=output.with_suffix(".log"))
    if status != 0:
        raise SystemExit(f"the counted process in {tree} exited {status}: see {output.with_suffix('.log')}")
    return counts_of(output)


def measure(selection: list[str]) -> dict[str, dict[str, float]]:
    """Each tree's counts per call, by benchmark; the worktrees are removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="lenet-paths-") as tmp:
        trees = {key: Path(tmp) / name for key, name in TREES.items()}
        for tree in trees.values():
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(tree), "HEAD"], cwd=REPO, check=True)
        try:
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                futures = {key: pool.submit(count_in, tree, Path(tmp), selection) for key, tree in trees.items()}
                return {key: future.result() for key, future in futures.items()}
        finally:
            for tree in trees.values():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, check=False)


def markdown(document: dict) -> str:
    counts, lengths = document["counts"], document["path_lengths"]
    lines = [
        "# Instruction counts and the length of the tree's path",
        "",
        f"`python studies/count_paths.py {' '.join(document['arguments'])}` at {document['when']}: one commit in four",
        "worktrees, one counted process each (side by side), the count per call of each benchmark. *b* has a",
        "path as long as *a*'s; *c*'s is one character longer, *d*'s sixteen.",
        "",
        "| benchmark | a | b vs a | c vs a | d vs a |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, base in counts["a"].items():
        changes = [f"{100 * (counts[key][name] / base - 1):+.4f}%" for key in ("b", "c", "d")]
        lines.append(f"| `{name}` | {base:,.0f} | {' | '.join(changes)} |")
    lines += ["", "Path lengths: " + ", ".join(f"{key} {length}" for key, length in lengths.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default="forward_inference,forward_train,optimizer_step")
    parser.add_argument("--batch-size", default="2")
    args = parser.parse_args()
    selection = ["--variants", "cpu-contiguous-fp32-eager", "--batch-sizes", args.batch_size, "--optimizers", "sgd"]
    selection += ["--phases", args.phases, "--no-metrics"]
    when = datetime.now(timezone.utc).isoformat(timespec="seconds")
    counts = measure(selection)
    prefix = len(str(Path(tempfile.gettempdir()) / "lenet-paths-xxxxxxxx")) + 1
    document = {
        "arguments": ["--phases", args.phases, "--batch-size", args.batch_size],
        "when": when,
        "path_lengths": {key: prefix + len(name) for key, name in TREES.items()},
        "counts": counts,
    }
    write_study(STUDY_DIR / "count_paths.json", document, markdown(document))


if __name__ == "__main__":
    main()
