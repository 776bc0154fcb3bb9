"""Record torch.profiler traces for a selection of cases, without timing them.

Each case is built, checked against the fp64 reference, warmed up past compilation,
then profiled (one discarded step, then --profile-steps recorded steps) into a new
run folder: <trace dir>/<UTC time>-<id>/<variant>-<phase>[-<optimizer>]-b<batch>/,
holding the Chrome trace, operators.csv/json and profile.json. The same pass that
`pytest bench --profile` runs after its timed rounds. A case that fails is named on
stderr and the others are still recorded. Exit status: 0 when every selected case
was traced, 1 when any failed, 2 for bad options.

Selection options and their defaults are the suites' (see `pytest bench --help`).

examples:
  python scripts/trace.py --variants cpu-contiguous-fp32-eager --phases train_step
  python scripts/trace.py --preset quick --trace-format json
  tensorboard --logdir results/traces          # then open the PYTORCH_PROFILER tab
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from lenet.correctness import CorrectnessError
from lenet.profiling import TRACE_FORMATS, TraceRun, enable_kernel_profile, parse_settings, profile_case
from lenet.variants import PRESETS, SelectionError, build_selection, skip_reason

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="trace.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="quick", help=f"one of {', '.join(PRESETS)} (default: quick)")
    parser.add_argument("--variants", default=None, help="comma-separated variant ids or globs")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated batch sizes")
    parser.add_argument("--phases", default=None, help="comma-separated phases")
    parser.add_argument("--optimizers", default=None, help="comma-separated optimizers")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument(
        "--trace-dir",
        type=Path,
        default=REPO / "results" / "traces",
        help="root of the run folders (default: results/traces)",
    )
    parser.add_argument("--profile-steps", default=None, help="recorded steps per trace (default: 3)")
    parser.add_argument("--trace-format", default=None, help=f"one of {', '.join(TRACE_FORMATS)} (default: json.gz)")
    parser.add_argument("--no-gate", action="store_true", help="skip the correctness check before profiling")
    args = parser.parse_args(argv)
    try:
        args.selection = build_selection(args.preset, args.variants, args.batch_sizes, args.phases, args.optimizers)
        args.settings = parse_settings(args.profile_steps, args.trace_format)
    except SelectionError as error:
        parser.error(str(error))
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads {args.threads} must be a positive integer")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    enable_kernel_profile()  # before anything compiles, so Inductor's kernels are named in the traces
    run = TraceRun(args.trace_dir, args.settings)
    failed = 0
    for phase in args.selection.phases:
        for case in args.selection.cases(phase):
            label = f"{case.id} {phase.value}"
            reason = skip_reason(case)
            if reason:
                print(f"skipped {label}: {reason}", file=sys.stderr)
                continue
            try:
                result = profile_case(case, run, gate=not args.no_gate)
            except (CorrectnessError, RuntimeError, OSError, ValueError) as error:
                failed += 1
                print(f"error: {label}: {type(error).__name__}: {str(error).splitlines()[0]}", file=sys.stderr)
                continue
            for problem in result.errors:
                print(f"warning: {label}: {problem}", file=sys.stderr)
            failed += not result.ok
            size = f"{result.trace_bytes / 1024:.0f} KiB" if result.trace_file else "no trace"
            print(f"{label}: {result.seconds:.2f} s, {size} -> {result.folder}", flush=True)
    if run.folder.exists():
        print(f"traces in {run.folder}; open with `tensorboard --logdir {run.root}` or https://ui.perfetto.dev")
    return 1 if failed or not run.folder.exists() else 0


if __name__ == "__main__":
    sys.exit(main())
