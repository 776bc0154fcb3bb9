"""Is this machine quiet enough to benchmark on? ``python scripts/system.py --help``.

The command lives in ``lenet/cli/system.py``, where tests call it directly.
"""

import sys

from lenet.cli.system import main

if __name__ == "__main__":
    sys.exit(main())
