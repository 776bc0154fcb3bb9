"""Which checkout's code a process runs: a command measures the tree its code comes from.

``pip install -e`` of one checkout puts that checkout's ``lenet`` on every interpreter's
path. A command run in another clone, or a ``pytest bench`` process started in a git
worktree of another commit, would then measure the installed checkout instead, and an
A/B of two commits would compare a tree with itself. So:

- ``scripts/*.py`` put their own checkout first on ``sys.path`` (``scripts/_command.py``, for
  them all), and pytest does the same
  for ``pytest bench`` (``pythonpath`` in pyproject.toml);
- every child process (``pytest bench`` of a tree, the valgrind counter, the compile-cost
  processes) gets its tree first on ``PYTHONPATH`` (:func:`child_environment`);
- each saved run records where its ``lenet`` and ``bench/`` came from, relative to the
  pytest rootdir (:func:`imported_from`, ``commit_info.imported_from``);
- ``lenet.suite.run_suite`` refuses a tree whose processes would import, or did import,
  ``lenet`` from outside it (:func:`check_tree`, :func:`check_run`).

Torch-free: the commands import it before any measurement starts.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import orjson

REPO = Path(__file__).resolve().parents[1]  # the checkout this package was imported from

# Where ``lenet`` resolves, without importing it (importing it would import nothing heavy, but a
# broken tree should be refused by this check, not by an import error halfway through).
_PROBE = "import importlib.util as u; s = u.find_spec('lenet'); print(s.origin if s and s.origin else '')"


class ForeignCodeError(ValueError):
    """A tree's processes would run (or ran) ``lenet`` from outside the tree; the message names both."""


def child_environment(base: Mapping[str, str], tree: Path = REPO) -> dict[str, str]:
    """``base`` with ``tree`` first on PYTHONPATH: a child process imports that tree's ``lenet``, whatever is installed.

    PYTHONPATH comes before site-packages and before an editable install's import hook, so
    neither an installed copy nor another checkout's editable install can take its place.
    """
    path = os.pathsep.join(filter(None, [str(tree), base.get("PYTHONPATH")]))
    return {**base, "PYTHONPATH": path}


@contextlib.contextmanager
def tree_path_like(reference: Path, name: str) -> Iterator[Path]:
    """A path for another tree, as long as ``reference``'s where one can be had, new and temporary (removed
    afterwards): it does not exist yet or is an empty folder, ready for ``git worktree add``.

    Why the length: a process's instruction counts depend on the length of its tree's path. The path's
    strings (``sys.path``, every module's ``__file__``, the working directory) shift where later objects
    land in memory, and the same code then probes its pointer-keyed tables differently: identical code in
    trees whose paths differed in length counted tenths of a percent apart at batch 2, and alike when the
    lengths matched (results/studies/count_paths.md). Where the temporary folder is too long for that,
    the path is ``name`` in it, as before.
    """
    length = len(str(reference))
    with tempfile.TemporaryDirectory(prefix="lenet-") as tmp:
        room = length - len(tmp) - 1
        if room >= 1:
            yield Path(tmp) / (name + "-" * room)[:room]
            return
    base = Path(tempfile.gettempdir())
    room = length - len(str(base)) - 1
    for _ in range(100 if room >= 4 else 0):  # a shorter path: a folder of its own in the temporary folder
        folder = base / secrets.token_hex(room)[:room]
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    with tempfile.TemporaryDirectory(prefix=f"lenet-{name}-") as tmp:
        yield Path(tmp) / name


def recorded_path(path: Path, root: Path) -> str:
    """``path`` as a saved run records it: relative to ``root`` (POSIX form) when inside it, else absolute.

    Inside the checkout, a run names no path of the machine it ran on; outside, the full
    path is the evidence of what was measured.
    """
    resolved, base = path.resolve(), root.resolve()
    return resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else str(resolved)


def imported_from(root: Path, bench: Path) -> dict[str, str]:
    """Where this process's ``lenet`` and the ``bench/`` suites came from, as :func:`recorded_path` gives them."""
    return {"lenet": recorded_path(REPO / "lenet", root), "bench": recorded_path(bench, root)}


def is_inside(recorded: object) -> bool:
    """True for a recorded path inside the rootdir: relative, and never climbing out with ``..``."""
    if not isinstance(recorded, str) or not recorded:
        return False
    path = PurePosixPath(recorded)
    return not path.is_absolute() and ".." not in path.parts


def package_origin(tree: Path, environment: Mapping[str, str], python: str) -> str:
    """The ``lenet/__init__.py`` a process started in ``tree`` with ``environment`` would import ('' if none)."""
    result = subprocess.run(
        [python, "-c", _PROBE], cwd=tree, env=dict(environment), capture_output=True, text=True, timeout=120
    )
    return result.stdout.strip() if result.returncode == 0 else ""


def check_tree(tree: Path, environment: Mapping[str, str], python: str) -> None:
    """Refuse (ForeignCodeError) a tree whose processes would import ``lenet`` from elsewhere."""
    origin = package_origin(tree, environment, python)
    if not origin:
        raise ForeignCodeError(f"{tree}: {python} cannot find the lenet package there")
    package = Path(origin).resolve().parent
    if not package.is_relative_to(tree.resolve()):
        raise ForeignCodeError(
            f"{tree}: its processes would import lenet from {package}, outside the tree, and measure that code "
            "(does the tree lack lenet/?)"
        )


def check_run(output: Path, tree: Path) -> None:
    """Refuse (ForeignCodeError) a saved run of ``tree`` that records code from outside the tree.

    A run without the record (made by a commit from before it was kept) passes: :func:`check_tree`
    already vouched for its process. A record of another shape (a string, a list, ``{}``, no
    ``lenet``) is refused: it vouches for nothing. An unreadable file is left to the loaders.
    """
    try:
        run: Any = orjson.loads(output.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return
    commit = run.get("commit_info") if isinstance(run, dict) else None
    if not isinstance(commit, dict) or "imported_from" not in commit:
        return
    recorded = commit["imported_from"]
    if not isinstance(recorded, dict) or not isinstance(recorded.get("lenet"), str):
        raise ForeignCodeError(
            f"{output}: commit_info.imported_from is {str(recorded)[:100]!r}, not a record of where the run's lenet "
            "came from (expected {'lenet': PATH, 'bench': PATH}); cannot tell which code it measured"
        )
    outside = {name: where for name, where in recorded.items() if not is_inside(where)}
    if outside:
        listed = ", ".join(f"{name} from {str(where)[:200]!r}" for name, where in sorted(outside.items()))
        raise ForeignCodeError(f"{output}: the run of {tree} imported {listed}, outside the tree")
