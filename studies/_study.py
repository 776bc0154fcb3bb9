"""What every study shares: where results go, and how a study file is written.

Studies run as ``python studies/<name>.py``, so this folder is on ``sys.path`` and they
import this module as ``_study``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

# This checkout's lenet, whatever is installed (lenet/source.py). A study imports this module
# before lenet (import sorting puts `_study` first), so the insertion comes in time.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lenet.source import REPO

# Every study reads its samples from and writes its <name>.json/.md into this folder. LENET_STUDY_DIR
# names another, so that a study runs on other samples (the smoke tests' small copies) and keeps
# results/studies as it is.
STUDY_DIR = Path(os.environ.get("LENET_STUDY_DIR") or REPO / "results" / "studies")
# The eager fp32 cases at batch 64, both memory formats, every phase (SGD): what the small studies run.
EAGER_FP32_B64 = [
    "--variants",
    "cpu-contiguous-fp32-eager,cpu-channels_last-fp32-eager",
    "--batch-sizes",
    "64",
    "--optimizers",
    "sgd",
]


def write_study(path: Path, document: dict[str, Any], markdown: str | None = None) -> Path:
    """Write a study's JSON (pretty, newline-terminated), and its Markdown beside it when given; say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {path}")
    if markdown is not None:
        path.with_suffix(".md").write_text(markdown)
        print(f"wrote {path.with_suffix('.md')}")
    return path
