"""Record torch.profiler traces of a phase, and a per-operator table beside each trace.

How we profile (see docs/traces.md):

* **Never inside timed rounds.** The profiler inflates a LeNet step (shapes and memory
  cost the most; measured in ``results/studies/profile_cost.json``), so a trace is
  recorded in a pass of its own, after the timed rounds of a benchmark (or after
  warm-up, as ``scripts/trace.py`` does).
* **A schedule of a few active steps** (``torch.profiler.schedule``): one profiler
  warm-up step that is discarded, then ``active`` recorded steps, one cycle. CPU
  activity always, CUDA activity when the variant runs there; shapes, memory and
  FLOPs on; Python stacks off (``with_stack=True`` intermittently raises
  ``UnicodeDecodeError`` while events are read, pytorch/pytorch#136040).
* **Files TensorBoard and Perfetto open**: ``tensorboard_trace_handler`` writes
  ``<worker>.<ns>.pt.trace.json[.gz]`` into one folder per case, the variant id as
  the worker name; one fresh run folder per run, because torch-tb-profiler ignores
  files added to a folder it has already loaded.
* **Operator tables at trace time**: in ``on_trace_ready`` the profiler's own
  aggregation (``key_averages(group_by_input_shape=True)``) becomes ``operators.csv``
  and ``operators.json`` beside the trace; ``profile.json`` says what was recorded.
* **A failed trace never loses the run**: an export that raises (a second export
  raises "Trace is already saved") or a table that cannot be built is written into
  ``profile.json`` and returned as an error; nothing here raises for it.

Each step of the pass runs the phase's untimed set-up (if any) under the label
``lenet.setup`` and the phase itself under ``lenet.<phase>``; the operator table
counts only what ran inside ``lenet.<phase>``, so a backward trace's table holds
the backward pass, not the forward that prepared it.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch.autograd.profiler_util import FunctionEvent, FunctionEventAvg
from torch.profiler import ProfilerActivity, profile, record_function, schedule, tensorboard_trace_handler

from lenet.harness import Prepared, prepared
from lenet.options import TraceSettings
from lenet.runs.record import TraceInfo, case_fields
from lenet.timing import Clock, compile_events
from lenet.trace_files import (
    OPERATOR_COLUMNS,
    OPERATORS_CSV,
    OPERATORS_FILE,
    OPERATORS_SCHEMA,
    PROFILE_FILE,
    PROFILE_SCHEMA,
    is_trace_file,
)
from lenet.variants import Case, Phase

SETUP_LABEL = "lenet.setup"
DEFAULT_SETTINGS = TraceSettings()


def phase_label(phase: Phase | str) -> str:
    """The record_function label around the phase's own work in every profiled step."""
    return f"lenet.{Phase(phase).value}"


def new_run_name(now: datetime | None = None) -> str:
    """``YYYYmmdd-HHMMSS-<6 hex>`` (UTC): sorts by time, and two runs in one second still differ."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


def kernel_profile_enabled() -> bool:
    """Whether Inductor's C++ kernels are compiled with profiler ranges (their names appear in traces)."""
    import torch._inductor.config as inductor_config

    return bool(inductor_config.cpp.enable_kernel_profile)


def enable_kernel_profile() -> None:
    """Compile Inductor's C++ kernels with profiler ranges, so traces and tables name each kernel.

    Takes effect only for code compiled afterwards (the flag is part of the generated
    code and of Inductor's cache key): call it before the first ``torch.compile`` call.
    """
    import torch._inductor.config as inductor_config

    inductor_config.cpp.enable_kernel_profile = True


# --- the per-operator table -------------------------------------------------------------------


def _row(avg: FunctionEventAvg) -> dict[str, Any]:
    flops = int(avg.flops or 0)
    return {
        "name": str(avg.key),
        "kind": "annotation" if avg.is_user_annotation else "operator",
        "input_shapes": json.dumps(avg.input_shapes) if avg.input_shapes else "",
        "calls": int(avg.count),
        "self_cpu_us": float(avg.self_cpu_time_total),
        "cpu_total_us": float(avg.cpu_time_total),
        "self_device_us": float(avg.self_device_time_total),
        "device_total_us": float(avg.device_time_total),
        "self_cpu_memory_bytes": int(avg.self_cpu_memory_usage),
        "cpu_memory_bytes": int(avg.cpu_memory_usage),
        "self_device_memory_bytes": int(avg.self_device_memory_usage),
        "device_memory_bytes": int(avg.device_memory_usage),
        "flops": flops or None,  # None: the profiler has no formula for this operator
    }


def _ours(name: str) -> bool:
    """Labels the pass itself adds (profiler steps, set-up and phase ranges): not operators of the model."""
    return name.startswith(("ProfilerStep", "lenet."))


def operator_rows(averages: Iterable[FunctionEventAvg]) -> list[dict[str, Any]]:
    """``key_averages`` rows -> table rows (totals over the recorded steps), largest self CPU time first."""
    rows = [_row(avg) for avg in averages if not _ours(str(avg.key))]
    return sorted(rows, key=lambda r: (-r["self_cpu_us"], r["name"], r["input_shapes"]))


def averages_within(events: Sequence[FunctionEvent], label: str) -> list[FunctionEventAvg]:
    """``key_averages(group_by_input_shape=True)`` of the events inside the ranges named ``label``.

    The profiler's own aggregation (``FunctionEventAvg.add``), over a subset: the events
    that start and end inside one of the ``label`` ranges (on any thread, so CUDA's
    backward thread counts too). Self times stay right, since each event keeps its children.
    """
    ranges = [(e.time_range.start, e.time_range.end) for e in events if e.name == label]
    grouped: dict[tuple[str, ...], FunctionEventAvg] = {}
    for event in events:
        start, end = event.time_range.start, event.time_range.end
        if event.name == label or not any(lo <= start and end <= hi for lo, hi in ranges):
            continue
        key = (
            str(event.key),
            str(event.node_id),
            str(event.device_type),
            str(event.is_legacy),
            str(event.is_user_annotation),
            str(event.input_shapes),
        )
        grouped.setdefault(key, FunctionEventAvg()).add(event)
    return list(grouped.values())


def operators_csv(rows: Sequence[dict[str, Any]], steps: int) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[*OPERATOR_COLUMNS, "steps"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**{k: ("" if row[k] is None else row[k]) for k in OPERATOR_COLUMNS}, "steps": steps})
    return buffer.getvalue()


# --- recording ---------------------------------------------------------------------------------


@dataclass
class TraceResult:
    """What one profiling pass produced, where, and what went wrong (never raised)."""

    folder: Path
    worker: str
    trace_file: Path | None = None
    operators_file: Path | None = None
    seconds: float = 0.0  # wall time of the pass: set-up, profiled steps, table and export
    export_seconds: float = 0.0
    trace_bytes: int = 0
    compile_events: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.trace_file is not None and self.operators_file is not None and not self.errors

    def info(self, kernel_profile: bool | None = None) -> TraceInfo:
        """The record's trace fields: where the trace went, or why it did not."""
        return TraceInfo(
            trace_dir=str(self.folder.resolve()),
            trace_file=self.trace_file.name if self.trace_file else None,
            trace_seconds=self.seconds,
            trace_bytes=self.trace_bytes,
            trace_error="; ".join(self.errors) or None,
            inductor_kernel_profile=kernel_profile,
        )


TraceExport = Callable[[Any], None]


def default_export(folder: Path, worker: str, use_gzip: bool) -> TraceExport:
    return tensorboard_trace_handler(str(folder), worker_name=worker, use_gzip=use_gzip)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def record_trace(
    target: Callable[..., object],
    folder: Path,
    *,
    phase: Phase,
    worker: str,
    setup: Callable[[], Any] | None = None,
    synchronize: Callable[[], None] = lambda: None,
    device: str = "cpu",
    settings: TraceSettings = DEFAULT_SETTINGS,
    metadata: dict[str, Any] | None = None,
    export: TraceExport | None = None,
    clock: Clock = time.perf_counter,
) -> TraceResult:
    """Profile ``settings.steps`` calls of ``target`` into ``folder`` (created; must not hold files).

    ``setup`` runs before each call, as before each timed round (it returns the call's
    ``(args, kwargs)`` or None). ``export`` replaces the TensorBoard handler (tests use it
    to make the export fail). Returns what was written; errors are recorded, not raised.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise FileExistsError(f"{folder}: already holds files; each trace goes into a fresh folder")
    result = TraceResult(folder=folder, worker=worker)
    label = phase_label(phase)
    activities = [ProfilerActivity.CPU]
    if device == "cuda" and torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    rows: list[dict[str, Any]] = []
    # Only the labelled calls make the table when set-up runs between them; otherwise every event does.
    on_trace_ready = _trace_handler(
        result,
        rows,
        label if setup is not None else None,
        export or default_export(folder, worker, settings.use_gzip),
        clock,
    )
    compiles_before = compile_events()
    start = clock()
    _profile_steps(target, label, setup, synchronize, activities, settings, on_trace_ready)
    result.seconds = clock() - start
    result.compile_events = compile_events() - compiles_before
    _write_outputs(result, rows, settings)
    profile_document = {
        **(metadata or {}),
        "phase": Phase(phase).value,
        "worker": worker,
        "torch_version": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "activities": [a.name for a in activities],
        "settings": asdict(settings),
    }
    _write_profile_file(result, profile_document, settings)
    return result


def _trace_handler(
    result: TraceResult, rows: list[dict[str, Any]], label: str | None, export: TraceExport, clock: Clock
) -> Callable[[profile], None]:
    """The profiler's ``on_trace_ready``: the operator table into ``rows`` (``label``'s calls only, when
    named), then the export; what fails goes into ``result.errors``."""

    def on_trace_ready(prof: profile) -> None:
        # The table first: it needs only the events, and an export failure must not cost it.
        try:
            averages = averages_within(prof.events(), label) if label is not None else prof.key_averages(True)
            rows.extend(operator_rows(averages))
        except (RuntimeError, ValueError, UnicodeDecodeError, AssertionError) as error:
            result.errors.append(f"operator table not built: {_first_line(error)}")
        start = clock()
        try:
            export(prof)
        except (RuntimeError, OSError, ValueError) as error:
            result.errors.append(f"trace not saved: {_first_line(error)}")
        result.export_seconds = clock() - start

    return on_trace_ready


def _profile_steps(
    target: Callable[..., object],
    label: str,
    setup: Callable[[], Any] | None,
    synchronize: Callable[[], None],
    activities: list[ProfilerActivity],
    settings: TraceSettings,
    on_trace_ready: Callable[[profile], None],
) -> None:
    """``settings.steps`` calls of ``target`` under the profiler, each inside ``label`` and after its set-up."""
    with profile(
        activities=activities,
        schedule=schedule(wait=0, warmup=settings.warmup, active=settings.active, repeat=1),
        on_trace_ready=on_trace_ready,
        record_shapes=settings.record_shapes,
        profile_memory=settings.profile_memory,
        with_flops=settings.with_flops,
        with_stack=False,
    ) as prof:
        for _ in range(settings.steps):
            args: tuple[Any, ...] = ()
            if setup is not None:
                with record_function(SETUP_LABEL):
                    prepared = setup()
                if prepared is not None:
                    args = tuple(prepared[0])
            with record_function(label):
                target(*args)
                synchronize()  # inside the label: the phase's device kernels end within its range
            prof.step()


def _write_outputs(result: TraceResult, rows: list[dict[str, Any]], settings: TraceSettings) -> None:
    """Find the trace the export wrote, and write the operator table (JSON and CSV) beside it."""
    folder = result.folder
    traces = sorted(p for p in folder.iterdir() if is_trace_file(p.name))
    if traces:
        result.trace_file = traces[-1]
        result.trace_bytes = result.trace_file.stat().st_size
    elif not any(e.startswith("trace not saved") for e in result.errors):
        result.errors.append(f"trace not saved: no *.pt.trace.json[.gz] appeared in {folder}")
    if rows:
        result.operators_file = folder / OPERATORS_FILE
        document = {"schema": OPERATORS_SCHEMA, "steps": settings.active, "operators": rows}
        _write_new(result.operators_file, json.dumps(document, separators=(",", ":")) + "\n")
        _write_new(folder / OPERATORS_CSV, operators_csv(rows, settings.active))


def _write_profile_file(result: TraceResult, described: dict[str, Any], settings: TraceSettings) -> None:
    """The pass's own record (``described``: what was profiled, and how), with what it wrote and what failed."""
    document = {
        "schema": PROFILE_SCHEMA,
        **described,
        "steps": settings.active,
        "kernel_profile": kernel_profile_enabled(),
        "trace_file": result.trace_file.name if result.trace_file else None,
        "trace_bytes": result.trace_bytes,
        "operators_file": result.operators_file.name if result.operators_file else None,
        "seconds": result.seconds,
        "export_seconds": result.export_seconds,
        "compile_events": result.compile_events,
        "errors": result.errors,
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _write_new(result.folder / PROFILE_FILE, json.dumps(document, indent=1) + "\n")


def _write_new(path: Path, text: str) -> None:
    """Write a file that must not exist yet: a run's files are never overwritten."""
    with open(path, "x", encoding="utf-8") as handle:
        handle.write(text)


class TraceRun:
    """One run's folder of traces, ``<root>/<run name>/``, created on the first trace.

    Every case of the run gets ``<run>/<case folder>/``; nothing existing is overwritten.
    """

    def __init__(self, root: Path, settings: TraceSettings = DEFAULT_SETTINGS, name: str | None = None):
        self.root = root
        self.settings = settings
        self.name = name or new_run_name()
        self.folder = root / self.name

    def record(
        self,
        case: Case,
        target: Callable[..., object],
        setup: Callable[[], Any] | None = None,
        synchronize: Callable[[], None] = lambda: None,
        export: TraceExport | None = None,
    ) -> TraceResult:
        if not self.folder.exists():
            self.folder.mkdir(parents=True)
        folder = self.folder / case.name
        folder.mkdir()  # a case is profiled once per run; a second attempt is a bug, not an overwrite
        return record_trace(
            target,
            folder,
            phase=case.phase,
            worker=case.variant.id,
            setup=setup,
            synchronize=synchronize,
            device=case.variant.device,
            settings=self.settings,
            metadata={"run": self.name, **case_fields(case)},
            export=export,
        )

    def summary(self) -> list[str]:
        """Lines for the end of the run: how many traces, where, and how to open them."""
        if not self.folder.exists():
            return []
        count = sum(1 for path in self.folder.iterdir() if path.is_dir())
        return [
            f"lenet-bench: {count} trace(s) in {self.folder}; open them with `tensorboard --logdir {self.root}` "
            "or in https://ui.perfetto.dev, and `python scripts/report.py` summarizes them"
        ]

    def header(self) -> str:
        return (
            f"lenet-bench: profiling into {self.folder} ({self.settings.active} steps per trace, "
            "after the timed rounds; Inductor kernel profiling on)"
        )

    def record_prepared(self, case: Prepared) -> TraceResult:
        """Record the trace of a prepared (built, checked and warm) case."""
        return self.record(case.case, case.call.target, case.call.setup, case.workload.synchronize)


def trace_pass(trace_run: TraceRun, ready: Prepared) -> TraceInfo:
    """The profiling pass after a benchmark's timed rounds: the record's trace fields.

    A trace that fails is a warning and a ``trace_error`` in the record, never a failed benchmark:
    the timings it follows are sound.
    """
    case = ready.case
    kernel_profile = case.variant.is_compiled and kernel_profile_enabled()
    try:
        result = trace_run.record_prepared(ready)
    except (RuntimeError, OSError, ValueError) as error:
        message = _first_line(error)
        warnings.warn(f"{case.name}: no trace recorded: {message}", stacklevel=1)
        return TraceInfo(trace_dir=None, trace_error=message, inductor_kernel_profile=kernel_profile)
    if result.errors:
        warnings.warn(f"{case.name}: {'; '.join(result.errors)}", stacklevel=1)
    return result.info(kernel_profile)


def profile_case(case: Case, trace_run: TraceRun, gate: bool = True) -> TraceResult:
    """Prepare the case (build, gate unless ``gate`` is False, warm up), then record its trace.

    What ``pytest bench --profile`` does after its timed rounds, without the timed rounds.
    Raises CorrectnessError when the variant computes a wrong answer (a trace of it is worthless).
    """
    with prepared(case, gate=gate) as ready:
        return trace_run.record_prepared(ready)
