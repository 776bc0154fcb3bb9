"""The result of one benchmark, as one frozen, versioned record.

A :class:`Record` is what the suites write into pytest-benchmark's ``extra_info``, what
the loader reads back, and what the corpus generator makes. Its fields are flat JSON
values, so upstream tools (``pytest-benchmark compare``) show them unchanged and every
field is one column in the report. The optional passes (a profiler trace, instruction
counts) are records of their own, present only when the pass ran.

Adding a metric is one field here (with its default, so older runs still load) and one
column in the report. ``schema`` names the version that wrote a run:

* ``lenet-bench/1``: the first format (the same keys, written without this module);
* ``lenet-bench/2``: written from this record; same keys as 1, read the same way.

Reading is tolerant, as a report over years of saved runs must be: unknown keys are
kept aside (:attr:`Record.extra`), and a value of the wrong type makes
:func:`Record.from_extra_info` raise :class:`RecordError` naming the key, so that one bad
benchmark costs one warning line rather than the whole report.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from lenet.variants import Case

SCHEMA = "lenet-bench/2"
SCHEMAS = ("lenet-bench/1", "lenet-bench/2")  # every version this code reads


class RecordError(ValueError):
    """An ``extra_info`` that is not a lenet-bench record; the message names the key and what was expected."""

    def __init__(self, message: str, key: str | None = None, value: Any = None, expected: str = "") -> None:
        super().__init__(message)
        self.key = key  # the offending key, when one is to blame
        self.value = value
        self.expected = expected  # what the key should hold, e.g. "text" or "an integer"


def _check(key: str, value: Any, kinds: tuple[type, ...], optional: bool) -> Any:
    if value is None:
        if optional:
            return None
        raise RecordError(
            f"extra_info[{key!r}] is missing; expected {_kind_names(kinds)}", key, None, _kind_names(kinds)
        )
    # bool is an int in Python; a count or a size given as true/false is still wrong.
    if isinstance(value, bool) and bool not in kinds:
        raise RecordError(
            f"extra_info[{key!r}] is {value!r}; expected {_kind_names(kinds)}", key, value, _kind_names(kinds)
        )
    if not isinstance(value, kinds):
        kind = type(value).__name__
        expected = _kind_names(kinds)
        raise RecordError(f"extra_info[{key!r}] is {kind} {short(value)}; expected {expected}", key, value, expected)
    if isinstance(value, float) and not math.isfinite(value):
        raise RecordError(f"extra_info[{key!r}] is {value!r}; expected a finite number", key, value, "a finite number")
    return value


def _kind_names(kinds: tuple[type, ...]) -> str:
    names = {str: "text", int: "an integer", float: "a number", bool: "true or false", list: "a list"}
    return " or ".join(dict.fromkeys(names.get(kind, kind.__name__) for kind in kinds))


def short(value: object, limit: int = 40) -> str:
    """A value from a file, quoted for a message: its repr, shortened to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


NUMBER = (int, float)
TEXT = (str,)
COUNT = (int,)
LIST = (list, tuple)
NUMBER_OR_TEXT = (int, float, str)


class _Flat:
    """Flat (de)serialization shared by the record and its optional parts: field name = extra_info key."""

    __slots__ = ()  # the records are slotted: a report holds one per benchmark, tens of thousands

    KINDS: ClassVar[dict[str, tuple[type, ...]]] = {}
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    # Subclasses call the base by name: a slotted dataclass is a new class, which zero-argument super() misses.
    def to_extra_info(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in type(self).KINDS}  # type: ignore[arg-type]

    @classmethod
    def _values(cls, info: Mapping[str, Any]) -> dict[str, Any]:
        values = {}
        for name, kinds in cls.KINDS.items():
            value = _check(name, info.get(name), kinds, optional=name not in cls.REQUIRED)
            if value is not None and list in kinds:
                value = tuple(value)
            values[name] = value
        return values


@dataclass(frozen=True, slots=True)
class TraceInfo(_Flat):
    """Where the profiling pass put its trace (``pytest bench --profile``), or why it did not."""

    trace_dir: str | None
    trace_file: str | None = None
    trace_seconds: float | None = None  # wall time of the profiling pass
    trace_bytes: int | None = None
    trace_error: str | None = None  # None when the trace was saved
    inductor_kernel_profile: bool | None = None

    KINDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "trace_dir": TEXT,
        "trace_file": TEXT,
        "trace_seconds": NUMBER,
        "trace_bytes": COUNT,
        "trace_error": TEXT,
        "inductor_kernel_profile": (bool,),
    }

    @classmethod
    def from_extra_info(cls, info: Mapping[str, Any]) -> TraceInfo | None:
        return cls(**cls._values(info)) if any(key in info for key in cls.KINDS) else None


@dataclass(frozen=True, slots=True)
class InstructionInfo(_Flat):
    """Instructions per call under callgrind (``pytest bench --instructions``), or why there are none."""

    instructions: float | None = None  # median over the repeats
    instructions_spread: float | None = None  # (max - min) / median over the repeats
    instructions_repeats: tuple[float, ...] | None = None
    instructions_calls_per_repeat: int | None = None
    instructions_unavailable: str | None = None  # the reason, when there is no count

    KINDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "instructions": NUMBER,
        "instructions_spread": NUMBER,
        "instructions_repeats": (list, tuple),
        "instructions_calls_per_repeat": COUNT,
        "instructions_unavailable": TEXT,
    }

    def to_extra_info(self) -> dict[str, Any]:
        info = _Flat.to_extra_info(self)
        if self.instructions is None:  # no count: say why, and nothing else
            return {"instructions_unavailable": self.instructions_unavailable}
        info.pop("instructions_unavailable")
        info["instructions_repeats"] = list(self.instructions_repeats or ())
        return info

    @classmethod
    def unavailable(cls, reason: str) -> InstructionInfo:
        return cls(instructions_unavailable=reason)

    @classmethod
    def from_extra_info(cls, info: Mapping[str, Any]) -> InstructionInfo | None:
        return cls(**cls._values(info)) if any(key in info for key in cls.KINDS) else None


class _Sparse(_Flat):
    """A part whose absent values are left out of ``extra_info``: old runs and runs without the pass read alike."""

    __slots__ = ()

    def to_extra_info(self) -> dict[str, Any]:
        info = {key: value for key, value in _Flat.to_extra_info(self).items() if value is not None}
        return {key: list(value) if isinstance(value, tuple) else value for key, value in info.items()}

    @classmethod
    def from_extra_info(cls, info: Mapping[str, Any]) -> Any:
        return cls(**cls._values(info)) if any(key in info for key in cls.KINDS) else None


@dataclass(frozen=True, slots=True)
class MetricsInfo(_Sparse):
    """Peak memory, FLOPs and the share of the machine's measured peak (``lenet.metrics``; docs/metrics.md).

    Measured in an untimed pass after the timed rounds. A metric this platform cannot give has no
    value and a ``*_unavailable`` reason instead; ``percent_of_peak`` is 0-100.
    """

    memory_peak_bytes: int | None = None  # peak live tensor bytes above those live when the phase began
    memory_max_allocated_bytes: int | None = None  # CUDA: torch.cuda.max_memory_allocated()
    memory_max_reserved_bytes: int | None = None  # CUDA: torch.cuda.max_memory_reserved()
    memory_method: str | None = None
    memory_unavailable: str | None = None
    flops: int | None = None  # per call, by FlopCounterMode (2 per multiply-add)
    flops_uncounted: tuple[str, ...] | None = None  # ops that ran with no FLOP formula, "aten.relu x4"
    bytes_accessed: int | None = None  # each op's input + output tensor bytes: a lower bound on its traffic
    flops_unavailable: str | None = None
    ops_per_step: float | None = None  # CPU: aten operators per call, from the profiler (compiled kernels: 0)
    kernels_per_step: float | None = None  # CUDA: GPU kernels (and memcpy/memset) per call, from the profiler
    gpu_busy_percent: float | None = None  # CUDA: time some kernel ran / the calls' wall time, 0-100
    dispatch_unavailable: str | None = None  # why there is no operator or kernel count
    gflops_per_s: float | None = None  # flops / median time
    peak_gflops: float | None = None  # the measured matmul peak of this precision
    peak_gflops_kind: str | None = None
    peak_bandwidth_gbs: float | None = None  # the measured memory bandwidth (best of copy and triad)
    peak_bandwidth_kind: str | None = None
    percent_of_peak: float | None = None
    peaks_file: str | None = None
    peak_unavailable: str | None = None
    metrics_seconds: float | None = None  # wall time of the metrics pass

    KINDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "memory_peak_bytes": COUNT,
        "memory_max_allocated_bytes": COUNT,
        "memory_max_reserved_bytes": COUNT,
        "memory_method": TEXT,
        "memory_unavailable": TEXT,
        "flops": COUNT,
        "flops_uncounted": LIST,
        "bytes_accessed": COUNT,
        "flops_unavailable": TEXT,
        "ops_per_step": NUMBER,
        "kernels_per_step": NUMBER,
        "gpu_busy_percent": NUMBER,
        "dispatch_unavailable": TEXT,
        "gflops_per_s": NUMBER,
        "peak_gflops": NUMBER,
        "peak_gflops_kind": TEXT,
        "peak_bandwidth_gbs": NUMBER,
        "peak_bandwidth_kind": TEXT,
        "percent_of_peak": NUMBER,
        "peaks_file": TEXT,
        "peak_unavailable": TEXT,
        "metrics_seconds": NUMBER,
    }


@dataclass(frozen=True, slots=True)
class CompileCostInfo(_Sparse):
    """What torch.compile costs a compiled case, and after how many steps it pays back (docs/metrics.md).

    Cold: a new process with an empty Inductor cache; warm: a new process on that same cache.
    ``break_even_steps`` is a number of steps or ``"never"`` (compiled is not faster).
    """

    compile_cold_seconds: float | None = None
    compile_warm_seconds: float | None = None
    compile_graphs: int | None = None  # dynamo's unique graphs in the cold process
    compile_graph_breaks: int | None = None
    compile_recompiles: int | None = None
    compile_warm_cache_hits: int | None = None  # FX-graph and AOTAutograd cache hits in the warm process
    compile_cost_unavailable: str | None = None
    eager_median_seconds: float | None = None  # the eager counterpart's median in the same run
    break_even_steps: float | str | None = None  # cost / (eager step - compiled step), cost cold or in-process
    break_even_warm_steps: float | str | None = None
    break_even_basis: str | None = None  # "cold" or "in-process": which compile cost break_even_steps uses
    break_even_unavailable: str | None = None

    KINDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "compile_cold_seconds": NUMBER,
        "compile_warm_seconds": NUMBER,
        "compile_graphs": COUNT,
        "compile_graph_breaks": COUNT,
        "compile_recompiles": COUNT,
        "compile_warm_cache_hits": COUNT,
        "compile_cost_unavailable": TEXT,
        "eager_median_seconds": NUMBER,
        "break_even_steps": NUMBER_OR_TEXT,
        "break_even_warm_steps": NUMBER_OR_TEXT,
        "break_even_basis": TEXT,
        "break_even_unavailable": TEXT,
    }


@dataclass(frozen=True, slots=True)
class Stability(_Sparse):
    """The machine's state around the timed rounds and the stability checks' verdict (``lenet.stability``).

    ``stability_flags`` empty: every check passed; absent (no sub-record): a run made before the checks.
    """

    stability_flags: tuple[str, ...] = ()  # the checks that failed (lenet.stability.CHECKS)
    stability_reasons: tuple[str, ...] = ()  # one line with the numbers per flag
    stability_attempts: int | None = None  # timed attempts (more than 1 with --rerun-unstable)
    rounds_spread: float | None = None  # 1.4826 MAD / median of the round times
    rounds_drift: float | None = None  # median of the last third / the first third - 1
    # this process during the rounds (getrusage; an untimed per-round set-up left out)
    calls: int | None = None
    cpu_per_wall: float | None = None  # CPU seconds (all threads) per wall second
    minor_faults_per_call: float | None = None
    major_faults_per_call: float | None = None
    voluntary_switches_per_call: float | None = None
    involuntary_switches_per_call: float | None = None
    # the machine during the rounds (/proc/stat, /proc/loadavg; shares of all CPUs' time)
    sampled_seconds: float | None = None  # between the two snapshots, set-ups included: what the shares cover
    load_before: float | None = None  # 1-minute load average
    load_after: float | None = None
    steal_share: float | None = None
    iowait_share: float | None = None
    busy_share: float | None = None  # other processes' CPU time
    cpu_governor: str | None = None  # or "unavailable: <reason>"
    cpu_boost: str | None = None
    state_unavailable: str | None = None  # why the machine's figures are missing

    KINDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "stability_flags": (list, tuple),
        "stability_reasons": (list, tuple),
        "stability_attempts": COUNT,
        "rounds_spread": NUMBER,
        "rounds_drift": NUMBER,
        "calls": COUNT,
        "cpu_per_wall": NUMBER,
        "minor_faults_per_call": NUMBER,
        "major_faults_per_call": NUMBER,
        "voluntary_switches_per_call": NUMBER,
        "involuntary_switches_per_call": NUMBER,
        "sampled_seconds": NUMBER,
        "load_before": NUMBER,
        "load_after": NUMBER,
        "steal_share": NUMBER,
        "iowait_share": NUMBER,
        "busy_share": NUMBER,
        "cpu_governor": TEXT,
        "cpu_boost": TEXT,
        "state_unavailable": TEXT,
    }

    @property
    def flagged(self) -> bool:
        return bool(self.stability_flags)

    def to_extra_info(self) -> dict[str, Any]:
        info = {k: v for k, v in _Sparse.to_extra_info(self).items() if v is not None}
        return {
            **info,
            "stability_flags": list(self.stability_flags),
            "stability_reasons": list(self.stability_reasons),
        }

    @classmethod
    def from_extra_info(cls, info: Mapping[str, Any]) -> Stability | None:
        if "stability_flags" not in info:
            return None
        values = {k: v for k, v in cls._values(info).items() if v is not None}
        return cls(**values)


def case_fields(case: Case) -> dict[str, Any]:
    """The fields that name a case, as every file about it (saved run, trace, count) writes them."""
    spec = case.spec()
    return {"case": case.name, "variant": spec["variant"], **case.variant.fields(), **spec}


@dataclass(frozen=True, slots=True)
class Record(_Flat):
    """One benchmark's result beyond pytest-benchmark's statistics: what ran, how, and what it cost.

    Times are in seconds. ``samples_per_s`` is the batch size over the median round.
    """

    # what ran (the case)
    variant: str
    device: str
    memory_format: str
    precision: str
    compile: str
    phase: str
    batch_size: int
    optimizer: str | None
    scope: str | None = None  # "module" or "step" (lenet.variants); absent in runs made before the axis
    # how it was measured
    timer: str | None = None
    torch_threads: int | None = None
    # what it cost before the timed rounds
    samples_per_s: float | None = None
    compile_seconds: float | None = None  # wall time of the calls that compiled (gate and warm-up)
    compile_events: int | None = None
    gate_seconds: float | None = None
    first_call_seconds: float | None = None
    warmup_calls: int | None = None
    warmup_seconds: float | None = None
    # the correctness gate
    correctness_worst_error: float | None = None
    correctness_worst_ratio: float | None = None  # error / allowed: <= 1 passed
    # what torch.compile did while the case was gated and warmed up (dynamo's counters; None: eager)
    graph_breaks: int | None = None
    graph_break_reasons: tuple[str, ...] | None = None  # the first line of each distinct reason
    recompiles: int | None = None
    recompile_reasons: tuple[str, ...] | None = None  # the guard that failed, for each recompile
    # optional passes
    trace: TraceInfo | None = None
    counts: InstructionInfo | None = None
    metrics: MetricsInfo | None = None
    compile_cost: CompileCostInfo | None = None
    stability: Stability | None = None
    schema: str = SCHEMA
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as read

    KINDS: ClassVar[dict[str, tuple[type, ...]]] = {
        "variant": TEXT,
        "device": TEXT,
        "memory_format": TEXT,
        "precision": TEXT,
        "compile": TEXT,
        "phase": TEXT,
        "batch_size": COUNT,
        "optimizer": TEXT,
        "scope": TEXT,
        "timer": TEXT,
        "torch_threads": COUNT,
        "samples_per_s": NUMBER,
        "compile_seconds": NUMBER,
        "compile_events": COUNT,
        "gate_seconds": NUMBER,
        "first_call_seconds": NUMBER,
        "warmup_calls": COUNT,
        "warmup_seconds": NUMBER,
        "correctness_worst_error": NUMBER,
        "correctness_worst_ratio": NUMBER,
        "graph_breaks": COUNT,
        "graph_break_reasons": LIST,
        "recompiles": COUNT,
        "recompile_reasons": LIST,
    }
    PLACING: ClassVar[tuple[str, ...]] = ("device", "phase", "batch_size")  # where a report puts the row
    REQUIRED: ClassVar[tuple[str, ...]] = (
        "variant",
        "device",
        "memory_format",
        "precision",
        "compile",
        "phase",
        "batch_size",
    )

    @classmethod
    def for_case(cls, case: Case, **values: Any) -> Record:
        """A record of ``case`` with the measured ``values``."""
        named = {k: v for k, v in case_fields(case).items() if k != "case"}
        return cls(**named, **values)

    @property
    def case_name(self) -> str:
        """The case's one name, ``phase-variant[-optimizer]-bN``, as :attr:`lenet.variants.Case.name`.

        The variant id already carries a step scope (``...-compile-step``)."""
        parts = [self.phase, self.variant, *([self.optimizer] if self.optimizer else []), f"b{self.batch_size}"]
        return "-".join(parts)

    def with_counts(self, counts: InstructionInfo) -> Record:
        return dataclasses.replace(self, counts=counts)

    def with_stability(self, stability: Stability) -> Record:
        return dataclasses.replace(self, stability=stability)

    def to_extra_info(self) -> dict[str, Any]:
        """The JSON-ready ``extra_info`` of this record (keys as saved since ``lenet-bench/1``)."""
        info = {"schema": self.schema, **_Flat.to_extra_info(self)}
        for key in ("graph_break_reasons", "recompile_reasons"):
            info[key] = list(info[key]) if info[key] is not None else None
        if self.trace is not None:
            info.update(self.trace.to_extra_info())
        if self.counts is not None:
            info.update(self.counts.to_extra_info())
        for part in (self.metrics, self.compile_cost, self.stability):
            info.update(part.to_extra_info() if part is not None else {})
        return {**self.extra, **info}

    @classmethod
    def from_extra_info(cls, info: Mapping[str, Any]) -> Record:
        """Read a saved ``extra_info`` back; :class:`RecordError` names the first bad or missing key."""
        if not isinstance(info, Mapping):
            raise RecordError(f"extra_info is {type(info).__name__}; expected an object")
        schema = info.get("schema")
        if schema not in SCHEMAS:
            raise RecordError(
                f"extra_info['schema'] is {short(schema)}; expected one of {', '.join(SCHEMAS)}", "schema"
            )
        known = _known_keys()
        return cls(
            **cls._values(info),
            trace=TraceInfo.from_extra_info(info),
            counts=InstructionInfo.from_extra_info(info),
            metrics=MetricsInfo.from_extra_info(info),
            compile_cost=CompileCostInfo.from_extra_info(info),
            stability=Stability.from_extra_info(info),
            schema=schema,
            extra={k: v for k, v in info.items() if k not in known},
        )

    @classmethod
    def read(cls, info: Mapping[str, Any]) -> tuple[Record | None, list[RecordError]]:
        """Read a saved ``extra_info`` as a report over old and odd runs must: a bad value is dropped (and its
        error returned), except where it places the row (device, phase, batch size) or names the format
        (schema): then there is no record. A dropped case field reads as ``"?"``."""
        cleaned, problems = dict(info), []
        while True:
            try:
                unplaced = {key for key in cls.REQUIRED if key not in cls.PLACING and cleaned.get(key) is None}
                return cls.from_extra_info({**cleaned, **dict.fromkeys(unplaced, "?")}), problems
            except RecordError as error:
                problems.append(error)
                if error.key in (None, "schema", *cls.PLACING) or error.key not in cleaned:
                    return None, problems
                del cleaned[error.key]


def is_record(info: Any) -> bool:
    """Whether an ``extra_info`` claims to be a lenet-bench record (any version)."""
    schema = info.get("schema") if isinstance(info, Mapping) else None
    return isinstance(schema, str) and schema.startswith("lenet-bench/")


@functools.cache
def _known_keys() -> frozenset[str]:
    """Every ``extra_info`` key the record and its parts read (made once: a report reads tens of thousands)."""
    parts = (Record, TraceInfo, InstructionInfo, MetricsInfo, CompileCostInfo, Stability)
    return frozenset({"schema"}.union(*(part.KINDS for part in parts)))
