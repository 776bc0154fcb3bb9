"""Run the benchmark suite in a fresh process: the unit of evidence for baselines and A/B runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from lenet.process_setup import ProcessSetup
from lenet.source import check_run, check_tree, child_environment

__all__ = ["check_suite_tree", "run_suite", "suite_environment"]


def run_suite(
    output: Path,
    pytest_args: Sequence[str],
    tree: Path,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    setup: ProcessSetup | None = None,
) -> int:
    """Run ``pytest bench`` of the source tree ``tree`` in a new process; results go to ``output``.

    ``tree``'s own ``lenet`` package is imported (it is put first on PYTHONPATH), so a
    git worktree of another commit measures that commit's code, whatever is installed;
    ForeignCodeError when the process would import, or did import, ``lenet`` from outside
    ``tree`` (``lenet.source``). Returns pytest's exit status; failed benchmarks are left
    out of ``output`` by pytest-benchmark itself.
    pytest's output goes to ``log`` when one is named. ``setup`` picks the process's
    allocator and CPU affinity (default: as this process has them).
    """
    command = [
        python,
        "-m",
        "pytest",
        "bench",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={output}",
        *pytest_args,
    ]
    environment = suite_environment(tree, env, setup)
    check_tree(tree, environment, python)
    preexec = setup.preexec() if setup is not None else None
    result = subprocess.run(command, cwd=tree, env=environment, capture_output=True, text=True, preexec_fn=preexec)
    if log is not None:
        log.write_text(result.stdout + result.stderr)
    if output.is_file():
        check_run(output, tree)
    return result.returncode


def suite_environment(
    tree: Path, env: Mapping[str, str] | None = None, setup: ProcessSetup | None = None
) -> dict[str, str]:
    """The environment of a suite process of ``tree``: ``setup``'s, then ``env``, with ``tree`` first on PYTHONPATH."""
    extra = dict(env or {})
    path = os.pathsep.join(filter(None, [extra.pop("PYTHONPATH", None), os.environ.get("PYTHONPATH")]))
    base = setup.environment() if setup is not None else dict(os.environ)
    return child_environment({**base, **extra, "PYTHONPATH": path}, tree)


def check_suite_tree(tree: Path, setup: ProcessSetup | None = None, python: str = sys.executable) -> None:
    """Before any process runs: ForeignCodeError if a suite process of ``tree`` would import another tree's lenet."""
    check_tree(tree, suite_environment(tree, setup=setup), python)
