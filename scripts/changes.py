"""Steps in the history of saved runs: ``python scripts/changes.py --help``.

The command lives in ``lenet/cli/changes.py``, where tests call it directly.
"""

import sys
from pathlib import Path

# This checkout's lenet, whatever is installed: another clone's `pip install -e` must not be what runs.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lenet.cli.changes import main

if __name__ == "__main__":
    sys.exit(main())
