"""Saved-run files -> one side of a comparison (the gate's input), or CompareError saying why not."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lenet.analysis.compare import CompareError, Side, side_from_frame
from lenet.analysis.load import load_runs


def load_side(paths: Sequence[Path], what: str) -> tuple[Side, list[str]]:
    """Read one side's saved runs, with a line per problem (and per copy of a run, read once);
    CompareError when there is nothing usable."""
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise CompareError(f"the {what} {', '.join(map(str, missing))} does not exist")
    loaded = load_runs(list(paths))
    where = ", ".join(map(str, paths))
    detail = f" ({loaded.problems[0]})" if loaded.problems else ""
    if loaded.files_read == 0:
        raise CompareError(f"the {what} {where} holds no saved runs{detail}")
    if loaded.frame.empty:
        raise CompareError(f"the {what} {where} holds no benchmark with statistics{detail}")
    return side_from_frame(loaded.frame, what), loaded.problems + loaded.notes
