"""Same-job A/B of a baseline commit against the working tree: ``python scripts/ab.py --help``.

The command lives in ``lenet/cli/ab.py``, where tests call it directly.
"""

from _command import run

if __name__ == "__main__":
    run("ab")
