"""Is this machine quiet enough to benchmark on? What ``pyperf system show`` tells, for this harness.

    python scripts/system.py [--seconds S]

Reads (never changes) the CPUs and their isolation, SMT, the frequency governor and boost, the
load, steal and other processes' CPU use over a short sample, the busiest other processes,
ASLR, the memory allocator, memory and swap, transparent huge pages and hardware counters;
each line says what it is, whether it is fine for benchmarking, and what would make the
machine quieter. The bounds for steal and other processes' CPU are those the stability checks
use (``lenet/stability.py``); docs/stability.md explains each line. Exit status: 0, whatever
it finds (2 for bad options, 3 where there is no Linux /proc to read; docs/exit-codes.md).
The checks live in ``lenet/system_report.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lenet.cli import command_parser
from lenet.exits import EXIT_OK, EXIT_UNUSABLE, command
from lenet.system_report import render, system_items


@command
def main(argv: list[str] | None = None) -> int:
    parser = command_parser("system.py", __doc__)
    parser.add_argument(
        "--seconds", type=float, default=1.0, help="how long to watch CPU use and processes (default 1)"
    )
    args = parser.parse_args(argv)
    if not 0.1 <= args.seconds <= 60:
        parser.error(f"--seconds {args.seconds:g} must be from 0.1 to 60")
    if not Path("/proc/stat").exists():
        print("error: this check reads Linux's /proc and /sys; there is no /proc/stat here", file=sys.stderr)
        return EXIT_UNUSABLE
    print(render(system_items(seconds=args.seconds)))
    return EXIT_OK
