"""The first bad commit between two: ``python scripts/bisect.py --help``.

The command lives in ``lenet/cli/bisect.py``, where tests call it directly.
"""

import os
import sys

# This file's folder comes first on sys.path, and its name would hide the standard library's `bisect`
# (which `random` and `tempfile` import): put this checkout's root there instead, so its lenet is what runs.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from lenet.cli.bisect import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
