"""Baselines: promote saved runs, calibrate the noise, list them: ``python scripts/baseline.py --help``.

The command lives in ``lenet/cli/baseline.py``, where tests call it directly.
"""

from _command import run

if __name__ == "__main__":
    run("baseline")
