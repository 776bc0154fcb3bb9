"""Is this machine quiet enough to benchmark on? ``python scripts/system.py --help``.

The command lives in ``lenet/cli/system.py``, where tests call it directly.
"""

from _command import run

if __name__ == "__main__":
    run("system")
