"""Same-job A/B of a baseline commit against the working tree: ``python scripts/ab.py --help``.

The command lives in ``lenet/cli/ab.py``, where tests call it directly.
"""

import sys
from pathlib import Path

# This checkout's lenet, whatever is installed: another clone's `pip install -e` must not be what runs.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lenet.cli.ab import main

if __name__ == "__main__":
    sys.exit(main())
