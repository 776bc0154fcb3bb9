"""Baselines: saved runs kept, per machine, as the reference that candidates are compared with.

A baseline folder, ``<root>/<fingerprint>/``, holds several saved runs of the same code on
one machine (each a separate process, so that its noise is known) and ``noise.json``: each
benchmark's process medians and their spread, from which ``compare`` derives thresholds.

Promoting is all or nothing: every run is read and checked (readable, a fingerprint that
can name a folder, no different run of the same name already there) before anything is
copied; a failure while copying removes what this promotion copied. Runs are copied, never
moved or modified; a file of the same name is never overwritten.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from lenet.analysis.compare import side_from_frame
from lenet.analysis.noise import NOISE_FILE, noise_document
from lenet.fingerprint import run_fingerprint
from lenet.paths import UnsafeNameError, safe_component, write_atomic
from lenet.runs.files import NotARunError, find_run_files, read_run, read_runs

SuiteRunner = Callable[[Path, bool], int]  # (saved-run file, count instructions?) -> pytest's status


class BaselineError(ValueError):
    """A promotion or calibration that cannot be done; nothing was changed. The message says why."""


@dataclass(frozen=True)
class Promotion:
    source: Path
    target: Path
    label: str


def machine_of(path: Path) -> tuple[str, str]:
    """(fingerprint, readable machine label) of one saved run; BaselineError when it has none usable.

    The fingerprint names the baseline's folder, so a recorded one that is no safe name (``../x``,
    ``/abs``) refuses the run rather than being replaced, as the report replaces it, by a hash.
    """
    try:
        run = read_run(path)
    except NotARunError as error:
        raise BaselineError(str(error)) from None
    if not run.results:
        raise BaselineError(f"{path}: holds no benchmark with statistics")
    info = (run.document or {}).get("machine_info")
    info = info if isinstance(info, dict) else {}
    try:
        if run_fingerprint(info)[2]:  # recorded, but refused as a name
            safe_component(info.get("fingerprint"), f"{path}: machine fingerprint")
        fingerprint = safe_component(run.machine.fingerprint, f"{path}: machine fingerprint")
    except UnsafeNameError as error:
        raise BaselineError(str(error)) from None
    return fingerprint, run.machine.label


def plan_promotion(paths: Sequence[Path], root: Path) -> list[Promotion]:
    """Every copy a promotion would make, checked; BaselineError (nothing copied) for the first problem."""
    if root.exists() and not root.is_dir():
        raise BaselineError(f"baseline root {root} is a file; expected a folder")
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise BaselineError(f"{', '.join(map(str, missing))} does not exist")
    plan: dict[Path, Promotion] = {}
    for path in find_run_files(list(paths)):
        fingerprint, label = machine_of(path)
        target = root / fingerprint / path.name
        earlier = plan.get(target)
        if earlier is not None and earlier.source.resolve() != path.resolve():
            raise BaselineError(f"{path} and {earlier.source} would both be {target}; rename one of them")
        if target.exists() and target.read_bytes() != path.read_bytes():
            raise BaselineError(
                f"{target}: a different run of this name is already in the baseline; "
                "rename the new run or remove the old one yourself"
            )
        plan[target] = Promotion(path, target, label)
    return [p for p in plan.values() if not p.target.exists()]  # identical copies already there: nothing to do


def promote(paths: Sequence[Path], root: Path) -> list[Path]:
    """Copy saved runs into ``root/<fingerprint>/`` and refresh each touched baseline's noise.json; all or nothing."""
    plan = plan_promotion(paths, root)
    copied: list[Path] = []
    try:
        for step in plan:
            step.target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(step.target, step.source.read_bytes(), exclusive=True)
            shutil.copystat(step.source, step.target)
            copied.append(step.target)
        for folder, label in {step.target.parent: step.label for step in plan}.items():
            write_noise(folder, label)
    except (OSError, ValueError):
        for target in copied:  # leave the baseline as it was
            target.unlink(missing_ok=True)
        raise
    return copied


def run_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.name != NOISE_FILE)


def write_noise(folder: Path, label: str) -> Path:
    """noise.json from every run in the baseline folder, written atomically."""
    loaded = read_runs(run_files(folder))
    document = noise_document(side_from_frame(loaded.frame, f"baseline {folder}"), label)
    document["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return write_atomic(folder / NOISE_FILE, json.dumps(document, indent=2) + "\n")


def calibrate(processes: int, root: Path, run_suite: SuiteRunner, tag: str, count_processes: int = 0) -> list[Path]:
    """Run the same code ``processes`` times (A/A) with ``run_suite`` and promote every run into the baseline.

    The first ``count_processes`` processes count instructions too (``run_suite``'s second argument): their
    spread is the count calibration of ``noise.json``.
    """
    if processes < 2:
        raise BaselineError(f"processes {processes}: at least 2 are needed to measure noise")
    if root.exists() and not root.is_dir():
        raise BaselineError(f"baseline root {root} is a file; expected a folder")
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d_%H%M%S")
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        for index in range(processes):
            output = Path(tmp) / f"{index + 1:04d}_{tag}_{stamp}_aa.json"
            status = run_suite(output, index < count_processes)
            if not output.exists():
                raise BaselineError(f"calibration process {index + 1} wrote no results (pytest exit {status})")
            print(f"calibration process {index + 1}/{processes} done (pytest exit {status})", flush=True)
            runs.append(output)
        return promote(runs, root)


def commit_tag(repo: Path) -> str:
    """The short commit of ``repo`` for file names, or ``unknown``."""
    result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


def describe(root: Path) -> tuple[list[str], list[str]]:
    """One line per baseline under ``root`` (runs, benchmarks, machine), and a warning line per unreadable one."""
    if root.exists() and not root.is_dir():
        raise BaselineError(f"baseline root {root} is a file; expected a folder")
    if not root.is_dir():
        return [f"no baselines under {root}"], []
    lines, warnings = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        noise = folder / NOISE_FILE
        info: dict = {}
        if noise.is_file():
            try:
                loaded = json.loads(noise.read_text(encoding="utf-8"))
                info = loaded if isinstance(loaded, dict) else {}
                if not isinstance(loaded, dict):
                    warnings.append(f"warning: {noise}: not a JSON object; expected a noise file")
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
                warnings.append(f"warning: {noise}: unreadable ({type(error).__name__}); re-run promote to rebuild it")
        benchmarks = info.get("benchmarks")
        count = len(benchmarks) if isinstance(benchmarks, dict) else 0
        machine = str(info.get("machine", "?")).replace("\n", " ")[:80]
        lines.append(f"{folder.name}  {len(run_files(folder))} runs  {count} benchmarks  {machine}")
    return lines, warnings
