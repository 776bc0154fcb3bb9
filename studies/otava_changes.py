"""Apache Otava's change points for the histories of changes_study.py, run in Otava's own environment.

    /path/to/otava-venv/bin/python studies/otava_changes.py HISTORIES.json OUT.json

Otava is not a dependency of lenet-bench: changes_study.py runs this file with the Python of a
separate environment (``pip install apache-otava``), so it imports nothing of lenet. Reads
``{"histories": [[value, ...], ...], "p_values": [...]}`` and writes, per p-value, the indices
Otava's ``compute_change_points`` (its defaults: window 50, no minimum magnitude) returns for
each history: the index of the first value after each change point.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from otava.analysis import compute_change_points


def main(source: Path, target: Path) -> None:
    spec = json.loads(source.read_text())
    found = {}
    for p_value in spec["p_values"]:
        found[str(p_value)] = [
            [int(point.index) for point in compute_change_points(history, max_pvalue=p_value)[0]]
            for history in spec["histories"]
        ]
    target.write_text(json.dumps(found))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
