"""What every command line in this folder shares: this checkout's lenet, then the command's ``main``.

``python scripts/<name>.py`` puts this folder first on ``sys.path``, so a script imports this module
before anything of lenet. :func:`run` then puts this checkout first: its lenet is the one that runs,
whatever another clone's ``pip install -e`` put on the path (``lenet/source.py``).
"""

import importlib
import sys
from pathlib import Path

CHECKOUT = str(Path(__file__).resolve().parents[1])  # the only place a script works out its checkout


def run(command: str) -> None:
    """Run ``lenet.cli.<command>.main`` of this checkout, and exit with its status."""
    if sys.path[:1] != [CHECKOUT]:
        sys.path.insert(0, CHECKOUT)
    sys.exit(importlib.import_module(f"lenet.cli.{command}").main())
