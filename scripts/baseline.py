"""Baselines: saved runs kept, per machine, as the reference that candidates are compared with.

    python scripts/baseline.py promote RUN_OR_FOLDER ...     # copy runs into results/baselines/<fingerprint>/
    python scripts/baseline.py calibrate --processes 10 [-- PYTEST_OPTIONS]   # A/A: measure the noise
    python scripts/baseline.py list

A baseline folder holds several saved runs of the same code on one machine (each a
separate process, so that its noise is known) and noise.json: each benchmark's
process medians and their spread, from which scripts/compare.py derives thresholds.
Runs are copied, never moved or modified; a file of the same name is never overwritten.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from lenet.analysis.compare import NOISE_FILE, CompareError, noise_document, side_from_frame
from lenet.analysis.load import NotARunError, find_run_files, load_runs, read_run, run_rows
from lenet.suite import run_suite

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO / "results" / "baselines"


def fingerprint_of(path: Path) -> tuple[str, str]:
    """(fingerprint, readable machine label) of one saved run."""
    rows, _ = run_rows(read_run(path), path)
    if not rows:
        raise NotARunError(f"{path}: holds no benchmark with statistics")
    return str(rows[0]["machine"]), str(rows[0]["machine_label"])


def promote(paths: list[Path], root: Path) -> list[Path]:
    """Copy saved runs into ``root/<fingerprint>/`` and refresh each touched baseline's noise.json."""
    touched: dict[Path, str] = {}
    copied = []
    for path in find_run_files(paths):
        fingerprint, label = fingerprint_of(path)
        folder = root / fingerprint
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        if target.exists():
            if target.read_bytes() != path.read_bytes():
                raise FileExistsError(
                    f"{target}: a different run of this name is already in the baseline; "
                    "rename the new run or remove the old one yourself"
                )
            continue
        shutil.copy2(path, target)
        copied.append(target)
        touched[folder] = label
    for folder, label in touched.items():
        write_noise(folder, label)
    return copied


def write_noise(folder: Path, label: str) -> Path:
    """noise.json from every run in the baseline folder, written atomically."""
    loaded = load_runs([p for p in folder.glob("*.json") if p.name != NOISE_FILE])
    document = noise_document(side_from_frame(loaded.frame, f"baseline {folder}"), label)
    document["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    target = folder / NOISE_FILE
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, suffix=".tmp") as handle:
        json.dump(document, handle, indent=2)
    os.replace(handle.name, target)
    return target


def calibrate(processes: int, root: Path, pytest_args: list[str]) -> list[Path]:
    """Run the same code ``processes`` times (A/A) and promote every run into the baseline."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    tag = commit.stdout.strip() or "unknown"
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for index in range(processes):
            output = Path(tmp) / f"{index + 1:04d}_{tag}_{stamp}_aa.json"
            status = run_suite(output, pytest_args, tree=REPO)
            if not output.exists():
                raise RuntimeError(f"calibration process {index + 1} wrote no results (pytest exit {status})")
            print(f"calibration process {index + 1}/{processes} done (pytest exit {status})", flush=True)
            runs.append(output)
        return promote(runs, root)


def list_baselines(root: Path) -> None:
    if not root.is_dir():
        print(f"no baselines under {root}")
        return
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        noise = folder / NOISE_FILE
        info = json.loads(noise.read_text()) if noise.is_file() else {}
        runs = len([p for p in folder.glob("*.json") if p.name != NOISE_FILE])
        print(f"{folder.name}  {runs} runs  {len(info.get('benchmarks', {}))} benchmarks  {info.get('machine', '?')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="baseline.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--root", type=Path, default=DEFAULT_ROOT, help="where baselines live (default results/baselines)"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    promote_parser = commands.add_parser("promote", help="copy saved runs into their machine's baseline")
    promote_parser.add_argument("runs", type=Path, nargs="+", help="saved-run files or folders")
    calibrate_parser = commands.add_parser("calibrate", help="run the suite N times (A/A) into the baseline")
    calibrate_parser.add_argument("--processes", type=int, default=10, help="fresh processes to run (default 10)")
    calibrate_parser.add_argument(
        "pytest_args", nargs=argparse.REMAINDER, help="options for pytest bench after --, e.g. -- --preset quick"
    )
    commands.add_parser("list", help="the baselines and their sizes")
    args = parser.parse_args(argv)
    try:
        if args.command == "promote":
            missing = [p for p in args.runs if not p.exists()]
            if missing:
                print(f"error: {', '.join(map(str, missing))} does not exist", file=sys.stderr)
                return 2
            copied = promote(args.runs, args.root)
            print(f"copied {len(copied)} run(s) into {args.root}" + "".join(f"\n  {p}" for p in copied))
        elif args.command == "calibrate":
            if args.processes < 2:
                print("error: --processes must be at least 2 to measure noise", file=sys.stderr)
                return 2
            extra = [a for a in args.pytest_args if a != "--"]
            copied = calibrate(args.processes, args.root, extra)
            print(f"calibrated with {len(copied)} process(es) into {args.root}")
        else:
            list_baselines(args.root)
    except (NotARunError, CompareError, FileExistsError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
