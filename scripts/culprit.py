"""The first bad commit between two (a bisection by measurement): ``python scripts/culprit.py --help``.

The command lives in ``lenet/cli/bisect.py``, where tests call it directly. (A script named
``bisect.py`` in this folder would hide the standard library's ``bisect`` from every script here.)
"""

from _command import run

if __name__ == "__main__":
    run("bisect")
