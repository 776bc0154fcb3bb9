"""Measure and cache this machine's peaks: ``python scripts/peaks.py --help``.

The command lives in ``lenet/cli/peaks.py``, where tests call it directly.
"""

import sys

from lenet.cli.peaks import main

if __name__ == "__main__":
    sys.exit(main())
