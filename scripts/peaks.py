"""Measure and cache this machine's peaks: ``python scripts/peaks.py --help``.

The command lives in ``lenet/cli/peaks.py``, where tests call it directly.
"""

from _command import run

if __name__ == "__main__":
    run("peaks")
