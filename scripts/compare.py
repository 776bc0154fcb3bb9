"""Did it get slower? Candidate runs against a baseline, benchmark by benchmark: ``python scripts/compare.py --help``.

The command lives in ``lenet/cli/compare.py``, where tests call it directly.
"""

from _command import run

if __name__ == "__main__":
    run("compare")
