"""Command-line pieces shared by compare and ab: the verdict options and where summaries go."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lenet.analysis.compare import COUNT_SPREAD_MARGIN, DEFAULT_COUNT_THRESHOLD, MIN_COUNT_PROCESSES, GateOptions
from lenet.process_setup import ALLOCATORS, ProcessSetup, SetupError
from lenet.redact import redact

# The setting with the least variation between processes in the noise study (results/studies/noise_study.md):
# tcmalloc preloaded, the process pinned to one CPU. Where tcmalloc is not installed, glibc's malloc; pinned
# only when each process runs one thread (more threads on one CPU would queue behind each other).
PREFERRED_ALLOCATOR = "tcmalloc"
FALLBACK_ALLOCATOR = "glibc"
PIN_ONE_THREAD = "last"
# One callgrind repeat a counted process: the spread between processes, not between repeats, sets the threshold.
COUNTING = ["--instructions", "--instructions-repeats", "1"]
# A process whose counts alone are used (ab.py's counted processes, a counting bisect's probes) times as few rounds
# as pytest-benchmark allows, and skips the untimed metrics pass: in a fresh worktree that pass would first measure
# the machine's peaks (seconds to minutes), beside other processes that disturb them. An environment variable, not
# an option, so that older trees, which do not know it, still run.
COUNTED_TIMING = ["--benchmark-max-time=0.02", "--benchmark-min-rounds=3"]
COUNTED_ENVIRONMENT = {"LENET_NO_METRICS": "1"}


def fraction(text: str) -> float:
    """A share strictly between 0 and 1, e.g. 0.05 for 5%."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a fraction between 0 and 1, e.g. 0.05 for 5%")
    return value


def add_gate_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("verdicts")
    group.add_argument(
        "--alpha",
        type=fraction,
        default=0.05,
        help="false discovery rate over the benchmarks compared (Benjamini-Hochberg; default 0.05)",
    )
    group.add_argument(
        "--threshold",
        type=fraction,
        default=None,
        help="a fixed practical threshold, e.g. 0.05 for 5%% (default: from the measured noise)",
    )
    group.add_argument(
        "--min-effect",
        type=fraction,
        default=0.02,
        help="the smallest threshold the noise may give (default 0.02 = 2%%)",
    )
    group.add_argument(
        "--count-threshold",
        type=fraction,
        default=DEFAULT_COUNT_THRESHOLD,
        help=f"instruction counts: the smallest change that is real (default {DEFAULT_COUNT_THRESHOLD}; raised to "
        f"{COUNT_SPREAD_MARGIN:g}x the spread the counts show)",
    )
    group.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="compare runs of different machines anyway; verdicts become informational",
    )
    group.add_argument(
        "--include-unstable",
        action="store_true",
        help="let processes a stability check flagged count toward verdicts (default: left out, and named)",
    )
    group.add_argument("--fail-on-inconclusive", action="store_true", help="exit 5 when a benchmark is inconclusive")
    group.add_argument("--fail-on-improvement", action="store_true", help="exit 6 when a benchmark improved")
    group.add_argument("--markdown", type=Path, default=None, help="also write the Markdown summary here")
    group.add_argument("--json", type=Path, default=None, help="also write every verdict as JSON here")


def add_process_options(parser: argparse.ArgumentParser, counted_default: int) -> None:
    """How ab and baseline start each process of the suite, and which ones count instructions."""
    group = parser.add_argument_group("processes")
    group.add_argument(
        "--allocator",
        choices=("auto", *ALLOCATORS),
        default="auto",
        help=f"the memory allocator of every process (default auto: {PREFERRED_ALLOCATOR} where it is installed, "
        f"else {FALLBACK_ALLOCATOR}; results/studies/noise_study.md)",
    )
    group.add_argument(
        "--pin",
        default="auto",
        metavar="CPUS",
        help="CPUs every process may run on: none, last, or a list such as 1 or 0,1 (default auto: the last CPU "
        "when the pytest options ask for --threads 1, else none)",
    )
    group.add_argument(
        "--instructions",
        choices=("auto", "on", "off"),
        default="auto",
        help="count instructions under valgrind in the first --count-processes processes (default auto: where "
        "valgrind is installed)",
    )
    group.add_argument(
        "--count-processes",
        type=int,
        default=counted_default,
        metavar="N",
        help=f"processes that count instructions (default {counted_default}; the count verdict needs "
        f"{MIN_COUNT_PROCESSES} a side)",
    )


def process_setup(args: argparse.Namespace, pytest_args: Sequence[str]) -> ProcessSetup:
    """The allocator and pinning asked for (``auto``: the noise study's choice); ValueError (SetupError) when
    this machine cannot provide them."""
    allocator = args.allocator
    if allocator == "auto":
        allocator = PREFERRED_ALLOCATOR if has_library(PREFERRED_ALLOCATOR) else FALLBACK_ALLOCATOR
    pin = args.pin
    if pin == "auto":
        pin = PIN_ONE_THREAD if one_thread(pytest_args) else "none"
    setup = ProcessSetup.parse(allocator, pin)
    setup.environment()  # a missing allocator library is bad input now, not in the first process
    if args.count_processes < 0:
        raise ValueError(f"--count-processes {args.count_processes}: expected 0 or more")
    return setup


def has_library(allocator: str) -> bool:
    try:
        ProcessSetup(allocator).environment({})
    except SetupError:
        return False
    return True


def one_thread(pytest_args: Sequence[str]) -> bool:
    """Whether these ``pytest bench`` options run one thread (``--threads 1``, or LENET_THREADS=1 without one)."""
    given = [value for flag, value in itertools.pairwise(pytest_args) if flag == "--threads"]
    given += [arg.split("=", 1)[1] for arg in pytest_args if arg.startswith("--threads=")]
    threads = given[-1] if given else os.environ.get("LENET_THREADS")
    return threads is not None and threads.strip() == "1"


def counting_arguments(mode: str) -> tuple[list[str], str | None]:
    """The pytest options a counted process adds, and why none are added (None when counting)."""
    if mode == "off":
        return [], "no instruction counts (--instructions off)"
    if shutil.which("valgrind") is None:
        if mode == "on":
            raise ValueError("--instructions on: valgrind is not installed (apt-get install valgrind)")
        return [], "no instruction counts: valgrind is not installed, so time decides alone"
    return list(COUNTING), None


def gate_options(args: argparse.Namespace) -> GateOptions:
    return GateOptions(
        alpha=args.alpha,
        threshold=args.threshold,
        min_effect=args.min_effect,
        allow_mismatch=args.allow_mismatch,
        fail_on_inconclusive=args.fail_on_inconclusive,
        fail_on_improvement=args.fail_on_improvement,
        count_threshold=args.count_threshold,
        include_unstable=args.include_unstable,
    )


class OutputError(OSError):
    """A summary that could not be written where it was asked for; the message names each place and why."""


def publish(text: str, data: dict[str, Any], markdown_path: Path | None, json_path: Path | None) -> None:
    """Print the summary; write it (and the JSON) where asked; append it to a CI job summary.

    Every output is tried; OutputError names those that could not be written. The files pass
    through the one redaction, as stdout does (docs/exit-codes.md), and are written whole even
    where a name from a file is not valid Unicode.
    """
    text = redact(text)
    print(text)
    failed = []
    outputs = [
        ("--markdown", markdown_path, text, "w"),
        ("--json", json_path, redact(json.dumps(data, indent=2)) + "\n", "w"),
    ]
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        outputs.append(("GITHUB_STEP_SUMMARY", Path(summary), text + "\n", "a"))
    for what, path, content, mode in outputs:
        if path is None:
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, mode, encoding="utf-8", errors="backslashreplace") as handle:
                handle.write(content)
        except OSError as error:
            failed.append(f"{what} {path}: {error.strerror or error}")
    if failed:
        raise OutputError(f"cannot write {'; '.join(failed)}")
