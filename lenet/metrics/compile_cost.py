"""What torch.compile costs a case, cold and warm, and after how many steps it pays back.

How (docs/metrics.md):

* **In-process** (every run): the wall time of the calls that compiled during the gate and the
  warm-up (``compile_seconds`` in the record). It depends on what the process compiled before:
  Inductor's caches, on disk and in memory, are shared by every case of a run.
* **Cold** (``--compile-cost``): a new Python process with an empty ``TORCHINDUCTOR_CACHE_DIR``
  (and ``TRITON_CACHE_DIR``) builds the case and warms it up as the suite does; its cost is the
  wall time of the calls that compiled. Importing torch and building the model are not in it.
* **Warm**: a second new process on the cache the cold one filled: dynamo still traces, but the
  FX-graph and AOTAutograd caches hit (their hit counters are kept), so Inductor's code
  generation and the C++/Triton compiler are skipped.
* **Graphs, graph breaks, recompiles** come from dynamo's counters in the cold process
  (``counters["stats"]["unique_graphs"]``, ``counters["graph_break"]``, and the compilations
  dynamo records with a recompile reason).
* **Break-even steps** = compile cost / (eager step - compiled step), with the steps the run's
  medians of the case and of its eager counterpart (same device, memory format, precision,
  phase, batch size and optimizer); ``"never"`` when the compiled step is not faster. The cost
  is the cold one when measured, else the in-process one (``break_even_basis``). It counts the
  compiling calls' whole time as cost (they also did the step's work: milliseconds against seconds).

The child is ``python -m lenet.metrics.compile_cost SPEC OUT``: it writes one JSON object.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet.runs.record import CompileCostInfo
from lenet.source import child_environment
from lenet.variants import Case

NEVER = "never"
CHILD_SECONDS = 900.0  # one cold compile of a LeNet phase took 25-33 s on the 2-core VM


def break_even_steps(compile_seconds: float, eager_step: float, compiled_step: float) -> int | str:
    """Steps after which compiling has paid for itself: ceil(cost / saving), or ``"never"``.

    ValueError for a negative or non-finite input (a cost or a step time cannot be one).
    """
    for name, value in (
        ("compile cost", compile_seconds),
        ("eager step", eager_step),
        ("compiled step", compiled_step),
    ):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} {value!r} must be a finite number of seconds >= 0")
    saving = eager_step - compiled_step
    if saving <= 0:
        return NEVER
    return max(1, math.ceil(compile_seconds / saving))


def eager_counterpart(case: Case) -> Case:
    """The same case run eagerly: what a compiled case's saving is measured against."""
    return dataclasses.replace(case, variant=dataclasses.replace(case.variant, compile="eager", scope="module"))


@dataclass(frozen=True)
class ChildResult:
    """What one compiling process reported."""

    compile_seconds: float
    compile_events: int
    graphs: int
    graph_breaks: int
    recompiles: int
    cache_hits: int  # FX-graph + AOTAutograd cache hits
    cache_misses: int
    seconds: float  # the whole process, import included

    @classmethod
    def from_json(cls, document: Mapping[str, Any], seconds: float) -> ChildResult:
        return cls(
            compile_seconds=float(document["compile_seconds"]),
            compile_events=int(document["compile_events"]),
            graphs=int(document["graphs"]),
            graph_breaks=int(document["graph_breaks"]),
            recompiles=int(document["recompiles"]),
            cache_hits=int(document["cache_hits"]),
            cache_misses=int(document["cache_misses"]),
            seconds=seconds,
        )


def run_child(case: Case, threads: int, cache_dir: Path, timeout: float = CHILD_SECONDS) -> ChildResult:
    """Compile ``case`` in a new process on the Inductor cache ``cache_dir``; RuntimeError saying why it failed."""
    with tempfile.TemporaryDirectory(prefix="lenet-compile-cost-") as tmp:
        spec, out = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec.write_text(json.dumps({**case.spec(), "threads": threads}))
        env = {
            **child_environment(os.environ),  # this checkout's lenet, not an installed one
            "TORCHINDUCTOR_CACHE_DIR": str(cache_dir),
            "TRITON_CACHE_DIR": str(cache_dir / "triton"),
        }
        env.pop("TORCHINDUCTOR_FORCE_DISABLE_CACHES", None)  # the warm process must be able to hit
        start = time.perf_counter()
        try:
            result = subprocess.run(
                [sys.executable, "-m", "lenet.metrics.compile_cost", str(spec), str(out)],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the compiling process ran past {timeout:.0f} s") from None
        seconds = time.perf_counter() - start
        if result.returncode != 0 or not out.is_file():
            tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-2:])
            raise RuntimeError(f"the compiling process exited {result.returncode}: {tail}")
        return ChildResult.from_json(json.loads(out.read_text()), seconds)


Runner = Callable[[Case, int, Path], ChildResult]


def cold_and_warm(case: Case, threads: int, runner: Runner = run_child) -> tuple[ChildResult, ChildResult]:
    """A cold compile (new process, empty cache), then a warm one (new process, the same cache)."""
    with tempfile.TemporaryDirectory(prefix="lenet-inductor-cache-") as cache:
        cold = runner(case, threads, Path(cache))
        warm = runner(case, threads, Path(cache))
    return cold, warm


def cost_info(
    cold_warm: tuple[ChildResult, ChildResult] | str | None,
    in_process_seconds: float | None,
    compiled_median: float | None,
    eager_median: float | None,
    eager_name: str,
) -> CompileCostInfo:
    """The record's compile-cost fields from what was measured; ``cold_warm`` a str is why it was not."""
    values: dict[str, Any] = {}
    cold = warm = None
    if isinstance(cold_warm, str):
        values["compile_cost_unavailable"] = cold_warm
    elif cold_warm is not None:
        cold, warm = cold_warm
        values |= {
            "compile_cold_seconds": cold.compile_seconds,
            "compile_warm_seconds": warm.compile_seconds,
            "compile_graphs": cold.graphs,
            "compile_graph_breaks": cold.graph_breaks,
            "compile_recompiles": cold.recompiles,
            "compile_warm_cache_hits": warm.cache_hits,
        }
    cost = cold.compile_seconds if cold is not None else in_process_seconds
    if eager_median is None:
        values["break_even_unavailable"] = f"the eager counterpart {eager_name} was not timed in this run"
    elif compiled_median is None or cost is None:
        values["break_even_unavailable"] = "this case has no median or no compile time"
    else:
        values |= {
            "eager_median_seconds": eager_median,
            "break_even_steps": break_even_steps(cost, eager_median, compiled_median),
            "break_even_basis": "cold" if cold is not None else "in-process",
        }
        if warm is not None:
            values["break_even_warm_steps"] = break_even_steps(warm.compile_seconds, eager_median, compiled_median)
    return CompileCostInfo(**values)


def _child(spec_path: Path, out_path: Path) -> None:
    """Runs in the new process: build the case, warm it up as the suite does, report compile time and counters."""
    import torch
    import torch._dynamo.utils as dynamo_utils

    from lenet.timing import warm_up
    from lenet.workload import build_workload, math_mode, timed_call

    spec = json.loads(spec_path.read_text())
    torch.set_num_threads(int(spec["threads"]))
    case = Case.from_spec(spec)
    with math_mode(case.variant):
        workload = build_workload(case.variant, case.batch_size, case.optimizer)
        report = warm_up(timed_call(workload, case.phase).once, synchronize=workload.synchronize)
    counters = dynamo_utils.counters
    recompiles = sum(1 for m in dynamo_utils.get_compilation_metrics() if getattr(m, "recompile_reason", None))
    hits = counters["inductor"]["fxgraph_cache_hit"] + counters["aot_autograd"]["autograd_cache_hit"]
    misses = counters["inductor"]["fxgraph_cache_miss"] + counters["aot_autograd"]["autograd_cache_miss"]
    out_path.write_text(
        json.dumps(
            {
                "compile_seconds": report.compile_seconds,
                "compile_events": report.compile_events,
                "graphs": int(counters["stats"]["unique_graphs"]),
                "graph_breaks": int(sum(counters["graph_break"].values())),
                "recompiles": recompiles,
                "cache_hits": int(hits),
                "cache_misses": int(misses),
            }
        )
    )


if __name__ == "__main__":
    _child(Path(sys.argv[1]), Path(sys.argv[2]))
