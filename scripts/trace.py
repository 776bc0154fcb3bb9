"""Record torch.profiler traces for a selection of cases, without timing them: ``python scripts/trace.py --help``.

The command lives in ``lenet/cli/trace.py``, where tests call it directly.
"""

from _command import run

if __name__ == "__main__":
    run("trace")
