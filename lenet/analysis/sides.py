"""A run source -> one side of a comparison (the gate's input), or CompareError saying why not."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lenet.analysis.compare import CompareError, Side, side_from_frame
from lenet.runs.selection import RunFilter
from lenet.runs.source import FileSource, RunSource


def load_side(
    source: RunSource | Sequence[Path], what: str, filters: RunFilter | None = None
) -> tuple[Side, list[str]]:
    """Read one side's runs (a source, or saved-run files and folders), with a line per problem (and per
    copy of a run, read once); CompareError when there is nothing usable."""
    if not isinstance(source, FileSource | Sequence):
        return _side(source, what, filters)
    paths = source.paths if isinstance(source, FileSource) else tuple(source)
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise CompareError(f"the {what} {', '.join(map(str, missing))} does not exist")
    return _side(FileSource(paths), what, filters)


def _side(source: RunSource, what: str, filters: RunFilter | None) -> tuple[Side, list[str]]:
    # A database that cannot be used raises StoreError, with its own exit status.
    loaded = source.runs(filters)
    where = source.describe()
    detail = f" ({loaded.problems[0]})" if loaded.problems else ""
    if loaded.files_read == 0:
        raise CompareError(f"the {what} {where} holds no saved runs{detail}")
    if loaded.frame.empty:
        raise CompareError(f"the {what} {where} holds no benchmark with statistics{detail}")
    return side_from_frame(loaded.frame, what), loaded.problems + loaded.notes
