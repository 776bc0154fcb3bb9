"""Do counts stay exact when callgrind instruments only the counted calls, and when counters run side by side?

    python studies/count_toggling.py [--rounds 2]

The same eager fp32 cases at batch 64 (both memory formats, ``forward_inference`` and
``train_step``) are counted by ``lenet.instructions.count`` in three ways, ``--rounds`` times each:

- *full*: instrumented from the start, as torch's ``collect_callgrind`` does (``late=False``), alone;
- *toggled, alone*: instrumentation switched on only around the counted calls (the default);
- *toggled, concurrent*: two toggled counting processes at once, one per core of a 2-core machine.

Each process counts every case (one valgrind process, 5 repeats a case). The table gives each case's
median count per condition, the largest difference from the *full* median, and the spread between the
repeats of one process, for scale; and the wall time of a counting process in each condition (the
machine may be shared: times are indicative, counts are not disturbed by load).
-> results/studies/count_toggling.{json,md}
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from _study import STUDY_DIR, write_study

from lenet.instructions import DEFAULT_REPEATS, InstructionCount, count
from lenet.variants import Case, Phase, parse_optimizer, parse_variant

CASES = [
    Case(phase, parse_variant(variant), 64, parse_optimizer("sgd") if phase is Phase.TRAIN_STEP else None)
    for variant in ("cpu-contiguous-fp32-eager", "cpu-channels_last-fp32-eager")
    for phase in (Phase.FORWARD_INFERENCE, Phase.TRAIN_STEP)
]
CONDITIONS = ("full", "toggled, alone", "toggled, concurrent")


def counted(late: bool) -> tuple[dict[str, list[float]], float]:
    """One counting process over every case: each case's per-repeat counts per call, and its wall seconds."""
    start = time.monotonic()
    results = count(CASES, repeats=DEFAULT_REPEATS, workers=1, late=late)
    seconds = time.monotonic() - start
    failed = {name: why for name, why in results.items() if not isinstance(why, InstructionCount)}
    if failed:
        raise SystemExit(f"counting failed: {failed}")
    return {name: list(result.per_repeat) for name, result in results.items()}, seconds  # type: ignore[union-attr]


def measure(rounds: int) -> dict[str, list[tuple[dict[str, list[float]], float]]]:
    """``rounds`` processes per condition; the concurrent ones in pairs started together."""
    processes: dict[str, list[tuple[dict[str, list[float]], float]]] = {name: [] for name in CONDITIONS}
    for index in range(rounds):
        print(f"round {index + 1}/{rounds}", flush=True)
        processes["full"].append(counted(late=False))
        processes["toggled, alone"].append(counted(late=True))
        if index % 2 == 0:  # a pair at once: two processes of the concurrent condition
            with ThreadPoolExecutor(2) as pool:
                pair = list(pool.map(lambda _: counted(late=True), range(2)))
            processes["toggled, concurrent"].extend(pair)
    return processes


def table(processes: dict[str, list[tuple[dict[str, list[float]], float]]]) -> tuple[list[dict], str]:
    rows = []
    lines = [
        "| case | full | toggled, alone | toggled, concurrent | largest difference from full "
        "| spread of repeats in one process |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for case in CASES:
        medians = {
            name: [statistics.median(counts[case.name]) for counts, _ in runs] for name, runs in processes.items()
        }
        reference = statistics.median(medians["full"])
        every = [value for values in medians.values() for value in values]
        difference = max(abs(value - reference) for value in every) / reference
        spreads = [
            (max(repeats) - min(repeats)) / statistics.median(repeats)
            for runs in processes.values()
            for counts, _ in runs
            for repeats in [counts[case.name]]
        ]
        rows.append({"case": case.name, "medians": medians, "difference": difference, "spread": max(spreads)})
        cells = [", ".join(f"{value:,.0f}" for value in medians[name]) for name in CONDITIONS]
        lines.append(f"| {case.name} | {' | '.join(cells)} | {difference:.3%} | {max(spreads):.3%} |")
    return rows, "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="processes per condition (default 2)")
    args = parser.parse_args()
    started = time.monotonic()
    processes = measure(args.rounds)
    rows, counts_table = table(processes)
    seconds = {name: [round(s, 1) for _, s in runs] for name, runs in processes.items()}
    timing = "\n".join(f"| {name} | {', '.join(f'{s:.0f}' for s in values)} |" for name, values in seconds.items())
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    markdown = f"""# Counting with instrumentation toggled, alone and side by side

`python studies/count_toggling.py --rounds {args.rounds}` ({when}, {os.cpu_count()} CPUs,
{time.monotonic() - started:.0f} s in all). Each cell is one counting process's median count per
call over its {DEFAULT_REPEATS} repeats. *full*: instrumented from the start; *toggled*:
instrumentation switched on only around the counted calls (`lenet.callgrind`); *concurrent*: two
toggled processes at once on this machine's cores.

{counts_table}

Wall seconds of each counting process (all {len(CASES)} cases; the machine was shared with other work,
so these are indicative only; the counts are not affected by load):

| condition | seconds per process |
| --- | --- |
{timing}
"""
    document = {"cases": rows, "seconds": seconds, "rounds": args.rounds, "cpus": os.cpu_count(), "when": when}
    write_study(STUDY_DIR / "count_toggling.json", document, markdown)


if __name__ == "__main__":
    main()
