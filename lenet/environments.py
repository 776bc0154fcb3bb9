"""Which Python environment a side of an A/B runs in: its interpreter, its torch and where its code comes from.

An A/B of two environments (torch 2.12 against 2.13, a patched build against a release)
runs the same tree's suite under two interpreters. Before any process runs, each
interpreter is asked (:func:`probe`) to import torch and the project from the tree it
will measure; one that cannot is refused with one line naming it and the import error,
so an A/B never spends an hour to fail in its first process. What each side imported
(torch's version and build, where torch and ``lenet`` came from) goes into the summary.

Torch-free: the probe runs in the interpreter under test, never in this one.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

PROBE_TIMEOUT = 300  # seconds: importing a CUDA build of torch from a cold disk takes tens of seconds
# Runs in the interpreter under test: one JSON line, an "error" when torch or the project does not import.
_PROBE = """
import json, sys
def fail(what, error):
    print(json.dumps({"error": f"cannot import {what}: {type(error).__name__}: {error}"}))
    raise SystemExit(0)
try:
    import torch
except BaseException as error:
    fail("torch", error)
try:
    import lenet
except BaseException as error:
    fail("the project (lenet)", error)
print(json.dumps({
    "python": sys.version.split()[0],
    "torch_version": torch.__version__,
    "cuda_version": torch.version.cuda,
    "torch_git_version": getattr(torch.version, "git_version", None),
    "torch_from": str(torch.__file__),
    "lenet_from": str(lenet.__file__),
}))
"""


class InterpreterError(ValueError):
    """An interpreter that cannot run the suite; the message names it and why (one line)."""


@dataclass(frozen=True)
class Environment:
    """What one interpreter imports: the facts a summary of an environment A/B names."""

    python_path: str
    python: str
    torch_version: str
    cuda_version: str | None
    torch_git_version: str | None
    torch_from: str
    lenet_from: str

    @property
    def build(self) -> str:
        """``CPU build`` or ``CUDA 13.0 build``: which torch wheel this is."""
        return f"CUDA {self.cuda_version} build" if self.cuda_version else "CPU build"

    def line(self) -> str:
        """One line for the summary: the interpreter, torch and where torch and lenet came from."""
        return (
            f"{self.python_path}: Python {self.python}, torch {self.torch_version} ({self.build}) "
            f"from {Path(self.torch_from).parent}, lenet from {Path(self.lenet_from).parent}"
        )

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "build": self.build}


def probe(python: str, tree: Path, environment: Mapping[str, str]) -> Environment:
    """Import torch and ``lenet`` with ``python`` in ``tree``; InterpreterError naming ``python`` when it cannot."""
    try:
        result = subprocess.run(
            [python, "-c", _PROBE],
            cwd=tree,
            env=dict(environment),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise InterpreterError(f"{python} cannot run: {error}") from None
    lines = result.stdout.strip().splitlines()
    try:
        answer = orjson.loads(lines[-1]) if lines else None
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise InterpreterError(f"{python} cannot run the import check (exit {result.returncode}): {last[:300]}")
    if "error" in answer:
        raise InterpreterError(f"{python} {str(answer['error']).splitlines()[0][:300]}")
    return Environment(python_path=python, **answer)
