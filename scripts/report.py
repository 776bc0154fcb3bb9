"""Tables, plots and trace summaries from saved runs: ``python scripts/report.py --help``.

The command lives in ``lenet/cli/report.py``, where tests call it directly.
"""

from _command import run

if __name__ == "__main__":
    run("report")
