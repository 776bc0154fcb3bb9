"""Saved runs in pytest-benchmark storage folders (any pytest-benchmark 3.x-5.x file, ours or not).

Bad files never stop a read: each yields one line naming the file and what was expected,
and the other files are still read. A file is read once however it is named
(``a/run.json``, ``a/../a/run.json``, an absolute path), and a copy of a run read already
(the same time, machine, commit and results, e.g. a run promoted into a baseline) is
skipped with a note: one process is one sample. Files are opened read-only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import orjson

from lenet.roundtrip import escape_surrogates
from lenet.runs.checks import check_document
from lenet.runs.model import Run
from lenet.runs.runset import RunSet
from lenet.terminal import printable

# Folders under results/ that hold saved runs (traces/ and studies/ hold other JSON).
DEFAULT_ROOTS = ("benchmarks", "reference", "baselines")

Progress = Callable[[Iterable[Path]], Iterable[Path]]
# A JSON number of 20 digits or more where a value starts (after ':', ',' or '['): past 64 bits. Digits
# inside a string (a commit id of decimal digits) do not count, or every such run would be read slowly.
_LONG_INTEGER = re.compile(rb"[:,\[]\s*-?\d{20,}(?![\d.eE])")


class NotARunError(ValueError):
    """A file that is not a pytest-benchmark saved run; the message says what is wrong with it."""


def find_run_files(paths: Iterable[Path]) -> list[Path]:
    """JSON files under the given files and folders, in a stable order, each file once; traces are not runs."""
    found: dict[Path, Path] = {}  # real path -> the path it was first named by
    for path in paths:
        if path.is_dir():
            for candidate in sorted(p for p in path.rglob("*.json") if p.is_file()):
                if not _is_not_a_run(candidate, path):
                    found.setdefault(candidate.resolve(), candidate)
        elif path.exists():
            found.setdefault(path.resolve(), path)
    return list(found.values())


def _is_not_a_run(path: Path, root: Path) -> bool:
    """Traces and a baseline's noise.json live beside runs but are not runs."""
    if path.name == "noise.json" or path.name.endswith(".pt.trace.json"):
        return True
    return "traces" in path.relative_to(root).parts[:-1]


def default_paths(results_dir: Path) -> list[Path]:
    return [results_dir / name for name in DEFAULT_ROOTS if (results_dir / name).is_dir()]


def read_document(path: Path) -> dict[str, Any]:
    """Parse one saved run's JSON, or raise NotARunError with a one-line reason."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise NotARunError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not raw.strip():
        raise NotARunError(f"{path}: is empty; expected a pytest-benchmark JSON file")
    try:
        document = orjson.loads(raw)  # several times faster than json on large runs
    except orjson.JSONDecodeError:
        document = _parse_slowly(path, raw)  # for json's precise message
    else:
        if _LONG_INTEGER.search(raw):  # orjson reads an integer past 64 bits as a float: json keeps it exact
            document = _parse_slowly(path, raw)
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list):
        raise NotARunError(f"{path}: is JSON but not a pytest-benchmark saved run (no 'benchmarks' list)")
    return document


def _parse_slowly(path: Path, raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotARunError(f"{path}: not UTF-8 text; expected a pytest-benchmark JSON file") from None
    try:
        # orjson refused it: json may read it, but lone surrogates ("\ud800") are then escaped for every reader.
        return escape_surrogates(json.loads(text))
    except json.JSONDecodeError as error:
        where = f"{error.msg}: line {error.lineno}, column {error.colno}"
        raise NotARunError(f"{path}: is not valid JSON ({where}); truncated or corrupt?") from None
    except RecursionError:
        raise NotARunError(f"{path}: is JSON nested too deeply to be a saved run (orjson's limit is 1024)") from None


def read_run(path: Path, keep_document: bool = True) -> Run:
    """One saved file as a checked :class:`Run`; NotARunError when it is not a run at all. ``keep_document``:
    the run keeps the JSON it was read from (to publish it as saved); readers of many runs leave it."""
    # A file name may hold line breaks or bytes that are not UTF-8: it is shown escaped everywhere.
    return check_document(read_document(path), printable(path), printable(path.stem), keep_document)


def read_runs(paths: Sequence[Path], progress: Progress | None = None) -> RunSet:
    """Every saved run under ``paths`` (files or folders), copies read once."""
    files = find_run_files(paths)
    found = RunSet(problems=[f"{p}: no such file or folder" for p in paths if not p.exists()])
    seen: dict[tuple[Any, ...], str] = {}
    for path in progress(files) if progress else files:
        try:
            run = read_run(path, keep_document=False)  # hundreds of runs: their JSON is not kept twice
        except NotARunError as error:
            found.problems.append(str(error))
            continue
        key = run.copy_key()
        if key is not None and key in seen:
            found.notes.append(f"{path}: a copy of {seen[key]} (same time, machine, commit and results); read once")
            continue
        if key is not None:
            seen[key] = str(path)
        found.runs.append(run)
        found.problems.extend(run.problems)
    return found
