"""Did it get slower? Candidate runs against a baseline, benchmark by benchmark: ``python scripts/compare.py --help``.

The command lives in ``lenet/cli/compare.py``, where tests call it directly.
"""

import sys

from lenet.cli.compare import main

if __name__ == "__main__":
    sys.exit(main())
