"""Record torch.profiler traces for a selection of cases, without timing them.

Each case is built, checked against the fp64 reference, warmed up past compilation,
then profiled (one discarded step, then --profile-steps recorded steps) into a new
run folder: <trace dir>/<UTC time>-<id>/<phase>-<variant>[-<optimizer>]-b<batch>/,
holding the Chrome trace, operators.csv/json and profile.json. The same pass that
`pytest bench --profile` runs after its timed rounds. A case that fails is named on
stderr and the others are still recorded. Exit status (docs/exit-codes.md): 0 when every
selected case was traced, 2 for bad options, 4 when any failed (the others are recorded).

Selection options, their environment twins and defaults are the suites' (lenet/options.py).

examples:
  python scripts/trace.py --variants cpu-contiguous-fp32-eager --phases train_step
  python scripts/trace.py --preset quick --trace-format json
  tensorboard --logdir results/traces          # then open the PYTORCH_PROFILER tab
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from lenet import machine
from lenet.cli import command_parser
from lenet.correctness import CorrectnessError
from lenet.exits import EXIT_INTERRUPTED, EXIT_OK, command
from lenet.options import RunOptions, add_to_argparse, given_from_namespace, parse_or_usage_error
from lenet.profiling import TraceRun, enable_kernel_profile, profile_case
from lenet.variants import skip_reason


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, RunOptions]:
    parser = command_parser("trace.py", __doc__)
    add_to_argparse(parser, groups=("selection",))
    add_to_argparse(parser, groups=("profile",), skip=("--profile",))
    parser.add_argument("--no-gate", action="store_true", help="skip the correctness check before profiling")
    args = parser.parse_args(argv)
    given = {**given_from_namespace(args), "--profile": True}  # this command always profiles
    options = parse_or_usage_error(parser, given, os.environ, machine.cpu_count())
    return args, options


@command
def main(argv: list[str] | None = None) -> int:
    args, options = parse_args(argv)
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    enable_kernel_profile()  # before anything compiles, so Inductor's kernels are named in the traces
    if options.trace_dir is None or options.trace_settings is None:
        raise AssertionError("RunOptions.parse sets both when profiling")
    run = TraceRun(options.trace_dir, options.trace_settings)
    failed = 0
    for phase in options.selection.phases:
        for case in options.selection.cases(phase):
            reason = skip_reason(case)
            if reason:
                print(f"skipped {case.name}: {reason}", file=sys.stderr)
                continue
            try:
                result = profile_case(case, run, gate=not args.no_gate)
            except (CorrectnessError, RuntimeError, OSError, ValueError) as error:
                failed += 1
                print(f"error: {case.name}: {type(error).__name__}: {str(error).splitlines()[0]}", file=sys.stderr)
                continue
            for problem in result.errors:
                print(f"warning: {case.name}: {problem}", file=sys.stderr)
            failed += not result.ok
            size = f"{result.trace_bytes / 1024:.0f} KiB" if result.trace_file else "no trace"
            print(f"{case.name}: {result.seconds:.2f} s, {size} -> {result.folder}", flush=True)
    if run.folder.exists():
        print(f"traces in {run.folder}; open with `tensorboard --logdir {run.root}` or https://ui.perfetto.dev")
    return EXIT_INTERRUPTED if failed or not run.folder.exists() else EXIT_OK
