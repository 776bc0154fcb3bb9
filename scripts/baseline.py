"""Baselines: promote saved runs, calibrate the noise, list them: ``python scripts/baseline.py --help``.

The command lives in ``lenet/cli/baseline.py``, where tests call it directly.
"""

import sys

from lenet.cli.baseline import main

if __name__ == "__main__":
    sys.exit(main())
