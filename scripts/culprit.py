"""The first bad commit between two (a bisection by measurement): ``python scripts/culprit.py --help``.

The command lives in ``lenet/cli/bisect.py``, where tests call it directly. (A script named
``bisect.py`` in this folder would hide the standard library's ``bisect`` from every script here.)
"""

import sys
from pathlib import Path

# This checkout's lenet, whatever is installed: another clone's `pip install -e` must not be what runs.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lenet.cli.bisect import main

if __name__ == "__main__":
    sys.exit(main())
