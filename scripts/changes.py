"""Steps in the history of saved runs: ``python scripts/changes.py --help``.

The command lives in ``lenet/cli/changes.py``, where tests call it directly.
"""

from _command import run

if __name__ == "__main__":
    run("changes")
