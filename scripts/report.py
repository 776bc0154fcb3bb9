"""Tables, plots and trace summaries from saved runs: ``python scripts/report.py --help``.

The command lives in ``lenet/cli/report.py``, where tests call it directly.
"""

import sys

from lenet.cli.report import main

if __name__ == "__main__":
    sys.exit(main())
