"""Do counts stay exact when callgrind instruments only the counted calls, and when counters run side by side?

    python studies/count_toggling.py [--rounds 1] [--phases forward_inference] [--repeats 3]

The same eager fp32 cases at batch 64 (both memory formats, the ``--phases``) are counted by
``lenet.instructions.count`` in three ways, ``--rounds`` times each:

- *full*: instrumented from the start, as torch's ``collect_callgrind`` does (``late=False``), alone;
- *toggled, alone*: instrumentation switched on only around the counted calls (the default);
- *toggled, concurrent*: two toggled counting processes at once, one per core of a 2-core machine.

Each process counts every case (one valgrind process, ``--repeats`` a case). The table gives each case's
median count per condition, the largest difference from the *full* median, and the spread between the
repeats of one process, for scale; and the wall time of a counting process in each condition (the
machine may be shared: times are indicative, counts are not disturbed by load). The files are written
again after every process, so a long study leaves its results so far.
-> results/studies/count_toggling.{json,md}
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from _study import STUDY_DIR, write_study

from lenet.instructions import InstructionCount, count
from lenet.variants import Case, Phase, parse_optimizer, parse_variant

CONDITIONS = ("full", "toggled, alone", "toggled, concurrent")
Processes = dict[str, list[tuple[dict[str, list[float]], float]]]


def cases_of(phases: list[str]) -> list[Case]:
    return [
        Case(Phase(phase), parse_variant(variant), 64, parse_optimizer("sgd") if Phase(phase).uses_optimizer else None)
        for variant in ("cpu-contiguous-fp32-eager", "cpu-channels_last-fp32-eager")
        for phase in phases
    ]


def counted(cases: list[Case], repeats: int, late: bool) -> tuple[dict[str, list[float]], float]:
    """One counting process over every case: each case's per-repeat counts per call, and its wall seconds."""
    start = time.monotonic()
    results = count(cases, repeats=repeats, workers=1, late=late)
    seconds = time.monotonic() - start
    failed = {name: why for name, why in results.items() if not isinstance(why, InstructionCount)}
    if failed:
        raise SystemExit(f"counting failed: {failed}")
    return {name: list(result.per_repeat) for name, result in results.items()}, seconds  # type: ignore[union-attr]


def measure(cases: list[Case], repeats: int, rounds: int, save: Callable[[Processes], None]) -> Processes:
    """``rounds`` processes per condition; the concurrent ones in pairs started together. ``save`` after each."""
    processes: Processes = {name: [] for name in CONDITIONS}
    for index in range(rounds):
        print(f"round {index + 1}/{rounds}", flush=True)
        for name, late in (("toggled, alone", True), ("full", False)):
            processes[name].append(counted(cases, repeats, late))
            save(processes)
        if index % 2 == 0:  # a pair at once: two processes of the concurrent condition
            with ThreadPoolExecutor(2) as pool:
                pair = list(pool.map(lambda _: counted(cases, repeats, True), range(2)))
            processes["toggled, concurrent"].extend(pair)
            save(processes)
    return processes


def table(cases: list[Case], processes: Processes) -> tuple[list[dict], str]:
    rows = []
    lines = [
        "| case | full | toggled, alone | toggled, concurrent | largest difference from full "
        "| spread of repeats in one process |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for case in cases:
        medians = {
            name: [statistics.median(counts[case.name]) for counts, _ in runs] for name, runs in processes.items()
        }
        every = [value for values in medians.values() for value in values]
        reference = statistics.median(medians["full"] or every)
        difference = max(abs(value - reference) for value in every) / reference
        spreads = [
            (max(repeats) - min(repeats)) / statistics.median(repeats)
            for runs in processes.values()
            for counts, _ in runs
            for repeats in [counts[case.name]]
        ]
        rows.append({"case": case.name, "medians": medians, "difference": difference, "spread": max(spreads)})
        cells = [", ".join(f"{value:,.0f}" for value in medians[name]) or "-" for name in CONDITIONS]
        lines.append(f"| {case.name} | {' | '.join(cells)} | {difference:.4%} | {max(spreads):.4%} |")
    return rows, "\n".join(lines)


def write(cases: list[Case], repeats: int, processes: Processes, started: float, command: str) -> None:
    rows, counts_table = table(cases, processes)
    seconds = {name: [round(s, 1) for _, s in runs] for name, runs in processes.items()}
    timing = "\n".join(
        f"| {name} | {', '.join(f'{s:.0f}' for s in values) or '-'} |" for name, values in seconds.items()
    )
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    markdown = f"""# Counting with instrumentation toggled, alone and side by side

`{command}` ({when}, {os.cpu_count()} CPUs, {time.monotonic() - started:.0f} s in all). Each cell is
one counting process's median count per call over its {repeats} repeats. *full*: instrumented from the
start; *toggled*: instrumentation switched on only around the counted calls (`lenet.callgrind`);
*concurrent*: two toggled processes at once on this machine's cores.

{counts_table}

Wall seconds of each counting process (all {len(cases)} cases; the machine was shared with other work,
so these are indicative only; the counts are not affected by load):

| condition | seconds per process |
| --- | --- |
{timing}
"""
    document = {"command": command, "cases": rows, "seconds": seconds, "cpus": os.cpu_count(), "when": when}
    write_study(STUDY_DIR / "count_toggling.json", document, markdown)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1, help="processes per condition (default 1)")
    parser.add_argument("--phases", default="forward_inference", help="comma-separated (default forward_inference)")
    parser.add_argument("--repeats", type=int, default=3, help="callgrind repeats per case (default 3)")
    args = parser.parse_args()
    cases = cases_of(args.phases.split(","))
    command = "python studies/count_toggling.py " + " ".join(sys.argv[1:])
    started = time.monotonic()
    measure(cases, args.repeats, args.rounds, lambda done: write(cases, args.repeats, done, started, command))


if __name__ == "__main__":
    main()
