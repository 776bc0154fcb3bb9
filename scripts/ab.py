"""Same-job A/B of a baseline commit against the working tree: ``python scripts/ab.py --help``.

The command lives in ``lenet/cli/ab.py``, where tests call it directly.
"""

import sys

from lenet.cli.ab import main

if __name__ == "__main__":
    sys.exit(main())
