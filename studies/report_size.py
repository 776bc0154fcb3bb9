"""How the report's cost grows with the tables one run makes, and what happens past its bound.

    python studies/report_size.py [--sizes 100,1000,10000] [--repeats 1]

Each size is one saved run of N benchmarks from another project (a copy of the fixture run
``tests/fixtures/runs/other-pb4``), each in its own group, so N benchmarks make N tables: the
shape of a large parametrized suite. For each size, ``scripts/report.py RUN --formats md``
runs as a fresh process, under the default bound (``--max-tables``, lenet/analysis/tables.py)
and, for sizes within reach, with the bound lifted (``--max-tables 0``). The study records
the exit status, the wall time and the CPU time of the process (user + system, from
``getrusage``): on a shared machine the wall time swells with the load, the CPU time much less.
The 1-minute load average before and after each run is recorded beside it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _study import STUDY_DIR, write_study

from lenet.source import REPO

FIXTURE = REPO / "tests/fixtures/runs/other-pb4/Linux-CPython-3.11-64bit/0001_unversioned_20261127_120415.json"


def write_run(path: Path, size: int) -> None:
    """One run of ``size`` benchmarks, each its own group (one table each)."""
    document = json.loads(FIXTURE.read_text())
    template = document["benchmarks"][0]
    benchmarks = []
    for index in range(size):
        bench = copy.deepcopy(template)
        bench.update(name=f"test_case[{index}]", fullname=f"tests/test_case.py::test_case[{index}]")
        bench.update(group=f"case {index}", param=str(index), params={"index": index})
        benchmarks.append(bench)
    document["benchmarks"] = benchmarks
    path.write_text(json.dumps(document))


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0]) if Path("/proc/loadavg").exists() else float("nan")


def timed_report(run: Path, output: Path, max_tables: int | None) -> dict[str, Any]:
    """One report process: its status, wall seconds and CPU seconds (user + system)."""
    command = [sys.executable, str(REPO / "scripts/report.py"), str(run), "-o", str(output)]
    command += ["--formats", "md", "-q", "--no-traces"]
    command += [] if max_tables is None else ["--max-tables", str(max_tables)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before, started = load(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "max_tables": max_tables,
        "status": done.returncode,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "load_before": load_before,
        "load_after": load(),
        "stderr": done.stderr.strip()[-300:],
    }


def markdown(results: list[dict[str, Any]], machine: str) -> str:
    lines = [
        "# Report size: the cost of one run's tables, and the bound",
        "",
        f"`python studies/report_size.py` on {machine}, {time.strftime('%Y-%m-%d', time.gmtime())}. "
        "One saved run of N benchmarks, each its own group (N tables), reported as Markdown by a fresh "
        "`scripts/report.py` process. CPU time is user + system of that process; the machine was shared, "
        "so wall times are inflated by the load shown (2 CPUs).",
        "",
        "| benchmarks (tables) | --max-tables | status | wall (s) | CPU (s) | 1-min load before/after |",
        "| ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for row in results:
        bound = "default" if row["max_tables"] is None else ("none" if row["max_tables"] == 0 else row["max_tables"])
        lines.append(
            f"| {row['size']} | {bound} | {row['status']} | {row['wall_s']} | {row['cpu_s']} "
            f"| {row['load_before']:.1f} / {row['load_after']:.1f} |"
        )
    lines += [
        "",
        "Status 2 is the refusal past the bound (one line with advice: narrow the selection or raise",
        "`--max-tables`); it comes before any table is built.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1000,10000", help="benchmarks per run (default 100,1000,10000)")
    parser.add_argument("--unbounded-up-to", type=int, default=10000, help="lift the bound for sizes up to this")
    parser.add_argument("--output", type=Path, default=STUDY_DIR / "report_size.json")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for size in (int(s) for s in args.sizes.split(",")):
            run = Path(folder) / f"run{size}.json"
            write_run(run, size)
            bounds = [None] + ([0] if size <= args.unbounded_up_to else [])
            for bound in bounds:
                result = timed_report(run, Path(folder) / f"report-{size}-{bound}", bound)
                results.append({"size": size, **result})
                print(json.dumps(results[-1]), flush=True)
    machine = f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    write_study(args.output, {"machine": machine, "results": results}, markdown(results, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
