"""Measure this machine's peaks (matmul GFLOP/s per precision, memory bandwidth) and cache them.

The suite reads them to give every benchmark with FLOPs its % of peak, and measures them
itself when they are missing; this command measures them ahead of time, shows them, or
measures them again (--force). One file per device and thread count:
<peaks dir>/<fingerprint>-t<threads>-<device>.json. How they are measured: docs/metrics.md.
Exit status (docs/exit-codes.md): 0 measured or read, 2 bad options, 4 a device could not be measured.

examples:
  python scripts/peaks.py                       # cpu (and cuda when present), torch's thread count
  python scripts/peaks.py --threads 1 --force
  python scripts/peaks.py --device cuda
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from lenet import machine
from lenet.cli import command_parser
from lenet.exits import EXIT_INTERRUPTED, EXIT_OK, command
from lenet.metrics.peaks import PeaksFileError, cached_peaks, describe, identity
from lenet.options import RunOptions, add_to_argparse, given_from_namespace, parse_or_usage_error
from lenet.paths import UnsafeNameError

DEVICES = ("cpu", "cuda", "all")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, RunOptions]:
    parser = command_parser("peaks.py", __doc__)
    parser.add_argument(
        "--device", default="all", help=f"one of {', '.join(DEVICES)} (default all: cpu, and cuda when present)"
    )
    parser.add_argument(
        "--force", action="store_true", help="measure again even when the cache holds this machine's peaks"
    )
    add_to_argparse(parser, groups=("metrics",), skip=("--no-metrics", "--compile-cost"))
    parser.add_argument("--threads", default=None, help="torch.set_num_threads for the measurement [env LENET_THREADS]")
    args = parser.parse_args(argv)
    if args.device not in DEVICES:
        parser.error(f"device {args.device!r} is unknown; choose from {', '.join(DEVICES)}")
    options = parse_or_usage_error(parser, given_from_namespace(args), os.environ, machine.cpu_count())
    return args, options


@command
def main(argv: list[str] | None = None) -> int:
    args, options = parse_args(argv)
    threads = options.threads or torch.get_num_threads()
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if args.device == "all" and not torch.cuda.is_available():
        devices = ["cpu"]
    failed = 0
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print("error: cuda: CUDA is not available here", file=sys.stderr)
            failed += 1
            continue
        try:
            peaks, _, note = cached_peaks(options.peaks_dir, identity(device, threads), force=args.force)
        except (PeaksFileError, UnsafeNameError, OSError, RuntimeError) as error:
            print(f"error: {device}: {error}", file=sys.stderr)
            failed += 1
            continue
        print(note)
        print("\n".join(describe(peaks)))
    return EXIT_INTERRUPTED if failed else EXIT_OK
