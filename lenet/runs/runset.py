"""What a source gives: the runs, one line per problem, and notes; and their frame, made on first use."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from lenet.runs.frame import to_frame
from lenet.runs.model import Run


@dataclass
class RunSet:
    """What a source gave: the runs, one line per problem, and notes (copies skipped, empty selections)."""

    runs: list[Run] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def files_read(self) -> int:
        return len(self.runs)

    @property
    def frame(self) -> pd.DataFrame:
        """The runs as one pandas DataFrame (:func:`lenet.runs.frame.to_frame`), made on first use."""
        if not hasattr(self, "_frame"):
            self._frame = to_frame(self.runs)
        return self._frame
