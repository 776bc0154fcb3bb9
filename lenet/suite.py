"""Run the benchmark suite in a fresh process: the unit of evidence for baselines and A/B runs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from lenet.process_setup import ProcessSetup

REPO = Path(__file__).resolve().parents[1]  # the source tree this package belongs to (a checkout)


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
    git worktree of another commit measures that commit's code. Returns pytest's exit
    status; failed benchmarks are left out of ``output`` by pytest-benchmark itself.
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
    extra = dict(env or {})
    path = os.pathsep.join(filter(None, [str(tree), extra.pop("PYTHONPATH", None), os.environ.get("PYTHONPATH")]))
    base = setup.environment() if setup is not None else dict(os.environ)
    environment = {**base, **extra, "PYTHONPATH": path}
    preexec = setup.preexec() if setup is not None else None
    result = subprocess.run(command, cwd=tree, env=environment, capture_output=True, text=True, preexec_fn=preexec)
    if log is not None:
        log.write_text(result.stdout + result.stderr)
    return result.returncode
